"""Apply inbound events to a customer: the facts change, the state is recomputed, and the
difference becomes derived events and activity items."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import (
    PROFILE_FIELDS,
    AdjustmentFact,
    CartState,
    ConsentState,
    Customer,
    Device,
    OrderFact,
    ProcessedRecord,
    Suppression,
)
from kizuna.domain.loyalty import rank_changed, recompute
from kizuna.domain.timestamps import beyond, epoch_seconds, stamp
from kizuna.events import (
    AppOpened,
    CartUpdated,
    Cause,
    ChannelSuppressed,
    ConsentChanged,
    CustomerUpserted,
    DerivedEvent,
    DeviceRegistered,
    DeviceUnregistered,
    FirstPurchase,
    LineLinked,
    OrderCancelled,
    OrderPlaced,
    PointsAdjusted,
    PointsNearNextRank,
    ProductViewed,
    RepeatPurchase,
)
from kizuna.events.derived import DERIVED_MODELS, derived_event
from kizuna.events.envelope import ParsedEvent
from kizuna.runtime.config import KizunaConfig


@dataclass
class Applied:
    """The outcome of applying one or more events to one customer."""

    customer: Customer
    derived: list[DerivedEvent] = field(default_factory=list)
    activity: list[ActivityItem] = field(default_factory=list)
    # event id -> derived events of that event (re-emitted for a duplicate delivery)
    derived_by_event: dict[str, list[DerivedEvent]] = field(default_factory=dict)

    changed: bool = False


def device_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


# -- one bad timestamp -------------------------------------------------------------------------
# Ingest rejects an occurred_at beyond the allowed skew, but a customer item may hold one from
# before it did (or from a tool that applied events unchecked). ``horizon`` (the receiver's
# clock plus the skew; None: no check) is where trust ends: a stored time or stamp beyond it
# loses to any incoming fact, so it cannot win every later update.


def _newer(current: str | None, candidate: str, horizon: datetime | None = None) -> bool:
    return current is None or candidate > current or beyond(current, horizon)


def _later(current: datetime | None, at: datetime, horizon: datetime | None) -> bool:
    return current is None or at > current or beyond(current, horizon)


def _last_event_at(c: Customer, at: datetime, horizon: datetime | None) -> datetime:
    """The customer's latest event time after one at ``at``. A stored one beyond the horizon
    is replaced by the latest trusted time of the facts that move the rolling windows."""
    if not beyond(c.last_event_at, horizon):
        return at if c.last_event_at is None or at > c.last_event_at else c.last_event_at
    trusted = [o.at for o in c.orders.values() if o.at is not None]
    trusted += [a.at for a in c.adjustments.values()]
    return max([at, *(t for t in trusted if not beyond(t, horizon))])


def _apply_facts(
    c: Customer, ev: ParsedEvent, cfg: KizunaConfig, horizon: datetime | None = None
) -> list[ActivityItem]:
    """Mutate ``c``'s facts with ``ev``; return the activity items the event writes."""
    d = ev.detail
    at = d.occurred_at
    cid = c.customer_id
    c.last_event_at = _last_event_at(c, at, horizon)

    match d:
        case CustomerUpserted():
            for name in PROFILE_FIELDS:
                value = getattr(d, name)
                if value is None:
                    continue
                st = stamp(at, value)
                if not _newer(c.stamps.get(name), st, horizon):
                    continue
                setattr(c, name, value)
                c.stamps[name] = st
            return []
        case ConsentChanged():
            cur = c.consent.get(d.channel)
            st = stamp(at, (d.status, d.source), rank="1" if d.status == "opted_out" else "0")
            if cur is None or _newer(cur.stamp, st, horizon):
                c.consent[d.channel] = ConsentState(
                    status=d.status, at=at, source=d.source, stamp=st
                )
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="CONSENT",
                    at=at,
                    key=f"{d.channel}#{ev.event_id}",
                    data={"channel": d.channel, "status": d.status, "source": d.source},
                )
            ]
        case OrderPlaced():
            order = c.orders.get(d.order_id) or OrderFact()
            st = stamp(at, (d.total, d.currency, d.channel, d.lines))
            if not order.placed or _newer(order.stamp, st, horizon):
                c.orders[d.order_id] = order.model_copy(
                    update={
                        "placed": True,
                        "at": at,
                        "total": d.total,
                        "currency": d.currency,
                        "channel": d.channel,
                        "products": tuple(dict.fromkeys(line.product_id for line in d.lines)),
                        "stamp": st,
                    }
                )
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="ORDER",
                    at=at,
                    key=d.order_id,
                    data={
                        "order_id": d.order_id,
                        "total": d.total,
                        "currency": d.currency,
                        "channel": d.channel,
                        "lines": [line.model_dump() for line in d.lines],
                    },
                )
            ]
        case OrderCancelled():
            order = c.orders.get(d.order_id) or OrderFact()
            if order.cancelled_at is None or at < order.cancelled_at:
                c.orders[d.order_id] = order.model_copy(update={"cancelled_at": at})
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="CANCEL",
                    at=at,
                    key=d.order_id,
                    data={"order_id": d.order_id, "reason": d.reason},
                )
            ]
        case PointsAdjusted():
            c.adjustments.setdefault(
                d.adjustment_id, AdjustmentFact(at=at, delta=d.delta, reason=d.reason)
            )
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="POINTS",
                    at=at,
                    key=f"adjust#{d.adjustment_id}",
                    data={"delta": d.delta, "reason": d.reason},
                )
            ]
        case DeviceRegistered():
            key = device_key(d.token)
            cur_dev = c.devices.get(key)
            if cur_dev is None or _later(cur_dev.at, at, horizon):
                c.devices[key] = Device(token=d.token, platform=d.platform, at=at)
            return []
        case DeviceUnregistered():
            key = device_key(d.token)
            dev = c.devices.get(key)
            if dev is not None and (dev.at <= at or beyond(dev.at, horizon)):
                del c.devices[key]
            return []
        case ChannelSuppressed():
            cur_sup = c.suppressions.get(d.channel)
            if cur_sup is None or _later(cur_sup.at, at, horizon):
                c.suppressions[d.channel] = Suppression(
                    reason=d.reason, at=at, address_hash=d.address_hash
                )
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="CONSENT",
                    at=at,
                    key=f"{d.channel}#suppressed",
                    data={"channel": d.channel, "status": "suppressed", "reason": d.reason},
                )
            ]
        case LineLinked():
            st = stamp(at, d.line_user_id)
            if _newer(c.stamps.get("line_user_id"), st, horizon):
                c.line_user_id = d.line_user_id
                c.stamps["line_user_id"] = st
            return []
        case CartUpdated():
            st = stamp(at, (d.cart_id, d.items, d.currency))
            if c.cart is None or _newer(c.cart.stamp, st, horizon):
                c.cart = CartState(
                    cart_id=d.cart_id,
                    item_count=sum(i.quantity for i in d.items),
                    value=sum((i.unit_price * i.quantity for i in d.items), Decimal(0)),
                    currency=d.currency,
                    product_ids=tuple(i.product_id for i in d.items),
                    at=at,
                    stamp=st,
                )
            return [_behaviour(ev, cfg, {"cart_id": d.cart_id, "items": len(d.items)})]
        case ProductViewed():
            if _later(c.last_product_view_at, at, horizon):
                c.last_product_view_at = at
            return [_behaviour(ev, cfg, {"product_id": d.product_id, "category": d.category})]
        case AppOpened():
            if _later(c.last_app_open_at, at, horizon):
                c.last_app_open_at = at
            return [_behaviour(ev, cfg, {"platform": d.platform})]
    raise TypeError(f"no rule for {type(d).__name__}")  # pragma: no cover - union is closed


def _behaviour(ev: ParsedEvent, cfg: KizunaConfig, data: dict[str, Any]) -> ActivityItem:
    at = ev.detail.occurred_at
    return ActivityItem(
        customer_id=ev.customer_id,
        kind="EVENT",
        at=at,
        key=f"{ev.detail_type}#{ev.event_id}",
        data={"type": ev.detail_type, **data},
        expires_at=epoch_seconds(at + timedelta(days=cfg.behaviour_ttl_days)),
    )


def _derive(
    before: Customer, after: Customer, ev: ParsedEvent, cfg: KizunaConfig
) -> list[DerivedEvent]:
    at = ev.detail.occurred_at
    cause = Cause(after.customer_id, at, ev.event_id)
    out: list[DerivedEvent] = []
    d = ev.detail

    if isinstance(d, OrderPlaced):
        fact = after.orders[d.order_id]
        newly_counted = fact.counts and not (
            d.order_id in before.orders and before.orders[d.order_id].counts
        )
        if newly_counted:
            purchase: dict[str, Any] = {
                "order_id": d.order_id,
                "total": d.total,
                "currency": d.currency,
                "channel": d.channel,
                "product_ids": tuple(dict.fromkeys(line.product_id for line in d.lines)),
                "categories": tuple(
                    dict.fromkeys(line.category for line in d.lines if line.category)
                ),
            }
            if before.order_count == 0:
                out.append(derived_event(FirstPurchase, "first_purchase", cause, **purchase))
            else:
                out.append(
                    derived_event(
                        RepeatPurchase,
                        f"repeat_purchase:{d.order_id}",
                        cause,
                        order_count=after.order_count,
                        **purchase,
                    )
                )

    moved = rank_changed(before, after, cfg.loyalty, at, ev.event_id)
    if moved is not None:
        out.append(moved)

    near = cfg.loyalty.near_next_rank_points
    gap = after.points_to_next_rank
    if after.next_rank and after.rank and gap is not None and gap <= near:
        was_near = (
            before.next_rank == after.next_rank
            and before.points_to_next_rank is not None
            and before.points_to_next_rank <= near
        )
        if not was_near:
            out.append(
                derived_event(
                    PointsNearNextRank,
                    f"points_near_next_rank:{after.next_rank}:{ev.event_id}",
                    cause,
                    rank=after.rank,
                    next_rank=after.next_rank,
                    points_to_next_rank=gap,
                    rank_points=after.rank_points,
                    points_balance=after.points_balance,
                )
            )
    return out


def _with_points(
    activity: list[ActivityItem], before: Customer, after: Customer
) -> list[ActivityItem]:
    """Orders and cancellations carry the points movement they caused, so the activity
    history is also the point ledger without a second write per order."""
    out = []
    for item in activity:
        if item.kind in {"ORDER", "CANCEL"}:
            item = item.model_copy(
                update={
                    "data": {
                        **item.data,
                        "points_balance_before": before.points_balance,
                        "points_balance_after": after.points_balance,
                        "rank_after": after.rank,
                    }
                }
            )
        out.append(item)
    return out


def restore_derived(record: ProcessedRecord) -> list[DerivedEvent]:
    out = []
    for raw in record.derived:
        model = DERIVED_MODELS[raw["detail_type"]]
        out.append(
            DerivedEvent(detail_type=raw["detail_type"], detail=model.model_validate(raw["detail"]))
        )
    return out


def apply_events(
    customer: Customer,
    events: list[ParsedEvent],
    cfg: KizunaConfig,
    now: datetime,
    *,
    horizon: datetime | None = None,
) -> Applied:
    """Apply ``events`` (all for ``customer``) in order.

    An event already in the customer's idempotency records is not applied again; the
    derived events it produced the first time are returned again so they can be re-emitted
    (at-least-once out, deduplicated downstream by their deterministic ids).

    ``horizon`` (ingest: its clock plus ``cfg.event_time.max_future_skew``) is the latest
    time trusted: a stored time beyond it loses to any incoming fact, and the state is never
    computed as of a time beyond it (see ``_newer``).
    """
    state = customer.model_copy(deep=True)
    result = Applied(customer=state)
    for ev in events:
        if ev.customer_id != customer.customer_id:
            raise ValueError("event for another customer")
        record = state.processed.get(ev.event_id)
        if record is not None:
            replay = restore_derived(record)
            result.derived.extend(replay)
            result.derived_by_event[ev.event_id] = replay
            # activity writes are idempotent puts: write them again in case the first
            # delivery failed after the customer was saved
            result.activity.extend(_apply_facts(state.model_copy(deep=True), ev, cfg, horizon))
            continue
        before = state
        after = before.model_copy(deep=True)
        activity = _apply_facts(after, ev, cfg, horizon)
        as_of = after.last_event_at
        after = recompute(after, cfg.loyalty, horizon if beyond(as_of, horizon) else as_of)
        if after.cart_open_at != before.cart_open_at:
            after.cart_open_seen_at = now if after.cart_open_at is not None else None
        derived = _derive(before, after, ev, cfg)
        activity = _with_points(activity, before, after)
        if derived:
            after.processed[ev.event_id] = ProcessedRecord(
                at=now,
                derived=[
                    {"detail_type": e.detail_type, "detail": e.detail.model_dump(mode="json")}
                    for e in derived
                ],
            )
        if after != before:
            result.changed = True
        state = after
        result.derived.extend(derived)
        result.derived_by_event[ev.event_id] = derived
        result.activity.extend(activity)
    kept_after = now - timedelta(days=cfg.idempotency_days)
    state.processed = {k: v for k, v in state.processed.items() if v.at > kept_after}
    result.customer = state
    return result
