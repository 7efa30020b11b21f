"""The customer as audience and branch conditions see it: a flat, JSON-like view.

Conditions are EventBridge patterns over this view, e.g.
``{"rank": ["Gold"], "lifecycle": ["repeat"], "consent": {"email": ["opted_in"]}}``.
No personal data is in it (no email, phone or name): a condition cannot leak them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from kizuna.domain.customer import Customer
from kizuna.events.custom import (
    ATTRIBUTES_FIELD,
    BEHAVIOUR_FIELD,
    BUILTIN,
    Vocabulary,
    counter_view,
    vocabulary,
)
from kizuna.events.derived import Configured
from kizuna.events.inbound import ConsentChannel, ConsentStatus, Gender
from kizuna.programs.pattern_rules import Fields
from kizuna.programs.patterns import matches
from kizuna.runtime.config import KizunaConfig, ValueType

# The view field listing the named segments (segments/*.yaml) a customer is in: a program's
# audience or branch says ``segments: [gold-at-risk, champions]`` (in any of them).
SEGMENTS_FIELD = "segments"

# What each field of the view holds, the names a condition may use with their values'
# type and, where the values are closed, what they can be: a stage, a band or a channel
# below, or the names the configuration gives (:class:`kizuna.events.derived.Configured`:
# the ranks, the RFM segments). A condition naming another field (``rnak``), or comparing
# one with a value it never holds (``lifecycle: [at-risk]``, ``order_count: ["2"]``), is
# refused at load (:mod:`kizuna.programs.view_rules`), since it would silently match nobody.
# Tests keep this in step with :func:`customer_view`.
LIFECYCLE_STAGES = ("prospect", "new", "repeat", "at_risk", "dormant")
AGE_BANDS = ("under20", "20s", "30s", "40s", "50s", "60s", "70plus")
# the channels reachable_channels looks at: an address of the customer's and an opt-in
REACHABLE_CHANNELS = ("email", "sms", "push", "line", "dm")
CONSENT_STATUSES = tuple(str(status) for status in ConsentStatus)

Values: TypeAlias = tuple[str, ...] | Configured | None
VIEW_VALUES: Mapping[str, tuple[ValueType, Values]] = {
    "customer_id": (ValueType.STRING, None),
    "rank": (ValueType.STRING, Configured.RANK),
    "next_rank": (ValueType.STRING, Configured.RANK),
    "rank_points": (ValueType.NUMBER, None),
    "points_to_next_rank": (ValueType.NUMBER, None),
    "points_balance": (ValueType.NUMBER, None),
    "order_count": (ValueType.NUMBER, None),
    "lifetime_value": (ValueType.NUMBER, None),
    "spend_12m": (ValueType.NUMBER, None),
    "days_since_last_order": (ValueType.NUMBER, None),
    "lifecycle": (ValueType.STRING, LIFECYCLE_STAGES),
    "region": (ValueType.STRING, None),
    "prefecture": (ValueType.STRING, None),
    "gender": (ValueType.STRING, tuple(str(gender) for gender in Gender)),
    "occupation": (ValueType.STRING, None),
    "locale": (ValueType.STRING, None),
    "time_zone": (ValueType.STRING, None),
    "age": (ValueType.NUMBER, None),
    "age_band": (ValueType.STRING, AGE_BANDS),
    "reachable": (ValueType.STRING_LIST, REACHABLE_CHANNELS),
    "cart_items": (ValueType.NUMBER, None),
    "rfm_segment": (ValueType.STRING, Configured.RFM_SEGMENT),
}
# the channels a customer consents to (a webhook goes to the shop's own endpoint), each
# holding a consent status
CONSENT_CHANNELS = tuple(str(channel) for channel in ConsentChannel)

# Every field of the view (``consent`` is an object of channels; ``segments`` names are
# checked against the segments defined).
VIEW_FIELDS: Fields = {
    **dict.fromkeys(VIEW_VALUES),
    SEGMENTS_FIELD: None,
    "consent": dict.fromkeys(CONSENT_CHANNELS),
}


def view_fields(vocab: Vocabulary | None = None) -> Fields:
    """The fields a condition may name with a shop's declarations: :data:`VIEW_FIELDS` plus
    ``attributes.<name>`` (declared, not personal) and ``behaviour.<event>.count_<N>d | total
    | days_since_last`` (custom and tracked events)."""
    vocab = vocab or BUILTIN
    return {
        **VIEW_FIELDS,
        ATTRIBUTES_FIELD: vocab.view_attribute_fields(),
        BEHAVIOUR_FIELD: vocab.behaviour_fields(),
    }


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def age_band(age: int | None) -> str | None:
    if age is None:
        return None
    if age < 20:
        return "under20"
    if age >= 70:
        return "70plus"
    return f"{age // 10 * 10}s"


def lifecycle(customer: Customer, now: datetime, cfg: KizunaConfig) -> str:
    if customer.order_count == 0 or customer.last_order_at is None:
        return "prospect"
    idle = (now - customer.last_order_at).days
    if idle >= cfg.lifecycle.dormant_after_days:
        return "dormant"
    if idle >= cfg.lifecycle.dormancy_risk_days:
        return "at_risk"
    return "new" if customer.order_count == 1 else "repeat"


def reachable_channels(customer: Customer) -> list[str]:
    """Channels with an address and an opt-in (suppressions are checked at send time)."""
    out = []
    addresses = {
        "email": customer.email,
        "sms": customer.phone,
        "push": bool(customer.devices) or None,
        "line": customer.line_user_id,
        "dm": customer.postal_address,
    }
    for channel, address in addresses.items():
        consent = customer.consent.get(channel)
        if address and consent is not None and consent.status == "opted_in":
            out.append(channel)
    return out


def customer_view(
    customer: Customer,
    now: datetime,
    cfg: KizunaConfig,
    segments: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The view; with ``segments`` (name -> conditions), also the names of those the
    customer is in, under :data:`SEGMENTS_FIELD` (a segment's conditions see the view
    without it: segments cannot refer to segments)."""
    view = _base_view(customer, now, cfg)
    view.update(_custom_view(customer, now, cfg))
    if segments:
        view[SEGMENTS_FIELD] = [name for name, cond in segments.items() if matches(cond, view)]
    return view


def _custom_view(customer: Customer, now: datetime, cfg: KizunaConfig) -> dict[str, Any]:
    """``attributes`` (declared and not personal; numbers as floats) and ``behaviour`` (every
    counted event, zero counts included, so "not done in 30 days" is ``count_30d: [0]``)."""
    vocab = vocabulary(cfg)
    shown = vocab.view_attribute_fields()
    attributes = {
        name: float(value) if isinstance(value, Decimal) else value
        for name, value in customer.attributes.items()
        if name in shown and value is not None
    }
    behaviour = {
        event: counter_view(customer.behaviour.get(event), windows, now)
        for event, windows in vocab.windows.items()
    }
    out: dict[str, Any] = {}
    if attributes:
        out[ATTRIBUTES_FIELD] = attributes
    if behaviour:
        out[BEHAVIOUR_FIELD] = behaviour
    return out


def _base_view(customer: Customer, now: datetime, cfg: KizunaConfig) -> dict[str, Any]:
    age = age_on(customer.birth_date, now.date()) if customer.birth_date else None
    days_since = (now - customer.last_order_at).days if customer.last_order_at else None
    view: dict[str, Any] = {
        "customer_id": customer.customer_id,
        "rank": customer.rank,
        "next_rank": customer.next_rank,
        "rank_points": customer.rank_points,
        "points_to_next_rank": customer.points_to_next_rank,
        "points_balance": customer.points_balance,
        "order_count": customer.order_count,
        "lifetime_value": customer.lifetime_value,
        "spend_12m": customer.spend_12m,
        "days_since_last_order": days_since,
        "lifecycle": lifecycle(customer, now, cfg),
        "region": customer.region,
        "prefecture": customer.prefecture,
        "gender": customer.gender,
        "occupation": customer.occupation,
        "locale": customer.locale,
        "time_zone": customer.time_zone,
        "age": age,
        "age_band": age_band(age),
        "consent": {ch: c.status for ch, c in customer.consent.items()},
        "reachable": reachable_channels(customer),
        "cart_items": customer.cart.item_count if customer.cart else 0,
        "rfm_segment": customer.rfm_segment,
    }
    return {
        k: (float(v) if isinstance(v, Decimal) else v) for k, v in view.items() if v is not None
    }
