"""The card channel on the local runtime (the deployed send function and its real wiring):
a card send is stored once, whatever the retries of its invocation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from kizuna.delivery.cards import card_id
from kizuna_tools.local.cloud import LocalCloud

pytestmark = pytest.mark.integration


def request(cid: str, key: str) -> dict[str, Any]:
    fields = {"template": "order_confirmation", "channels": ["card"]}
    return {
        "action": "transactional",
        "execution": "tx:" + hashlib.sha256(key.encode()).hexdigest()[:32],
        "request_hash": hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest(),
        "caller": "iam:arn:aws:iam::123456789012:role/shop-backend",
        "customer_id": cid,
        **fields,
        "data": {"order_id": "A-7", "total": 5400, "currency": "JPY"},
    }


def test_a_card_send_is_stored_once_under_a_retried_invocation(cloud: LocalCloud) -> None:
    # given: a customer with no address and no consent record at all (a card needs neither)
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "customer.upserted",
                "Detail": {
                    "customer_id": "card1",
                    "occurred_at": cloud.clock.now().isoformat(),
                    "locale": "en",
                },
            }
        ]
    )
    cloud.drain()
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    # when: the send function is invoked twice with the same request (a retry)
    first = cloud.invoke(send.logical_id, request("card1", "k1"))
    second = cloud.invoke(send.logical_id, request("card1", "k1"))
    # then: one card, stored for that customer, recorded by the ledger entry
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result["status"] == "sent", first.result
    assert first.result["channel"] == "card"
    assert second.result["replayed"] is True
    activity = boto3.resource("dynamodb", region_name="us-east-1").Table(
        cloud.outputs["ActivityTableName"]
    )
    rows = activity.query(KeyConditionExpression=Key("pk").eq("card1"))["Items"]
    cards = [r for r in rows if str(r["sk"]).startswith("CARD#")]
    assert len(cards) == 1, cards
    [card] = cards
    execution = request("card1", "k1")["execution"]
    entries = [r for r in rows if str(r["sk"]).startswith(f"MSG#{execution}#")]
    assert len(entries) == 1
    step = str(entries[0]["sk"]).rsplit("#", 1)[1]
    assert card["card_id"] == card_id(execution, step) == entries[0]["provider_message_id"]
    assert card["title"] == "Your order A-7 is confirmed"
    assert card["link_url"] == "https://shop.example.jp/orders"
    assert int(card["expires_at"]) > cloud.clock.now().timestamp() + 71 * 3600  # TTL
