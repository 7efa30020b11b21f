"""Starting cohort executions: now, or by a journey timer (a one-time Scheduler schedule)
when the execution is due later — the state machines have no Wait before their first step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.stepfunctions import (
    START_EXECUTION_TARGET,
    JourneyTimers,
    StepFunctionsStarter,
    at_expression,
    timer_name,
)
from kizuna.programs.cohorts import execution_input
from kizuna.runtime.clock import FixedClock

NOW = datetime(2026, 12, 1, 8, 30, 15, tzinfo=UTC)
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/journey-timers"
DLQ = "arn:aws:sqs:us-east-1:123456789012:evaluate-dlq"
GROUP = "Kizuna-journeys"
PROGRAM = "cart-abandonment"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        scheduler = boto3.client("scheduler", region_name=REGION)
        scheduler.create_schedule_group(Name=GROUP)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = sfn.create_state_machine(
            name=f"Kizuna-{PROGRAM}",
            definition=json.dumps({"StartAt": "s", "States": {"s": {"Type": "Succeed"}}}),
            roleArn=role,
        )["stateMachineArn"]
        prefix = machine[: -len(PROGRAM)]
        yield sfn, scheduler, prefix


def starter(aws: tuple[Any, Any, str], *, timers: bool = True) -> StepFunctionsStarter:
    sfn, scheduler, prefix = aws
    return StepFunctionsStarter(
        sfn,
        prefix,
        JourneyTimers(scheduler, GROUP, ROLE, DLQ) if timers else None,
        FixedClock(NOW),
    )


def test_an_execution_due_now_starts_at_once_under_its_name(aws: tuple[Any, Any, str]) -> None:
    sfn, scheduler, prefix = aws
    payload = execution_input(PROGRAM, "c1", "root", "remind", NOW - timedelta(seconds=1))
    assert starter(aws).start(PROGRAM, "c1", payload) is True
    # a second start finds it (the same input: Step Functions answers as it did): nothing new
    starter(aws).start(PROGRAM, "c1", payload)
    executions = sfn.list_executions(stateMachineArn=f"{prefix}{PROGRAM}")["executions"]
    assert [e["name"] for e in executions] == ["c1"]
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []


def test_an_execution_due_later_is_a_timer_that_starts_it_then(aws: tuple[Any, Any, str]) -> None:
    sfn, scheduler, prefix = aws
    due = NOW + timedelta(hours=10, microseconds=5)
    payload = execution_input(PROGRAM, "c2", "root", "remind", due)
    assert starter(aws).start(PROGRAM, "c2", payload) is True
    # no execution yet: one schedule, in the journeys' group, that deletes itself once run
    assert sfn.list_executions(stateMachineArn=f"{prefix}{PROGRAM}")["executions"] == []
    found = scheduler.get_schedule(GroupName=GROUP, Name=timer_name(PROGRAM, "c2"))
    # whole seconds, rounded up: never before the instant
    assert found["ScheduleExpression"] == "at(2026-12-01T18:30:16)"
    assert found["ScheduleExpressionTimezone"] == "UTC"
    assert found["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert found["ActionAfterCompletion"] == "DELETE"
    target = found["Target"]
    assert target["Arn"] == START_EXECUTION_TARGET
    assert target["RoleArn"] == ROLE
    assert target["DeadLetterConfig"] == {"Arn": DLQ}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    # the very request a direct start makes: the machine, the execution's name and input
    request = json.loads(target["Input"])
    assert request == {
        "StateMachineArn": f"{prefix}{PROGRAM}",
        "Name": "c2",
        "Input": json.dumps(payload, default=str),
    }
    # a second start (another group of the cohort, a redelivered batch) finds the timer
    assert starter(aws).start(PROGRAM, "c2", payload) is False
    assert len(scheduler.list_schedules(GroupName=GROUP)["Schedules"]) == 1


def test_without_timers_an_execution_due_later_is_refused(aws: tuple[Any, Any, str]) -> None:
    payload = execution_input(PROGRAM, "c3", "root", "remind", NOW + timedelta(minutes=5))
    with pytest.raises(RuntimeError, match="JOURNEY_SCHEDULE_GROUP"):
        starter(aws, timers=False).start(PROGRAM, "c3", payload)


def test_timer_names_fit_scheduler_and_tell_programs_apart() -> None:
    long_program = "p" * 40
    name = timer_name(long_program, "x" * 80)
    assert len(name) <= 64 and name.replace("-", "").isalnum()
    assert timer_name("a", "b-c") != timer_name("a-b", "c")
    assert at_expression(datetime(2026, 1, 2, 9, 0, tzinfo=UTC)) == "at(2026-01-02T09:00:00)"
