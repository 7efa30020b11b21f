"""The daily scoring job: one parallel-scan segment of the customers table per call.

A run has two steps (the ``Scoring`` state machine):

1. :func:`compute_boundaries` samples up to ``sample_size`` customers spread over every
   scan segment (the first page of each) and returns the RFM quantile boundaries and the
   run's ``as_of`` instant, which every shard then shares.
2. :func:`score_segment`, once per segment (a Map state): reads the segment, recomputes
   the time-dependent loyalty state as of ``as_of`` (the rolling rank window and point
   expiry move with time, not only with events: a rank can drop with no event at all),
   scores RFM, and writes **only** the customers whose state changed. Derived events go
   out first (``customer.segment_changed``, and ``customer.rank_changed`` when time alone
   moved the rank), PutEvents ten at a time, with deterministic ids so a retried shard
   repeats ids that consumers already dropped; then the saves.

Ingest is otherwise the customer item's only writer. The job writes with the same
optimistic ``version`` condition: when an ingest write lands between the read and the
write, the job re-reads that customer and applies the scoring again (a few attempts);
ingest does the same on its side. The next ingest write recomputes as of the customer's
latest event, which is what the rest of the design expects; the next run corrects any
drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from kizuna.clock import Clock
from kizuna.config import KizunaConfig
from kizuna.customer import Customer
from kizuna.domain.loyalty import recompute
from kizuna.events import DerivedEvent, RankChanged, RankDirection, SegmentChanged
from kizuna.ports import EventPublisher, VersionConflict
from kizuna.scoring.rfm import Boundaries, boundaries, collect_inputs, score, segment_names

CHUNK = 500
SAVE_ATTEMPTS = 4
# Fields that change every day without meaning anything (the instant of the recompute).
_NOT_A_CHANGE = {"version", "processed", "as_of"}


class ScoringStore(Protocol):
    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]: ...

    def sample_customers(self, segment: int, total_segments: int, limit: int) -> list[Customer]:
        """Up to ``limit`` customers of one scan segment (order facts are enough)."""
        ...

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]: ...

    def save_customer(self, customer: Customer, expected_version: int) -> Customer: ...


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoundariesRequest(_Request):
    action: Literal["boundaries"] = "boundaries"
    total_segments: int = Field(ge=1, le=1000)


class ScoreRequest(_Request):
    action: Literal["score"] = "score"
    segment: int = Field(ge=0)
    total_segments: int = Field(ge=1, le=1000)
    boundaries: Boundaries
    as_of: AwareDatetime


class ScoringRequest(
    RootModel[Annotated[BoundariesRequest | ScoreRequest, Field(discriminator="action")]]
):
    """What the state machine sends the score function."""


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


def compute_boundaries(
    request: BoundariesRequest, store: ScoringStore, cfg: KizunaConfig, clock: Clock
) -> BoundariesResult:
    now = clock.now()
    n = request.total_segments
    per_segment = max(1, -(-cfg.scoring.sample_size // n))
    sample: list[Customer] = []
    if cfg.scoring.method == "quantiles":
        for segment in range(n):
            sample += store.sample_customers(segment, n, per_segment)
    _, inputs = collect_inputs(sample, now, cfg.scoring.window_days)
    return BoundariesResult(
        boundaries=boundaries(inputs, cfg.scoring), as_of=now, segments=list(range(n))
    )


def rescore(
    customers: Sequence[Customer], bounds: Boundaries, cfg: KizunaConfig, as_of: datetime
) -> list[Customer]:
    """``customers`` with loyalty recomputed as of ``as_of`` and RFM scores set."""
    fresh = [
        recompute(c, cfg.loyalty, as_of=max(as_of, c.last_event_at or as_of)) for c in customers
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
    cid = after.customer_id
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
            DerivedEvent(
                detail_type="customer.segment_changed",
                detail=SegmentChanged(
                    event_id=f"{cid}:segment:{after.rfm_segment}:{day}",
                    customer_id=cid,
                    occurred_at=as_of,
                    caused_by=caused_by,
                    from_segment=before.rfm_segment,
                    to_segment=after.rfm_segment,
                    recency=after.rfm_recency,
                    frequency=after.rfm_frequency,
                    monetary=after.rfm_monetary,
                ),
            )
        )
    if before.rank is not None and after.rank is not None and before.rank != after.rank:
        loyalty = cfg.loyalty
        up = loyalty.rank_index(after.rank) > loyalty.rank_index(before.rank)
        out.append(
            DerivedEvent(
                detail_type="customer.rank_changed",
                detail=RankChanged(
                    event_id=f"{cid}:rank_changed:{before.rank}:{after.rank}:{caused_by}",
                    customer_id=cid,
                    occurred_at=as_of,
                    caused_by=caused_by,
                    from_rank=before.rank,
                    to_rank=after.rank,
                    direction=RankDirection.UP if up else RankDirection.DOWN,
                    rank_points=after.rank_points,
                ),
            )
        )
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
    request: ScoreRequest, store: ScoringStore, publisher: EventPublisher, cfg: KizunaConfig
) -> ScoreResult:
    """Score one scan segment; see the module docstring."""
    result = ScoreResult(segment=request.segment)
    as_of, bounds = request.as_of, request.boundaries
    scan = store.scan_customers(request.segment, request.total_segments)
    for chunk in _chunks(scan, CHUNK):
        result.scanned += len(chunk)
        after = rescore(chunk, bounds, cfg, as_of)
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
                    else:
                        result.rank_changed += 1
            result.conflicts += len(conflicted)
            if not conflicted:
                break
            if attempt == SAVE_ATTEMPTS - 1:
                raise VersionConflict(",".join(conflicted[:5]))
            fresh = list(store.get_customers(conflicted).values())
            rescored = rescore(fresh, bounds, cfg, as_of)
            pending = [(b, a) for b, a in zip(fresh, rescored, strict=True) if changed(b, a)]
    return result


def run_scoring(
    request: ScoringRequest,
    store: ScoringStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    clock: Clock,
) -> dict[str, Any]:
    match request.root:
        case BoundariesRequest() as first:
            return compute_boundaries(first, store, cfg, clock).model_dump(mode="json")
        case ScoreRequest() as shard:
            return score_segment(shard, store, publisher, cfg).model_dump(mode="json")
    raise TypeError("unknown scoring request")  # pragma: no cover - the union is closed
