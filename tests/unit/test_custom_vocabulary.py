"""Custom attributes and custom events at ingest (issue 17): validated by the configuration's
vocabulary (good, undeclared, wrong type, enum, oversize), folded (attributes last writer
wins per attribute, a null clears one; a custom event becomes an activity row with its
retention and a behaviour counter), counted once per occurrence whatever the delivery,
evaluated across a window boundary, erased with the customer and never logged."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kizuna.adapters.dynamodb import activity_to_item, customer_to_item
from kizuna.domain.behaviour import count_occurrence
from kizuna.domain.customer import MAX_ATTRIBUTES_BYTES, BehaviourCounter, Customer
from kizuna.domain.ingest import apply_events
from kizuna.domain.privacy import erase, mask_attributes
from kizuna.domain.timestamps import epoch_seconds
from kizuna.events.custom import BUILTIN, MAX_OCCURRENCES, CustomEventDetail, vocabulary
from kizuna.events.envelope import EventRejected, ParsedEvent, parse_inbound
from kizuna.ports import PutOutcome
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.members import trigger_of
from kizuna.programs.model import Program
from kizuna.programs.patterns import matches
from kizuna.programs.view import customer_view
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger as kizuna_logger
from kizuna.services.evaluate import incoming as evaluate_incoming
from kizuna.services.ingest import IngestService
from kizuna.services.intake import EventIntake
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import envelope, opted_in, order
from tests.sqs_events import sqs_event, sqs_record

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T + timedelta(days=40)  # ingest's clock: after every event of these tests
SECRET = "Hanako-Secret-7731"  # a personal attribute's value: must never be logged

CFG = KizunaConfig.model_validate(
    {
        "custom": {
            "attributes": [
                {"name": "tier", "type": "string", "enum": ["bronze", "silver", "gold"]},
                {"name": "favourite_store", "type": "string", "max_length": 32},
                {"name": "newsletter", "type": "boolean"},
                {"name": "member_since", "type": "date"},
                {"name": "score", "type": "number"},
                {"name": "interests", "type": "string_list", "max_items": 3},
                {"name": "nickname", "type": "string", "personal": True},
                {"name": "anniversary", "type": "date", "personal": True},
            ],
            "events": [
                {
                    "detail_type": "wishlist.added",
                    "fields": [
                        {
                            "name": "product_id",
                            "type": "string",
                            "required": True,
                            "max_length": 64,
                        },
                        {"name": "price", "type": "number"},
                        {"name": "note", "type": "string", "personal": True},
                        {"name": "tags", "type": "string_list", "max_items": 2},
                        {"name": "seen_at", "type": "datetime"},
                    ],
                    "retention_days": 30,
                    "windows_days": [14, 30],
                }
            ],
            "tracked": [
                {"detail_type": "app.opened", "windows_days": [30]},
                {"detail_type": "order.placed", "windows_days": [30]},
            ],
        }
    }
)
VOCAB = vocabulary(CFG)


def upsert(at: datetime, event_id: str, attributes: dict[str, Any], **fields: Any) -> Any:
    detail = {"customer_id": "c1", "occurred_at": at.isoformat(), **fields}
    return envelope("customer.upserted", {**detail, "attributes": attributes}, event_id)


def wishlist(at: datetime, event_id: str, **fields: Any) -> dict[str, Any]:
    detail = {"customer_id": "c1", "occurred_at": at.isoformat(), "product_id": "p-1", **fields}
    return envelope("wishlist.added", detail, event_id)


def app_opened(at: datetime, event_id: str) -> dict[str, Any]:
    return envelope("app.opened", {"customer_id": "c1", "occurred_at": at.isoformat()}, event_id)


def parse(raw: dict[str, Any]) -> ParsedEvent:
    return parse_inbound(json.loads(json.dumps(raw)), NOW, CFG.event_time, VOCAB)


def rejection(raw: dict[str, Any]) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        parse(raw)
    return caught.value


def fold(raws: Sequence[dict[str, Any]], customer: Customer | None = None) -> Customer:
    customer = customer or Customer(customer_id="c1")
    for raw in raws:
        customer = apply_events(customer, [parse(raw)], CFG, NOW).customer
    return customer


def service(store: MemoryStore, cfg: KizunaConfig = CFG) -> tuple[IngestService, MemoryDeadLetters]:
    dlq = MemoryDeadLetters()
    svc = IngestService(
        store, MemoryPublisher(), dlq, cfg, FixedClock(NOW), max_receive_count=3, eraser=None
    )
    return svc, dlq


def deliver(svc: IngestService, *raws: dict[str, Any]) -> dict[str, Any]:
    records = [sqs_record(raw, f"m{n}") for n, raw in enumerate(raws)]
    return svc.process_batch(sqs_event(*records))


# -- attributes: validation ---------------------------------------------------------------------
def test_declared_attributes_are_folded_onto_the_customer_typed_as_stored() -> None:
    # given a customer.upserted with one attribute of each type
    raw = upsert(
        T,
        "ev-1",
        {
            "tier": "gold",
            "favourite_store": "Shibuya",
            "newsletter": True,
            "member_since": "2020-04-01",
            "score": 12.5,
            "interests": ["tea", "sweets"],
            "nickname": SECRET,
        },
        region="Kanto",
    )
    # when it is folded
    customer = fold([raw])
    # then numbers are Decimal, dates ISO strings, lists lists; each attribute is stamped
    assert customer.attributes == {
        "tier": "gold",
        "favourite_store": "Shibuya",
        "newsletter": True,
        "member_since": "2020-04-01",
        "score": Decimal("12.5"),
        "interests": ["tea", "sweets"],
        "nickname": SECRET,
    }
    assert customer.region == "Kanto"
    assert {k for k in customer.stamps if k.startswith("attributes.")} == {
        f"attributes.{name}" for name in customer.attributes
    }
    # and the item is what DynamoDB takes (no float, no date object)
    item = customer_to_item(customer)
    assert item["attributes"]["score"] == Decimal("12.5")


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        # an undeclared name is caught, not repeated (it could be personal data)
        ({"tierr": "gold"}, "detail.attributes.tierr"),
        ({"score": "12"}, "detail.attributes.score"),  # a number is a JSON number
        ({"newsletter": "true"}, "detail.attributes.newsletter"),
        ({"member_since": "2020-13-01"}, "detail.attributes.member_since"),
        ({"interests": "tea"}, "detail.attributes.interests"),
        ({"tier": "platinum"}, "detail.attributes.tier"),  # outside the enum
        ({"favourite_store": "x" * 33}, "detail.attributes.favourite_store"),  # over max_length
        ({"interests": ["a", "b", "c", "d"]}, "detail.attributes.interests"),  # over max_items
        ({"nickname": "Hanako\u202e"}, "detail.attributes.nickname"),  # a bidi override
        ({"score": 1e13}, "detail.attributes.score"),  # beyond +-1e12
        ({"member_since": "2026-03-02T00:00:00Z"}, "detail.attributes.member_since"),
        ({"member_since": 1772409600}, "detail.attributes.member_since"),
        # NaN and Infinity are not JSON numbers (Python's json reads and writes them)
        ({"score": float("nan")}, "detail.attributes.score"),
        ({"score": float("-inf")}, "detail.attributes.score"),
    ],
)
def test_a_bad_attribute_is_rejected_naming_it_and_never_echoing_the_value(
    attributes: dict[str, Any], field: str
) -> None:
    error = rejection(upsert(T, "ev-1", attributes))
    assert error.error_type == "InvalidEvent"
    assert field in error.reason
    for value in attributes.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in error.reason


def test_without_declarations_attributes_and_custom_events_are_rejected() -> None:
    # given the default vocabulary (no declarations): the contract as before issue 17
    with pytest.raises(EventRejected) as caught:
        parse_inbound(upsert(T, "ev-1", {"tier": "gold"}))
    assert "detail.attributes" in caught.value.reason
    with pytest.raises(EventRejected) as unknown:
        parse_inbound(wishlist(T, "ev-2"), vocab=BUILTIN)
    assert unknown.value.error_type == "UnknownEventType"


def test_an_events_attributes_over_the_items_budget_are_rejected_at_validation() -> None:
    # given attributes whose declarations allow more than the customer item's budget
    big = KizunaConfig.model_validate(
        {
            "custom": {
                "attributes": [
                    {
                        "name": f"notes_{n}",
                        "type": "string_list",
                        "max_items": 50,
                        "max_length": 2048,
                    }
                    for n in range(2)
                ]
            }
        }
    )
    raw = upsert(T, "ev-1", {"notes_0": ["n" * 2000] * 45})
    with pytest.raises(EventRejected) as caught:
        parse_inbound(raw, NOW, big.event_time, vocabulary(big))
    assert caught.value.reason == (
        f"customer.upserted: detail.attributes: over {MAX_ATTRIBUTES_BYTES} bytes "
        "(names and values as UTF-8 JSON)"
    )
    # when two events each within it would together take the customer over it
    store = MemoryStore()
    svc, dlq = service(store, big)
    first = upsert(T, "ev-1", {"notes_0": ["n" * 2000] * 30})
    second = upsert(T + timedelta(hours=1), "ev-2", {"notes_1": ["m" * 2000] * 30})
    assert deliver(svc, first, second) == {"batchItemFailures": []}
    # then the second is dead-lettered with the reason, and the customer keeps the first
    [letter] = dlq.letters
    assert (letter.message_id, letter.error_type) == ("m1", "InvalidEvent")
    assert "detail.attributes" in letter.reason and str(MAX_ATTRIBUTES_BYTES) in letter.reason
    assert set(store.customers["c1"].attributes) == {"notes_0"}
    assert "attributes.notes_1" not in store.customers["c1"].stamps


def test_a_nan_on_the_queue_is_dead_lettered_at_once_and_the_batch_goes_on() -> None:
    # given a batch whose first event carries NaN (in an attribute, in a custom event's
    # field) and a good event after it
    store = MemoryStore()
    svc, dlq = service(store)
    nan_attribute = upsert(T, "ev-1", {"score": float("nan")})
    nan_field = wishlist(T, "ev-2", price=float("nan"))
    # when ingest takes it
    response = deliver(svc, nan_attribute, nan_field, app_opened(T, "ev-3"))
    # then the NaN events are refused as not JSON (not retried as a crash; a detail parsed
    # by Python's json is refused by the model too, see above), the rest applied
    assert response == {"batchItemFailures": []}
    assert [(d.message_id, d.error_type) for d in dlq.letters] == [
        ("m0", "InvalidEnvelope"),
        ("m1", "InvalidEnvelope"),
    ]
    assert "NaN or Infinity" in dlq.letters[0].reason
    assert store.customers["c1"].behaviour["app.opened"].total == 1


def test_250_attributes_of_256_characters_fit() -> None:
    many = KizunaConfig.model_validate(
        {"custom": {"attributes": [{"name": f"a{n:039d}", "type": "string"} for n in range(250)]}}
    )
    raw = upsert(T, "ev-1", {f"a{n:039d}": "v" * 256 for n in range(250)})
    parsed = parse_inbound(raw, NOW, many.event_time, vocabulary(many))
    customer = apply_events(Customer(customer_id="c1"), [parsed], many, NOW).customer
    assert len(customer.attributes) == 250


# -- attributes: last writer wins, null clears ------------------------------------------------
def test_a_null_clears_an_attribute_and_an_older_value_does_not_bring_it_back() -> None:
    set_gold = upsert(T, "ev-1", {"tier": "gold", "score": 3})
    cleared = upsert(T + timedelta(hours=2), "ev-2", {"tier": None})
    older = upsert(T + timedelta(hours=1), "ev-3", {"tier": "silver"})
    customer = fold([set_gold, cleared, older])
    # the null cleared tier (its stamp kept), the older silver lost; score untouched
    assert customer.attributes == {"score": Decimal(3)}
    assert customer.stamps["attributes.tier"].startswith("2026-03-02T11:00:00")
    # an absent attribute is left as it is (only the named ones change)
    assert fold([set_gold, upsert(T + timedelta(hours=3), "ev-4", {})]).attributes["tier"] == "gold"


def test_attributes_are_last_writer_wins_whatever_the_order_of_delivery() -> None:
    events = [
        upsert(T, "ev-1", {"tier": "gold", "interests": ["tea"]}),
        upsert(T + timedelta(hours=1), "ev-2", {"tier": "silver", "score": 1}),
        upsert(T + timedelta(hours=2), "ev-3", {"interests": None, "score": 2.5}),
        upsert(T + timedelta(hours=1), "ev-4", {"tier": "bronze"}),  # same time: digest decides
        upsert(T + timedelta(minutes=30), "ev-5", {"newsletter": False, "nickname": SECRET}),
    ]
    states = {
        json.dumps(
            [c.attributes, {k: v for k, v in c.stamps.items() if k.startswith("attributes.")}],
            default=str,
            sort_keys=True,
        )
        for c in (fold(list(order)) for order in itertools.permutations(events))
    }
    assert len(states) == 1
    final = fold(events).attributes
    assert final["score"] == Decimal("2.5") and "interests" not in final
    assert final["tier"] in {"silver", "bronze"} and final["nickname"] == SECRET


# -- custom events: validation ------------------------------------------------------------------
def test_a_declared_custom_event_is_kept_as_activity_without_its_personal_fields() -> None:
    raw = wishlist(
        T,
        "ev-w1",
        price=1200.5,
        note=SECRET,
        tags=["gift"],
        seen_at="2026-03-02T17:59:00+09:00",
    )
    parsed = parse(raw)
    assert isinstance(parsed.detail, CustomEventDetail)
    applied = apply_events(Customer(customer_id="c1"), [parsed], CFG, NOW)
    [row] = applied.activity
    assert (row.kind, row.key) == ("EVENT", "wishlist.added#ev-w1")
    # its fields nested under "fields" (never beside the row's keys), the personal note left out
    assert row.data == {
        "type": "wishlist.added",
        "fields": {
            "product_id": "p-1",
            "price": Decimal("1200.5"),
            "tags": ["gift"],
            "seen_at": "2026-03-02T08:59:00.000000Z",
        },
    }
    assert SECRET not in json.dumps(activity_to_item(row), default=str)
    # kept for the event's retention (30 days)
    assert row.expires_at == epoch_seconds(T + timedelta(days=30))


def test_a_custom_field_cannot_overwrite_the_activity_rows_keys() -> None:
    # a field named like a key ("pk") cannot be declared away from "fields" nor sent undeclared
    error = rejection(wishlist(T, "ev-1", pk="another-customer"))
    assert "detail.pk: Extra inputs" in error.reason


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"colour": "red"}, "detail.colour", "Extra inputs are not permitted"),  # undeclared
        ({"price": "12"}, "detail.price", ""),
        ({"tags": ["a", "b", "c"]}, "detail.tags", ""),
        ({"product_id": "p" * 65}, "detail.product_id", "at most 64 characters"),
        ({"seen_at": "2026-03-02T17:59:00"}, "detail.seen_at", "ISO 8601 text"),
        # epoch seconds, as a number or digits as text, and forms a template's |date refuses
        ({"seen_at": 1772474340}, "detail.seen_at", "not a number"),
        ({"seen_at": "1772474340"}, "detail.seen_at", "ISO 8601 text"),
        ({"seen_at": "2026-03-02 17:59:00+09:00"}, "detail.seen_at", "ISO 8601 text"),
        ({"product_id": None}, "detail.product_id", ""),
    ],
)
def test_a_bad_custom_event_is_rejected_naming_the_field(
    fields: dict[str, Any], field: str, message: str
) -> None:
    error = rejection(wishlist(T, "ev-1", **fields))
    assert error.error_type == "InvalidEvent"
    assert error.reason.startswith("wishlist.added: ") and field in error.reason
    assert message in error.reason


def test_a_custom_event_missing_a_required_field_or_undeclared_is_rejected() -> None:
    raw = wishlist(T, "ev-1")
    del raw["detail"]["product_id"]
    assert "detail.product_id: Field required" in rejection(raw).reason
    unknown = rejection(envelope("wishlist.removed", raw["detail"], "ev-2"))
    assert unknown.error_type == "UnknownEventType"


def test_the_dead_letter_names_the_field_of_a_bad_custom_event() -> None:
    store = MemoryStore()
    svc, dlq = service(store)
    assert deliver(svc, wishlist(T, "ev-1", price="1200", note=SECRET)) == {"batchItemFailures": []}
    [letter] = dlq.letters
    assert letter.error_type == "InvalidEvent" and "detail.price" in letter.reason
    assert SECRET not in letter.reason and "c1" not in store.customers


# -- behaviour counters ---------------------------------------------------------------------------
TWICE_IN_14_DAYS = {"behaviour": {"wishlist.added": {"count_14d": [{"numeric": [">=", 2]}]}}}
NO_APP_FOR_30_DAYS = {"behaviour": {"app.opened": {"count_30d": [0]}}}


def view_at(customer: Customer, now: datetime) -> dict[str, Any]:
    return customer_view(customer, now, CFG)


def test_a_behavioural_condition_across_the_window_boundary() -> None:
    first, second = T, T + timedelta(days=3)
    customer = fold([wishlist(first, "ev-1"), wishlist(second, "ev-2")])
    counter = customer.behaviour["wishlist.added"]
    assert counter.recent == [epoch_seconds(first), epoch_seconds(second)] and counter.total == 2
    # one second before the first is 14 days old, both count
    just_before = first + timedelta(days=14) - timedelta(seconds=1)
    assert view_at(customer, just_before)["behaviour"]["wishlist.added"]["count_14d"] == 2
    assert matches(TWICE_IN_14_DAYS, view_at(customer, just_before))
    # exactly 14 days after it, the first drops out
    boundary = first + timedelta(days=14)
    assert view_at(customer, boundary)["behaviour"]["wishlist.added"] == {
        "count_14d": 1,
        "count_30d": 2,
        "total": 2,
        "days_since_last": 11,
    }
    assert not matches(TWICE_IN_14_DAYS, view_at(customer, boundary))


def test_not_done_for_30_days() -> None:
    # a customer who never opened the app has not opened it for 30 days
    never = fold([upsert(T, "ev-0", {"tier": "gold"})])
    assert matches(NO_APP_FOR_30_DAYS, view_at(never, T))
    opened = fold([app_opened(T, "ev-1")])
    assert not matches(NO_APP_FOR_30_DAYS, view_at(opened, T + timedelta(days=29, hours=23)))
    assert matches(NO_APP_FOR_30_DAYS, view_at(opened, T + timedelta(days=30)))


def test_a_duplicate_delivery_counts_once() -> None:
    store = MemoryStore()
    svc, _ = service(store)
    raw = wishlist(T, "ev-1")
    # delivered twice in one batch, then again in a later batch (SQS/EventBridge redelivery)
    deliver(svc, raw, raw)
    deliver(svc, raw)
    counter = store.customers["c1"].behaviour["wishlist.added"]
    assert (counter.recent, counter.total) == ([epoch_seconds(T)], 1)
    assert len([k for k in store.activity if k[1].startswith("EVENT#")]) == 1
    # a new occurrence counts
    deliver(svc, wishlist(T + timedelta(hours=1), "ev-2"))
    assert store.customers["c1"].behaviour["wishlist.added"].total == 2


def test_a_producers_retry_with_its_idempotency_key_counts_once() -> None:
    # the producer's call timed out after EventBridge took it; it puts the event again:
    # a new EventBridge id, the same idempotency_key -> one occurrence, one activity row
    store = MemoryStore()
    svc, _ = service(store)
    deliver(svc, wishlist(T, "ev-1", idempotency_key="shop-7f3a"))
    deliver(svc, wishlist(T, "ev-1-retry", idempotency_key="shop-7f3a"))
    counter = store.customers["c1"].behaviour["wishlist.added"]
    assert counter.total == 1
    assert len([k for k in store.activity if k[1].startswith("EVENT#")]) == 1
    # another key is another event; without a key, EventBridge's id is the identity
    deliver(svc, wishlist(T + timedelta(minutes=1), "ev-2", idempotency_key="shop-7f3b"))
    deliver(svc, wishlist(T + timedelta(minutes=2), "ev-3"))
    deliver(svc, wishlist(T + timedelta(minutes=2), "ev-3-retry"))
    assert store.customers["c1"].behaviour["wishlist.added"].total == 4


def test_an_idempotency_key_is_the_events_identity_per_customer_and_type() -> None:
    keyed = parse(wishlist(T, "ev-1", idempotency_key="k1"))
    assert keyed.event_id == parse(wishlist(T, "ev-9", idempotency_key="k1")).event_id
    assert keyed.event_id.startswith("key-") and "k1" not in keyed.event_id
    # evaluate names it as ingest does (the journey's execution and ledger rows)
    raw = json.dumps(wishlist(T, "ev-5", idempotency_key="k1"))
    assert evaluate_incoming(raw, NOW, CFG.event_time, VOCAB).event_id == keyed.event_id
    # another customer's (or another type's) event with the same key is another event
    other = wishlist(T, "ev-2", idempotency_key="k1")
    other["detail"]["customer_id"] = "c2"
    assert parse(other).event_id != keyed.event_id
    app = app_opened(T, "ev-1")
    app["detail"]["idempotency_key"] = "k1"
    assert parse(app).event_id not in (keyed.event_id, "ev-1")
    assert parse(wishlist(T, "ev-3")).event_id == "ev-3"
    # a message's template context (the member's trigger) does not keep it
    detail = dict(wishlist(T, "ev-6", idempotency_key="k1")["detail"])
    kept = trigger_of("wishlist.added", detail, VOCAB.personal_fields("wishlist.added"))
    assert "idempotency_key" not in kept and kept["product_id"] == "p-1"
    # a key is an id: no whitespace, no '#', at most 128 characters
    for bad in ("a b", "a#b", "x" * 129, ""):
        assert "idempotency_key" in str(rejection(wishlist(T, "ev-4", idempotency_key=bad)))


def test_counters_do_not_depend_on_the_order_of_delivery() -> None:
    raws = [wishlist(T + timedelta(days=d), f"ev-{d}") for d in (0, 20, 5, 33, 1)]
    states = {
        json.dumps(fold(list(p)).behaviour["wishlist.added"].model_dump(mode="json"))
        for p in itertools.permutations(raws)
    }
    assert len(states) == 1
    # occurrences 30 days or more before the latest are gone; the total keeps them
    counter = fold(raws).behaviour["wishlist.added"]
    assert counter.recent == [epoch_seconds(T + timedelta(days=d)) for d in (5, 20, 33)]
    assert counter.total == 5 and counter.last_at == T + timedelta(days=33)


def test_a_counter_keeps_at_most_100_occurrences() -> None:
    counter: BehaviourCounter | None = None
    for n in range(150):
        counter = count_occurrence(counter, T + timedelta(minutes=n), (14, 30))
    assert counter is not None
    assert len(counter.recent) == MAX_OCCURRENCES and counter.total == 150
    assert counter.recent[0] == epoch_seconds(T + timedelta(minutes=50))
    view = customer_view(
        Customer(customer_id="c1", behaviour={"wishlist.added": counter}),
        T + timedelta(days=1),
        CFG,
    )
    assert view["behaviour"]["wishlist.added"]["count_14d"] == MAX_OCCURRENCES  # saturated


def test_tracked_orders_count_each_order_once_even_rebuilt_from_the_fact_log() -> None:
    # given orders two years apart: the old ones settle (the item keeps a summary of them)
    old = [T - timedelta(days=800 + n) for n in range(3)]
    store = MemoryStore()
    svc, dlq = service(store)
    deliver(svc, *[order("c1", f"old-{n}", 1000, at) for n, at in enumerate(old)])
    deliver(svc, order("c1", "new-1", 1000, T))
    customer = store.customers["c1"]
    assert customer.history.before_at is not None and "old-0" not in customer.orders
    assert customer.behaviour["order.placed"].total == 4
    assert customer.behaviour["order.placed"].recent == [epoch_seconds(T)]
    # when a settled order is sent again under a new event id, and a late order arrives
    # (both need the customer's fact log: the fold is rebuilt from it)
    again = order("c1", "old-1", 1000, old[1], event_id="ev-again")
    late = order("c1", "late-1", 1000, T - timedelta(days=790))
    deliver(svc, again, late)
    # then only the late order is a new occurrence: the rebuild counted nothing again
    counter = store.customers["c1"].behaviour["order.placed"]
    assert (counter.total, counter.recent) == (5, [epoch_seconds(T)])
    assert store.customers["c1"].order_count == 5 and not dlq.letters
    # and the same new order under another event id is the same occurrence
    deliver(svc, order("c1", "new-1", 1000, T, event_id="ev-new-again"))
    assert store.customers["c1"].behaviour["order.placed"].total == 5


def test_a_program_triggered_by_a_custom_event_sees_it_counted() -> None:
    # given a program started by wishlist.added for customers who did it twice in 14 days,
    # and a customer whose first wishlist.added ingest has folded
    program = Program.model_validate(
        {
            "id": "wishlist-nudge",
            "name": "Wishlist nudge",
            "trigger": {"event": "wishlist.added", "conditions": {"product_id": ["p-1"]}},
            "audience": TWICE_IN_14_DAYS,
            "steps": [{"id": "s", "type": "send", "channels": ["email"], "template": "hello"}],
        }
    )
    store = MemoryStore()
    store.customers["c1"] = fold([wishlist(T, "ev-1")]).model_copy(
        update={"email": "c1@example.jp", "consent": opted_in("email")}
    )
    second = T + timedelta(days=2)
    evaluator = Evaluator([program], store, _Starter(), MemoryPublisher(), CFG, FixedClock(second))

    def incoming(raw: dict[str, Any]) -> IncomingEvent:
        return evaluate_incoming(json.dumps(raw), second, CFG.event_time, VOCAB)

    # when the second arrives at evaluate before ingest has folded it
    [entered] = evaluator.evaluate([incoming(wishlist(second, "ev-2"))]).decisions
    # then the audience counts it: the customer enters
    assert (entered.decision, entered.event_id) == ("entered", "ev-2")
    # while the first (folded: in ingest's records) is not counted twice
    [skipped] = evaluator.evaluate([incoming(wishlist(T, "ev-1"))]).decisions
    assert (skipped.decision, skipped.reason) == ("skipped", "audience")


class _Starter:
    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        return True


def test_a_journeys_member_keeps_no_personal_field_of_its_trigger() -> None:
    # given a program started by wishlist.added, whose `note` is declared personal
    program = Program.model_validate(
        {
            "id": "wishlist-nudge",
            "name": "Wishlist nudge",
            "trigger": {"event": "wishlist.added"},
            "steps": [{"id": "s", "type": "send", "channels": ["email"], "template": "hello"}],
        }
    )
    store = MemoryStore()
    store.customers["c1"] = Customer(
        customer_id="c1", email="c1@example.jp", consent=opted_in("email")
    )
    evaluator = Evaluator([program], store, _Starter(), MemoryPublisher(), CFG, FixedClock(T))
    raw = wishlist(T, "ev-1", note="for mum", price=1200)
    # when the customer enters the journey
    incoming = evaluate_incoming(json.dumps(raw), T, CFG.event_time, VOCAB)
    [entered] = evaluator.evaluate([incoming]).decisions
    assert entered.decision == "entered"
    # then their member row keeps the trigger's other fields (the template's `trigger`),
    # never the personal note (it is not journey state)
    [member] = [m for members in store.members.values() for m in members.values()]
    assert member.trigger["product_id"] == "p-1" and member.trigger["price"] == 1200
    assert "note" not in member.trigger and "for mum" not in json.dumps(dict(member.trigger))


def test_a_trigger_keeps_what_templates_read_and_no_personal_field() -> None:
    # what is personal in an event's detail: the direct identifiers wherever they are, the
    # event's fields declared personal, a field named as an attribute declared personal
    personal = VOCAB.personal_fields("wishlist.added")
    assert {"note", "nickname", "anniversary", "email", "phone", "first_name"} <= personal
    assert not {"product_id", "price", "tier"} & personal
    # a rank change that carried a name and an address (a producer's or a future model's)
    detail = {
        "customer_id": "c1",
        "from_rank": "Silver",
        "to_rank": "Gold",
        "points_to_next_rank": 300,
        "email": "hanako@example.jp",
        "first_name": "Hanako",
        "nickname": SECRET,
    }
    kept = trigger_of(
        "customer.rank_changed", detail, VOCAB.personal_fields("customer.rank_changed")
    )
    assert kept["to_rank"] == "Gold" and kept["points_to_next_rank"] == 300
    assert not {"email", "first_name", "nickname"} & set(kept)
    # the built-in vocabulary still drops the direct identifiers
    assert "email" not in trigger_of("x.y", detail, BUILTIN.personal_fields("x.y"))


def test_a_personal_attribute_named_like_a_built_in_field_keeps_that_field_in_the_trigger() -> None:
    # given a shop whose personal attribute shares its name with a rank change's own field
    # (and with a custom event's field the shop did not declare personal)
    cfg = KizunaConfig.model_validate(
        {
            "custom": {
                "attributes": [
                    {"name": "to_rank", "type": "string", "personal": True},
                    {"name": "nickname", "type": "string", "personal": True},
                ],
                "events": [
                    {
                        "detail_type": "review.posted",
                        "fields": [{"name": "to_rank", "type": "string"}],
                    }
                ],
            }
        }
    )
    vocab = vocabulary(cfg)
    detail = {"customer_id": "c1", "from_rank": "Silver", "to_rank": "Gold", "nickname": SECRET}
    # when a member keeps its trigger
    kept = trigger_of(
        "customer.rank_changed", detail, vocab.personal_fields("customer.rank_changed")
    )
    # then the event's own to_rank stays (the templates read trigger.to_rank), a field the
    # model does not have named as a personal attribute is still dropped
    assert kept["to_rank"] == "Gold" and "nickname" not in kept
    # and in the shop's own event, a field named as a personal attribute is dropped as before
    custom = trigger_of("review.posted", detail, vocab.personal_fields("review.posted"))
    assert "to_rank" not in custom and "nickname" not in custom


# -- privacy ---------------------------------------------------------------------------------------
class PrivacyView:
    """The privacy port over the in-memory store, items as DynamoDB holds them."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def customer_item(self, customer_id: str) -> dict[str, Any] | None:
        found = self.store.customers.get(customer_id)
        return customer_to_item(found) if found else None

    def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]:
        return [
            activity_to_item(item)
            for (cid, sk), item in self.store.activity.items()
            if cid == customer_id and sk.startswith(prefix)
        ]

    def delete_activity(self, customer_id: str, sort_keys: Sequence[str]) -> None:
        for sk in sort_keys:
            self.store.activity.pop((customer_id, sk), None)

    def delete_customer(self, customer_id: str) -> bool:
        return self.store.customers.pop(customer_id, None) is not None

    def mark_erased(self, key: str, expires_at: int, now: int) -> None:
        pass

    def count_erasure(self, day: str, key: str) -> None:
        pass


def test_erasure_removes_personal_attributes_and_custom_event_activity() -> None:
    store = MemoryStore()
    svc, _ = service(store)
    deliver(
        svc,
        upsert(T, "ev-1", {"nickname": SECRET, "anniversary": "2001-02-03", "tier": "gold"}),
        wishlist(T, "ev-2", note="for mum"),
        app_opened(T, "ev-3"),
    )
    privacy = PrivacyView(store)
    assert SECRET in json.dumps(privacy.customer_item("c1"), default=str)
    assert len(privacy.activity("c1", "EVENT#")) == 2
    report = erase("c1", privacy, store, NOW)
    assert report.customer_found and report.activity_deleted == 2
    assert privacy.customer_item("c1") is None and privacy.activity("c1") == []


def test_personal_attributes_are_masked_as_the_built_in_fields() -> None:
    personal = KizunaConfig.model_validate(
        {
            "custom": {
                "attributes": [
                    *CFG.custom.model_dump(mode="json")["attributes"],
                    {"name": "pets", "type": "string_list", "personal": True},
                    {"name": "shoe_size", "type": "number", "personal": True},
                    {"name": "vip", "type": "boolean", "personal": True},
                ]
            }
        }
    )
    masked = mask_attributes(
        {
            "nickname": SECRET,
            "anniversary": "2001-02-03",
            "pets": ["Mochi", "Kuro"],
            "shoe_size": Decimal("24.5"),
            "vip": False,
            "tier": "gold",
            "score": Decimal(3),
            "removed_since": "x-value",
        },
        vocabulary(personal).attributes,
    )
    assert masked == {
        "nickname": "H***",
        "anniversary": "2001-**-**",
        "pets": ["M***", "K***"],
        "shoe_size": "***",
        "vip": "***",
        "tier": "gold",
        "score": Decimal(3),
        "removed_since": "x***",  # no longer declared: masked
    }


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_personal_attribute_values_are_never_logged(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.DEBUG)
    structured = Collect()
    structured.setFormatter(kizuna_logger.registered_formatter)
    underlying = logging.getLogger(kizuna_logger.name)
    underlying.addHandler(structured)
    request.addfinalizer(lambda: underlying.removeHandler(structured))
    store = MemoryStore()
    svc, dlq = service(store)
    # good events, events rejected for their personal values, and one the state refuses
    deliver(
        svc,
        upsert(T, "ev-1", {"nickname": SECRET}),
        upsert(T, "ev-2", {"nickname": SECRET + "\u0007"}),
        upsert(T, "ev-3", {"nickname": SECRET, "tierr": "gold"}),
        upsert(T, "ev-4", {"anniversary": SECRET}),
        wishlist(T, "ev-5", note=SECRET, price="x"),
        wishlist(T, "ev-6", note=SECRET),
    )
    assert store.customers["c1"].attributes == {"nickname": SECRET}
    assert len(dlq.letters) == 4
    logged = caplog.text + "\n".join(structured.lines)
    assert "event rejected" in logged
    assert SECRET not in logged
    assert all(SECRET not in letter.reason for letter in dlq.letters)


# -- the API's intake validates as ingest does ------------------------------------------------
class Bus:
    source = "shop.api"

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def put(self, events: Sequence[tuple[str, str]]) -> list[PutOutcome]:
        self.entries += events
        return [PutOutcome(event_id=f"e-{n}") for n in range(len(events))]


def test_the_api_intake_takes_declared_events_and_attributes_as_ingest_does() -> None:
    bus = Bus()
    intake = EventIntake(bus, CFG.event_time, lambda: NOW, VOCAB)
    good_upsert = upsert(T, "x", {"tier": "gold", "score": Decimal("2.5")})
    entries = [
        {
            "detail-type": "wishlist.added",
            "detail": wishlist(T, "x", price=Decimal("9.5"))["detail"],
        },
        {"detail-type": "customer.upserted", "detail": good_upsert["detail"]},
        {"detail-type": "customer.upserted", "detail": upsert(T, "x", {"tier": "gold!"})["detail"]},
        {"detail-type": "wishlist.added", "detail": wishlist(T, "x", colour="red")["detail"]},
        {"detail-type": "wishlist.removed", "detail": wishlist(T, "x")["detail"]},
    ]
    result = intake.accept(entries)
    assert [(r.status, r.field) for r in result.results] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "events[2].detail.attributes.tier"),
        ("rejected", "events[3].detail.colour"),
        ("rejected", "events[4].detail-type"),
    ]
    # and what was put is what ingest accepts, with this configuration
    for detail_type, body in bus.entries:
        raw = {"id": "e", "detail-type": detail_type, "source": "shop.api", "time": T.isoformat()}
        assert parse_inbound({**raw, "detail": json.loads(body)}, NOW, CFG.event_time, VOCAB)
    # without the declarations, the same custom event is not an inbound type
    default = EventIntake(Bus(), CFG.event_time, lambda: NOW).accept(entries[:1])
    assert default.results[0].field == "events[0].detail-type"


def test_the_api_intake_rejects_attributes_over_the_budget() -> None:
    big = KizunaConfig.model_validate(
        {"custom": {"attributes": [{"name": "notes", "type": "string_list", "max_length": 2048}]}}
    )
    detail = upsert(T, "x", {"notes": ["n" * 2000] * 45})["detail"]
    intake = EventIntake(Bus(), big.event_time, lambda: NOW, vocabulary(big))
    [answer] = intake.accept([{"detail-type": "customer.upserted", "detail": detail}]).results
    assert (answer.status, answer.field) == ("rejected", "events[0].detail.attributes")
    assert answer.reason == f"over {MAX_ATTRIBUTES_BYTES} bytes (names and values as UTF-8 JSON)"


def test_a_bulk_fold_reports_the_events_it_refuses() -> None:
    # the importer's fold: an upsert that would take the customer over the budget is refused
    big = KizunaConfig.model_validate(
        {
            "custom": {
                "attributes": [
                    {"name": f"notes_{n}", "type": "string_list", "max_length": 2048}
                    for n in range(2)
                ]
            }
        }
    )
    vocab = vocabulary(big)
    events = [
        parse_inbound(upsert(T, f"ev-{n}", {f"notes_{n}": ["n" * 2000] * 30}), vocab=vocab)
        for n in range(2)
    ]
    applied = apply_events(Customer(customer_id="c1"), events, big, NOW, bulk=True)
    assert list(applied.refused) == ["ev-1"] and "detail.attributes" in applied.refused["ev-1"]
    assert set(applied.customer.attributes) == {"notes_0"}


@pytest.mark.parametrize("name", ["items", "values", "keys", "get", "copy", "update"])
def test_a_name_a_template_would_read_as_a_dict_method_is_refused(name: str) -> None:
    # Given a declaration naming an attribute or an event field like a dict method, which
    # ``{{ customer.attributes.items }}`` / ``{{ trigger.items }}`` would render as the method
    attribute = {"custom": {"attributes": [{"name": name, "type": "string"}]}}
    field = {
        "custom": {
            "events": [
                {"detail_type": "wishlist.added", "fields": [{"name": name, "type": "string"}]}
            ]
        }
    }
    for declared in (attribute, field):
        # When the configuration is read, then it is refused, naming it
        with pytest.raises(ValueError, match=rf"{name}: a template reading it"):
            KizunaConfig.model_validate(declared)
