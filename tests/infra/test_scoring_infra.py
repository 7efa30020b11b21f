"""Scoring: the score function, the daily scoring state machine and its schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_helpers import (
    actions_of,
    arn,
    environment,
    function_statements,
    index_arn,
    of_type,
    qualified_arn,
    resources_for,
    statements_of,
)

from kizuna.runtime.settings import ScoreSettings
from kizuna.scoring.job import ScoringRequest
from kizuna_infra import names
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra


def _token(value: Any) -> str:
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{value['Fn::GetAtt'][0]}.Arn>"
    return str(value)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: Any) -> dict[str, str]:
    k = stack.kizuna
    s = k.scoring
    return {
        "function": logical_id(s.score.function),
        "machine": logical_id(s.state_machine),
        "machine_role": logical_id(s.state_machine.role),
        "schedule": logical_id(s.schedule),
        "dlq": logical_id(s.dead_letter_queue),
        "scheduler_role": logical_id(s.scheduler_role),
        "customers": logical_id(k.tables.customers),
        "activity": logical_id(k.tables.activity),
        "products": logical_id(k.tables.products),
        "snapshots": logical_id(k.tables.snapshots),
        "bucket": logical_id(k.tables.analytics),
        "bus": logical_id(k.bus.bus),
    }


@pytest.fixture(scope="module")
def asl(resources: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    parts = resources[ids["machine"]]["Properties"]["DefinitionString"]["Fn::Join"][1]
    definition: dict[str, Any] = json.loads("".join(_token(p) for p in parts))
    return definition


def test_boundaries_then_a_distributed_map_over_scan_segments(
    asl: dict[str, Any], ids: dict[str, str], stack: KizunaStack
) -> None:
    first = asl["States"][asl["StartAt"]]
    assert first["Parameters"]["FunctionName"] == f"<{ids['function']}.Arn>"
    segments = stack.kizuna.config.scoring.scan_segments
    payload = dict(first["Parameters"]["Payload"])
    assert payload.pop("run.$") == "$"  # the execution's input rides along
    assert payload == {"action": "boundaries", "total_segments": segments}
    ScoringRequest.model_validate({**payload, "run": {}})  # the schedule's input
    ScoringRequest.model_validate({**payload, "run": {"as_of": None}})  # kizuna scoring run
    ScoringRequest.model_validate({**payload, "run": {"as_of": "1997-03-01T00:00:00Z"}})
    mapped = asl["States"][first["Next"]]
    assert mapped["Type"] == "Map"
    assert mapped["ItemsPath"] == "$.segments"
    assert mapped["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert mapped["ItemSelector"]["segment.$"] == "$$.Map.Item.Value"
    assert mapped["ItemSelector"]["total_segments"] == segments
    assert mapped["MaxConcurrency"] >= 1
    inner = mapped["ItemProcessor"]["States"][mapped["ItemProcessor"]["StartAt"]]
    assert inner["Parameters"]["FunctionName"] == f"<{ids['function']}.Arn>"


def test_every_task_retries_failures_with_backoff(asl: dict[str, Any]) -> None:
    first = asl["States"][asl["StartAt"]]
    mapped = asl["States"][first["Next"]]
    inner = mapped["ItemProcessor"]["States"][mapped["ItemProcessor"]["StartAt"]]
    for task in (first, inner):
        retry = {tuple(r["ErrorEquals"]): r for r in task["Retry"]}
        assert retry[("States.TaskFailed",)]["MaxAttempts"] >= 2
        assert retry[("States.TaskFailed",)]["BackoffRate"] > 1
    assert asl["TimeoutSeconds"] > 0


def test_score_function_reads_and_writes_customers_only_and_puts_events(
    resources: dict[str, Any], ids: dict[str, str]
) -> None:
    env = environment(resources, ids["function"])
    assert {n for n, f in ScoreSettings.model_fields.items() if f.is_required()} <= set(env)
    statements = function_statements(resources, ids["function"])
    customers = [arn(ids["customers"]), index_arn(ids["customers"])]
    products, snapshots = arn(ids["products"]), arn(ids["snapshots"])
    assert resources_for(statements, "dynamodb:Scan") == [*customers, products]
    assert resources_for(statements, "dynamodb:Query") == [snapshots]
    assert resources_for(statements, "dynamodb:PutItem") == [*customers, products, snapshots]
    assert resources_for(statements, "dynamodb:BatchGetItem") == customers
    assert resources_for(statements, "dynamodb:UpdateItem") == [products]
    assert resources_for(statements, "dynamodb:BatchWriteItem") == [snapshots]
    assert resources_for(statements, "dynamodb:DeleteItem") == []
    assert resources_for(statements, "events:PutEvents") == [arn(ids["bus"])]
    assert not any(ids["activity"] in json.dumps(s) for s in statements)


def test_state_machine_invokes_only_the_score_function_and_logs_without_data(
    resources: dict[str, Any], ids: dict[str, str]
) -> None:
    statements = statements_of(resources, ids["machine_role"])
    assert resources_for(statements, "lambda:InvokeFunction") == [
        arn(ids["function"]),
        qualified_arn(ids["function"]),
    ]
    # the Distributed Map's child executions: this state machine only
    assert resources_for(statements, "states:StartExecution") == [{"Ref": ids["machine"]}]
    logging = resources[ids["machine"]]["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False


def test_daily_schedule_starts_the_run_with_retries_and_a_dlq(
    resources: dict[str, Any], ids: dict[str, str]
) -> None:
    schedule = resources[ids["schedule"]]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Asia/Tokyo"
    target = schedule["Target"]
    assert target["Arn"] == {"Ref": ids["machine"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}
    assert target["DeadLetterConfig"] == {"Arn": arn(ids["dlq"])}
    statements = statements_of(resources, ids["scheduler_role"])
    assert actions_of(statements) == {"states:StartExecution", "sqs:SendMessage"}
    assert resources_for(statements, "states:StartExecution") == [{"Ref": ids["machine"]}]
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids["dlq"])]
    dlq = of_type(resources, "AWS::SQS::Queue")[ids["dlq"]]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True


def test_score_function_writes_work_files_and_the_export_under_their_prefixes_only(
    resources: dict[str, Any], ids: dict[str, str]
) -> None:
    statements = function_statements(resources, ids["function"])

    def objects(prefix: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [{"Fn::GetAtt": [ids["bucket"], "Arn"]}, f"/{prefix}/*"]]}

    assert resources_for(statements, "s3:PutObject") == [objects("work"), objects("snapshots")]
    assert resources_for(statements, "s3:GetObject") == [objects("work")]
    assert resources_for(statements, "s3:DeleteObject") == []


def test_run_ends_with_finish_after_the_map_keeping_as_of(asl: dict[str, Any]) -> None:
    states = asl["States"]
    the_map = states[names.SCORING_MAP_STATE]
    assert the_map["ResultPath"] == "$.shards"
    assert the_map["Next"] == names.SCORING_FINISH_STATE
    finish = states[names.SCORING_FINISH_STATE]
    assert finish["Parameters"]["Payload"]["action"] == "finish"
    assert finish["Parameters"]["Payload"]["as_of.$"] == "$.as_of"
    assert finish["End"] is True
    assert finish["Retry"][0]["MaxAttempts"] >= 2
