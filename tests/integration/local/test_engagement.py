"""Simulated recipients (kizuna_tools.local.engagement): SES events for the emails the local
SES accepted, through the template's feedback rule, queue and function, into the ledger and
the suppressions; the app's push.opened for the pushes sent, through the bus and ingest."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from kizuna.delivery.tags import TAG_CUSTOMER, TAG_EXECUTION, TAG_MESSAGE, TAG_STEP
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.engagement import (
    ChannelRates,
    EngagementModel,
    EngagementSimulator,
    ses_timestamp,
)
from tests.factories import ROOT
from tests.integration.conftest import START, DemoCloud

pytestmark = pytest.mark.integration

CUSTOMERS = ("e1", "e2", "e3", "e4")


def send_email(cloud: LocalCloud, cid: str) -> dict[str, Any]:
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    body = {
        "action": "transactional",
        "execution": "tx:" + hashlib.sha256(cid.encode()).hexdigest()[:32],
        "request_hash": hashlib.sha256(cid.encode()).hexdigest(),
        "caller": "iam:arn:aws:iam::123456789012:role/shop-backend",
        "customer_id": cid,
        "template": "order_confirmation",
        "channels": ["email"],
        "data": {"order_id": "A-1", "total": 5400, "currency": "JPY"},
    }
    result = cloud.invoke(send.logical_id, body)
    assert result.ok, result.error
    assert result.result["status"] == "sent", result.result
    return dict(result.result)


def customers(cloud: LocalCloud) -> None:
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "customer.upserted",
                "Detail": {
                    "customer_id": cid,
                    "occurred_at": cloud.clock.now().isoformat(),
                    "email": f"{cid}@example.jp",
                    "locale": "en",
                },
            }
            for cid in CUSTOMERS
        ]
    )
    cloud.drain()


def ledger(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    return {
        str(i["pk"]): i
        for i in cloud.scan(table)
        if str(i.get("sk", "")).startswith("MSG#") and i.get("channel") == "email"
    }


def model(**rates: float) -> EngagementModel:
    return EngagementModel(channels={"email": ChannelRates(**rates)}, seed=11)


def test_opens_and_clicks_reach_the_ledger_through_the_feedback_function(
    demo_cloud: DemoCloud,
) -> None:
    # given: every recipient opens, half of them click; no bounce, no complaint
    cloud = demo_cloud(START, engagement=model(open=1.0, click=0.5, bounce=0, complaint=0))
    customers(cloud)
    # when: four emails are sent and a day passes
    for cid in CUSTOMERS:
        send_email(cloud, cid)
    cloud.advance(days=1)
    # then: SES events went the real way (the feedback function ran) and stamped the ledger
    emitted = cloud.summary()["engagement"]
    assert emitted["Delivery"] == 4 and emitted["Open"] == 4
    assert "Bounce" not in emitted and "Complaint" not in emitted
    entries = ledger(cloud)
    assert set(entries) == set(CUSTOMERS)
    assert all(e.get("delivery_at") and e.get("open_at") for e in entries.values())
    clicked = [cid for cid, e in entries.items() if e.get("click_at")]
    assert len(clicked) == emitted.get("Click", 0)
    for e in entries.values():
        assert e["delivery_at"] < e["open_at"]
        assert not e.get("click_at") or e["open_at"] <= e["click_at"]
    assert not any(cloud.dlq_messages().values())


def test_a_permanent_bounce_suppresses_the_address(demo_cloud: DemoCloud) -> None:
    cloud = demo_cloud(START, engagement=model(open=0, click=0, bounce=1.0, complaint=0))
    customers(cloud)
    send_email(cloud, "e1")
    cloud.advance(hours=1)
    assert cloud.summary()["engagement"] == {"Bounce": 1}
    entry = ledger(cloud)["e1"]
    assert entry.get("bounce_at") and not entry.get("delivery_at")
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    customer = next(c for c in cloud.scan(table) if c["customer_id"] == "e1")
    assert "email" in customer.get("suppressions", {}), customer.get("suppressions")


def test_without_a_model_nothing_is_emitted(demo_cloud: DemoCloud) -> None:
    cloud = demo_cloud(START)
    customers(cloud)
    send_email(cloud, "e1")
    cloud.advance(days=1)
    assert cloud.summary()["engagement"] is None
    entry = ledger(cloud)["e1"]
    assert not any(entry.get(f) for f in ("delivery_at", "open_at", "click_at", "bounce_at"))


def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    cloud.put_events([{"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}])
    cloud.drain()


def push_member(cloud: LocalCloud, cid: str) -> None:
    """A customer reachable by push who orders 60 points short of Silver: the
    points-to-next-rank program nudges them by push at 12:00 in Tokyo."""
    put(cloud, "customer.upserted", {"customer_id": cid, "locale": "ja"})
    token = f"fcm-token-{cid}-0123456789"
    put(cloud, "device.registered", {"customer_id": cid, "platform": "FCM", "token": token})
    put(cloud, "consent.changed", {"customer_id": cid, "channel": "push", "status": "opted_in"})
    line = {"product_id": "tea-009", "category": "tea", "quantity": 1, "unit_price": "6000"}
    put(
        cloud,
        "order.placed",
        {
            "customer_id": cid,
            "order_id": f"o-{cid}",
            "total": "6000",
            "currency": "JPY",
            "channel": "web",
            "lines": [line],
        },
    )


def test_push_opens_reach_the_ledger_through_the_bus_and_ingest(demo_cloud: DemoCloud) -> None:
    # given: every push is opened (push rates only: emails are not simulated)
    program = next(p for p in load_programs(ROOT / "programs")[0] if p.id == "points-to-next-rank")
    members = [c for c in (f"p{i}" for i in range(40)) if not in_holdout(program, c)][:2]
    cloud = demo_cloud(START, engagement=EngagementModel(channels={"push": ChannelRates(open=1.0)}))
    for cid in members:
        push_member(cloud, cid)
    # when: the nudge goes out by push (at noon) and the day passes
    cloud.advance(days=1)
    # then: each push carried its message reference; the app's push.opened went through the
    # bus and ingest, which stamped open_at on the push's own ledger entry
    pushes = cloud.outbox("push")
    assert {p["context"][TAG_CUSTOMER] for p in pushes} == set(members)
    assert cloud.summary()["engagement"] == {"push.opened": 2}
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    entries = {
        str(i["pk"]): i
        for i in cloud.scan(table)
        if str(i.get("sk", "")).startswith("MSG#") and i.get("channel") == "push"
    }
    assert set(entries) == set(members)
    for push in pushes:
        entry = entries[push["context"][TAG_CUSTOMER]]
        assert push["context"][TAG_MESSAGE] == f"{entry['execution']}/{entry['step']}"
        assert entry["status"] == "sent" and entry["sent_at"] < entry["open_at"]
    assert not any(cloud.dlq_messages().values())


def test_the_model_refuses_rates_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="feedback path for email, push, line only"):
        EngagementModel(channels={"sms": ChannelRates()})
    with pytest.raises(ValueError, match="needs open_url"):
        EngagementSimulator(
            EngagementModel(channels={"line": ChannelRates()}), lambda *a: None, lambda c: None
        )
    with pytest.raises(ValueError, match="needs emit_app"):
        EngagementSimulator(
            EngagementModel(channels={"push": ChannelRates()}), lambda *a: None, lambda c: None
        )
    with pytest.raises(ValueError, match="open must be in"):
        ChannelRates(open=1.5)
    with pytest.raises(ValueError, match="hour_factors"):
        EngagementModel(hour_factors={24: 1.0})
    assert ses_timestamp(START) == "2026-01-05T00:00:00.000Z"


def test_segment_and_hour_factors_shape_the_open_rate() -> None:
    m = EngagementModel(
        channels={"email": ChannelRates(open=0.4, click=0.5)},
        segment_factors={"champions": 2.0, "hibernating": 0.25},
        hour_factors={9: 1.5},
    )
    # START is 09:00 in Tokyo
    assert m.open_rate("email", "champions", START) == 1.0  # capped
    assert m.open_rate("email", "hibernating", START) == pytest.approx(0.15)
    assert m.open_rate("email", None, START.replace(hour=5)) == pytest.approx(0.4)
    assert m.click_rate("email", "hibernating") == pytest.approx(0.125)
    assert m.open_rate("line", None, START) == 0.0


def simulate(seed: int, message_ids: list[str]) -> list[tuple[str, str, datetime]]:
    """Outcomes for ten sends (customers c0..c9) with SES message ids ``message_ids``."""
    out: list[tuple[str, str, datetime]] = []
    sim = EngagementSimulator(
        EngagementModel(channels={"email": ChannelRates(open=0.5, click=0.5)}, seed=seed),
        emit=lambda kind, detail, at: out.append(
            (kind, detail["mail"]["tags"][TAG_CUSTOMER][0], at)
        ),
        segment_of=lambda cid: None,
    )
    for i, message_id in enumerate(message_ids):
        tags = {TAG_CUSTOMER: f"c{i}", TAG_EXECUTION: "ex", TAG_STEP: "s"}
        request = {
            "ConfigurationSetName": "kizuna",
            "FromEmailAddress": "shop@example.com",
            "Destination": {"ToAddresses": [f"c{i}@example.jp"]},
            "EmailTags": [{"Name": k, "Value": v} for k, v in tags.items()],
            "Content": {"Simple": {"Body": {"Html": {"Data": '<a href="https://s.example/x">'}}}},
        }
        sim.sent(message_id, request, START)
    sim.fire(START + timedelta(days=30))
    sim.sent("no-config-set", {"Destination": {"ToAddresses": ["x@example.jp"]}}, START)
    assert sim.next_due() is None  # SES publishes nothing without a configuration set
    return sorted(out)


def test_outcomes_depend_on_the_seed_and_the_tags_not_on_ses_ids() -> None:
    first = simulate(5, [f"a{i}" for i in range(10)])
    assert first == simulate(5, [f"b{i}" for i in range(10)])
    assert first != simulate(6, [f"a{i}" for i in range(10)])
    kinds = {k for k, _, _ in first}
    assert {"Email Delivered", "Email Opened", "Email Clicked"} <= kinds
