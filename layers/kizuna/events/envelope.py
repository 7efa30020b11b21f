"""From an EventBridge event (as the ingest queue delivers it) to a validated inbound event."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kizuna.domain.customer import MAX_ATTRIBUTES_BYTES, attribute_values, attributes_size
from kizuna.domain.timestamps import iso
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.inbound import ERASE_TYPE, InboundDetail
from kizuna.runtime.config import EventTimeConfig

D = TypeVar("D", bound=BaseModel)


class EventRejected(Exception):
    """An event that can never be processed as it is: it goes to the dead-letter queue."""

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.error_type = error_type
        self.reason = reason


class ParsedEvent(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    event_id: str
    detail_type: str
    source: str
    time: datetime
    detail: InboundDetail

    @property
    def customer_id(self) -> str:
        return self.detail.customer_id


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """A readable reason without the offending values (they may be personal data)."""
    parts = []
    errors = error.errors(include_input=False, include_url=False)
    inner = {tuple(e["loc"][:n]) for e in errors for n in range(len(e["loc"]))}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in inner:
            continue  # "at least 1 item" only because an item was invalid: that error says why
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{loc}: {err['msg']}" if loc else f"{prefix}{err['msg']}")
    return "; ".join(parts)


class Envelope(BaseModel):
    """The EventBridge event fields Kizuna relies on (account, region and resources are
    optional: replay tools and some emulators leave them out)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    time: datetime
    detail: dict[str, Any]


def parse_envelope(raw: str | dict[str, Any]) -> Envelope:
    try:
        if isinstance(raw, str):
            return Envelope.model_validate_json(raw)
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise EventRejected("InvalidEnvelope", describe_validation_error(exc)) from exc


def validate_detail(envelope: Envelope, model: type[D]) -> D:
    """The envelope's detail as ``model``; raise EventRejected (``InvalidEvent``) if it is not."""
    try:
        return model.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejected(
            "InvalidEvent", f"{envelope.detail_type}: {describe_validation_error(exc, 'detail.')}"
        ) from exc


# The ``detail.source`` words of the consent facts Kizuna's own functions report (the proof
# of consent the CONSENT rows keep), with the event source they come under (a bus policy
# keeps sources ``kizuna.*`` to those functions, infra/kizuna_infra/bus.py): under any
# other source the event is refused, so a producer cannot write a change that reads as the
# customer's click on the hosted page or a LINE block.
KIZUNA_DETAIL_SOURCES: Final[dict[str, str]] = {
    "unsubscribe_link": "kizuna.unsubscribe",
    "preference_page": "kizuna.unsubscribe",
    "line_webhook": "kizuna.line",
}


def check_detail_source(envelope_source: str, detail_type: str, detail: BaseModel) -> None:
    """Raise EventRejected (``ReservedSource``) if ``detail.source`` is one of Kizuna's own
    words (:data:`KIZUNA_DETAIL_SOURCES`) and the event does not come from that function."""
    claimed = getattr(detail, "source", None)
    wanted = KIZUNA_DETAIL_SOURCES.get(claimed) if isinstance(claimed, str) else None
    if wanted is not None and envelope_source != wanted:
        raise EventRejected(
            "ReservedSource",
            f"{detail_type}: detail.source {claimed!r} is reported only by Kizuna's own "
            f"{wanted} (give your own word, e.g. 'app_settings')",
        )


def check_attributes(detail_type: str, detail: BaseModel) -> None:
    """Raise EventRejected (``InvalidEvent``, naming ``detail.attributes``) if the custom
    attributes of one event are over :data:`~kizuna.domain.customer.MAX_ATTRIBUTES_BYTES`
    (the customer item's budget for them, see docs/ARCHITECTURE.md "A bounded customer
    item"); the fold checks the customer's total again (an event may add to stored ones)."""
    values = attribute_values(getattr(detail, "attributes", None))
    if values and attributes_size(values) > MAX_ATTRIBUTES_BYTES:
        raise EventRejected(
            "InvalidEvent",
            f"{detail_type}: detail.attributes: over {MAX_ATTRIBUTES_BYTES} bytes "
            "(names and values as UTF-8 JSON)",
        )


def check_occurred_at(
    detail_type: str, occurred_at: datetime, now: datetime, limits: EventTimeConfig
) -> None:
    """Raise EventRejected (``InvalidEvent``, naming ``detail.occurred_at``) if the time is
    more than ``limits.max_future_skew`` ahead of ``now`` or more than ``limits.max_age``
    behind it. The reason gives the limit, never the customer's data."""
    if occurred_at > now + limits.max_future_skew:
        raise EventRejected(
            "InvalidEvent",
            f"{detail_type}: detail.occurred_at: more than {limits.max_future_skew_seconds} s "
            f"in the future of the receiver's clock ({iso(now)}); "
            "see event_time.max_future_skew_seconds",
        )
    if occurred_at < now - limits.max_age:
        raise EventRejected(
            "InvalidEvent",
            f"{detail_type}: detail.occurred_at: more than {limits.max_age_days} days "
            f"in the past of the receiver's clock ({iso(now)}); see event_time.max_age_days",
        )


def parse_inbound(
    raw: str | dict[str, Any],
    now: datetime | None = None,
    limits: EventTimeConfig | None = None,
    vocab: Vocabulary = BUILTIN,
) -> ParsedEvent:
    """Validate an EventBridge event carrying an inbound detail; raise EventRejected if bad.

    ``vocab`` is the configuration's vocabulary (:func:`kizuna.events.custom.vocabulary`):
    its custom events and ``customer.upserted``'s ``attributes`` as declared. The default,
    :data:`~kizuna.events.custom.BUILTIN`, declares none: an ``attributes`` object or a
    custom event is then rejected. With ``now`` (the receiver's clock), ``occurred_at`` must
    also lie within ``limits`` (:class:`~kizuna.runtime.config.EventTimeConfig`; its
    defaults if not given)."""
    envelope = parse_envelope(raw)
    model = vocab.inbound_model(envelope.detail_type)
    if model is None:
        raise EventRejected(
            "UnknownEventType", f"detail-type {envelope.detail_type!r} is not inbound"
        )
    detail = validate_detail(envelope, model)
    check_attributes(envelope.detail_type, detail)
    check_detail_source(envelope.source, envelope.detail_type, detail)
    if now is not None:
        check_occurred_at(
            envelope.detail_type, detail.occurred_at, now, limits or EventTimeConfig()
        )
    return ParsedEvent(
        event_id=envelope.id,
        detail_type=envelope.detail_type,
        source=envelope.source,
        time=envelope.time,
        detail=detail,
    )


# Source of the erasure sweeps' events (kizuna.domain.privacy), which Scheduler puts on the
# ingest queue directly (not through the bus). It grants nothing: ingest treats a sweep as
# any ``customer.erase`` (a producer may send this source too; it erases what it names).
SWEEP_SOURCE = "kizuna.privacy"


def erasure_sweep_event(customer_id: str, at: datetime) -> str:
    """The ``customer.erase`` event of an erasure's sweep, due at ``at``, as the ingest queue
    delivers an event from the bus (:func:`parse_inbound` reads it). Its id is a digest, so
    the id is not repeated in clear outside the detail."""
    digest = hashlib.sha256(f"kizuna-sweep\x1f{customer_id}\x1f{iso(at)}".encode()).hexdigest()
    return json.dumps(
        {
            "version": "0",
            "id": f"sweep-{digest[:32]}",
            "detail-type": ERASE_TYPE,
            "source": SWEEP_SOURCE,
            "time": iso(at),
            "resources": [],
            "detail": {"schema_version": 1, "customer_id": customer_id, "occurred_at": iso(at)},
        }
    )
