"""The condition language (EventBridge content filters) against hand-written cases, and
against moto's own EventBridge matcher for the same cases."""

import json

import pytest
from moto.events.models import EventPattern

from kizuna.programs.patterns import PatternError, matches, validate_pattern

DATA = {
    "rank": "Gold",
    "points_to_next_rank": 80,
    "order_count": 1,
    "prefecture": "Tokyo",
    "locale": "ja",
    "tags": ["vip", "tea"],
    "consent": {"email": "opted_in"},
    "last_order_at": "2026-01-05T10:00:00.000000Z",
    "coupon": None,
}

CASES = [
    ({"rank": ["Gold"]}, True),
    ({"rank": ["Silver", "Gold"]}, True),
    ({"rank": ["Silver"]}, False),
    ({"points_to_next_rank": [{"numeric": ["<=", 100]}]}, True),
    ({"points_to_next_rank": [{"numeric": [">", 0, "<=", 50]}]}, False),
    ({"order_count": [1]}, True),
    ({"prefecture": [{"prefix": "To"}]}, True),
    ({"prefecture": [{"suffix": "yo"}]}, True),
    ({"prefecture": [{"anything-but": ["Osaka", "Kyoto"]}]}, True),
    ({"prefecture": [{"anything-but": "Tokyo"}]}, False),
    ({"prefecture": [{"equals-ignore-case": "tokyo"}]}, True),
    ({"region": [{"exists": False}]}, True),
    ({"rank": [{"exists": True}]}, True),
    ({"tags": ["vip"]}, True),
    ({"tags": ["gold"]}, False),
    ({"consent": {"email": ["opted_in"]}}, True),
    ({"consent": {"sms": ["opted_in"]}}, False),
    ({"$or": [{"rank": ["Silver"]}, {"locale": ["ja"]}]}, True),
    ({"$or": [{"rank": ["Silver"]}, {"locale": ["en"]}]}, False),
    ({"rank": ["Gold"], "locale": ["en"]}, False),
    ({"missing": ["x"]}, False),
]


@pytest.mark.parametrize(("pattern", "expected"), CASES)
def test_matches_like_eventbridge(pattern: dict, expected: bool) -> None:  # type: ignore[type-arg]
    validate_pattern(pattern)
    assert matches(pattern, DATA) is expected
    assert EventPattern.load(json.dumps(pattern)).matches_event(DATA) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"rank": "Gold"}, "rank: values must be lists"),
        ({"rank": []}, "empty list"),
        ({"n": [{"numeric": ["~", 3]}]}, "bad numeric"),
        ({"n": [{"near": 3}]}, "unknown operator"),
        ({"$or": [{"a": [1]}]}, "at least two"),
        ({"a": {"b": "c"}}, "a.b: values must be lists"),
    ],
)
def test_invalid_patterns_say_where(pattern: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PatternError, match=message):
        validate_pattern(pattern)
