"""The day's cells in the snapshots table on DynamoDB (moto): a second scoring run of the
same UTC date (an operator's ``kizuna scoring run`` during the day, then the 02:00 JST =
17:00 UTC schedule) replaces the first run's cells, so a customer who changed cell in
between is counted once; a retried finish leaves the same day."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DynamoStore, ProductStore, SnapshotStore
from kizuna.adapters.s3 import S3Objects
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.job import (
    BoundariesRequest,
    FinishRequest,
    FinishResult,
    ScoreRequest,
    compute_boundaries,
    finish_run,
    score_segment,
)
from kizuna_tools.fakes import MemoryPublisher
from tests.factories import T0, days, order, parsed
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
CFG = KizunaConfig()
SEGMENTS = 2
PEOPLE = {
    "champ": [order("champ", f"c{i}", 30000, T0 - days(5 * i)) for i in range(6)],
    "lost": [order("lost", "l1", 1000, T0 - days(330))],
    "new": [order("new", "n1", 2000, T0 - days(1))],
    "gold": [order("gold", "g1", 250000, T0 - days(300))],
}


@dataclass
class Aws:
    store: DynamoStore
    objects: S3Objects
    catalog: ProductStore
    snapshots: SnapshotStore


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "customers", "customer_id")
        create_table(ddb, "activity", "pk", "sk")
        create_table(ddb, "products", "product_id")
        create_table(ddb, "snapshots", "date", "cell")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="analytics", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        res = boto3.resource("dynamodb", region_name=REGION)
        store = DynamoStore(res, "customers", "activity", sleep=lambda _: None)
        for cid, raws in PEOPLE.items():
            c = Customer(customer_id=cid)
            for raw in raws:
                c = apply_events(c, [parsed(raw)], CFG, T0).customer
            store.save_customer(c, 0)
        yield Aws(
            store,
            S3Objects(s3, "analytics"),
            ProductStore(res, "products"),
            SnapshotStore(res, "snapshots"),
        )


def full_run(aws: Aws, now: datetime) -> FinishResult:
    first = compute_boundaries(
        BoundariesRequest(total_segments=SEGMENTS), aws.store, CFG, FixedClock(now)
    )
    for s in first.segments:
        shard = ScoreRequest(
            segment=s, total_segments=SEGMENTS, boundaries=first.boundaries, as_of=first.as_of
        )
        score_segment(shard, aws.store, MemoryPublisher(), CFG, aws.objects)
    finish = FinishRequest(total_segments=SEGMENTS, as_of=first.as_of)
    return finish_run(finish, aws.objects, aws.catalog, aws.snapshots)


def customers_on(aws: Aws, day: str) -> int:
    return sum(int(c["customers"]) for c in aws.snapshots.cells(day).values())


def counts(aws: Aws, day: str) -> dict[str, int]:
    return {k: int(v["customers"]) for k, v in aws.snapshots.cells(day).items()}


def test_a_second_run_of_the_same_date_replaces_the_first_runs_cells(aws: Aws) -> None:
    # Given a run at 10:00 JST (01:00 UTC)
    morning = T0.replace(hour=1)
    first = full_run(aws, morning)
    assert customers_on(aws, first.date) == 4
    before = set(aws.snapshots.cells(first.date))
    # and "lost" ordering again during the day: another segment, another cell
    lost = aws.store.get_customer("lost")
    assert lost is not None
    at = morning + timedelta(hours=2)
    moved = apply_events(lost, [parsed(order("lost", "l2", 90000, at))], CFG, at).customer
    aws.store.save_customer(moved, lost.version)
    # When the schedule runs at 02:00 JST, 17:00 UTC of the same date
    second = full_run(aws, T0.replace(hour=17))
    # Then the day holds the second run's cells only: everyone counted once
    assert second.date == first.date
    after = aws.snapshots.cells(second.date)
    assert customers_on(aws, second.date) == second.customers == 4
    assert len(after) == second.cells
    assert before - set(after), "lost's morning cell is gone"


def test_a_retried_finish_leaves_the_same_day(aws: Aws) -> None:
    result = full_run(aws, T0)
    stored = aws.snapshots.cells(result.date)
    again = finish_run(
        FinishRequest(total_segments=SEGMENTS, as_of=T0), aws.objects, aws.catalog, aws.snapshots
    )
    assert again.cells == result.cells
    assert aws.snapshots.cells(result.date) == stored


def test_putting_a_day_deletes_its_other_cells_past_one_batch_and_no_other_day(
    aws: Aws,
) -> None:
    # a day of 60 cells (more than one BatchWriteItem of 25), and the day before
    many = {f"cell-{i:02d}": {"customers": 1} for i in range(60)}
    aws.snapshots.put_cells("2026-01-05", many)
    aws.snapshots.put_cells("2026-01-04", {"cell-00": {"customers": 7}})
    # replaced by three cells, one of which it held
    kept = {"cell-00": {"customers": 2}, "x": {"customers": 3}, "y": {"customers": 4}}
    assert aws.snapshots.put_cells("2026-01-05", kept) == 3
    assert counts(aws, "2026-01-05") == {"cell-00": 2, "x": 3, "y": 4}
    assert counts(aws, "2026-01-04") == {"cell-00": 7}
    # an empty day (nobody scored) leaves no cell behind either
    aws.snapshots.put_cells("2026-01-05", {})
    assert aws.snapshots.cells("2026-01-05") == {}
    assert aws.snapshots.dates() == ["2026-01-04"]
