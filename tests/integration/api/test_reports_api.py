"""Reports: a report built by the real builder, published to the analytics bucket as
``kizuna report html --publish`` does, read back by the API (JSON, the same document) and
shown by the console (front page of headline figures first, then the sections)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from kizuna.analytics import published
from kizuna.analytics.document import ReportDocument
from tests.integration.api import shop
from tests.integration.api.harness import Api
from tests.integration.api.shop import shop_document

pytestmark = pytest.mark.integration

shop_api = shop.shop_api  # the fixture: the API with the analytics bucket

DAY1 = datetime(2026, 11, 2, 3, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 3, tzinfo=UTC)


def publish(api: Api, generated_at: datetime) -> ReportDocument:
    from kizuna_tools.reports.html import render_html

    assert api.deps.reports is not None
    doc = shop_document(generated_at)
    published.publish(api.deps.reports, doc, render_html(doc))
    return doc


def test_every_route_needs_a_viewer(shop_api: Api) -> None:
    publish(shop_api, DAY1)
    for path in ("/api/reports", "/api/reports/latest", "/api/reports/2026-11-02"):
        assert shop_api.call("GET", path).status == 401, path
        assert shop_api.call("GET", path, as_="none").status == 403, path
        assert shop_api.call("GET", path, as_="viewer").status == 200, path


def test_nothing_published_is_an_empty_index_and_404(shop_api: Api) -> None:
    index = shop_api.call("GET", "/api/reports", as_="viewer")
    assert index.json() == {"latest": None, "days": []}
    assert shop_api.call("GET", "/api/reports/latest", as_="viewer").status == 404
    assert shop_api.call("GET", "/api/reports/2026-11-02", as_="viewer").status == 404
    bad = shop_api.call("GET", "/api/reports/2026-13-02", as_="viewer")
    assert bad.status == 422 and "day" in bad.body
    # epoch seconds (lax pydantic read 1762041600 as 2025-11-02) and the basic form
    for day in ("1762041600", "20261102"):
        loose = shop_api.call("GET", f"/api/reports/{day}", as_="viewer")
        assert loose.status == 422, day
        assert loose.json()["detail"][0]["loc"] == ["path", "day"]


def test_published_document_round_trips(shop_api: Api) -> None:
    # given two reports published on two days
    first = publish(shop_api, DAY1)
    second = publish(shop_api, DAY2)

    # then the index lists both, newest first, and latest is the second, as published
    index = shop_api.call("GET", "/api/reports", as_="viewer").json()
    assert index == {"latest": "/api/reports/latest", "days": ["2026-11-03", "2026-11-02"]}
    latest = shop_api.call("GET", "/api/reports/latest", as_="viewer")
    assert ReportDocument.model_validate_json(latest.body) == second
    older = shop_api.call("GET", "/api/reports/2026-11-02", as_="viewer")
    assert ReportDocument.model_validate_json(older.body) == first

    # and the headline holds what the front page shows
    headline = latest.json()["headline"]
    assert headline["as_of"] == "2026-11-01"
    assert (headline["customers"], headline["buyers"]) == (8, 8)
    assert headline["repeat_rate"]["value"] == 0.5  # 4 of 8 buyers with 2+ orders
    assert headline["revenue_12m"] == 12000.0
    kinds = {(s["attribute"], s["program"]) for s in headline["structure"]}
    assert ("rfm_segment", None) in kinds and ("rank", "second-purchase-coupon") in kinds
    overall = next(
        s for s in headline["structure"] if (s["attribute"], s["program"]) == ("rfm_segment", None)
    )
    assert (overall["treated"]["up"], overall["treated"]["stayed"]) == (2, 2)
    assert (overall["holdout"]["up"], overall["holdout"]["down"]) == (1, 1)
    # the HTML report is stored beside the JSON
    assert shop_api.deps.reports.get("reports/2026-11-03.html") is not None


def test_console_reports_page_shows_the_kpis_first_in_both_languages(shop_api: Api) -> None:
    publish(shop_api, DAY1)
    cookies = shop_api.session("viewer")
    ja = shop_api.call("GET", "/console/reports", cookies=cookies)
    en = shop_api.call("GET", "/console/reports", cookies=cookies, query={"lang": "en"})
    assert ja.status == en.status == 200, en.body
    for page, words in (
        (ja, ("主要指標", "顧客数", "購入者数", "リピート率", "売上", "構造変化")),
        (en, ("Headline figures", "Customers", "Buyers", "Repeat rate", "Revenue", "Structure")),
    ):
        body = page.body
        for word in words:
            assert word in body, word
        # the front page comes before the report's sections
        assert body.index('id="headline"') < body.index("report-section")
        assert 'data-kpi="repeat_rate"' in body and "50.0%" in body
        # revenue in yen: no decimals (it read 12,000.00)
        assert re.search(r'data-kpi="revenue"><div class="value">12,000</div>', body)
        assert "<script" not in body and "style=" not in body
    # the sections: migration heatmaps, trend charts as inline SVG, lift with bars, tables
    body = en.body
    assert "section-migration" in body and "heat-" in body
    assert 'data-chart="trend"' in body and 'data-chart="lift"' in body
    assert "section-table" in body and "second-purchase-coupon" in body


def test_console_reports_page_without_a_report_and_for_a_day(shop_api: Api) -> None:
    cookies = shop_api.session("viewer")
    empty = shop_api.call("GET", "/console/reports", cookies=cookies, query={"lang": "en"})
    assert empty.status == 200 and "No report is published yet" in empty.body
    publish(shop_api, DAY1)
    day = shop_api.call("GET", "/console/reports", cookies=cookies, query={"day": "2026-11-02"})
    assert day.status == 200 and "Shop report" in day.body
    missing = shop_api.call("GET", "/console/reports", cookies=cookies, query={"day": "2026-01-01"})
    assert missing.status == 404
    for loose in ("soon", "20261102"):  # the basic form: date.fromisoformat took it
        bad = shop_api.call("GET", "/console/reports", cookies=cookies, query={"day": loose})
        assert bad.status == 400, loose
    assert shop_api.call("GET", "/console/reports").status == 303
