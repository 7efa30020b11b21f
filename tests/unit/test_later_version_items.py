"""A customer item a later version wrote (a deploy rolling out, a rollback) stays readable:
a key this version does not know, at any depth of the item, is left out on read; the same
models still refuse an unknown key in what Kizuna receives (events, imports)."""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from kizuna.adapters.dynamodb import customer_from_item, customer_to_item, customers_of
from kizuna.domain.customer import (
    AdjustmentFact,
    BehaviourCounter,
    CartState,
    Customer,
    Device,
    OrderFact,
    PauseState,
    PostalAddress,
    ProcessedRecord,
    RefundFact,
    SettledHistory,
    Suppression,
    UnreadableCustomer,
    unreadable_of,
)
from kizuna.events.envelope import EventRejected, parse_inbound
from tests.factories import NOON, T0, customer, envelope, fixture, opted_in, order, upsert

Path = tuple[str | int, ...]
ADDED = "added_by_a_later_version"


def stored_customer() -> Customer:
    """A customer with every nested part of the item filled (the factory's, plus facts)."""
    return customer(
        "c1",
        consent=opted_in("email", "push"),
        topics={"promotions": opted_in("email")},
        pause=PauseState(until=NOON + timedelta(days=7), at=NOON, source="t", stamp="s"),
        devices={"d1": Device(token="t" * 64, platform="APNS", at=NOON)},
        unregistered_devices={"d0": NOON - timedelta(days=1)},
        suppressions={"sms": Suppression(reason="opt_out", at=NOON, address_hash="h")},
        postal_address=PostalAddress(
            recipient_name="山田 花子",
            postal_code="150-0001",
            region="東京都",
            locality="渋谷区神宮前",
            line1="1-2-3",
        ),
        orders={
            "o1": OrderFact(
                placed=True,
                at=T0,
                total=Decimal(1200),
                currency="JPY",
                channel="web",
                products=("p-1",),
                stamp="s",
                refunds={"0123456789abcdef": RefundFact(at=T0, amount=Decimal(200))},
            ),
            "o2": OrderFact(cancelled_at=T0),  # a cancellation waiting for its order
        },
        adjustments={"a1": AdjustmentFact(at=T0, delta=5, reason="manual")},
        history=SettledHistory(
            before_at=T0 - timedelta(days=400),
            before_id="o0",
            order_count=1,
            lots={"2026-06-01T00:00:00+00:00": 10},
            days={"2025-12-01": (1, Decimal(100), 1)},
        ),
        cart=CartState(
            cart_id="k1",
            item_count=1,
            value=Decimal(500),
            currency="JPY",
            product_ids=("p-2",),
            at=T0,
            stamp="s",
        ),
        behaviour={"wishlist.added": BehaviourCounter(recent=[1, 2], total=2, last_at=T0)},
        processed={"ev-1": ProcessedRecord(at=T0, derived=[{"detail_type": "x"}])},
    )


def nested_models(value: Any, path: Path = ()) -> Iterator[tuple[Path, BaseModel]]:
    """Every model nested in ``value`` (itself excluded), with its path in the dumped item."""
    if isinstance(value, BaseModel):
        if path:
            yield path, value
        for name in type(value).model_fields:
            yield from nested_models(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, v in value.items():
            yield from nested_models(v, (*path, key))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from nested_models(v, (*path, i))


def model_types(annotation: Any) -> set[type[BaseModel]]:
    """The model classes an annotation can hold (through dicts, lists, tuples, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = {annotation}
        for field in annotation.model_fields.values():
            found |= model_types(field.annotation)
        return found
    args = typing.get_args(annotation)
    return set().union(*(model_types(a) for a in args)) if args else set()


STORED = stored_customer()
ITEM = customer_to_item(STORED)
PATHS = [path for path, _ in nested_models(STORED)]


def with_key(item: dict[str, Any], path: Path, key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(item)
    target: Any = out
    for step in path:
        target = target[step]
    assert isinstance(target, dict) and key not in target
    target[key] = value
    return out


def test_the_stored_customer_fills_every_nested_model() -> None:
    # a nested model added to Customer must be filled above, so it is covered below
    nested = model_types(Customer) - {Customer}
    assert {type(m) for _, m in nested_models(STORED)} == nested
    assert customer_from_item(ITEM) == STORED


@pytest.mark.parametrize("path", PATHS, ids=[".".join(map(str, p)) for p in PATHS])
def test_a_key_a_later_version_added_to_a_nested_part_is_left_out_on_read(path: Path) -> None:
    # given the item with one unknown key in one nested object (a later version's field)
    item = with_key(ITEM, path, ADDED, "2027-01-01T00:00:00+00:00")
    # when this version reads it, then it reads what it would without the key
    customer = customer_from_item(item)
    assert customer == customer_from_item(ITEM) == STORED
    # and the next save writes the item without it
    assert customer_to_item(customer) == ITEM


@given(
    path=st.sampled_from([(), *PATHS]),
    key=st.text(min_size=1, max_size=20),
    value=st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text()),
)
def test_any_unknown_key_anywhere_reads_as_the_item_without_it(
    path: Path, key: str, value: Any
) -> None:
    target: Any = ITEM
    for step in path:
        target = target[step]
    if key in target:  # a key this version knows: not what this property is about
        return
    assert customer_from_item(with_key(ITEM, path, key, value)) == STORED


@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        (("devices", "d1"), "at", "tomorrow"),  # a known field's value of another type
        (("consent", "email"), "status", None),
        (("postal_address",), "postal_code", "1500"),  # a constraint a later version eased
        ((), "order_count", "many"),
    ],
)
def test_a_value_this_version_refuses_in_a_known_field_still_fails_the_read(
    path: Path, key: str, value: Any
) -> None:
    item = copy.deepcopy(ITEM)
    target: Any = item
    for step in path:
        target = target[step]
    target[key] = value
    with pytest.raises(UnreadableCustomer) as raised:
        customer_from_item(item)
    # the customer and the refused field are named, never the value (it may be personal)
    assert raised.value.customer_id == ITEM["customer_id"]
    assert raised.value.fields == ((path or (key,))[0],)
    assert str(value) not in str(raised.value)


def test_one_unreadable_item_is_named_and_the_others_are_read() -> None:
    """A batch read (a send group, a campaign batch, ingest, evaluate) goes on with the
    customers it can read and names the one it cannot: neither present nor absent."""
    bad = copy.deepcopy(ITEM)
    bad["customer_id"] = "c-bad"
    bad["devices"]["d1"]["at"] = "tomorrow"  # a value of another type (a later version's)
    good = copy.deepcopy(ITEM)
    read = customers_of([good, bad])
    assert list(read) == [ITEM["customer_id"]]
    assert read[ITEM["customer_id"]] == STORED
    assert unreadable_of(read) == {"c-bad"}
    with pytest.raises(UnreadableCustomer):  # a caller that must not go on without it
        customers_of([good, bad], unreadable_ok=False)
    assert unreadable_of({ITEM["customer_id"]: STORED}) == frozenset()  # a fake's plain dict


def _order_line_key(raw: dict[str, Any]) -> None:
    raw["detail"]["lines"][0][ADDED] = 1


def _address_key(raw: dict[str, Any]) -> None:
    raw["detail"]["postal_address"][ADDED] = 1


def _cart_item_key(raw: dict[str, Any]) -> None:
    raw["detail"]["items"][0][ADDED] = 1


ADDRESS = {
    "recipient_name": "山田 花子",
    "postal_code": "150-0001",
    "region": "東京都",
    "locality": "渋谷区神宮前",
    "line1": "1-2-3",
}
CART = {
    "customer_id": "c1",
    "occurred_at": T0.isoformat(),
    "cart_id": "k1",
    "items": [{"product_id": "p-1", "quantity": 1, "unit_price": "100"}],
    "currency": "JPY",
}


@pytest.mark.parametrize(
    ("raw", "mutate", "where"),
    [
        (fixture("order_placed"), _order_line_key, "detail.lines.0."),
        (order("c1", "o1", 100, T0), _order_line_key, "detail.lines.0."),
        (upsert("c1", T0, "ev-1", postal_address=ADDRESS), _address_key, "detail.postal_address."),
        (envelope("cart.updated", CART, "ev-cart"), _cart_item_key, "detail.items.0."),
    ],
    ids=["fixture-order-line", "order-line", "postal-address", "cart-item"],
)
def test_an_inbound_event_with_an_unknown_nested_key_is_still_refused(
    raw: dict[str, Any], mutate: Any, where: str
) -> None:
    # given a valid event (it parses), then one unknown key in a nested object of its detail
    parse_inbound(copy.deepcopy(raw))
    mutate(raw)
    # then it is refused, naming the key: reading stored items leniently changed no input
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert f"{where}{ADDED}: Extra inputs are not permitted" in info.value.reason


def test_the_customer_models_still_refuse_an_unknown_key_when_validated_directly() -> None:
    # the models themselves stay strict: only the stored item's read leaves keys out
    for path in PATHS:
        with pytest.raises(ValidationError, match=ADDED):
            Customer.model_validate(with_key(ITEM, path, ADDED, 1))
