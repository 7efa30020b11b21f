"""The collaborators domain code needs, as small protocols. Adapters for AWS live in
:mod:`kizuna.adapters.dynamodb` and :mod:`kizuna.integrations`; tests use the in-memory fakes in
:mod:`kizuna_tools.fakes`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import Customer
from kizuna.events import DerivedEvent, InboundDetail


class VersionConflict(Exception):
    """Someone else saved the customer since it was read."""


class CustomerStore(Protocol):
    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]: ...

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        """Save with optimistic concurrency; return the saved customer (version bumped)."""
        ...

    def put_activity(self, items: Iterable[ActivityItem]) -> None: ...

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        """Ids erased recently, as of ``now`` (kizuna.domain.privacy): events for them must
        not re-create them."""
        ...


class Inbound(Protocol):
    """Puts facts Kizuna learns about a customer (``channel.suppressed``,
    ``device.unregistered``, ``consent.changed``) on the bus as inbound events, so ingest
    stays the only writer of the customer item."""

    def put_inbound(self, detail: InboundDetail) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        """Put events on the bus; return the indexes of those that could not be put."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    error_type: str
    reason: str
    receive_count: int


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Keep letters with their reason; return message ids that could not be kept."""
        ...
