"""The customer item: facts that arrived, and the state derived from them.

The item keeps *facts* keyed by their business id (orders, cancellations, point
adjustments) and last-writer-wins fields stamped with ``(occurred_at, event_id)``. The
derived part (order counts, spend, points, rank) is recomputed from the facts by
:mod:`kizuna.domain.loyalty`, so the same set of events gives the same state whatever the
order or number of deliveries.

The item is bounded (DynamoDB's limit is 400 KB): only the recent facts are kept one by
one; older orders and adjustments are *settled* into :class:`SettledHistory`, a fixed-size
summary of what the fold still needs from them (counters, the points lots still alive,
per-day totals for the rolling windows). Every fact also lives in the activity table
(``ORDER#``, ``CANCEL#``, ``POINTS#`` items, written before the customer item), which is
what a late fact about a settled order is folded against (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

# Fields of the profile that hold personal data: never logged, erased on request.
PERSONAL_FIELDS = ("email", "phone", "first_name", "last_name", "line_user_id", "postal_address")
PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "region",
    "prefecture",
    "birth_date",
    "member_since",
    "gender",
    "occupation",
    "locale",
    "time_zone",
    "postal_address",
)

# A customer's phone number, E.164: "+", the country code and the national number, 7-15
# digits in all. A Japanese number (+81) is the national number without its trunk prefix 0,
# 9-10 digits that never start with 0: 090-1234-5678 is +819012345678, and +8109012345678
# (the 0 kept, a common slip) is refused, never repaired. The same text is a JSON Schema
# (ECMA-262) pattern; in the code, match it whole (``$`` takes a final line feed in Python).
PHONE_PATTERN = r"^\+(?:[1-79][0-9]{6,14}|8[02-9][0-9]{5,13}|81[1-9][0-9]{8,9})$"
# phone number (hashed) -> customer: the customers table's index for the SMS opt-out sweep
PHONE_INDEX = "by_phone"
PHONE_HASH_ATTRIBUTE = "phone_hash"
# LINE user id (hashed) -> customer, for the LINE webhook (follow, unfollow)
LINE_USER_INDEX = "by_line_user"
LINE_USER_HASH_ATTRIBUTE = "line_user_hash"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Characters no text field may hold (a regex character class body; kizuna.events.inbound's
# Text, the email grammar and a postal address refuse them): C0 and C1 controls (tab, CR
# and LF included), DEL, the line and paragraph separators, the bidi marks, embeddings,
# overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) that make a
# name display as something else, and the invisible format characters (soft hyphen U+00AD,
# U+180E, zero-width space U+200B, U+2060-U+2064 and U+206A-U+206F, the BOM U+FEFF, the
# interlinear annotation marks U+FFF9-U+FFFB) that make two strings look alike. The
# zero-width joiners U+200C and U+200D stay allowed in text: emoji sequences (a family, a
# flag) and some scripts (Persian, Hindi) need them. Identifiers refuse them too.
NOT_TEXT_CHARS = (
    r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb"
)
# A line of a postal address: printable text (none of NOT_TEXT_CHARS), at least one
# non-space character.
_NOT_TEXT = NOT_TEXT_CHARS
_ADDRESS_TEXT = f"^[^{_NOT_TEXT}]*[^\\s{_NOT_TEXT}][^{_NOT_TEXT}]*$"


_Line64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_ADDRESS_TEXT)]
_Line100 = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_ADDRESS_TEXT)]
_Line200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_ADDRESS_TEXT)]


JP_POSTAL_CODE = r"^[0-9]{3}-?[0-9]{4}$"


class PostalAddress(BaseModel):
    """Where a direct mail reaches the customer (personal data). Every field but ``line2`` is
    required, so a stored address is a complete one; sizes fit a Japanese address label
    (prefecture, city and ward, chome-banchi, building and room) as well as others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipient_name: _Line100 = Field(description="As printed on the label")
    postal_code: Annotated[
        str, StringConstraints(min_length=3, max_length=12, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
    ] = Field(description="Japan: 123-4567 or 1234567")
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        default="JP", description="ISO 3166-1 alpha-2"
    )
    region: _Line64 = Field(description="Prefecture (都道府県) or state")
    locality: _Line100 = Field(description="City, ward, town (市区町村)")
    line1: _Line200 = Field(description="Street, chome-banchi-go")
    line2: _Line200 | None = Field(default=None, description="Building, room")

    @model_validator(mode="after")
    def _japanese_postal_code(self) -> PostalAddress:
        if self.country == "JP" and not re.fullmatch(JP_POSTAL_CODE, self.postal_code):
            raise ValueError("postal_code: a Japanese postal code is 123-4567")
        return self


# Bounds of the customer item (see SettledHistory and docs/ARCHITECTURE.md, "Data").
MAX_ORDERS = 100  # orders kept one by one; older ones are settled
MAX_ADJUSTMENTS = 40  # point adjustments kept one by one
MAX_PENDING_CANCELS = 20  # cancellations (and refunds) waiting for their order
# refunds kept one by one on the orders in the item (those of settled orders are in the
# settled summary): a refund beyond it is refused until some settle
MAX_REFUNDS = 40
MAX_ORDER_PRODUCTS = 5  # product ids kept per order (the ORDER activity item has all lines)
MAX_HISTORY_PRODUCTS = 100  # distinct products of settled orders (most recent kept)
# digests of the most recently settled adjustments' ids a customer item keeps: a producer's
# retry of one, stamped with its retry time, is recognised (it was counted twice)
MAX_SETTLED_ADJUSTMENT_IDS = 100


def adjustment_digest(adjustment_id: str) -> str:
    """A settled adjustment's id as :attr:`SettledHistory.adjustment_ids` keeps it (16 hex
    characters of its SHA-256: bounded whatever the producer's id)."""
    return hashlib.sha256(adjustment_id.encode()).hexdigest()[:16]


MAX_LOTS = 400  # points lots carried over a settlement (one a day suffices for 1 year)
PROCESSED_BUDGET = 24_000  # serialized bytes of idempotency records with derived events
SEEN_BUDGET = 8_000  # serialized bytes of records of events that derived nothing
# Push devices a customer keeps: the most recently registered, at most MAX_DEVICES (the
# importer allows as many a row), each token at most MAX_DEVICE_TOKEN_CHARS. Real tokens are
# short (APNS 64 characters, FCM about 160): 20 take ~4 KB; 20 of the longest ~20 KB (ASCII;
# the worst-case item stays under 400 KB with them). A bound by count only: which devices
# are kept never depends on the order registrations arrive in (a budget in bytes would).
MAX_DEVICES = 20
MAX_DEVICE_TOKEN_CHARS = 1024
# Suppressed addresses a customer keeps per channel (``suppressed_addresses``): the
# MAX_SUPPRESSED_ADDRESSES latest (bound_suppressions; up to ~150 bytes each as DynamoDB
# counts them, ~4.5 KB over the six channels at the bound, which the worst-case item of
# tests/unit/test_bounded_customer.py holds). Beyond it the oldest goes, which is safe only
# if its address is no longer the customer's: every suppression Kizuna makes is of an
# address it sent to (the customer's then), so the one dropped has five later suppressions
# of other addresses of the customer's behind it -- five addresses in use after it, give or
# take a bounce's delay of a few days. A customer who went back to that address, or a
# producer's own channel.suppressed naming five made-up hashes, would lift it.
MAX_SUPPRESSED_ADDRESSES = 5
# A customer's custom attributes, names and values as UTF-8 JSON: 250 attributes of 256
# ASCII characters with 40-character names fit (~76 KB); an event that would take a customer
# over it is dead-lettered (see docs/ARCHITECTURE.md, "A bounded customer item").
MAX_ATTRIBUTES_BYTES = 80_000


def stored_attribute(value: Any) -> Any:
    """A validated custom attribute value as the customer item keeps it: a string, a
    Decimal, a bool, a date as its ISO string (``1990-04-01``), a string list as a list;
    None (an explicit null: the attribute is cleared) stays None."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return list(value)
    return value


def attribute_values(attributes: BaseModel | None) -> dict[str, Any]:
    """The custom attributes a ``customer.upserted`` states, as stored: only those it names
    (``model_fields_set``), an explicit null as None. An absent ``attributes`` states none."""
    if attributes is None:
        return {}
    return {
        name: stored_attribute(getattr(attributes, name))
        for name in sorted(attributes.model_fields_set)
    }


def attributes_size(values: Mapping[str, Any]) -> int:
    """Bytes of custom attributes as UTF-8 JSON (names and values; what the budget counts)."""
    text = json.dumps(values, default=str, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode())


def within_attributes_budget(values: Mapping[str, Any]) -> bool:
    """Do these custom attributes (as stored, :func:`attribute_values`) fit a customer's
    :data:`MAX_ATTRIBUTES_BYTES`? The one rule: an event's own attributes at the door
    (:func:`kizuna.events.envelope.check_attributes`, ``kizuna import``'s rows, dry run or
    not), a customer's once merged (the fold), the Pinpoint migration's rows."""
    return attributes_size(values) <= MAX_ATTRIBUTES_BYTES


def refund_digest(refund_id: str) -> str:
    """A refund's id as :attr:`OrderFact.refunds` keys it (16 hex characters of its SHA-256:
    bounded whatever the producer's id; its REFUND activity row keeps the id as sent)."""
    return hashlib.sha256(refund_id.encode()).hexdigest()[:16]


def net_of_refunds(total: Decimal, refunds: Iterable[Decimal]) -> Decimal:
    """What an order of ``total`` counts for after ``refunds`` (their amounts): the total
    less their sum, never below 0. One rule for loyalty (:attr:`OrderFact.net_total`) and the
    reports' revenue (``kizuna_tools.reports.build.Order``)."""
    return max(total - sum(refunds, Decimal(0)), Decimal(0))


def refunded_whole(total: Decimal, refunds: Collection[Decimal]) -> bool:
    """Refunds make up the whole total (or more): the order is cancelled by them (it counts
    for nothing, and converts no campaign goal)."""
    return bool(refunds) and net_of_refunds(total, refunds) == 0


class RefundFact(_Model):
    """One refund of an order (``order.refunded``): when, and how much was paid back."""

    at: datetime
    amount: Decimal


class OrderFact(_Model):
    """One order as far as loyalty is concerned. ``placed`` is False for a cancellation
    or a refund that arrived before its order. ``products`` keeps the first
    MAX_ORDER_PRODUCTS distinct product ids. ``refunds`` (:func:`refund_digest` of the
    refund id -> refund) lower what the order counts for, at the order's own time:
    :attr:`net_total`."""

    placed: bool = False
    at: datetime | None = None
    total: Decimal = Decimal(0)
    currency: str | None = None
    channel: str | None = None
    # the order's product ids, distinct, in line order: what co-purchase recommendations
    # learn from and what they must not recommend again
    products: tuple[str, ...] = ()
    stamp: str = ""
    cancelled_at: datetime | None = None
    refunds: dict[str, RefundFact] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_no_refunds(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # an order without refunds is stored as before they existed (the item's bound)
        data: dict[str, Any] = handler(self)
        if not self.refunds:
            data.pop("refunds", None)
        return data

    def net_as_of(self, at: datetime | None = None) -> Decimal:
        """The total less the refunds made at or before ``at`` (None: every refund), never
        below 0."""
        return net_of_refunds(
            self.total, (r.amount for r in self.refunds.values() if at is None or r.at <= at)
        )

    @property
    def net_total(self) -> Decimal:
        """What the order counts for (spend, rank points, its points lot): the total less
        every refund, never below 0."""
        return self.net_as_of()

    @property
    def fully_refunded(self) -> bool:
        """Refunds make up the whole total: the order is cancelled by them."""
        return refunded_whole(self.total, [r.amount for r in self.refunds.values()])

    @property
    def counts(self) -> bool:
        return self.placed and self.cancelled_at is None and not self.fully_refunded

    @property
    def waiting_since(self) -> datetime | None:
        """For a cancellation or refunds that arrived before their order (not placed): the
        latest of them, else None."""
        if self.placed:
            return None
        times = [r.at for r in self.refunds.values()]
        if self.cancelled_at is not None:
            times.append(self.cancelled_at)
        return max(times, default=None)


class AdjustmentFact(_Model):
    at: datetime
    delta: int
    reason: str


class ConsentState(_Model):
    status: str
    at: datetime
    source: str
    stamp: str


class PauseState(_Model):
    """A pause of every non-transactional topic until ``until`` (None: resumed at ``at``)."""

    until: datetime | None = None
    at: datetime
    source: str
    stamp: str


class Device(_Model):
    token: str
    platform: str
    at: datetime


def bound_devices(
    devices: Mapping[str, Device], unregistered: Mapping[str, datetime]
) -> tuple[dict[str, Device], dict[str, datetime]]:
    """``devices`` (key -> the latest registration) and ``unregistered`` (key -> the latest
    unregistration) bounded together: the :data:`MAX_DEVICES` keys whose latest fact is the
    newest (of one instant the larger key counts as newer), each kept as that fact (a
    device when it registered after it last unregistered; of one instant the
    unregistration wins). The rest go: what is kept never depends on the order the facts
    arrived in (a fact older than the 20 newest could never be among them again), and a
    flood of registrations or unregistrations cannot grow the item."""
    latest: dict[str, datetime] = {key: device.at for key, device in devices.items()}
    for key, at in unregistered.items():
        if key not in latest or at >= latest[key]:
            latest[key] = at
    newest = sorted(latest.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    kept = {key for key, _ in newest[:MAX_DEVICES]}
    return (
        {
            key: device
            for key, device in devices.items()
            if key in kept and (key not in unregistered or device.at > unregistered[key])
        },
        {
            key: at
            for key, at in unregistered.items()
            if key in kept and (key not in devices or at >= devices[key].at)
        },
    )


class CartState(_Model):
    cart_id: str
    item_count: int
    value: Decimal
    currency: str
    product_ids: tuple[str, ...] = ()
    at: datetime
    stamp: str


class Suppression(_Model):
    """A channel the customer must not be sent on (bounce, complaint, carrier opt-out).

    ``address_hash`` ties it to the address it was for: a new address is not suppressed."""

    reason: str
    at: datetime
    address_hash: str | None = None


# The key of a suppression of every address of a channel (``address_hash`` None) among the
# per-address ones (an address's key is its 32-hex hash: the two never meet).
ANY_ADDRESS = "*"


def suppression_key(suppression: Suppression) -> str:
    """Where ``suppression`` is kept among its channel's: its address hash, or ANY_ADDRESS."""
    return suppression.address_hash or ANY_ADDRESS


def suppression_rank(key: str, suppression: Suppression) -> tuple[datetime, str, str]:
    """The order of suppressions: the later one, of one instant the larger reason
    (``complaint`` over ``bounce``), then the larger key. One address keeps the highest
    (last writer wins on it), a channel shows and keeps the highest ones: whatever order
    they arrive in."""
    return (suppression.at, suppression.reason, key)


def channel_suppressions(customer: Customer, channel: str) -> dict[str, Suppression]:
    """The suppressions of ``channel`` by address (:func:`suppression_key`): the per-address
    ones (``suppressed_addresses``) and the channel's latest (``suppressions``; an item an
    earlier version wrote holds only that one), last writer wins on each address."""
    out = dict(customer.suppressed_addresses.get(channel, {}))
    latest = customer.suppressions.get(channel)
    if latest is not None:
        key = suppression_key(latest)
        current = out.get(key)
        if current is None or suppression_rank(key, latest) > suppression_rank(key, current):
            out[key] = latest
    return out


def bound_suppressions(
    by_address: Mapping[str, Suppression],
) -> tuple[dict[str, Suppression], Suppression | None]:
    """A channel's suppressions by address bounded to the MAX_SUPPRESSED_ADDRESSES highest
    (:func:`suppression_rank`), and the highest of them (the channel's latest, None if
    there is none). A count, not a budget in bytes: what is kept never depends on the order
    the suppressions arrived in (one below the kept ones could never be among them again)."""
    newest = sorted(
        by_address.items(), key=lambda kv: suppression_rank(kv[0], kv[1]), reverse=True
    )[:MAX_SUPPRESSED_ADDRESSES]
    return dict(newest), (newest[0][1] if newest else None)


class PointsLot(_Model):
    earned_at: datetime
    expires_at: datetime
    remaining: int


class SettledHistory(_Model):
    """Orders and adjustments before ``(before_at, before_id)`` folded into a summary.

    A fact is settled when its position in the fold's timeline (orders by
    ``(at, order_id)``, then adjustments at the same instant) is before the checkpoint.
    ``lots`` are the points still alive at the checkpoint after replaying everything before
    it (ISO expiry time -> remaining points); ``days`` are per-UTC-day totals of settled
    counted orders that the rank window or the 12-month spend can still reach (ISO date ->
    ``(orders, spend, rank points)``). Every part is bounded: MAX_LOTS lots (lots of one day
    are merged, keeping the earliest expiry, only when there would be more), the windows'
    days, MAX_HISTORY_PRODUCTS."""

    before_at: datetime | None = None
    before_id: str = ""
    order_count: int = 0
    lifetime_value: Decimal = Decimal(0)
    first_order_at: datetime | None = None
    first_order_id: str | None = None
    last_order_at: datetime | None = None
    lots: dict[str, int] = Field(default_factory=dict)
    days: dict[str, tuple[int, Decimal, int]] = Field(default_factory=dict)
    products: tuple[str, ...] = ()
    # digests of the last MAX_SETTLED_ADJUSTMENT_IDS settled adjustments' ids, oldest first
    adjustment_ids: tuple[str, ...] = ()

    def settled_adjustment_id(self, adjustment_id: str) -> bool:
        """Was an adjustment of this id settled (recently enough to be remembered)?"""
        return bool(self.adjustment_ids) and adjustment_digest(adjustment_id) in set(
            self.adjustment_ids
        )

    def settled_order(self, at: datetime | None, order_id: str) -> bool:
        """Would an order at ``at`` be before the checkpoint (already summarised)?"""
        if self.before_at is None or at is None:
            return False
        return (at, order_id) < (self.before_at, self.before_id)

    def settled_adjustment(self, at: datetime) -> bool:
        return self.before_at is not None and at < self.before_at


class BehaviourCounter(_Model):
    """Occurrences of one event type: ``recent`` holds the epoch seconds of the latest
    occurrences (ascending, at most ``MAX_OCCURRENCES`` of kizuna.events.custom, none older
    than the longest declared window); ``total`` counts every occurrence folded."""

    recent: list[int] = Field(default_factory=list)
    total: int = 0
    last_at: datetime | None = None


class Customer(_Model):
    customer_id: str
    version: int = 0

    # profile (personal data) and attributes, last writer wins per field
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    region: str | None = None
    prefecture: str | None = None
    birth_date: date | None = None
    # the membership start: ``customer.anniversary`` (kizuna.domain.yearly); its index is a
    # MEMBER activity row (kizuna.domain.activity.member_row)
    member_since: date | None = None
    gender: str | None = None
    occupation: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    postal_address: PostalAddress | None = None
    # custom attributes as declared (kizuna.events.custom): name -> a string, a Decimal, a
    # bool, an ISO date string or a list of strings; stamped as ``stamps["attributes.<name>"]``
    attributes: dict[str, Any] = Field(default_factory=dict)
    stamps: dict[str, str] = Field(default_factory=dict)

    # channels
    consent: dict[str, ConsentState] = Field(default_factory=dict)
    # the preference centre (docs/PREFERENCES.md): topic -> channel -> consent, each stamped
    # (last writer wins per topic and channel); the per-channel ``consent`` is the master
    # switch. No entry for a topic and channel: not opted out of it.
    topics: dict[str, dict[str, ConsentState]] = Field(default_factory=dict)
    pause: PauseState | None = None
    devices: dict[str, Device] = Field(default_factory=dict)
    # device key -> the latest unregistration seen, so a registration at or before it (a
    # retried or reordered event) does not bring the token back; bounded with ``devices``
    # (bound_devices: the 20 keys whose latest fact is newest)
    unregistered_devices: dict[str, datetime] = Field(default_factory=dict)
    line_user_id: str | None = None
    # channel -> the channel's latest suppression (suppression_rank): what an earlier
    # version, which kept one a channel, reads and blocks on (docs/DEPLOY.md)
    suppressions: dict[str, Suppression] = Field(default_factory=dict)
    # channel -> address key (suppression_key: the address's hash, ANY_ADDRESS for every
    # address) -> the latest suppression of that address (last writer wins on each
    # address; at most MAX_SUPPRESSED_ADDRESSES a channel, bound_suppressions). A
    # suppression of one address never lifts or hides another's: the contact policy blocks
    # an address any of them names (channel_suppressions, with ``suppressions``)
    suppressed_addresses: dict[str, dict[str, Suppression]] = Field(default_factory=dict)

    # facts
    orders: dict[str, OrderFact] = Field(default_factory=dict)
    adjustments: dict[str, AdjustmentFact] = Field(default_factory=dict)
    history: SettledHistory = Field(default_factory=SettledHistory)
    cart: CartState | None = None
    last_app_open_at: datetime | None = None
    last_product_view_at: datetime | None = None
    last_event_at: datetime | None = None
    # behavioural counters of custom and tracked events (detail-type -> recent occurrences),
    # what conditions like "wishlist.added at least twice in 14 days" read
    behaviour: dict[str, BehaviourCounter] = Field(default_factory=dict)

    # derived (recomputed from the facts)
    order_count: int = 0
    first_order_at: datetime | None = None
    first_order_id: str | None = None
    last_order_at: datetime | None = None
    lifetime_value: Decimal = Decimal(0)
    spend_12m: Decimal = Decimal(0)
    rank: str | None = None
    rank_points: int = 0
    next_rank: str | None = None
    points_to_next_rank: int | None = None
    points_balance: int = 0
    points_next_expiry_at: datetime | None = None
    points_next_expiry_amount: int = 0
    as_of: datetime | None = None
    # keys of the sparse indexes the scheduled sweeps query (see kizuna.programs.sweeps);
    # ``phone_hash`` keys PHONE_INDEX, for the SMS opt-out sweep
    gsi_shard: str | None = None
    cart_open_at: datetime | None = None
    # when ingest saw ``cart_open_at`` take its value (receive time, not event time): a cart
    # event that arrives late is still swept (kizuna.programs.sweeps)
    cart_open_seen_at: datetime | None = None
    # when ingest saw ``time_zone`` change on a stored customer (receive time): a birthday or
    # anniversary already under way in the new zone is still swept (kizuna.domain.yearly)
    time_zone_changed_at: datetime | None = None
    phone_hash: str | None = None
    # ``line_user_hash`` keys LINE_USER_INDEX, for the LINE webhook
    line_user_hash: str | None = None
    # ``MM-DD`` of ``birth_date``: the key of the birthday index (kizuna.domain.yearly)
    birthday_mmdd: str | None = None
    # RFM scores and segment (written by the daily scoring job)
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = None

    # idempotency: inbound event id -> the derived events it produced (as JSON, maybe none),
    # for re-emission when the event is delivered again; pruned after `idempotency_days` and
    # to the most recent PROCESSED_BUDGET (SEEN_BUDGET for those without) bytes.
    processed: dict[str, ProcessedRecord] = Field(default_factory=dict)

    def derived_view(self) -> dict[str, Any]:
        """The part of the state a test or report compares (no version, no idempotency)."""
        return self.model_dump(exclude={"version", "processed"})


# A stored customer item this version cannot read: a known field holding a value it refuses
# (written by hand in the DynamoDB console, or by a later version that allows the value;
# unknown *keys* are read, see kizuna.adapters.dynamodb.STORED_EXTRA). Only that customer's
# work fails: a batch read (ingest, evaluate, a send group, a campaign batch, a sweep)
# names it in ``Customers.unreadable`` and goes on with the others (docs/RELIABILITY.md,
# "A customer item Kizuna cannot read").
UNREADABLE_CUSTOMER = "unreadable_customer"


class UnreadableCustomer(Exception):
    """A customer's stored item this version cannot read (its id; the refused fields'
    names, never their values)."""

    def __init__(self, customer_id: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(f"{UNREADABLE_CUSTOMER}: {', '.join(fields) or 'item'}")
        self.customer_id = customer_id
        self.fields = fields


class Customers(dict[str, "Customer"]):
    """Customers read by id, and (``refused``: id -> the refused fields' names) those whose
    stored items this version cannot read: neither present nor absent (never taken for a
    new or unknown customer)."""

    def __init__(
        self,
        found: Mapping[str, Customer] | None = None,
        refused: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(found or {})
        self.refused = dict(refused or {})
        self.unreadable = frozenset(self.refused)


def unreadable_of(customers: Mapping[str, Customer]) -> frozenset[str]:
    """The ids a batch read could not read (none for a plain mapping: a fake store's)."""
    return customers.unreadable if isinstance(customers, Customers) else frozenset()


def unreadable_error(customers: Mapping[str, Customer], customer_id: str) -> UnreadableCustomer:
    """The error of a customer a batch read could not read, naming the refused fields."""
    refused = customers.refused if isinstance(customers, Customers) else {}
    return UnreadableCustomer(customer_id, refused.get(customer_id, ()))


class ProcessedRecord(_Model):
    at: datetime
    derived: list[dict[str, Any]] = Field(default_factory=list)


Customer.model_rebuild()
