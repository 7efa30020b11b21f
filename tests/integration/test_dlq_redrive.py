"""Dead letters on the local runtime, one test per kind the stack produces: a poisoned event
lands in the ingest DLQ with its reason, the cause is fixed, and `kizuna dlq redrive`
replays it (processed once, no duplicate effect); a scheduled run that failed every attempt
(Lambda's on-failure record), and a schedule Scheduler could not invoke (its dead-letter
event), are shown with their reason and replayed to their function."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.adapters.eventbridge import EventBridgePublisher
from kizuna_tools.cli import app
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.functions import current_function
from kizuna_tools.local.template import REGION

pytestmark = pytest.mark.integration


def order_event(cloud: LocalCloud, cid: str, oid: str) -> dict[str, Any]:
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


def kizuna(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--region", REGION])
    assert result.exit_code == 0, result.output
    return result


def test_poisoned_event_is_redriven_after_the_fix_and_counted_once(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = cloud.find("AWS::SQS::Queue", "IngestDeadLetterQueue")[0]
    dlq_url = cloud.client("sqs").get_queue_url(QueueName=dlq.name)["QueueUrl"]
    # given the activity table rejects writes (the customer item is saved, activity is not)
    real_put_activity = DynamoStore.put_activity

    def broken(self: DynamoStore, items: Any) -> None:
        if "Ingest" in (current_function() or ""):
            raise RuntimeError("activity table unavailable")
        real_put_activity(self, items)

    monkeypatch.setattr(DynamoStore, "put_activity", broken)
    cloud.put_events([order_event(cloud, "poisoned-1", "o-1")])
    # when SQS has delivered it max-receive-count times
    for _ in range(12):
        cloud.drain()
        if cloud.dlq_messages()[dlq.logical_id]:
            break
        cloud.advance(minutes=30)
    # then it is in the DLQ, with its reason
    listed = kizuna("dlq", "list", dlq_url)
    assert "RuntimeError" in listed.stdout
    shown = kizuna("dlq", "show", dlq_url)
    assert "activity table unavailable" in shown.stdout and '"order_id":"o-1"' in (
        shown.stdout.replace(" ", "").replace("\n", "")
    )

    # when the cause is fixed and the DLQ redriven
    monkeypatch.setattr(DynamoStore, "put_activity", real_put_activity)
    redriven = kizuna("dlq", "redrive", dlq_url)
    assert "moved 1 message" in redriven.stdout
    cloud.drain()
    cloud.advance(hours=1)

    # then it was processed once: one order counted, one activity item, one entry
    assert cloud.dlq_messages()[dlq.logical_id] == []
    customers = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    activity = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    (customer,) = [c for c in cloud.scan(customers) if c["customer_id"] == "poisoned-1"]
    assert customer["order_count"] == 1 and customer["lifetime_value"] == 3000
    items = [i for i in cloud.scan(activity) if i["pk"] == "poisoned-1"]
    assert len([i for i in items if i["sk"].startswith("ORDER#")]) == 1
    # the first purchase reached the programs once: one entry decision
    entries = [i for i in items if i["sk"].startswith("ENTRY#")]
    assert [e["program"] for e in entries] == ["second-purchase-coupon"]
    assert all(not m for m in cloud.dlq_messages().values())
    # and replaying it once more changes nothing
    cloud.put_events([json.loads(json.dumps(order_event(cloud, "poisoned-1", "o-1")))])
    cloud.drain()
    (again,) = [c for c in cloud.scan(customers) if c["customer_id"] == "poisoned-1"]
    assert again["order_count"] == 1


# --- schedules: a failed run, and a target Scheduler could not invoke ------------------------
def sweep_dead_letters(cloud: LocalCloud) -> tuple[str, str]:
    """The sweep schedules' DLQ: (logical id, URL)."""
    (dlq,) = [
        q
        for q in cloud.find("AWS::SQS::Queue", "ScheduleDeadLetterQueue")
        if "Sweep" in q.logical_id
    ]
    return dlq.logical_id, cloud.client("sqs").get_queue_url(QueueName=dlq.name)["QueueUrl"]


def sweeps_run(cloud: LocalCloud) -> int:
    return sum(n for name, n in cloud.invocations.items() if "Sweep" in name)


def test_a_failed_sweep_run_is_dead_lettered_with_its_reason_and_redriven(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    logical_id, url = sweep_dead_letters(cloud)
    # given the bus refuses the sweep's events for one hourly run (and Lambda's retries)
    real_publish = EventBridgePublisher.publish

    def refused(self: EventBridgePublisher, events: Any) -> list[int]:
        if "sweep" in (current_function() or "").lower():
            raise RuntimeError("bus unavailable")
        return real_publish(self, events)

    cloud.advance(minutes=30)
    monkeypatch.setattr(EventBridgePublisher, "publish", refused)
    cloud.advance(hours=1)
    monkeypatch.setattr(EventBridgePublisher, "publish", real_publish)
    # then the failed invocation is in the schedules' DLQ, with its reason
    assert len(cloud.dlq_messages()[logical_id]) == 1
    listed = kizuna("dlq", "list", url)
    assert "lambda" in listed.stdout and "SweepFailed" in listed.stdout
    shown = kizuna("dlq", "show", url)
    assert "carts: RuntimeError" in shown.stdout and "RetriesExhausted" in shown.stdout
    # when it is redriven, the sweep runs again with the schedule's input, and succeeds
    before, errors = sweeps_run(cloud), len(cloud.errors)
    redriven = kizuna("dlq", "redrive", url)
    assert "moved 1 message" in redriven.stdout
    cloud.drain()
    assert sweeps_run(cloud) == before + 1
    assert len(cloud.errors) == errors
    assert cloud.dlq_messages()[logical_id] == []


def test_a_schedule_that_could_not_invoke_its_target_is_dead_lettered_and_redriven(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    logical_id, url = sweep_dead_letters(cloud)
    # given Scheduler cannot invoke the sweep function for one hourly run
    real_function = cloud._function

    def unreachable(name_or_arn: str) -> Any:
        return None if "sweep" in name_or_arn.lower() else real_function(name_or_arn)

    cloud.advance(minutes=30)
    monkeypatch.setattr(cloud, "_function", unreachable)
    cloud.advance(hours=1)
    monkeypatch.setattr(cloud, "_function", real_function)
    # then Scheduler's dead-letter event is in the DLQ: the input, and why, in its attributes
    (message,) = cloud.dlq_messages()[logical_id]
    assert json.loads(message["body"]) == {"kinds": ["carts"], "lookback_minutes": 60}
    shown = kizuna("dlq", "show", url)
    assert "ResourceNotFoundException" in shown.stdout
    assert "schedule from arn:aws:scheduler:" in shown.stdout.replace("\n", "")
    # when it is redriven, the target is invoked with that input
    before = sweeps_run(cloud)
    redriven = kizuna("dlq", "redrive", url)
    assert "moved 1 message" in redriven.stdout
    cloud.drain()
    assert sweeps_run(cloud) == before + 1
    assert cloud.dlq_messages()[logical_id] == []


# --- an at_once program's entry segment that failed every attempt ----------------------------
def test_an_entry_segment_that_failed_every_attempt_is_dead_lettered_and_redriven_once(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kizuna.services.cohort import CohortService
    from tests.integration.test_journeys import order, sent, signup, treated

    (dlq,) = [
        q for q in cloud.find("AWS::SQS::Queue", "DeadLetterQueue") if "Evaluate" in q.logical_id
    ]
    url = cloud.client("sqs").get_queue_url(QueueName=dlq.name)["QueueUrl"]
    cid = treated("rank-up-congratulations", "dl")
    signup(cloud, cid, locale="en")
    # given: the send function fails every run of an entry segment (Lambda's retries too)
    real_handle = CohortService.handle

    def failing(self: CohortService, req: Any) -> dict[str, Any]:
        if req.entry:
            raise RuntimeError("renderer unavailable")
        return real_handle(self, req)

    monkeypatch.setattr(CohortService, "handle", failing)
    order(cloud, cid, "o-dl1", 12000)  # Silver: rank-up-congratulations starts at once
    cloud.advance(minutes=10)
    cloud.drain()
    # then: nothing was sent, and the segment is in evaluate's DLQ with its reason
    assert ("rank-up-congratulations", "congratulate", "email") not in sent(cloud, cid)
    listed = kizuna("dlq", "list", url)
    assert "lambda" in listed.stdout and "RuntimeError" in listed.stdout
    # (the error's type, not its text: an uncaught exception's message may quote an input,
    # and the failure destination keeps it; the function's log line says where it was raised)
    shown = kizuna("dlq", "show", url).stdout
    assert "RuntimeError" in shown and "renderer unavailable" not in shown
    (letter,) = cloud.dlq_messages()[dlq.logical_id]
    record = json.loads(letter["body"])
    assert record["requestPayload"]["entry"] is True
    assert cid not in json.dumps(record["requestPayload"])  # no customer id in the request
    # when the cause is fixed and it is redriven: the congratulation goes out, once
    monkeypatch.setattr(CohortService, "handle", real_handle)
    assert "moved 1 message" in kizuna("dlq", "redrive", url).stdout
    cloud.drain()
    congratulations = [m for m in sent(cloud, cid) if m[1] == "congratulate"]
    assert len(congratulations) == 1
    assert cloud.dlq_messages()[dlq.logical_id] == []
    # the same request once more (a duplicate delivery) sends nothing more
    (send,) = [f for f in cloud.functions.values() if "SendFunction" in f.logical_id]
    cloud.invoke(send.logical_id, record["requestPayload"])
    assert len([m for m in sent(cloud, cid) if m[1] == "congratulate"]) == 1
