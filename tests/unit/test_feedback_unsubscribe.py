"""Feedback (bounces, complaints, opens) and one-click unsubscribe, with fakes."""

from datetime import UTC, datetime, timedelta
from typing import Any

from kizuna.delivery.policy import address_hash
from kizuna.delivery.tags import TAG_CUSTOMER, TAG_EXECUTION, TAG_PROGRAM, TAG_STEP
from kizuna.delivery.unsubscribe import sign
from kizuna.domain.customer import Customer
from kizuna.events import Channel, ChannelSuppressed
from kizuna.runtime.clock import FixedClock
from kizuna.services.feedback import FeedbackService
from kizuna.services.unsubscribe import UnsubscribeService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryInbound, MemoryStore
from tests.factories import sms_opted_out, unsubscribed
from tests.sqs_events import sqs_event, sqs_record

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


def ses_event(detail_type: str, event_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"ses-{event_type}",
        "detail-type": detail_type,
        "source": "aws.ses",
        "account": "123456789012",
        "time": "2026-01-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventType": event_type,
            "mail": {
                "timestamp": "2026-01-05T02:59:00.000Z",
                "messageId": "m-1",
                "source": "shop@example.com",
                "destination": ["hanako@example.jp"],
                "tags": {
                    TAG_CUSTOMER: ["c1"],
                    TAG_PROGRAM: ["second-purchase-coupon"],
                    TAG_STEP: ["coupon"],
                    TAG_EXECUTION: ["ex-1"],
                },
            },
            **extra,
        },
    }


def bounce(bounce_type: str, sub_type: str) -> dict[str, Any]:
    """The ``bounce`` part of an SES bounce event for hanako@example.jp."""
    recipients = [{"emailAddress": "hanako@example.jp"}]
    return {
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": recipients,
            "timestamp": "2026-01-05T03:00:00.000Z",
        }
    }


BOUNCE = bounce("Permanent", "General")
TRANSIENT = bounce("Transient", "MailboxFull")


def feedback() -> tuple[FeedbackService, MemoryStore, MemoryInbound, MemoryDeadLetters]:
    store, inbound, dlq = MemoryStore(), MemoryInbound(), MemoryDeadLetters()
    store.customers["c1"] = Customer(customer_id="c1", email="hanako@example.jp")
    store.record_message("c1", "ex-1", "coupon", {"status": "sent", "sent_at": "x"})
    return FeedbackService(store, inbound, dlq, FixedClock(NOW), 3), store, inbound, dlq


def test_permanent_bounce_suppresses_the_current_address_and_stamps_the_ledger() -> None:
    svc, store, inbound, _ = feedback()
    out = svc.process_batch(
        sqs_event(sqs_record(ses_event("Email Bounced", "Bounce", BOUNCE), "m1"))
    )
    assert out == {"batchItemFailures": []}
    ((kind, detail),) = inbound.events
    assert kind == "channel.suppressed" and isinstance(detail, ChannelSuppressed)
    assert (detail.channel, detail.reason) == (Channel.EMAIL, "bounce")
    assert detail.address_hash == address_hash("hanako@example.jp")
    assert "hanako" not in detail.model_dump_json()
    assert store.messages[("c1", "MSG#ex-1#coupon")]["bounce_at"].startswith("2026-01-05")


def test_transient_bounce_and_open_do_not_suppress() -> None:
    svc, store, inbound, _ = feedback()
    svc.process_batch(
        sqs_event(
            sqs_record(ses_event("Email Bounced", "Bounce", TRANSIENT), "m1"),
            sqs_record(
                ses_event(
                    "Email Opened",
                    "Open",
                    {
                        "open": {
                            "timestamp": "2026-01-05T04:00:00.000Z",
                            "userAgent": "x",
                            "ipAddress": "1.2.3.4",
                        }
                    },
                ),
                "m2",
            ),
        )
    )
    assert inbound.events == []
    assert "open_at" in store.messages[("c1", "MSG#ex-1#coupon")]


def test_malformed_feedback_goes_to_the_dead_letters() -> None:
    svc, _, _, dlq = feedback()
    bad = ses_event("Email Bounced", "Bounce", {})
    svc.process_batch(sqs_event(sqs_record(bad, "m1")))
    assert [d.error_type for d in dlq.letters] == ["FeedbackError"]


KEY = b"u" * 32


def unsubscribe(
    method: str, token: str, form: bool = False
) -> tuple[dict[str, Any], MemoryInbound]:
    inbound = MemoryInbound()
    svc = UnsubscribeService([KEY], inbound, FixedClock(NOW))
    event: dict[str, Any] = {
        "requestContext": {"http": {"method": method}},
        "queryStringParameters": {"t": token},
    }
    if form:
        event["body"] = "List-Unsubscribe=One-Click"
    return svc.handle(event), inbound


def test_one_click_post_opts_out_at_once() -> None:
    token = sign(KEY, "c1", "email", NOW + timedelta(days=30))
    resp, inbound = unsubscribe("POST", token, form=True)
    assert resp["statusCode"] == 200
    assert inbound.events == [("consent.changed", unsubscribed("c1", NOW))]


def test_get_shows_a_confirmation_page_and_changes_nothing() -> None:
    token = sign(KEY, "c1", "email", NOW + timedelta(days=30))
    resp, inbound = unsubscribe("GET", token)
    assert resp["statusCode"] == 200 and '<form method="post">' in resp["body"]
    assert inbound.events == []


def test_forged_and_expired_tokens_change_nothing_and_say_why() -> None:
    forged = sign(b"x" * 32, "c1", "email", NOW + timedelta(days=30))
    resp, inbound = unsubscribe("POST", forged)
    assert resp["statusCode"] == 403 and inbound.events == []
    expired = sign(KEY, "c1", "email", NOW - timedelta(seconds=1))
    resp, inbound = unsubscribe("POST", expired)
    assert resp["statusCode"] == 410 and "expired" in resp["body"] and inbound.events == []
    resp, _ = unsubscribe("POST", "not-a-token")
    assert resp["statusCode"] == 400


def test_sms_stop_replies_suppress_the_customers_with_that_number() -> None:
    from kizuna.domain.ingest import apply_events
    from tests.factories import T0, parsed, upsert

    svc, store, inbound, _ = feedback()
    raw = upsert("c2", T0, "e1", phone="+819011112222")
    store.customers["c2"] = apply_events(
        Customer(customer_id="c2"),
        [parsed(raw)],
        __import__("kizuna.runtime.config").runtime.config.KizunaConfig(),
        T0,
    ).customer
    assert svc.sweep_sms_opt_outs(["+819011112222", "+15550000000"]) == 1
    ((kind, detail),) = inbound.events
    assert kind == "channel.suppressed"
    assert detail == sms_opted_out("c2", NOW, "+819011112222")
    assert "+8190" not in detail.model_dump_json()
