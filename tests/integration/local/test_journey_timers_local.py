"""Journey timers on the local runtime: one-time Scheduler schedules whose target is the
universal ``aws-sdk:sfn:startExecution``, created at run time (by a function, or a client),
start the named execution at their instant, in virtual time order with Wait states; they
delete themselves once run; a start Step Functions refuses goes to the schedule's DLQ with
Scheduler's attributes, from which ``kizuna dlq redrive`` replays it."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from kizuna.adapters.stepfunctions import (
    START_EXECUTION_TARGET,
    JourneyTimers,
    StepFunctionsStarter,
)
from kizuna_tools.dlq import SFN_START_EXECUTION_TARGET as DLQ_TOOL_TARGET
from kizuna_tools.dlq import DeadLetterQueue
from kizuna_tools.local import DEFAULT_START, LocalCloud
from kizuna_tools.local.schedules import SFN_START_EXECUTION_TARGET
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import probe_template, state_machine, with_resources

pytestmark = pytest.mark.integration

GROUP = "kizuna-journeys"
ROLE = "arn:aws:iam::123456789012:role/kizuna-journey-timers"  # not checked locally
TIMER_HANDLER = """
import json
import os

import boto3


def handler(event, context):
    request = {
        "StateMachineArn": os.environ["MACHINE"],
        "Name": event["name"],
        "Input": json.dumps({"customer_id": event["customer_id"]}),
    }
    boto3.client("scheduler").create_schedule(
        Name=event["schedule"],
        GroupName=os.environ["GROUP"],
        ScheduleExpression="at(" + event["at"] + ")",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Description="Kizuna journey Timed/" + event["name"],
        Target={
            "Arn": "arn:aws:scheduler:::aws-sdk:sfn:startExecution",
            "RoleArn": os.environ["ROLE"],
            "Input": json.dumps(request),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
            "DeadLetterConfig": {"Arn": os.environ["DLQ"]},
        },
    )
    return {"scheduled": event["schedule"]}
"""


@pytest.fixture
def template() -> dict[str, Any]:
    """The probe template, a journey group, a state machine that sends at once (``Timed``)
    and a function creating timers for it (``Timer``)."""
    base = probe_template()
    timer = json.loads(json.dumps(base["Resources"]["Nightly"]))
    timer["Metadata"] = {"kizuna:function": "timer"}
    timer["Properties"]["Environment"]["Variables"] = {
        "GROUP": {"Ref": "JourneyGroup"},
        "MACHINE": {"Ref": "Timed"},
        "ROLE": {"Fn::GetAtt": ["Role", "Arn"]},
        "DLQ": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    }
    send_now = {
        "StartAt": "Send",
        "States": {
            "Send": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": "${Sender}",
                    "Payload": {"customer_id.$": "$.customer_id"},
                },
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    return with_resources(
        base,
        {
            "JourneyGroup": {
                "Type": "AWS::Scheduler::ScheduleGroup",
                "Properties": {"Name": GROUP},
            },
            "Timed": state_machine(send_now),
            "Timer": timer,
        },
    )


@pytest.fixture
def cloud(local_cloud_factory: CloudFactory, template: dict[str, Any], project_root: Path) -> Any:
    folder = project_root / "functions" / "timer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(textwrap.dedent(TIMER_HANDLER))
    return local_cloud_factory(template, project_root=project_root)


def at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def sent(cloud: LocalCloud) -> dict[str, str]:
    """customer id -> when the Sender sent to it."""
    return {
        str(i["customer_id"]).removeprefix("sent#"): str(i["sent_at"])
        for i in cloud.scan("Customers")
        if str(i["customer_id"]).startswith("sent#")
    }


def executions(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    """Name -> input of every execution of ``Timed``."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    listed = sfn.list_executions(stateMachineArn=cloud.resources["Timed"].arn)["executions"]
    return {
        e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in listed
    }


def timer_request(cloud: LocalCloud, name: str, machine: str | None = None) -> dict[str, Any]:
    return {
        "StateMachineArn": machine or cloud.resources["Timed"].arn,
        "Name": name,
        "Input": json.dumps({"customer_id": name}),
    }


def create_timer(
    cloud: LocalCloud, schedule: str, when: datetime, request: dict[str, Any], target: str = ""
) -> str:
    return str(
        cloud.client("scheduler").create_schedule(
            Name=schedule,
            GroupName=GROUP,
            ScheduleExpression=f"at({at(when)})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={
                "Arn": target or SFN_START_EXECUTION_TARGET,
                "RoleArn": ROLE,
                "Input": json.dumps(request),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
                "DeadLetterConfig": {"Arn": cloud.resources["DeadLetterQueue"].arn},
            },
        )["ScheduleArn"]
    )


def pending_timers(cloud: LocalCloud) -> list[str]:
    found = cloud.client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]
    return sorted(s["Name"] for s in found)


def test_the_universal_target_is_the_one_the_app_and_the_dlq_tool_name() -> None:
    assert SFN_START_EXECUTION_TARGET == START_EXECUTION_TARGET == DLQ_TOOL_TARGET


def test_timers_a_function_creates_start_their_execution_at_their_instant(
    cloud: LocalCloud,
) -> None:
    # Given a journey waiting a week, and two timers a function creates at run time: one
    # due before the week ends, one after
    boto3.client("stepfunctions", region_name="us-east-1").start_execution(
        stateMachineArn=cloud.resources["Journey"].arn,
        name="week",
        input=json.dumps({"detail": {"customer_id": "week"}}),
    )
    cloud.wait_for_executions()
    early, late = DEFAULT_START + timedelta(days=2), DEFAULT_START + timedelta(days=9, hours=12)
    for name, when in (("early", early), ("late", late)):
        invocation = cloud.invoke(
            "Timer",
            {"schedule": f"t-{name}", "name": name, "customer_id": name, "at": at(when)},
        )
        assert invocation.ok, invocation.error
    assert pending_timers(cloud) == ["t-early", "t-late"]

    # When a day passes, nothing has started
    cloud.advance(days=1)
    assert executions(cloud) == {} and sent(cloud) == {}

    # When two weeks pass at once
    cloud.advance(days=14)

    # Then each ran at its own instant, the week's Wait in between (virtual time order)
    assert sent(cloud) == {
        "early": early.isoformat(),
        "week": (DEFAULT_START + timedelta(days=7)).isoformat(),
        "late": late.isoformat(),
    }
    # under the name and with the input of the StartExecution request
    assert executions(cloud) == {
        "early": {"customer_id": "early"},
        "late": {"customer_id": "late"},
    }
    # and the timers deleted themselves (ActionAfterCompletion DELETE); nothing failed
    assert pending_timers(cloud) == []
    assert cloud.dlq_messages()["DeadLetterQueue"] == []
    assert cloud.delivery_errors == []


def test_a_refused_start_is_dead_lettered_with_schedulers_attributes_and_redriven(
    cloud: LocalCloud,
) -> None:
    # Given a timer, a second timer for the same execution name, one for a machine that does
    # not exist, and one for a universal target the local runtime does not emulate
    first = DEFAULT_START + timedelta(hours=1)
    create_timer(cloud, "first", first, timer_request(cloud, "dup"))
    second = create_timer(
        cloud, "second", first + timedelta(hours=1), timer_request(cloud, "dup") | {"Input": "{}"}
    )
    gone_machine = cloud.resources["Timed"].arn + "-gone"
    gone = create_timer(
        cloud, "gone", first + timedelta(hours=2), timer_request(cloud, "x", gone_machine)
    )
    other = "arn:aws:scheduler:::aws-sdk:sqs:sendMessage"
    create_timer(cloud, "other", first + timedelta(hours=3), {"QueueUrl": "q"}, target=other)

    # When they are due
    cloud.advance(hours=4)

    # Then the first started the execution; the second could not (it exists)
    assert executions(cloud) == {"dup": {"customer_id": "dup"}}
    assert sent(cloud) == {"dup": first.isoformat()}
    # and the refused starts are in the DLQ: the request as the body, why, and where from
    letters = {
        m["message_attributes"]["SCHEDULE_ARN"]["StringValue"]: m
        for m in cloud.dlq_messages()["DeadLetterQueue"]
    }
    assert set(letters) == {second, gone}
    for schedule, code, name in (
        (second, "ExecutionAlreadyExists", "dup"),
        (gone, "StateMachineDoesNotExist", "x"),
    ):
        attributes = {
            k: v["StringValue"] for k, v in letters[schedule]["message_attributes"].items()
        }
        assert attributes["ERROR_CODE"] == code
        assert attributes["TARGET_ARN"] == SFN_START_EXECUTION_TARGET
        assert attributes["ERROR_MESSAGE"] and attributes["EXECUTION_ID"]
        assert json.loads(letters[schedule]["body"])["Name"] == name
    # and every failure is reported, the target the runtime does not deliver to included
    assert [(e["target"], e["code"]) for e in cloud.delivery_errors] == [
        (SFN_START_EXECUTION_TARGET, "ExecutionAlreadyExists"),
        (SFN_START_EXECUTION_TARGET, "StateMachineDoesNotExist"),
        (other, "Unsupported"),
    ]
    # and every one-time schedule is gone once it ran, delivered or not
    assert pending_timers(cloud) == []

    # When the DLQ is redriven (as `kizuna dlq redrive` does)
    url = cloud.client("sqs").get_queue_url(QueueName=cloud.physical_name("DeadLetterQueue"))
    queue = DeadLetterQueue(
        cloud.client("sqs"), url["QueueUrl"], sfn_client=cloud.client("stepfunctions")
    )
    report = queue.redrive()

    # Then the duplicate counts as done (that execution ran); the missing machine stays
    assert (report.moved, report.failed) == (1, 1)
    assert "StateMachineDoesNotExist" in report.errors[0]
    [kept] = queue.peek()
    assert kept.source == gone and kept.kind == "schedule"
    assert executions(cloud) == {"dup": {"customer_id": "dup"}}


def test_the_apps_starter_schedules_an_execution_due_later_and_it_starts_then(
    cloud: LocalCloud,
) -> None:
    # Given the app's starter with its journey timers (the request evaluate, journey and send
    # make), on the local runtime's clock
    machine = cloud.resources["Timed"].arn
    timers = JourneyTimers(
        cloud.client("scheduler"), GROUP, ROLE, cloud.resources["DeadLetterQueue"].arn
    )
    starter = StepFunctionsStarter(
        cloud.client("stepfunctions"), machine.removesuffix("Timed"), timers, clock=cloud.clock
    )
    due = DEFAULT_START + timedelta(hours=3, seconds=30)

    # When it starts an execution due later
    assert starter.start("Timed", "cohort-1", {"customer_id": "c1", "at": due.isoformat()})

    # Then nothing runs before its instant; at it, the execution starts under its name
    cloud.advance(hours=3)
    assert executions(cloud) == {} and len(pending_timers(cloud)) == 1
    cloud.advance(minutes=1)
    assert executions(cloud) == {"cohort-1": {"customer_id": "c1", "at": due.isoformat()}}
    assert sent(cloud) == {"c1": due.isoformat()}
    assert pending_timers(cloud) == [] and cloud.dlq_messages()["DeadLetterQueue"] == []
    # and starting it again (now due) finds it: nothing more runs
    assert not starter.start("Timed", "cohort-1", {"customer_id": "c1", "at": due.isoformat()})
