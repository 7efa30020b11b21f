"""The API on moto with what the programs and reports routes read: the activity table's
program/time index (``gsi1``, as the stack defines it), the analytics bucket, and the
repository's programs as the deployed bundle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.s3 import S3Objects
from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.snapshot import SnapshotRow, cells
from kizuna_tools.reports.build import Ledger
from kizuna_tools.reports.sources import ReportData
from tests.integration.api.harness import REGION, Api, build_api
from tests.moto_setup import fake_aws_env

BUCKET = "kizuna-analytics"


def add_program_index(ddb: Any) -> None:
    """The activity table's ``gsi1`` (infra/kizuna_infra/data.py: keys gsi1pk/gsi1sk, ALL)."""
    ddb.update_table(
        TableName="activity",
        AttributeDefinitions=[
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    )


@pytest.fixture
def shop_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_kizuna_tables(ddb)
        add_program_index(ddb)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield build_api(programs_dir=REPO_ROOT / "programs", reports=S3Objects(s3, BUCKET))


class MemoryExport:
    """The snapshot export (``snapshots/date=…/``) held in memory, for the report builder."""

    def __init__(self, rows: list[SnapshotRow]) -> None:
        self.objects: dict[str, bytes] = {}
        for day in sorted({r.date for r in rows}):
            lines = [r.model_dump_json() for r in rows if r.date == day]
            self.objects[f"snapshots/date={day.isoformat()}/part-0000.jsonl"] = "\n".join(
                lines
            ).encode()

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)


D1, D2 = date(2026, 10, 1), date(2026, 11, 1)


def shop_report_data() -> ReportData:
    """A small shop: 4 treated and 4 held-out customers of ``second-purchase-coupon``, two
    snapshots a month apart (treated customers move up more), 2 treated conversions and 1
    held-out one."""
    at = datetime(2026, 10, 2, 9, tzinfo=UTC).isoformat()
    items: list[dict[str, Any]] = []
    program = "second-purchase-coupon"
    for cid in ("t1", "t2", "t3", "t4"):
        items.append(
            {"pk": cid, "kind": "ENTRY", "program": program, "decision": "entered", "at": at}
        )
    for cid in ("h1", "h2", "h3", "h4"):
        items.append(
            {"pk": cid, "kind": "ENTRY", "program": program, "decision": "holdout", "at": at}
        )
    later = datetime(2026, 10, 9, tzinfo=UTC).isoformat()
    for cid, reason in (("t1", None), ("t2", None), ("h1", "holdout")):
        items.append({"pk": cid, "kind": "CONV", "program": program, "reason": reason, "at": later})
    before = {
        "t1": "New",
        "t2": "New",
        "t3": "New",
        "t4": "Loyal",
        "h1": "New",
        "h2": "New",
        "h3": "Loyal",
        "h4": "New",
    }
    after = {
        "t1": "Loyal",
        "t2": "Champions",
        "t3": "New",
        "t4": "Loyal",
        "h1": "Loyal",
        "h2": "New",
        "h3": "New",
        "h4": "New",
    }
    rows: list[SnapshotRow] = []
    for day, states in ((D1, before), (D2, after)):
        for cid, segment in states.items():
            orders = 2 if segment != "New" else 1
            rows.append(
                SnapshotRow(
                    date=day,
                    customer_id=cid,
                    rfm_segment=segment,
                    rank="Silver" if orders > 1 else "Bronze",
                    lifecycle="active",
                    order_count=orders,
                    spend_12m=1000.0 * orders,
                )
            )
    by_day = {
        day: {k: v.model_dump() for k, v in cells(r for r in rows if r.date == day).items()}
        for day in (D1, D2)
    }
    return ReportData(Ledger.from_items(items), by_day, MemoryExport(rows), {program: 30})


def shop_document(generated_at: datetime) -> Any:
    from kizuna_tools.reports.document import build_reports, report_document

    cfg = KizunaConfig()
    doc = report_document(build_reports(shop_report_data(), cfg), cfg, "Shop report")
    return doc.model_copy(update={"generated_at": generated_at})
