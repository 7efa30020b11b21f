"""LINE end to end on the local runtime: the rank-up Flex card, and the webhook (signature,
unfollow as an opt-out that stops LINE sends, redelivery) through the real function URL,
the bus and ingest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from kizuna_tools.demo import LINE_CHANNEL_SECRET
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import order, put, settle, signup, treated

pytestmark = pytest.mark.integration


def customers(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    return {str(i["customer_id"]): i for i in cloud.scan(table)}


def line_customer(cloud: LocalCloud, cid: str, user: str) -> None:
    signup(cloud, cid, locale="en", channels=("line",))
    cloud.advance(minutes=1)
    put(cloud, "line.linked", {"customer_id": cid, "line_user_id": user})


def webhook_url(cloud: LocalCloud) -> str:
    hosts = [
        host
        for host, spec in cloud._provisioned.function_urls.items()
        if "LineWebhook" in spec.logical_id
    ]
    assert len(hosts) == 1, "the local stack deploys the LINE webhook"
    return f"https://{hosts[0]}/"


def post(cloud: LocalCloud, events: list[dict[str, Any]], *, sign: bool = True) -> int:
    body = json.dumps({"destination": "U" + "f" * 32, "events": events}).encode()
    digest = hmac.new(
        (LINE_CHANNEL_SECRET if sign else "not-the-secret").encode(), body, hashlib.sha256
    ).digest()
    request = urllib.request.Request(
        webhook_url(cloud),
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Line-Signature": base64.b64encode(digest).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    cloud.drain()
    return status


def unfollow(
    cloud: LocalCloud, user: str, event_id: str, redelivery: bool = False
) -> dict[str, Any]:
    return {
        "type": "unfollow",
        "mode": "active",
        "timestamp": int(cloud.clock.now().timestamp() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": redelivery},
    }


def test_rank_up_sends_the_flex_card_on_line(cloud: LocalCloud) -> None:
    cid, user = treated("rank-up-congratulations", "lf"), "U" + "1" * 32
    line_customer(cloud, cid, user)
    order(cloud, cid, "o-lf1", 12000)  # Silver
    settle(cloud)
    sent = [m for m in cloud.outbox("line") if m.get("to") == user]
    assert sent, "the rank-up congratulation goes out on LINE"
    (card,) = sent[-1]["messages"]
    assert card["type"] == "flex" and card["contents"]["type"] == "bubble"
    assert "Silver" in card["altText"]
    assert "Free shipping over 3,000 yen" in json.dumps(card, ensure_ascii=False)


def test_webhook_signature_unfollow_and_redelivery(cloud: LocalCloud) -> None:
    cid, user = treated("rank-up-congratulations", "lu"), "U" + "2" * 32
    line_customer(cloud, cid, user)
    assert customers(cloud)[cid]["consent"]["line"]["status"] == "opted_in"
    before = customers(cloud)[cid]["version"]
    # a forged request (wrong secret) is refused and changes nothing
    assert post(cloud, [unfollow(cloud, user, "01FORGED")], sign=False) == 401
    assert customers(cloud)[cid]["version"] == before
    # an unknown LINE user changes nobody
    assert post(cloud, [unfollow(cloud, "U" + "9" * 32, "01OTHER")]) == 200
    assert customers(cloud)[cid]["version"] == before
    # the customer blocks the account: opted out of LINE
    assert post(cloud, [unfollow(cloud, user, "01UNFOLLOW")]) == 200
    after = customers(cloud)[cid]
    assert after["consent"]["line"]["status"] == "opted_out"
    # LINE redelivers the same event: nothing changes again
    cloud.advance(minutes=5)
    assert post(cloud, [unfollow(cloud, user, "01UNFOLLOW", redelivery=True)]) == 200
    assert customers(cloud)[cid]["version"] == after["version"]
    # and the rank-up sends nothing on LINE any more
    order(cloud, cid, "o-lu1", 12000)
    settle(cloud)
    assert [m for m in cloud.outbox("line") if m.get("to") == user] == []
