"""The daily scoring on the local runtime: the real template's schedule starts the real
state machine (boundaries, then a Distributed Map over scan segments), the score function
writes RFM segments, and a new Champion is thanked by the champions-care program."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.demo import DEMO_CONTEXT, prepare_channels
from kizuna.local.app import default_project_root, kizuna_template
from kizuna.local.cloud import LocalCloud
from kizuna.programs.journeys import in_holdout
from tests.integration.test_journeys import PROGRAMS, ledger, sent

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # Monday 09:00 in Tokyo


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return kizuna_template(DEMO_CONTEXT)


@pytest.fixture
def cloud(template: dict[str, Any]) -> Iterator[LocalCloud]:
    with LocalCloud.from_template(
        template,
        project_root=default_project_root(),
        start=START,
        environment_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    ) as c:
        prepare_channels(c)
        yield c


def history(cid: str, orders: Sequence[tuple[int, float]], now: datetime) -> list[dict[str, Any]]:
    """A customer's sign-up (email opt-in) and past orders, as bus entries."""

    def entry(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        detail = {"customer_id": cid, "occurred_at": now.isoformat(), **detail}
        return {"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}

    entries = [
        entry("customer.upserted", {"email": f"{cid}@example.jp", "locale": "ja"}),
        entry("consent.changed", {"channel": "email", "status": "opted_in"}),
    ]
    for n, (total, days_ago) in enumerate(orders):
        line = {"product_id": "tea-001", "category": "tea", "quantity": 1, "unit_price": "1"}
        entries.append(
            entry(
                "order.placed",
                {
                    "occurred_at": (now - timedelta(days=days_ago)).isoformat(),
                    "order_id": f"o-{cid}-{n}",
                    "total": str(total),
                    "currency": "JPY",
                    "channel": "web",
                    "lines": [line],
                },
            )
        )
    return entries


def customers(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    return {str(i["customer_id"]): i for i in cloud.scan(table)}


def test_the_daily_scoring_segments_the_base_and_thanks_a_new_champion(
    cloud: LocalCloud,
) -> None:
    champ = next(f"c{i}" for i in range(500) if not in_holdout(PROGRAMS["champions-care"], f"c{i}"))
    # Given customers with different order histories (and one who never ordered)
    histories = {
        champ: [(30000, 1 + i) for i in range(4)],
        "loyal": [(10000, 20 + 10 * i) for i in range(3)],
        "newbie": [(3000, 2)],
        "sleepy": [(5000, 100), (5000, 150)],
        "lost": [(1000, 300)],
        "prospect": [],
    }
    now = cloud.clock.now()
    cloud.put_events([e for cid, orders in histories.items() for e in history(cid, orders, now)])
    cloud.drain()
    assert all(c.get("rfm_segment") is None for c in customers(cloud).values())

    # When the clock passes 02:00 in Tokyo: the schedule starts the scoring state machine
    cloud.advance(days=1)

    # Then the run succeeded: boundaries, then every scan segment
    sfn = cloud.client("stepfunctions")
    [machine] = [m for m in sfn.list_state_machines()["stateMachines"] if "Scoring" in m["name"]]
    runs = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert [r["status"] for r in runs] == ["SUCCEEDED"]
    # and each customer with an order has scores and a segment; the prospect has none
    scored = customers(cloud)
    segments = {cid: scored[cid].get("rfm_segment") for cid in histories}
    assert segments[champ] == "Champions"
    assert segments["lost"] in {"Lost", "Hibernating"}
    assert segments["prospect"] is None
    for cid in histories:
        if cid != "prospect":
            for field in ("rfm_recency", "rfm_frequency", "rfm_monetary"):
                assert 1 <= int(scored[cid][field]) <= 5
    assert int(scored[champ]["rfm_recency"]) == 5
    # and the Champion got the champions-care thanks (segment_changed -> evaluate -> journey)
    assert ("champions-care", "thanks", "email") in sent(cloud, champ)
    entries = [e for e in ledger(cloud, champ, "ENTRY") if e.get("program") == "champions-care"]
    assert len(entries) == 1

    # When the next day's run finds nothing changed, nothing is written again
    versions = {cid: int(c["version"]) for cid, c in customers(cloud).items()}
    cloud.advance(days=1)
    assert {cid: int(c["version"]) for cid, c in customers(cloud).items()} == versions
    assert sent(cloud, champ).count(("champions-care", "thanks", "email")) == 1
