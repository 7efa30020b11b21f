"""The campaigns table (``pk = campaign_id``, ``sk``): definitions and occurrences.

- ``sk = "DEF"``: the campaign as JSON (``definition``), its own template files
  (``templates``: ``<template>/<locale>/<part>.j2`` -> source), the authoritative ``status``,
  ``updated_at``, ``updated_by``, ``version``, ``occurrences_started`` (one added by each
  occurrence's start, in the transaction that writes it);
- ``sk = "OCC#<occurrence>"``: ``status`` (running, done, stopped, cancelled), times, the
  counters ADDed per batch, the winner and why, why it stopped;
- ``sk = "CNT#<occurrence>#<digest of a chunk key>"``: a send batch's marker, put in the
  TransactWriteItems that ADDs the batch's counters, on condition that it does not exist (the
  counts are added once per chunk however often the batch is retried), with the invocation's
  ``token`` and the ``counts`` it added; it expires (``expires_at``, the table's TTL) after
  the chunk it names (:data:`MARKER_DAYS`).

Also the ``campaign.completed`` event onto the bus. The adapter never reads the clock.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kizuna.adapters.dynamodb import _batch_get, _items, from_dynamo, to_dynamo
from kizuna.adapters.retry import ATTEMPTS, retrying
from kizuna.campaigns.model import Campaign
from kizuna.domain.timestamps import epoch_seconds, iso
from kizuna.events.derived import CampaignEvent
from kizuna.ports import DefinitionConflict, StoredCampaign
from kizuna.runtime.settings import CAMPAIGN_MANIFEST_EXPIRY_DAYS

DEF = "DEF"
OCC = "OCC#"
STARTED = "occurrences_started"
CNT = "CNT#"  # a send batch's counted marker: CNT#<occurrence>#<digest of the chunk key>
# A marker outlives the chunk it names (the lifecycle rule removes a chunk object at the first
# midnight UTC after its expiry): a retry of the batch after that fails on the missing chunk.
MARKER_DAYS = CAMPAIGN_MANIFEST_EXPIRY_DAYS + 2
MARKER_TTL = "expires_at"
COUNTERS = ("audience", "holdout", "sent", "suppressed", "deferred", "failed", "duplicate")


def _stored(item: Mapping[str, Any]) -> StoredCampaign:
    data = from_dynamo(dict(item))
    return StoredCampaign(
        campaign=Campaign.model_validate_json(str(data["definition"])),
        templates={str(k): str(v) for k, v in (data.get("templates") or {}).items()},
        status=str(data.get("status", "draft")),
        version=int(data.get("version", 0)),
        updated_at=data.get("updated_at"),
        updated_by=data.get("updated_by"),
        occurrences_started=int(data.get("occurrences_started", 0)),
    )


def _occurrence(item: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = from_dynamo(dict(item))
    data["occurrence"] = str(data.pop("sk")).removeprefix(OCC)
    data.pop("campaign_id", None)
    return data


def _plain(value: Any) -> Any:
    """An attribute of a cancellation reason's item: low-level (``{"S": ...}``) there."""
    if isinstance(value, Mapping) and len(value) == 1:
        return next(iter(value.values()))
    return value


class CampaignStore:
    def __init__(self, dynamodb: Any, table_name: str, *, sleep: Any = time.sleep) -> None:
        self._dynamodb = dynamodb
        self._table = dynamodb.Table(table_name)
        self._name = table_name
        self._sleep = sleep
        self._conditional = self._table.meta.client.exceptions.ConditionalCheckFailedException

    # definitions ---------------------------------------------------------------------
    def put_definition(
        self,
        campaign: Campaign,
        templates: Mapping[str, str],
        updated_by: str,
        now: datetime,
        *,
        expected_version: int | None = None,
        only_from: frozenset[str] | None = None,
        started: int | None = None,
    ) -> int:
        """Store (or replace) a definition; its status becomes the definition's own. Returns
        the new version. With ``expected_version`` (0: it must not exist yet), only over that
        version; with ``only_from``, only over a stored one of those statuses; with
        ``started``, only while its ``occurrences_started`` is still that (no occurrence
        started since it was read: :meth:`start_occurrence`); all in the same write: else
        :class:`DefinitionConflict`."""
        values: dict[str, Any] = {
            ":d": campaign.model_dump_json(),
            ":t": dict(templates),
            ":s": str(campaign.status),
            ":ua": iso(now),
            ":ub": updated_by,
            ":one": 1,
        }
        names = {
            "#d": "definition",
            "#t": "templates",
            "#s": "status",
            "#ua": "updated_at",
            "#ub": "updated_by",
            "#v": "version",
        }
        conditions: list[str] = []
        if expected_version == 0:
            conditions.append("attribute_not_exists(sk)")
        else:
            if expected_version is not None:
                values[":expected"] = expected_version
                conditions.append("#v = :expected")
            if only_from:
                keys = [f":from{i}" for i in range(len(only_from))]
                values.update(dict(zip(keys, sorted(only_from), strict=True)))
                status_in = f"#s IN ({', '.join(keys)})"
                conditions.append(
                    status_in
                    if expected_version is not None
                    else f"(attribute_not_exists(sk) OR {status_in})"
                )
        if started is not None:
            names["#n"] = STARTED
            if started:
                values[":started"] = started
                conditions.append("#n = :started")
            else:
                conditions.append("attribute_not_exists(#n)")
        condition = {"ConditionExpression": " AND ".join(conditions)} if conditions else {}
        try:
            resp = self._table.update_item(
                Key={"campaign_id": campaign.id, "sk": DEF},
                UpdateExpression="SET #d = :d, #t = :t, #s = :s, #ua = :ua, #ub = :ub ADD #v :one",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                **condition,
            )
        except self._conditional as error:
            raise DefinitionConflict(campaign.id) from error
        return int(resp["Attributes"]["version"])

    def get_definition(self, campaign_id: str) -> StoredCampaign | None:
        resp = self._table.get_item(
            Key={"campaign_id": campaign_id, "sk": DEF}, ConsistentRead=True
        )
        item = resp.get("Item")
        return _stored(item) if item else None

    def list_definitions(self) -> list[StoredCampaign]:
        """Every stored campaign (a filtered scan: the CLI's and the API's, not a hot path)."""
        from boto3.dynamodb.conditions import Attr

        items = _items(self._table.scan, FilterExpression=Attr("sk").eq(DEF))
        return sorted(map(_stored, items), key=lambda s: s.campaign.id)

    def set_status(
        self, campaign_id: str, status: str, now: datetime, expected: set[str] | None = None
    ) -> bool:
        """Set the authoritative status; with ``expected``, only from one of those."""
        names = {"#s": "status", "#ua": "updated_at"}
        values: dict[str, Any] = {":s": status, ":ua": iso(now)}
        condition = "attribute_exists(sk)"
        if expected:
            keys = [f":e{i}" for i in range(len(expected))]
            values.update(dict(zip(keys, sorted(expected), strict=True)))
            condition += f" AND #s IN ({', '.join(keys)})"
        try:
            self._table.update_item(
                Key={"campaign_id": campaign_id, "sk": DEF},
                UpdateExpression="SET #s = :s, #ua = :ua",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._conditional:
            return False
        return True

    def get_state(
        self, campaign_id: str, occurrence: str
    ) -> tuple[StoredCampaign | None, dict[str, Any] | None]:
        """The definition and one occurrence, in one BatchGetItem."""
        keys = [
            {"campaign_id": campaign_id, "sk": DEF},
            {"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"},
        ]
        items = _batch_get(self._dynamodb, self._name, keys, self._sleep, ConsistentRead=True)
        by_sk = {str(i["sk"]): i for i in items}
        stored = by_sk.get(DEF)
        occ = by_sk.get(f"{OCC}{occurrence}")
        return (_stored(stored) if stored else None, _occurrence(occ) if occ else None)

    # occurrences -----------------------------------------------------------------------
    def start_occurrence(
        self,
        campaign_id: str,
        occurrence: str,
        scheduled_time: datetime,
        now: datetime,
        execution: str | None = None,
        version: int | None = None,
    ) -> bool:
        """Create the occurrence as running, with the execution that runs it and the
        definition's version; False if it exists (a retry of that execution, or a
        duplicated delivery). With ``version``, in one TransactWriteItems with an update of
        the definition, on condition that it is still that version, adding one to its
        ``occurrences_started``: a write of the definition in between (it was read to start
        this one) is :class:`DefinitionConflict`, and a write that read the definition
        before this start, and found no occurrence unfinished, is refused
        (:meth:`put_definition`'s ``started``). Either the occurrence runs the definition
        it read, or the writer sees the occurrence."""
        item = {
            "campaign_id": campaign_id,
            "sk": f"{OCC}{occurrence}",
            "status": "running",
            "scheduled_time": iso(scheduled_time),
            "started_at": iso(now),
            **({"execution": execution} if execution else {}),
            **({"definition_version": version} if version is not None else {}),
            **{c: 0 for c in COUNTERS},
        }
        new = "attribute_not_exists(sk)"
        if version is None:
            try:
                self._table.put_item(Item=item, ConditionExpression=new)
            except self._conditional:
                return False
            return True
        client = self._table.meta.client
        counted = {
            "TableName": self._name,
            "Key": {"campaign_id": campaign_id, "sk": DEF},
            "UpdateExpression": "ADD #n :one",
            "ConditionExpression": "#v = :version",
            "ExpressionAttributeNames": {"#n": STARTED, "#v": "version"},
            "ExpressionAttributeValues": {":one": 1, ":version": version},
        }
        try:
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._name, "Item": item, "ConditionExpression": new}},
                    {"Update": counted},
                ]
            )
        except client.exceptions.TransactionCanceledException as error:
            reasons = [str(r.get("Code")) for r in error.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False  # the occurrence exists
            if reasons[1:2] in (["ConditionalCheckFailed"], ["TransactionConflict"]):
                raise DefinitionConflict(campaign_id) from error
            raise
        return True

    def get_occurrence(self, campaign_id: str, occurrence: str) -> dict[str, Any] | None:
        resp = self._table.get_item(
            Key={"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"}, ConsistentRead=True
        )
        item = resp.get("Item")
        return _occurrence(item) if item else None

    def list_occurrences(self, campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's occurrences, read consistently: one started just before the
        definition was read is listed (what a write changing the experiment asks)."""
        from boto3.dynamodb.conditions import Key

        cond = Key("campaign_id").eq(campaign_id) & Key("sk").begins_with(OCC)
        items = _items(self._table.query, KeyConditionExpression=cond, ConsistentRead=True)
        return [_occurrence(i) for i in items]

    def first_occurrence(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign's first occurrence (None: it never ran), read consistently: what a
        write of its schedule asks just after the schedule fired."""
        from boto3.dynamodb.conditions import Key

        cond = Key("campaign_id").eq(campaign_id) & Key("sk").begins_with(OCC)
        resp = self._table.query(KeyConditionExpression=cond, ConsistentRead=True, Limit=1)
        items = resp.get("Items") or []
        return _occurrence(items[0]) if items else None

    def add_counts(
        self,
        campaign_id: str,
        occurrence: str,
        counts: Mapping[str, int],
        once: str | None = None,
    ) -> dict[str, int]:
        """ADD a batch's counts (one UpdateItem); return the occurrence's new totals. With
        ``once`` (a freeze's segment, say), a retry that already added them adds nothing."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            occ = self.get_occurrence(campaign_id, occurrence) or {}
            return {c: int(occ.get(c, 0)) for c in COUNTERS}
        names = {f"#c{i}": k for i, k in enumerate(counts)}
        values: dict[str, Any] = {f":c{i}": v for i, v in enumerate(counts.values())}
        expression = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
        condition: dict[str, Any] = {}
        if once is not None:
            names["#once"] = "added"
            values.update({":once": {once}, ":token": once})
            expression += ", #once :once"
            condition = {"ConditionExpression": "NOT contains(#once, :token)"}
        try:
            resp = self._table.update_item(
                Key={"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **condition,
            )
        except self._conditional:
            occ = self.get_occurrence(campaign_id, occurrence) or {}
            return {c: int(occ.get(c, 0)) for c in COUNTERS}
        new = from_dynamo(resp["Attributes"])
        return {c: int(new.get(c, 0)) for c in COUNTERS}

    def add_batch_counts(
        self,
        campaign_id: str,
        occurrence: str,
        batch: str,
        counts: Mapping[str, int],
        token: str,
        now: datetime,
    ) -> bool:
        """ADD a send batch's counts once per ``batch`` (its chunk key): one TransactWriteItems
        of the batch's marker item (put on condition that it does not exist, with ``token``,
        the invocation's) and the counters' update. True: this invocation added them (the
        call tried again in place after a 5xx or a timeout that took effect finds its own
        token); False: an earlier invocation of the batch did, and nothing is added. A
        transaction cancelled by another write to the occurrence at the same moment
        (TransactionConflict) is tried again."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return True
        digest = hashlib.sha256(batch.encode()).hexdigest()[:32]
        marker = {
            "campaign_id": campaign_id,
            "sk": f"{CNT}{occurrence}#{digest}",
            "batch": batch,
            "token": token,
            "counts": counts,
            MARKER_TTL: epoch_seconds(now + timedelta(days=MARKER_DAYS)),
        }
        names = {f"#c{i}": k for i, k in enumerate(counts)}
        values = {f":c{i}": v for i, v in enumerate(counts.values())}
        update = {
            "TableName": self._name,
            "Key": {"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"},
            "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        put = {
            "TableName": self._name,
            "Item": marker,
            "ConditionExpression": "attribute_not_exists(sk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        client = self._table.meta.client
        for attempt in range(1, ATTEMPTS + 1):
            try:
                retrying(
                    client.transact_write_items,
                    TransactItems=[{"Put": put}, {"Update": update}],
                    sleep=self._sleep,
                )
            except client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons") or []
                codes = [str(r.get("Code")) for r in reasons]
                if codes[:1] == ["ConditionalCheckFailed"]:  # the marker exists
                    return bool(_plain(reasons[0].get("Item", {}).get("token")) == token)
                if "TransactionConflict" in codes and attempt < ATTEMPTS:
                    self._sleep(0.05 * 2**attempt)
                    continue
                raise
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    def _set(
        self, campaign_id: str, occurrence: str, values: Mapping[str, Any], condition: str
    ) -> bool:
        names = {f"#a{i}": k for i, k in enumerate(values)}
        vals = {f":a{i}": to_dynamo(v) for i, v in enumerate(values.values())}
        if "#st" in condition:
            names["#st"] = "status"
        if ":running" in condition:
            vals[":running"] = "running"
        try:
            self._table.update_item(
                Key={"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"},
                UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values))),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=vals,
            )
        except self._conditional:
            return False
        return True

    def stop_occurrence(
        self, campaign_id: str, occurrence: str, reason: str, now: datetime, status: str = "stopped"
    ) -> bool:
        """Stop a running occurrence (the circuit breaker, a cancel); False if not running."""
        return self._set(
            campaign_id,
            occurrence,
            {"status": status, "stop_reason": reason, "stopped_at": iso(now)},
            "#st = :running",
        )

    def set_winner(
        self, campaign_id: str, occurrence: str, winner: str, reason: str, *, decided: bool
    ) -> bool:
        """Record the winner once (``winner_decided`` false: the test found none and
        ``winner`` is the first variant, which the rest get); False if there is no such
        occurrence or a winner is already recorded (a racing look's stands)."""
        return self._set(
            campaign_id,
            occurrence,
            {"winner": winner, "winner_reason": reason, "winner_decided": decided},
            "attribute_exists(sk) AND attribute_not_exists(winner)",
        )

    def record_look(
        self,
        campaign_id: str,
        occurrence: str,
        number: int,
        look: Mapping[str, Any],
        next_look_at: datetime | None,
        winner: str | None = None,
        reason: str | None = None,
        *,
        decided: bool | None = None,
    ) -> bool:
        """Append look ``number`` (1-based) to the occurrence's ``looks``, with the next
        look's time (None: no further look) or the final ``winner`` (and whether the test
        ``decided``: :meth:`set_winner`), in one UpdateItem; False if the winner is already
        chosen or look ``number`` is already recorded (a retried or racing look: the first
        one written stands)."""
        if winner is not None and decided is None:
            raise ValueError("a final look's winner needs decided (did the test choose it?)")
        names = {"#looks": "looks", "#next": "next_look_at", "#winner": "winner"}
        values: dict[str, Any] = {":look": [to_dynamo(dict(look))], ":empty": []}
        sets = ["#looks = list_append(if_not_exists(#looks, :empty), :look)"]
        removes: list[str] = []
        if next_look_at is None:
            removes.append("#next")
        else:
            sets.append("#next = :next")
            values[":next"] = iso(next_look_at)
        if winner is not None:
            names |= {"#reason": "winner_reason", "#decided": "winner_decided"}
            sets += ["#winner = :winner", "#reason = :reason", "#decided = :decided"]
            values.update({":winner": winner, ":reason": reason or "", ":decided": decided})
        if number == 1:
            condition = "attribute_exists(sk) AND attribute_not_exists(#looks)"
        else:
            condition = "attribute_exists(sk) AND size(#looks) = :before"
            values[":before"] = number - 1
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            self._table.update_item(
                Key={"campaign_id": campaign_id, "sk": f"{OCC}{occurrence}"},
                UpdateExpression=expression,
                ConditionExpression=condition + " AND attribute_not_exists(#winner)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._conditional:
            return False
        return True

    def complete_occurrence(self, campaign_id: str, occurrence: str, now: datetime) -> bool:
        """Done, unless it was stopped or cancelled (then it keeps that status)."""
        done = self._set(
            campaign_id, occurrence, {"status": "done", "completed_at": iso(now)}, "#st = :running"
        )
        if not done:
            self._set(
                campaign_id,
                occurrence,
                {"completed_at": iso(now)},
                "attribute_exists(sk) AND #st <> :running",
            )
        return done


class CampaignEvents:
    """``campaign.completed`` onto Kizuna's bus (PutEvents, failed entries retried)."""

    def __init__(self, client: Any, bus_name: str, source: str, attempts: int = 3) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._attempts = attempts

    def publish(self, event: CampaignEvent) -> bool:
        for attempt in range(self._attempts):
            resp = self._client.put_events(Entries=[event.to_entry(self._bus, self._source)])
            if not resp.get("FailedEntryCount"):
                return True
            time.sleep(min(0.05 * 2**attempt, 0.5))
        return False


__all__ = [
    "COUNTERS",
    "CampaignEvents",
    "CampaignStore",
    "DefinitionConflict",
    "StoredCampaign",
]
