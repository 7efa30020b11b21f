"""Property: every inbound event is applied or dead-lettered with a reason, never crashes its
batch, and never touches a customer it does not name.

Events are generated from the JSON Schemas in ``schemas/`` (valid ones, and mutated ones:
a required field dropped, a field added, a value of the wrong type or size, an unknown or
mismatched detail-type, a broken envelope, a body that is not an event) and sent in SQS
batches through the ingest service over in-memory fakes. SQS is played faithfully: a record
reported failed is delivered again, up to the last receive, where it must be dead-lettered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.domain.customer import Customer
from kizuna.domain.privacy import ErasureReport
from kizuna.events import ERASE_TYPE, INBOUND_EVENT_TYPES
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.schema_strategies import from_schema, load_schema
from tests.sqs_events import sqs_event, sqs_record

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
MAX_RECEIVES = 3
NAMED = ["c1", "c2", "c3"]  # the customers events may name
BYSTANDERS = ["b1", "b2"]  # stored customers no event names
# ids that look like a stored customer's and must never reach it
LOOKALIKES = ["c1\u200b", "C1", "\uff43\uff11", "c1 ", " c1", "c1#x", "c1\n", "c1/../b1"]
JUNK: list[Any] = [None, 0, -1, 1e300, "", " ", "x" * 300, [], {}, "2026-13-45T99:00:00Z", True]

DETAILS = {
    detail_type: from_schema(
        load_schema(detail_type), overrides={"customer_id": st.sampled_from(NAMED)}
    )
    for detail_type in INBOUND_EVENT_TYPES
}


@st.composite
def event_bodies(draw: st.DrawFn, index: int) -> str:
    """One SQS body: an EventBridge event, valid or mutated, or not an event at all."""
    detail_type = draw(st.sampled_from(sorted(DETAILS)))
    detail: dict[str, Any] = dict(draw(DETAILS[detail_type]))
    envelope: dict[str, Any] = {
        "version": "0",
        "id": f"evt-{index}-{draw(st.integers(0, 3))}",  # ids repeat: redelivered duplicates
        "detail-type": detail_type,
        "source": "shop",
        "account": "123456789012",
        "time": NOW.isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    mutation = draw(
        st.sampled_from(
            ["none", "none", "none", "drop", "add", "junk", "type", "envelope", "raw", "identity"]
        )
    )
    if mutation == "drop" and detail:
        detail.pop(draw(st.sampled_from(sorted(detail))))
    elif mutation == "add":
        detail[draw(st.sampled_from(["extra", "customerId", "__proto__", "pk"]))] = "x"
    elif mutation == "junk" and detail:
        detail[draw(st.sampled_from(sorted(detail)))] = draw(st.sampled_from(JUNK))
    elif mutation == "identity" and "customer_id" in detail:
        detail["customer_id"] = draw(st.sampled_from(LOOKALIKES))
    elif mutation == "type":
        envelope["detail-type"] = draw(
            st.sampled_from([*sorted(DETAILS), "order.placed.v2", "", "Order Placed"])
        )
    elif mutation == "envelope":
        field = draw(st.sampled_from(["id", "time", "detail", "detail-type", "source"]))
        if draw(st.booleans()):
            envelope.pop(field)
        else:
            envelope[field] = draw(st.sampled_from(JUNK))
    elif mutation == "raw":
        text = json.dumps(envelope)
        return draw(
            st.sampled_from(
                [text[: len(text) // 2], "null", "[]", "{}", "not json", '"a string"', ""]
            )
        )
    return json.dumps(envelope)


def customers_json(store: MemoryStore) -> dict[str, str]:
    return {cid: c.model_dump_json() for cid, c in sorted(store.customers.items())}


def ingest(store: MemoryStore) -> tuple[IngestService, MemoryDeadLetters, MemoryPublisher]:
    def erase(customer_id: str) -> ErasureReport:
        found = store.customers.pop(customer_id, None) is not None
        store.erased_ids.add(customer_id)
        return ErasureReport(customer_found=found, activity_deleted=0, journeys_stopped=0)

    dead, published = MemoryDeadLetters(), MemoryPublisher()
    service = IngestService(
        store,
        published,
        dead,
        KizunaConfig(),
        FixedClock(NOW),
        max_receive_count=MAX_RECEIVES,
        eraser=erase,
    )
    return service, dead, published


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=8).flatmap(
        lambda seeds: st.tuples(*[event_bodies(i) for i in range(len(seeds))])
    )
)
def test_every_event_is_applied_or_dead_lettered_and_touches_only_its_customer(
    bodies: tuple[str, ...],
) -> None:
    # Given stored customers, some named by the batch and some not
    store = MemoryStore()
    for cid in [NAMED[0], *BYSTANDERS]:
        store.customers[cid] = Customer(customer_id=cid, email=f"{cid}@example.com", version=1)
    before = customers_json(store)
    service, dead, published = ingest(store)
    records = {f"m{i}": body for i, body in enumerate(bodies)}

    # When SQS delivers the batch, and again what it reports failed, up to the last receive
    pending = dict(records)
    for receive in range(1, MAX_RECEIVES + 1):
        if not pending:
            break
        batch = sqs_event(*(sqs_record(body, mid, receive) for mid, body in pending.items()))
        response = service.process_batch(batch)  # never raises
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        assert failed <= set(pending)
        pending = {mid: body for mid, body in pending.items() if mid in failed}

    # Then nothing is left to retry: each record is applied or dead-lettered with a reason
    assert pending == {}
    letters = {letter.message_id: letter for letter in dead.letters}
    assert len(letters) == len(dead.letters)  # dead-lettered once
    applied: dict[str, str] = {}  # message id -> the customer it names
    for mid, body in records.items():
        try:
            # the contract as ingest holds it: the schema, and occurred_at within the
            # configuration's window of the receiver's clock
            event = parse_inbound(body, NOW, KizunaConfig().event_time)
        except EventRejected as rejected:
            letter = letters.get(mid)
            assert letter is not None, f"{mid} invalid ({rejected.reason}) but not dead-lettered"
            assert letter.reason.strip() and letter.error_type == rejected.error_type
            assert letter.body == body  # kept exactly as it arrived
            continue
        if event.detail_type == "preferences.changed":
            # the configuration's contract: a topic it does not declare, or an opt-out of
            # the transactional topic, is refused as an invalid event, before any change
            problem = KizunaConfig().preferences.choice_problem(event.detail.topics)
            if problem is not None:
                assert mid in letters, f"{mid} names a topic the configuration refuses"
                assert letters[mid].reason.strip()
                assert letters[mid].error_type == "InvalidEvent"
                continue
        if (
            event.detail_type in ("order.placed", "order.refunded")
            and event.detail.currency != KizunaConfig().loyalty.currency  # type: ignore[attr-defined]
        ):
            # the configuration's contract: points and spend count the shop's one currency
            assert mid in letters, f"{mid} is an order in another currency, not refused"
            assert letters[mid].error_type == "InvalidEvent"
            continue
        if event.detail_type == "order.refunded" and mid in letters:
            # the state's contract: a refund id names one amount (ids repeat here)
            assert letters[mid].error_type == "InvalidEvent"
            assert "another amount" in letters[mid].reason
            continue
        if mid in letters:  # valid, but could not be applied: kept with the reason
            assert letters[mid].reason.strip()
            assert letters[mid].error_type not in ("InvalidEnvelope", "InvalidEvent")
            continue
        applied[mid] = event.customer_id
        if event.detail_type == ERASE_TYPE:
            assert event.customer_id not in store.customers
    # customers no applied event names are unchanged, byte for byte
    after = customers_json(store)
    named = set(applied.values())
    assert {c: j for c, j in after.items() if c not in named} == {
        c: j for c, j in before.items() if c not in named
    }
    # derived events speak only of customers an applied event named
    assert {e.detail.customer_id for e in published.events} <= named
