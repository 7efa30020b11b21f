"""One bad timestamp: an occurred_at far in the future (or the past) is dead-lettered with its
reason, and a customer item that took one in before ingest checked cannot stay poisoned."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import EventTimeConfig, KizunaConfig
from kizuna.scoring.job import rescore
from kizuna.scoring.requests import Boundaries
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from kizuna_tools.importer import import_file
from tests.factories import T0, days, envelope, order, parsed, upsert
from tests.sqs_events import sqs_event, sqs_record

NOW = T0 + days(10)
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
CFG = KizunaConfig()
LINE = {"product_id": "p1", "quantity": 1, "unit_price": "500"}


def app_opened(cid: str, at: datetime | str, event_id: str) -> dict[str, Any]:
    when = at if isinstance(at, str) else at.isoformat()
    return envelope("app.opened", {"customer_id": cid, "occurred_at": when}, event_id)


def consent(cid: str, status: str, at: datetime, event_id: str) -> dict[str, Any]:
    detail = {"customer_id": cid, "occurred_at": at.isoformat(), "channel": "email"}
    return envelope("consent.changed", {**detail, "status": status}, event_id)


def device(detail_type: str, cid: str, at: datetime, event_id: str) -> dict[str, Any]:
    detail = {"customer_id": cid, "occurred_at": at.isoformat(), "token": "t" * 64}
    if detail_type == "device.registered":
        detail["platform"] = "FCM"
    return envelope(detail_type, detail, event_id)


def service(store: MemoryStore) -> tuple[IngestService, MemoryDeadLetters]:
    dlq = MemoryDeadLetters()
    svc = IngestService(store, MemoryPublisher(), dlq, CFG, FixedClock(NOW), max_receive_count=3)
    return svc, dlq


def poisoned_customer() -> Customer:
    """A customer as a Kizuna without the time check left it: a real order, then an app open,
    an email, an opt-in and a device all dated in the year 2999."""
    c = Customer(customer_id="c1")
    # no horizon, and no settling of old facts into history either: as before the fix
    with mock.patch("kizuna.domain.ingest.settle", lambda customer, _cfg, limit=None: customer):
        for raw in (
            order("c1", "o1", 60000, T0),
            app_opened("c1", FAR_FUTURE, "ev-future-open"),
            upsert("c1", FAR_FUTURE, "ev-future-email", email="future@example.jp"),
            consent("c1", "opted_in", FAR_FUTURE, "ev-future-consent"),
            device("device.registered", "c1", FAR_FUTURE, "ev-future-device"),
        ):
            c = apply_events(c, [parsed(raw)], CFG, T0).customer
    assert c.rank == "Bronze" and c.points_balance == 0  # the damage, as reported
    return c


# --- rejected at the door ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "fragment"),
    [
        ("2999-01-01T00:00:00Z", "in the future"),
        ((NOW + days(1)).isoformat(), "in the future"),
        ("1900-01-01T00:00:00Z", "in the past"),
        ("0001-01-01T00:00:00Z", "in the past"),
        ("9999-12-31T23:59:59Z", "in the future"),
    ],
)
def test_a_time_outside_the_window_is_dead_lettered_naming_the_field(
    occurred_at: str, fragment: str
) -> None:
    # given an app open dated far from the ingest clock, then a real order
    store = MemoryStore()
    svc, dlq = service(store)
    event = sqs_event(
        sqs_record(order("c1", "o1", 60000, T0), "m1"),
        sqs_record(app_opened("c1", occurred_at, "ev-bad"), "m2"),
        sqs_record(order("c1", "o2", 1000, NOW), "m3"),
    )
    # when the batch is ingested
    response = svc.process_batch(event)
    # then the bad event is dead-lettered with a reason naming the field, nothing is retried
    assert response == {"batchItemFailures": []}
    [letter] = dlq.letters
    assert (letter.message_id, letter.error_type) == ("m2", "InvalidEvent")
    assert "detail.occurred_at" in letter.reason and fragment in letter.reason
    # and the customer is as the two real orders make them
    c = store.customers["c1"]
    assert c.last_app_open_at is None and c.last_event_at == NOW
    assert (c.order_count, c.spend_12m, c.rank) == (2, 61000, "Silver")
    assert c.points_balance == 600 + 15  # the second order earned at Silver x1.5


def test_the_window_is_configurable_and_allows_the_skew() -> None:
    raw = app_opened("c1", NOW + days(0.5), "ev-1")
    with pytest.raises(EventRejected):
        parse_inbound(raw, NOW, EventTimeConfig())
    # a day of skew admits it; five minutes (the default) admit a clock a little ahead
    assert parse_inbound(raw, NOW, EventTimeConfig(max_future_skew_seconds=86_400))
    assert parse_inbound(app_opened("c1", NOW + days(1 / 1440 * 4), "ev-2"), NOW)
    with pytest.raises(EventRejected) as info:
        parse_inbound(order("c1", "o1", 1, NOW - days(40)), NOW, EventTimeConfig(max_age_days=30))
    assert "max_age_days" in info.value.reason


# --- a customer poisoned before the check ------------------------------------------------------


def test_a_poisoned_customer_is_repaired_by_the_next_real_events() -> None:
    # given a customer item holding times from the year 2999 (stored before the check)
    store = MemoryStore()
    store.customers["c1"] = poisoned_customer()
    svc, dlq = service(store)
    # when real events arrive: an order, a new email, an opt-out, the device unregistered
    svc.process_batch(
        sqs_event(
            sqs_record(order("c1", "o2", 1000, NOW), "m1"),
            sqs_record(upsert("c1", NOW, "ev-email", email="now@example.jp"), "m2"),
            sqs_record(consent("c1", "opted_out", NOW, "ev-optout"), "m3"),
            sqs_record(device("device.unregistered", "c1", NOW, "ev-unreg"), "m4"),
            sqs_record(app_opened("c1", NOW, "ev-open"), "m5"),
        )
    )
    # then the rolling windows end now, and the later facts win over the 2999 ones
    assert dlq.letters == []
    c = store.customers["c1"]
    assert (c.as_of, c.last_event_at, c.last_app_open_at) == (NOW, NOW, NOW)
    assert (c.order_count, c.spend_12m, c.rank, c.rank_points) == (2, 61000, "Silver", 610)
    assert c.points_balance == 600 + 15
    assert c.email == "now@example.jp"
    assert c.consent["email"].status == "opted_out"
    assert c.devices == {}


def test_daily_scoring_does_not_compute_as_of_a_poisoned_time() -> None:
    # given the poisoned customer and no further event
    c = poisoned_customer()
    bounds = Boundaries(
        recency_days=(30, 60, 120, 240),
        frequency=(1, 2, 3, 5),
        monetary=(3000, 8000, 20000, 50000),
    )
    # when the daily scoring recomputes them as of now
    [fresh] = rescore([c], bounds, CFG, NOW)
    # then the windows end now: the real order counts
    assert (fresh.as_of, fresh.rank, fresh.spend_12m, fresh.points_balance) == (
        NOW,
        "Silver",
        60000,
        600,
    )


def test_an_import_row_dated_in_the_future_is_reported_not_imported(tmp_path: Path) -> None:
    # given an order history with one order dated in the year 2999
    path = tmp_path / "orders.jsonl"
    rows = [
        {"order_id": f"o{n}", "customer_id": "c1", "ordered_at": at, "lines": [LINE]}
        for n, at in ((1, T0.isoformat()), (2, "2999-01-01T00:00:00Z"))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # when it is imported
    store = MemoryStore()
    report = import_file("orders", path, store, CFG, NOW, partial=True)
    # then that row is reported with the field, the other imported (a partial import)
    assert [(e.row, "detail.occurred_at" in e.error) for e in report.errors] == [(2, True)]
    c = store.customers["c1"]
    assert (c.order_count, c.last_event_at, c.as_of) == (1, T0, T0)
