"""EventBridge's own pattern rules: what moto (and Kizuna's matcher) would accept but AWS
refuses is refused here, with its JSON path; every shipped condition passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kizuna.programs.loader import ProgramError, load_program, load_programs
from kizuna.programs.pattern_rules import (
    condition_problems,
    evaluator_gaps,
    validate_condition,
    validate_pattern,
)
from kizuna.segments import SegmentError, load_segments

ROOT = Path(__file__).resolve().parents[2]

# Patterns EventBridge documents as valid (comparison operators, content filtering).
VALID = [
    {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    {"detail": {"state": ["terminated", "stopped"], "code": [0, 1.5, True, None, ""]}},
    {"time": [{"prefix": "2017-10-02"}]},
    {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
    {"FileName": [{"suffix": ".png"}, {"suffix": {"equals-ignore-case": ".png"}}]},
    {"detail": {"state": [{"anything-but": "initializing"}]}},
    {"detail": {"x-limit": [{"anything-but": 123}]}},
    {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
    {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
    {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}},
    {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}},
    {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["a", "b"]}}]}},
    {"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}},
    {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}},
    {"detail": {"d-count": [{"numeric": ["<", 10]}], "x": [{"numeric": ["=", 3.018e2]}]}},
    {"detail": {"n": [{"numeric": [">=", -5e9, "<", 5e9]}, {"numeric": ["=", 0.000001]}]}},
    {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}, {"cidr": "2001:db8::/64"}]}},
    {"detail": {"c-count": [{"exists": False}], "d": [{"exists": True}]}},
    {"detail": {"Name": [{"equals-ignore-case": "alice"}]}},
    {"detail": {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}},
    {"detail": {"path": [{"wildcard": "a\\*b\\\\c*"}]}},
    {
        "source": ["aws.cloudwatch"],
        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}],
    },
    {"detail": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"d": [{"exists": True}]}]}},
]

# What AWS refuses (moto's matcher takes most of it), with the path the message names.
INVALID = [
    ({"detail": {"items": [{"sku": "A1"}]}}, "$.detail.items[0]: unknown operator 'sku'"),
    ({"detail": {"items": [{"a": ["x"], "b": ["y"]}]}}, "$.detail.items[0]: one operator"),
    ({"rank": "Gold"}, "$.rank: must be an object or an array"),
    ({"rank": 3}, "$.rank: must be an object or an array"),
    ({"rank": []}, "$.rank: empty arrays are not allowed"),
    ({"detail": {}}, "$.detail: empty objects are not allowed"),
    ({}, "$: empty objects are not allowed"),
    (["rank"], "$: an event pattern is a JSON object"),
    ({"n": [{"near": 3}]}, "$.n[0]: unknown operator 'near'"),
    ({"n": [{"exactly": "x"}]}, "'exactly' is not a documented"),
    ({"n": [[1, 2]]}, "$.n[0]: arrays cannot be nested"),
    ({"n": [{"numeric": ["<", 10, ">=", 2]}]}, 'lower bound first: [">=", 2, "<", 10]'),
    ({"n": [{"numeric": [">", 10, "<", 2]}]}, "lower bound 10 must be below the upper 2"),
    ({"n": [{"numeric": ["=", 1, "<", 3]}]}, "numeric takes"),
    ({"n": [{"numeric": ["~", 3]}]}, "numeric takes"),
    ({"n": [{"numeric": [">", "3"]}]}, "'3' is not a number"),
    ({"n": [{"numeric": [">", True]}]}, "True is not a number"),
    ({"n": [{"numeric": ["<", 6e9]}]}, "outside -5.0e9..5.0e9"),
    ({"n": [{"numeric": ["=", 0.1234567]}]}, "more than 6 decimals"),
    ({"n": [{"numeric": [">", 1, "<"]}]}, "numeric takes"),
    ({"n": [{"numeric": 3}]}, "numeric takes"),
    ({"n": [{"exists": "yes"}]}, "exists takes true or false"),
    ({"n": [{"prefix": 3}]}, "prefix takes a string"),
    ({"n": [{"prefix": {"wildcard": "a*"}}]}, "prefix takes a string or"),
    ({"n": [{"suffix": ["a"]}]}, "suffix takes a string"),
    ({"n": [{"equals-ignore-case": ["a"]}]}, "equals-ignore-case takes a string"),
    ({"n": [{"wildcard": "a**b"}]}, "consecutive '*'"),
    ({"n": [{"wildcard": "a\\b"}]}, "escapes only"),
    ({"n": [{"cidr": "10.0.0.0"}]}, "cidr takes 'address/bits'"),
    ({"n": [{"cidr": "10.0.0.0/32"}]}, "mask bits must be 0 to 31"),
    ({"n": [{"cidr": "example.com/8"}]}, "not an IP address"),
    ({"n": [{"anything-but": []}]}, "non-empty list"),
    ({"n": [{"anything-but": ["a", 1]}]}, "only strings or only numbers"),
    ({"n": [{"anything-but": [None]}]}, "None is not a number"),
    ({"n": [{"anything-but": True}]}, "anything-but takes a string, a number or a list"),
    ({"n": [{"anything-but": {"numeric": [">", 1]}}]}, "anything-but takes a value"),
    ({"n": [{"anything-but": {"prefix": ""}}]}, "anything-but prefix cannot be empty"),
    ({"n": [{"anything-but": {"suffix": 3}}]}, "takes a string or a non-empty list"),
    ({"$or": [{"a": [1]}]}, "$.$or: needs at least two objects"),
    ({"$or": {"a": [1]}}, "$.$or: must be an array of objects"),
    ({"$or": [{"a": [1]}, "b"]}, "$.$or[1]: only objects are allowed"),
    ({"$or": [{"a": [1]}, {}]}, "$.$or[1]: empty objects are not allowed"),
    ({"$or": [{"a": [1]}, {"prefix": ["x"]}]}, "'prefix' is reserved"),
    ({True: ["x"]}, "field names are strings"),  # YAML's `on:` or `yes:` as a key
    ({"n": [float("nan")]}, "not a JSON number"),
    ({"n": [{"a": 1, "b": 2}]}, "one operator per object (a, b)"),
]


@pytest.mark.parametrize("pattern", VALID)
def test_documented_patterns_are_accepted(pattern: dict[str, Any]) -> None:
    assert validate_pattern(pattern) == []


@pytest.mark.parametrize(("pattern", "message"), INVALID)
def test_what_aws_refuses_is_refused_with_its_path(pattern: Any, message: str) -> None:
    # When the pattern is validated
    problems = validate_pattern(pattern)

    # Then the problem names where it is
    assert any(message in p for p in problems), problems


def test_every_problem_is_reported_not_just_the_first() -> None:
    problems = validate_pattern({"a": "x", "b": [], "c": {"d": [{"near": 1}]}})
    assert [p.split(":")[0] for p in problems] == ["$.a", "$.b", "$.c.d[0]"]


def test_a_pattern_over_the_size_quota_is_refused() -> None:
    pattern = {"detail-type": [f"event.{i:04d}" for i in range(200)]}
    assert any("over EventBridge's 2048-character limit" in p for p in validate_pattern(pattern))
    assert validate_pattern(pattern, max_chars=None) == []


def test_an_empty_condition_means_no_filter_but_an_empty_pattern_is_refused() -> None:
    assert validate_condition({}) == []
    assert validate_condition({"rank": ["Gold"]}, path="audience") == []
    assert validate_condition({"rank": "Gold"}, path="audience") == [
        "audience.rank: must be an object or an array, e.g. ['Gold']"
    ]
    assert validate_pattern({}) != []


@pytest.mark.parametrize(
    "item",
    [
        {"cidr": "10.0.0.0/8"},
        {"suffix": {"equals-ignore-case": ".png"}},
        {"anything-but": {"equals-ignore-case": "x"}},
        {"anything-but": {"wildcard": "*x"}},
        {"anything-but": {"prefix": ["a", "b"]}},
        {"wildcard": "a?b"},
    ],
)
def test_valid_syntax_kizunas_evaluator_cannot_evaluate_is_a_gap(item: dict[str, Any]) -> None:
    condition = {"detail_field": [item]}
    assert validate_condition(condition) == []
    assert evaluator_gaps(condition) != []
    assert condition_problems(condition, "audience", to_eventbridge=False) != []


# --- The shipped conditions ------------------------------------------------------------------


def _program_conditions(raw: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    found = [(raw["trigger"].get("conditions", {}), True), (raw.get("audience", {}), False)]
    if raw.get("goal"):
        found.append((raw["goal"].get("conditions", {}), True))
    found += [(s["condition"], False) for s in raw["steps"] if s["type"] == "branch"]
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "programs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_program_condition_is_accepted(path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for condition, to_eventbridge in _program_conditions(raw):
        assert condition_problems(condition, "$", to_eventbridge=to_eventbridge) == []
        if condition:
            assert validate_pattern({"detail": condition}) == []


@pytest.mark.parametrize("path", sorted((ROOT / "segments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_segment_condition_is_accepted(path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert validate_pattern(raw["conditions"]) == []
    assert evaluator_gaps(raw["conditions"]) == []


def test_the_shipped_programs_and_segments_still_load() -> None:
    segments = load_segments(ROOT / "segments")
    _, issues = load_programs(ROOT / "programs", segment_names=list(segments))
    assert issues == []


# --- Refused at load -------------------------------------------------------------------------

PROGRAM = """
id: sample
name: Sample
trigger: {event: order.placed, conditions: TRIGGER}
audience: AUDIENCE
steps:
  - {id: hello, type: send, channels: [email], template: hello}
  - {id: check, type: branch, condition: BRANCH, then: done, else: done}
  - {id: done, type: exit}
"""


def _load(tmp_path: Path, trigger: str = "{}", audience: str = "{}", branch: str = "") -> None:
    text = PROGRAM.replace("TRIGGER", trigger).replace("AUDIENCE", audience)
    path = tmp_path / "sample.yaml"
    path.write_text(text.replace("BRANCH", branch or "{rank: [Gold]}"))
    load_program(path)


def test_a_program_whose_conditions_aws_would_refuse_does_not_load(tmp_path: Path) -> None:
    # Given conditions the Python matcher takes but EventBridge refuses
    with pytest.raises(ProgramError) as caught:
        _load(
            tmp_path,
            trigger='{total: [{numeric: ["<", 10000, ">=", 100]}]}',
            audience="{region: [{anything-but: [Kanto, 3]}]}",
            branch='{order_count: [{numeric: [">", 5, "<", 2]}]}',
        )

    # Then each is an issue with file, step and message
    lines = [str(i) for i in caught.value.issues]
    assert len(lines) == 3, lines
    file = str(tmp_path / "sample.yaml")
    assert lines[0].startswith(f"{file}: trigger.conditions.total[0]: numeric takes")
    assert lines[1].startswith(f"{file}: audience.region[0]: anything-but takes a list of only")
    assert lines[2].startswith(f"{file} [step check]: condition.order_count[0]: numeric: the lower")


def test_a_trigger_using_what_the_evaluator_lacks_does_not_load(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match=r"trigger\.conditions\.ip\[0\]: cidr"):
        _load(tmp_path, trigger='{ip: [{cidr: "10.0.0.0/8"}]}')


def test_a_segment_whose_conditions_aws_would_refuse_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        'name: bad\nconditions: {age: [{numeric: ["<", 40, ">=", 30]}]}\n'
    )
    with pytest.raises(SegmentError) as caught:
        load_segments(tmp_path)
    assert caught.value.problems[0].startswith("bad.yaml:")
    assert "conditions.age[0]: numeric takes" in caught.value.problems[0]


def test_a_condition_nested_too_deep_is_refused_without_recursing() -> None:
    """~100 $or levels were taken (and the stored campaign could not be read back); a
    thousand levels must be refused, not overflow the checker's own stack."""
    from kizuna.programs.pattern_rules import MAX_CONDITION_DEPTH, validate_condition

    def nested(depth: int) -> dict[str, Any]:
        condition: dict[str, Any] = {"prefecture": ["x"]}
        for n in range(depth):
            condition = {"$or": [condition, {"prefecture": [f"y{n}"]}]}
        return condition

    assert validate_condition(nested(7)) == []  # 1 + 2 x 7 + 1 = 16 objects and arrays
    (problem,) = validate_condition(nested(8))
    assert problem == f"$: nested deeper than {MAX_CONDITION_DEPTH} objects and arrays"
    deep: dict[str, Any] = {"a": ["x"]}
    for _ in range(1000):
        deep = {"a": deep}
    assert validate_condition(deep) == [problem]
    assert validate_pattern({"detail": deep}) == [problem]


def test_a_condition_kizuna_evaluates_has_a_size_limit_too() -> None:
    from kizuna.programs.pattern_rules import MAX_CONDITION_CHARS, condition_problems

    wide = {"prefecture": [{"wildcard": f"*a*a*a*{n}"} for n in range(3000)]}
    (problem,) = condition_problems(wide, "$", to_eventbridge=False)
    assert problem.endswith(f"over the {MAX_CONDITION_CHARS}-character limit")
    assert condition_problems({"prefecture": ["東京都"]}, "$", to_eventbridge=False) == []
