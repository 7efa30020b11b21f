"""A derived event is a claim about a customer: evaluate re-checks it against the stored
state, so a forged (or stale) ``customer.segment_changed`` to Champions sends nothing, and a
true claim that is not saved yet (the scoring puts its events before it saves) is deferred
to a later delivery, not lost."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kizuna.domain.customer import CartState, ConsentState, Customer, OrderFact
from kizuna.events import (
    DERIVED_MODELS,
    CartAbandoned,
    Cause,
    DerivedEvent,
    DormancyRisk,
    FirstPurchase,
    PointsExpiring,
    PointsNearNextRank,
    RankChanged,
    RepeatPurchase,
    SegmentChanged,
    derived_event,
)
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.evaluate import EvaluateService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import T0
from tests.sqs_events import sqs_event, sqs_record

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS, _ = load_programs(ROOT / "programs")
BY_ID = {p.id: p for p in PROGRAMS}
MAX_RECEIVES = 5
CLAIM_NOT_IN_STATE = "claim_not_in_state"  # the ledger's reason (kizuna.programs.claims)


def champion_candidate() -> str:
    program = BY_ID["champions-care"]
    return next(f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}"))


def customer(cid: str, **extra: Any) -> Customer:
    base: dict[str, Any] = {
        "customer_id": cid,
        "email": f"{cid}@example.com",
        "order_count": 3,
        "first_order_at": T0 - timedelta(days=90),
        "last_order_at": T0 - timedelta(days=3),
        "rank": "Gold",
        "consent": {"email": ConsentState(status="opted_in", at=T0, source="t", stamp="x")},
    }
    return Customer(**{**base, **extra})


def to_champions(cid: str) -> DerivedEvent:
    return derived_event(
        SegmentChanged,
        f"segment:Champions:{T0.date()}",
        Cause(cid, T0, f"scoring:{T0.date()}"),
        from_segment="Loyal",
        to_segment="Champions",
        recency=5,
        frequency=5,
        monetary=5,
    )


def incoming(event: DerivedEvent, *, final: bool = True) -> IncomingEvent:
    detail = json.loads(event.detail.model_dump_json())
    options = {} if final else {"final": False}
    return IncomingEvent(
        event_id=event.detail.event_id,
        detail_type=event.detail_type,
        time=event.detail.occurred_at,
        detail=detail,
        **options,
    )


def bus_body(event: DerivedEvent, source: str = "kizuna") -> dict[str, Any]:
    """The EventBridge event as the evaluate queue receives it."""
    return {
        "version": "0",
        "id": "env-" + event.detail.event_id,
        "detail-type": event.detail_type,
        "source": source,
        "account": "123456789012",
        "time": event.detail.occurred_at.isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(event.detail.model_dump_json()),
    }


@pytest.fixture
def world() -> tuple[Evaluator, MemoryStore, MemoryStarter]:
    store, starter = MemoryStore(), MemoryStarter()
    ev = Evaluator(PROGRAMS, store, starter, MemoryPublisher(), KizunaConfig(), FixedClock(T0))
    return ev, store, starter


def test_every_derived_type_has_a_claim_check() -> None:
    from kizuna.programs.claims import CLAIMS

    # a new derived type without a check would let its forgeries through
    assert set(CLAIMS) == set(DERIVED_MODELS)


def test_a_forged_champions_event_sends_nothing_and_says_why(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter = world
    # Given a customer the scoring never made a Champion
    cid = champion_candidate()
    store.customers[cid] = customer(cid, rfm_segment="Hibernating")
    # When a producer's forged segment_changed to Champions reaches evaluate (last delivery)
    result = ev.evaluate([incoming(to_champions(cid))])
    # Then nobody enters, nothing starts, and the ledger says why
    assert [(d.program, d.decision, d.reason) for d in result.decisions] == [
        ("champions-care", "skipped", CLAIM_NOT_IN_STATE)
    ]
    assert starter.started == {}
    assert store.journeys == {}
    [entry] = store.ledger(cid, "ENTRY")
    assert entry.data["reason"] == CLAIM_NOT_IN_STATE


def test_the_same_event_enters_a_customer_the_scoring_made_a_champion(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, starter = world
    cid = champion_candidate()
    store.customers[cid] = customer(cid, rfm_segment="Champions")
    result = ev.evaluate([incoming(to_champions(cid))])
    assert [(d.program, d.decision) for d in result.decisions] == [("champions-care", "entered")]
    # champions-care starts at once: its send runs in one invocation, no execution
    assert len(starter.runs) == 1 and starter.started == {}


def test_a_claim_not_saved_yet_is_deferred_then_enters(world) -> None:  # type: ignore[no-untyped-def]
    # The scoring puts its events before it saves: evaluate may read the customer first.
    ev, store, starter = world
    cid = champion_candidate()
    store.customers[cid] = customer(cid, rfm_segment="Loyal")
    early = ev.evaluate([incoming(to_champions(cid), final=False)])
    assert early.deferred == {0}
    assert early.decisions == [] and store.activity == {} and starter.started == {}
    # the scoring's save lands; the next delivery enters
    store.customers[cid] = customer(cid, rfm_segment="Champions")
    later = ev.evaluate([incoming(to_champions(cid), final=False)])
    assert later.deferred == set()
    assert [d.decision for d in later.decisions] == ["entered"]


def test_a_redelivered_trigger_keeps_its_entry_when_the_state_moved_on(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _ = world
    cid = champion_candidate()
    store.customers[cid] = customer(cid, rfm_segment="Champions")
    ev.evaluate([incoming(to_champions(cid))])
    store.customers[cid] = customer(cid, rfm_segment="Loyal")  # the next day's scoring
    again = ev.evaluate([incoming(to_champions(cid))])
    assert again.decisions == [] and again.deferred == set()
    assert [i.data["decision"] for i in store.ledger(cid, "ENTRY")] == ["entered"]


def test_the_service_retries_an_unconfirmed_claim_and_records_it_on_the_last_receive(
    world,  # type: ignore[no-untyped-def]
) -> None:
    ev, store, starter = world
    letters = MemoryDeadLetters()
    service = EvaluateService(ev, letters, MAX_RECEIVES)
    cid = champion_candidate()
    store.customers[cid] = customer(cid, rfm_segment=None)
    body = bus_body(to_champions(cid))
    # first receives: the record goes back to the queue, nothing is decided
    first = service.process_batch(sqs_event(sqs_record(body, "m1", receive_count=1)))
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert store.activity == {}
    # the last receive: skipped with the reason, not retried, not dead-lettered
    last = service.process_batch(sqs_event(sqs_record(body, "m1", receive_count=MAX_RECEIVES)))
    assert last == {"batchItemFailures": []}
    assert [i.data["reason"] for i in store.ledger(cid, "ENTRY")] == [CLAIM_NOT_IN_STATE]
    assert letters.letters == [] and starter.started == {}


CAUSE = Cause("c1", T0, "e1")
CART = CartState(
    cart_id="cart-1", item_count=2, value=Decimal(3000), currency="JPY", at=T0, stamp="s"
)
TRUE_STATE: dict[str, Any] = {
    "customer_id": "c1",
    "orders": {"o9": OrderFact(placed=True, at=T0)},
    "rank": "Silver",
    "next_rank": "Gold",
    "last_order_at": T0 - timedelta(days=60),
    "points_next_expiry_at": T0 + timedelta(days=5),
    "points_next_expiry_amount": 120,
    "cart": CART,
    "cart_open_at": T0 - timedelta(hours=3),
    "rfm_segment": "Champions",
}
PURCHASE: dict[str, Any] = {
    "order_id": "o9",
    "total": Decimal(100),
    "currency": "JPY",
    "channel": "web",
    "product_ids": (),
    "categories": (),
}
CLAIMED: list[tuple[DerivedEvent, dict[str, Any]]] = [
    # (the event as its emitter builds it, a state that does not bear it out)
    (derived_event(FirstPurchase, "fp", CAUSE, **PURCHASE), {"orders": {}}),
    (
        derived_event(RepeatPurchase, "rp", CAUSE, order_count=2, **PURCHASE),
        {"orders": {"o9": OrderFact(placed=True, at=T0, cancelled_at=T0)}},
    ),
    (
        derived_event(
            RankChanged,
            "rc",
            CAUSE,
            from_rank="Bronze",
            to_rank="Silver",
            direction="up",
            rank_points=500,
        ),
        {"rank": "Bronze"},
    ),
    (
        derived_event(
            PointsNearNextRank,
            "pn",
            CAUSE,
            rank="Silver",
            next_rank="Gold",
            points_to_next_rank=80,
            rank_points=920,
            points_balance=300,
        ),
        {"next_rank": "Platinum"},
    ),
    (
        derived_event(
            DormancyRisk,
            "dr",
            CAUSE,
            last_order_at=T0 - timedelta(days=60),
            days_since_last_order=60,
            dormant_after_days=90,
            order_count=1,
        ),
        {"last_order_at": T0 - timedelta(days=1)},
    ),
    (
        derived_event(
            PointsExpiring,
            "pe",
            CAUSE,
            points=120,
            expires_at=T0 + timedelta(days=5),
            points_balance=300,
        ),
        {"points_next_expiry_at": None, "points_next_expiry_amount": 0},
    ),
    (
        derived_event(
            CartAbandoned,
            "ca",
            CAUSE,
            cart_id="cart-1",
            item_count=2,
            value=Decimal(3000),
            currency="JPY",
            product_ids=(),
            cart_updated_at=T0,
        ),
        {"cart": None, "cart_open_at": None},
    ),
    (to_champions("c1"), {"rfm_segment": "Loyal"}),
]


@pytest.mark.parametrize(("event", "other"), CLAIMED, ids=[e.detail_type for e, _ in CLAIMED])
def test_each_claim_holds_against_the_state_it_was_derived_from_only(
    event: DerivedEvent, other: dict[str, Any]
) -> None:
    from kizuna.programs.claims import claim_holds

    detail = json.loads(event.detail.model_dump_json())
    assert claim_holds(event.detail_type, detail, Customer(**TRUE_STATE))
    assert not claim_holds(event.detail_type, detail, Customer(**{**TRUE_STATE, **other}))


def test_a_forged_goal_converts_nobody(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _ = world
    program = BY_ID["points-to-next-rank"]
    cid = next(f"n{i}" for i in range(1000) if not in_holdout(program, f"n{i}"))
    store.customers[cid] = customer(cid, rank="Silver", next_rank="Gold", points_to_next_rank=80)
    near = derived_event(
        PointsNearNextRank,
        "points_near_next_rank:Gold:e1",
        Cause(cid, T0, "e1"),
        rank="Silver",
        next_rank="Gold",
        points_to_next_rank=80,
        rank_points=920,
        points_balance=300,
    )
    assert [d.decision for d in ev.evaluate([incoming(near)]).decisions] == ["entered"]
    # a rank-up to Gold the customer never made: the goal of points-to-next-rank
    forged = derived_event(
        RankChanged,
        "rank_changed:Silver:Gold:forged",
        Cause(cid, T0 + timedelta(days=1), "forged"),
        from_rank="Silver",
        to_rank="Gold",
        direction="up",
        rank_points=1000,
    )
    result = ev.evaluate([incoming(forged)])
    assert not [d for d in result.decisions if d.decision == "converted"]
    assert store.journeys[(cid, program.id)].goal_reached_at is None


def test_a_claim_ingest_recorded_holds_though_the_state_moved_on() -> None:
    from kizuna.domain.customer import ProcessedRecord
    from kizuna.programs.claims import claim_holds

    # given: order o1 made c Silver and o2 made c Gold; ingest kept what each derived
    silver = derived_event(
        RankChanged,
        "rank:o1",
        Cause("c1", T0, "o1"),
        from_rank="Bronze",
        to_rank="Silver",
        direction="up",
        rank_points=100,
    )
    detail = silver.detail.model_dump(mode="json")
    record = ProcessedRecord(at=T0, derived=[{"detail_type": silver.detail_type, "detail": detail}])
    c = customer("c1", rank="Gold", processed={"o1": record})
    # then: the Silver change is borne out by ingest's record, though c is Gold now
    assert claim_holds("customer.rank_changed", detail, c)
    # and a claim naming o1 that says anything else is not (the state says Gold, not Platinum)
    assert not claim_holds("customer.rank_changed", {**detail, "to_rank": "Platinum"}, c)
    assert not claim_holds("customer.segment_changed", detail, c)
