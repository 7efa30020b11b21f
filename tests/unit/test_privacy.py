"""Erasure routing in ingest (no AWS): an erase request is not folded into state, the
customer's other events in the batch are dropped, and a late event does not re-create an
erased customer."""

from __future__ import annotations

from typing import Any

from kizuna.domain.privacy import ErasureReport, erase, erased_key, program_of
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, order
from tests.sqs_events import sqs_event, sqs_record


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

    def mark_erased(self, key: str, expires_at: int) -> None:
        self.markers[key] = expires_at

    def count_erasure(self, day: str) -> None:
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
