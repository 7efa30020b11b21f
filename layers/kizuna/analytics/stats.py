"""Report statistics in plain Python: proportions, lift against a holdout, state migration.

Why these methods:

* **Wilson score interval** for one proportion. The textbook Wald interval
  (``p ± z·sqrt(p(1-p)/n)``) collapses to zero width at 0 or n conversions and leaves [0, 1]
  for small n; Wilson stays inside [0, 1] and keeps close to its nominal coverage, which
  matters because campaign holdouts are small and conversion counts are often 0 to 5.
* **Newcombe's hybrid score interval** (Newcombe 1998, "Interval estimation for the
  difference between independent proportions: comparison of eleven methods", Statistics in
  Medicine 17:873-890, method 10) for the difference treated − holdout. It combines the two
  Wilson intervals (square-and-add of the distances from each rate to its Wilson limits), so
  it inherits their behaviour at zero counts: 0/10 against 0/20 gives a proper, asymmetric
  interval instead of the degenerate [0, 0] of Wald.
* **Pooled two-proportion z test** for the p-value: the usual test of "no difference"
  (pooling is right under that null hypothesis). It is only a companion to the interval;
  :attr:`Lift.significant` is decided by the interval, so the two can disagree near the
  boundary — the interval is the one with good small-sample behaviour.

Zero-size groups never produce NaN: an undefined quantity is ``None`` and documented as such.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from statistics import NormalDist

from pydantic import BaseModel, ConfigDict, Field, model_validator

NONE_STATE = "(none)"
"""The state of a customer on a date they had none (not yet seen, or no longer present)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _counts(k: int, n: int, what: str) -> tuple[int, int]:
    k = _count(k, f"{what} successes")
    n = _count(n, f"{what} size")
    if k > n:
        raise ValueError(f"{what}: {k} successes out of {n} is more than the whole")
    return k, n


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile: 1.959964 for 0.95 (the exact value, not 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


# --- one proportion ----------------------------------------------------------------------


class Interval(_Frozen):
    """A closed interval ``[low, high]`` (a confidence interval)."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"not an interval: [{self.low}, {self.high}]")
        return self

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval (no continuity correction) for ``k`` successes out of ``n``.

    ``n == 0`` returns ``[0, 1]``: with no observation every rate is possible (it is also the
    limit of the formula). The bounds at ``k == 0`` and ``k == n`` are exactly 0 and 1
    (the formula gives them only up to rounding).
    """
    k, n = _counts(k, n, "wilson")
    z = z_value(confidence)
    if n == 0:
        return Interval(low=0.0, high=1.0)
    z2 = z * z
    # (k + z²/2) / (n + z²) ± z / (n + z²) · sqrt(k(n-k)/n + z²/4): the usual
    # (2np + z² ± z·sqrt(z² + 4np(1-p))) / (2(n + z²)), written without p.
    centre = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Interval(low=low, high=high)


class Rate(_Frozen):
    """A proportion with its Wilson interval, e.g. a conversion or second-purchase rate."""

    numerator: int = Field(ge=0, description="customers with the outcome")
    denominator: int = Field(ge=0, description="customers at risk")
    value: float | None = Field(description="numerator / denominator; None when denominator 0")
    ci: Interval = Field(description="Wilson interval; [0, 1] when the denominator is 0")
    confidence: float = Field(gt=0, lt=1)


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    """``k / n`` with its Wilson interval (``value`` is None when ``n == 0``)."""
    k, n = _counts(k, n, "rate")
    return Rate(
        numerator=k,
        denominator=n,
        value=k / n if n else None,
        ci=wilson(k, n, confidence),
        confidence=confidence,
    )


def second_purchase_rate(order_counts: Iterable[int], confidence: float = 0.95) -> Rate:
    """Share of customers with at least two orders among those with at least one.

    ``order_counts`` holds one count of (counted) orders per customer; customers with 0
    orders are not at risk and are ignored, so passing the whole base is fine.
    """
    buyers = repeaters = 0
    for i, orders in enumerate(order_counts):
        orders = _count(orders, f"order count #{i}")
        if orders >= 1:
            buyers += 1
            if orders >= 2:
                repeaters += 1
    return rate(repeaters, buyers, confidence)


# --- lift against a holdout ----------------------------------------------------------------


class Lift(_Frozen):
    """Conversion of a treated group against its holdout (control) group.

    A rate is None when its group is empty; the difference, its interval, the relative lift
    and the p-value are None when they are undefined (see each field). ``significant`` is
    False whenever the interval is None.
    """

    treated_conversions: int = Field(ge=0)
    treated_n: int = Field(ge=0, description="customers in the treated group")
    holdout_conversions: int = Field(ge=0)
    holdout_n: int = Field(ge=0, description="customers in the holdout group")
    confidence: float = Field(gt=0, lt=1, description="of the interval, e.g. 0.95")
    treated_rate: float | None = Field(description="treated_conversions / treated_n")
    holdout_rate: float | None = Field(description="holdout_conversions / holdout_n")
    absolute_lift: float | None = Field(
        description="treated_rate − holdout_rate (a difference of proportions, in [-1, 1]); "
        "None when either group is empty"
    )
    ci: Interval | None = Field(
        description="Newcombe hybrid score interval of absolute_lift; None when it is None"
    )
    relative_lift: float | None = Field(
        description="treated_rate / holdout_rate − 1; None when the holdout rate is 0 or None"
    )
    p_value: float | None = Field(
        description="two-sided p-value of the pooled two-proportion z test; None when either "
        "group is empty or nobody / everybody converted (the test statistic is 0/0)"
    )
    significant: bool = Field(description="the interval excludes 0")


def newcombe(
    treated_conversions: int,
    treated_n: int,
    holdout_conversions: int,
    holdout_n: int,
    confidence: float = 0.95,
) -> Interval:
    """Newcombe's hybrid score interval (method 10) for ``p1 − p2``; both groups non-empty.

    With Wilson limits ``[l1, u1]`` and ``[l2, u2]`` and ``D = p1 − p2``:
    ``[D − sqrt((p1−l1)² + (u2−p2)²), D + sqrt((u1−p1)² + (p2−l2)²)]``.
    """
    x1, n1 = _counts(treated_conversions, treated_n, "treated")
    x2, n2 = _counts(holdout_conversions, holdout_n, "holdout")
    if n1 == 0 or n2 == 0:
        raise ValueError("the difference of proportions needs two non-empty groups")
    p1, p2 = x1 / n1, x2 / n2
    w1, w2 = wilson(x1, n1, confidence), wilson(x2, n2, confidence)
    diff = p1 - p2
    low = diff - math.hypot(p1 - w1.low, w2.high - p2)
    high = diff + math.hypot(w1.high - p1, p2 - w2.low)
    return Interval(low=max(-1.0, low), high=min(1.0, high))


def _pooled_p_value(x1: int, n1: int, x2: int, n2: int) -> float | None:
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    # erfc keeps precision for tiny p-values, where 2·(1 − Φ(|z|)) would round to 0.
    return min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def lift(
    treated_conversions: int,
    treated_n: int,
    holdout_conversions: int,
    holdout_n: int,
    confidence: float = 0.95,
) -> Lift:
    """Lift of a treated group over its holdout; see :class:`Lift` for the None cases."""
    x1, n1 = _counts(treated_conversions, treated_n, "treated")
    x2, n2 = _counts(holdout_conversions, holdout_n, "holdout")
    z_value(confidence)  # validate even when no interval is computed
    p1 = x1 / n1 if n1 else None
    p2 = x2 / n2 if n2 else None
    if p1 is None or p2 is None:
        diff, ci, p_value = None, None, None
    else:
        diff = p1 - p2
        ci = newcombe(x1, n1, x2, n2, confidence)
        p_value = _pooled_p_value(x1, n1, x2, n2)
    return Lift(
        treated_conversions=x1,
        treated_n=n1,
        holdout_conversions=x2,
        holdout_n=n2,
        confidence=confidence,
        treated_rate=p1,
        holdout_rate=p2,
        absolute_lift=diff,
        ci=ci,
        relative_lift=p1 / p2 - 1.0 if p1 is not None and p2 else None,
        p_value=p_value,
        significant=ci is not None and (ci.low > 0.0 or ci.high < 0.0),
    )


# --- migration between two dates ------------------------------------------------------------


class Migration(_Frozen):
    """Customers' states on two dates as a from × to matrix.

    ``states`` is the ``order`` given to :func:`migration` (best first) followed by
    :data:`NONE_STATE`; ``counts[i][j]`` is the number of customers in ``states[i]`` before
    and ``states[j]`` after. A customer only present before is counted in the
    ``(none)`` column (``left``), one only present after in the ``(none)`` row (``entered``),
    so the matrix adds up to every customer seen on either date. ``counts[-1][-1]`` is
    always 0.

    Up / stayed / down compare the positions in ``order`` and are counted among the
    ``retained`` customers (present on both dates); their shares are None when nobody was
    retained.
    """

    states: tuple[str, ...] = Field(description="order (best first), then '(none)'")
    counts: tuple[tuple[int, ...], ...] = Field(description="[from][to] customer counts")
    row_totals: tuple[int, ...] = Field(description="customers per state before")
    column_totals: tuple[int, ...] = Field(description="customers per state after")
    row_shares: tuple[tuple[float, ...], ...] = Field(
        description="counts[i][j] / row_totals[i]; a row with no customer is all 0.0"
    )
    total: int = Field(ge=0, description="customers seen on either date")
    retained: int = Field(ge=0, description="customers present on both dates")
    entered: int = Field(ge=0, description="present after only (the '(none)' row)")
    left: int = Field(ge=0, description="present before only (the '(none)' column)")
    up: int = Field(ge=0, description="retained customers now in a better state")
    stayed: int = Field(ge=0, description="retained customers in the same state")
    down: int = Field(ge=0, description="retained customers now in a worse state")
    up_share: float | None = Field(description="up / retained; None when retained is 0")
    stayed_share: float | None = Field(description="stayed / retained; None when retained is 0")
    down_share: float | None = Field(description="down / retained; None when retained is 0")

    @model_validator(mode="after")
    def _shape(self) -> Migration:
        size = len(self.states)
        if size < 1 or self.states[-1] != NONE_STATE:
            raise ValueError(f"states must end with {NONE_STATE!r}")
        grids = (self.counts, self.row_shares)
        if any(len(g) != size or any(len(row) != size for row in g) for g in grids):
            raise ValueError("counts and row_shares must be square, one row per state")
        if len(self.row_totals) != size or len(self.column_totals) != size:
            raise ValueError("row_totals and column_totals need one entry per state")
        return self

    def count(self, before: str, after: str) -> int:
        """Customers in ``before`` on the first date and ``after`` on the second."""
        return self.counts[self.states.index(before)][self.states.index(after)]


def migration(
    before: Mapping[str, str], after: Mapping[str, str], order: Sequence[str]
) -> Migration:
    """Migration of customers (keys) between their states ``before`` and ``after``.

    ``order`` lists every state, best first (e.g. RFM segments from best to worst, or ranks
    1, 2, 3...). A state missing from ``order`` is an error rather than a silently dropped
    customer; so is ``(none)`` in ``order``, which is reserved for "not present".
    """
    states = tuple(order)
    if len(set(states)) != len(states):
        raise ValueError(f"order has duplicates: {list(states)}")
    if NONE_STATE in states:
        raise ValueError(f"{NONE_STATE!r} is reserved for customers absent on one date")
    unknown = (set(before.values()) | set(after.values())) - set(states)
    if unknown:
        raise ValueError(f"states missing from order: {sorted(unknown)}")
    states += (NONE_STATE,)
    rank = {state: i for i, state in enumerate(states)}

    pairs: Counter[tuple[int, int]] = Counter()
    for customer in before.keys() | after.keys():
        pairs[rank[before.get(customer, NONE_STATE)], rank[after.get(customer, NONE_STATE)]] += 1

    size = len(states)
    none = size - 1
    counts = tuple(tuple(pairs[i, j] for j in range(size)) for i in range(size))
    row_totals = tuple(sum(row) for row in counts)
    column_totals = tuple(sum(counts[i][j] for i in range(size)) for j in range(size))
    row_shares = tuple(
        tuple(c / total if total else 0.0 for c in row)
        for row, total in zip(counts, row_totals, strict=True)
    )
    up = sum(c for (i, j), c in pairs.items() if none not in (i, j) and j < i)
    stayed = sum(c for (i, j), c in pairs.items() if i != none and j == i)
    down = sum(c for (i, j), c in pairs.items() if none not in (i, j) and j > i)
    retained = up + stayed + down

    def share(part: int) -> float | None:
        return part / retained if retained else None

    return Migration(
        states=states,
        counts=counts,
        row_totals=row_totals,
        column_totals=column_totals,
        row_shares=row_shares,
        total=sum(row_totals),
        retained=retained,
        entered=row_totals[none],
        left=column_totals[none],
        up=up,
        stayed=stayed,
        down=down,
        up_share=share(up),
        stayed_share=share(stayed),
        down_share=share(down),
    )
