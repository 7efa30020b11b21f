"""POST /machine/events and /api/events on moto: each event validated as ingest validates it
and answered by its index, the valid ones on the bus (read back through an SQS target),
entries the bus refuses retried or reported, nothing dropped; who may call; the audit row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.eventbridge import ShopEventBus
from kizuna.runtime.settings import SHOP_API_SOURCE
from tests.integration.api.harness import MACHINE_ARN, REGION, Api, build_api
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

BUS = "kizuna"


class Bus:
    def __init__(self) -> None:
        self.events = boto3.client("events", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events.create_event_bus(Name=BUS)
        self.queue = self.sqs.create_queue(QueueName="shop-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        self.events.put_rule(
            Name="shop", EventBusName=BUS, EventPattern=json.dumps({"source": [SHOP_API_SOURCE]})
        )
        self.events.put_targets(
            Rule="shop",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )

    def received(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])


class Flaky:
    """moto's EventBridge, refusing chosen entries (by detail's order_id) the way PutEvents
    does: in ``Entries`` with an ``ErrorCode``, ``FailedEntryCount`` counted."""

    def __init__(self, client: Any, codes: dict[str, list[str]]) -> None:
        self.client = client
        self.codes = codes  # order_id -> error codes for its next attempts
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(len(Entries))
        answers: list[dict[str, Any] | None] = []
        passed = []
        for entry in Entries:
            pending = self.codes.get(json.loads(entry["Detail"]).get("order_id", ""), [])
            if pending:
                code = pending.pop(0)
                answers.append({"ErrorCode": code, "ErrorMessage": "refused"})
            else:
                answers.append(None)
                passed.append(entry)
        ok = iter(self.client.put_events(Entries=passed)["Entries"] if passed else [])
        entries = [a if a is not None else next(ok) for a in answers]
        return {"FailedEntryCount": sum(1 for e in entries if "ErrorCode" in e), "Entries": entries}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Bus]]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        bus = Bus()
        shop = ShopEventBus(bus.events, BUS, SHOP_API_SOURCE, sleep=lambda _: None)
        yield build_api(events=shop), bus


def order(order_id: str, at: datetime | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "detail-type": "order.placed",
        "detail": {
            "customer_id": "c1",
            "occurred_at": (at or datetime.now(UTC)).isoformat(),
            "order_id": order_id,
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 1280.5}],
            "total": 1280.5,
            "currency": "JPY",
            "channel": "web",
            **detail,
        },
    }


def test_a_mixed_batch_is_answered_per_event_and_the_valid_ones_are_on_the_bus(
    world: tuple[Api, Bus],
) -> None:
    api, bus = world
    # given: two valid events and four invalid ones, in one batch
    batch = [
        order("o-1"),
        {"detail-type": "order.placd", "detail": {}},
        order("o-2", total=-1),
        {
            "detail-type": "consent.changed",
            "detail": {
                "customer_id": "c1",
                "occurred_at": datetime.now(UTC).isoformat(),
                "channel": "email",
                "status": "opted_in",
            },
        },
        order("o-3", at=datetime.now(UTC) + timedelta(hours=1)),
        {"detail-type": "order.placed", "detail": {"customer_id": " c1"}, "source": "kizuna"},
    ]
    # when
    answer = api.call("POST", "/machine/events", as_="machine", body={"events": batch})
    # then: 200, one result per event, by index
    assert answer.status == 200, answer.body
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (2, 4, 0)
    assert body["source"] == SHOP_API_SOURCE
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert results[1]["field"] == "events[1].detail-type"
    assert results[2]["field"] == "events[2].detail.total"
    assert results[4]["field"] == "events[4].detail.occurred_at"
    assert "in the future" in results[4]["reason"]
    assert results[5]["field"] == "events[5].source"
    # the valid ones are on the bus, under the shop's source, as sent
    on_bus = bus.received()
    assert sorted(e["detail-type"] for e in on_bus) == ["consent.changed", "order.placed"]
    assert {e["source"] for e in on_bus} == {SHOP_API_SOURCE}
    placed = next(e for e in on_bus if e["detail-type"] == "order.placed")
    assert placed["detail"]["order_id"] == "o-1" and placed["detail"]["total"] == 1280.5
    assert {e["id"] for e in on_bus} == {results[0]["event_id"], results[3]["event_id"]}
    assert [r["bus_event_id"] for r in results if r["status"] == "accepted"] == [
        r["event_id"] for r in results if r["status"] == "accepted"
    ]


def test_a_keyed_event_is_answered_with_the_id_kizuna_records_it_under(
    world: tuple[Api, Bus],
) -> None:
    from kizuna.events.envelope import parse_inbound

    api, bus = world
    at = datetime.now(UTC)
    keyed = order("o-7", at, idempotency_key="shop-42")
    first = api.call("POST", "/machine/events", as_="machine", body=[keyed]).json()["results"]
    again = api.call("POST", "/machine/events", as_="machine", body=[keyed]).json()["results"]
    # the producer's retry is a second bus event, the same event for Kizuna
    assert first[0]["bus_event_id"] != again[0]["bus_event_id"]
    assert first[0]["event_id"] == again[0]["event_id"]
    assert first[0]["event_id"].startswith("key-") and "shop-42" not in first[0]["event_id"]
    on_bus = bus.received()
    assert [e["id"] for e in on_bus] == [first[0]["bus_event_id"], again[0]["bus_event_id"]]
    assert {parse_inbound(e).event_id for e in on_bus} == {first[0]["event_id"]}
    # another customer's event under the same key is another event
    other = order("o-7", at, idempotency_key="shop-42", customer_id="c2")
    third = api.call("POST", "/machine/events", as_="machine", body=[other]).json()["results"]
    assert third[0]["event_id"] != first[0]["event_id"]


def test_what_goes_on_the_bus_passes_ingest_validation(world: tuple[Api, Bus]) -> None:
    from kizuna.events.envelope import parse_inbound

    api, bus = world
    api.call("POST", "/machine/events", as_="machine", body=[order("o-9")])
    (event,) = bus.received()
    parsed = parse_inbound(event, now=datetime.now(UTC))
    assert parsed.detail_type == "order.placed" and parsed.customer_id == "c1"


def test_refused_entries_are_retried_when_retryable_and_else_reported(
    world: tuple[Api, Bus],
) -> None:
    api, bus = world
    assert api.deps.events is not None
    flaky = Flaky(
        bus.events,
        {"o-1": ["ThrottlingException"], "o-2": ["AccessDeniedException"]},
    )
    api.deps.events = ShopEventBus(flaky, BUS, SHOP_API_SOURCE, sleep=lambda _: None)
    answer = api.call(
        "POST", "/machine/events", as_="machine", body=[order(f"o-{i}") for i in range(12)]
    )
    body = answer.json()
    assert answer.status == 200
    assert (body["accepted"], body["failed"]) == (11, 1)
    failed = body["results"][2]
    assert failed["status"] == "failed" and failed["reason"].startswith("AccessDeniedException")
    # a batch of 10 and its throttled entry again, then the last 2
    assert flaky.calls == [10, 1, 2]
    assert sorted(e["detail"]["order_id"] for e in bus.received()) == sorted(
        f"o-{i}" for i in range(12) if i != 2
    )


def test_shape_and_size_bounds(world: tuple[Api, Bus]) -> None:
    api, bus = world
    # not JSON, not a list, empty: 400
    assert api.call("POST", "/machine/events", as_="machine", body="{nope").status == 400
    assert api.call("POST", "/machine/events", as_="machine", body={"event": []}).status == 400
    assert api.call("POST", "/machine/events", as_="machine", body=[]).status == 400
    assert api.call("POST", "/machine/events", as_="machine", body="NaN").status == 400
    # an object that gives a key twice: which value was meant? 400, naming the key
    twice = json.dumps([order("o-1")])[:-2] + ', "detail-type": "order.cancelled"}]'
    answer = api.call("POST", "/machine/events", as_="machine", body=twice)
    assert answer.status == 400 and "'detail-type' given twice" in answer.body
    # over 100 events, over the byte bound: 413
    many = [order(f"o-{i}") for i in range(101)]
    assert api.call("POST", "/machine/events", as_="machine", body=many).status == 413
    huge = [order("o-1", reason="x" * (1024 * 1024))]
    assert api.call("POST", "/machine/events", as_="machine", body=huge).status == 413
    # nothing reached the bus
    assert bus.received() == []


def test_who_may_put_events(world: tuple[Api, Bus]) -> None:
    api, bus = world
    body = [order("o-1")]
    assert api.call("POST", "/machine/events", body=body).status == 401
    assert api.call("POST", "/api/events", body=body).status == 401
    for role in ("viewer", "marketer"):
        assert api.call("POST", "/api/events", as_=role, body=body).status == 403
    assert bus.received() == []
    answer = api.call("POST", "/api/events", as_="admin", body=body)
    assert answer.status == 200 and answer.json()["accepted"] == 1


def test_every_batch_is_audited(world: tuple[Api, Bus]) -> None:
    api, _ = world
    api.call("POST", "/machine/events", as_="machine", body=[order("o-1"), {"x": 1}])
    rows = api.call("GET", "/api/audit", as_="admin").json()["rows"]
    (row,) = [r for r in rows if r["action"] == "events.put"]
    assert row["actor_id"] == MACHINE_ARN and row["actor_kind"] == "iam"
    assert row["target"] == f"bus:{SHOP_API_SOURCE}"
    assert row["detail"] == {
        "received": 2,
        "accepted": 1,
        "rejected": 1,
        "failed": 0,
        "types": ["order.placed"],
    }


def test_the_audit_log_is_for_admins_and_by_day(world: tuple[Api, Bus]) -> None:
    api, _ = world
    api.call("POST", "/machine/events", as_="machine", body=[order("o-1")])
    assert api.call("GET", "/api/audit").status == 401
    assert api.call("GET", "/machine/audit", as_="machine").status == 404
    for role in ("viewer", "marketer"):
        assert api.call("GET", "/api/audit", as_=role).status == 403
    # a week date and full-width digits: date.fromisoformat took the first as 2025-12-29
    for day in ("2026-13-01", "yesterday", "2026-1-5", "2026-W01-1", "２０２６-01-01"):
        answer = api.call("GET", "/api/audit", as_="admin", query={"day": day})
        assert answer.status == 400 and "day" in answer.json()["message"]
    today = datetime.now(UTC).date().isoformat()
    answer = api.call("GET", "/api/audit", as_="admin", query={"day": today}).json()
    assert answer["day"] == today and [r["action"] for r in answer["rows"]] == ["events.put"]
    other = api.call("GET", "/api/audit", as_="admin", query={"day": "2020-01-01"}).json()
    assert other["rows"] == []
