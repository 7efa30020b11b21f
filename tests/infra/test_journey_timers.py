"""Journey timers: a cohort execution due later is started by a one-time EventBridge
Scheduler schedule, in the journeys' own group, run as a role that may only start the
journeys and dead-letter to evaluate's DLQ; evaluate, the journey helper and send create
those schedules (in that group only) and pass that role (only). Ingest creates one there for
each erasure's sweep (named ``erasure.*``, only those), run as a role of its own that may
only send to ingest's queue (or its DLQ); the sweep runs after every function's timeout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from infra_helpers import (
    StackIds,
    actions_of,
    arn,
    as_list,
    environment,
    function_statements,
    of_type,
    resources_for,
    statements_of,
)

from kizuna.domain.privacy import SWEEP_AFTER
from kizuna.runtime.settings import (
    ENV_DEAD_LETTER_QUEUE_ARN,
    ENV_ERASURE_SWEEP_GROUP,
    ENV_ERASURE_SWEEP_ROLE_ARN,
    ENV_INGEST_QUEUE_ARN,
    ENV_JOURNEY_SCHEDULE_DLQ_ARN,
    ENV_JOURNEY_SCHEDULE_GROUP,
    ENV_JOURNEY_SCHEDULER_ROLE_ARN,
)
from kizuna_infra import names
from kizuna_infra.programs import journey_schedule_group_name
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

LogicalId = Callable[[Any], str]


class Ids(StackIds):
    def __init__(self, stack: KizunaStack, logical_id: LogicalId) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        p = k.programs
        self.prefix = p.prefix
        self.group_name = p.journey_schedule_group_name
        self.group = logical_id(p.journey_schedule_group)
        self.role = logical_id(p.journey_scheduler_role)
        self.evaluate_dlq = logical_id(p.evaluate.dead_letter_queue)
        self.starters = {
            "evaluate": logical_id(p.evaluate.function),
            "journey": logical_id(p.journey_helper.function),
            "send": logical_id(k.delivery.send.function),
        }
        self.ingest = logical_id(k.ingest.function)
        self.ingest_queue = logical_id(k.ingest.queue)
        self.ingest_dlq = logical_id(k.ingest.dead_letter_queue)
        self.sweep_role = logical_id(p.erasure_sweep_role)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: LogicalId) -> Ids:
    return Ids(stack, logical_id)


def scoped_arn(service: str, resource: str) -> dict[str, Any]:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` as CDK's format_arn."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":{service}:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


def test_the_journeys_have_their_own_schedule_group(resources: dict[str, Any], ids: Ids) -> None:
    groups = of_type(resources, "AWS::Scheduler::ScheduleGroup")
    assert groups[ids.group]["Properties"] == {"Name": "Kizuna-journeys"}
    assert ids.group_name == "Kizuna-journeys"
    # beside the campaigns' group, not in it
    assert len(groups) == 2


def test_the_group_name_fits_schedulers_limit_whatever_the_stack_name() -> None:
    stack = cdk.Stack(cdk.App(), "S" * 120)
    name = journey_schedule_group_name(stack)
    assert len(name) == names.JOURNEY_SCHEDULE_GROUP_MAX_LENGTH
    assert name.endswith("-journeys") and name.startswith("S" * 55)


def test_only_schedules_of_the_journey_group_may_assume_the_role(
    resources: dict[str, Any], ids: Ids
) -> None:
    [statement] = resources[ids.role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            "aws:SourceArn": scoped_arn("scheduler", f"schedule-group/{ids.group_name}"),
        }
    }


def test_the_role_starts_the_journeys_and_dead_letters_to_evaluates_dlq_only(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = statements_of(resources, ids.role)
    assert actions_of(statements) == {"states:StartExecution", "sqs:SendMessage"}
    # the stack's journeys, by their name prefix (what the journey and send functions get)
    assert resources_for(statements, "states:StartExecution") == [
        scoped_arn("states", f"stateMachine:{ids.prefix}*")
    ]
    # evaluate's DLQ (already alarmed; `kizuna dlq redrive evaluate`), no queue of its own
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids.evaluate_dlq)]
    assert all(s["Effect"] == "Allow" for s in statements)


@pytest.mark.parametrize("function", ["evaluate", "journey", "send"])
def test_each_starter_knows_the_group_the_role_and_the_dlq(
    resources: dict[str, Any], ids: Ids, function: str
) -> None:
    env = environment(resources, ids.starters[function])
    assert env[ENV_JOURNEY_SCHEDULE_GROUP] == {"Ref": ids.group}
    assert env[ENV_JOURNEY_SCHEDULER_ROLE_ARN] == arn(ids.role)
    assert env[ENV_JOURNEY_SCHEDULE_DLQ_ARN] == arn(ids.evaluate_dlq)


def test_the_sweeps_role_is_assumed_by_the_groups_schedules_and_sends_to_ingest_only(
    resources: dict[str, Any], ids: Ids
) -> None:
    [trust] = resources[ids.sweep_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == scoped_arn(
        "scheduler", f"schedule-group/{ids.group_name}"
    )
    statements = statements_of(resources, ids.sweep_role)
    assert actions_of(statements) == {"sqs:SendMessage"}
    # ingest's queue, or its DLQ (`kizuna dlq redrive ingest`)
    assert resources_for(statements, "sqs:SendMessage") == [
        arn(ids.ingest_queue),
        arn(ids.ingest_dlq),
    ]


def test_ingest_knows_where_an_erasures_sweep_goes(resources: dict[str, Any], ids: Ids) -> None:
    env = environment(resources, ids.ingest)
    assert env[ENV_ERASURE_SWEEP_GROUP] == {"Ref": ids.group}
    assert env[ENV_ERASURE_SWEEP_ROLE_ARN] == arn(ids.sweep_role)
    assert env[ENV_INGEST_QUEUE_ARN] == arn(ids.ingest_queue)
    assert env[ENV_DEAD_LETTER_QUEUE_ARN] == arn(ids.ingest_dlq)


def test_ingest_creates_sweeps_only_and_passes_the_sweeps_role_only(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.ingest)
    assert {a for a in actions_of(statements) if a.startswith("scheduler:")} == {
        "scheduler:CreateSchedule"
    }
    assert resources_for(statements, "scheduler:CreateSchedule") == [
        scoped_arn("scheduler", f"schedule/{ids.group_name}/erasure.*")
    ]
    assert resources_for(statements, "iam:PassRole") == [arn(ids.sweep_role)]


def test_the_sweep_runs_after_every_function_of_the_stack_has_timed_out(
    resources: dict[str, Any],
) -> None:
    # whatever read the customer before the erasure has written (or failed) by then
    timeouts = [
        int(r["Properties"]["Timeout"])
        for r in of_type(resources, "AWS::Lambda::Function").values()
    ]
    assert timeouts and max(timeouts) < SWEEP_AFTER.total_seconds()


@pytest.mark.parametrize("function", ["evaluate", "journey", "send"])
def test_each_starter_creates_schedules_in_the_group_and_passes_that_role_only(
    resources: dict[str, Any], ids: Ids, function: str
) -> None:
    statements = function_statements(resources, ids.starters[function])
    # CreateSchedule only, on the journeys' group only
    assert {a for a in actions_of(statements) if a.startswith("scheduler:")} == {
        "scheduler:CreateSchedule"
    }
    assert resources_for(statements, "scheduler:CreateSchedule") == [
        scoped_arn("scheduler", f"schedule/{ids.group_name}/*")
    ]
    # PassRole on the journeys' scheduler role only
    assert {a for a in actions_of(statements) if a.startswith("iam:")} == {"iam:PassRole"}
    assert resources_for(statements, "iam:PassRole") == [arn(ids.role)]
    passing = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert all(s["Effect"] == "Allow" for s in passing)


def test_the_group_is_an_output(template_json: dict[str, Any], ids: Ids) -> None:
    output = template_json["Outputs"][names.OUTPUT_JOURNEY_SCHEDULE_GROUP]
    assert output["Value"] == {"Ref": ids.group}
    assert json.dumps(output["Description"]).count("evaluate DLQ") == 1
