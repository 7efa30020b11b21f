"""Duplicated and reordered delivery yields identical state (property-based)."""

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.domain.loyalty import address_hash
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.config import KizunaConfig
from tests.factories import T0, envelope

CFG = KizunaConfig()

hours = st.integers(min_value=0, max_value=24 * 500)


@st.composite
def event(draw: st.DrawFn, n: int) -> dict[str, Any]:
    at = (T0 + timedelta(hours=draw(hours))).isoformat()
    base = {"customer_id": "c1", "occurred_at": at}
    kind = draw(
        st.sampled_from(
            [
                "order",
                "order",
                "order",
                "cancel",
                "refund",
                "refund",
                "adjust",
                "profile",
                "consent",
                "open",
                "cart",
                "preferences",
                "suppress",
                "suppress",
            ]
        )
    )
    detail_type, fields = "app.opened", dict[str, Any]()
    if kind == "order":
        oid = draw(st.sampled_from(["o1", "o2", "o3", "o4", "o5"]))
        total = draw(st.integers(min_value=100, max_value=300_000))
        channel = draw(st.sampled_from(["web", "app", "store"]))
        line = {"product_id": "p", "quantity": 1, "unit_price": str(total)}
        detail_type = "order.placed"
        fields = {"order_id": oid, "total": str(total), "currency": "JPY", "channel": channel}
        fields["lines"] = [line]
    elif kind == "cancel":
        oid = draw(st.sampled_from(["o1", "o2", "o3", "o4", "o5"]))
        detail_type, fields = "order.cancelled", {"order_id": oid}
    elif kind == "refund":
        # a refund id names one amount (its retries, under another event id and time, are
        # the same refund); refunds of one order may add up to more than its total
        oid = draw(st.sampled_from(["o1", "o2", "o3", "o4", "o5"]))
        rid = draw(st.sampled_from(["r1", "r2", "r3"]))
        amount = {"r1": "5000", "r2": "20000", "r3": "100000"}[rid]
        detail_type = "order.refunded"
        fields = {"order_id": oid, "refund_id": rid, "amount": amount, "currency": "JPY"}
    elif kind == "adjust":
        delta = draw(st.integers(min_value=-3000, max_value=3000).filter(bool))
        detail_type = "points.adjusted"
        fields = {"adjustment_id": f"a{n}", "delta": delta, "reason": "x"}
    elif kind == "profile":
        prefecture = draw(st.sampled_from(["Tokyo", "Osaka", "Kyoto"]))
        locale = draw(st.sampled_from(["ja", "en"]))
        detail_type, fields = "customer.upserted", {"prefecture": prefecture, "locale": locale}
    elif kind == "consent":
        status = draw(st.sampled_from(["opted_in", "opted_out"]))
        detail_type, fields = "consent.changed", {"channel": "email", "status": status}
    elif kind == "preferences":
        status = draw(st.sampled_from(["opted_in", "opted_out"]))
        topic = draw(st.sampled_from(["promotions", "newsletter"]))
        pause = draw(st.sampled_from([None, 30, 90, "resume"]))
        detail_type, fields = "preferences.changed", {"topics": {topic: {"email": status}}}
        if pause == "resume":
            fields["resume"] = True
        elif pause is not None:
            fields["pause_days"] = pause
    elif kind == "suppress":
        # two addresses (and every address), a few hours apart: ties of one instant too
        address = draw(st.sampled_from(["old@example.jp", "new@example.jp", None]))
        reason = draw(st.sampled_from(["bounce", "complaint"]))
        at = (T0 + timedelta(hours=draw(st.integers(min_value=0, max_value=3)))).isoformat()
        detail_type = "channel.suppressed"
        fields = {"occurred_at": at, "channel": "email", "reason": reason}
        if address is not None:
            fields["address_hash"] = address_hash(address)
    elif kind == "cart":
        quantity = draw(st.integers(1, 3))
        item = {"product_id": "p", "quantity": quantity, "unit_price": "100"}
        detail_type, fields = "cart.updated", {"cart_id": "k", "items": [item]}
    return envelope(detail_type, {**base, **fields}, f"e{n}")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(min_value=1, max_value=14))
    events = [draw(event(i)) for i in range(n)]
    # a delivery: every event at least once, some twice, in any order
    extra = draw(st.lists(st.sampled_from(events), max_size=6))
    delivery = draw(st.permutations(events + extra))
    return events, delivery


def fold(raws: list[dict[str, Any]]) -> Customer:
    customer = Customer(customer_id="c1")
    for raw in raws:
        customer = apply_events(customer, [parse_inbound(raw)], CFG, T0).customer
    return customer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_duplicated_and_reordered_delivery_gives_identical_state(
    history: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    in_order, delivered = history
    assert fold(in_order).derived_view() == fold(delivered).derived_view()


@settings(max_examples=60, deadline=None)
@given(histories())
def test_a_batch_and_one_by_one_give_the_same_state(
    history: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    _, delivered = history
    batch = apply_events(
        Customer(customer_id="c1"), [parse_inbound(r) for r in delivered], CFG, T0
    ).customer
    assert batch.derived_view() == fold(delivered).derived_view()


def suppressed(address: str, reason: str, hours: int) -> dict[str, Any]:
    at = (T0 + timedelta(hours=hours)).isoformat()
    detail = {"customer_id": "c1", "occurred_at": at, "channel": "email", "reason": reason}
    return envelope(
        "channel.suppressed",
        {**detail, "address_hash": address_hash(address)},
        f"sup-{address}-{reason}-{hours}",
    )


@pytest.mark.parametrize("bounce_hours", [0, 1, -1])
def test_suppressions_of_two_addresses_in_any_order_give_the_same_state(
    bounce_hours: int,
) -> None:
    # a complaint of the address of today and a bounce of the previous one (of the same
    # instant, later, earlier): both kept, whichever comes first
    complaint = suppressed("new@example.jp", "complaint", 0)
    bounce = suppressed("old@example.jp", "bounce", bounce_hours)
    one, other = fold([complaint, bounce]), fold([bounce, complaint])
    assert one.derived_view() == other.derived_view()
    assert len(one.suppressed_addresses["email"]) == 2


def order_sent(total: int, minutes: int, event_id: str) -> dict[str, Any]:
    """c1's order o1 (one line, JPY, web) sent at ``T0 + minutes`` for ``total``."""
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    line = {"product_id": "p", "quantity": 1, "unit_price": str(total)}
    fields = {"order_id": "o1", "total": str(total), "currency": "JPY", "channel": "web"}
    detail = {"customer_id": "c1", "occurred_at": at, **fields, "lines": [line]}
    return envelope("order.placed", detail, event_id)


def test_a_losing_resend_of_an_order_does_not_overwrite_its_row() -> None:
    """An order sent again at the same time with other content (a corrected total): one
    version wins in the state whatever the arrival order, and the ORDER row (the fact log a
    rebuild reads, the reports' order) holds the same version: the losing send, arriving
    second, wrote its row over the winner's."""
    sends = [order_sent(1000, 0, "e-a"), order_sent(2000, 0, "e-b")]
    totals = set()
    for arrival in (sends, sends[::-1]):
        customer, rows = Customer(customer_id="c1"), {}
        for raw in arrival:
            applied = apply_events(customer, [parse_inbound(raw)], CFG, T0)
            customer = applied.customer
            rows.update({row.sk: row for row in applied.activity if row.kind == "ORDER"})
        (row,) = rows.values()
        assert row.data["total"] == customer.orders["o1"].total
        totals.add(customer.orders["o1"].total)
    assert len(totals) == 1


def test_an_order_sent_again_later_replaces_its_earlier_row_in_any_arrival_order() -> None:
    """An order sent again with a later time (a corrected total) left its earlier ORDER row,
    keyed by its time: the timeline and the access export showed the order twice. The later
    send's row replaces it, in the same write; sent three times in one batch, one row stays."""
    from kizuna.runtime.clock import FixedClock
    from kizuna.services.ingest import ingest_one
    from kizuna_tools.fakes import MemoryStore

    sends = [order_sent(1000, 0, "e-a"), order_sent(2000, 5, "e-b"), order_sent(3000, 9, "e-c")]
    clock = FixedClock(T0 + timedelta(hours=1))
    for arrival in (sends, sends[::-1], [sends[1], sends[0], sends[2]]):
        store = MemoryStore()
        for raw in arrival:
            ingest_one(store, parse_inbound(raw), CFG, clock)
        rows = [i for (cid, sk), i in store.activity.items() if i.kind == "ORDER"]
        assert [(r.data["total"], r.at) for r in rows] == [(3000, T0 + timedelta(minutes=9))]
    # the three in one batch
    from kizuna.domain.activity import superseded

    applied = apply_events(Customer(customer_id="c1"), [parse_inbound(r) for r in sends], CFG, T0)
    kept, gone = superseded(applied.activity)
    assert [i.data["total"] for i in kept if i.kind == "ORDER"] == [3000]
    from kizuna.domain.timestamps import iso

    earlier = [f"ORDER#{iso(T0 + timedelta(minutes=m))}#o1" for m in (0, 5)]
    assert gone == [("c1", sk) for sk in earlier]


def test_a_refund_sent_twice_is_one_cancellation_in_the_fact_log() -> None:
    """A producer's retry of order.cancelled under a new event id, stamped with the retry
    time, wrote a second CANCEL row: the timeline and the exports showed two refunds."""
    from tests.factories import cancel, days, order

    customer = Customer(customer_id="c1")
    for raw in (order("c1", "o1", 60000, T0), cancel("c1", "o1", T0 + days(1), "ev-refund")):
        customer = apply_events(customer, [parse_inbound(raw)], CFG, T0).customer
    retry = cancel("c1", "o1", T0 + days(2), "ev-refund-retry")
    applied = apply_events(customer, [parse_inbound(retry)], CFG, T0)
    assert (applied.activity, applied.derived) == ([], [])
    assert applied.customer.orders["o1"].cancelled_at == T0 + days(1)


def test_the_earliest_cancellation_is_the_one_row_in_any_arrival_order() -> None:
    """Of cancellations of one order at several times, the earliest stands (in the state)
    and its CANCEL row is the only one: a later one writes none, an earlier one replaces
    the later row in the same write, as an order sent again later does."""
    from itertools import permutations

    from kizuna.domain.activity import superseded
    from kizuna.domain.timestamps import iso
    from kizuna.runtime.clock import FixedClock
    from kizuna.services.ingest import ingest_one
    from kizuna_tools.fakes import MemoryStore
    from tests.factories import cancel, days, order

    placed = order("c1", "o1", 60000, T0)
    cancels = [cancel("c1", "o1", T0 + days(n), f"ev-refund-{n}") for n in (1, 2, 3)]
    clock = FixedClock(T0 + days(4))
    for arrival in permutations([placed, *cancels]):
        store = MemoryStore()
        for raw in arrival:
            ingest_one(store, parse_inbound(raw), CFG, clock)
        rows = [i for i in store.activity.values() if i.kind == "CANCEL"]
        assert [r.at for r in rows] == [T0 + days(1)], [r.at for r in rows]
        assert "points_balance_after" in rows[0].data
        assert store.customers["c1"].orders["o1"].cancelled_at == T0 + days(1)
    # the three in one batch, the latest first: the earliest's row stays
    batch = [parse_inbound(r) for r in [placed, *cancels[::-1]]]
    kept, gone = superseded(apply_events(Customer(customer_id="c1"), batch, CFG, T0).activity)
    assert [i.at for i in kept if i.kind == "CANCEL"] == [T0 + days(1)]
    assert gone == [("c1", f"CANCEL#{iso(T0 + days(n))}#o1") for n in (2, 3)]
