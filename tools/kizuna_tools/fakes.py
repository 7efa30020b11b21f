"""In-memory stand-ins for the ports, for unit tests and dry runs (no AWS)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import Customer
from kizuna.events import DerivedEvent, InboundDetail, inbound_type
from kizuna.ports import DeadLetter, VersionConflict
from kizuna.programs.journeys import JourneyState


class MemoryStore:
    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.activity: dict[tuple[str, str], ActivityItem] = {}
        self.journeys: dict[tuple[str, str], JourneyState] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.saves = 0
        self.erased_ids: set[str] = set()

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
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

    def sample_customers(self, segment: int, total_segments: int, limit: int) -> list[Customer]:
        return list(itertools.islice(self.scan_customers(segment, total_segments), limit))

    def put_activity(self, items: Iterable[ActivityItem]) -> None:
        for item in items:
            self.activity[(item.customer_id, item.sk)] = item

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
        self, customer_id: str, execution: str, step: str, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        key = (customer_id, f"MSG#{execution}#{step}")
        existing = self.messages.get(key)
        if existing is not None and existing.get("status") != "deferred":
            return dict(existing)
        self.messages[key] = dict(data)
        return None

    def record_message(
        self, customer_id: str, execution: str, step: str, data: dict[str, Any]
    ) -> None:
        self.messages[(customer_id, f"MSG#{execution}#{step}")] = dict(data)

    def stamp_message(
        self, customer_id: str, execution: str, step: str, field: str, value: str
    ) -> bool:
        entry = self.messages.get((customer_id, f"MSG#{execution}#{step}"))
        if entry is None:
            return False
        entry[field] = value
        return True

    def sent_times(self, customer_id: str, since: str) -> list[str]:
        return [
            str(m["sent_at"])
            for (cid, _), m in self.messages.items()
            if cid == customer_id and m.get("status") == "sent" and str(m["sent_at"]) >= since
        ]

    def customers_by_phone_hash(self, phone_hash: str) -> list[str]:
        return [cid for cid, c in sorted(self.customers.items()) if c.phone_hash == phone_hash]

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

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        if name in self.started:
            return False
        self.started[name] = (program_id, payload)
        return True


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
