"""The reports from hand-built ledgers and snapshots: every figure computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kizuna.analytics.document import TableSection
from kizuna.analytics.stats import lift
from kizuna.scoring.snapshot import SnapshotRow
from kizuna_tools.reports.build import (
    Ledger,
    program_report,
    segment_analysis,
    structure_change,
    treated_and_holdout,
    trend,
)

T0 = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)


def at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def entry(cid: str, program: str, decision: str, days: float = 0) -> dict[str, Any]:
    return {"pk": cid, "kind": "ENTRY", "program": program, "decision": decision, "at": at(days)}


def conv(cid: str, program: str, holdout: bool, days: float) -> dict[str, Any]:
    reason = "holdout" if holdout else None
    return {"pk": cid, "kind": "CONV", "program": program, "reason": reason, "at": at(days)}


def msg(cid: str, program: str, status: str, channel: str | None, reason: str | None = None):  # type: ignore[no-untyped-def]
    opened = {"open_at": at(2)} if cid == "t1" else {}
    return opened | {
        "pk": cid,
        "kind": "MSG",
        "program": program,
        "status": status,
        "channel": channel,
        "reason": reason,
        "at": at(1),
    }


def order(cid: str, total: int, days: float) -> dict[str, Any]:
    return {"pk": cid, "kind": "ORDER", "total": total, "at": at(days)}


@pytest.fixture
def ledger() -> Ledger:
    items: list[dict[str, Any]] = []
    # program "p": 4 treated (t1..t4), 2 holdout (h1, h2); t1, t2 and h1 convert
    for cid in ("t1", "t2", "t3", "t4"):
        items.append(entry(cid, "p", "entered"))
    items += [entry("h1", "p", "holdout"), entry("h2", "p", "holdout")]
    items += [entry("t1", "p", "entered", 20)]  # re-entry: still one customer
    items += [entry("x", "p", "skipped")]  # skipped entries are not customers of p
    items += [conv("t1", "p", False, 3), conv("t2", "p", False, 5), conv("h1", "p", True, 4)]
    items += [
        msg("t1", "p", "sent", "email"),
        msg("t2", "p", "sent", "email"),
        msg("t3", "p", "sent", "line"),
        msg("t4", "p", "suppressed", None, "frequency_cap_day"),
    ]
    # orders: inside the 14-day window count, before the entry or after the window do not
    items += [
        order("t1", 3000, 3),
        order("t1", 9999, -1),
        order("t3", 7777, 0),  # the triggering order, at the entry instant: not revenue
        order("t2", 1000, 5),
        order("t2", 5000, 30),
        order("h1", 2000, 4),
    ]
    items += [
        {"pk": "t1", "kind": "JOURNEY", "program": "p", "arms": {"offer": "A"}},
        {"pk": "t2", "kind": "JOURNEY", "program": "p", "arms": {"offer": "B"}},
        {"pk": "t3", "kind": "JOURNEY", "program": "p", "arms": {"offer": "A"}},
    ]
    return Ledger.from_items(items)


def test_program_report_counts_customers_conversions_lift_and_revenue(ledger: Ledger) -> None:
    rows = {r.label: r for r in program_report(ledger, {"p": 14})}
    overall = rows["all"]
    assert (overall.treated, overall.holdout, overall.sent) == (4, 2, 3)
    assert (overall.entries, overall.engaged) == (5, 1)  # t1 entered twice and opened
    assert overall.sent_by_channel == {"email": 2, "line": 1}
    assert overall.suppressed == {"frequency_cap_day": 1}
    assert (overall.converted, overall.holdout_converted) == (2, 1)
    # 2/4 treated vs 1/2 holdout: no lift, the same figures as stats.lift
    assert overall.lift == lift(2, 4, 1, 2)
    assert overall.lift.absolute_lift == 0.0
    # revenue within 14 days of entry: t1 3000, t2 1000, t3 0, t4 0 -> 1000 per customer
    assert overall.revenue_per_customer == 1000.0
    assert overall.holdout_revenue_per_customer == 1000.0  # h1 2000, h2 0
    assert overall.revenue_per_recipient == round(4000 / 3, 2)  # t1, t2, t3 were sent
    # A/B arms: A = t1, t3 (1 converted); B = t2 (1 converted); against the whole holdout
    assert (rows["offer:A"].treated, rows["offer:A"].converted) == (2, 1)
    assert (rows["offer:B"].treated, rows["offer:B"].converted) == (1, 1)
    # channels of the first message sent
    assert (rows["email"].treated, rows["email"].converted) == (2, 2)
    assert (rows["line"].treated, rows["line"].converted) == (1, 0)


def test_the_entry_counts_from_entered_at_when_the_ledger_has_it() -> None:
    item = entry("c", "p", "entered", 0) | {"entered_at": at(0.5)}
    [e] = Ledger.from_items([item]).entries
    assert e.at == T0 + timedelta(days=0.5)


def test_treated_and_holdout_overall_and_per_program(ledger: Ledger) -> None:
    extra = Ledger.from_items([entry("h2", "q", "entered"), entry("t9", "q", "holdout")])
    ledger.entries += extra.entries
    treated, holdout = treated_and_holdout(ledger)
    assert holdout == {"h1", "t9"}  # h2 was treated by q
    assert "h2" in treated
    assert treated_and_holdout(ledger, "p")[1] == {"h1", "h2"}


def row(cid: str, day: date, segment: str | None, **extra: Any) -> SnapshotRow:
    return SnapshotRow(date=day, customer_id=cid, rfm_segment=segment, lifecycle="new", **extra)


def test_structure_change_separates_treated_and_holdout() -> None:
    d1, d2 = date(2026, 5, 1), date(2026, 6, 1)
    before = [row("a", d1, "New"), row("b", d1, "New"), row("c", d1, "New"), row("z", d1, None)]
    after = [
        row("a", d2, "Loyal"),
        row("b", d2, "New"),
        row("c", d2, "Lost"),
        row("d", d2, "New"),
        row("z", d2, None),
    ]
    order = ["Loyal", "New", "Lost"]
    change = structure_change(before, after, {"a", "b", "d", "z"}, {"c"}, "rfm_segment", order)
    t, h = change.treated, change.holdout
    assert (t.up, t.stayed, t.down, t.entered) == (1, 1, 0, 1)  # z unscored: not counted
    assert t.count("New", "Loyal") == 1 and t.count("(none)", "New") == 1
    assert (h.up, h.stayed, h.down) == (0, 0, 1)
    assert (change.before, change.after) == (d1, d2)
    with pytest.raises(ValueError, match="both dates"):
        structure_change([], after, set(), set(), "rfm_segment", order)


def test_trend_sums_cells_per_date() -> None:
    d1, d2 = date(2026, 5, 1), date(2026, 5, 2)
    cells = {
        d1: {
            "Champions|Gold|Kanto|30s|f|x": {
                "customers": 2,
                "buyers": 2,
                "repeaters": 2,
                "new_buyers": 1,
                "new_repeaters": 1,
                "spend_12m": Decimal("5000.5"),
            },
            "New|Bronze|Kanto|20s|m|x": {
                "customers": 3,
                "buyers": 3,
                "dormant": 1,
                "new_buyers": 3,
            },
        },
        d2: {"New|Bronze|Kinki|20s|m|x": {"customers": 4, "buyers": 2, "repeaters": 1}},
    }
    t = trend(cells)
    assert t.dates == [d1, d2]
    assert t.segments == {"Champions": [2, 0], "New": [3, 4]}
    assert t.ranks == {"Gold": [2, 0], "Bronze": [3, 4]}
    assert t.customers == [5, 4]
    assert [r.value for r in t.second_purchase] == [1 / 4, None]  # no new buyer on d2
    assert [r.value for r in t.repeat] == [2 / 5, 1 / 2]
    assert [r.value for r in t.dormancy] == [1 / 5, 0.0]
    assert t.buyers == [5, 2]
    assert t.revenue_12m == [5000.5, 0.0]


def test_segment_analysis_by_band(ledger: Ledger) -> None:
    day = date(2026, 6, 1)
    rows = [
        row("t1", day, "New", region="Kanto", order_count=2, spend_12m=3000.0),
        row("t2", day, "New", region="Kanto", order_count=1, spend_12m=1000.0),
        row("t3", day, "New", region="Kinki", order_count=0),
        row("q", day, "New", order_count=0),
    ]
    out = {(r.dimension, r.value): r for r in segment_analysis(rows, ledger, ["region"])}
    kanto = out[("region", "Kanto")]
    assert (kanto.customers, kanto.buyers, kanto.revenue_12m) == (2, 2, 4000.0)
    assert kanto.revenue_per_customer == 2000.0
    assert (kanto.messaged, kanto.response_rate, kanto.conversion_rate) == (2, 0.5, 1.0)
    assert kanto.second_purchase_rate == 0.5
    kinki = out[("region", "Kinki")]
    assert (kinki.messaged, kinki.response_rate, kinki.conversion_rate) == (1, 0.0, 0.0)
    assert kinki.second_purchase_rate is None
    assert out[("region", "(none)")].messaged == 0


def test_the_response_rate_is_over_the_customers_a_response_could_be_seen_from() -> None:
    """A LINE message none of whose links went tracked (``links_untracked``) can show no
    response, nor can an SMS: a customer reached only so is messaged, but not in the
    response rate's denominator (their silence is no non-response). A LINE message without
    that mark (a tracked link, or no link: nothing to click) is, as an email is."""
    day = date(2026, 6, 1)
    untracked = msg("b", "p", "sent", "line") | {"links_untracked": True}
    items = [
        msg("t1", "p", "sent", "email"),  # opened
        msg("a", "p", "sent", "line"),  # tracked, or no link: not clicked
        untracked,
        msg("c", "p", "sent", "sms"),
        # d: an untracked LINE message and an email: the email could show a response
        msg("d", "p", "sent", "line") | {"links_untracked": True},
        msg("d", "p", "sent", "email") | {"at": at(3)},
    ]
    rows = [row(cid, day, "New", region="Kanto") for cid in ("t1", "a", "b", "c", "d")]
    (kanto,) = segment_analysis(rows, Ledger.from_items(items), ["region"])
    assert kanto.response_rate == round(1 / 3, 4)  # t1 of t1, a and d (not 1 of 5)
    assert (kanto.messaged, kanto.response_measured) == (5, 3)
    assert kanto.conversion_rate == 0.0  # conversions are measured on every channel


def test_segment_analysis_by_declared_attributes(ledger: Ledger) -> None:
    # Given a snapshot whose rows carry the declared attributes reports break down by
    day = date(2026, 6, 1)
    rows = [
        row("t1", day, "New", attributes={"tier": "vip", "newsletter": "true"}, order_count=2),
        row("t2", day, "New", attributes={"tier": "vip"}, order_count=1, spend_12m=500.0),
        row("t3", day, "New", attributes={"tier": "standard", "newsletter": "false"}),
        row("q", day, "New"),
    ]
    # When analysed with the default dimensions
    out = {(r.dimension, r.value): r for r in segment_analysis(rows, ledger)}
    # Then each attribute is a dimension after the built-in ones, unset as (none)
    dimensions = list(dict.fromkeys(d for d, _ in out))
    assert dimensions[-2:] == ["attributes.newsletter", "attributes.tier"]
    vip = out[("attributes.tier", "vip")]
    assert (vip.customers, vip.buyers, vip.revenue_12m, vip.messaged) == (2, 2, 500.0, 2)
    assert vip.second_purchase_rate == 0.5
    assert out[("attributes.tier", "standard")].customers == 1
    assert out[("attributes.tier", "(none)")].customers == 1
    assert {v for d, v in out if d == "attributes.newsletter"} == {"true", "false", "(none)"}
    # and a snapshot without declarations has the built-in dimensions only
    plain = segment_analysis([row("x", day, "New")], ledger)
    assert not any(r.dimension.startswith("attributes.") for r in plain)


def test_the_document_carries_the_headline_and_section_keys() -> None:
    from kizuna.runtime.config import KizunaConfig
    from kizuna_tools.reports.document import build_reports, report_document
    from kizuna_tools.reports.sources import ReportData

    # given two days of cells and no export (so no structure change)
    d1, d2 = date(2026, 5, 1), date(2026, 5, 2)
    cell = "New|Bronze|Kanto|20s|m|x"
    cells = {
        d1: {cell: {"customers": 3, "buyers": 2, "repeaters": 1, "spend_12m": Decimal(900)}},
        d2: {cell: {"customers": 4, "buyers": 3, "repeaters": 2, "spend_12m": Decimal(1500)}},
    }
    cfg = KizunaConfig()
    doc = report_document(build_reports(ReportData(Ledger(), cells), cfg), cfg)
    # then the front page is the last date's base
    assert doc.headline is not None
    h = doc.headline
    assert (h.as_of, h.customers, h.buyers, h.revenue_12m) == (d2, 4, 3, 1500.0)
    assert h.repeat_rate.value == 2 / 3 and h.structure == ()
    # and sections say what they are
    keys = {s.key for s in doc.sections}
    assert {"rfm_segment_trend", "rank_trend", "rates_trend", "program_lift", "programs"} <= keys


def test_an_order_sent_again_with_a_later_time_counts_once_in_the_reports() -> None:
    """ORDER rows are keyed by time: an order re-sent with a later time (a corrected
    total) leaves the earlier row beside the later one, as ingest folds it into the state.
    The reports counted both (revenue doubled); they take the later, as the state does."""
    from kizuna.adapters.dynamodb import activity_to_item
    from kizuna.domain.customer import Customer
    from kizuna.domain.ingest import apply_events
    from kizuna.events.envelope import parse_inbound
    from kizuna.runtime.config import KizunaConfig
    from tests.factories import T0, order

    first = order("c1", "o1", 1000, T0, event_id="e-1")
    corrected = order("c1", "o1", 2000, T0 + timedelta(hours=1), event_id="e-2")
    customer, rows = Customer(customer_id="c1"), []
    for raw in (first, corrected, order("c1", "o2", 500, T0 + timedelta(days=1))):
        applied = apply_events(customer, [parse_inbound(raw)], KizunaConfig(), T0)
        customer = applied.customer
        rows += [activity_to_item(r) for r in applied.activity if r.kind == "ORDER"]
    assert len(rows) == 3  # (the earlier row of o1 stays: rows are keyed by time)
    ledger = Ledger.from_items(rows)
    assert sorted(o.total for o in ledger.orders) == [500.0, 2000.0]
    assert sum(o.total for o in ledger.orders) == float(customer.lifetime_value)


def test_a_cancelled_order_adds_no_revenue_to_the_program_report(ledger: Ledger) -> None:
    """docs/REPORTS.md: an order counts at its total unless it is cancelled. The program
    report summed every order in the window, cancelled ones too."""
    # given t4 ordered 8000 within the window, and the order was cancelled (the CANCEL row
    # read before the order, and after it for t1's second order)
    extra = Ledger.from_items(
        [
            {"pk": "t4", "kind": "CANCEL", "order_id": "big", "at": at(6)},
            {**order("t4", 8000, 4), "order_id": "big"},
            {**order("t1", 600, 4), "order_id": "small"},
            {"pk": "t1", "kind": "CANCEL", "order_id": "small", "at": at(6)},
        ]
    )
    ledger.orders += extra.orders
    # when
    overall = next(r for r in program_report(ledger, {"p": 14}) if r.label == "all")
    # then the revenue is the fixture's alone: t1 3000, t2 1000 over 4 customers
    assert overall.revenue_per_customer == 1000.0
    assert overall.revenue_per_recipient == round(4000 / 3, 2)
    assert [o.revenue for o in extra.orders] == [0.0, 0.0]


def test_the_reports_count_an_order_net_of_its_refunds_as_loyalty_does() -> None:
    """The ledger's REFUND rows, written by ingest, lower an order's revenue as they lower
    the customer's lifetime value; refunds of the whole total are a cancellation."""
    from kizuna.adapters.dynamodb import activity_to_item
    from kizuna.domain.customer import Customer
    from kizuna.domain.ingest import apply_events
    from kizuna.events.envelope import parse_inbound
    from kizuna.runtime.config import KizunaConfig
    from tests.factories import T0, order, refund

    # given three orders of c1: kept, refunded in part (twice), refunded in whole
    events = [
        order("c1", "o1", 1000, T0),
        order("c1", "o2", 5000, T0 + timedelta(days=1)),
        refund("c1", "o2", "r1", 1200, T0 + timedelta(days=2)),
        refund("c1", "o2", "r2", 800, T0 + timedelta(days=40)),
        order("c1", "o3", 2000, T0 + timedelta(days=1)),
        refund("c1", "o3", "r1", 2000, T0 + timedelta(days=3)),
    ]
    customer, rows = Customer(customer_id="c1"), []
    for raw in events:
        applied = apply_events(customer, [parse_inbound(raw)], KizunaConfig(), T0)
        customer = applied.customer
        rows += [activity_to_item(r) for r in applied.activity]
    entered = {"pk": "c1", "kind": "ENTRY", "program": "p", "decision": "entered"}
    ledger = Ledger.from_items([*rows, entered | {"at": (T0 - timedelta(hours=1)).isoformat()}])
    # when
    [overall] = program_report(ledger, {"p": 14})
    # then the program's revenue is 1000 + (5000 - 2000) + 0, the customer's lifetime value
    assert overall.revenue_per_customer == 4000.0 == float(customer.lifetime_value)
    revenue = {o.order_id: (o.revenue, o.counts) for o in ledger.orders}
    assert revenue == {"o1": (1000.0, True), "o2": (3000.0, True), "o3": (0.0, False)}
    assert {k: o.counts for k, o in customer.orders.items()} == {
        k: counts for k, (_, counts) in revenue.items()
    }


def test_the_report_writes_yen_without_decimals(ledger: Ledger) -> None:
    """The HTML report wrote yen as 99,760.000 and a rate rounded to 2 places as 33.330."""
    from kizuna.runtime.config import KizunaConfig
    from kizuna_tools.reports.document import build_reports, report_document
    from kizuna_tools.reports.html import render_html
    from kizuna_tools.reports.sources import ReportData

    # given the programs table of a yen shop (revenue per customer 1,000 yen)
    cells = {date(2026, 5, 1): {"New|Bronze|Kanto|20s|m|x": {"customers": 1, "buyers": 1}}}
    cfg = KizunaConfig()
    doc = report_document(build_reports(ReportData(ledger, cells), cfg), cfg)
    programs = next(s for s in doc.sections if s.key == "programs")
    assert isinstance(programs, TableSection)
    at = programs.columns.index("revenue / customer")
    assert [row[at] for row in programs.rows if row[1] == "all"] == [1000]
    # then the page shows whole yen, and percentages to the 2 places they are rounded to
    html = render_html(doc)
    assert ">1,000<" in html and "1,000.000" not in html and "1,000.00<" not in html
    assert ">50.00<" in html and ">50.000<" not in html  # 2 of 4 treated converted
    # and a currency with cents keeps them
    usd = KizunaConfig.model_validate({"loyalty": {"currency": "USD"}})
    in_usd = report_document(build_reports(ReportData(ledger, cells), usd), usd)
    rows = next(s for s in in_usd.sections if s.key == "programs").rows  # type: ignore[union-attr]
    assert [row[at] for row in rows if row[1] == "all"] == [1000.0]
