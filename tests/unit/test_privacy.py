"""Erasure routing in ingest (no AWS): an erase request is not folded into state, the
customer's other events in the batch are dropped, and a late event does not re-create an
erased customer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kizuna.domain.privacy import (
    ERASED_MARKER_DAYS,
    SWEEP_AFTER,
    ErasureReport,
    erase,
    erased_key,
    program_of,
)
from kizuna.events import ERASE_TYPE
from kizuna.events.envelope import SWEEP_SOURCE, erasure_sweep_event, parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, order
from tests.sqs_events import sqs_event, sqs_record

ROOT = Path(__file__).resolve().parents[2]


def erase_request(cid: str) -> dict[str, Any]:
    return {
        "id": f"erase-{cid}",
        "detail-type": "customer.erase",
        "source": "com.example.crm",
        "time": T0.isoformat(),
        "detail": {"customer_id": cid, "occurred_at": T0.isoformat(), "request_id": "dsr-1"},
    }


def test_erase_request_is_routed_and_drops_the_customers_other_events() -> None:
    store, erased = MemoryStore(), []

    def eraser(cid: str) -> ErasureReport:
        erased.append(cid)
        store.customers.pop(cid, None)
        store.erased_ids.add(cid)
        return ErasureReport(customer_found=True, activity_deleted=0, journeys_stopped=0)

    svc = IngestService(
        store,
        MemoryPublisher(),
        MemoryDeadLetters(),
        KizunaConfig(),
        FixedClock(T0),
        max_receive_count=3,
        eraser=eraser,
    )
    # given a batch with an order and an erasure for c1, and an order for c2
    response = svc.process_batch(
        sqs_event(
            sqs_record(order("c1", "o1", 1000, T0), "m1"),
            sqs_record(erase_request("c1"), "m2"),
            sqs_record(order("c2", "o2", 1000, T0), "m3"),
        )
    )
    # then c1 is erased (not folded), c2 processed
    assert response == {"batchItemFailures": []}
    assert erased == ["c1"] and "c1" not in store.customers
    assert store.customers["c2"].order_count == 1
    # when a late event for c1 arrives, it does not bring c1 back
    svc.process_batch(sqs_event(sqs_record(order("c1", "o3", 1000, T0), "m4")))
    assert "c1" not in store.customers and svc.stats.dropped_erased == 1


ADDRESS_REFERENCES = [
    ("hanako@example.jp", "an email address"),
    ("dsr-hanako@example.jp", "an email address"),
    ("+819012345678", "a phone number"),
    ("+81-90-1234-5678", "a phone number"),
    ("090-1234-5678", "a phone number"),
    ("(03)1234-5678", "a phone number"),
    # as a Japanese form or IME writes them: full-width, a katakana long-vowel mark or a
    # Unicode dash between the digits, a tel: link
    ("hanako＠example.jp", "an email address"),
    ("０９０－１２３４－５６７８", "a phone number"),
    ("０９０１２３４５６７８", "a phone number"),
    ("＋８１９０１２３４５６７８", "a phone number"),
    ("090ー1234ー5678", "a phone number"),
    ("090‐1234‐5678", "a phone number"),
    ("（０３）１２３４－５６７８", "a phone number"),
    ("tel:+819012345678", "a phone number"),
]


def erasing_ingest() -> tuple[IngestService, list[str], MemoryDeadLetters]:
    erased: list[str] = []

    def eraser(cid: str) -> ErasureReport:
        erased.append(cid)
        return ErasureReport(customer_found=True, activity_deleted=0, journeys_stopped=0)

    dlq = MemoryDeadLetters()
    svc = IngestService(
        MemoryStore(), MemoryPublisher(), dlq, KizunaConfig(), FixedClock(T0), 3, eraser=eraser
    )
    return svc, erased, dlq


@pytest.mark.parametrize(("reference", "said"), ADDRESS_REFERENCES)
def test_an_erase_request_whose_reference_is_an_address_is_dead_lettered_not_logged(
    reference: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given a producer that uses the requester's email or phone as the request's reference:
    # ingest logs the reference as sent, so it would write the address to the logs
    svc, erased, dlq = erasing_ingest()
    request = erase_request("c1")
    request["detail"]["request_id"] = reference
    assert svc.process_batch(sqs_event(sqs_record(request, "m1"))) == {"batchItemFailures": []}
    # then the request is refused, as any invalid event: dead-lettered with why (naming the
    # field, never its value), nothing erased, and the address is in no log line
    assert erased == []
    (letter,) = dlq.letters
    assert "detail.request_id" in letter.reason and said in letter.reason
    assert reference not in letter.reason
    logged = [repr(vars(r)) for r in caplog.records]
    assert any("event rejected" in line for line in logged)
    assert not any(reference in line for line in logged)


def test_the_published_schema_refuses_the_references_ingest_refuses() -> None:
    # a producer validating against schemas/customer.erase.v1.json learns it before sending
    schema = json.loads((ROOT / "schemas" / "customer.erase.v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    detail = {"schema_version": 1, "customer_id": "c1", "occurred_at": T0.isoformat()}
    for reference, _ in ADDRESS_REFERENCES:
        assert not validator.is_valid({**detail, "request_id": reference}), reference
    for reference in OWN_REFERENCES:
        assert validator.is_valid({**detail, "request_id": reference}), reference


OWN_REFERENCES = ["dsr-1", "REQ-0312345678", "12345678", "2026-01-05", "チケット-0312345678"]


@pytest.mark.parametrize("reference", OWN_REFERENCES)
def test_an_erase_requests_own_reference_is_logged_as_sent(
    reference: str, caplog: pytest.LogCaptureFixture
) -> None:
    # the operator finds the erasure in the logs by the reference the producer sent
    svc, erased, dlq = erasing_ingest()
    request = erase_request("c1")
    request["detail"]["request_id"] = reference
    svc.process_batch(sqs_event(sqs_record(request, "m1")))
    assert erased == ["c1"] and dlq.letters == []
    (done,) = [r for r in caplog.records if r.getMessage() == "customer erased"]
    assert done.request_ids == [reference]  # type: ignore[attr-defined]


class PrivacyFake:
    def __init__(self) -> None:
        self.customer: dict[str, Any] | None = {"customer_id": "c1", "email": "a@example.jp"}
        self.items = [
            {
                "pk": "c1",
                "sk": "JOURNEY#winback",
                "program": "winback",
                "execution": "winback-ab",
                "cohort": "winback-20260105T1000Z",
            },
            {"pk": "c1", "sk": "MSG#second-purchase-coupon-cd#coupon"},
            {"pk": "c1", "sk": "ORDER#2026#o1"},
        ]
        self.markers: dict[str, int] = {}
        self.sweeps: dict[str, int] = {}
        self.counted: set[str] = set()
        self.days: list[str] = []

    def customer_item(self, customer_id: str) -> dict[str, Any] | None:
        return self.customer

    def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]:
        return list(self.items)

    def delete_activity(self, customer_id: str, sort_keys: Any) -> None:
        self.items = [i for i in self.items if i["sk"] not in set(sort_keys)]

    def delete_customer(self, customer_id: str) -> bool:
        found, self.customer = self.customer is not None, None
        return found

    def mark_erased(self, key: str, expires_at: int, now: int) -> int | None:
        live = self.markers.get(key, 0) > now
        if not live:
            self.sweeps.pop(key, None)
            self.counted.discard(key)
        self.markers[key] = expires_at
        return self.sweeps.get(key)

    def note_sweep(self, key: str, at: int) -> None:
        self.sweeps[key] = at

    def count_erasure(self, day: str, key: str) -> None:
        if key not in self.counted:
            self.counted.add(key)
            self.days.append(day)


def test_erase_leaves_journeys_deletes_everything_and_keeps_a_hashed_marker() -> None:
    store, left = PrivacyFake(), []

    class Cohorts:
        def leave_cohort(self, cohort: str, customer_id: str) -> int:
            left.append((cohort, customer_id))
            return 1

    report = erase("c1", store, Cohorts(), T0)
    # out of the running journey's cohort (its execution never carried the id)
    assert left == [("winback-20260105T1000Z", "c1")]
    assert (report.customer_found, report.activity_deleted, report.journeys_stopped) == (
        True,
        3,
        1,
    )
    assert store.items == [] and store.customer is None and store.days == [T0.date().isoformat()]
    assert (
        list(store.markers) == [erased_key("c1")] and len(erased_key("c1")) == len("ERASED#") + 64
    )
    assert program_of("second-purchase-coupon-0123") == "second-purchase-coupon"


class NoCohorts:
    def leave_cohort(self, cohort: str, customer_id: str) -> int:
        return 0


class Sweeps:
    def __init__(self, failures: int = 0) -> None:
        self.scheduled: list[tuple[str, datetime]] = []
        self.failures = failures

    def schedule(self, customer_id: str, at: datetime) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Scheduler: 500")
        self.scheduled.append((customer_id, at))


def written_back() -> list[dict[str, Any]]:
    """A decision row a journey step that read the customer before the erasure wrote after."""
    return [{"pk": "c1", "sk": "STEP#winback-ab#check", "cohort": "winback-20260105T1000Z"}]


def test_an_erasure_schedules_its_sweep_which_schedules_nothing_and_is_not_counted() -> None:
    store, sweeps = PrivacyFake(), Sweeps()
    # when c1 is erased
    first = erase("c1", store, NoCohorts(), T0, sweeps=sweeps)
    # then its sweep is scheduled SWEEP_AFTER later, and the erasure counted once
    assert sweeps.scheduled == [("c1", T0 + SWEEP_AFTER)]
    assert first.sweep_scheduled == T0 + SWEEP_AFTER
    assert store.days == [T0.date().isoformat()]
    # when a step writes back, and the request is delivered again before the sweep
    store.items = written_back()
    again = erase("c1", store, NoCohorts(), T0 + timedelta(minutes=1), sweeps=sweeps)
    # then it deletes it, schedules no other sweep and is not counted again
    assert again.sweep_scheduled is None and again.activity_deleted == 1 and store.items == []
    assert len(sweeps.scheduled) == 1 and store.days == [T0.date().isoformat()]
    # when the sweep runs, after another write-back
    store.items = written_back()
    swept = erase("c1", store, NoCohorts(), T0 + SWEEP_AFTER, sweeps=sweeps)
    # then it deletes it too, schedules nothing and counts nothing
    assert swept.sweep_scheduled is None and swept.activity_deleted == 1 and store.items == []
    assert len(sweeps.scheduled) == 1 and store.days == [T0.date().isoformat()]
    # and so does a request long after (within the marker's life)
    later = erase("c1", store, NoCohorts(), T0 + timedelta(days=3), sweeps=sweeps)
    assert later.sweep_scheduled is None and len(sweeps.scheduled) == 1


def test_an_erasure_whose_sweep_could_not_be_scheduled_erases_and_schedules_when_retried() -> None:
    store, sweeps = PrivacyFake(), Sweeps(failures=1)
    # when scheduling the sweep fails
    with pytest.raises(RuntimeError):
        erase("c1", store, NoCohorts(), T0, sweeps=sweeps)
    # then the customer is erased all the same (and counted), the error raised afterwards
    assert store.items == [] and store.customer is None and store.days == [T0.date().isoformat()]
    # when SQS delivers the request again, after the instant the sweep would have had
    retry = T0 + SWEEP_AFTER + timedelta(minutes=3)
    report = erase("c1", store, NoCohorts(), retry, sweeps=sweeps)
    # then the retry schedules it, SWEEP_AFTER after itself; the erasure is counted once
    assert sweeps.scheduled == [("c1", retry + SWEEP_AFTER)]
    assert report.sweep_scheduled == retry + SWEEP_AFTER
    assert store.days == [T0.date().isoformat()]


def test_an_erasure_after_the_marker_expired_is_a_new_one_with_its_own_sweep() -> None:
    store, sweeps = PrivacyFake(), Sweeps()
    erase("c1", store, NoCohorts(), T0, sweeps=sweeps)
    # the marker expired (TTL deletes lazily: the item may still be there)
    later = T0 + timedelta(days=ERASED_MARKER_DAYS, hours=1)
    store.customer = {"customer_id": "c1"}  # a new customer under the same id
    report = erase("c1", store, NoCohorts(), later, sweeps=sweeps)
    assert report.sweep_scheduled == later + SWEEP_AFTER
    assert sweeps.scheduled[-1] == ("c1", later + SWEEP_AFTER)
    assert store.days == [T0.date().isoformat(), later.date().isoformat()]


def test_the_sweeps_event_is_an_erase_request_ingest_accepts_without_the_id_in_its_id() -> None:
    at = T0 + SWEEP_AFTER
    event = parse_inbound(erasure_sweep_event("c-123", at), at, KizunaConfig().event_time)
    assert (event.detail_type, event.customer_id, event.source) == (
        ERASE_TYPE,
        "c-123",
        SWEEP_SOURCE,
    )
    assert "c-123" not in event.event_id and event.detail.occurred_at == at
    # one per customer and instant: a retried schedule's event has the same id
    assert erasure_sweep_event("c-123", at) == erasure_sweep_event("c-123", at)
    assert erasure_sweep_event("c-124", at) != erasure_sweep_event("c-123", at)
