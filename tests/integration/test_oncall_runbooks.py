"""The operator's runbooks on the local runtime: a failure the docs describe is caused with
injected faults, its alarm's metric is read as CloudWatch would key it (the EMF lines the
functions print), the documented steps are followed as written, and the outcome checked:
each customer gets the message once or is recorded failed with a reason, nothing is lost,
the metric goes quiet again."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.faults import FaultInjector, FaultPlan

pytestmark = pytest.mark.integration


def emf(out: str) -> Counter[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric, its dimensions as CloudWatch keys it) -> sum, from the EMF lines in ``out``."""
    found: Counter[tuple[str, frozenset[tuple[str, str]]]] = Counter()
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dims in directive["Dimensions"]:
                    key = frozenset((d, str(doc[d])) for d in dims)
                    values = doc[metric["Name"]]
                    found[(metric["Name"], key)] += (
                        sum(values) if isinstance(values, list) else values
                    )
    return found


def upsert(cloud: LocalCloud, cid: str) -> None:
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "customer.upserted",
                "Detail": {
                    "customer_id": cid,
                    "occurred_at": cloud.clock.now().isoformat(),
                    "email": f"{cid}@example.jp",
                    "locale": "en",
                },
            }
        ]
    )
    cloud.drain()


def transactional(cid: str) -> dict[str, Any]:
    return {
        "action": "transactional",
        "execution": "tx:" + "a" * 32,
        "request_hash": "b" * 64,
        "caller": "iam:arn:aws:iam::123456789012:role/shop-backend",
        "customer_id": cid,
        "template": "order_confirmation",
        "channels": ["email"],
        "data": {"order_id": "A-1", "total": 5400, "currency": "JPY"},
    }


def ledger(cloud: LocalCloud, cid: str) -> list[dict[str, Any]]:
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    return [i for i in cloud.scan(activity) if i.get("kind") == "MSG" and i.get("pk") == cid]


def test_stale_sending_alarm_an_outcome_not_recorded_is_settled_and_the_metric_goes_quiet(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a customer, and the activity table refusing every BatchWriteItem (the record)
    upsert(cloud, "stale1")
    capsys.readouterr()
    cloud.faults = FaultInjector(FaultPlan.parse("dynamodb.BatchWriteItem=1:error", seed=1))
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    # when the message is sent (SES takes it) and its outcome cannot be written
    answer = cloud.invoke(send.logical_id, transactional("stale1"))
    assert answer.ok and answer.result["status"] == "sent", answer.error
    (row,) = ledger(cloud, "stale1")
    assert row["status"] == "sending", row
    emails = [e for e in cloud.outbox("email") if "stale1@" in json.dumps(e, default=str)]
    assert len(emails) == 1
    # the cause goes away; the reconciliation sweep runs every 30 minutes
    cloud.faults = None
    cloud.advance(hours=1)
    metrics = emf(capsys.readouterr().out)
    (row,) = ledger(cloud, "stale1")
    # settled with its reason: no evidence of delivery, so the customer may have it
    assert (row["status"], row["reason"]) == ("failed", "outcome_unknown"), row
    stale = {k: v for k, v in metrics.items() if k[0] == "StaleSending"}
    assert sum(stale.values()) == 1, metrics
    ((_, dims),) = stale
    assert {d for d, _ in dims} == {"outcome"}  # what the StaleSending alarm watches
    # and the next runs count nothing: the alarm goes back to OK
    cloud.advance(hours=1)
    assert not [k for k in emf(capsys.readouterr().out) if k[0] == "StaleSending"]
    emails = [e for e in cloud.outbox("email") if "stale1@" in json.dumps(e, default=str)]
    assert len(emails) == 1


def kizuna_stack(cloud: LocalCloud, name: str = "Kizuna") -> None:
    """A CloudFormation stack ``name`` with the local stack's outputs, so the commands run
    with ``--stack Kizuna`` as docs/DEPLOY.md writes them (the local runtime provisions the
    resources itself; only DescribeStacks is missing)."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in cloud.outputs.items()},
    }
    cloud.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def kizuna(*args: str, code: int = 0) -> str:
    from typer.testing import CliRunner

    from kizuna_tools.cli import app

    # `kizuna campaigns` takes the stack options before the command's name
    where = ["--region", "us-east-1"]
    argv = [args[0], *where, *args[1:]] if args[0] == "campaigns" else [*args, *where]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == code, result.output
    return result.output


def order(cloud: LocalCloud, cid: str, oid: str) -> dict[str, Any]:
    detail = {
        "customer_id": cid,
        "occurred_at": cloud.clock.now().isoformat(),
        "order_id": oid,
        "total": "3000",
        "currency": "JPY",
        "channel": "web",
        "lines": [{"product_id": "tea-009", "quantity": 1, "unit_price": "3000"}],
    }
    return {"Source": "com.example.shop", "DetailType": "order.placed", "Detail": detail}


def test_dead_letters_in_ingest_are_shown_and_redriven_by_name_once_the_cause_is_fixed(
    cloud: LocalCloud,
) -> None:
    # given the customers table throttling every ingest write (an exhausted capacity)
    kizuna_stack(cloud)
    dlq = cloud.find("AWS::SQS::Queue", "IngestDeadLetterQueue")[0]
    cloud.faults = FaultInjector(FaultPlan.parse("dynamodb=1:throttle", seed=1))
    cloud.put_events([order(cloud, f"dl{i}", f"o-{i}") for i in range(3)])
    for _ in range(12):
        cloud.drain()
        if len(cloud.dlq_messages()[dlq.logical_id]) >= 3:
            break
        cloud.advance(minutes=30)
    # then the alarm's metric: visible messages in the DLQ
    assert len(cloud.dlq_messages()[dlq.logical_id]) == 3
    # when the operator follows docs/DEPLOY.md, "Dead letters"
    listed = kizuna("dlq", "list", "ingest", "--stack", "Kizuna")
    assert "3 message(s)" in listed, listed
    shown = kizuna("dlq", "show", "ingest", "--stack", "Kizuna")
    assert "Throughput" in shown or "Throttl" in shown, shown
    cloud.faults = None  # the cause is fixed
    redriven = kizuna("dlq", "redrive", "ingest", "--stack", "Kizuna")
    assert "moved 3 message(s); 0 failed" in redriven, redriven
    cloud.drain()
    cloud.advance(hours=1)
    # then each order is counted once, and the queue is empty (the alarm back to OK)
    assert cloud.dlq_messages()[dlq.logical_id] == []
    customers = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    found = {c["customer_id"]: c for c in cloud.scan(customers)}
    for i in range(3):
        assert found[f"dl{i}"]["order_count"] == 1 and found[f"dl{i}"]["lifetime_value"] == 3000
    # the throttling dead-lettered evaluate's batches too (its alarm fired as well): the
    # operator redrives each queue that alarmed, by name
    held = {k: len(v) for k, v in cloud.dlq_messages().items() if v}
    assert set(held) <= {cloud.find("AWS::SQS::Queue", "EvaluateDeadLetterQueue")[0].logical_id}
    if held:
        kizuna("dlq", "show", "evaluate", "--stack", "Kizuna")
        redriven = kizuna("dlq", "redrive", "evaluate", "--stack", "Kizuna")
        assert f"moved {sum(held.values())} message(s); 0 failed" in redriven, redriven
        cloud.drain()
        cloud.advance(hours=1)
    assert all(not m for m in cloud.dlq_messages().values()), cloud.dlq_messages()
    # the first purchase reached the programs once: one entry decision each
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    entries = Counter(i["pk"] for i in cloud.scan(activity) if str(i["sk"]).startswith("ENTRY#"))
    assert entries == {f"dl{i}": 1 for i in range(3)}, entries


CAMPAIGN = """\
id: month-end-sale
name: Month-end sale (on-call test)
status: scheduled
audience:
  everyone: true
schedule: {type: once, at: "2026-01-05T03:00:00Z"}
channels: [email]
template: sale
coupon: {discount: "10%", valid_days: 3}
priority: 60
"""


def consented(cloud: LocalCloud, cid: str) -> None:
    upsert(cloud, cid)
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "consent.changed",
                "Detail": {
                    "customer_id": cid,
                    "occurred_at": cloud.clock.now().isoformat(),
                    "channel": "email",
                    "status": "opted_in",
                },
            }
        ]
    )
    cloud.drain()


def test_a_campaign_occurrence_whose_execution_failed_is_closed_as_documented(
    cloud: LocalCloud, tmp_path: Any
) -> None:
    # given customers, and the campaign applied as docs/CAMPAIGNS.md writes it
    kizuna_stack(cloud)
    for i in range(4):
        consented(cloud, f"cc{i}")
    path = tmp_path / "month-end-sale.yaml"
    path.write_text(CAMPAIGN, encoding="utf-8")
    kizuna("campaigns", "--stack", "Kizuna", "apply", str(path), "--by", "oncall")
    # when the customers table refuses the campaign's reads for good (after its retries)
    cloud.faults = FaultInjector(FaultPlan.parse("dynamodb.BatchGetItem=1:error", seed=1))
    cloud.advance(hours=4)
    cloud.faults = None
    machine = cloud.find("AWS::StepFunctions::StateMachine", "CampaignsStateMachine")[0]
    (arn,) = [
        e["executionArn"]
        for e in cloud.client("stepfunctions").list_executions(
            stateMachineArn=machine.arn, statusFilter="FAILED"
        )["executions"]
    ]  # the state machine's Failed alarm
    ended = cloud.client("stepfunctions").describe_execution(executionArn=arn)["stopDate"]
    assert abs(ended - cloud.clock.now()) < timedelta(hours=4)  # virtual time, as all else
    # then the operator closes the occurrence as docs/CAMPAIGNS.md says: refused for 15
    # minutes after the execution ended (batches in flight), then closed
    occurrence = "20260105T0300Z"
    close = ("campaigns", "--stack", "Kizuna", "close", "month-end-sale", occurrence)
    if cloud.clock.now() < ended + timedelta(minutes=15):
        assert "close it then" in kizuna(*close, "--reason", "DynamoDB outage", code=2)
    cloud.advance_to(ended + timedelta(minutes=16))
    closed = kizuna(*close, "--reason", "DynamoDB outage")
    assert f"month-end-sale {occurrence}: running -> stopped" in closed, closed
    shown = kizuna("campaigns", "--stack", "Kizuna", "show", "month-end-sale")
    assert "status: done" in shown, shown  # a one-off campaign: its one schedule fired
    # and nobody was sent anything: no ledger row, no email (members unsent stay unsent)
    assert all(ledger(cloud, f"cc{i}") == [] for i in range(4))
    assert cloud.outbox("email") == []
