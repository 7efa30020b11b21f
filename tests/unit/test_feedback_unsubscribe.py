"""Feedback (bounces, complaints, opens) and one-click unsubscribe, with fakes."""

from datetime import UTC, datetime, timedelta
from typing import Any

from kizuna.delivery.policy import address_hash
from kizuna.delivery.tags import TAG_CUSTOMER, TAG_EXECUTION, TAG_PROGRAM, TAG_STEP
from kizuna.delivery.unsubscribe import sign
from kizuna.domain.customer import ConsentState, Customer
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
OPTED_IN_AT = NOW - timedelta(days=100)


def opted_in(cid: str = "c1", at: datetime = OPTED_IN_AT, status: str = "opted_in") -> Customer:
    """A customer whose email consent last changed at ``at``."""
    consent = ConsentState(status=status, at=at, source="shop", stamp=f"{at}|{status}")
    return Customer(customer_id=cid, email=f"{cid}@example.com", consent={"email": consent})


def unsubscribe(
    method: str,
    token: str,
    form: bool = False,
    customers: tuple[Customer, ...] = (opted_in(),),
) -> tuple[dict[str, Any], MemoryInbound]:
    inbound = MemoryInbound()
    store = MemoryStore()
    store.customers = {c.customer_id: c for c in customers}
    svc = UnsubscribeService([KEY], inbound, FixedClock(NOW), store)
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


def test_an_old_link_replayed_after_the_customer_opted_back_in_changes_nothing() -> None:
    # Given a link sent on day 1, the customer unsubscribed with it on day 2 and opted back
    # in on day 3 (consent changes flow through ingest; here, the stored state after them)
    issued = NOW - timedelta(days=3)
    token = sign(KEY, "c1", "email", issued + timedelta(days=90), issued_at=issued)
    back_in = opted_in(at=NOW - timedelta(days=1))
    # When the old link is used again (a replay, a mail client's retry, a forwarded mail)
    resp, inbound = unsubscribe("POST", token, form=True, customers=(back_in,))
    # Then nothing is put on the bus and the page asks for a recent link
    assert resp["statusCode"] == 409 and "recent message" in resp["body"]
    assert inbound.events == []
    # while a link sent after the opt-in still works
    fresh = sign(KEY, "c1", "email", NOW + timedelta(days=89), issued_at=NOW)
    resp, inbound = unsubscribe("POST", fresh, form=True, customers=(back_in,))
    assert resp["statusCode"] == 200 and inbound.events == [
        ("consent.changed", unsubscribed("c1", NOW))
    ]


def test_a_change_within_the_links_second_does_not_make_it_stale() -> None:
    issued = NOW - timedelta(hours=1)
    token = sign(KEY, "c1", "email", issued + timedelta(days=90), issued_at=issued)
    same_second = opted_in(at=issued + timedelta(milliseconds=600))
    resp, inbound = unsubscribe("POST", token, form=True, customers=(same_second,))
    assert resp["statusCode"] == 200 and len(inbound.events) == 1


def test_a_valid_token_for_an_unknown_customer_creates_nothing() -> None:
    # a genuine token for an id Kizuna does not hold (an erased customer's old mail)
    token = sign(KEY, "gone", "email", NOW + timedelta(days=30))
    for method in ("GET", "POST"):
        resp, inbound = unsubscribe(method, token, form=True)
        assert resp["statusCode"] == 404 and inbound.events == []


def test_an_opted_out_customer_is_told_so_and_nothing_is_put() -> None:
    token = sign(KEY, "c1", "email", NOW + timedelta(days=30))
    out = opted_in(at=NOW - timedelta(days=1), status="opted_out")
    resp, inbound = unsubscribe("POST", token, form=True, customers=(out,))
    assert resp["statusCode"] == 200 and "unsubscribed" in resp["body"]
    assert inbound.events == []


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
