"""Report statistics against published, hand-checkable figures."""

import math

import pytest
from pydantic import ValidationError

from kizuna.analytics.stats import (
    NONE_STATE,
    Interval,
    Lift,
    lift,
    migration,
    newcombe,
    rate,
    second_purchase_rate,
    wilson,
    z_value,
)

# --- Wilson ---------------------------------------------------------------------------------

# Newcombe (1998a), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Stat Med 17:857-872, Table I, method 3 (score interval, no correction).
WILSON_PUBLISHED = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), WILSON_PUBLISHED)
def test_wilson_matches_published_examples(k: int, n: int, low: float, high: float) -> None:
    ci = wilson(k, n)
    assert ci.low == pytest.approx(low, abs=5e-5)
    assert ci.high == pytest.approx(high, abs=5e-5)


def _score_bound(k: int, n: int, z: float, upper: bool) -> float:
    """The Wilson limit solved numerically from its definition, |p - π| = z·sqrt(π(1-π)/n),
    by bisection: an independent check of the closed form."""
    p = k / n
    lo, hi = (p, 1.0) if upper else (0.0, p)
    for _ in range(200):
        mid = (lo + hi) / 2
        outside = abs(p - mid) > z * math.sqrt(mid * (1 - mid) / n)
        if outside == upper:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("n", [1, 2, 7, 30, 263])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_closed_form_solves_the_score_equation(n: int, confidence: float) -> None:
    z = z_value(confidence)
    for k in range(n + 1):
        ci = wilson(k, n, confidence)
        assert ci.low == pytest.approx(_score_bound(k, n, z, upper=False), abs=1e-9)
        assert ci.high == pytest.approx(_score_bound(k, n, z, upper=True), abs=1e-9)


def test_wilson_edges_are_exact() -> None:
    assert wilson(0, 10).low == 0.0
    assert wilson(10, 10).high == 1.0
    assert wilson(0, 0) == Interval(low=0.0, high=1.0)  # no observation: anything goes
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(
    ("k", "n", "error"),
    [(3, 2, ValueError), (-1, 2, ValueError), (1, -2, ValueError), (True, 2, TypeError),
     (1.0, 2, TypeError)],
)  # fmt: skip
def test_wilson_rejects_bad_counts(k: int, n: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        wilson(k, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 95.0])
def test_confidence_must_be_a_probability(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence)
    with pytest.raises(ValueError, match="confidence"):
        lift(1, 2, 1, 2, confidence)


def test_rate_and_second_purchase_rate() -> None:
    r = rate(81, 263)
    assert r.value == pytest.approx(81 / 263)
    assert (round(r.ci.low, 4), round(r.ci.high, 4)) == (0.2553, 0.3662)
    # 0-order customers are not at risk; 5 buyers of whom 3 bought again.
    spr = second_purchase_rate([0, 1, 2, 3, 1, 0, 5])
    assert (spr.numerator, spr.denominator, spr.value) == (3, 5, 0.6)
    empty = second_purchase_rate([0, 0])
    assert empty.value is None
    assert empty.ci == Interval(low=0.0, high=1.0)
    with pytest.raises(ValueError):
        second_purchase_rate([1, -1])


# --- Newcombe hybrid score interval ------------------------------------------------------------

# Newcombe (1998b), "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Stat Med 17:873-890, Table II, method 10, examples (a)-(h).
NEWCOMBE_PUBLISHED = [
    # (x1, n1, x2, n2, difference, low, high)
    (56, 70, 48, 80, 0.2000, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.6000, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.5714, 0.0582, 0.8062),
    (5, 56, 0, 29, 0.0893, -0.0381, 0.1926),
    (0, 10, 0, 20, 0.0, -0.1611, 0.2775),
    (0, 10, 0, 10, 0.0, -0.2775, 0.2775),
    (10, 10, 0, 20, 1.0, 0.6791, 1.0),
    (10, 10, 0, 10, 1.0, 0.6075, 1.0),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "diff", "low", "high"), NEWCOMBE_PUBLISHED)
def test_lift_interval_matches_newcombe_table_ii(
    x1: int, n1: int, x2: int, n2: int, diff: float, low: float, high: float
) -> None:
    result = lift(x1, n1, x2, n2)
    assert result.absolute_lift == pytest.approx(diff, abs=5e-5)
    assert result.ci is not None
    assert result.ci.low == pytest.approx(low, abs=5e-5)
    assert result.ci.high == pytest.approx(high, abs=5e-5)
    assert result.ci == newcombe(x1, n1, x2, n2)
    assert result.significant == (low > 0 or high < 0)


def test_newcombe_is_wilson_square_and_add() -> None:
    # Example (a) by hand. z² = 3.8415; 56/70: centre (56 + 1.9207) / 73.8415 = 0.78440,
    # half-width 1.96 / 73.8415 · sqrt(56·14/70 + 0.9604) = 0.09256; 48/80: centre
    # (48 + 1.9207) / 83.8415 = 0.59542, half-width 1.96 / 83.8415 · sqrt(19.2 + 0.9604) = 0.10497.
    w1, w2 = wilson(56, 70), wilson(48, 80)
    assert (w1.low, w1.high) == pytest.approx((0.6918, 0.8770), abs=1e-4)
    assert (w2.low, w2.high) == pytest.approx((0.4905, 0.7004), abs=1e-4)
    d = 0.8 - 0.6
    assert lift(56, 70, 48, 80).ci == Interval(
        low=d - math.sqrt((0.8 - w1.low) ** 2 + (w2.high - 0.6) ** 2),
        high=d + math.sqrt((w1.high - 0.8) ** 2 + (0.6 - w2.low) ** 2),
    )


def test_swapping_groups_mirrors_the_interval() -> None:
    a, b = lift(5, 56, 0, 29), lift(0, 29, 5, 56)
    assert a.ci is not None and b.ci is not None
    assert (b.ci.low, b.ci.high) == pytest.approx((-a.ci.high, -a.ci.low))


def test_lift_fields() -> None:
    result = lift(56, 70, 48, 80)
    assert result.treated_rate == 0.8
    assert result.holdout_rate == 0.6
    assert result.relative_lift == pytest.approx(0.8 / 0.6 - 1)
    # Pooled z test by hand: p = 104/150, se = sqrt(p(1-p)(1/70 + 1/80)) = 0.075467,
    # z = 0.2 / se = 2.6502, two-sided p = 0.0080.
    assert result.p_value == pytest.approx(0.008045, abs=1e-6)
    assert result.significant
    assert result.confidence == 0.95


def test_lift_with_other_confidence_is_wider_or_narrower() -> None:
    ci90, ci99 = lift(56, 70, 48, 80, 0.90).ci, lift(56, 70, 48, 80, 0.99).ci
    assert ci90 is not None and ci99 is not None
    assert ci99.low < 0.0524 < ci90.low and ci90.high < 0.3339 < ci99.high


def test_lift_undefined_parts_are_none_not_nan() -> None:
    no_conversions = lift(0, 10, 0, 20)
    assert no_conversions.relative_lift is None  # holdout rate 0
    assert no_conversions.p_value is None  # pooled rate 0: z is 0/0
    assert not no_conversions.significant
    everybody = lift(10, 10, 20, 20)
    assert everybody.p_value is None
    assert everybody.relative_lift == 0.0

    empty_holdout = lift(3, 10, 0, 0)
    assert empty_holdout.treated_rate == 0.3
    assert empty_holdout.holdout_rate is None
    assert empty_holdout.absolute_lift is None
    assert empty_holdout.ci is None
    assert empty_holdout.relative_lift is None
    assert empty_holdout.p_value is None
    assert not empty_holdout.significant
    both_empty = lift(0, 0, 0, 0)
    assert both_empty.treated_rate is None and both_empty.ci is None
    for value in (*no_conversions.model_dump().values(), *empty_holdout.model_dump().values()):
        assert not (isinstance(value, float) and math.isnan(value))
    with pytest.raises(ValueError, match="non-empty"):
        newcombe(1, 2, 0, 0)


def test_lift_p_value_keeps_precision_when_tiny() -> None:
    result = lift(5000, 10000, 3000, 10000)
    assert result.p_value is not None
    assert 0 < result.p_value < 1e-100


def test_lift_round_trips_as_json() -> None:
    result = lift(9, 10, 3, 10)
    assert Lift.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError):
        Interval(low=1.0, high=0.0)


# --- migration ------------------------------------------------------------------------------------

BEFORE = {"c1": "A", "c2": "A", "c3": "B", "c4": "B", "c5": "C", "c6": "C", "c7": "A"}
AFTER = {"c1": "A", "c2": "B", "c3": "A", "c4": "B", "c5": "C", "c6": "B", "c8": "C", "c9": "A"}
# c1 A→A stayed, c2 A→B down, c3 B→A up, c4 B→B stayed, c5 C→C stayed, c6 C→B up,
# c7 A→(none) left, c8 (none)→C entered, c9 (none)→A entered.


def test_migration_by_hand() -> None:
    m = migration(BEFORE, AFTER, order=["A", "B", "C"])
    assert m.states == ("A", "B", "C", NONE_STATE)
    assert m.counts == (
        (1, 1, 0, 1),
        (1, 1, 0, 0),
        (0, 1, 1, 0),
        (1, 0, 1, 0),
    )
    assert m.row_totals == (3, 2, 2, 2)
    assert m.column_totals == (3, 3, 2, 1)
    assert m.row_shares[0] == pytest.approx((1 / 3, 1 / 3, 0, 1 / 3))
    assert m.row_shares[1] == (0.5, 0.5, 0.0, 0.0)
    assert (m.total, m.retained, m.entered, m.left) == (9, 6, 2, 1)
    assert (m.up, m.stayed, m.down) == (2, 3, 1)
    assert (m.up_share, m.stayed_share, m.down_share) == pytest.approx((1 / 3, 1 / 2, 1 / 6))
    assert m.count("C", "B") == 1
    assert m.count(NONE_STATE, "A") == 1


def test_migration_order_decides_up_and_down() -> None:
    # Same data, worst first: every move changes direction, nothing else does.
    m = migration(BEFORE, AFTER, order=["C", "B", "A"])
    assert (m.up, m.stayed, m.down) == (1, 3, 2)
    assert m.count("A", "B") == 1


def test_migration_of_nobody() -> None:
    m = migration({}, {}, order=["A", "B"])
    assert m.total == 0
    assert m.up_share is None and m.stayed_share is None and m.down_share is None
    assert m.row_shares == ((0.0, 0.0, 0.0),) * 3
    only_new = migration({}, {"x": "A"}, order=["A", "B"])
    assert (only_new.total, only_new.retained, only_new.entered) == (1, 0, 1)
    assert only_new.up_share is None


@pytest.mark.parametrize(
    ("order", "message"),
    [(["A", "B"], "missing from order"), (["A", "B", "C", "A"], "duplicates"),
     (["A", "B", "C", NONE_STATE], "reserved")],
)  # fmt: skip
def test_migration_rejects_bad_orders(order: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        migration(BEFORE, AFTER, order=order)
