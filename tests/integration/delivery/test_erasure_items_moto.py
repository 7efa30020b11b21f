"""Erasure and access on moto over the items the send paths write: a campaign batch
(retried after the reconciliation sweep settled its undispatched claims: the settled rows,
the sweep's stamps and the batch's counted marker in the campaigns table), a transactional
message (the key's binding), an order with its refund, and a dead push token's report.
An access request shows every one of them that names the customer; after the erasure no
item of any table holds the customer's id, address or token, and the token's report,
arriving late, does not bring the customer back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from kizuna.adapters.campaigns import CampaignStore
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import erase, export
from kizuna.events import inbound_type
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import apply_to_customers
from kizuna_tools.fakes import MemoryInbound
from tests.factories import envelope, order, parsed, refund
from tests.integration.delivery.test_campaign_tx_faults_moto import (
    LATER,
    CampaignWorld,
    Email,
    Push,
    push_customer,
    reconcile,
    server_error,
    tx_request,
    tx_service,
)
from tests.integration.delivery.test_cap_race_moto import NOON, REGION
from tests.integration.delivery.test_send_faults_moto import _create_tables
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        _create_tables(boto3.client("dynamodb", region_name=REGION))
        yield DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )


@pytest.fixture
def campaigns(store: DynamoStore) -> CampaignStore:
    create_table(store._dynamodb.meta.client, "campaigns", "campaign_id", "sk")
    return CampaignStore(store._dynamodb, "campaigns", sleep=lambda _: None)


GONE, KEPT = "erase-me-7", "keep-me-8"
DAY_BEFORE = NOON - timedelta(days=1)


def tables() -> dict[str, list[dict[str, Any]]]:
    """Every item of every table, as stored (DynamoDB's JSON)."""
    client = boto3.client("dynamodb", region_name=REGION)
    return {
        name: client.scan(TableName=name)["Items"] for name in client.list_tables()["TableNames"]
    }


def everything() -> str:
    """Every item of every table, as one JSON text to search."""
    return json.dumps(tables(), ensure_ascii=False)


def naming(value: str) -> set[tuple[str, str]]:
    """The keys (partition, sort) of the items of any table that hold ``value`` anywhere."""
    plain = TypeDeserializer()
    found = set()
    for items in tables().values():
        for item in items:
            if value in json.dumps(item, ensure_ascii=False):
                keys = {k: plain.deserialize(v) for k, v in item.items()}
                found.add((str(keys.get("pk", keys.get("customer_id"))), str(keys.get("sk", ""))))
    return found


def test_an_erasure_leaves_nothing_the_send_paths_wrote_and_an_export_shows_it(
    store: DynamoStore,
    campaigns: CampaignStore,
) -> None:
    # given: two customers with an email address and push devices (one of them dead)
    for cid in (GONE, KEPT):
        store.save_customer(push_customer(cid, f"token-{cid}", f"dead-{cid}"), 0)
    # an order and its refund each, folded as ingest and `kizuna import refunds` fold them
    for cid in (GONE, KEPT):
        events = [
            parsed(order(cid, f"o-{cid}", 3000, DAY_BEFORE)),
            parsed(refund(cid, f"o-{cid}", "r1", "1000", DAY_BEFORE, reason="damaged")),
        ]
        outcome = apply_to_customers(store, {cid: events}, KizunaConfig(), NOON)[cid]
        assert not isinstance(outcome, Exception) and not outcome.refused
    # a campaign batch whose dispatch failed on every attempt, the sweep settling its claims
    # never dispatched, then the batch redriven and retried (its counted marker kept)
    push, inbound = Push(dead=frozenset({f"dead-{GONE}", f"dead-{KEPT}"})), MemoryInbound()
    w = CampaignWorld(
        store, {"push": push}, inbound=inbound, campaigns=campaigns, channels=["push"]
    )
    chunk = w.start()
    dispatch = store.dispatch_messages

    def refused(*_: Any) -> Any:
        raise server_error("TransactWriteItems")

    store.dispatch_messages = refused  # type: ignore[method-assign, assignment]
    with pytest.raises(Exception, match="InternalServerError"):
        w.call(action="send_batch", chunk=chunk)
    store.dispatch_messages = dispatch  # type: ignore[method-assign]
    assert reconcile(store) == {"not_dispatched": 2}
    assert w.row(GONE)["reconciled_at"]  # the sweep's stamp, and its index's keys
    assert w.call(action="send_batch", chunk=chunk).get("sent") == 2
    w.call(action="send_batch", chunk=chunk)  # a duplicated delivery of the batch
    assert w.row(GONE)["status"] == "sent" and len(inbound.events) == 2
    # a transactional message to the customer (its key bound to the request)
    request = tx_request().model_copy(update={"customer_id": GONE})
    assert tx_service(store, Email()).send(request).status == "sent"

    # when: the customer asks for their data
    data = export(GONE, store, store)
    # then: it shows the profile, the campaign's and the transactional message's ledger
    # rows, the order and its refund
    assert data is not None and data["customer"]["email"] == f"{GONE}@example.jp"
    rows = {str(i["sk"]).split("#")[0] for i in data["activity"]}
    assert {"MSG", "ORDER", "REFUND"} <= rows
    messages = [i for i in data["activity"] if str(i["sk"]).startswith("MSG#")]
    assert {str(i["sk"]) for i in messages} == {
        f"MSG#{w.execution}#send",
        f"MSG#{request.execution}#order_confirmation",
    }
    # and every item of any table that names the customer is in it
    shown = {(GONE, "")} | {(str(i["pk"]), str(i["sk"])) for i in data["activity"]}
    assert naming(GONE) <= shown, naming(GONE) - shown

    # when: the customer is erased
    report = erase(GONE, store, store, LATER)
    assert report.customer_found
    # then: no item of any table holds their id, address or device tokens
    text = everything()
    for value in (GONE, f"{GONE}@example.jp", f"token-{GONE}", f"dead-{GONE}"):
        assert value not in text, value
    # the other customer's are all there, and the campaign's counters count both
    for value in (KEPT, f"{KEPT}@example.jp", f"token-{KEPT}"):
        assert value in text, value
    assert int((campaigns.get_occurrence("sale", w.occurrence) or {})["sent"]) == 2
    # and the dead token's report, arriving after the erasure, brings nobody back
    reports = [d for t, d in inbound.events if d.customer_id == GONE]
    assert [inbound_type(d) for d in reports] == ["device.unregistered"]
    late = parsed(envelope("device.unregistered", reports[0].model_dump(mode="json"), "ev-late"))
    outcome = apply_to_customers(store, {GONE: [late]}, KizunaConfig(), LATER)[GONE]
    assert not isinstance(outcome, Exception) and outcome.erased
    assert GONE not in everything()
    assert export(GONE, store, store) is None
