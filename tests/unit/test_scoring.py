"""RFM scores and segments against hand-computed cases, and the daily job on fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kizuna.domain.customer import Customer, SettledHistory
from kizuna.domain.ingest import apply_events
from kizuna.domain.loyalty import recompute
from kizuna.events import RankChanged
from kizuna.ports import VersionConflict
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig, ScoringConfig, SegmentRule
from kizuna.scoring.job import (
    BoundariesRequest,
    ScoreRequest,
    ScoringRequest,
    compute_boundaries,
    run_scoring,
    score_segment,
)
from kizuna.scoring.rfm import (
    Boundaries,
    RfmInputs,
    boundaries,
    collect_inputs,
    inputs_of,
    score,
    segment_grid,
    segment_names,
    segment_order,
)
from kizuna_tools.fakes import MemoryPublisher, MemoryStore
from tests.factories import T0, cancel, days, order, parsed, upsert

CFG = KizunaConfig()
SCORING = CFG.scoring
FIXED = Boundaries(
    recency_days=(30, 60, 120, 240), frequency=(1, 2, 3, 5), monetary=(3000, 8000, 20000, 50000)
)


def inputs(recency: list[float], frequency: list[float], monetary: list[float]) -> RfmInputs:
    return RfmInputs(
        np.array(recency, dtype=np.float64),
        np.array(frequency, dtype=np.float64),
        np.array(monetary, dtype=np.float64),
    )


def customer(cid: str, *raws: dict) -> Customer:  # type: ignore[type-arg]
    c = Customer(customer_id=cid)
    for raw in raws:
        c = apply_events(c, [parsed(raw)], CFG, T0).customer
    return c


# --- boundaries and scores ------------------------------------------------------------------


def test_quantile_boundaries_of_one_to_ten_give_two_values_per_score() -> None:
    # Given ten customers with 1..10 of each measure
    values = [float(v) for v in range(1, 11)]
    # When the boundaries are the 20/40/60/80% quantiles ("lower": observed values)
    bounds = boundaries(inputs(values, values, values), SCORING)
    # Then the cuts are 2, 4, 6, 8 and each score holds two customers
    assert bounds.frequency == (2, 4, 6, 8)
    assert bounds.sample_size == 10
    scores = score(inputs(values, values, values), bounds, SCORING)
    assert scores.frequency.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores.monetary.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # fewer days since the last order is better
    assert scores.recency.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_ties_at_a_boundary_fall_in_the_bin_below() -> None:
    # Given a base where most customers ordered once
    freq = [1.0, 1, 1, 1, 1, 1, 2, 2, 3, 5]
    bounds = boundaries(inputs(freq, freq, freq), SCORING)
    assert bounds.frequency == (1, 1, 1, 2)
    # When scored
    scores = score(inputs([10.0] * 4, [1, 2, 3, 5], [1, 2, 3, 5]), bounds, SCORING)
    # Then every single-order customer has the same (lowest) score, and a value equal to a
    # boundary is below it: 2 has three cuts below it -> 4
    assert scores.frequency.tolist() == [1, 4, 5, 5]


def test_recency_ties_at_a_boundary_get_the_better_score() -> None:
    scores = score(inputs([0, 30, 31, 60, 240, 241], [1] * 6, [1] * 6), FIXED, SCORING)
    assert scores.recency.tolist() == [5, 5, 4, 4, 2, 1]


def test_an_empty_sample_falls_back_to_the_fixed_thresholds() -> None:
    bounds = boundaries(inputs([], [], []), SCORING)
    assert bounds.recency_days == SCORING.fixed.recency_days
    assert bounds.sample_size == 0


def test_fixed_method_ignores_the_sample() -> None:
    cfg = ScoringConfig(method="fixed")
    bounds = boundaries(inputs([1.0, 2], [1, 2], [1, 2]), cfg)
    assert bounds.frequency == cfg.fixed.frequency


# --- segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r_days", "f", "m", "expected"),
    [
        (3, 6, 60000, "Champions"),  # R5 F5 M5
        (3, 1, 100, "New"),  # R5 FM1
        (45, 6, 60000, "Loyal"),  # R4 FM5
        (45, 1, 100, "Promising"),  # R4 FM1
        (3, 2, 5000, "Potential loyalist"),  # R5 F2 M2 -> FM2
        (90, 3, 10000, "Need attention"),  # R3 F3 M3
        (90, 1, 100, "About to sleep"),  # R3 FM1
        (200, 6, 60000, "Can't lose"),  # R2 FM5
        (200, 3, 10000, "At risk"),  # R2 FM3
        (400, 1, 100, "Lost"),  # R1 FM1
        (400, 2, 5000, "Hibernating"),  # R1 FM2
        (3, 6, 5000, "Champions"),  # F5 M2 -> FM (5+2+1)//2 = 4
    ],
)
def test_named_segments_from_the_r_fm_grid(r_days: int, f: int, m: int, expected: str) -> None:
    scores = score(inputs([r_days], [f], [m]), FIXED, SCORING)
    assert segment_names(SCORING)[int(scores.segment[0])] == expected


def test_every_cell_of_the_default_grid_is_named_with_the_standard_segments() -> None:
    assert (segment_grid(SCORING) >= 0).all()
    assert set(segment_names(SCORING)) == {
        "Champions",
        "Loyal",
        "Potential loyalist",
        "New",
        "Promising",
        "Need attention",
        "About to sleep",
        "At risk",
        "Can't lose",
        "Hibernating",
        "Lost",
    }


def test_a_mapping_that_leaves_cells_unnamed_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unnamed"):
        ScoringConfig(segments=(SegmentRule(segment="Best", recency=(4, 5), fm=(1, 5)),))


def test_a_custom_mapping_is_used() -> None:
    cfg = ScoringConfig(
        segments=(
            SegmentRule(segment="VIP", recency=(5, 5), fm=(5, 5)),
            SegmentRule(segment="Everyone", recency=(1, 5), fm=(1, 5)),
        )
    )
    scores = score(inputs([3, 3], [6, 1], [60000, 1]), FIXED, cfg)
    assert [segment_names(cfg)[int(i)] for i in scores.segment] == ["VIP", "Everyone"]


def test_segments_are_ranked_by_the_mean_score_of_their_cells_not_their_listing() -> None:
    # default grid: Champions (R5, FM4-5) 9.5 ... Hibernating (3 cells) 3.33, Lost (R1, FM1) 2
    order = segment_order(SCORING)
    assert order[:3] == ["Champions", "Loyal", "Potential loyalist"]
    assert order[-2:] == ["Hibernating", "Lost"]  # listed Lost first: a precedence
    assert set(order) == set(segment_names(SCORING))
    # ties keep the listing order; a segment whose every cell an earlier rule takes is last
    cfg = ScoringConfig(
        segments=(
            SegmentRule(segment="Low R high FM", recency=(1, 1), fm=(5, 5)),
            SegmentRule(segment="High R low FM", recency=(5, 5), fm=(1, 1)),
            SegmentRule(segment="Rest", recency=(1, 5), fm=(1, 5)),
            SegmentRule(segment="Shadowed", recency=(2, 2), fm=(2, 2)),
        )
    )
    assert segment_order(cfg) == ["Low R high FM", "High R low FM", "Rest", "Shadowed"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e5, allow_nan=False),
            st.integers(0, 1000),
            st.floats(0, 1e9, allow_nan=False),
        ),
        max_size=50,
    ),
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=12, max_size=12),
)
def test_scores_are_always_one_to_five(
    rows: list[tuple[float, int, float]], raw_cuts: list[float]
) -> None:
    cuts = [tuple(sorted(raw_cuts[i : i + 4])) for i in (0, 4, 8)]
    bounds = Boundaries.model_validate(
        {"recency_days": cuts[0], "frequency": cuts[1], "monetary": cuts[2]}
    )
    data = inputs([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    for b in (bounds, boundaries(data, SCORING)):
        s = score(data, b, SCORING)
        for column in (s.recency, s.frequency, s.monetary):
            assert ((column >= 1) & (column <= 5)).all()
        assert ((s.segment >= 0) & (s.segment < 11)).all()


# --- inputs from customers ------------------------------------------------------------------


def test_a_single_order() -> None:
    c = customer("a", order("a", "o1", 5000, T0))
    assert inputs_of(c, T0 + days(10), 365) == (10, 1, 5000)


def test_cancelled_orders_do_not_count() -> None:
    c = customer(
        "a",
        order("a", "o1", 5000, T0),
        order("a", "o2", 9000, T0 + days(5)),
        cancel("a", "o2", T0 + days(6)),
    )
    # the last *counted* order is o1
    assert inputs_of(c, T0 + days(10), 365) == (10, 1, 5000)


def test_orders_outside_the_window_count_for_recency_only() -> None:
    c = customer("a", order("a", "o1", 5000, T0))
    assert inputs_of(c, T0 + days(400), 365) == (400, 0, 0)


def test_an_order_after_now_counts_for_no_measure() -> None:
    # a replay as of an earlier instant (or an order that landed after the run's as_of)
    c = customer("a", order("a", "o1", 5000, T0 - days(100)), order("a", "o2", 5000, T0))
    # recency is the last order *before* now, as F and M leave the later one out
    assert inputs_of(c, T0 - days(5), 365) == (95, 1, 5000)
    # one whose only order is later has not ordered yet: not scored
    later = customer("b", order("b", "o1", 5000, T0))
    with pytest.raises(ValueError, match="no counted order"):
        inputs_of(later, T0 - days(1), 365)


def test_a_settled_last_order_after_now_is_no_order_yet() -> None:
    settled = customer("a").model_copy(
        update={"history": SettledHistory(last_order_at=T0, before_at=T0 + days(1))}
    )
    assert inputs_of(settled, T0 + days(3), 365)[0] == 3
    with pytest.raises(ValueError, match="no counted order"):
        inputs_of(settled, T0 - days(1), 365)


def test_customers_without_a_counted_order_are_not_scored() -> None:
    none = Customer(customer_id="n")
    cancelled = customer("c", order("c", "o1", 5000, T0), cancel("c", "o1", T0 + days(1)))
    buyer = customer("b", order("b", "o2", 5000, T0))
    keep, data = collect_inputs([none, cancelled, buyer], T0 + days(1), 365)
    assert keep == [2]
    assert len(data) == 1


# --- the daily job -----------------------------------------------------------------------


def base() -> MemoryStore:
    store = MemoryStore()
    people = {
        "champ": [order("champ", f"c{i}", 30000, T0 - days(5 * i)) for i in range(6)],
        "lost": [order("lost", "l1", 1000, T0 - days(330))],
        "new": [order("new", "n1", 2000, T0 - days(1))],
        "gold": [order("gold", "g1", 250000, T0 - days(300))],
        "prospect": [upsert("prospect", T0 - days(3), "ev-up", region="Kanto")],
    }
    for cid, raws in people.items():
        store.customers[cid] = customer(cid, *raws)
    return store


def run(store: MemoryStore, now, segments: int = 3) -> tuple[list[dict], MemoryPublisher]:  # type: ignore[no-untyped-def,type-arg]
    clock = FixedClock(now)
    publisher = MemoryPublisher()
    first = compute_boundaries(BoundariesRequest(total_segments=segments), store, CFG, clock)
    results = [
        run_scoring(
            ScoringRequest.model_validate(
                {
                    "action": "score",
                    "segment": s,
                    "total_segments": segments,
                    "boundaries": first.boundaries.model_dump(),
                    "as_of": first.as_of.isoformat(),
                }
            ),
            store,
            publisher,
            CFG,
            clock,
        )
        for s in first.segments
    ]
    return results, publisher


def test_the_job_scores_writes_changes_and_emits_segment_changed_once() -> None:
    # Given customers with different histories, never scored
    store = base()
    # When the job runs over three segments with fixed thresholds' scale of amounts
    results, publisher = run(store, T0)
    # Then every customer with an order is scored, the prospect is not
    c = store.customers
    assert c["champ"].rfm_segment == "Champions"
    assert c["lost"].rfm_segment is not None
    assert c["prospect"].rfm_segment is None
    assert sum(r["scanned"] for r in results) == 5
    assert sum(r["written"] for r in results) == 4  # the prospect had nothing to change
    types = sorted((e.detail_type, e.detail.customer_id) for e in publisher.events)
    assert ("customer.segment_changed", "champ") in types
    champ = next(e for e in publisher.events if e.detail.customer_id == "champ")
    assert champ.detail.event_id == f"champ:segment:Champions:{T0.date().isoformat()}"
    # When it runs again the same day, nothing changed: no write, no event
    saves = store.saves
    again, publisher2 = run(store, T0 + timedelta(hours=1))
    assert store.saves == saves
    assert publisher2.events == []
    assert sum(r["written"] for r in again) == 0


def test_time_alone_drops_a_rank_and_the_job_says_so() -> None:
    # Given a Gold customer whose only order is 300 days old
    store = base()
    run(store, T0)
    assert store.customers["gold"].rank == "Gold"
    # When the order leaves the 365-day window (no event at all)
    _, publisher = run(store, T0 + days(70))
    # Then the rank falls back to Bronze and a rank_changed (down) event is emitted
    assert store.customers["gold"].rank == "Bronze"
    ranks = [e.detail for e in publisher.events if isinstance(e.detail, RankChanged)]
    assert [(d.customer_id, d.from_rank, d.to_rank) for d in ranks] == [("gold", "Gold", "Bronze")]
    assert ranks[0].direction == "down"


class ConflictOnce(MemoryStore):
    """Another writer (ingest) saves each customer once between the job's read and write."""

    def __init__(self) -> None:
        super().__init__()
        self.raced: set[str] = set()

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        cid = customer.customer_id
        if cid not in self.raced:
            self.raced.add(cid)
            current = self.customers[cid]
            self.customers[cid] = current.model_copy(update={"version": current.version + 1})
            raise VersionConflict(cid)
        return super().save_customer(customer, expected_version)


def test_a_version_conflict_rereads_and_writes_again() -> None:
    store = ConflictOnce()
    store.customers = base().customers
    publisher = MemoryPublisher()
    bounds = boundaries(inputs([], [], []), SCORING)
    result = score_segment(
        ScoreRequest(segment=0, total_segments=1, boundaries=bounds, as_of=T0),
        store,
        publisher,
        CFG,
    )
    assert result.conflicts == 4
    assert result.written == 4
    assert result.segment_changed == 4
    assert store.customers["champ"].rfm_segment == "Champions"


def test_events_that_cannot_be_put_fail_the_shard_before_anything_is_written() -> None:
    store = base()
    bounds = boundaries(inputs([], [], []), SCORING)
    with pytest.raises(RuntimeError, match="could not be put"):
        score_segment(
            ScoreRequest(segment=0, total_segments=1, boundaries=bounds, as_of=T0),
            store,
            MemoryPublisher(fail_first=1),
            CFG,
        )
    assert store.saves == 0


def test_a_run_started_as_of_an_earlier_instant_scores_as_of_it_never_later() -> None:
    # given the execution's input {"as_of": ...} (kizuna scoring run --as-of), or {} (schedule)
    store = MemoryStore()
    clock = FixedClock(T0)
    earlier = T0 - days(30)

    def first(run: dict[str, object]) -> object:
        request = ScoringRequest.model_validate(
            {"action": "boundaries", "total_segments": 2, "run": run}
        ).root
        assert isinstance(request, BoundariesRequest)
        return compute_boundaries(request, store, CFG, clock).as_of

    # then the run's as_of is that instant, or the clock's now
    assert first({"as_of": earlier.isoformat()}) == earlier
    assert first({}) == T0
    assert first({"as_of": None}) == T0
    # and never after the clock, nor a naive time, nor an unknown field
    with pytest.raises(ValueError, match="in the future"):
        first({"as_of": (T0 + days(1)).isoformat()})
    with pytest.raises(ValidationError):
        first({"as_of": "2026-01-01T00:00:00"})
    with pytest.raises(ValidationError):
        first({"asof": earlier.isoformat()})


def test_an_as_of_in_another_offset_than_utc_is_refused() -> None:
    # the run's date is the UTC date of its as_of: 02:00+09:00 on the 6th is the 5th in UTC,
    # and a direct start of the state machine (not the CLI, which sends UTC) must not move
    # the snapshot, the work files and the event ids to the 6th
    tokyo = {"as_of": "2026-01-06T02:00:00+09:00"}
    utc = {"as_of": "2026-01-05T17:00:00Z"}
    with pytest.raises(ValidationError, match="must be in UTC"):
        ScoringRequest.model_validate({"action": "boundaries", "total_segments": 1, "run": tokyo})
    run = ScoringRequest.model_validate({"action": "boundaries", "total_segments": 1, "run": utc})
    assert isinstance(run.root, BoundariesRequest) and run.root.run.as_of == T0.replace(hour=17)
    shard = {"segment": 0, "total_segments": 1, "boundaries": FIXED.model_dump()}
    for request in ({"action": "score", **shard}, {"action": "finish", "total_segments": 1}):
        with pytest.raises(ValidationError, match="must be in UTC"):
            ScoringRequest.model_validate({**request, **tokyo})
        assert ScoringRequest.model_validate({**request, **utc}).root.as_of.utcoffset() == days(0)


def test_a_late_event_after_the_run_does_not_bring_back_the_rank_it_took() -> None:
    """The daily run drops a customer a rank (their order left the window an hour ago);
    an event stamped before the run arrives after it (a bank-transfer order confirmed late,
    an offline app's sync, a redriven letter): the fold is not put back in time, so the lost
    rank does not return, nor a rank-up congratulation for it."""
    from kizuna.scoring.job import events_for, rescore

    silver = customer("c1", order("c1", "o1", 60000, T0))
    assert silver.rank == "Silver"
    as_of = T0 + days(365) + timedelta(hours=1)
    empty = RfmInputs(np.array([]), np.array([]), np.array([]))
    (scored,) = rescore([silver], boundaries(empty, CFG.scoring), CFG, as_of)
    assert scored.rank == "Bronze"
    assert "customer.rank_changed" in [
        e.detail_type for e in events_for(silver, scored, CFG, as_of)
    ]
    late = upsert("c1", T0 + days(365) - timedelta(hours=1), "ev-late", region="Kanto")
    applied = apply_events(scored, [parsed(late)], CFG, as_of + timedelta(minutes=5))
    assert applied.customer.rank == "Bronze" and applied.customer.region == "Kanto"
    assert applied.derived == []
    assert applied.customer.points_balance == scored.points_balance  # expired stay expired
    # nor an import of the same fact (the importer folds in bulk)
    imported = apply_events(scored, [parsed(late)], CFG, as_of + timedelta(minutes=5), bulk=True)
    assert imported.customer.rank == "Bronze" and imported.customer.as_of == scored.as_of


def test_a_scoring_window_longer_than_the_kept_history_is_refused() -> None:
    """A settled customer item keeps per-day order totals for the longer of the rank window
    and a year: a two-year RFM window counted a heavy buyer's orders only partly."""
    from kizuna.runtime.config import LoyaltyConfig

    with pytest.raises(ValidationError, match=r"scoring\.window_days"):
        KizunaConfig(scoring=ScoringConfig(window_days=730))
    # kept for two years when the rank window is two years
    longer = LoyaltyConfig(rank_window_days=730)
    assert KizunaConfig(loyalty=longer, scoring=ScoringConfig(window_days=730))


def test_a_late_order_before_the_settlement_checkpoint_does_not_bring_back_the_rank() -> None:
    """The same as above for an order older than the settled history (rebuilt from the fact
    log): the rebuild is computed as of the run's instant too, not the last event's."""
    from kizuna.domain.ingest import needs_history
    from kizuna.scoring.job import rescore

    old, silver = order("c1", "o0", 1000, T0 - days(3 * 365)), order("c1", "o1", 60000, T0)
    settled = customer("c1", old, silver)
    assert settled.rank == "Silver" and settled.history.before_at is not None
    as_of = T0 + days(365) + timedelta(hours=1)
    empty = RfmInputs(np.array([]), np.array([]), np.array([]))
    (scored,) = rescore([settled], boundaries(empty, CFG.scoring), CFG, as_of)
    assert scored.rank == "Bronze"
    late = parsed(order("c1", "o-late", 500, T0 - days(1000)))
    assert needs_history(scored, [late])
    applied = apply_events(
        scored, [late], CFG, as_of + timedelta(minutes=5), log=[parsed(old), parsed(silver)]
    )
    assert applied.customer.order_count == 3 and applied.refused == {}
    assert applied.customer.rank == "Bronze"
    assert "customer.rank_changed" not in [e.detail_type for e in applied.derived]


def test_a_late_order_the_state_refuses_is_refused_alone_in_a_rebuild() -> None:
    """A late order before the settlement checkpoint in another currency is refused with
    its reason (dead-lettered by ingest), the other events of the batch applied; it did
    not raise out of the whole batch."""
    from kizuna.domain.ingest import needs_history

    old, recent = order("c1", "o0", 1000, T0 - days(3 * 365)), order("c1", "o1", 60000, T0)
    settled = customer("c1", old, recent)
    dollars = order("c1", "o-usd", 500, T0 - days(1000))
    dollars["detail"]["currency"] = "USD"
    late = parsed(dollars)
    assert needs_history(settled, [late])
    other = parsed(upsert("c1", T0 + days(1), "ev-region", region="Kanto"))
    applied = apply_events(
        settled, [late, other], CFG, T0 + days(1), log=[parsed(old), parsed(recent)]
    )
    assert list(applied.refused) == [late.event_id]
    assert "loyalty.currency" in applied.refused[late.event_id]
    assert applied.customer.region == "Kanto" and applied.customer.order_count == 2
    assert late.event_id not in applied.customer.processed


# --- "N points to Gold" when time alone drops the rank (the same decision as ingest's) -----


def gold_by_two_orders() -> Customer:
    """o1 (200 rank points) at T0, o2 (1,900) at T0+200d: 2,100 rank points, Gold. When o1
    leaves the 365-day window the customer is Silver, 100 points short of Gold."""
    c = customer("c1", order("c1", "o1", 20000, T0), order("c1", "o2", 190000, T0 + days(200)))
    assert c.rank == "Gold"
    return c


def test_ingest_announces_the_gap_to_gold_when_time_drops_the_rank() -> None:
    # reference: an event is the first to see o1 leave the window, ingest says both
    opened = upsert("c1", T0 + days(366), "ev-late", region="Kanto")
    applied = apply_events(gold_by_two_orders(), [parsed(opened)], CFG, T0 + days(366))
    c = applied.customer
    assert (c.rank, c.next_rank, c.points_to_next_rank) == ("Silver", "Gold", 100)
    assert sorted(e.detail_type for e in applied.derived) == [
        "customer.points_near_next_rank",
        "customer.rank_changed",
    ]


def test_the_daily_run_announces_the_gap_to_gold_when_time_drops_the_rank() -> None:
    from kizuna.programs.claims import claim_holds
    from kizuna.scoring.job import events_for, rescore

    # given a Gold customer whose first order leaves the window with no event of theirs
    before = gold_by_two_orders()
    as_of = T0 + days(366)
    (after,) = rescore([before], FIXED, CFG, as_of)
    assert (after.rank, after.next_rank, after.points_to_next_rank) == ("Silver", "Gold", 100)
    # when the daily run decides what to say
    out = {e.detail_type: e.detail for e in events_for(before, after, CFG, as_of)}
    # then it says both, as ingest would, the gap under the id of the drop that opened it
    # (the instant o1 left the window: deterministic, the same for ingest)
    assert set(out) >= {"customer.rank_changed", "customer.points_near_next_rank"}
    near = out["customer.points_near_next_rank"]
    crossed = (T0 + days(365)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert near.event_id == f"c1:points_near_next_rank:Gold:window:{crossed}"
    assert near.caused_by == f"scoring:{as_of.date().isoformat()}"
    assert near.model_dump(include={"rank", "next_rank", "points_to_next_rank"}) == {
        "rank": "Silver",
        "next_rank": "Gold",
        "points_to_next_rank": 100,
    }
    # and the claim check bears it out against the state the run saves
    detail = json.loads(near.model_dump_json())
    assert claim_holds("customer.points_near_next_rank", detail, after)
    assert not claim_holds("customer.points_near_next_rank", detail, before)


def test_a_gap_the_daily_run_opened_is_announced_once() -> None:
    from kizuna.scoring.job import events_for, rescore

    # given the daily run dropped Gold to Silver, 100 points short of Gold, and saved it
    before = gold_by_two_orders()
    as_of = T0 + days(366)
    (after,) = rescore([before], FIXED, CFG, as_of)
    by_run = events_for(before, after, CFG, as_of)
    # when a small order then brings the customer to 90 points short
    small = order("c1", "o3", 1000, T0 + days(370))
    applied = apply_events(after, [parsed(small)], CFG, T0 + days(370))
    assert applied.customer.points_to_next_rank == 90
    # then "N points to Gold" was said once: by the run (before the fix: never, the fold
    # after it found the gap near already)
    nudges = [
        e.detail
        for e in [*by_run, *applied.derived]
        if e.detail_type == "customer.points_near_next_rank"
    ]
    assert [(n.next_rank, n.points_to_next_rank) for n in nudges] == [("Gold", 100)]


def test_the_job_puts_the_gap_with_the_rank_it_dropped_and_counts_each() -> None:
    store = MemoryStore()
    store.customers["c1"] = gold_by_two_orders()
    publisher = MemoryPublisher()
    result = score_segment(
        ScoreRequest(segment=0, total_segments=1, boundaries=FIXED, as_of=T0 + days(366)),
        store,
        publisher,
        CFG,
    )
    assert sorted(e.detail_type for e in publisher.events) == [
        "customer.points_near_next_rank",
        "customer.rank_changed",
        "customer.segment_changed",  # first scored
    ]
    assert (result.segment_changed, result.rank_changed, result.points_near_next_rank) == (1, 1, 1)
    # and the saved state is what the next fold reads: no second nudge for the same gap
    assert store.customers["c1"].points_to_next_rank == 100


@pytest.mark.parametrize("module", ["ingest", "job"])
def test_ingest_and_scoring_decide_the_gap_with_one_builder(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kizuna.domain import ingest, loyalty
    from kizuna.scoring import job

    seen: list[str] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[4])
        return loyalty.points_near_next_rank(*args, **kwargs)

    monkeypatch.setattr(ingest if module == "ingest" else job, "points_near_next_rank", watched)
    before, as_of = gold_by_two_orders(), T0 + days(366)
    if module == "ingest":
        opened = upsert("c1", as_of, "ev-late", region="Kanto")
        out = apply_events(before, [parsed(opened)], CFG, as_of).derived
    else:
        out = job.events_for(before, loyalty.recompute(before, CFG.loyalty, as_of), CFG, as_of)
    assert seen and "customer.points_near_next_rank" in [e.detail_type for e in out]


# --- one time-driven rank drop, one id, whichever writer notices it -------------------------


class IngestRaces(MemoryStore):
    """Between the job's read and its save, ingest folds an event of the customer's that is
    the first to see the same rank drop (the job has already put its events)."""

    def __init__(self, raw: dict[str, Any], now: Any) -> None:
        super().__init__()
        self.raw, self.now = raw, now
        self.raced = False
        self.ingest_events: list[Any] = []

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        if not self.raced:
            self.raced = True
            cid = customer.customer_id
            applied = apply_events(self.customers[cid], [parsed(self.raw)], CFG, self.now)
            self.ingest_events += applied.derived
            self.customers[cid] = applied.customer.model_copy(
                update={"version": self.customers[cid].version + 1}
            )
            raise VersionConflict(cid)
        return super().save_customer(customer, expected_version)


def test_one_time_driven_rank_drop_is_one_event_whichever_writer_notices_it() -> None:
    # given a Gold customer whose o1 left the window at T0+365d, the run as of a day later,
    # and an event of theirs folded between the run's put and its save
    at = T0 + days(366)
    store = IngestRaces(upsert("c1", at - days(0.01), "ev-late", region="Kanto"), at)
    store.customers["c1"] = gold_by_two_orders()
    publisher = MemoryPublisher()
    score_segment(
        ScoreRequest(segment=0, total_segments=1, boundaries=FIXED, as_of=at),
        store,
        publisher,
        CFG,
    )
    events = [*publisher.events, *store.ingest_events]
    # then both writers announced the drop and the gap it opened, each under one id, the
    # instant o1 left the window: consumers and journey entries keep one of each
    crossed = (T0 + days(365)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for detail_type, key in [
        ("customer.rank_changed", f"c1:rank_changed:Gold:Silver:window:{crossed}"),
        ("customer.points_near_next_rank", f"c1:points_near_next_rank:Gold:window:{crossed}"),
    ]:
        ids = [e.detail.event_id for e in events if e.detail_type == detail_type]
        assert len(ids) == 2 and set(ids) == {key}, (detail_type, ids)
    # and each writer's claim still names its own cause (evaluate checks ingest's record)
    causes = {e.detail.caused_by for e in events if e.detail_type == "customer.rank_changed"}
    assert causes == {"ev-late", f"scoring:{at.date().isoformat()}"}


def test_a_drop_the_event_itself_made_keeps_the_events_id() -> None:
    from kizuna.scoring.job import events_for

    # a cancellation of o2 at T0+250d: time alone would still give Gold then
    before = gold_by_two_orders()
    applied = apply_events(
        before, [parsed(cancel("c1", "o2", T0 + days(250), event_id="ev-refund"))], CFG, T0
    )
    (moved,) = [e.detail for e in applied.derived if isinstance(e.detail, RankChanged)]
    assert moved.event_id == "c1:rank_changed:Gold:Bronze:ev-refund"
    # a drop no departure from the window explains (a higher Gold threshold configured):
    # the run's own id
    cfg = KizunaConfig.model_validate(
        {
            "loyalty": {
                "ranks": [
                    {"name": "Bronze", "min_points": 0},
                    {"name": "Silver", "min_points": 500, "multiplier": "1.5"},
                    {"name": "Gold", "min_points": 3000, "multiplier": "2"},
                ]
            }
        }
    )
    as_of = T0 + days(201)
    after = recompute(before, cfg.loyalty, as_of)
    assert after.rank == "Silver"
    (rerank,) = [
        e for e in events_for(before, after, cfg, as_of) if e.detail_type.endswith("rank_changed")
    ]
    assert rerank.detail.event_id == f"c1:rank_changed:Gold:Silver:scoring:{as_of.date()}"
