"""The send function's transactional action on the local runtime (the deployed handler and
its real wiring: SES on moto, the activity table, the templates it ships): what
``POST /machine/messages`` invokes synchronously."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from kizuna_tools.local.cloud import LocalCloud

pytestmark = pytest.mark.integration


def request(cid: str, key: str, **fields: Any) -> dict[str, Any]:
    body = {
        "action": "transactional",
        "execution": "tx:" + hashlib.sha256(key.encode()).hexdigest()[:32],
        "request_hash": hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest(),
        "caller": "iam:arn:aws:iam::123456789012:role/shop-backend",
        "customer_id": cid,
        "template": "order_confirmation",
        "channels": ["email"],
        "data": {"order_id": "A-1", "total": 5400, "currency": "JPY"},
    }
    return {**body, **fields}


def test_the_send_function_sends_a_transactional_message_once(cloud: LocalCloud) -> None:
    # given: a customer with an email address and no consent record at all
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "customer.upserted",
                "Detail": {
                    "customer_id": "tx1",
                    "occurred_at": cloud.clock.now().isoformat(),
                    "email": "tx1@example.jp",
                    "locale": "en",
                },
            }
        ]
    )
    cloud.drain()  # ingest folds it
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    # when: invoked twice with the same request (a retried API call)
    first = cloud.invoke(send.logical_id, request("tx1", "k1"))
    second = cloud.invoke(send.logical_id, request("tx1", "k1"))
    # then: one email, the same outcome; another body with the key is a conflict
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result["status"] == "sent", first.result["reason"]
    assert first.result["channel"] == "email"
    assert second.result == {**first.result, "replayed": True}
    emails = [e for e in cloud.outbox("email") if "tx1@example.jp" in json.dumps(e, default=str)]
    assert len(emails) == 1
    conflict = cloud.invoke(send.logical_id, request("tx1", "k1", channels=["sms"]))
    assert conflict.result["status"] == "conflict"
