"""The campaign state machine, as CDK synthesizes it, runs on the local runtime.

The campaign function is a scripted stand-in here (``functions/campaign/handler.py`` of a
temporary project root, every other function the checkout's own): it parses each request
with the contract models of ``kizuna.services.contracts`` (extra fields refused), records
what it was asked and when (virtual time) in the campaigns table, and answers the next step.
What is under test is the state machine: Prepare -> Freeze (Distributed Map) -> the Plan
loop -> Send (Distributed Map: Pace + SendBatch) / WaitForResults + ChooseWinner ->
Complete, pauses retried on the virtual clock, and an EventBridge Scheduler schedule created
at run time (as ``kizuna campaigns apply`` does) starting an occurrence.
"""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.local import LocalCloud
from kizuna_tools.local.testing import CloudFactory

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)  # 09:30 in Tokyo; no daily job due for hours
SEGMENTS = 3
PAUSES = 2  # the "paused" campaign's first chunk is refused this many times

STUB_HANDLER = '''
import itertools
import os
from datetime import timedelta

import boto3

from kizuna.runtime.clock import get_clock
from kizuna.services import contracts

REQUESTS = {
    "prepare": contracts.PrepareRequest,
    "freeze": contracts.FreezeRequest,
    "plan": contracts.PlanRequest,
    "send_batch": contracts.SendBatchRequest,
    "choose_winner": contracts.WinnerRequest,
    "complete": contracts.CompleteRequest,
}
PAUSES = __PAUSES__
SEGMENTS = __SEGMENTS__
_visits = itertools.count()
_refused = {}


class CampaignPaused(Exception):
    """What the campaign function raises while its campaign is paused."""


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def chunk(key, phase, not_before):
    return {"key": key, "phase": phase, "pass_number": 0, "due": iso(not_before),
            "not_before": iso(not_before)}


def handler(event, context):
    request = REQUESTS[event["action"]].model_validate(event)
    now = get_clock().now()
    detail = ""
    if request.action == "freeze":
        detail = f"{request.segment}/{request.total_segments}"
    elif request.action == "send_batch":
        detail = request.chunk.key
        if request.campaign_id == "paused" and _refused.get(detail, 0) < PAUSES:
            _refused[detail] = _refused.get(detail, 0) + 1
            raise CampaignPaused(f"{request.campaign_id} is paused")
    elif request.action == "plan":
        detail = (request.after or {}).get("phase") or "-"
    boto3.resource("dynamodb").Table(os.environ["CAMPAIGNS_TABLE"]).put_item(Item={
        "campaign_id": request.campaign_id,
        "sk": f"visit#{next(_visits):04d}",
        "action": request.action,
        "detail": detail,
        "at": iso(now),
    })

    if request.action == "prepare":
        return {
            "run": request.campaign_id != "draft",
            "campaign_id": request.campaign_id,
            "occurrence": f"{request.campaign_id}@{iso(request.scheduled_time)}",
            "segments": list(range(SEGMENTS)),
            "total_segments": SEGMENTS,
        }
    if request.action == "plan":
        phase = (request.after or {}).get("phase")
        if phase is None:  # the A/B test pool first
            return {"phase": "test", "chunks": [chunk("test-0", "test", now + timedelta(minutes=10))]}
        if phase == "test":
            return {"phase": "winner", "wait_until": iso(now + timedelta(hours=2))}
        if phase == "winner":  # the rest get the winner: one chunk now, one paced later
            return {"phase": "main", "chunks": [
                chunk("main-0", "main", now - timedelta(minutes=1)),
                chunk("main-1", "main", now + timedelta(minutes=30)),
            ]}
        return {"phase": "done"}
    if request.action == "complete":
        return {"campaign_id": request.campaign_id, "occurrence": request.occurrence,
                "status": "done"}
    return {"ok": True, "big": "x" * 1000}  # freeze, send_batch, choose_winner
'''


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """The checkout's functions, but a scripted campaign function."""
    functions = tmp_path / "functions"
    functions.mkdir()
    for folder in (ROOT / "functions").iterdir():
        if folder.is_dir() and folder.name != "campaign":
            (functions / folder.name).symlink_to(folder, target_is_directory=True)
    (functions / "campaign").mkdir()
    code = STUB_HANDLER.replace("__PAUSES__", str(PAUSES)).replace("__SEGMENTS__", str(SEGMENTS))
    (functions / "campaign" / "handler.py").write_text(textwrap.dedent(code))
    return tmp_path


@pytest.fixture
def cloud(
    kizuna_template_json: dict[str, Any], local_cloud_factory: CloudFactory, project_root: Path
) -> LocalCloud:
    return local_cloud_factory(
        kizuna_template_json,
        project_root=project_root,
        start=T0,
        environment_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )


def output(cloud: LocalCloud, template: dict[str, Any], name: str) -> str:
    """A stack output, resolved as the CLI reads it after a deploy."""
    return str(cloud.template.resolve(template["Outputs"][name]["Value"]))


def machine_arn(cloud: LocalCloud) -> str:
    [machine] = cloud.find("AWS::StepFunctions::StateMachine", "Campaigns")
    assert machine.arn
    return machine.arn


def visits(cloud: LocalCloud, campaign_id: str) -> list[tuple[str, str, str]]:
    """(action, detail, virtual time) of every call the campaign function got, in order."""
    [table] = cloud.find("AWS::DynamoDB::Table", "Campaigns")
    items = sorted(
        (i for i in cloud.scan(table.logical_id) if i["campaign_id"] == campaign_id),
        key=lambda i: str(i["sk"]),
    )
    return [(str(i["action"]), str(i["detail"]), str(i["at"])) for i in items]


def start(cloud: LocalCloud, campaign_id: str, scheduled: datetime = T0) -> str:
    sfn = cloud.client("stepfunctions")
    arn: str = sfn.start_execution(
        stateMachineArn=machine_arn(cloud),
        input=json.dumps(
            {"campaign_id": campaign_id, "scheduled_time": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")}
        ),
    )["executionArn"]
    cloud.drain()
    return arn


def describe(cloud: LocalCloud, execution_arn: str) -> dict[str, Any]:
    result: dict[str, Any] = cloud.client("stepfunctions").describe_execution(
        executionArn=execution_arn
    )
    return result


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_an_occurrence_freezes_tests_picks_a_winner_sends_paced_and_completes(
    cloud: LocalCloud,
) -> None:
    # Given an occurrence started as Scheduler would start it
    started = time.perf_counter()
    execution = start(cloud, "month-end")

    # Then it froze every segment, planned, and waits on the test chunk's Pace
    assert describe(cloud, execution)["status"] == "RUNNING", cloud.summary()
    before = visits(cloud, "month-end")
    assert [v[0] for v in before][:1] == ["prepare"]
    assert sorted(v[1] for v in before if v[0] == "freeze") == ["0/3", "1/3", "2/3"]
    assert [v[:2] for v in before][-1] == ("plan", "-")
    assert "send_batch" not in [v[0] for v in before]

    # When the virtual clock passes the chunk's not_before, the test pool's winner wait,
    # and the paced second main chunk
    cloud.advance(minutes=10)
    tested = T0 + timedelta(minutes=10)
    assert visits(cloud, "month-end")[len(before)] == ("send_batch", "test-0", z(tested))
    cloud.advance(hours=3)

    # Then everything ran in order, each at its instant, in no real time
    status = describe(cloud, execution)
    assert status["status"] == "SUCCEEDED", cloud.summary()
    after_freeze = [v for v in visits(cloud, "month-end") if v[0] not in ("prepare", "freeze")]
    chosen = tested + timedelta(hours=2)
    main = [v for v in after_freeze if v[1].startswith("main-")]
    assert [v for v in after_freeze if v not in main] == [
        ("plan", "-", z(T0)),
        ("send_batch", "test-0", z(tested)),
        ("plan", "test", z(tested)),
        ("choose_winner", "", z(chosen)),
        ("plan", "winner", z(chosen)),
        ("plan", "main", z(chosen + timedelta(minutes=30))),
        ("complete", "", z(chosen + timedelta(minutes=30))),
    ]
    assert sorted(main) == [
        ("send_batch", "main-0", z(chosen)),  # not_before already past: no wait
        ("send_batch", "main-1", z(chosen + timedelta(minutes=30))),
    ]
    assert json.loads(status["output"]) == {
        "campaign_id": "month-end",
        "occurrence": f"month-end@{z(T0)}",
        "status": "done",
    }
    assert time.perf_counter() - started < 30
    assert not [e for e in cloud.errors if "Campaign" in e.function], cloud.summary()


def test_a_paused_campaign_is_retried_every_minute_until_it_resumes(cloud: LocalCloud) -> None:
    execution = start(cloud, "paused")
    cloud.advance(minutes=10)  # the test chunk is due: refused twice (CampaignPaused)
    assert not [v for v in visits(cloud, "paused") if v[0] == "send_batch"]
    cloud.advance(minutes=1)
    assert not [v for v in visits(cloud, "paused") if v[0] == "send_batch"]
    cloud.advance(minutes=1)  # the third attempt, a minute after the second, goes through
    sent = [v for v in visits(cloud, "paused") if v[0] == "send_batch"]
    assert sent == [("send_batch", "test-0", z(T0 + timedelta(minutes=12)))]
    paused = [e for e in cloud.errors if e.error.get("errorType") == "CampaignPaused"]
    assert len(paused) == PAUSES

    cloud.advance(hours=3)
    assert describe(cloud, execution)["status"] == "SUCCEEDED", cloud.summary()


def test_an_occurrence_that_should_not_run_stops_after_prepare(cloud: LocalCloud) -> None:
    execution = start(cloud, "draft")
    history = cloud.client("stepfunctions").get_execution_history(executionArn=execution)
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in history["events"]
        if "stateEnteredEventDetails" in e
    ]
    assert describe(cloud, execution)["status"] == "SUCCEEDED"
    assert entered == ["Prepare", "ShouldRun", "Skipped"]
    assert [v[0] for v in visits(cloud, "draft")] == ["prepare"]


def test_a_schedule_created_at_run_time_starts_the_occurrence(
    cloud: LocalCloud, kizuna_template_json: dict[str, Any]
) -> None:
    # Given a one-off schedule in the campaigns group, made as `kizuna campaigns apply` does
    group = output(cloud, kizuna_template_json, "CampaignScheduleGroupName")
    assert [g.name for g in cloud.find("AWS::Scheduler::ScheduleGroup", "Campaigns")] == [group]
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule(
        Name="campaign-month-end",
        GroupName=group,
        ScheduleExpression="at(2026-01-05T10:00:00)",
        ScheduleExpressionTimezone="Asia/Tokyo",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": output(cloud, kizuna_template_json, "CampaignStateMachineArn"),
            "RoleArn": output(cloud, kizuna_template_json, "CampaignSchedulerRoleArn"),
            "DeadLetterConfig": {
                "Arn": output(cloud, kizuna_template_json, "CampaignScheduleDlqArn")
            },
            "Input": json.dumps(
                {"campaign_id": "month-end", "scheduled_time": "<aws.scheduler.scheduled-time>"}
            ),
        },
    )
    assert output(cloud, kizuna_template_json, "CampaignStateMachineArn") == machine_arn(cloud)
    fires = T0 + timedelta(minutes=30)  # 10:00 in Tokyo

    # When the clock passes 10:00 Tokyo time
    cloud.advance(minutes=29)
    assert visits(cloud, "month-end") == []
    cloud.advance(minutes=1)

    # Then the occurrence started, with the scheduled time, and the one-off schedule is gone
    assert visits(cloud, "month-end")[0] == ("prepare", "", z(fires))
    sfn = cloud.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=machine_arn(cloud))["executions"]
    assert json.loads(describe(cloud, execution["executionArn"])["input"]) == {
        "campaign_id": "month-end",
        "scheduled_time": z(fires),
    }
    assert scheduler.list_schedules(GroupName=group)["Schedules"] == []
    cloud.advance(hours=3)
    assert describe(cloud, execution["executionArn"])["status"] == "SUCCEEDED", cloud.summary()
