"""``customer.rank_changed`` has one builder, whether an event moved the rank (ingest) or
time alone did (the daily scoring)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from kizuna.domain import ingest, loyalty
from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import rank_changed
from kizuna.events import DerivedEvent, RankChanged, RankDirection
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring import job
from tests.factories import days, order, parsed, upsert

CFG = KizunaConfig()
AT = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


def test_the_builder_says_which_way_the_rank_moved() -> None:
    silver = Customer(customer_id="c1", rank="Silver", rank_points=600)
    gold = silver.model_copy(update={"rank": "Gold", "rank_points": 1200})
    up = rank_changed(silver, gold, CFG.loyalty, AT, "ev-1")
    assert up is not None and isinstance(up.detail, RankChanged)
    assert (up.detail_type, up.detail.event_id) == (
        "customer.rank_changed",
        "c1:rank_changed:Silver:Gold:ev-1",
    )
    assert (up.detail.direction, up.detail.rank_points, up.detail.caused_by) == (
        RankDirection.UP,
        1200,
        "ev-1",
    )
    down = rank_changed(gold, silver, CFG.loyalty, AT, "scoring:2026-01-05")
    assert down is not None and down.detail.model_dump()["direction"] == RankDirection.DOWN
    assert rank_changed(gold, gold, CFG.loyalty, AT, "ev-1") is None
    # a customer without a rank moves nowhere, unless the caller says what they held
    assert rank_changed(Customer(customer_id="c1"), gold, CFG.loyalty, AT, "ev-1") is None
    first = rank_changed(
        Customer(customer_id="c1"), gold, CFG.loyalty, AT, "ev-1", from_rank="Bronze"
    )
    assert first is not None and first.detail.event_id == "c1:rank_changed:Bronze:Gold:ev-1"
    assert (first.detail.from_rank, first.detail.direction) == ("Bronze", RankDirection.UP)


@pytest.mark.parametrize("module", [ingest, job], ids=["ingest", "scoring"])
def test_ingest_and_scoring_both_use_it(module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the one builder, watched
    seen: list[str] = []

    def watched(*args: Any, **kwargs: Any) -> DerivedEvent | None:
        seen.append(args[4])
        return loyalty.rank_changed(*args, **kwargs)

    monkeypatch.setattr(module, "rank_changed", watched)
    # when a big order lifts a Bronze customer (ingest), or the job rescored them
    bronze = loyalty.recompute(Customer(customer_id="c1", last_event_at=AT), CFG.loyalty)
    if module is ingest:
        raw = order("c1", "o1", 200_000, AT, event_id="ev-big")
        out = ingest.apply_events(bronze, [parsed(raw)], CFG, AT).derived
    else:
        moved = bronze.model_copy(update={"rank": "Gold"})
        out = job.events_for(bronze, moved, CFG, AT)
    # then the rank event is the builder's
    assert seen and any(e.detail_type == "customer.rank_changed" for e in out)


def _rank_moves(c: Customer, *raws: dict[str, Any]) -> tuple[Customer, list[tuple[str, str]]]:
    """Apply ``raws`` one delivery at a time: the customer and the rank moves announced."""
    moves: list[tuple[str, str]] = []
    for raw in raws:
        applied = ingest.apply_events(c, [parsed(raw)], CFG, AT + days(30))
        c = applied.customer
        moves += [
            (e.detail.from_rank, e.detail.to_rank)
            for e in applied.derived
            if isinstance(e.detail, RankChanged)
        ]
    return c, moves


def test_a_first_order_that_reaches_gold_is_a_rank_up_whatever_came_first() -> None:
    # given a first order of 250,000 yen (2,500 rank points: Gold) and a signup the day before
    big = order("c1", "o1", 250_000, AT, event_id="ev-big")
    signup = upsert("c1", AT - days(1), "ev-signup", email="a@example.com")
    # when the signup comes first, then when the order does (or there is no signup at all)
    _, signup_first = _rank_moves(Customer(customer_id="c1"), signup, big)
    c, order_first = _rank_moves(Customer(customer_id="c1"), big, signup)
    _, order_only = _rank_moves(Customer(customer_id="c1"), big)
    # then the customer is Gold and is told so, once, whatever the order of arrival
    assert c.rank == "Gold"
    assert signup_first == order_first == order_only == [("Bronze", "Gold")]


def test_a_first_event_that_leaves_the_customer_in_the_first_rank_moves_nothing() -> None:
    # a small first order, or a signup alone: Bronze, no rank change announced
    small = order("c1", "o1", 3_000, AT, event_id="ev-small")
    signup = upsert("c1", AT, "ev-signup", email="a@example.com")
    for raw in (small, signup):
        c, moves = _rank_moves(Customer(customer_id="c1"), raw)
        assert (c.rank, moves) == ("Bronze", [])


def test_an_import_of_a_gold_customer_announces_nothing() -> None:
    # history is not news: the bulk import stays silent, also for a first fold
    raw = order("c1", "o1", 250_000, AT, event_id="ev-big")
    applied = ingest.apply_events(Customer(customer_id="c1"), [parsed(raw)], CFG, AT, bulk=True)
    assert applied.customer.rank == "Gold" and applied.derived == []
