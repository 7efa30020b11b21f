"""Derived events onto EventBridge in calls EventBridge accepts: at most 10 entries and
256 KB a request (moto alone takes any size; the tests' moto refuses as EventBridge does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.eventbridge import EventBridgePublisher, ShopEventBus
from kizuna.events import DerivedEvent
from kizuna.events.derived import Cause, FirstPurchase, derived_event

AT = datetime(2026, 3, 1, 9, tzinfo=UTC)


class Counting:
    """The events client, counting the entries of each PutEvents call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[int] = []

    def put_events(self, **request: Any) -> Any:
        self.calls.append(len(request["Entries"]))
        return self.client.put_events(**request)


def purchase(i: int, lines: int) -> DerivedEvent:
    """A first purchase of ``lines`` order lines of 60-character SKUs (about 64 bytes each
    in the detail): a large order is a valid one."""
    return derived_event(
        FirstPurchase,
        f"first-{i}",
        Cause(f"c{i}", AT, f"order-{i}"),
        order_id=f"o{i}",
        total=1000,
        currency="JPY",
        channel="online",
        product_ids=tuple(f"{n:060d}" for n in range(lines)),
        categories=("shoes",),
    )


@pytest.fixture
def events() -> Any:
    with mock_aws():
        client = boto3.client("events", region_name="us-east-1")
        yield Counting(client)


def test_derived_events_go_in_calls_of_at_most_256_kb(events: Counting) -> None:
    # Given ten first purchases of ~60 KB each (one PutEvents of ~600 KB is refused)
    batch = [purchase(i, 900) for i in range(10)]
    # When they are published
    failed = EventBridgePublisher(events, "default").publish(batch)
    # Then all are put, four to a call at most
    assert failed == []
    assert events.calls == [4, 4, 2]


def test_an_event_over_256_kb_alone_is_failed_and_the_others_are_put(events: Counting) -> None:
    batch = [purchase(0, 10), purchase(1, 4200), purchase(2, 10)]  # the second: ~270 KB
    assert EventBridgePublisher(events, "default").publish(batch) == [1]
    assert events.calls == [2]


def test_the_shops_events_go_in_calls_of_at_most_256_kb(events: Counting) -> None:
    detail = '{"x":"' + "a" * 100_000 + '"}'
    outcomes = ShopEventBus(events, "default", "shop").put([("order.placed", detail)] * 5)
    assert all(o.event_id for o in outcomes)
    assert events.calls == [2, 2, 1]
