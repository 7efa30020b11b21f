"""The real Kizuna template (CDK-synthesized) on the local runtime: ingest end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kizuna_tools.local import LocalCloud
from kizuna_tools.local.testing import CloudFactory
from tests.factories import fixture

pytestmark = pytest.mark.integration

BUS = "kizuna"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # the event fixtures' time


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


def ingest_dlq(cloud: LocalCloud) -> list[dict[str, Any]]:
    [logical_id] = [q for q in cloud.dlq_messages() if "Ingest" in q]
    return cloud.dlq_messages()[logical_id]


def table(cloud: LocalCloud, construct_id: str) -> str:
    [resource] = cloud.find("AWS::DynamoDB::Table", construct_id)
    return resource.logical_id


def test_real_template_provisions_with_nothing_unexpected(kizuna_cloud: LocalCloud) -> None:
    # Every resource is created, ignored with a reason, or reported
    assert kizuna_cloud.bus_names() == [BUS]
    # Only known, documented gaps are reported: no function, queue, rule or machine is lost
    known_gaps = {
        "AWS::Events::Archive",
        "AWS::SES::ConfigurationSetEventDestination",
        "AWS::Glue::Database",  # Athena over the snapshot export: the files are local
        "AWS::Glue::Table",
    }
    assert {u.what for u in kizuna_cloud.unsupported} <= known_gaps, kizuna_cloud.unsupported
    ran = {
        "AWS::Lambda::Function",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::StepFunctions::StateMachine",
        "AWS::DynamoDB::Table",
        "AWS::Scheduler::Schedule",
        "AWS::Cognito::UserPool",
        "AWS::ApiGatewayV2::Route",
    }
    assert not [i for i in kizuna_cloud.ignored if i.type in ran]
    # Every function runs its folder's handler; ingest is pumped from its queue with a DLQ
    assert all(f.handler_path and f.handler_path.is_file() for f in kizuna_cloud.functions.values())
    [ingest] = [p for p in kizuna_cloud.pumps if p.function.code_name == "ingest"]
    assert ingest.report_failures and ingest.redrive


@pytest.fixture
def cloud(kizuna_template_json: dict[str, Any], local_cloud_factory: CloudFactory) -> LocalCloud:
    """The real app with the clock at the fixtures' time (no schedules fired before it)."""
    return local_cloud_factory(kizuna_template_json, start=T0)


def test_order_placed_on_the_bus_becomes_a_customer(cloud: LocalCloud) -> None:
    # Given a customer profile and their first order on the bus "kizuna"
    put(cloud, "customer_upserted", "order_placed")

    # When the cloud drains (rule -> queue -> ingest function -> DynamoDB)
    cloud.drain()

    # Then the customer item exists with the order applied, and nothing was dead-lettered
    customers = cloud.scan(table(cloud, "Customers"))
    assert [c["customer_id"] for c in customers] == ["cust-0001"], cloud.summary()
    assert customers[0]["order_count"] == 1, customers[0]
    assert cloud.scan(table(cloud, "Activity"))
    assert ingest_dlq(cloud) == []
    assert [e for e in cloud.errors if "Ingest" in e.function] == []
    assert cloud.api_calls[("events", "PutEvents")] >= 1


def test_invalid_event_reaches_the_dlq_with_its_reason(cloud: LocalCloud) -> None:
    put(cloud, "order_placed", total="not money")
    cloud.drain()

    messages = ingest_dlq(cloud)
    assert len(messages) == 1, cloud.summary()
    assert messages[0]["json"]["detail-type"] == "order.placed"
    reasons = " ".join(str(v) for v in messages[0]["message_attributes"].values())
    assert "total" in reasons
