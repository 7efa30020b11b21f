"""bench/engine_compare.py's figures and ratios on hand-made pipeline results (no runs)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench import engine_compare as ec
from tests.factories import ROUND_PRICES as ROUND


def pipe(**over: Any) -> dict[str, Any]:
    """A pipeline_bench result: 4 journeys, 5 journey messages and 10 campaign emails."""
    out: dict[str, Any] = {
        "events": 50,
        "journeys_started": 4,
        "wall_seconds": 100.0,
        "calls": {
            "send": {"dynamodb:GetItem": 8, "ses:SendEmail": 3},
            "journey": {"dynamodb:PutItem": 2},
            "evaluate": {"dynamodb:PutItem": 4, "stepfunctions:StartExecution": 2},
            "kizuna-KizunaCampaignsCampaignFunction47BE125A": {"ses:SendEmail": 10},
        },
        "invocations": {"send": 5, "journey": 0, "evaluate": 2},
        "mean_handler_ms": {"send": 100.0, "evaluate": 10.0},
        "functions": {"send": {"memory_mb": 1024, "architecture": "arm64"}},
        "items": {
            "send": {"dynamodb:GetItem": {"calls": 8, "items": 8, "strong": 0}},
            "journey": {"dynamodb:PutItem": {"calls": 2, "items": 2, "strong": 0}},
        },
        "queue_messages": {},
        "event_types": {},
        # pipeline_bench's sample of finished executions, by name after the first "-"
        "transitions": {
            "welcome": {"executions": 2, "mean": 5.0, "max": 6},
            "KizunaScoringStateMachine6A99C288": {"executions": 2, "mean": 3.0, "max": 3},
            "KizunaCampaignsStateMachine6A552FB4": {"executions": 1, "mean": 40.0, "max": 40},
        },
        "summary": {
            "campaigns": ["month-end-sale"],
            "messages": {
                "welcome": {"email": 3, "line": 1},
                "winback": {"sms": 1},
                "month-end-sale": {"email": 10},
            },
            "outbox": {"email": 13, "sms": 1, "push": 0, "line": 1},
        },
        # what the worker adds: every state entered, by state machine
        "engine_compare": {
            "measure_seconds": 4.0,
            "campaign_ids": ["month-end-sale"],
            "machines": {
                "Kizuna-welcome": {"executions": {"SUCCEEDED": 2}, "states_entered": 12},
                "Kizuna-winback": {"executions": {"RUNNING": 2}, "states_entered": 3},
                "kizuna-KizunaScoringStateMachine6A99C288": {
                    "executions": {"SUCCEEDED": 2},
                    "states_entered": 6,
                },
                "kizuna-KizunaCampaignsStateMachine6A552FB4": {
                    "executions": {"SUCCEEDED": 1},
                    "states_entered": 40,
                },
            },
        },
    }
    out.update(over)
    return out


@pytest.mark.parametrize(
    ("name", "journey"),
    [
        ("Kizuna-welcome", True),
        ("Kizuna-cohort-engine", True),
        ("kizuna-KizunaScoringStateMachine6A99C288", False),
        ("kizuna-KizunaCampaignsStateMachine6A552FB4", False),
    ],
)
def test_journey_machines_are_neither_scoring_nor_campaigns(name: str, journey: bool) -> None:
    assert ec.is_journey_machine(name) is journey


def test_journey_messages_leave_campaign_sends_out() -> None:
    assert ec.journey_messages_by_channel(pipe()) == {"email": 3, "line": 1, "sms": 1}


def test_states_entered_counted_over_journey_machines_only() -> None:
    assert ec.journey_states_entered(pipe()) == 15  # 12 + 3: scoring and campaign left out


def test_states_entered_without_the_count_is_the_benchs_estimate() -> None:
    older = pipe()
    del older["engine_compare"]
    # the finished journeys' mean (5, scoring and campaign left out) x 4 journeys started
    assert ec.journey_states_entered(older) == 20


def test_the_cost_model_sees_journey_messages_and_the_states_counted() -> None:
    adapted = ec.for_cost_model(pipe())
    assert adapted["summary"]["outbox"] == {"email": 3, "line": 1, "sms": 1}
    assert set(adapted["transitions"]) == {"KizunaScoringStateMachine6A99C288", "journeys"}
    j = adapted["transitions"]["journeys"]
    assert j["mean"] * adapted["journeys_started"] == pytest.approx(15)
    assert pipe()["summary"]["outbox"]["email"] == 13  # the input is left alone


def test_figures() -> None:
    f = ec.figures(pipe(), ROUND)
    assert f["transitions_per_message"] == pytest.approx(15 / 5)
    assert f["send_calls_per_message"] == pytest.approx((8 + 3 + 2) / 5)  # send + helper
    assert f["calls_per_entry"] == pytest.approx(6 / 4)
    assert f["wall_seconds"] == pytest.approx(96.0)
    # delivery: send requests 5e-6, compute 5 x 0.1 s x 1 GB x 1e-5 = 5e-6, helper writes
    # 2 WRU 4e-6, send reads 8 x 0.5 RRU 4e-6, 15 transitions 1.5e-4: 1.68e-4 over 5
    assert f["usd_per_million"] == pytest.approx(1.68e-4 / 5 * 1e6)
    assert f["units"]["journey_messages"] == 5
    assert f["units"]["campaign_messages"] == 10


def test_no_messages_no_division() -> None:
    empty = pipe(summary={"campaigns": [], "messages": {}, "outbox": {}}, journeys_started=0)
    f = ec.figures(empty, ROUND)
    assert f["transitions_per_message"] == 0.0
    assert f["send_calls_per_message"] == 0.0
    assert f["calls_per_entry"] == 0.0


def test_ratios_goals_and_rows() -> None:
    old = ec.figures(pipe(), ROUND)
    faster = copy.deepcopy(pipe(wall_seconds=28.0))  # 24 s after 4 s of histories: 4x
    faster["engine_compare"]["machines"]["Kizuna-welcome"]["states_entered"] = 0
    faster["engine_compare"]["machines"]["Kizuna-winback"]["states_entered"] = 2
    new = ec.figures(faster, ROUND)
    ratio = ec.ratios(old, new)
    assert ratio["transitions_per_message"] == pytest.approx(2 / 15)
    assert ratio["wall_seconds"] == pytest.approx(24 / 96)
    assert ratio["calls_per_entry"] == pytest.approx(1.0)
    met = ec.goals_met(new, ratio)
    assert met["transitions_per_message"]  # 0.4 <= 0.5
    assert met["wall_seconds"]  # 4x faster >= 3x
    assert met["calls_per_entry"]  # 1.5 <= 1.5
    assert not met["send_calls_per_message"]  # 2.6 > 2.0
    result = {"old": old, "new": new, "ratio": ratio, "goals_met": met}
    rows = {row[0]: row for row in ec.table_rows(result)}
    wall = rows[ec.FIGURES["wall_seconds"][0]]
    assert wall[1:4] == ["96.0", "24.0", "0.250 (4.00x faster)"]
    assert wall[-1] == "yes"


def test_ratio_of_a_zero_is_none() -> None:
    old = ec.figures(pipe(), ROUND)
    zero = {**old, "transitions_per_message": 0.0}
    assert ec.ratios(zero, old)["transitions_per_message"] is None


def test_both_sides_are_priced_on_the_write_units_the_worker_measured() -> None:
    """The worker's meter (the same on both sides) replaces whatever the tree's own bench
    measured; a side without it keeps the one-unit-an-item formula."""
    measured = {"send": {"dynamodb:PutItem": {"wru_table": 3, "wru_index": 5}}}
    mine = pipe(
        items={
            "send": {"dynamodb:GetItem": {"calls": 8, "items": 8, "strong": 0}},
            "journey": {
                "dynamodb:PutItem": {
                    "calls": 2,
                    "items": 2,
                    "strong": 0,
                    "wru_table": 99,
                    "wru_index": 99,
                }
            },
        }
    )
    mine["engine_compare"] = {**mine["engine_compare"], "write_units": measured}
    items = ec.for_cost_model(mine)["items"]
    assert items["send"]["dynamodb:PutItem"] == {"wru_table": 3, "wru_index": 5}
    assert "wru_table" not in items["journey"]["dynamodb:PutItem"]  # the tree's own: dropped
    assert "wru_table" not in mine["items"]["send"].get("dynamodb:PutItem", {})  # not changed
    plain = pipe()
    assert ec.for_cost_model(plain)["items"] == plain["items"]
    # priced: send's 3 + 5 measured units and journey's 2 by the formula (its own dropped),
    # against the formula's 2 alone
    with_units = ec.figures(mine, ROUND)["usd_per_million_by_service"]["DynamoDB writes"]
    formula = ec.figures(plain, ROUND)["usd_per_million_by_service"]["DynamoDB writes"]
    assert with_units == pytest.approx(5 * formula)


def test_the_delivery_sides_write_units_split_between_table_and_indexes() -> None:
    mine = pipe()
    mine["engine_compare"] = {
        **mine["engine_compare"],
        "write_units": {
            "send": {
                "dynamodb:TransactWriteItems": {"wru_table": 8, "wru_index": 4},
                "dynamodb:BatchWriteItem": {"wru_table": 2, "wru_index": 3},
            },
            "evaluate": {"dynamodb:TransactWriteItems": {"wru_table": 100, "wru_index": 100}},
        },
    }
    units = ec.figures(mine, ROUND)["units"]
    assert (units["write_units_table"], units["write_units_index"]) == (10.0, 7.0)
    assert ec.per_message(units, "write_units_index") == f"{7 / 5:.2f}"  # 5 journey messages
    plain = ec.figures(pipe(), ROUND)["units"]
    assert plain["write_units_table"] is None
    assert ec.per_message(plain, "write_units_table") == "-"
