"""The campaign report on a hand-built ledger: counts by channel and reason, per-variant
conversions and revenue in the attribution window, lift against the holdout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from kizuna_tools.reports.build import Order
from kizuna_tools.reports.campaigns import campaign_reports

T0 = datetime(2026, 1, 29, 1, 0, tzinfo=UTC)


def row(cid: str, status: str, arm: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "pk": cid,
        "kind": "MSG",
        "campaign": "sale",
        "occurrence": "20260128T2000Z",
        "program": "sale",
        "status": status,
        "arm": arm,
        "at": T0.isoformat(),
        **extra,
    }


def test_occurrence_counts_variants_and_lift() -> None:
    # given 4 customers sent variant a (2 convert), 2 sent b (1 converts late: outside the
    # 7-day window), 4 held out (1 converts), a suppression and a deferral
    items = [
        row("a1", "sent", "a", channel="email", open_at="x"),
        row("a2", "sent", "a", channel="email", click_at="x"),
        row("a3", "sent", "a", channel="line"),
        row("a4", "sent", "a", channel="email"),
        row("b1", "sent", "b", channel="email"),
        row("b2", "sent", "b", channel="email"),
        row("h1", "holdout", "holdout"),
        row("h2", "holdout", "holdout"),
        row("h3", "holdout", "holdout"),
        row("h4", "holdout", "holdout"),
        row("s1", "suppressed", "a", reason="no_channel"),
        row("d1", "deferred", "b", channel="line", reason="quiet_hours"),
        {"pk": "x", "kind": "MSG", "program": "second-purchase-coupon", "status": "sent"},
    ]
    orders = [
        Order("a1", T0 + timedelta(days=1), 3000.0),
        Order("a2", T0 + timedelta(days=2), 1000.0),
        Order("a2", T0 + timedelta(days=3), 500.0),
        Order("a3", T0 - timedelta(days=1), 9999.0),  # before the message: not a conversion
        Order("b1", T0 + timedelta(days=8), 2000.0),  # outside the window
        Order("h1", T0 + timedelta(hours=5), 1500.0),
    ]
    occurrences = [
        {
            "campaign_id": "sale",
            "occurrence": "20260128T2000Z",
            "status": "done",
            "audience": 12,
            "winner": "a",
            "winner_reason": "a converted 2/4, b 0/2",
        }
    ]
    # when the report is built
    [report] = campaign_reports(items, orders, occurrences, {"sale": 7})
    # then
    assert report.audience == 12
    assert report.sent_by_channel == {"email": 5, "line": 1}
    assert report.suppressed_by_reason == {"no_channel": 1}
    assert report.deferred_by_reason == {"quiet_hours": 1}
    assert report.holdout == 4
    assert report.winner == "a"
    variants = {v.arm: v for v in report.variants}
    a, b, h = variants["a"], variants["b"], variants["holdout"]
    assert (a.recipients, a.opens, a.clicks, a.conversions, a.revenue) == (4, 1, 1, 2, 4500.0)
    assert (b.recipients, b.conversions, b.revenue) == (2, 0, 0.0)
    assert (h.recipients, h.conversions, h.lift) == (4, 1, None)
    # the lift is intent to treat: a's suppressed s1 is in a's denominator
    assert (a.assigned, a.assigned_conversions, b.assigned, h.assigned) == (5, 2, 3, 4)
    # a winner was chosen: a and b were the test pool, sent before the holdout was decided
    # (with the rest of the audience): they are not compared with it
    assert (a.lift, b.lift) == (None, None)
    # without winner selection they are
    [report] = campaign_reports(items, orders, [{**occurrences[0], "winner": None}], {"sale": 7})
    a = next(v for v in report.variants if v.arm == "a")
    assert a.lift is not None and a.lift.treated_rate == 0.4 and a.lift.holdout_rate == 0.25
    assert a.lift.ci is not None and a.lift.ci.low < a.lift.absolute_lift < a.lift.ci.high


def _look(
    number: int, hours: int, a: tuple[int, int], b: tuple[int, int], p: float, **extra: Any
) -> dict[str, Any]:
    due = T0 + timedelta(hours=hours)
    return {
        "number": number,
        "due": due.isoformat(),
        "at": (due + timedelta(minutes=1)).isoformat(),
        "counts": {
            "a": {"exposed": a[0], "converted": a[1]},
            "b": {"exposed": b[0], "converted": b[1]},
        },
        "p_value": p,
        "winner": extra.get("winner"),
    }


def test_sequential_looks_are_listed_with_counts_p_values_and_the_decision() -> None:
    # given an occurrence whose sequential test looked twice: undecided, then b won
    occ = {
        "campaign_id": "sale",
        "occurrence": "20260128T2000Z",
        "winner": "b",
        "winner_reason": "b beats a",
        "looks": [
            _look(2, 48, (800, 40), (810, 71), 0.0123, winner="b"),  # stored order kept apart
            _look(1, 24, (400, 20), (410, 29), 0.3412),
        ],
    }
    # when the report is built
    [report] = campaign_reports([], [], [occ])
    # then both looks, in order, with each variant's counts, the p-value and the decision
    assert [look.number for look in report.looks] == [1, 2]
    assert report.looks[0].counts == {"a": (400, 20), "b": (410, 29)}
    assert report.next_look_at is None
    assert report.look_lines() == [
        "look 1 (due 2026-01-30 01:00Z, taken 2026-01-30 01:01Z): a 20/400, b 29/410; "
        "p 0.3412 -> undecided",
        "look 2 (due 2026-01-31 01:00Z, taken 2026-01-31 01:01Z): a 40/800, b 71/810; "
        "p 0.0123 -> b",
        "decision: b after 2 looks",
    ]


def test_undecided_looks_say_when_the_next_is_or_what_the_rest_got() -> None:
    # given one undecided look with the next one pending
    first = _look(1, 24, (400, 20), (410, 22), 0.61)
    pending = {"campaign_id": "sale", "occurrence": "o1", "looks": [first]}
    pending["next_look_at"] = (T0 + timedelta(hours=48)).isoformat()
    # and an occurrence undecided at its last look (the rest got the first variant)
    last = {**first, "number": 2, "p_value": 0.2}
    done = {"campaign_id": "sale", "occurrence": "o2", "looks": [first, last], "winner": "a"}
    # when reported
    waiting, finished = campaign_reports([], [], [pending, done])
    # then
    assert (
        waiting.look_lines()[-1] == "decision: undecided after 1 look, next look 2026-01-31 01:00Z"
    )
    assert finished.look_lines()[-1] == "decision: undecided after 2 looks, the rest get a"
    # and an occurrence without looks (rule: best) shows none
    assert campaign_reports([], [], [{"campaign_id": "x", "occurrence": "o"}])[0].looks == []


def test_the_lift_compares_everyone_assigned_with_the_holdout_not_only_the_reachable() -> None:
    """A message with no effect: in the arm and in the holdout alike, half the customers
    are reachable and 2 of them order anyway, the unreachable never. Sent only (the
    reachable) against the whole holdout read +22 points; everyone assigned reads 0."""
    items = [row(f"s{i}", "sent", "a", channel="email") for i in range(5)]
    items += [row(f"u{i}", "suppressed", "a", reason="no_channel") for i in range(6)]
    items += [row(f"h{i}", "holdout", "holdout") for i in range(10)]
    items.append(row("g1", "holdout", "global_control", reason="global_control"))
    # a holdout and a global control member whose customer was gone by the send: recorded
    # suppressed under their arm, never a variant of their own
    items.append(row("h-gone", "suppressed", "holdout", reason="unknown_customer"))
    items.append(row("g-gone", "suppressed", "global_control", reason="unknown_customer"))
    buyers = ["s0", "s1", "h0", "h1", "g1"]
    orders = [Order(cid, T0 + timedelta(days=1), 1000.0) for cid in buyers]
    [report] = campaign_reports(items, orders, [], {"sale": 7})
    a = next(v for v in report.variants if v.arm == "a")
    assert (a.recipients, a.conversions, a.assigned, a.assigned_conversions) == (5, 2, 11, 2)
    assert report.holdout == 11  # (h-gone is held out too)
    assert a.lift is not None and a.lift.treated_rate == a.lift.holdout_rate == 2 / 11
    assert a.lift.absolute_lift == 0
    assert [v.arm for v in report.variants] == ["a", "holdout"]  # the global control apart


def test_conversions_meet_the_goal_and_leave_out_cancelled_orders() -> None:
    """The report reads the ledger's ORDER and CANCEL rows: an order under the goal's
    threshold, or cancelled, is no conversion, as in the console and the winner test
    (:func:`kizuna.campaigns.engine.converted`). It counted every order: +60 points of lift,
    "significant", for a campaign the console showed nobody converting."""
    from kizuna_tools.reports.build import Ledger

    items = [row(f"s{i}", "sent", "a", channel="email") for i in range(10)]
    items += [row(f"h{i}", "holdout", "holdout") for i in range(10)]
    day = (T0 + timedelta(days=1)).isoformat()
    activity: list[dict[str, Any]] = [
        {"pk": f"s{i}", "kind": "ORDER", "order_id": f"o{i}", "at": day, "total": 1000}
        for i in range(5)
    ]
    activity += [
        {"pk": "s5", "kind": "CANCEL", "order_id": "big", "at": day},  # read before its order
        {"pk": "s5", "kind": "ORDER", "order_id": "big", "at": day, "total": 6000},
        {"pk": "s6", "kind": "ORDER", "order_id": "ok", "at": day, "total": 5000},
        {"pk": "s7", "kind": "ORDER", "order_id": "gone", "at": day, "total": 7000},
        {"pk": "s7", "kind": "CANCEL", "order_id": "gone", "at": day},
        {
            "pk": "s8",
            "kind": "ORDER",
            "order_id": "shop",
            "at": day,
            "total": 9000,
            "channel": "store",
            "lines": [{"product_id": "p1", "quantity": 1, "price": 9000}],
        },
    ]
    orders = Ledger.from_items(activity).orders
    goal = {"total": [{"numeric": [">=", 5000]}], "channel": ["web"]}
    [report] = campaign_reports(items, orders, [], {"sale": 7}, {"sale": {"total": goal["total"]}})
    a = next(v for v in report.variants if v.arm == "a")
    assert (a.conversions, a.revenue) == (2, 14000.0)  # s6 and s8; s5 and s7 cancelled
    # a condition on the order's channel and products, as the goal gives them
    [report] = campaign_reports(items, orders, [], {"sale": 7}, {"sale": goal})
    assert next(v for v in report.variants if v.arm == "a").conversions == 0
    on_p1 = {"product_ids": ["p1"]}
    [report] = campaign_reports(items, orders, [], {"sale": 7}, {"sale": on_p1})
    assert next(v for v in report.variants if v.arm == "a").conversions == 1
    # without conditions every order not cancelled converts
    [report] = campaign_reports(items, orders, [], {"sale": 7})
    assert next(v for v in report.variants if v.arm == "a").conversions == 7


def test_the_report_table_does_not_call_an_undecided_test_s_first_variant_its_winner() -> None:
    from kizuna_tools.reports.document import campaign_table

    # given two occurrences: one whose test chose b, one whose test chose none (the rest got
    # the first variant, a)
    items = [row("a1", "sent", "a", channel="email"), row("b1", "sent", "b", channel="email")]
    decided = {
        "campaign_id": "sale",
        "occurrence": "20260128T2000Z",
        "status": "done",
        "winner": "b",
        "winner_reason": "b beats a",
        "winner_decided": True,
    }
    undecided = {
        **decided,
        "occurrence": "20260129T2000Z",
        "winner": "a",
        "winner_reason": "no winner: the rest get the first variant",
        "winner_decided": False,
    }
    # when the report's tables are built
    reports = campaign_reports(items, [], [decided, undecided], {"sale": 7})
    titles = {r.occurrence: campaign_table(r).title for r in reports}
    # then the decided one names its winner, the undecided one says no winner was chosen
    assert "; winner: b (b beats a)" in titles["20260128T2000Z"]
    assert "no winner: first variant a (" in titles["20260129T2000Z"]
    assert "winner: a" not in titles["20260129T2000Z"]


def test_revenue_is_net_of_refunds_and_a_wholly_refunded_order_is_no_conversion() -> None:
    """docs/CAMPAIGNS.md: an order's revenue is its total less its refunds (never below 0);
    refunds of the whole total are a cancellation, no conversion, as the console and the
    winner test count it (:func:`kizuna.campaigns.engine.converted`). The report counted
    every order at its total: a coupon whose orders came back read as revenue."""
    from kizuna_tools.reports.build import Ledger

    # given 4 recipients of a and 2 held out, each ordering the day after the message
    items = [row(f"s{i}", "sent", "a", channel="email") for i in range(4)]
    items += [row("h0", "holdout", "holdout"), row("h1", "holdout", "holdout")]
    day = (T0 + timedelta(days=1)).isoformat()
    later = (T0 + timedelta(days=20)).isoformat()  # after the window: known, so it counts

    def placed(cid: str, order_id: str, total: float | int) -> dict[str, Any]:
        return {"pk": cid, "kind": "ORDER", "order_id": order_id, "at": day, "total": total}

    def refunded(cid: str, order_id: str, refund_id: str, amount: Any) -> dict[str, Any]:
        return {
            "pk": cid,
            "kind": "REFUND",
            "order_id": order_id,
            "refund_id": refund_id,
            "amount": amount,
            "at": later,
        }

    activity = [
        placed("s0", "o0", 10000),  # kept whole
        placed("s1", "o1", 8000),
        refunded("s1", "o1", "r1", 5000),  # partly refunded: converts at 3000
        refunded("s2", "o2", "r1", 4000),  # read before its order
        placed("s2", "o2", 6000),
        refunded("s2", "o2", "r2", 2500),  # the whole total and more: no conversion
        placed("s3", "o3", 0.3),
        refunded("s3", "o3", "r1", 0.1),
        refunded("s3", "o3", "r2", 0.2),  # the whole total, exactly: no conversion
        refunded("s3", "o3", "r2", 0.2),  # (a retry's row kept by an older table: once)
        placed("h0", "o4", 4000),
        refunded("h0", "o4", "r1", 4000),  # the holdout's one order refunded in whole
        placed("h1", "o5", 3000),
        refunded("h1", "o5", "r1", 1000),
    ]
    orders = Ledger.from_items(activity).orders
    # when
    [report] = campaign_reports(items, orders, [], {"sale": 7})
    # then a converted s0 and s1 for 10000 + 3000; the holdout h1 for 2000
    a, held = (next(v for v in report.variants if v.arm == arm) for arm in ("a", "holdout"))
    assert (a.conversions, a.revenue) == (2, 13000.0)
    assert (held.conversions, held.revenue) == (1, 2000.0)
    assert a.lift is not None and (a.lift.treated_rate, a.lift.holdout_rate) == (0.5, 0.5)
    # a goal condition on the total tests the order as placed
    big = {"sale": {"total": [{"numeric": [">=", 8000]}]}}
    [report] = campaign_reports(items, orders, [], {"sale": 7}, big)
    a = next(v for v in report.variants if v.arm == "a")
    assert (a.conversions, a.revenue) == (2, 13000.0)


ACTIVITY: list[dict[str, Any]] = [
    row("s0", "sent", "a", channel="email"),
    {"pk": "s0", "kind": "ORDER", "order_id": "o", "at": (T0 + timedelta(days=1)).isoformat()}
    | {"total": 7000},
    {"pk": "s0", "kind": "REFUND", "order_id": "o", "refund_id": "r", "amount": 4500}
    | {"at": (T0 + timedelta(days=2)).isoformat()},
]


def _scan(kinds: Any) -> Any:
    """The activity table's filtered scan (``DynamoStore.scan_activity``)."""
    return iter([i for i in ACTIVITY if i["kind"] in kinds])


def test_kizuna_campaigns_report_reads_the_refunds(capsys: Any) -> None:
    from kizuna_tools.cli.campaigns import report

    # given a recipient whose 7000 order was refunded 4500
    target: Any = SimpleNamespace(
        stored=lambda _: SimpleNamespace(campaign=SimpleNamespace(goal=None)),
        customers=SimpleNamespace(scan_activity=_scan),
        store=SimpleNamespace(list_occurrences=lambda _: []),
    )
    # when the report is printed
    report(SimpleNamespace(obj=target), "sale")
    # then the variant converted for 2500
    printed = capsys.readouterr().out
    assert "2,500" in printed and "7,000" not in printed


def test_the_report_data_reads_the_refunds() -> None:
    from kizuna_tools.reports.sources import load

    # given the same activity, read as the HTML report reads it
    activity: Any = SimpleNamespace(scan_activity=_scan, program_ledger=lambda _: [])
    snapshots: Any = SimpleNamespace(dates=lambda: [], cells=lambda _: {})
    # when
    data = load(activity, snapshots, None, {})
    # then the order counts net of its refund
    [order] = data.ledger.orders
    assert order.revenue == 2500.0
