"""The campaign report on a hand-built ledger: counts by channel and reason, per-variant
conversions and revenue in the attribution window, lift against the holdout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    assert a.lift is not None and a.lift.treated_rate == 0.5 and a.lift.holdout_rate == 0.25
    assert a.lift.ci is not None and a.lift.ci.low < a.lift.absolute_lift < a.lift.ci.high
