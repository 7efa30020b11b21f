"""The campaign function on moto, called as the campaign state machine calls it (without the
state machine): prepare -> freeze per segment -> plan -> send_batch per chunk -> plan ->
complete. Every eligible customer gets exactly one email; re-running every batch sends
nothing; the AWS calls per delivered email stay within the budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ses.models import ses_backends
from typer.testing import CliRunner, Result

from bench.common import create_kizuna_tables
from kizuna.adapters.campaigns import CampaignStore
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.campaigns.assign import assign
from kizuna.campaigns.loader import parse_campaign
from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import iso
from kizuna.runtime.clock import FixedClock, SystemClock, set_clock
from kizuna.runtime.config import GlobalControlConfig
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE, campaign_settings
from kizuna.runtime.wiring import campaign_service
from kizuna_tools.cli import app
from kizuna_tools.metering import ApiCallCounter
from tests import factories
from tests.integration.lambda_runtime import ACCOUNT, REGION, LambdaContext, load_handler
from tests.moto_setup import create_table, fake_aws_env

NO_CONTROL = GlobalControlConfig()  # the global control group off

pytestmark = pytest.mark.integration

SENDER = "news@shop.example"
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
TEMPLATES = {
    "news/ja/email.subject.j2": "{{ customer.display_name }}、新春セールのご案内",
    "news/ja/email.html.j2": (
        '{% extends "_base/email.html.j2" %}{% block title %}新春セール{% endblock %}'
        "{% block content %}<p>{{ customer.display_name }}</p>{% endblock %}"
    ),
    "news/ja/email.txt.j2": "{{ customer.display_name }}\n新春セールです。",
}
ENVIRONMENT = {  # the campaign function's, as the stack sets it
    "CUSTOMERS_TABLE": "customers",
    "ACTIVITY_TABLE": "activity",
    "CAMPAIGNS_TABLE": "campaigns",
    "ANALYTICS_BUCKET": "analytics",
    "EVENT_BUS_NAME": "kizuna",
    "SIGNING_SECRET_ARN": "kizuna-signing",
    "EMAIL_FROM": SENDER,
    "SES_CONFIGURATION_SET": "kizuna-email",
    "UNSUBSCRIBE_URL": "https://u.example/unsubscribe",
    "SCAN_SEGMENTS": "2",
    "POWERTOOLS_METRICS_NAMESPACE": "Kizuna",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
CAMPAIGN = factories.campaign_definition(
    id="new-year-sale", name="New year sale", holdout_percent=10
)


def customer(n: int) -> Customer:
    """c0000…, every tenth (c0003, c0013, …) without consent to email."""
    consent = {} if n % 10 == 3 else factories.opted_in("email")
    return factories.customer(f"c{n:04d}", last_name="山田", consent=consent)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCallCounter]:
    fake_aws_env(monkeypatch, REGION, **ENVIRONMENT)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_kizuna_tables(ddb)
        create_table(ddb, "campaigns", "campaign_id", "sk")
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="analytics")
        ses = boto3.client("sesv2", region_name=REGION)
        ses.create_email_identity(EmailIdentity=SENDER)
        ses.create_configuration_set(ConfigurationSetName="kizuna-email")
        boto3.client("events", region_name=REGION).create_event_bus(Name="kizuna")
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="kizuna-signing", SecretString="s" * 32
        )
        resource = boto3.resource("dynamodb", region_name=REGION)
        store = DynamoStore(resource, "customers", "activity")
        for n in range(300):
            store.save_customer(customer(n), 0)
        campaign = parse_campaign(CAMPAIGN)
        CampaignStore(resource, "campaigns").put_definition(campaign, TEMPLATES, "test", NOON)
        set_clock(FixedClock(NOON))
        campaign_settings.cache_clear()
        campaign_service.cache_clear()
        boto3.setup_default_session(region_name=REGION)
        counter = ApiCallCounter().attach(boto3.DEFAULT_SESSION.events)
        yield counter
        set_clock(SystemClock())
        campaign_settings.cache_clear()
        campaign_service.cache_clear()
        boto3.DEFAULT_SESSION = None


def emails() -> list[Any]:
    return list(ses_backends[ACCOUNT][REGION].sent_messages)


def test_a_campaign_reaches_every_eligible_customer_once(aws: ApiCallCounter) -> None:
    handler = load_handler("campaign").handler
    ctx = LambdaContext("campaign", memory_limit_in_mb=1024, timeout_ms=300_000)

    def call(**request: Any) -> dict[str, Any]:
        result: dict[str, Any] = handler(json.loads(json.dumps(request, default=str)), ctx)
        return result

    # given: 300 customers, a tenth without email consent, a campaign with a 10% holdout
    campaign = parse_campaign(CAMPAIGN)
    held = {f"c{n:04d}" for n in range(300) if assign(campaign, f"c{n:04d}", NO_CONTROL).held_out}
    eligible = {f"c{n:04d}" for n in range(300) if n % 10 != 3} - held

    # when: the state machine's tasks run in order
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:kizuna-campaigns:first"
    prepared = call(
        action="prepare", campaign_id="new-year-sale", scheduled_time=NOON, execution=execution
    )
    assert prepared["run"] is True and prepared["total_segments"] == 2
    occ = prepared["occurrence"]
    # a second delivery of the schedule (another execution) does not run it alongside
    twice = call(
        action="prepare",
        campaign_id="new-year-sale",
        scheduled_time=NOON,
        execution=execution.replace("first", "second"),
    )
    assert twice == {"run": False, "reason": "occurrence running in another execution"}
    ids = {"campaign_id": "new-year-sale", "occurrence": occ}
    frozen = [
        call(action="freeze", segment=s, total_segments=2, **ids) for s in prepared["segments"]
    ]
    assert sum(f["members"] for f in frozen) == 300
    plan = call(action="plan", after=None, **ids)
    assert plan["phase"] == "main" and plan["chunks"]
    results = [call(action="send_batch", chunk=chunk, **ids) for chunk in plan["chunks"]]
    calls = aws.total()
    sent = sum(r.get("sent", 0) for r in results)

    # then: each eligible customer got exactly one email; holdout and consent recorded
    recipients = [m.destinations["ToAddresses"][0] for m in emails()]
    assert len(recipients) == len(set(recipients)) == sent == len(eligible)
    assert {r.split("@")[0] for r in recipients} == eligible
    assert sum(r.get("holdout", 0) for r in results) == len(held)
    assert sum(r.get("suppressed", 0) for r in results) == 300 - len(eligible) - len(held)
    per_email = calls / sent
    print(f"\nAWS calls per delivered email: {per_email:.3f} ({calls} calls, {sent} emails)")
    assert per_email <= 1.3

    # when: every batch runs again (a duplicated or retried Map iteration)
    again = [call(action="send_batch", chunk=chunk, **ids) for chunk in plan["chunks"]]
    # then: nothing is sent twice, and the occurrence's counters are not added to again
    assert len(emails()) == sent
    assert sum(r.get("duplicate", 0) for r in again) == 300
    assert call(action="plan", after={"phase": plan["phase"], "pass": plan["pass"]}, **ids) == {
        "phase": "done",
        "pass": 0,
        "chunks": [],
    }
    # the manifest is tagged for the bucket's lifecycle rule; a user's list.csv is another's
    s3 = boto3.client("s3", region_name=REGION)
    prefix = f"campaigns/new-year-sale/{occ}/"
    manifest = [o["Key"] for o in s3.list_objects_v2(Bucket="analytics")["Contents"]]
    assert manifest and all(k.startswith(prefix) for k in manifest)
    tags = s3.get_object_tagging(Bucket="analytics", Key=manifest[0])["TagSet"]
    assert tags == [{"Key": "kizuna-object", "Value": "campaign-manifest"}]
    s3.put_object(Bucket="analytics", Key="campaigns/new-year-sale/list.csv", Body=b"x")
    done = call(action="complete", **ids)
    assert (done["status"], done["sent"], done["audience"]) == ("done", sent, 300)
    assert done.get("duplicate", 0) == 0 and done["holdout"] == len(held)
    # then: the frozen audience (customer ids) is gone, the user's list kept; a retried
    # Complete finds nothing left to delete
    assert done["manifest_objects_deleted"] == len(manifest)
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="analytics")["Contents"]]
    assert left == ["campaigns/new-year-sale/list.csv"]
    assert call(action="complete", **ids)["manifest_objects_deleted"] == 0
    stored = CampaignStore(boto3.resource("dynamodb", region_name=REGION), "campaigns")
    definition = stored.get_definition("new-year-sale")
    assert definition is not None and definition.status == "done"
    # and a second delivery of the schedule starts nothing
    assert call(action="prepare", campaign_id="new-year-sale", scheduled_time=NOON)["run"] is False


def test_an_operator_closes_an_occurrence_whose_execution_ended(
    aws: ApiCallCounter, tmp_path: Path
) -> None:
    """``kizuna campaigns close`` on moto: refused while the execution runs; once it has
    ended (aborted here; failed or timed out alike) the occurrence is stopped with the
    operator's reason, campaign.completed is on the bus and the frozen audience is gone."""
    handler = load_handler("campaign").handler
    ctx = LambdaContext("campaign", memory_limit_in_mb=1024, timeout_ms=300_000)

    def call(**request: Any) -> dict[str, Any]:
        result: dict[str, Any] = handler(json.loads(json.dumps(request, default=str)), ctx)
        return result

    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="kizuna-campaigns",
        definition=json.dumps(
            {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
        ),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/kizuna-campaigns",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="sale-1")["executionArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="completed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events = boto3.client("events", region_name=REGION)
    events.put_rule(
        Name="completed",
        EventBusName="kizuna",
        EventPattern=json.dumps({"detail-type": ["campaign.completed"]}),
    )
    events.put_targets(
        Rule="completed",
        EventBusName="kizuna",
        Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    # given: an occurrence started by that execution, its first batch sent
    prepared = call(
        action="prepare", campaign_id="new-year-sale", scheduled_time=NOON, execution=execution
    )
    occ = prepared["occurrence"]
    ids = {"campaign_id": "new-year-sale", "occurrence": occ}
    for s in prepared["segments"]:
        call(action="freeze", segment=s, total_segments=2, **ids)
    chunks = call(action="plan", after=None, **ids)["chunks"]
    first = call(action="send_batch", chunk=chunks[0], **ids)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "CampaignsTableName": "campaigns",
                "EventBusName": "kizuna",
                "AnalyticsBucketName": "analytics",
                "CampaignStateMachineArn": machine,
            }
        ),
        encoding="utf-8",
    )

    def campaigns(*args: str) -> Result:
        return CliRunner().invoke(
            app,
            ["campaigns", "--outputs", str(outputs), "--region", REGION, *args],
            env={"COLUMNS": "400"},  # the error box on one line
        )

    def close(*args: str) -> Result:
        return campaigns("close", *args)

    s3 = boto3.client("s3", region_name=REGION)
    prefix = f"campaigns/new-year-sale/{occ}/"
    assert s3.list_objects_v2(Bucket="analytics", Prefix=prefix)["KeyCount"] > 0
    # then: hostile arguments are refused before any call
    for bad in (
        ["new-year-sale", "../x", "--reason", "r"],
        ["new-year-sale", occ, "--reason", ""],
        ["../new-year-sale", occ, "--reason", "r"],
    ):
        refused = close(*bad)
        assert refused.exit_code == 2, refused.output
        assert (
            "is not a campaign id" in refused.output
            or "is not an occurrence" in refused.output
            or ("printable" in refused.output)
        )
    # and closing is refused while the execution runs
    running = close("new-year-sale", occ, "--reason", "stuck")
    assert running.exit_code == 2 and "is RUNNING" in running.output
    store = CampaignStore(boto3.resource("dynamodb", region_name=REGION), "campaigns")
    assert (store.get_occurrence("new-year-sale", occ) or {})["status"] == "running"
    # and `send` in the occurrence's minute says it would not run (not "started")
    again_now = campaigns("send", "new-year-sale")
    assert again_now.exit_code == 2, again_now.output
    assert f"occurrence {occ} of new-year-sale is running" in again_now.output
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    # when: the execution has ended without reaching Complete
    sfn.stop_execution(executionArn=execution, cause="simulated failure")
    stopped = sfn.describe_execution(executionArn=execution)["stopDate"]
    # then: not at once (a batch in flight may still send)
    set_clock(FixedClock(stopped + timedelta(minutes=14)))
    early = close("new-year-sale", occ, "--reason", "stuck")
    assert early.exit_code == 2 and "batches in flight may still send" in early.output
    # but 15 minutes later
    set_clock(FixedClock(stopped + timedelta(minutes=15)))
    closed = close("new-year-sale", occ, "--reason", "SES quota reached; resent as a new campaign")
    # then
    assert closed.exit_code == 0, closed.output
    assert f"new-year-sale {occ}: running -> stopped" in closed.output
    state = store.get_occurrence("new-year-sale", occ) or {}
    assert state["status"] == "stopped"
    assert state["definition_version"] == 1  # the version it ran (a re-apply is another)
    assert state["stop_reason"] == (
        "closed by hand (execution ABORTED): SES quota reached; resent as a new campaign"
    )
    assert s3.list_objects_v2(Bucket="analytics", Prefix=prefix)["KeyCount"] == 0
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (completed,) = [json.loads(m["Body"]) for m in received]
    assert completed["source"] == KIZUNA_EVENT_SOURCE
    assert completed["detail"]["status"] == "stopped"
    assert completed["detail"]["counts"]["sent"] == first["sent"] > 0
    # and the rest of the audience gets nothing (a late redrive skips every batch)
    sent = len(emails())
    assert all("skipped" in call(action="send_batch", chunk=c, **ids) for c in chunks[1:])
    assert len(emails()) == sent
    again = close("new-year-sale", occ, "--reason", "again")
    assert again.exit_code == 2 and "is stopped and has ended" in again.output


def test_a_click_winner_measures_only_the_messages_whose_clicks_can_be_seen(
    aws: ApiCallCounter,
) -> None:
    """The campaign function's choose_winner on moto, by clicks: the ledger entries it reads
    anyway carry ``links_untracked``, and a message sent with its links untracked leaves its
    variant's denominator instead of counting a non-click."""
    handler = load_handler("campaign").handler
    ctx = LambdaContext("campaign", memory_limit_in_mb=1024, timeout_ms=300_000)

    def call(**request: Any) -> dict[str, Any]:
        result: dict[str, Any] = handler(json.loads(json.dumps(request, default=str)), ctx)
        return result

    # given: a click winner between a and b, its test pool sent
    resource = boto3.resource("dynamodb", region_name=REGION)
    campaign = parse_campaign(
        factories.campaign_definition(
            id="click-test",
            variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
            winner={"test_percent": 20, "metric": "click", "wait_hours": 2},
        )
    )
    CampaignStore(resource, "campaigns").put_definition(campaign, TEMPLATES, "test", NOON)
    prepared = call(action="prepare", campaign_id="click-test", scheduled_time=NOON)
    ids = {"campaign_id": "click-test", "occurrence": prepared["occurrence"]}
    for s in prepared["segments"]:
        call(action="freeze", segment=s, total_segments=2, **ids)
    plan = call(action="plan", after=None, **ids)
    assert plan["phase"] == "test"
    for chunk in plan["chunks"]:
        call(action="send_batch", chunk=chunk, **ids)
    activity = resource.Table("activity")
    sent = sorted(
        (
            i
            for i in activity.scan()["Items"]
            if i.get("campaign") == "click-test" and i.get("status") == "sent"
        ),
        key=lambda i: str(i["pk"]),
    )
    in_a = [i for i in sent if i.get("variant") == "a"]
    in_b = [i for i in sent if i.get("variant") == "b"]
    assert len(in_a) >= 6 and len(in_b) >= 3
    clicked = iso(NOON + timedelta(minutes=30))

    def mark(item: dict[str, Any], field: str, value: Any) -> None:
        activity.update_item(
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET #f = :v",
            ExpressionAttributeNames={"#f": field},
            ExpressionAttributeValues={":v": value},
        )

    # a: every other message went with its links untracked (no click can be stamped), the
    # rest were clicked; b: tracked, all clicked but one
    for n, item in enumerate(in_a):
        mark(item, *(("links_untracked", True) if n % 2 else ("click_at", clicked)))
    for item in in_b[1:]:
        mark(item, "click_at", clicked)
    # when: the winner wait ends and the winner is chosen
    after = {"phase": "test", "pass": plan["pass"]}
    assert call(action="plan", after=after, **ids)["phase"] == "winner"
    assert call(action="choose_winner", **ids) == {"winner": "a"}
    # then: a's denominator is its tracked messages alone
    occ = CampaignStore(resource, "campaigns").get_occurrence("click-test", ids["occurrence"])
    tracked = len(in_a) - len(in_a) // 2
    assert occ is not None and f"a: {tracked}/{tracked} (100.0%)" in occ["winner_reason"]
    assert f"b: {len(in_b) - 1}/{len(in_b)}" in occ["winner_reason"]
