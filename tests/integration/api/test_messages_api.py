"""POST /machine/messages and /api/messages on moto, through the send function's own path
(SendService's store, renderer and recorded channels, reached through the Lambda adapter as
a synchronous invoke would): exactly once per Idempotency-Key and caller, the transactional
contact policy, validation naming the field, who may call, the audit rows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.adapters.send_function import SendFunction
from kizuna.delivery.channels import OutboundMessage, SendResult
from kizuna.domain.customer import ConsentState
from kizuna.runtime.clock import FixedClock
from kizuna.services.contracts import TransactionalRequest
from kizuna.services.transactional import TransactionalService
from tests.factories import LINE_USER, PHONE, customer, send_service
from tests.integration.api.harness import MACHINE_ARN, REGION, Api, build_api
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

NIGHT = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo: quiet hours
TEMPLATE = "order_confirmation"


class Outbox:
    """A channel that records what it is given (the provider's stand-in)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"{self.name}-{len(self.sent)}")


class SendLambda:
    """The send function as a synchronous invoke reaches it: the payload parsed as its
    handler parses it, the answer serialised back (``fail``: a function error)."""

    def __init__(self, service: TransactionalService) -> None:
        self.service = service
        self.fail = False
        self.invocations = 0

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        self.invocations += 1
        if self.fail:
            error = {"errorType": "Sandbox.Timedout", "errorMessage": "timed out"}
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(error).encode())}
        request = parse(event=json.loads(Payload), model=TransactionalRequest)
        answer = self.service.send(request).model_dump_json()
        return {"StatusCode": 200, "Payload": io.BytesIO(answer.encode())}


@dataclass
class World:
    api: Api
    store: DynamoStore
    email: Outbox
    sms: Outbox
    send: SendLambda

    def post(
        self, body: Any, key: str | None = "order-1001", as_: str = "machine", **kw: Any
    ) -> Any:
        headers = {"Idempotency-Key": key} if key is not None else {}
        path = "/machine/messages" if as_ == "machine" else "/api/messages"
        return self.api.call("POST", path, as_=as_, body=body, headers=headers, **kw)

    def ledger(self, message_id: str, customer_id: str = "c1") -> dict[str, Any]:
        found = self.store.ledger_entries_of([(customer_id, message_id)], TEMPLATE)
        return found.get((customer_id, message_id), {})


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        store = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        # c1: email opted in, a phone with no SMS consent either way
        store.save_customer(customer("c1", first_name="Hanako", last_name="Yamada", phone=PHONE), 0)
        email, sms = Outbox("email"), Outbox("sms")
        channels = {"email": email, "sms": sms, "line": Outbox("line")}
        sender = send_service(store, channels, FixedClock(NIGHT))
        send = SendLambda(TransactionalService(sender, store))
        api = build_api(messages=SendFunction(send, "kizuna-send"))
        yield World(api, store, email, sms, send)


def confirmation(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": "c1",
        "template": TEMPLATE,
        "channel": "email",
        "data": {"order_id": "1001", "total": 12800, "currency": "JPY"},
    }
    return {**body, **fields}


def test_a_message_is_sent_now_recorded_and_audited(world: World) -> None:
    # when: at 23:30 in Tokyo (quiet hours do not hold a transactional message back)
    answer = world.post(confirmation())
    # then
    assert answer.status == 201, answer.body
    body = answer.json()
    assert body["status"] == "sent" and body["channel"] == "email"
    assert body["provider_message_id"] == "email-1"
    assert body["message_id"].startswith("tx:")
    (message,) = world.email.sent
    assert message.address == "c1@example.jp"
    assert "1001" in message.content.subject and "12,800円" in message.content.text
    assert "Yamada Hanako様" in message.content.text
    entry = world.ledger(body["message_id"])
    assert entry["status"] == "sent" and entry["program"] == "transactional"
    assert entry["provider_message_id"] == "email-1"
    assert "data" not in entry and "1001" not in json.dumps(entry, default=str)
    # not counted against the marketing caps
    _, contacts, _ = world.store.read_send_state(["c1"], None)
    assert "c1" not in contacts
    rows = world.api.call("GET", "/api/audit", as_="admin").json()["rows"]
    (row,) = [r for r in rows if r["action"] == "message.send"]
    assert row["actor_id"] == MACHINE_ARN and row["target"] == "customer:c1"
    assert row["detail"]["status"] == "sent" and row["detail"]["template"] == TEMPLATE


def test_the_same_key_twice_sends_once_and_answers_the_same(world: World) -> None:
    first = world.post(confirmation())
    second = world.post(confirmation())
    assert first.status == 201 and second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert len(world.email.sent) == 1
    # the same request in another spelling: keys in another order, the channel as a list
    respelled = dict(reversed([(k, v) for k, v in confirmation().items() if k != "channel"]))
    respelled["channels"] = ["email"]
    assert world.post(respelled).json() == first.json()
    assert len(world.email.sent) == 1


def test_the_same_key_with_another_body_is_a_conflict(world: World) -> None:
    world.post(confirmation())
    other = world.post(confirmation(data={"order_id": "1002", "total": 1, "currency": "JPY"}))
    assert other.status == 409 and "another request" in other.json()["reason"]
    other_customer = world.post(confirmation(customer_id="c2"))
    assert other_customer.status == 409
    assert len(world.email.sent) == 1


def test_keys_are_scoped_to_the_caller(world: World) -> None:
    machine = world.post(confirmation())
    person = world.post(confirmation(), as_="marketer")
    assert machine.status == person.status == 201
    assert machine.json()["message_id"] != person.json()["message_id"]
    assert len(world.email.sent) == 2


def test_an_opt_out_refuses_and_the_next_channel_needs_no_opt_in(world: World) -> None:
    # given: c1 opted out of email (an explicit refusal)
    refused = ConsentState(status="opted_out", at=NIGHT, source="user", stamp="s")
    saved = world.store.get_customers(["c1"])["c1"]
    world.store.save_customer(
        saved.model_copy(update={"consent": {"email": refused}}), saved.version
    )
    # when: email only -> suppressed, with the reason
    answer = world.post(confirmation())
    assert answer.status == 201
    body = answer.json()
    assert body["status"] == "suppressed" and body["reason"] == "no_channel"
    assert body["skipped"] == [{"channel": "email", "reason": "opted_out"}]
    assert world.ledger(body["message_id"])["status"] == "suppressed"
    # email then SMS -> SMS (no SMS opt-in needed for a transactional message), at night
    fallback = world.post(confirmation(channel=None, channels=["email", "sms"]), key="k-2")
    assert fallback.json()["status"] == "sent" and fallback.json()["channel"] == "sms"
    (sms,) = world.sms.sent
    assert sms.sms_type == "Transactional" and world.email.sent == []


def test_an_unknown_customer_is_suppressed_with_no_ledger_row_under_their_id(
    world: World,
) -> None:
    body = world.post(confirmation(customer_id="nobody")).json()
    assert body["status"] == "suppressed" and body["reason"] == "unknown_customer"
    # an id Kizuna does not hold (or erased) gets no row: the answer is not kept either
    assert world.ledger(body["message_id"], customer_id="nobody") == {}
    assert world.store.activity("nobody") == []


@pytest.mark.parametrize(
    ("body", "key", "field"),
    [
        (confirmation(), None, ["header", "Idempotency-Key"]),
        (confirmation(), "has space", ["header", "Idempotency-Key"]),
        (confirmation(), "k" * 129, ["header", "Idempotency-Key"]),
        (confirmation(customer_id=" c1"), "k", ["body", "customer_id"]),
        (confirmation(channel="fax"), "k", ["body", "channel"]),
        (confirmation(channels=["email"]), "k", ["body"]),
        (confirmation(template="../etc"), "k", ["body", "template"]),
        (confirmation(template="no_such_template"), "k", ["body", "template"]),
        (confirmation(data={"bad key": 1}), "k", ["body", "data"]),
        (confirmation(data={"a": {"b": {"c": {"d": {"e": 1}}}}}), "k", ["body", "data"]),
        (confirmation(data={"note": "x" * 9000}), "k", ["body", "data"]),
        (confirmation(locale="japanese"), "k", ["body", "locale"]),
        (confirmation(extra=1), "k", ["body", "extra"]),
    ],
)
def test_invalid_requests_name_the_field_and_change_nothing(
    world: World, body: dict[str, Any], key: str | None, field: list[str]
) -> None:
    answer = world.post(body, key=key)
    assert answer.status == 422, answer.body
    (error,) = answer.json()["detail"][:1]
    assert error["loc"] == field
    assert world.email.sent == [] and world.sms.sent == []


def test_a_number_no_float_holds_is_refused_not_rendered_empty(world: World) -> None:
    # given a total of 1e400 (JSON takes it; a float reads it as infinity, sent as null)
    raw = json.dumps(confirmation()).replace("12800", "1e400")
    # when it is posted
    answer = world.post(raw)
    # then it is refused, naming the field, and nothing is sent
    assert answer.status == 422, answer.body
    assert answer.json()["detail"][0]["loc"] == ["body", "data"]
    assert world.email.sent == []


@pytest.mark.parametrize("total", ["12345678901234567.89", "0.30000000000000001"])
def test_a_number_no_float_holds_exactly_is_refused_not_rounded(world: World, total: str) -> None:
    # given a total with more digits than the JSON number the send function reads holds
    raw = json.dumps(confirmation()).replace("12800", total)
    # when it is posted: refused (send it as text), naming the field; nothing is sent
    answer = world.post(raw)
    assert answer.status == 422, answer.body
    assert answer.json()["detail"][0]["loc"] == ["body", "data"]
    assert "as text" in answer.json()["detail"][0]["msg"]
    assert world.email.sent == []


def test_a_fraction_a_float_holds_exactly_is_sent(world: World) -> None:
    raw = json.dumps(confirmation()).replace("12800", "1280.50")
    assert world.post(raw).status == 201
    (message,) = world.email.sent
    assert "1,280.5" in message.content.text


def test_bounds_and_shape(world: World) -> None:
    assert world.post("not json").status == 400
    big = confirmation(data={"note": "x" * 20000})
    assert world.post(big).status == 413
    assert world.send.invocations == 0


def test_who_may_send(world: World) -> None:
    assert world.api.call("POST", "/machine/messages", body=confirmation()).status == 401
    assert world.api.call("POST", "/api/messages", body=confirmation()).status == 401
    assert world.post(confirmation(), as_="viewer").status == 403
    assert world.post(confirmation(), as_="none").status == 403
    assert world.send.invocations == 0 and world.email.sent == []
    assert world.post(confirmation(), as_="admin").status == 201


def test_a_send_function_that_does_not_answer_is_503_and_a_retry_sends_once(
    world: World,
) -> None:
    world.send.fail = True
    answer = world.post(confirmation())
    assert answer.status == 503 and "same Idempotency-Key" in answer.json()["message"]
    world.send.fail = False
    assert world.post(confirmation()).status == 201
    assert world.post(confirmation()).status == 200
    assert len(world.email.sent) == 1
    rows = world.api.call("GET", "/api/audit", as_="admin").json()["rows"]
    statuses = [r["detail"]["status"] for r in rows if r["action"] == "message.send"]
    assert statuses == ["unavailable", "sent", "sent"]


def test_a_channel_the_template_lacks_is_passed_over_or_refused(world: World) -> None:
    # order_confirmation has email and SMS parts, no push or LINE
    only_push = world.post(confirmation(channel="push"))
    assert only_push.status == 422
    assert only_push.json()["detail"][0]["loc"] == ["body", "channels"]
    # c1 reachable on LINE: the template has no LINE parts, so email is used
    saved = world.store.get_customers(["c1"])["c1"]
    world.store.save_customer(saved.model_copy(update={"line_user_id": LINE_USER}), saved.version)
    answer = world.post(confirmation(channel=None, channels=["line", "email"]), key="k-3")
    body = answer.json()
    assert body["status"] == "sent" and body["channel"] == "email"
    assert body["skipped"] == [{"channel": "line", "reason": "no_template"}]


def test_a_customer_item_this_version_cannot_read_fails_and_a_retry_sends_once_fixed(
    world: World,
) -> None:
    # given: c1's item edited by hand to a value this version refuses
    world.store._customers.update_item(
        Key={"customer_id": "c1"},
        UpdateExpression="SET order_count = :x",
        ExpressionAttributeValues={":x": "many"},
    )
    body = world.post(confirmation()).json()
    # then: failed with the reason (never "unknown customer"), nothing sent or recorded
    assert (body["status"], body["reason"]) == ("failed", "unreadable_customer")
    assert world.email.sent == [] and world.ledger(body["message_id"]) == {}
    # when: the item is fixed and the caller retries with the same key: sent, once
    world.store._customers.update_item(
        Key={"customer_id": "c1"},
        UpdateExpression="SET order_count = :x",
        ExpressionAttributeValues={":x": 0},
    )
    again = world.post(confirmation()).json()
    assert again["status"] == "sent" and len(world.email.sent) == 1
    assert world.post(confirmation()).json() == again and len(world.email.sent) == 1
