"""The fixture Pinpoint project follows Pinpoint's real shapes (botocore's service model), and
the checker refuses what Pinpoint never had."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kizuna_tools.migrate import inputs, shapes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pinpoint_{name}", FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CHECK = _module("check")


def _segments() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "segments.json").read_text())
    return loaded


def _first_endpoint() -> dict[str, Any]:
    line = (FIXTURES / "endpoints" / "part-00000.json").read_text().splitlines()[0]
    loaded: dict[str, Any] = json.loads(line)
    return loaded


def test_every_fixture_file_fits_pinpoints_model() -> None:
    # Given the fixture folder (endpoints, segments, campaigns, journeys, templates, examples)
    # When every file is checked against botocore's Pinpoint service model
    checked, problems = CHECK.check_dir(FIXTURES)
    # Then none differs from Pinpoint's shapes
    assert problems == []
    assert checked >= 7  # 2 endpoint parts, segments, campaigns, 3 documented examples


def test_each_endpoint_line_is_an_endpoint_response() -> None:
    lines = (FIXTURES / "endpoints" / "part-00000.json").read_text().splitlines()
    for line in lines[:50]:
        assert shapes.check(json.loads(line), "EndpointResponse") == []


def test_a_made_up_member_name_is_refused_with_its_path() -> None:
    # Given GetSegments with a misspelled dimension ("Atributes" for "Attributes")
    doc = _segments()
    segment = doc["SegmentsResponse"]["Item"][0]
    segment["Dimensions"]["Atributes"] = segment["Dimensions"].pop("UserAttributes")
    # When it is checked
    problems = inputs.check_document("segments.json", doc)
    # Then the problem names the member and where it is
    assert len(problems) == 1
    assert problems[0].startswith(
        "segments.json: $.Item[0].Dimensions: SegmentDimensions has no member 'Atributes'"
    )


def test_an_endpoint_with_user_attributes_at_the_top_is_refused() -> None:
    # UserAttributes belong under User: Pinpoint's EndpointResponse has no such member
    endpoint = _first_endpoint()
    endpoint["UserAttributes"] = endpoint["User"].pop("UserAttributes")
    problems = shapes.check(endpoint, "EndpointResponse")
    assert problems == [
        "$: EndpointResponse has no member 'UserAttributes' (it has: Address, ApplicationId, "
        "Attributes, ChannelType, CohortId, CreationDate, Demographic, EffectiveDate, "
        "EndpointStatus, Id, Location, Metrics, OptOut, RequestId, User)"
    ]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("ChannelType",), "WHATSAPP", "$.ChannelType: 'WHATSAPP' is not one of"),
        (("Metrics", "LifetimeSpend"), "12.5", "$.Metrics.LifetimeSpend: a number, got a string"),
        (
            ("User", "UserAttributes", "FirstName"),
            "Hanako",
            "a list (ListOf__string), got a string",
        ),
        (("Demographic",), None, "$.Demographic: null where Pinpoint has a EndpointDemographic"),
    ],
)
def test_wrong_types_and_enum_values_are_refused(
    path: tuple[str, ...], value: Any, expected: str
) -> None:
    endpoint = _first_endpoint()
    holder = endpoint
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    problems = shapes.check(endpoint, "EndpointResponse")
    assert len(problems) == 1 and expected in problems[0]


def test_required_members_are_checked() -> None:
    doc = _segments()
    del doc["SegmentsResponse"]["Item"][1]["SegmentType"]
    assert inputs.check_document("segments.json", doc) == [
        "segments.json: $.Item[1]: SegmentResponse requires 'SegmentType'"
    ]


def test_wire_names_follow_the_models_location_name() -> None:
    # SimpleCondition carries its dimensions as "segmentDimensions" on the wire
    dims = {"Attributes": {"Tier": {"Values": ["Gold"]}}}
    assert shapes.check({"segmentDimensions": dims}, "SimpleCondition") == []
    problems = shapes.check({"SegmentDimensions": dims}, "SimpleCondition")
    assert problems and "has no member 'SegmentDimensions'" in problems[0]


def test_a_response_is_read_as_the_cli_prints_it_or_as_the_rest_body() -> None:
    doc = _segments()
    wrapped, shape = shapes.unwrap(doc, "GetSegmentsResponse")
    bare, same = shapes.unwrap(doc["SegmentsResponse"], "GetSegmentsResponse")
    assert shape == same == "SegmentsResponse"
    assert wrapped == bare
    assert shapes.check(bare, shape) == []


def test_the_generator_reproduces_the_committed_files() -> None:
    # The fixture is deterministic: the script writes exactly what is committed
    generate = _module("generate")
    for rel, data in generate.documents().items():
        assert (FIXTURES / rel).read_bytes() == data, rel


def test_the_generated_project_has_the_sizes_the_issue_asks_for() -> None:
    generate = _module("generate")
    endpoints = generate.Shop().endpoints()
    users = {e["User"]["UserId"] for e in endpoints if "User" in e}
    assert len(endpoints) == 1000
    assert len(users) == 600
    channels = {e["ChannelType"] for e in endpoints}
    assert {"EMAIL", "SMS", "APNS", "GCM"} <= channels
    assert {e["OptOut"] for e in endpoints} == {"ALL", "NONE"}
    assert {e["EndpointStatus"] for e in endpoints} == {"ACTIVE", "INACTIVE"}
    segments = generate.segments()["SegmentsResponse"]["Item"]
    assert len(segments) == 5 and any(s["SegmentType"] == "IMPORT" for s in segments)
    frequencies = [
        c["Schedule"]["Frequency"] for c in generate.campaigns()["CampaignsResponse"]["Item"]
    ]
    assert frequencies == ["ONCE", "WEEKLY", "EVENT"]


def test_a_broken_copy_fails_the_checker(tmp_path: Path) -> None:
    # Given a copy of the project with a misspelled campaign member
    doc = json.loads((FIXTURES / "campaigns.json").read_text())
    bad = copy.deepcopy(doc)
    bad["CampaignsResponse"]["Item"][0]["Schedule"]["QuietTimes"] = {}
    (tmp_path / "campaigns.json").write_text(json.dumps(bad))
    # When the folder is checked / Then it fails, naming the member
    checked, problems = CHECK.check_dir(tmp_path)
    assert checked == 1
    assert problems == [
        "campaigns.json: $.Item[0].Schedule: Schedule has no member 'QuietTimes' (it has: "
        "EndTime, EventFilter, Frequency, IsLocalTime, QuietTime, StartTime, Timezone)"
    ]
    assert CHECK.main([str(tmp_path)]) == 1


def test_a_response_file_giving_a_key_twice_or_nan_is_a_problem(tmp_path: Path) -> None:
    # json kept the last of a repeated key (the second "Item") and read NaN as a number
    twice = tmp_path / "segments.json"
    twice.write_text('{"SegmentsResponse": {"Item": [], "Item": []}}')
    nan = tmp_path / "campaigns.json"
    nan.write_text('{"CampaignsResponse": {"Item": [{"HoldoutPercent": NaN}]}}')
    assert inputs.load(twice, "segments.json") == (
        None,
        ["segments.json: not JSON the migration reads (key 'Item' given twice)"],
    )
    assert inputs.load(nan, "campaigns.json") == (
        None,
        ["campaigns.json: not JSON the migration reads (NaN is not a JSON number)"],
    )


def test_a_response_file_nested_too_deep_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # Given a response file of 100,000 nested arrays
    path = tmp_path / "segments.json"
    path.write_text("[" * 100_000 + "]" * 100_000)

    # When it is loaded, then it is refused with a reason
    assert inputs.load(path, "segments.json") == (
        None,
        ["segments.json: not JSON (nested too deep)"],
    )
