"""EventBridge -> SQS -> ingest handler -> DynamoDB, on moto, with the handler called as the
Lambda SQS event source calls it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.runtime.settings import ingest_settings
from kizuna.runtime.wiring import ingest_service
from tests.factories import T0, days, fixture, order
from tests.integration.lambda_runtime import REGION, LambdaContext, load_handler


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_kizuna_tables(ddb)
        sqs = boto3.client("sqs", region_name=REGION)
        dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue = sqs.create_queue(
            QueueName="ingest",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
            },
        )["QueueUrl"]
        derived = sqs.create_queue(QueueName="derived")["QueueUrl"]
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name="kizuna")
        for name, url, pattern in (
            (
                "inbound",
                queue,
                {"source": [{"anything-but": ["kizuna"]}]},  # as the ingest rule
            ),
            ("derived", derived, {"source": ["kizuna"]}),
        ):
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(Name=name, EventBusName="kizuna", EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, EventBusName="kizuna", Targets=[{"Id": "q", "Arn": arn}])
        env = {
            "CUSTOMERS_TABLE": "customers",
            "ACTIVITY_TABLE": "activity",
            "EVENT_BUS_NAME": "kizuna",
            "DEAD_LETTER_QUEUE_URL": dlq,
            "POWERTOOLS_METRICS_NAMESPACE": "Kizuna",
            # where an erasure's sweep would go (no test here erases)
            "ERASURE_SWEEP_GROUP": "Kizuna-journeys",
            "ERASURE_SWEEP_ROLE_ARN": "arn:aws:iam::123456789012:role/erasure-sweeps",
            "INGEST_QUEUE_ARN": f"arn:aws:sqs:{REGION}:123456789012:ingest",
            "DEAD_LETTER_QUEUE_ARN": f"arn:aws:sqs:{REGION}:123456789012:dlq",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        ingest_settings.cache_clear()
        ingest_service.cache_clear()
        yield {
            "sqs": sqs,
            "events": events,
            "queue": queue,
            "dlq": dlq,
            "derived": derived,
            "store": DynamoStore(
                boto3.resource("dynamodb", region_name=REGION), "customers", "activity"
            ),
        }
        ingest_settings.cache_clear()
        ingest_service.cache_clear()


def put(aws: dict[str, Any], *raws: dict[str, Any]) -> None:
    entries = [
        {
            "EventBusName": "kizuna",
            "Source": r["source"],
            "DetailType": r["detail-type"],
            "Detail": json.dumps(r["detail"]),
        }
        for r in raws
    ]
    resp = aws["events"].put_events(Entries=entries)
    assert resp["FailedEntryCount"] == 0


def drain(aws: dict[str, Any], handler: ModuleType) -> list[dict[str, Any]]:
    """Poll the queue as the Lambda event source does; return the handler responses."""
    responses = []
    while True:
        msgs = (
            aws["sqs"]
            .receive_message(
                QueueUrl=aws["queue"],
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        if not msgs:
            return responses
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                    "awsRegion": REGION,
                }
                for m in msgs
            ]
        }
        response = handler.handler(event, LambdaContext("ingest"))
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in msgs:
            if m["MessageId"] not in failed:
                aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"])
            else:
                aws["sqs"].change_message_visibility(
                    QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )


def messages(aws: dict[str, Any], url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        got = (
            aws["sqs"]
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            .get("Messages", [])
        )
        if not got:
            return out
        out.extend(got)
        for m in got:
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_orders_on_the_bus_become_customer_state_and_derived_events(aws: dict[str, Any]) -> None:
    handler = load_handler("ingest")
    # given a customer's profile and three orders put on the bus
    put(
        aws,
        fixture("customer_upserted"),
        order("cust-0001", "o1", 30000, T0),
        order("cust-0001", "o2", 25000, T0 + days(1)),
        order("cust-0001", "o3", 16000, T0 + days(2)),
    )
    # when the ingest queue is processed as Lambda would
    responses = drain(aws, handler)
    # then every record succeeded and the customer item is right
    assert all(r == {"batchItemFailures": []} for r in responses)
    c = aws["store"].get_customer("cust-0001")
    assert c is not None
    assert (c.order_count, c.lifetime_value, c.rank, c.rank_points) == (3, 71000, "Silver", 710)
    assert c.points_balance == 300 + 250 + 240  # the third order earned at Silver x1.5
    assert (c.prefecture, c.locale, c.email) == ("Tokyo", "ja", "hanako.yamada@example.jp")
    kinds = sorted(i["sk"].split("#")[0] for i in aws["store"].activity("cust-0001"))
    assert kinds == ["ORDER"] * 3
    third = max(aws["store"].activity("cust-0001", "ORDER#"), key=lambda i: i["sk"])
    assert (third["points_balance_after"], third["rank_after"]) == (790, "Silver")
    # and the derived events came back on the bus from source "kizuna"
    derived = [json.loads(m["Body"]) for m in messages(aws, aws["derived"])]
    assert sorted(d["detail-type"] for d in derived) == [
        "customer.first_purchase",
        "customer.rank_changed",
        "customer.repeat_purchase",
        "customer.repeat_purchase",
    ]
    rank = next(d for d in derived if d["detail-type"] == "customer.rank_changed")
    assert (
        rank["detail"]["from_rank"],
        rank["detail"]["to_rank"],
        rank["detail"]["direction"],
    ) == ("Bronze", "Silver", "up")


def test_invalid_event_lands_in_the_dlq_with_its_reason(aws: dict[str, Any]) -> None:
    handler = load_handler("ingest")
    bad = order("cust-9", "o1", 1000, T0)
    bad["detail"]["currency"] = "yen"
    put(aws, bad, order("cust-8", "o2", 1000, T0))
    assert all(r == {"batchItemFailures": []} for r in drain(aws, handler))
    dead = messages(aws, aws["dlq"])
    assert len(dead) == 1
    attrs = dead[0]["MessageAttributes"]
    assert attrs["kizuna-error-type"]["StringValue"] == "InvalidEvent"
    assert "detail.currency" in attrs["kizuna-error"]["StringValue"]
    assert json.loads(dead[0]["Body"])["detail"]["order_id"] == "o1"  # kept as it arrived
    assert aws["store"].get_customer("cust-8") is not None
    assert aws["store"].get_customer("cust-9") is None


def test_duplicate_events_on_the_bus_give_one_order(aws: dict[str, Any]) -> None:
    handler = load_handler("ingest")
    raw = order("cust-1", "o1", 30000, T0)
    put(aws, raw, raw, raw)  # three PutEvents entries: three EventBridge event ids
    drain(aws, handler)
    c = aws["store"].get_customer("cust-1")
    assert c is not None and (c.order_count, c.points_balance, c.version) == (1, 300, 1)
    derived = [json.loads(m["Body"]) for m in messages(aws, aws["derived"])]
    assert {d["detail"]["event_id"] for d in derived} == {"cust-1:first_purchase"}
