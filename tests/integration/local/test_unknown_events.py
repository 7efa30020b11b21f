"""One letter per bad event, on the real template (CDK-synthesized rules) and the local
runtime: an unknown detail-type is dead-lettered by ingest with its reason instead of
matching no rule, and an invalid inbound event is not dead-lettered twice (ingest and
evaluate both receive an order.placed)."""

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


@pytest.fixture
def cloud(kizuna_template_json: dict[str, Any], local_cloud_factory: CloudFactory) -> LocalCloud:
    return local_cloud_factory(kizuna_template_json, start=T0)


def put(cloud: LocalCloud, detail_type: str, **overrides: Any) -> None:
    detail = {**fixture("order_placed")["detail"], **overrides}
    entry = {"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}
    assert all("EventId" in r for r in cloud.put_events([{**entry, "EventBusName": BUS}]))


def letters(cloud: LocalCloud) -> list[tuple[str, dict[str, Any]]]:
    """Every dead letter of every queue, with its queue's logical id."""
    return [(queue, m) for queue, ms in cloud.dlq_messages().items() for m in ms]


def reason(message: dict[str, Any]) -> str:
    return " ".join(str(v) for v in message["message_attributes"].values())


@pytest.mark.parametrize("detail_type", ["bogus.type", "Order.Placed"])
def test_an_unknown_detail_type_is_dead_lettered_once_with_its_reason(
    cloud: LocalCloud, detail_type: str
) -> None:
    # given an event of a type Kizuna does not know (a casing typo is not order.placed)
    put(cloud, detail_type)
    # when the cloud drains
    cloud.drain()
    # then exactly one letter, in the ingest DLQ, says why
    [(queue, message)] = letters(cloud)
    assert "Ingest" in queue
    assert message["json"]["detail-type"] == detail_type
    assert "UnknownEventType" in reason(message) and detail_type in reason(message)
    assert cloud.scan(cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id) == []


def test_an_invalid_order_makes_one_letter_not_two(cloud: LocalCloud) -> None:
    # given an order.placed (a goal of several programs: evaluate receives it too) that is
    # invalid
    put(cloud, "order.placed", total="not money")
    # when the cloud drains
    cloud.drain()
    # then one letter in all, in the ingest DLQ, naming the field
    [(queue, message)] = letters(cloud)
    assert "Ingest" in queue and "total" in reason(message)
    assert [e for e in cloud.errors if "Evaluate" in e.function] == []
