"""Treated population vs global control on a hand-built population: every figure is
computed by hand below."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, timedelta

import pytest

from kizuna.analytics.control import (
    ControlComparison,
    ControlWindow,
    control_comparison,
    mean_gap,
)
from kizuna.analytics.stats import newcombe, z_value
from kizuna.delivery.control import in_global_control
from kizuna.runtime.config import GlobalControlConfig, KizunaConfig, MeasurementConfig
from kizuna.scoring.snapshot import SnapshotRow
from kizuna_tools.reports.build import Ledger
from kizuna_tools.reports.document import build_reports, report_document
from kizuna_tools.reports.html import render_html
from kizuna_tools.reports.sources import ReportData

END = datetime(2026, 7, 1, tzinfo=UTC)
OLD = datetime(2025, 1, 1, tzinfo=UTC)


def days_ago(n: int) -> datetime:
    return END - timedelta(days=n)


# customer -> first order ever (None: never ordered); t* treated, k* global control
FIRST = {
    "t1": OLD,
    "t2": days_ago(60),
    "t3": OLD,
    "t4": None,
    "k1": OLD,
    "k2": days_ago(50),
    "k3": OLD,
    "k4": None,
}
ORDERS = [
    ("t1", OLD, 70.0),
    ("t1", days_ago(20), 50.0),
    ("t1", days_ago(10), 100.0),
    ("t2", days_ago(60), 200.0),
    ("t2", days_ago(5), 100.0),
    ("t3", OLD, 80.0),
    ("k1", OLD, 10.0),
    ("k1", days_ago(15), 60.0),
    ("k2", days_ago(50), 40.0),
    ("k3", OLD, 30.0),
]


def compare() -> ControlComparison:
    return control_comparison(
        FIRST,
        ORDERS,
        lambda c: c.startswith("k"),
        END,
        percent=50,
        since=days_ago(100).date(),
        data_start=OLD,
    )


def test_windows_before_the_group_started_are_left_out() -> None:
    result = compare()
    # since is 100 days before the end: 180 and 365 days would mix in the time before it
    assert [w.days for w in result.windows] == [30, 90]


def test_the_30_day_figures_are_the_hand_computed_ones() -> None:
    (w30, _) = compare().windows
    t, c = w30.treated, w30.control
    assert (t.customers, c.customers) == (4, 4)
    # repeat: t1 has 2 orders in the window, t2 one -> 1/2; control: k1 one -> 0/1
    assert (t.repeat.numerator, t.repeat.denominator) == (1, 2)
    assert (c.repeat.numerator, c.repeat.denominator) == (0, 1)
    # nobody's first order is in the last 30 days
    assert t.second_purchase.denominator == c.second_purchase.denominator == 0
    # dormancy: earlier buyers t1, t2, t3 (t3 lapsed); k1, k2, k3 (k2, k3 lapsed)
    assert (t.dormancy.numerator, t.dormancy.denominator) == (1, 3)
    assert (c.dormancy.numerator, c.dormancy.denominator) == (2, 3)
    # revenue: 150 + 100 over 4 customers; 60 over 4
    assert (t.revenue, c.revenue) == (250.0, 60.0)
    assert (t.revenue_per_customer, c.revenue_per_customer) == (62.5, 15.0)
    # lift: the program lift's Newcombe interval
    assert w30.repeat.absolute_lift == 0.5
    assert w30.repeat.ci == newcombe(1, 2, 0, 1)
    assert w30.dormancy.absolute_lift == pytest.approx(1 / 3 - 2 / 3)
    # revenue gap 47.5 with Welch's standard error: variances 5625 and 900, n = 4 and 4
    gap = w30.revenue_per_customer
    assert gap.difference == 47.5
    half = z_value(0.95) * math.sqrt(5625 / 4 + 900 / 4)
    assert gap.ci is not None
    assert gap.ci.low == pytest.approx(47.5 - half) and gap.ci.high == pytest.approx(47.5 + half)
    assert w30.small  # 4 customers a group


def test_the_90_day_figures_are_the_hand_computed_ones() -> None:
    (_, w90) = compare().windows
    t, c = w90.treated, w90.control
    assert (t.repeat.numerator, t.repeat.denominator) == (2, 2)
    assert (c.repeat.numerator, c.repeat.denominator) == (0, 2)
    # new buyers: t2 ordered again, k2 did not
    assert (t.second_purchase.numerator, t.second_purchase.denominator) == (1, 1)
    assert (c.second_purchase.numerator, c.second_purchase.denominator) == (0, 1)
    assert w90.second_purchase.absolute_lift == 1.0
    # earlier buyers: t1, t3 (t3 lapsed); k1, k3 (k3 lapsed)
    assert (t.dormancy.numerator, t.dormancy.denominator) == (1, 2)
    assert (c.dormancy.numerator, c.dormancy.denominator) == (1, 2)
    assert (t.revenue_per_customer, c.revenue_per_customer) == (112.5, 25.0)


def test_mean_gap_without_two_customers_a_side_has_no_interval() -> None:
    assert mean_gap([1.0], [2.0, 3.0]).ci is None
    assert mean_gap([], [2.0]).difference is None


def test_less_data_than_a_window_gives_the_window_the_data_covers() -> None:
    result = control_comparison(
        FIRST,
        ORDERS,
        lambda c: c.startswith("k"),
        END,
        percent=50,
        since=None,
        data_start=days_ago(20),
    )
    (only,) = result.windows
    assert only.days == 20
    # t1's order 20 days ago is in it, t2's 5 days ago too
    assert only.treated.revenue == 250.0


# -- rank and segment migration, LTV -----------------------------------------------------------
RANKS = ["Gold", "Silver", "Bronze"]  # best first


def snap(day: date, ranks: dict[str, str | None], ltv: dict[str, float] | None = None) -> list:
    return [
        SnapshotRow(
            date=day,
            customer_id=cid,
            rank=rank,
            lifecycle="active",
            lifetime_value=(ltv or {}).get(cid, 0.0),
        )
        for cid, rank in ranks.items()
    ]


LAST = date(2026, 6, 30)  # END is the day after the last snapshot
SNAPSHOTS = {
    # the 30-day window opens on 1 June: the state when it opens is 31 May's snapshot
    date(2026, 5, 31): snap(
        date(2026, 5, 31),
        {
            "t1": "Bronze",
            "t2": "Silver",
            "t3": "Gold",
            "t4": "Bronze",
            "t6": None,  # in the snapshot but without a rank yet: new, not a mover
            "k1": "Bronze",
            "k2": "Silver",
            "k4": "Bronze",
        },
    ),
    # the 90-day window opens on 2 April: no snapshot of 1 April, so the first day's
    date(2026, 4, 2): snap(date(2026, 4, 2), {"t1": "Gold", "k1": "Gold"}),
    LAST: snap(
        LAST,
        {
            "t1": "Silver",  # up
            "t2": "Silver",  # stayed
            "t3": "Silver",  # down
            "t4": "Gold",  # up (two ranks: one mover)
            "t5": "Bronze",  # absent on 31 May: new
            "t6": "Silver",  # no rank on 31 May: new
            "k1": "Bronze",  # stayed
            "k2": "Bronze",  # down
            "k3": "Silver",  # new
            "k4": "Silver",  # up
        },
        ltv={"t1": 300.0, "t2": 100.0, "t3": 800.0, "t4": 200.0, "k1": 50.0, "k2": 250.0},
    ),
}


def compare_with_snapshots() -> ControlComparison:
    customers = {r.customer_id: None for r in SNAPSHOTS[LAST]}
    return control_comparison(
        customers,
        [],
        lambda c: c.startswith("k"),
        END,
        percent=50,
        since=None,
        data_start=OLD,
        snapshot=lambda day: SNAPSHOTS.get(day, []),
        state_orders={"rank": RANKS},
    )


def test_a_known_rank_migration_gives_the_known_shares_and_intervals() -> None:
    w30 = compare_with_snapshots().windows[0]
    m = w30.rank
    assert m is not None and w30.rfm_segment is None  # no segment order given
    assert (m.before, m.after) == (date(2026, 5, 31), LAST)
    # treated: t1, t4 up; t2 stayed; t3 down, of 4 in both snapshots
    assert (m.treated.up, m.treated.stayed, m.treated.down, m.treated.retained) == (2, 1, 1, 4)
    # control: k4 up, k1 stayed, k2 down, of 3
    assert (m.control.up, m.control.stayed, m.control.down, m.control.retained) == (1, 1, 1, 3)
    assert m.up.absolute_lift == pytest.approx(2 / 4 - 1 / 3)
    assert m.up.ci == newcombe(2, 4, 1, 3)
    assert m.stayed.ci == newcombe(1, 4, 1, 3)
    assert m.down.absolute_lift == pytest.approx(1 / 4 - 1 / 3)
    assert m.down.ci == newcombe(1, 4, 1, 3)
    # the full matrix per group
    assert m.treated.count("Bronze", "Gold") == 1 and m.control.count("Silver", "Bronze") == 1


def test_a_new_customer_is_not_a_mover() -> None:
    m = compare_with_snapshots().windows[0].rank
    assert m is not None
    # t5 (absent on 31 May) and t6 (no rank then) entered; k3 too
    assert (m.treated.entered, m.control.entered) == (2, 1)
    assert m.treated.count("(none)", "Silver") == 1 and m.treated.count("(none)", "Bronze") == 1
    assert m.up.treated_n == 4 and m.up.holdout_n == 3


def test_the_window_start_falls_back_to_its_first_day_and_else_has_no_migration() -> None:
    windows = {w.days: w for w in compare_with_snapshots().windows}
    m90 = windows[90].rank
    assert m90 is not None and m90.before == date(2026, 4, 2)
    assert (m90.treated.down, m90.treated.retained, m90.control.down) == (1, 1, 1)
    assert windows[180].rank is None and windows[365].rank is None


def test_ltv_is_the_last_snapshots_lifetime_value_over_every_customer() -> None:
    result = compare_with_snapshots()
    assert result.ltv_as_of == LAST and result.ltv is not None
    # treated t1..t6: 300, 100, 800, 200, 0, 0 -> 1400 / 6; control k1..k4: 50, 250, 0, 0
    treated = [300.0, 100.0, 800.0, 200.0, 0.0, 0.0]
    control = [50.0, 250.0, 0.0, 0.0]
    assert result.ltv.treated_mean == pytest.approx(1400 / 6)
    assert result.ltv.control_mean == pytest.approx(75.0)
    assert result.ltv == mean_gap(treated, control)
    # the interval is Welch's: sample variances over n
    assert result.ltv.ci is not None
    half = z_value(0.95) * math.sqrt(
        statistics.variance(treated) / 6 + statistics.variance(control) / 4
    )
    assert result.ltv.ci.high == pytest.approx(1400 / 6 - 75 + half)


def test_without_snapshots_there_is_no_migration_and_no_ltv() -> None:
    result = compare()
    assert result.ltv is None and result.ltv_as_of is None
    assert all(w.rank is None and w.rfm_segment is None for w in result.windows)


# -- in the report ---------------------------------------------------------------------------
class Export:
    """The snapshot export: one JSON line per customer per date."""

    def __init__(self, rows: list[SnapshotRow]) -> None:
        self.objects: dict[str, bytes] = {}
        for day in sorted({r.date for r in rows}):
            lines = [r.model_dump_json() for r in rows if r.date == day]
            self.objects[f"snapshots/date={day.isoformat()}/part.jsonl"] = "\n".join(lines).encode()

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.objects if k.startswith(prefix)]

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)


def test_the_report_opens_with_treated_vs_global_control() -> None:
    # given: 300 customers on two snapshot dates 40 days apart, a 10% control group; each
    # treated customer ordered twice in the last 30 days, each control customer once
    control = GlobalControlConfig(percent=10, salt="s", since=date(2026, 1, 1))
    cfg = KizunaConfig(measurement=MeasurementConfig(global_control=control))
    d1, d2 = date(2026, 5, 1), date(2026, 6, 10)
    ids = [f"c{i:03d}" for i in range(300)]
    members = {c for c in ids if in_global_control(control, c)}
    rows: list[SnapshotRow] = []
    items: list[dict[str, object]] = []
    first = datetime(2026, 4, 1, tzinfo=UTC)
    # the 30-day window opens on 12 May: the snapshot of 11 May is its start (export only)
    d0 = date(2026, 5, 11)
    for cid in ids:
        treated = cid not in members
        for day, segment, rank in (
            (d1, "New", "Bronze"),
            (d0, "New", "Bronze"),
            (d2, "Loyal" if treated else "New", "Silver" if treated else "Bronze"),
        ):
            rows.append(
                SnapshotRow(
                    date=day,
                    customer_id=cid,
                    rfm_segment=segment,
                    rank=rank,
                    lifecycle="new",
                    first_order_at=first,
                    lifetime_value=(210.0 if treated else 110.0) if day == d2 else 10.0,
                )
            )
        items.append({"pk": cid, "kind": "ORDER", "total": 10, "at": first.isoformat()})
        for k in range(1 if cid in members else 2):
            at = datetime(2026, 6, 1 + k, tzinfo=UTC).isoformat()
            items.append({"pk": cid, "kind": "ORDER", "total": 100, "at": at})
    # a global control decision in the ledger: not the program's holdout
    items.append(
        {
            "pk": "c000",
            "kind": "ENTRY",
            "program": "p",
            "decision": "holdout",
            "reason": "global_control",
            "at": first.isoformat(),
        }
    )
    cell = "New|Bronze|Kanto|20s|m|x"
    cells = {d: {cell: {"customers": 300, "buyers": 300, "repeaters": 0}} for d in (d1, d2)}
    data = ReportData(Ledger.from_items(items), cells, Export(rows))
    # when
    reports = build_reports(data, cfg)
    doc = report_document(reports, cfg)
    # then: the ledger's global control decision is no program entry
    assert data.ledger.entries == [] and data.ledger.global_control == {"c000"}
    # the front page carries the comparison; it is the report's first section
    assert doc.headline is not None and doc.headline.control is not None
    assert doc.sections[0].key == "global_control"
    (w30,) = doc.headline.control.windows  # 70 days of data since the first order: 30 only
    assert w30.days == 30
    n = len(members)
    assert (w30.treated.customers, w30.control.customers) == (300 - n, n)
    assert w30.treated.repeat.value == 1.0 and w30.control.repeat.value == 0.0
    assert w30.repeat.absolute_lift == 1.0
    assert w30.revenue_per_customer.difference == 100.0
    assert w30.small == (n < 100)
    # rank and segment: every treated customer moved up between 11 May and 10 June, no
    # control customer moved; LTV: 210 against 110
    for m in (w30.rank, w30.rfm_segment):
        assert m is not None and (m.before, m.after) == (d0, d2)
        assert (m.up.treated_rate, m.up.holdout_rate) == (1.0, 0.0)
        assert m.up.treated_n == 300 - n and m.treated.entered == 0
        assert m.up.significant
    ltv = doc.headline.control.ltv
    assert ltv is not None and ltv.difference == pytest.approx(100.0)
    assert doc.headline.control.ltv_as_of == d2
    # in the table of the front section, and the matrices in their own table
    figures = [str(row[1]) for row in doc.sections[0].rows]  # type: ignore[union-attr]
    assert "member rank 2026-05-11 -> 2026-06-10: moved up" in figures
    assert "RFM segment 2026-05-11 -> 2026-06-10: new (not in the first snapshot; not movers)" in (
        figures
    )
    assert any(f.startswith("LTV per customer, realised to 2026-06-10") for f in figures)
    matrix = reports.tables()["global_control_migration"]
    assert (30, "member rank", "treated", "Bronze", "Silver", 300 - n, 100.0) in matrix.rows
    assert (30, "RFM segment", "global control", "New", "New", n, 100.0) in matrix.rows
    assert "moved up" in render_html(doc)
    # the migration: treated moved up to Loyal, the control stayed
    shifts = [s for s in doc.headline.structure if s.against == "global_control"]
    seg = next(s for s in shifts if s.attribute == "rfm_segment")
    assert (seg.treated.up, seg.holdout.stayed) == (300 - n, n)
    keys = [s.key for s in doc.sections]
    assert "rfm_segment_migration_global_control" in keys
    # off: nothing of it
    off = report_document(build_reports(data, KizunaConfig()), KizunaConfig())
    assert off.headline is not None and off.headline.control is None
    assert "global_control" not in [s.key for s in off.sections]


def test_program_figures_leave_the_global_control_out_of_the_programs_holdout() -> None:
    from kizuna.analytics.programs import program_figures

    rows = [
        {"pk": "c1", "kind": "ENTRY", "program": "p", "decision": "entered"},
        {"pk": "c2", "kind": "ENTRY", "program": "p", "decision": "holdout", "reason": "holdout"},
        {
            "pk": "c3",
            "kind": "ENTRY",
            "program": "p",
            "decision": "holdout",
            "reason": "global_control",
        },
    ]
    figures = program_figures("p", rows, start=OLD, end=END, as_of=END)
    assert (figures.treated, figures.held_out) == (1, 1)


def _revenue_gap(treated_extra: list[dict[str, object]]) -> float | None:
    """The 30-day revenue per customer, treated - control (:func:`_window`)."""
    return _window(treated_extra).revenue_per_customer.difference


def _window(treated_extra: list[dict[str, object]]) -> ControlWindow:
    """The 30-day window of 300 customers (a 10% control group) who each ordered 100 (order
    ``o``) on 1 June, the treated ones with ``treated_extra`` rows too (their ``pk`` set to
    each customer)."""
    control = GlobalControlConfig(percent=10, salt="s", since=date(2026, 1, 1))
    cfg = KizunaConfig(measurement=MeasurementConfig(global_control=control))
    first, d1, d2 = datetime(2026, 4, 1, tzinfo=UTC), date(2026, 5, 1), date(2026, 6, 10)
    ids = [f"c{i:03d}" for i in range(300)]
    rows = [
        SnapshotRow(date=d, customer_id=cid, lifecycle="new", first_order_at=first)
        for cid in ids
        for d in (d1, d2)
    ]
    items: list[dict[str, object]] = []
    for cid in ids:
        at = datetime(2026, 6, 1, tzinfo=UTC).isoformat()
        items.append({"pk": cid, "kind": "ORDER", "order_id": "o", "total": 100, "at": at})
        if not in_global_control(control, cid):
            items += [{**row, "pk": cid, "at": at} for row in treated_extra]
    cells = {d: {"New|Bronze|Kanto|20s|m|x": {"customers": 300}} for d in (d1, d2)}
    doc = report_document(
        build_reports(ReportData(Ledger.from_items(items), cells, Export(rows)), cfg), cfg
    )
    assert doc.headline is not None and doc.headline.control is not None
    (w30,) = doc.headline.control.windows
    return w30


def test_the_comparison_counts_no_revenue_for_a_cancelled_order() -> None:
    # given each treated customer placed a 900 order too, cancelled
    cancelled = [
        {"kind": "ORDER", "order_id": "x", "total": 900},
        {"kind": "CANCEL", "order_id": "x"},
    ]
    # then both groups bought 100 a customer: no revenue gap
    assert _revenue_gap(cancelled) == 0.0


def test_the_comparison_counts_revenue_net_of_refunds() -> None:
    # given each treated customer's 100 order was refunded 30 (the row sent twice) and 10,
    # and a 500 order refunded in whole
    refunded = [
        {"kind": "REFUND", "order_id": "o", "refund_id": "r1", "amount": 30},
        {"kind": "REFUND", "order_id": "o", "refund_id": "r1", "amount": 30},
        {"kind": "REFUND", "order_id": "o", "refund_id": "r2", "amount": "10"},
        {"kind": "REFUND", "order_id": "w", "refund_id": "r1", "amount": 500},
        {"kind": "ORDER", "order_id": "w", "total": 500},
    ]
    # then the treated bought 60 a customer, the control group 100
    assert _revenue_gap(refunded) == -40.0


def test_a_cancelled_or_wholly_refunded_order_is_no_repeat_purchase() -> None:
    # given each treated customer placed a second order, cancelled, and a third, refunded in
    # whole: as loyalty counts them, they bought once, as the control group did
    undone = [
        {"kind": "ORDER", "order_id": "x", "total": 900},
        {"kind": "CANCEL", "order_id": "x"},
        {"kind": "ORDER", "order_id": "w", "total": 500},
        {"kind": "REFUND", "order_id": "w", "refund_id": "r1", "amount": 500},
    ]
    w30 = _window(undone)
    # then no treated customer is a repeat buyer, and the groups do not differ
    assert w30.treated.repeat.numerator == 0
    assert w30.repeat.absolute_lift == 0.0
