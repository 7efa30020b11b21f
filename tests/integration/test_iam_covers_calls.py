"""Every AWS call a function makes on the local runtime is allowed by its IAM role in the
synthesized template. moto does not enforce IAM, so without this a missing grant (an
UpdateItem where only PutItem was granted) passes every local test and fails in AWS."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.simulation import Shop

pytestmark = pytest.mark.integration

# botocore service name -> IAM action prefix
IAM_PREFIX = {
    "dynamodb": "dynamodb",
    "events": "events",
    "stepfunctions": "states",
    "sqs": "sqs",
    "sesv2": "ses",
    "sns": "sns",
    "pinpoint": "mobiletargeting",
    "pinpoint-sms-voice-v2": "sms-voice",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "ssm": "ssm",
    "lambda": "lambda",
    "scheduler": "scheduler",
}


# AWS authorizes a transaction per item: TransactWriteItems needs the actions of its items
# (the send paths put a ledger claim and update a CONTACT item), not an action of its own.
# Lambda's Invoke (evaluate invoking an at_once program's entry segment) is the IAM action
# lambda:InvokeFunction. S3's ListObjectsV2 (the direct-mail job listing a day's print files)
# is the IAM action s3:ListBucket.
AUTHORIZED_AS = {
    "TransactWriteItems": ["PutItem", "UpdateItem"],
    "Invoke": ["InvokeFunction"],
    "ListObjectsV2": ["ListBucket"],
}
# Calls that need another service's action too: a schedule (a journey timer) names the role
# it runs as, which its creator must be allowed to pass.
ALSO_NEEDS = {("scheduler", "CreateSchedule"): ["iam:PassRole"]}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_actions(template: dict[str, Any], function_logical_id: str) -> list[str]:
    resources = template["Resources"]
    role = resources[function_logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: list[str] = []
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role} not in resource["Properties"].get("Roles", []):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                actions += _list(statement["Action"])
    return actions


def test_every_call_a_function_made_is_granted_to_its_role(
    demo_template: dict[str, Any], shop_cloud: Callable[..., LocalCloud]
) -> None:
    template = demo_template
    cloud = shop_cloud(Shop(customers=40, days=4, seed=11))
    cloud.advance(days=3)  # journeys' waits, sends, daily scoring, sweeps
    calls = {name: dict(c) for name, c in cloud.calls_by_function.items()}
    by_name = {spec.name: spec.logical_id for spec in cloud.functions.values()}

    made: dict[str, set[str]] = defaultdict(set)
    for name, counter in calls.items():
        if name not in by_name:
            continue  # the test's own calls (outside any function)
        for service, operation in counter:
            made[by_name[name]] |= {
                f"{IAM_PREFIX[service]}:{action}"
                for action in AUTHORIZED_AS.get(operation, [operation])
            }
            made[by_name[name]] |= set(ALSO_NEEDS.get((service, operation), []))
    # the run exercised every kind of function that talks to AWS
    assert {lid for lid in made if "Score" in lid} and {lid for lid in made if "Send" in lid}
    # and a journey timer (an execution due later: a one-time schedule, its role passed)
    assert any("scheduler:CreateSchedule" in actions for actions in made.values())
    missing = {
        lid: sorted(
            a
            for a in actions
            if not any(fnmatch.fnmatchcase(a, g) for g in allowed_actions(template, lid))
        )
        for lid, actions in made.items()
    }
    assert {lid: m for lid, m in missing.items() if m} == {}
