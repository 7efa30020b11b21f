"""In-memory stand-ins for the ports, for unit tests and dry runs (no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kizuna.activity import ActivityItem
from kizuna.customer import Customer
from kizuna.events import DerivedEvent
from kizuna.ports import DeadLetter, VersionConflict


class MemoryStore:
    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.activity: dict[tuple[str, str], ActivityItem] = {}
        self.saves = 0

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

    def put_activity(self, items: Iterable[ActivityItem]) -> None:
        for item in items:
            self.activity[(item.customer_id, item.sk)] = item


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
