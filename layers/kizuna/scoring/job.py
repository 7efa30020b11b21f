"""The daily scoring job: one parallel-scan segment of the customers table per call.

A run has two steps (the ``Scoring`` state machine):

1. :func:`compute_boundaries` draws a uniform random sample of ``scoring.sample_size``
   scored customers (all of them on a smaller base) and returns the RFM quantile
   boundaries and the run's ``as_of`` instant, which every shard then shares. The sample is
   a reservoir (:func:`kizuna.scoring.rfm.uniform_sample`) over a scan of the whole table
   projected to the order facts (``customer_id``, ``orders``, ``history``), segment after
   segment; only the three RFM inputs of the sampled customers stay in memory. Its seed is
   the run's ``as_of``, so a retried step draws the same sample.

   Why a full scan: the first page of each segment (what this step read before) is neither
   uniform nor of the configured size (a page stops at 1 MB; on a store that returns a
   segment in insertion order it holds the oldest customers); a random ``ExclusiveStartKey``
   must map to its segment's hash range, which DynamoDB does not expose; and yesterday's
   snapshot misses new customers and is absent on a first run. Cost: one more read of the
   table per run, the same as the scoring pass's: ``table size / 4 KB / 2`` read request
   units (eventually consistent; a projection does not lower them, it lowers the bytes
   parsed), about ``table size / 1 MB`` Scan calls: with items of ~2 KB, 250 units per
   1,000 customers and run (a few cents a year per 10,000 customers on demand). Time grows
   with the base, in one Lambda (not measured on DynamoDB here): past what one 15-minute
   invocation can read, the sample would move into the Map (a reservoir per segment, each
   of ``sample_size * segment count / total`` items, merged); see docs/ARCHITECTURE.md.
2. :func:`score_segment`, once per segment (a Map state): reads the segment, recomputes
   the time-dependent loyalty state as of ``as_of`` (the rolling rank window and point
   expiry move with time, not only with events: a rank can drop with no event at all),
   scores RFM, and writes **only** the customers whose state changed. Derived events go
   out first (``customer.segment_changed``, and ``customer.rank_changed`` when time alone
   moved the rank, with ``customer.points_near_next_rank`` when the lost rank is within
   reach again), PutEvents ten at a time, with deterministic ids so a retried shard
   repeats ids that consumers already dropped; then the saves.

   In the same pass the shard writes its work files to the analytics bucket: the day's
   snapshot rows (JSON Lines, :mod:`kizuna.scoring.snapshot`), its counts per snapshot
   cell, and its co-purchase counts (:mod:`kizuna.scoring.copurchase`).
3. :func:`finish_run` adds the shards' work files up: related products and best sellers
   into the products table (only products whose recommendations changed are written, with an
   UpdateItem that leaves the catalogue's own fields alone), and
   the day's cells into the snapshots table, replacing the cells an earlier run of the same
   UTC date wrote (``CellStore.put_cells``). A missing shard file fails the step (retried);
   every file has a fixed key per run date and segment, so a retried shard overwrites it.

Ingest is otherwise the customer item's only writer. The job writes with the same
optimistic ``version`` condition: when an ingest write lands between the read and the
write, the job re-reads that customer and applies the scoring again (a few attempts);
ingest does the same on its side. The next ingest write recomputes as of the customer's
latest event, which is what the rest of the design expects; the next run corrects any
drift.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from pydantic import AwareDatetime, BaseModel

from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import (
    points_near_next_rank,
    rank_changed,
    recompute,
    time_driven_key,
)
from kizuna.domain.timestamps import beyond
from kizuna.events import Cause, DerivedEvent, SegmentChanged, derived_event
from kizuna.ports import EventPublisher, VersionConflict
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.copurchase import BEST_SELLERS_KEY, CoPurchase, best_sellers, count, related
from kizuna.scoring.requests import (
    Boundaries,
    BoundariesRequest,
    FinishRequest,
    ScoreRequest,
    ScoringRequest,
)
from kizuna.scoring.rfm import (
    RfmInputs,
    boundaries,
    collect_inputs,
    inputs_of,
    score,
    segment_names,
    uniform_sample,
)
from kizuna.scoring.snapshot import CellTotals, SnapshotRow, cells, merge_cells, row_for

CHUNK = 500
SAVE_ATTEMPTS = 4
# Fields that change every day without meaning anything (the instant of the recompute).
_NOT_A_CHANGE = {"version", "processed", "as_of"}


class ScoringStore(Protocol):
    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]: ...

    def scan_order_facts(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]:
        """Every customer of one scan segment, order facts (recent and settled) only."""
        ...

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def save_customer(self, customer: Customer, expected_version: int) -> Customer: ...


class ObjectStore(Protocol):
    """The analytics bucket (:class:`kizuna.adapters.s3.S3Objects`)."""

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None: ...

    def get(self, key: str) -> bytes | None: ...


class CatalogStore(Protocol):
    def scan_products(self) -> Iterator[dict[str, Any]]: ...

    def set_related(self, product_id: str, related: list[dict[str, Any]], day: str) -> None: ...

    def put_product(self, item: dict[str, Any]) -> None: ...


class CellStore(Protocol):
    def put_cells(self, day: str, cells: dict[str, dict[str, Any]]) -> int:
        """Replace the day's cells with ``cells`` (a cell not in it is deleted)."""
        ...


# How many related products each product keeps, and best sellers the run keeps.
RELATED_PER_PRODUCT = 10
BEST_SELLERS_KEPT = 20


def work_key(day: str, kind: str, segment: int) -> str:
    """Where a shard's work file goes: ``work/date=YYYY-MM-DD/<kind>/part-NNNN.json``."""
    return f"work/date={day}/{kind}/part-{segment:04d}.json"


def snapshot_key(day: str, segment: int) -> str:
    return f"snapshots/date={day}/part-{segment:04d}.jsonl"


class BoundariesResult(BaseModel):
    boundaries: Boundaries
    as_of: AwareDatetime
    segments: list[int]


class ScoreResult(BaseModel):
    segment: int
    scanned: int = 0
    scored: int = 0
    written: int = 0
    conflicts: int = 0
    segment_changed: int = 0
    rank_changed: int = 0
    points_near_next_rank: int = 0


class FinishResult(BaseModel):
    date: str
    customers: int
    cells: int
    products_with_related: int
    products_written: int
    best_sellers: int


def compute_boundaries(
    request: BoundariesRequest, store: ScoringStore, cfg: KizunaConfig, clock: Clock
) -> BoundariesResult:
    now = request.run.as_of or clock.now()
    if now > clock.now():
        raise ValueError(f"as_of {now.isoformat()} is in the future")
    n = request.total_segments
    rows: list[tuple[float, int, float]] = []
    if cfg.scoring.method == "quantiles":
        rng = random.Random(f"rfm-sample:{now.isoformat()}")  # noqa: S311 - a sample, no secret
        rows = uniform_sample(
            _inputs(store, n, now, cfg.scoring.window_days), cfg.scoring.sample_size, rng
        )
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    sample = RfmInputs(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())
    return BoundariesResult(
        boundaries=boundaries(sample, cfg.scoring), as_of=now, segments=list(range(n))
    )


def _inputs(
    store: ScoringStore, total_segments: int, now: datetime, window_days: int
) -> Iterator[tuple[float, int, float]]:
    """The RFM inputs of every scored customer of the table, segment after segment."""
    for segment in range(total_segments):
        for customer in store.scan_order_facts(segment, total_segments):
            try:
                yield inputs_of(customer, now, window_days)
            except ValueError:  # no counted order: not scored, not sampled
                continue


def _trusted(at: datetime | None, horizon: datetime) -> datetime | None:
    return None if beyond(at, horizon) else at


def rescore(
    customers: Sequence[Customer], bounds: Boundaries, cfg: KizunaConfig, as_of: datetime
) -> list[Customer]:
    """``customers`` with loyalty recomputed as of ``as_of`` and RFM scores set."""
    horizon = as_of + cfg.event_time.max_future_skew  # a later last_event_at is not trusted
    fresh = [
        recompute(c, cfg.loyalty, as_of=max(as_of, _trusted(c.last_event_at, horizon) or as_of))
        for c in customers
    ]
    keep, inputs = collect_inputs(fresh, as_of, cfg.scoring.window_days)
    scores = score(inputs, bounds, cfg.scoring)
    names = segment_names(cfg.scoring)
    update: list[dict[str, Any]] = [
        {"rfm_recency": None, "rfm_frequency": None, "rfm_monetary": None, "rfm_segment": None}
        for _ in fresh
    ]
    for row, i in enumerate(keep):
        update[i] = {
            "rfm_recency": int(scores.recency[row]),
            "rfm_frequency": int(scores.frequency[row]),
            "rfm_monetary": int(scores.monetary[row]),
            "rfm_segment": names[int(scores.segment[row])],
        }
    return [c.model_copy(update=u) for c, u in zip(fresh, update, strict=True)]


def changed(before: Customer, after: Customer) -> bool:
    return after.model_dump(exclude=_NOT_A_CHANGE) != before.model_dump(exclude=_NOT_A_CHANGE)


def events_for(
    before: Customer, after: Customer, cfg: KizunaConfig, as_of: datetime
) -> list[DerivedEvent]:
    day = as_of.date().isoformat()
    caused_by = f"scoring:{day}"
    out: list[DerivedEvent] = []
    if (
        after.rfm_segment is not None
        and after.rfm_segment != before.rfm_segment
        and after.rfm_recency is not None
        and after.rfm_frequency is not None
        and after.rfm_monetary is not None
    ):
        out.append(
            derived_event(
                SegmentChanged,
                f"segment:{after.rfm_segment}:{day}",
                Cause(after.customer_id, as_of, caused_by),
                from_segment=before.rfm_segment,
                to_segment=after.rfm_segment,
                recency=after.rfm_recency,
                frequency=after.rfm_frequency,
                monetary=after.rfm_monetary,
            )
        )
    # a drop named by its fact, as ingest names it when one of the customer's events is
    # folded between this run's read and its save: one id for the one drop
    key = time_driven_key(before, after, cfg.loyalty)
    moved = rank_changed(before, after, cfg.loyalty, as_of, caused_by, key=key)
    if moved is not None:
        out.append(moved)
    # the same decision as ingest's: the state saved here is the "before" of the next fold,
    # which would take a gap it finds near as already announced
    near = points_near_next_rank(before, after, cfg.loyalty, as_of, caused_by, key=key)
    if near is not None:
        out.append(near)
    return out


def _chunks(items: Iterable[Customer], size: int) -> Iterator[list[Customer]]:
    chunk: list[Customer] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _publish(publisher: EventPublisher, events: Sequence[DerivedEvent]) -> None:
    failed = publisher.publish(events)
    if failed:
        raise RuntimeError(f"{len(failed)} scoring events could not be put on the bus")


def score_segment(
    request: ScoreRequest,
    store: ScoringStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    objects: ObjectStore | None = None,
) -> ScoreResult:
    """Score one scan segment; see the module docstring."""
    result = ScoreResult(segment=request.segment)
    as_of, bounds = request.as_of, request.boundaries
    rows: list[SnapshotRow] = []
    bought: list[CoPurchase] = []
    scan = store.scan_customers(request.segment, request.total_segments)
    for chunk in _chunks(scan, CHUNK):
        result.scanned += len(chunk)
        after = rescore(chunk, bounds, cfg, as_of)
        rows += [row_for(c, as_of, cfg) for c in after]
        bought.append(count(after))
        result.scored += sum(1 for c in after if c.rfm_segment is not None)
        pending = [(b, a) for b, a in zip(chunk, after, strict=True) if changed(b, a)]
        for attempt in range(SAVE_ATTEMPTS):
            if not pending:
                break
            events = {b.customer_id: events_for(b, a, cfg, as_of) for b, a in pending}
            _publish(publisher, [e for evs in events.values() for e in evs])
            conflicted: list[str] = []
            for before, new in pending:
                try:
                    store.save_customer(new, before.version)
                except VersionConflict:
                    conflicted.append(before.customer_id)
                    continue
                result.written += 1
                for e in events[before.customer_id]:
                    if e.detail_type == "customer.segment_changed":
                        result.segment_changed += 1
                    elif e.detail_type == "customer.rank_changed":
                        result.rank_changed += 1
                    else:
                        result.points_near_next_rank += 1
            result.conflicts += len(conflicted)
            if not conflicted:
                break
            if attempt == SAVE_ATTEMPTS - 1:
                raise VersionConflict(",".join(conflicted[:5]))
            # one whose item a later version just wrote with a value this one refuses is
            # left out (logged), not the segment's others
            fresh = list(store.get_customers(conflicted, unreadable_ok=True).values())
            rescored = rescore(fresh, bounds, cfg, as_of)
            pending = [(b, a) for b, a in zip(fresh, rescored, strict=True) if changed(b, a)]
    if objects is not None:
        write_work_files(objects, request.segment, as_of, rows, CoPurchase.merge(bought))
    return result


def write_work_files(
    objects: ObjectStore,
    segment: int,
    as_of: datetime,
    rows: Sequence[SnapshotRow],
    bought: CoPurchase,
) -> None:
    day = as_of.date().isoformat()
    lines = "".join(row.model_dump_json() + "\n" for row in rows)
    objects.put(snapshot_key(day, segment), lines.encode(), "application/x-ndjson")
    shard_cells = {k: v.model_dump(mode="json") for k, v in cells(rows).items()}
    objects.put(work_key(day, "cells", segment), json.dumps(shard_cells).encode())
    objects.put(work_key(day, "copurchase", segment), bought.model_dump_json().encode())


def _parts(objects: ObjectStore, day: str, kind: str, total_segments: int) -> list[bytes]:
    parts = [objects.get(work_key(day, kind, i)) for i in range(total_segments)]
    missing = [i for i, p in enumerate(parts) if p is None]
    if missing:
        raise RuntimeError(f"{kind} work files missing for segments {missing[:10]} of {day}")
    return [p for p in parts if p is not None]


def finish_run(
    request: FinishRequest,
    objects: ObjectStore,
    catalog: CatalogStore,
    snapshots: CellStore,
) -> FinishResult:
    """Add the shards' work files up; see the module docstring."""
    day = request.as_of.date().isoformat()
    n = request.total_segments
    merged_cells = merge_cells(
        {k: CellTotals.model_validate(v) for k, v in json.loads(part).items()}
        for part in _parts(objects, day, "cells", n)
    )
    snapshots.put_cells(day, {k: v.model_dump(mode="json") for k, v in merged_cells.items()})
    counts = CoPurchase.merge(
        CoPurchase.model_validate_json(part) for part in _parts(objects, day, "copurchase", n)
    )
    products = {str(p["product_id"]): p for p in catalog.scan_products()}

    def listed(pid: str) -> dict[str, Any] | None:
        """What a message needs of a product, or None when the catalogue lacks its name."""
        item = products.get(pid)
        if item is None or not item.get("name"):
            return None
        return {"product_id": pid, "name": item["name"], "url": item.get("url", "")}

    learned = related(counts, RELATED_PER_PRODUCT)
    written = 0
    with_related = 0
    for pid, item in products.items():
        if pid == BEST_SELLERS_KEY:
            continue
        new = [
            {**entry, "score": round(r.score, 4), "together": r.together}
            for r in learned.get(pid, [])
            if (entry := listed(r.product_id)) is not None
        ]
        with_related += bool(new)
        if item.get("related", []) != new:
            catalog.set_related(pid, new, day)
            written += 1
    best = [entry for pid in best_sellers(counts, BEST_SELLERS_KEPT) if (entry := listed(pid))]
    previous = products.get(BEST_SELLERS_KEY, {})
    if previous.get("products") != best:
        item = {"product_id": BEST_SELLERS_KEY, "products": best, "computed_at": day}
        catalog.put_product(item)
        written += 1
    return FinishResult(
        date=day,
        customers=sum(c.customers for c in merged_cells.values()),
        cells=len(merged_cells),
        products_with_related=with_related,
        products_written=written,
        best_sellers=len(best),
    )


class Analytics(Protocol):
    """Where a run's work files and results go (the score function's wiring)."""

    @property
    def objects(self) -> ObjectStore: ...

    @property
    def catalog(self) -> CatalogStore: ...

    @property
    def snapshots(self) -> CellStore: ...


def run_scoring(
    request: ScoringRequest,
    store: ScoringStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    clock: Clock,
    analytics: Analytics | None = None,
) -> dict[str, Any]:
    objects = analytics.objects if analytics else None
    match request.root:
        case BoundariesRequest() as first:
            return compute_boundaries(first, store, cfg, clock).model_dump(mode="json")
        case ScoreRequest() as shard:
            return score_segment(shard, store, publisher, cfg, objects).model_dump(mode="json")
        case FinishRequest() as finish:
            if analytics is None:
                raise RuntimeError("finish needs the analytics bucket and tables")
            return finish_run(
                finish, analytics.objects, analytics.catalog, analytics.snapshots
            ).model_dump(mode="json")
    raise TypeError("unknown scoring request")  # pragma: no cover - the union is closed
