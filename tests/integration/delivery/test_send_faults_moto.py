"""The Send task under injected DynamoDB faults (moto): a 5xx after a write took effect, a
crash after the provider took the message, a ledger write that fails after delivery -- and
the reconciliation sweep that settles what they leave at ``sending``.

Faults are injected on botocore's ``after-call`` hook: the call reached DynamoDB and took
effect, then the caller gets a 500 (as when botocore's own retries are used up)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from kizuna.adapters.dynamodb import WRITE_ATTEMPTS, DynamoStore
from kizuna.delivery.channels import OutboundMessage, SendResult
from kizuna.delivery.ledger import SENDING_INDEX, SENDING_PK, SENDING_SK
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.contracts import SendRequest
from kizuna.services.reconcile import ReconcileService
from kizuna.services.send import SendService
from tests.factories import customer, journey_send, send_service
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
LATER = NOON + timedelta(hours=1)  # when the reconciliation sweep runs


class Email:
    """Takes every message; ``crash`` makes the process die right after the provider took
    one (before the send could write its outcome)."""

    def __init__(self, crash: bool = False) -> None:
        self.sent: list[OutboundMessage] = []
        self.crash = crash

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        if self.crash:
            raise SystemExit("the send function died after SES took the message")
        return SendResult(provider_message_id=f"ses-{len(self.sent)}")


class Faults:
    """A 500 for the next ``times`` calls of an operation: after it took effect
    (:meth:`fail`), or instead of it (:meth:`refuse`)."""

    def __init__(self, store: DynamoStore) -> None:
        self.events = store._dynamodb.meta.client.meta.events
        self.after: dict[str, int] = {}
        self.before: dict[str, int] = {}
        self.events.register("after-call.dynamodb", self._after)
        self.events.register("before-call.dynamodb", self._before)

    def fail(self, operation: str, times: int = 1) -> None:
        self.after[operation] = times

    def refuse(self, operation: str, times: int = 1) -> None:
        self.before[operation] = times

    def _after(self, model: Any, **_: Any) -> None:
        self._maybe(self.after, model.name)

    def _before(self, model: Any, **_: Any) -> None:
        self._maybe(self.before, model.name)

    @staticmethod
    def _maybe(pending: dict[str, int], operation: str) -> None:
        if pending.get(operation, 0) > 0:
            pending[operation] -= 1
            raise ClientError(
                {
                    "Error": {"Code": "InternalServerError", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                operation,
            )


def _create_tables(ddb: Any) -> None:
    ddb.create_table(
        TableName="customers",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
    )
    ddb.create_table(  # as infra/kizuna_infra/data.py defines it, with the sparse index
        TableName="activity",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", SENDING_PK, SENDING_SK)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": SENDING_INDEX,
                "KeySchema": [
                    {"AttributeName": SENDING_PK, "KeyType": "HASH"},
                    {"AttributeName": SENDING_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


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
        s.save_customer(customer(email="hanako@example.jp"), 0)
        yield s


def sender(store: DynamoStore, email: Email) -> SendService:
    return send_service(store, {"email": email}, FixedClock(NOON))


def entry(store: DynamoStore, execution: str = "ex-1", step: str = "coupon") -> dict[str, Any]:
    return store.ledger_entries(["c1"], execution, step)["c1"]


def cohort_send(run: str) -> SendRequest:
    """The coupon step of entry ``ex-1``, carried by the cohort execution ``run``."""
    return journey_send("c1", "ex-1").model_copy(update={"run": run, "cohort": "k"})


def reconcile(store: DynamoStore) -> dict[str, int]:
    return ReconcileService(store, FixedClock(LATER)).run()


# --- #9: a claim that took effect before a 5xx is the retry's own ---------------------------
def test_a_5xx_after_the_claim_took_effect_is_retried_in_place(store: DynamoStore) -> None:
    # given: the claim's TransactWriteItems takes effect, then answers 500 once
    email = Email()
    Faults(store).fail("TransactWriteItems")
    # when: the step sends
    answer = sender(store, email).send(journey_send("c1", "ex-1"))
    # then: the retried write finds its own claim: one message, recorded as sent
    assert answer.status == "sent" and len(email.sent) == 1
    assert entry(store)["status"] == "sent"


def test_a_retried_invocation_recognises_its_own_claim_and_delivers(store: DynamoStore) -> None:
    # given: every attempt of the first invocation's claim took effect and answered 500
    email = Email()
    Faults(store).fail("TransactWriteItems", times=WRITE_ATTEMPTS)
    with pytest.raises(ClientError):
        sender(store, email).send(cohort_send("run-a"))
    assert entry(store)["status"] == "sending" and email.sent == []
    # when: Step Functions retries the step (a new invocation of the same execution)
    answer = sender(store, email).send(cohort_send("run-a"))
    # then: the claim is its own, not a duplicate: the customer gets the message, once
    assert answer.status == "sent" and len(email.sent) == 1
    assert entry(store)["status"] == "sent"
    assert entry(store)["provider_message_id"] == "ses-1"
    # and a third delivery of the step answers what was decided
    assert sender(store, email).send(cohort_send("run-a")).status == "sent"
    assert len(email.sent) == 1


def test_a_retried_invocation_does_not_count_its_own_claim_against_the_cap(
    store: DynamoStore,
) -> None:
    # given: a cap of one message a day; the first invocation's claim (noted in CONTACT)
    # took effect on every attempt and the invocation failed before sending
    email = Email()
    one_a_day = KizunaConfig().model_copy(
        update={"contact": KizunaConfig().contact.model_copy(update={"max_per_day": 1})}
    )
    Faults(store).fail("TransactWriteItems", times=WRITE_ATTEMPTS)
    first = sender(store, email)
    first.cfg = one_a_day
    with pytest.raises(ClientError):
        first.send(cohort_send("run-a"))
    # when: Step Functions retries the step
    retry = sender(store, email)
    retry.cfg = one_a_day
    answer = retry.send(cohort_send("run-a"))
    # then: the note of its own claim is not another message: it is sent, once, noted once
    assert answer.status == "sent" and len(email.sent) == 1
    assert entry(store)["status"] == "sent"
    assert list(store.read_send_state(["c1"], None)[1]["c1"].sent) == ["ex-1#coupon"]


def test_another_execution_with_the_same_entry_is_a_duplicate(store: DynamoStore) -> None:
    # given: run-a's claim of entry ex-1 took effect and its invocation failed
    email = Email()
    Faults(store).fail("TransactWriteItems", times=WRITE_ATTEMPTS)
    with pytest.raises(ClientError):
        sender(store, email).send(cohort_send("run-a"))
    # when: another execution carries the same entry to the same step
    other = sender(store, email).send(cohort_send("run-b"))
    # then: it is not the claim's owner: nothing sent
    assert (other.status, other.reason) == ("duplicate", "in_flight") and email.sent == []
    # and the owner's retry still delivers, once
    assert sender(store, email).send(cohort_send("run-a")).status == "sent"
    assert len(email.sent) == 1


def test_a_5xx_after_the_dispatch_mark_took_effect_still_sends_once(store: DynamoStore) -> None:
    # given: the dispatch mark (just before the provider call) answers 500 after taking effect
    email = Email()
    Faults(store).fail("UpdateItem")
    # when
    answer = sender(store, email).send(journey_send("c1", "ex-1"))
    # then: the mark is idempotent for its invocation: sent, once
    assert answer.status == "sent" and len(email.sent) == 1


# --- #10: after the provider took the message -------------------------------------------------
def test_a_crash_after_the_provider_took_the_message_never_sends_it_again(
    store: DynamoStore,
) -> None:
    # given: the function dies right after SES took the message
    with pytest.raises(SystemExit):
        sender(store, Email(crash=True)).send(cohort_send("run-a"))
    # when: Step Functions retries the step
    email = Email()
    answer = sender(store, email).send(cohort_send("run-a"))
    # then: the entry was dispatched: the provider may have it, it is not sent again
    assert (answer.status, answer.reason) == ("duplicate", "outcome_unknown")
    assert email.sent == [] and entry(store)["status"] == "sending"
    assert "gsi1pk" not in entry(store)  # a claim is in the program/time index once settled
    # when: SES's delivery event arrives (feedback stamps it, with SES's message id)
    assert store.stamp_message("c1", "ex-1", "coupon", "delivery_at", "2026-01-05T03:00:05Z", "m9")
    # and the reconciliation sweep runs
    assert reconcile(store) == {"sent": 1}
    # then: the entry is sent, from the provider's evidence, and leaves the sparse index
    settled = entry(store)
    assert (settled["status"], settled["reason"]) == ("sent", "reconciled")
    assert settled["provider_message_id"] == "m9" and SENDING_PK not in settled
    # and enters the program/time index (gsi1) that the program's figures read
    assert settled["gsi1pk"] == "PROGRAM#second-purchase-coupon"
    assert settled["gsi1sk"] == f"{settled['at']}#c1"
    assert reconcile(store) == {}


def test_a_crash_then_an_ses_reject_settles_sent_and_says_not_delivered(
    store: DynamoStore,
) -> None:
    # given: the function died right after SES took the message, then SES rejected it
    with pytest.raises(SystemExit):
        sender(store, Email(crash=True)).send(cohort_send("run-a"))
    why = {"not_delivered_reason": "rejected: Bad content"}
    at = "2026-01-05T03:00:01.000000Z"
    assert store.stamp_message("c1", "ex-1", "coupon", "reject_at", at, "m9", also=why)
    # a redelivered event changes nothing; an earlier stamp keeps the first reason
    assert not store.stamp_message("c1", "ex-1", "coupon", "reject_at", at, "m9", also=why)
    earlier = "2026-01-05T03:00:00.500000Z"
    other = {"not_delivered_reason": "rejected"}
    assert store.stamp_message("c1", "ex-1", "coupon", "reject_at", earlier, "m9", also=other)
    # when: the sweep runs
    assert reconcile(store) == {"sent": 1}
    # then: SES accepted it (never sent again), and the entry says it was not delivered
    settled = entry(store)
    assert (settled["status"], settled["reason"]) == ("sent", "reconciled")
    assert settled["provider_message_id"] == "m9" and settled["reject_at"] == earlier
    assert settled["not_delivered_reason"] == "rejected: Bad content"
    email = Email()
    assert sender(store, email).send(cohort_send("run-a")).status == "sent"
    assert email.sent == []


def test_a_crash_with_no_evidence_is_settled_loudly_as_outcome_unknown(
    store: DynamoStore,
) -> None:
    with pytest.raises(SystemExit):
        sender(store, Email(crash=True)).send(cohort_send("run-a"))
    # when: no feedback ever comes (SMS, push), and the sweep runs
    assert reconcile(store) == {"outcome_unknown": 1}
    # then: failed, with the reason, never silently; and never sent again
    settled = entry(store)
    assert (settled["status"], settled["reason"]) == ("failed", "outcome_unknown")
    email = Email()
    assert sender(store, email).send(cohort_send("run-a")).status == "failed"
    assert email.sent == []


def test_a_claim_never_dispatched_is_settled_as_not_sent(store: DynamoStore) -> None:
    # given: a claim whose invocations all failed before the provider call
    Faults(store).fail("TransactWriteItems", times=WRITE_ATTEMPTS)
    with pytest.raises(ClientError):
        sender(store, Email()).send(cohort_send("run-a"))
    # when: nothing retried it, and the sweep runs
    assert reconcile(store) == {"not_dispatched": 1}
    assert (entry(store)["status"], entry(store)["reason"]) == ("failed", "not_dispatched")


def test_a_fresh_sending_entry_is_left_to_its_invocation(store: DynamoStore) -> None:
    Faults(store).fail("TransactWriteItems", times=WRITE_ATTEMPTS)
    with pytest.raises(ClientError):
        sender(store, Email()).send(cohort_send("run-a"))
    # the sweep a minute later: younger than STALE_AFTER, its retry may still come
    assert ReconcileService(store, FixedClock(NOON + timedelta(minutes=1))).run() == {}
    assert entry(store)["status"] == "sending"


def test_a_ledger_write_failing_after_delivery_is_written_again(store: DynamoStore) -> None:
    # given: the outcome's BatchWriteItem is refused with a 500 once
    email = Email()
    Faults(store).refuse("BatchWriteItem")
    # when
    answer = sender(store, email).send(journey_send("c1", "ex-1"))
    # then: the outcome is recorded, with the provider's id
    assert answer.status == "sent" and len(email.sent) == 1
    assert (entry(store)["status"], entry(store)["provider_message_id"]) == ("sent", "ses-1")


def test_a_ledger_write_that_keeps_failing_is_left_to_the_sweep(
    store: DynamoStore, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # given: every attempt to record the outcome fails (DynamoDB refuses it)
    email = Email()
    Faults(store).refuse("BatchWriteItem", times=WRITE_ATTEMPTS)
    # when
    answer = sender(store, email).send(cohort_send("run-a"))
    # then: the step does not fail (a retry could not send again), the entry stays
    # `sending` (dispatched), and the failure is logged with the provider's id
    assert answer.status == "sent" and len(email.sent) == 1
    assert entry(store)["status"] == "sending" and entry(store)["dispatched_at"]
    (failure,) = [
        r for r in caplog.records if r.getMessage() == "ledger write failed after delivery"
    ]
    assert failure.outcomes[0]["provider_message_id"] == "ses-1"  # type: ignore[attr-defined]
    assert '"LedgerWriteFailed":[1.0]' in capsys.readouterr().out  # the metric
    # and a retried step does not send it again
    assert sender(store, email).send(cohort_send("run-a")).status == "duplicate"
    assert len(email.sent) == 1
    # when: SES reports the delivery, and the sweep runs
    store.stamp_message("c1", "ex-1", "coupon", "delivery_at", "2026-01-05T03:00:09Z", "ses-1")
    assert reconcile(store) == {"sent": 1}
    assert (entry(store)["status"], entry(store)["provider_message_id"]) == ("sent", "ses-1")
