"""The scoring job's uniform sample on DynamoDB (moto): the projected scan of every segment
reads each customer once, and the boundaries come from exactly ``scoring.sample_size`` of
the scored customers."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig, ScoringConfig
from kizuna.scoring.job import BoundariesRequest, compute_boundaries
from tests.factories import T0, days, order, parsed, upsert
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CFG = KizunaConfig(scoring=ScoringConfig(sample_size=100))
BUYERS = 240


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "customers", "customer_id")
        create_table(ddb, "activity", "pk", "sk")
        s = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        for i in range(BUYERS):
            cid = f"b{i:03d}"
            raws = [
                order(cid, f"o{k}", 1000 * (k + 1), T0 - days(3 * i + k)) for k in range(i % 3 + 1)
            ]
            c = Customer(customer_id=cid)
            for raw in raws:
                c = apply_events(c, [parsed(raw)], CFG, T0).customer
            s.save_customer(c, 0)
        for i in range(20):  # prospects: no counted order, never sampled
            cid = f"p{i:03d}"
            prospect = apply_events(
                Customer(customer_id=cid),
                [parsed(upsert(cid, T0, f"ev-{cid}", region="Kanto"))],
                CFG,
                T0,
            ).customer
            s.save_customer(prospect, 0)
        yield s


def test_the_projected_scan_reads_every_customer_once_with_its_order_facts(
    store: DynamoStore,
) -> None:
    # When the four segments are read with the order-facts projection
    seen = [c for s in range(4) for c in store.scan_order_facts(s, 4)]
    # Then every customer is there exactly once, with its orders
    ids = [c.customer_id for c in seen]
    assert len(ids) == len(set(ids)) == BUYERS + 20
    by_id = {c.customer_id: c for c in seen}
    assert len(by_id["b002"].orders) == 3
    assert by_id["p000"].orders == {}
    # and nothing else of the item (the projection)
    assert by_id["p000"].model_dump(exclude={"customer_id"}) == Customer(
        customer_id="p000"
    ).model_dump(exclude={"customer_id"})


def test_the_boundaries_come_from_exactly_the_configured_sample(store: DynamoStore) -> None:
    # When the job's first step runs over four segments
    result = compute_boundaries(BoundariesRequest(total_segments=4), store, CFG, FixedClock(T0))
    # Then the sample holds sample_size scored customers (of 240; about half of them with
    # an order in the window), and the same run draws the same sample again
    assert result.boundaries.sample_size == 100
    assert 30 < result.boundaries.window_buyers < 75
    assert result.boundaries.frequency[0] >= 1
    again = compute_boundaries(BoundariesRequest(total_segments=4), store, CFG, FixedClock(T0))
    assert again.boundaries == result.boundaries
