"""order.refunded: part (or all) of an order paid back, kept per refund id, counted at the
order's own time (docs/EVENTS.md). Default config: 1 point / 100 yen; Bronze 0 / Silver 500
x1.5 / Gold 2000 x2; 365-day rank window and points expiry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import MAX_REFUNDS, Customer, refund_digest
from kizuna.domain.ingest import HistoryNeeded, apply_events, facts_from_activity
from kizuna.events import INBOUND_MODELS, OrderRefunded
from kizuna.events.envelope import EventRejected
from kizuna.runtime.config import KizunaConfig
from tests.factories import T0, adjust, cancel, days, envelope, order, parsed, refund

CFG = KizunaConfig()
NOW = T0 + days(2000)


def fold(*raws: dict, c: Customer | None = None):  # type: ignore[no-untyped-def,type-arg]
    """Apply events one delivery at a time: the customer, and per delivery its derived
    events (detail-type, detail), its activity rows and what it refused."""
    c = c or Customer(customer_id="c1")
    derived, activity, refused = [], [], {}
    for raw in raws:
        applied = apply_events(c, [parsed(raw)], CFG, NOW)
        c = applied.customer
        derived.append([(e.detail_type, e.detail) for e in applied.derived])
        activity.append(applied.activity)
        refused.update(applied.refused)
    return c, derived, activity, refused


def opened(at, event_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return envelope("app.opened", {"customer_id": "c1", "occurred_at": at.isoformat()}, event_id)


# -- the contract ------------------------------------------------------------------------------


def test_order_refunded_is_an_inbound_event() -> None:
    assert INBOUND_MODELS["order.refunded"] is OrderRefunded


@pytest.mark.parametrize("amount", [0, "0", -1, "1e3", " 10", "1,000"])
def test_a_refund_amount_is_more_than_zero_in_plain_digits(amount: object) -> None:
    with pytest.raises(EventRejected):
        parsed(refund("c1", "o1", "r1", amount, T0))  # type: ignore[arg-type]


def test_a_refund_names_its_refund_and_currency() -> None:
    raw = refund("c1", "o1", "r1", 100, T0)
    for name in ("refund_id", "currency", "order_id"):
        broken = {**raw, "detail": {k: v for k, v in raw["detail"].items() if k != name}}
        with pytest.raises(EventRejected):
            parsed(broken)


def test_a_refund_in_another_currency_is_refused() -> None:
    raw = refund("c1", "o1", "r1", 100, T0 + days(1))
    raw["detail"]["currency"] = "USD"
    c, _, _, refused = fold(order("c1", "o1", 30000, T0), raw)
    assert "loyalty.currency" in refused[raw["id"]]
    assert c.lifetime_value == 30000


# -- the order keeps its place in time ---------------------------------------------------------


def test_a_partial_refund_keeps_the_orders_place_in_time() -> None:
    # o1 (30,000 yen) placed at T0; 10,000 yen of it refunded at T0+20d
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0, event_id="ev-o1"),
        refund("c1", "o1", "r1", 10000, T0 + days(20)),
    )
    assert c.lifetime_value == 20000 and c.points_balance == 200
    assert c.rank_points == 200
    # the refund does not move the purchase: its points still expire a year after T0, and
    # the customer's last order is still T0 (dormancy, RFM recency)
    assert c.points_next_expiry_at == T0 + days(365), c.points_next_expiry_at
    assert c.last_order_at == T0, c.last_order_at
    assert c.order_count == 1


def test_a_partial_refund_stated_at_the_orders_own_time_is_applied() -> None:
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0, event_id="ev-o1"),
        refund("c1", "o1", "r1", 10000, T0),
    )
    assert c.lifetime_value == 20000
    assert c.points_balance == 200


def test_a_refunded_order_leaves_the_windows_at_its_own_time() -> None:
    c, _, _, _ = fold(
        order("c1", "o1", 60000, T0),  # Silver
        refund("c1", "o1", "r1", 10000, T0 + days(200)),
    )
    assert (c.spend_12m, c.rank_points, c.rank) == (50000, 500, "Silver")
    # a year after the ORDER (not after the refund) it has left the 12-month spend and the
    # rank window
    c, _, _, _ = fold(opened(T0 + days(366), "ev-open"), c=c)
    assert (c.spend_12m, c.rank_points, c.rank) == (0, 0, "Bronze")
    assert c.lifetime_value == 50000


def test_a_refund_recomputes_the_orders_points_with_one_floor_and_its_multiplier() -> None:
    # o1 makes the customer Silver (x1.5); o2 (10,000 yen) earns floor(100 x 1.5) = 150
    c, _, _, _ = fold(order("c1", "o1", 60000, T0), order("c1", "o2", 10000, T0 + days(1)))
    assert c.points_balance == 600 + 150
    # 3,333 refunded: o2 earns floor(66.67 x 1.5) = 100, not 150 - floor(33.33 x 1.5) = 101
    c, _, _, _ = fold(refund("c1", "o2", "r1", 3333, T0 + days(2)), c=c)
    assert c.points_balance == 600 + 100
    assert c.lifetime_value == 60000 + 6667


def test_a_refund_can_drop_the_rank() -> None:
    c, _, _, _ = fold(order("c1", "o1", 60000, T0))
    assert c.rank == "Silver"
    c, derived, _, _ = fold(refund("c1", "o1", "r1", 20000, T0 + days(10)), c=c)
    assert (c.rank, c.rank_points) == ("Bronze", 400)
    moves = [(d.from_rank, d.to_rank) for t, d in derived[0] if t == "customer.rank_changed"]
    assert moves == [("Silver", "Bronze")]


def test_refunds_of_an_order_add_up() -> None:
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0),
        refund("c1", "o1", "r1", 5000, T0 + days(1)),
        refund("c1", "o1", "r2", 5000, T0 + days(2)),
    )
    assert (c.lifetime_value, c.points_balance) == (20000, 200)


# -- one refund per refund id ------------------------------------------------------------------


def test_a_refund_sent_again_under_another_event_id_is_the_same_refund() -> None:
    c, _, _, _ = fold(order("c1", "o1", 30000, T0), refund("c1", "o1", "r1", 10000, T0 + days(1)))
    again = refund("c1", "o1", "r1", 10000, T0 + days(3), event_id="ev-retry")
    c2, derived, activity, refused = fold(again, c=c)
    assert (c2.lifetime_value, c2.points_balance) == (20000, 200)
    assert activity == [[]] and derived == [[]] and not refused


def test_a_refund_retried_earlier_moves_its_one_row() -> None:
    c, _, first, _ = fold(
        order("c1", "o1", 30000, T0), refund("c1", "o1", "r1", 10000, T0 + days(3))
    )
    earlier = refund("c1", "o1", "r1", 10000, T0 + days(1), event_id="ev-earlier")
    c, _, activity, _ = fold(earlier, c=c)
    (row,) = activity[0]
    assert row.at == T0 + days(1) and row.replaces == first[1][0].sk
    assert c.orders["o1"].refunds[refund_digest("r1")].at == T0 + days(1)


def test_a_refund_id_reused_with_another_amount_is_refused() -> None:
    c, _, _, _ = fold(order("c1", "o1", 30000, T0), refund("c1", "o1", "r1", 10000, T0 + days(1)))
    other = refund("c1", "o1", "r1", 5000, T0 + days(2), event_id="ev-other")
    c2, _, activity, refused = fold(other, c=c)
    assert "another amount" in refused["ev-other"]
    assert activity == [[]]
    assert (c2.lifetime_value, c2.points_balance) == (20000, 200)
    assert "ev-other" not in c2.processed  # dead-lettered, not recorded as applied


def test_a_customer_item_keeps_a_bounded_number_of_refunds() -> None:
    orders = [order("c1", f"o{n}", 30000, T0 + days(n)) for n in range(5)]
    raws = [refund("c1", f"o{n % 5}", f"r{n}", 1, T0 + days(10)) for n in range(MAX_REFUNDS + 1)]
    c, _, _, refused = fold(*orders, *raws)
    assert list(refused) == [raws[-1]["id"]]
    assert "send it again once older orders settle" in refused[raws[-1]["id"]]
    assert sum(len(o.refunds) for o in c.orders.values()) == MAX_REFUNDS
    # a retry of a refund held is still recognised
    _, _, activity, refused = fold(refund("c1", "o0", "r0", 1, T0 + days(11), "ev-again"), c=c)
    assert activity == [[]] and not refused


def test_the_item_keys_a_refund_by_a_digest_of_its_id() -> None:
    long_id = "r" * 128
    c, _, activity, _ = fold(
        order("c1", "o1", 30000, T0), refund("c1", "o1", long_id, 100, T0 + days(1))
    )
    assert list(c.orders["o1"].refunds) == [refund_digest(long_id)]
    assert activity[1][0].data["refund_id"] == long_id  # the fact log keeps it as sent


# -- more than the total, the whole total, before the order ------------------------------------


def test_an_over_refund_counts_the_order_for_nothing_never_less() -> None:
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0),
        order("c1", "o2", 10000, T0 + days(1)),
        refund("c1", "o1", "r1", 20000, T0 + days(2)),
        refund("c1", "o1", "r2", 20000, T0 + days(3)),
    )
    assert (c.lifetime_value, c.points_balance, c.order_count) == (10000, 100, 1)
    assert c.orders["o1"].net_total == 0


def _cancelled_or_refunded(last: dict) -> Customer:  # type: ignore[type-arg]
    # o1 earns 300 points, all redeemed; o2 then earns 200
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -300, T0 + days(1)),
        order("c1", "o2", 20000, T0 + days(2)),
        last,
    )
    return c


def test_a_refund_of_the_whole_total_is_a_cancellation() -> None:
    refunded = _cancelled_or_refunded(refund("c1", "o1", "r1", 30000, T0 + days(3)))
    cancelled = _cancelled_or_refunded(cancel("c1", "o1", T0 + days(3)))
    fields = ("points_balance", "order_count", "lifetime_value", "rank_points", "rank")
    assert [getattr(refunded, f) for f in fields] == [getattr(cancelled, f) for f in fields]
    # the redeemed 300 points are clawed back from o2's 200, floored at 0
    assert refunded.points_balance == 0
    assert refunded.first_order_at == T0 + days(2)


def test_a_partial_refund_after_the_points_were_spent_claws_back_the_difference() -> None:
    # o1 earns 300, 250 of them redeemed (its lot holds 50); o2 earns 200
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -250, T0 + days(1)),
        order("c1", "o2", 20000, T0 + days(2)),
    )
    assert c.points_balance == 250
    # half of o1 refunded: it earns 150, so 150 go back: the 50 its lot holds, and 100
    # clawed back from o2's lot
    c, _, activity, _ = fold(refund("c1", "o1", "r1", 15000, T0 + days(3)), c=c)
    assert c.points_balance == 100
    (row,) = activity[0]
    assert row.kind == "REFUND"
    assert (row.data["points_balance_before"], row.data["points_balance_after"]) == (250, 100)
    assert row.data["amount"] == 15000 and row.data["refund_id"] == "r1"


def test_a_refund_before_its_order_waits_for_it() -> None:
    early = refund("c1", "o1", "r1", 10000, T0 + days(1))
    c, _, _, _ = fold(early)
    assert (c.order_count, c.lifetime_value, c.points_balance) == (0, 0, 0)
    assert not c.orders["o1"].placed
    c, derived, _, _ = fold(order("c1", "o1", 30000, T0), c=c)
    assert (c.order_count, c.lifetime_value, c.points_balance) == (1, 20000, 200)
    assert c.points_next_expiry_at == T0 + days(365)
    assert [t for t, _ in derived[0]] == ["customer.first_purchase"]


def test_a_whole_refund_before_its_order_is_a_cancellation_before_it() -> None:
    c, derived, _, _ = fold(
        refund("c1", "o1", "r1", 30000, T0 + days(1)), order("c1", "o1", 30000, T0)
    )
    assert (c.order_count, c.lifetime_value, c.points_balance) == (0, 0, 0)
    assert derived == [[], []]  # no first purchase, no rank event


# -- the fact log ------------------------------------------------------------------------------


def _rows(activity: list[list[ActivityItem]]) -> list[ActivityItem]:
    return [row for rows in activity for row in rows]


def test_a_rebuild_from_the_fact_log_replays_the_refunds() -> None:
    live, _, activity, _ = fold(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -250, T0 + days(1)),
        order("c1", "o2", 20000, T0 + days(2)),
        refund(
            "c1",
            "o1",
            "r1",
            15000,
            T0 + days(3),
            reason="returned",
            lines=[{"product_id": "p1", "quantity": 1, "unit_price": 15000}],
        ),
    )
    log = facts_from_activity("c1", _rows(activity))
    assert [e.detail_type for e in log].count("order.refunded") == 1
    rebuilt = apply_events(Customer(customer_id="c1"), log, CFG, NOW, bulk=True).customer
    fields = ("points_balance", "lifetime_value", "rank_points", "last_order_at", "order_count")
    assert [getattr(rebuilt, f) for f in fields] == [getattr(live, f) for f in fields]


def test_a_refund_of_a_settled_order_needs_the_fact_log() -> None:
    # o1 settled (two years of later orders): its refund must be folded from the log
    raws = [order("c1", "o1", 30000, T0), order("c1", "o2", 10000, T0 + days(800))]
    c, _, activity, _ = fold(*raws)
    assert "o1" not in c.orders and c.history.before_at is not None
    late = parsed(refund("c1", "o1", "r1", 10000, T0 + days(801)))
    with pytest.raises(HistoryNeeded):
        apply_events(c, [late], CFG, NOW)
    log = facts_from_activity("c1", _rows(activity))
    applied = apply_events(c, [late], CFG, NOW, log=log)
    assert applied.customer.lifetime_value == 20000 + 10000
    assert [row.kind for row in applied.activity] == ["REFUND"]


def test_a_bulk_fold_keeps_the_points_of_a_late_refund_folded_beside_a_live_one() -> None:
    # o0 and o1 settled (six orders 200 days apart), o4 in the item
    c, _, activity, _ = fold(*(order("c1", f"o{i}", 10000, T0 + days(200 * i)) for i in range(6)))
    assert "o0" not in c.orders and "o4" in c.orders
    log = facts_from_activity("c1", _rows(activity))
    late = parsed(refund("c1", "o0", "r1", 4000, T0 + days(3)))
    live = parsed(refund("c1", "o4", "r1", 2000, T0 + days(801)))
    # When both refunds are folded at once (an import: bulk), and the late one alone
    bulk = apply_events(c, [late, live], CFG, NOW, log=log, bulk=True)
    alone = apply_events(c, [late], CFG, NOW, log=log)

    def points(applied, order_id: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        (row,) = [r for r in applied.activity if r.data["order_id"] == order_id]
        return row.data["points_balance_before"], row.data["points_balance_after"]

    # Then the late refund's row says the points around it at its place in time (o0's lot
    # of 100 gives back 40), not the balance of today: the fold of the live one (o0 settled
    # again) has no entry for it
    assert points(bulk, "o0") == points(alone, "o0") == (100, 60)


def test_a_refunded_order_settles_at_its_net_total() -> None:
    c, _, _, _ = fold(
        order("c1", "o1", 30000, T0),
        refund("c1", "o1", "r1", 10000, T0 + days(1)),
        order("c1", "o2", 10000, T0 + days(800)),
    )
    assert "o1" not in c.orders
    assert c.lifetime_value == Decimal(30000)


def test_a_fold_from_the_fact_log_holds_more_refunds_than_the_item_keeps() -> None:
    # a refund every 20 days for three years: the older orders settled with their refunds
    raws = []
    for n in range(MAX_REFUNDS + 15):
        raws += [
            order("c1", f"o{n}", 10000, T0 + days(20 * n)),
            refund("c1", f"o{n}", "r1", 1000, T0 + days(20 * n + 1)),
        ]
    c, _, activity, refused = fold(*raws)
    assert not refused and c.history.before_at is not None
    assert sum(len(o.refunds) for o in c.orders.values()) < MAX_REFUNDS
    # a late cancellation of the first order is folded from the whole fact log
    late = parsed(cancel("c1", "o0", T0 + days(20 * (MAX_REFUNDS + 15))))
    applied = apply_events(c, [late], CFG, NOW, log=facts_from_activity("c1", _rows(activity)))
    assert not applied.refused
    assert applied.customer.lifetime_value == c.lifetime_value - 9000
    # and a late refund of it, though the log holds more refunds than the item keeps: the
    # bound counts the refunds the stored item holds
    late = parsed(refund("c1", "o1", "r2", 2000, T0 + days(20 * (MAX_REFUNDS + 15))))
    applied = apply_events(c, [late], CFG, NOW, log=facts_from_activity("c1", _rows(activity)))
    assert not applied.refused
    assert applied.customer.lifetime_value == c.lifetime_value - 2000


# -- campaigns ----------------------------------------------------------------------------------


def test_a_campaign_goal_is_met_by_a_partly_refunded_order_not_a_wholly_refunded_one() -> None:
    """The console, the API and the winner test (:func:`kizuna.campaigns.engine.converted`)
    read the customer item as it is when they count: refunds known then, the rule the
    campaign report follows (docs/CAMPAIGNS.md)."""
    from kizuna.campaigns.engine import converted

    sent = T0 - days(1)
    partly, *_ = fold(order("c1", "o1", 1000, T0), refund("c1", "o1", "r1", 999, T0 + days(1)))
    assert converted(partly, sent, 7, {})
    wholly, *_ = fold(
        order("c1", "o1", 1000, T0),
        refund("c1", "o1", "r1", 400, T0 + days(1)),
        refund("c1", "o1", "r2", 600, T0 + days(30)),  # after the goal window: it counts
    )
    assert not converted(wholly, sent, 7, {})
