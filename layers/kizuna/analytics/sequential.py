"""An always-valid sequential test for A/B winners: the mixture SPRT on two proportions.

Plain Python (no AWS, no numpy): the campaign function imports it.

Reference: R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Always valid inference: continuous
monitoring of A/B tests", Operations Research 70(3):1806-1821 (2022); the normal-approximation
mixture SPRT (mSPRT) for the difference of two Bernoulli rates, as in their section 4.

The math. Arm A has ``n_a`` exposed and ``x_a`` converted, arm B ``n_b`` and ``x_b``. The
estimated difference is ``d = x_b/n_b - x_a/n_a``; under the null hypothesis of no difference
its variance is ``V = p(1-p)(1/n_a + 1/n_b)`` with the pooled rate ``p``. With a normal
mixing distribution ``N(0, tau^2)`` over the true difference, the mixture likelihood ratio is

    Lambda_n = sqrt(V / (V + tau^2)) * exp( d^2 tau^2 / (2 V (V + tau^2)) )

Under the null ``Lambda_n`` is (approximately, by the normal approximation) a nonnegative
martingale with mean 1, so by Ville's inequality ``P(Lambda_n >= 1/alpha ever) <= alpha``: the
test may be looked at after every batch, every day, as often as one likes, and stopped at any
look, without inflating its false-positive rate. The always-valid p-value is the running
minimum ``p_n = min(p_{n-1}, 1 / Lambda_n)``; the test rejects when ``p_n <= alpha``.
Inverting the same bound gives the always-valid confidence sequence for the difference
(here with the unpooled variance ``W = p_a(1-p_a)/n_a + p_b(1-p_b)/n_b``, the rates shrunk
to ``(x + 1) / (n + 2)`` so that an arm at 0% or 100% keeps a width):

    d +/- sqrt( W (W + tau^2) / tau^2 * (2 log(1/alpha) + log((W + tau^2) / W)) )

``tau`` (``mixing_sd``) is the scale of differences the test is tuned to find; any fixed value
keeps the error rate, only the power depends on it. The default 0.02 suits a rate of about
10% and a 20% relative lift (10% -> 12%). The price of a small ``tau`` is slow decisions on
small arms even for huge differences (0/39 against 34/34 is undecided, p = 0.36): the test
is built for campaign-sized arms (thousands), not for a few dozen.

More than two arms: every pair is tested at ``alpha / (k (k-1) / 2)`` (Bonferroni), and an arm
wins only when it beats every other arm; so the chance of naming any winner when all arms
are equal stays at most ``alpha``.

The stated error rate, and the sample size claim, both measured by simulation in
``tests/unit/test_sequential.py`` (fixed seed): with ``alpha = 0.05`` and a look every day
for 30 days, 2,000 A/A runs at a 10% rate name a winner in at most 5% of runs (the test
allows +1 point of Monte-Carlo margin, about two standard errors; measured: 1.35%, the
mSPRT being conservative); and :func:`sample_size_for` (10% vs 12%, 80% power)
returns a per-arm size at which, looked at daily, the test finds the planted 20% lift in at
least 80% of runs (7,444 per arm; measured: 86.9% of 1,000 runs). The claim is
conservative: it counts only the final look, so the daily looks before it can only add
detections.

The normal approximation needs enough conversions: below the per-arm minimum
(``min_per_arm``, default 100 exposed) nothing is decided, whatever the p-value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_PER_ARM = 100
DEFAULT_MIXING_SD = 0.02


@dataclass(frozen=True)
class Arm:
    """One arm's counts: customers exposed and customers who converted (opened, clicked,
    reached the goal)."""

    exposed: int
    converted: int

    def __post_init__(self) -> None:
        if self.exposed < 0 or not 0 <= self.converted <= self.exposed:
            raise ValueError("an arm needs 0 <= converted <= exposed")

    @property
    def rate(self) -> float:
        return self.converted / self.exposed if self.exposed else 0.0


@dataclass(frozen=True)
class Decision:
    """The outcome of one look. ``winner`` is None while undecided; ``p_value`` is the
    always-valid p-value of "the leader beats every other arm" (the running minimum when
    the previous look's is given); ``lift`` is the leader's relative lift over the
    runner-up and ``interval`` the always-valid confidence sequence for their difference of
    rates (leader − runner-up) at ``alpha`` (None below the per-arm minimum)."""

    winner: str | None
    leader: str
    runner_up: str
    p_value: float
    lift: float | None
    difference: float
    interval: tuple[float, float] | None
    reason: str


def likelihood_ratio(a: Arm, b: Arm, mixing_sd: float = DEFAULT_MIXING_SD) -> float:
    """The mSPRT mixture likelihood ratio for "b's rate differs from a's" (module docstring);
    1.0 when an arm is empty or the pooled rate is 0 or 1 (no evidence either way)."""
    if a.exposed == 0 or b.exposed == 0:
        return 1.0
    pooled = (a.converted + b.converted) / (a.exposed + b.exposed)
    v = pooled * (1 - pooled) * (1 / a.exposed + 1 / b.exposed)
    if v <= 0:
        return 1.0
    t2 = mixing_sd * mixing_sd
    d = b.rate - a.rate
    exponent = d * d * t2 / (2 * v * (v + t2))
    if exponent > 700:  # overwhelming evidence; keep the float finite
        return math.inf
    return math.sqrt(v / (v + t2)) * math.exp(exponent)


def _shrunk(arm: Arm) -> float:
    return (arm.converted + 1) / (arm.exposed + 2)


def confidence_sequence(
    a: Arm, b: Arm, alpha: float = DEFAULT_ALPHA, mixing_sd: float = DEFAULT_MIXING_SD
) -> tuple[float, float]:
    """The always-valid (1 − alpha) interval for b's rate minus a's."""
    d = b.rate - a.rate
    # the variance from rates shrunk by one success and one failure, (x + 1) / (n + 2), so an
    # arm at 0% or 100% does not give a zero variance and a zero-width interval
    w = sum(p * (1 - p) / max(arm.exposed, 1) for arm in (a, b) for p in [_shrunk(arm)])
    t2 = mixing_sd * mixing_sd
    half = math.sqrt(w * (w + t2) / t2 * (2 * math.log(1 / alpha) + math.log((w + t2) / w)))
    return d - half, d + half


def decide(
    arms: Mapping[str, Arm],
    alpha: float = DEFAULT_ALPHA,
    min_per_arm: int = DEFAULT_MIN_PER_ARM,
    mixing_sd: float = DEFAULT_MIXING_SD,
    previous_p: float = 1.0,
) -> Decision:
    """One look at the counts: a winner when the leader beats every other arm at the
    Bonferroni-corrected level, None otherwise (and always None below ``min_per_arm``).
    Pass the previous look's ``p_value`` as ``previous_p`` to keep the running minimum."""
    if len(arms) < 2:
        raise ValueError("decide: needs at least two arms")
    if not 0 < alpha < 1:
        raise ValueError("decide: alpha must be between 0 and 1")
    if min_per_arm < 1 or mixing_sd <= 0:
        raise ValueError("decide: min_per_arm >= 1 and mixing_sd > 0")
    names = list(arms)
    ranked = sorted(names, key=lambda n: (-arms[n].rate, names.index(n)))
    leader, runner_up = ranked[0], ranked[1]
    top, second = arms[leader], arms[runner_up]
    pairs = len(list(combinations(names, 2)))
    level = alpha / pairs
    difference = top.rate - second.rate
    lift = difference / second.rate if second.rate > 0 else None
    counts = ", ".join(f"{n}: {arms[n].converted}/{arms[n].exposed}" for n in names)
    short = [n for n in names if arms[n].exposed < min_per_arm]
    if short:
        return Decision(
            None,
            leader,
            runner_up,
            previous_p,
            lift,
            difference,
            None,
            f"undecided: fewer than {min_per_arm} exposed in {', '.join(short)} ({counts})",
        )
    # the leader beats every other arm: the largest of its pairwise p-values, corrected
    p_now = max(
        min(1.0, pairs / likelihood_ratio(arms[other], top, mixing_sd))
        for other in names
        if other != leader
    )
    p_value = min(previous_p, p_now)
    interval = confidence_sequence(second, top, level, mixing_sd)
    rule = f"mSPRT alpha {alpha:g}, tau {mixing_sd:g}"
    figures = (
        f"{counts}; {leader} − {runner_up} {difference * 100:+.2f} points, always-valid "
        f"interval [{interval[0] * 100:+.2f}, {interval[1] * 100:+.2f}]"
    )
    if p_value <= alpha and difference > 0:
        return Decision(
            leader,
            leader,
            runner_up,
            p_value,
            lift,
            difference,
            interval,
            f"{leader} wins ({rule}): p = {p_value:.4f} <= {alpha:g}; {figures}",
        )
    return Decision(
        None,
        leader,
        runner_up,
        p_value,
        lift,
        difference,
        interval,
        f"undecided ({rule}): p = {p_value:.4f} > {alpha:g}; {figures}",
    )


def sample_size_for(
    base_rate: float,
    relative_lift: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = 0.8,
    mixing_sd: float = DEFAULT_MIXING_SD,
) -> int:
    """Customers per arm (two equal arms) at which the test finds a true lift of
    ``relative_lift`` over ``base_rate`` with probability at least ``power``, counting only
    a single look at that size (earlier looks only add detections): the smallest n where
    the chance that the estimated difference passes the test's boundary reaches ``power``."""
    p_a = base_rate
    p_b = base_rate * (1 + relative_lift)
    if not (0 < p_a < 1 and 0 < p_b < 1 and relative_lift > 0 and 0 < power < 1):
        raise ValueError("sample_size_for: rates in (0, 1), a positive lift, power in (0, 1)")
    delta = p_b - p_a
    pooled = (p_a + p_b) / 2
    t2 = mixing_sd * mixing_sd
    z = NormalDist()

    def detects(n: int) -> float:
        v = 2 * pooled * (1 - pooled) / n  # the test's (pooled) variance
        boundary = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
        sd = math.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / n)
        return z.cdf((delta - boundary) / sd)

    high = 16
    while detects(high) < power:
        high *= 2
        if high > 1 << 40:
            raise ValueError("sample_size_for: no feasible size")
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        if detects(mid) >= power:
            high = mid
        else:
            low = mid
    return high
