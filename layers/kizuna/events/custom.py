"""The shop's own vocabulary: custom attributes and custom events, declared in configuration
(``custom`` in :class:`~kizuna.runtime.config.KizunaConfig`).

A :class:`Vocabulary` is built once from the configuration and answers every question a
path that accepts or names events and fields asks: which model validates a detail-type
(:meth:`Vocabulary.inbound_model`, built-in or custom; ``customer.upserted`` with its
``attributes`` typed by the declarations), which events exist, inbound or derived
(:meth:`Vocabulary.model_of`), which custom attributes and counted events a condition on the
customer view may name (:meth:`Vocabulary.view_attribute_fields`,
:meth:`Vocabulary.behaviour_fields`). Given the vocabulary, :func:`kizuna.events.detail_fields`
(``detail_fields(detail_type, vocab)``) gives the fields a condition on an event may name,
and :func:`kizuna.programs.view.view_fields` (``view_fields(vocab)``) the customer view's,
with ``attributes`` and ``behaviour``.
:data:`BUILTIN` is the vocabulary of an empty declaration: an attribute or a custom event is
then an error, as before there were any.

Custom attributes travel in ``customer.upserted`` as ``attributes: {name: value}`` (``null``
clears one); an undeclared name, a wrong type, a value outside the enum or over a size is
rejected with the attribute's name. Custom events are ``InboundDetail`` subclasses built
with :func:`pydantic.create_model`, so they are validated, dead-lettered and folded like the
built-in ones (unknown fields rejected).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    create_model,
)

from kizuna.domain.customer import BehaviourCounter
from kizuna.domain.privacy import DIRECT_IDENTIFIER_FIELDS
from kizuna.events.derived import DERIVED_MODELS, Configured
from kizuna.events.inbound import (
    INBOUND_MODELS,
    TEXT_PATTERN,
    CustomerUpserted,
    DayText,
    InboundDetail,
    Time,
)
from kizuna.runtime.config import (
    CustomConfig,
    CustomValueSpec,
    KizunaConfig,
    LoyaltyConfig,
    PreferencesConfig,
    ScoringConfig,
    ValueType,
)

# The rank and RFM segment names of a configuration that leaves them out.
DEFAULT_RANK_NAMES = tuple(rank.name for rank in LoyaltyConfig().ranks)
DEFAULT_RFM_SEGMENTS = tuple(dict.fromkeys(rule.segment for rule in ScoringConfig().segments))


def _bounded(value: Decimal) -> Decimal:
    if not value.is_finite():  # NaN cannot even be compared: refuse it before anything
        raise ValueError("a finite number (not NaN or Infinity)")
    if not Decimal("-1e12") <= value <= Decimal("1e12"):
        raise ValueError("a number within -1e12..1e12")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise ValueError("at most 6 decimals")
    return value


# Numbers a custom attribute or field may hold (DynamoDB keeps 38 digits; EventBridge numeric
# matching is exact within +-5e9, see kizuna.programs.pattern_rules).
# A JSON number, never a string ("1" is refused: nothing is silently converted), and never
# NaN or Infinity (Python's json reads them; they are not JSON numbers).
CustomNumber = Annotated[
    StrictInt | StrictFloat,
    AfterValidator(lambda v: Decimal(str(v))),
    AfterValidator(_bounded),
]

ATTRIBUTES_FIELD = "attributes"  # the customer view's object of custom attributes
BEHAVIOUR_FIELD = "behaviour"  # the customer view's object of per-event counters
TOTAL = "total"  # behaviour.<event>.total: occurrences kept (see MAX_OCCURRENCES)
DAYS_SINCE = "days_since_last"  # behaviour.<event>.days_since_last (absent if never)
MAX_OCCURRENCES = 100  # per event and customer: counts saturate here (documented)


def count_field(days: int) -> str:
    """``count_14d``: the view field counting an event over the last ``days`` days."""
    return f"count_{days}d"


def counter_view(
    counter: BehaviourCounter | None, windows: tuple[int, ...], now: datetime
) -> dict[str, int]:
    """One event's counters as the customer view shows them at ``now``: ``count_<N>d`` counts
    the occurrences with ``now - N days < occurred_at <= now`` (exact to the second, up to
    MAX_OCCURRENCES), ``total`` every occurrence folded, ``days_since_last`` whole days since
    the latest (absent if never)."""
    recent = counter.recent if counter else []
    end = int(now.timestamp())
    view = {
        count_field(days): sum(1 for t in recent if end - days * 86_400 < t <= end)
        for days in windows
    }
    view[TOTAL] = counter.total if counter else 0
    if counter is not None and counter.last_at is not None:
        view[DAYS_SINCE] = (now - counter.last_at).days
    return view


class CustomEventDetail(InboundDetail):
    """Base of every custom event's detail model (one subclass per declared event)."""


def value_annotation(spec: CustomValueSpec) -> Any:
    """The pydantic type a declared value is validated with (``None`` not included)."""
    text = StringConstraints(max_length=spec.max_length, pattern=TEXT_PATTERN)
    match spec.type:
        case ValueType.STRING:
            return Literal[spec.enum] if spec.enum else Annotated[str, text]
        case ValueType.STRING_LIST:
            item: Any = Literal[spec.enum] if spec.enum else Annotated[str, text]
            return Annotated[tuple[item, ...], Field(max_length=spec.max_items)]
        case ValueType.NUMBER:
            return CustomNumber
        case ValueType.BOOLEAN:
            return StrictBool
        case ValueType.DATE:
            return DayText
        case ValueType.DATETIME:
            return Time
    raise ValueError(spec.type)  # pragma: no cover - the enum is closed


def _text(spec: CustomValueSpec) -> str | None:
    """A declaration's description for its JSON Schema; None (no ``description``) when empty."""
    return spec.description or None


class Vocabulary:
    """Built-in plus declared events and attributes (immutable; build with :func:`vocabulary`),
    and the names the configuration gives ranks and RFM segments (what conditions compare
    ``rank``, ``to_rank``, ``rfm_segment``... with)."""

    def __init__(
        self,
        custom: CustomConfig,
        preferences: PreferencesConfig | None = None,
        *,
        ranks: tuple[str, ...] = DEFAULT_RANK_NAMES,
        rfm_segments: tuple[str, ...] = DEFAULT_RFM_SEGMENTS,
    ) -> None:
        self.custom = custom
        # the preference topics programs and campaigns may name (docs/PREFERENCES.md)
        self.preferences = preferences if preferences is not None else PreferencesConfig()
        self._configured = {Configured.RANK: ranks, Configured.RFM_SEGMENT: rfm_segments}
        self.attributes = {a.name: a for a in custom.attributes}
        self.events = {e.detail_type: e for e in custom.events}
        self._personal_attributes = frozenset(a.name for a in custom.attributes if a.personal)
        clash = sorted(set(self.events) & (set(INBOUND_MODELS) | set(DERIVED_MODELS)))
        if clash:
            raise ValueError(f"custom events reuse built-in detail-types: {clash}")
        self.windows: dict[str, tuple[int, ...]] = {
            **{t.detail_type: t.windows_days for t in custom.tracked},
            **{e.detail_type: e.windows_days for e in custom.events},
        }
        self._models: dict[str, type[InboundDetail]] = dict(INBOUND_MODELS)
        self._models["customer.upserted"] = self._upserted_model()
        for event in custom.events:
            self._models[event.detail_type] = self._event_model(event.detail_type)

    # -- models --------------------------------------------------------------------------
    def _upserted_model(self) -> type[CustomerUpserted]:
        if not self.attributes:
            return CustomerUpserted
        fields: dict[str, Any] = {
            a.name: (value_annotation(a) | None, Field(default=None, description=_text(a)))
            for a in self.attributes.values()
        }
        attrs = create_model(
            "CustomAttributes",
            __config__=ConfigDict(extra="forbid", frozen=True),
            **fields,
        )
        return create_model(
            "CustomerUpserted",
            __base__=CustomerUpserted,
            attributes=(
                attrs | None,
                Field(
                    default=None,
                    description="custom attributes as declared (null clears one)",
                ),
            ),
        )

    def _event_model(self, detail_type: str) -> type[CustomEventDetail]:
        event = self.events[detail_type]
        fields: dict[str, Any] = {}
        for f in event.fields:
            annotation = value_annotation(f)
            if f.required:
                fields[f.name] = (annotation, Field(description=_text(f)))
            else:
                fields[f.name] = (annotation | None, Field(default=None, description=_text(f)))
        name = "".join(part.capitalize() for part in detail_type.replace("_", ".").split("."))
        return create_model(
            name, __base__=CustomEventDetail, __doc__=event.description or None, **fields
        )

    def inbound_model(self, detail_type: str) -> type[InboundDetail] | None:
        """The model validating an inbound detail-type (built-in or custom), or None."""
        return self._models.get(detail_type)

    @property
    def inbound_models(self) -> Mapping[str, type[InboundDetail]]:
        return self._models

    def model_of(self, detail_type: str) -> type[BaseModel] | None:
        """Inbound (custom included) or derived model of a detail-type."""
        return self._models.get(detail_type) or DERIVED_MODELS.get(detail_type)

    # -- what conditions may name --------------------------------------------------------
    def configured(self, kind: Configured) -> tuple[str, ...]:
        """The names the configuration gives ``kind`` (the ranks, the RFM segments)."""
        return self._configured[kind]

    def view_attribute_fields(self) -> dict[str, None]:
        """Custom attributes a condition may name (``attributes.<name>``): not personal ones."""
        return {a.name: None for a in self.attributes.values() if not a.personal}

    def behaviour_fields(self) -> dict[str, dict[str, None]]:
        """``behaviour.<event>.count_<N>d | total | days_since_last`` for every counted event."""
        return {
            event: {**{count_field(d): None for d in windows}, TOTAL: None, DAYS_SINCE: None}
            for event, windows in self.windows.items()
        }

    def personal_attributes(self) -> frozenset[str]:
        return self._personal_attributes

    def personal_fields(self, detail_type: str) -> frozenset[str]:
        """The top-level fields of a ``detail_type`` detail that are personal data: the direct
        identifiers wherever an event carries them
        (:data:`kizuna.domain.privacy.DIRECT_IDENTIFIER_FIELDS`), the fields the declared
        event marks ``personal``, and a field named as an attribute declared personal —
        but not a built-in event's own field of that name (``to_rank``, ``age``: the shop's
        attribute is not that field, and templates read it as ``trigger.<name>``)."""
        event = self.events.get(detail_type)
        declared = {f.name for f in event.fields if f.personal} if event else set()
        attributes = self.personal_attributes()
        model = None if event else self.model_of(detail_type)
        if model is not None:
            attributes -= set(model.model_fields)
        return DIRECT_IDENTIFIER_FIELDS | declared | attributes


@lru_cache(maxsize=8)
def _vocabulary(
    custom: CustomConfig,
    preferences: PreferencesConfig,
    ranks: tuple[str, ...] = DEFAULT_RANK_NAMES,
    rfm_segments: tuple[str, ...] = DEFAULT_RFM_SEGMENTS,
) -> Vocabulary:
    return Vocabulary(custom, preferences, ranks=ranks, rfm_segments=rfm_segments)


def vocabulary(cfg: KizunaConfig | CustomConfig | None = None) -> Vocabulary:
    """The vocabulary of a configuration (cached: configurations are immutable); of
    ``custom`` alone, with the default ranks and RFM segments."""
    if cfg is None:
        return BUILTIN
    if isinstance(cfg, KizunaConfig):
        ranks = tuple(rank.name for rank in cfg.loyalty.ranks)
        segments = tuple(dict.fromkeys(rule.segment for rule in cfg.scoring.segments))
        return _vocabulary(cfg.custom, cfg.preferences, ranks, segments)
    return _vocabulary(cfg, PreferencesConfig())


BUILTIN = Vocabulary(CustomConfig())
