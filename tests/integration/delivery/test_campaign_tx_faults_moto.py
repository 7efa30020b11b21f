"""Campaign batches, transactional messages and the reconciliation sweep on moto, under the
faults that are hardest for "at least once in, exactly once out": an answer lost *after* a
write or a provider call took effect (a 500 or a read timeout once DynamoDB applied the
write, a provider that took the message and then timed out, a response lost on the way back
to the API), a batch retried whole after partial progress, duplicated requests, and the
sweep running beside a send.

DynamoDB faults are injected on botocore's hooks (``after-call``: the write took effect, then
the caller gets the error; ``before-call``: refused), as in ``test_send_faults_moto.py``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from moto import mock_aws

from kizuna.adapters.campaigns import CampaignStore
from kizuna.adapters.dynamodb import WRITE_ATTEMPTS, DynamoStore
from kizuna.campaigns.loader import parse_campaign
from kizuna.delivery.channels import (
    InvalidAddressInfo,
    OutboundMessage,
    PinpointPush,
    SendOutcome,
    SendResult,
    _aws_call,
)
from kizuna.delivery.ledger import SENDING_INDEX, SENDING_PK
from kizuna.domain.customer import Device
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.campaign import CampaignService
from kizuna.services.contracts import CampaignRequest, TransactionalRequest
from kizuna.services.reconcile import ReconcileService
from kizuna.services.transactional import TransactionalService
from kizuna_tools.fakes import MemoryCampaignEvents, MemoryCampaigns, MemoryManifest
from tests.factories import campaign_definition, customer, opted_in, send_service
from tests.integration.delivery.test_cap_race_moto import NOON, REGION
from tests.integration.delivery.test_send_faults_moto import _create_tables
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
LATER = NOON + timedelta(hours=1)  # when the reconciliation sweep runs
TEMPLATES = {
    "news/ja/email.subject.j2": "セールのお知らせ",
    "news/ja/email.html.j2": "<p>セール</p>",
    "news/ja/email.txt.j2": "セール",
    "news/ja/push.title.j2": "セール",
    "news/ja/push.body.j2": "セール開催中",
}
NO_CAP = KizunaConfig().model_copy(
    update={
        "contact": KizunaConfig().contact.model_copy(
            update={"max_per_day": 100, "max_per_week": 100}
        )
    }
)


def server_error(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "InternalServerError", "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        operation,
    )


class Faults:
    """DynamoDB faults on botocore's hooks: after the call took effect (``fail``), or
    instead of it (``refuse``), for the next ``times`` calls of an operation."""

    def __init__(self, store: DynamoStore) -> None:
        events = store._dynamodb.meta.client.meta.events
        self.after: dict[str, int] = {}
        self.before: dict[str, int] = {}
        self.timeout = False
        events.register("after-call.dynamodb", self._after)
        events.register("before-call.dynamodb", self._before)

    def fail(self, operation: str, times: int = 1, timeout: bool = False) -> None:
        self.after[operation] = times
        self.timeout = timeout

    def refuse(self, operation: str, times: int = 1) -> None:
        self.before[operation] = times

    def _after(self, model: Any, **_: Any) -> None:
        if self.after.get(model.name, 0) > 0:
            self.after[model.name] -= 1
            if self.timeout:
                raise ReadTimeoutError(endpoint_url="https://dynamodb")
            raise server_error(model.name)

    def _before(self, model: Any, **_: Any) -> None:
        if self.before.get(model.name, 0) > 0:
            self.before[model.name] -= 1
            raise server_error(model.name)


class Email:
    """The provider: takes every message. ``lost_answers``: for the next n messages, the
    provider takes it and the answer never comes (a read timeout after the call took
    effect)."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.lost_answers = 0

    def send(self, message: OutboundMessage) -> SendResult:
        response = _aws_call(self._send_email, message=message)  # as SesEmail calls SES
        return SendResult(provider_message_id=response["MessageId"])

    def _send_email(self, message: OutboundMessage) -> dict[str, Any]:
        self.sent.append(message)
        if self.lost_answers:
            self.lost_answers -= 1
            raise ReadTimeoutError(endpoint_url="https://email.ap-northeast-1.amazonaws.com")
        return {"MessageId": f"ses-{len(self.sent)}"}


class Push:
    """A batching push provider: takes every message; ``dead`` tokens come back invalid
    (the message still delivered to the customer's other devices)."""

    max_addresses = 100

    def __init__(self, dead: frozenset[str] = frozenset()) -> None:
        self.sent: list[OutboundMessage] = []
        self.dead = dead
        self.explode: Exception | None = None

    def send(self, message: OutboundMessage) -> SendResult:
        (outcome,) = self.send_many([message])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendOutcome]:
        self.sent += messages
        if self.explode is not None:
            raise self.explode
        out: list[SendOutcome] = []
        for m in messages:
            assert isinstance(m.address, tuple)
            dead = tuple(
                InvalidAddressInfo(key=t.key, reason="PERMANENT_FAILURE 410")
                for t in m.address
                if t.token in self.dead
            )
            out.append(
                SendResult(provider_message_id=f"push-{m.customer_id}", invalid_addresses=dead)
            )
        return out


class RefusingInbound:
    """The bus refusing every event (PutEvents failing after its retries)."""

    def __init__(self) -> None:
        self.tried: list[Any] = []

    def put_inbound(self, detail: Any) -> None:
        self.tried.append(detail)
        raise server_error("PutEvents")


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        _create_tables(boto3.client("dynamodb", region_name=REGION))
        s = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        yield s


def ledger(store: DynamoStore, cid: str, execution: str, step: str) -> dict[str, Any]:
    return store.ledger_entries([cid], execution, step).get(cid, {})


def reconcile(store: DynamoStore) -> dict[str, int]:
    return ReconcileService(store, FixedClock(LATER)).run()


# --- campaigns ---------------------------------------------------------------------------
class CampaignWorld:
    def __init__(
        self,
        store: DynamoStore,
        providers: dict[str, Any],
        inbound: Any = None,
        campaigns: CampaignStore | None = None,
        **definition: Any,
    ) -> None:
        channels = providers
        self.store = store
        campaign = parse_campaign(campaign_definition(**definition))
        self.campaigns: Any = campaigns or MemoryCampaigns()
        if campaigns is None:
            self.campaigns.put(campaign, TEMPLATES)
        else:
            campaigns.put_definition(campaign, TEMPLATES, "test", NOON)
        self.manifest = MemoryManifest()
        self.channels = channels
        self.service = CampaignService(
            self.campaigns,
            store,
            self.manifest,
            channels,
            MemoryCampaignEvents(),
            NO_CAP,
            FixedClock(NOON),
            templates_root=ROOT / "templates",
            scan_segments=1,
            sleep=lambda _: None,
            inbound=inbound,
        )
        self.occurrence = ""

    def call(self, **request: Any) -> dict[str, Any]:
        if self.occurrence:
            request = {"campaign_id": "sale", "occurrence": self.occurrence, **request}
        return self.service.handle(CampaignRequest.model_validate(request))

    def start(self) -> dict[str, Any]:
        prepared = self.service.handle(
            CampaignRequest.model_validate(
                {"action": "prepare", "campaign_id": "sale", "scheduled_time": NOON}
            )
        )
        self.occurrence = prepared["occurrence"]
        self.call(action="freeze", segment=0, total_segments=1)
        (chunk,) = self.call(action="plan")["chunks"]
        return dict(chunk)

    @property
    def execution(self) -> str:
        return f"campaign:sale:{self.occurrence}"

    def row(self, cid: str) -> dict[str, Any]:
        return ledger(self.store, cid, self.execution, "send")


def push_customer(cid: str, *tokens: str) -> Any:
    devices = {f"d{i}": Device(token=t, platform="FCM", at=NOON) for i, t in enumerate(tokens)}
    return customer(cid, devices=devices, consent=opted_in("push", "email"))


def test_a_batch_whose_outcome_write_took_effect_before_a_5xx_sends_once(
    store: DynamoStore,
) -> None:
    for cid in ("c1", "c2", "c3"):
        store.save_customer(customer(cid), 0)
    email = Email()
    w = CampaignWorld(store, {"email": email})
    chunk = w.start()
    Faults(store).fail("BatchWriteItem")
    counts = w.call(action="send_batch", chunk=chunk)
    assert counts["sent"] == 3 and len(email.sent) == 3
    assert {w.row(c)["status"] for c in ("c1", "c2", "c3")} == {"sent"}
    # the state machine retries the batch all the same: nothing again
    again = w.call(action="send_batch", chunk=chunk)
    assert again.get("sent", 0) == 0 and len(email.sent) == 3


def test_a_batch_retried_whole_after_it_crashed_mid_delivery_sends_nobody_twice(
    store: DynamoStore,
) -> None:
    for cid in ("c1", "c2", "c3", "c4"):
        store.save_customer(customer(cid), 0)

    class Crashing(Email):
        def send(self, message: OutboundMessage) -> SendResult:
            if len(self.sent) == 2:
                raise SystemExit("the campaign function timed out mid-batch")
            return super().send(message)

    email = Crashing()
    w = CampaignWorld(store, {"email": email})
    chunk = w.start()
    with pytest.raises(SystemExit):
        w.call(action="send_batch", chunk=chunk)
    assert len(email.sent) == 2
    # when: Lambda (or the state machine) runs the whole batch again
    healthy = Email()
    w.channels["email"] = healthy
    w.service.channels["email"] = healthy
    again = w.call(action="send_batch", chunk=chunk)
    # then: nobody is sent twice; every recipient ends with an outcome and a reason
    assert healthy.sent == [] and again["duplicate"] == 4
    assert reconcile(store) == {"outcome_unknown": 4}
    assert {(w.row(c)["status"], w.row(c)["reason"]) for c in ("c1", "c2", "c3", "c4")} == {
        ("failed", "outcome_unknown")
    }


def test_a_provider_that_took_the_message_then_timed_out_is_never_sent_again(
    store: DynamoStore,
) -> None:
    store.save_customer(customer("c1"), 0)
    email = Email()
    email.lost_answers = 1
    w = CampaignWorld(store, {"email": email})
    chunk = w.start()
    counts = w.call(action="send_batch", chunk=chunk)
    assert counts == {"chunk": chunk["key"], "failed": 1} and len(email.sent) == 1
    row = w.row("c1")
    assert (row["status"], row["reason"]) == (
        "failed",
        "no answer: ReadTimeoutError (outcome unknown)",
    )
    assert w.call(action="send_batch", chunk=chunk).get("sent", 0) == 0
    assert len(email.sent) == 1


def test_a_dead_push_token_the_bus_cannot_take_loses_no_outcome(store: DynamoStore) -> None:
    # given: three push recipients; c2 has a dead second device; the bus refuses the
    # device.unregistered report (after its retries)
    store.save_customer(push_customer("c1", "token-c1"), 0)
    store.save_customer(push_customer("c2", "token-c2", "token-c2-dead"), 0)
    store.save_customer(push_customer("c3", "token-c3"), 0)
    push = Push(dead=frozenset({"token-c2-dead"}))
    inbound = RefusingInbound()
    w = CampaignWorld(store, {"push": push}, inbound=inbound, channels=["push"])
    chunk = w.start()
    # when
    w.call(action="send_batch", chunk=chunk)
    # then: the provider took the three messages, and each is recorded sent with its id
    assert len(push.sent) == 3 and inbound.tried
    assert [
        (w.row(c)["status"], w.row(c).get("provider_message_id")) for c in ("c1", "c2", "c3")
    ] == [
        ("sent", "push-c1"),
        ("sent", "push-c2"),
        ("sent", "push-c3"),
    ]


class GarbledPinpoint:
    """Pinpoint as the push channel's client: takes the messages, then its answer cannot be
    parsed (botocore's ``ResponseParserError``: the call took effect, no channel expects it)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_messages(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        raise ResponseParserError("Unable to parse response (a proxy's HTML page)")


def test_a_push_call_failing_unexpectedly_still_records_every_recipient(
    store: DynamoStore,
) -> None:
    # given: c1 is sent a push (first), c2, with no device, an email; Pinpoint took the push
    # and its answer could not be read
    store.save_customer(push_customer("c1", "token-c1"), 0)
    store.save_customer(customer("c2", consent=opted_in("push", "email")), 0)
    pinpoint, email = GarbledPinpoint(), Email()
    providers = {"push": PinpointPush(pinpoint, "app"), "email": email}
    w = CampaignWorld(store, providers, channels=["push", "email"])
    chunk = w.start()
    # when
    counts = w.call(action="send_batch", chunk=chunk)
    # then: the email is sent and recorded; the push is failed, maybe sent (never again),
    # with its reason; nothing is left at sending for the sweep to call outcome_unknown
    assert (counts.get("sent"), counts.get("failed")) == (1, 1)
    assert len(pinpoint.calls) == 1 and len(email.sent) == 1
    assert w.row("c2")["status"] == "sent"
    assert (w.row("c1")["status"], w.row("c1")["reason"]) == (
        "failed",
        "push: unexpected ResponseParserError (outcome unknown)",
    )
    assert w.call(action="send_batch", chunk=chunk).get("sent", 0) == 0
    assert len(pinpoint.calls) == 1 and reconcile(store) == {}


def test_a_redriven_batch_sends_the_claims_the_sweep_found_never_dispatched(
    store: DynamoStore,
) -> None:
    # given: a batch whose claims took effect and whose dispatch mark failed on every
    # attempt (DynamoDB refusing the TransactWriteItems), so the execution failed
    for cid in ("c1", "c2", "c3"):
        store.save_customer(customer(cid), 0)
    email = Email()
    w = CampaignWorld(store, {"email": email})
    chunk = w.start()
    dispatch = store.dispatch_messages

    def refused(*_: Any) -> Any:
        raise server_error("TransactWriteItems")

    store.dispatch_messages = refused  # type: ignore[method-assign]
    for _ in range(4):  # the task and the state machine's retries
        with pytest.raises(ClientError):
            w.call(action="send_batch", chunk=chunk)
    store.dispatch_messages = dispatch  # type: ignore[method-assign]
    assert email.sent == []
    # the sweep settles the claims: nobody ever called the provider for them
    assert reconcile(store) == {"not_dispatched": 3}
    # when: the operator redrives the failed execution (as docs/CAMPAIGNS.md says to)
    counts = w.call(action="send_batch", chunk=chunk)
    # then: each recipient gets the campaign, once
    assert counts.get("sent") == 3 and len(email.sent) == 3
    assert {w.row(c)["status"] for c in ("c1", "c2", "c3")} == {"sent"}
    assert w.call(action="send_batch", chunk=chunk).get("sent", 0) == 0
    assert len(email.sent) == 3


# --- transactional messages ------------------------------------------------------------
def tx_request(key: str = "k1", body: str = "b1") -> TransactionalRequest:
    return TransactionalRequest(
        execution="tx:" + hashlib.sha256(key.encode()).hexdigest()[:32],
        request_hash=hashlib.sha256(body.encode()).hexdigest(),
        caller="arn:aws:iam::123456789012:role/shop",
        customer_id="c1",
        template="order_confirmation",
        channels=("email",),
        data={"order_id": "1001", "total": 12800, "currency": "JPY"},
    )


def tx_service(store: DynamoStore, email: Email) -> TransactionalService:
    return TransactionalService(send_service(store, {"email": email}, FixedClock(NOON)), store)


def test_a_transactional_request_repeated_after_its_answer_was_lost_sends_once(
    store: DynamoStore,
) -> None:
    store.save_customer(customer("c1"), 0)
    email = Email()
    first = tx_service(store, email).send(tx_request())  # its answer lost on the way back
    assert first.status == "sent"
    again = tx_service(store, email).send(tx_request())
    assert again.status == "sent" and again.replayed and len(email.sent) == 1
    assert again.provider_message_id == first.provider_message_id


@pytest.mark.parametrize("operation", ["PutItem", "UpdateItem", "BatchWriteItem"])
@pytest.mark.parametrize("timeout", [False, True], ids=["500", "timeout"])
def test_a_transactional_write_that_took_effect_before_an_error_sends_once(
    store: DynamoStore, operation: str, timeout: bool
) -> None:
    # PutItem: the key's binding and the claim; UpdateItem: the dispatch; BatchWriteItem:
    # the outcome
    store.save_customer(customer("c1"), 0)
    email = Email()
    Faults(store).fail(operation, timeout=timeout)
    answer = tx_service(store, email).send(tx_request())
    assert answer.status == "sent" and len(email.sent) == 1
    row = ledger(store, "c1", tx_request().execution, "order_confirmation")
    assert row["status"] == "sent"
    assert tx_service(store, email).send(tx_request()).status == "sent"
    assert len(email.sent) == 1


def test_a_transactional_claim_that_failed_every_attempt_is_sent_by_the_retry_once(
    store: DynamoStore,
) -> None:
    store.save_customer(customer("c1"), 0)
    email = Email()
    faults = Faults(store)
    faults.fail("PutItem", times=1)  # the binding
    faults.after["PutItem"] = 1 + WRITE_ATTEMPTS  # then every attempt of the claim
    with pytest.raises(ClientError):
        tx_service(store, email).send(tx_request())
    # the client retries with its key
    answer = tx_service(store, email).send(tx_request())
    assert answer.status == "sent" and len(email.sent) == 1


def test_a_transactional_provider_timeout_after_it_took_the_message_is_not_sent_again(
    store: DynamoStore,
) -> None:
    store.save_customer(customer("c1"), 0)
    email = Email()
    email.lost_answers = 1
    answer = tx_service(store, email).send(tx_request())
    assert (answer.status, answer.reason) == (
        "failed",
        "no answer: ReadTimeoutError (outcome unknown)",
    )
    again = tx_service(store, email).send(tx_request())
    assert again.status == "failed" and again.replayed and len(email.sent) == 1


def test_two_requests_with_one_key_at_once_send_once(store: DynamoStore) -> None:
    # the second request arrives while the first is between its claim and its dispatch
    store.save_customer(customer("c1"), 0)
    email = Email()
    first = tx_service(store, email)
    second = tx_service(store, email)
    answers: list[Any] = []
    dispatch = store.dispatch_messages

    def second_meanwhile(*args: Any) -> Any:
        store.dispatch_messages = dispatch  # type: ignore[method-assign]
        answers.append(second.send(tx_request()))
        return dispatch(*args)

    store.dispatch_messages = second_meanwhile  # type: ignore[method-assign]
    answers.insert(0, first.send(tx_request()))
    assert sorted(a.status for a in answers) == ["in_progress", "sent"]
    assert len(email.sent) == 1


def test_a_transactional_retry_after_the_sweep_settled_its_undispatched_claim_sends_it(
    store: DynamoStore,
) -> None:
    # given: the first request's claim took effect, then its dispatch mark failed (the API
    # answered 503); the sweep settled the claim, never dispatched
    store.save_customer(customer("c1"), 0)
    email = Email()
    dispatch = store.dispatch_messages

    def refused(*_: Any) -> Any:
        raise server_error("UpdateItem")

    store.dispatch_messages = refused  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        tx_service(store, email).send(tx_request())
    store.dispatch_messages = dispatch  # type: ignore[method-assign]
    assert reconcile(store) == {"not_dispatched": 1}
    # when: the caller retries with its key (an hour later)
    answer = tx_service(store, email).send(tx_request())
    # then: the message is sent, once
    assert answer.status == "sent" and len(email.sent) == 1
    assert tx_service(store, email).send(tx_request()).status == "sent"
    assert len(email.sent) == 1


# --- the reconciliation sweep ------------------------------------------------------------------
def crash_after_dispatch(store: DynamoStore, cid: str) -> None:
    """A transactional message whose function died right after the provider call."""

    class Dying(Email):
        def send(self, message: OutboundMessage) -> SendResult:
            super().send(message)
            raise SystemExit("died")

    store.save_customer(customer(cid), 0)
    req = tx_request(key=cid).model_copy(update={"customer_id": cid})
    with pytest.raises(SystemExit):
        tx_service(store, Dying()).send(req)


def test_a_settle_that_took_effect_before_a_5xx_is_counted_once(
    store: DynamoStore, capsys: pytest.CaptureFixture[str]
) -> None:
    crash_after_dispatch(store, "c1")
    Faults(store).fail("UpdateItem")
    assert reconcile(store) == {"outcome_unknown": 1}
    assert '"StaleSending":[1.0]' in capsys.readouterr().out
    assert reconcile(store) == {}


def test_a_settle_that_keeps_failing_still_counts_the_entries_settled_before_it(
    store: DynamoStore, capsys: pytest.CaptureFixture[str]
) -> None:
    crash_after_dispatch(store, "c1")
    crash_after_dispatch(store, "c2")
    faults = Faults(store)
    settled: list[str] = []
    settle = store.settle_message

    def second_refused(entry: dict[str, Any], *args: Any) -> bool:
        if settled:
            faults.refuse("UpdateItem", times=WRITE_ATTEMPTS)
        settled.append(entry["pk"])
        return settle(entry, *args)

    store.settle_message = second_refused  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        reconcile(store)
    # the first entry was settled: its outcome is counted (the alarm fires), though the
    # run failed on the second
    out = capsys.readouterr().out
    assert '"StaleSending":[1.0]' in out
    store.settle_message = settle  # type: ignore[method-assign]
    assert reconcile(store) == {"outcome_unknown": 1}


def test_a_claim_dispatched_while_the_sweep_reads_it_is_not_settled_as_never_dispatched(
    store: DynamoStore,
) -> None:
    # given: a claim the sweep reads before its invocation marks it dispatched
    store.save_customer(customer("c1"), 0)
    dispatch = store.dispatch_messages

    def refused(*_: Any) -> Any:
        raise server_error("UpdateItem")

    store.dispatch_messages = refused  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        tx_service(store, Email()).send(tx_request())
    store.dispatch_messages = dispatch  # type: ignore[method-assign]
    stale = store.stale_sending

    def dispatched_meanwhile(claimed_before: str) -> list[dict[str, Any]]:
        (entry,) = stale(claimed_before)
        assert not entry.get("dispatched_at")
        key = (entry["pk"], tx_request().execution)
        assert not dispatch("order_confirmation", [key], entry["claim_token"], "2026-01-05T04:00Z")
        return [entry]

    store.stale_sending = dispatched_meanwhile  # type: ignore[method-assign]
    # when: the sweep settles what it read
    assert reconcile(store) == {}
    # then: the entry is not called never dispatched (the provider may have it now), so
    # no retry may claim it again
    row = ledger(store, "c1", tx_request().execution, "order_confirmation")
    assert row["status"] == "sending" and row["dispatched_at"]
    email = Email()
    assert tx_service(store, email).send(tx_request()).status == "in_progress"
    assert email.sent == []


def test_a_claim_taken_again_between_the_sweeps_query_and_its_read_is_not_settled(
    store: DynamoStore,
) -> None:
    # given: a claim never dispatched (its dispatch mark refused), stale by the sweep's run
    store.save_customer(customer("c1"), 0)
    dispatch = store.dispatch_messages

    def refused(*_: Any) -> Any:
        raise server_error("UpdateItem")

    store.dispatch_messages = refused  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        tx_service(store, Email()).send(tx_request())
    (stale,) = store.stale_sending((LATER - timedelta(minutes=20)).isoformat())
    query = store._activity.query

    def index_read_before_the_retry(**kwargs: Any) -> Any:
        # the sweep's index Query (keys only) answered before the retry claimed again
        if kwargs.get("IndexName") == SENDING_INDEX:
            first = kwargs["KeyConditionExpression"].get_expression()["values"][0]
            shard = first.get_expression()["values"][1]
            items = [{"pk": stale["pk"], "sk": stale["sk"]}] if shard == stale[SENDING_PK] else []
            return {"Items": items, "Count": len(items)}
        return query(**kwargs)

    def sweep_then_dispatch(*args: Any) -> Any:
        store._activity.query = index_read_before_the_retry  # type: ignore[method-assign]
        try:
            reconcile(store)
        finally:
            store._activity.query = query  # type: ignore[method-assign]
        return dispatch(*args)

    # when: the caller retries its key an hour later; its claim is taken again, then the
    # sweep reads the entry (consistently, after the Query), then the retry dispatches
    store.dispatch_messages = sweep_then_dispatch  # type: ignore[method-assign]
    email = Email()
    answer = TransactionalService(
        send_service(store, {"email": email}, FixedClock(LATER)), store
    ).send(tx_request())
    # then: the sweep left the fresh claim alone, and the retry sent the message, once
    assert answer.status == "sent" and len(email.sent) == 1
    assert ledger(store, "c1", tx_request().execution, "order_confirmation")["status"] == "sent"


# --- the occurrence's counters under a retried batch ---------------------------------------
class CounterFaults:
    """Faults on the write of the occurrence's counters only (the campaigns table's write
    that ADDs ``#c0``): after it took effect (a read timeout), or instead of it (a 500),
    ``times`` times."""

    def __init__(self, store: DynamoStore, times: int, took_effect: bool) -> None:
        self.left, self.took_effect, self.armed = times, took_effect, False
        events = store._dynamodb.meta.client.meta.events
        events.register("before-call.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        self.armed = self.left > 0 and b'"campaigns"' in body and b"ADD #c0" in body
        if self.armed and not self.took_effect:
            self.left -= 1
            raise server_error("TransactWriteItems")

    def _after(self, **_: Any) -> None:
        if self.armed and self.took_effect:
            self.left -= 1
            raise ReadTimeoutError(endpoint_url="https://dynamodb")


@pytest.fixture
def campaigns(store: DynamoStore) -> CampaignStore:
    create_table(store._dynamodb.meta.client, "campaigns", "campaign_id", "sk")
    return CampaignStore(store._dynamodb, "campaigns", sleep=lambda _: None)


def counters(w: CampaignWorld) -> dict[str, int]:
    occ = w.campaigns.get_occurrence("sale", w.occurrence) or {}
    return {k: int(occ[k]) for k in ("sent", "duplicate", "failed") if occ.get(k)}


def test_counters_that_took_effect_before_a_timeout_are_not_added_again_by_the_retry(
    store: DynamoStore, campaigns: CampaignStore
) -> None:
    for cid in ("c1", "c2", "c3"):
        store.save_customer(customer(cid), 0)
    email = Email()
    w = CampaignWorld(store, {"email": email}, campaigns=campaigns)
    chunk = w.start()
    # given: the counters' write takes effect, and every answer to it is lost
    faults = CounterFaults(store, WRITE_ATTEMPTS, took_effect=True)
    with pytest.raises(ReadTimeoutError):
        w.call(action="send_batch", chunk=chunk)
    faults.left = 0
    assert counters(w) == {"sent": 3} and len(email.sent) == 3
    # when: the state machine retries the batch
    again = w.call(action="send_batch", chunk=chunk)
    # then: it sends nothing, and the counters are those of one attempt
    assert again == {"chunk": chunk["key"], "duplicate": 3} and len(email.sent) == 3
    assert counters(w) == {"sent": 3}


def test_counters_refused_before_they_took_effect_are_counted_by_the_retry_as_sent(
    store: DynamoStore, campaigns: CampaignStore
) -> None:
    for cid in ("c1", "c2", "c3"):
        store.save_customer(customer(cid), 0)
    email = Email()
    w = CampaignWorld(store, {"email": email}, campaigns=campaigns)
    chunk = w.start()
    # given: the counters' write fails every time before it takes effect
    faults = CounterFaults(store, WRITE_ATTEMPTS, took_effect=False)
    with pytest.raises(ClientError):
        w.call(action="send_batch", chunk=chunk)
    faults.left = 0
    assert counters(w) == {} and len(email.sent) == 3
    # when: the state machine retries the batch
    again = w.call(action="send_batch", chunk=chunk)
    # then: nobody is sent twice, and the three the first sent are counted as sent, once
    assert again == {"chunk": chunk["key"], "duplicate": 3} and len(email.sent) == 3
    assert counters(w) == {"sent": 3}


def test_a_counters_write_tried_again_in_place_after_it_took_effect_counts_once(
    store: DynamoStore, campaigns: CampaignStore
) -> None:
    ids = [f"c{n}" for n in range(10)]
    for cid in ids:
        store.save_customer(customer(cid), 0)

    class Rejecting(Email):
        def _send_email(self, message: OutboundMessage) -> dict[str, Any]:
            self.sent.append(message)
            error = {"Code": "MessageRejected", "Message": "injected"}
            raise ClientError({"Error": error}, "SendEmail")

    email = Rejecting()
    w = CampaignWorld(
        store,
        {"email": email},
        campaigns=campaigns,
        stop_on_failures={"percent": 50, "after": 10},
    )
    chunk = w.start()
    CounterFaults(store, 1, took_effect=True)
    counts = w.call(action="send_batch", chunk=chunk)
    # then: the write tried again finds its own marker: counted once, and the breaker
    # judged this batch's own counts
    assert counts == {"chunk": chunk["key"], "failed": 10}
    assert counters(w) == {"failed": 10}
    occ = campaigns.get_occurrence("sale", w.occurrence) or {}
    assert occ["status"] == "stopped"
