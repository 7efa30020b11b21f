"""LINE link clicks on the local runtime (issue 19, items 2 and 3): a coupon on LINE, a day,
then the same offer by email for whoever did not click its link within 24 hours
(``tests/fixtures/line_click_project``). The LINE text's link is rewritten to a signed
tracked link on the unsubscribe function's URL; simulated recipients
(kizuna_tools.local.engagement) click about half of them with a GET of the function URL, as a
browser does; the function stamps ``click_at`` on the ledger entry and answers 302, and the
cohort engine's branch reads it when it runs: clickers get nothing more, the others the email."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.domain.timestamps import parse_time
from kizuna_tools.demo import DEMO_CONFIG
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.engagement import ChannelRates, EngagementModel
from tests.integration.conftest import DEMO_CHANNELS, ProjectCloud, project_template
from tests.integration.shop_events import first_order, program_rows

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "line_click_project"
PROGRAM = "line-clicked"
CUSTOMERS = [f"ca{i}" for i in range(6)]  # hex: LINE user ids are U + 32 hex digits
LINE_HOST_PATTERN = r"https://[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws/l/[A-Za-z0-9_-]+"
# half the LINE links clicked, minutes after the send; nothing for email (the branch reads
# LINE clicks only); the seed makes both sides of the branch taken
MODEL = EngagementModel(channels={"line": ChannelRates(click=0.5)}, seed=3)
# the fixture's coupon links to shop.example: declared, so its LINE links are tracked
# the fixture's templates are in English, the shop's default locale
CONFIG = {
    **DEMO_CONFIG,
    "tracked_links": {"hosts": ["shop.example"]},
    "contact": {"default_locale": "en"},
}


@pytest.fixture(scope="module")
def engagement_template() -> dict[str, Any]:
    """The Kizuna stack with the fixture's program and templates (every channel on)."""
    return project_template(FIXTURE, CONFIG, **DEMO_CHANNELS)


@pytest.fixture
def cloud(engagement_template: dict[str, Any], project_cloud: ProjectCloud) -> LocalCloud:
    return project_cloud(engagement_template, FIXTURE, engagement=MODEL)


def test_an_unclicked_line_coupon_is_followed_by_email_and_a_clicked_one_is_not(
    cloud: LocalCloud,
) -> None:
    # given: six customers with email and LINE place their first order
    for cid in CUSTOMERS:
        first_order(cloud, cid)
    # when: two days pass (the coupon within the hour, the branch a day after it)
    cloud.advance(days=2)
    # then: everyone got the coupon on LINE, its link tracked and the rest of the text as
    # the template wrote it
    for sent in cloud.outbox("line"):
        text = sent["messages"][0]["text"]
        assert "https://shop.example/" not in text
        assert re.search(LINE_HOST_PATTERN, text), text
        assert "Code: " in text
    messages, steps = program_rows(cloud, PROGRAM, "MSG"), program_rows(cloud, PROGRAM, "STEP")
    coupons = {cid: messages[(cid, "coupon")] for cid in CUSTOMERS}
    assert {(m["status"], m.get("channel")) for m in coupons.values()} == {("sent", "line")}, (
        coupons
    )
    clicked = {cid for cid, m in coupons.items() if m.get("click_at")}
    for cid in clicked:
        delay = parse_time(coupons[cid]["click_at"]) - parse_time(coupons[cid]["sent_at"])
        assert timedelta(0) < delay <= timedelta(hours=24)
    assert clicked and clicked != set(CUSTOMERS), "the seed should take both sides"
    # the branch read the ledger: clickers took `then` (the exit), the others the email
    for cid in CUSTOMERS:
        step = steps[(cid, "clicked")]
        email = messages.get((cid, "email_coupon"))
        if cid in clicked:
            assert step["decision"] == "then" and step["engagement"]["found"]
            assert email is None
        else:
            assert (step["decision"], step["reason"]) == ("else", "not_engaged")
            assert email is not None and (email["status"], email["channel"]) == ("sent", "email")
    # the simulator's clicks were the function's 302s, one per clicked message
    assert cloud.summary()["engagement"] == {"LineClick": len(clicked)}
    assert not any(cloud.dlq_messages().values())


def test_a_tracked_link_followed_again_or_forged_stamps_nothing_more(cloud: LocalCloud) -> None:
    first_order(cloud, CUSTOMERS[0])
    cloud.advance(hours=1)
    (sent,) = cloud.outbox("line")
    link = re.search(LINE_HOST_PATTERN, sent["messages"][0]["text"])
    assert link is not None
    status, headers, _ = cloud.http_request("GET", link.group(0), {}, None)
    assert status == 302 and headers["Location"].startswith("https://shop.example/coupon?code=")
    stamped = program_rows(cloud, PROGRAM, "MSG")[(CUSTOMERS[0], "coupon")]["click_at"]
    cloud.advance(hours=1)
    assert cloud.http_request("GET", link.group(0), {}, None)[0] == 302
    forged = link.group(0)[:-2] + ("AA" if not link.group(0).endswith("AA") else "BB")
    status, headers, _ = cloud.http_request("GET", forged, {}, None)
    assert status == 400 and "Location" not in headers
    assert program_rows(cloud, PROGRAM, "MSG")[(CUSTOMERS[0], "coupon")]["click_at"] == stamped
