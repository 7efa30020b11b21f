"""Small readers for synthesized templates, shared by the infra test modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

Resources = dict[str, Any]
Statement = dict[str, Any]
LogicalId = Callable[[Any], str]


class StackIds:
    """Logical ids of what every part of the stack uses (the bus, the customers and activity
    tables); a test module's ``Ids`` adds those of the resources under test."""

    def __init__(self, stack: Any, logical_id: LogicalId) -> None:
        k = stack.kizuna
        self.bus = logical_id(k.bus.bus)
        self.customers = logical_id(k.tables.customers)
        self.activity = logical_id(k.tables.activity)


def arn(logical: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical, "Arn"]}


def index_arn(table: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [arn(table), "/index/*"]]}


def qualified_arn(function: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [arn(function), ":*"]]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def of_type(resources: Resources, resource_type: str) -> Resources:
    return {k: r for k, r in resources.items() if r["Type"] == resource_type}


def statements_of(resources: Resources, role: str) -> list[Statement]:
    """Every statement of every identity policy attached to ``role`` (a logical id)."""
    found = [
        s
        for policy in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert found, f"role {role} has no policy"
    return found


def resources_for(statements: list[Statement], action: str) -> list[Any]:
    return [r for s in statements if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def actions_of(statements: list[Statement]) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"])}


def iter_resources(statements: list[Statement]) -> Iterator[Any]:
    for statement in statements:
        yield from as_list(statement["Resource"])


def role_of(resources: Resources, function: str) -> str:
    """Logical id of a function's execution role."""
    role: str = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def function_statements(resources: Resources, function: str) -> list[Statement]:
    """Every statement of every identity policy on a function's execution role."""
    return statements_of(resources, role_of(resources, function))


def environment(resources: Resources, function: str) -> dict[str, Any]:
    env: dict[str, Any] = resources[function]["Properties"]["Environment"]["Variables"]
    return env


# Every optional setting given, through cdk.json-style context.
WEBHOOK_COMPLETE_ARN = (
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kizuna/webhooks/pos-AbC123"
)
WEBHOOK_PARTIAL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kizuna/webhooks/print"
CONFIGURED_CONTEXT: dict[str, Any] = {
    "kizuna:config": {
        "contact": {"default_time_zone": "Europe/London", "max_per_day": 3},
        # the three ways to name a webhook's key: a name, a complete ARN, a partial ARN
        "webhooks": {
            "crm": {"url": "https://crm.shop.example/hook", "secret": "kizuna/webhooks/crm"},
            "pos": {
                "url": "https://pos.shop.example/hook",
                "secret": WEBHOOK_COMPLETE_ARN,
            },
            "print": {
                "url": "https://print.shop.example/hook",
                "secret": WEBHOOK_PARTIAL_ARN,
            },
        },
    },
    "kizuna:busName": "shop-events",
    "kizuna:emailFrom": "Shop <news@shop.example>",
    "kizuna:pushApplicationId": "0123456789abcdef0123456789abcdef",
    "kizuna:lineTokenSecretArn": (
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kizuna/line-AbCdEf"
    ),
    "kizuna:lineChannelSecretParameter": "/shop/line-channel-secret",
    "kizuna:smsSenderId": "SHOP",
}


# a name resolves in the stack's own account and region, with the suffix Secrets Manager adds
CONFIGURED_WEBHOOK_SECRETS: list[Any] = [
    {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":secretsmanager:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":secret:kizuna/webhooks/crm-??????",
            ],
        ]
    },
    WEBHOOK_COMPLETE_ARN,
    WEBHOOK_PARTIAL_ARN + "-??????",
]


def webhook_secret_resources(statements: list[Statement]) -> list[Any]:
    """The resources of ``secretsmanager:GetSecretValue`` that are webhook keys."""
    return [
        r
        for r in resources_for(statements, "secretsmanager:GetSecretValue")
        if "kizuna/webhooks/" in json.dumps(r)  # every test webhook key is named so
    ]
