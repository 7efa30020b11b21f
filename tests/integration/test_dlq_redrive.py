"""A poisoned event lands in the ingest DLQ with its reason, the cause is fixed, and
`kizuna dlq redrive` replays it: processed once, no duplicate effect."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna.adapters.dynamodb import DynamoStore
from kizuna_tools.cli import app
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.functions import current_function
from kizuna_tools.local.template import REGION

pytestmark = pytest.mark.integration


def order_event(cloud: LocalCloud, cid: str, oid: str) -> dict[str, Any]:
    detail = {
        "customer_id": cid,
        "occurred_at": cloud.clock.now().isoformat(),
        "order_id": oid,
        "total": "3000",
        "currency": "JPY",
        "channel": "web",
        "lines": [{"product_id": "tea-009", "quantity": 1, "unit_price": "3000"}],
    }
    return {"Source": "com.example.shop", "DetailType": "order.placed", "Detail": detail}


def kizuna(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--region", REGION])
    assert result.exit_code == 0, result.output
    return result


def test_poisoned_event_is_redriven_after_the_fix_and_counted_once(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = cloud.find("AWS::SQS::Queue", "IngestDeadLetterQueue")[0]
    dlq_url = cloud.client("sqs").get_queue_url(QueueName=dlq.name)["QueueUrl"]
    # given the activity table rejects writes (the customer item is saved, activity is not)
    real_put_activity = DynamoStore.put_activity

    def broken(self: DynamoStore, items: Any) -> None:
        if "Ingest" in (current_function() or ""):
            raise RuntimeError("activity table unavailable")
        real_put_activity(self, items)

    monkeypatch.setattr(DynamoStore, "put_activity", broken)
    cloud.put_events([order_event(cloud, "poisoned-1", "o-1")])
    # when SQS has delivered it max-receive-count times
    for _ in range(12):
        cloud.drain()
        if cloud.dlq_messages()[dlq.logical_id]:
            break
        cloud.advance(minutes=30)
    # then it is in the DLQ, with its reason
    listed = kizuna("dlq", "list", dlq_url)
    assert "RuntimeError" in listed.stdout
    shown = kizuna("dlq", "show", dlq_url)
    assert "activity table unavailable" in shown.stdout and '"order_id":"o-1"' in (
        shown.stdout.replace(" ", "").replace("\n", "")
    )

    # when the cause is fixed and the DLQ redriven
    monkeypatch.setattr(DynamoStore, "put_activity", real_put_activity)
    redriven = kizuna("dlq", "redrive", dlq_url)
    assert "moved 1 message" in redriven.stdout
    cloud.drain()
    cloud.advance(hours=1)

    # then it was processed once: one order counted, one activity item, one entry
    assert cloud.dlq_messages()[dlq.logical_id] == []
    customers = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    (customer,) = [c for c in cloud.scan(customers) if c["customer_id"] == "poisoned-1"]
    assert customer["order_count"] == 1 and customer["lifetime_value"] == 3000
    items = [i for i in cloud.scan(activity) if i["pk"] == "poisoned-1"]
    assert len([i for i in items if i["sk"].startswith("ORDER#")]) == 1
    # the first purchase reached the programs once: one entry decision
    entries = [i for i in items if i["sk"].startswith("ENTRY#")]
    assert [e["program"] for e in entries] == ["second-purchase-coupon"]
    assert all(not m for m in cloud.dlq_messages().values())
    # and replaying it once more changes nothing
    cloud.put_events([json.loads(json.dumps(order_event(cloud, "poisoned-1", "o-1")))])
    cloud.drain()
    (again,) = [c for c in cloud.scan(customers) if c["customer_id"] == "poisoned-1"]
    assert again["order_count"] == 1
