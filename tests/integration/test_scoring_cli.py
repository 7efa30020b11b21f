"""``kizuna scoring run --stack``: starts the deployed stack's scoring state machine (found in
the stack's resources) with ``{"as_of": ...}``, as its schedule starts it with ``{}``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from kizuna_tools.cli import app

pytestmark = pytest.mark.integration

DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}


@pytest.fixture
def stack() -> Iterator[str]:
    with mock_aws():
        machine = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "DefinitionString": json.dumps(DEFINITION),
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        }
        template = {
            "Resources": {
                "Role": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {"AssumeRolePolicyDocument": {"Statement": []}},
                },
                "KizunaScoringStateMachine6A99C288": machine,
                "KizunaCampaignsStateMachine1": machine,
            }
        }
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="Kizuna", TemplateBody=json.dumps(template)
        )
        yield "Kizuna"


def executions() -> list[dict[str, object]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    found = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for run in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            described = sfn.describe_execution(executionArn=run["executionArn"])
            found.append({"machine": machine["name"], "input": json.loads(described["input"])})
    return found


def test_scoring_run_starts_the_stacks_scoring_machine_as_of_the_instant(stack: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "scoring",
            "run",
            "--stack",
            stack,
            "--as-of",
            "2026-01-31",
            "--no-wait",
            "--region",
            "us-east-1",
        ],
    )
    assert result.exit_code == 0, result.output
    started = executions()
    assert len(started) == 1
    assert "Scoring" in str(started[0]["machine"])
    assert started[0]["input"] == {"as_of": "2026-01-31T00:00:00+00:00"}
    # the future is refused before anything starts
    later = runner.invoke(
        app,
        ["scoring", "run", "--stack", stack, "--as-of", "2999-01-01", "--region", "us-east-1"],
    )
    assert later.exit_code == 2 and "future" in later.output
    assert len(executions()) == 1
