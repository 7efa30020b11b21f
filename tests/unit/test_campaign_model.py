"""Campaign definitions: the model, stable-hash assignment, schedules, and the loader's
file-and-field errors."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.campaigns.assign import HOLDOUT, MAIN_POOL, TEST_POOL, WINNER, assign
from kizuna.campaigns.loader import CampaignError, load_campaign, load_campaigns, parse_campaign
from kizuna.campaigns.model import (
    Campaign,
    LocalTimeSchedule,
    RecurringSchedule,
    due_at,
    local_time_window,
    occurrence_id,
    scheduler_expression,
    scheduler_start,
)
from kizuna.delivery.templates import Renderer
from kizuna.runtime.config import GlobalControlConfig
from kizuna.segments import load_segments

NO_CONTROL = GlobalControlConfig()  # the global control group off

ROOT = Path(__file__).resolve().parents[2]


def raw(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "sale",
        "name": "Sale",
        "status": "scheduled",
        "audience": {"segments": ["champions"]},
        "schedule": {"type": "once", "at": "2026-03-06T10:00:00+09:00"},
        "channels": ["email", "line"],
        "template": "sale",
    }
    base.update(overrides)
    return base


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(CampaignError) as exc:
        parse_campaign(data, "campaigns/sale.yaml")
    return [str(i) for i in exc.value.issues]


def test_the_shipped_campaigns_validate_against_segments_and_templates() -> None:
    # given the repository's campaigns, segments, templates and programs
    segments = load_segments(ROOT / "segments")
    programs = {p.stem for p in (ROOT / "programs").glob("*.yaml")}
    # when they are loaded as `kizuna campaigns validate` does
    campaigns, issues = load_campaigns(
        ROOT / "campaigns",
        templates=Renderer(ROOT / "templates"),
        segment_names=set(segments),
        program_ids=programs,
    )
    # then every one is valid
    assert issues == []
    assert {c.id for c in campaigns} >= {"month-end-sale"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"audience": {}}, "[audience]: name segments, conditions or a customer_list"),
        ({"audience": {"everyone": True, "segments": ["x"]}}, "everyone: true takes no"),
        ({"audience": {"conditions": {"rank": "Gold"}}}, "audience.conditions"),
        ({"schedule": {"type": "weekly"}}, "unknown schedule type"),
        ({"schedule": {"type": "once", "at": "2026-03-06T10:00:00"}}, "schedule.at"),
        ({"schedule": {"type": "local_time", "date": "2026-03-06", "time": "25:00"}}, "HH:MM"),
        ({"schedule": {"type": "recurring", "cron": "0 10 * * *"}}, "cron: use cron("),
        # six fields, yet refused by EventBridge Scheduler (moto takes them)
        (
            {"schedule": {"type": "recurring", "cron": "cron(0 10 * * FRI *)"}},
            "cron: one of day-of-month and day-of-week must be '?'",
        ),
        ({"schedule": {"type": "recurring", "cron": "cron(60 10 ? * FRI *)"}}, "outside 0-59"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 xx ? * FRI *)"}}, "not a number"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 ? * FRY *)"}}, "not a number"),
        # day fields are checked whatever the month and year (June has no 32nd)
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 32 6 ? *)"}}, "outside 1-31"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 ? * 9#2 *)"}}, "outside 1-7"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 ? * 2#6 *)"}}, "outside 1-5"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 40W * ? 2027)"}}, "outside 1-31"),
        ({"schedule": {"type": "recurring", "cron": "cron(0 10 ? FEB FOO *)"}}, "not a number"),
        ({"schedule": {"type": "recurring", "rate": "rate(1 week)"}}, "rate: use rate("),
        ({"schedule": {"type": "recurring", "rate": "rate(1 days)"}}, "takes the unit 'day'"),
        ({"schedule": {"type": "recurring", "rate": "rate(7 day)"}}, "takes the unit 'days'"),
        (
            {"schedule": {"type": "recurring", "rate": "rate(7 days)", "time_zone": "Mars/Base"}},
            "unknown time zone",
        ),
        ({"channels": ["email", "email"]}, "a channel is listed twice"),
        ({"channels": ["fax"]}, "channels.0"),
        ({"variants": [{"name": "a", "weight": 100}]}, "give none, or 2 to 8"),
        (
            {"variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 40}]},
            "weights must add up to 100",
        ),
        (
            {"winner": {"test_percent": 20, "metric": "open", "wait_hours": 4}},
            "needs at least two variants",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {"test_percent": 20, "metric": "open", "wait_hours": 4, "alpha": 0.05},
            },
            "alpha, min_per_arm and max_wait_hours need rule: sequential",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 4,
                    "max_wait_hours": 72,
                },
            },
            "alpha, min_per_arm and max_wait_hours need rule: sequential",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 24,
                    "rule": "sequential",
                    "max_wait_hours": 24,
                },
            },
            "winner.max_wait_hours (24) must be more than winner.wait_hours (24)",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 24,
                    "rule": "sequential",
                    "max_wait_hours": 337,
                },
            },
            "max_wait_hours",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 24,
                    "rule": "sequential",
                    "max_wait_hours": "72",
                },
            },
            "max_wait_hours",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 4,
                    "rule": "sequential",
                    "alpha": 0.5,
                },
            },
            "alpha",
        ),
        ({"holdout_percent": 60}, "holdout_percent"),
        # text, a boolean, a whole float: pydantic's lax mode read them as numbers
        ({"holdout_percent": "10"}, "holdout_percent"),
        ({"holdout_percent": True}, "holdout_percent"),
        ({"holdout_percent": 10.0}, "holdout_percent"),
        ({"rate_limit_per_minute": "600"}, "rate_limit_per_minute"),
        ({"priority": True}, "priority"),
        (
            {
                "variants": [{"name": "a", "weight": "50"}, {"name": "b", "weight": 50}],
                "winner": {"test_percent": 20, "metric": "open", "wait_hours": 4},
            },
            "weight",
        ),
        (
            {
                "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
                "winner": {
                    "test_percent": 20,
                    "metric": "open",
                    "wait_hours": 4,
                    "rule": "sequential",
                    "alpha": "0.05",
                },
            },
            "alpha",
        ),
        ({"status": "sending"}, "status"),
        ({"colour": "red"}, "[colour]: unknown field"),
    ],
)
def test_invalid_campaigns_are_refused_with_file_and_field(
    overrides: dict[str, Any], expected: str
) -> None:
    found = problems(raw(**overrides))
    assert any(expected in p for p in found), found
    assert all(p.startswith("campaigns/sale.yaml") for p in found)


def test_the_loader_checks_names_that_must_exist(tmp_path: Path) -> None:
    # given a campaign naming a segment, a template and an id that do not fit the project
    (tmp_path / "post-purchase-recommendation.yaml").write_text(
        "id: post-purchase-recommendation\nname: x\naudience: {segments: [nobody]}\n"
        "schedule: {type: once, at: '2026-03-06T10:00:00Z'}\nchannels: [email]\n"
        "template: missing\n"
        "goal: {event: order.shipped}\n",
        encoding="utf-8",
    )
    # when it is loaded against the repository's templates, segments and programs
    with pytest.raises(CampaignError) as exc:
        load_campaign(
            tmp_path / "post-purchase-recommendation.yaml",
            templates=Renderer(ROOT / "templates"),
            segment_names={"champions"},
            program_ids={"post-purchase-recommendation"},
        )
    text = str(exc.value)
    # then each problem is named with its field
    assert "[audience.segments]: no segment 'nobody' (champions)" in text
    assert "[template]: template 'missing' has no" in text
    assert "[id]: 'post-purchase-recommendation' is a program's id" in text
    assert "[goal.event]: unknown event type 'order.shipped'" in text


def test_a_campaign_goal_is_an_order() -> None:
    """The console, the winner test and the report count orders: a goal on another event was
    accepted and measured as orders all the same."""
    from kizuna.campaigns.loader import check_campaign

    def issues(event: str) -> list[str]:
        campaign = parse_campaign(raw(goal={"event": event, "within_days": 3}), "c.yaml")
        return [str(i) for i in check_campaign("c.yaml", campaign)]

    assert any(
        "[goal.event]: a campaign's conversions are orders" in i for i in issues("cart.updated")
    )
    assert issues("order.placed") == []


def test_assignment_is_stable_and_follows_the_weights() -> None:
    campaign = parse_campaign(
        raw(
            holdout_percent=10,
            variants=[{"name": "a", "weight": 70}, {"name": "b", "weight": 30}],
        )
    )
    ids = [f"c{i}" for i in range(20_000)]
    arms = Counter(assign(campaign, cid, NO_CONTROL).arm for cid in ids)
    # the same customer always lands in the same arm
    assert [assign(campaign, cid, NO_CONTROL) for cid in ids[:50]] == [
        assign(campaign, c, NO_CONTROL) for c in ids[:50]
    ]
    assert abs(arms[HOLDOUT] / len(ids) - 0.10) < 0.01
    treated = len(ids) - arms[HOLDOUT]
    assert abs(arms["a"] / treated - 0.70) < 0.015
    assert set(arms) == {HOLDOUT, "a", "b"}


def test_winner_selection_sends_variants_to_the_test_pool_only() -> None:
    campaign = parse_campaign(
        raw(
            variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
            winner={"test_percent": 20, "metric": "click", "wait_hours": 4},
        )
    )
    pools = Counter(
        (a.pool, a.arm) for a in (assign(campaign, f"c{i}", NO_CONTROL) for i in range(10_000))
    )
    test = pools[(TEST_POOL, "a")] + pools[(TEST_POOL, "b")]
    assert abs(test / 10_000 - 0.20) < 0.015
    assert pools[(MAIN_POOL, WINNER)] == 10_000 - test
    assert not any(pool == MAIN_POOL and arm in {"a", "b"} for pool, arm in pools)


def test_schedules_become_scheduler_expressions_and_local_due_times() -> None:
    once = parse_campaign(raw())
    assert scheduler_expression(once) == ("at(2026-03-06T01:00:00)", "UTC")
    local = parse_campaign(
        raw(schedule={"type": "local_time", "date": "2026-03-06", "time": "10:00"})
    )
    assert isinstance(local.schedule, LocalTimeSchedule)
    start, last = local_time_window(local.schedule)
    # the occurrence starts when it is 10:00 in UTC+14, and ends with UTC-12's 10:00
    assert scheduler_expression(local) == ("at(2026-03-05T20:00:00)", "UTC")
    assert (start, last) == (
        datetime(2026, 3, 5, 20, tzinfo=UTC),
        datetime(2026, 3, 6, 22, tzinfo=UTC),
    )
    # each customer at 10:00 in their own zone; an unknown zone gets the default one
    assert due_at(local, start, "Asia/Tokyo", "Asia/Tokyo") == datetime(2026, 3, 6, 1, tzinfo=UTC)
    assert due_at(local, start, "America/New_York", "Asia/Tokyo") == datetime(
        2026, 3, 6, 15, tzinfo=UTC
    )
    assert due_at(local, start, "Nowhere/City", "Asia/Tokyo") == datetime(2026, 3, 6, 1, tzinfo=UTC)
    recurring = parse_campaign(
        raw(
            schedule={
                "type": "recurring",
                "cron": "cron(0 10 ? * FRI *)",
                "time_zone": "Asia/Tokyo",
            }
        )
    )
    assert scheduler_expression(recurring) == ("cron(0 10 ? * FRI *)", "Asia/Tokyo")
    assert occurrence_id(datetime(2026, 3, 6, 1, 0, 30, tzinfo=UTC)) == "20260306T0100Z"


def test_variant_templates() -> None:
    campaign: Campaign = parse_campaign(
        raw(
            variants=[
                {"name": "a", "weight": 50},
                {"name": "b", "weight": 50, "template": "sale_b"},
            ]
        )
    )
    assert campaign.templates() == ["sale", "sale_b"]
    assert campaign.template_of("a") == "sale"
    assert campaign.template_of("b") == "sale_b"


def test_a_campaign_names_a_declared_topic_or_gets_the_default() -> None:
    from kizuna.campaigns.engine import topic_of
    from kizuna.campaigns.loader import check_campaign
    from kizuna.events.custom import vocabulary
    from kizuna.runtime.config import KizunaConfig
    from tests.factories import campaign_definition

    cfg = KizunaConfig()
    unknown = parse_campaign(campaign_definition(topic="coupons"), "sale.yaml")
    problems = [str(i) for i in check_campaign("sale.yaml", unknown, vocab=vocabulary(cfg))]
    assert any("unknown topic 'coupons' (declared: promotions" in p for p in problems)
    news = parse_campaign(campaign_definition(topic="newsletter"), "sale.yaml")
    assert check_campaign("sale.yaml", news, vocab=vocabulary(cfg)) == []
    assert topic_of(news, cfg) == "newsletter"
    assert topic_of(parse_campaign(campaign_definition(), "sale.yaml"), cfg) == "promotions"
    with pytest.raises(CampaignError, match="topic"):
        parse_campaign(campaign_definition(topic="Not A Topic"), "sale.yaml")


def test_a_recurring_schedule_never_gets_a_start_scheduler_refuses() -> None:
    """Scheduler refuses a StartDate more than 5 minutes past: once the campaign's start is
    further past (a pause, resume or edit weeks later), a cron gets none (its fields say
    when it runs) and a rate the first of its runs still ahead, counted from its start (none
    after its end)."""
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday
    rate = RecurringSchedule(type="recurring", rate="rate(7 days)", start=start)
    cron = RecurringSchedule(type="recurring", cron="cron(0 10 ? * MON *)", start=start)
    before = start - timedelta(days=1)
    assert scheduler_start(rate, before) == start
    assert scheduler_start(cron, before) == start
    # a minute past: still taken, the first run stays
    assert scheduler_start(rate, start + timedelta(minutes=1)) == start
    later = start + timedelta(days=20, hours=3)
    assert scheduler_start(rate, later) == start + timedelta(days=21)
    assert scheduler_start(rate, start + timedelta(minutes=5)) == start + timedelta(days=7)
    assert scheduler_start(cron, later) is None
    none = RecurringSchedule(type="recurring", rate="rate(1 day)")
    assert scheduler_start(none, later) is None
    ended = RecurringSchedule(
        type="recurring", rate="rate(7 days)", start=start, end=start + timedelta(days=10)
    )
    assert scheduler_start(ended, later) is None  # its next run would be after its end


@pytest.mark.parametrize("name", ["holdout", "global_control", "winner", "default"])
def test_a_variant_cannot_take_the_name_of_an_arm_the_ledger_already_uses(name: str) -> None:
    """A variant called ``holdout`` was counted as held out (never sent, its members
    reported as the control), ``winner`` as the rest of a winner selection, ``default`` as
    a campaign without variants."""
    from kizuna.campaigns.loader import check_campaign

    variants = [{"name": name, "weight": 50}, {"name": "b", "weight": 50}]
    campaign = parse_campaign(raw(variants=variants), "c.yaml")
    found = [str(i) for i in check_campaign("c.yaml", campaign)]
    assert any(name in p and "arm" in p for p in found), found
    # refused when written, as every write is checked; a definition stored before the rule
    # is still read (the campaign list, its running occurrence)
    assert Campaign.model_validate(raw(variants=variants)).variants[0].name == name
    # (every arm name assign gives that is not a variant's is reserved)
    from kizuna.campaigns.assign import DEFAULT_VARIANT
    from kizuna.campaigns.model import RESERVED_VARIANT_NAMES
    from kizuna.delivery.control import GLOBAL_CONTROL

    assert {HOLDOUT, WINNER, DEFAULT_VARIANT, GLOBAL_CONTROL} == RESERVED_VARIANT_NAMES


@pytest.mark.parametrize(
    ("channels", "metric", "refused"),
    [
        (["sms"], "open", True),
        (["line"], "open", True),  # LINE reports clicks of its tracked links, never opens
        (["push", "sms"], "click", True),  # a push has no link to click
        (["line"], "click", False),
        (["sms", "email"], "open", False),  # the email recipients are measured
        (["sms"], "goal", False),
    ],
)
def test_a_winner_metric_needs_a_channel_that_reports_it(
    channels: list[str], metric: str, refused: bool
) -> None:
    """A winner by opens of an SMS campaign measured nothing and named the first variant
    the winner "by the best open rate" (programs' splits refuse the same)."""
    from kizuna.campaigns.loader import check_campaign

    variants = [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]
    winner = {"test_percent": 20, "metric": metric, "wait_hours": 4}
    goal = {"event": "order.placed", "within_days": 3}
    campaign = parse_campaign(
        raw(channels=channels, variants=variants, winner=winner, goal=goal), "c.yaml"
    )
    issues = [str(i) for i in check_campaign("c.yaml", campaign)]
    assert any("winner.metric" in i and "choose 'goal'" in i for i in issues) == refused, issues


def test_the_rest_is_named_by_whether_the_test_chose_their_variant() -> None:
    from kizuna.campaigns.assign import shown_arm, winner_decided

    # as recorded since the occurrence says so; before, a sequential test's looks say it
    # (its last look names no winner when undecided); an occurrence without looks as then
    decided = [{"number": 1, "winner": None}, {"number": 2, "winner": "b"}]
    cases = [
        ({"winner": "b", "winner_decided": True}, True),
        ({"winner": "a", "winner_decided": False}, False),
        ({"winner": "a", "looks": [{"number": 1, "winner": None}]}, False),
        ({"winner": "b", "looks": decided}, True),
        ({"winner": "b"}, True),
        ({}, False),  # no winner recorded: the rest got the first variant
    ]
    for occurrence, expected in cases:
        assert winner_decided(occurrence) is expected, occurrence
    assert shown_arm(WINNER, "b", True) == "b (winner)"
    assert shown_arm(WINNER, "a", False) == "a (no winner: first variant)"
    assert shown_arm("b", "b", False) == "b"  # the test pool's arms are named as they are
