"""The real Kizuna template (CDK-synthesized) on the local runtime: ingest end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kizuna.local import LocalCloud
from tests.factories import fixture

pytestmark = pytest.mark.integration

BUS = "kizuna"


def put(cloud: LocalCloud, *names: str, **overrides: Any) -> None:
    entries = []
    for name in names:
        event = fixture(name)
        entries.append(
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": {**event["detail"], **overrides},
                "EventBusName": BUS,
            }
        )
    assert all("EventId" in r for r in cloud.put_events(entries))


def table(cloud: LocalCloud, construct_id: str) -> str:
    [resource] = cloud.find("AWS::DynamoDB::Table", construct_id)
    return resource.logical_id


def test_real_template_provisions_with_nothing_unexpected(kizuna_cloud: LocalCloud) -> None:
    # Every resource is created, ignored with a reason, or reported
    assert kizuna_cloud.bus_names() == [BUS]
    assert [u.what for u in kizuna_cloud.unsupported] == ["AWS::Events::Archive"]
    ignored_types = {i.type for i in kizuna_cloud.ignored}
    assert ignored_types <= {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::Logs::LogGroup",
        "AWS::Lambda::LayerVersion",
        "AWS::SQS::QueuePolicy",
        "AWS::CDK::Metadata",
        "AWS::KMS::Key",
        "AWS::CloudWatch::Alarm",
    }
    [pump] = kizuna_cloud.pumps
    assert pump.function.code_name == "ingest"
    assert pump.report_failures and pump.redrive


def test_order_placed_on_the_bus_becomes_a_customer(kizuna_cloud: LocalCloud) -> None:
    # Given a customer profile and their first order on the bus "kizuna"
    kizuna_cloud.advance_to(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    put(kizuna_cloud, "customer_upserted", "order_placed")

    # When the cloud drains (rule -> queue -> ingest function -> DynamoDB)
    kizuna_cloud.drain()

    # Then the customer item exists with the order applied, and nothing was dead-lettered
    customers = kizuna_cloud.scan(table(kizuna_cloud, "Customers"))
    assert [c["customer_id"] for c in customers] == ["cust-0001"], kizuna_cloud.summary()
    assert kizuna_cloud.scan(table(kizuna_cloud, "Activity"))
    dead_letter_queues = kizuna_cloud.dlq_messages()
    assert dead_letter_queues
    assert all(messages == [] for messages in dead_letter_queues.values())
    assert kizuna_cloud.errors == []
    assert kizuna_cloud.api_calls[("events", "PutEvents")] >= 1


def test_invalid_event_reaches_the_dlq_with_its_reason(kizuna_cloud: LocalCloud) -> None:
    put(kizuna_cloud, "order_placed", total="not money")
    kizuna_cloud.drain()

    [messages] = kizuna_cloud.dlq_messages().values()
    assert len(messages) == 1, kizuna_cloud.summary()
    assert messages[0]["json"]["detail-type"] == "order.placed"
    reasons = " ".join(str(v) for v in messages[0]["message_attributes"].values())
    assert "total" in reasons
