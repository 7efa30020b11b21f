"""The hourly cart sweep on the local runtime: a failed run is caught up by the next one,
and a cart event that arrives hours late is still swept -- each cart entering its program
once. (The dead letters the failed runs leave are replayed in test_dlq_redrive.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from kizuna.adapters.eventbridge import EventBridgePublisher
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.functions import current_function
from tests.integration.conftest import START
from tests.integration.test_journeys import ledger, order, put, sent, signup, treated

pytestmark = pytest.mark.integration

PROGRAM = "cart-abandonment"


class BusOutage:
    """While ``down``, the sweep function cannot put events on the bus."""

    def __init__(self) -> None:
        self.down = False


@pytest.fixture
def outage(monkeypatch: pytest.MonkeyPatch) -> Iterator[BusOutage]:
    state = BusOutage()
    real = EventBridgePublisher.publish

    def publish(self: EventBridgePublisher, events: Any) -> list[int]:
        if state.down and "sweep" in (current_function() or "").lower():
            raise RuntimeError("bus unavailable")
        return real(self, events)

    monkeypatch.setattr(EventBridgePublisher, "publish", publish)
    yield state


def entries(cloud: LocalCloud, cid: str) -> list[dict[str, Any]]:
    return [e for e in ledger(cloud, cid, "ENTRY") if e["program"] == PROGRAM]


def cart(cloud: LocalCloud, cid: str, **detail: Any) -> None:
    put(
        cloud,
        "cart.updated",
        {
            "customer_id": cid,
            "cart_id": f"{cid}-cart",
            "items": [{"product_id": "tea-002", "quantity": 1, "unit_price": "1800"}],
            **detail,
        },
    )


def test_a_failed_hourly_sweep_is_caught_up_by_the_next_run(
    cloud: LocalCloud, outage: BusOutage
) -> None:
    # given a cart left at 10:00 in Tokyo: abandoned after 3 hours
    cid = treated(PROGRAM, "caught-up-")
    signup(cloud, cid, channels=("push", "email"))
    order(cloud, cid, "o-1", 1000)
    cloud.advance_to(START + timedelta(hours=1))
    cart(cloud, cid)
    cloud.advance_to(START + timedelta(hours=3, minutes=30))
    # when the sweeps of the hours it became due fail (every retry too)
    outage.down = True
    cloud.advance_to(START + timedelta(hours=5, minutes=30))
    assert entries(cloud, cid) == []
    # then the next sweep that works catches up: the cart enters its program, once
    outage.down = False
    cloud.advance_to(START + timedelta(hours=8))
    assert len(entries(cloud, cid)) == 1
    assert sent(cloud, cid).count((PROGRAM, "remind", "push")) == 1
    # and the hours after find nothing more to do
    cloud.advance(hours=24)
    assert len(entries(cloud, cid)) == 1
    assert sent(cloud, cid).count((PROGRAM, "remind", "push")) == 1


def test_a_cart_event_that_arrives_hours_late_is_swept_once(cloud: LocalCloud) -> None:
    # given a cart updated at 10:00 in Tokyo whose event reaches Kizuna only at 16:00
    cid = treated(PROGRAM, "late-")
    signup(cloud, cid, channels=("push", "email"))
    order(cloud, cid, "o-1", 1000)
    cloud.advance_to(START + timedelta(hours=7, minutes=10))
    cart(cloud, cid, occurred_at=(START + timedelta(hours=1)).isoformat())
    # when the hourly sweeps run on
    cloud.advance_to(START + timedelta(hours=9, minutes=30))
    # then the next one swept it: the cart entered its program once, and not again later
    assert len(entries(cloud, cid)) == 1
    assert (PROGRAM, "remind", "push") in sent(cloud, cid)
    cloud.advance(hours=30)
    assert len(entries(cloud, cid)) == 1


def test_birthdays_are_found_through_their_index_once_a_day(cloud: LocalCloud) -> None:
    # given, at 09:00 in Tokyo on 5 January, a customer in Tokyo whose birthday it is, one
    # in New York whose birthday has not begun there yet (04:00 on the 4th), and one without
    # a birthday
    for cid, born, zone in [
        ("bd-tokyo", "1990-01-05", "Asia/Tokyo"),
        ("bd-ny", "1990-01-05", "America/New_York"),
        ("bd-other", "1990-02-05", "Asia/Tokyo"),
    ]:
        put(cloud, "customer.upserted", {"customer_id": cid, "birth_date": born, "time_zone": zone})
    put(cloud, "customer.upserted", {"customer_id": "bd-none", "time_zone": "Asia/Tokyo"})
    # when the sweep function runs (its first run: the last day), and again
    request = {"kinds": ["birthdays"], "lookback_minutes": 1440}
    sweep = next(name for name, spec in cloud.functions.items() if spec.code_name == "sweep")
    first = cloud.invoke(sweep, request)
    again = cloud.invoke(sweep, request)
    # then the index gave the Tokyo birthday (the sparse GSI on moto), once
    assert first.ok and first.result == {"birthdays": 1}
    assert again.ok and again.result == {"birthdays": 0}
