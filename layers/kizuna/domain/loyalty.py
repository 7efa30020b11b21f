"""Orders, points and member rank, recomputed from a customer's facts.

Everything here is a pure function of the facts in the item and ``as_of`` (the latest
event time seen for the customer), which is what makes ingest order-independent.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from itertools import accumulate

from kizuna.domain.customer import (
    MAX_ADJUSTMENTS,
    MAX_HISTORY_PRODUCTS,
    MAX_LOTS,
    MAX_ORDERS,
    MAX_PENDING_CANCELS,
    MAX_SETTLED_ADJUSTMENT_IDS,
    Customer,
    OrderFact,
    PointsLot,
    SettledHistory,
    adjustment_digest,
)
from kizuna.domain.shards import shard_of
from kizuna.domain.timestamps import iso, parse_time
from kizuna.domain.yearly import month_day
from kizuna.events import (
    Cause,
    DerivedEvent,
    PointsNearNextRank,
    RankChanged,
    RankDirection,
    derived_event,
)
from kizuna.runtime.config import LoyaltyConfig


@dataclass(frozen=True)
class _Timeline:
    at: datetime
    # 0 = order, 1 = adjustment, 2 = cancellation, 3 = refund: at the same instant orders
    # first, then adjustments, then cancellations, then refunds
    kind: int
    key: str
    refund: str = ""  # a refund's digest (its order's id is ``key``)


ORDER, ADJUSTMENT, CANCELLATION, REFUND = 0, 1, 2, 3


def refund_key(order_id: str, refund_id: str) -> str:
    """A refund's key: its REFUND activity row's (with the refund id), its ledger entry's
    (with the refund digest). Ids hold no ``#``."""
    return f"{order_id}#{refund_id}"


@dataclass(frozen=True)
class OrderLedger:
    """The points around one order, or one cancellation, at its place in time: the balance
    just before and after it (the order's lot; the cancellation's reversal and clawback),
    and the rank held once it counted."""

    balance_before: int
    balance_after: int
    rank_after: str


@dataclass
class Replay:
    lots: list[PointsLot]
    ledger: dict[str, OrderLedger] = field(default_factory=dict)
    # per order id, the points around its (effective, earliest) cancellation
    cancels: dict[str, OrderLedger] = field(default_factory=dict)
    # per refund (:func:`refund_key` of its order id and refund digest), the points around it
    refunds: dict[str, OrderLedger] = field(default_factory=dict)


def base_points(total: Decimal, cfg: LoyaltyConfig) -> int:
    return int((total * cfg.earn_rate).to_integral_value(rounding=ROUND_FLOOR))


def order_points(total: Decimal, cfg: LoyaltyConfig, multiplier: Decimal) -> int:
    """The points an order of ``total`` earns with the multiplier of the rank held."""
    return int((total * cfg.earn_rate * multiplier).to_integral_value(rounding=ROUND_FLOOR))


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _counted_orders(customer: Customer) -> list[tuple[str, OrderFact]]:
    orders = [(oid, o) for oid, o in customer.orders.items() if o.counts and o.at is not None]
    orders.sort(key=lambda item: (item[1].at, item[0]))
    return orders


def _earns(order: OrderFact) -> bool:
    """Does the order earn a lot at its time: placed, not cancelled at or before it, and not
    refunded in full at or before it?"""
    if not order.placed or order.at is None:
        return False
    if order.cancelled_at is not None and order.cancelled_at <= order.at:
        return False
    return order.net_as_of(order.at) > 0


def _later_reversals(order: OrderFact) -> list[datetime]:
    """The times, after the order's own, of its cancellation and refunds: each changes the
    lot it earned (none for an order not placed)."""
    if not order.placed or order.at is None:
        return []
    at = order.at
    times = [r.at for r in order.refunds.values() if r.at > at]
    if order.cancelled_at is not None and order.cancelled_at > at:
        times.append(order.cancelled_at)
    return times


class RankWindow:
    """Rank points of the rolling window ending at any instant at or after the settlement
    checkpoint, in O(log n): the orders kept one by one count by their time, settled ones by
    their UTC day (a day counts when it is after the day the window starts on)."""

    def __init__(
        self, orders: list[tuple[str, OrderFact]], history: SettledHistory, cfg: LoyaltyConfig
    ) -> None:
        self._cfg = cfg
        self._ats = [o.at for _, o in orders if o.at is not None]
        self._sums = list(accumulate((base_points(o.net_total, cfg) for _, o in orders), initial=0))
        days = sorted((date.fromisoformat(d), t[2]) for d, t in history.days.items())
        self._days = [d for d, _ in days]
        self._day_sums = list(accumulate((p for _, p in days), initial=0))

    def at(self, at: datetime, *, inclusive: bool) -> int:
        start = at - timedelta(days=self._cfg.rank_window_days)
        lo = bisect_right(self._ats, start)
        hi = bisect_right(self._ats, at) if inclusive else bisect_left(self._ats, at)
        total = self._sums[hi] - self._sums[lo] if hi > lo else 0
        first_day = bisect_right(self._days, utc_day(start))
        return total + self._day_sums[-1] - self._day_sums[first_day]


class _Lots:
    """The lots of a replay, with the balance they hold: lots expire in the order they were
    earned (a fixed expiry), so one cursor finds the oldest live lot and one the next to
    expire."""

    def __init__(self, lots: list[PointsLot]) -> None:
        self.lots = lots
        self.balance = sum(lot.remaining for lot in lots)
        self.head = 0  # the oldest lot that may still hold points
        self.gone = 0  # lots before this one have expired (their remaining left the balance)

    def expire(self, at: datetime) -> None:
        while self.gone < len(self.lots) and self.lots[self.gone].expires_at <= at:
            self.balance -= self.lots[self.gone].remaining
            self.gone += 1

    def earn(self, at: datetime, points: int, expiry: timedelta) -> int | None:
        """A new lot of ``points`` (none for 0): its index."""
        if points <= 0:
            return None
        self.lots.append(PointsLot(earned_at=at, expires_at=at + expiry, remaining=points))
        self.balance += points
        return len(self.lots) - 1

    def spend(self, points: int) -> None:
        """Take ``points`` from the oldest live lots; what they do not hold is not taken (the
        balance never goes below zero, and no debt is carried)."""
        self.head = max(self.head, self.gone)
        while points and self.head < len(self.lots):
            lot = self.lots[self.head]
            used = min(lot.remaining, points)
            lot.remaining -= used
            self.balance -= used
            points -= used
            if lot.remaining == 0:
                self.head += 1

    def give_back(self, index: int, points: int) -> None:
        """The lot at ``index`` gives back ``points`` of those it earned (a refund: the
        order now earns fewer; a cancellation: all it still earns): from what it still
        holds first (if it has not expired, that leaves the balance), and what it no longer
        holds (spent) is clawed back from the lots alive now, oldest first, floored at
        zero."""
        lot = self.lots[index]
        taken = min(lot.remaining, points)
        if index >= self.gone:
            self.balance -= taken
        lot.remaining -= taken
        self.spend(points - taken)


def replay_points(
    customer: Customer, cfg: LoyaltyConfig, stop: tuple[datetime, str] | None = None
) -> Replay:
    """Replay earn (with the multiplier of the rank held when ordering), adjustments and
    cancellations, from the lots carried by the settled history, up to ``stop`` (the next
    checkpoint: orders before ``(at, order_id)``, adjustments and cancellations before
    ``at``) or to the end.

    Positive adjustments are new lots; negative ones spend the oldest unexpired points
    first and never take the balance below zero. A cancelled order's lot is alive from the
    order's time until its cancellation (redemptions before it spend from it, as they did);
    at the cancellation what it still holds goes, and the part already spent is clawed back
    from the lots alive then, oldest first, floored at zero (the shortfall is not carried as
    a debt). An order cancelled at or before its own time never earned. The rank held
    counts only orders that count (a cancelled order never did).

    A refund the same way: the order's lot is earned at the order's time on the total less
    the refunds made by then; at a later refund the order earns
    ``floor((total - refunded) * rate * multiplier)`` (one floor, the multiplier of the
    rank held at the order's time) and its lot gives back the difference, from what it
    still holds first, the rest clawed back as a cancellation's is. A refund of the whole
    total gives back everything: a cancellation.

    A cancellation or refund after ``stop`` of an order before it is applied at ``stop``
    (``settle`` keeps such an order in the item unless that would hold too many). O(n)
    after the sort.
    """
    orders = _counted_orders(customer)
    window = RankWindow(orders, customer.history, cfg)
    expiry = timedelta(days=cfg.points_expiry_days)
    timeline = [
        _Timeline(o.at, ORDER, oid)
        for oid, o in customer.orders.items()
        if o.placed and o.at is not None
    ]
    timeline += [_Timeline(a.at, ADJUSTMENT, aid) for aid, a in customer.adjustments.items()]
    timeline += [
        _Timeline(o.cancelled_at, CANCELLATION, oid)
        for oid, o in customer.orders.items()
        if o.cancelled_at is not None
    ]
    timeline += [
        _Timeline(r.at, REFUND, oid, rid)
        for oid, o in customer.orders.items()
        for rid, r in o.refunds.items()
    ]
    timeline.sort(key=lambda t: (t.at, t.kind, t.key, t.refund))
    carried = sorted(customer.history.lots.items(), key=lambda kv: parse_time(kv[0]))
    book = _Lots(
        [
            PointsLot(earned_at=customer.history.before_at or at, expires_at=at, remaining=n)
            for at, n in ((parse_time(k), v) for k, v in carried)
        ]
    )
    out = Replay(lots=book.lots)
    # order id -> (its lot's index, the points it earns now, the multiplier it earned at),
    # for the orders a later cancellation or refund changes
    earning: dict[str, tuple[int, int, Decimal]] = {}

    def _reverse(oid: str, at: datetime | None) -> None:
        # the order's lot as its cancellation and refunds up to ``at`` (None: all) leave it
        index, earned, multiplier = earning[oid]
        order = customer.orders[oid]
        if order.cancelled_at is not None and (at is None or order.cancelled_at <= at):
            now_earns = 0
        else:
            now_earns = order_points(order.net_as_of(at), cfg, multiplier)
        if now_earns < earned:
            book.give_back(index, earned - now_earns)
            earning[oid] = (index, now_earns, multiplier)

    for item in timeline:
        if stop is not None and (
            (item.at, item.key) >= stop if item.kind == ORDER else item.at >= stop[0]
        ):
            book.expire(stop[0])
            for oid in list(earning):  # cancelled or refunded after the checkpoint
                _reverse(oid, None)
            break
        book.expire(item.at)
        if item.kind == ADJUSTMENT:
            delta = customer.adjustments[item.key].delta
            if delta > 0:
                book.earn(item.at, delta, expiry)
            else:
                book.spend(-delta)
            continue
        order = customer.orders[item.key]
        before = book.balance
        if item.kind == ORDER and _earns(order):
            held = cfg.rank_for(window.at(item.at, inclusive=False))
            earned = order_points(order.net_as_of(item.at), cfg, held.multiplier)
            lot = book.earn(item.at, earned, expiry)
            if lot is not None and _later_reversals(order):
                earning[item.key] = (lot, earned, held.multiplier)
        elif item.kind in (CANCELLATION, REFUND) and item.key in earning:
            _reverse(item.key, item.at)
        entry = OrderLedger(
            before, book.balance, cfg.rank_for(window.at(item.at, inclusive=True)).name
        )
        if item.kind == ORDER:
            out.ledger[item.key] = entry
        elif item.kind == CANCELLATION:
            out.cancels[item.key] = entry
        else:
            out.refunds[refund_key(item.key, item.refund)] = entry
    return out


def points_lots(customer: Customer, cfg: LoyaltyConfig) -> list[PointsLot]:
    return replay_points(customer, cfg).lots


def live_lots(
    customer: Customer, cfg: LoyaltyConfig, after: datetime | None = None
) -> dict[datetime, int]:
    """The points still held in lots that expire after ``after`` (None: every lot), as
    expiry -> points, earliest first; lots of the same expiry are one. From the replay of
    the customer's facts, so what was spent, cancelled or expired is not in it.

    Lots expire by time alone: the lots live at the customer's ``as_of`` that expire after
    ``now`` are the ones live now (what ``recompute`` stored is only their earliest)."""
    out: dict[datetime, int] = {}
    for lot in sorted(replay_points(customer, cfg).lots, key=lambda lot: lot.expires_at):
        if lot.remaining > 0 and (after is None or lot.expires_at > after):
            out[lot.expires_at] = out.get(lot.expires_at, 0) + lot.remaining
    return out


def address_hash(address: str) -> str:
    """How an address appears in keys and suppressions: never in clear."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def open_cart_since(customer: Customer, last_order_at: datetime | None) -> datetime | None:
    cart = customer.cart
    if cart is None or cart.item_count == 0:
        return None
    if last_order_at is not None and last_order_at >= cart.at:
        return None
    return cart.at


def recompute(customer: Customer, cfg: LoyaltyConfig, as_of: datetime | None = None) -> Customer:
    """Return ``customer`` with every derived field recomputed from its facts and its
    settled history."""
    as_of = as_of or customer.last_event_at
    history = customer.history
    orders = _counted_orders(customer)
    window_start = as_of - timedelta(days=365) if as_of else None
    lifetime = history.lifetime_value + sum((o.net_total for _, o in orders), Decimal(0))
    spend_12m = sum(
        (o.net_total for _, o in orders if window_start is None or (o.at and o.at > window_start)),
        Decimal(0),
    )
    if window_start is not None:
        first_day = utc_day(window_start)
        spend_12m += sum(
            (t[1] for d, t in history.days.items() if date.fromisoformat(d) > first_day),
            Decimal(0),
        )
    window = RankWindow(orders, history, cfg)
    rank_points = window.at(as_of, inclusive=True) if as_of else 0
    rank = cfg.rank_for(rank_points)
    nxt = cfg.next_rank(rank_points)
    live = live_lots(customer, cfg, as_of)
    next_expiry = min(live, default=None)
    first_at: datetime | None = history.first_order_at
    first_id: str | None = history.first_order_id
    if first_at is None and orders:
        first_at, first_id = orders[0][1].at, orders[0][0]
    last_at = orders[-1][1].at if orders else history.last_order_at
    return customer.model_copy(
        update={
            "order_count": history.order_count + len(orders),
            "first_order_at": first_at,
            "first_order_id": first_id,
            "last_order_at": last_at,
            "lifetime_value": lifetime,
            "spend_12m": spend_12m,
            "rank": rank.name,
            "rank_points": rank_points,
            "next_rank": nxt.name if nxt else None,
            "points_to_next_rank": nxt.min_points - rank_points if nxt else None,
            "points_balance": sum(live.values()),
            "points_next_expiry_at": next_expiry,
            "points_next_expiry_amount": live.get(next_expiry, 0) if next_expiry else 0,
            "as_of": as_of,
            "gsi_shard": shard_of(customer.customer_id),
            "phone_hash": address_hash(customer.phone) if customer.phone else None,
            "line_user_hash": address_hash(customer.line_user_id)
            if customer.line_user_id
            else None,
            "cart_open_at": open_cart_since(customer, last_at),
            "birthday_mmdd": month_day(customer.birth_date) if customer.birth_date else None,
        }
    )


def settled_after_days(cfg: LoyaltyConfig) -> int:
    """Days after which a fact can change nothing any more: the rank window plus the
    points' life (a lot earned at the window's start), and never fewer than 366 (the
    12-month spend is an instant-exact 365-day window; settled orders count in it by UTC
    day)."""
    return max(cfg.rank_window_days + cfg.points_expiry_days, 366)


def settle(
    customer: Customer, cfg: LoyaltyConfig, limit: tuple[datetime, str] | None = None
) -> Customer:
    """Fold the facts the item no longer needs one by one into its settled history, so the
    item stays bounded whatever the number of orders.

    The checkpoint moves to the later of: :func:`settled_after_days` before ``as_of``
    (older facts can change neither the rank, the 12-month spend nor a live lot), the
    MAX_ORDERS-th most recent order, the MAX_ADJUSTMENTS-th most recent adjustment. It
    never moves back. The derived fields do not change (``recompute`` gives the same result
    before and after), except that lots of one day are merged (earliest expiry kept) when
    more than MAX_LOTS would be carried, and orders settled by the count limits count in
    the rolling windows by their UTC day.
    """
    as_of = customer.as_of or customer.last_event_at
    if as_of is None:
        return customer
    history = customer.history
    horizon = as_of - timedelta(days=settled_after_days(cfg))
    placed = sorted((o.at, oid) for oid, o in customer.orders.items() if o.placed and o.at)
    adjusted = sorted(a.at for a in customer.adjustments.values())
    cut: tuple[datetime, str] = (horizon, "")
    if len(placed) > MAX_ORDERS:
        # orders of one instant stay together (the windows stay exact) unless there are
        # more of them than the bound allows
        at, oid = placed[-MAX_ORDERS]
        ties = len(placed) - bisect_left(placed, (at, ""))
        cut = max(cut, (at, "") if ties <= MAX_ORDERS + MAX_ORDERS // 2 else (at, oid))
    if len(adjusted) > MAX_ADJUSTMENTS:
        cut = max(cut, (adjusted[-MAX_ADJUSTMENTS], ""))
    if limit is not None:
        cut = min(cut, limit)
    cut = _before_open_cancellations(customer, cut, placed, adjusted)
    if history.before_at is not None:
        cut = max(cut, (history.before_at, history.before_id))
    pending = _pending_cancels(customer, horizon)
    settled = [oid for at, oid in placed if (at, oid) < cut]
    settled_adj = [aid for aid, a in customer.adjustments.items() if a.at < cut[0]]
    if not settled and not settled_adj:
        if pending == customer.orders:
            return customer
        return customer.model_copy(update={"orders": pending})
    replay = replay_points(customer, cfg, stop=cut)
    counted = sorted(
        (at, oid) for at, oid in placed if (at, oid) < cut and customer.orders[oid].counts
    )
    days = dict(history.days)
    products: dict[str, None] = dict.fromkeys(history.products)
    first = (history.first_order_at, history.first_order_id)
    last_at = history.last_order_at
    lifetime = history.lifetime_value
    for at, oid in counted:
        order = customer.orders[oid]
        key = utc_day(at).isoformat()
        n, spend, points = days.get(key, (0, Decimal(0), 0))
        net = order.net_total
        days[key] = (n + 1, spend + net, points + base_points(net, cfg))
        lifetime += net
        if first[0] is None:
            first = (at, oid)
        last_at = at if last_at is None or at > last_at else last_at
        for product in order.products:
            products.pop(product, None)
            products[product] = None
    keep_from = utc_day(cut[0] - timedelta(days=max(cfg.rank_window_days, 365)))
    days = {d: t for d, t in days.items() if date.fromisoformat(d) >= keep_from}
    new_history = SettledHistory(
        before_at=cut[0],
        before_id=cut[1],
        order_count=history.order_count + len(counted),
        lifetime_value=lifetime,
        first_order_at=first[0],
        first_order_id=first[1],
        last_order_at=last_at,
        lots=_carry(replay.lots, cut[0]),
        days=days,
        products=tuple(products)[-MAX_HISTORY_PRODUCTS:],
        adjustment_ids=(
            *history.adjustment_ids,
            *(
                adjustment_digest(aid)
                for aid in sorted(settled_adj, key=lambda aid: customer.adjustments[aid].at)
            ),
        )[-MAX_SETTLED_ADJUSTMENT_IDS:],
    )
    gone = set(settled)
    return customer.model_copy(
        update={
            "history": new_history,
            "orders": {oid: o for oid, o in pending.items() if oid not in gone},
            "adjustments": {
                aid: a for aid, a in customer.adjustments.items() if aid not in set(settled_adj)
            },
        }
    )


def _before_open_cancellations(
    customer: Customer,
    cut: tuple[datetime, str],
    placed: list[tuple[datetime, str]],
    adjusted: list[datetime],
) -> tuple[datetime, str]:
    """``cut`` moved back before every order that earned before it and was cancelled or
    refunded at or after it: the cancellation (the refund) claws back what was spent of the
    order's lot, which the carried lots could no longer tell. Never to keep more orders than
    one instant's may (half MAX_ORDERS again) nor more than MAX_ADJUSTMENTS adjustments:
    past that, the replay applies such a cancellation (refund) at the checkpoint
    (:func:`replay_points`), a little early, so the item stays within its bound."""
    max_orders = MAX_ORDERS + MAX_ORDERS // 2
    max_adjustments = MAX_ADJUSTMENTS
    while True:
        held = [
            (o.at, oid)
            for oid, o in customer.orders.items()
            if o.at is not None
            and (o.at, oid) < cut
            and any(at >= cut[0] for at in _later_reversals(o))
        ]
        if not held:
            return cut
        back = min(held)
        kept_orders = len(placed) - bisect_left(placed, back)
        kept_adjustments = len(adjusted) - bisect_left(adjusted, back[0])
        if kept_orders > max_orders or kept_adjustments > max_adjustments:
            return cut
        cut = back


def _pending_cancels(customer: Customer, horizon: datetime) -> dict[str, OrderFact]:
    """The orders without the cancellations and refunds that waited too long for their
    order (their latest older than the horizon, or beyond the MAX_PENDING_CANCELS most
    recent)."""
    waiting = sorted(
        (since, oid) for oid, o in customer.orders.items() if (since := o.waiting_since) is not None
    )
    keep = {oid for at, oid in waiting[-MAX_PENDING_CANCELS:] if at >= horizon}
    return {
        oid: o
        for oid, o in customer.orders.items()
        if o.placed or o.waiting_since is None or oid in keep
    }


def _carry(lots: list[PointsLot], at: datetime) -> dict[str, int]:
    """Lots still holding points after ``at``, as expiry -> points; lots of the same expiry
    are one; when there would be more than MAX_LOTS, lots of the same day (then of the same
    span of days) are merged and keep the earliest expiry."""
    live = sorted((lot.expires_at, lot.remaining) for lot in lots if lot.expires_at > at)
    merged: dict[datetime, int] = {}
    for expires, n in live:
        if n > 0:
            merged[expires] = merged.get(expires, 0) + n
    span = 1
    while len(merged) > MAX_LOTS:
        grouped: dict[int, tuple[datetime, int]] = {}
        for expires, n in merged.items():
            bucket = utc_day(expires).toordinal() // span
            first, total = grouped.get(bucket, (expires, 0))
            grouped[bucket] = (min(first, expires), total + n)
        merged = dict(grouped.values())
        span *= 2
    return {iso(expires): n for expires, n in sorted(merged.items())}


def time_driven_key(before: Customer, after: Customer, cfg: LoyaltyConfig) -> str | None:
    """``window:<instant>`` when time alone moved the rank from ``before`` to ``after``,
    else None: ``before``'s own facts give ``after``'s rank as of ``after.as_of``, and the
    instant is the first after ``before.as_of`` at which they do (an order, or a settled
    day, leaving the rank window). The key names the fact, not who noticed it: the daily
    scoring and an ingest fold that both start from the same stored ``before`` get the same
    key, so a drop both announce (the run puts its events before it saves, an event of the
    customer's can be folded in between) has one id.

    None when the event folded moved the rank (``after``'s rank is not what time gives),
    and when no departure explains the move (a change of the configured ranks)."""
    if before.rank is None or after.rank is None or after.as_of is None:
        return None
    if before.rank == after.rank:
        return None
    orders = _counted_orders(before)
    window = RankWindow(orders, before.history, cfg)
    if cfg.rank_for(window.at(after.as_of, inclusive=True)).name != after.rank:
        return None
    span = timedelta(days=cfg.rank_window_days)
    leaving = {o.at + span for _, o in orders if o.at is not None}
    leaving |= {
        datetime.combine(date.fromisoformat(d), time(), tzinfo=UTC) + span
        for d in before.history.days
    }
    since = before.as_of
    for at in sorted(leaving):
        if (since is not None and at <= since) or at > after.as_of:
            continue
        if cfg.rank_for(window.at(at, inclusive=True)).name == after.rank:
            return f"window:{iso(at)}"
    return None


def rank_changed(
    before: Customer,
    after: Customer,
    cfg: LoyaltyConfig,
    at: datetime,
    caused_by: str,
    *,
    from_rank: str | None = None,
    key: str | None = None,
) -> DerivedEvent | None:
    """``customer.rank_changed`` if the rank moved from ``before`` to ``after`` (an event
    folded by ingest, or time alone in the daily scoring), else None. The id is fixed by the
    move and ``key`` (default: its cause), so a redelivered cause repeats it; a move time
    made has the key of :func:`time_driven_key`, the same whoever noticed it.

    ``from_rank``, when given, is the rank ``before`` is taken to hold: ingest gives a
    customer without a rank yet (their first event) the first rank, so a first order that
    reaches Gold is Bronze -> Gold whatever arrived first. Without it a customer without a
    rank moves nowhere (the daily scoring: an item never computed)."""
    held = from_rank if from_rank is not None else before.rank
    if held is None or after.rank is None or held == after.rank:
        return None
    up = cfg.rank_index(after.rank) > cfg.rank_index(held)
    return derived_event(
        RankChanged,
        f"rank_changed:{held}:{after.rank}:{key or caused_by}",
        Cause(after.customer_id, at, caused_by),
        from_rank=held,
        to_rank=after.rank,
        direction=RankDirection.UP if up else RankDirection.DOWN,
        rank_points=after.rank_points,
    )


def points_near_next_rank(
    before: Customer,
    after: Customer,
    cfg: LoyaltyConfig,
    at: datetime,
    caused_by: str,
    *,
    key: str | None = None,
) -> DerivedEvent | None:
    """``customer.points_near_next_rank`` if ``after`` is within ``near_next_rank_points``
    of its next rank and ``before`` was not already that near to the same rank (an event
    folded by ingest, or time alone in the daily scoring: a lost rank leaves the customer
    just short of it), else None. The id is fixed by the next rank and ``key`` (default:
    the cause), so a redelivered cause repeats it; the gap a rank lost to time opens has the
    key of that move (:func:`time_driven_key`), the same whoever noticed it.

    Both writers use it: the state the daily scoring stores is the ``before`` of ingest's
    next fold, so a gap the scoring did not announce would never be announced."""
    near = cfg.near_next_rank_points
    gap = after.points_to_next_rank
    if not after.next_rank or not after.rank or gap is None or gap > near:
        return None
    if (
        before.next_rank == after.next_rank
        and before.points_to_next_rank is not None
        and before.points_to_next_rank <= near
    ):
        return None  # told already
    return derived_event(
        PointsNearNextRank,
        f"points_near_next_rank:{after.next_rank}:{key or caused_by}",
        Cause(after.customer_id, at, caused_by),
        rank=after.rank,
        next_rank=after.next_rank,
        points_to_next_rank=gap,
        rank_points=after.rank_points,
        points_balance=after.points_balance,
    )
