"""Property: the API's intake of the shop's events agrees with ingest. Whatever a batch holds
(valid events from the JSON Schemas, mutated ones, junk), every event is answered once, in
order; an event is put on the bus exactly when ingest would accept it (the same models, the
same event-time window), and what is put is what ingest then parses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.events import INBOUND_EVENT_TYPES, PreferencesChanged
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.ports import PutOutcome
from kizuna.runtime.config import EventTimeConfig, PreferencesConfig
from kizuna.services.intake import MAX_EVENTS, EventIntake
from tests.schema_strategies import from_schema, load_schema

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
JUNK: list[Any] = [None, 0, -1, 1e300, "", " c1", "x" * 300, [], {}, "2026-13-45T99:00:00Z"]
DETAILS = {t: from_schema(load_schema(t)) for t in INBOUND_EVENT_TYPES}


class Bus:
    source = "shop.api"

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def put(self, events: Sequence[tuple[str, str]]) -> list[PutOutcome]:
        self.entries += events
        return [
            PutOutcome(event_id=f"e-{len(self.entries) - len(events) + i}")
            for i in range(len(events))
        ]


@st.composite
def entries(draw: st.DrawFn) -> Any:
    detail_type = draw(st.sampled_from(sorted(DETAILS)))
    detail: dict[str, Any] = dict(draw(DETAILS[detail_type]))
    entry: dict[str, Any] = {"detail-type": detail_type, "detail": detail}
    mutation = draw(st.sampled_from(["none", "none", "drop", "add", "junk", "type", "shape"]))
    if mutation == "drop" and detail:
        detail.pop(draw(st.sampled_from(sorted(detail))))
    elif mutation == "add":
        entry[draw(st.sampled_from(["source", "time", "id"]))] = "x"
    elif mutation == "junk" and detail:
        detail[draw(st.sampled_from(sorted(detail)))] = draw(st.sampled_from(JUNK))
    elif mutation == "type":
        entry["detail-type"] = draw(st.sampled_from(["order.placed.v2", "", "Order.Placed", 7]))
    elif mutation == "shape":
        return draw(st.sampled_from(JUNK))
    return entry


def ingest_accepts(raw: Any) -> bool:
    """What ingest says of the event a producer would put for ``raw`` (JSON as it travels)."""
    if not isinstance(raw, dict) or set(raw) - {"detail-type", "detail"}:
        return False
    envelope = {
        "id": "x",
        "detail-type": raw.get("detail-type"),
        "source": "shop",
        "time": NOW.isoformat(),
        "detail": raw.get("detail"),
    }
    try:
        parsed = parse_inbound(json.loads(json.dumps(envelope)), now=NOW, limits=EventTimeConfig())
    except EventRejected:
        return False
    # the fold refuses a choice of an undeclared topic (or an opt-out of the transactional
    # one): the intake refuses it before the bus
    if isinstance(parsed.detail, PreferencesChanged):
        return PreferencesConfig().choice_problem(parsed.detail.topics) is None
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=1, max_size=12))
def test_intake_answers_every_event_and_agrees_with_ingest(batch: list[Any]) -> None:
    # as the API reads a body: JSON, fractions as decimals
    received = json.loads(json.dumps(batch), parse_float=Decimal)
    bus = Bus()
    result = EventIntake(bus, EventTimeConfig(), lambda: NOW).accept(received)
    assert [r.index for r in result.results] == list(range(len(batch)))
    put = iter(bus.entries)
    for raw, answer in zip(batch, result.results, strict=True):
        assert (answer.status == "accepted") == ingest_accepts(raw), (raw, answer)
        if answer.status == "rejected":
            assert answer.field and answer.field.startswith(f"events[{answer.index}]")
            continue
        detail_type, detail = next(put)
        assert answer.bus_event_id is not None
        event = {
            "id": answer.bus_event_id,
            "detail-type": detail_type,
            "source": "shop.api",
            "time": NOW.isoformat(),
            "detail": json.loads(detail),
        }
        parsed = parse_inbound(event, now=NOW)
        assert parsed.detail == parse_inbound({**event, "detail": raw["detail"]}).detail
        assert parsed.event_id == answer.event_id  # the id ingest and evaluate use


def test_a_choice_of_an_undeclared_or_transactional_topic_is_refused_naming_it() -> None:
    for topics, reason in (
        ({"coupons": {"email": "opted_out"}}, "not a declared topic (declared: promotions"),
        ({"service": {"sms": "opted_out"}}, "a transactional topic cannot be opted out of"),
    ):
        detail = {"customer_id": "c1", "occurred_at": NOW.isoformat(), "topics": topics}
        bus = Bus()
        result = EventIntake(bus, EventTimeConfig(), lambda: NOW).accept(
            [{"detail-type": "preferences.changed", "detail": detail}]
        )
        (answer,) = result.results
        assert answer.status == "rejected" and bus.entries == []
        assert answer.field == f"events[0].detail.topics.{next(iter(topics))}"
        assert answer.reason is not None and reason in answer.reason


def test_an_erase_request_whose_reference_is_an_address_is_refused_naming_it() -> None:
    # ingest logs the reference as sent: the API refuses it as ingest would
    for reference, said in (("hanako@example.jp", "email address"), ("+819012345678", "phone")):
        detail = {"customer_id": "c1", "occurred_at": NOW.isoformat(), "request_id": reference}
        bus = Bus()
        result = EventIntake(bus, EventTimeConfig(), lambda: NOW).accept(
            [{"detail-type": "customer.erase", "detail": detail}]
        )
        (answer,) = result.results
        assert answer.status == "rejected" and bus.entries == []
        assert answer.field == "events[0].detail.request_id"
        assert answer.reason is not None and said in answer.reason
        assert reference not in answer.reason


def test_more_than_the_bound_is_refused_whole() -> None:
    with pytest.raises(ValueError, match="at most"):
        EventIntake(Bus(), EventTimeConfig(), lambda: NOW).accept([{}] * (MAX_EVENTS + 1))


def test_a_count_or_amount_the_bus_would_read_otherwise_is_refused_naming_it() -> None:
    # Given an API body (read as the API reads it: fractions and exponents as decimals) whose
    # quantity is 1.0, 1e3 or text, or whose unit price is loose text: the model took each
    # (1, 1000, 2, 1000) and put the detail on the bus as sent, where ingest refused 1.0 (a
    # float) or read "1_000" as 1000 too
    line = {"product_id": "p1", "quantity": 1, "unit_price": "100"}
    order = {"customer_id": "c1", "occurred_at": NOW.isoformat(), "order_id": "o1"}
    cases = [
        ('{"quantity": 1.0}', "quantity"),
        ('{"quantity": 1e3}', "quantity"),
        ('{"quantity": "2"}', "quantity"),
        ('{"unit_price": "1_000"}', "unit_price"),
        ('{"unit_price": "\\uff11\\uff10\\uff10"}', "unit_price"),
    ]
    body = [
        {
            "detail-type": "order.placed",
            "detail": {
                **order,
                "lines": [{**line, **json.loads(change)}],
                "total": "100",
                "currency": "JPY",
                "channel": "web",
            },
        }
        for change, _ in cases
    ]
    received = json.loads(json.dumps(body), parse_float=Decimal)
    bus = Bus()
    # When it is put through the intake
    result = EventIntake(bus, EventTimeConfig(), lambda: NOW).accept(received)
    # Then each is refused, naming the field, and nothing reaches the bus
    assert [(r.status, r.field) for r in result.results] == [
        ("rejected", f"events[{i}].detail.lines[0].{field}") for i, (_, field) in enumerate(cases)
    ]
    assert bus.entries == []
    # while a whole number and a plain decimal amount go through
    fine = {**body[0]["detail"], "lines": [{**line, "quantity": 2, "unit_price": "12.5"}]}
    ok = json.loads(
        json.dumps([{"detail-type": "order.placed", "detail": fine}]), parse_float=Decimal
    )
    assert [
        r.status for r in EventIntake(bus, EventTimeConfig(), lambda: NOW).accept(ok).results
    ] == ["accepted"]
