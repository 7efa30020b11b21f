"""push.opened: the app's report of an open, from the push's message reference to ``open_at``
on the customer's own push ledger entry (ingest)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.delivery.channels import OutboundMessage, PinpointPush
from kizuna.delivery.content import PushContent
from kizuna.delivery.policy import PushTarget
from kizuna.delivery.tags import TAG_MESSAGE, message_ref, parse_message_ref
from kizuna.domain.timestamps import iso
from kizuna.events import INBOUND_MODELS, PushOpened
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, days, envelope
from tests.sqs_events import sqs_event, sqs_record

EXECUTION = "winback-0123456789abcdef0123456789abcdef"
REF = message_ref(EXECUTION, "coupon")


def opened(customer_id: str, ref: str, at: datetime, event_id: str) -> dict[str, Any]:
    detail = PushOpened(customer_id=customer_id, occurred_at=at, message=ref)
    return envelope("push.opened", detail.model_dump(mode="json"), event_id)


def ledger(store: MemoryStore, customer_id: str, channel: str, step: str = "coupon") -> None:
    store.record_message(
        customer_id, EXECUTION, step, {"status": "sent", "channel": channel, "at": iso(T0)}
    )


def service(store: MemoryStore) -> tuple[IngestService, MemoryDeadLetters]:
    dlq = MemoryDeadLetters()
    svc = IngestService(
        store,
        MemoryPublisher(),
        dlq,
        KizunaConfig(),
        FixedClock(T0 + days(1)),
        max_receive_count=3,
        stamps=store,
    )
    return svc, dlq


def test_the_push_payload_carries_the_reference_the_event_echoes() -> None:
    message = OutboundMessage(
        customer_id="c1",
        program="winback",
        step="coupon",
        execution=EXECUTION,
        channel="push",
        address=(PushTarget(key="d1", token="t" * 64, platform="APNS"),),
        content=PushContent(body="10% off"),
    )
    push = PinpointPush(client_pinpoint=None, application_id="app")
    request = push.request(message, PushContent(body="10% off"), message.address)  # type: ignore[arg-type]
    context = request["Context"]
    assert context[TAG_MESSAGE] == REF
    batch = push.batch_request([message])
    assert batch["Addresses"]["t" * 64]["Context"][TAG_MESSAGE] == REF
    assert parse_message_ref(context[TAG_MESSAGE]) == (EXECUTION, "coupon")
    campaign = message_ref("campaign:spring:20260105T100000Z", "send")
    assert parse_message_ref(campaign) == ("campaign:spring:20260105T100000Z", "send")
    assert PushOpened(customer_id="c1", occurred_at=T0, message=campaign).message == campaign


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "no-step",
        "exec/",
        "/coupon",
        "exec#x/coupon",  # no '#': no internal key can be named
        "a/b/coupon",  # one '/' only
        " exec/coupon",
        "exec/coupon\n",
        "x" * 129 + "/coupon",
    ],
)
def test_a_malformed_reference_is_rejected(ref: str) -> None:
    with pytest.raises(ValidationError) as err:
        PushOpened(customer_id="c1", occurred_at=T0, message=ref)
    assert err.value.errors()[0]["loc"] == ("message",)
    assert INBOUND_MODELS["push.opened"] is PushOpened


def test_an_open_stamps_the_customers_push_entry_and_keeps_the_earliest() -> None:
    store = MemoryStore()
    ledger(store, "c1", "push")
    svc, dlq = service(store)
    first, later = T0 + days(0.1), T0 + days(0.2)
    # redelivered, out of order: the later open first
    response = svc.process_batch(
        sqs_event(
            sqs_record(opened("c1", REF, later, "e2"), "m2"),
            sqs_record(opened("c1", REF, first, "e1"), "m1"),
            sqs_record(opened("c1", REF, later, "e2"), "m3"),
        )
    )
    assert response == {"batchItemFailures": []} and dlq.letters == []
    assert store.messages[("c1", f"MSG#{EXECUTION}#coupon")]["open_at"] == iso(first)
    assert svc.stats.push_opens == 2  # the later one, then the earlier one over it
    assert "c1" not in store.customers  # an open is a ledger fact, not customer state


def test_a_forged_or_unknown_reference_changes_nothing() -> None:
    store = MemoryStore()
    ledger(store, "c1", "push")
    ledger(store, "c1", "email", step="mail")
    svc, dlq = service(store)
    before = {k: dict(v) for k, v in store.messages.items()}
    response = svc.process_batch(
        sqs_event(
            # c2 names c1's message: the key holds c2, who has no such entry
            sqs_record(opened("c2", REF, T0, "e1"), "m1"),
            # c1 names a message never sent
            sqs_record(opened("c1", message_ref(EXECUTION, "nothing"), T0, "e2"), "m2"),
            # c1 names its own email: a push open cannot stamp it
            sqs_record(opened("c1", message_ref(EXECUTION, "mail"), T0, "e3"), "m3"),
        )
    )
    assert response == {"batchItemFailures": []} and dlq.letters == []
    assert store.messages == before
    assert svc.stats.push_opens == 0 and svc.stats.processed == 3


def test_a_malformed_open_is_dead_lettered_naming_the_field() -> None:
    store = MemoryStore()
    ledger(store, "c1", "push")
    svc, dlq = service(store)
    bad = opened("c1", REF, T0, "e1")
    bad["detail"]["message"] = "c1/../coupon"
    bad2 = opened("c1", REF, T0, "e2")
    bad2["detail"]["opened_by"] = "someone"
    svc.process_batch(sqs_event(sqs_record(bad, "m1"), sqs_record(bad2, "m2")))
    assert [d.error_type for d in dlq.letters] == ["InvalidEvent", "InvalidEvent"]
    assert "detail.message" in dlq.letters[0].reason
    assert "detail.opened_by: Extra inputs" in dlq.letters[1].reason  # a field-like name
    assert "open_at" not in store.messages[("c1", f"MSG#{EXECUTION}#coupon")]
