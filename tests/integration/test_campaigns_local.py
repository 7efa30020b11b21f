"""A 5,000-customer campaign on the local runtime, through what CDK synthesizes: applied with
the CLI, fired by its Scheduler schedule on virtual time, run by the generic campaign state
machine and the batch send function. Every eligible customer gets exactly one message on the
right channel; consent, fallback, caps and quiet-hours deferral in each customer's zone are
exercised; a duplicated batch sends nothing; the dry run calls no provider."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from typer.testing import CliRunner

from kizuna.adapters.campaigns import CampaignStore
from kizuna.adapters.dynamodb import DynamoStore, customer_to_item
from kizuna.campaigns.assign import HOLDOUT, assign
from kizuna.campaigns.engine import SEND_STEP, execution_of
from kizuna.campaigns.loader import load_campaign
from kizuna.delivery.why import explain
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.domain.timestamps import iso
from kizuna.runtime.config import GlobalControlConfig, KizunaConfig
from kizuna_tools.cli import app
from kizuna_tools.demo import DEMO_CONFIG, simulation_config
from kizuna_tools.local.cloud import LocalCloud
from tests.factories import envelope, order, parsed, upsert
from tests.integration.conftest import DemoCloud

NO_CONTROL = GlobalControlConfig()  # the global control group off

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 29, 0, 0, tzinfo=UTC)
SEND_AT = datetime(2026, 1, 29, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo, 07:00 in New York
CUSTOMERS = int(os.environ.get("KIZUNA_CAMPAIGN_TEST_CUSTOMERS", "5000"))
# the customers are folded with the configuration the demo stack runs (its ranks: a customer
# folded with other thresholds would be new to the daily scoring's near-next-rank check, and
# announced, sending the journey's emails too)
CFG = KizunaConfig.model_validate(simulation_config(DEMO_CONFIG))
CAMPAIGN = """\
id: month-end-sale
name: Month-end sale (test)
status: scheduled
audience:
  segments: [repeat-buyers]
schedule: {type: once, at: "2026-01-29T12:00:00Z"}
channels: [email, line]
template: sale
coupon: {discount: "10%", valid_days: 3}
variants:
  - {name: a, weight: 50}
  - {name: b, weight: 50, template: sale_urgent}
holdout_percent: 10
winner: {test_percent: 20, metric: open, wait_hours: 2}
priority: 60
"""


def kind(i: int) -> str:
    """What sort of customer number ``i`` is (in the audience unless 'prospect')."""
    if i % 25 == 0:
        return "prospect"  # no orders: not a repeat buyer, not in the audience
    return {
        6: "line_tokyo",  # email not consented, LINE consented: fallback, quiet hours in Tokyo
        7: "capped",  # email, but two messages today already
        8: "unreachable",  # nothing consented
        9: "line_new_york",  # LINE only, quiet hours in New York
    }.get(i % 10, "email")


def customer(i: int) -> Customer:
    cid = f"c{i:05d}"
    k = kind(i)
    zone = "America/New_York" if k == "line_new_york" else "Asia/Tokyo"
    fields: dict[str, Any] = {
        "email": f"{cid}@example.jp",
        "first_name": "Hanako",
        "locale": "en" if i % 2 else "ja",
        "time_zone": zone,
    }
    events = [upsert(cid, START - timedelta(days=60), f"{cid}-up", **fields)]
    if k != "prospect":
        events += [
            order(cid, f"{cid}-o1", 3000, START - timedelta(days=40)),
            order(cid, f"{cid}-o2", 2000, START - timedelta(days=20)),
        ]
    consents = {"email": "email", "capped": "email", "line_tokyo": "line", "line_new_york": "line"}
    if k.startswith("line"):
        events.append(
            envelope(
                "line.linked",
                {
                    "customer_id": cid,
                    "occurred_at": (START - timedelta(days=59)).isoformat(),
                    "line_user_id": "U" + f"{i:032x}",
                },
                f"{cid}-line",
            )
        )
    if k in consents:
        events.append(
            envelope(
                "consent.changed",
                {
                    "customer_id": cid,
                    "occurred_at": (START - timedelta(days=58)).isoformat(),
                    "channel": consents[k],
                    "status": "opted_in",
                },
                f"{cid}-consent",
            )
        )
    return apply_events(Customer(customer_id=cid), [parsed(e) for e in events], CFG, START).customer


@pytest.fixture(scope="module")
def population() -> list[Customer]:
    return [customer(i) for i in range(CUSTOMERS)]


def seed(cloud: LocalCloud, population: list[Customer]) -> None:
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    customers = dynamodb.Table(cloud.outputs["CustomersTableName"])
    activity = dynamodb.Table(cloud.outputs["ActivityTableName"])
    with customers.batch_writer() as batch:
        for c in population:
            batch.put_item(Item=customer_to_item(c.model_copy(update={"version": 1})))
    with activity.batch_writer() as batch:
        for i, c in enumerate(population):
            if kind(i) == "capped":  # two journey messages earlier today
                batch.put_item(
                    Item={
                        "pk": c.customer_id,
                        "sk": "CONTACT",
                        "sent": {
                            "j1#send": iso(SEND_AT - timedelta(hours=3)),
                            "j2#send": iso(SEND_AT - timedelta(hours=1)),
                        },
                    }
                )


def cli(cloud: LocalCloud, tmp_path: Path, *args: str) -> str:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(cloud.outputs), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["campaigns", "--outputs", str(outputs), "--region", "us-east-1", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def ledger(cloud: LocalCloud, occurrence: str) -> dict[str, dict[str, Any]]:
    store = DynamoStore(
        boto3.resource("dynamodb", region_name="us-east-1"),
        cloud.outputs["CustomersTableName"],
        cloud.outputs["ActivityTableName"],
    )
    execution = execution_of("month-end-sale", occurrence)
    rows = {}
    for item in store.scan_activity(("MSG",)):
        if item.get("execution") == execution:
            assert str(item["sk"]) == f"MSG#{execution}#{SEND_STEP}"
            rows[str(item["pk"])] = item
    return rows


def manifest(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [str(o["Key"]) for o in listed.get("Contents", [])]


def test_a_5000_customer_campaign_reaches_each_eligible_customer_once(
    demo_cloud: DemoCloud, population: list[Customer], tmp_path: Path
) -> None:
    # given the demo app at the start of the day, 5,000 customers, and the campaign file
    cloud = demo_cloud(START)
    seed(cloud, population)
    (tmp_path / "month-end-sale.yaml").write_text(CAMPAIGN, encoding="utf-8")
    campaign = load_campaign(tmp_path / "month-end-sale.yaml")

    # when it is dry-run: nothing reaches a provider
    cli(cloud, tmp_path, "apply", str(tmp_path / "month-end-sale.yaml"), "--by", "test")
    dry = cli(cloud, tmp_path, "send", "month-end-sale", "--dry-run")
    assert "send on email" in dry and "frequency_cap_day" in dry
    assert cloud.outbox("email") == [] and cloud.outbox("line") == []

    # and the schedule fires on virtual time, the occurrence runs through the test pool,
    # the winner wait and the rest; Tokyo's LINE members wait for 08:00 there (23:00 UTC)
    occurrence = "20260129T1200Z"
    prefix = f"campaigns/month-end-sale/{occurrence}/"
    cloud.advance_to(SEND_AT + timedelta(hours=6))
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = cloud.outputs["AnalyticsBucketName"]
    keys = [k for k in manifest(s3, bucket, prefix) if "/main/" in k]
    assert keys

    # when a batch of the main phase is invoked again (a duplicated or retried delivery)
    sent_before = (len(cloud.outbox("email")), len(cloud.outbox("line")))
    assert sent_before[0] > 0
    function = next(name for name, spec in cloud.functions.items() if spec.code_name == "campaign")
    result = cloud.invoke(
        function,
        {
            "action": "send_batch",
            "campaign_id": "month-end-sale",
            "occurrence": occurrence,
            "chunk": {"key": keys[0].removeprefix(prefix), "not_before": iso(SEND_AT)},
        },
    )
    # then nothing is sent twice
    assert result.ok, result
    assert (len(cloud.outbox("email")), len(cloud.outbox("line"))) == sent_before

    # and the deferred pass runs after quiet hours, the occurrence completes
    cloud.advance_to(SEND_AT + timedelta(days=1, hours=2))
    rows = ledger(cloud, occurrence)

    # then every member of the audience has exactly one decision, nobody else has one
    audience = {c.customer_id for i, c in enumerate(population) if kind(i) != "prospect"}
    assert set(rows) == audience
    by_kind: dict[str, Counter[str]] = {}
    for i, c in enumerate(population):
        if kind(i) == "prospect":
            continue
        row = rows[c.customer_id]
        expected_arm = assign(campaign, c.customer_id, NO_CONTROL)
        if expected_arm.arm == HOLDOUT:
            assert row["status"] == "holdout"
            # the row says which holdout and where the customer's hash fell
            assert (row["held_out"], row["holdout_percent"]) == (
                "campaign",
                campaign.holdout_percent,
            )
            assert row["bucket"] < campaign.holdout_percent
            assert explain(row, "en").text.startswith("Held out (campaign holdout")
            continue
        by_kind.setdefault(kind(i), Counter())[f"{row['status']}:{row.get('channel')}"] += 1
        if kind(i) in ("line_tokyo", "line_new_york") and row["status"] == "sent":
            # sent after the end of quiet hours (08:00) in the customer's own zone
            local = datetime.fromisoformat(str(row["sent_at"])).astimezone(
                ZoneInfo(c.time_zone or "Asia/Tokyo")
            )
            assert 8 <= local.hour < 21, (c.customer_id, local)
    assert set(by_kind["email"]) == {"sent:email"}
    assert set(by_kind["line_tokyo"]) == {"sent:line"}
    assert set(by_kind["line_new_york"]) == {"sent:line"}
    assert set(by_kind["capped"]) == {"suppressed:email"}
    assert set(by_kind["unreachable"]) == {"suppressed:None"}
    reasons = Counter(r.get("reason") for r in rows.values() if r["status"] == "suppressed")
    assert reasons["frequency_cap_day"] == by_kind["capped"]["suppressed:email"]
    assert reasons["no_channel"] == by_kind["unreachable"]["suppressed:None"]
    # which cap, its window and what it counted; in a sentence for the timeline
    capped = [r for r in rows.values() if r.get("reason") == "frequency_cap_day"]
    assert capped and all(r["cap"]["count"] >= r["cap"]["limit"] for r in capped)
    assert all(r["cap"]["days"] == 1 for r in capped)
    assert all(explain(r, "ja").text.startswith("未送信: 1 日") for r in capped)

    # and each address got exactly one message
    emails = Counter(
        json.dumps(e.get("destinations") or e.get("request"), sort_keys=True, default=str)
        for e in cloud.outbox("email")
    )
    assert len(cloud.outbox("email")) == by_kind["email"]["sent:email"]
    assert all(n == 1 for n in emails.values())
    line = Counter(json.dumps(m.get("to"), sort_keys=True) for m in cloud.outbox("line"))
    line_sent = by_kind["line_tokyo"]["sent:line"] + by_kind["line_new_york"]["sent:line"]
    assert sum(line.values()) == line_sent
    assert all(n == 1 for n in line.values())

    # and the occurrence is done, the campaign too, with its winner and counts
    store = CampaignStore(
        boto3.resource("dynamodb", region_name="us-east-1"), cloud.outputs["CampaignsTableName"]
    )
    occ = store.get_occurrence("month-end-sale", occurrence)
    assert occ is not None and occ["status"] == "done"
    assert occ["winner"] in {"a", "b"}
    assert int(occ["audience"]) == len(audience)
    stored = store.get_definition("month-end-sale")
    assert stored is not None and stored.status == "done"

    # and its frozen audience (customer ids, arms) went with it
    assert manifest(s3, bucket, prefix) == []

    # and the report reads it
    report = cli(cloud, tmp_path, "report", "month-end-sale")
    assert "holdout" in report and "winner" in report


def test_a_recurring_campaign_is_paused_and_resumed_long_after_it_started(
    demo_cloud: DemoCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scheduler refuses a StartDate more than 5 minutes past (the runtime refuses it too):
    a pause or resume after a recurring campaign began sends none for a cron, and for a rate
    the first of its runs still ahead, so both go through and the rate keeps its rhythm."""
    cloud = demo_cloud(START)
    # the two campaigns' templates: the month-end sale's, in a templates folder of their own
    shutil.copytree(Path(__file__).parents[2] / "templates", tmp_path / "templates")
    for name in ("weekly-cron", "weekly-rate"):
        shutil.copytree(tmp_path / "templates/month-end-sale", tmp_path / "templates" / name)
    monkeypatch.chdir(tmp_path)
    start = START + timedelta(minutes=30)
    schedules = {
        "weekly-cron": 'cron: "cron(0 10 ? * MON 2030)"',  # never fires in this test
        "weekly-rate": 'rate: "rate(7 days)"',
    }
    for name, expression in schedules.items():
        (tmp_path / f"{name}.yaml").write_text(
            f"id: {name}\nname: {name}\nstatus: scheduled\n"
            "audience: {segments: [repeat-buyers]}\n"
            f'schedule: {{type: recurring, {expression}, start: "{iso(start)}"}}\n'
            'channels: [email]\ntemplate: sale\ncoupon: {discount: "10%", valid_days: 3}\n',
            encoding="utf-8",
        )
        cli(cloud, tmp_path, "apply", str(tmp_path / f"{name}.yaml"), "--by", "test")
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    group = cloud.outputs["CampaignScheduleGroupName"]

    def stored(name: str) -> dict[str, Any]:
        return dict(scheduler.get_schedule(Name=name, GroupName=group))

    assert stored("weekly-rate")["StartDate"] == start

    cloud.advance_to(start + timedelta(hours=2))  # the start is long past
    for name in schedules:
        cli(cloud, tmp_path, "pause", name)
        assert stored(name)["State"] == "DISABLED"
        cli(cloud, tmp_path, "resume", name)
        assert stored(name)["State"] == "ENABLED"
    assert "StartDate" not in stored("weekly-cron")
    assert stored("weekly-rate")["StartDate"] == start + timedelta(days=7)
