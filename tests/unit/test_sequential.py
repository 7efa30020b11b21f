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
    Decision,
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
    runs: int, rate_a: float, rate_b: float, per_arm: int, seed: int, share_a: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative exposed (per look) and converted (per run and look) of two arms: equal
    arms of ``per_arm`` each, or with ``share_a`` arm a's share of the ``2 * per_arm``
    (exposed is then one row per arm)."""
    rng = np.random.default_rng(seed)
    if share_a == 0.5:
        step = np.diff(np.linspace(0, per_arm, LOOKS + 1).round().astype(int))
        a = rng.binomial(step, rate_a, size=(runs, LOOKS)).cumsum(axis=1)
        b = rng.binomial(step, rate_b, size=(runs, LOOKS)).cumsum(axis=1)
        return step.cumsum(), a, b
    steps = [
        np.diff(np.linspace(0, 2 * per_arm * share, LOOKS + 1).round().astype(int))
        for share in (share_a, 1 - share_a)
    ]
    a = rng.binomial(steps[0], rate_a, size=(runs, LOOKS)).cumsum(axis=1)
    b = rng.binomial(steps[1], rate_b, size=(runs, LOOKS)).cumsum(axis=1)
    return np.stack([steps[0].cumsum(), steps[1].cumsum()]), a, b


def first_decision(
    exposed: np.ndarray, a: np.ndarray, b: np.ndarray, run: int, min_per_arm: int = 100
) -> tuple[int, str] | None:
    """The look (0-based) and the winner of the first decision of one run, checked daily
    with the running always-valid p-value; None if it never decides."""
    p = 1.0
    for look in range(LOOKS):
        n_a, n_b = (
            (int(exposed[0, look]), int(exposed[1, look]))
            if exposed.ndim == 2
            else (int(exposed[look]),) * 2
        )
        d = decide(
            {"a": Arm(n_a, int(a[run, look])), "b": Arm(n_b, int(b[run, look]))},
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


@pytest.mark.parametrize("share_a", [0.8, 0.9])
def test_aa_with_unequal_arms_stays_under_alpha(share_a: float) -> None:
    # given: 2,000 A/A runs at 10% with variant weights 80/20 and 90/10 (the unpooled
    # variance the test shares with its interval is each arm's own), looked at daily
    per_arm = sample_size_for(0.10, 0.20, alpha=ALPHA, power=0.8)
    exposed, a, b = daily_runs(2000, 0.10, 0.10, per_arm, seed=23, share_a=share_a)
    # when: each run stops at its first decision
    decided = sum(first_decision(exposed, a, b, r) is not None for r in range(2000))
    # then: at or under alpha (+ MC margin); measured 1.95% (80/20) and 2.45% (90/10)
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


def agrees(d: Decision, alpha: float = ALPHA) -> bool:
    """The decision and the interval in the same reason say the same: p <= alpha (a winner)
    exactly when the always-valid interval for leader − runner-up excludes 0."""
    assert d.interval is not None
    low, high = d.interval
    excludes = low > 0 or high < 0
    return (d.p_value <= alpha) == excludes == (d.winner is not None)


def test_unequal_arms_do_not_name_a_winner_whose_interval_contains_zero() -> None:
    # given: variant weights 80/20, a at 12% and b at 16% (the pooled test named b, p =
    # 0.028, beside an always-valid interval of [-0.05, +8.05] points)
    d = decide({"a": Arm(4000, 480), "b": Arm(1000, 160)})
    # then: one variance for both: undecided, and the interval contains 0
    assert d.winner is None and d.leader == "b" and d.p_value > ALPHA
    assert d.interval is not None and d.interval[0] <= 0 <= d.interval[1]
    assert agrees(d), d.reason


def test_unequal_arms_do_not_leave_undecided_a_test_whose_interval_excludes_zero() -> None:
    # given: 80/20, a at 26.5% and b at 21.5% (the pooled test was undecided, p = 0.060,
    # beside an always-valid interval of [+0.14, +9.86] points)
    d = decide({"a": Arm(4000, 1060), "b": Arm(1000, 215)})
    # then: a wins, and the interval excludes 0
    assert d.winner == "a" and d.p_value <= ALPHA
    assert d.interval is not None and d.interval[0] > 0
    assert agrees(d), d.reason
    assert f"p = {d.p_value:.4f} <= 0.05" in d.reason and "interval [+0.14, +9.86]" in d.reason


def test_more_arms_report_the_pair_the_decision_hinges_on() -> None:
    # given: a leads; b is second-best on 10,000 but c, on 300, is the arm a is least sure
    # to beat
    arms = {"a": Arm(10_000, 1400), "b": Arm(10_000, 1100), "c": Arm(300, 33)}
    d = decide(arms)
    # then: undecided because of c, and c is the pair reported (its interval contains 0)
    assert d.leader == "a" and d.runner_up == "c" and d.winner is None
    assert "a − c" in d.reason and agrees(d), d.reason
    assert d.p_value == pytest.approx(min(1.0, 3 / likelihood_ratio(arms["c"], arms["a"])))


def test_the_decision_and_the_interval_agree_on_random_counts() -> None:
    # given: 20,000 random looks: two to four arms, unequal sizes (weights from 1/99 to
    # 99/1), rates from 0 to 1, alpha from 0.01 to 0.2, with or without an earlier look's
    # p-value above alpha (a look at alpha or below ends the test)
    rng = np.random.default_rng(41)
    checked = decided = 0
    for _ in range(20_000):
        k = int(rng.choice([2, 2, 2, 3, 4]))
        total = int(rng.integers(200, 40_000))
        weights = rng.dirichlet(np.full(k, float(rng.choice([0.5, 1.0, 5.0]))))
        base = float(rng.uniform(0.001, 0.6))
        arms = {}
        for i in range(k):
            n = max(1, int(total * weights[i]))
            rate = min(1.0, max(0.0, base + float(rng.normal(0, 0.03))))
            arms["abcd"[i]] = Arm(n, int(rng.binomial(n, rate)))
        alpha = float(rng.uniform(0.01, 0.2))
        previous = 1.0 if rng.random() < 0.5 else float(rng.uniform(alpha, 1.0))
        d = decide(arms, alpha=alpha, min_per_arm=1, previous_p=previous)
        # then: at every look p <= alpha exactly when the interval excludes 0
        assert agrees(d, alpha), d.reason
        checked += 1
        decided += d.winner is not None
    # and the sample exercises both outcomes
    assert checked == 20_000 and 1_000 < decided < 19_000
