"""Points, rank and lifecycle against hand-computed cases (default config: 1 point per
100 yen; Bronze 0 / Silver 500 x1.5 / Gold 2000 x2 / Platinum 5000 x3; 365-day window and
expiry; nudge when 100 points or fewer are missing)."""

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.runtime.config import KizunaConfig, LoyaltyConfig, RankRule
from tests.factories import T0, adjust, cancel, days, envelope, order, parsed

CFG = KizunaConfig()


def run(*raws: dict) -> tuple[Customer, list[list[str]]]:  # type: ignore[type-arg]
    customer = Customer(customer_id="c1")
    emitted = []
    for raw in raws:
        applied = apply_events(customer, [parsed(raw)], CFG, T0)
        customer = applied.customer
        emitted.append([e.detail_type for e in applied.derived])
    return customer, emitted


def test_points_follow_the_rank_held_when_ordering() -> None:
    c, emitted = run(
        order("c1", "o1", 30000, T0),  # Bronze x1: 300; rank points 300
        order("c1", "o2", 25000, T0 + days(1)),  # Bronze x1: 250; 550 -> Silver
        order("c1", "o3", 100000, T0 + days(2)),  # Silver x1.5: 1500; 1550
        order("c1", "o4", 40000, T0 + days(3)),  # Silver x1.5: 600; 1950 -> 50 to Gold
    )
    assert c.points_balance == 300 + 250 + 1500 + 600
    assert (c.rank, c.rank_points, c.next_rank, c.points_to_next_rank) == (
        "Silver",
        1950,
        "Gold",
        50,
    )
    assert c.order_count == 4 and c.lifetime_value == 195000 and c.spend_12m == 195000
    assert c.first_order_id == "o1" and c.first_order_at == T0 and c.last_order_at == T0 + days(3)
    assert emitted == [
        ["customer.first_purchase"],
        ["customer.repeat_purchase", "customer.rank_changed"],
        ["customer.repeat_purchase"],
        ["customer.repeat_purchase", "customer.points_near_next_rank"],
    ]


def test_cancellation_reverses_spend_points_and_rank() -> None:
    c, emitted = run(
        order("c1", "o1", 30000, T0),
        order("c1", "o2", 25000, T0 + days(1)),
        cancel("c1", "o2", T0 + days(2)),
    )
    assert (c.order_count, c.lifetime_value, c.points_balance, c.rank) == (1, 30000, 300, "Bronze")
    assert emitted[-1] == ["customer.rank_changed"]


def test_cancelling_an_early_order_recomputes_later_multipliers() -> None:
    c, _ = run(
        order("c1", "o1", 30000, T0),
        order("c1", "o2", 25000, T0 + days(1)),
        order("c1", "o3", 100000, T0 + days(2)),  # earned at Silver while o2 counted
        cancel("c1", "o2", T0 + days(3)),
    )
    # without o2 the customer was Bronze (300) when o3 was placed: 1000 points, not 1500
    assert c.points_balance == 300 + 1000
    assert (c.rank, c.rank_points) == ("Silver", 1300)


def test_points_expire_and_rank_falls_out_of_the_rolling_window() -> None:
    c, emitted = run(
        order("c1", "o1", 60000, T0),  # 600 -> Silver
        envelope(
            "app.opened",
            {"customer_id": "c1", "occurred_at": (T0 + days(366)).isoformat()},
            "ev-open",
        ),
    )
    assert c.points_balance == 0
    assert (c.rank, c.rank_points, c.spend_12m, c.lifetime_value) == ("Bronze", 0, 0, 60000)
    assert emitted[-1] == ["customer.rank_changed"]


def test_negative_adjustment_spends_oldest_points_first() -> None:
    c, _ = run(
        order("c1", "o1", 30000, T0),  # lot 300, expires T0+365
        adjust("c1", "a1", 100, T0 + days(200)),  # lot 100, expires T0+565
        adjust("c1", "a2", -350, T0 + days(300)),  # takes 300 (old) + 50 (new)
    )
    assert c.points_balance == 50
    assert c.points_next_expiry_at == T0 + days(565) and c.points_next_expiry_amount == 50


def test_balance_never_goes_negative() -> None:
    c, _ = run(order("c1", "o1", 10000, T0), adjust("c1", "a1", -5000, T0 + days(1)))
    assert c.points_balance == 0


def test_cancelling_an_order_whose_points_were_redeemed_takes_them_back() -> None:
    """The replay left the cancelled order out: the redemption before the cancellation was
    replayed against an empty balance and spent nothing, so the customer kept the points
    they had redeemed and the later order's too (free points at every return)."""
    c, _ = run(
        order("c1", "o1", 30000, T0),  # 300
        adjust("c1", "redeem-1", -300, T0 + days(1)),  # all of o1's points
        order("c1", "o2", 20000, T0 + days(2)),  # 200
    )
    assert c.points_balance == 200
    c, _ = run(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -300, T0 + days(1)),
        order("c1", "o2", 20000, T0 + days(2)),
        cancel("c1", "o1", T0 + days(3)),
    )
    # the 300 redeemed from o1 are clawed back from o2's 200, floored at zero
    assert (c.points_balance, c.points_next_expiry_amount) == (0, 0)
    assert (c.order_count, c.lifetime_value, c.rank) == (1, 20000, "Bronze")


def test_cancelling_a_partly_spent_order_takes_back_what_it_holds_and_what_was_spent() -> None:
    c, _ = run(
        order("c1", "o1", 30000, T0),  # 300, expires T0+365
        adjust("c1", "redeem-1", -100, T0 + days(1)),  # spends 100 of o1's
        order("c1", "o2", 20000, T0 + days(2)),  # 200, expires T0+367
        adjust("c1", "gift", 50, T0 + days(3)),  # 50, expires T0+368
        cancel("c1", "o1", T0 + days(4)),
    )
    # o1's 200 still held go; the 100 spent of it come off o2 (the oldest lot alive then)
    assert c.points_balance == 100 + 50
    assert (c.points_next_expiry_at, c.points_next_expiry_amount) == (T0 + days(367), 100)


def test_a_redemption_after_the_cancellation_spends_the_other_lots_only() -> None:
    c, _ = run(
        order("c1", "o1", 30000, T0),
        order("c1", "o2", 20000, T0 + days(2)),
        cancel("c1", "o1", T0 + days(3)),  # nothing of o1 spent: nothing clawed back
        adjust("c1", "redeem-1", -150, T0 + days(4)),
    )
    assert c.points_balance == 50


def test_a_clawback_beyond_the_balance_is_not_carried_as_a_debt() -> None:
    """The shop's policy (docs/EVENTS.md, order.cancelled): what cannot be clawed back when
    the order is cancelled is forgiven; later earnings are whole."""
    c, _ = run(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -300, T0 + days(1)),
        cancel("c1", "o1", T0 + days(2)),
        order("c1", "o2", 20000, T0 + days(3)),
    )
    assert c.points_balance == 200


def test_a_cancellation_after_its_points_expired_takes_back_only_what_was_spent() -> None:
    c, _ = run(
        order("c1", "o1", 30000, T0),  # 300, expires T0+365
        adjust("c1", "redeem-1", -100, T0 + days(1)),  # 200 of it expire unspent
        order("c1", "o2", 50000, T0 + days(300)),  # 500
        cancel("c1", "o1", T0 + days(400)),
    )
    assert c.points_balance == 500 - 100


def test_settling_keeps_an_order_whose_cancellation_is_after_the_checkpoint() -> None:
    """More than MAX_ORDERS later orders move the checkpoint past o-early, cancelled after
    it: the item keeps o-early until its cancellation settles too, else the carried lots
    could no longer tell what was spent of it (the 300 redeemed, clawed back at day 300)."""
    from kizuna.domain.loyalty import recompute

    raws = [order("c1", "o-early", 30000, T0)]  # 300
    raws += [order("c1", f"s{i}", 100, T0 + days(1 + i / 10)) for i in range(110)]  # 110
    raws.append(adjust("c1", "redeem-1", -300, T0 + days(200)))  # o-early's 300
    raws.append(order("c1", "big", 100000, T0 + days(250)))  # Bronze: 1000
    raws.append(cancel("c1", "o-early", T0 + days(300)))  # 300 clawed: 110 + 190 of big's
    applied = apply_events(Customer(customer_id="c1"), [parsed(r) for r in raws], CFG, T0)
    c = applied.customer
    assert c.points_balance == 1000 - 190
    assert len(c.orders) <= 150
    assert recompute(c, CFG.loyalty).points_balance == 1000 - 190  # the next fold


def test_settling_stays_bounded_when_a_cancellation_is_far_after_its_order() -> None:
    """Past half the count limit again the checkpoint is not held back: the cancellation is
    applied at the checkpoint (a little early) and the item stays bounded."""
    raws = [order("c1", "o-early", 30000, T0)]
    raws += [order("c1", f"s{i}", 100, T0 + days(1 + i / 10)) for i in range(200)]
    raws.append(cancel("c1", "o-early", T0 + days(300)))
    c = apply_events(Customer(customer_id="c1"), [parsed(r) for r in raws], CFG, T0).customer
    assert len(c.orders) == 100 and "o-early" not in c.orders
    assert c.points_balance == 200


def rows(*raws: dict) -> list[list[tuple[str, int, int, str]]]:  # type: ignore[type-arg]
    """Per delivery (one at a time, live), its ORDER and CANCEL rows' ledger."""
    customer, out = Customer(customer_id="c1"), []
    for raw in raws:
        applied = apply_events(customer, [parsed(raw)], CFG, T0)
        customer = applied.customer
        out.append(
            [
                (
                    i.kind,
                    i.data["points_balance_before"],
                    i.data["points_balance_after"],
                    i.data["rank_after"],
                )
                for i in applied.activity
                if i.kind in {"ORDER", "CANCEL"}
            ]
        )
    return out


def test_an_order_row_says_the_balance_before_the_order_at_its_time() -> None:
    """The live ORDER row said the stored balance as of the previous event: after o1's 300
    points expired, o2's row read 300 -> 100, as if the order took 200 points away."""
    assert rows(order("c1", "o1", 30000, T0), order("c1", "o2", 10000, T0 + days(400))) == [
        [("ORDER", 0, 300, "Bronze")],
        [("ORDER", 0, 100, "Bronze")],
    ]


def test_a_late_order_row_says_the_balance_at_its_own_time() -> None:
    # o2 (T0+10d) is folded before o1 (T0), which arrives late: o1's row is at T0
    assert rows(order("c1", "o2", 20000, T0 + days(10)), order("c1", "o1", 30000, T0)) == [
        [("ORDER", 0, 200, "Bronze")],
        [("ORDER", 0, 300, "Bronze")],
    ]


def test_a_cancel_row_says_the_balance_at_the_cancellation() -> None:
    # o1 (300) is cancelled at T0+5d, delivered after o2 (T0+10d, 200) was folded: at the
    # cancellation the customer held 300 (o1's), afterwards nothing; not 500 -> 200
    assert rows(
        order("c1", "o1", 30000, T0),
        order("c1", "o2", 20000, T0 + days(10)),
        cancel("c1", "o1", T0 + days(5)),
    )[-1] == [("CANCEL", 300, 0, "Bronze")]
    # a cancellation that takes back redeemed points says so: 200 held, 0 after the clawback
    assert rows(
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -300, T0 + days(1)),
        order("c1", "o2", 20000, T0 + days(2)),
        cancel("c1", "o1", T0 + days(3)),
    )[-1] == [("CANCEL", 200, 0, "Bronze")]


def test_a_cancel_row_waiting_for_its_order_and_the_order_row_after_it() -> None:
    assert rows(cancel("c1", "o1", T0 + days(1)), order("c1", "o1", 30000, T0)) == [
        [("CANCEL", 0, 0, "Bronze")],  # no order yet: nothing moved
        [("ORDER", 0, 300, "Bronze")],  # at T0 it earned; the state has none left
    ]


def test_imported_rows_carry_the_same_ledger_as_live_ones() -> None:
    raws = [
        order("c1", "o1", 30000, T0),
        adjust("c1", "redeem-1", -300, T0 + days(1)),
        order("c1", "o2", 15000, T0 + days(2)),  # 450 rank points: Bronze
        cancel("c1", "o1", T0 + days(3)),
        order("c1", "o3", 10000, T0 + days(400)),
    ]
    live = [row for per_event in rows(*raws) for row in per_event]
    applied = apply_events(
        Customer(customer_id="c1"), [parsed(r) for r in raws], CFG, T0, bulk=True
    )
    imported = [
        (
            i.kind,
            i.data["points_balance_before"],
            i.data["points_balance_after"],
            i.data["rank_after"],
        )
        for i in applied.activity
        if i.kind in {"ORDER", "CANCEL"}
    ]
    assert imported == live
    assert live == [
        ("ORDER", 0, 300, "Bronze"),
        ("ORDER", 0, 150, "Bronze"),
        ("CANCEL", 150, 0, "Bronze"),  # o1's 300 spent: clawed back down to zero
        ("ORDER", 0, 100, "Bronze"),  # o2's points expired unspent
    ]


def test_next_expiry_is_reported_for_the_points_expiry_warning() -> None:
    c, _ = run(order("c1", "o1", 10000, T0), order("c1", "o2", 20000, T0 + days(10)))
    assert (c.points_next_expiry_at, c.points_next_expiry_amount) == (T0 + days(365), 100)


def test_rank_thresholds_and_multipliers_are_configurable() -> None:
    cfg = KizunaConfig(
        loyalty=LoyaltyConfig(
            earn_rate="0.1",  # type: ignore[arg-type]
            ranks=(
                RankRule(name="Member", min_points=0),
                RankRule(name="VIP", min_points=1000, multiplier="2"),
            ),  # type: ignore[arg-type]
        )
    )
    c = Customer(customer_id="c1")
    for raw in (order("c1", "o1", 10000, T0), order("c1", "o2", 10000, T0 + days(1))):
        c = apply_events(c, [parsed(raw)], cfg, T0).customer
    assert (c.rank, c.rank_points, c.points_balance, c.next_rank) == ("VIP", 2000, 3000, None)


def test_points_near_next_rank_fires_once_when_entering_the_window() -> None:
    _, emitted = run(
        order("c1", "o1", 42000, T0),  # 420: 80 to Silver -> nudge
        order("c1", "o2", 1000, T0 + days(1)),  # 430: still near, no second nudge
        order("c1", "o3", 10000, T0 + days(2)),  # 530: Silver
    )
    assert emitted[0] == ["customer.first_purchase", "customer.points_near_next_rank"]
    assert emitted[1] == ["customer.repeat_purchase"]
    assert "customer.rank_changed" in emitted[2]


def test_an_opt_out_wins_over_an_opt_in_given_at_the_same_instant() -> None:
    def consent(status: str, eid: str) -> dict:  # type: ignore[type-arg]
        return envelope(
            "consent.changed",
            {
                "customer_id": "c1",
                "occurred_at": T0.isoformat(),
                "channel": "email",
                "status": status,
            },
            eid,
        )

    for first, second in (("opted_in", "opted_out"), ("opted_out", "opted_in")):
        c, _ = run(consent(first, "e1"), consent(second, "e2"))
        assert c.consent["email"].status == "opted_out"


def test_an_order_in_another_currency_is_refused_not_counted_at_the_shops_rate() -> None:
    """Points, ranks, spend and RFM count one currency (``loyalty.currency``): a $1,000
    order earned what ¥1,000 earns and added 1,000 "yen" of spend."""
    dollars = order("c1", "o1", "1000", T0)
    dollars["detail"]["currency"] = "USD"
    applied = apply_events(Customer(customer_id="c1"), [parsed(dollars)], CFG, T0)
    (reason,) = applied.refused.values()
    assert "detail.currency" in reason and "USD" in reason and "JPY" in reason
    c = applied.customer
    assert (c.order_count, c.points_balance, c.lifetime_value) == (0, 0, 0)
    # a shop that counts in dollars takes it
    usd = KizunaConfig(loyalty=LoyaltyConfig(currency="USD"))
    counted = apply_events(Customer(customer_id="c1"), [parsed(dollars)], usd, T0)
    assert counted.refused == {} and counted.customer.order_count == 1


def test_an_adjustment_retried_with_a_later_time_after_it_settled_counts_once() -> None:
    """A producer retries ``points.adjusted`` under a new event id and time after the
    adjustment has settled (the 41st later one settles the first): it was counted twice,
    and a later rebuild from the fact log silently took the points back."""
    from datetime import timedelta

    c = Customer(customer_id="c1")
    for i in range(41):
        grant = adjust("c1", f"a{i}", 10, T0 + timedelta(hours=i))
        c = apply_events(c, [parsed(grant)], CFG, T0 + timedelta(hours=i)).customer
    assert c.points_balance == 410 and "a0" not in c.adjustments  # a0 settled
    retry = adjust("c1", "a0", 10, T0 + timedelta(hours=50))
    retry["id"] = "ev-retry"
    applied = apply_events(c, [parsed(retry)], CFG, T0 + timedelta(hours=50))
    assert applied.customer.points_balance == 410
    assert applied.activity == []  # no second POINTS row either
    # a new adjustment still counts
    fresh = adjust("c1", "a-new", 5, T0 + timedelta(hours=51))
    assert apply_events(c, [parsed(fresh)], CFG, T0 + days(3)).customer.points_balance == 415


def test_short_rank_and_expiry_windows_keep_the_twelve_month_spend_exact() -> None:
    """With a 30-day rank window and 30-day expiry the item settled orders 60 days old into
    day totals, and the 12-month spend, still an instant-exact 365-day window, lost an order
    of the day the window starts on: the checkpoint is never closer than 366 days."""
    from datetime import timedelta

    short = KizunaConfig.model_validate(
        {"loyalty": {"rank_window_days": 30, "points_expiry_days": 30}}
    )
    raws = [order("c1", "ancient", 500, T0 - days(400))]
    raws.append(order("c1", "o1", 1000, T0 + timedelta(hours=5)))  # 15:00 UTC on day 0
    raws += [order("c1", f"m{k}", 100, T0 + days(30 * k)) for k in range(1, 13)]
    raws.append(order("c1", "last", 2000, T0 + days(365) + timedelta(hours=2)))
    customer = Customer(customer_id="c1")
    for raw in raws:
        customer = apply_events(customer, [parsed(raw)], short, T0 + days(366)).customer
    # the window starts at 12:00 UTC on day 0: o1, at 15:00, is in it
    assert customer.history.before_at is not None and "ancient" not in customer.orders
    assert customer.spend_12m == 1000 + 12 * 100 + 2000
