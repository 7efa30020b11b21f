"""From an EventBridge event (as the ingest queue delivers it) to a validated inbound event."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kizuna.domain import strict_json
from kizuna.domain.customer import (
    MAX_ATTRIBUTES_BYTES,
    attribute_values,
    within_attributes_budget,
)
from kizuna.domain.timestamps import iso
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.inbound import ERASE_TYPE, INBOUND_MODELS, InboundDetail
from kizuna.runtime.config import EventTimeConfig

D = TypeVar("D", bound=BaseModel)


class EventRejected(Exception):
    """An event that can never be processed as it is: it goes to the dead-letter queue.

    ``reason`` is the dead letter's (it may quote what the producer sent where that is the
    point, an unknown detail-type); ``logged`` is the same in Kizuna's words only, for a log
    line (docs/ARCHITECTURE.md, "Privacy"): by default the reason, which names fields, never
    their values."""

    def __init__(self, error_type: str, reason: str, logged: str | None = None) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.error_type = error_type
        self.reason = reason
        self.logged = reason if logged is None else logged


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


def describe_validation_error(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """A readable reason without the offending values (they may be personal data).

    Each error names where it is (``detail.lines.0.quantity``). With ``model`` (the model
    validated), a place is named only by Kizuna's own field names: the key of a free-form
    object (a topic's name, a channel that is none) reads ``<key>``, a field the model does
    not declare (an undeclared attribute, a typo) ``<extra>`` unless it is a field of one
    of Kizuna's inbound events (``attributes``, ``token``). Without it, every place is named
    as pydantic gives it (the importer's report, read by whoever owns the file)."""
    parts = []
    errors = error.errors(include_input=False, include_url=False)
    inner = {tuple(e["loc"][:n]) for e in errors for n in range(len(e["loc"]))}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in inner:
            continue  # "at least 1 item" only because an item was invalid: that error says why
        loc = ".".join(_safe_loc(err["loc"], model))
        parts.append(f"{prefix}{loc}: {err['msg']}" if loc else f"{prefix}{err['msg']}")
    return "; ".join(parts)


def safe_places(error: ValidationError, model: type[BaseModel]) -> tuple[str, ...]:
    """Where ``error``'s errors are (``mail.tags.<key>``), named only by ``model``'s own
    field names (as :func:`describe_validation_error` names them): for a log line."""
    errors = error.errors(include_input=False, include_url=False)
    return tuple(dict.fromkeys(".".join(_safe_loc(e["loc"], model)) for e in errors))


_LOST = object()  # the walk of _safe_loc no longer knows the type at this place
# Field names of Kizuna's own events: one sent where it does not belong (``attributes``
# without declarations, ``token`` in ``app.opened``) is named, not hidden as ``<extra>``.
# An undeclared field named like a field (lower case, digits, underscores: ``newsleter``,
# ``colour``) is named, to be fixed; anything else (an address, a name, a phone) is not.
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_OWN_FIELDS = frozenset(
    {"attributes", *(name for m in INBOUND_MODELS.values() for name in m.model_fields)}
)


def _unwrap(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and without ``None`` of an optional."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType) and type(None) in get_args(tp):
            rest = tuple(a for a in get_args(tp) if a is not type(None))
            tp = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 - built at run time
        else:
            return tp


def _declared_key(key_type: Any, key: str) -> bool:
    """Is ``key`` one of the closed set of keys ``key_type`` allows (an enum, a Literal)?"""
    key_type = _unwrap(key_type)
    if isinstance(key_type, type) and issubclass(key_type, Enum):
        return key in {str(m.value) for m in key_type}
    if get_origin(key_type) is Literal:
        return key in {str(a) for a in get_args(key_type)}
    return False


def _model_field(model: type[BaseModel], name: str) -> Any:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info.annotation
    return _LOST


def _safe_loc(loc: tuple[int | str, ...], model: Any) -> list[str]:
    """``loc`` with every part that is not Kizuna's (a free-form key, an unknown field)
    replaced (see :func:`describe_validation_error`), walking ``model``'s types."""
    if model is None:
        return [str(part) for part in loc]
    tp: Any = model
    parts: list[str] = []
    for i, part in enumerate(loc):
        failed_key = i + 1 < len(loc) and loc[i + 1] == "[key]"
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(part, int):
            parts.append(str(part))
            args = get_args(tp)
            if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
                tp = args[0]
            elif origin in (list, tuple, Sequence, set, frozenset) and args:
                tp = args[min(part, len(args) - 1)] if origin is tuple else args[0]
            else:
                tp = _LOST
        elif part == "[key]":
            parts.append(part)
            tp = _LOST
        elif failed_key:
            parts.append("<key>")
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = _model_field(tp, part)
            named = tp is not _LOST or part in _OWN_FIELDS or _PLAIN_NAME.fullmatch(part)
            parts.append(part if named else "<extra>")
        elif origin in (dict, Mapping):
            key_type, tp = get_args(tp) or (Any, Any)
            parts.append(part if _declared_key(key_type, part) else "<key>")
        elif origin in (Union, UnionType):
            parts.append(part)  # pydantic's name of a union member (``int``, ``list[str]``)
            tp = next((a for a in get_args(tp) if getattr(a, "__name__", None) == part), _LOST)
        else:  # a place the walk cannot vouch for
            parts.append("<key>")
            tp = _LOST
    return parts


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
    """The event's envelope; EventRejected (``InvalidEnvelope``) if it is not one, if a
    number in it is ``NaN`` or ``Infinity`` (not JSON, which pydantic's parser reads), or if
    an object in it gives a key twice (which value a reader takes is the reader's:
    EventBridge's rule matching could read one, ingest another). The reason does not name
    the key (a free-form key can be personal data)."""
    if isinstance(raw, str):
        try:
            strict_json.loads(raw)
        except strict_json.RepeatedKey:
            reason = "an object in the event gives a key twice"
            raise EventRejected("InvalidEnvelope", reason) from None
        except strict_json.NotJsonNumber:  # pydantic's parser would read it
            reason = "a number in the event is NaN or Infinity (not JSON)"
            raise EventRejected("InvalidEnvelope", reason) from None
        except (ValueError, RecursionError):
            pass  # not JSON: pydantic says where, below
    try:
        if isinstance(raw, str):
            return Envelope.model_validate_json(raw)
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise EventRejected(
            "InvalidEnvelope", describe_validation_error(exc, "", Envelope)
        ) from exc


def validate_detail(envelope: Envelope, model: type[D]) -> D:
    """The envelope's detail as ``model``; raise EventRejected (``InvalidEvent``) if it is not."""
    try:
        return model.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejected(
            "InvalidEvent",
            f"{envelope.detail_type}: {describe_validation_error(exc, 'detail.', model)}",
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
    if values and not within_attributes_budget(values):
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


def fact_id(envelope_id: str, detail_type: str, detail: InboundDetail) -> str:
    """The id that identifies an inbound event everywhere after the bus (idempotency, the
    ledger, execution names): EventBridge's id, or, when the producer gave an
    ``idempotency_key``, a digest of the customer, the detail-type and the key, so the same
    event put again (under a new EventBridge id) is recognised. Per customer and type: one
    producer's key can never stand for another customer's event."""
    if detail.idempotency_key is None:
        return envelope_id
    parts = f"{detail.customer_id}\x1f{detail_type}\x1f{detail.idempotency_key}"
    return f"key-{hashlib.sha256(parts.encode()).hexdigest()[:32]}"


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
            "UnknownEventType",
            f"detail-type {envelope.detail_type!r} is not inbound",
            "the detail-type is not inbound",  # the producer's text: not in a log line
        )
    detail = validate_detail(envelope, model)
    check_attributes(envelope.detail_type, detail)
    check_detail_source(envelope.source, envelope.detail_type, detail)
    if now is not None:
        check_occurred_at(
            envelope.detail_type, detail.occurred_at, now, limits or EventTimeConfig()
        )
    return ParsedEvent(
        event_id=fact_id(envelope.id, envelope.detail_type, detail),
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
