"""A customer's access export holds the audit rows whose target they are (a transactional
send through the API: who sent what to them, when), found through the activity table's
index, never another customer's; they stay after an erasure (the audit log is kept) and the
export still shows them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.audit import AuditLog
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import erase, export
from tests.factories import customer
from tests.moto_setup import create_activity_table, create_table, fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Machine:
    id: str = "arn:aws:iam::123456789012:role/shop-backend"
    name: str = "shop-backend"
    kind: str = "machine"


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DynamoStore, AuditLog]]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name=REGION)
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "customers", "customer_id")
        create_activity_table(client)
        store = DynamoStore(resource, "customers", "activity", sleep=lambda _: None)
        yield store, AuditLog(resource, "activity")


def test_the_export_holds_the_customers_audit_rows_and_no_one_elses(
    tables: tuple[DynamoStore, AuditLog],
) -> None:
    store, audit = tables
    # given transactional sends to c1 (on two days) and to c10 (c1's id is its prefix),
    # and a campaign write (no customer)
    for cid in ("c1", "c10"):
        store.save_customer(customer(cid, first_name="Hanako"), 0)
    detail = {"template": "order_confirmation", "status": "sent"}
    audit.record(Machine(), "message.send", "customer:c1", NOW, detail)
    audit.record(Machine(), "message.send", "customer:c10", NOW, detail)
    audit.record(Machine(), "message.send", "customer:c1", NOW + timedelta(days=1), detail)
    audit.record(Machine(), "campaign.schedule", "campaign:sale", NOW)
    # when c1 asks for their data
    data = export("c1", store, store, audit)
    # then both rows naming them are in it, and nothing of c10's or the campaign's
    assert data is not None
    rows = data["audit"]
    assert [(r["action"], r["target"], r["at"]) for r in rows] == [
        ("message.send", "customer:c1", NOW.isoformat()),
        ("message.send", "customer:c1", (NOW + timedelta(days=1)).isoformat()),
    ]
    assert rows[0]["detail"]["template"] == "order_confirmation"
    assert rows[0]["actor_name"] == "shop-backend"
    # and the audit log's day view is as before
    assert len(audit.day(NOW.date().isoformat())) == 3
    # when c1 is erased, the audit rows stay (what was done, by whom) and the export says so
    erase("c1", store, store, NOW + timedelta(days=2))
    after = export("c1", store, store, audit)
    assert after is not None and after["customer"] is None and after["activity"] == []
    assert len(after["audit"]) == 2
    # and without the audit log the export is what it was
    assert export("c1", store, store) is None
