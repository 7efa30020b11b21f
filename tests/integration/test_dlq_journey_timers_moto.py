"""`kizuna dlq` and journey timers on moto: a start EventBridge Scheduler could not make (a
one-time schedule whose target is the universal ``aws-sdk:sfn:startExecution``, dead-lettered
to the evaluate DLQ) is shown as a schedule dead letter and replayed as that StartExecution
request, under its name; an execution of that name that already exists counts as done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna_tools.dlq import SFN_START_EXECUTION_TARGET, DeadLetterQueue
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/journeys"
GROUP_SCHEDULE = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/Kizuna-journeys"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


class Aws:
    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="Kizuna-evaluate-dlq")["QueueUrl"]
        self.machine = self.sfn.create_state_machine(
            name="Kizuna-winback", definition=DEFINITION, roleArn=ROLE
        )["stateMachineArn"]
        self.queue = DeadLetterQueue(self.sqs, self.url, sfn_client=self.sfn)

    def dead_letter(self, schedule: str, request: dict[str, Any], code: str) -> None:
        """What Scheduler sends to a schedule's DLQ: the target's input, and why."""
        values = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": f"{code}: the start was refused",
            "EXECUTION_ID": "0f2e7c1a",
            "SCHEDULE_ARN": f"{GROUP_SCHEDULE}/{schedule}",
            "TARGET_ARN": SFN_START_EXECUTION_TARGET,
        }
        self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps(request),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in values.items()
            },
        )

    def request(self, name: str, machine: str | None = None) -> dict[str, Any]:
        return {
            "StateMachineArn": machine or self.machine,
            "Name": name,
            "Input": json.dumps({"program": "winback", "at": "2026-12-01T09:00:00+00:00"}),
        }

    def executions(self) -> dict[str, dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.machine)["executions"]
        return {
            e["name"]: json.loads(
                self.sfn.describe_execution(executionArn=e["executionArn"])["input"]
            )
            for e in listed
        }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        yield Aws()


def test_a_timer_dead_letter_shows_the_schedule_and_the_universal_target(aws: Aws) -> None:
    aws.dead_letter("winback-1", aws.request("c-1"), "AWS.Scheduler.InternalServerError")
    [dead] = aws.queue.peek()
    assert dead.kind == "schedule"
    assert dead.target == SFN_START_EXECUTION_TARGET
    assert dead.source == f"{GROUP_SCHEDULE}/winback-1"
    assert dead.error_type == "AWS.Scheduler.InternalServerError"
    assert json.loads(dead.payload)["Name"] == "c-1"


def test_redrive_starts_the_execution_under_its_name_with_its_input(aws: Aws) -> None:
    # Given a start Scheduler gave up on
    aws.dead_letter("winback-1", aws.request("c-1"), "AWS.Scheduler.InternalServerError")

    # When the DLQ is redriven
    report = aws.queue.redrive()

    # Then the execution started as the request said, and the message left the DLQ
    assert (report.moved, report.failed) == (1, 0)
    assert aws.executions() == {"c-1": json.loads(aws.request("c-1")["Input"])}
    assert aws.queue.depth() == 0


def test_an_execution_that_already_exists_counts_as_replayed(aws: Aws) -> None:
    # Given the execution was started meanwhile (a retry, a direct start) and has ended (a
    # running one with the same input would simply be returned), and the same start
    # dead-lettered twice
    request = aws.request("c-2")
    started = aws.sfn.start_execution(
        stateMachineArn=aws.machine, name=request["Name"], input=request["Input"]
    )
    aws.sfn.stop_execution(executionArn=started["executionArn"])
    aws.dead_letter("winback-2", request, "ExecutionAlreadyExists")
    aws.dead_letter("winback-2b", request, "AWS.Scheduler.InternalServerError")

    # When the DLQ is redriven
    report = aws.queue.redrive()

    # Then both are done (idempotent: the execution ran), and still one execution exists
    assert (report.moved, report.failed) == (2, 0)
    assert list(aws.executions()) == ["c-2"]
    assert aws.queue.depth() == 0


def test_a_start_still_refused_stays_in_the_dlq_with_the_reason(aws: Aws) -> None:
    # Given a start for a journey that no longer exists (its program was removed)
    gone = aws.machine.replace("winback", "retired")
    aws.dead_letter("retired-1", aws.request("c-3", machine=gone), "StateMachineDoesNotExist")

    # When the DLQ is redriven
    report = aws.queue.redrive()

    # Then it stays, counted as failed with Step Functions' reason
    assert (report.moved, report.failed) == (0, 1)
    assert "StateMachineDoesNotExist" in report.errors[0]
    assert aws.queue.depth() == 1
    assert aws.executions() == {}


def test_a_body_that_is_no_start_request_is_refused_not_dropped(aws: Aws) -> None:
    aws.dead_letter("odd", {"Name": "no-machine"}, "AWS.Scheduler.InternalServerError")
    report = aws.queue.redrive()
    assert (report.moved, report.failed) == (0, 1)
    assert "StateMachineArn" in report.errors[0]
    assert aws.queue.depth() == 1
