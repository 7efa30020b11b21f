"""Scheduled triggers: dormancy risk, points expiry, abandoned carts."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kizuna.domain.customer import ConsentState, Customer
from kizuna.domain.ingest import apply_events
from kizuna.domain.timestamps import iso
from kizuna.events import DerivedEvent
from kizuna.ports import Watermark
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_program, load_programs
from kizuna.programs.sweeps import SweepKind, sweep
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepFailed, SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import ROOT, T0, adjust, cancel, days, envelope, order, parsed

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


# --- catching up from a watermark; late arrivals ------------------------------------------
class Publisher:
    """Puts events on a list, or refuses every one of them while ``down``."""

    def __init__(self) -> None:
        self.events: list[DerivedEvent] = []
        self.down = False

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        if self.down:
            return list(range(len(events)))
        self.events.extend(events)
        return []


HOURLY = SweepRequest(kinds=[SweepKind.CARTS], lookback_minutes=60)


def hourly(store: MemoryStore, publisher: Publisher, at: datetime) -> dict[str, int]:
    return run_sweep(HOURLY, store, store, publisher, CFG, FixedClock(at))


def receive(store: MemoryStore, raw: dict, at: datetime) -> None:  # type: ignore[type-arg]
    """Ingest ``raw`` at ``at`` (its receive time, whatever its occurred_at says)."""
    ev = parsed(raw)
    cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
    store.customers[ev.customer_id] = apply_events(cur, [ev], CFG, at).customer


def test_a_failed_hourly_sweep_is_caught_up_by_the_next_run() -> None:
    # given a cart abandoned at T0 and hourly sweeps (carts after 3 hours)
    store, publisher = MemoryStore(), Publisher()
    receive(store, cart("a", T0), T0)
    for hour in range(1, 4):
        hourly(store, publisher, T0 + timedelta(hours=hour))
    assert publisher.events == []  # not abandoned for 3 hours yet
    # when the run that would find it cannot put events on the bus
    publisher.down = True
    with pytest.raises(SweepFailed):
        hourly(store, publisher, T0 + timedelta(hours=4))
    assert store.watermarks[SweepKind.CARTS].edge == T0  # left where the last success was
    # then the next run sweeps from the watermark: the cart is found, once
    publisher.down = False
    for hour in range(5, 9):
        hourly(store, publisher, T0 + timedelta(hours=hour))
    assert [e.detail.event_id for e in publisher.events] == [
        f"a:cart_abandoned:{store.customers['a'].cart.stamp}"  # type: ignore[union-attr]
    ]
    assert store.watermarks[SweepKind.CARTS].edge == T0 + timedelta(hours=5)


def test_a_cart_event_that_arrives_late_is_swept_once() -> None:
    # given hourly sweeps, and a cart updated at T0+2h whose event only arrives at T0+10h
    store, publisher = MemoryStore(), Publisher()
    receive(store, cart("z", T0), T0)  # someone else's cart, on time
    for hour in range(1, 11):
        hourly(store, publisher, T0 + timedelta(hours=hour))
    receive(store, cart("late", T0 + timedelta(hours=2)), T0 + timedelta(hours=10, minutes=20))
    # when the sweeps go on for a day and more
    for hour in range(11, 40):
        hourly(store, publisher, T0 + timedelta(hours=hour))
    # then the late cart was swept by the first run after it arrived, and only then
    swept = [(e.detail.customer_id, e.detail.occurred_at) for e in publisher.events]
    assert swept == [("z", T0 + timedelta(hours=4)), ("late", T0 + timedelta(hours=11))]


def test_a_cart_later_than_the_lateness_allowance_is_not_swept() -> None:
    def late_cart_swept(request: SweepRequest) -> list[str]:
        store, publisher = MemoryStore(), Publisher()
        for hour in range(1, 30):
            run_sweep(request, store, store, publisher, CFG, FixedClock(T0 + timedelta(hours=hour)))
        # a cart abandoned at T0 (due T0+3h) whose event arrives 26 hours later
        receive(store, cart("very-late", T0), T0 + timedelta(hours=29, minutes=10))
        for hour in range(30, 34):
            run_sweep(request, store, store, publisher, CFG, FixedClock(T0 + timedelta(hours=hour)))
        return [e.detail.customer_id for e in publisher.events]

    assert late_cart_swept(HOURLY) == []  # 24 hours by default
    # unless the schedule allows more lateness
    assert late_cart_swept(HOURLY.model_copy(update={"lateness_minutes": 48 * 60})) == ["very-late"]


def test_a_kind_that_fails_does_not_hold_back_the_others() -> None:
    store, publisher = MemoryStore(), Publisher()
    receive(store, cart("a", T0), T0)

    def broken(*_: object) -> list[str]:
        raise RuntimeError("index unavailable")

    both = SweepRequest(kinds=[SweepKind.DORMANCY, SweepKind.CARTS], lookback_minutes=600)
    store.query_window = broken  # type: ignore[method-assign]
    with pytest.raises(SweepFailed, match="dormancy: RuntimeError; carts: RuntimeError"):
        run_sweep(both, store, store, publisher, CFG, FixedClock(T0 + timedelta(hours=4)))
    assert store.watermarks == {}
    del store.query_window  # the class's own again
    assert run_sweep(both, store, store, publisher, CFG, FixedClock(T0 + timedelta(hours=5))) == {
        SweepKind.DORMANCY: 0,
        SweepKind.CARTS: 1,
    }
    assert set(store.watermarks) == {SweepKind.DORMANCY, SweepKind.CARTS}


def test_a_window_swept_twice_enters_the_cart_program_once() -> None:
    # given an abandoned cart of a reachable customer outside the holdout
    programs = [p for p in load_programs(ROOT / "programs")[0] if p.id == "cart-abandonment"]
    cid = next(f"k{i}" for i in range(100) if not in_holdout(programs[0], f"k{i}"))
    store, publisher = MemoryStore(), Publisher()
    receive(store, cart(cid, T0), T0)
    consent = ConsentState(status="opted_in", at=T0, source="t", stamp="x")
    store.customers[cid] = store.customers[cid].model_copy(
        update={"email": f"{cid}@example.com", "consent": {"email": consent}}
    )
    # when two runs sweep the same window (a retry overlapping the next hour's run)
    store.watermarks[SweepKind.CARTS] = Watermark(edge=T0, ran_at=T0 + timedelta(hours=3))
    hourly(store, publisher, T0 + timedelta(hours=4))
    store.watermarks[SweepKind.CARTS] = Watermark(edge=T0, ran_at=T0 + timedelta(hours=3))
    hourly(store, publisher, T0 + timedelta(hours=4, minutes=5))
    assert len(publisher.events) == 2
    # then both carry the same event id, and evaluate enters the customer once
    assert len({e.detail.event_id for e in publisher.events}) == 1
    starter = MemoryStarter()
    evaluator = Evaluator(
        programs, store, starter, MemoryPublisher(), CFG, FixedClock(T0 + timedelta(hours=5))
    )
    for e in publisher.events:
        detail = e.detail.model_dump(mode="json")
        evaluator.evaluate(
            [IncomingEvent(detail["event_id"], e.detail_type, e.detail.occurred_at, detail)]
        )
    assert len(store.ledger(cid, "ENTRY")) == 1


# --- points expiry: every lot, not only the earliest ---------------------------------------
DAILY_POINTS = SweepRequest(kinds=[SweepKind.POINTS], lookback_minutes=1440)
LIFE = days(CFG.loyalty.points_expiry_days)


def ingest(store: MemoryStore, *raws: dict, at: datetime | None = None) -> None:  # type: ignore[type-arg]
    """Ingest ``raws`` as the pipeline does (the customer and their activity rows)."""
    for raw in raws:
        ev = parsed(raw)
        ingest_one(store, ev, CFG, FixedClock(at or ev.detail.occurred_at))


def daily_points(store: MemoryStore, publisher: Publisher, first: int, last: int) -> None:
    """The daily points sweep at 01:00 on each day ``first``..``last`` after T0."""
    for day in range(first, last + 1):
        run_sweep(DAILY_POINTS, store, store, publisher, CFG, FixedClock(T0 + days(day) - H9))


H9 = timedelta(hours=9)  # T0 is 10:00: the runs are at 01:00, never at a lot's instant


def warned(publisher: Publisher) -> list[tuple[datetime, int]]:
    return [
        (e.detail.model_dump()["expires_at"], e.detail.model_dump()["points"])
        for e in publisher.events
    ]


def test_every_lot_of_close_orders_is_warned_of_once() -> None:
    # given orders every 10 days (10 points each, expiring 365 days later), then none
    store, publisher = MemoryStore(), Publisher()
    ingest(store, *(order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)))
    expiries = [T0 + days(10 * n) + LIFE for n in range(3)]
    assert store.customers["a"].points_next_expiry_at == expiries[0]  # the index: lot 1 only
    # when the daily sweep runs while lot 1 expires (the item is not written then) ...
    daily_points(store, publisher, 300, 369)
    # ... and a later order rewrites the customer (its index value moves to lot 2's expiry,
    # already behind the watermark), and the sweep runs on for a year
    ingest(store, order("a", "o9", 1000, T0 + days(369) + H9))
    assert store.customers["a"].points_next_expiry_at == expiries[1]
    daily_points(store, publisher, 370, 740)
    # then each lot was warned of once, 30 days or less before it expired
    assert warned(publisher) == [(at, 10) for at in [*expiries, T0 + days(369) + H9 + LIFE]]
    assert len({e.detail.event_id for e in publisher.events}) == 4
    assert publisher.events[1].detail.event_id == f"a:points_expiring:{iso(expiries[1])}"
    # the balance is what is held when the sweep runs (the first three lots have expired
    # by the last warning, though the customer was not written since)
    balances = [e.detail.model_dump()["points_balance"] for e in publisher.events]
    assert balances == [30, 30, 30, 10]


def test_a_spent_or_cancelled_lot_is_not_warned_of_and_an_added_one_is() -> None:
    # given three close orders; the second is cancelled, the first lot's points are spent,
    # and 50 points are added by hand (a lot of their own)
    store, publisher = MemoryStore(), Publisher()
    ingest(store, *(order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)))
    ingest(
        store,
        cancel("a", "o1", T0 + days(21)),
        adjust("a", "spent", -10, T0 + days(22)),
        adjust("a", "gift", 50, T0 + days(30)),
    )
    # when the daily sweep runs from before the first expiry to after the last
    daily_points(store, publisher, 300, 420)
    # then only the third order's lot and the added one are warned of, once each
    assert warned(publisher) == [(T0 + days(20) + LIFE, 10), (T0 + days(30) + LIFE, 50)]


def test_a_lot_clawed_back_by_a_cancellation_is_not_warned_of() -> None:
    # given three close orders (10 points each); the first lot is redeemed before the next
    # order, then its order is cancelled: the 10 points spent of it are clawed back from
    # the second lot
    store, publisher = MemoryStore(), Publisher()
    ingest(store, *(order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)))
    ingest(store, adjust("a", "spent", -10, T0 + days(5)), cancel("a", "o0", T0 + days(25)))
    assert store.customers["a"].points_balance == 10
    # when the daily sweep runs from before the first expiry to after the last
    daily_points(store, publisher, 300, 420)
    # then only the third order's lot is warned of: the second's points were clawed back
    assert warned(publisher) == [(T0 + days(20) + LIFE, 10)]
    assert [e.detail.model_dump()["points_balance"] for e in publisher.events] == [10]


def test_a_customer_erased_is_not_warned_of() -> None:
    store, publisher = MemoryStore(), Publisher()
    ingest(store, *(order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)))
    del store.customers["a"]  # erased: the item is gone (its activity rows too, in DynamoDB)
    daily_points(store, publisher, 300, 400)
    assert publisher.events == []


POINTS_PROGRAM = """\
id: points-reminder
name: Your points expire soon
trigger:
  event: customer.points_expiring
steps:
  - {id: remind, type: send, channels: [email], template: remind}
"""


def test_evaluate_takes_the_warning_of_a_later_lot_and_not_a_forged_one(tmp_path: Path) -> None:
    # given the warning of the second of three close lots; the customer's stored earliest
    # expiry is still the first lot's (lots expire by time: nothing rewrote the item)
    store, publisher = MemoryStore(), Publisher()
    ingest(store, *(order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)))
    consent = ConsentState(status="opted_in", at=T0, source="t", stamp="x")
    store.customers["a"] = store.customers["a"].model_copy(
        update={"email": "a@example.com", "consent": {"email": consent}}
    )
    daily_points(store, publisher, 330, 346)
    second = publisher.events[-1]
    assert second.detail.model_dump()["expires_at"] == T0 + days(10) + LIFE
    assert store.customers["a"].points_next_expiry_at == T0 + LIFE
    (tmp_path / "points-reminder.yaml").write_text(POINTS_PROGRAM)
    program = load_program(tmp_path / "points-reminder.yaml")
    evaluator = Evaluator(
        [program], store, MemoryStarter(), MemoryPublisher(), CFG, FixedClock(T0 + days(346))
    )

    def incoming(e: DerivedEvent, **changes: object) -> IncomingEvent:
        detail = {**e.detail.model_dump(mode="json"), **changes}
        return IncomingEvent(detail["event_id"], e.detail_type, e.detail.occurred_at, detail)

    # when evaluate re-checks a claim of points expiring at a time no lot expires
    forged = evaluator.evaluate([incoming(second, expires_at=iso(T0 + days(15) + LIFE))])
    # then it enters nobody; the true warning of the second lot enters the customer
    assert [(d.decision, d.reason) for d in forged.decisions] == [("skipped", "claim_not_in_state")]
    result = evaluator.evaluate([incoming(second)])
    assert [(d.customer_id, d.decision) for d in result.decisions] == [("a", "entered")]
