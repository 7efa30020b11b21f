"""The ingest batch: partial failures, dead letters with reasons, retries, re-emission."""

from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, days, order
from tests.sqs_events import sqs_event, sqs_record


def service(
    publisher: MemoryPublisher | None = None, store: MemoryStore | None = None
) -> tuple[IngestService, MemoryStore, MemoryPublisher, MemoryDeadLetters]:
    store = store or MemoryStore()
    publisher = publisher or MemoryPublisher()
    dlq = MemoryDeadLetters()
    # the clock reads the time of the latest event of these tests (a later one is rejected)
    clock = FixedClock(T0 + days(1))
    svc = IngestService(store, publisher, dlq, KizunaConfig(), clock, max_receive_count=3)
    return svc, store, publisher, dlq


def test_invalid_event_goes_to_the_dead_letters_and_the_rest_of_the_batch_is_processed() -> None:
    svc, store, publisher, dlq = service()
    bad = order("c2", "o9", 1000, T0)
    bad["detail"]["total"] = "-1"
    event = sqs_event(
        sqs_record(order("c1", "o1", 30000, T0), "m1"),
        sqs_record(bad, "m2"),
        sqs_record("not json at all", "m3"),
        sqs_record(order("c1", "o2", 30000, T0 + days(1)), "m4"),
    )
    response = svc.process_batch(event)
    # nothing to retry: good records done, bad ones kept with their reasons
    assert response == {"batchItemFailures": []}
    assert store.customers["c1"].order_count == 2
    assert "c2" not in store.customers
    assert [(d.message_id, d.error_type) for d in dlq.letters] == [
        ("m2", "InvalidEvent"),
        ("m3", "InvalidEnvelope"),
    ]
    assert "detail.total" in dlq.letters[0].reason
    assert dlq.letters[1].body == "not json at all"
    assert [e.detail_type for e in publisher.events] == [
        "customer.first_purchase",
        "customer.repeat_purchase",
        "customer.rank_changed",
    ]


def test_failed_put_events_retries_the_record_and_redelivery_re_emits_the_same_events() -> None:
    flaky = MemoryPublisher(fail_first=1)
    svc, store, publisher, dlq = service(publisher=flaky)
    record = sqs_record(order("c1", "o1", 30000, T0), "m1")
    # first delivery: state saved, but the derived event could not be put
    assert svc.process_batch(sqs_event(record)) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert store.customers["c1"].order_count == 1 and publisher.events == []
    # SQS delivers it again: the state does not change, the derived event is put this time
    record2 = sqs_record(order("c1", "o1", 30000, T0), "m1", receive_count=2)
    assert svc.process_batch(sqs_event(record2)) == {"batchItemFailures": []}
    assert [e.detail.event_id for e in publisher.events] == ["c1:first_purchase"]
    assert store.customers["c1"].order_count == 1 and store.saves == 1
    assert dlq.letters == []


def test_duplicate_delivery_after_success_re_emits_with_the_same_event_ids() -> None:
    svc, store, publisher, _ = service()
    raw = order("c1", "o1", 60000, T0)
    svc.process_batch(sqs_event(sqs_record(raw, "m1")))
    svc.process_batch(sqs_event(sqs_record(raw, "m1-dup")))
    ids = [e.detail.event_id for e in publisher.events]
    # at-least-once out: same ids, so consumers start one journey
    assert ids[: len(ids) // 2] == ids[len(ids) // 2 :]
    assert store.saves == 1


class ExplodingStore(MemoryStore):
    def save_customer(self, customer, expected_version):  # type: ignore[no-untyped-def]
        raise ConnectionError("DynamoDB unavailable")


def test_transient_failure_is_retried_then_dead_lettered_with_its_reason() -> None:
    svc, _, _, dlq = service(store=ExplodingStore())
    raw = order("c1", "o1", 30000, T0)
    first = svc.process_batch(sqs_event(sqs_record(raw, "m1", receive_count=1)))
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert dlq.letters == []
    last = svc.process_batch(sqs_event(sqs_record(raw, "m1", receive_count=3)))
    assert last == {"batchItemFailures": []}
    assert [(d.error_type, d.reason) for d in dlq.letters] == [
        ("ConnectionError", "DynamoDB unavailable")
    ]


def test_concurrent_writer_is_retried_not_lost() -> None:
    class RacingStore(MemoryStore):
        raced = False

        def save_customer(self, customer, expected_version):  # type: ignore[no-untyped-def]
            if not self.raced:
                self.raced = True
                # another Lambda saves the same customer first
                super().save_customer(
                    customer.model_copy(update={"region": "Kansai"}), expected_version
                )
            return super().save_customer(customer, expected_version)

    svc, store, _, _ = service(store=RacingStore())
    svc.process_batch(sqs_event(sqs_record(order("c1", "o1", 30000, T0), "m1")))
    assert store.customers["c1"].order_count == 1
    assert svc.stats.conflicts == 1


def test_an_event_the_state_refuses_creates_no_customer() -> None:
    """A new customer's only event refused by the state (an order in another currency):
    dead-lettered with the reason, and no empty customer item written under the id."""
    svc, store, _, dlq = service()
    dollars = order("c2", "o1", 1000, T0)
    dollars["detail"]["currency"] = "USD"
    assert svc.process_batch(sqs_event(sqs_record(dollars, "m1"))) == {"batchItemFailures": []}
    assert "c2" not in store.customers
    ((mid, kind, reason),) = [(d.message_id, d.error_type, d.reason) for d in dlq.letters]
    assert (mid, kind) == ("m1", "InvalidEvent") and "loyalty.currency" in reason
