"""A customer whose stored item this version cannot read (a value it refuses, written by
hand or by a later version) fails only that customer's work: evaluate fails that event
(delivered again, then dead-lettered with the reason) and evaluates the batch's others."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kizuna.domain.customer import Customer, Customers
from kizuna.programs.cohorts import cohort_id
from kizuna.programs.evaluate import Evaluator
from kizuna.programs.journeys import JourneyState
from kizuna.runtime.clock import FixedClock
from kizuna.services.evaluate import EvaluateService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import envelope
from tests.sqs_events import sqs_event, sqs_record
from tests.unit.test_cohorts import CFG, NIGHT, PROGRAMS, tokyo, treated

BAD = "unreadable"


class StoreWithAnUnreadableItem(MemoryStore):
    """A store whose item of ``BAD`` this version cannot read (as the DynamoDB adapter
    answers: named in ``unreadable``, neither present nor absent)."""

    def read_entries(
        self, customer_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], JourneyState]]:
        customers, journeys = super().read_entries(customer_ids, keys)
        readable = {cid: c for cid, c in customers.items() if cid != BAD}
        refused = {BAD: ("order_count",)} if BAD in customer_ids else {}
        return Customers(readable, refused), journeys


def rank_up(cid: str) -> dict[str, Any]:
    detail = {
        "customer_id": cid,
        "event_id": f"{cid}:rank_changed:Bronze:Silver:o1",
        "occurred_at": "2026-01-05T10:00:00Z",
        "caused_by": "o1",
        "from_rank": "Bronze",
        "to_rank": "Silver",
        "direction": "up",
        "rank_points": 600,
    }
    return envelope("customer.rank_changed", detail, f"ev-{cid}", source="kizuna")


def service() -> tuple[EvaluateService, MemoryStore, MemoryStarter, MemoryDeadLetters, str]:
    store, starter, dlq = StoreWithAnUnreadableItem(), MemoryStarter(), MemoryDeadLetters()
    (good,) = treated(PROGRAMS["rank-up-congratulations"], "g", 1)
    store.customers[good] = tokyo(good, rank="Silver")
    store.customers[BAD] = tokyo(BAD, rank="Silver")
    evaluator = Evaluator(
        list(PROGRAMS.values()), store, starter, MemoryPublisher(), CFG, FixedClock(NIGHT)
    )
    return EvaluateService(evaluator, dlq, max_receive_count=3), store, starter, dlq, good


def test_an_unreadable_customer_fails_their_event_alone_and_it_is_dead_lettered_at_last() -> None:
    svc, store, starter, dlq, good = service()
    program = PROGRAMS["rank-up-congratulations"]
    # when: one batch carries a good customer's rank-up and the unreadable one's
    response = svc.process_batch(
        sqs_event(sqs_record(rank_up(good), "m-good"), sqs_record(rank_up(BAD), "m-bad"))
    )
    # then: the good one entered; the unreadable one's event alone is delivered again
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert (good, program.id) in store.journeys and (BAD, program.id) not in store.journeys
    assert list(starter.started) == [cohort_id(program.id, program_due(program))]
    assert store.ledger(BAD, "ENTRY") == []  # nothing decided for them: not skipped, not lost
    assert dlq.letters == []
    # when: its last delivery fails the same way
    last = svc.process_batch(sqs_event(sqs_record(rank_up(BAD), "m-bad", receive_count=3)))
    # then: dead-lettered with the reason (a redrive after the item is fixed evaluates it)
    assert last == {"batchItemFailures": []}
    (letter,) = dlq.letters
    assert (letter.message_id, letter.error_type) == ("m-bad", "UnreadableCustomer")
    assert letter.reason == "unreadable_customer: order_count"  # the field, never its value


def program_due(program: Any) -> Any:
    from kizuna.programs.cohorts import first_due

    return first_due(program, NIGHT, tokyo("x"), CFG)[0]
