"""A JSON object that gives a key twice is refused wherever Kizuna reads JSON from outside:
``json`` and pydantic keep the last value, another reader (EventBridge's rule matching, the
producer's own log) may keep the first, so ``{"status": "opted_in", "status": "opted_out"}``
would mean one thing to one and another to the other."""

from __future__ import annotations

import json

import pytest

from kizuna.domain import strict_json
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, days, envelope, order
from tests.sqs_events import sqs_event, sqs_record


def consent_twice(email: str = "jane.doe@example.jp") -> str:
    """A consent change whose detail says opted_in, then opted_out (and a free-form key, an
    address, given twice in a nested object)."""
    detail = {"customer_id": "c1", "occurred_at": T0.isoformat(), "channel": "email"}
    text = json.dumps(envelope("consent.changed", detail, "ev-1"))
    inner = '"channel": "email"'
    return text.replace(inner, f'{inner}, "status": "opted_in", "status": "opted_out"')


def test_the_module_refuses_a_repeated_key_at_any_depth() -> None:
    assert strict_json.loads('{"a": {"b": 1, "c": [{"d": 2}]}}') == {"a": {"b": 1, "c": [{"d": 2}]}}
    with pytest.raises(strict_json.RepeatedKey, match="'d' given twice"):
        strict_json.loads('{"a": [{"d": 1, "d": 2}]}')
    with pytest.raises(json.JSONDecodeError):
        strict_json.loads("{nope")


def test_an_event_with_a_repeated_key_is_rejected_without_naming_it() -> None:
    raw = consent_twice()
    assert json.loads(raw)["detail"]["status"] == "opted_out"  # what json alone would read
    with pytest.raises(EventRejected) as caught:
        parse_inbound(raw)
    assert caught.value.error_type == "InvalidEnvelope"
    assert "status" not in caught.value.reason and "twice" in caught.value.reason


def test_ingest_dead_letters_it_and_applies_the_rest_of_the_batch() -> None:
    store, dlq = MemoryStore(), MemoryDeadLetters()
    svc = IngestService(store, MemoryPublisher(), dlq, KizunaConfig(), FixedClock(T0 + days(1)), 3)
    response = svc.process_batch(
        sqs_event(sqs_record(consent_twice(), "m1"), sqs_record(order("c2", "o1", 1000, T0), "m2"))
    )
    assert response == {"batchItemFailures": []}
    assert [(d.message_id, d.error_type) for d in dlq.letters] == [("m1", "InvalidEnvelope")]
    assert "c1" not in store.customers or "email" not in store.customers["c1"].consent
    assert store.customers["c2"].order_count == 1
