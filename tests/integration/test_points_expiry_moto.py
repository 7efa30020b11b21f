"""Points expiry warnings on DynamoDB (moto): ingest indexes each points lot on the row of the
order (or adjustment) that earned it, in the activity table's gsi1 under ``LOTS#<shard>``;
the daily sweep finds there every lot that expires in its window -- not only the customer's
earliest, which is all ``by_points_expiry`` holds -- and warns of each once; erasure takes
the rows out of the index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import erase
from kizuna.domain.shards import LOT_SHARDS, shard_of
from kizuna.domain.timestamps import iso
from kizuna.programs.sweeps import INDEXES, SweepKind
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher
from tests.factories import adjust, order, parsed
from tests.moto_setup import create_activity_table, create_table, fake_aws_env, key_schema

pytestmark = pytest.mark.integration

REGION = "us-east-1"
T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
LIFE = timedelta(days=KizunaConfig().loyalty.points_expiry_days)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    """The customers table with the points sweep's sparse index, the activity table with
    gsi1 (string keys, as the stack defines them)."""
    fake_aws_env(monkeypatch, REGION)
    index, attribute = INDEXES[SweepKind.POINTS]
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(
            ddb,
            "customers",
            "customer_id",
            indexed=("gsi_shard", attribute),
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": key_schema("gsi_shard", attribute),
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        create_activity_table(ddb)
        yield DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )


def test_each_lot_is_indexed_by_ingest_and_warned_of_by_the_sweep(store: DynamoStore) -> None:
    cfg = KizunaConfig()
    # given three orders 10 days apart and 50 points added by hand, then nothing
    raws = [order("p1", f"o{n}", 1000, T0 + timedelta(days=10 * n)) for n in range(3)]
    raws.append(adjust("p1", "gift", 50, T0 + timedelta(days=25)))
    for raw in raws:
        ev = parsed(raw)
        ingest_one(store, ev, cfg, FixedClock(ev.detail.occurred_at))
    # then each row that earned a lot is in gsi1 under the customer's shard, by earn time
    rows = store.activity("p1", "ORDER#") + store.activity("p1", "POINTS#")
    assert sorted((r["gsi1pk"], r["gsi1sk"]) for r in rows) == [
        (f"LOTS#{shard_of('p1', LOT_SHARDS)}", f"{iso(T0 + timedelta(days=n))}#p1")
        for n in (0, 10, 20, 25)
    ]
    assert store.lots_earned(iso(T0), iso(T0 + timedelta(days=20))) == ["p1"]
    assert store.lots_earned(iso(T0 + timedelta(days=26)), iso(T0 + timedelta(days=90))) == []
    customer = store.get_customer("p1")
    assert customer is not None and customer.points_next_expiry_at == T0 + LIFE
    # when the daily sweep runs every day from 40 days before the first expiry to the last
    publisher = MemoryPublisher()
    request = SweepRequest(kinds=[SweepKind.POINTS], lookback_minutes=1440)
    for day in range(325, 391):
        at = T0 + timedelta(days=day, hours=-9)  # 01:00
        run_sweep(request, store, store, publisher, cfg, FixedClock(at))
    # then each lot was warned of once (the earliest through by_points_expiry as well)
    warned = [e.detail.model_dump() for e in publisher.events]
    assert [(d["expires_at"], d["points"]) for d in warned] == [
        (T0 + LIFE, 10),
        (T0 + timedelta(days=10) + LIFE, 10),
        (T0 + timedelta(days=20) + LIFE, 10),
        (T0 + timedelta(days=25) + LIFE, 50),
    ]
    assert len({e.detail.event_id for e in publisher.events}) == 4
    # and erasure deletes the rows: out of the index
    erase("p1", store, store, T0 + timedelta(days=400))
    assert store.lots_earned(iso(T0), iso(T0 + timedelta(days=30))) == []


def test_the_lot_query_reads_every_page(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given lots of 40 customers (some shard of the 16 holds 3 or more), read in pages of 2
    cfg = KizunaConfig()
    for n in range(40):
        raw = order(f"c{n}", f"o{n}", 1000, T0 + timedelta(minutes=n))
        ingest_one(store, parsed(raw), cfg, FixedClock(T0))
    table = store._activity
    real, calls = table.query, []

    def paged(**kwargs: object) -> object:
        calls.append(kwargs)
        return real(Limit=2, **kwargs)

    monkeypatch.setattr(table, "query", paged)
    # then every customer is found, each once
    found = store.lots_earned(iso(T0), iso(T0 + timedelta(hours=1)))
    assert sorted(found) == sorted(f"c{n}" for n in range(40))
    assert any("ExclusiveStartKey" in c for c in calls)
