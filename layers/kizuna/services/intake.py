"""The shop's events put through the HTTP API (``POST /machine/events``): each validated as
ingest validates it (the inbound models of :mod:`kizuna.events.inbound`, the custom attributes
and events the configuration declares (:mod:`kizuna.events.custom`), the size of an event's
attributes and the event-time window, against the API's clock), the valid ones put on the
bus under the shop's source (ingest then folds them as any producer's), every one answered
by its index: accepted with the bus's event id, rejected with the field and the reason, or
failed (the bus refused it: send it again). Nothing is dropped silently.

A client's retry of a whole batch is absorbed downstream: ingest applies every inbound
event by its own keys (an order by ``order_id`` and content, a cancellation by ``order_id``
and time, a refund by ``order_id`` and ``refund_id``, points by ``adjustment_id``, a cart
by its content, consent, profile, devices and LINE by value and ``occurred_at``), so the
same event twice changes nothing and derives nothing twice. Only the behaviour rows of
``product.viewed`` and ``app.opened`` (90-day activity) and custom events (their rows, and
the behaviour counters of those events) are keyed by the bus's event id: a retried view may
be listed, and counted, twice, unless the event carries the producer's ``idempotency_key``
(then by a digest of customer, type and key: :func:`kizuna.events.envelope.fact_id`). Each
accepted event is answered with both ids: the one Kizuna records it under (``event_id``:
the ledger, activity rows, execution names; the same for every put of a keyed event) and
the bus's id of this put (``bus_event_id``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from pydantic import ValidationError

from kizuna.events import PreferencesChanged
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.envelope import EventRejected, check_attributes, check_occurred_at, fact_id
from kizuna.events.inbound import InboundDetail
from kizuna.ports import ShopEvents
from kizuna.runtime.config import EventTimeConfig

MAX_EVENTS: Final = 100
ENTRY_KEYS: Final = frozenset({"detail-type", "detail"})


@dataclass(frozen=True)
class EventResult:
    index: int
    status: Literal["accepted", "rejected", "failed"]
    event_id: str | None = None
    bus_event_id: str | None = None
    detail_type: str | None = None
    field: str | None = None
    reason: str | None = None


@dataclass
class IntakeResult:
    results: list[EventResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def _rejected(index: int, where: str, reason: str, detail_type: str | None = None) -> EventResult:
    return EventResult(
        index, "rejected", detail_type=detail_type, field=f"events[{index}]{where}", reason=reason
    )


def _number(value: Any) -> Any:
    """A JSON number read as Decimal, written back as the same value."""
    if isinstance(value, Decimal):
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise ValueError("a number with more precision than the bus carries")
        return as_float
    raise TypeError(type(value).__name__)


class EventIntake:
    def __init__(
        self,
        bus: ShopEvents,
        limits: EventTimeConfig,
        now: Callable[[], datetime],
        vocab: Vocabulary = BUILTIN,
    ) -> None:
        self.bus = bus
        self.limits = limits
        self.now = now
        self.vocab = vocab  # the configuration's (kizuna.events.custom.vocabulary), as ingest's

    def validate(
        self, index: int, raw: Any, now: datetime
    ) -> EventResult | tuple[str, str, InboundDetail]:
        """The entry to put (detail-type, detail JSON, and the detail as read), or why it is
        rejected. Values are never echoed (they may be personal data): the reason names the
        field and the rule."""
        if not isinstance(raw, dict):
            return _rejected(index, "", "an event is an object with detail-type and detail")
        unknown = sorted(set(raw) - ENTRY_KEYS)
        if unknown:
            return _rejected(index, f".{unknown[0]}", "unknown field (detail-type, detail only)")
        detail_type = raw.get("detail-type")
        if not isinstance(detail_type, str):
            return _rejected(index, ".detail-type", "required: the event's name")
        model = self.vocab.inbound_model(detail_type)
        if model is None:
            return _rejected(index, ".detail-type", "not an inbound event type (docs/EVENTS.md)")
        detail = raw.get("detail")
        if not isinstance(detail, dict):
            return _rejected(index, ".detail", "required: an object", detail_type)
        try:
            parsed = model.model_validate(detail)
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            return _rejected(index, f".detail{loc}", str(first["msg"]), detail_type)
        try:
            check_attributes(detail_type, parsed)
        except EventRejected as error:
            reason = error.reason.split("detail.attributes: ", 1)[-1]
            return _rejected(index, ".detail.attributes", reason, detail_type)
        if isinstance(parsed, PreferencesChanged):
            problem = self.vocab.preferences.choice_problem(parsed.topics)
            if problem is not None:
                return _rejected(index, f".detail.topics.{problem[0]}", problem[1], detail_type)
        try:
            check_occurred_at(detail_type, parsed.occurred_at, now, self.limits)
        except EventRejected as error:
            reason = error.reason.split("detail.occurred_at: ", 1)[-1]
            return _rejected(index, ".detail.occurred_at", reason, detail_type)
        try:
            body = json.dumps(detail, default=_number, ensure_ascii=False, separators=(",", ":"))
        except ValueError as error:
            return _rejected(index, ".detail", str(error), detail_type)
        return detail_type, body, parsed

    def accept(self, events: Sequence[Any]) -> IntakeResult:
        """Every event answered, in order; the valid ones on the bus."""
        if len(events) > MAX_EVENTS:
            raise ValueError(f"at most {MAX_EVENTS} events a request")
        now = self.now()
        answers: dict[int, EventResult] = {}
        valid: list[tuple[int, tuple[str, str, InboundDetail]]] = []
        for index, raw in enumerate(events):
            checked = self.validate(index, raw, now)
            if isinstance(checked, EventResult):
                answers[index] = checked
            else:
                valid.append((index, checked))
        entries = [(detail_type, body) for _, (detail_type, body, _) in valid]
        outcomes = self.bus.put(entries) if valid else []
        for (index, (detail_type, _, detail)), outcome in zip(valid, outcomes, strict=True):
            if outcome.event_id is not None:
                answers[index] = EventResult(
                    index,
                    "accepted",
                    event_id=fact_id(outcome.event_id, detail_type, detail),
                    bus_event_id=outcome.event_id,
                    detail_type=detail_type,
                )
            else:
                reason = f"{outcome.error_code}: {outcome.error_message or ''}".rstrip(": ")
                answers[index] = EventResult(
                    index, "failed", detail_type=detail_type, reason=reason
                )
        return IntakeResult([answers[i] for i in range(len(events))])
