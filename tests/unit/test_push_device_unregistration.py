"""A push device unregistered stays unregistered: a ``device.registered`` that arrives after
its own later ``device.unregistered`` (a producer's retry, a redriven dead letter, events
out of order) does not bring the token back. Whatever order they arrive in, a device is
kept exactly when its latest registration is later than its latest unregistration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.domain.customer import MAX_DEVICES, Customer
from kizuna.domain.ingest import apply_events, device_key
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, envelope
from tests.sqs_events import sqs_event, sqs_record

CFG = KizunaConfig()
NOW = T0 + timedelta(hours=1)


def token(n: int) -> str:
    return f"{n:08d}" + "B" * 144


def device_event(kind: str, n: int, seconds: int, event_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "customer_id": "c1",
        "occurred_at": (T0 + timedelta(seconds=seconds)).isoformat(),
        "token": token(n),
    }
    if kind == "device.registered":
        detail["platform"] = "APNS"
    return envelope(kind, detail, event_id)


def fold(raws: list[dict[str, Any]]) -> Customer:
    state = Customer(customer_id="c1")
    for raw in raws:
        state = apply_events(state, [parse_inbound(raw)], CFG, NOW).customer
    return state


def test_a_registration_arriving_after_its_later_unregistration_stays_out() -> None:
    # the app registered at 10 s and unregistered at 20 s (the customer signed out); the
    # registration is delivered again (or first) after the unregistration
    unregistered = device_event("device.unregistered", 1, 20, "ev-unreg")
    registered = device_event("device.registered", 1, 10, "ev-reg")
    assert device_key(token(1)) not in fold([unregistered, registered]).devices
    assert device_key(token(1)) not in fold([registered, unregistered]).devices
    # a registration after the unregistration (signed in again) brings it back, in any order
    again = device_event("device.registered", 1, 30, "ev-again")
    for order in ([unregistered, registered, again], [again, unregistered, registered]):
        assert device_key(token(1)) in fold(order).devices


def test_an_unregistration_and_a_registration_of_one_instant_leave_it_unregistered() -> None:
    both = [
        device_event("device.registered", 1, 10, "ev-reg"),
        device_event("device.unregistered", 1, 10, "ev-unreg"),
    ]
    assert fold(both).devices == {} == fold(both[::-1]).devices


def test_through_ingest_a_redriven_registration_does_not_revive_the_token() -> None:
    store = MemoryStore()
    svc = IngestService(store, MemoryPublisher(), MemoryDeadLetters(), CFG, FixedClock(NOW), 3)
    reg = device_event("device.registered", 1, 10, "ev-reg")
    unreg = device_event("device.unregistered", 1, 20, "ev-unreg")
    for n, raw in enumerate([reg, unreg]):
        assert svc.process_batch(sqs_event(sqs_record(raw, f"m{n}"))) == {"batchItemFailures": []}
    # the registration again, under a new event id (a producer that re-sent it)
    late = device_event("device.registered", 1, 10, "ev-reg-resent")
    svc.process_batch(sqs_event(sqs_record(late, "m9")))
    assert store.customers["c1"].devices == {}


def test_the_unregistrations_remembered_are_bounded_with_the_devices() -> None:
    raws = [device_event("device.unregistered", n, n, f"ev-{n}") for n in range(MAX_DEVICES + 30)]
    kept = fold(raws).unregistered_devices
    assert set(kept) == {device_key(token(n)) for n in range(30, MAX_DEVICES + 30)}
    # the 20 keys whose latest fact is newest, registrations and unregistrations together
    raws += [device_event("device.registered", 100 + n, 100 + n, f"ev-r{n}") for n in range(5)]
    customer = fold(raws)
    assert len(customer.devices) == 5 and len(customer.unregistered_devices) == MAX_DEVICES - 5


def test_past_the_bound_an_unregistration_first_or_last_leaves_the_same_devices() -> None:
    # 21 devices registered (t = 1..21), the newest unregistered at t = 22 (from a review:
    # the bound dropped device 1 in one order and kept it in the other)
    raws = [device_event("device.registered", n, n, f"ev-{n}") for n in range(1, 22)]
    unregistered = device_event("device.unregistered", 21, 22, "ev-unreg")
    first, last = fold([unregistered, *raws]), fold([*raws, unregistered])
    assert first.devices == last.devices
    assert first.unregistered_devices == last.unregistered_devices
    assert set(last.devices) == {device_key(token(n)) for n in range(2, 21)}


def reference(facts: list[tuple[bool, int, int]]) -> set[str]:
    """The devices kept, in plain Python: each device's latest fact (of one instant, the
    unregistration), the MAX_DEVICES devices whose latest fact is newest (of one instant,
    the larger key), those whose latest fact is a registration."""
    latest: dict[str, tuple[int, bool]] = {}
    for is_reg, n, s in facts:
        key = device_key(token(n))
        fact = (s, not is_reg)  # at one instant an unregistration sorts after: it wins
        if key not in latest or fact > latest[key]:
            latest[key] = fact
    newest = sorted(latest.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
    return {key for key, (_, unregistered) in newest[:MAX_DEVICES] if not unregistered}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, MAX_DEVICES + 8), st.integers(0, 30)),
        min_size=1,
        max_size=60,
    ),
    st.randoms(use_true_random=False),
)
def test_the_devices_kept_follow_the_latest_facts_whatever_the_order(
    facts: list[tuple[bool, int, int]], rnd: Any
) -> None:
    raws = [
        device_event("device.registered" if is_reg else "device.unregistered", n, s, f"ev-{i}")
        for i, (is_reg, n, s) in enumerate(facts)
    ]
    shuffled = list(raws)
    rnd.shuffle(shuffled)
    assert set(fold(raws).devices) == reference(facts) == set(fold(shuffled).devices)


def test_a_device_registered_by_a_second_customer_stays_on_the_first_until_unregistered() -> None:
    # given one phone on which c1 signed in, then c2 (c1 signed out without telling Kizuna)
    store = MemoryStore()
    svc = IngestService(store, MemoryPublisher(), MemoryDeadLetters(), CFG, FixedClock(NOW), 3)
    first = device_event("device.registered", 1, 10, "ev-c1")
    second = device_event("device.registered", 1, 20, "ev-c2")
    second["detail"]["customer_id"] = "c2"
    for n, raw in enumerate([first, second]):
        assert svc.process_batch(sqs_event(sqs_record(raw, f"m{n}"))) == {"batchItemFailures": []}
    # then both hold the token (docs/channels/PUSH.md: the app unregisters on sign-out)
    assert set(store.customers["c1"].devices) == set(store.customers["c2"].devices)
    # when the app says c1 signed out, then only c2 keeps it
    out = device_event("device.unregistered", 1, 30, "ev-c1-out")
    svc.process_batch(sqs_event(sqs_record(out, "m2")))
    assert store.customers["c1"].devices == {} and store.customers["c2"].devices
