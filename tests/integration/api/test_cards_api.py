"""The cards routes on moto: the shop's backend mints a card token (IAM), the site lists and
marks its customer's cards with it; nobody reads or marks another customer's cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from kizuna.adapters.dynamodb import DynamoStore, ledger_item
from kizuna.delivery.cards import CardChannel, CardTokens
from kizuna.delivery.channels import OutboundMessage
from kizuna.delivery.content import CardContent
from kizuna.domain.timestamps import iso
from tests.integration.api.harness import CARD_KEY, REGION, Api

pytestmark = pytest.mark.integration


def send_card(cid: str, execution: str, hours: int = 24, at: datetime | None = None) -> str:
    """A card sent as the send function sends it: the ledger entry, then the card row."""
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    store = DynamoStore(dynamodb, "customers", "activity")
    now = at or datetime.now(UTC)
    dynamodb.Table("activity").put_item(
        Item=ledger_item(
            cid,
            execution,
            "s1",
            {"program": "p", "step": "s1", "status": "sent", "channel": "card", "at": iso(now)},
        )
    )
    message = OutboundMessage(
        customer_id=cid,
        program="p",
        step="s1",
        execution=execution,
        channel="card",
        address=cid,
        content=CardContent(
            title="Spring sale",
            body="20% off",
            link_url="https://shop.example.jp/sale",
            expires_after_hours=hours,
        ),
    )
    return CardChannel(store, lambda: now).send(message).provider_message_id


def ledger_entry(cid: str, execution: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb", region_name=REGION).Table("activity")
    item: dict[str, Any] = table.get_item(Key={"pk": cid, "sk": f"MSG#{execution}#s1"})["Item"]
    return item


def token_for(api: Api, cid: str) -> str:
    answer = api.call("POST", "/machine/cards/tokens", as_="machine", body={"customer_id": cid})
    assert answer.status == 201, answer.body
    token: str = answer.json()["token"]
    return token


def test_the_shop_backend_mints_a_token_its_customer_lists_cards_with(api: Api) -> None:
    # given: a card for alice and one for bob
    alice_card = send_card("alice", "ex-a")
    bob_card = send_card("bob", "ex-b")
    alice = token_for(api, "alice")
    # when alice's site lists her cards
    answer = api.call("GET", "/cards", token=alice)
    # then: hers only, with what the site shows
    assert answer.status == 200, answer.body
    [card] = answer.json()["cards"]
    assert card["id"] == alice_card != bob_card
    assert card["title"] == "Spring sale"
    assert card["link_url"] == "https://shop.example.jp/sale"
    assert card["seen_at"] is None


def test_another_customer_s_card_cannot_be_marked(api: Api) -> None:
    bob_card = send_card("bob", "ex-b")
    alice = token_for(api, "alice")
    for mark in ("seen", "clicked"):
        assert api.call("POST", f"/cards/{bob_card}/{mark}", token=alice).status == 404
    assert "open_at" not in ledger_entry("bob", "ex-b")
    assert "click_at" not in ledger_entry("bob", "ex-b")


def test_seen_and_clicked_stamp_the_ledger_entry_once(api: Api) -> None:
    card = send_card("alice", "ex-a")
    alice = token_for(api, "alice")
    first = api.call("POST", f"/cards/{card}/seen", token=alice)
    assert first.status == 200 and first.json() == {"first": True}
    opened = ledger_entry("alice", "ex-a")["open_at"]
    again = api.call("POST", f"/cards/{card}/seen", token=alice)
    assert again.status == 200 and again.json() == {"first": False}
    assert ledger_entry("alice", "ex-a")["open_at"] == opened
    assert api.call("POST", f"/cards/{card}/clicked", token=alice).json() == {"first": True}
    entry = ledger_entry("alice", "ex-a")
    assert entry["click_at"] >= opened
    [listed] = api.call("GET", "/cards", token=alice).json()["cards"]
    assert listed["seen_at"] == opened and listed["clicked_at"] == entry["click_at"]


def test_an_expired_card_is_not_listed_before_ttl_removes_it(api: Api) -> None:
    send_card("alice", "ex-old", hours=1, at=datetime.now(UTC) - timedelta(hours=2))
    fresh = send_card("alice", "ex-new")
    alice = token_for(api, "alice")
    assert [c["id"] for c in api.call("GET", "/cards", token=alice).json()["cards"]] == [fresh]


@pytest.mark.parametrize("kind", ["forged", "expired", "none", "cognito", "malformed"])
def test_a_bad_card_token_is_refused_with_401(api: Api, kind: str) -> None:
    card = send_card("alice", "ex-a")
    past = datetime.now(UTC) - timedelta(hours=2)
    tokens = {
        "forged": CardTokens([b"not-the-key" * 3], lambda: datetime.now(UTC)).mint("alice")[0],
        "expired": CardTokens([CARD_KEY], lambda: past).mint("alice")[0],
        "cognito": api.pool.token("ada"),
        "malformed": "%2e%2e",
    }
    token = tokens.get(kind)
    assert api.call("GET", "/cards", token=token).status == 401
    assert api.call("POST", f"/cards/{card}/seen", token=token).status == 401
    assert "open_at" not in ledger_entry("alice", "ex-a")


def test_a_malformed_card_id_is_not_found(api: Api) -> None:
    alice = token_for(api, "alice")
    for bad in ("x1", "A" * 32, "0" * 31, "0" * 33):
        assert api.call("POST", f"/cards/{bad}/seen", token=alice).status == 404


def test_only_a_machine_or_an_admin_mints_tokens(api: Api) -> None:
    body = {"customer_id": "alice"}
    assert api.call("POST", "/machine/cards/tokens", body=body).status == 401
    invalid = api.call("POST", "/machine/cards/tokens", as_="machine", body={"customer_id": "a#b"})
    assert invalid.status == 422
    too_long = {"customer_id": "alice", "ttl_seconds": 2 * 24 * 3600}
    assert api.call("POST", "/machine/cards/tokens", as_="machine", body=too_long).status == 422


@pytest.mark.parametrize("ttl", ["3600", "3_600", " 3600", "３６００", 3600.0, True])
def test_a_tokens_ttl_is_a_whole_json_number(api: Api, ttl: object) -> None:
    # Given a ttl_seconds written as text, with a fraction, or as true (each read as a number)
    body = {"customer_id": "alice", "ttl_seconds": ttl}
    # When a token is asked for
    answer = api.call("POST", "/machine/cards/tokens", as_="machine", body=body)
    # Then it is refused, naming the field
    assert answer.status == 422, answer.body
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "ttl_seconds"]]
