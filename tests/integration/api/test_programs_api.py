"""Programs routes and pages: the deployed bundle, and each program's figures over a range
read from the ledger's program/time index (rows written by the real adapter, shaped as the
evaluate and send services write them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.analytics import published
from kizuna.analytics.stats import lift
from kizuna.domain.activity import ActivityItem
from kizuna.domain.timestamps import iso
from kizuna.programs.diagram import mermaid
from kizuna.services.programs import deployed
from tests.integration.api import shop
from tests.integration.api.harness import Api
from tests.integration.api.shop import shop_document

shop_api = shop.shop_api  # the fixture: the API with gsi1, the bucket and the programs

pytestmark = pytest.mark.integration

PROGRAM = "second-purchase-coupon"
T0 = datetime(2026, 11, 10, 9, tzinfo=UTC)
RANGE = {"from": "2026-11-10T00:00:00Z", "to": "2026-11-20T00:00:00Z"}


def decision(cid: str, at: datetime, decision: str, program: str = PROGRAM) -> ActivityItem:
    """An ENTRY/CONV row as the evaluate service records it."""
    kind = "CONV" if decision == "converted" else "ENTRY"
    return ActivityItem(
        customer_id=cid,
        kind=kind,
        at=at,
        key=f"{program}#ev-{cid}-{at.timestamp():.0f}",
        data={
            "program": program,
            "decision": decision,
            "reason": "holdout" if cid.startswith("h") else None,
            "execution": f"x-{cid}",
            "trigger_type": "customer.first_purchase",
            "entered_at": iso(at) if decision in ("entered", "holdout") else None,
        },
    )


def message(api: Api, cid: str, at: datetime, status: str, **extra: Any) -> None:
    data = {"program": PROGRAM, "at": iso(at), "status": status, "template": "coupon", **extra}
    api.deps.store.record_entries("coupon", [(cid, f"x-{cid}", data)])


def write_ledger(api: Api) -> None:
    store = api.deps.store
    items = [decision(f"c{i}", T0 + timedelta(hours=i), "entered") for i in range(1, 7)]
    items.append(decision("c1", T0 + timedelta(days=3), "entered"))  # a re-entry
    items += [decision(f"h{i}", T0 + timedelta(hours=i), "holdout") for i in range(1, 5)]
    items += [
        decision("c1", T0 + timedelta(days=2), "converted"),
        decision("c2", T0 + timedelta(days=2), "converted"),
        decision("h1", T0 + timedelta(days=2), "converted"),
        decision("s1", T0, "skipped"),  # not a figure: not indexed
        decision("c7", T0 - timedelta(days=40), "entered"),  # before the range
        decision("c8", T0, "entered", program="winback-before-dormancy"),  # another program
    ]
    store.put_activity(items)
    day = T0 + timedelta(days=1)
    message(api, "c1", day, "sent", channel="email")
    message(api, "c2", day, "sent", channel="line")
    # SES took c3's email, then reported it rejected (the feedback stamp)
    message(api, "c3", day, "sent", channel="email", not_delivered_reason="rejected: Bad content")
    message(api, "c4", day, "suppressed", reason="frequency_cap")
    message(api, "c5", day, "suppressed", reason="quiet_hours")
    message(api, "c6", day, "failed", reason="ses: throttled")
    message(api, "c7", T0 - timedelta(days=39), "sent", channel="email")  # before the range


def test_every_route_needs_a_viewer(shop_api: Api) -> None:
    paths = [
        "/api/programs",
        f"/api/programs/{PROGRAM}",
        f"/api/programs/{PROGRAM}/diagram",
        f"/api/programs/{PROGRAM}/stats",
    ]
    for path in paths:
        assert shop_api.call("GET", path).status == 401, path
        assert shop_api.call("GET", path, as_="none").status == 403, path
        assert shop_api.call("GET", path, as_="machine").status == 401, path
        assert shop_api.call("GET", path, as_="viewer").status == 200, path


def test_the_list_is_the_deployed_bundle(shop_api: Api) -> None:
    answer = shop_api.call("GET", "/api/programs", as_="viewer")
    rows = {r["name"]: r for r in answer.json()}
    assert set(rows) == set(deployed(shop_api.deps.programs_dir, shop_api.deps.config))
    assert rows[PROGRAM] == {
        "name": PROGRAM,
        "title": "Second-purchase coupon after the first order",
        "trigger": "customer.first_purchase",
        "steps": 6,
        "channels": ["email", "line", "push"],
        "holdout_percent": 10,
        "status": "enabled",
    }


def test_definition_and_diagram(shop_api: Api) -> None:
    program = deployed(shop_api.deps.programs_dir, shop_api.deps.config)[PROGRAM]
    definition = shop_api.call("GET", f"/api/programs/{PROGRAM}", as_="viewer").json()
    assert definition["id"] == PROGRAM and definition["goal"]["within_days"] == 30
    assert [s["id"] for s in definition["steps"]] == [s.id for s in program.steps]
    diagram = shop_api.call("GET", f"/api/programs/{PROGRAM}/diagram", as_="viewer").json()
    assert diagram == {"program": PROGRAM, "mermaid": mermaid(program)}


def test_unknown_program_is_404_and_a_bad_name_422(shop_api: Api) -> None:
    for suffix in ("", "/diagram", "/stats"):
        answer = shop_api.call("GET", f"/api/programs/no-such-program{suffix}", as_="viewer")
        assert answer.status == 404, suffix
        bad = shop_api.call("GET", f"/api/programs/Bad_Name{suffix}", as_="viewer")
        assert bad.status == 422 and "name" in bad.body, suffix


def test_stats_count_the_range_from_the_program_index(
    shop_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the program's ledger, a skip, rows before the range and another program's
    write_ledger(shop_api)

    # when the stats are asked for the range (a scan of the table would fail)
    def no_scan(**_: Any) -> None:
        raise AssertionError("the stats scanned the activity table")

    monkeypatch.setattr(shop_api.deps.store._activity, "scan", no_scan)
    answer = shop_api.call("GET", f"/api/programs/{PROGRAM}/stats", as_="viewer", query=RANGE)

    # then they count the range only, as of the request
    assert answer.status == 200, answer.body
    ledger = answer.json()["ledger"]
    assert ledger["start"].startswith("2026-11-10T00:00:00") and ledger["as_of"]
    assert (ledger["entries"], ledger["treated"], ledger["held_out"]) == (7, 6, 4)
    assert ledger["sends_by_channel"] == {"email": 2, "line": 1}
    assert ledger["not_delivered_by_channel"] == {"email": 1}  # of those sends
    assert ledger["suppressions_by_reason"] == {"frequency_cap": 1, "quiet_hours": 1}
    assert ledger["messages_by_status"] == {"failed": 1, "sent": 3, "suppressed": 2}
    assert (ledger["conversions"], ledger["holdout_conversions"]) == (2, 1)
    assert ledger["lift"] == lift(2, 6, 1, 4).model_dump(mode="json")
    assert answer.json()["report"] is None  # nothing published yet


def test_stats_add_the_published_reports_lift_as_of_its_generation(shop_api: Api) -> None:
    # given a published report covering the program
    assert shop_api.deps.reports is not None
    generated = datetime(2026, 11, 2, 3, tzinfo=UTC)
    published.publish(shop_api.deps.reports, shop_document(generated))
    answer = shop_api.call("GET", f"/api/programs/{PROGRAM}/stats", as_="viewer", query=RANGE)
    report = answer.json()["report"]
    assert report["as_of"].startswith("2026-11-02T03:00")
    assert report["period_start"] == "2026-10-01" and report["period_end"] == "2026-11-01"
    ((arm, row_lift),) = report["rows"]
    assert arm is None and row_lift == lift(2, 4, 1, 4).model_dump(mode="json")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-11-20T00:00:00Z", "to": "2026-11-10T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-11-10T00:00:00Z"}, "from"),
        ({"from": "2026-11-10T00:00:00"}, "from"),  # no time zone
        ({"from": "1794268800"}, "from"),  # epoch seconds: lax pydantic read 2026-11-10
        ({"to": "2026-11-20"}, "to"),  # a bare day is not a time
        # at the ends of what datetime holds: the default `from` 30 days before, or the
        # conversion to UTC, raised OverflowError (a 500)
        ({"to": "0001-01-05T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-02T00:00:00Z"}, "from"),
        ({"from": "9999-12-31T00:00:00-14:00", "to": "9999-12-31T23:59:59-14:00"}, "from"),
    ],
)
def test_a_bad_range_is_422_naming_the_field(
    shop_api: Api, query: dict[str, str], field: str
) -> None:
    answer = shop_api.call("GET", f"/api/programs/{PROGRAM}/stats", as_="viewer", query=query)
    assert answer.status == 422, answer.body
    assert field in answer.body


def test_console_programs_pages_in_japanese_and_english(shop_api: Api) -> None:
    write_ledger(shop_api)
    cookies = shop_api.session("viewer")
    ja = shop_api.call("GET", "/console/programs", cookies=cookies)
    en = shop_api.call("GET", "/console/programs", cookies=cookies, query={"lang": "en"})
    assert ja.status == en.status == 200
    assert "トリガー" in ja.body and "Trigger" in en.body
    # a status badge stays on one line: 有効 in the narrow last column broke as 有 / 効
    css = shop_api.call("GET", "/console/static/console.css")
    assert css.status == 200
    badge = re.search(r"^\.badge \{([^}]*)\}", css.body, re.MULTILINE)
    assert badge is not None and "white-space: nowrap" in badge.group(1)
    assert f'href="/console/programs/{PROGRAM}?lang=en"' in en.body

    page = shop_api.call(
        "GET",
        f"/console/programs/{PROGRAM}",
        cookies=cookies,
        query={"lang": "en", "from": "2026-11-10", "to": "2026-11-19"},
    )
    assert page.status == 200, page.body
    body = page.body
    # the journey: every step in order, and the Mermaid text
    positions = [body.index(f'id="step-{s}"') for s in ("settle", "coupon", "wait_use", "done")]
    assert positions == sorted(positions)
    assert "flowchart TD" in body and "<script" not in body and "style=" not in body
    # the figures, with their "as of"
    assert "(as of " in body
    assert "Sends by channel" in body and "frequency_cap" in body
    assert "reported not delivered after sending" in body
    assert "+8.3 pt" in body  # 2/6 treated against 1/4 held out
    ja_page = shop_api.call(
        "GET", f"/console/programs/{PROGRAM}", cookies=cookies, query={"from": "2026-11-10"}
    )
    assert ja_page.status == 200 and "チャネル別の送信数" in ja_page.body
    # the journey's words are the page's language (they were English on the Japanese page)
    ja_text = re.sub(r"<[^>]+>", " ", ja_page.body.split("flowchart TD")[0])
    assert "coupon を送信 · email → line → push" in ja_text
    assert "1日待機し、顧客の現地時刻 10:00 まで" in ja_text and "7日待機" in ja_text
    assert "条件分岐" in ja_text and "はい" in ja_text and "いいえ" in ja_text
    for english in ("send coupon", "wait 7d", "until 10:00 local", "— branch", " yes ", "— exit"):
        assert english not in ja_text, english
    assert "wait 1d until 10:00 local" in body and "send coupon · email" in body


def test_console_program_page_refuses_a_bad_range_and_an_unknown_program(shop_api: Api) -> None:
    cookies = shop_api.session("viewer")
    for loose in ("soon", "20261110", "2026-W46-2"):  # date.fromisoformat took the last two
        bad = shop_api.call(
            "GET", f"/console/programs/{PROGRAM}", cookies=cookies, query={"from": loose}
        )
        assert bad.status == 400 and 'role="alert"' in bad.body, loose
    for ends in ({"to": "0001-01-01"}, {"to": "0001-01-05"}, {"to": "9999-12-31"}):
        # the day after `to`, or 30 days before it: OverflowError (a 500) before
        bad = shop_api.call("GET", f"/console/programs/{PROGRAM}", cookies=cookies, query=ends)
        assert bad.status == 400 and 'role="alert"' in bad.body, ends
    missing = shop_api.call("GET", "/console/programs/nope", cookies=cookies)
    assert missing.status == 404
    assert shop_api.call("GET", "/console/programs").status == 303  # no session: sign in
    forbidden = shop_api.call("GET", "/console/programs", cookies=shop_api.session("none"))
    assert forbidden.status == 403


def test_the_openapi_document_describes_the_programs_and_reports_routes(shop_api: Api) -> None:
    doc = shop_api.call("GET", "/api/openapi.json", as_="viewer").json()
    paths = doc["paths"]
    for path in (
        "/api/programs",
        "/api/programs/{name}",
        "/api/programs/{name}/diagram",
        "/api/programs/{name}/stats",
        "/api/reports",
        "/api/reports/latest",
        "/api/reports/{day}",
    ):
        operation = paths[path]["get"]
        assert operation["summary"] and operation["tags"], path
    stats = paths["/api/programs/{name}/stats"]["get"]
    assert {p["name"] for p in stats["parameters"]} == {"name", "from", "to"}
    assert not any(p.startswith("/console") for p in paths)
