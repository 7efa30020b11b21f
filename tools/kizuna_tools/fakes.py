"""In-memory stand-ins for the ports, for unit tests and dry runs (no AWS)."""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from kizuna.adapters.dynamodb import INDEXED_DECISIONS
from kizuna.campaigns.model import Campaign
from kizuna.delivery.coupons import ISSUED, REDEEMED, IssuedCoupon, Redemption
from kizuna.delivery.ledger import (
    CLAIM_TOKEN,
    CLAIMED_BY,
    DISPATCHED_AT,
    NOT_DISPATCHED,
    SENDING,
    claimable,
    own_dispatch,
)
from kizuna.domain.activity import (
    LOTS_INDEX_PREFIX,
    MEMBER_KIND,
    ActivityItem,
    anniversary_partition,
    superseded,
)
from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import iso
from kizuna.events import DerivedEvent, InboundDetail, inbound_type
from kizuna.events.derived import CampaignEvent
from kizuna.ports import (
    Claim,
    Claimed,
    Contacted,
    DeadLetter,
    DefinitionConflict,
    ScannedRow,
    ScanPage,
    StoredCampaign,
    VersionConflict,
    Watermark,
)
from kizuna.programs.journeys import JourneyState
from kizuna.programs.members import Child, Join, Member
from kizuna.programs.winners import ARM_PREFIX, WinnerDecision, winner_key


class MemoryStore:
    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.activity: dict[tuple[str, str], ActivityItem] = {}
        self.journeys: dict[tuple[str, str], JourneyState] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.saves = 0
        self.erased_ids: set[str] = set()
        self.contacts: dict[str, dict[str, str]] = {}  # CONTACT items: message key -> sent at
        self.contact_versions: dict[str, int] = {}  # their versions (absent: 0)
        self.members: dict[str, dict[str, Member]] = {}  # cohort -> member sk -> member
        self.children: dict[str, dict[str, Child]] = {}
        self.steps: dict[tuple[str, str], dict[str, Any]] = {}  # STEP# decisions
        self.winners: dict[tuple[str, str], dict[str, Any]] = {}  # (program, split) -> decision
        self.watermarks: dict[str, Watermark] = {}  # sweep kind -> how far it swept
        self.engagement_reads = 0  # engagement_state calls (one per engagement branch step)
        self.coupons: dict[tuple[str, str], dict[str, Any]] = {}  # COUPON# rows by (cid, code)
        self.order_fact_scans = 0  # scan_order_facts calls (one per segment per sample)

    def get_customer(self, customer_id: str) -> Customer | None:
        found = self.customers.get(customer_id)
        return found.model_copy(deep=True) if found else None

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]:
        return {
            cid: self.customers[cid].model_copy(deep=True)
            for cid in customer_ids
            if cid in self.customers
        }

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        current = self.customers.get(customer.customer_id)
        if (current.version if current else 0) != expected_version:
            raise VersionConflict(customer.customer_id)
        saved = customer.model_copy(update={"version": expected_version + 1}, deep=True)
        self.customers[customer.customer_id] = saved
        self.saves += 1
        return saved

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        return self.erased_ids & set(customer_ids)

    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]:
        """Like a DynamoDB parallel scan: each customer is in exactly one segment."""
        for cid in sorted(self.customers):
            if zlib.crc32(cid.encode()) % total_segments == segment:
                yield self.customers[cid].model_copy(deep=True)

    def scan_order_facts(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]:
        """Like :meth:`scan_customers`, without the copies (the sample only reads them)."""
        self.order_fact_scans += 1
        for cid in sorted(self.customers):
            if zlib.crc32(cid.encode()) % total_segments == segment:
                yield self.customers[cid]

    def put_activity(self, items: Iterable[ActivityItem]) -> None:
        kept, gone = superseded(items)  # DynamoStore's: superseded rows go in the same batch
        for item in kept:
            self.activity[(item.customer_id, item.sk)] = item
        for key in gone:
            self.activity.pop(key, None)

    def fact_log(self, customer_id: str) -> list[ActivityItem]:
        return [
            i
            for (cid, _), i in self.activity.items()
            if cid == customer_id and i.kind in {"ORDER", "CANCEL", "REFUND", "POINTS"}
        ]

    def get_journeys(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JourneyState]:
        return {k: self.journeys[k].model_copy() for k in keys if k in self.journeys}

    def save_journey(self, state: JourneyState, previous: JourneyState | None) -> bool:
        key = (state.customer_id, state.program)
        current = self.journeys.get(key)
        if (current.rev if current else 0) != (previous.rev if previous else 0):
            return False
        if previous is None and current is not None:
            return False
        self.journeys[key] = state.model_copy(update={"rev": (previous.rev if previous else 0) + 1})
        return True

    def sweep_watermark(self, kind: str) -> Watermark | None:
        return self.watermarks.get(kind)

    def save_sweep_watermark(self, kind: str, mark: Watermark) -> None:
        current = self.watermarks.get(kind)
        if current is None or current.edge <= mark.edge:
            self.watermarks[kind] = mark

    def query_window(
        self, index: str, attribute: str, shard: str, start: str, end: str
    ) -> list[str]:
        from kizuna.adapters.dynamodb import to_dynamo

        out = []
        for cid, c in sorted(self.customers.items()):
            value = to_dynamo(getattr(c, attribute))
            if c.gsi_shard == shard and isinstance(value, str) and start <= value < end:
                out.append(cid)
        return out

    def claim_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        data: dict[str, Any],
        owner: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any] | None:
        key = (customer_id, f"MSG#{execution}#{step}")
        existing = self.messages.get(key)
        if not claimable(existing, owner):
            return dict(existing or {})
        claimed = {**data, CLAIMED_BY: owner, CLAIM_TOKEN: token}
        self.messages[key] = {k: v for k, v in claimed.items() if v is not None}
        return None

    def record_message(
        self, customer_id: str, execution: str, step: str, data: dict[str, Any]
    ) -> None:
        self.messages[(customer_id, f"MSG#{execution}#{step}")] = dict(data)

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
        entry = self.messages.get((customer_id, f"MSG#{execution}#{step}"))
        if entry is None or (field in entry and str(entry[field]) <= value):
            return False  # the earliest stamp stays (as DynamoStore's condition)
        if channel and entry.get("channel") != channel:
            return False
        entry[field] = value
        if message_id:
            entry.setdefault("provider_message_id", message_id)
        for name, extra in (also or {}).items():
            entry.setdefault(name, extra)  # kept when there (as DynamoStore's if_not_exists)
        return True

    # recipients of the Send task and of campaign batches (kizuna.ports.CampaignRecipients)
    def read_recipients(
        self, customer_ids: Sequence[str]
    ) -> tuple[dict[str, Customer], dict[str, Contacted]]:
        ids = [cid for cid in customer_ids if cid in self.contacts]
        return self.get_customers(customer_ids), {
            cid: Contacted(dict(self.contacts[cid]), self.contact_versions.get(cid, 0))
            for cid in ids
        }

    def read_send_state(
        self, customer_ids: Sequence[str], program: str | None
    ) -> tuple[dict[str, Customer], dict[str, Contacted], dict[str, JourneyState]]:
        customers, contacts = self.read_recipients(customer_ids)
        if program is None:
            return customers, contacts, {}
        found = self.get_journeys([(cid, program) for cid in customer_ids])
        return customers, contacts, {cid: s for (cid, _), s in found.items()}

    def claim_messages(self, execution: str, step: str, claims: Sequence[Claim]) -> Claimed:
        """As DynamoStore's: a duplicate first, then a CONTACT item changed since the read
        (its version, or its presence) is a conflict; neither is written."""
        claimed = Claimed()
        for claim in dict((c.key(execution), c) for c in claims).values():
            cid, ex = claim.key(execution)
            if not claimable(self.messages.get((cid, f"MSG#{ex}#{step}")), claim.owner):
                claimed.duplicates.add((cid, ex))
                continue
            key = claim.contact_key or ex
            if claim.sent_at is not None and not self._contact_as_read(claim, key):
                claimed.conflicts.add((cid, ex))
                continue
            self.claim_message(cid, ex, step, claim.data, claim.owner, claim.token)
            if claim.sent_at is not None:
                sent = self.contacts.setdefault(cid, {})
                for stale in claim.stale:
                    sent.pop(stale, None)
                sent[key] = claim.sent_at
                self.contact_versions[cid] = self.contact_versions.get(cid, 0) + 1
        return claimed

    def _contact_as_read(self, claim: Claim, key: str) -> bool:
        sent = self.contacts.get(claim.customer_id)
        if sent is not None and sent.get(key) == claim.sent_at:
            return True  # this very send, noted already
        version = self.contact_versions.get(claim.customer_id, 0)
        return (sent is not None) == claim.contact_exists and version == claim.contact_version

    def dispatch_messages(
        self, step: str, keys: Sequence[tuple[str, str]], token: str, at: str
    ) -> set[tuple[str, str]]:
        lost: set[tuple[str, str]] = set()
        for cid, ex in keys:
            entry = self.messages.get((cid, f"MSG#{ex}#{step}"))
            if entry is None or not own_dispatch(entry, token):
                lost.add((cid, ex))
            else:
                entry[DISPATCHED_AT] = at
        return lost

    def stale_sending(self, claimed_before: str) -> list[dict[str, Any]]:
        return [
            {**data, "pk": cid, "sk": sk}
            for (cid, sk), data in sorted(self.messages.items())
            if data.get("status") == SENDING and str(data.get("at", "")) < claimed_before
        ]

    def settle_message(self, entry: dict[str, Any], status: str, reason: str, at: str) -> bool:
        current = self.messages.get((entry["pk"], entry["sk"]))
        if current is not None and (
            current.get("status"),
            current.get("reason"),
            current.get("reconciled_at"),
        ) == (status, reason, at):
            return True  # this very settlement (a retried write that took effect)
        if (
            current is None
            or current.get("status") != SENDING
            or current.get(CLAIM_TOKEN) != entry.get(CLAIM_TOKEN)
            or (reason == NOT_DISPATCHED and current.get(DISPATCHED_AT))
        ):
            return False
        current.update(status=status, reason=reason, reconciled_at=at)
        return True

    def record_messages(
        self,
        execution: str,
        step: str,
        entries: Sequence[tuple[str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        self.record_entries(step, [(cid, execution, data) for cid, data in entries], coupons)

    def record_entries(
        self,
        step: str,
        entries: Sequence[tuple[str, str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        for customer_id, execution, data in entries:
            self.record_message(customer_id, execution, step, data)
        for c in coupons:  # a put, as DynamoStore's: the same key for the same send
            row = c.model_dump(exclude={"customer_id", "expires_at"})
            self.coupons[(c.customer_id, c.code)] = {
                **row,
                "pk": c.customer_id,
                "sk": f"COUPON#{c.code}",
                "valid_until": c.expires_at,
                "status": ISSUED,
            }

    # issued coupons (DynamoStore's COUPON# rows) ------------------------------------------
    def redeem_coupons(self, redemptions: Sequence[Redemption]) -> int:
        done = 0
        for r in redemptions:
            row = self.coupons.get((r.customer_id, r.code))
            if row is None or row["status"] != ISSUED or not row["valid_until"] > r.at:
                continue
            row.update(status=REDEEMED, redeemed_at=r.at, order_id=r.order_id)
            done += 1
        return done

    def coupons_expiring(self, start: str, end: str) -> list[dict[str, Any]]:
        return [
            {**row, "valid_until": iso(row["valid_until"])}
            for row in self.coupons.values()
            if row["status"] == ISSUED and start <= iso(row["valid_until"]) < end
        ]

    def members_since_on(self, month_day: str) -> list[str]:
        prefix = anniversary_partition(month_day, "")
        return [
            i.customer_id
            for i in self.activity.values()
            if i.kind == MEMBER_KIND and str(i.data.get("gsi1pk", "")).startswith(prefix)
        ]

    def lots_earned(self, start: str, end: str) -> list[str]:
        return list(
            dict.fromkeys(
                i.customer_id
                for i in self.activity.values()
                if str(i.data.get("gsi1pk", "")).startswith(LOTS_INDEX_PREFIX)
                and start <= str(i.data.get("gsi1sk", "")) < end
            )
        )

    def scan_lot_rows(self, segment: int = 0, total_segments: int = 1) -> Iterator[ScanPage]:
        """One page: every ORDER and POINTS row of the segment, as LotIndexTable reads it."""
        rows, scanned = [], 0
        for (cid, sk), i in sorted(self.activity.items()):
            if zlib.crc32(f"{cid}#{sk}".encode()) % total_segments != segment:
                continue
            scanned += 1
            if i.kind in {"ORDER", "POINTS"}:
                read = i.model_copy(
                    update={"data": {"delta": i.data["delta"]} if "delta" in i.data else {}}
                )
                rows.append(ScannedRow(read, sk, "gsi1pk" in i.data))
        yield ScanPage(scanned, rows)

    def add_lot_keys(self, customer_id: str, sk: str, keys: Mapping[str, str]) -> bool:
        item = self.activity.get((customer_id, sk))
        if item is None or "gsi1pk" in item.data:
            return False
        self.activity[(customer_id, sk)] = item.model_copy(update={"data": {**item.data, **keys}})
        return True

    def read_coupons(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        return {k: dict(self.coupons[k]) for k in keys if k in self.coupons}

    def ledger_entries(
        self, customer_ids: Sequence[str], execution: str, step: str
    ) -> dict[str, dict[str, Any]]:
        keys = {cid: (cid, f"MSG#{execution}#{step}") for cid in customer_ids}
        return {cid: dict(self.messages[k]) for cid, k in keys.items() if k in self.messages}

    def record_steps(self, step: str, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        for customer_id, entry, data in entries:
            self.steps[(customer_id, f"STEP#{entry}#{step}")] = dict(data)

    def ledger_entries_of(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> dict[tuple[str, str], dict[str, Any]]:
        found = {(cid, ex): (cid, f"MSG#{ex}#{step}") for cid, ex in keys}
        return {k: dict(self.messages[m]) for k, m in found.items() if m in self.messages}

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
        self.engagement_reads += 1
        entries = self.ledger_entries_of(keys, step)
        decided = self.step_decisions(keys, decided_at) if decided_at is not None else {}
        if program is None:
            return entries, {}, decided
        found = self.get_journeys([(cid, program) for cid, _ in keys])
        return entries, {cid: state for (cid, _), state in found.items()}, decided

    def branch_state(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], dict[str, Any]]]:
        customers = self.get_customers(list(dict.fromkeys(cid for cid, _ in keys)))
        return customers, self.step_decisions(keys, step)

    def step_decisions(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The STEP rows ``step`` recorded for these (customer, entry) keys."""
        found = {(cid, ex): (cid, f"STEP#{ex}#{step}") for cid, ex in keys}
        return {k: dict(self.steps[s]) for k, s in found.items() if s in self.steps}

    def program_ledger(self, program: str) -> Iterator[dict[str, Any]]:
        """The rows of the program/time index naming ``program`` (a campaign's id on its
        entries), by time: settled ledger entries (not ``sending``), entries and conversions,
        splits' arms, winners."""
        found = [
            {"kind": "MSG", **data, "pk": cid, "sk": sk}
            for (cid, sk), data in self.messages.items()
            if data.get("program") == program and data.get("status") != SENDING
        ]
        found += [
            {**i.data, "pk": cid, "sk": sk, "kind": i.kind, "at": iso(i.at)}
            for (cid, sk), i in self.activity.items()
            if i.data.get("program") == program
            and (i.kind, i.data.get("decision")) in INDEXED_DECISIONS
        ]
        found += [
            {**data, "pk": cid, "sk": sk, "kind": "STEP"}
            for (cid, sk), data in self.steps.items()
            if data.get("program") == program
            and str(data.get("decision") or "").startswith(ARM_PREFIX)
        ]
        found += [
            {**data, **winner_key(pid, step)}
            for (pid, step), data in self.winners.items()
            if pid == program
        ]
        yield from sorted(found, key=lambda e: (str(e.get("at", "")), e["pk"]))

    def split_winners(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return {k: str(self.winners[k]["winner"]) for k in keys if k in self.winners}

    def save_split_winner(self, decision: WinnerDecision) -> bool:
        key = (decision.program, decision.step)
        if key in self.winners:
            return False
        self.winners[key] = decision.item()
        return True

    def customers_by_phone_hash(self, phone_hash: str) -> list[str]:
        return [cid for cid, c in sorted(self.customers.items()) if c.phone_hash == phone_hash]

    def read_entries(
        self, customer_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], JourneyState]]:
        return self.get_customers(customer_ids), self.get_journeys(keys)

    # cohorts (kizuna.ports.CohortStore) ---------------------------------------------------
    def join_cohorts(
        self,
        joins: Sequence[Join],
        rows: Sequence[tuple[int | None, ActivityItem]] = (),
    ) -> set[int]:
        conflicts: set[int] = set()
        for n, join in enumerate(joins):
            if not self.save_journey(join.state, join.previous):
                conflicts.add(n)
                continue
            if join.cohort is not None and join.member is not None:
                self.members.setdefault(join.cohort, {})[join.member.sk] = join.member
        self.put_activity([row for owner, row in rows if owner not in conflicts])
        return conflicts

    def cohort_members(self, cohort: str, group: str) -> list[Member]:
        found = self.members.get(cohort, {})
        return [m for _, m in sorted(found.items()) if m.group == group]

    def move_members(
        self, cohort: str, members: Sequence[Member], group: str, expires_at: int
    ) -> None:
        found = self.members.setdefault(cohort, {})
        for m in members:
            found[m.sk] = dataclasses.replace(m, group=group)

    def put_children(self, cohort: str, children: Sequence[Child], expires_at: int) -> None:
        found = self.children.setdefault(cohort, {})
        for c in children:
            found[c.sk] = c

    def cohort_children(self, cohort: str, parent: str, step: str) -> list[Child]:
        found = self.children.get(cohort, {})
        return [c for _, c in sorted(found.items()) if c.parent == parent and c.origin == step]

    def read_group(
        self, cohort: str, group: str, step: str | Sequence[str]
    ) -> tuple[list[Member], list[Child]]:
        steps = [step] if isinstance(step, str) else list(step)
        children = [c for s in steps for c in self.cohort_children(cohort, group, s)]
        return self.cohort_members(cohort, group), children

    def settle_step(
        self,
        cohort: str,
        step: str,
        decisions: Sequence[tuple[str, str, dict[str, Any]]],
        children: Sequence[Child],
        moves: Sequence[tuple[str, Sequence[Member]]],
        expires_at: int,
    ) -> None:
        self.record_steps(step, decisions)
        self.put_children(cohort, children, expires_at)
        for group, members in moves:
            self.move_members(cohort, members, group, expires_at)

    def leave_cohort(self, cohort: str, customer_id: str) -> int:
        found = self.members.get(cohort, {})
        gone = [sk for sk, m in found.items() if m.customer_id == customer_id]
        for sk in gone:
            del found[sk]
        return len(gone)

    def ledger(self, customer_id: str, kind: str) -> list[ActivityItem]:
        return sorted(
            (i for (cid, _), i in self.activity.items() if cid == customer_id and i.kind == kind),
            key=lambda i: i.sk,
        )


class MemoryInbound:
    """The bus as ingest would see it: (detail-type, typed detail) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, InboundDetail]] = []

    def put_inbound(self, detail: InboundDetail) -> None:
        self.events.append((inbound_type(detail), detail))


class MemoryStarter:
    """Records journey starts; a name can start only once (as in Step Functions)."""

    def __init__(self) -> None:
        self.started: dict[str, tuple[str, dict[str, Any]]] = {}
        # asynchronous invocations: at_once programs' entry segments (function, payload)
        self.runs: list[tuple[str, dict[str, Any]]] = []

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        if name in self.started:
            return False
        self.started[name] = (program_id, payload)
        return True

    def run(self, function: str, payload: dict[str, Any]) -> None:
        self.runs.append((function, payload))


class MemoryPublisher:
    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[DerivedEvent] = []
        self._fail_left = fail_first

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        failed: list[int] = []
        for i, event in enumerate(events):
            if self._fail_left > 0:
                self._fail_left -= 1
                failed.append(i)
                continue
            self.events.append(event)
        return failed


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter]) -> list[str]:
        self.letters.extend(letters)
        return []


class MemoryCampaigns:
    """The campaigns table: definitions and occurrences (kizuna.ports.CampaignDefinitions)."""

    def __init__(self) -> None:
        self.definitions: dict[str, StoredCampaign] = {}
        self.occurrences: dict[tuple[str, str], dict[str, Any]] = {}
        self.added: set[tuple[str, str, str]] = set()
        self.counted: dict[tuple[str, str, str], str] = {}  # a send batch's: its token

    def put(
        self, campaign: Campaign, templates: dict[str, str] | None = None, status: str = ""
    ) -> None:
        old = self.definitions.get(campaign.id)
        self.definitions[campaign.id] = StoredCampaign(
            campaign,
            dict(templates or {}),
            status or str(campaign.status),
            (old.version if old else 0) + 1,
            occurrences_started=old.occurrences_started if old else 0,
        )

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
        old = self.definitions.get(campaign.id)
        version = old.version if old else 0
        count = old.occurrences_started if old else 0
        if expected_version is not None and expected_version != version:
            raise DefinitionConflict(campaign.id)
        if only_from and old is not None and old.status not in only_from:
            raise DefinitionConflict(campaign.id)
        if started is not None and started != count:
            raise DefinitionConflict(campaign.id)
        self.definitions[campaign.id] = StoredCampaign(
            campaign,
            dict(templates),
            str(campaign.status),
            version + 1,
            now.isoformat(),
            updated_by,
            count,
        )
        return version + 1

    def get_definition(self, campaign_id: str) -> StoredCampaign | None:
        return self.definitions.get(campaign_id)

    def list_definitions(self) -> list[StoredCampaign]:
        return [self.definitions[k] for k in sorted(self.definitions)]

    def list_occurrences(self, campaign_id: str) -> list[dict[str, Any]]:
        return [dict(o) for (c, _), o in sorted(self.occurrences.items()) if c == campaign_id]

    def first_occurrence(self, campaign_id: str) -> dict[str, Any] | None:
        return next(iter(self.list_occurrences(campaign_id)), None)

    def get_state(
        self, campaign_id: str, occurrence: str
    ) -> tuple[StoredCampaign | None, dict[str, Any] | None]:
        return self.get_definition(campaign_id), self.get_occurrence(campaign_id, occurrence)

    def set_status(
        self, campaign_id: str, status: str, now: datetime, expected: set[str] | None = None
    ) -> bool:
        stored = self.definitions.get(campaign_id)
        if stored is None or (expected and stored.status not in expected):
            return False
        self.definitions[campaign_id] = dataclasses.replace(stored, status=status)
        return True

    def start_occurrence(
        self,
        campaign_id: str,
        occurrence: str,
        scheduled_time: datetime,
        now: datetime,
        execution: str | None = None,
        version: int | None = None,
    ) -> bool:
        if (campaign_id, occurrence) in self.occurrences:
            return False
        if version is not None:
            stored = self.definitions.get(campaign_id)
            if stored is None or stored.version != version:
                raise DefinitionConflict(campaign_id)
            count = stored.occurrences_started + 1
            self.definitions[campaign_id] = dataclasses.replace(stored, occurrences_started=count)
        self.occurrences[(campaign_id, occurrence)] = {
            "occurrence": occurrence,
            "status": "running",
            "scheduled_time": scheduled_time.isoformat(),
            "started_at": now.isoformat(),
            **({"execution": execution} if execution else {}),
            **({"definition_version": version} if version is not None else {}),
        }
        return True

    def get_occurrence(self, campaign_id: str, occurrence: str) -> dict[str, Any] | None:
        occ = self.occurrences.get((campaign_id, occurrence))
        return dict(occ) if occ is not None else None

    def add_counts(
        self, campaign_id: str, occurrence: str, counts: Mapping[str, int], once: str | None = None
    ) -> dict[str, int]:
        occ = self.occurrences[(campaign_id, occurrence)]
        if once is None or (campaign_id, occurrence, once) not in self.added:
            for k, v in counts.items():
                occ[k] = int(occ.get(k, 0)) + v
            if once is not None:
                self.added.add((campaign_id, occurrence, once))
        return {k: int(v) for k, v in occ.items() if isinstance(v, int)}

    def add_batch_counts(
        self,
        campaign_id: str,
        occurrence: str,
        batch: str,
        counts: Mapping[str, int],
        token: str,
        now: datetime,
    ) -> bool:
        """As CampaignStore's: the counts added once per batch, the first token's."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return True
        key = (campaign_id, occurrence, batch)
        if key in self.counted:
            return self.counted[key] == token
        self.counted[key] = token
        occ = self.occurrences.setdefault((campaign_id, occurrence), {})
        for k, v in counts.items():
            occ[k] = int(occ.get(k, 0)) + v
        return True

    def stop_occurrence(
        self, campaign_id: str, occurrence: str, reason: str, now: datetime, status: str = "stopped"
    ) -> bool:
        occ = self.occurrences.get((campaign_id, occurrence))
        if occ is None or occ["status"] != "running":
            return False
        occ.update(status=status, stop_reason=reason, stopped_at=now.isoformat())
        return True

    def set_winner(
        self, campaign_id: str, occurrence: str, winner: str, reason: str, *, decided: bool
    ) -> bool:
        occ = self.occurrences.get((campaign_id, occurrence))
        if occ is None or "winner" in occ:
            return False
        occ.update(winner=winner, winner_reason=reason, winner_decided=decided)
        return True

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
        if winner is not None and decided is None:
            raise ValueError("a final look's winner needs decided (did the test choose it?)")
        occ = self.occurrences.get((campaign_id, occurrence))
        looks = list(occ.get("looks", [])) if occ is not None else []
        if occ is None or "winner" in occ or len(looks) != number - 1:
            return False
        occ["looks"] = [*looks, json.loads(json.dumps(dict(look)))]
        occ.pop("next_look_at", None)
        if next_look_at is not None:
            occ["next_look_at"] = iso(next_look_at)
        if winner is not None:
            occ.update(winner=winner, winner_reason=reason or "", winner_decided=decided)
        return True

    def complete_occurrence(self, campaign_id: str, occurrence: str, now: datetime) -> bool:
        occ = self.occurrences[(campaign_id, occurrence)]
        occ["completed_at"] = now.isoformat()
        if occ["status"] != "running":
            return False
        occ["status"] = "done"
        return True


class MemoryManifest:
    """The analytics bucket's objects (kizuna.ports.Manifest)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_lines(self, key: str, lines: Sequence[Mapping[str, Any]]) -> None:
        self.objects[key] = "".join(json.dumps(dict(line)) + "\n" for line in lines).encode()

    def get_lines(self, key: str) -> list[dict[str, Any]] | None:
        if key not in self.objects:
            return None
        body = self.objects[key].decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.keys(prefix)
        for key in keys:
            del self.objects[key]
        return len(keys)


class MemoryCampaignEvents:
    def __init__(self) -> None:
        self.events: list[CampaignEvent] = []

    def publish(self, event: CampaignEvent) -> bool:
        self.events.append(event)
        return True
