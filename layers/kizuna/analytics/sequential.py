"""An always-valid sequential test for A/B winners: the mixture SPRT on two proportions.

Plain Python (no AWS, no numpy): the campaign function imports it.

Reference: R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Always valid inference: continuous
monitoring of A/B tests", Operations Research 70(3):1806-1821 (2022); the normal-approximation
mixture SPRT (mSPRT) for the difference of two Bernoulli rates, as in their section 4.

The math. Arm A has ``n_a`` exposed and ``x_a`` converted, arm B ``n_b`` and ``x_b``. The
estimated difference is ``d = x_b/n_b - x_a/n_a`` and its variance is estimated unpooled,
each arm by its own rate (the plug-in variance):

    W = p_a(1-p_a)/n_a + p_b(1-p_b)/n_b,   with the rates shrunk to p = (x + 1) / (n + 2)

(the shrinkage, one success and one failure, keeps an arm at 0% or 100% from giving a zero
variance, a zero-width interval and an infinite likelihood ratio). With a normal mixing
distribution ``N(0, tau^2)`` over the true difference, the mixture likelihood ratio is

    Lambda_n = sqrt(W / (W + tau^2)) * exp( d^2 tau^2 / (2 W (W + tau^2)) )

Under the null ``Lambda_n`` is (approximately, by the normal approximation) a nonnegative
martingale with mean 1, so by Ville's inequality ``P(Lambda_n >= 1/alpha ever) <= alpha``: the
test may be looked at after every batch, every day, as often as one likes, and stopped at any
look, without inflating its false-positive rate. The always-valid p-value is the running
minimum ``p_n = min(p_{n-1}, 1 / Lambda_n)``; the test rejects when ``p_n <= alpha``.
Inverting the same bound (``Lambda_n >= 1/alpha`` solved for ``d``) gives the always-valid
confidence sequence for the difference:

    d +/- sqrt( W (W + tau^2) / tau^2 * (2 log(1/alpha) + log((W + tau^2) / W)) )

One variance for both, and why the unpooled one. A test and the interval printed beside it
must use the same variance, or they contradict each other: with a pooled variance for the
test and an unpooled one for the interval, unequal arms (variant weights 80/20) named a
winner whose interval contained 0 (a: 480/4000, b: 160/1000, p = 0.028, interval [-0.05,
+8.05] points) and left undecided a test whose interval excluded 0 (a: 1060/4000, b:
215/1000, p = 0.060, interval [+0.14, +9.86]). With one ``W`` in both formulas, ``1/Lambda_n
<= alpha`` holds exactly when ``|d|`` reaches the half-width, that is when the interval
excludes 0. The variance is the unpooled one because the confidence sequence has to cover
the true difference whatever it is, not only 0: the pooled variance is the variance of
``d`` only under the null (equal rates) and is wrong for an interval around a nonzero
difference when the arms differ in size (its weights ``1/n_a + 1/n_b`` put the larger
arm's rate on the smaller arm). The mixture-SPRT literature builds the confidence sequence
for a difference of means on the plug-in (unpooled) variance (Johari et al. above; S.
Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Annals of Statistics 49(2), 2021), and under the null the unpooled
variance estimates the same quantity as the pooled one, so the test keeps its error rate
(measured below, equal and unequal arms).

``tau`` (``mixing_sd``) is the scale of differences the test is tuned to find; any fixed value
keeps the error rate, only the power depends on it. The default 0.02 suits a rate of about
10% and a 20% relative lift (10% -> 12%). The price of a small ``tau`` is slow decisions on
small arms even for large differences (10/100 against 30/100 is undecided, p = 0.50): the
test is built for campaign-sized arms (thousands), not for a hundred.

More than two arms: every pair is tested at ``alpha / (k (k-1) / 2)`` (Bonferroni), and an arm
wins only when it beats every other arm; so the chance of naming any winner when all arms
are equal stays at most ``alpha``. The decision hinges on the pair with the weakest evidence
(the largest pairwise p-value), so that is the pair a :class:`Decision` reports
(``runner_up``, its difference, lift and interval at the corrected level): with two arms
the other arm; with more, the arm the leader is least sure to beat (arms of different sizes
make it not always the second-best rate). So at every look the p-value is at most
``alpha`` exactly when the reported interval excludes 0. The p-value is the running minimum
over looks and the interval is this look's: they agree whenever the previous look's
p-value is above ``alpha``, which is every look a campaign or a program takes (a look at
``alpha`` or below decides and ends the test).

The stated error rate, and the sample size claim, both measured by simulation in
``tests/unit/test_sequential.py`` (fixed seed): with ``alpha = 0.05`` and a look every day
for 30 days, 2,000 A/A runs at a 10% rate name a winner in at most 5% of runs (the test
allows +1 point of Monte-Carlo margin, about two standard errors; measured: 1.35% with
equal arms, 1.95% with variant weights 80/20 and 2.45% with 90/10, the mSPRT being
conservative); and :func:`sample_size_for` (10% vs 12%, 80% power) returns a per-arm size
at which, looked at daily, the test finds the planted 20% lift in at least 80% of runs
(7,438 per arm; measured: 86.7% of 1,000 runs). The claim is conservative: it counts only
the final look, so the daily looks before it can only add detections.

The normal approximation needs enough conversions: below the per-arm minimum
(``min_per_arm``, default 100 exposed) nothing is decided, whatever the p-value. An arm's
own variance is estimated from its own conversions, so a small arm with few of them is
where the approximation is weakest: in A/A simulations at a 2% rate with weights 95/5 and
10,000 recipients (about ten conversions expected in the small arm) the error rate is at
the level, not under it (measured 5.2% of 4,000 runs, one standard error 0.35 points;
2.1% with the pooled variance, whose false positives come instead from a small arm whose
rate is high by chance); with such splits, raise ``min_per_arm``.
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
    the previous look's is given); ``runner_up`` is the arm the leader is least sure to beat
    (the largest pairwise p-value; with two arms, the other one); ``lift`` is the leader's
    relative lift over it and ``interval`` the always-valid confidence sequence for their
    difference of rates (leader − runner-up) at the Bonferroni-corrected level, which
    excludes 0 exactly when this look's p-value is at most ``alpha`` (None below the
    per-arm minimum)."""

    winner: str | None
    leader: str
    runner_up: str
    p_value: float
    lift: float | None
    difference: float
    interval: tuple[float, float] | None
    reason: str


def _shrunk(arm: Arm) -> float:
    return (arm.converted + 1) / (arm.exposed + 2)


def variance(a: Arm, b: Arm) -> float:
    """The estimated variance of b's rate minus a's that the test and its interval share:
    unpooled, each arm's rate shrunk to ``(x + 1) / (n + 2)`` (module docstring), so it is
    never 0 (an empty arm counts as one exposed)."""
    return sum(p * (1 - p) / max(arm.exposed, 1) for arm in (a, b) for p in [_shrunk(arm)])


def likelihood_ratio(a: Arm, b: Arm, mixing_sd: float = DEFAULT_MIXING_SD) -> float:
    """The mSPRT mixture likelihood ratio for "b's rate differs from a's" (module docstring),
    with the same variance as :func:`confidence_sequence`; 1.0 when an arm is empty (no
    evidence either way)."""
    if a.exposed == 0 or b.exposed == 0:
        return 1.0
    w = variance(a, b)
    t2 = mixing_sd * mixing_sd
    d = b.rate - a.rate
    exponent = d * d * t2 / (2 * w * (w + t2))
    if exponent > 700:  # overwhelming evidence; keep the float finite
        return math.inf
    return math.sqrt(w / (w + t2)) * math.exp(exponent)


def confidence_sequence(
    a: Arm, b: Arm, alpha: float = DEFAULT_ALPHA, mixing_sd: float = DEFAULT_MIXING_SD
) -> tuple[float, float]:
    """The always-valid (1 − alpha) interval for b's rate minus a's: the inversion of
    :func:`likelihood_ratio` (same variance), so it excludes 0 exactly when
    ``1 / likelihood_ratio(a, b) <= alpha``."""
    d = b.rate - a.rate
    w = variance(a, b)
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
    leader = ranked[0]
    top = arms[leader]
    pairs = len(list(combinations(names, 2)))
    level = alpha / pairs
    # the leader's pairwise p-values (Bonferroni-corrected); the decision hinges on the
    # largest, so its arm is the one reported (ties: the better rate, the arms' order)
    pairwise = {
        other: min(1.0, pairs / likelihood_ratio(arms[other], top, mixing_sd))
        for other in ranked[1:]
    }
    runner_up = max(ranked[1:], key=lambda n: (pairwise[n], -ranked.index(n)))
    second = arms[runner_up]
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
    # the leader beats every other arm: the largest of its pairwise p-values, corrected;
    # the interval of that pair at the corrected level excludes 0 exactly when it is <= alpha
    p_now = pairwise[runner_up]
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
    t2 = mixing_sd * mixing_sd
    z = NormalDist()

    def detects(n: int) -> float:
        # the test's (unpooled) variance at the planted rates, which is also the spread of
        # the estimated difference (the shrinkage is negligible at these sizes)
        w = (p_a * (1 - p_a) + p_b * (1 - p_b)) / n
        boundary = math.sqrt(w * (w + t2) / t2 * (2 * math.log(1 / alpha) + math.log((w + t2) / w)))
        return z.cdf((delta - boundary) / math.sqrt(w))

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
