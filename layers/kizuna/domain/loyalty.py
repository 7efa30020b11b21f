"""Orders, points and member rank, recomputed from a customer's facts.

Everything here is a pure function of the facts in the item and ``as_of`` (the latest
event time seen for the customer), which is what makes ingest order-independent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from kizuna.domain.customer import Customer, OrderFact, PointsLot
from kizuna.events import Cause, DerivedEvent, RankChanged, RankDirection, derived_event
from kizuna.runtime.config import LoyaltyConfig


@dataclass(frozen=True)
class _Timeline:
    at: datetime
    kind: int  # 0 = order, 1 = adjustment (orders first at the same instant)
    key: str


def base_points(total: Decimal, cfg: LoyaltyConfig) -> int:
    return int((total * cfg.earn_rate).to_integral_value(rounding=ROUND_FLOOR))


def _counted_orders(customer: Customer) -> list[tuple[str, OrderFact]]:
    orders = [(oid, o) for oid, o in customer.orders.items() if o.counts and o.at is not None]
    orders.sort(key=lambda item: (item[1].at, item[0]))
    return orders


def rank_points_at(
    orders: list[tuple[str, OrderFact]], at: datetime, cfg: LoyaltyConfig, *, inclusive: bool
) -> int:
    """Rank points of the orders in the rolling window ending at ``at``."""
    start = at - timedelta(days=cfg.rank_window_days)
    total = 0
    for _, order in orders:
        assert order.at is not None
        if order.at <= start:
            continue
        if order.at < at or (inclusive and order.at == at):
            total += base_points(order.total, cfg)
    return total


def points_lots(customer: Customer, cfg: LoyaltyConfig) -> list[PointsLot]:
    """Replay earn (with the multiplier of the rank held when ordering) and adjustments.

    Positive adjustments are new lots; negative ones spend the oldest unexpired points
    first and never take the balance below zero.
    """
    orders = _counted_orders(customer)
    expiry = timedelta(days=cfg.points_expiry_days)
    timeline = [_Timeline(o.at, 0, oid) for oid, o in orders if o.at is not None]
    timeline += [_Timeline(a.at, 1, aid) for aid, a in customer.adjustments.items()]
    timeline.sort(key=lambda t: (t.at, t.kind, t.key))
    lots: list[PointsLot] = []
    for item in timeline:
        if item.kind == 0:
            order = customer.orders[item.key]
            held = cfg.rank_for(rank_points_at(orders, item.at, cfg, inclusive=False))
            earned = int(
                (order.total * cfg.earn_rate * held.multiplier).to_integral_value(
                    rounding=ROUND_FLOOR
                )
            )
            if earned > 0:
                lots.append(
                    PointsLot(earned_at=item.at, expires_at=item.at + expiry, remaining=earned)
                )
            continue
        delta = customer.adjustments[item.key].delta
        if delta > 0:
            lots.append(PointsLot(earned_at=item.at, expires_at=item.at + expiry, remaining=delta))
            continue
        need = -delta
        for lot in lots:
            if need == 0:
                break
            if lot.expires_at <= item.at or lot.remaining == 0:
                continue
            used = min(lot.remaining, need)
            lot.remaining -= used
            need -= used
    return lots


INDEX_SHARDS = 4


def address_hash(address: str) -> str:
    """How an address appears in keys and suppressions: never in clear."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def shard_of(customer_id: str) -> str:
    """Spreads the sparse sweep indexes over a few partitions (no hot key)."""
    return str(int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % INDEX_SHARDS)


def open_cart_since(customer: Customer, last_order_at: datetime | None) -> datetime | None:
    cart = customer.cart
    if cart is None or cart.item_count == 0:
        return None
    if last_order_at is not None and last_order_at >= cart.at:
        return None
    return cart.at


def recompute(customer: Customer, cfg: LoyaltyConfig, as_of: datetime | None = None) -> Customer:
    """Return ``customer`` with every derived field recomputed from its facts."""
    as_of = as_of or customer.last_event_at
    orders = _counted_orders(customer)
    window_start = as_of - timedelta(days=365) if as_of else None
    lifetime = sum((o.total for _, o in orders), Decimal(0))
    spend_12m = sum(
        (o.total for _, o in orders if window_start is None or (o.at and o.at > window_start)),
        Decimal(0),
    )
    rank_points = rank_points_at(orders, as_of, cfg, inclusive=True) if as_of else 0
    rank = cfg.rank_for(rank_points)
    nxt = cfg.next_rank(rank_points)
    lots = points_lots(customer, cfg)
    live = [lot for lot in lots if as_of is None or lot.expires_at > as_of]
    live = [lot for lot in live if lot.remaining > 0]
    next_expiry = min((lot.expires_at for lot in live), default=None)
    return customer.model_copy(
        update={
            "order_count": len(orders),
            "first_order_at": orders[0][1].at if orders else None,
            "first_order_id": orders[0][0] if orders else None,
            "last_order_at": orders[-1][1].at if orders else None,
            "lifetime_value": lifetime,
            "spend_12m": spend_12m,
            "rank": rank.name,
            "rank_points": rank_points,
            "next_rank": nxt.name if nxt else None,
            "points_to_next_rank": nxt.min_points - rank_points if nxt else None,
            "points_balance": sum(lot.remaining for lot in live),
            "points_next_expiry_at": next_expiry,
            "points_next_expiry_amount": sum(
                lot.remaining for lot in live if lot.expires_at == next_expiry
            ),
            "as_of": as_of,
            "gsi_shard": shard_of(customer.customer_id),
            "phone_hash": address_hash(customer.phone) if customer.phone else None,
            "cart_open_at": open_cart_since(customer, orders[-1][1].at if orders else None),
        }
    )


def rank_changed(
    before: Customer, after: Customer, cfg: LoyaltyConfig, at: datetime, caused_by: str
) -> DerivedEvent | None:
    """``customer.rank_changed`` if the rank moved from ``before`` to ``after`` (an event
    folded by ingest, or time alone in the daily scoring), else None. The id is fixed by the
    move and its cause, so a redelivered cause repeats it."""
    if before.rank is None or after.rank is None or before.rank == after.rank:
        return None
    up = cfg.rank_index(after.rank) > cfg.rank_index(before.rank)
    return derived_event(
        RankChanged,
        f"rank_changed:{before.rank}:{after.rank}:{caused_by}",
        Cause(after.customer_id, at, caused_by),
        from_rank=before.rank,
        to_rank=after.rank,
        direction=RankDirection.UP if up else RankDirection.DOWN,
        rank_points=after.rank_points,
    )
