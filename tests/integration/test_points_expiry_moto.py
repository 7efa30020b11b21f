"""Points expiry warnings on DynamoDB (moto): ingest indexes each points lot on the row of the
order (or adjustment) that earned it, in the activity table's gsi1 under ``LOTS#<shard>``;
the daily sweep finds there every lot that expires in its window -- not only the customer's
earliest, which is all ``by_points_expiry`` holds -- and warns of each once; erasure takes
the rows out of the index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from kizuna.adapters.dynamodb import DynamoStore, LotIndexTable
from kizuna.domain.privacy import erase
from kizuna.domain.shards import LOT_SHARDS, shard_of
from kizuna.domain.timestamps import iso
from kizuna.ports import ScanPage
from kizuna.programs.sweeps import INDEXES, SweepKind
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.cli import app
from kizuna_tools.fakes import MemoryPublisher
from kizuna_tools.lots_backfill import backfill_lots
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


# --- kizuna points backfill-lots: rows ingested before the lot index -------------------------
def ingested_before_the_lot_index(store: DynamoStore) -> list[datetime]:
    """Three orders 10 days apart and 50 points added by hand, ingested; their rows then put
    again without the lot keys, as the previous version wrote them. The earn times."""
    cfg = KizunaConfig()
    earned = [T0 + timedelta(days=d) for d in (0, 10, 20, 25)]
    raws = [order("p1", f"o{n}", 1000, earned[n]) for n in range(3)]
    raws.append(adjust("p1", "gift", 50, earned[3]))
    for raw in raws:
        ev = parsed(raw)
        ingest_one(store, ev, cfg, FixedClock(ev.detail.occurred_at))
    for row in store.activity("p1", "ORDER#") + store.activity("p1", "POINTS#"):
        old = {k: v for k, v in row.items() if k not in {"gsi1pk", "gsi1sk"}}
        store._activity.put_item(Item=old)
    return earned


def test_the_backfill_indexes_older_lots_and_the_sweep_then_warns_of_each(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = KizunaConfig()
    earned = ingested_before_the_lot_index(store)
    assert store.lots_earned(iso(T0), iso(T0 + timedelta(days=30))) == []  # found by no lot
    # when the backfill runs, its scan read in pages of 2 items
    lots = LotIndexTable(boto3.resource("dynamodb", region_name=REGION), "activity")
    real, calls = lots._activity.scan, []

    def paged(**kwargs: object) -> object:
        calls.append(kwargs)
        return real(Limit=2, **kwargs)

    monkeypatch.setattr(lots._activity, "scan", paged)
    report = backfill_lots(lots)
    # then the four rows have the keys ingest writes, and nothing else was touched
    assert len(calls) >= 2 and all("ProjectionExpression" in c for c in calls)
    assert (report.lot_rows, report.updated, report.already_indexed, report.skipped) == (
        4,
        4,
        0,
        0,
    )
    rows = store.activity("p1", "ORDER#") + store.activity("p1", "POINTS#")
    assert sorted((r["gsi1pk"], r["gsi1sk"]) for r in rows) == [
        (f"LOTS#{shard_of('p1', LOT_SHARDS)}", f"{iso(at)}#p1") for at in earned
    ]
    assert all("lines" in r for r in rows if r["kind"] == "ORDER")  # updated, not replaced
    # and the daily sweep warns of each lot once, not only the customer's earliest
    publisher = MemoryPublisher()
    request = SweepRequest(kinds=[SweepKind.POINTS], lookback_minutes=1440)
    for day in range(325, 391):
        run_sweep(
            request, store, store, publisher, cfg, FixedClock(T0 + timedelta(days=day, hours=-9))
        )
    warned = [e.detail.model_dump() for e in publisher.events]
    assert [(d["expires_at"], d["points"]) for d in warned] == [
        (earned[0] + LIFE, 10),
        (earned[1] + LIFE, 10),
        (earned[2] + LIFE, 10),
        (earned[3] + LIFE, 50),
    ]
    # and a second run (two segments) updates nothing
    again = [backfill_lots(lots, segment=s, total_segments=2) for s in range(2)]
    assert sum(r.updated for r in again) == 0
    assert sum(r.already_indexed for r in again) == 4


def test_a_row_erased_between_the_scan_and_the_write_is_not_recreated(
    store: DynamoStore,
) -> None:
    ingested_before_the_lot_index(store)
    lots = LotIndexTable(boto3.resource("dynamodb", region_name=REGION), "activity")
    real = lots.scan_lot_rows

    def scan_then_erase(segment: int = 0, total_segments: int = 1) -> Iterator[ScanPage]:
        for page in real(segment, total_segments):
            erase("p1", store, store, T0 + timedelta(days=30))  # after the read, before writes
            yield page

    lots.scan_lot_rows = scan_then_erase  # type: ignore[method-assign]
    report = backfill_lots(lots)
    assert (report.lot_rows, report.updated, report.skipped) == (4, 0, 4)
    assert store.activity("p1") == []


def test_the_command_prints_counts_and_no_customer_id(store: DynamoStore) -> None:
    ingested_before_the_lot_index(store)
    args = ["points", "backfill-lots", "--activity-table", "activity", "--region", REGION]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "p1" not in first.output
    assert re.findall(r"\d+", first.stdout.splitlines()[-2]) == ["4", "4", "4", "0", "0", "0"]
    second = CliRunner().invoke(app, args)
    assert re.findall(r"\d+", second.stdout.splitlines()[-2]) == ["4", "4", "0", "4", "0", "0"]


def test_the_command_leaves_rows_before_since_alone(store: DynamoStore) -> None:
    ingested_before_the_lot_index(store)  # earned 2026-01-05, -15, -25 and -30
    args = ["points", "backfill-lots", "--activity-table", "activity", "--region", REGION]
    done = CliRunner().invoke(app, [*args, "--since", "2026-01-20"])
    assert done.exit_code == 0, done.output
    # scanned, lot rows, updated, already had keys, skipped, before --since
    assert re.findall(r"\d+", done.stdout.splitlines()[-2]) == ["4", "4", "2", "0", "0", "2"]
    indexed = [r for r in store.activity("p1") if "gsi1pk" in r and r["sk"].startswith("ORDER#")]
    assert [r["sk"][6:16] for r in indexed] == ["2026-01-25"]
    for bad in ("2026-1-20", "20260120", "2026-01-20T00:00", "2026-02-30"):
        refused = CliRunner().invoke(app, [*args, "--since", bad])
        assert refused.exit_code == 2, (bad, refused.output)
        assert "YYYY-MM-DD" in refused.output
