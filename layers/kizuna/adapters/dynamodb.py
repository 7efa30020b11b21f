"""All DynamoDB access: customers, activity, products and snapshots. Nothing else in Kizuna
talks to the tables.

This module (de)serialises and builds the tables' keys, nothing more: it imports domain
models to build, never domain logic, and never reads the clock (callers pass ``now``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import ValidationError
from pydantic.config import ExtraValues

from kizuna.adapters.retry import ATTEMPTS, retrying
from kizuna.delivery.coupons import (
    COUPON_INDEX_PREFIX,
    COUPON_SHARDS,
    COUPON_SK,
    ISSUED,
    KEEP_AFTER_EXPIRY_DAYS,
    REDEEMED,
    IssuedCoupon,
    Redemption,
    coupon_shard,
)
from kizuna.delivery.dm_rows import DM_DAY_PREFIX, DM_ROW_PREFIX, DmRow
from kizuna.delivery.ledger import (
    CARD_SK,
    CLAIM_TOKEN,
    CLAIMED_BY,
    DEFERRED,
    DISPATCHED_AT,
    FAILED,
    NOT_DISPATCHED,
    SENDING,
    SENDING_INDEX,
    SENDING_PK,
    SENDING_SHARDS,
    SENDING_SK,
    sending_keys,
)
from kizuna.domain.activity import ActivityItem, anniversary_partition, lots_partition, superseded
from kizuna.domain.customer import (
    LINE_USER_HASH_ATTRIBUTE,
    LINE_USER_INDEX,
    PHONE_HASH_ATTRIBUTE,
    PHONE_INDEX,
    Customer,
    Customers,
    UnreadableCustomer,
)
from kizuna.domain.privacy import ERASED_PREFIX, ERASED_SK, ERASURES_PK, erased_key
from kizuna.domain.shards import INDEX_SHARDS, LOT_SHARDS
from kizuna.domain.timestamps import epoch_seconds, iso, parse_time
from kizuna.ports import (
    Claim,
    Claimed,
    Contacted,
    ScannedRow,
    ScanPage,
    VersionConflict,
    Watermark,
)
from kizuna.programs.journeys import JourneyState
from kizuna.programs.members import (
    COHORT_PK,
    MEMBER_SK,
    Child,
    Join,
    Member,
)
from kizuna.programs.winners import ARM_PREFIX, WINNER_PK, WinnerDecision, winner_key
from kizuna.runtime.observability import logger

BATCH_GET_LIMIT = 100
# The activity table's index of ledger entries by program (or campaign) and time
# (``gsi1pk = PROGRAM#<id>``, ``gsi1sk = <at>#<customer>``; infra: names.ACTIVITY_GSI1).
LEDGER_INDEX = "gsi1"
# The activity table's partitions that belong to no customer (every other pk is a customer
# id). Each contains '#', which the customer id grammar (kizuna.events.inbound) forbids, so
# no customer id can name, export or erase them.
# A transactional message's idempotency key, bound to what was asked with it (hashes only,
# no personal data): pk ``IDEMPOTENCY#<execution>``.
IDEMPOTENCY_PK = "IDEMPOTENCY#"
IDEMPOTENCY_SK = "REQUEST"
# A program's decisions (a split's winner): pk ``PROGRAM#<program>``.
INTERNAL_PARTITIONS = (COHORT_PK, ERASED_PREFIX, ERASURES_PK, IDEMPOTENCY_PK, WINNER_PK)


def to_dynamo(value: Any) -> Any:
    """Python values as DynamoDB accepts them: Decimal numbers, ISO strings, no None."""
    if isinstance(value, dict):
        return {str(k): to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, int):
        return Decimal(value)
    return value


def from_dynamo(value: Any) -> Any:
    """DynamoDB numbers back as int (whole) or float; everything else as is."""
    if isinstance(value, dict):
        return {str(k): from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def customer_to_item(customer: Customer) -> dict[str, Any]:
    item: dict[str, Any] = to_dynamo(customer.model_dump())
    return item


# How a stored item is read back (``model_validate(item, extra=STORED_EXTRA)``): a key this
# version does not know, at any depth (a top-level attribute, or a new key in a consent
# record, a device, an order fact, an address...), was written by a later version (a deploy
# rolling out, a rollback) and is left out instead of failing every read; the next save
# writes the item without it. Per call, so the same models stay strict (``extra="forbid"``)
# where they validate input (events, API bodies, imports). Only unknown *keys* are left
# out: a known field holding a value this version refuses (a value a later version allows,
# a new type, a hand edit) fails that customer's read alone (:func:`customers_of`).
STORED_EXTRA: ExtraValues = "ignore"


def customer_from_item(item: dict[str, Any]) -> Customer:
    """The customer an item holds; keys a later version added, at any depth, left out
    (:data:`STORED_EXTRA`); :class:`UnreadableCustomer` for a value this version refuses."""
    try:
        return Customer.model_validate(item, extra=STORED_EXTRA)
    except ValidationError as exc:
        fields = tuple(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        # the refused fields' names, never their values (they may be personal)
        logger.warning(
            "a customer item this version cannot read",
            customer_id=str(item.get("customer_id", "")),
            fields=list(fields),
        )
        raise UnreadableCustomer(str(item.get("customer_id", "")), fields) from None


def customers_of(items: Iterable[dict[str, Any]], *, unreadable_ok: bool = True) -> Customers:
    """The customers ``items`` hold, by id; an item this version cannot read is named in
    ``unreadable`` (``unreadable_ok``) or raises :class:`UnreadableCustomer`: one customer's
    item never fails the read of the others it was read with."""
    found: dict[str, Customer] = {}
    refused: dict[str, tuple[str, ...]] = {}
    for item in items:
        try:
            customer = customer_from_item(item)
        except UnreadableCustomer as exc:
            if not unreadable_ok:
                raise
            refused[exc.customer_id] = exc.fields
            continue
        found[customer.customer_id] = customer
    return Customers(found, refused)


def readable_customers(items: Iterable[dict[str, Any]]) -> Iterator[Customer]:
    """The customers of a scan, each item this version cannot read left out (logged)."""
    for item in items:
        try:
            yield customer_from_item(item)
        except UnreadableCustomer:
            continue


# program decisions the program/time index (``gsi1``) carries beside the message ledger:
# what a program's figures count (entries, holdouts, conversions), not the skips
INDEXED_DECISIONS = frozenset({("ENTRY", "entered"), ("ENTRY", "holdout"), ("CONV", "converted")})


def program_index_keys(program: str, at: str, customer_id: str) -> dict[str, str]:
    """``gsi1``: a program's ledger rows by time (messages, entries, conversions)."""
    return {"gsi1pk": f"PROGRAM#{program}", "gsi1sk": f"{at}#{customer_id}"}


def activity_to_item(item: ActivityItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pk": item.customer_id,
        "sk": item.sk,
        "kind": item.kind,
        "at": iso(item.at),
        **to_dynamo(item.data),
    }
    program = item.data.get("program")
    if program and (item.kind, item.data.get("decision")) in INDEXED_DECISIONS:
        out.update(program_index_keys(str(program), out["at"], item.customer_id))
    if item.expires_at is not None:
        out["expires_at"] = Decimal(item.expires_at)
    return out


# the activity items a customer's settled history is rebuilt from (kizuna.domain.ingest)
FACT_KINDS = ("ORDER", "CANCEL", "REFUND", "POINTS")
_ACTIVITY_KEYS = {"pk", "sk", "kind", "at", "expires_at", "gsi1pk", "gsi1sk"}


def activity_from_item(item: dict[str, Any]) -> ActivityItem:
    """The inverse of :func:`activity_to_item` (numbers back as Decimal)."""
    return ActivityItem(
        customer_id=str(item["pk"]),
        kind=str(item["kind"]),
        at=parse_time(item["at"]),
        key=str(item["sk"]).split("#", 2)[2],
        data={k: v for k, v in item.items() if k not in _ACTIVITY_KEYS},
        expires_at=int(item["expires_at"]) if "expires_at" in item else None,
    )


DM_ROW_DAYS = 30  # a collected direct-mail row outlives its day's print file by a month


def _items(
    call: Any, sleep: Callable[[float], None] = time.sleep, **kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Every item of a paginated Scan or Query (``call`` is ``table.scan``/``table.query``),
    each page read again after a transient failure (a read: idempotent)."""
    while True:
        resp = retrying(call, sleep=sleep, **kwargs)
        yield from resp.get("Items", [])
        if "LastEvaluatedKey" not in resp:
            return
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _batch_get(
    dynamodb: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
    **options: Any,
) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100, retrying unprocessed keys with backoff. ``options``
    go with the keys (``ConsistentRead``, ``ProjectionExpression``)."""
    out: list[dict[str, Any]] = []
    for chunk in _chunks(list(keys), BATCH_GET_LIMIT):
        request = {table: {"Keys": list(chunk), **options}}
        out += _batch_get_request(dynamodb, request, sleep).get(table, [])
    return out


def _batch_get_request(
    dynamodb: Any, request: dict[str, Any], sleep: Callable[[float], None] = time.sleep
) -> dict[str, list[dict[str, Any]]]:
    """One BatchGetItem request (any tables, at most 100 keys), its unprocessed keys retried
    with backoff: every table's items."""
    out: dict[str, list[dict[str, Any]]] = {}
    attempt = 0
    while request:
        resp = retrying(dynamodb.batch_get_item, sleep=sleep, RequestItems=request)
        for table, items in resp["Responses"].items():
            out.setdefault(table, []).extend(items)
        request = resp.get("UnprocessedKeys") or {}
        attempt += 1
        if request:
            sleep(min(0.05 * 2**attempt, 1.0))
    return out


def _member_item(pk: str, member: Member, expires_at: int) -> dict[str, Any]:
    return {
        "pk": pk,
        "sk": member.sk,
        "kind": "COHORT",
        "customer": member.customer_id,
        "entry": member.entry,
        "entered_at": iso(member.entered_at),
        "arms": dict(member.arms),
        "group": member.group,
        "expires_at": expires_at,
        **({"trigger": to_dynamo(dict(member.trigger))} if member.trigger else {}),
    }


def _child_item(pk: str, child: Child, expires_at: int) -> dict[str, Any]:
    return {
        "pk": pk,
        "sk": child.sk,
        "kind": "COHORT",
        "group": child.group,
        "parent": child.parent,
        "origin": child.origin,
        "step": child.step,
        "key": child.key,
        "due": iso(child.at),
        "expires_at": expires_at,
    }


def _member_of(item: dict[str, Any]) -> Member:
    return Member(
        customer_id=str(item["customer"]),
        entry=str(item["entry"]),
        entered_at=parse_time(str(item["entered_at"])),
        arms={str(k): str(v) for k, v in (item.get("arms") or {}).items()},
        group=str(item["group"]),
        trigger=from_dynamo(item.get("trigger") or {}),
    )


def _message_key(customer_id: str, execution: str, step: str) -> dict[str, str]:
    return {"pk": customer_id, "sk": f"MSG#{execution}#{step}"}


def ledger_item(
    customer_id: str, execution: str, step: str, data: dict[str, Any]
) -> dict[str, Any]:
    """A message-ledger entry as stored: keyed by customer, execution and step; indexed by
    program and time (``gsi1``) once settled, when the entry names them. A ``sending`` claim
    is in the sparse ``sending`` index instead, until its outcome replaces it: its dispatch
    mark then rewrites no ``gsi1`` entry, and the record puts the one it will keep (two
    index writes a message fewer than indexing the claim)."""
    item: dict[str, Any] = {
        **_message_key(customer_id, execution, step),
        "kind": "MSG",
        **to_dynamo(data),
    }
    if data.get("status") == SENDING:
        if data.get("at"):
            item.update(sending_keys(customer_id, str(data["at"])))
    elif data.get("program") and data.get("at"):
        item.update(program_index_keys(str(data["program"]), str(data["at"]), customer_id))
    return item


def _step_key(customer_id: str, entry: str, step: str) -> dict[str, str]:
    return {"pk": customer_id, "sk": f"STEP#{entry}#{step}"}


def _step_item(customer_id: str, entry: str, step: str, data: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_step_key(customer_id, entry, step),
        "kind": "STEP",
        **to_dynamo({k: v for k, v in data.items() if v is not None}),
    }
    decision = str(data.get("decision") or "")
    if decision.startswith(ARM_PREFIX) and data.get("program") and data.get("at"):
        item.update(program_index_keys(str(data["program"]), str(data["at"]), customer_id))
    return item


def coupon_item(coupon: IssuedCoupon) -> dict[str, Any]:
    """An issued coupon as stored (``COUPON#<code>`` in the customer's partition), indexed
    by expiry in ``gsi1`` while issued (the sweep's reminders), kept
    :data:`KEEP_AFTER_EXPIRY_DAYS` after it expired (``expires_at`` is the table's TTL, in
    epoch seconds; the coupon's own expiry is ``valid_until``)."""
    valid_until = iso(coupon.expires_at)
    return {
        "pk": coupon.customer_id,
        "sk": f"{COUPON_SK}{coupon.code}",
        "kind": "COUPON",
        **to_dynamo(coupon.model_dump(exclude={"customer_id", "expires_at"})),
        "valid_until": valid_until,
        "status": ISSUED,
        "gsi1pk": coupon_shard(coupon.customer_id),
        "gsi1sk": f"{valid_until}#{coupon.customer_id}",
        "expires_at": epoch_seconds(coupon.expires_at + timedelta(days=KEEP_AFTER_EXPIRY_DAYS)),
    }


BATCH_WRITE_LIMIT = 25
TRANSACT_LIMIT = 100
CONTACT_SK = "CONTACT"  # activity item: a customer's recent sends (``sent``: key -> ISO time)
CONTACT_VERSION = "v"  # the CONTACT item's version: raised by every send noted there
# A deferred entry can be claimed again (its deferral ended); so can a sending entry of the
# same owner that nobody dispatched (a retry: kizuna.delivery.ledger.claimable); nothing else.
_CLAIM_CONDITION: dict[str, Any] = {
    "ConditionExpression": "attribute_not_exists(sk) OR #s = :deferred",
    "ExpressionAttributeNames": {"#s": "status"},
    "ExpressionAttributeValues": {":deferred": DEFERRED},
}
WRITE_ATTEMPTS = ATTEMPTS  # an idempotent call failing transiently (kizuna.adapters.retry), in all


def _claim_condition(claim: Claim) -> dict[str, Any]:
    if claim.owner is None:
        return _CLAIM_CONDITION
    return {  # kizuna.delivery.ledger.claimable
        "ConditionExpression": "attribute_not_exists(sk) OR #s = :deferred OR "
        "((#s = :sending OR (#s = :failed AND #r = :not_dispatched)) "
        "AND #by = :by AND attribute_not_exists(#d))",
        "ExpressionAttributeNames": {
            "#s": "status",
            "#r": "reason",
            "#by": CLAIMED_BY,
            "#d": DISPATCHED_AT,
        },
        "ExpressionAttributeValues": {
            ":deferred": DEFERRED,
            ":sending": SENDING,
            ":failed": FAILED,
            ":not_dispatched": NOT_DISPATCHED,
            ":by": claim.owner,
        },
    }


def _claim_item(execution: str, step: str, claim: Claim) -> dict[str, Any]:
    item = ledger_item(claim.customer_id, claim.execution or execution, step, claim.data)
    if claim.owner is not None:
        item[CLAIMED_BY] = claim.owner
    if claim.token is not None:
        item[CLAIM_TOKEN] = claim.token
    return item


def _dispatch_update(
    customer_id: str, execution: str, step: str, token: str, at: str
) -> dict[str, Any]:
    """Mark an entry dispatched, on condition that ``token``'s claim still holds it: the
    same write again (a retry of one that took effect) succeeds again."""
    return {
        "Key": _message_key(customer_id, execution, step),
        "UpdateExpression": "SET #d = :at",
        "ConditionExpression": "#s = :sending AND #t = :token",
        "ExpressionAttributeNames": {"#d": DISPATCHED_AT, "#s": "status", "#t": CLAIM_TOKEN},
        "ExpressionAttributeValues": {":at": at, ":sending": SENDING, ":token": token},
    }


def _contact_update(claim: Claim, key: str) -> dict[str, Any]:
    """The CONTACT item's update for a send: ``sent.<key> = sent_at``, stale keys removed,
    the version ``v`` raised; a new map when the read found none. On condition that the item
    is as the send was decided on (the version read; no ``v`` in an item written before
    versions; no map when there was none), or that it already notes this very send (the
    same key and time: a retry of this write that took effect). A version only ever grows
    (``ADD``), so a retry that raises it again only makes other readers read again."""
    names: dict[str, str] = {"#sent": "sent", "#k": key, "#v": CONTACT_VERSION}
    values: dict[str, Any] = {":at": claim.sent_at, ":one": 1}
    noted = "#sent.#k = :at"
    if not claim.contact_exists:
        names["#kind"] = "kind"
        values.update({":m": {key: claim.sent_at}, ":kind": CONTACT_SK})
        return {
            "Key": {"pk": claim.customer_id, "sk": CONTACT_SK},
            # the map the retry finds is the one it wrote: kept (if_not_exists)
            "UpdateExpression": "SET #sent = if_not_exists(#sent, :m), #kind = :kind ADD #v :one",
            "ConditionExpression": f"attribute_not_exists(#sent) OR {noted}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    if claim.contact_version:
        values[":v"] = claim.contact_version
        read = "#v = :v"
    else:
        read = "(attribute_exists(#sent) AND attribute_not_exists(#v))"
    expression = "SET #sent.#k = :at"
    if claim.stale:
        names.update({f"#o{i}": k for i, k in enumerate(claim.stale)})
        expression += " REMOVE " + ", ".join(f"#sent.#o{i}" for i in range(len(claim.stale)))
    return {
        "Key": {"pk": claim.customer_id, "sk": CONTACT_SK},
        "UpdateExpression": expression + " ADD #v :one",
        "ConditionExpression": f"{read} OR {noted}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _failed_conditions(
    exc: Any, actions: Sequence[dict[str, Any]], owners: Sequence[int]
) -> dict[int, bool] | None:
    """The claims a cancelled claim transaction failed on, by their index (``owners``: each
    action's claim): True for a duplicate (its ledger Put's condition failed), False for a
    conflict (only its CONTACT update's did). None when anything else cancelled it (a
    conflicting transaction, throttling) or no condition failed."""
    reasons = [str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []]
    failed: dict[int, bool] = {}
    for i, code in enumerate(reasons):
        if code == "ConditionalCheckFailed":
            failed[owners[i]] = failed.get(owners[i], False) or "Put" in actions[i]
    other = any(
        code not in ("None", "ConditionalCheckFailed") and owners[i] not in failed
        for i, code in enumerate(reasons)
    )
    return None if other or not failed else failed


# A sweep's watermark: an activity item in a partition of its own ('#' is in no customer id)
SWEEP_WATERMARK_PK = "SWEEP#"
SWEEP_WATERMARK_SK = "WATERMARK"


def sweep_watermark_key(kind: str) -> dict[str, str]:
    return {"pk": f"{SWEEP_WATERMARK_PK}{kind}", "sk": SWEEP_WATERMARK_SK}


class DynamoStore:
    """Customers and activity tables through a boto3 DynamoDB resource."""

    def __init__(
        self,
        dynamodb: Any,
        customers_table: str,
        activity_table: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self._customers = dynamodb.Table(customers_table)
        self._activity = dynamodb.Table(activity_table)
        self._customers_name = customers_table
        self._sleep = sleep

    def _batch_get(
        self, table: str, keys: Sequence[dict[str, Any]], **options: Any
    ) -> list[dict[str, Any]]:
        return _batch_get(self._dynamodb, table, keys, self._sleep, **options)

    # customers -----------------------------------------------------------------------
    def get_customer(self, customer_id: str) -> Customer | None:
        resp = self._retrying(
            self._customers.get_item, Key={"customer_id": customer_id}, ConsistentRead=True
        )
        item = resp.get("Item")
        return customer_from_item(item) if item else None

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> Customers:
        """Customers by id, strongly consistent. An item this version cannot read raises
        :class:`UnreadableCustomer`, or (``unreadable_ok``: a batch that goes on with the
        others) is named in the answer's ``unreadable``."""
        ids = list(dict.fromkeys(customer_ids))
        if len(ids) == 1:
            resp = self._retrying(
                self._customers.get_item, Key={"customer_id": ids[0]}, ConsistentRead=True
            )
            item = resp.get("Item")
            return customers_of([item] if item else [], unreadable_ok=unreadable_ok)
        keys = [{"customer_id": cid} for cid in ids]
        items = self._batch_get(self._customers_name, keys, ConsistentRead=True)
        return customers_of(items, unreadable_ok=unreadable_ok)

    def read_entries(
        self, customer_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], JourneyState]]:
        """Customers and their ``JOURNEY#<program>`` items (``keys``: customer, program) in
        shared BatchGetItem calls of at most 100 keys over both tables (evaluate's read)."""
        wanted: list[tuple[str, dict[str, str]]] = [
            (self._customers_name, {"customer_id": cid}) for cid in dict.fromkeys(customer_ids)
        ]
        wanted += [
            (self._activity.name, {"pk": cid, "sk": f"JOURNEY#{pid}"})
            for cid, pid in dict.fromkeys(keys)
        ]
        found = self._read_mixed(wanted)
        customers = customers_of(found.get(self._customers_name, []))
        states = map(JourneyState.model_validate, found.get(self._activity.name, []))
        return customers, {(j.customer_id, j.program): j for j in states}

    def _read_mixed(self, wanted: Sequence[tuple[str, dict[str, str]]]) -> dict[str, list[Any]]:
        """Strongly consistent reads of (table, key) pairs over any tables, in shared
        BatchGetItem calls of at most 100 keys: the items found, by table."""
        out: dict[str, list[Any]] = {}
        for chunk in _chunks(list(wanted), BATCH_GET_LIMIT):
            request: dict[str, Any] = {}
            for table, key in chunk:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            for table, items in _batch_get_request(self._dynamodb, request, self._sleep).items():
                out.setdefault(table, []).extend(items)
        return out

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        """Put ``customer`` at ``expected_version + 1`` on condition that the stored item is
        at ``expected_version`` (or absent, for 0); :class:`VersionConflict` otherwise.

        A transient failure is retried in place: when the failed attempt had taken effect,
        the retry finds the new version and raises :class:`VersionConflict`, and the caller
        re-reads and re-applies (ingest: the event is already processed; scoring: nothing
        is left to change), so the write is never made twice over another one."""
        saved = customer.model_copy(update={"version": expected_version + 1})
        condition: dict[str, Any]
        if expected_version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(customer_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": expected_version},
            }
        try:
            self._retrying(self._customers.put_item, Item=customer_to_item(saved), **condition)
        except self._customers.meta.client.exceptions.ConditionalCheckFailedException as exc:
            raise VersionConflict(customer.customer_id) from exc
        return saved

    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]:
        pages = _items(
            self._customers.scan, self._sleep, Segment=segment, TotalSegments=total_segments
        )
        yield from readable_customers(pages)

    def scan_order_facts(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]:
        """Every customer of one scan segment, order facts (recent and settled) only: what
        the scoring job's uniform sample reads (a projection lowers the bytes sent and
        parsed, not the read units: those count the whole item)."""
        pages = _items(
            self._customers.scan,
            self._sleep,
            Segment=segment,
            TotalSegments=total_segments,
            ProjectionExpression="#c, #o, #h",
            ExpressionAttributeNames={"#c": "customer_id", "#o": "orders", "#h": "history"},
        )
        yield from readable_customers(pages)

    # sparse sweep indexes ----------------------------------------------------------------
    def query_window(
        self, index: str, attribute: str, shard: str, start: str, end: str
    ) -> list[str]:
        from boto3.dynamodb.conditions import Key

        cond = Key("gsi_shard").eq(shard) & Key(attribute).between(start, end)
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": cond,
            "ProjectionExpression": "customer_id, #a",
            "ExpressionAttributeNames": {"#a": attribute},
        }
        items = _items(self._customers.query, **kwargs)
        return [str(i["customer_id"]) for i in items if i[attribute] < end]

    def sweep_watermark(self, kind: str) -> Watermark | None:
        resp = self._activity.get_item(Key=sweep_watermark_key(kind), ConsistentRead=True)
        item = resp.get("Item")
        if item is None:
            return None
        return Watermark(edge=parse_time(str(item["edge"])), ran_at=parse_time(str(item["ran_at"])))

    def save_sweep_watermark(self, kind: str, mark: Watermark) -> None:
        failed = self._activity.meta.client.exceptions.ConditionalCheckFailedException
        with contextlib.suppress(failed):  # a later run already swept further: keep it
            self._activity.put_item(
                Item={
                    **sweep_watermark_key(kind),
                    "kind": "SWEEP_WATERMARK",
                    "edge": iso(mark.edge),
                    "ran_at": iso(mark.ran_at),
                },
                ConditionExpression="attribute_not_exists(pk) OR #e <= :e",
                ExpressionAttributeNames={"#e": "edge"},
                ExpressionAttributeValues={":e": iso(mark.edge)},
            )

    def customers_by_phone_hash(self, phone_hash: str) -> list[str]:
        from boto3.dynamodb.conditions import Key

        resp = self._customers.query(
            IndexName=PHONE_INDEX, KeyConditionExpression=Key(PHONE_HASH_ATTRIBUTE).eq(phone_hash)
        )
        return [str(i["customer_id"]) for i in resp.get("Items", [])]

    # journeys (activity table, sk = JOURNEY#<program>) -----------------------------------
    def get_journeys(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JourneyState]:
        wanted = [{"pk": cid, "sk": f"JOURNEY#{pid}"} for cid, pid in dict.fromkeys(keys)]
        items = self._batch_get(self._activity.name, wanted, ConsistentRead=True)
        states = map(JourneyState.model_validate, items)
        return {(s.customer_id, s.program): s for s in states}

    def _journey_put(self, state: JourneyState, previous: JourneyState | None) -> dict[str, Any]:
        """The conditional PutItem of a journey state (optimistic: ``rev`` as read)."""
        expected = previous.rev if previous else 0
        item = {
            "pk": state.customer_id,
            "sk": f"JOURNEY#{state.program}",
            "kind": "JOURNEY",
            **to_dynamo(state.model_copy(update={"rev": expected + 1}).model_dump()),
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(sk)"}
            if previous is None
            else {"ConditionExpression": "rev = :r", "ExpressionAttributeValues": {":r": expected}}
        )
        return {"Item": item, **condition}

    def save_journey(self, state: JourneyState, previous: JourneyState | None) -> bool:
        try:
            self._activity.put_item(**self._journey_put(state, previous))
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # cohorts (activity table, pk = COHORT#<cohort>: members and child groups) -----
    def join_cohorts(
        self,
        joins: Sequence[Join],
        rows: Sequence[tuple[int | None, ActivityItem]] = (),
    ) -> set[int]:
        """Each join's journey state (conditional, as :meth:`save_journey`), member item and
        ledger rows (``rows`` tied to the join's index), in TransactWriteItems of at most 100
        items: the indexes of the joins whose journey changed since it was read (their items
        are not written; the others are, in a transaction without them). Rows tied to no
        join (None) go into the last transaction while it has room, the rest after it
        (:meth:`put_activity`): an evaluate batch's writes in one call where they fit."""
        client = self._dynamodb.meta.client
        table = self._activity.name
        tied: dict[int, dict[tuple[str, str], ActivityItem]] = {}
        untied: dict[tuple[str, str], ActivityItem] = {}
        for owner, row in rows:
            key = (row.customer_id, row.sk)
            if owner is None:
                untied[key] = row
            else:
                tied.setdefault(owner, {})[key] = row
        for own in tied.values():
            for key in own:
                untied.pop(key, None)

        def actions_of(n: int) -> list[dict[str, Any]]:
            join = joins[n]
            members = (
                [_member_item(f"{COHORT_PK}{join.cohort}", join.member, join.expires_at)]
                if join.member is not None
                else []  # a holdout: its journey state alone
            )
            return [
                {"Put": {"TableName": table, **self._journey_put(join.state, join.previous)}},
                *({"Put": {"TableName": table, "Item": m}} for m in members),
                *(
                    {"Put": {"TableName": table, "Item": activity_to_item(r)}}
                    for r in tied.get(n, {}).values()
                ),
            ]

        chunks: list[list[int]] = [[]]
        size = 0
        for n in range(len(joins)):
            count = len(actions_of(n))
            if size + count > TRANSACT_LIMIT and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(n)
            size += count
        conflicts: set[int] = set()
        rest = list(untied.values())
        for index, chunk in enumerate(chunks):
            group = chunk
            last = index == len(chunks) - 1
            while group:
                actions: list[dict[str, Any]] = []
                owners: list[int | None] = []
                for n in group:
                    mine = actions_of(n)
                    actions += mine
                    owners += [n] * len(mine)
                extra = rest[: TRANSACT_LIMIT - len(actions)] if last else []
                actions += [
                    {"Put": {"TableName": table, "Item": activity_to_item(r)}} for r in extra
                ]
                try:
                    client.transact_write_items(TransactItems=actions)
                except client.exceptions.TransactionCanceledException as exc:
                    reasons = exc.response.get("CancellationReasons") or []
                    # only a journey state's put has a condition
                    failed = {
                        owner
                        for owner, r in zip(owners, reasons, strict=False)
                        if owner is not None and r.get("Code") == "ConditionalCheckFailed"
                    }
                    if not failed:
                        raise
                    conflicts |= failed
                    group = [n for n in group if n not in failed]
                    continue
                rest = rest[len(extra) :]
                break
        if rest:
            self.put_activity(rest)
        return conflicts

    def cohort_members(self, cohort: str, group: str) -> list[Member]:
        """The members of one group of a cohort (a strongly consistent query of the
        cohort's partition, filtered by group)."""
        from boto3.dynamodb.conditions import Attr, Key

        items = _items(
            self._activity.query,
            KeyConditionExpression=Key("pk").eq(f"{COHORT_PK}{cohort}")
            & Key("sk").begins_with(MEMBER_SK),
            FilterExpression=Attr("group").eq(group),
            ConsistentRead=True,
        )
        return [_member_of(i) for i in items]

    def move_members(
        self, cohort: str, members: Sequence[Member], group: str, expires_at: int
    ) -> None:
        """Put members in another group (BatchWriteItem, 25 per call)."""
        pk = f"{COHORT_PK}{cohort}"
        self._batch_put([_member_item(pk, replace(m, group=group), expires_at) for m in members])

    def put_children(self, cohort: str, children: Sequence[Child], expires_at: int) -> None:
        self._batch_put([_child_item(f"{COHORT_PK}{cohort}", c, expires_at) for c in children])

    def settle_step(
        self,
        cohort: str,
        step: str,
        decisions: Sequence[tuple[str, str, dict[str, Any]]],
        children: Sequence[Child],
        moves: Sequence[tuple[str, Sequence[Member]]],
        expires_at: int,
    ) -> None:
        """What a cohort step did, in two writes (BatchWriteItem, 25 items a call): its
        decisions (as :meth:`record_steps`) and the headers of the child groups it made,
        then every member's move (as :meth:`move_members`, to each group in ``moves``). A
        header is written before its members move, so a retried step finds and starts
        every child its members went to."""
        pk = f"{COHORT_PK}{cohort}"
        self._batch_put(
            [_step_item(cid, entry, step, data) for cid, entry, data in decisions]
            + [_child_item(pk, c, expires_at) for c in children]
        )
        self._batch_put(
            [
                _member_item(pk, replace(m, group=group), expires_at)
                for group, members in moves
                for m in members
            ]
        )

    def cohort_children(self, cohort: str, parent: str, step: str) -> list[Child]:
        """The child groups a step of ``parent`` made (every one, a retried step's too)."""
        return self.read_group(cohort, parent, step)[1]

    def read_group(
        self, cohort: str, group: str, step: str | Sequence[str]
    ) -> tuple[list[Member], list[Child]]:
        """A group's members and the child groups its step (or steps: a fused pair's) made
        already (a retried step's), in one strongly consistent query of the cohort's
        partition. The filter names no key attribute (DynamoDB refuses ``sk`` there): a
        member item has ``customer`` and its ``group``; a child header (``G#<parent>#<origin
        step>#<key>``) has ``parent`` and ``origin``."""
        from boto3.dynamodb.conditions import Attr, Key

        steps = [step] if isinstance(step, str) else list(step)
        member = Attr("customer").exists() & Attr("group").eq(group)
        child = Attr("parent").eq(group) & Attr("origin").is_in(steps)
        items = _items(
            self._activity.query,
            KeyConditionExpression=Key("pk").eq(f"{COHORT_PK}{cohort}"),
            FilterExpression=member | child,
            ConsistentRead=True,
        )
        members: list[Member] = []
        children: list[Child] = []
        for i in items:
            if str(i["sk"]).startswith(MEMBER_SK):
                members.append(_member_of(i))
            else:
                children.append(
                    Child(
                        group=str(i["group"]),
                        parent=str(i["parent"]),
                        origin=str(i["origin"]),
                        step=str(i["step"]),
                        key=str(i["key"]),
                        at=parse_time(str(i["due"])),
                    )
                )
        return members, children

    def cohort_member_items(self, cohort: str, customer_id: str) -> list[dict[str, Any]]:
        """A customer's member items in a cohort, as stored (an access request): a strongly
        consistent query of ``M#<customer>#`` (the ``#`` after the id: no other customer's,
        as no id contains ``#``), the items :meth:`leave_cohort` deletes."""
        return self._member_items(cohort, customer_id)

    def _member_items(
        self, cohort: str, customer_id: str, projection: str | None = None
    ) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"{COHORT_PK}{cohort}")
            & Key("sk").begins_with(f"{MEMBER_SK}{customer_id}#"),
            "ConsistentRead": True,
        }
        if projection:
            query["ProjectionExpression"] = projection
        return list(_items(self._activity.query, **query))

    def leave_cohort(self, cohort: str, customer_id: str) -> int:
        """Delete a customer's member items in a cohort (erasure); how many there were."""
        pk = f"{COHORT_PK}{cohort}"
        items = self._member_items(cohort, customer_id, "pk, sk")
        with self._activity.batch_writer() as batch:
            for item in items:
                batch.delete_item(Key={"pk": pk, "sk": item["sk"]})
        return len(items)

    def _retrying(self, call: Callable[..., Any], **params: Any) -> Any:
        """Run an idempotent call, again after a transient failure (5xx, throttling, a
        timeout: :func:`kizuna.adapters.retry.transient`), with backoff, up to
        :data:`WRITE_ATTEMPTS` times. Idempotent by design: a read; a claim of the same
        owner, a dispatch of the same token and a record are accepted again when the failed
        attempt took effect; a customer's versioned put then conflicts with itself, which
        its caller resolves by re-reading (:meth:`save_customer`)."""
        return retrying(call, sleep=self._sleep, attempts=WRITE_ATTEMPTS, **params)

    def _batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        """BatchWriteItem puts, 25 per call, unprocessed items retried with backoff."""
        for chunk in _chunks(list(items), BATCH_WRITE_LIMIT):
            request: dict[str, Any] = {
                self._activity.name: [{"PutRequest": {"Item": item}} for item in chunk]
            }
            attempt = 0
            while request:
                resp = self._dynamodb.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                attempt += 1
                if request:
                    self._sleep(min(0.05 * 2**attempt, 1.0))

    # message ledger (activity table, sk = MSG#<execution>#<step>) --------------------------
    def claim_message(
        self, customer_id: str, execution: str, step: str, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Claim (execution, step) with no send to note: None if claimed now, else the
        existing entry. (The Send task claims through :meth:`claim_messages`, which notes a
        send in CONTACT in the same write.)"""
        if not self.claim_messages(execution, step, [Claim(customer_id, data)]).duplicates:
            return None
        return self.ledger_entries([customer_id], execution, step).get(customer_id, {})

    def record_message(
        self, customer_id: str, execution: str, step: str, data: dict[str, Any]
    ) -> None:
        """Write the final decision of a send (sent, suppressed, deferred, failed)."""
        self._activity.put_item(Item=ledger_item(customer_id, execution, step, data))

    # campaign batches: reads, claims and records for hundreds of recipients at once -------
    def read_recipients(
        self, customer_ids: Sequence[str]
    ) -> tuple[dict[str, Customer], dict[str, Contacted]]:
        """Customers and their CONTACT items in shared BatchGetItem calls (both tables in
        one call, at most 100 keys)."""
        customers, contacts, _ = self.read_send_state(customer_ids, None)
        return customers, contacts

    def read_send_state(
        self, customer_ids: Sequence[str], program: str | None
    ) -> tuple[dict[str, Customer], dict[str, Contacted], dict[str, JourneyState]]:
        """What a send decides on, in shared BatchGetItem calls of at most 100 keys: the
        customers, their CONTACT items (``sent`` map and version) and (``program``) their
        journey states in that program, by customer."""
        ids = list(dict.fromkeys(customer_ids))
        wanted: list[tuple[str, dict[str, str]]] = []
        for cid in ids:
            wanted.append((self._customers_name, {"customer_id": cid}))
            wanted.append((self._activity.name, {"pk": cid, "sk": CONTACT_SK}))
            if program is not None:
                wanted.append((self._activity.name, {"pk": cid, "sk": f"JOURNEY#{program}"}))
        found = self._read_mixed(wanted)
        customers = customers_of(found.get(self._customers_name, []))
        contacts: dict[str, Contacted] = {}
        journeys: dict[str, JourneyState] = {}
        for item in found.get(self._activity.name, []):
            if item["sk"] == CONTACT_SK:
                sent = item.get("sent")
                if sent is None:
                    continue  # no map yet: the first note writes it
                if not isinstance(sent, dict):
                    contacts[str(item["pk"])] = self._repair_contact(item)
                    continue
                contacts[str(item["pk"])] = Contacted(
                    {str(k): str(v) for k, v in sent.items()},
                    int(item.get(CONTACT_VERSION, 0)),
                )
            else:
                state = JourneyState.model_validate(item)
                journeys[state.customer_id] = state
        return customers, contacts, journeys

    def _repair_contact(self, item: Mapping[str, Any]) -> Contacted:
        """A CONTACT item whose ``sent`` is not a map (no version of Kizuna writes one): a
        send's note (``SET sent.<key>``) could never be written to it, so every send to the
        customer would conflict and be deferred for ever. Its ``sent`` becomes an
        empty map (its version raised, on condition it is still not a map), read as such."""
        logger.warning("a CONTACT item without a map of sends: reset")  # no customer id
        try:
            answer = self._retrying(
                self._activity.update_item,
                Key={"pk": item["pk"], "sk": CONTACT_SK},
                UpdateExpression="SET #sent = :empty ADD #v :one",
                ConditionExpression="attribute_exists(#sent) AND NOT attribute_type(#sent, :map)",
                ExpressionAttributeNames={"#sent": "sent", "#v": CONTACT_VERSION},
                ExpressionAttributeValues={":empty": {}, ":one": 1, ":map": "M"},
                ReturnValues="ALL_NEW",
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            # repaired (or noted) by someone else meanwhile: the next read gets it; this
            # one's claim conflicts on the version and is decided again
            return Contacted({}, -1)
        fresh = answer["Attributes"]
        return Contacted({}, int(fresh.get(CONTACT_VERSION, 0)))

    @staticmethod
    def _contact_key(execution: str, claim: Claim) -> str:
        return claim.contact_key or claim.execution or execution

    def _claim_actions(self, execution: str, step: str, claim: Claim) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._activity.name,
                    "Item": _claim_item(execution, step, claim),
                    **_claim_condition(claim),
                }
            }
        ]
        if claim.sent_at is not None:
            key = self._contact_key(execution, claim)
            actions.append(
                {"Update": {"TableName": self._activity.name, **_contact_update(claim, key)}}
            )
        return actions

    def claim_messages(self, execution: str, step: str, claims: Sequence[Claim]) -> Claimed:
        """Claim (customer, execution, step) for each claim, and note each send in the
        customer's CONTACT item, in TransactWriteItems of at most 100 actions (a lone claim
        with no send: one conditional PutItem). A claim whose ledger condition fails is a
        duplicate; one whose CONTACT update fails its condition (the item changed since the
        read: :func:`_contact_update`) is a conflict; neither is written, the rest of the
        group is written without them. Any other cancellation falls back to one claim at a
        time. A claim of ``owner`` is accepted again over its own ``sending`` entry not yet
        dispatched (:func:`kizuna.delivery.ledger.claimable`), so a write that took effect
        before a 5xx, retried, succeeds."""
        claimed = Claimed()
        pending = list({c.key(execution): c for c in claims}.values())
        while pending:
            group, size, later = [], 0, []
            noted: set[str] = set()  # one CONTACT update per item and transaction
            while pending and size + (2 if pending[0].sent_at else 1) <= TRANSACT_LIMIT:
                claim = pending.pop(0)
                if claim.sent_at is not None and claim.customer_id in noted:
                    later.append(claim)  # a customer's second entry: the next transaction
                    continue
                if claim.sent_at is not None:
                    noted.add(claim.customer_id)
                size += 2 if claim.sent_at else 1
                group.append(claim)
            pending = later + pending
            if size == 1:
                self._claim_singly(execution, step, group, claimed)
            else:
                self._transact_claims(execution, step, group, claimed)
        return claimed

    def _transact_claims(
        self, execution: str, step: str, group: list[Claim], claimed: Claimed
    ) -> None:
        client = self._dynamodb.meta.client
        while group:
            owners: list[int] = []
            actions: list[dict[str, Any]] = []
            for n, claim in enumerate(group):
                for action in self._claim_actions(execution, step, claim):
                    owners.append(n)
                    actions.append(action)
            try:
                self._retrying(client.transact_write_items, TransactItems=actions)
            except client.exceptions.TransactionCanceledException as exc:
                failed = _failed_conditions(exc, actions, owners)
                if failed is None:
                    self._claim_singly(execution, step, group, claimed)
                    return
                for n, duplicate in failed.items():
                    (claimed.duplicates if duplicate else claimed.conflicts).add(
                        group[n].key(execution)
                    )
                group = [c for n, c in enumerate(group) if n not in failed]
                continue
            return

    def _claim_singly(
        self, execution: str, step: str, group: Sequence[Claim], claimed: Claimed
    ) -> None:
        """One claim at a time: a conditional PutItem, or with a send to note, the claim
        and its CONTACT update in a TransactWriteItems of their own (never one without the
        other); a cancellation for any reason but a duplicate is a conflict (decided again)."""
        for claim in group:
            if claim.sent_at is None:
                item, condition = _claim_item(execution, step, claim), _claim_condition(claim)
                try:
                    self._retrying(self._activity.put_item, Item=item, **condition)
                except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
                    claimed.duplicates.add(claim.key(execution))
                continue
            client = self._dynamodb.meta.client
            actions = self._claim_actions(execution, step, claim)
            try:
                self._retrying(client.transact_write_items, TransactItems=actions)
            except client.exceptions.TransactionCanceledException as exc:
                failed = _failed_conditions(exc, actions, [0] * len(actions))
                duplicate = bool(failed and failed[0])
                (claimed.duplicates if duplicate else claimed.conflicts).add(claim.key(execution))

    def dispatch_messages(
        self, step: str, keys: Sequence[tuple[str, str]], token: str, at: str
    ) -> set[tuple[str, str]]:
        """Mark the claimed entries of ``keys`` dispatched, just before the provider call,
        in TransactWriteItems of up to 100 conditional updates (one: an UpdateItem). Returns
        the keys ``token`` does not hold (another invocation re-claimed them): not to send."""
        client = self._dynamodb.meta.client
        lost: set[tuple[str, str]] = set()
        pending = list(dict.fromkeys(keys))
        while pending:
            group, pending = pending[:TRANSACT_LIMIT], pending[TRANSACT_LIMIT:]
            while len(group) > 1:
                actions = [
                    {
                        "Update": {
                            "TableName": self._activity.name,
                            **_dispatch_update(cid, ex, step, token, at),
                        }
                    }
                    for cid, ex in group
                ]
                try:
                    self._retrying(client.transact_write_items, TransactItems=actions)
                except client.exceptions.TransactionCanceledException as exc:
                    reasons = exc.response.get("CancellationReasons") or []
                    failed = {
                        i
                        for i, r in enumerate(reasons)
                        if r.get("Code") == "ConditionalCheckFailed"
                    }
                    if not failed:
                        break  # a conflict: one at a time below
                    lost |= {group[i] for i in failed}
                    group = [k for i, k in enumerate(group) if i not in failed]
                    continue
                group = []
            for cid, ex in group:
                update = _dispatch_update(cid, ex, step, token, at)
                try:
                    self._retrying(self._activity.update_item, **update)
                except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
                    lost.add((cid, ex))
        return lost

    def record_messages(
        self,
        execution: str,
        step: str,
        entries: Sequence[tuple[str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        """Write final ledger entries (sent, failed) with BatchWriteItem, 25 per call,
        unprocessed items retried with backoff."""
        self.record_entries(step, [(cid, execution, data) for cid, data in entries], coupons)

    def record_entries(
        self,
        step: str,
        entries: Sequence[tuple[str, str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        """Final ledger entries of one step, each (customer, execution, entry), and the
        coupons of the messages sent: puts, so a throttled or failed (5xx) batch is written
        again (:meth:`_retrying`). Only the invocation that claimed and sent a message
        records it (a retried send finds its claim), so a coupon row is written once; the
        same send re-derives the same code, hence the same key. The code names the step
        and the execution (:func:`kizuna.delivery.coupons.coupon_code`), so no other send
        writes that row: a coupon redeemed is never put back to ``issued`` without a
        condition per coupon (one call each, where the batch takes 25 items a call)."""
        items = [ledger_item(cid, ex, step, data) for cid, ex, data in entries]
        items += [coupon_item(c) for c in coupons]
        self._retrying(self._batch_put, items=items)

    # direct mail (activity table, sk = DM#<execution>#<step>) -------------------------------
    def put_dm_row(self, row: DmRow) -> None:
        """A direct mail's recipient in its print batch: in the customer's partition (erased
        with it), on ``gsi1`` under ``DMDAY#<day>``; expires 30 days after its day."""
        data = row.model_dump(mode="json")
        item = {
            **data,
            "pk": row.customer_id,
            "sk": f"{DM_ROW_PREFIX}{row.execution}#{row.step}",
            "gsi1pk": f"{DM_DAY_PREFIX}{row.day.isoformat()}",
            "gsi1sk": f"{row.program}#{row.template}#{row.customer_id}#{row.execution}",
            "expires_at": epoch_seconds(datetime.combine(row.day, datetime.min.time(), UTC))
            + DM_ROW_DAYS * 86_400,
        }
        item.pop("customer_id")
        self._retrying(self._activity.put_item, Item=to_dynamo(item))

    def dm_rows(self, day: date) -> list[DmRow]:
        """The recipients collected on ``day`` (one Query of ``gsi1``)."""
        from boto3.dynamodb.conditions import Key

        items = _items(
            self._activity.query,
            IndexName=LEDGER_INDEX,
            KeyConditionExpression=Key("gsi1pk").eq(f"{DM_DAY_PREFIX}{day.isoformat()}"),
        )
        return [
            DmRow.model_validate({"customer_id": i["pk"], **from_dynamo(i)}, extra=STORED_EXTRA)
            for i in items
        ]

    # issued coupons (activity table, sk = COUPON#<code>) ------------------------------------
    def redeem_coupons(self, redemptions: Sequence[Redemption]) -> int:
        """Mark each coupon ``redeemed`` (and take it out of the expiry index) on condition
        that the customer's partition holds it, ``issued`` and unexpired at the order's time:
        a code of another customer, used, expired or unknown changes nothing. How many were
        redeemed."""
        done = 0
        for r in redemptions:
            try:
                self._retrying(
                    self._activity.update_item,
                    Key={"pk": r.customer_id, "sk": f"{COUPON_SK}{r.code}"},
                    UpdateExpression="SET #s = :redeemed, redeemed_at = :at, order_id = :order "
                    "REMOVE gsi1pk, gsi1sk",
                    ConditionExpression="#s = :issued AND valid_until > :at",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":redeemed": REDEEMED,
                        ":issued": ISSUED,
                        ":at": iso(r.at),
                        ":order": r.order_id,
                    },
                )
            except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
                continue
            done += 1
        return done

    def coupons_expiring(self, start: str, end: str) -> list[dict[str, Any]]:
        """Issued coupons expiring in [start, end) (ISO times), over every shard of the
        expiry index (``gsi1``, eventually consistent)."""
        from boto3.dynamodb.conditions import Key

        out: list[dict[str, Any]] = []
        for shard in range(COUPON_SHARDS):
            cond = Key("gsi1pk").eq(f"{COUPON_INDEX_PREFIX}{shard}") & Key("gsi1sk").between(
                start, end
            )
            for item in _items(
                self._activity.query, IndexName=LEDGER_INDEX, KeyConditionExpression=cond
            ):
                if str(item.get("gsi1sk", "")) < end and item.get("status") == ISSUED:
                    out.append(from_dynamo(item))
        return out

    def members_since_on(self, month_day: str) -> list[str]:
        """Customers whose MEMBER row is under ``month_day`` in ``gsi1``, every shard
        (eventually consistent; the sweep re-reads the customers)."""
        from boto3.dynamodb.conditions import Key

        out: list[str] = []
        for shard in range(INDEX_SHARDS):
            cond = Key("gsi1pk").eq(anniversary_partition(month_day, str(shard)))
            for item in _items(
                self._activity.query,
                IndexName=LEDGER_INDEX,
                KeyConditionExpression=cond,
                ProjectionExpression="pk",
            ):
                out.append(str(item["pk"]))
        return out

    def lots_earned(self, start: str, end: str) -> list[str]:
        """Customers with a points lot earned in [start, end) (ISO times): the ORDER and
        POINTS rows under ``LOTS#<shard>`` in ``gsi1``, every shard (eventually consistent;
        the sweep re-reads the customers). A customer with several lots there is named once."""
        from boto3.dynamodb.conditions import Key

        out: dict[str, None] = {}
        for shard in range(LOT_SHARDS):
            cond = Key("gsi1pk").eq(lots_partition(str(shard))) & Key("gsi1sk").between(start, end)
            for item in _items(
                self._activity.query,
                IndexName=LEDGER_INDEX,
                KeyConditionExpression=cond,
                ProjectionExpression="pk, gsi1sk",
            ):
                if str(item.get("gsi1sk", "")) < end:
                    out[str(item["pk"])] = None
        return list(out)

    def read_coupons(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The coupon rows of (customer, code), strongly consistent (evaluate's claim
        check of ``coupon.expiring``)."""
        wanted = [
            (self._activity.name, {"pk": cid, "sk": f"{COUPON_SK}{code}"})
            for cid, code in dict.fromkeys(keys)
        ]
        found = self._read_mixed(wanted).get(self._activity.name, [])
        return {(str(i["pk"]), str(i["sk"])[len(COUPON_SK) :]): from_dynamo(i) for i in found}

    def record_steps(self, step: str, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """A journey step's decision per member (branch side, arm, local-time instant):
        ``STEP#<entry>#<step>``, overwritten by a retried step. A split's rows (``arm:…``)
        are on the program/time index too: what a split's winner rule counts."""
        self._batch_put([_step_item(cid, entry, step, data) for cid, entry, data in entries])

    def split_winners(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The decided winners of these (program, split step) keys (undecided: absent)."""
        wanted = [winner_key(program, step) for program, step in dict.fromkeys(keys)]
        if not wanted:
            return {}
        items = self._batch_get(self._activity.name, wanted, ConsistentRead=True)
        return {(str(i["program"]), str(i["step"])): str(i["winner"]) for i in items}

    def save_split_winner(self, decision: WinnerDecision) -> bool:
        """Record a split's winner once (a conditional put; on the program/time index, so the
        program's ledger shows it). False: it was decided already (that decision stands)."""
        data = decision.item()
        item = {
            **winner_key(decision.program, decision.step),
            **to_dynamo(data),
            **program_index_keys(decision.program, data["at"], f"{WINNER_PK}{decision.step}"),
        }
        try:
            self._activity.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def ledger_entries(
        self, customer_ids: Sequence[str], execution: str, step: str
    ) -> dict[str, dict[str, Any]]:
        """The ledger entries of (execution, step) of these customers, by customer (one
        customer: a GetItem, as a Send task reads what a duplicate's first invocation
        decided)."""
        found = self.ledger_entries_of([(cid, execution) for cid in customer_ids], step)
        return {cid: entry for (cid, _), entry in found.items()}

    def ledger_entries_of(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The ledger entries of ``step`` for these (customer, execution) keys."""
        wanted = [_message_key(cid, ex, step) for cid, ex in dict.fromkeys(keys)]
        if len(wanted) == 1:
            item = self._activity.get_item(Key=wanted[0], ConsistentRead=True).get("Item")
            items = [item] if item else []
        else:
            items = self._batch_get(self._activity.name, wanted, ConsistentRead=True)
        return {(str(i["pk"]), str(i["sk"]).split("#")[1]): from_dynamo(i) for i in items}

    def engagement_state(
        self,
        keys: Sequence[tuple[str, str]],
        step: str,
        program: str | None = None,
        decided_at: str | None = None,
    ) -> tuple[
        dict[tuple[str, str], dict[str, Any]],
        dict[str, JourneyState],
        dict[tuple[str, str], dict[str, Any]],
    ]:
        """What an engagement branch reads (:mod:`kizuna.programs.engagement`), strongly
        consistent, in shared BatchGetItem calls of at most 100 keys: the ledger entries
        ``MSG#<entry>#<step>`` of these (customer, entry) keys, with ``program`` the
        customers' ``JOURNEY#<program>`` items (a conversion), by customer, and with
        ``decided_at`` the decisions that branch step recorded already (``STEP#<entry>#<step>``:
        a retried step's)."""
        pairs = list(dict.fromkeys(keys))
        wanted = [(self._activity.name, _message_key(cid, ex, step)) for cid, ex in pairs]
        if program is not None:
            wanted += [
                (self._activity.name, {"pk": cid, "sk": f"JOURNEY#{program}"})
                for cid in dict.fromkeys(cid for cid, _ in pairs)
            ]
        if decided_at is not None:
            wanted += [(self._activity.name, _step_key(cid, ex, decided_at)) for cid, ex in pairs]
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        journeys: dict[str, JourneyState] = {}
        decided: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self._read_mixed(wanted).get(self._activity.name, []):
            sk = str(item["sk"])
            if sk.startswith("JOURNEY#"):
                state = JourneyState.model_validate(item)
                journeys[state.customer_id] = state
            elif sk.startswith("STEP#"):
                decided[(str(item["pk"]), sk.split("#")[1])] = from_dynamo(item)
            else:
                # MSG#<entry>#<step>: an entry id has no '#' (execution names never do)
                entries[(str(item["pk"]), sk.split("#")[1])] = from_dynamo(item)
        return entries, journeys, decided

    def branch_state(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], dict[str, Any]]]:
        """What a condition branch reads, strongly consistent, in shared BatchGetItem calls
        of at most 100 keys over both tables: the customers of these (customer, entry) keys
        and the decisions ``step`` recorded already for them (a retried step's)."""
        pairs = list(dict.fromkeys(keys))
        wanted: list[tuple[str, dict[str, str]]] = [
            (self._customers_name, {"customer_id": cid})
            for cid in dict.fromkeys(cid for cid, _ in pairs)
        ]
        wanted += [(self._activity.name, _step_key(cid, ex, step)) for cid, ex in pairs]
        found = self._read_mixed(wanted)
        customers = customers_of(found.get(self._customers_name, []))
        decided = {
            (str(i["pk"]), str(i["sk"]).split("#")[1]): from_dynamo(i)
            for i in found.get(self._activity.name, [])
        }
        return customers, decided

    def stamp_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        field: str,
        value: str,
        message_id: str | None = None,
        channel: str | None = None,
        also: Mapping[str, str] | None = None,
    ) -> bool:
        """Stamp delivery feedback (delivery_at, open_at, bounce_at...) on a ledger entry,
        and the provider's ``message_id`` when the entry has none yet (an entry whose
        outcome was never recorded: the reconciliation sweep settles it from these). A
        stamp keeps the earliest time (``value``, ISO, as :func:`kizuna.domain.timestamps.iso`
        writes it): a second open, or an event redelivered late, never moves ``open_at``
        later (engagement branches measure the first open from the send). ``also``: more
        attributes written with the stamp, each kept when the entry has it already (a
        reject's ``not_delivered_reason``). False: no such entry, or it holds an earlier
        stamp of ``field``, or (with ``channel``) it was not sent on that channel."""
        names = {"#f": field}
        values: dict[str, Any] = {":v": value}
        expression = "SET #f = :v"
        condition = "attribute_exists(sk) AND (attribute_not_exists(#f) OR #f > :v)"
        if message_id:
            names["#m"] = "provider_message_id"
            values[":m"] = message_id
            expression += ", #m = if_not_exists(#m, :m)"
        for i, (name, extra) in enumerate(sorted((also or {}).items())):
            names[f"#a{i}"] = name
            values[f":a{i}"] = extra
            expression += f", #a{i} = if_not_exists(#a{i}, :a{i})"
        if channel:
            names["#c"] = "channel"
            values[":c"] = channel
            condition += " AND #c = :c"
        try:
            self._activity.update_item(
                Key=_message_key(customer_id, execution, step),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # cards (kizuna.delivery.cards) ------------------------------------------------------
    def put_card(self, customer_id: str, sk: str, card: dict[str, Any], expires_at: int) -> bool:
        """Keep a card in the customer's partition until ``expires_at`` (epoch seconds, the
        table's TTL). False: that row exists already (nothing written)."""
        try:
            self._activity.put_item(
                Item={
                    "pk": customer_id,
                    "sk": sk,
                    "kind": "CARD",
                    **to_dynamo(card),
                    "expires_at": expires_at,
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def cards_of(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's card rows, oldest first (expired ones too, until TTL removes
        them: the caller filters by expiry)."""
        from boto3.dynamodb.conditions import Key

        cond = Key("pk").eq(customer_id) & Key("sk").begins_with(CARD_SK)
        return [
            from_dynamo(i)
            for i in _items(self._activity.query, KeyConditionExpression=cond, ConsistentRead=True)
        ]

    def stamp_card(self, customer_id: str, sk: str, field: str, value: str) -> bool:
        """Stamp ``field`` on a card row (its earliest value wins). False: no such row, or
        it holds an earlier stamp."""
        try:
            self._activity.update_item(
                Key={"pk": customer_id, "sk": sk},
                UpdateExpression="SET #f = :v",
                ConditionExpression=(
                    "attribute_exists(sk) AND (attribute_not_exists(#f) OR #f > :v)"
                ),
                ExpressionAttributeNames={"#f": field},
                ExpressionAttributeValues={":v": value},
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def stale_sending(self, claimed_before: str) -> list[dict[str, Any]]:
        """Ledger entries still ``sending`` that were claimed before ``claimed_before`` (an
        ISO time): one Query per shard of the sparse :data:`SENDING_INDEX` (keys only),
        then the entries themselves, read consistently."""
        from boto3.dynamodb.conditions import Key

        keys: list[dict[str, Any]] = []
        for shard in range(SENDING_SHARDS):
            cond = Key(SENDING_PK).eq(f"SENDING#{shard}") & Key(SENDING_SK).lt(claimed_before)
            keys += [
                {"pk": i["pk"], "sk": i["sk"]}
                for i in _items(
                    self._activity.query, IndexName=SENDING_INDEX, KeyConditionExpression=cond
                )
            ]
        items = self._batch_get(self._activity.name, keys, ConsistentRead=True)
        # still claimed before the cutoff: the index is read eventually consistently and
        # before the entries, so an entry its owner claimed again since (a retry, a redrive:
        # a fresh token, not dispatched yet) is read here as ``sending`` too, and settling
        # that fresh claim would refuse the retry's dispatch: sent by nobody
        return [
            from_dynamo(i)
            for i in items
            if i.get("status") == SENDING and str(i.get(SENDING_SK, "")) < claimed_before
        ]

    def settle_message(self, entry: dict[str, Any], status: str, reason: str, at: str) -> bool:
        """Settle a stale ``sending`` entry (``entry`` as :meth:`stale_sending` read it) on
        condition that nobody changed it since: still ``sending``, the same claim. Leaves
        the sparse index and, naming its program and time, enters ``gsi1`` (as
        :func:`ledger_item` indexes a settled entry). False: someone else settled or
        re-claimed it. Retried in place after a transient failure (:meth:`_retrying`): an
        attempt that took effect before its error is found settled as this very write said
        (the same status, reason and ``at``), which succeeds again, so the sweep counts it
        (its alarm) once."""
        token = entry.get(CLAIM_TOKEN)
        names = {"#s": "status", "#r": "reason", "#at": "reconciled_at", "#t": CLAIM_TOKEN}
        names |= {"#p": SENDING_PK, "#k": SENDING_SK}
        values: dict[str, Any] = {":s": status, ":r": reason, ":at": at, ":sending": SENDING}
        index = ""
        if entry.get("program") and entry.get("at"):
            keys = program_index_keys(str(entry["program"]), str(entry["at"]), str(entry["pk"]))
            names |= {"#gp": "gsi1pk", "#gs": "gsi1sk"}
            values |= {":gp": keys["gsi1pk"], ":gs": keys["gsi1sk"]}
            index = ", #gp = :gp, #gs = :gs"
        condition = "(#s = :sending AND "
        if token is None:
            condition += "attribute_not_exists(#t))"
        else:
            condition += "#t = :t)"
            values[":t"] = token
        if reason == NOT_DISPATCHED:
            # still not dispatched: an invocation that dispatched since the read may have
            # called the provider, and its owner may claim a not_dispatched entry again
            names["#d"] = DISPATCHED_AT
            condition = condition[:-1] + " AND attribute_not_exists(#d))"
        # or this very settlement, written by an attempt whose answer was lost
        condition += " OR (#s = :s AND #r = :r AND #at = :at)"
        try:
            self._retrying(
                self._activity.update_item,
                Key={"pk": entry["pk"], "sk": entry["sk"]},
                UpdateExpression=f"SET #s = :s, #r = :r, #at = :at{index} REMOVE #p, #k",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def program_ledger(
        self, program: str, start: str | None = None, end: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """A program's (or a campaign's: ``program`` is its id on its entries) ledger rows —
        settled messages (a ``sending`` claim appears once its outcome is recorded or
        reconciled), entries, holdouts, conversions — oldest first, with ``start <= at < end``
        (ISO times) when given: one Query of the program/time index, page by page."""
        from boto3.dynamodb.conditions import Key

        cond = Key("gsi1pk").eq(f"PROGRAM#{program}")
        if start is not None and end is not None:
            # gsi1sk is "<at>#<customer>": every key of an instant before `end` sorts below it
            cond = cond & Key("gsi1sk").between(start, end)
        for item in _items(
            self._activity.query, IndexName=LEDGER_INDEX, KeyConditionExpression=cond
        ):
            if end is None or str(item.get("gsi1sk", "")) < end:
                yield from_dynamo(item)

    def messages(self, customer_id: str) -> list[dict[str, Any]]:
        return self.activity(customer_id, "MSG#")

    # activity ------------------------------------------------------------------------
    def put_activity(self, items: Iterable[ActivityItem]) -> None:
        """Put the items; delete the rows they supersede (``replaces``) in the same batch
        (no call of its own; idempotent: a retried batch deletes nothing more)."""
        unique, gone = superseded(items)
        if not unique and not gone:
            return
        with self._activity.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in unique:
                batch.put_item(Item=activity_to_item(item))
            for pk, sk in gone:
                batch.delete_item(Key={"pk": pk, "sk": sk})

    def fact_log(self, customer_id: str) -> list[ActivityItem]:
        """The customer's ORDER, CANCEL and POINTS items (strongly consistent queries)."""
        from boto3.dynamodb.conditions import Key

        out: list[ActivityItem] = []
        for kind in FACT_KINDS:
            cond = Key("pk").eq(customer_id) & Key("sk").begins_with(f"{kind}#")
            items = _items(self._activity.query, KeyConditionExpression=cond, ConsistentRead=True)
            out += map(activity_from_item, items)
        return out

    def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        cond = Key("pk").eq(customer_id)
        if prefix:
            cond = cond & Key("sk").begins_with(prefix)
        return list(_items(self._activity.query, KeyConditionExpression=cond))

    # privacy (kizuna.domain.privacy): access and erasure requests -----------------------------
    def scan_activity(self, kinds: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every activity item of the given kinds (a filtered full scan: for reports, not for
        hot paths; large bases query the snapshot export with Athena instead)."""
        from boto3.dynamodb.conditions import Attr

        yield from _items(self._activity.scan, FilterExpression=Attr("kind").is_in(list(kinds)))

    def customer_item(self, customer_id: str) -> dict[str, Any] | None:
        resp = self._customers.get_item(Key={"customer_id": customer_id}, ConsistentRead=True)
        item: dict[str, Any] | None = resp.get("Item")
        return item

    def delete_activity(self, customer_id: str, sort_keys: Sequence[str]) -> None:
        if not sort_keys:
            return
        with self._activity.batch_writer() as batch:
            for sk in dict.fromkeys(sort_keys):
                batch.delete_item(Key={"pk": customer_id, "sk": sk})

    def delete_customer(self, customer_id: str) -> bool:
        resp = self._customers.delete_item(Key={"customer_id": customer_id}, ReturnValues="ALL_OLD")
        return bool(resp.get("Attributes"))

    def bind_request(self, execution: str, request_hash: str, at: str, expires_at: int) -> str:
        """Bind a transactional message's key (its ``execution``) to ``request_hash``, once:
        a conditional put. Returns the hash the key is bound to (``request_hash`` unless an
        earlier request bound it to another; a retried put that took effect finds its own)."""
        key = {"pk": f"{IDEMPOTENCY_PK}{execution}", "sk": IDEMPOTENCY_SK}
        try:
            self._retrying(
                self._activity.put_item,
                Item={
                    **key,
                    "kind": "IDEMPOTENCY",
                    "request_hash": request_hash,
                    "at": at,
                    "expires_at": expires_at,
                },
                ConditionExpression="attribute_not_exists(pk) OR request_hash = :h",
                ExpressionAttributeValues={":h": request_hash},
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            item = self._activity.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            return str(item.get("request_hash", ""))
        return request_hash

    def mark_erased(self, key: str, expires_at: int, now: int) -> int | None:
        """The marker, expiring at ``expires_at``; the sweep instant a live one (not expired
        by ``now``: TTL deletes lazily) notes. A new or expired marker is written afresh,
        its notes (sweep, count) forgotten, in one conditional UpdateItem; a live one gets
        its expiry moved by a second."""
        marker = {"pk": key, "sk": ERASED_SK}
        try:
            self._activity.update_item(
                Key=marker,
                UpdateExpression="SET #k = :k, expires_at = :e REMOVE sweep_at, counted",
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeNames={"#k": "kind"},
                ExpressionAttributeValues={":k": "ERASED", ":e": expires_at, ":now": now},
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            held = self._activity.update_item(
                Key=marker,
                UpdateExpression="SET expires_at = :e",
                ExpressionAttributeValues={":e": expires_at},
                ReturnValues="ALL_NEW",
            )["Attributes"]
            return int(held["sweep_at"]) if "sweep_at" in held else None
        return None

    def note_sweep(self, key: str, at: int) -> None:
        self._activity.update_item(
            Key={"pk": key, "sk": ERASED_SK},
            UpdateExpression="SET sweep_at = :s",
            ExpressionAttributeValues={":s": at},
        )

    def count_erasure(self, day: str, key: str) -> None:
        """One more erasure on ``day``, once per marker ``key``: the marker notes it was
        counted (conditionally), then the day's counter is incremented (a plain ADD, which
        concurrent erasures never conflict on). A retried or swept erasure is not counted
        again; a crash between the two writes loses one count (it never counts twice)."""
        try:
            self._activity.update_item(
                Key={"pk": key, "sk": ERASED_SK},
                UpdateExpression="SET counted = :d",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(counted)",
                ExpressionAttributeValues={":d": day},
            )
        except self._activity.meta.client.exceptions.ConditionalCheckFailedException:
            return
        self._activity.update_item(
            Key={"pk": ERASURES_PK, "sk": f"DAY#{day}"},
            UpdateExpression="ADD #c :one",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":one": 1},
        )

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        """The ids among ``customer_ids`` erased recently (their marker has not expired by
        ``now``: TTL deletes lazily). Read consistently, as the customer item is: an
        eventually consistent read may miss a marker written a moment ago while the item's
        read already finds it deleted, and the event would create the customer again."""
        by_key = {erased_key(cid): cid for cid in dict.fromkeys(customer_ids)}
        keys = [{"pk": key, "sk": ERASED_SK} for key in by_key]
        items = self._batch_get(
            self._activity.name,
            keys,
            ProjectionExpression="pk, expires_at",
            ConsistentRead=True,
        )
        cutoff = now.timestamp()
        return {by_key[str(i["pk"])] for i in items if float(i.get("expires_at", 0)) > cutoff}


class LotIndexTable:
    """The activity table as the points-lot backfill sees it (``kizuna points backfill-lots``):
    a projected scan of its ORDER and POINTS rows, and a conditional write of a row's
    ``gsi1`` lot keys."""

    def __init__(
        self, dynamodb: Any, activity_table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._activity = dynamodb.Table(activity_table)
        self._sleep = sleep

    def scan_lot_rows(self, segment: int = 0, total_segments: int = 1) -> Iterator[ScanPage]:
        """One page per Scan call (each read again after a transient failure), only the
        attributes the rule reads (a projection and a filter lower the bytes sent, not the read
        units: those count every item read, ``ScannedCount``)."""
        kwargs: dict[str, Any] = {
            "Segment": segment,
            "TotalSegments": total_segments,
            "FilterExpression": "#k IN (:order, :points)",
            "ProjectionExpression": "pk, sk, #k, #a, #d, #g",
            "ExpressionAttributeNames": {"#k": "kind", "#a": "at", "#d": "delta", "#g": "gsi1pk"},
            "ExpressionAttributeValues": {":order": "ORDER", ":points": "POINTS"},
        }
        while True:
            resp = retrying(self._activity.scan, sleep=self._sleep, **kwargs)
            rows = [
                ScannedRow(activity_from_item(i), str(i["sk"]), "gsi1pk" in i)
                for i in resp.get("Items", [])
            ]
            yield ScanPage(int(resp.get("ScannedCount", 0)), rows)
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def add_lot_keys(self, customer_id: str, sk: str, keys: Mapping[str, str]) -> bool:
        """An UpdateItem on condition that the row exists (an erasure since the scan deleted
        it: not re-created) and has no ``gsi1pk`` (ingest, or another run, wrote it since):
        False when the condition failed. Retried after a transient failure; an attempt that
        took effect then fails the condition of the next, reported False."""
        failed = self._activity.meta.client.exceptions.ConditionalCheckFailedException
        try:
            retrying(
                self._activity.update_item,
                sleep=self._sleep,
                attempts=WRITE_ATTEMPTS,
                Key={"pk": customer_id, "sk": sk},
                UpdateExpression="SET #p = :p, #s = :s",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#p)",
                ExpressionAttributeNames={"#p": "gsi1pk", "#s": "gsi1sk"},
                ExpressionAttributeValues={":p": keys["gsi1pk"], ":s": keys["gsi1sk"]},
            )
        except failed:
            return False
        return True


class CustomerTable:
    """The customers table read by id only (the unsubscribe function: it never writes)."""

    def __init__(self, dynamodb: Any, customers_table: str) -> None:
        self._customers = dynamodb.Table(customers_table)

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> Customers:
        """One strongly consistent GetItem per id (``unreadable_ok``: as
        :meth:`DynamoStore.get_customers`)."""
        items = []
        for cid in dict.fromkeys(customer_ids):
            item = self._customers.get_item(Key={"customer_id": cid}, ConsistentRead=True).get(
                "Item"
            )
            if item:
                items.append(item)
        return customers_of(items, unreadable_ok=unreadable_ok)


class LineWebhookStore:
    """What the LINE webhook reads and claims: customers by their LINE user id (hashed,
    ``LINE_USER_INDEX``), strongly consistent reads by id, and one claim per webhook event
    (``LINEWEBHOOK#<webhookEventId>`` in the activity table, expiring) so a redelivered
    event changes nothing twice."""

    def __init__(self, dynamodb: Any, customers_table: str, activity_table: str) -> None:
        self._customers = dynamodb.Table(customers_table)
        self._activity = dynamodb.Table(activity_table)
        self._reader = CustomerTable(dynamodb, customers_table)

    def customers_by_line_user(self, line_user_hash: str) -> list[str]:
        from boto3.dynamodb.conditions import Key

        resp = self._customers.query(
            IndexName=LINE_USER_INDEX,
            KeyConditionExpression=Key(LINE_USER_HASH_ATTRIBUTE).eq(line_user_hash),
        )
        return [str(i["customer_id"]) for i in resp.get("Items", [])]

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> Customers:
        return self._reader.get_customers(customer_ids, unreadable_ok=unreadable_ok)

    def claim_webhook_event(self, event_id: str, expires_at: datetime) -> bool:
        """True the first time ``event_id`` is claimed (until it expires)."""
        failed = self._activity.meta.client.exceptions.ConditionalCheckFailedException
        try:
            self._activity.put_item(
                Item={
                    "pk": f"LINEWEBHOOK#{event_id}",
                    "sk": "CLAIM",
                    "kind": "LINE_WEBHOOK",
                    "expires_at": epoch_seconds(expires_at),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except failed:
            return False
        return True

    def release_webhook_event(self, event_id: str) -> None:
        self._activity.delete_item(Key={"pk": f"LINEWEBHOOK#{event_id}", "sk": "CLAIM"})


class ProductStore:
    """The products table (``pk = product_id``): catalogue entries (name, url, category,
    imported) and what the daily job learned (``related`` products, best sellers)."""

    def __init__(self, dynamodb: Any, products_table: str) -> None:
        self._dynamodb = dynamodb
        self._table = dynamodb.Table(products_table)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = [{"product_id": pid} for pid in dict.fromkeys(product_ids)]
        items = _batch_get(self._dynamodb, self._table.name, keys)
        return {str(i["product_id"]): from_dynamo(i) for i in items}

    def scan_products(self) -> Iterator[dict[str, Any]]:
        for item in _items(self._table.scan):
            yield from_dynamo(item)

    def upsert_catalog(self, records: Iterable[Any]) -> int:
        """Set name, url and category of each product (``kizuna_tools.products.ProductRecord``),
        keeping what the daily job learned about it. One UpdateItem per product."""
        n = 0
        for record in records:
            values = {"name": record.name, "url": record.url, "category": record.category}
            present = {k: v for k, v in values.items() if v is not None}
            sets = ", ".join(f"#{k} = :{k}" for k in present)
            removes = [f"#{k}" for k, v in values.items() if v is None]
            expression = f"SET {sets}" + (f" REMOVE {', '.join(removes)}" if removes else "")
            self._table.update_item(
                Key={"product_id": record.product_id},
                UpdateExpression=expression,
                ExpressionAttributeNames={f"#{k}": k for k in values},
                ExpressionAttributeValues={f":{k}": v for k, v in present.items()},
            )
            n += 1
        return n

    def set_related(self, product_id: str, related: list[dict[str, Any]], day: str) -> None:
        """What the daily run learned about one product (UpdateItem: the catalogue's own
        fields, which an import may be writing at the same moment, are left alone); the same
        update again after a transient failure."""
        retrying(
            self._table.update_item,
            Key={"product_id": product_id},
            UpdateExpression="SET #r = :r, #d = :d",
            ExpressionAttributeNames={"#r": "related", "#d": "related_at"},
            ExpressionAttributeValues={":r": to_dynamo(related), ":d": day},
        )

    def put_product(self, item: dict[str, Any]) -> None:
        """Write a whole item (the run's own ``#best-sellers`` item), again after a transient
        failure."""
        retrying(self._table.put_item, Item=to_dynamo(item))


class SnapshotStore:
    """The snapshots table: ``pk = date`` (YYYY-MM-DD), ``sk = cell`` (RFM segment, rank
    and attribute bands: ``kizuna.scoring.snapshot.SnapshotRow.cell``), counts and sums per
    cell."""

    def __init__(self, dynamodb: Any, snapshots_table: str) -> None:
        self._table = dynamodb.Table(snapshots_table)

    def put_cells(self, day: str, cells: dict[str, dict[str, Any]]) -> int:
        """Replace the day's cells with ``cells``: every one put (a whole item), then every
        cell the day held before and ``cells`` does not (an earlier run of the same UTC date
        that counted a customer elsewhere) deleted; all of it again after a transient
        failure, so a retried finish leaves the same day."""
        return retrying(self._put_cells, day, cells)

    def _put_cells(self, day: str, cells: dict[str, dict[str, Any]]) -> int:
        stale = [cell for cell in self._cell_keys(day) if cell not in cells]
        with self._table.batch_writer(overwrite_by_pkeys=["date", "cell"]) as batch:
            for cell, data in cells.items():
                batch.put_item(Item={"date": day, "cell": cell, **to_dynamo(data)})
            for cell in stale:
                batch.delete_item(Key={"date": day, "cell": cell})
        return len(cells)

    def _cell_keys(self, day: str) -> list[str]:
        """The day's stored cell keys (a Query on the partition, keys only)."""
        from boto3.dynamodb.conditions import Key

        items = _items(
            self._table.query,
            KeyConditionExpression=Key("date").eq(day),
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "cell"},
        )
        return [str(i["cell"]) for i in items]

    def cells(self, day: str) -> dict[str, dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        out: dict[str, dict[str, Any]] = {}
        for item in _items(self._table.query, KeyConditionExpression=Key("date").eq(day)):
            data = from_dynamo(item)
            out[str(data.pop("cell"))] = {k: v for k, v in data.items() if k != "date"}
        return out

    def dates(self) -> list[str]:
        """Every snapshot date, oldest first (a keys-only scan: reports, not hot paths)."""
        items = _items(
            self._table.scan, ProjectionExpression="#d", ExpressionAttributeNames={"#d": "date"}
        )
        return sorted({str(i["date"]) for i in items})
