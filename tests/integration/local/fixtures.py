"""A small hand-written template and project exercising every part of kizuna_tools.local."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

PROBE_HANDLER = """
import json
import os
from datetime import timedelta

import boto3

from kizuna.runtime.clock import get_clock


def handler(event, context):
    table = boto3.resource("dynamodb").Table(os.environ["TABLE"])
    events = boto3.client("events")
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        detail = body["detail"]
        if detail.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        if detail.get("crash"):
            raise RuntimeError("probe crashed")
        now = get_clock().now()
        table.put_item(Item={
            "customer_id": detail["customer_id"],
            "seen_at": now.isoformat(),
            "receive_count": int(record["attributes"]["ApproximateReceiveCount"]),
            "function": context.function_name,
            "env_bus": os.environ["BUS"],
            "expires_at": int((now + timedelta(days=detail.get("ttl_days", 30))).timestamp()),
        })
        if detail.get("first"):
            events.put_events(Entries=[{
                "Source": "kizuna",
                "DetailType": "customer.first_purchase",
                "Detail": json.dumps({"customer_id": detail["customer_id"]}),
                "EventBusName": os.environ["BUS"],
            }])
    return {"batchItemFailures": failures}
"""

SENDER_HANDLER = """
import os

import boto3

from kizuna.runtime.clock import get_clock


def handler(event, context):
    now = get_clock().now()
    boto3.resource("dynamodb").Table(os.environ["TABLE"]).put_item(Item={
        "customer_id": "sent#" + event["customer_id"],
        "sent_at": now.isoformat(),
        "function": context.function_name,
    })
    return {"sent": event["customer_id"], "at": now.isoformat()}
"""

NIGHTLY_HANDLER = """
import os

import boto3

from kizuna.runtime.clock import get_clock


def handler(event, context):
    now = get_clock().now()
    boto3.resource("dynamodb").Table(os.environ["TABLE"]).put_item(Item={
        "customer_id": "nightly#" + now.isoformat(),
        "source": event.get("source", "scheduler"),
        "event_time": event.get("time", ""),
    })
    return {"ok": True}
"""

FLAKY_HANDLER = """
import os

import boto3


def handler(event, context):
    table = boto3.resource("dynamodb").Table(os.environ["TABLE"])
    response = table.update_item(
        Key={"customer_id": "flaky#" + event["key"]},
        UpdateExpression="ADD attempts :one",
        ExpressionAttributeValues={":one": 1},
        ReturnValues="UPDATED_NEW",
    )
    attempts = int(response["Attributes"]["attempts"])
    if attempts < event.get("succeed_on", 2):
        raise ConnectionError("flaky dependency")
    return {"attempts": attempts}
"""

ECHO_HANDLER = """
import os

from kizuna.runtime.clock import get_clock


def handler(event, context):
    return {
        "echo": event,
        "greeting": os.environ.get("GREETING"),
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "has_time": context.get_remaining_time_in_millis() > 0,
        "now": get_clock().now().isoformat(),
    }
"""

HANDLERS = {
    "probe": PROBE_HANDLER,
    "sender": SENDER_HANDLER,
    "nightly": NIGHTLY_HANDLER,
    "flaky": FLAKY_HANDLER,
    "echo": ECHO_HANDLER,
}


def write_project(root: Path) -> Path:
    """functions/<name>/handler.py for every handler above, under ``root``."""
    for name, code in HANDLERS.items():
        folder = root / "functions" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "handler.py").write_text(textwrap.dedent(code))
    return root


def _function(code_name: str, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"S3Bucket": "cdk-assets", "S3Key": f"{code_name}.zip"},
            "Handler": "handler.handler",
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "MemorySize": 256,
            "Timeout": 30,
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Environment": {"Variables": env},
        },
        "Metadata": {"kizuna:function": code_name},
        "DependsOn": ["Role"],
    }


def bus_rule(
    pattern: dict[str, Any], *targets: dict[str, Any], **properties: Any
) -> dict[str, Any]:
    """An AWS::Events::Rule on the Bus, sending what matches ``pattern`` to ``targets``."""
    return {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "EventBusName": {"Ref": "Bus"},
            "EventPattern": pattern,
            **properties,
            "Targets": list(targets),
        },
    }


def journey_definition() -> dict[str, Any]:
    """A Step Functions definition as CDK writes it: Fn::Join around GetAtt pieces."""
    head = json.dumps(
        {
            "StartAt": "WaitAWeek",
            "States": {
                "WaitAWeek": {"Type": "Wait", "Seconds": 604800, "Next": "Send"},
                "Send": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": "__FN__",
                        "Payload": {"customer_id.$": "$.detail.customer_id"},
                    },
                    "OutputPath": "$.Payload",
                    "End": True,
                },
            },
        }
    )
    before, after = head.split("__FN__")
    return {"Fn::Join": ["", [before, {"Fn::GetAtt": ["Sender", "Arn"]}, after]]}


def probe_template() -> dict[str, Any]:
    table_env = {"TABLE": {"Ref": "Customers"}, "BUS": {"Ref": "Bus"}}
    probe_env = {**table_env, "ECHO_URL": {"Fn::GetAtt": ["EchoUrl", "FunctionUrl"]}}
    return {
        "Parameters": {
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            }
        },
        "Resources": {
            "Customers": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [{"AttributeName": "customer_id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [
                        {"AttributeName": "customer_id", "AttributeType": "S"},
                        {"AttributeName": "segment", "AttributeType": "S"},
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                    "GlobalSecondaryIndexes": [
                        {
                            "IndexName": "by-segment",
                            "KeySchema": [{"AttributeName": "segment", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {"SSEEnabled": True},
                },
                "UpdateReplacePolicy": "Retain",
                "DeletionPolicy": "Retain",
            },
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "kizuna-test"}},
            "DeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "VisibilityTimeout": 180,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 2,
                    },
                },
            },
            "QueuePolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": {}},
            },
            "InboundRule": bus_rule(
                {"source": [{"anything-but": ["kizuna"]}]},
                {"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}, "Id": "Target0"},
                State="ENABLED",
            ),
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Statement": []}},
            },
            "ProbeLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}},
            "Probe": _function("probe", probe_env),
            "ProbeMapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Probe"},
                    "BatchSize": 5,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "MaximumBatchingWindowInSeconds": 1,
                },
            },
            "Sender": _function("sender", table_env),
            "Nightly": _function("nightly", table_env),
            "Flaky": _function("flaky", table_env),
            "Echo": _function("echo", {"GREETING": {"Fn::Sub": "hello from ${AWS::Region}"}}),
            "Journey": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": journey_definition(),
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
            "JourneyRule": bus_rule(
                {"source": ["kizuna"], "detail-type": ["customer.first_purchase"]},
                {
                    "Arn": {"Ref": "Journey"},
                    "Id": "Journey",
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            ),
            "NightlyRule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "ScheduleExpression": "cron(0 3 * * ? *)",
                    "Targets": [{"Arn": {"Fn::GetAtt": ["Nightly", "Arn"]}, "Id": "Nightly"}],
                },
            },
            "EchoUrl": {
                "Type": "AWS::Lambda::Url",
                "Properties": {
                    "TargetFunctionArn": {"Fn::GetAtt": ["Echo", "Arn"]},
                    "AuthType": "NONE",
                },
            },
            "MorningSchedule": {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "ScheduleExpression": "cron(0 9 * * ? *)",
                    "ScheduleExpressionTimezone": "Asia/Tokyo",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {
                        "Arn": {"Fn::GetAtt": ["Nightly", "Arn"]},
                        "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                        "Input": json.dumps(
                            {"source": "scheduler", "time": "<aws.scheduler.scheduled-time>"}
                        ),
                    },
                },
            },
            "CDKMetadata": {
                "Type": "AWS::CDK::Metadata",
                "Properties": {"Analytics": "v2:deflate64:H4sIAAAA"},
            },
        },
        "Outputs": {"BusName": {"Value": {"Ref": "Bus"}}},
    }


def order(customer_id: str, **detail: Any) -> dict[str, Any]:
    return {
        "Source": "shop",
        "DetailType": "order.placed",
        "Detail": {"customer_id": customer_id, **detail},
    }


def with_resources(template: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` with more resources."""
    extended: dict[str, Any] = json.loads(json.dumps(template))
    extended["Resources"].update(resources)
    return extended


def state_machine(definition: dict[str, Any]) -> dict[str, Any]:
    """An AWS::StepFunctions::StateMachine; ``"${Echo}"``-style strings become GetAtt Arn."""
    text = json.dumps(definition)
    pieces: list[Any] = []
    for i, part in enumerate(text.split("${")):
        if i == 0:
            pieces.append(part)
            continue
        name, rest = part.split("}", 1)
        pieces.extend([{"Fn::GetAtt": [name, "Arn"]}, rest])
    return {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "DefinitionString": {"Fn::Join": ["", pieces]},
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
        },
    }
