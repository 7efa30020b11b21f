"""``kizuna points backfill-lots`` without AWS: which rows earn a lot and which keys they get
(the rule ingest writes by), and the backfill on the in-memory store: rows written before the
lot index get the keys ingest writes today, after which the points sweep warns of every lot;
a second run writes nothing; a row erased after the scan read it is not re-created."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from kizuna.domain.activity import ActivityItem, earns_lot, lot_index_keys, lot_keys
from kizuna.ports import ScannedRow, ScanPage
from kizuna.programs.sweeps import SweepKind
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher, MemoryStore
from kizuna_tools.lots_backfill import backfill_lots, missing_lot_keys
from tests.factories import T0, adjust, cancel, days, order, parsed

CFG = KizunaConfig()
LIFE = days(CFG.loyalty.points_expiry_days)
LOT_KEYS = ("gsi1pk", "gsi1sk")


def row(kind: str, key: str, **data: object) -> ActivityItem:
    return ActivityItem(customer_id="a", kind=kind, at=T0, key=key, data=dict(data))


# --- the rule ---------------------------------------------------------------------------------
def test_orders_and_adjustments_that_add_points_earn_a_lot() -> None:
    assert earns_lot(row("ORDER", "o1", total=Decimal(1000)))
    assert earns_lot(row("POINTS", "adjust#gift", delta=50))
    assert earns_lot(row("POINTS", "adjust#gift", delta=Decimal(50)))  # as DynamoDB reads it
    # not: an adjustment that takes or adds nothing, the first versions' earn and reversal
    # rows (the ORDER row holds that lot), a cancellation, other kinds
    assert not earns_lot(row("POINTS", "adjust#spent", delta=-10))
    assert not earns_lot(row("POINTS", "adjust#zero", delta=0))
    assert not earns_lot(row("POINTS", "earn#o1", order_id="o1", type="earn"))
    assert not earns_lot(row("POINTS", "adjust#odd"))  # no delta
    assert not earns_lot(row("CANCEL", "o1", order_id="o1"))
    assert not earns_lot(row("MEMBER", "since"))
    assert lot_keys(row("ORDER", "o1")) == lot_index_keys("a", T0)
    assert lot_keys(row("CANCEL", "o1")) == {}


def test_ingest_writes_the_keys_of_the_rule() -> None:
    # given an order, a gift of points, points spent and a cancellation, ingested today
    store = MemoryStore()
    for raw in (
        order("a", "o1", 1000, T0),
        adjust("a", "gift", 50, T0 + days(1)),
        adjust("a", "spent", -10, T0 + days(2)),
        cancel("a", "o1", T0 + days(3)),
    ):
        ingest_one(store, parsed(raw), CFG, FixedClock(T0 + days(3)))
    # then each row carries exactly the keys the rule gives it from its other attributes
    rows = [i for i in store.activity.values() if i.kind in {"ORDER", "POINTS", "CANCEL"}]
    assert len(rows) == 4
    for item in rows:
        written = {k: item.data[k] for k in LOT_KEYS if k in item.data}
        bare = item.model_copy(
            update={"data": {k: v for k, v in item.data.items() if k not in LOT_KEYS}}
        )
        assert written == lot_keys(bare)
    assert sum(1 for i in rows if "gsi1pk" in i.data) == 2


def test_a_row_gets_the_keys_it_lacks_and_only_those() -> None:
    lot, spent = row("ORDER", "o1"), row("POINTS", "adjust#spent", delta=-10)
    assert missing_lot_keys(ScannedRow(lot, lot.sk, indexed=False)) == lot_index_keys("a", T0)
    assert missing_lot_keys(ScannedRow(lot, lot.sk, indexed=True)) == {}
    assert missing_lot_keys(ScannedRow(spent, spent.sk, indexed=False)) == {}


# --- the backfill on the in-memory store ------------------------------------------------------
def written_before_the_lot_index() -> MemoryStore:
    """Three orders 10 days apart, 50 points added by hand and 10 spent, a cancelled order:
    ingested, then stripped of their lot keys (the rows as the previous version wrote them)."""
    store = MemoryStore()
    raws = [order("a", f"o{n}", 1000, T0 + days(10 * n)) for n in range(3)]
    raws += [
        adjust("a", "gift", 50, T0 + days(25)),
        adjust("a", "spent", -10, T0 + days(26)),
        order("a", "o9", 1000, T0 + days(27)),
        cancel("a", "o9", T0 + days(28)),
    ]
    for raw in raws:
        ev = parsed(raw)
        ingest_one(store, ev, CFG, FixedClock(ev.detail.occurred_at))
    for key, item in store.activity.items():
        bare = {k: v for k, v in item.data.items() if k not in LOT_KEYS}
        store.activity[key] = item.model_copy(update={"data": bare})
    return store


def warned_after_a_year_of_daily_sweeps(store: MemoryStore) -> list[tuple[datetime, int]]:
    publisher = MemoryPublisher()
    request = SweepRequest(kinds=[SweepKind.POINTS], lookback_minutes=1440)
    for day in range(325, 420):
        run_sweep(request, store, store, publisher, CFG, FixedClock(T0 + days(day) - H9))
    details = [e.detail.model_dump() for e in publisher.events]
    return [(d["expires_at"], d["points"]) for d in details]


H9 = timedelta(hours=9)  # T0 is 10:00: the runs are at 01:00


def test_after_the_backfill_every_lot_of_an_older_order_is_warned_of() -> None:
    # given rows written before the lot index (the customer item holds lot 1's expiry)
    store = written_before_the_lot_index()
    without = copy.deepcopy(store)
    # when the backfill runs
    report = backfill_lots(store)
    # then the five rows that earn a lot got the keys ingest writes (the cancelled order's
    # and the spent lot's too: the sweep replays the lots), the others none
    assert (report.lot_rows, report.updated, report.already_indexed, report.skipped) == (
        5,
        5,
        0,
        0,
    )
    assert report.scanned == len(store.activity)
    indexed = sorted(i.data["gsi1sk"] for i in store.activity.values() if "gsi1pk" in i.data)
    earned = [T0, T0 + days(10), T0 + days(20), T0 + days(25), T0 + days(27)]
    assert indexed == [lot_index_keys("a", at)["gsi1sk"] for at in earned]
    # and the daily sweep warns of each live lot once (10 of lot 1 spent; o9 cancelled) ...
    assert warned_after_a_year_of_daily_sweeps(store) == [
        (T0 + days(10) + LIFE, 10),
        (T0 + days(20) + LIFE, 10),
        (T0 + days(25) + LIFE, 50),
    ]
    # ... where, without the backfill, only the customer's earliest live expiry was
    assert warned_after_a_year_of_daily_sweeps(without) == [(T0 + days(10) + LIFE, 10)]


def test_a_second_run_writes_nothing_and_a_dry_run_nothing_at_all() -> None:
    store = written_before_the_lot_index()
    dry = backfill_lots(store, dry_run=True)
    assert (dry.updated, dry.already_indexed) == (5, 0)
    assert not any("gsi1pk" in i.data for i in store.activity.values())
    backfill_lots(store)
    before = dict(store.activity)
    again = backfill_lots(store)
    assert (again.updated, again.already_indexed, again.skipped) == (0, 5, 0)
    assert store.activity == before


def test_segments_together_cover_every_row_once() -> None:
    store = written_before_the_lot_index()
    reports = [backfill_lots(store, segment=s, total_segments=3) for s in range(3)]
    assert sum(r.scanned for r in reports) == len(store.activity)
    assert sum(r.updated for r in reports) == 5
    assert backfill_lots(store).updated == 0


def test_since_leaves_rows_earned_before_it_alone() -> None:
    # given rows earned on days 0, 10, 20, 25 and 27 (the last cancelled) without keys
    store = written_before_the_lot_index()
    # when the backfill runs from day 20 on (the lots before it: expired, say)
    report = backfill_lots(store, since=T0 + days(20))
    # then only the rows earned at or after it got keys; the two before are counted
    assert (report.lot_rows, report.updated, report.before_since) == (5, 3, 2)
    indexed = sorted(i.at for i in store.activity.values() if "gsi1pk" in i.data)
    assert indexed == [T0 + days(20), T0 + days(25), T0 + days(27)]
    # and a later run without the bound gives the rest theirs
    assert (backfill_lots(store).updated, backfill_lots(store).already_indexed) == (2, 5)


def test_since_must_carry_its_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        backfill_lots(MemoryStore(), since=datetime(2026, 1, 1))


class ErasedAfterTheScan:
    """The store, erasing the customer after each page was read and before it is written."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.writes = 0

    def scan_lot_rows(self, segment: int = 0, total_segments: int = 1) -> Iterator[ScanPage]:
        for page in self.store.scan_lot_rows(segment, total_segments):
            self.store.activity = {k: v for k, v in self.store.activity.items() if k[0] != "a"}
            yield page

    def add_lot_keys(self, customer_id: str, sk: str, keys: Mapping[str, str]) -> bool:
        self.writes += 1
        return self.store.add_lot_keys(customer_id, sk, keys)


def test_a_row_erased_after_the_scan_is_skipped_not_recreated() -> None:
    store = written_before_the_lot_index()
    erasing = ErasedAfterTheScan(store)
    report = backfill_lots(erasing)
    assert (report.updated, report.skipped, erasing.writes) == (0, 5, 5)
    assert store.activity == {}
