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
from tests.factories import order, parsed

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
    assert rank_changed(Customer(customer_id="c1"), gold, CFG.loyalty, AT, "ev-1") is None


@pytest.mark.parametrize("module", [ingest, job], ids=["ingest", "scoring"])
def test_ingest_and_scoring_both_use_it(module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the one builder, watched
    seen: list[str] = []

    def watched(*args: Any) -> DerivedEvent | None:
        seen.append(args[4])
        return loyalty.rank_changed(*args)

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
