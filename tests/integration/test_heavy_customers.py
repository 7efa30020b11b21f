"""Heavy customers on DynamoDB (moto): a bulk import never aborts on one customer, the item
stays under DynamoDB's 400 KB limit, and the fold reads the fact log back from activity
(issue #20, items 4 and 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import Customer
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna_tools.importer import import_file
from tests.factories import T0, cancel, parsed
from tests.integration.lambda_runtime import REGION

CFG = KizunaConfig()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        yield DynamoStore(boto3.resource("dynamodb", region_name=REGION), "customers", "activity")


def orders(customer_id: str, n: int, width: int = 1) -> list[dict[str, Any]]:
    start = T0 - timedelta(days=n)
    return [
        {
            "order_id": f"{customer_id}-o{i}",
            "customer_id": customer_id,
            "ordered_at": (start + timedelta(days=i)).isoformat(),
            "lines": [
                {"product_id": f"product-{i}-{k}", "quantity": 1, "unit_price": "1000"}
                for k in range(width if i % 100 == 0 else 1)
            ],
            "channel": "web",
        }
        for i in range(n)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_moto_enforces_the_400_kb_item_limit(store: DynamoStore) -> None:
    # the limit the bound is about is real on moto too
    big = Customer(customer_id="c1", first_name="x" * 100, stamps={"k": "v" * 410_000})
    with pytest.raises(ClientError, match="Item size"):
        store.save_customer(big, expected_version=0)


def test_a_customer_with_1200_orders_imports_and_the_others_too(
    store: DynamoStore, tmp_path: Path
) -> None:
    # given a transaction log where one B2B customer has 1,200 orders (some of 500 lines)
    # between two ordinary customers
    rows = orders("a", 3) + orders("b2b", 1200, width=500) + orders("z", 2)
    # when it is imported
    report = import_file("orders", write(tmp_path / "o.jsonl", rows), store, CFG, T0)
    # then every customer is written, the heavy one within DynamoDB's limits
    assert (report.rejected, report.customers_failed, report.customers_written) == (0, [], 3)
    heavy = store.get_customer("b2b")
    assert heavy is not None and heavy.order_count == 1200
    item = store.customer_item("b2b")
    assert item is not None and len(json.dumps(item, default=str)) < 100_000
    assert store.get_customer("z") is not None
    # and a late cancellation of an order the item no longer holds is folded from the log
    settled = "b2b-o100"
    assert settled not in heavy.orders
    ingest_one(store, parsed(cancel("b2b", settled, T0)), CFG, FixedClock(T0))
    after = store.get_customer("b2b")
    assert after is not None
    assert (after.order_count, after.lifetime_value) == (1199, heavy.lifetime_value - 500_000)


class FailingFor(DynamoStore):
    """DynamoDB refusing one customer's item (as it refused an item over 400 KB)."""

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        if customer.customer_id == "bad":
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Item size exceeded"}},
                "PutItem",
            )
        return super().save_customer(customer, expected_version)


def test_one_customer_failing_is_reported_and_the_import_goes_on(
    store: DynamoStore, tmp_path: Path
) -> None:
    failing = FailingFor(boto3.resource("dynamodb", region_name=REGION), "customers", "activity")
    rows = orders("a", 2) + orders("bad", 3) + orders("z", 2)
    report = import_file("orders", write(tmp_path / "o.jsonl", rows), failing, CFG, T0)
    # then the failing customer's rows are in the row report with the reason, the later
    # customers are written
    assert report.customers_failed == ["bad"]
    assert [e.row for e in report.errors] == [3, 4, 5]
    assert "ValidationException" in report.errors[0].error
    assert (report.imported, report.customers_written) == (4, 2)
    assert store.get_customer("z") is not None and store.get_customer("bad") is None
