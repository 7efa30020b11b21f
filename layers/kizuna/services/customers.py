"""Customer lookup (the API's ``/api/customers/{id}`` routes and the console's customer page):
one customer's profile and their timeline, shaped for people.

The profile masks personal data unless the caller may see it (``reveal``; who may is
:data:`kizuna.api.auth.PERSONAL_DATA_ROLE`): the built-in fields with
:func:`kizuna.domain.privacy.mask`, the shop's declared attributes that are personal data
with :func:`kizuna.domain.privacy.mask_attribute`; it shows the behaviour counters
conditions read (``behaviour.<event>.count_<N>d``...). The timeline is the customer's
activity partition (one Query), newest first, each row typed and reduced to an allow-list
of fields (no addresses, tokens or claim internals), each decision with the ledger's own
``reason``/``detail`` and a plain-language ``why``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, Field

from kizuna.delivery.ledger import NOT_DELIVERED_REASON, NOT_DELIVERED_STAMPS, WITHHELD_AT
from kizuna.delivery.policy import address_for, channel_block, suppression_for
from kizuna.delivery.why import explain
from kizuna.domain.customer import Customer, UnreadableCustomer
from kizuna.domain.privacy import mask, mask_attribute
from kizuna.domain.timestamps import parse_time
from kizuna.events.custom import Vocabulary, counter_view, vocabulary
from kizuna.events.inbound import ConsentChannel
from kizuna.programs.view import lifecycle
from kizuna.runtime.config import KizunaConfig

DEFAULT_LIMIT: Final = 25
MAX_LIMIT: Final = 100
MAX_TOKEN_CHARS: Final = 1024
# activity items that are state, not something that happened: the journey's own item (its
# decisions are the ENTRY#/CONV# rows) and the frequency caps' memory
STATE_KINDS: Final = frozenset({"JOURNEY", "CONTACT"})
ENGAGEMENT: Final = ("delivery_at", "open_at", "click_at", "bounce_at", "complaint_at")
# a message SES accepted and never delivered: when, and why (kizuna.services.feedback)
NOT_DELIVERED: Final = (*NOT_DELIVERED_STAMPS, WITHHELD_AT, NOT_DELIVERED_REASON)

ItemType = Literal[
    "order",
    "cancellation",
    "refund",
    "points",
    "consent",
    "behaviour",
    "decision",
    "step",
    "message",
    "campaign_message",
]


class CustomerStore(Protocol):
    def get_customer(self, customer_id: str) -> Customer | None: ...

    def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]: ...


class InvalidPageToken(ValueError):
    """A ``next_token`` this service did not issue (422 naming the field)."""


# -- the profile ----------------------------------------------------------------------------
class PersonalData(BaseModel):
    """Direct identifiers: in clear for a caller allowed to see them, else masked."""

    masked: bool
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: str | None = None
    line_user_id: str | None = None
    postal_address: dict[str, str] | str | None = Field(
        None, description="The direct-mail address; masked: its country and region only"
    )
    push_devices: int = Field(description="registered push devices (tokens are never shown)")


class Attributes(BaseModel):
    region: str | None = None
    prefecture: str | None = None
    gender: str | None = None
    occupation: str | None = None
    locale: str | None = None
    time_zone: str | None = None


class Loyalty(BaseModel):
    rank: str | None
    rank_points: int
    next_rank: str | None
    points_to_next_rank: int | None
    points_balance: int
    points_next_expiry_at: datetime | None
    points_next_expiry_amount: int
    order_count: int
    lifetime_value: Decimal
    spend_12m: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None


class Rfm(BaseModel):
    recency: int | None
    frequency: int | None
    monetary: int | None
    segment: str | None


class ChannelState(BaseModel):
    channel: str
    consent: str = Field(description="opted_in, opted_out, or none (never asked)")
    consent_at: datetime | None = None
    consent_source: str | None = None
    suppressed: str | None = Field(
        None,
        description="the reason of the suppression that stops the customer's address now, "
        "else of the channel's latest (of an address they no longer have), if any",
    )
    reachable: bool
    blocked_by: str | None = Field(
        None, description="why a message cannot go out on it now (the contact policy's reason)"
    )


class TopicChoice(BaseModel):
    """A customer's choice for one topic on one channel (``preferences.changed``)."""

    topic: str
    channel: str
    status: str = Field(description="opted_in or opted_out")
    at: datetime
    source: str = Field(description="where the choice was made: the proof of consent")


class Preferences(BaseModel):
    """What the customer chose in the preference centre (docs/PREFERENCES.md): only explicit
    choices (a topic and channel never named follows the channel's consent), and a pause."""

    topics: list[TopicChoice] = Field(default_factory=list)
    paused_until: datetime | None = Field(
        default=None, description="every non-transactional topic is paused until then"
    )
    pause_source: str | None = None


AttributeValue = str | Decimal | bool | list[str | None] | None


class CustomAttributeValue(BaseModel):
    """One attribute the configuration declares (``custom.attributes``), as stored."""

    name: str
    type: str = Field(description="string, number, boolean, date or string_list")
    personal: bool = Field(description="personal data: masked unless the caller may see it")
    value: AttributeValue = Field(
        description="as stored (a date as YYYY-MM-DD); null when the customer has none; "
        "masked like the built-in personal fields (`Y***`, `1985-**-**`, `***`) when "
        "personal and the caller may not see personal data"
    )


class CustomerProfile(BaseModel):
    customer_id: str
    personal: PersonalData
    attributes: Attributes
    custom_attributes: list[CustomAttributeValue] = Field(
        default_factory=list, description="every declared attribute, in declaration order"
    )
    behaviour: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="per counted event (custom.events and custom.tracked), what behavioural "
        "conditions read: count_<N>d per declared window, total, days_since_last (absent if "
        "never)",
    )
    loyalty: Loyalty
    rfm: Rfm
    lifecycle: str
    channels: list[ChannelState]
    preferences: Preferences = Field(default_factory=Preferences)
    reachable: list[str]
    open_cart_items: int | None = None
    last_event_at: datetime | None = None
    as_of: datetime | None = None


def _personal(c: Customer, reveal: bool) -> PersonalData:
    values: dict[str, Any] = {
        "email": c.email,
        "phone": c.phone,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "birth_date": c.birth_date.isoformat() if isinstance(c.birth_date, date) else None,
        "line_user_id": c.line_user_id,
        "postal_address": c.postal_address.model_dump(exclude_none=True)
        if c.postal_address
        else None,
    }
    if not reveal:
        values = {name: mask(name, value) for name, value in values.items()}
    return PersonalData(masked=not reveal, push_devices=len(c.devices), **values)


def _custom_attributes(c: Customer, vocab: Vocabulary, reveal: bool) -> list[CustomAttributeValue]:
    out = []
    for spec in vocab.attributes.values():
        value = c.attributes.get(spec.name)
        if isinstance(value, tuple):
            value = list(value)
        out.append(
            CustomAttributeValue(
                name=spec.name,
                type=str(spec.type),
                personal=spec.personal,
                value=value if reveal else mask_attribute(spec, spec.name, value),
            )
        )
    return out


def _behaviour(c: Customer, vocab: Vocabulary, now: datetime) -> dict[str, dict[str, int]]:
    return {
        event: counter_view(c.behaviour.get(event), windows, now)
        for event, windows in vocab.windows.items()
    }


def _channels(c: Customer) -> list[ChannelState]:
    out = []
    for channel in ConsentChannel:  # a webhook goes to the shop's own endpoint
        consent = c.consent.get(channel.value)
        address = address_for(c, channel.value)
        # the suppression that stops the customer's address now, else the channel's latest
        suppression = (
            suppression_for(c, channel.value, address) if address else None
        ) or c.suppressions.get(channel.value)
        block = channel_block(c, channel.value, address)
        out.append(
            ChannelState(
                channel=channel.value,
                consent=consent.status if consent else "none",
                consent_at=consent.at if consent else None,
                consent_source=consent.source if consent else None,
                suppressed=suppression.reason if suppression else None,
                reachable=block is None,
                blocked_by=block,
            )
        )
    return out


def _preferences(c: Customer, now: datetime) -> Preferences:
    pause = c.pause if c.pause is not None and c.pause.until and c.pause.until > now else None
    return Preferences(
        topics=[
            TopicChoice(topic=t, channel=ch, status=s.status, at=s.at, source=s.source)
            for t, channels in sorted(c.topics.items())
            for ch, s in sorted(channels.items())
        ],
        paused_until=pause.until if pause else None,
        pause_source=pause.source if pause else None,
    )


def customer_profile(
    c: Customer, *, reveal: bool, now: datetime, cfg: KizunaConfig
) -> CustomerProfile:
    channels = _channels(c)
    vocab = vocabulary(cfg)
    return CustomerProfile(
        customer_id=c.customer_id,
        personal=_personal(c, reveal),
        attributes=Attributes(**{k: getattr(c, k) for k in Attributes.model_fields}),
        custom_attributes=_custom_attributes(c, vocab, reveal),
        behaviour=_behaviour(c, vocab, now),
        loyalty=Loyalty(**{k: getattr(c, k) for k in Loyalty.model_fields}),
        rfm=Rfm(
            recency=c.rfm_recency,
            frequency=c.rfm_frequency,
            monetary=c.rfm_monetary,
            segment=c.rfm_segment,
        ),
        lifecycle=lifecycle(c, now, cfg),
        channels=channels,
        preferences=_preferences(c, now),
        reachable=[s.channel for s in channels if s.reachable],
        open_cart_items=c.cart.item_count if c.cart and c.cart_open_at else None,
        last_event_at=c.last_event_at,
        as_of=c.as_of,
    )


# -- the timeline ---------------------------------------------------------------------------
class Why(BaseModel):
    """A decision in plain language: what kind of decision, its outcome, and why."""

    kind: str
    outcome: str
    reason: str | None = None
    text: str


class TimelineItem(BaseModel):
    type: ItemType
    at: datetime
    id: str = Field(description="the row's key in the customer's activity (stable)")
    program: str | None = None
    campaign: str | None = None
    step: str | None = None
    channel: str | None = None
    outcome: str | None = Field(
        None,
        description=(
            "decisions: entered, holdout, skipped, converted; messages: sent, suppressed, "
            "deferred, failed, exit, sending; steps: the branch side, arm or wait"
        ),
    )
    reason: str | None = Field(None, description="the ledger's reason, as recorded")
    detail: str | dict[str, Any] | list[Any] | None = Field(
        None, description="the ledger's detail, as recorded (e.g. which condition failed)"
    )
    until: datetime | None = Field(None, description="a deferred message: when it goes out")
    why: Why | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class TimelinePage(BaseModel):
    customer_id: str
    items: list[TimelineItem]
    next_token: str | None = Field(None, description="pass as ?next_token= for older items")


def encode_token(at: datetime, sk: str) -> str:
    raw = json.dumps({"v": 1, "at": at.isoformat(), "sk": sk}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    """The position a ``next_token`` names; :class:`InvalidPageToken` for anything else."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise InvalidPageToken("not a page token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidPageToken("not a page token") from error
    if not isinstance(value, dict) or set(value) != {"v", "at", "sk"} or value["v"] != 1:
        raise InvalidPageToken("not a page token")
    at, sk = value["at"], value["sk"]
    if not isinstance(at, str) or not isinstance(sk, str) or not sk or len(sk) > 512:
        raise InvalidPageToken("not a page token")
    try:
        return parse_time(at), sk
    except ValueError as error:
        raise InvalidPageToken("not a page token") from error


def _why(row: Mapping[str, Any], lang: str, time_zone: str | None) -> Why:
    """The plain-language why of a decision row (:func:`kizuna.delivery.why.explain`)."""
    w = explain(row, lang, time_zone=time_zone)
    return Why(kind=w.kind, outcome=w.outcome, reason=w.reason, text=w.text)


# What a ledger row records beside its reason (kizuna.delivery.why reads the same fields):
# the failed conditions, re-entry, reachability, holdout, cap, quiet hours, goal.
REASON_DETAIL: Final = (
    "failed",
    "last_entry_at",
    "reentry_days",
    "channels",
    "reachable",
    "held_out",
    "holdout_percent",
    "bucket",
    "cap",
    "quiet",
    "goal_reached_at",
)


def _reason_detail(row: Mapping[str, Any]) -> str | dict[str, Any] | list[Any] | None:
    """The row's reason detail as recorded: its detail fields, or a legacy ``detail``."""
    fields = {k: _plain(k, row[k]) for k in REASON_DETAIL if row.get(k) is not None}
    if fields:
        return fields
    legacy: str | dict[str, Any] | list[Any] | None = _plain("detail", row.get("detail"))
    return legacy


MONEY: Final = frozenset({"total", "unit_price"})


def _plain(name: str, value: Any) -> Any:
    """A stored value as the answer shows it: money as a decimal string, other numbers as
    int when whole (DynamoDB gives Decimal), maps and lists likewise all the way down."""
    if isinstance(value, Mapping):
        return {str(k): _plain(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(name, v) for v in value]
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        if name in MONEY:
            return str(value)
        return int(value) if value == int(value) else str(value)
    return value


def _pick(row: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {n: _plain(n, row[n]) for n in names if row.get(n) is not None}


def _opt_time(value: Any) -> datetime | None:
    try:
        return parse_time(value) if value else None
    except ValueError:
        return None


def timeline_item(
    row: Mapping[str, Any], lang: str, time_zone: str | None = None
) -> TimelineItem | None:
    """One activity row as the timeline shows it, or None for rows that are state, internal
    or of a kind this version does not know."""
    sk = str(row.get("sk", ""))
    kind = sk.split("#", 1)[0]
    at = _opt_time(row.get("at"))
    if at is None or kind in STATE_KINDS:
        return None
    base: dict[str, Any] = {"at": at, "id": sk}
    match kind:
        case "ORDER":
            lines = [
                _pick(line, "product_id", "category", "quantity", "unit_price")
                for line in row.get("lines") or []
                if isinstance(line, Mapping)
            ]
            data = _pick(row, "order_id", "total", "currency", "channel") | {"lines": lines}
            return TimelineItem(type="order", channel=row.get("channel"), data=data, **base)
        case "CANCEL":
            return TimelineItem(
                type="cancellation", reason=row.get("reason"), data=_pick(row, "order_id"), **base
            )
        case "REFUND":
            return TimelineItem(
                type="refund",
                reason=row.get("reason"),
                data=_pick(row, "order_id", "refund_id", "amount", "currency"),
                **base,
            )
        case "POINTS":
            return TimelineItem(
                type="points", reason=row.get("reason"), data=_pick(row, "delta", "points"), **base
            )
        case "CONSENT":
            return TimelineItem(
                type="consent",
                channel=row.get("channel"),
                outcome=row.get("status"),
                reason=row.get("reason"),
                data=_pick(row, "source"),
                **base,
            )
        case "EVENT":
            # a declared event's row keeps its fields (never the personal ones) under fields
            data = _pick(
                row, "type", "product_id", "category", "cart_id", "items", "platform", "fields"
            )
            return TimelineItem(type="behaviour", data=data, **base)
        case "ENTRY" | "CONV":
            return TimelineItem(
                type="decision",
                program=row.get("program"),
                outcome=row.get("decision"),
                reason=row.get("reason"),
                detail=_reason_detail(row),
                why=_why(row, lang, time_zone),
                data=_pick(row, "execution", "trigger_type", "trigger_id", "entered_at"),
                **base,
            )
        case "STEP":
            return TimelineItem(
                type="step",
                program=row.get("program"),
                step=row.get("step"),
                outcome=row.get("decision") if isinstance(row.get("decision"), str) else None,
                detail=_reason_detail(row),
                why=_why(row, lang, time_zone),
                data=_pick(row, "execution"),
                **base,
            )
        case "MSG":
            campaign = row.get("campaign") if row.get("source") == "campaign" else None
            data = _pick(
                row, "execution", "template", "variant", "arm", "occurrence", "skipped", "sent_at"
            )
            data |= _pick(row, "attempts", "reconciled_at", *ENGAGEMENT, *NOT_DELIVERED)
            return TimelineItem(
                type="campaign_message" if campaign else "message",
                program=None if campaign else row.get("program"),
                campaign=campaign,
                step=row.get("step"),
                channel=row.get("channel"),
                outcome=row.get("status"),
                reason=row.get("reason"),
                detail=_reason_detail(row),
                until=_opt_time(row.get("until")),
                why=_why(row, lang, time_zone),
                data=data,
                **base,
            )
    return None


def timeline_page(
    rows: Sequence[Mapping[str, Any]],
    customer_id: str,
    *,
    limit: int,
    after: tuple[datetime, str] | None,
    lang: str,
    time_zone: str | None = None,
) -> TimelinePage:
    """Newest first by (time, key); ``after``: the position of the previous page's last item;
    instants in the whys in ``time_zone`` (the shop's)."""
    items = [i for i in (timeline_item(r, lang, time_zone) for r in rows) if i is not None]
    items.sort(key=lambda i: (i.at, i.id), reverse=True)
    if after is not None:
        items = [i for i in items if (i.at, i.id) < after]
    page = items[:limit]
    more = len(items) > limit
    token = encode_token(page[-1].at, page[-1].id) if more and page else None
    return TimelinePage(customer_id=customer_id, items=page, next_token=token)


class CustomerLookup:
    """What the routes call: the profile and the timeline of one customer."""

    def __init__(
        self, store: CustomerStore, cfg: KizunaConfig, now: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.now = now

    def profile(self, customer_id: str, *, reveal: bool) -> CustomerProfile | None:
        """None for a customer Kizuna does not hold (never created, or erased)."""
        customer = self.store.get_customer(customer_id)
        if customer is None:
            return None
        return customer_profile(customer, reveal=reveal, now=self.now(), cfg=self.cfg)

    def timeline(
        self,
        customer_id: str,
        *,
        limit: int = DEFAULT_LIMIT,
        next_token: str | None = None,
        lang: str = "ja",
    ) -> TimelinePage | None:
        """None for a customer Kizuna does not hold; :class:`InvalidPageToken` for a bad token."""
        after = decode_token(next_token) if next_token is not None else None
        try:
            if self.store.get_customer(customer_id) is None:
                return None
        except UnreadableCustomer:
            pass  # held, though this version cannot read the item: its rows still read
        rows = self.store.activity(customer_id)
        return timeline_page(
            rows,
            customer_id,
            limit=limit,
            after=after,
            lang=lang,
            time_zone=self.cfg.contact.default_time_zone,
        )
