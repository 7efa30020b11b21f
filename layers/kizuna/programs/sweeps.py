"""Scheduled triggers, found without scanning the whole base.

Three sparse indexes on the customers table (partition ``gsi_shard``, 4 shards) hold only
the customers they concern: ``by_last_order`` (``last_order_at``), ``by_points_expiry``
(``points_next_expiry_at``) and ``by_open_cart`` (``cart_open_at``). A sweep queries the
time window that crossed its threshold since the previous sweep, re-checks fresh state,
and emits derived events with deterministic ids (so an overlapping sweep starts nothing
twice):

- ``customer.dormancy_risk``: no order for ``dormancy_risk_days`` (before dormancy);
- ``customer.points_expiring``: points expire within ``points_expiry_warning_days``;
- ``cart.abandoned``: a cart with items and no order for ``cart_abandoned_hours``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import INDEX_SHARDS
from kizuna.domain.timestamps import iso
from kizuna.events import (
    CartAbandoned,
    Cause,
    DerivedEvent,
    DormancyRisk,
    PointsExpiring,
    derived_event,
)
from kizuna.runtime.config import KizunaConfig


class SweepKind(StrEnum):
    DORMANCY = "dormancy"
    POINTS = "points_expiry"
    CARTS = "carts"


INDEXES = {
    SweepKind.DORMANCY: ("by_last_order", "last_order_at"),
    SweepKind.POINTS: ("by_points_expiry", "points_next_expiry_at"),
    SweepKind.CARTS: ("by_open_cart", "cart_open_at"),
}


# phone number (hashed) -> customer, for the SMS opt-out sweep
PHONE_INDEX = "by_phone"
PHONE_HASH_ATTRIBUTE = "phone_hash"


class SweepStore(Protocol):
    def query_window(
        self, index: str, attribute: str, shard: str, start: str, end: str
    ) -> list[str]:
        """Customer ids whose ``attribute`` is in [start, end) in one shard."""
        ...

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]: ...


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window(kind: SweepKind, now: datetime, lookback: timedelta, cfg: KizunaConfig) -> Window:
    """Index values that crossed the threshold in (now - lookback, now]."""
    lc = cfg.lifecycle
    if kind == SweepKind.DORMANCY:
        edge = now - timedelta(days=lc.dormancy_risk_days)
    elif kind == SweepKind.POINTS:
        edge = now + timedelta(days=lc.points_expiry_warning_days)
    else:
        edge = now - timedelta(hours=lc.cart_abandoned_hours)
    return Window(edge - lookback, edge)


def event_for(
    kind: SweepKind, c: Customer, now: datetime, cfg: KizunaConfig
) -> DerivedEvent | None:
    """The derived event for a candidate, if fresh state still qualifies."""
    lc = cfg.lifecycle
    cause = Cause(c.customer_id, now, f"sweep:{kind}")
    if kind == SweepKind.DORMANCY:
        if c.last_order_at is None:
            return None
        idle = (now - c.last_order_at).days
        if not lc.dormancy_risk_days <= idle < lc.dormant_after_days:
            return None
        return derived_event(
            DormancyRisk,
            f"dormancy_risk:{iso(c.last_order_at)}",
            cause,
            last_order_at=c.last_order_at,
            days_since_last_order=idle,
            dormant_after_days=lc.dormant_after_days,
            order_count=c.order_count,
        )
    if kind == SweepKind.POINTS:
        at = c.points_next_expiry_at
        if (
            at is None
            or c.points_next_expiry_amount <= 0
            or not (now < at <= now + timedelta(days=lc.points_expiry_warning_days))
        ):
            return None
        return derived_event(
            PointsExpiring,
            f"points_expiring:{iso(at)}",
            cause,
            points=c.points_next_expiry_amount,
            expires_at=at,
            points_balance=c.points_balance,
        )
    cart = c.cart
    if c.cart_open_at is None or cart is None:
        return None
    if now - c.cart_open_at < timedelta(hours=lc.cart_abandoned_hours):
        return None
    return derived_event(
        CartAbandoned,
        f"cart_abandoned:{cart.stamp}",
        cause,
        cart_id=cart.cart_id,
        item_count=cart.item_count,
        value=cart.value,
        currency=cart.currency,
        product_ids=cart.product_ids,
        cart_updated_at=cart.at,
    )


def sweep(
    kind: SweepKind, store: SweepStore, now: datetime, lookback: timedelta, cfg: KizunaConfig
) -> list[DerivedEvent]:
    index, attribute = INDEXES[kind]
    w = window(kind, now, lookback, cfg)
    ids: list[str] = []
    for shard in range(INDEX_SHARDS):
        ids += store.query_window(index, attribute, str(shard), iso(w.start), iso(w.end))
    out: list[DerivedEvent] = []
    for start in range(0, len(ids), 100):
        customers = store.get_customers(ids[start : start + 100])
        for cid in ids[start : start + 100]:
            customer = customers.get(cid)
            event = event_for(kind, customer, now, cfg) if customer else None
            if event is not None:
                out.append(event)
    return out
