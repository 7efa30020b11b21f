"""One customer whose stored item this version cannot read (a value it refuses in a known
field: edited by hand in the DynamoDB console, or written by a later version) fails only
that customer's work, on the real adapter (moto): before, the one BatchGetItem that read
them failed, and with it every other customer's message in the send group, every
recipient of the campaign batch and every event of the ingest batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.campaigns.loader import parse_campaign
from kizuna.domain.customer import UnreadableCustomer
from kizuna.programs.journeys import JourneyState
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.campaign import CampaignService
from kizuna.services.contracts import CampaignRequest
from kizuna.services.ingest import apply_to_customers
from kizuna_tools.fakes import MemoryCampaignEvents, MemoryCampaigns, MemoryManifest
from tests.factories import (
    Email,
    campaign_definition,
    customer,
    journey_send,
    order,
    parsed,
    send_service,
)
from tests.integration.delivery.test_cap_race_moto import NOON, REGION, TEMPLATES
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    """c1 and c3 as Kizuna wrote them; c2 with a value this version refuses."""
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        s = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        for cid in ("c1", "c2", "c3"):
            s.save_customer(customer(cid), 0)
        set_order_count(s, "c2", "many")
        yield s


def row(store: DynamoStore, cid: str, execution: str, step: str) -> dict[str, Any]:
    return store.ledger_entries([cid], execution, step).get(cid, {})


def test_a_send_group_sends_to_the_others_and_fails_the_unreadable_one_alone(
    store: DynamoStore,
) -> None:
    email = Email()
    svc = send_service(store, {"email": email}, FixedClock(NOON))
    answers = svc.send_many([journey_send(cid, f"ex-{cid}") for cid in ("c1", "c2", "c3")])
    assert [(a.status, a.reason) for a in answers] == [
        ("sent", None),
        ("failed", "unreadable_customer"),
        ("sent", None),
    ]
    assert sorted(m.address for m in email.sent) == ["c1@example.jp", "c3@example.jp"]
    failed = row(store, "c2", "ex-c2", "coupon")  # the ledger says why, once
    assert (failed["status"], failed["reason"]) == ("failed", "unreadable_customer")
    # a retried invocation (the same group again) sends nothing twice
    again = svc.send_many([journey_send(cid, f"ex-{cid}") for cid in ("c1", "c2", "c3")])
    assert [a.status for a in again] == ["sent", "failed", "sent"] and len(email.sent) == 2


def test_an_unreadable_customer_who_reached_the_goal_leaves_as_ever(store: DynamoStore) -> None:
    # the goal is on the journey state, not the customer item: they leave, not fail
    state = JourneyState(
        customer_id="c2",
        program="second-purchase-coupon",
        entries=1,
        last_entry_at=NOON - timedelta(days=1),
        goal_reached_at=NOON - timedelta(hours=2),
    )
    assert store.save_journey(state, None)
    svc = send_service(store, {"email": Email()}, FixedClock(NOON))
    (answer,) = svc.send_many([journey_send("c2", "ex-c2")])
    assert (answer.status, answer.reason) == ("exit", "goal_reached")


def test_a_campaign_batch_sends_to_the_others_and_fails_the_unreadable_one_alone(
    store: DynamoStore,
) -> None:
    email = Email()
    campaigns = MemoryCampaigns()
    campaigns.put(parse_campaign(campaign_definition()), TEMPLATES)
    service = CampaignService(
        campaigns,
        store,
        MemoryManifest(),
        {"email": email},
        MemoryCampaignEvents(),
        KizunaConfig(),
        FixedClock(NOON),
        templates_root=ROOT / "templates",
        scan_segments=1,
        sleep=lambda _: None,
    )

    def call(**request: Any) -> dict[str, Any]:
        return service.handle(CampaignRequest.model_validate(request))

    prepared = call(action="prepare", campaign_id="sale", scheduled_time=NOON)
    occurrence = {"campaign_id": "sale", "occurrence": prepared["occurrence"]}
    # the audience is frozen while c2's item reads; it is edited before the batch sends
    set_order_count(store, "c2", 0)
    call(action="freeze", segment=0, total_segments=1, **occurrence)
    (chunk,) = call(action="plan", **occurrence)["chunks"]
    set_order_count(store, "c2", "many")
    counts = call(action="send_batch", chunk=chunk, **occurrence)
    assert (counts.get("sent"), counts.get("failed")) == (2, 1)
    assert sorted(m.address for m in email.sent) == ["c1@example.jp", "c3@example.jp"]
    failed = row(store, "c2", f"campaign:sale:{prepared['occurrence']}", "send")
    assert (failed["status"], failed["reason"]) == ("failed", "unreadable_customer")
    # a scan (an audience being frozen, the scoring job) leaves it out (logged), not the others
    assert sorted(c.customer_id for c in store.scan_customers()) == ["c1", "c3"]


def set_order_count(store: DynamoStore, cid: str, value: Any) -> None:
    store._customers.update_item(
        Key={"customer_id": cid},
        UpdateExpression="SET order_count = :x",
        ExpressionAttributeValues={":x": value},
    )


def test_an_ingest_batch_applies_the_others_and_fails_the_unreadable_one_alone(
    store: DynamoStore,
) -> None:
    events = {cid: [parsed(order(cid, f"o-{cid}", 1200, NOON))] for cid in ("c1", "c2", "c3")}
    outcomes = apply_to_customers(store, events, KizunaConfig(), NOON)
    assert isinstance(outcomes["c2"], UnreadableCustomer)  # retried, then dead-lettered
    assert not isinstance(outcomes["c1"], Exception)
    assert not isinstance(outcomes["c3"], Exception)
    assert store.get_customers(["c1"])["c1"].order_count == 1
    # the unreadable item is left as it is: never taken for a new customer and overwritten
    item = store._customers.get_item(Key={"customer_id": "c2"})["Item"]
    assert item["order_count"] == "many" and item["version"] == 1
