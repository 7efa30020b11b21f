"""A customer whose id reads like one of Kizuna's internal keys (``ERASURES``) reaches only
their own items: export shows no erasure counter, erasing them leaves the counters (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import INTERNAL_PARTITIONS, DynamoStore
from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import Customer
from kizuna.domain.privacy import erase, export
from kizuna.events.inbound import is_customer_id
from tests.integration.lambda_runtime import REGION

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        yield DynamoStore(boto3.resource("dynamodb", region_name=REGION), "customers", "activity")


def customer_with_history(store: DynamoStore, cid: str) -> None:
    store.save_customer(Customer(customer_id=cid, first_name="Hanako"), expected_version=0)
    item = ActivityItem(customer_id=cid, kind="EVENT", at=NOW, key="e1", data={"type": "x"})
    store.put_activity([item])


def counters(store: DynamoStore) -> list[int]:
    items = store._activity.scan()["Items"]
    return [int(i["count"]) for i in items if str(i["sk"]).startswith("DAY#")]


def test_a_customer_named_erasures_cannot_reach_the_erasure_counters(store: DynamoStore) -> None:
    # given one customer erased (an anonymous counter is kept) and one named "ERASURES"
    customer_with_history(store, "c1")
    erase("c1", store, store, NOW)
    assert counters(store) == [1]
    assert is_customer_id("ERASURES")
    customer_with_history(store, "ERASURES")
    # when they ask for their data, then they get theirs and no counter
    data = export("ERASURES", store, store)
    assert data is not None
    assert [i["sk"] for i in data["activity"]] == ["EVENT#2026-01-05T10:00:00.000000Z#e1"]
    # when they are erased, then the counters stay (one more erasure counted)
    erase("ERASURES", store, store, NOW)
    assert counters(store) == [2]
    assert export("ERASURES", store, store) is None


def test_every_partition_is_a_customer_or_an_internal_one(store: DynamoStore) -> None:
    # given customers with history, one of them erased (marker and counter written)
    for cid in ("c1", "c2"):
        customer_with_history(store, cid)
    erase("c1", store, store, NOW)
    # then every pk of the activity table is a customer id, or an internal partition no
    # customer id can be
    for item in store._activity.scan()["Items"]:
        pk = str(item["pk"])
        internal = pk.startswith(INTERNAL_PARTITIONS)
        assert internal != is_customer_id(pk), pk
