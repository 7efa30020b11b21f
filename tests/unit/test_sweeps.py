"""Scheduled triggers: dormancy risk, points expiry, abandoned carts."""

from datetime import timedelta

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.programs.sweeps import SweepKind, sweep
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.fakes import MemoryStore
from tests.factories import T0, days, envelope, order, parsed

CFG = KizunaConfig()  # risk after 60 days, dormant after 120; carts after 3 hours


def build(*raws: dict) -> MemoryStore:  # type: ignore[type-arg]
    store = MemoryStore()
    for raw in raws:
        ev = parsed(raw)
        cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
        store.customers[ev.customer_id] = apply_events(cur, [ev], CFG, T0).customer
    return store


def cart(cid: str, at, items: int = 1) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return envelope(
        "cart.updated",
        {
            "customer_id": cid,
            "occurred_at": at.isoformat(),
            "cart_id": f"k-{cid}",
            "items": [{"product_id": "p", "quantity": 1, "unit_price": "1200"}] * items,
        },
        f"ev-cart-{cid}-{at.isoformat()}",
    )


def test_dormancy_risk_fires_once_when_the_threshold_is_crossed() -> None:
    store = build(order("a", "o1", 5000, T0), order("b", "o2", 5000, T0 + days(30)))
    # the daily sweep at T0+60d 01:00 looks at orders 60-61 days old
    now = T0 + days(60) + timedelta(hours=1)
    events = sweep(SweepKind.DORMANCY, store, now, timedelta(days=1), CFG)
    assert [(e.detail_type, e.detail.customer_id) for e in events] == [
        ("customer.dormancy_risk", "a")
    ]
    assert events[0].detail.event_id == "a:dormancy_risk:2026-01-05T10:00:00.000000Z"
    # the next day's sweep does not fire again for "a"
    assert sweep(SweepKind.DORMANCY, store, now + days(1), timedelta(days=1), CFG) == []


def test_abandoned_cart_fires_after_n_hours_unless_an_order_followed() -> None:
    store = build(
        cart("a", T0),
        cart("b", T0),
        order("b", "o1", 1200, T0 + timedelta(hours=1)),
        cart("c", T0 + timedelta(hours=2)),
    )
    assert store.customers["b"].cart_open_at is None  # ordered after the cart update
    events = sweep(
        SweepKind.CARTS, store, T0 + timedelta(hours=3, minutes=30), timedelta(hours=1), CFG
    )
    assert [e.detail.customer_id for e in events] == ["a"]
    assert events[0].detail.model_dump()["item_count"] == 1


def test_points_expiry_warning_within_the_window() -> None:
    store = build(order("a", "o1", 30000, T0))  # 300 points expire at T0 + 365d
    now = T0 + days(335) + timedelta(hours=2)
    events = sweep(SweepKind.POINTS, store, now, timedelta(days=1), CFG)
    assert [(e.detail_type, e.detail.model_dump()["points"]) for e in events] == [
        ("customer.points_expiring", 300)
    ]
