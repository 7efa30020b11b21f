"""One test per patch in kizuna_tools.local.patches: a moto upgrade that breaks one fails here."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from kizuna_tools.local import DEFAULT_START, LocalCloud, patches
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import (
    bus_rule,
    probe_template,
    state_machine,
    with_resources,
)
from tests.moto_setup import create_table, key_schema

pytestmark = pytest.mark.integration

SEND = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke",
    "Parameters": {"FunctionName": "${Echo}", "Payload.$": "$"},
    "OutputPath": "$.Payload",
    "End": True,
}


def cloud_with(factory: CloudFactory, root: Path, resources: dict[str, Any]) -> LocalCloud:
    return factory(with_resources(probe_template(), resources), project_root=root)


def run(
    cloud: LocalCloud,
    machine: str,
    payload: dict[str, Any],
    name: str | None = None,
) -> str:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    args: dict[str, Any] = {
        "stateMachineArn": cloud.resources[machine].arn,
        "input": json.dumps(payload),
    }
    if name:
        args["name"] = name
    return str(sfn.start_execution(**args)["executionArn"])


def describe(arn: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    result: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    return result


def test_patch_wait_states(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given Wait states of each kind: Seconds, SecondsPath, Timestamp with an offset, TimestampPath
    waits = {
        "Seconds": 7 * 86400,
        "SecondsPath": "$.wait",
        "Timestamp": "2026-01-03T09:00:00+09:00",
        "TimestampPath": "$.until",
    }
    cloud = cloud_with(
        local_cloud_factory,
        project_root,
        {
            kind: state_machine(
                {
                    "StartAt": "W",
                    "States": {"W": {"Type": "Wait", kind: wait, "Next": "Send"}, "Send": SEND},
                }
            )
            for kind, wait in waits.items()
        },
    )
    started = time.perf_counter()
    arns = {
        "Seconds": run(cloud, "Seconds", {}),
        "SecondsPath": run(cloud, "SecondsPath", {"wait": 3600}),
        "Timestamp": run(cloud, "Timestamp", {}),
        "TimestampPath": run(cloud, "TimestampPath", {"until": "2026-01-05T00:00:00Z"}),
    }
    cloud.drain()
    assert {k: describe(a)["status"] for k, a in arns.items()} == dict.fromkeys(arns, "RUNNING")

    # When the clock moves a week
    cloud.advance(days=7)

    # Then each woke at its own virtual instant, and none took real time
    woke = {k: json.loads(describe(a)["output"])["now"] for k, a in arns.items()}
    assert woke == {
        "Seconds": "2026-01-08T00:00:00+00:00",
        "SecondsPath": "2026-01-01T01:00:00+00:00",
        "Timestamp": "2026-01-03T00:00:00+00:00",
        "TimestampPath": "2026-01-05T00:00:00+00:00",
    }
    assert time.perf_counter() - started < 5


def test_patch_retry_intervals(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given a task that fails once, retried after an hour
    cloud = cloud_with(
        local_cloud_factory,
        project_root,
        {
            "Retrying": state_machine(
                {
                    "StartAt": "T",
                    "States": {
                        "T": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "${Flaky}", "Payload.$": "$"},
                            "Retry": [
                                {
                                    "ErrorEquals": ["States.ALL"],
                                    "IntervalSeconds": 3600,
                                    "MaxAttempts": 2,
                                    "BackoffRate": 1,
                                }
                            ],
                            "OutputPath": "$.Payload",
                            "End": True,
                        }
                    },
                }
            ),
        },
    )
    arn = run(cloud, "Retrying", {"key": "r1"})

    # When drained, it waits on the virtual clock after the first failure
    cloud.drain()
    assert describe(arn)["status"] == "RUNNING"
    cloud.advance(minutes=59)
    assert describe(arn)["status"] == "RUNNING"

    # Then an hour later the retry succeeds
    cloud.advance(minutes=1)
    assert describe(arn)["status"] == "SUCCEEDED"
    assert json.loads(describe(arn)["output"]) == {"attempts": 2}


def test_patch_execution_names(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    first = run(cloud, "Journey", {"detail": {"customer_id": "a"}})
    second = run(cloud, "Journey", {"detail": {"customer_id": "b"}})
    assert first != second
    assert not first.endswith(":None")


def test_patch_lambda_invoke(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given a state machine whose Lambda task calls the Echo function
    cloud = cloud_with(
        local_cloud_factory,
        project_root,
        {"Direct": state_machine({"StartAt": "Send", "States": {"Send": SEND}})},
    )

    # When it runs
    arn = run(cloud, "Direct", {"hello": "world"})
    cloud.drain()

    # Then the in-process handler ran with its own environment
    execution = describe(arn)
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["echo"] == {"hello": "world"}
    assert output["greeting"] == "hello from us-east-1"
    assert cloud.invocations["Echo"] == 1


def test_patch_event_targets(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given rules with Lambda, Step Functions and SNS targets (moto raises for all three)
    cloud = cloud_with(
        local_cloud_factory,
        project_root,
        {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "TopicQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "TopicSubscription": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "sqs",
                    "RawMessageDelivery": True,
                    "Endpoint": {"Fn::GetAtt": ["TopicQueue", "Arn"]},
                },
            },
            "Fanout": bus_rule(
                {"detail-type": ["fanout"], "detail": {"n": [{"numeric": [">", 1]}]}},
                {"Arn": {"Fn::GetAtt": ["Echo", "Arn"]}, "Id": "L"},
                {"Arn": {"Ref": "Journey"}, "Id": "S"},
                {"Arn": {"Ref": "Topic"}, "Id": "T"},
            ),
        },
    )

    # When a matching and a non-matching event are put
    cloud.put_events(
        [
            {"Source": "x", "DetailType": "fanout", "Detail": {"n": 2, "customer_id": "f"}},
            {"Source": "x", "DetailType": "fanout", "Detail": {"n": 1, "customer_id": "g"}},
        ]
    )
    cloud.drain()

    # Then only the matching one reached each target
    assert cloud.invocations["Echo"] == 1
    assert cloud.execution_counts() == {("kizuna-Journey", "RUNNING"): 1}
    messages = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=cloud.resources["TopicQueue"].url, MaxNumberOfMessages=10
    )["Messages"]
    assert [json.loads(m["Body"])["detail"]["customer_id"] for m in messages] == ["f"]
    assert cloud.delivery_errors == []


def test_patch_sfn_client_cache(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    from moto.stepfunctions.parser.asl.utils import boto_client

    cloud = cloud_with(
        local_cloud_factory,
        project_root,
        {"Direct": state_machine({"StartAt": "Send", "States": {"Send": SEND}})},
    )
    arns = [run(cloud, "Direct", {"n": n}) for n in range(3)]
    cloud.drain()

    assert [describe(a)["status"] for a in arns] == ["SUCCEEDED"] * 3
    cache = boto_client.__dict__["boto3"]
    assert [key[1] for key in cache._clients] == ["lambda"]  # one client for three tasks


def test_patch_asl_parse_cache(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.backend import execution_worker

    # Given a machine with a Retry (per-execution attempt counts live in the execution's
    # heap, keyed by the shared components' heap keys) and a Wait
    definition = {
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": 60, "Next": "Send"},
            "Send": {**SEND, "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]},
        },
    }
    cloud = cloud_with(local_cloud_factory, project_root, {"Cached": state_machine(definition)})
    parser = execution_worker.AmazonStateLanguageParser
    # When several executions run at once
    arns = [run(cloud, "Cached", {"n": n}) for n in range(4)]
    cloud.advance(minutes=2)
    # Then every one succeeds, and the definition was parsed once for all of them
    assert [describe(a)["status"] for a in arns] == ["SUCCEEDED"] * 4
    [(program, _)] = parser.cache.values()
    assert isinstance(program, EvalComponent)
    assert program.__dict__.get("_EvalComponent__heap_key")  # drawn before sharing


def test_patch_moto_parse_caches() -> None:
    """A JSONPath is parsed once and still reads each document's own value; a response
    class's method names are listed once; both are moto's own answers."""
    from moto import mock_aws
    from moto.core import responses
    from moto.stepfunctions.parser.asl.utils import json_path

    before = [json_path.extract_json("$.wait.at", {"wait": {"at": n}}) for n in range(3)]
    undo = patches.patch_moto_parse_caches(None)  # type: ignore[arg-type]
    try:
        after = [json_path.extract_json("$.wait.at", {"wait": {"at": n}}) for n in range(3)]
        assert after == before == [0, 1, 2]
        assert json_path.parse.cache_info().hits >= 2  # type: ignore[attr-defined]
        with pytest.raises(json_path.NoSuchJsonPathError):
            json_path.extract_json("$.wait.at", {"other": 1})
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            for n in range(3):
                sqs.create_queue(QueueName=f"q{n}")
            assert len(sqs.list_queues()["QueueUrls"]) == 3
        assert responses.method_names_from_class.cache_info().hits >= 3  # type: ignore[attr-defined]
    finally:
        undo()
    assert not hasattr(json_path.parse, "cache_info")
    assert not hasattr(responses.method_names_from_class, "cache_info")


def test_patch_dynamodb_item_responses(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    local_cloud_factory(probe_template(), project_root=project_root)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("kizuna-Customers")
    item = {
        "customer_id": "d1",
        "n": Decimal("1.5"),
        "m": {"l": [1, "x", {"b": True}], "e": {}},
        "ss": {"a", "b"},
        "bin": b"\x00\x01",
        "none": None,
        "empty": [],
    }

    assert "Attributes" not in table.put_item(Item=item, ReturnValues="ALL_OLD")
    assert table.put_item(Item=item, ReturnValues="ALL_OLD")["Attributes"] == item
    assert table.get_item(Key={"customer_id": "d1"})["Item"] == item
    assert "Item" not in table.get_item(Key={"customer_id": "missing"})
    scanned = table.scan(ReturnConsumedCapacity="TOTAL")
    assert scanned["Items"] == [item] and scanned["Count"] == 1
    assert scanned["ConsumedCapacity"]["TableName"] == "kizuna-Customers"
    updated = table.update_item(
        Key={"customer_id": "d1"},
        UpdateExpression="ADD c :one",
        ExpressionAttributeValues={":one": 1},
        ReturnValues="UPDATED_NEW",
    )
    assert updated["Attributes"] == {"c": 1}
    with pytest.raises(table.meta.client.exceptions.ConditionalCheckFailedException):
        table.put_item(Item=item, ConditionExpression="attribute_not_exists(customer_id)")


def test_patch_dynamodb_query_candidates() -> None:
    """Table and index queries answer exactly as moto's own query, with and without it."""
    from moto import mock_aws

    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        table = create_table(
            ddb,
            "q",
            "pk",
            "sk",
            indexed=("g", "t"),
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_t",
                    "KeySchema": key_schema("g", "t"),
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        for i in range(60):
            item = {"pk": f"c{i % 7}", "sk": f"MSG#{i:03d}", "n": i}
            if i % 3:
                item.update(g=str(i % 2), t=f"2026-01-{1 + i % 28:02d}")
            table.put_item(Item=item)

        def answers() -> list[Any]:
            from boto3.dynamodb.conditions import Attr, Key

            def page(response: dict[str, Any]) -> Any:
                keys = ("Items", "Count", "ScannedCount", "LastEvaluatedKey")
                return {key: response.get(key) for key in keys}

            return [
                table.query(KeyConditionExpression=Key("pk").eq("c3"))["Items"],
                table.query(
                    KeyConditionExpression=Key("pk").eq("c3") & Key("sk").begins_with("MSG#01"),
                    ScanIndexForward=False,
                )["Items"],
                table.query(KeyConditionExpression=Key("pk").eq("nobody"))["Items"],
                table.query(
                    IndexName="by_t",
                    KeyConditionExpression=Key("g").eq("1")
                    & Key("t").between("2026-01-05", "2026-01-20"),
                )["Items"],
                table.query(KeyConditionExpression=Key("pk").eq("c1"), Limit=3)["Items"],
                table.query(KeyConditionExpression=Key("pk").eq("c2") & Key("sk").lt("MSG#030"))[
                    "Items"
                ],
                page(
                    table.query(
                        KeyConditionExpression=Key("pk").eq("c2") & Key("sk").gte("MSG#030"),
                        Limit=2,
                    )
                ),
                table.query(
                    KeyConditionExpression=Key("pk").eq("c2") & Key("sk").gte("MSG#030"),
                    Limit=2,
                    ExclusiveStartKey={"pk": "c2", "sk": "MSG#030"},
                )["Items"],
                table.query(IndexName="by_t", KeyConditionExpression=Key("g").eq("0"))["Items"],
                page(
                    table.query(
                        IndexName="by_t",
                        KeyConditionExpression=Key("g").eq("0") & Key("t").begins_with("2026-01-1"),
                        ScanIndexForward=False,
                        Limit=2,
                    )
                ),
                page(
                    table.query(
                        IndexName="by_t",
                        KeyConditionExpression=Key("g").eq("1") & Key("t").lte("2026-01-09"),
                        FilterExpression=Attr("n").gt(10),
                    )
                ),
            ]

        expected = answers()
        undo = patches.patch_dynamodb_query_candidates(None)  # type: ignore[arg-type]
        try:
            assert answers() == expected
            assert expected[0] and expected[3]
            assert len(table.scan()["Items"]) == 60  # scans still see every item
        finally:
            undo()


def _nested(rng: Any, depth: int = 0) -> Any:
    """A random DynamoDB value: numbers, strings (multi-byte too), bytes, booleans, null,
    sets, and lists and maps of them, nested."""
    kinds = ["n", "s", "b", "bool", "null", "ss", "ns"] + (["l", "m"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "n":
        return Decimal(str(rng.choice([0, 7, -3.25, 1e20, 12345678901234567890])))
    if kind == "s":
        return "".join(rng.choice("aZ9あ語🙂") for _ in range(rng.randint(1, 20)))
    if kind == "b":
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 9)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "ss":
        return {f"s{rng.randint(0, 99)}é" for _ in range(rng.randint(1, 4))}
    if kind == "ns":
        return {Decimal(rng.randint(-999, 999)) for _ in range(rng.randint(1, 4))}
    if kind == "l":
        return [_nested(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}ü": _nested(rng, depth + 1) for i in range(rng.randint(0, 4))}


def test_patch_dynamodb_item_sizes() -> None:
    """Items and values measure the same as with moto's own ``size``; the 400 KB limit is
    where it was; pages of a Query and a Scan end at the same items."""
    import random

    from boto3.dynamodb.conditions import Key
    from boto3.dynamodb.types import TypeSerializer
    from moto import mock_aws
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    rng = random.Random(7)
    serialize = TypeSerializer().serialize
    values = [serialize(_nested(rng)) for _ in range(400)]
    items = [
        Item(
            DynamoType({"S": f"c{i}"}),
            None,
            {f"a{j}ß": values[(i * 5 + j) % 400] for j in range(5)},
        )
        for i in range(80)
    ]
    expected = [DynamoType(v).size() for v in values], [item.size() for item in items]
    undo = patches.patch_dynamodb_item_sizes(None)  # type: ignore[arg-type]
    try:
        assert ([DynamoType(v).size() for v in values], [i.size() for i in items]) == expected
    finally:
        undo()

    def run(patched: bool) -> list[Any]:
        with mock_aws():
            ddb = boto3.resource("dynamodb", region_name="us-east-1")
            table = create_table(ddb, "big", "pk", "sk")
            big = "x" * 90_000
            for i in range(14):  # 14 x 90 KB: a Query's and a Scan's 1 MB page ends early
                table.put_item(Item={"pk": "p", "sk": f"{i:02d}", "v": big})
            undo = patches.patch_dynamodb_item_sizes(None) if patched else None  # type: ignore[arg-type]
            try:
                answers: list[Any] = []
                answers.append(
                    table.query(KeyConditionExpression=Key("pk").eq("p")).get("LastEvaluatedKey")
                )
                answers.append(table.scan().get("LastEvaluatedKey"))
                near = {"pk": "q", "sk": "1", "v": "y" * 404_980}  # just under moto's limit
                table.put_item(Item=near)
                with pytest.raises(table.meta.client.exceptions.ClientError) as refused:
                    table.put_item(Item={**near, "v": "y" * 405_000})
                answers.append(refused.value.response["Error"]["Message"])
                return answers
            finally:
                if undo:
                    undo()

    assert run(patched=True) == run(patched=False)


def test_patch_dynamodb_projected_scans() -> None:
    """Scans answer exactly as moto's own, with projections, filters, pages and indexes;
    a projected scan's items are not copies, and the table's items stay as they were."""
    from boto3.dynamodb.conditions import Attr
    from moto import mock_aws
    from moto.dynamodb.models.dynamo_type import Item

    def run(patched: bool) -> tuple[list[Any], int]:
        with mock_aws():
            ddb = boto3.resource("dynamodb", region_name="us-east-1")
            table = create_table(
                ddb,
                "s",
                "pk",
                "sk",
                indexed=("g",),
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "by_g",
                        "KeySchema": key_schema("g"),
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
            for i in range(40):
                item: dict[str, Any] = {
                    "pk": f"c{i % 9}",
                    "sk": f"{i:02d}",
                    "n": i,
                    "m": {"orders": [i, {"at": f"t{i}"}], "tags": {"a", f"b{i}"}},
                }
                if i % 2:
                    item["g"] = str(i % 3)
                table.put_item(Item=item)
            copies = [0]
            original = Item.__deepcopy__

            def counting(self: Any, memo: Any) -> Any:
                copies[0] += 1
                return original(self, memo)

            Item.__deepcopy__ = counting  # type: ignore[method-assign]
            undo = patches.patch_dynamodb_projected_scans(None) if patched else None  # type: ignore[arg-type]
            try:
                answers: list[Any] = []
                answers.append(table.scan(ProjectionExpression="pk, m.orders[1]")["Items"])
                answers.append(
                    table.scan(
                        ProjectionExpression="pk, n",
                        FilterExpression=Attr("n").gt(20),
                    )["Items"]
                )
                page = table.scan(ProjectionExpression="sk", Limit=7)
                answers.append(page["Items"])
                answers.append(
                    table.scan(
                        ProjectionExpression="sk",
                        Limit=7,
                        ExclusiveStartKey=page["LastEvaluatedKey"],
                    )["Items"]
                )
                answers.append(table.scan()["Items"])
                answers.append(table.scan(IndexName="by_g", ProjectionExpression="pk, g")["Items"])
                answers.append(table.scan()["Items"])  # the table as stored, after all that
                return answers, copies[0]
            finally:
                if undo:
                    undo()
                Item.__deepcopy__ = original  # type: ignore[method-assign]

    expected, copied_before = run(patched=False)
    answers, copied_after = run(patched=True)
    assert answers == expected
    assert expected[0] and expected[1] and expected[5]
    # unprojected and index scans still copy; the projected ones (40, 40 filtered after, 7, 7)
    # do not
    assert copied_before - copied_after == 40 + 40 + 7 + 7


def test_index_candidates_are_reused_until_a_write_and_never_stale() -> None:
    """Index queries between two writes share one pass over the table; every kind of write
    (put, update in place, delete, batch, transaction, a cancelled transaction) is seen by
    the next query, exactly as moto answers without the patch."""
    from collections import defaultdict

    from boto3.dynamodb.conditions import Key
    from moto import mock_aws
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID
    from moto.dynamodb.models.table import Table

    def run(patched: bool) -> tuple[list[Any], int]:
        with mock_aws():
            ddb = boto3.resource("dynamodb", region_name="us-east-1")
            table = create_table(
                ddb,
                "q",
                "pk",
                "sk",
                indexed=("g", "t"),
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "by_t",
                        "KeySchema": key_schema("g", "t"),
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
            )
            client = table.meta.client
            passes = [0]
            undo = patches.patch_dynamodb_query_candidates(None) if patched else None  # type: ignore[arg-type]
            try:
                answers: list[Any] = []

                def ask() -> None:
                    before = passes[0]
                    for shard in ("0", "1", "2"):
                        answers.append(
                            sorted(
                                (i["pk"], i["sk"])
                                for i in table.query(
                                    IndexName="by_t", KeyConditionExpression=Key("g").eq(shard)
                                )["Items"]
                            )
                        )
                    answers.append(passes[0] - before)

                backend_table: Table = get_backend("dynamodb")[ACCOUNT_ID]["us-east-1"].tables["q"]

                class Counting(defaultdict):  # type: ignore[type-arg]
                    def values(self) -> Any:  # one call per pass over the table
                        passes[0] += 1
                        return super().values()

                backend_table.items = Counting(dict, backend_table.items)
                for i in range(30):
                    item: dict[str, Any] = {"pk": f"c{i % 5}", "sk": f"M#{i:02d}"}
                    if i % 2:
                        item.update(g=str(i % 3), t=f"2026-01-{1 + i:02d}")
                    table.put_item(Item=item)
                ask()
                ask()  # no write in between
                table.update_item(  # joins the sparse index in place
                    Key={"pk": "c0", "sk": "M#00"},
                    UpdateExpression="SET g = :g, t = :t",
                    ExpressionAttributeValues={":g": "1", ":t": "2026-02-01"},
                )
                ask()
                table.delete_item(Key={"pk": "c1", "sk": "M#01"})
                ask()
                with table.batch_writer() as batch:
                    batch.put_item(Item={"pk": "c9", "sk": "M#90", "g": "2", "t": "2026-03-01"})
                ask()
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "q",
                                "Key": {"pk": "c3", "sk": "M#03"},
                                "UpdateExpression": "REMOVE g, t",
                            }
                        }
                    ]
                )
                ask()
                with pytest.raises(client.exceptions.TransactionCanceledException):
                    client.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": "q",
                                    "Item": {"pk": "c8", "sk": "x", "g": "0", "t": "z"},
                                }
                            },
                            {
                                "ConditionCheck": {
                                    "TableName": "q",
                                    "Key": {"pk": "nobody", "sk": "x"},
                                    "ConditionExpression": "attribute_exists(pk)",
                                }
                            },
                        ]
                    )
                ask()
                return answers, passes[0]
            finally:
                if undo is not None:
                    undo()

    plain, _ = run(False)
    patched, _ = run(True)
    strip = lambda answers: [a for a in answers if isinstance(a, list)]  # noqa: E731
    assert strip(patched) == strip(plain)
    assert any(strip(plain))
    # with the patch: one pass per ask after a write, none for the repeated ask
    passes_per_ask = [a for a in patched if isinstance(a, int)]
    assert passes_per_ask == [1, 0, 1, 1, 1, 1, 1], passes_per_ask


def test_patch_sqs_message_clock(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = cloud.resources["DeadLetterQueue"].url
    sqs.send_message(QueueUrl=url, MessageBody="m")

    [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # in flight: invisible
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1  # visible again
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_patch_sqs_retention_check(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    from kizuna_tools.local import backends

    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = cloud.resources["DeadLetterQueue"].url
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "60"})
    sqs.send_message(QueueUrl=url, MessageBody="old")
    queue = backends.backend("sqs").get_queue("kizuna-DeadLetterQueue")
    queue._messages[0].sent_timestamp -= 120_000  # sent two minutes ago (wall clock)

    # An expired message is not delivered (moto stops that receive there)...
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    # ...and a fresh one is
    sqs.send_message(QueueUrl=url, MessageBody="new")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["new"]


def test_patch_put_events_time(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    cloud.advance(hours=5)
    cloud.put_events([{"Source": "shop", "DetailType": "x", "Detail": {"customer_id": "t"}}])
    messages = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=cloud.resources["Queue"].url
    )["Messages"]
    assert json.loads(messages[0]["Body"])["time"] == "2026-01-01T05:00:00Z"


def test_register_botocore_hooks(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given a pinpoint app and a client made the way a handler makes one
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    pinpoint = boto3.client("pinpoint", region_name="us-east-1")
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "a"})["ApplicationResponse"][
        "Id"
    ]

    # When it sends a push, to an address and to an endpoint (moto answers 404 for both)
    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {"token-1": {"ChannelType": "APNS"}},
            "Endpoints": {"endpoint-1": {}},
            "MessageConfiguration": {"APNSMessage": {"Title": "T", "Body": "B"}},
        },
    )

    # Then the fake answered as the service does, and recorded both
    result = response["MessageResponse"]
    assert result["ApplicationId"] == app_id
    assert result["Result"]["token-1"]["DeliveryStatus"] == "SUCCESSFUL"
    assert result["EndpointResult"]["endpoint-1"]["StatusCode"] == 200
    assert [p.get("address") or p.get("endpoint_id") for p in cloud.outbox("push")] == [
        "token-1",
        "endpoint-1",
    ]
    assert cloud.api_calls[("pinpoint", "SendMessages")] == 1

    # And an unknown application is a NotFoundException, as on AWS
    with pytest.raises(pinpoint.exceptions.NotFoundException):
        pinpoint.send_messages(
            ApplicationId="missing",
            MessageRequest={
                "Addresses": {"t": {"ChannelType": "GCM"}},
                "MessageConfiguration": {"GCMMessage": {"Body": "B"}},
            },
        )

    # And SMS through End User Messaging SMS (pinpoint-sms-voice-v2) is recorded too
    sms = boto3.client("pinpoint-sms-voice-v2", region_name="us-east-1")
    sms.send_text_message(DestinationPhoneNumber="+819000000000", MessageBody="code 1234")
    assert [m["message"] for m in cloud.outbox("sms")] == ["code 1234"]


def test_intercept_requests_library(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    response = requests.post(
        "https://api.line.me/v2/bot/message/push",
        timeout=5,
        headers={"Authorization": "Bearer token"},
        json={"to": "U" + "1" * 32, "messages": [{"type": "text", "text": "こんにちは"}]},
    )
    assert response.status_code == 200
    assert len(response.json()["sentMessages"]) == 1
    assert response.headers["x-line-request-id"]
    assert [m["to"] for m in cloud.outbox("line")] == ["U" + "1" * 32]


def test_intercept_urllib(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    cloud = local_cloud_factory(probe_template(), project_root=project_root)
    request = urllib.request.Request(
        "https://api.line.me/v2/bot/message/multicast",
        method="POST",
        data=json.dumps({"to": ["U1", "U2"], "messages": [{"type": "text", "text": "x"}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:  # intercepted: stays in-process
        assert response.status == 200
        assert json.loads(response.read())["sentMessages"]
    assert [m["path"] for m in cloud.outbox("line")] == ["/v2/bot/message/multicast"]


def test_every_patch_is_undone_on_close(template: dict[str, Any], project_root: Path) -> None:
    import moto.dynamodb.models as dynamodb_models
    from moto.awslambda.models import LambdaFunction
    from moto.cognitoidp.models import CognitoIdpBackend
    from moto.core import responses
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    from moto.events.models import EventsBackend, Rule
    from moto.scheduler.models import Schedule
    from moto.sqs.models import Message, SQSBackend
    from moto.stepfunctions import models as sfn_base_models
    from moto.stepfunctions.parser import models as sfn_models
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import (
        Timestamp,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path
    from moto.stepfunctions.parser.backend import execution, execution_worker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    owners = [
        (WaitFunction, "_eval_body"),
        (LambdaFunction, "_invoke_lambda"),
        (StateTaskServiceLambda, "_from_error"),
        (Rule, "send_to_targets"),
        (EventsBackend, "put_events"),
        (StepFunctionsParserBackend, "start_execution"),
        (retrier_decl, "time"),
        (urllib.request.HTTPSHandler, "https_open"),
        (Timestamp, "_from_timestamp_string"),
        (boto_client, "boto3"),
        (execution_worker, "AmazonStateLanguageParser"),
        (Message, "visible"),
        (Message, "delayed"),
        (SQSBackend, "is_message_valid_based_on_retention_period"),
        (SQSBackend, "send_message"),
        (SQSBackend, "send_message_batch"),
        (DynamoDBBackend, "transact_write_items"),
        (dynamodb_models, "copy"),
        (DynamoType, "size"),
        (Item, "size"),
        (Item, "__deepcopy__"),
        (Table, "scan"),
        (DynamoHandler, "query"),
        (DynamoHandler, "batch_write_item"),
        (DynamoHandler, "transact_write_items"),
        (Table, "put_item"),
        (Schedule, "_validate_start_date"),
        (Schedule, "update"),
        (CognitoIdpBackend, "admin_create_user"),
        (responses, "method_names_from_class"),
        (json_path, "parse"),
        (sfn_models, "datetime"),
        (execution, "datetime"),
        (sfn_base_models, "utcnow"),
    ]
    before = [owner.__dict__[name] for owner, name in owners]
    with LocalCloud.from_template(template, project_root=project_root):
        during = [owner.__dict__[name] for owner, name in owners]
    after = [owner.__dict__[name] for owner, name in owners]

    assert all(b is not d for b, d in zip(before, during, strict=True))
    assert "execute_result" not in DynamoResult.__dict__  # inherited again after close
    assert all(b is a for b, a in zip(before, after, strict=True))
    assert patches._HOST is None
    assert len(patches.PATCHES) == 28


def test_clock_is_installed_while_up(template: dict[str, Any], project_root: Path) -> None:
    from kizuna.runtime.clock import get_clock

    outside = get_clock()
    with LocalCloud.from_template(
        template, project_root=project_root, start=DEFAULT_START + timedelta(days=1)
    ) as cloud:
        assert get_clock() is cloud.clock
        assert get_clock().now() == DEFAULT_START + timedelta(days=1)
    assert get_clock() is outside


def test_patch_dynamodb_transactions() -> None:
    """A cancelled transaction leaves every item as it was (an earlier Put of the same
    transaction undone, an update undone); a committed one applies; no table is copied."""
    from unittest import mock

    from moto import mock_aws

    from kizuna_tools.local.patches import patch_dynamodb_transactions

    def run() -> tuple[list[dict[str, Any]], list[str]]:
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "t", "pk", "sk")
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
        claim = {"ConditionExpression": "attribute_not_exists(sk)"}
        codes: list[str] = []
        try:  # a new item, an update, then a claim that exists: cancelled as a whole
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                    {
                        "Update": {
                            "TableName": "t",
                            "Key": {"pk": {"S": "c"}, "sk": {"S": "1"}},
                            "UpdateExpression": "SET n = :n",
                            "ExpressionAttributeValues": {":n": {"N": "5"}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                            **claim,
                        }
                    },
                ]
            )
        except client.exceptions.TransactionCanceledException as exc:
            codes = [r["Code"] for r in exc.response["CancellationReasons"]]
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "d"}, "sk": {"S": "1"}}, **claim}},
            ]
        )
        items = sorted(client.scan(TableName="t")["Items"], key=lambda i: i["pk"]["S"])
        return items, codes

    with mock_aws():
        expected = run()
    with mock_aws():
        undo = patch_dynamodb_transactions(mock.Mock())
        try:
            from moto.dynamodb.models.table import Table

            real = copy.deepcopy
            copied: list[Any] = []

            def spy(value: Any, memo: Any = None) -> Any:
                if isinstance(value, Table):
                    copied.append(value)
                return real(value, memo)

            with mock.patch.object(copy, "deepcopy", spy):
                found = run()
        finally:
            undo()
    assert found == expected
    assert expected[1] == ["None", "None", "ConditionalCheckFailed"]
    assert [i["pk"]["S"] for i in found[0]] == ["a", "d"]
    assert copied == []


def test_patch_lambda_task_client_errors(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    # Given a Lambda task retried on Lambda.SdkClientException, whose first Invoke by the
    # interpreter times out after the function ran (an injected fault)
    from kizuna_tools.local.faults import FaultPlan

    retried = {
        **SEND,
        "Retry": [
            {"ErrorEquals": ["Lambda.SdkClientException"], "IntervalSeconds": 1, "MaxAttempts": 3}
        ],
    }
    cloud = local_cloud_factory(
        with_resources(
            probe_template(),
            {"Direct": state_machine({"StartAt": "Send", "States": {"Send": retried}})},
        ),
        project_root=project_root,
        faults=FaultPlan.parse("lambda.Invoke=1:timeout", seed=1),
    )

    # When it runs
    arn = run(cloud, "Direct", {"hello": "world"})
    cloud.drain()
    cloud.advance(minutes=1)

    # Then each timeout is a Lambda.SdkClientException its Retry matched, as on AWS (moto
    # alone reports States.Runtime, which no Retry or Catch can match)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    history = sfn.get_execution_history(executionArn=arn)["events"]
    errors = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert errors == ["Lambda.SdkClientException"] * 4  # the first attempt and 3 retries
    assert describe(arn)["status"] == "FAILED"
    assert cloud.invocations["Echo"] == 4


def test_an_asynchronous_invoke_is_queued_and_never_reports_the_functions_error(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    # Given the Flaky function, which fails its first attempt for a key
    cloud = cloud_with(local_cloud_factory, project_root, {})
    lam = boto3.client("lambda", region_name="us-east-1")
    arn = cloud.resources["Flaky"].arn
    # When it is invoked asynchronously (what `kizuna dlq redrive` does with a record)
    resp = lam.invoke(
        FunctionName=arn, InvocationType="Event", Payload=json.dumps({"key": "async"}).encode()
    )
    # Then Lambda's answer is 202 with no function error, as on AWS, and nothing ran yet
    assert resp["StatusCode"] == 202 and "FunctionError" not in resp
    assert cloud.invocations["Flaky"] == 0
    # and the queued invoke runs with the async retries: the second attempt succeeds
    cloud.drain()
    assert cloud.invocations["Flaky"] == 2


def test_patch_dynamodb_key_filters() -> None:
    """A Query filtering on a key attribute of what it queries (the table's or the index's,
    by name or #placeholder) is refused as AWS refuses it (moto alone runs it); a filter on
    other attributes is not, nor a Scan's on keys. (Applied again over the session's.)"""
    from moto import mock_aws

    from kizuna_tools.local.patches import patch_dynamodb_key_filters, top_level_names

    assert top_level_names(
        "begins_with(#s, :p) AND (a.sk = :v OR size(#g) > :n) AND NOT b IN (:x, :y)",
        {"#s": "sk", "#g": "group"},
    ) == {"sk", "a", "group", "b"}

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        index = {
            "IndexName": "by-kind",
            "KeySchema": key_schema("kind", "at"),
            "Projection": {"ProjectionType": "ALL"},
        }
        create_table(
            client, "t", "pk", "sk", indexed=("kind", "at"), GlobalSecondaryIndexes=[index]
        )
        client.put_item(
            TableName="t",
            Item={"pk": {"S": "a"}, "sk": {"S": "M#1"}, "kind": {"S": "k"}, "at": {"S": "1"}},
        )
        partition = {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "a"}, ":m": {"S": "M#"}},
        }

        def query(**params: Any) -> int:
            return int(client.query(TableName="t", **params)["Count"])

        undo = patch_dynamodb_key_filters(None)
        try:
            for params in (
                {"FilterExpression": "begins_with(sk, :m)", **partition},
                {
                    "FilterExpression": "begins_with(#k, :m)",
                    "ExpressionAttributeNames": {"#k": "sk"},
                    **partition,
                },
                {
                    "IndexName": "by-kind",
                    "KeyConditionExpression": "kind = :k",
                    "FilterExpression": "#at = :m",
                    "ExpressionAttributeNames": {"#at": "at"},
                    "ExpressionAttributeValues": {":k": {"S": "k"}, ":m": {"S": "M#"}},
                },
            ):
                with pytest.raises(client.exceptions.ClientError) as refused:
                    query(**params)
                assert "non-primary key attributes" in str(refused.value)
            # not a key: allowed; a Scan may filter on keys
            assert query(FilterExpression="kind = :m", **partition) == 0
            assert (
                client.scan(
                    TableName="t",
                    FilterExpression="begins_with(sk, :m)",
                    ExpressionAttributeValues={":m": {"S": "M#"}},
                )["Count"]
                == 1
            )
        finally:
            undo()


def test_patch_dynamodb_batch_keys() -> None:
    """Two requests of one BatchWriteItem naming one key (puts with different attributes, a
    put and a delete) are refused as AWS refuses them; distinct keys pass."""
    from moto import mock_aws

    from kizuna_tools.local.patches import patch_dynamodb_batch_keys

    def put(sk: str, n: str) -> dict[str, Any]:
        return {"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": sk}, "n": {"N": n}}}}

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "t", "pk", "sk")
        undo = patch_dynamodb_batch_keys(None)
        try:
            for requests in (
                [put("1", "1"), put("1", "2")],
                [put("1", "1"), {"DeleteRequest": {"Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}}],
            ):
                with pytest.raises(client.exceptions.ClientError, match="contains duplicates"):
                    client.batch_write_item(RequestItems={"t": requests})
            client.batch_write_item(RequestItems={"t": [put("1", "1"), put("2", "1")]})
            assert client.scan(TableName="t")["Count"] == 2
        finally:
            undo()


def test_patch_dynamodb_request_rules() -> None:
    """Requests DynamoDB refuses and moto 5.2.5 takes are refused: 26 requests in a
    BatchWriteItem, an unused value or name in a Query, Scan, PutItem, DeleteItem or a
    transaction's action, a secondary-index key
    of the wrong type (put, batch or transaction; moto refuses an update's itself), 33
    levels of nesting (32 containers). What DynamoDB takes still passes."""
    from moto import mock_aws

    from kizuna_tools.local.patches import nesting_levels, patch_dynamodb_request_rules

    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {"S": "x"}
        for level in range(levels):
            value = {"M": {"a": value}} if level % 2 else {"L": [value]}
        return value

    assert [nesting_levels(nested(n)) for n in (0, 1, 31, 32)] == [0, 1, 31, 32]

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "a"}, "sk": {"S": sk}}

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        index = {
            "IndexName": "by-kind",
            "KeySchema": key_schema("kind"),
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        create_table(client, "t", "pk", "sk", indexed=("kind",), GlobalSecondaryIndexes=[index])
        client.put_item(TableName="t", Item={**key("1"), "kind": {"S": "k"}})
        undo = patch_dynamodb_request_rules(None)
        try:
            refused = client.exceptions.ClientError
            with pytest.raises(refused, match="less than or equal to 25"):
                client.batch_write_item(
                    RequestItems={"t": [{"PutRequest": {"Item": key(str(i))}} for i in range(26)]}
                )
            update = {
                "TableName": "t",
                "Key": key("2"),
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "1"}, ":unused": {"N": "2"}},
            }
            with pytest.raises(refused, match=r"unused in expressions: keys: \{:unused\}"):
                client.transact_write_items(TransactItems=[{"Update": update}])
            check = {
                "TableName": "t",
                "Key": key("1"),
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#k": "kind"},
            }
            with pytest.raises(refused, match=r"ExpressionAttributeNames unused.*\{#k\}"):
                client.transact_write_items(TransactItems=[{"ConditionCheck": check}])
            unused = {"ExpressionAttributeValues": {":p": {"S": "a"}, ":u": {"S": "x"}}}
            for request in (
                lambda: client.query(TableName="t", KeyConditionExpression="pk = :p", **unused),
                lambda: client.scan(TableName="t", FilterExpression="pk = :p", **unused),
                lambda: client.put_item(
                    TableName="t", Item=key("9"), ConditionExpression="pk <> :p", **unused
                ),
                lambda: client.delete_item(
                    TableName="t", Key=key("9"), ConditionExpression="pk = :p", **unused
                ),
                lambda: client.transact_get_items(
                    TransactItems=[
                        {
                            "Get": {
                                "TableName": "t",
                                "Key": key("1"),
                                "ProjectionExpression": "pk",
                                "ExpressionAttributeNames": {"#k": "kind"},
                            }
                        }
                    ]
                ),
            ):
                with pytest.raises(refused, match=r"unused in expressions: keys: \{(:u|#k)\}"):
                    request()
            mismatch = "Type mismatch for Index Key kind Expected: S Actual: N IndexName: by-kind"
            wrong = {**key("3"), "kind": {"N": "1"}}
            for write in (
                lambda: client.put_item(TableName="t", Item=wrong),
                lambda: client.batch_write_item(
                    RequestItems={"t": [{"PutRequest": {"Item": wrong}}]}
                ),
                lambda: client.transact_write_items(
                    TransactItems=[{"Put": {"TableName": "t", "Item": wrong}}]
                ),
                lambda: client.update_item(
                    TableName="t",
                    Key=key("1"),
                    UpdateExpression="SET kind = :n, n = :n",
                    ExpressionAttributeValues={":n": {"N": "1"}},
                ),
            ):
                with pytest.raises(refused, match=f"{mismatch}|Type mismatch for key kind"):
                    write()
            assert client.get_item(TableName="t", Key=key("1"))["Item"] == {
                **key("1"),
                "kind": {"S": "k"},
            }
            assert client.get_item(TableName="t", Key=key("3")).get("Item") is None
            with pytest.raises(refused, match="Nesting Levels have exceeded supported limits"):
                client.put_item(TableName="t", Item={**key("4"), "deep": nested(32)})
            # what DynamoDB takes
            client.batch_write_item(
                RequestItems={"t": [{"PutRequest": {"Item": key(str(i))}} for i in range(25)]}
            )
            client.transact_write_items(
                TransactItems=[
                    {"Update": {**update, "ExpressionAttributeValues": {":n": {"N": "1"}}}}
                ]
            )
            client.put_item(
                TableName="t", Item={**key("4"), "deep": nested(31), "kind": {"S": "k"}}
            )
            client.update_item(
                TableName="t",
                Key=key("5"),
                UpdateExpression="SET kind = :k",
                ExpressionAttributeValues={":k": {"S": "k"}},
            )
            assert client.scan(TableName="t")["Count"] == 25  # "0" to "24"
        finally:
            undo()


def test_patch_scheduler_rules() -> None:
    """CreateSchedule and UpdateSchedule refuse an expression Scheduler cannot read and a
    recurring schedule's StartDate more than 5 minutes before the runtime's clock (moto
    alone takes both, and checks a start on create only, against the wall clock); a one-time
    schedule's start and a start within the 5 minutes pass."""
    from types import SimpleNamespace

    from moto import mock_aws

    from kizuna_tools.local.virtual_clock import VirtualClock

    now = DEFAULT_START + timedelta(days=400)  # the runtime's clock, not the wall clock
    host = SimpleNamespace(clock=VirtualClock(now))
    target = {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "RoleArn": "arn:aws:iam::1:role/r"}

    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")

        def schedule(name: str, expression: str, **extra: Any) -> dict[str, Any]:
            return {
                "Name": name,
                "ScheduleExpression": expression,
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "Target": target,
                **extra,
            }

        undo = patches.patch_scheduler_rules(host)  # type: ignore[arg-type]
        try:
            refused = client.exceptions.ValidationException
            for expression in ("cron(0 10 * * FRI *)", "cron(99 10 ? * FRI *)", "every friday"):
                with pytest.raises(refused, match="Invalid Schedule Expression"):
                    client.create_schedule(**schedule("a", expression))
            past = now - timedelta(minutes=6)
            for expression in ("rate(7 days)", "cron(0 10 ? * FRI *)"):
                with pytest.raises(refused, match="cannot be earlier than 5 minutes ago"):
                    client.create_schedule(**schedule("a", expression, StartDate=past))
            client.create_schedule(**schedule("a", "rate(7 days)", StartDate=now))
            client.create_schedule(
                **schedule("b", "at(2020-01-01T00:00:00)", StartDate=past)
            )  # a one-time schedule's start is ignored
            with pytest.raises(refused, match="cannot be earlier than 5 minutes ago"):
                client.update_schedule(**schedule("a", "rate(7 days)", StartDate=past))
            with pytest.raises(refused, match="Invalid Schedule Expression"):
                client.update_schedule(**schedule("a", "cron(0 10 * * FRI *)"))
            client.update_schedule(
                **schedule("a", "rate(7 days)", StartDate=now - timedelta(minutes=4))
            )
            assert client.get_schedule(Name="a")["ScheduleExpression"] == "rate(7 days)"
        finally:
            undo()


def test_patch_put_events_size() -> None:
    """A PutEvents request whose entries come to more than 1 MB (as EventBridge counts:
    14 bytes for a Time, source, detail-type, detail, resources) is refused; 1 MB passes,
    and so does a request the runtime stamps with a Time (measured as the caller made it)."""
    from moto import mock_aws

    from kizuna_tools.local.patches import put_events_size

    entry = {"Source": "shop", "DetailType": "order.placed", "Time": DEFAULT_START}
    assert put_events_size({**entry, "Detail": "{}", "Resources": ["arn:x"]}) == 14 + 4 + 12 + 2 + 5
    fixed = put_events_size({**entry, "Detail": '{"x":""}'})

    def detail(size: int) -> str:
        return json.dumps({"x": "a" * (size - fixed)}, separators=(",", ":"))

    with mock_aws():
        client = boto3.client("events", region_name="us-east-1")
        undo = patches.patch_put_events_size(None)
        try:
            quarter = [{**entry, "Detail": detail(256 * 1024)}] * 4
            assert client.put_events(Entries=quarter)["FailedEntryCount"] == 0  # 1 MB
            over = [*quarter[:3], {**entry, "Detail": detail(256 * 1024 + 1)}]
            for entries in (over, [{**entry, "Detail": detail(1024 * 1024 + 1)}]):
                with pytest.raises(client.exceptions.ClientError, match="over the limit"):
                    client.put_events(Entries=entries)
            # applied twice, a stamp of Time between the two (as the runtime stamps what
            # comes without one): measured once, as the caller made the request
            from moto.events.models import EventsBackend

            inner = EventsBackend.__dict__["put_events"]

            def stamping(self: Any, events: list[dict[str, Any]]) -> Any:
                return inner(self, [{**e, "Time": DEFAULT_START.timestamp()} for e in events])

            undo_stamp = patches._swap(EventsBackend, "put_events", stamping)
            undo_outer = patches.patch_put_events_size(None)
            try:
                untimed = {"Source": "shop", "DetailType": "order.placed"}
                bare = put_events_size({**untimed, "Detail": '{"x":""}'})
                body = {"x": "a" * (256 * 1024 - bare)}
                full = [{**untimed, "Detail": json.dumps(body, separators=(",", ":"))}] * 4
                assert client.put_events(Entries=full)["FailedEntryCount"] == 0
            finally:
                undo_outer()
                undo_stamp()
        finally:
            undo()


def test_patch_sqs_message_size() -> None:
    """SQS measures a message as its body's UTF-8 bytes and each attribute's name, data type
    and value, against the queue's MaximumMessageSize, and a SendMessageBatch's messages
    together against 1 MiB: a body at the limit with an attribute, or multi-byte text whose
    characters fit but bytes do not, is refused (moto counts the body's characters only)."""
    from moto import mock_aws

    from kizuna_tools.local.patches import sqs_message_size

    tag = {"kizuna-error": {"DataType": "String", "StringValue": "why"}}
    assert sqs_message_size("ab", tag) == 2 + len("kizuna-error") + len("String") + 3
    assert sqs_message_size("あ", {"n": {"DataType": "Binary", "BinaryValue": b"\0\1"}}) == 12
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        undo = patches.patch_sqs_message_size(None)
        try:
            url = client.create_queue(QueueName="q")["QueueUrl"]
            small = client.create_queue(
                QueueName="small", Attributes={"MaximumMessageSize": "1024"}
            )["QueueUrl"]
            at_limit = "a" * (1024 * 1024)
            client.send_message(QueueUrl=url, MessageBody=at_limit)  # the body alone: fits
            with pytest.raises(client.exceptions.ClientError, match="shorter than 1048576"):
                client.send_message(QueueUrl=url, MessageBody=at_limit, MessageAttributes=tag)
            with pytest.raises(client.exceptions.ClientError, match="shorter than 1024"):
                client.send_message(QueueUrl=small, MessageBody="あ" * 400)  # 1,200 bytes
            third = "あ" * (128 * 1024)  # 384 KiB as UTF-8, 128 Ki characters
            entries = [{"Id": str(i), "MessageBody": third} for i in range(3)]
            with pytest.raises(client.exceptions.ClientError, match="BatchRequestTooLong"):
                client.send_message_batch(QueueUrl=url, Entries=entries)
            sent = client.send_message_batch(QueueUrl=url, Entries=entries[:2])
            assert len(sent["Successful"]) == 2
        finally:
            undo()


def test_patch_cognito_alias_usernames() -> None:
    """AdminCreateUser refuses a username in email form in a pool with an email alias (as
    Kizuna's console pool is: username sign-in, email alias), as Cognito does; moto alone
    creates the user. A plain username there, and an email in a pool that signs in with
    email (UsernameAttributes), pass."""
    from moto import mock_aws

    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name="us-east-1")
        aliased = cognito.create_user_pool(PoolName="console", AliasAttributes=["email"])
        by_email = cognito.create_user_pool(PoolName="mail", UsernameAttributes=["email"])
        undo = patches.patch_cognito_alias_usernames(None)
        try:
            pool = aliased["UserPool"]["Id"]
            with pytest.raises(
                cognito.exceptions.InvalidParameterException,
                match="Username cannot be of email format, since user pool is configured "
                "for email alias",
            ):
                cognito.admin_create_user(UserPoolId=pool, Username="anna@example.com")
            cognito.admin_create_user(
                UserPoolId=pool,
                Username="anna",
                UserAttributes=[{"Name": "email", "Value": "anna@example.com"}],
            )
            cognito.admin_create_user(
                UserPoolId=by_email["UserPool"]["Id"], Username="anna@example.com"
            )
        finally:
            undo()
        # moto alone takes it
        cognito.admin_create_user(UserPoolId=pool, Username="bob@example.com")
