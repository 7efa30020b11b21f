"""A customer's push devices are bounded (docs/ARCHITECTURE.md, "A bounded customer item"):
a flood of ``device.registered`` cannot take the customer item past DynamoDB's 400 KB (after
which every write of the customer, an opt-out included, would fail); the newest
registrations are kept, whatever order they arrive in."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.adapters.dynamodb import customer_to_item
from kizuna.domain.customer import (
    MAX_DEVICE_TOKEN_CHARS,
    MAX_DEVICES,
    Customer,
    Device,
)
from kizuna.domain.ingest import apply_events, device_key
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from kizuna_tools.importer import MAX_DEVICES_PER_ROW
from tests.factories import T0, envelope
from tests.sqs_events import sqs_event, sqs_record

CFG = KizunaConfig()
NOW = T0 + timedelta(hours=1)


def registered(n: int, token: str, seconds: int = 0, platform: str = "FCM") -> dict[str, Any]:
    detail = {
        "customer_id": "c1",
        "occurred_at": (T0 + timedelta(seconds=seconds)).isoformat(),
        "token": token,
        "platform": platform,
    }
    return envelope("device.registered", detail, f"ev-{n}")


def token(n: int, length: int = 152) -> str:
    return f"{n:08d}" + "A" * (length - 8)


def fold(raws: list[dict[str, Any]], customer: Customer | None = None) -> Customer:
    state = customer or Customer(customer_id="c1")
    for raw in raws:
        state = apply_events(state, [parse_inbound(raw)], CFG, NOW).customer
    return state


def test_a_flood_of_registrations_cannot_wedge_the_customer() -> None:
    # given 110 registrations of the longest tokens (over 100 KB of tokens)
    store = MemoryStore()
    dlq = MemoryDeadLetters()
    svc = IngestService(store, MemoryPublisher(), dlq, CFG, FixedClock(NOW), 3)
    raws = [registered(n, token(n, MAX_DEVICE_TOKEN_CHARS), seconds=n) for n in range(110)]
    for i in range(0, len(raws), 10):
        records = [sqs_record(raw, f"m{i + k}") for k, raw in enumerate(raws[i : i + 10])]
        assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    # then the item holds the newest devices only, far below DynamoDB's 400 KB
    customer = store.customers["c1"]
    item_bytes = len(json.dumps(customer_to_item(customer), default=str).encode())
    assert item_bytes < 40_000
    assert set(customer.devices) == {
        device_key(token(n, MAX_DEVICE_TOKEN_CHARS)) for n in range(110 - MAX_DEVICES, 110)
    }
    # and a later opt-out is applied, not dead-lettered
    optout = {
        "customer_id": "c1",
        "occurred_at": (T0 + timedelta(seconds=200)).isoformat(),
        "channel": "email",
        "status": "opted_out",
    }
    svc.process_batch(sqs_event(sqs_record(envelope("consent.changed", optout, "ev-out"), "mo")))
    assert dlq.letters == []
    assert store.customers["c1"].consent["email"].status == "opted_out"


def test_at_most_max_devices_are_kept_the_newest_by_registration() -> None:
    # registered newest first: each later arrival is an older registration
    customer = fold([registered(n, token(n), seconds=100 - n) for n in range(MAX_DEVICES + 10)])
    assert MAX_DEVICES == MAX_DEVICES_PER_ROW == 20  # the importer's bound is the same
    assert set(customer.devices) == {device_key(token(n)) for n in range(MAX_DEVICES)}


def test_a_re_registration_makes_an_old_device_new_again() -> None:
    raws = [registered(n, token(n), seconds=n) for n in range(MAX_DEVICES)]
    raws.append(registered(99, token(0), seconds=500))  # device 0 registers again
    raws.append(registered(100, token(100), seconds=400))
    customer = fold(raws)
    assert device_key(token(0)) in customer.devices
    assert device_key(token(1)) not in customer.devices  # now the oldest: dropped
    assert len(customer.devices) == MAX_DEVICES


def test_a_token_over_the_bound_is_refused_at_the_door() -> None:
    from kizuna.events.envelope import EventRejected

    raw = registered(0, token(0, MAX_DEVICE_TOKEN_CHARS + 1), seconds=0)
    with pytest.raises(EventRejected, match=r"detail\.token"):
        parse_inbound(raw)
    assert parse_inbound(registered(0, token(0, MAX_DEVICE_TOKEN_CHARS), seconds=0))


def test_registrations_of_one_instant_keep_the_larger_keys_whatever_the_order() -> None:
    raws = [registered(n, token(n), seconds=0) for n in range(MAX_DEVICES + 5)]
    kept = set(fold(raws).devices)
    assert kept == set(fold(raws[::-1]).devices)
    keys = sorted(device_key(token(n)) for n in range(MAX_DEVICES + 5))
    assert kept == set(keys[5:])


def test_an_item_stored_with_too_many_devices_is_bounded_at_its_next_fold() -> None:
    # a customer item written before devices were bounded
    devices = {
        device_key(token(n)): Device(token=token(n), platform="FCM", at=T0 + timedelta(seconds=n))
        for n in range(60)
    }
    stored = Customer(customer_id="c1", devices=devices)
    optout = {
        "customer_id": "c1",
        "occurred_at": (T0 + timedelta(seconds=200)).isoformat(),
        "channel": "email",
        "status": "opted_out",
    }
    customer = fold([envelope("consent.changed", optout, "ev-out")], stored)
    assert set(customer.devices) == {device_key(token(n)) for n in range(40, 60)}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 35), st.integers(0, 20)),
        min_size=1,
        max_size=45,
    ),
    st.randoms(use_true_random=False),
)
def test_the_devices_kept_do_not_depend_on_the_delivery_order(
    registrations: list[tuple[int, int]], rnd: Any
) -> None:
    # a token's length and platform are its own (the same token is the same device)
    raws = [
        registered(
            i, token(n, MAX_DEVICE_TOKEN_CHARS if n % 3 == 0 else 152), seconds=s, platform="APNS"
        )
        for i, (n, s) in enumerate(registrations)
    ]
    shuffled = list(raws)
    rnd.shuffle(shuffled)
    assert fold(raws).devices == fold(shuffled).devices
