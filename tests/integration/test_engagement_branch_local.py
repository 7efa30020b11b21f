"""An engagement branch on the local runtime (issue 19, item 3): a coupon by email, two days,
then the same offer on LINE for whoever did not open the email within 48 hours
(``tests/fixtures/engagement_project``). Simulated recipients (kizuna_tools.local.engagement)
open about half of the emails; their opens go the real way (SES event, feedback rule, queue,
feedback function, ``open_at`` on the ledger entry), and the cohort engine's branch reads
them when it runs: openers get nothing more, the others the LINE coupon."""

from __future__ import annotations

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

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "engagement_project"
PROGRAM = "engaged-coupon"
CUSTOMERS = [f"eb{i}" for i in range(6)]
# half the emails opened, a few hours after the send (well within 48 h); the seed makes
# both sides of the branch taken
MODEL = EngagementModel(
    channels={"email": ChannelRates(open=0.5, click=0.0, bounce=0.0, complaint=0.0)}, seed=3
)


@pytest.fixture(scope="module")
def engagement_template() -> dict[str, Any]:
    """The Kizuna stack with the fixture's program and templates (every channel on; the
    templates are in English, the shop's default locale)."""
    english = {**DEMO_CONFIG, "contact": {"default_locale": "en"}}
    return project_template(FIXTURE, english, **DEMO_CHANNELS)


@pytest.fixture
def cloud(engagement_template: dict[str, Any], project_cloud: ProjectCloud) -> LocalCloud:
    return project_cloud(engagement_template, FIXTURE, engagement=MODEL)


def test_an_unopened_coupon_is_followed_on_line_and_an_opened_one_is_not(
    cloud: LocalCloud,
) -> None:
    # given: six customers with email and LINE place their first order
    for cid in CUSTOMERS:
        first_order(cloud, cid)
    # when: three days pass (the coupon within the hour, the branch two days after it)
    cloud.advance(days=3)
    # then: everyone got the coupon by email; the simulated recipients opened some
    messages, steps = program_rows(cloud, PROGRAM, "MSG"), program_rows(cloud, PROGRAM, "STEP")
    coupons = {cid: messages[(cid, "coupon")] for cid in CUSTOMERS}
    assert all(m["status"] == "sent" and m["channel"] == "email" for m in coupons.values())
    opened = {cid for cid, m in coupons.items() if m.get("open_at")}
    for cid in opened:
        delay = parse_time(coupons[cid]["open_at"]) - parse_time(coupons[cid]["sent_at"])
        assert timedelta(0) < delay <= timedelta(hours=48)
    assert opened and opened != set(CUSTOMERS), "the seed should take both sides"
    # the branch read the ledger: openers took `then` (the exit), the others the LINE coupon
    for cid in CUSTOMERS:
        step = steps[(cid, "opened")]
        line = messages.get((cid, "line_coupon"))
        if cid in opened:
            assert step["decision"] == "then" and step["engagement"]["found"]
            assert line is None
        else:
            assert (step["decision"], step["reason"]) == ("else", "not_engaged")
            assert line is not None and (line["status"], line["channel"]) == ("sent", "line")
            # the branch ran at least 48 h after the send (the wait covers the window)
            decided = parse_time(step["at"]) - parse_time(coupons[cid]["sent_at"])
            assert decided >= timedelta(hours=48)
    assert cloud.summary()["engagement"]["Open"] == len(opened)
    assert not any(cloud.dlq_messages().values())
