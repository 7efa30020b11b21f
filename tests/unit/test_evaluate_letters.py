"""The evaluate function's dead letters: one per bad event. A producer's event also reaches
ingest, which dead-letters it with the reason, so evaluate only skips it; an event from
Kizuna reaches no one else, so evaluate dead-letters it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kizuna.programs.evaluate import Evaluator
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.evaluate import EvaluateService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import T0, days, envelope, order
from tests.sqs_events import sqs_event, sqs_record

PROGRAMS, _ = load_programs(Path(__file__).resolve().parents[2] / "programs")


def service() -> tuple[EvaluateService, MemoryStarter, MemoryDeadLetters]:
    starter, dlq = MemoryStarter(), MemoryDeadLetters()
    evaluator = Evaluator(
        PROGRAMS, MemoryStore(), starter, MemoryPublisher(), KizunaConfig(), FixedClock(T0)
    )
    return EvaluateService(evaluator, dlq, max_receive_count=3), starter, dlq


def test_an_invalid_producer_event_is_skipped_not_dead_lettered_twice() -> None:
    svc, _, dlq = service()
    bad = order("c1", "o1", 1000, T0)
    bad["detail"]["total"] = "-1"
    future = order("c1", "o2", 1000, T0 + days(365 * 900))
    response = svc.process_batch(sqs_event(sqs_record(bad, "m1"), sqs_record(future, "m2")))
    assert response == {"batchItemFailures": []}
    assert dlq.letters == []


def test_an_invalid_event_from_kizuna_is_dead_lettered_here() -> None:
    svc, _, dlq = service()
    raw: dict[str, Any] = envelope(
        "customer.first_purchase", {"customer_id": "c1"}, "ev-1", source="kizuna"
    )
    svc.process_batch(sqs_event(sqs_record(raw, "m1")))
    [letter] = dlq.letters
    assert (letter.message_id, letter.error_type) == ("m1", "InvalidEvent")
