"""Who enters a program, who does not and why; duplicates start one journey; goals."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.domain.customer import ConsentState, Customer, OrderFact
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import bucket, in_holdout
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import T0

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS, _ = load_programs(ROOT / "programs")
BY_ID = {p.id: p for p in PROGRAMS}


def placed(*order_ids: str) -> dict[str, OrderFact]:
    """Orders in the customer's state (a purchase event's claim is checked against them)."""
    return {oid: OrderFact(placed=True, at=T0) for oid in order_ids}


def customer(cid: str, **extra: Any) -> Customer:
    base: dict[str, Any] = {
        "orders": placed("o1", "o2"),
        "customer_id": cid,
        "email": f"{cid}@example.com",
        "order_count": 1,
        "first_order_at": T0,
        "last_order_at": T0,
        "rank": "Bronze",
        "consent": {"email": ConsentState(status="opted_in", at=T0, source="t", stamp="x")},
    }
    base.update(extra)
    return Customer(**base)


def first_purchase(cid: str, event_id: str | None = None, at: Any = T0) -> IncomingEvent:
    return IncomingEvent(
        event_id=event_id or f"{cid}:first_purchase",
        detail_type="customer.first_purchase",
        time=at,
        detail={"customer_id": cid, "order_id": "o1", "total": 3000},
    )


def order(cid: str, at: Any, total: int = 5000) -> IncomingEvent:
    return IncomingEvent(
        event_id=f"ord-{cid}-{at.isoformat()}",
        detail_type="order.placed",
        time=at,
        detail={"customer_id": cid, "order_id": "o2", "total": total},
    )


@pytest.fixture
def world() -> tuple[Evaluator, MemoryStore, MemoryStarter, MemoryPublisher, FixedClock]:
    store, starter, publisher = MemoryStore(), MemoryStarter(), MemoryPublisher()
    clock = FixedClock(T0)
    ev = Evaluator(PROGRAMS, store, starter, publisher, KizunaConfig(), clock)
    return ev, store, starter, publisher, clock


def treated_customer_id() -> str:
    program = BY_ID["second-purchase-coupon"]
    return next(f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}"))


def held_out_customer_id() -> str:
    program = BY_ID["second-purchase-coupon"]
    return next(f"c{i}" for i in range(1000) if in_holdout(program, f"c{i}"))


def test_first_purchase_enters_the_second_purchase_program(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter, _, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    result = ev.evaluate([first_purchase(cid)])
    assert [(d.program, d.decision) for d in result.decisions] == [
        ("second-purchase-coupon", "entered")
    ]
    ((program_id, payload),) = starter.started.values()
    assert program_id == "second-purchase-coupon"
    # the entry's cohort execution starts at the coupon, at 10:00 Tokyo the day after next
    # (the first step waits a day, until 10:00); it carries no customer id
    cohort = store.journeys[(cid, program_id)].cohort
    assert payload == {
        "program": program_id,
        "cohort": cohort,
        "group": "root",
        "run": cohort,
        "step": "coupon",
        "at": "2026-01-07T01:00:00Z",
    }
    assert [m.customer_id for m in store.cohort_members(str(cohort), "root")] == [cid]
    assert store.ledger(cid, "ENTRY")[0].data["decision"] == "entered"


def test_duplicated_trigger_starts_one_journey_and_records_once(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter, _, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    ev.evaluate([first_purchase(cid), first_purchase(cid)])
    assert len(starter.started) == 1
    assert len(store.ledger(cid, "ENTRY")) == 1


def test_holdout_is_stable_and_recorded(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter, _, _ = world
    cid = held_out_customer_id()
    store.customers[cid] = customer(cid)
    result = ev.evaluate([first_purchase(cid)])
    assert [d.decision for d in result.decisions] == ["holdout"]
    assert starter.started == {}
    assert store.journeys[(cid, "second-purchase-coupon")].holdout is True
    # the same customer always lands in the same arm
    assert bucket("holdout", "second-purchase-coupon", cid) == bucket(
        "holdout", "second-purchase-coupon", cid
    )


def test_holdout_share_is_close_to_the_configured_percent() -> None:
    program = BY_ID["second-purchase-coupon"]
    share = sum(in_holdout(program, f"cust-{i}") for i in range(20000)) / 20000
    assert 0.09 < share < 0.11


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"order_count": 2}, "audience"),  # lifecycle is 'repeat', not 'new'
        ({"consent": {}}, "no_channel"),
    ],
)
def test_non_entries_are_recorded_with_their_reason(world, extra, reason) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter, _, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid, **extra)
    result = ev.evaluate([first_purchase(cid)])
    assert [(d.decision, d.reason) for d in result.decisions] == [("skipped", reason)]
    assert store.ledger(cid, "ENTRY")[0].data["reason"] == reason
    assert starter.started == {}


def test_unknown_customer_is_skipped(world) -> None:  # type: ignore[no-untyped-def]
    ev, _, _, _, _ = world
    result = ev.evaluate([first_purchase("ghost")])
    assert [(d.decision, d.reason) for d in result.decisions] == [("skipped", "unknown_customer")]


def test_an_event_after_the_erasure_records_nothing_under_the_id(world) -> None:  # type: ignore[no-untyped-def]
    # Given a customer erased (the item and activity gone, the marker left) and another one
    ev, store, _, _, clock = world
    store.erased_ids.add("gone")
    store.customers["c-keep"] = customer("c-keep")
    clock.set(T0 + timedelta(days=2))  # past the erasure's sweep
    # When an order of theirs arrives late (a redriven dead letter, a slow producer)
    late = first_purchase("gone", at=T0 + timedelta(days=2))
    result = ev.evaluate([late, first_purchase("c-keep", at=T0 + timedelta(days=2))])
    # Then nothing is decided or written under the erased id; the other customer goes on
    assert all(d.customer_id != "gone" for d in result.decisions)
    assert [key for key in store.activity if key[0] == "gone"] == []
    assert any(d.customer_id == "c-keep" for d in result.decisions)


def test_reentry_once_and_every_n_days(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _starter, _, clock = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid, "a")])
    result = ev.evaluate([first_purchase(cid, "b")])
    assert [(d.decision, d.reason) for d in result.decisions] == [("skipped", "reentry_once")]
    # every 14 days: a second repeat purchase a week later is skipped, two weeks later enters
    program = BY_ID["post-purchase-recommendation"]
    cid2 = next(f"r{i}" for i in range(999) if not in_holdout(program, f"r{i}"))
    store.customers[cid2] = customer(cid2, order_count=3, orders=placed("r1", "r2", "r3"))

    def repeat(eid: str) -> IncomingEvent:
        return IncomingEvent(
            eid, "customer.repeat_purchase", clock.now(), {"customer_id": cid2, "order_id": eid}
        )

    assert ev.evaluate([repeat("r1")]).decisions[0].decision == "entered"
    clock.set(T0 + timedelta(days=7))
    assert ev.evaluate([repeat("r2")]).decisions[0].reason == "reentry_window"
    clock.set(T0 + timedelta(days=15))
    assert ev.evaluate([repeat("r3")]).decisions[0].decision == "entered"


def test_goal_converts_treated_and_holdout_within_the_window(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _, publisher, _ = world
    treated, held = treated_customer_id(), held_out_customer_id()
    for cid in (treated, held):
        store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(treated), first_purchase(held)])
    result = ev.evaluate(
        [order(treated, T0 + timedelta(days=3)), order(held, T0 + timedelta(days=40))]
    )  # outside 30 days
    conv = [d for d in result.decisions if d.decision == "converted"]
    assert [(d.customer_id, d.program) for d in conv] == [(treated, "second-purchase-coupon")]
    assert [e.detail_type for e in publisher.events] == ["program.converted"]
    assert publisher.events[0].detail.model_dump()["value"] == 5000
    # a second order does not convert the same entry twice
    again = ev.evaluate([order(treated, T0 + timedelta(days=4))])
    assert not [d for d in again.decisions if d.decision == "converted"]


def test_trigger_conditions_filter_events(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _starter, _, _ = world
    cid = "c-rank"
    store.customers[cid] = customer(cid, rank="Silver")
    down = IncomingEvent(
        "x1",
        "customer.rank_changed",
        T0,
        {"customer_id": cid, "direction": "down", "to_rank": "Silver"},
    )
    up = IncomingEvent(
        "x2",
        "customer.rank_changed",
        T0,
        {"customer_id": cid, "direction": "up", "to_rank": "Silver"},
    )
    assert ev.evaluate([down]).decisions == []
    assert [d.program for d in ev.evaluate([up]).decisions] == ["rank-up-congratulations"]


def test_audience_can_name_segments(world) -> None:  # type: ignore[no-untyped-def]
    from kizuna.programs.steps import check_branch
    from kizuna.programs.view import customer_view
    from kizuna.segments import load_segments

    _, store, starter, publisher, clock = world
    segments = {n: s.conditions for n, s in load_segments(ROOT / "segments").items()}
    program = BY_ID["second-purchase-coupon"].model_copy(
        update={"audience": {"segments": ["gold-at-risk", "kanto-30s-repeaters"]}}
    )
    ev = Evaluator([program], store, starter, publisher, KizunaConfig(), clock, segments=segments)
    cids = [f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}")][:2]
    inside, outside = cids
    store.customers[inside] = customer(inside, rank="Gold", rfm_segment="At risk")
    store.customers[outside] = customer(outside, rank="Bronze", rfm_segment="At risk")
    result = ev.evaluate([first_purchase(inside), first_purchase(outside)])
    assert {(d.customer_id, d.decision, d.reason) for d in result.decisions} == {
        (inside, "entered", None),
        (outside, "skipped", "audience"),
    }
    # the view lists every segment the customer is in; without definitions, none
    view = customer_view(store.customers[inside], T0, KizunaConfig(), segments)
    assert "gold-at-risk" in view["segments"]
    assert "segments" not in customer_view(store.customers[inside], T0, KizunaConfig())
    # branch conditions see the same field
    branchy = BY_ID["rank-up-congratulations"]
    [branch] = [s for s in branchy.steps if s.type == "branch"]
    gated = branchy.model_copy(
        update={
            "steps": [
                s.model_copy(update={"condition": {"segments": ["gold-at-risk"]}})
                if s.id == branch.id
                else s
                for s in branchy.steps
            ]
        }
    )
    cust = store.customers[inside]
    assert check_branch(gated, branch.id, cust, T0, KizunaConfig(), segments)
    assert not check_branch(gated, branch.id, cust, T0, KizunaConfig())


def test_the_triggering_order_is_not_its_own_conversion(world) -> None:  # type: ignore[no-untyped-def]
    # a repeat purchase stamped later than the evaluation clock (a producer's clock ahead,
    # or the demo's hourly replay): the entry is at the trigger's time, and the same
    # order's order.placed, evaluated after the entry, does not convert it
    ev, store, _, _, _ = world
    program = BY_ID["post-purchase-recommendation"]
    cid = next(f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}"))
    store.customers[cid] = customer(cid, order_count=2)
    placed = T0 + timedelta(minutes=37)
    trigger = IncomingEvent(
        event_id=f"{cid}:repeat_purchase:o2",
        detail_type="customer.repeat_purchase",
        time=placed,
        detail={"customer_id": cid, "order_id": "o2", "total": 5000, "order_count": 2},
    )
    entered = ev.evaluate([trigger])
    assert [d.decision for d in entered.decisions if d.program == program.id] == ["entered"]
    # the ledger records when the entry counts from (the reports attribute from there)
    [item] = [
        i for i in store.activity.values() if i.kind == "ENTRY" and i.data["program"] == program.id
    ]
    assert item.at == T0 and item.data["entered_at"] == "2026-01-05T10:37:00.000000Z"
    same_order = ev.evaluate([order(cid, placed)])
    assert not [d for d in same_order.decisions if d.decision == "converted"]
    later = ev.evaluate([order(cid, placed + timedelta(days=3))])
    assert [d.program for d in later.decisions if d.decision == "converted"] == [program.id]


def test_a_program_that_may_send_a_card_enters_a_customer_without_any_opt_in(world) -> None:  # type: ignore[no-untyped-def]
    # given: the second-purchase program, its send steps also offering a card
    _, store, starter, publisher, clock = world
    base = BY_ID["second-purchase-coupon"]
    program = base.model_copy(
        update={
            "steps": [
                s.model_copy(update={"channels": [*s.channels, "card"]}) if s.type == "send" else s
                for s in base.steps
            ]
        }
    )
    ev = Evaluator([program], store, starter, publisher, KizunaConfig(), clock)
    cids = [f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}")][:2]
    silent, refused = cids
    out = ConsentState(status="opted_out", at=T0, source="site", stamp="y")
    # a customer who never consented to anything; one who opted out of cards
    store.customers[silent] = customer(silent, consent={})
    store.customers[refused] = customer(refused, consent={"card": out})
    result = ev.evaluate([first_purchase(silent), first_purchase(refused)])
    # then: the first enters (a card reaches them), the second has no channel
    assert {(d.customer_id, d.decision, d.reason) for d in result.decisions} == {
        (silent, "entered", None),
        (refused, "skipped", "no_channel"),
    }
    skipped = store.ledger(refused, "ENTRY")[0].data["skipped"]
    assert "card:opted_out" in skipped and "email:no_consent" in skipped


REENTERING = """\
id: second-purchase-coupon
name: Reminder a week after each app open (templates of the program of that id)
trigger: {event: app.opened}
reentry: {mode: always}
holdout_percent: 0
goal: {event: order.placed, within_days: 30}
steps:
  - {id: wait_use, type: wait, days: 7}
  - {id: reminder, type: send, channels: [email], template: reminder, next: done}
  - {id: done, type: exit}
"""


def reentering(tmp_path: Path) -> tuple[Any, MemoryStore, MemoryStarter, Any]:
    """The REENTERING program, a store holding customer c1, its starter, and
    ``evaluate(at, event_id, kind, **detail)``: one event of c1 evaluated at ``at``."""
    from kizuna.programs.loader import load_program
    from tests import factories

    (tmp_path / "second-purchase-coupon.yaml").write_text(REENTERING)
    program = load_program(tmp_path / "second-purchase-coupon.yaml")
    store, starter = MemoryStore(), MemoryStarter()
    store.customers["c1"] = factories.customer("c1", order_count=1)

    def evaluate(at: Any, event_id: str, kind: str, **detail: Any) -> None:
        event = IncomingEvent(
            event_id=event_id, detail_type=kind, time=at, detail={"customer_id": "c1", **detail}
        )
        Evaluator(
            [program], store, starter, MemoryPublisher(), KizunaConfig(), FixedClock(at)
        ).evaluate([event])

    return program, store, starter, evaluate


def test_a_reentry_keeps_an_earlier_entrys_conversion_so_its_send_still_exits(
    tmp_path: Path,
) -> None:
    from kizuna.services.contracts import SendRequest
    from tests import factories
    from tests.factories import Email

    program, store, _, at_time = reentering(tmp_path)

    def evaluate(days: float, event_id: str, kind: str, **detail: Any) -> None:
        at_time(T0 + timedelta(days=days), event_id, kind, **detail)

    # entry 1 on day 0, its goal (an order) on day 1, entry 2 on day 2
    evaluate(0, "open-1", "app.opened")
    first = store.journeys[("c1", program.id)].execution
    evaluate(1, "ord-1", "order.placed", order_id="o1", total=1000)
    evaluate(2, "open-2", "app.opened")
    state = store.journeys[("c1", program.id)]
    assert state.entries == 2 and state.execution != first
    assert state.goal_reached_at == T0 + timedelta(days=1)
    # entry 1's reminder on day 7 exits on its goal: the customer bought already
    email = Email()
    sender = factories.send_service(
        store, {"email": email}, FixedClock(T0 + timedelta(days=7)), programs=[program]
    )
    request = SendRequest(
        program=program.id, step="reminder", customer_id="c1", execution=first, entered_at=T0
    )
    (answer,) = sender.send_many([request])
    assert answer.status == "exit" and answer.reason == "goal_reached" and email.sent == []
    # entry 2 has not converted: its own reminder would go
    evaluate(3, "ord-2", "order.placed", order_id="o2", total=500)
    assert store.journeys[("c1", program.id)].goal_reached_at == T0 + timedelta(days=3)


def test_an_earlier_trigger_delivered_again_after_a_reentry_enters_nothing(
    tmp_path: Path,
) -> None:
    # reentry: always; trigger A, then B, then A again (a retried sweep, a redriven dead
    # letter): A was taken already, no third entry, no third ledger row
    from kizuna.programs.journeys import RECENT_TRIGGERS

    program, store, starter, at_time = reentering(tmp_path)

    def evaluate(hours: int, event_id: str) -> None:
        at_time(T0 + timedelta(hours=hours), event_id, "app.opened")

    evaluate(0, "open-a")
    evaluate(1, "open-b")
    evaluate(2, "open-a")
    evaluate(3, "open-b")
    state = store.journeys[("c1", program.id)]
    assert state.entries == 2 and state.last_event_id == "open-b"
    assert len(store.ledger("c1", "ENTRY")) == 2 and len(starter.started) == 2
    # the memory is bounded: the oldest of more than RECENT_TRIGGERS + 1 enters again
    for n in range(RECENT_TRIGGERS):
        evaluate(4 + n, f"open-{n}")
    assert len(store.journeys[("c1", program.id)].earlier_triggers) == RECENT_TRIGGERS
    evaluate(100, "open-b")  # still remembered (the 16th earlier)
    assert store.journeys[("c1", program.id)].entries == 2 + RECENT_TRIGGERS
    evaluate(101, "open-a")  # forgotten: a new entry (as before this memory)
    assert store.journeys[("c1", program.id)].entries == 3 + RECENT_TRIGGERS


def test_a_conversion_whose_write_took_effect_and_answered_an_error_is_recorded_once(
    world,  # type: ignore[no-untyped-def]
) -> None:
    ev, store, _, publisher, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    # the goal's conditional write takes effect, then answers an error; the SDK's retry
    # fails its condition (the item changed: by that very write)
    save = store.save_journey

    def took_effect_then_failed(state, previous):  # type: ignore[no-untyped-def]
        assert save(state, previous)
        return False

    store.save_journey = took_effect_then_failed  # type: ignore[method-assign]
    result = ev.evaluate([order(cid, T0 + timedelta(days=3))])
    store.save_journey = save  # type: ignore[method-assign]
    # the conversion is recorded and published all the same
    assert [d.decision for d in result.decisions] == ["converted"]
    assert [e.detail_type for e in publisher.events] == ["program.converted"]
    # another order does not convert the entry again
    again = ev.evaluate([order(cid, T0 + timedelta(days=4))])
    assert not [d for d in again.decisions if d.decision == "converted"]
    assert len(publisher.events) == 1


def test_a_conversion_whose_event_failed_is_published_when_its_order_comes_again() -> None:
    store, starter, publisher = MemoryStore(), MemoryStarter(), MemoryPublisher(fail_first=1)
    ev = Evaluator(PROGRAMS, store, starter, publisher, KizunaConfig(), FixedClock(T0))
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    converting = order(cid, T0 + timedelta(days=3))
    # PutEvents refuses program.converted after the conversion was saved: the batch fails
    with pytest.raises(RuntimeError, match=r"program\.converted"):
        ev.evaluate([converting])
    assert publisher.events == []
    # SQS delivers the order again: the conversion (saved) is published, under its own id
    result = ev.evaluate([converting])
    assert [d.decision for d in result.decisions] == ["converted"]
    assert [e.detail_type for e in publisher.events] == ["program.converted"]
    assert publisher.events[0].detail.event_id.startswith(
        f"{cid}:converted:second-purchase-coupon:"
    )


def test_another_goal_event_at_the_same_instant_is_no_second_conversion(
    world,  # type: ignore[no-untyped-def]
) -> None:
    ev, store, _, publisher, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    converting = order(cid, T0 + timedelta(days=3))
    # the same order put twice by its producer (a retried PutEvents: a new envelope id)
    twin = IncomingEvent(
        event_id="another-envelope-id",
        detail_type=converting.detail_type,
        time=converting.time,
        detail=converting.detail,
    )
    first = ev.evaluate([converting])
    second = ev.evaluate([twin])
    assert [d.decision for d in first.decisions] == ["converted"]
    assert [d.decision for d in second.decisions] == []
    assert len(publisher.events) == 1


def test_a_redelivered_skipped_trigger_keeps_one_row(world) -> None:  # type: ignore[no-untyped-def]
    """A trigger skipped and delivered again later (a retried batch, a repeated sweep) is
    decided again but leaves one ledger row, at the trigger's time, not one per delivery;
    when the redelivery finds the customer now qualifies it enters, beside the skip."""
    ev, store, starter, _, clock = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid, consent={})  # no channel reaches them
    late = first_purchase(cid, at=T0 - timedelta(hours=3))
    for minutes in (0, 5, 50):
        clock.set(T0 + timedelta(minutes=minutes))
        result = ev.evaluate([late])
        assert [(d.decision, d.reason) for d in result.decisions] == [("skipped", "no_channel")]
    rows = store.ledger(cid, "ENTRY")
    assert [(r.at, r.data["decision"], r.data["reason"]) for r in rows] == [
        (late.time, "skipped", "no_channel")
    ]
    store.customers[cid] = customer(cid)  # consented since
    clock.set(T0 + timedelta(hours=1))
    assert [d.decision for d in ev.evaluate([late]).decisions] == ["entered"]
    rows = store.ledger(cid, "ENTRY")
    assert [(r.at, r.data["decision"]) for r in rows] == [
        (late.time, "skipped"),
        (T0 + timedelta(hours=1), "entered"),
    ]
    assert len(starter.started) == 1
