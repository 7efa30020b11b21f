"""The customer item: facts that arrived, and the state derived from them.

The item keeps *facts* keyed by their business id (orders, cancellations, point
adjustments) and last-writer-wins fields stamped with ``(occurred_at, event_id)``. The
derived part (order counts, spend, points, rank) is recomputed from the facts by
:mod:`kizuna.domain.loyalty`, so the same set of events gives the same state whatever the
order or number of deliveries.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Fields of the profile that hold personal data: never logged, erased on request.
PERSONAL_FIELDS = ("email", "phone", "first_name", "last_name", "line_user_id")
PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "region",
    "prefecture",
    "birth_date",
    "gender",
    "occupation",
    "locale",
    "time_zone",
)

# phone number (hashed) -> customer: the customers table's index for the SMS opt-out sweep
PHONE_INDEX = "by_phone"
PHONE_HASH_ATTRIBUTE = "phone_hash"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderFact(_Model):
    """One order as far as loyalty is concerned. ``placed`` is False for a cancellation
    that arrived before its order."""

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

    @property
    def counts(self) -> bool:
        return self.placed and self.cancelled_at is None


class AdjustmentFact(_Model):
    at: datetime
    delta: int
    reason: str


class ConsentState(_Model):
    status: str
    at: datetime
    source: str
    stamp: str


class Device(_Model):
    token: str
    platform: str
    at: datetime


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


class PointsLot(_Model):
    earned_at: datetime
    expires_at: datetime
    remaining: int


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
    gender: str | None = None
    occupation: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    stamps: dict[str, str] = Field(default_factory=dict)

    # channels
    consent: dict[str, ConsentState] = Field(default_factory=dict)
    devices: dict[str, Device] = Field(default_factory=dict)
    line_user_id: str | None = None
    suppressions: dict[str, Suppression] = Field(default_factory=dict)

    # facts
    orders: dict[str, OrderFact] = Field(default_factory=dict)
    adjustments: dict[str, AdjustmentFact] = Field(default_factory=dict)
    cart: CartState | None = None
    last_app_open_at: datetime | None = None
    last_product_view_at: datetime | None = None
    last_event_at: datetime | None = None

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
    phone_hash: str | None = None
    # RFM scores and segment (written by the daily scoring job)
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = None

    # idempotency: inbound event id -> the derived events it produced (as JSON), for
    # re-emission when the event is delivered again; pruned after `idempotency_days`.
    processed: dict[str, ProcessedRecord] = Field(default_factory=dict)

    def derived_view(self) -> dict[str, Any]:
        """The part of the state a test or report compares (no version, no idempotency)."""
        return self.model_dump(exclude={"version", "processed"})


class ProcessedRecord(_Model):
    at: datetime
    derived: list[dict[str, Any]] = Field(default_factory=list)


Customer.model_rebuild()
