"""An order sent again with a later time, on the real adapter (moto): its earlier ORDER row
is deleted in the same BatchWriteItem that writes the later one; a refund's REFUND row is in
the fact log a rebuild reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events, facts_from_activity
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from tests.factories import T0, order, refund
from tests.moto_setup import create_activity_table, create_table, fake_aws_env
from tests.unit.test_order_independence import order_sent

pytestmark = pytest.mark.integration

REGION = "us-east-1"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "customers", "customer_id")
        create_activity_table(ddb)
        yield DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )


def test_a_later_send_of_an_order_replaces_its_row(store: DynamoStore) -> None:
    clock = FixedClock(T0 + timedelta(hours=1))
    cfg = KizunaConfig()
    ingest_one(store, parse_inbound(order_sent(1000, 0, "e-a")), cfg, clock)
    ingest_one(store, parse_inbound(order_sent(2000, 5, "e-b")), cfg, clock)
    rows = store.activity("c1", "ORDER#")
    assert [(int(r["total"]), r["sk"].split("#")[1][:19]) for r in rows] == [
        (2000, (T0 + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"))
    ]
    # the fact log a rebuild reads holds the one order, as the state does
    (fact,) = [f for f in store.fact_log("c1") if f.kind == "ORDER"]
    assert fact.data["total"] == store.get_customers(["c1"])["c1"].orders["o1"].total
    # a redelivery of the earlier send changes nothing
    ingest_one(store, parse_inbound(order_sent(1000, 0, "e-a")), cfg, clock)
    assert len(store.activity("c1", "ORDER#")) == 1


def test_a_refund_is_in_the_fact_log_a_rebuild_reads(store: DynamoStore) -> None:
    cfg = KizunaConfig()
    clock = FixedClock(T0 + timedelta(days=30))
    line = [{"product_id": "p1", "quantity": 1, "unit_price": 10000}]
    for raw in (
        order("c1", "o1", 30000, T0),
        refund("c1", "o1", "r1", 10000, T0 + timedelta(days=2), reason="returned", lines=line),
    ):
        ingest_one(store, parse_inbound(raw), cfg, clock)
    (row,) = store.activity("c1", "REFUND#")
    assert (row["points_balance_before"], row["points_balance_after"]) == (300, 200)
    # read back from DynamoDB, the log rebuilds the same state
    log = facts_from_activity("c1", store.fact_log("c1"))
    assert sorted(e.detail_type for e in log) == ["order.placed", "order.refunded"]
    rebuilt = apply_events(Customer(customer_id="c1"), log, cfg, clock.now(), bulk=True).customer
    live = store.get_customers(["c1"])["c1"]
    assert (rebuilt.lifetime_value, rebuilt.points_balance) == (20000, 200)
    assert (live.lifetime_value, live.points_balance) == (20000, 200)
