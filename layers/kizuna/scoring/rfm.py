"""RFM scoring, vectorized with numpy.

Inputs, one entry per customer *with at least one counted order* (cancelled orders never
count) at or before ``now``: days since the last order, orders in the scoring window, spend
in the window. An order after ``now`` counts for none of the three.
Customers without a counted order are not scored: their RFM fields stay ``None`` (the
``lifecycle`` "prospect" of the customer view already names them).

Scores are 1 (worst) to 5 (best). Four boundaries per measure split it into five bins;
they are either quantiles of a uniform sample of the current base (:func:`uniform_sample`,
computed once per run and shared by every shard), or fixed thresholds from
:class:`~kizuna.runtime.config.ScoringConfig`.

**Who the quantiles are taken among.** Recency: every scored customer. Frequency and
monetary: only the customers with an order *in the window* (frequency > 0). On a real base
most customers with an order have none in the window (65% on one shop's log); taking F and
M quantiles over everyone put three of the four boundaries at 0, so a single order scored
F=4. A customer with no order in the window scores F=1 and M=1 ("no purchase in window"),
whatever the boundaries.

**The rank rule (ties).** Scores follow ranks in the sample. For frequency and monetary,
``score = 1 + min(4, floor(5 * p))`` with ``p`` the share of the sampled window buyers with
a strictly *smaller* value; for recency, ``R = 5 - min(4, floor(5 * q))`` with ``q`` the
share of the sampled scored customers with strictly *fewer* days since their last order.
Equal inputs always get equal scores and a tie group is never split: for F and M it takes
the score of its lowest rank (so the one-order majority of the buyers is F=1, and a
single-order customer's FM is at most ``(1 + 5 + 1) // 2 = 3``: never the Champions column
of the default grid), for R the best. In boundary terms: the cuts are the 20/40/60/80 %
quantiles with ``numpy.quantile(method="inverted_cdf")`` (the smallest sample value whose
cumulative share reaches the level, so every boundary is a value seen), and a value *equal
to* a boundary falls in the bin below it (``numpy.searchsorted(side="left")``): for F and M
the lower score, for R (fewer days is better) the higher one. Repeated boundaries are
expected (a tie group spanning several quintiles, e.g. ``(1, 1, 1, 2)`` orders), not a
collapse: the scores still follow the ranks.

Segments come from a 5x5 grid of R (recency score) against FM, the rounded-up mean of the
frequency and monetary scores (``(F + M + 1) // 2``) — the common R-vs-FM grid of RFM
practice. :data:`kizuna.runtime.config.DEFAULT_SEGMENT_RULES` is the default mapping; the first
rule whose ranges hold a cell names it, and the configuration is rejected unless every one
of the 25 cells is named.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from kizuna.domain.customer import Customer
from kizuna.runtime.config import ScoringConfig
from kizuna.scoring.requests import Boundaries

QUANTILES = (0.2, 0.4, 0.6, 0.8)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")


@dataclass(frozen=True)
class RfmInputs:
    """Column arrays of the scored customers (same length, same order)."""

    recency_days: FloatArray
    frequency: FloatArray
    monetary: FloatArray

    def __len__(self) -> int:
        return int(self.recency_days.shape[0])


@dataclass(frozen=True)
class RfmScores:
    recency: IntArray
    frequency: IntArray
    monetary: IntArray
    segment: IntArray  # index into segment_names(cfg)


def inputs_of(customer: Customer, now: datetime, window_days: int) -> tuple[float, int, float]:
    """``(days since last order, orders in window, spend in window)`` from the order facts;
    raises ValueError for a customer without a counted order (not scored)."""
    # an order after ``now`` (a replay of history, or one that landed after the run fixed
    # its as_of) has not happened yet: not in R, as not in F and M
    counted = [o for o in customer.orders.values() if o.counts and o.at is not None and o.at <= now]
    history = customer.history
    settled_last = history.last_order_at
    last = max(
        (o.at for o in counted if o.at is not None),
        default=settled_last if settled_last is not None and settled_last <= now else None,
    )
    if last is None:
        raise ValueError("no counted order")
    start = now - timedelta(days=window_days)
    in_window = [o for o in counted if o.at is not None and start < o.at <= now]
    # settled orders count by their UTC day (kizuna.domain.customer.SettledHistory)
    first_day, last_day = start.astimezone(UTC).date(), now.astimezone(UTC).date()
    settled = [t for d, t in history.days.items() if first_day < date.fromisoformat(d) <= last_day]
    days = (now - last).total_seconds() // 86400
    orders = len(in_window) + sum(t[0] for t in settled)
    spend = sum(o.total for o in in_window) + sum(t[1] for t in settled)
    return days, orders, float(spend)


def collect_inputs(
    customers: Sequence[Customer], now: datetime, window_days: int
) -> tuple[list[int], RfmInputs]:
    """Indexes of the customers that can be scored, and their input columns."""
    keep: list[int] = []
    rows: list[tuple[float, int, float]] = []
    for i, customer in enumerate(customers):
        try:
            rows.append(inputs_of(customer, now, window_days))
        except ValueError:
            continue
        keep.append(i)
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return keep, RfmInputs(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())


def uniform_sample(items: Iterable[T], size: int, rng: random.Random) -> list[T]:
    """A uniform random sample of ``size`` items (all of them when there are fewer), in one
    pass over an iterable of unknown length: reservoir sampling (Vitter's algorithm R).
    Every item ends in the sample with the same probability ``size / n``; memory holds
    ``size`` items. Deterministic for a given ``rng`` state and item order."""
    if size < 1:
        raise ValueError("size must be at least 1")
    sample: list[T] = []
    for seen, item in enumerate(items):
        if seen < size:
            sample.append(item)
            continue
        j = rng.randrange(seen + 1)
        if j < size:
            sample[j] = item
    return sample


def _cuts(values: FloatArray) -> tuple[float, float, float, float]:
    q = np.quantile(values, QUANTILES, method="inverted_cdf")
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def boundaries(sample: RfmInputs, cfg: ScoringConfig) -> Boundaries:
    """Quantile boundaries of ``sample`` (see the module docstring: recency among every
    sampled customer, frequency and monetary among those with an order in the window), or
    the fixed thresholds when configured, when the sample is empty, and (for F and M only)
    when nobody in the sample ordered in the window."""
    fixed = cfg.fixed
    if cfg.method == "fixed" or len(sample) == 0:
        return Boundaries(
            recency_days=fixed.recency_days,
            frequency=fixed.frequency,
            monetary=fixed.monetary,
            sample_size=0,
        )
    buyers = sample.frequency > 0
    any_buyer = bool(buyers.any())
    return Boundaries(
        recency_days=_cuts(sample.recency_days),
        frequency=_cuts(sample.frequency[buyers]) if any_buyer else fixed.frequency,
        monetary=_cuts(sample.monetary[buyers]) if any_buyer else fixed.monetary,
        sample_size=len(sample),
        window_buyers=int(buyers.sum()),
    )


def _bin(values: FloatArray, cuts: Sequence[float]) -> IntArray:
    """How many boundaries lie strictly below each value (0..4)."""
    return np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="left").astype(np.int64)


def segment_grid(cfg: ScoringConfig) -> IntArray:
    """``grid[r - 1, fm - 1]`` is the index (in ``segment_names``) of the cell's segment."""
    names = segment_names(cfg)
    grid = np.full((5, 5), -1, dtype=np.int64)
    for rule in cfg.segments:
        for r in range(rule.recency[0], rule.recency[1] + 1):
            for fm in range(rule.fm[0], rule.fm[1] + 1):
                if grid[r - 1, fm - 1] < 0:
                    grid[r - 1, fm - 1] = names.index(rule.segment)
    return grid


def segment_names(cfg: ScoringConfig) -> list[str]:
    """The segments in the order their rules are listed (the first matching rule names a
    cell, so this is a precedence, not a ranking: "Lost" precedes "Hibernating")."""
    return list(dict.fromkeys(rule.segment for rule in cfg.segments))


def segment_order(cfg: ScoringConfig) -> list[str]:
    """The segments best first, the one ranking the reports use for "better" and "worse":
    by the mean R + FM score of the grid cells a segment names (Champions 9.5, Loyal 8,
    ..., Hibernating 3.3, Lost 2 with the default rules), ties in listing order; a segment
    whose rules name no cell (every cell taken by an earlier rule) comes last."""
    grid = segment_grid(cfg)
    names = segment_names(cfg)

    def mean_score(i: int) -> float:
        cells = [r + fm + 2 for r, fm in zip(*np.nonzero(grid == i), strict=True)]
        return sum(cells) / len(cells) if cells else float("-inf")

    return [names[i] for i in sorted(range(len(names)), key=lambda i: (-mean_score(i), i))]


def score(inputs: RfmInputs, bounds: Boundaries, cfg: ScoringConfig) -> RfmScores:
    """Scores 1..5 and segment indexes for every row of ``inputs``."""
    recency = 5 - _bin(inputs.recency_days, bounds.recency_days)
    bought = inputs.frequency > 0  # no order in the window: F=1 and M=1, whatever the cuts
    frequency = np.where(bought, 1 + _bin(inputs.frequency, bounds.frequency), 1)
    monetary = np.where(bought, 1 + _bin(inputs.monetary, bounds.monetary), 1)
    fm = (frequency + monetary + 1) // 2
    segment = segment_grid(cfg)[recency - 1, fm - 1]
    return RfmScores(recency, frequency, monetary, segment)
