"""Snapshot cell keys: region and occupation are free text a producer sends (a ``|`` and
``(none)`` included), so a key names its cell unambiguously and every report reads it;
keys stored before (the values joined by ``|``) are still read."""

from __future__ import annotations

from datetime import date

import pytest

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.job import (
    BoundariesRequest,
    FinishRequest,
    ScoreRequest,
    compute_boundaries,
    finish_run,
    score_segment,
)
from kizuna.scoring.snapshot import CELL_FIELDS, SnapshotRow, cell_fields
from kizuna_tools.fakes import MemoryPublisher, MemoryStore
from kizuna_tools.reports.build import trend
from tests.factories import T0, days, order, parsed, upsert
from tests.unit.test_recommendations import Cells, Objects, catalog_of

CFG = KizunaConfig()
DAY = T0.date()


def row(**values: str | None) -> SnapshotRow:
    return SnapshotRow(date=DAY, customer_id="a", lifecycle="repeat", **values)


@pytest.mark.parametrize(
    "values",
    [
        {"rfm_segment": "New", "rank": "Bronze", "region": "Kanto|Tokyo"},
        {"region": "(none)", "occupation": "a|b|c"},
        {"region": "|", "age_band": "30s", "gender": "female", "occupation": '"[x]"'},
        {},
    ],
)
def test_a_cell_key_gives_back_its_values(values: dict[str, str | None]) -> None:
    key = row(**values).cell()
    assert cell_fields(key) == {f: values.get(f) for f in CELL_FIELDS}


def test_a_region_spelled_none_is_not_unset() -> None:
    assert row(region="(none)").cell() != row().cell()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("New|Bronze|Kanto|20s|m|x", ("New", "Bronze", "Kanto", "20s", "m", "x")),
        ("(none)|(none)|(none)|(none)|(none)|(none)", (None,) * 6),
        # a "|" in the region or the occupation, written before: the age band and gender
        # (never a "|") place them
        (
            "New|Bronze|Kanto|Tokyo|(none)|(none)|(none)",
            ("New", "Bronze", "Kanto|Tokyo", None, None, None),
        ),
        (
            "Lost|Gold|(none)|30s|female|night|shift",
            ("Lost", "Gold", None, "30s", "female", "night|shift"),
        ),
        ("Lost|Gold|a|b|70plus|male|c", ("Lost", "Gold", "a|b", "70plus", "male", "c")),
        # nothing fits: the segment and rank still read, the rest unset
        ("Lost|Gold|a|b|c|d|e", ("Lost", "Gold", None, None, None, None)),
        ("Lost", ("Lost", None, None, None, None, None)),
        ("[not json", ("[not json", None, None, None, None, None)),
    ],
)
def test_keys_stored_before_are_read(key: str, expected: tuple[str | None, ...]) -> None:
    assert cell_fields(key) == dict(zip(CELL_FIELDS, expected, strict=True))


def test_a_pipe_in_a_region_is_reported_not_a_crash() -> None:
    # Given a producer's region with a "|" (ingest accepts it as sent)
    store = MemoryStore()
    for cid, region in (("a", "Kanto"), ("b", "Kanto|Tokyo")):
        c = Customer(customer_id=cid)
        for raw in (
            upsert(cid, T0 - days(3), f"ev-{cid}", region=region),
            order(cid, "o1", 5000, T0 - days(2)),
        ):
            applied = apply_events(c, [parsed(raw)], CFG, T0)
            assert applied.refused == {}
            c = applied.customer
        store.customers[cid] = c
    # When the daily run scores and snapshots the base
    first = compute_boundaries(BoundariesRequest(total_segments=1), store, CFG, FixedClock(T0))
    shard = ScoreRequest(
        segment=0, total_segments=1, boundaries=first.boundaries, as_of=first.as_of
    )
    objects, cells = Objects(), Cells()
    score_segment(shard, store, MemoryPublisher(), CFG, objects)
    finish_run(FinishRequest(total_segments=1, as_of=first.as_of), objects, catalog_of(), cells)
    # Then its cells keep the region whole, and the report's trend reads them
    day = first.as_of.date().isoformat()
    assert {cell_fields(k)["region"] for k in cells.days[day]} == {"Kanto", "Kanto|Tokyo"}
    built = trend({date.fromisoformat(day): cells.days[day]})
    assert built.customers == [2]


def test_the_trend_reads_a_day_of_old_and_new_keys_alike() -> None:
    legacy = "New|Bronze|Kanto|Tokyo|(none)|(none)|(none)"
    new = row(rfm_segment="New", rank="Bronze", region="Kinki").cell()
    unscored = row().cell()
    built = trend(
        {DAY: {legacy: {"customers": 2}, new: {"customers": 3}, unscored: {"customers": 1}}}
    )
    assert built.customers == [6]
    assert built.segments == {"New": [5], "(none)": [1]}
    assert built.ranks == {"Bronze": [5], "(none)": [1]}
