"""The journeys' Send task on DynamoDB (moto): caps read from the CONTACT item campaigns write,
the send noted there in the claim's own transaction, a duplicate answered from the ledger,
and the AWS calls a message costs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.timestamps import iso
from kizuna.ports import Claim, Claimed
from kizuna.runtime.clock import FixedClock
from kizuna.services.send import SendService
from kizuna_tools.metering import ApiCallCounter
from tests.factories import Email, customer, journey_send, send_service
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
CAMPAIGN = "campaign:sale:20260105T0000Z"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        s = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        s.save_customer(
            customer(first_name="Hanako", last_name="Yamada", email="hanako@example.jp"), 0
        )
        yield s


def service(store: DynamoStore, email: Email) -> SendService:
    return send_service(store, {"email": email}, FixedClock(NOON))


def campaign_sent(store: DynamoStore, at: datetime) -> None:
    """A campaign batch's claim of a send to c1 (its first: no CONTACT item yet)."""
    data: dict[str, Any] = {"program": "sale", "status": "sending", "at": iso(at)}
    claim = Claim("c1", data, sent_at=iso(at), contact_exists=False)
    assert store.claim_messages(CAMPAIGN, "send", [claim]) == Claimed()


def test_journey_and_campaign_sends_share_the_contact_item(store: DynamoStore) -> None:
    # given: c1 got a campaign this morning
    campaign_sent(store, NOON - timedelta(hours=2))
    email = Email()
    send = service(store, email)
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    # when: a journey step sends
    assert send.send(journey_send("c1", "ex-1")).status == "sent"
    # then: one read of the customer, CONTACT and the journey (the program exits on its
    # goal), one claim of the ledger entry and CONTACT together, the entry marked
    # dispatched before the provider call (kizuna.delivery.ledger), one record
    assert dict(calls.calls) == {
        ("dynamodb", "BatchGetItem"): 1,
        ("dynamodb", "TransactWriteItems"): 1,
        ("dynamodb", "UpdateItem"): 1,
        ("dynamodb", "BatchWriteItem"): 1,
    }
    _, contacts = store.read_recipients(["c1"])
    assert contacts["c1"].sent == {
        CAMPAIGN: iso(NOON - timedelta(hours=2)),
        "ex-1#coupon": iso(NOON),
    }
    # when: the step is delivered again, then another journey's step runs
    calls.reset()
    again = send.send(journey_send("c1", "ex-1"))
    # then: the duplicate answers what was decided (one GetItem more, nothing sent)
    assert again.status == "sent" and len(email.sent) == 1
    assert calls.calls[("dynamodb", "GetItem")] == 1
    # and the day's two sends (a campaign, a journey) cap the next one
    capped = send.send(journey_send("c1", "ex-2"))
    assert (capped.status, capped.reason) == ("suppressed", "frequency_cap_day")
    assert len(store.read_recipients(["c1"])[1]["c1"].sent) == 2


def test_a_contact_item_created_since_the_read_is_a_conflict(store: DynamoStore) -> None:
    # given: the journey read no CONTACT item, and a campaign created one since
    campaign_sent(store, NOON - timedelta(hours=1))
    data = {"program": "p", "status": "sending", "at": iso(NOON)}
    late = Claim("c1", data, sent_at=iso(NOON), contact_exists=False, contact_key="ex-9#s")
    # when: the journey's claim runs on what it read
    claimed = store.claim_messages("ex-9", "s", [late])
    # then: it was decided on a history that is no longer the customer's: not written (its
    # caller decides again on a fresh read), the campaign's send kept
    assert claimed == Claimed(conflicts={("c1", "ex-9")})
    assert store.ledger_entries(["c1"], "ex-9", "s") == {}
    assert sorted(store.read_recipients(["c1"])[1]["c1"].sent) == [CAMPAIGN]
