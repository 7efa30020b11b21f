"""An erasure's sweep on moto: the marker notes the sweep once it is scheduled (a retried
erasure, the sweep and a later request schedule no other), the daily count counts a marker
once, and the sweep is a one-time Scheduler schedule in the journey timers' group that puts
a ``customer.erase`` on ingest's queue (never the customer id in its name)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.adapters.scheduler import ErasureSweepSchedules, sweep_name
from kizuna.domain.privacy import (
    ERASED_MARKER_DAYS,
    ERASED_SK,
    ERASURES_PK,
    SWEEP_AFTER,
    erase,
    erased_key,
)
from kizuna.events import ERASE_TYPE
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.config import KizunaConfig
from tests.factories import customer
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
GROUP = "Kizuna-journeys"
ROLE = "arn:aws:iam::123456789012:role/journey-timers"
QUEUE = "arn:aws:sqs:ap-northeast-1:123456789012:ingest"
DLQ = "arn:aws:sqs:ap-northeast-1:123456789012:ingest-dlq"
T0 = datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DynamoStore, Any]]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        scheduler = boto3.client("scheduler", region_name=REGION)
        scheduler.create_schedule_group(Name=GROUP)
        store = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        yield store, scheduler


def sweeps(scheduler: Any) -> ErasureSweepSchedules:
    return ErasureSweepSchedules(scheduler, GROUP, ROLE, QUEUE, DLQ)


def erasures(store: DynamoStore) -> list[int]:
    items = store._activity.query(KeyConditionExpression=Key("pk").eq(ERASURES_PK))["Items"]
    return [int(i["count"]) for i in items]


def marker(store: DynamoStore, cid: str) -> dict[str, Any]:
    key = {"pk": erased_key(cid), "sk": ERASED_SK}
    return dict(store._activity.get_item(Key=key, ConsistentRead=True)["Item"])


def test_an_erasure_schedules_one_sweep_onto_ingests_queue(
    aws: tuple[DynamoStore, Any],
) -> None:
    store, scheduler = aws
    store.save_customer(customer("c-1"), 0)
    # when the customer is erased
    report = erase("c-1", store, store, T0, sweeps=sweeps(scheduler))
    # then one schedule, in the journeys' group, runs once SWEEP_AFTER later; the marker
    # notes it
    due = T0 + SWEEP_AFTER
    assert report.customer_found and report.sweep_scheduled == due
    assert int(marker(store, "c-1")["sweep_at"]) == int(due.timestamp())
    [listed] = scheduler.list_schedules(GroupName=GROUP)["Schedules"]
    assert listed["Name"] == sweep_name("c-1") and "c-1" not in listed["Name"]
    found = scheduler.get_schedule(GroupName=GROUP, Name=sweep_name("c-1"))
    assert found["ScheduleExpression"] == "at(2026-03-02T09:20:07)"
    assert found["ActionAfterCompletion"] == "DELETE"
    target = found["Target"]
    assert (target["Arn"], target["RoleArn"], target["DeadLetterConfig"]) == (
        QUEUE,
        ROLE,
        {"Arn": DLQ},
    )
    # its input is the erase request ingest accepts, when it arrives
    event = parse_inbound(json.loads(target["Input"]), due, KizunaConfig().event_time)
    assert (event.detail_type, event.customer_id) == (ERASE_TYPE, "c-1")
    assert erasures(store) == [1]

    # when the request is delivered again before the sweep: the same schedule, one count
    erase("c-1", store, store, T0 + timedelta(minutes=2), sweeps=sweeps(scheduler))
    assert len(scheduler.list_schedules(GroupName=GROUP)["Schedules"]) == 1
    again = scheduler.get_schedule(GroupName=GROUP, Name=sweep_name("c-1"))
    assert again["ScheduleExpression"] == found["ScheduleExpression"]
    assert again["Target"] == target
    # when the sweep runs, after a late step wrote a decision back
    store._activity.put_item(Item={"pk": "c-1", "sk": "STEP#p-x#check", "cohort": "p-1"})
    scheduler.delete_schedule(GroupName=GROUP, Name=sweep_name("c-1"))  # it ran: deleted
    swept = erase("c-1", store, store, due, sweeps=sweeps(scheduler))
    # then it deletes it, schedules nothing, and the erasure is still counted once
    assert swept.sweep_scheduled is None and swept.activity_deleted == 1
    assert store.activity("c-1") == []
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
    assert erasures(store) == [1]
    # the marker keeps the instant, and lives on from the sweep
    held = marker(store, "c-1")
    assert int(held["sweep_at"]) == int(due.timestamp())
    assert int(held["expires_at"]) == int((due + timedelta(days=ERASED_MARKER_DAYS)).timestamp())


def test_an_erasure_after_the_marker_expired_counts_and_sweeps_again(
    aws: tuple[DynamoStore, Any],
) -> None:
    store, scheduler = aws
    store.save_customer(customer("c-2"), 0)
    erase("c-2", store, store, T0, sweeps=sweeps(scheduler))
    scheduler.delete_schedule(GroupName=GROUP, Name=sweep_name("c-2"))
    # a customer of the same id, after the marker expired (TTL has not deleted it yet)
    later = T0 + timedelta(days=ERASED_MARKER_DAYS, minutes=1)
    store.save_customer(customer("c-2"), 0)
    report = erase("c-2", store, store, later, sweeps=sweeps(scheduler))
    assert report.sweep_scheduled == later + SWEEP_AFTER and report.customer_found
    assert int(marker(store, "c-2")["sweep_at"]) == int((later + SWEEP_AFTER).timestamp())
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]] == [
        sweep_name("c-2")
    ]
    assert sorted(erasures(store)) == [1, 1]  # two days, one each


def test_an_erasure_whose_sweep_failed_to_schedule_schedules_it_when_retried_late(
    aws: tuple[DynamoStore, Any],
) -> None:
    store, scheduler = aws
    store.save_customer(customer("c-3"), 0)

    class Failing:
        """Scheduler answering 500 (after retries)."""

        exceptions = scheduler.exceptions

        def create_schedule(self, **request: Any) -> None:
            error = {"Error": {"Code": "InternalServerException", "Message": "try again"}}
            raise ClientError(error, "CreateSchedule")

    # when Scheduler fails the sweep, the customer is erased all the same, then the error
    # raised (SQS will deliver the request again)
    broken = ErasureSweepSchedules(Failing(), GROUP, ROLE, QUEUE, DLQ)
    with pytest.raises(ClientError):
        erase("c-3", store, store, T0, sweeps=broken)
    assert "sweep_at" not in marker(store, "c-3")
    assert store.get_customers(["c-3"]) == {} and erasures(store) == [1]
    # and SQS delivers it again after the instant the sweep would have had
    retry = T0 + SWEEP_AFTER + timedelta(minutes=5)
    report = erase("c-3", store, store, retry, sweeps=sweeps(scheduler))
    # then the retry schedules it; the erasure is counted once
    assert report.sweep_scheduled == retry + SWEEP_AFTER and not report.customer_found
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]] == [
        sweep_name("c-3")
    ]
    assert erasures(store) == [1]


def test_a_schedule_made_by_a_call_that_failed_after_it_took_effect_is_kept_and_noted(
    aws: tuple[DynamoStore, Any],
) -> None:
    store, scheduler = aws
    store.save_customer(customer("c-4"), 0)
    # given a first attempt whose CreateSchedule took effect, then failed (5xx, a crash)
    sweeps(scheduler).schedule("c-4", T0 + SWEEP_AFTER)
    store.mark_erased(erased_key("c-4"), int(T0.timestamp()) + 86400, int(T0.timestamp()))
    # when the request is delivered again
    retry = T0 + timedelta(minutes=1)
    report = erase("c-4", store, store, retry, sweeps=sweeps(scheduler))
    # then Scheduler's ConflictException keeps the first schedule; the marker notes a sweep
    assert report.sweep_scheduled == retry + SWEEP_AFTER
    [listed] = scheduler.list_schedules(GroupName=GROUP)["Schedules"]
    found = scheduler.get_schedule(GroupName=GROUP, Name=listed["Name"])
    assert found["ScheduleExpression"] == "at(2026-03-02T09:20:07)"
    assert "sweep_at" in marker(store, "c-4") and erasures(store) == [1]


def test_a_marker_written_before_sweeps_existed_gets_its_sweep(
    aws: tuple[DynamoStore, Any],
) -> None:
    store, scheduler = aws
    # given a live marker as erasure wrote it before (kind and expiry only)
    expires = int((T0 + timedelta(days=10)).timestamp())
    key = {"pk": erased_key("c-5"), "sk": ERASED_SK}
    store._activity.put_item(Item={**key, "kind": "ERASED", "expires_at": expires})
    # when the customer is erased again
    report = erase("c-5", store, store, T0, sweeps=sweeps(scheduler))
    # then a sweep is scheduled and noted (nothing was found: nothing counted)
    assert report.sweep_scheduled == T0 + SWEEP_AFTER and not report.customer_found
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]] == [
        sweep_name("c-5")
    ]
    assert erasures(store) == []


def test_the_erasure_marker_is_read_consistently(aws: tuple[DynamoStore, Any]) -> None:
    # Given a customer just erased: their item is gone and their marker written
    store, _ = aws
    store.save_customer(customer("c-9"), 0)
    erase("c-9", store, store, T0)
    # When ingest (or evaluate) asks whether an id it does not hold was erased, as it does
    # for an event that arrives right after the erasure, which must not re-create them
    requests: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        requests.append(params)

    client = store._dynamodb.meta.client
    client.meta.events.register("provide-client-params.dynamodb.BatchGetItem", seen)
    assert store.erased(["c-9", "c-10"], T0 + timedelta(seconds=1)) == {"c-9"}
    # Then the marker is read with a strongly consistent read, as the customer item is
    # (an eventually consistent one may not see a marker written a moment before, while
    # the customer read already sees the item deleted: the event would create them again)
    [request] = requests
    assert request["RequestItems"]["activity"]["ConsistentRead"] is True
