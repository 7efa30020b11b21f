"""Conditions compare fields with values they can hold: a value of another type
(``order_count: ["2"]``, ``total: ["5000"]`` on a derived event), a closed field's value
misspelled (``lifecycle: [at-risk]``, ``rank: [gold]``, ``direction: [upp]``) or ``numeric``
on a string is valid syntax that silently matches nobody, so programs, campaign audiences
and goals, and segments refuse it at load, naming the field, the value and the values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kizuna.campaigns.engine import CONVERSION_VALUES
from kizuna.campaigns.loader import check_campaign, parse_campaign
from kizuna.domain.customer import CartState, ConsentState, Device, PostalAddress
from kizuna.events import DERIVED_MODELS, RankChanged, RankDirection, SegmentChanged
from kizuna.events.custom import BUILTIN, vocabulary
from kizuna.programs.loader import ProgramError, load_program
from kizuna.programs.value_rules import ValueRule, event_value_rules, value_problem
from kizuna.programs.view import (
    AGE_BANDS,
    LIFECYCLE_STAGES,
    REACHABLE_CHANNELS,
    VIEW_FIELDS,
    VIEW_VALUES,
    age_band,
    customer_view,
    lifecycle,
    reachable_channels,
)
from kizuna.programs.view_rules import view_condition_problems, view_value_rules
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import SegmentError, load_segments
from tests.factories import LINE_USER, PHONE, T0, campaign_definition, customer, sample_program

PROGRAM = sample_program("{id: done, type: exit}")
RANKS_CONFIG = KizunaConfig.model_validate(
    {
        "loyalty": {
            "ranks": [{"name": "Member", "min_points": 0}, {"name": "VIP", "min_points": 900}]
        }
    }
)


def program_problems(
    tmp_path: Path, extra: str, trigger: str = "", cfg: KizunaConfig | None = None
) -> list[str]:
    """The problems of the sample program with ``extra`` YAML added (and ``trigger`` in place
    of its trigger line); [] when it loads."""
    text = PROGRAM
    if trigger:
        text = text.replace("trigger: {event: customer.first_purchase}", trigger)
    path = tmp_path / "sample.yaml"
    path.write_text(text + extra)
    try:
        load_program(path, vocab=vocabulary(cfg) if cfg else BUILTIN)
    except ProgramError as refused:
        return [str(issue) for issue in refused.issues]
    return []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (  # a lifecycle stage misspelled
            "audience: {lifecycle: [at-risk]}\n",
            "audience.lifecycle[0]: 'at-risk' is not one of 'lifecycle''s values (prospect, "
            "new, repeat, at_risk, dormant); did you mean 'at_risk'?",
        ),
        (  # ranks are the configuration's names, as written
            "audience: {rank: [gold]}\n",
            "audience.rank[0]: 'gold' is not one of 'rank''s values (Bronze, Silver, Gold, "
            "Platinum: the configuration's loyalty.ranks); did you mean 'Gold'?",
        ),
        (
            "audience: {next_rank: [Diamond]}\n",
            "audience.next_rank[0]: 'Diamond' is not one of 'next_rank''s values",
        ),
        (  # a string never equals a number
            "audience: {order_count: ['2']}\n",
            "audience.order_count[0]: '2' is not a number value ('order_count' is a number: "
            "write 2 without quotes)",
        ),
        (  # numeric on a string field
            "audience: {rank: [{numeric: ['>', 1]}]}\n",
            "audience.rank[0]: numeric compares numbers; 'rank' is a string",
        ),
        (  # a text operator on a number
            "audience: {order_count: [{prefix: '1'}]}\n",
            "audience.order_count[0]: prefix compares strings; 'order_count' is a number",
        ),
        (
            "audience: {reachable: [lin]}\n",
            "audience.reachable[0]: 'lin' is not one of 'reachable''s values (email, sms, push, "
            "line, dm); did you mean 'line'?",
        ),
        (  # card has a consent, but no address: never reachable
            "audience: {reachable: [card]}\n",
            "audience.reachable[0]: 'card' is not one of 'reachable''s values",
        ),
        (
            "audience: {consent: {email: [optin]}}\n",
            "audience.consent.email[0]: 'optin' is not one of 'consent.email''s values "
            "(opted_in, opted_out); did you mean 'opted_in'?",
        ),
        (
            "audience: {age_band: ['30代']}\n",
            "audience.age_band[0]: '30代' is not one of 'age_band''s values (under20, 20s, "
            "30s, 40s, 50s, 60s, 70plus)",
        ),
        ("audience: {gender: [Female]}\n", "did you mean 'female'?"),
        (  # RFM segments are the configuration's too
            "audience: {rfm_segment: [champions]}\n",
            "audience.rfm_segment[0]: 'champions' is not one of 'rfm_segment''s values",
        ),
        (  # anything-but a misspelled value would let everyone through
            "audience: {lifecycle: [{anything-but: [dormant, at-risk]}]}\n",
            "audience.lifecycle[0]: anything-but: 'at-risk' is not one of",
        ),
        (  # a prefix no stage begins with
            "audience: {lifecycle: [{prefix: at-}]}\n",
            "audience.lifecycle[0]: prefix 'at-' matches none of 'lifecycle''s values",
        ),
        (  # a wildcard no stage matches (the stage is at_risk)
            "audience: {lifecycle: [{wildcard: 'at-*'}]}\n",
            "audience.lifecycle[0]: wildcard 'at-*' matches none of 'lifecycle''s values",
        ),
        (  # a wildcard matches the whole value: 'Gol*d' is no rank
            "audience: {rank: [{wildcard: 'Gol*x'}]}\n",
            "audience.rank[0]: wildcard 'Gol*x' matches none of 'rank''s values",
        ),
        (  # an unset field is absent from the view
            "audience: {rank: [null]}\n",
            "audience.rank[0]: null never matches: an unset 'rank' is absent from the view",
        ),
        (  # inside $or too
            "audience: {$or: [{rank: [Gold]}, {lifecycle: [neww]}]}\n",
            "audience.$or[1].lifecycle[0]: 'neww' is not one of",
        ),
    ],
)
def test_an_audience_on_a_value_the_field_never_holds_is_refused(
    tmp_path: Path, extra: str, expected: str
) -> None:
    # Given a program whose audience compares a built-in field with such a value
    # When it is loaded / Then it is refused, naming the field, the value and the values
    found = program_problems(tmp_path, extra)
    assert any(expected in issue for issue in found), found


def branch_program(condition: str) -> str:
    return sample_program(
        f"{{id: check, type: branch, condition: {condition}, then: done, else: done}}",
        "{id: done, type: exit}",
    )


def test_a_branch_condition_is_over_the_view_as_well(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(branch_program("{points_balance: ['100']}"))
    with pytest.raises(ProgramError) as refused:
        load_program(path)
    assert any(
        "[step check]: condition.points_balance[0]: '100' is not a number value" in str(i)
        for i in refused.value.issues
    ), refused.value.issues


def test_a_counter_is_a_number(tmp_path: Path) -> None:
    vocab = vocabulary(
        KizunaConfig.model_validate({"custom": {"tracked": [{"detail_type": "app.opened"}]}})
    )
    path = tmp_path / "sample.yaml"
    path.write_text(branch_program("{behaviour: {app.opened: {count_30d: ['0']}}}"))
    with pytest.raises(ProgramError) as refused:
        load_program(path, vocab=vocab)
    assert any(
        "condition.behaviour.app.opened.count_30d[0]: '0' is not a number value" in str(i)
        for i in refused.value.issues
    ), refused.value.issues
    path.write_text(branch_program("{behaviour: {app.opened: {count_30d: [0]}}}"))
    assert load_program(path, vocab=vocab).id == "sample"


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (
            "trigger: {event: customer.rank_changed, conditions: {direction: [upp]}}",
            "trigger.conditions.direction[0]: 'upp' is not one of 'direction''s values "
            "(up, down); did you mean 'up'?",
        ),
        (
            "trigger: {event: customer.rank_changed, conditions: {to_rank: [gold]}}",
            "trigger.conditions.to_rank[0]: 'gold' is not one of 'to_rank''s values (Bronze, "
            "Silver, Gold, Platinum: the configuration's loyalty.ranks); did you mean 'Gold'?",
        ),
        (  # a derived event's amount is a JSON number
            "trigger: {event: customer.first_purchase, conditions: {total: ['5000']}}",
            "trigger.conditions.total[0]: '5000' is not a number value ('total' is a number: "
            "write 5000 without quotes)",
        ),
        (
            "trigger: {event: customer.segment_changed, conditions: {to_segment: [Champion]}}",
            "trigger.conditions.to_segment[0]: 'Champion' is not one of 'to_segment''s values",
        ),
        (
            "trigger: {event: order.placed, conditions: {channel: [{numeric: ['>', 0]}]}}",
            "trigger.conditions.channel[0]: numeric compares numbers; 'channel' is a string",
        ),
        (  # an inbound amount's text is digits only
            "trigger: {event: order.placed, conditions: {total: ['5,000']}}",
            "trigger.conditions.total[0]: '5,000' is not a number value ('total' is a number "
            "(or its decimal text))",
        ),
        (  # nested fields: an order line's quantity is a number
            "trigger: {event: order.placed, conditions: {lines: {quantity: ['2']}}}",
            "trigger.conditions.lines.quantity[0]: '2' is not a number value",
        ),
        (  # a wildcard no direction matches
            "trigger: {event: customer.rank_changed, conditions: {direction: [{wildcard: 'd*up'}]}}",
            "trigger.conditions.direction[0]: wildcard 'd*up' matches none of 'direction''s values",
        ),
    ],
)
def test_a_trigger_condition_on_a_value_the_event_never_carries_is_refused(
    tmp_path: Path, trigger: str, expected: str
) -> None:
    found = program_problems(tmp_path, "", trigger)
    assert any(expected in issue for issue in found), found


def test_a_goal_condition_is_checked_against_its_event_s_fields(tmp_path: Path) -> None:
    found = program_problems(
        tmp_path, "goal: {event: customer.rank_changed, conditions: {direction: [Up]}}\n"
    )
    assert any("goal.conditions.direction[0]: 'Up' is not one of" in p for p in found), found


def test_ranks_are_the_configuration_s(tmp_path: Path) -> None:
    # Given a shop whose ranks are Member and VIP
    # When a program names Gold / Then it is refused with the shop's ranks; VIP is accepted
    found = program_problems(tmp_path, "audience: {rank: [Gold]}\n", cfg=RANKS_CONFIG)
    assert any("(Member, VIP: the configuration's loyalty.ranks)" in p for p in found), found
    trigger = "trigger: {event: customer.rank_changed, conditions: {to_rank: [VIP]}}"
    assert program_problems(tmp_path, "audience: {next_rank: [VIP]}\n", trigger, RANKS_CONFIG) == []
    assert program_problems(tmp_path, "audience: {rank: [VIP]}\n") != []


@pytest.mark.parametrize(
    ("extra", "trigger"),
    [
        ("audience: {lifecycle: [at_risk, dormant], rank: [Gold], age_band: [30s]}\n", ""),
        ("audience: {order_count: [2, {numeric: ['>=', 3]}], points_balance: [100.5]}\n", ""),
        ("audience: {rank: [{exists: true}], next_rank: [{exists: false}]}\n", ""),
        ("audience: {lifecycle: [{prefix: at}], rank: [{equals-ignore-case: gold}]}\n", ""),
        ("audience: {lifecycle: [{anything-but: [dormant, at_risk]}], gender: [female]}\n", ""),
        ("audience: {reachable: [{anything-but: [sms]}], consent: {line: [opted_in]}}\n", ""),
        ("audience: {region: [{prefix: Kan}], time_zone: [{wildcard: 'Asia/*'}]}\n", ""),
        ("audience: {lifecycle: [{wildcard: 'at_*'}], rank: [{wildcard: '*ol*'}]}\n", ""),
        ("", "trigger: {event: customer.rank_changed, conditions: {to_rank: [{wildcard: 'G*'}]}}"),
        ('audience: {rfm_segment: ["Can\'t lose", Champions], customer_id: [{prefix: c}]}\n', ""),
        ("audience: {$or: [{rank: [Gold]}, {lifecycle: [repeat]}]}\n", ""),
        (  # an inbound amount may come as its decimal text: "5000" can match
            "",
            "trigger: {event: order.placed, conditions: {total: ['5000', {numeric: ['>', 1]}], "
            "channel: [web], lines: {category: [tea, null]}}}",
        ),
        ("", "trigger: {event: customer.segment_changed, conditions: {from_segment: [null]}}"),
        (
            "",
            "trigger: {event: customer.rank_changed, conditions: {direction: [up], to_rank: [Gold]}}",
        ),
        (
            "",
            "trigger: {event: customer.birthday, conditions: {age: [20, 30], date: [{prefix: '2026-'}]}}",
        ),
        ("", "trigger: {event: order.placed, conditions: {occurred_at: [{prefix: '2026-01'}]}}"),
        ("goal: {event: order.placed, conditions: {total: [{numeric: ['>=', 3000]}]}}\n", ""),
    ],
)
def test_values_the_field_can_hold_are_accepted(tmp_path: Path, extra: str, trigger: str) -> None:
    assert program_problems(tmp_path, extra, trigger) == []


# --- campaigns and segments ----------------------------------------------------------------
def test_a_campaign_audience_and_goal_are_checked_the_same_way() -> None:
    campaign = parse_campaign(
        campaign_definition(
            audience={
                "conditions": {"lifecycle": ["neww"], "order_count": ["2"], "rank": ["gold"]}
            },
            goal={"event": "order.placed", "conditions": {"total": ["5000"], "channel": ["shop"]}},
        )
    )
    found = [str(issue) for issue in check_campaign("sale.yaml", campaign)]
    for expected in (
        "sale.yaml [audience]: conditions.lifecycle[0]: 'neww' is not one of",
        "sale.yaml [audience]: conditions.order_count[0]: '2' is not a number value",
        "sale.yaml [audience]: conditions.rank[0]: 'gold' is not one of",
        # the goal sees an order as converted() does: a total is a number there
        "sale.yaml [goal]: conditions.total[0]: '5000' is not a number value",
        "sale.yaml [goal]: conditions.channel[0]: 'shop' is not one of 'channel''s values",
    ):
        assert any(expected in p for p in found), (expected, found)
    good = parse_campaign(
        campaign_definition(
            audience={"conditions": {"lifecycle": ["repeat"], "rank": ["Gold"]}},
            goal={"event": "order.placed", "conditions": {"total": [{"numeric": [">", 0]}]}},
        )
    )
    assert check_campaign("sale.yaml", good) == []


def test_a_segment_is_checked_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nconditions: {lifecycle: [at-risk], points_balance: ['500']}\n"
    )
    (tmp_path / "good.yaml").write_text(
        "name: good\nconditions: {lifecycle: [at_risk], points_balance: [{numeric: ['>=', 500]}]}\n"
    )
    with pytest.raises(SegmentError) as refused:
        load_segments(tmp_path)
    [problem] = refused.value.problems
    assert problem.startswith("bad.yaml: ")
    assert "conditions.lifecycle[0]: 'at-risk' is not one of" in problem
    assert "conditions.points_balance[0]: '500' is not a number value" in problem
    (tmp_path / "bad.yaml").unlink()
    assert list(load_segments(tmp_path)) == ["good"]


# --- the rules are what the data holds ------------------------------------------------------
def test_the_view_s_values_are_what_its_rules_allow() -> None:
    # Given a customer with every field of the view filled in
    full = customer(
        rank="Gold",
        next_rank="Platinum",
        points_to_next_rank=10,
        points_balance=120,
        region="Kanto",
        prefecture="Tokyo",
        gender="female",
        occupation="engineer",
        birth_date=date(1990, 1, 1),
        last_order_at=T0,
        order_count=2,
        lifetime_value=Decimal("12.5"),
        rfm_segment="Champions",
        phone=PHONE,
        line_user_id=LINE_USER,
        devices={"d": Device(token="t" * 16, platform="ios", at=T0)},
        cart=CartState(
            cart_id="k", item_count=1, value=Decimal(1), currency="JPY", at=T0, stamp="s"
        ),
    )
    view = customer_view(full, T0, KizunaConfig())
    rules = view_value_rules(BUILTIN)
    # Then every value field has a rule, and every value it shows passes it
    assert set(VIEW_VALUES) | {"segments", "consent"} == set(VIEW_FIELDS)
    for name in VIEW_VALUES:
        rule = rules[name]
        assert isinstance(rule, ValueRule)
        values = view[name] if isinstance(view[name], list) else [view[name]]
        assert all(value_problem(rule, v) is None for v in values), (name, view[name])
    consent = rules["consent"]
    assert isinstance(consent, dict)
    assert value_problem(consent["email"], view["consent"]["email"]) is None


def test_the_closed_sets_are_what_the_view_computes() -> None:
    cfg = KizunaConfig()
    stages = {
        lifecycle(customer(order_count=n, last_order_at=T0 - timedelta(days=d)), T0, cfg)
        for n in (0, 1, 2)
        for d in range(0, 200, 10)
    }
    assert stages == set(LIFECYCLE_STAGES)
    assert {age_band(age) for age in range(0, 120)} == set(AGE_BANDS)
    consent = {
        ch: ConsentState(status="opted_in", at=T0, source="user", stamp="s")
        for ch in ("email", "sms", "push", "line", "card", "dm")
    }
    everywhere = customer(
        phone=PHONE,
        line_user_id=LINE_USER,
        devices={"d": Device(token="t" * 16, platform="ios", at=T0)},
        postal_address=PostalAddress(
            recipient_name="Hana",
            postal_code="100-0001",
            region="Tokyo",
            locality="Chiyoda",
            line1="1-1",
            country="JP",
        ),
        consent=consent,
    )
    assert reachable_channels(everywhere) == list(REACHABLE_CHANNELS)


def test_derived_events_carry_values_their_rules_allow() -> None:
    # A derived event as the bus carries it (JSON: amounts as numbers) passes its own rules
    at = datetime(2026, 1, 5, tzinfo=UTC)
    samples: list[Any] = [
        RankChanged(
            event_id="e",
            customer_id="c1",
            occurred_at=at,
            caused_by="x",
            from_rank="Silver",
            to_rank="Gold",
            direction=RankDirection.UP,
            rank_points=2100,
        ),
        SegmentChanged(
            event_id="e",
            customer_id="c1",
            occurred_at=at,
            caused_by="x",
            from_segment=None,
            to_segment="Champions",
            recency=5,
            frequency=5,
            monetary=5,
        ),
    ]
    for sample in samples:
        detail_type = next(t for t, m in DERIVED_MODELS.items() if m is type(sample))
        rules = event_value_rules(detail_type)
        for name, value in sample.model_dump(mode="json").items():
            rule = rules[name]
            assert isinstance(rule, ValueRule)
            assert value_problem(rule, value) is None, (detail_type, name, value)
    total = event_value_rules("customer.first_purchase")["total"]
    assert isinstance(total, ValueRule) and value_problem(total, 5000) is None


def test_conversion_rules_cover_what_converted_matches() -> None:
    assert set(CONVERSION_VALUES) == {"order_id", "total", "currency", "channel", "product_ids"}
    assert view_condition_problems({"rank": ["Gold"]}, "audience", BUILTIN) == []


def test_an_event_s_time_takes_text_operators_and_a_date_only_a_prefix() -> None:
    occurred = event_value_rules("order.placed")["occurred_at"]
    birthday = event_value_rules("customer.birthday")["date"]
    assert isinstance(occurred, ValueRule) and isinstance(birthday, ValueRule)
    assert value_problem(occurred, {"wildcard": "*T09:*"}) is None
    assert value_problem(occurred, {"prefix": "2026-01-05T"}) is None
    assert (
        value_problem(occurred, {"prefix": "Jan"}) == "prefix 'Jan' cannot begin an ISO 8601 time"
    )
    assert value_problem(birthday, {"suffix": "-01"}) == "suffix compares strings; 'date' is a date"
    assert value_problem(occurred, {"numeric": [">", 1]}) is not None
