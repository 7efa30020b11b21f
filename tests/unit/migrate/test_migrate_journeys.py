"""Pinpoint journeys -> Kizuna programs: each activity type's mapping, and the fixture
journeys as programs that pass ``kizuna programs validate``'s checks (load_program, and the
template check every send step's template goes through)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from migrate_helpers import FIXTURES, NOW, with_attributes
from test_migrate_templates import ATTRIBUTES, declared, translated

from kizuna.delivery.samples import SAMPLE_UNSUBSCRIBE_URL, sample_recipient
from kizuna.delivery.templates import FilesRenderer, Renderer
from kizuna.programs.loader import load_program
from kizuna.programs.model import Program, SendStep
from kizuna.runtime.config import KizunaConfig, ValueType
from kizuna.services.send import message_context
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.journeys import (
    JourneyContext,
    JourneyResult,
    convert_journey,
    event_type,
    parse_duration,
    program_id,
    write_program,
)
from kizuna_tools.migrate.segments import Conditions
from kizuna_tools.migrate.shapes import check
from kizuna_tools.migrate.templates import template_files

SEG = "5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a0"
SEGMENTS = {
    SEG + "1": "gold-members",
    SEG + "2": "tea-lovers-on-the-app",
    SEG + "3": "high-spenders-or-newsletter-readers",
    SEG + "4": "recent-android-sign-ups",
}
JOURNEYS = sorted((FIXTURES / "journeys").glob("*.json"))
TEMPLATES = translated()
CTX = JourneyContext(templates=TEMPLATES, segments=SEGMENTS)


def journey(
    activities: dict[str, Any], start: str = "A", *, start_condition: Any = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "Activities": activities,
        "ApplicationId": "app",
        "Id": "j1",
        "Name": "Test journey",
        "StartActivity": start,
        "StartCondition": start_condition
        or {
            "EventStartCondition": {
                "EventFilter": {
                    "FilterType": "ENDPOINT",
                    "Dimensions": {
                        "EventType": {"DimensionType": "INCLUSIVE", "Values": ["_session.start"]}
                    },
                }
            }
        },
        "State": "ACTIVE",
        **extra,
    }
    return {"JourneyResponse": body}


def email(nxt: str | None = None, template: str = "Welcome_en") -> dict[str, Any]:
    body: dict[str, Any] = {"TemplateName": template}
    if nxt:
        body["NextActivity"] = nxt
    return {"EMAIL": body}


def convert(doc: dict[str, Any], ctx: JourneyContext = CTX) -> JourneyResult:
    return convert_journey(doc, ctx)


def steps(result: JourneyResult) -> dict[str, dict[str, Any]]:
    assert result.program is not None, [str(n) for n in result.notes]
    return {s["id"]: s for s in result.program["steps"]}


def messages(result: JourneyResult, level: str | None = None) -> str:
    return "\n".join(n.message for n in result.notes if level in (None, n.level))


def validate(result: JourneyResult, tmp_path: Path) -> Program:
    """What ``kizuna programs validate`` checks: the program file (graph, fields, segments,
    template parts) and every send step's template rendered per channel and locale with the
    context a send gives (plus the customer's custom attributes)."""
    assert result.program is not None, [str(n) for n in result.notes]
    path = write_program(tmp_path, result)
    assert path is not None
    renderer = Renderer(tmp_path / "templates")
    program = load_program(path, renderer, segment_names=set(SEGMENTS.values()))
    cfg = KizunaConfig()
    for step in program.steps:
        if not isinstance(step, SendStep):
            continue
        for channel in step.channels:
            for attrs in (ATTRIBUTES, {}):

                def context_for(
                    locale: str, s: SendStep = step, ch: str = channel, a: Any = attrs
                ) -> Mapping[str, Any]:
                    built = message_context(
                        program,
                        s,
                        sample_recipient(locale, NOW),
                        cfg,
                        coupon=None,
                        recommendations=[],
                        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if ch == "email" else None,
                    )
                    return with_attributes(built, a, declared())

                assert renderer.check(program.id, step.template, channel, context_for) == []
    return program


# --- the fixtures ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", JOURNEYS, ids=lambda p: p.stem)
def test_journey_fixture_is_pinpoints_shape(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert list(doc) == ["JourneyResponse"]
    assert check(doc["JourneyResponse"], "JourneyResponse") == []


def test_the_shape_check_refuses_a_journey_field_pinpoint_never_had() -> None:
    doc = json.loads((FIXTURES / "journeys/post-purchase-ab.json").read_text())["JourneyResponse"]
    bad = json.loads(json.dumps(doc))
    bad["Activities"]["SplitAB"]["RandomSplit"]["Branches"][0]["Percent"] = 50
    bad["Activities"]["FollowUp"]["MultiCondition"]["Branches"][1]["Condition"][
        "SegmentDimensions"
    ] = {}  # the wire name is segmentDimensions
    assert check(bad, "JourneyResponse") == [
        "$.Activities.SplitAB.RandomSplit.Branches[0]: RandomSplitEntry has no member 'Percent' "
        "(it has: NextActivity, Percentage)",
        "$.Activities.FollowUp.MultiCondition.Branches[1].Condition: SimpleCondition has no "
        "member 'SegmentDimensions' (it has: EventCondition, SegmentCondition, segmentDimensions)",
    ]


def test_fixtures_cover_every_activity_type() -> None:
    kinds = set()
    for path in JOURNEYS:
        for act in json.loads(path.read_text())["JourneyResponse"]["Activities"].values():
            kinds |= {k for k in act if k != "Description"}
    assert kinds >= {
        "EMAIL",
        "SMS",
        "PUSH",
        "Wait",
        "ConditionalSplit",
        "MultiCondition",
        "RandomSplit",
        "Holdout",
    }


@pytest.mark.parametrize("path", JOURNEYS, ids=lambda p: p.stem)
def test_fixture_journeys_become_valid_programs(path: Path, tmp_path: Path) -> None:
    result = convert(json.loads(path.read_text(encoding="utf-8")))
    program = validate(result, tmp_path)
    assert program.id == path.stem.replace("-ab", "-a-b")
    assert not [n for n in result.notes if n.level == "error"]
    # every template the program sends is written in both locales
    for step in program.steps:
        if isinstance(step, SendStep):
            assert Renderer(tmp_path / "templates").locales(program.id, step.template)


def test_welcome_series(tmp_path: Path) -> None:
    result = convert(json.loads((FIXTURES / "journeys/welcome-series.json").read_text()))
    program = validate(result, tmp_path)
    assert program.trigger.event == "app.opened"
    assert program.audience == {"segments": ["tea-lovers-on-the-app"]}
    assert program.holdout_percent == 10 and program.enabled
    assert program.reentry.mode == "once"
    assert [s.id for s in program.steps] == [
        "welcome_email",
        "wait2_days",
        "gold_check_wait",
        "gold_check",
        "gold_sms",
        "opened_check_wait",
        "opened_check",
        "thanks_push",
        "comeback_push",
        "end",
    ]
    # the engagement split ("opened WelcomeEmail"): an engagement branch after its evaluation
    # wait, its window the waits from the email to the evaluation (2 d + 1 h + 1 d)
    by_id = steps(result)
    assert by_id["gold_check"]["else"] == "opened_check_wait"
    assert by_id["opened_check_wait"] == {
        "id": "opened_check_wait",
        "type": "wait",
        "days": 1,
        "next": "opened_check",
    }
    assert by_id["opened_check"] == {
        "id": "opened_check",
        "type": "branch",
        "engagement": {"step": "welcome_email", "event": "opened", "within_hours": 73},
        "then": "thanks_push",
        "else": "comeback_push",
    }
    assert result.activities["OpenedCheck"] == "branch step 'opened_check' (engagement)"
    assert "opened within 73 h of the email" in messages(result, "info")
    assert "quiet time" in messages(result, "dropped")


def test_post_purchase_ab(tmp_path: Path) -> None:
    result = convert(json.loads((FIXTURES / "journeys/post-purchase-ab.json").read_text()))
    program = validate(result, tmp_path)
    by_id = steps(result)
    assert program.trigger.event == "order.placed"
    assert program.reentry.mode == "every" and program.reentry.days == 30
    assert by_id["split_ab"]["arms"] == [
        {"name": "arm_1", "weight": 50, "next": "email_a"},
        {"name": "arm_2", "weight": 50, "next": "wait_b"},
    ]
    assert by_id["wait_b"] == {
        "id": "wait_b",
        "type": "wait",
        "days": 1,
        "hours": 12,
        "next": "email_b",
    }
    # the multi-condition split: a wait, then its branches in order, then its default
    assert by_id["email_a"]["next"] == by_id["email_b"]["next"] == "follow_up_wait"
    assert by_id["follow_up"]["condition"] == {"segments": ["gold-members"]}
    assert by_id["follow_up"]["else"] == "follow_up_2"
    assert by_id["follow_up_2"]["condition"] == {"reachable": ["sms"]}
    assert by_id["follow_up_2"]["else"] == "holdout_late"
    # a holdout mid-journey: a split whose holdout arm exits
    assert by_id["holdout_late"]["arms"] == [
        {"name": "holdout", "weight": 20, "next": "end"},
        {"name": "continue", "weight": 80, "next": "last_email"},
    ]
    assert program.holdout_percent == 0


def test_monthly_cohorts_a_segment_journey(tmp_path: Path) -> None:
    result = convert(json.loads((FIXTURES / "journeys/monthly-cohorts.json").read_text()))
    program = validate(result, tmp_path)
    assert not program.enabled
    assert program.audience == {"segments": ["high-spenders-or-newsletter-readers"]}
    assert result.activities["Journey1"] == "dropped"  # CUSTOM
    assert result.activities["Cohort3Wait"] == "dropped"  # WaitUntil
    decisions = messages(result, "decision")
    assert "segment journey" in decisions and "absolute date" in decisions
    assert "'5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a05' was not migrated" in decisions
    assert "EndpointReentryCap 3" in messages(result, "dropped")
    ctx = JourneyContext(
        templates=TEMPLATES, segments=SEGMENTS, segment_start_event="customer.segment_changed"
    )
    enabled = convert(json.loads((FIXTURES / "journeys/monthly-cohorts.json").read_text()), ctx)
    assert enabled.program is not None and enabled.program["enabled"] is True
    assert enabled.program["trigger"] == {"event": "customer.segment_changed"}


# --- each activity -----------------------------------------------------------------------------
def test_sends_on_each_channel() -> None:
    doc = journey(
        {
            "A": email("B", "WinterSale"),
            "B": {
                "SMS": {
                    "NextActivity": "C",
                    "TemplateName": "PointsReminder_en",
                    "MessageConfig": {"MessageType": "TRANSACTIONAL", "SenderId": "TEA"},
                }
            },
            "C": {"PUSH": {"TemplateName": "WishlistReminder_en"}},
        }
    )
    result = convert(doc)
    assert steps(result) == {
        "a": {
            "id": "a",
            "type": "send",
            "channels": ["email"],
            "template": "winter_sale",
            "next": "b",
        },
        "b": {
            "id": "b",
            "type": "send",
            "channels": ["sms"],
            "template": "points_reminder",
            "sms_type": "transactional",
            "next": "c",
        },
        "c": {
            "id": "c",
            "type": "send",
            "channels": ["push"],
            "template": "wishlist_reminder",
            "next": "end",
        },
        "end": {"id": "end", "type": "exit"},
    }
    assert "SenderId" in messages(result, "dropped")
    assert {r.name for r in result.templates} == {
        "WinterSale",
        "WinterSale_en",
        "PointsReminder_ja",
        "PointsReminder_en",
        "WishlistReminder",
        "WishlistReminder_en",
    }


def test_a_send_whose_template_was_not_exported_is_dropped_with_an_error() -> None:
    result = convert(journey({"A": email("B", "Missing"), "B": email()}))
    assert list(steps(result)) == ["b", "end"]
    assert "email template 'Missing' is not exported" in messages(result, "error")


def test_a_journey_without_any_send_is_not_converted() -> None:
    result = convert(journey({"A": {"Wait": {"WaitTime": {"WaitFor": "P1D"}}}}))
    assert result.program is None and "no send step" in messages(result, "error")


@pytest.mark.parametrize(
    ("wait", "expected", "note"),
    [
        ("P2D", {"days": 2}, None),
        ("PT90M", {"hours": 1, "minutes": 30}, None),
        ("P1DT12H", {"days": 1, "hours": 12}, None),
        ("P1W", {"days": 7}, None),
        ("P1M", {"days": 30}, "months as 30"),
        ("PT30S", {"minutes": 1}, "rounded up"),
        ("P2Y", {"days": 365}, "cut to Kizuna's 365"),
    ],
)
def test_wait_durations(wait: str, expected: dict[str, int], note: str | None) -> None:
    result = convert(
        journey({"A": {"Wait": {"NextActivity": "B", "WaitTime": {"WaitFor": wait}}}, "B": email()})
    )
    assert steps(result)["a"] == {"id": "a", "type": "wait", **expected, "next": "b"}
    if note:
        assert note in messages(result)


def test_a_wait_until_a_date_is_dropped_as_a_decision() -> None:
    doc = journey(
        {
            "A": {"Wait": {"NextActivity": "B", "WaitTime": {"WaitUntil": "2026-03-01T00:00:00Z"}}},
            "B": email(),
        }
    )
    result = convert(doc)
    assert list(steps(result)) == ["b", "end"]
    assert "absolute date (2026-03-01T00:00:00Z)" in messages(result, "decision")


@pytest.mark.parametrize("text", ["1D", "P", "PT", "P1DT", "P-1D", "PT1.5H"])
def test_parse_duration_refuses_what_is_not_iso_8601(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


def split(
    conditions: list[dict[str, Any]], operator: str = "ALL", wait: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Condition": {"Conditions": conditions, "Operator": operator},
        "TrueActivity": "T",
        "FalseActivity": "F",
    }
    if wait:
        body["EvaluationWaitTime"] = {"WaitFor": wait}
    return {
        "A": {"ConditionalSplit": body},
        "T": email(template="Welcome_en"),
        "F": email(template="WinterSale"),
    }


GOLD = {"SegmentCondition": {"SegmentId": SEG + "1"}}
OPENED = {
    "EventCondition": {
        "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["_email.open"]}},
        "MessageActivity": "X",
    }
}


def test_a_yes_no_split_on_a_segment_waits_then_branches() -> None:
    by_id = steps(convert(journey(split([GOLD], wait="PT6H"))))
    assert by_id["a_wait"] == {"id": "a_wait", "type": "wait", "hours": 6, "next": "a"}
    assert by_id["a"] == {
        "id": "a",
        "type": "branch",
        "condition": {"segments": ["gold-members"]},
        "then": "t",
        "else": "f",
    }


def engaged(
    values: list[str], wait: str = "P1D", evaluation: str | None = "PT12H"
) -> dict[str, Any]:
    """An email X, a wait of ``wait``, then a yes/no split on engagement with X (evaluated
    after ``evaluation``)."""
    condition = {
        "EventCondition": {
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": values}},
            "MessageActivity": "X",
        }
    }
    acts = {
        "X": email("W", template="Welcome_en"),
        "W": {"Wait": {"NextActivity": "A", "WaitTime": {"WaitFor": wait}}},
        **split([condition], wait=evaluation),
    }
    return journey(acts, start="X")


def test_an_email_open_split_is_an_engagement_branch(tmp_path: Path) -> None:
    result = convert(engaged(["_email.open"]))
    by_id = steps(result)
    assert by_id["a"]["engagement"] == {"step": "x", "event": "opened", "within_hours": 36}
    assert (by_id["a"]["then"], by_id["a"]["else"]) == ("t", "f")
    assert by_id["a_wait"]["next"] == "a"
    assert validate(result, tmp_path).step("a")  # Kizuna's loader accepts it
    # open or click is Kizuna's "opened" (a click counts as an open); a click alone: clicked
    assert (
        steps(convert(engaged(["_email.click", "_email.open"])))["a"]["engagement"]["event"]
        == "opened"
    )
    assert steps(convert(engaged(["_email.click"])))["a"]["engagement"]["event"] == "clicked"


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        (journey(split([OPENED])), "not an email activity"),
        (engaged(["_email.delivered"]), "Kizuna branches on an email's opens and clicks"),
        (engaged(["_email.open"], wait="PT30M", evaluation=None), "less than an hour"),
    ],
    ids=["no-email", "delivered", "too-soon"],
)
def test_an_engagement_split_that_does_not_map_takes_the_no_path(
    doc: dict[str, Any], why: str
) -> None:
    result = convert(doc)
    assert "a" not in steps(result) and result.activities["T"] == "dropped (unreachable)"
    assert why in messages(result, "decision")


def test_an_engagement_split_around_the_email_takes_the_no_path() -> None:
    doc = engaged(["_email.open"])
    acts = doc["JourneyResponse"]["Activities"]
    # R: a random split, half to the email, half straight to the wait (around it)
    acts["R"] = {
        "RandomSplit": {
            "Branches": [
                {"Percentage": 50, "NextActivity": "X"},
                {"Percentage": 50, "NextActivity": "W"},
            ]
        }
    }
    doc["JourneyResponse"]["StartActivity"] = "R"
    result = convert(doc)
    assert "a" not in steps(result)
    assert "the email is not on every path to the split (R -> W -> A)" in messages(
        result, "decision"
    )


def test_any_of_an_engagement_and_a_segment_keeps_the_segment() -> None:
    by_id = steps(convert(journey(split([OPENED, GOLD], "ANY"))))
    assert by_id["a"]["condition"] == {"segments": ["gold-members"]}


def test_all_of_an_engagement_and_a_segment_is_false() -> None:
    assert list(steps(convert(journey(split([OPENED, GOLD], "ALL"))))) == ["f", "end"]


def test_any_of_two_segments_is_an_or() -> None:
    other = {"SegmentCondition": {"SegmentId": SEG + "2"}}
    by_id = steps(convert(journey(split([GOLD, other], "ANY"))))
    assert by_id["a"]["condition"] == {
        "$or": [{"segments": ["gold-members"]}, {"segments": ["tea-lovers-on-the-app"]}]
    }


def dimensions_branch(
    *dims: dict[str, Any], ctx: JourneyContext = CTX
) -> tuple[dict[str, Any] | None, JourneyResult]:
    """The condition of a yes/no split on ``dims`` (all must hold); None: not expressible."""
    result = convert(journey(split([{"segmentDimensions": d} for d in dims])), ctx)
    return steps(result).get("a", {}).get("condition"), result


def test_segment_dimensions_become_view_conditions() -> None:
    dims = {
        "UserAttributes": {"MembershipTier": {"AttributeType": "INCLUSIVE", "Values": ["Gold"]}},
        "Attributes": {"FavoriteStore": {"AttributeType": "EXCLUSIVE", "Values": ["Online"]}},
        "Metrics": {
            "LifetimeSpend": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 50000.0}
        },
        "Demographic": {"Channel": {"DimensionType": "INCLUSIVE", "Values": ["APNS", "GCM"]}},
    }
    condition, _ = dimensions_branch(dims)
    assert condition == {
        "attributes": {
            "membership_tier": ["Gold"],
            "favorite_store": [{"anything-but": ["Online"]}],
            "lifetime_spend": [{"numeric": [">=", 50000]}],
        },
        "reachable": ["push"],
    }


def test_segment_dimensions_are_translated_as_segments_are() -> None:
    # Given the migration's attributes: SignupDate is a date on the endpoints
    attributes = AttributeMap()
    attributes.plan("Attributes", "SignupDate", [["2025-01-02"], ["2025-03-04"]])
    ctx = JourneyContext(templates=TEMPLATES, segments=SEGMENTS, conditions=Conditions(attributes))
    # Then a date comparison is date prefixes, the country the declared attribute, app
    # recency a count of app.opened (its window declared), two bounds on one metric a range
    between = ["2025-07-01T00:00:00Z", "2025-09-30T00:00:00Z"]  # Q3, both days in
    dims = {"Attributes": {"SignupDate": {"AttributeType": "BETWEEN", "Values": between}}}
    condition, _ = dimensions_branch(dims, ctx=ctx)
    months = [{"prefix": "2025-07"}, {"prefix": "2025-08"}, {"prefix": "2025-09"}]
    assert condition == {"attributes": {"signup_date": months}}
    condition, _ = dimensions_branch({"Location": {"Country": {"Values": ["JP"]}}}, ctx=ctx)
    assert condition == {"attributes": {"country": ["JP"]}}
    recency = {"Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "INACTIVE"}}}
    condition, result = dimensions_branch(recency, ctx=ctx)
    assert condition == {"behaviour": {"app.opened": {"count_7d": [0]}}}
    assert ctx.conditions.activity_windows == {7} and "app.opened" in messages(result, "info")
    spend = "LifetimeSpend"
    low = {"Metrics": {spend: {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 1000}}}
    high = {"Metrics": {spend: {"ComparisonOperator": "LESS_THAN", "Value": 5000}}}
    condition, _ = dimensions_branch(low, high, ctx=ctx)
    assert condition == {"attributes": {"lifetime_spend": [{"numeric": [">=", 1000, "<", 5000]}]}}


@pytest.mark.parametrize(
    ("dims", "why"),
    [
        (
            {"Attributes": {"SignupDate": {"AttributeType": "AFTER", "Values": ["2025-06-30"]}}},
            "a time comparison on a string attribute",
        ),
        ({"Location": {"GPSPoint": {"RangeInKilometers": 5}}}, "Kizuna keeps no coordinates"),
        ({"Demographic": {"Platform": {"Values": ["iOS"]}}}, "Kizuna keeps no device platform"),
        (
            {"Demographic": {"Channel": {"Values": ["APNS_SANDBOX"]}}},
            "APNS_SANDBOX: not a Kizuna channel",
        ),
        ({"UserAttributes": {"Email": {"Values": ["a@example.com"]}}}, "personal data"),
    ],
)
def test_segment_dimensions_kizuna_cannot_say_take_the_no_path(
    dims: dict[str, Any], why: str
) -> None:
    condition, result = dimensions_branch(dims)
    assert condition is None and list(steps(result)) == ["f", "end"]
    assert why in messages(result, "decision")


def test_a_multi_condition_split_is_a_chain_of_branches_in_order() -> None:
    doc = journey(
        {
            "A": {
                "MultiCondition": {
                    "Branches": [
                        {"Condition": GOLD, "NextActivity": "G"},
                        {"Condition": OPENED, "NextActivity": "O"},
                        {
                            "Condition": {
                                "segmentDimensions": {
                                    "Demographic": {"Channel": {"Values": ["EMAIL"]}}
                                }
                            },
                            "NextActivity": "E",
                        },
                    ],
                    "DefaultActivity": "D",
                }
            },
            "G": email(template="WinterSale"),
            "O": email(),
            "E": email(template="WinterSaleUrgent"),
            "D": email(template="Welcome_ja"),
        }
    )
    result = convert(doc)
    by_id = steps(result)
    assert [s for s in by_id] == ["a", "g", "a_2", "e", "d", "end"]
    assert (by_id["a"]["then"], by_id["a"]["else"]) == ("g", "a_2")
    assert by_id["a_2"]["condition"] == {"reachable": ["email"]}
    assert (by_id["a_2"]["then"], by_id["a_2"]["else"]) == ("e", "d")
    assert "branch 2 never taken" in messages(result, "decision")


def test_a_random_split_is_a_split_with_the_percentages_as_weights() -> None:
    branches = [
        {"NextActivity": "B", "Percentage": 30},
        {"NextActivity": "C", "Percentage": 70},
        {"NextActivity": "B", "Percentage": 0},
    ]
    result = convert(
        journey({"A": {"RandomSplit": {"Branches": branches}}, "B": email(), "C": email()})
    )
    assert steps(result)["a"]["arms"] == [
        {"name": "arm_1", "weight": 30, "next": "b"},
        {"name": "arm_2", "weight": 70, "next": "c"},
    ]


def test_a_random_split_not_adding_up_is_not_converted() -> None:
    branches = [{"NextActivity": "B", "Percentage": 30}, {"NextActivity": "B", "Percentage": 30}]
    result = convert(journey({"A": {"RandomSplit": {"Branches": branches}}, "B": email()}))
    assert result.program is None and "add up to 60" in messages(result, "error")


@pytest.mark.parametrize(
    ("percent", "holdout", "first"),
    [(10, 10, "b"), (50, 50, "b"), (60, 0, "a"), (0, 0, "b")],
)
def test_a_holdout_at_the_start_is_the_programs_holdout(
    percent: int, holdout: int, first: str
) -> None:
    result = convert(
        journey({"A": {"Holdout": {"NextActivity": "B", "Percentage": percent}}, "B": email()})
    )
    assert result.program is not None
    assert result.program.get("holdout_percent", 0) == holdout
    assert result.program["steps"][0]["id"] == first
    if percent == 60:
        assert result.program["steps"][0]["arms"][0] == {
            "name": "holdout",
            "weight": 60,
            "next": "end",
        }


def test_other_activities_are_not_carried_over_and_the_path_goes_on() -> None:
    doc = journey(
        {
            "A": {"CUSTOM": {"DeliveryUri": "arn:aws:lambda:x", "NextActivity": "B"}},
            "B": {"ContactCenter": {"NextActivity": "C"}},
            "C": email(),
        }
    )
    result = convert(doc)
    assert list(steps(result)) == ["c", "end"]
    dropped = messages(result, "dropped")
    assert "custom (Lambda or webhook)" in dropped and "contact center" in dropped


# --- start, limits, state, names ---------------------------------------------------------------
def event_start(values: list[str], **dims: Any) -> dict[str, Any]:
    return {
        "EventStartCondition": {
            "EventFilter": {
                "FilterType": "ENDPOINT",
                "Dimensions": {
                    "EventType": {"DimensionType": "INCLUSIVE", "Values": values},
                    **dims,
                },
            }
        }
    }


def test_a_custom_event_start_with_filters_is_a_custom_trigger() -> None:
    start = event_start(
        ["WishlistAdded"],
        Attributes={"category": {"AttributeType": "INCLUSIVE", "Values": ["tea", "teaware"]}},
        Metrics={"price": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 3000.0}},
    )
    result = convert(journey({"A": email()}, start_condition=start))
    assert result.program is not None
    assert result.program["trigger"] == {
        "event": "wishlist.added",
        "conditions": {"category": ["tea", "teaware"], "price": [{"numeric": [">=", 3000]}]},
    }
    # the fields the migration declares on the custom event (as for a campaign's filter)
    assert result.trigger_fields == {"category": ValueType.STRING, "price": ValueType.NUMBER}


@pytest.mark.parametrize(
    ("pinpoint", "kizuna"),
    [
        ("_session.start", "app.opened"),
        ("_monetization.purchase", "order.placed"),
        ("WishlistAdded", "wishlist.added"),
        ("store.checked_in", "store.checked_in"),
        ("Checkin", "app.checkin"),
        ("_email.open", None),
    ],
)
def test_event_types(pinpoint: str, kizuna: str | None) -> None:
    assert event_type(pinpoint) == kizuna


def test_a_system_event_start_is_written_disabled() -> None:
    start = event_start(["_email.click"])
    start["EventStartCondition"]["EventFilter"]["FilterType"] = "SYSTEM"
    result = convert(journey({"A": email()}, start_condition=start))
    assert result.program is not None and result.program["enabled"] is False
    assert "placeholder trigger" in messages(result, "decision")


@pytest.mark.parametrize(
    ("limits", "reentry"),
    [
        ({}, {"mode": "once"}),
        ({"EndpointReentryCap": 1}, {"mode": "once"}),
        ({"EndpointReentryCap": 0}, {"mode": "always"}),
        ({"EndpointReentryCap": 0, "EndpointReentryInterval": "P7D"}, {"mode": "every", "days": 7}),
        (
            {"EndpointReentryCap": 0, "EndpointReentryInterval": "PT36H"},
            {"mode": "every", "days": 2},
        ),
    ],
)
def test_reentry(limits: dict[str, Any], reentry: dict[str, Any]) -> None:
    result = convert(journey({"A": email()}, Limits=limits))
    assert result.program is not None and result.program["reentry"] == reentry


@pytest.mark.parametrize("state", ["DRAFT", "PAUSED", "COMPLETED", "CANCELLED", "CLOSED"])
def test_only_an_active_journey_is_enabled(state: str) -> None:
    result = convert(journey({"A": email()}, State=state))
    assert result.program is not None and result.program["enabled"] is False


def test_ids_are_kizuna_ids(tmp_path: Path) -> None:
    activities = {
        "1st-Email!": email("Wait_For_A_Very_Long_Time_Before_Sending_The_Reminder_1"),
        "Wait_For_A_Very_Long_Time_Before_Sending_The_Reminder_1": {
            "Wait": {
                "NextActivity": "Wait_For_A_Very_Long_Time_Before_Sending_The_Reminder_2",
                "WaitTime": {"WaitFor": "P1D"},
            }
        },
        "Wait_For_A_Very_Long_Time_Before_Sending_The_Reminder_2": {
            "Wait": {"NextActivity": "end", "WaitTime": {"WaitFor": "P1D"}}
        },
        "end": email(),
    }
    doc = journey(activities, "1st-Email!", Name="お知らせ")
    result = convert(doc, JourneyContext(templates=TEMPLATES, taken_ids={"journey-j1"}))
    assert result.program_id == "journey-j1-2"
    ids = list(steps(result))
    assert ids[0] == "a_1st_email" and len(set(ids)) == len(ids)
    assert all(len(i) <= 40 for i in ids) and "end" in ids  # the exit step
    validate(result, tmp_path)


def test_program_ids() -> None:
    assert program_id("Welcome series", "x") == "welcome-series"
    assert program_id("Welcome series", "x", {"welcome-series"}) == "welcome-series-2"
    assert program_id("ようこそ", "ABC123") == "journey-abc123"
    assert program_id("WelcomeSeries", "x") == "welcome-series"  # as a campaign's id
    assert program_id("A", "ABC123") == "journey-abc123"  # an id has two characters at least
    assert len(program_id("A very long journey name " * 5, "x")) <= 40


def test_not_a_journey_is_refused() -> None:
    with pytest.raises(ValueError, match="not a GetJourney response"):
        convert_journey({"JourneyResponse": {"Activities": []}}, CTX)


def test_unknown_next_activity_ends_the_path_with_an_error() -> None:
    result = convert(journey({"A": email("Nowhere")}))
    assert steps(result)["a"]["next"] == "end"
    assert "unknown activity 'Nowhere'" in messages(result, "error")


def test_templates_written_with_the_program_render_for_files_renderer() -> None:
    result = convert(json.loads((FIXTURES / "journeys/welcome-series.json").read_text()))
    files = template_files(result.program_id, result.templates)
    assert sorted({k.split("/")[1] for k in files}) == [
        "app_comeback",
        "points_reminder",
        "welcome",
        "wishlist_reminder",
    ]
    renderer = FilesRenderer(files)
    assert renderer.parts_missing(result.program_id, "welcome", "email") == []
    assert datetime.now(UTC) > NOW  # the fixed clock of the samples is in the past
