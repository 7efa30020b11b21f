"""The always-valid sequential test (kizuna.analytics.sequential): its false-positive rate
under daily looks, its power at the size it claims, the per-arm minimum and the interval.

The simulations draw the daily counts with numpy (already a dependency) under a fixed seed
and run the module's own plain-Python ``decide`` at every look, as a campaign or a daily
job would: 2,000 A/A runs x 30 looks take about a second."""

from __future__ import annotations

import numpy as np
import pytest

from kizuna.analytics.sequential import (
    Arm,
    confidence_sequence,
    decide,
    likelihood_ratio,
    sample_size_for,
)

LOOKS = 30  # one look a day for a month
ALPHA = 0.05
# Monte-Carlo margin on a rate near 5% over 2,000 runs: one standard error is
# sqrt(0.05 * 0.95 / 2000) = 0.49 points; the test allows about two (1 point).
MARGIN = 0.01


def daily_runs(
    runs: int, rate_a: float, rate_b: float, per_arm: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative exposed (per look) and converted (per run and look) of two equal arms."""
    rng = np.random.default_rng(seed)
    step = np.diff(np.linspace(0, per_arm, LOOKS + 1).round().astype(int))
    a = rng.binomial(step, rate_a, size=(runs, LOOKS)).cumsum(axis=1)
    b = rng.binomial(step, rate_b, size=(runs, LOOKS)).cumsum(axis=1)
    return step.cumsum(), a, b


def first_decision(
    exposed: np.ndarray, a: np.ndarray, b: np.ndarray, run: int, min_per_arm: int = 100
) -> tuple[int, str] | None:
    """The look (0-based) and the winner of the first decision of one run, checked daily
    with the running always-valid p-value; None if it never decides."""
    p = 1.0
    for look in range(LOOKS):
        n = int(exposed[look])
        d = decide(
            {"a": Arm(n, int(a[run, look])), "b": Arm(n, int(b[run, look]))},
            alpha=ALPHA,
            min_per_arm=min_per_arm,
            previous_p=p,
        )
        p = d.p_value
        if d.winner is not None:
            return look, d.winner
    return None


def test_aa_false_positive_rate_stays_under_alpha_with_daily_looks() -> None:
    # given: 2,000 A/A runs at 10%, as large as the power claim, looked at every day
    per_arm = sample_size_for(0.10, 0.20, alpha=ALPHA, power=0.8)
    exposed, a, b = daily_runs(2000, 0.10, 0.10, per_arm, seed=19)
    # when: each run stops at its first decision
    decided = sum(first_decision(exposed, a, b, r) is not None for r in range(2000))
    # then: the share of runs that named a winner stays at or under alpha (+ MC margin)
    assert decided / 2000 <= ALPHA + MARGIN


def test_aa_with_three_arms_stays_under_alpha() -> None:
    # given: three equal arms (Bonferroni over the three pairs), 600 runs, daily looks
    rng = np.random.default_rng(7)
    step = 300
    wrong = 0
    for _ in range(600):
        counts = rng.binomial(step, 0.2, size=(3, LOOKS)).cumsum(axis=1)
        p = 1.0
        for look in range(LOOKS):
            n = step * (look + 1)
            arms = {name: Arm(n, int(counts[i, look])) for i, name in enumerate("abc")}
            d = decide(arms, alpha=ALPHA, previous_p=p)
            p = d.p_value
            if d.winner is not None:
                wrong += 1
                break
    # then: 600 runs, one standard error ~0.9 points: allow two
    assert wrong / 600 <= ALPHA + 0.018


def test_finds_a_planted_20_percent_lift_at_the_size_it_claims() -> None:
    # given: the claimed per-arm size for 10% -> 12% at 80% power
    per_arm = sample_size_for(0.10, 0.20, alpha=ALPHA, power=0.8)
    assert 3_000 < per_arm < 20_000  # sanity: above a fixed-n z test (~3,800), same order
    exposed, a, b = daily_runs(1000, 0.10, 0.12, per_arm, seed=20)
    # when: looked at daily up to that size
    outcomes = [first_decision(exposed, a, b, r) for r in range(1000)]
    # then: at least 80% of runs name b by then, and (almost) none names a
    found = sum(o is not None and o[1] == "b" for o in outcomes)
    wrong = sum(o is not None and o[1] == "a" for o in outcomes)
    assert found / 1000 >= 0.80
    assert wrong <= 1


def test_no_decision_below_the_minimum_per_arm() -> None:
    # given: an overwhelming difference, but one arm below the minimum
    d = decide({"a": Arm(99, 0), "b": Arm(500, 400)}, min_per_arm=100)
    # then: undecided, and the reason names the short arm
    assert d.winner is None and d.interval is None
    assert "fewer than 100 exposed in a" in d.reason
    # and at the minimum it decides
    assert decide({"a": Arm(100, 0), "b": Arm(500, 400)}, min_per_arm=100).winner == "b"


def test_daily_looks_never_decide_before_the_minimum() -> None:
    # given: a large lift, a minimum of 2,000 per arm, daily looks of 250 per arm
    exposed, a, b = daily_runs(200, 0.10, 0.20, 250 * LOOKS, seed=3)
    # when / then: no run decides before the 8th look (2,000 per arm)
    for run in range(200):
        first = first_decision(exposed, a, b, run, min_per_arm=2000)
        assert first is None or exposed[first[0]] >= 2000


def test_the_p_value_is_the_running_minimum_and_the_interval_brackets_the_estimate() -> None:
    arms = {"a": Arm(5000, 500), "b": Arm(5000, 560)}
    d = decide(arms)
    assert d.leader == "b" and d.runner_up == "a"
    assert d.p_value == pytest.approx(min(1.0, 1 / likelihood_ratio(arms["a"], arms["b"])))
    assert decide(arms, previous_p=0.001).p_value == 0.001
    assert d.interval is not None and d.interval[0] < d.difference < d.interval[1]
    assert d.difference == pytest.approx(0.012) and d.lift == pytest.approx(0.12)
    # the always-valid interval is wider than the fixed-n 95% Wald interval
    wald = 1.96 * (0.1 * 0.9 / 5000 + 0.112 * 0.888 / 5000) ** 0.5
    low, high = confidence_sequence(arms["a"], arms["b"])
    assert high - low > 2 * wald
    # no evidence in equal or empty arms
    assert likelihood_ratio(Arm(0, 0), Arm(10, 1)) == 1.0
    assert decide({"a": Arm(1000, 0), "b": Arm(1000, 0)}).winner is None


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="converted <= exposed"):
        Arm(10, 11)
    with pytest.raises(ValueError, match="at least two arms"):
        decide({"a": Arm(10, 1)})
    with pytest.raises(ValueError, match="alpha"):
        decide({"a": Arm(10, 1), "b": Arm(10, 1)}, alpha=0)
    with pytest.raises(ValueError, match="positive lift"):
        sample_size_for(0.1, 0.0)
