"""Inbound events: what the user's shop, app and CRM put on the bus.

Every event travels as an EventBridge event whose ``detail-type`` is the event name
(``order.placed``) and whose ``detail`` is one of the models below. Each detail carries
``schema_version``; a breaking change adds a new model version, never edits one in place.
Unknown fields are rejected so a producer's typo is caught, not silently dropped.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from kizuna.delivery.coupons import CODE_PATTERN, MAX_CODES_PER_ORDER
from kizuna.delivery.tags import MESSAGE_REF_PATTERN
from kizuna.domain.customer import (
    MAX_DEVICE_TOKEN_CHARS,
    NOT_TEXT_CHARS,
    PHONE_PATTERN,
    PostalAddress,
)
from kizuna.domain.strict_json import WholeNumber
from kizuna.domain.timestamps import ISO_DAY_TEXT, ISO_TIME_TEXT
from kizuna.domain.zones import is_zone

# The customer id grammar (docs/EVENTS.md), the one every path that accepts an id applies
# (bus events, imports, the CLI): an ASCII letter or digit, then at most 127 ASCII letters,
# digits or ``. _ : @ -``. An id that does not match is rejected, never trimmed or
# normalised, so two spellings can never name one customer. It has no ``#`` and no ``$``:
# every internal key of Kizuna's tables contains one, so no customer id can reach them.
CUSTOMER_ID_CHARS = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
CUSTOMER_ID_PATTERN = f"^{CUSTOMER_ID_CHARS}$"
_CUSTOMER_ID = re.compile(CUSTOMER_ID_CHARS)

# Characters no text field may hold: controls, line separators, bidi and invisible format
# characters (kizuna.domain.customer.NOT_TEXT_CHARS, which says which and why). The
# zero-width joiners U+200C and U+200D are allowed in text (emoji sequences, some scripts).
_FORBIDDEN_CHARS = NOT_TEXT_CHARS
# An identifier refuses them too, and the rest of Unicode's format characters (category Cf)
# of the Basic Multilingual Plane; _no_format_character refuses those beyond it.
_NOT_ID_CHARS = rf"{_FORBIDDEN_CHARS}\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u200c\u200d"
TEXT_PATTERN = f"^[^{_FORBIDDEN_CHARS}]*$"
# An address: something@domain.tld, no whitespace and none of the characters above; at most
# 254 characters (RFC 5321's bound for a path, which SES applies too)
_EMAIL_PART = rf"[^@\s{_FORBIDDEN_CHARS}]+"
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
MAX_EMAIL_CHARS = 254
# Text of several lines (a campaign's description): tabs and line ends (LF, CRLF) too.
DESCRIPTION_PATTERN = "^[^{}]*$".format(
    _FORBIDDEN_CHARS.replace(r"\x00-\x1f", r"\x00-\x08\x0b\x0c\x0e-\x1f")
)

CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=CUSTOMER_ID_PATTERN)
]


def _no_format_character(value: str) -> str:
    if any(unicodedata.category(ch) == "Cf" for ch in value):
        raise ValueError("an invisible format character (zero-width, BOM, bidi mark...)")
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=f"^[^#\\s{_NOT_ID_CHARS}]+$"),
    AfterValidator(_no_format_character),
]
"""An id of the shop's (order, product, cart, adjustment, request): 1-128 characters, no
whitespace, no ``#``, no control and no format character (category Cf: zero-width space and
joiners, BOM, bidi marks), so ``o1`` and ``o\\u200b1`` can never be two orders."""
# A reference that reads as a phone number: "+" then 7-15 digits (E.164, as a customer's
# phone), or a national number, "0" then 9-10 digits (090-1234-5678, 03-1234-5678), with or
# without "-", ".", "(", ")" around the digits, maybe after "tel:"; each also as a Japanese
# form or IME writes it: full-width digits, "+", "-", ".", "(" and ")" (０９０－１２３４－５６７８),
# a katakana long-vowel mark (ー) or a Unicode hyphen, dash or minus between the digits. The
# same text is a JSON Schema (ECMA-262) pattern (ASCII: the other characters as \uXXXX).
_SEPARATOR = r"[-.()\uFF0D\uFF0E\uFF08\uFF09\u30FC\u2010-\u2015\u2212]"
_DIGIT = r"[0-9\uFF10-\uFF19]"
PHONE_LIKE_PATTERN = (
    rf"^(?:[Tt][Ee][Ll]:)?{_SEPARATOR}*"
    rf"(?:[+\uFF0B](?:{_SEPARATOR}*{_DIGIT}){{7,15}}|[0\uFF10](?:{_SEPARATOR}*{_DIGIT}){{9,10}})"
    rf"{_SEPARATOR}*$"
)
_PHONE_LIKE = re.compile(PHONE_LIKE_PATTERN)
# An email address's "@", as typed or full-width (＠, and the small ﹫)
AT_SIGN_PATTERN = r"[@\uFF20\uFE6B]"
_AT_SIGN = re.compile(AT_SIGN_PATTERN)


def _not_an_address(value: str) -> str:
    """A requester's reference is logged as sent: one that is an email address or a phone
    number (the requester's own, typically) is refused, never logged nor altered."""
    if _AT_SIGN.search(value):
        raise ValueError(
            "an email address (it has '@'): send your own reference for the request (a "
            "ticket number), never the requester's address: it is written to the logs"
        )
    if _PHONE_LIKE.fullmatch(value):
        raise ValueError(
            "a phone number: send your own reference for the request (a ticket number, "
            "with letters), never the requester's number: it is written to the logs"
        )
    return value


RequestReference = Annotated[Identifier, AfterValidator(_not_an_address)]
"""A requester's reference (``customer.erase``'s ``request_id``): an :data:`Identifier`
that is not an email address (no ``@``, :data:`AT_SIGN_PATTERN`) nor a phone number
(:data:`PHONE_LIKE_PATTERN`), because ingest logs it as sent."""
# What RequestReference refuses beyond Identifier, for the JSON Schema (a string only:
# null stays valid where the field is optional).
REQUEST_REFERENCE_SCHEMA: Final[JsonDict] = {
    "not": {
        "type": "string",
        "anyOf": [{"pattern": AT_SIGN_PATTERN}, {"pattern": PHONE_LIKE_PATTERN}],
    }
}
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]
"""Free text (names, reasons, categories): any printable character, as sent (not trimmed)."""
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

# A number written as text (an amount's JSON string, every cell of an imported CSV): ASCII
# digits as JSON writes them (no leading zero), nothing else -- Python's int() and Decimal(),
# and pydantic's lax mode, also read "1_0", " 1", "１２００", "١٢" and "1e3", and a
# spreadsheet's "1,200" or a typo must not become another number.
WHOLE_NUMBER_TEXT = re.compile(r"(?:0|[1-9][0-9]*)")
AMOUNT_TEXT = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
POSITIVE_AMOUNT_TEXT = r"(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)"
SIGNED_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
NUMBER_TEXT_RULE = "ASCII digits, no sign, space, '_', ',', exponent or leading zero"


def _amount(value: object) -> object:
    """An amount is a JSON number or a decimal string in plain ASCII digits (``"1200"``,
    ``"12.5"``), never text some reader would take for another number."""
    if isinstance(value, str) and not AMOUNT_TEXT.fullmatch(value):
        raise ValueError(f"an amount: a JSON number, or text in {NUMBER_TEXT_RULE} ('12.5')")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(ge=0, max_digits=14, decimal_places=4),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": f"^{AMOUNT_TEXT.pattern}$"},
            ]
        }
    ),
]
"""An amount (a price, a total): a JSON number, or a decimal string (``"1200"``, exact)."""
PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(gt=0, max_digits=14, decimal_places=4),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                # AMOUNT_TEXT without its zeros ("0", "0.00")
                {"type": "string", "pattern": f"^{POSITIVE_AMOUNT_TEXT}$"},
            ]
        }
    ),
]
"""An amount more than 0 (a refund), written as :data:`Money` is."""


def _written_as_text(value: object) -> object:
    """A time or a date is ISO 8601 text: a number (epoch seconds, a bare ``0``) is refused,
    not read as a moment of 1970."""
    if isinstance(value, int | float):  # bool too
        raise ValueError("ISO 8601 text, not a number")
    return value


def _time_text(value: object) -> object:
    """A time is ISO 8601 text with its UTC offset (:data:`ISO_TIME_TEXT`): pydantic also
    reads ``"1700000000"`` as epoch seconds, a space for the ``T``, ``+0900`` and a
    lowercase ``z``, forms a template's ``|date`` (which reads the text as sent) refuses."""
    value = _written_as_text(value)
    if isinstance(value, str) and not ISO_TIME_TEXT.fullmatch(value):
        raise ValueError(f"ISO 8601 text: {TIME_FORM}")
    return value


def _day_text(value: object) -> object:
    """A date is ISO 8601 text ``YYYY-MM-DD``: pydantic also reads a time at midnight."""
    value = _written_as_text(value)
    if isinstance(value, str) and not ISO_DAY_TEXT.fullmatch(value):
        raise ValueError("ISO 8601 text: YYYY-MM-DD")
    return value


def _plausible_day(value: date) -> date:
    if not 1900 <= value.year <= 2100:
        raise ValueError("a year between 1900 and 2100")
    return value


TIME_FORM: Final = "YYYY-MM-DDTHH:MM[:SS[.fff]] and Z or ±HH:MM (2026-12-31T10:00:00+09:00)"
Time = Annotated[
    AwareDatetime,
    BeforeValidator(_time_text),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": f"^{ISO_TIME_TEXT.pattern}$"}
    ),
]
DayText = Annotated[
    date,
    BeforeValidator(_day_text),
    WithJsonSchema({"type": "string", "format": "date", "pattern": f"^{ISO_DAY_TEXT.pattern}$"}),
]
Day = Annotated[DayText, AfterValidator(_plausible_day)]
Count = WholeNumber


class ConsentChannel(StrEnum):
    """Channels a customer consents to: an address and a consent state of theirs
    (``consent.changed``, ``channel.suppressed``, a customer's ``consent``). A new channel a
    customer can opt in to is added here AND to ``Channel``."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    LINE = "line"
    CARD = "card"  # in-app / web content cards (docs/channels/CARDS.md)
    DM = "dm"  # direct mail to the postal address (docs/channels/DM.md)


class Channel(StrEnum):
    """Channels a send step or a campaign may deliver on: every ``ConsentChannel``, and the
    delivery-only channels below, which reach no address of the customer's."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    LINE = "line"
    CARD = "card"
    DM = "dm"
    # delivery-only: the shop's own HTTPS endpoint (a CRM, a POS, a print vendor), no
    # per-customer consent or address; see docs/channels/WEBHOOK.md
    WEBHOOK = "webhook"


DELIVERY_ONLY_CHANNELS: frozenset[str] = frozenset(c.value for c in Channel) - frozenset(
    c.value for c in ConsentChannel
)
"""Channels that reach no address of the customer's (``webhook``): every customer is
reachable on them, and no customer consents to them."""


def _consent_channel(value: object) -> object:
    # anything but a string (a list, an object: hostile input) is left to the enum to refuse
    if isinstance(value, str) and value in DELIVERY_ONLY_CHANNELS:
        raise ValueError(
            f"{value} is a delivery channel (the shop's own endpoint), "
            "not one a customer consents to"
        )
    return value


CustomerChannel = Annotated[ConsentChannel, BeforeValidator(_consent_channel)]
"""A ``ConsentChannel`` field: a delivery-only channel (``webhook``) is refused by name."""


class SalesChannel(StrEnum):
    WEB = "web"
    APP = "app"
    STORE = "store"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class InboundDetail(BaseModel):
    """Fields every inbound detail has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    customer_id: CustomerId
    occurred_at: Time
    idempotency_key: Identifier | None = Field(
        default=None,
        description="The producer's own id for this event, kept the same when it sends the "
        "event again (a retried call whose answer was lost): the customer's events of one "
        "detail-type with the same key are one event, taken once (within idempotency_days). "
        "Without it, EventBridge's id identifies the event, and a retry is a new one.",
    )


class CustomerUpserted(InboundDetail):
    """Profile and attributes; absent fields are left as they are."""

    email: (
        Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=MAX_EMAIL_CHARS)] | None
    ) = None
    phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | None = Field(
        default=None,
        description="E.164, digits only: +819012345678 for 090-1234-5678 (a Japanese number "
        "drops its leading 0 after +81: +8109012345678 is refused)",
    )
    first_name: Annotated[Text, Field(max_length=100)] | None = None
    last_name: Annotated[Text, Field(max_length=100)] | None = None
    region: Annotated[Text, Field(max_length=64)] | None = None
    prefecture: Annotated[Text, Field(max_length=64)] | None = None
    birth_date: Day | None = None
    member_since: Day | None = Field(
        default=None, description="When the customer joined the membership (anniversaries)"
    )
    gender: Gender | None = None
    occupation: Annotated[Text, Field(max_length=64)] | None = None
    locale: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None
    time_zone: Annotated[Text, Field(max_length=64)] | None = Field(
        default=None, description="IANA time zone, e.g. Asia/Tokyo"
    )
    postal_address: PostalAddress | None = Field(
        default=None, description="Where direct mail (the dm channel) reaches the customer"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None and not is_zone(v):
            # the value is not quoted: a reason is logged, and a name or an address sent
            # in the wrong field would be personal data
            raise ValueError("not an IANA time zone tzdata knows (e.g. Asia/Tokyo)")
        return v


class ConsentStatus(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class ConsentChanged(InboundDetail):
    channel: CustomerChannel
    status: ConsentStatus
    source: Annotated[Text, Field(max_length=64)] = "user"


# A preference topic's name, as configuration declares it (kizuna.runtime.config); ingest
# refuses a topic the configuration does not declare.
TopicName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
PAUSE_DAYS = (30, 90)


class PreferencesChanged(InboundDetail):
    """A customer's choices in the preference centre (the hosted page, the shop's own
    settings screen): per topic and channel opted in or out, and/or a pause of every
    non-transactional message for 30 or 90 days from ``occurred_at`` (or ``resume`` to end
    one). The per-channel consent (``consent.changed``) stays the master switch. ``source``
    is kept as the proof of consent (``preference_page``, ``app_settings``...)."""

    topics: dict[TopicName, dict[CustomerChannel, ConsentStatus]] = Field(
        default_factory=dict,
        max_length=20,
        description="topic -> channel -> opted_in | opted_out; absent pairs are unchanged",
    )
    pause_days: Literal[30, 90] | None = Field(
        default=None, description="pause every non-transactional topic for 30 or 90 days"
    )
    resume: StrictBool = Field(default=False, description="end a pause now")
    source: Annotated[Text, Field(min_length=1, max_length=64)] = "user"

    @field_validator("topics")
    @classmethod
    def _channels(
        cls, topics: dict[str, dict[ConsentChannel, ConsentStatus]]
    ) -> dict[str, dict[ConsentChannel, ConsentStatus]]:
        for channels in topics.values():
            if not channels:
                # the topic is not named: an undeclared name would be the producer's text
                raise ValueError("a topic names no channel")
        return topics

    @model_validator(mode="after")
    def _something(self) -> PreferencesChanged:
        if self.pause_days is not None and self.resume:
            raise ValueError("pause_days and resume: one or the other, not both")
        if not self.topics and self.pause_days is None and not self.resume:
            raise ValueError("preferences.changed: names no topic, no pause_days and no resume")
        return self


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: Identifier
    category: Annotated[Text, Field(max_length=64)] | None = None
    quantity: Count = Field(ge=1, le=100_000)
    unit_price: Money


# A Kizuna coupon code as issued (kizuna.delivery.coupons): canonical form only (the shop
# normalises what a customer typed with ``normalize_coupon_code`` before it sends the order).
CouponCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]


class OrderPlaced(InboundDetail):
    order_id: Identifier
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=500)
    total: Money
    currency: CurrencyCode = Field(
        description="The shop's order currency (loyalty.currency): an order in another is "
        "refused and dead-lettered (points, ranks and spend count one currency)"
    )
    channel: SalesChannel
    coupon_codes: tuple[CouponCode, ...] = Field(
        default=(),
        max_length=MAX_CODES_PER_ORDER,
        description="Kizuna coupon codes used on the order (KZ-XXXX-XXXX-XXXX): each of "
        "the customer's issued, unexpired coupons named here is marked redeemed",
    )

    @field_validator("coupon_codes")
    @classmethod
    def _distinct(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(codes)) != len(codes):
            raise ValueError("coupon_codes: a code is named twice")
        return codes


class OrderCancelled(InboundDetail):
    order_id: Identifier
    reason: Annotated[Text, Field(max_length=128)] | None = None


class OrderRefunded(InboundDetail):
    """Part (or all) of an order's total paid back: a refund, a return of some lines. The
    order keeps its place in time: its spend, rank points and points lot count
    ``total - the sum of its refunds`` (never below 0) from the order's own time, and a
    refund of the whole total is a cancellation. ``(order_id, refund_id)`` is one refund:
    sent again (under another event id, at another time) it is the same one; the same id
    with another amount is refused. A customer item keeps at most MAX_REFUNDS refunds of
    orders not yet settled (:mod:`kizuna.domain.customer`)."""

    order_id: Identifier
    refund_id: Identifier = Field(
        description="The shop's id of this refund, unique within the order: a retry keeps it"
    )
    amount: PositiveMoney = Field(
        description="What was paid back, in the order's currency (more than 0)"
    )
    currency: CurrencyCode = Field(
        description="The shop's order currency (loyalty.currency): a refund in another is "
        "refused and dead-lettered, as an order in another is"
    )
    lines: tuple[OrderLine, ...] = Field(
        default=(),
        max_length=500,
        description="The returned lines, if the refund is a return: kept in the customer's "
        "history as sent; the amount alone is what changes the order",
    )
    reason: Annotated[Text, Field(max_length=128)] | None = None


class PointsAdjusted(InboundDetail):
    """A manual adjustment or redemption; ``delta`` < 0 spends points (oldest first)."""

    adjustment_id: Identifier
    delta: Count = Field(ge=-10_000_000, le=10_000_000)
    reason: Annotated[Text, Field(max_length=128)]


class PushPlatform(StrEnum):
    APNS = "APNS"
    FCM = "FCM"


class DeviceRegistered(InboundDetail):
    token: Annotated[Text, Field(min_length=8, max_length=MAX_DEVICE_TOKEN_CHARS)]
    platform: PushPlatform


class LineLinked(InboundDetail):
    line_user_id: Annotated[str, StringConstraints(pattern=r"^U[0-9a-f]{32}$")]


class ChannelSuppressed(InboundDetail):
    """Stop sending on a channel: a hard bounce, a complaint, a carrier opt-out. Sent by
    Kizuna's feedback function (or by the user's own systems)."""

    channel: CustomerChannel
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    address_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = Field(
        default=None,
        description="sha256 of the lower-cased address (first 32 hex); "
        "only that address is suppressed",
    )


class DeviceUnregistered(InboundDetail):
    """A push token the provider reported invalid, or the app unregistered."""

    token: Annotated[Text, Field(min_length=8, max_length=MAX_DEVICE_TOKEN_CHARS)]


class ProductViewed(InboundDetail):
    product_id: Identifier
    category: Annotated[Text, Field(max_length=64)] | None = None
    channel: SalesChannel = SalesChannel.WEB


class CartItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: Identifier
    quantity: Count = Field(ge=1, le=100_000)
    unit_price: Money


class CartUpdated(InboundDetail):
    cart_id: Identifier
    items: tuple[CartItem, ...] = Field(
        max_length=500, description="The whole cart; empty clears it"
    )
    currency: CurrencyCode = "JPY"


class AppOpened(InboundDetail):
    platform: PushPlatform | None = None


class PushOpened(InboundDetail):
    """The app opened from one of Kizuna's push messages: ``occurred_at`` is the open.
    Ingest stamps ``open_at`` on that message's ledger entry, if the customer has one on
    the push channel (the earliest open is kept); any other reference changes nothing."""

    message: Annotated[str, StringConstraints(pattern=MESSAGE_REF_PATTERN)] = Field(
        description="The push's ``message`` data value (Pinpoint Context), as received"
    )
    platform: PushPlatform | None = None


class CustomerErase(InboundDetail):
    """An erasure request (APPI / GDPR): remove everything held about the customer.

    Not folded into state: ingest hands it to :func:`kizuna.domain.privacy.erase`."""

    request_id: RequestReference | None = Field(
        default=None,
        description="Your reference for the request (a ticket number), written to the logs "
        "as sent, so the erasure can be found by it: never the requester's email address or "
        "phone number (one with '@', or a number written '+' then 7-15 digits or '0' then 9-10 "
        "digits, '-', '.', '(', ')' between them, is refused and dead-lettered)",
        json_schema_extra=REQUEST_REFERENCE_SCHEMA,
    )


InboundEvent = (
    CustomerUpserted
    | ConsentChanged
    | PreferencesChanged
    | OrderPlaced
    | OrderCancelled
    | OrderRefunded
    | PointsAdjusted
    | DeviceRegistered
    | LineLinked
    | ChannelSuppressed
    | DeviceUnregistered
    | ProductViewed
    | CartUpdated
    | AppOpened
    | PushOpened
    | CustomerErase
)

# detail-type -> model. The detail-type strings are the public bus contract.
INBOUND_MODELS: dict[str, type[InboundDetail]] = {
    "customer.upserted": CustomerUpserted,
    "consent.changed": ConsentChanged,
    "preferences.changed": PreferencesChanged,
    "order.placed": OrderPlaced,
    "order.cancelled": OrderCancelled,
    "order.refunded": OrderRefunded,
    "points.adjusted": PointsAdjusted,
    "device.registered": DeviceRegistered,
    "line.linked": LineLinked,
    "channel.suppressed": ChannelSuppressed,
    "device.unregistered": DeviceUnregistered,
    "product.viewed": ProductViewed,
    "cart.updated": CartUpdated,
    "app.opened": AppOpened,
    "push.opened": PushOpened,
    "customer.erase": CustomerErase,
}

_TYPE_OF: dict[type[InboundDetail], str] = {model: name for name, model in INBOUND_MODELS.items()}


def is_customer_id(value: object) -> bool:
    """Whether ``value`` is a customer id by the grammar (nothing is trimmed first)."""
    return isinstance(value, str) and _CUSTOMER_ID.fullmatch(value) is not None


def inbound_type(detail: InboundDetail) -> str:
    """The detail-type an inbound detail travels under (``ChannelSuppressed`` ->
    ``channel.suppressed``): the inverse of :data:`INBOUND_MODELS`."""
    return _TYPE_OF[type(detail)]


# Requests that are routed to their own domain instead of being folded into state.
ERASE_TYPE = "customer.erase"
PUSH_OPENED_TYPE = "push.opened"  # stamps the ledger, not the customer's state

BEHAVIOUR_TYPES = frozenset({"product.viewed", "cart.updated", "app.opened"})
