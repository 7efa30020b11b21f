"""Access and erasure requests on the local runtime (real template): export gives
everything held; after ``customer.erase`` no item of any table holds the customer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna.adapters.scheduler import sweep_name
from kizuna.domain.privacy import ERASURES_PK
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna_infra import names
from kizuna_tools.cli import app
from kizuna_tools.local.app import default_project_root
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.template import REGION

pytestmark = pytest.mark.integration

PROGRAM = {p.id: p for p in load_programs(default_project_root() / "programs")[0]}[
    "second-purchase-coupon"
]


def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    cloud.put_events([{"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}])
    cloud.drain()


def personal(cid: str, n: int) -> dict[str, str]:
    return {
        "email": f"{cid}.mail@example.jp",
        "phone": f"+8190{n:08d}",
        "token": f"fcm-token-{cid}-0123456789",
        "line_user_id": "U" + f"{n:x}".rjust(32, "c"),
    }


def customer_with_everything(cloud: LocalCloud, cid: str, n: int) -> dict[str, str]:
    """Profile, push device, LINE, consent, an order (starts a journey), behaviour."""
    p = personal(cid, n)
    put(
        cloud,
        "customer.upserted",
        {
            "customer_id": cid,
            "email": p["email"],
            "phone": p["phone"],
            "first_name": "Hanako",
            "last_name": "Yamada",
            "time_zone": "Asia/Tokyo",
        },
    )
    put(cloud, "device.registered", {"customer_id": cid, "platform": "FCM", "token": p["token"]})
    put(cloud, "line.linked", {"customer_id": cid, "line_user_id": p["line_user_id"]})
    for channel in ("email", "line", "push"):
        put(
            cloud, "consent.changed", {"customer_id": cid, "channel": channel, "status": "opted_in"}
        )
    put(
        cloud,
        "order.placed",
        {
            "customer_id": cid,
            "order_id": f"o-{cid}",
            "total": "3000",
            "currency": "JPY",
            "channel": "web",
            "lines": [{"product_id": "tea-009", "quantity": 1, "unit_price": "3000"}],
        },
    )
    put(cloud, "product.viewed", {"customer_id": cid, "product_id": "tea-010"})
    put(
        cloud,
        "points.adjusted",
        {"customer_id": cid, "adjustment_id": "a1", "delta": 5, "reason": "survey"},
    )
    return p


def all_items(cloud: LocalCloud) -> str:
    """Every item of every table, as one JSON text to search."""
    return json.dumps(
        {t.logical_id: cloud.scan(t.logical_id) for t in cloud.find("AWS::DynamoDB::Table")},
        default=str,
        ensure_ascii=False,
    )


def table_names(cloud: LocalCloud) -> list[str]:
    customers = cloud.find("AWS::DynamoDB::Table", "Customers")[0].name
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].name
    return ["--customers-table", customers, "--activity-table", activity, "--region", REGION]


def cohort_executions(cloud: LocalCloud, cid: str) -> list[str]:
    """The statuses of the executions of the cohorts ``cid`` is a member of."""
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    cohorts = {
        str(i["pk"]).removeprefix("COHORT#")
        for i in cloud.scan(activity)
        if str(i["pk"]).startswith("COHORT#") and i.get("customer") == cid
    }
    return [s for name, s in all_executions(cloud).items() if name in cohorts]


def all_executions(cloud: LocalCloud) -> dict[str, str]:
    sfn = cloud.client("stepfunctions")
    return {
        ex["name"]: ex["status"]
        for machine in sfn.list_state_machines()["stateMachines"]
        for ex in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    }


def execution_texts(cloud: LocalCloud) -> str:
    """Every execution's input and history, as one JSON text to search."""
    sfn = cloud.client("stepfunctions")
    texts = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for ex in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            arn = ex["executionArn"]
            texts.append(sfn.describe_execution(executionArn=arn)["input"])
            history = sfn.get_execution_history(executionArn=arn)["events"]
            texts.append(json.dumps(history, default=str))
    return "\n".join(texts)


def test_export_then_erase_leaves_no_trace(cloud: LocalCloud) -> None:
    a = next(f"erase-me-{i}" for i in range(500) if not in_holdout(PROGRAM, f"erase-me-{i}"))
    # given a customer with every kind of data, a sent coupon and a journey still waiting
    pa = customer_with_everything(cloud, a, 1)
    pb = customer_with_everything(cloud, "keep1", 2)
    cloud.advance(days=1, hours=2)
    assert "RUNNING" in cohort_executions(cloud, a)
    # executions carry cohorts, never a customer: Step Functions keeps nothing of theirs
    assert a not in execution_texts(cloud)
    assert any(
        m["status"] == "sent"
        for m in cloud.scan(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)
        if m["pk"] == a and m.get("kind") == "MSG"
    )

    # when the customer asks for their data
    result = CliRunner().invoke(app, ["customers", "export", a, *table_names(cloud)])
    # then the export holds the profile, addresses, facts and every activity kind
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["customer"]["email"] == pa["email"]
    assert exported["customer"]["line_user_id"] == pa["line_user_id"]
    kinds = {i["sk"].split("#")[0] for i in exported["activity"]}
    assert {"ORDER", "POINTS", "CONSENT", "EVENT", "JOURNEY", "ENTRY", "MSG"} <= kinds
    # and their member row in the journey still waiting (its cohort's), no one else's
    members = exported["cohort_members"]
    assert members and {m["customer"] for m in members} == {a}
    named = {f"COHORT#{i['cohort']}" for i in exported["activity"] if i.get("cohort")}
    assert {m["pk"] for m in members} <= named

    # when they ask to be erased (an event on the bus)
    put(cloud, "customer.erase", {"customer_id": a, "request_id": "dsr-42"})
    # then no item of any table holds their id, email, phone, device token or LINE id
    everything = all_items(cloud)
    for value in (a, *pa.values()):
        at = everything.find(value)
        assert at < 0, everything[max(0, at - 300) : at + 100]
    # they left their running journey (its cohort's member item is gone: the scan above);
    # the other customer is untouched
    for value in ("keep1", *pb.values()):
        assert value in everything, value
    # only an anonymous count remains
    counts = [
        i
        for i in cloud.scan(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)
        if i["pk"] == ERASURES_PK
    ]
    assert [int(c["count"]) for c in counts] == [1]
    assert cloud.summary()["errors"] == []
    # and the erasure's sweep waits in the journey timers' group (named without the id)
    scheduler = cloud.client("scheduler")
    group = cloud.outputs[names.OUTPUT_JOURNEY_SCHEDULE_GROUP]
    [sweep] = scheduler.list_schedules(GroupName=group)["Schedules"]
    assert sweep["Name"] == sweep_name(a) and a not in sweep["Name"]

    # when a journey step that read them before the erasure writes their decision after it
    activity = cloud.physical_name(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)
    cloud.client("dynamodb").put_item(
        TableName=activity,
        Item={"pk": {"S": a}, "sk": {"S": "STEP#late#check"}, "cohort": {"S": "late-1"}},
    )
    cloud.advance(minutes=21)
    # then the sweep has run through ingest and deleted it; it is counted once, and gone
    assert a not in all_items(cloud)
    assert scheduler.list_schedules(GroupName=group)["Schedules"] == []
    counts = [
        i
        for i in cloud.scan(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)
        if i["pk"] == ERASURES_PK
    ]
    assert [int(c["count"]) for c in counts] == [1]
    assert cloud.summary()["errors"] == []

    # when an event sent before the erasure arrives late
    put(
        cloud,
        "order.placed",
        {
            "customer_id": a,
            "order_id": "late-1",
            "total": "100",
            "currency": "JPY",
            "channel": "web",
            "lines": [{"product_id": "p", "quantity": 1, "unit_price": "100"}],
        },
    )
    cloud.advance(days=8)  # and the cohort's journey walks on, without them
    # then it does not bring the customer back, and no step of the journey reached them
    assert a not in all_items(cloud)
    assert a not in execution_texts(cloud)
    # and export finds nothing
    result = CliRunner().invoke(app, ["customers", "export", a, *table_names(cloud)])
    assert result.exit_code == 1

    # and `kizuna customers erase` does the same for the other customer
    result = CliRunner().invoke(app, ["customers", "erase", "keep1", *table_names(cloud), "--yes"])
    assert result.exit_code == 0, result.output
    everything = all_items(cloud)
    for value in ("keep1", *pb.values()):
        assert value not in everything, value


def test_the_cli_erasure_with_a_stack_hands_the_sweep_to_ingest(cloud: LocalCloud) -> None:
    # given a customer with data, and the stack's outputs as `--stack` reads them
    cid = "cli-erase-1"
    values = customer_with_everything(cloud, cid, 3)
    cloud.advance(hours=2)
    outputs = {
        key: cloud.outputs[key]
        for key in (
            names.OUTPUT_CUSTOMERS_TABLE,
            names.OUTPUT_ACTIVITY_TABLE,
            names.OUTPUT_INGEST_DLQ_URL,
        )
    }
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    template = {
        "Resources": {"Placeholder": role},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloud.client("cloudformation").create_stack(
        StackName="KizunaErase", TemplateBody=json.dumps(template)
    )

    # when an operator erases them from the CLI
    result = CliRunner().invoke(
        app,
        ["customers", "erase", cid, "--stack", "KizunaErase", "--region", REGION, "--yes"],
    )
    # then they are erased now, and ingest (from its queue) schedules the sweep
    assert result.exit_code == 0, result.output
    assert "sweeps by itself" in result.output
    for value in (cid, *values.values()):
        assert value not in all_items(cloud), value
    cloud.drain()
    scheduler = cloud.client("scheduler")
    group = cloud.outputs[names.OUTPUT_JOURNEY_SCHEDULE_GROUP]

    def schedules() -> list[str]:
        return [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]

    assert sweep_name(cid) in schedules()
    # and what a step that read them before writes after it is swept 20 minutes later
    activity = cloud.physical_name(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)
    cloud.client("dynamodb").put_item(
        TableName=activity,
        Item={"pk": {"S": cid}, "sk": {"S": "STEP#late#check"}, "cohort": {"S": "late-1"}},
    )
    cloud.advance(minutes=21)
    assert cid not in all_items(cloud)
    assert sweep_name(cid) not in schedules()
    assert cloud.summary()["errors"] == []

    # an id stored before the id grammar (--legacy-id) is one ingest would refuse: nothing is
    # put on its queue (no dead letter holding the id), the operator is told to run it again
    legacy = CliRunner().invoke(
        app,
        [
            *("customers", "erase", "legacy+1@example.jp", "--legacy-id"),
            *("--stack", "KizunaErase", "--region", REGION, "--yes"),
        ],
    )
    assert legacy.exit_code == 0, legacy.output
    assert "run this again after" in legacy.output
    cloud.drain()
    dlq = cloud.outputs[names.OUTPUT_INGEST_DLQ_URL]
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert cloud.summary()["errors"] == []
