"""SMS and push as a customer meets them: consent and the carrier's opt-out list read at
the send (not at the journey's entry), quiet hours in the customer's zone, and what the
ledger and the logs say (never the number or a device token)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.stub import Stubber

from kizuna.delivery.channels import SnsSms
from kizuna.domain.customer import ConsentState, Customer, Device
from kizuna.domain.loyalty import address_hash
from kizuna.events import ChannelSuppressed
from kizuna.runtime.clock import FixedClock
from kizuna.services.send import SendRequest, SendService
from kizuna_tools.fakes import MemoryInbound, MemoryStore
from tests import factories
from tests.factories import PHONE, Email, opted_in, send_service
from tests.log_capture import KizunaLogs, kizuna_logs  # noqa: F401 - the fixture

NOON = datetime(2026, 1, 12, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
TOKEN = "fcm-" + "t" * 60


def customer(**extra: Any) -> Customer:
    base: dict[str, Any] = {
        "phone": PHONE,
        "order_count": 2,
        "consent": opted_in("sms", "push"),
        "devices": {"d1": Device(token=TOKEN, platform="FCM", at=NOON)},
    }
    return factories.customer(**{**base, **extra})


def nudge() -> SendRequest:
    """The win-back journey's SMS nudge (channels sms, push), entered a week before."""
    return SendRequest(
        program="winback-before-dormancy",
        step="nudge",
        customer_id="c1",
        execution="ex-1",
        entered_at=NOON - timedelta(days=7),
    )


def build(
    cust: Customer, *, sms: Any = None, at: datetime = NOON, **options: Any
) -> tuple[SendService, MemoryStore, dict[str, Any], MemoryInbound]:
    store = MemoryStore()
    store.customers["c1"] = cust
    channels: dict[str, Any] = {"sms": sms or Email(), "push": Email()}  # keep what they are sent
    inbound = MemoryInbound()
    svc = send_service(store, channels, FixedClock(at), inbound=inbound, **options)
    return svc, store, channels, inbound


def entry(store: MemoryStore) -> dict[str, Any]:
    return store.messages[("c1", "MSG#ex-1#nudge")]


def opted_out(at: datetime = NOON) -> ConsentState:
    return ConsentState(status="opted_out", at=at, source="preference_page", stamp="s2")


def test_an_sms_opt_out_after_the_entry_is_honoured_at_the_send() -> None:
    # given a customer who consented to SMS at entry and stopped it the day before the send
    consent = {**opted_in("sms", "push"), "sms": opted_out(NOON - timedelta(days=1))}
    svc, store, channels, _ = build(customer(consent=consent))
    # when the nudge is sent, then it goes by push, and the ledger says why not SMS
    assert svc.send(nudge()).channel == "push"
    assert channels["sms"].sent == [] and len(channels["push"].sent) == 1
    assert entry(store)["skipped"] == ["sms:no_consent"]


def test_sms_and_push_both_stopped_since_the_entry_send_nothing_with_the_reason() -> None:
    consent = {"sms": opted_out(), "push": opted_out()}
    svc, store, channels, _ = build(customer(consent=consent))
    resp = svc.send(nudge())
    assert (resp.status, resp.reason) == ("suppressed", "no_channel")
    assert channels["sms"].sent == channels["push"].sent == []
    assert entry(store)["skipped"] == ["sms:no_consent", "push:no_consent"]


def test_a_number_that_replied_stop_since_the_entry_falls_back_and_is_suppressed() -> None:
    asked: list[str] = []

    def on_the_list(number: str) -> bool:
        asked.append(number)
        return True

    svc, store, channels, inbound = build(customer(), sms_opted_out=on_the_list)
    assert svc.send(nudge()).channel == "push"
    assert asked == [PHONE] and channels["sms"].sent == []
    assert entry(store)["skipped"] == ["sms:suppressed_opt_out"]
    (event,) = [e for _, e in inbound.events if isinstance(e, ChannelSuppressed)]
    assert (event.channel, event.reason) == ("sms", "opt_out")
    assert event.address_hash == address_hash(PHONE)
    assert PHONE not in event.model_dump_json()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_sms_waits_for_the_morning_in_the_customers_own_zone(zone: str) -> None:
    # given 22:30 where the customer lives
    local = datetime(2026, 1, 12, 22, 30, tzinfo=ZoneInfo(zone))
    svc, store, channels, _ = build(customer(time_zone=zone), at=local.astimezone(UTC))
    resp = svc.send(nudge())
    assert (resp.status, resp.channel, resp.reason) == ("deferred", "sms", "quiet_hours")
    morning = datetime(2026, 1, 13, 8, 0, tzinfo=local.tzinfo).astimezone(UTC)
    assert resp.until == morning.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert channels["sms"].sent == [] and channels["push"].sent == []
    assert entry(store)["quiet"]["time_zone"] == zone


def test_a_number_sns_refuses_fails_the_message_without_the_number_anywhere(
    kizuna_logs: KizunaLogs,  # noqa: F811
) -> None:
    # given SNS refusing the number (its message quotes it)
    client = boto3.client(
        "sns",
        region_name="ap-northeast-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    svc, store, _, inbound = build(customer(consent=opted_in("sms")), sms=SnsSms(client))
    with Stubber(client) as stub:
        stub.add_client_error(
            "publish",
            service_error_code="InvalidParameter",
            service_message=f"Invalid parameter: PhoneNumber Reason: {PHONE} is not valid to "
            "publish to",
            http_status_code=400,
        )
        resp = svc.send(nudge())
    # then the message failed, for good and once, with SNS's code as the reason
    assert (resp.status, resp.reason) == ("failed", "Publish: InvalidParameter")
    assert entry(store)["status"] == "failed"
    # and the number is neither in the ledger nor in a log line
    assert kizuna_logs.records("send failed")  # the log line is there, without it
    assert PHONE[1:] not in str(entry(store)) and PHONE[1:] not in kizuna_logs.text
    # SNS also answers so for a region or an account not set up for SMS: nothing suppressed
    assert not [e for _, e in inbound.events if isinstance(e, ChannelSuppressed)]


def test_a_number_stored_with_the_japanese_trunk_0_is_no_sms_address() -> None:
    # given a number stored before ingest refused "+81" then "0" (a customer item of an
    # earlier version): SNS would be asked for a number that does not exist
    svc, store, channels, _ = build(customer(phone="+8109012345678"))
    assert svc.send(nudge()).channel == "push"
    assert channels["sms"].sent == [] and entry(store)["skipped"] == ["sms:no_address"]
