"""Write request units as AWS bills them: the pure rules, and the meter on moto (the ledger's
three writes of one message, priced with their indexes)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.write_units import (
    IndexSpec,
    TableSpec,
    Units,
    index_units,
    item_size,
    metered_write_units,
    value_size,
    write_units,
)
from tests.moto_setup import create_table, key_schema

ACTIVITY = TableSpec(
    "activity",
    ("pk", "sk"),
    (
        IndexSpec("gsi1", ("gsi1pk", "gsi1sk"), "ALL"),
        IndexSpec("sending", ("sending_pk", "sending_at"), "KEYS_ONLY"),
    ),
)


def s(text: str) -> dict[str, str]:
    return {"S": text}


def ledger(status: str, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": s("cust-1"),
        "sk": s("MSG#exec#send"),
        "gsi1pk": s("PROGRAM#p"),
        "gsi1sk": s("2026-01-01T00:00:00Z#cust-1"),
        "status": s(status),
        **more,
    }
    if status == "sending":
        item |= {"sending_pk": s("SENDING#3"), "sending_at": s("2026-01-01T00:00:00Z#cust-1")}
    return item


def test_sizes_follow_the_documented_rules() -> None:
    assert value_size(s("ab")) == 2
    assert value_size(s("日本")) == 6  # UTF-8 bytes
    assert value_size({"N": "123"}) == 3  # 1 byte per two significant digits, plus 1
    assert value_size({"N": "1000"}) == 2  # trailing zeros trimmed
    assert value_size({"BOOL": True}) == 1
    assert value_size({"L": [s("a"), s("bc")]}) == 3 + (1 + 1) + (1 + 2)
    assert value_size({"M": {"k": s("v")}}) == 3 + 1 + 1 + 1
    assert item_size({"pk": s("x"), "n": {"N": "7"}}) == (2 + 1) + (1 + 2)


def test_a_write_of_an_item_in_no_index_is_its_table_units() -> None:
    small = {"pk": s("c"), "sk": s("CONTACT")}
    assert write_units(ACTIVITY, None, small) == Units(1.0, 0.0)
    assert write_units(ACTIVITY, None, small, transactional=True) == Units(2.0, 0.0)
    big = {**small, "blob": s("x" * 1500)}
    assert write_units(ACTIVITY, None, big) == Units(2.0, 0.0)
    # an update pays for the larger of before and after; a delete for what it deletes
    assert write_units(ACTIVITY, big, small) == Units(2.0, 0.0)
    assert write_units(ACTIVITY, big, None) == Units(2.0, 0.0)


def test_the_index_rules() -> None:
    gsi1, sending = ACTIVITY.indexes
    claim = ledger("sending")
    dispatched = {**claim, "dispatched_at": s("2026-01-01T00:00:01Z")}
    sent = ledger("sent", provider_message_id=s("m-1"))
    # entering an index: one write each
    assert index_units(ACTIVITY, gsi1, None, claim) == 1
    assert index_units(ACTIVITY, sending, None, claim) == 1
    # a projected attribute changed: ALL rewrites the entry, KEYS_ONLY has nothing to write
    assert index_units(ACTIVITY, gsi1, claim, dispatched) == 1
    assert index_units(ACTIVITY, sending, claim, dispatched) == 0
    # leaving an index: one write (the delete)
    assert index_units(ACTIVITY, sending, dispatched, sent) == 1
    # the index key changed: a delete and a put
    moved = {**sent, "gsi1sk": s("2026-01-02T00:00:00Z#cust-1")}
    assert index_units(ACTIVITY, gsi1, sent, moved) == 2
    # unchanged: nothing
    assert index_units(ACTIVITY, gsi1, sent, dict(sent)) == 0


@pytest.fixture
def activity() -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(
            client,
            "activity",
            "pk",
            "sk",
            indexed=("gsi1pk", "gsi1sk", "sending_pk", "sending_at"),
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": key_schema("gsi1pk", "gsi1sk"),
                    "Projection": {"ProjectionType": "ALL"},
                },
                {
                    "IndexName": "sending",
                    "KeySchema": key_schema("sending_pk", "sending_at"),
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        )
        yield client


def test_the_meter_prices_a_messages_three_ledger_writes_with_their_indexes(
    activity: Any,
) -> None:
    """Claim (a transaction with the CONTACT item), dispatch mark (a conditional update),
    record (a batch put): 2+2 table units and 2 index units, 2 and 1, 1 and 2."""
    seen: list[tuple[str, Units]] = []
    key = {"pk": s("cust-1"), "sk": s("MSG#exec#send")}
    with metered_write_units(lambda op, units: seen.append((op, units)), "123456789012"):
        activity.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "activity",
                        "Item": ledger("sending"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": "activity", "Item": {"pk": s("cust-1"), "sk": s("CONTACT")}}},
            ]
        )
        activity.update_item(
            TableName="activity",
            Key=key,
            UpdateExpression="SET dispatched_at = :t",
            ConditionExpression="#s = :sending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":t": s("2026-01-01T00:00:01Z"), ":sending": s("sending")},
        )
        table = boto3.resource("dynamodb", region_name="us-east-1").Table("activity")
        with table.batch_writer() as batch:  # a resource call: plain values, typed on the wire
            batch.put_item(
                Item={
                    "pk": "cust-1",
                    "sk": "MSG#exec#send",
                    "gsi1pk": "PROGRAM#p",
                    "gsi1sk": "2026-01-01T00:00:00Z#cust-1",
                    "status": "sent",
                }
            )
        # a failed conditional write is billed too, and changes no index
        with pytest.raises(activity.exceptions.ConditionalCheckFailedException):
            activity.put_item(
                TableName="activity",
                Item=ledger("sending"),
                ConditionExpression="attribute_not_exists(pk)",
            )
    assert seen == [
        ("TransactWriteItems", Units(4.0, 2.0)),
        ("UpdateItem", Units(1.0, 1.0)),
        ("BatchWriteItem", Units(1.0, 2.0)),
        ("PutItem", Units(1.0, 0.0)),
    ]


def test_reads_and_other_services_are_not_metered(activity: Any) -> None:
    seen: list[tuple[str, Units]] = []
    with metered_write_units(lambda op, units: seen.append((op, units)), "123456789012"):
        activity.get_item(TableName="activity", Key={"pk": s("x"), "sk": s("y")})
        activity.describe_table(TableName="activity")
    assert seen == []


def test_a_write_to_a_missing_table_fails_as_it_would_unmetered(activity: Any) -> None:
    seen: list[tuple[str, Units]] = []
    with (
        metered_write_units(lambda op, units: seen.append((op, units)), "123456789012"),
        pytest.raises(activity.exceptions.ResourceNotFoundException),
    ):
        activity.put_item(TableName="nope", Item={"pk": s("x")})
    assert seen == []


def test_a_sends_claim_and_dispatch_mark_write_no_program_index_entry(activity: Any) -> None:
    """The Send task's own writes, metered: the ``sending`` claim is in the sparse index only,
    so the dispatch mark rewrites no index entry and the record puts the ``gsi1`` entry it
    keeps (with the coupon's expiry entry, 4 index units; 6 when the claim was in ``gsi1``
    too)."""
    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.runtime.clock import FixedClock
    from tests.factories import NOON, Email, customer, journey_send, send_service

    create_table(activity, "customers", "customer_id")
    store = DynamoStore(
        boto3.resource("dynamodb", region_name="us-east-1"),
        "customers",
        "activity",
        sleep=lambda _: None,
    )
    store.save_customer(customer(), 0)
    seen: list[tuple[str, Units]] = []
    email = Email()
    with metered_write_units(lambda op, units: seen.append((op, units)), "123456789012"):
        answer = send_service(store, {"email": email}, FixedClock(NOON)).send(
            journey_send("c1", "ex-1")
        )
    assert answer.status == "sent" and len(email.sent) == 1
    ledger_writes = [(op, u.index) for op, u in seen if op != "PutItem"]
    assert ledger_writes == [
        ("TransactWriteItems", 1.0),  # the claim: its sparse `sending` entry (and CONTACT)
        ("UpdateItem", 0.0),  # the dispatch mark
        ("BatchWriteItem", 3.0),  # the record: enters gsi1, leaves `sending`; its coupon
    ]
    settled = store.ledger_entries(["c1"], "ex-1", "coupon")["c1"]
    rows = list(store.program_ledger("second-purchase-coupon"))
    assert [(r["pk"], r["status"]) for r in rows] == [("c1", "sent")]
    assert settled["gsi1sk"] == f"{settled['at']}#c1"
