"""Feedback (bounces, complaints, opens) and one-click unsubscribe, with fakes."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.delivery.ledger import settle
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


def test_permanent_bounce_suppresses_the_bounced_address_and_stamps_the_ledger() -> None:
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


def test_a_bounce_suppresses_the_address_that_bounced_not_the_current_one() -> None:
    # given a customer who changed their address after the send
    svc, store, inbound, _ = feedback()
    store.customers["c1"] = Customer(customer_id="c1", email="new-working@example.jp")
    # when the bounce of the old address arrives
    svc.process_batch(sqs_event(sqs_record(ses_event("Email Bounced", "Bounce", BOUNCE), "m1")))
    # then the old address is suppressed, and the new one is not
    ((_, detail),) = inbound.events
    assert isinstance(detail, ChannelSuppressed)
    assert detail.address_hash == address_hash("hanako@example.jp")
    assert detail.address_hash != address_hash("new-working@example.jp")


def test_suppressing_feedback_never_suppresses_every_address_nor_creates_a_customer() -> None:
    # an unknown customer (erased, never held): nothing, though its ledger entry exists
    svc, store, inbound, _ = feedback()
    del store.customers["c1"]
    svc.process_batch(sqs_event(sqs_record(ses_event("Email Bounced", "Bounce", BOUNCE), "m1")))
    assert inbound.events == []
    # a bounce naming no address: nothing (never address_hash=None, "every address")
    svc, _, inbound, _ = feedback()
    nameless = ses_event("Email Bounced", "Bounce", bounce("Permanent", "General"))
    nameless["detail"]["bounce"]["bouncedRecipients"] = []
    nameless["detail"]["mail"]["destination"] = []
    svc.process_batch(sqs_event(sqs_record(nameless, "m2")))
    assert inbound.events == []


def test_a_complaint_suppresses_a_shared_address_only_for_the_customer_it_was_sent_to() -> None:
    # c2 holds the same mailbox (docs/channels/EMAIL.md says why c2 is left alone)
    svc, store, inbound, _ = feedback()
    store.customers["c2"] = Customer(customer_id="c2", email="hanako@example.jp")
    report = {"complaint": {"complaintFeedbackType": "abuse"}}
    event = ses_event("Email Complaint Received", "Complaint", report)
    svc.process_batch(sqs_event(sqs_record(event, "m1")))
    ((_, detail),) = inbound.events
    assert isinstance(detail, ChannelSuppressed) and detail.customer_id == "c1"


def test_a_not_spam_report_neither_suppresses_nor_stamps_a_complaint() -> None:
    # the customer moved the message out of their junk folder: the opposite of a complaint
    svc, store, inbound, dlq = feedback()
    report = {"complaint": {"complaintFeedbackType": "not-spam"}}
    event = ses_event("Email Complaint Received", "Complaint", report)
    assert svc.process_batch(sqs_event(sqs_record(event, "m1"))) == {"batchItemFailures": []}
    assert inbound.events == [] and dlq.letters == []
    assert "complaint_at" not in store.messages[("c1", "MSG#ex-1#coupon")]


@pytest.mark.parametrize("feedback_type", ["auth-failure", "virus"])
def test_an_auth_failure_or_virus_report_is_counted_not_a_complaint(
    feedback_type: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # the mailbox provider reports the mail failed SPF/DKIM/DMARC, or carried a virus: not
    # the recipient pressing spam
    svc, store, inbound, dlq = feedback()
    report = {"complaint": {"complaintFeedbackType": feedback_type}}
    event = ses_event("Email Complaint Received", "Complaint", report)
    assert svc.process_batch(sqs_event(sqs_record(event, "m1"))) == {"batchItemFailures": []}
    # nothing suppressed, nothing stamped, nothing dead-lettered
    assert inbound.events == [] and dlq.letters == []
    assert "complaint_at" not in store.messages[("c1", "MSG#ex-1#coupon")]
    # but counted by type for the operator (alarmed on), and logged without the address
    assert metric_reasons(capsys.readouterr().out, "EmailProviderReport") == [feedback_type]
    (logged,) = [r for r in caplog.records if r.getMessage() == "email provider report"]
    assert (logged.reason, logged.program, logged.step) == (  # type: ignore[attr-defined]
        feedback_type,
        "second-purchase-coupon",
        "coupon",
    )
    assert "hanako" not in repr(vars(logged))


def test_feedback_for_mail_kizuna_did_not_send_is_ignored_not_dead_lettered() -> None:
    complaint = {"complaint": {"complaintFeedbackType": "abuse"}}
    # a message with no ledger entry (another sender's, tags copied or guessed)
    svc, store, inbound, dlq = feedback()
    store.customers["victim"] = Customer(customer_id="victim", email="v@example.jp")
    foreign = ses_event("Email Complaint Received", "Complaint", complaint)
    foreign["detail"]["mail"]["tags"][TAG_CUSTOMER] = ["victim"]
    foreign["detail"]["mail"]["messageId"] = "not-kizunas"
    out = svc.process_batch(sqs_event(sqs_record(foreign, "m1")))
    assert out == {"batchItemFailures": []} and inbound.events == [] and dlq.letters == []
    # an entry that holds another message id (the send's own) for the same tags
    store.messages[("c1", "MSG#ex-1#coupon")]["provider_message_id"] = "m-sent"
    other = ses_event("Email Complaint Received", "Complaint", complaint)
    other["detail"]["mail"]["messageId"] = "m-other"
    svc.process_batch(sqs_event(sqs_record(other, "m2")))
    assert inbound.events == [] and "complaint_at" not in store.messages[("c1", "MSG#ex-1#coupon")]
    # untagged mail (no execution or step: no ledger entry to check)
    untagged = ses_event("Email Complaint Received", "Complaint", complaint)
    del untagged["detail"]["mail"]["tags"][TAG_EXECUTION]
    svc.process_batch(sqs_event(sqs_record(untagged, "m3")))
    assert inbound.events == [] and dlq.letters == []
    # while the same complaint with the entry's message id suppresses
    other["detail"]["mail"]["messageId"] = "m-sent"
    svc.process_batch(sqs_event(sqs_record(other, "m4")))
    assert [k for k, _ in inbound.events] == ["channel.suppressed"]
    assert "complaint_at" in store.messages[("c1", "MSG#ex-1#coupon")]


def test_bad_ses_input_goes_to_the_dead_letters_at_once() -> None:
    svc, _, inbound, dlq = feedback()
    bad_tag = ses_event("Email Bounced", "Bounce", BOUNCE)
    bad_tag["detail"]["mail"]["tags"][TAG_CUSTOMER] = ["bad_2Fid_23x"]  # "bad/id#x"
    records = [sqs_record(bad_tag, "m1"), sqs_record("123", "m2"), sqs_record("null", "m3")]
    # first receive: nothing retried, every one kept with its reason
    assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    assert [d.error_type for d in dlq.letters] == ["FeedbackError"] * 3
    assert "mail.tags.customer" in dlq.letters[0].reason
    assert all("not an SES event" in d.reason for d in dlq.letters[1:])
    assert inbound.events == []


REJECT = {"reject": {"reason": "Bad content"}}
RENDERING_FAILURE = {
    "failure": {
        "errorMessage": "Attribute 'coupon' is not present in the rendering data: hanako@example.jp",
        "templateName": "coupon",
    }
}
ENTRY = ("c1", "MSG#ex-1#coupon")


def metric_reasons(out: str, name: str = "EmailNotDelivered") -> list[str]:
    """The ``reason`` of each ``name`` metric printed (EMF, one JSON object a line)."""
    lines = (json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"'))
    return [str(m["reason"]) for m in lines if name in m]


def test_a_rejected_message_is_recorded_as_not_delivered_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a message sent (SES returned its id), then rejected by SES (a virus)
    svc, store, inbound, dlq = feedback()
    store.messages[ENTRY]["provider_message_id"] = "m-1"
    rejected = ses_event("Email Rejected", "Reject", REJECT)
    out = svc.process_batch(sqs_event(sqs_record(rejected, "r1")))
    # then its entry says when and why it was not delivered; the outcome stays sent (SES
    # took it: never sent again), the address is not suppressed
    assert out == {"batchItemFailures": []} and dlq.letters == [] and inbound.events == []
    entry = store.messages[ENTRY]
    assert entry["reject_at"] == "2026-01-05T02:59:00.000000Z"  # the mail's time
    assert entry["not_delivered_reason"] == "rejected: Bad content"
    assert (entry["status"], entry["provider_message_id"]) == ("sent", "m-1")
    # and it is counted, by kind
    assert metric_reasons(capsys.readouterr().out) == ["reject"]
    # when the same event comes again (SQS, EventBridge deliver at least once)
    before = dict(entry)
    svc.process_batch(sqs_event(sqs_record(rejected, "r2")))
    # then nothing changes and nothing more is counted
    assert store.messages[ENTRY] == before
    assert metric_reasons(capsys.readouterr().out) == []


def test_a_rendering_failure_is_not_delivered_and_never_quotes_the_error() -> None:
    svc, store, inbound, _ = feedback()
    failed = ses_event("Email Rendering Failed", "Rendering Failure", RENDERING_FAILURE)
    svc.process_batch(sqs_event(sqs_record(failed, "f1")))
    entry = store.messages[ENTRY]
    assert entry["rendering_failure_at"] == "2026-01-05T02:59:00.000000Z"
    assert entry["not_delivered_reason"] == "rendering failure"
    assert entry["provider_message_id"] == "m-1"  # the entry had none: SES's is stamped
    assert "hanako" not in repr(entry) and "rendering data" not in repr(entry)
    assert inbound.events == []


def test_a_reject_kizuna_did_not_send_is_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    svc, store, _, dlq = feedback()
    store.messages[ENTRY]["provider_message_id"] = "m-sent"
    before = dict(store.messages[ENTRY])
    # another message id for the entry's tags
    other = ses_event("Email Rejected", "Reject", REJECT)
    # untagged (no execution: no ledger entry to check)
    untagged = ses_event("Email Rejected", "Reject", REJECT)
    del untagged["detail"]["mail"]["tags"][TAG_EXECUTION]
    # no ledger entry for the step the tags name
    elsewhere = ses_event("Email Rendering Failed", "Rendering Failure", RENDERING_FAILURE)
    elsewhere["detail"]["mail"]["tags"][TAG_STEP] = ["other-step"]
    records = [sqs_record(e, f"m{i}") for i, e in enumerate((other, untagged, elsewhere))]
    assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    assert store.messages[ENTRY] == before and dlq.letters == []
    printed = capsys.readouterr().out
    assert metric_reasons(printed) == []
    assert metric_reasons(printed, "FeedbackIgnored") == [
        "other_message",
        "untagged",
        "no_ledger_entry",
    ]


def test_a_reject_of_an_entry_left_sending_settles_it_sent_and_not_delivered() -> None:
    # given a send whose outcome was never recorded (the function died after SES took it)
    svc, store, _, _ = feedback()
    store.record_message(
        "c1", "ex-1", "coupon", {"status": "sending", "dispatched_at": "2026-01-05T02:58:59Z"}
    )
    # when SES's reject arrives
    svc.process_batch(sqs_event(sqs_record(ses_event("Email Rejected", "Reject", REJECT), "r1")))
    # then the sweep settles it from SES's evidence (never sent again), and the entry keeps
    # why it was not delivered
    entry = store.messages[ENTRY]
    assert settle(entry) == ("sent", "reconciled")
    assert entry["not_delivered_reason"] == "rejected: Bad content"


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


def consented(*changes: tuple[timedelta, str]) -> Customer:
    """Customer c1 after these email consent changes (days before NOW, status), folded by
    ingest in the order given."""
    from kizuna.domain.ingest import apply_events
    from kizuna.runtime.config import KizunaConfig
    from tests.factories import envelope, parsed

    customer = Customer(customer_id="c1", email="c1@example.com")
    for i, (ago, status) in enumerate(changes):
        detail = {"customer_id": "c1", "occurred_at": (NOW - ago).isoformat()}
        detail |= {"channel": "email", "status": status}
        raw = envelope("consent.changed", detail, f"e{i}")
        customer = apply_events(customer, [parsed(raw)], KizunaConfig(), NOW).customer
    return customer


def test_an_old_link_replayed_after_the_customer_opted_back_in_changes_nothing() -> None:
    # Given a link sent on day 1, the customer unsubscribed with it on day 2 and opted back
    # in on day 3 (consent changes flow through ingest)
    issued = NOW - timedelta(days=3)
    token = sign(KEY, "c1", "email", issued + timedelta(days=90), issued_at=issued)
    back_in = consented(
        (timedelta(days=100), "opted_in"),
        (timedelta(days=2), "opted_out"),
        (timedelta(days=1), "opted_in"),
    )
    # When the old link is used again (a replay, a mail client's retry, a forwarded mail)
    resp, inbound = unsubscribe("POST", token, form=True, customers=(back_in,))
    # Then nothing is put on the bus and the page asks for a recent link
    assert resp["statusCode"] == 409 and "recent message" in resp["body"]
    assert inbound.events == []
    # whatever order ingest saw the changes in
    shuffled = consented(
        (timedelta(days=1), "opted_in"),
        (timedelta(days=2), "opted_out"),
        (timedelta(days=100), "opted_in"),
    )
    resp, _ = unsubscribe("POST", token, form=True, customers=(shuffled,))
    assert resp["statusCode"] == 409
    # while a link sent after the opt-in still works
    fresh = sign(KEY, "c1", "email", NOW + timedelta(days=89), issued_at=NOW)
    resp, inbound = unsubscribe("POST", fresh, form=True, customers=(back_in,))
    assert resp["statusCode"] == 200 and inbound.events == [
        ("consent.changed", unsubscribed("c1", NOW))
    ]


def test_a_repeated_opt_in_after_the_link_does_not_make_it_stale() -> None:
    # Given a link sent 10 days ago, and opted_in re-sent by a CRM sync a day ago (and an
    # opt-out long before the link)
    issued = NOW - timedelta(days=10)
    token = sign(KEY, "c1", "email", NOW + timedelta(days=80), issued_at=issued)
    synced = consented(
        (timedelta(days=200), "opted_out"),
        (timedelta(days=100), "opted_in"),
        (timedelta(days=1), "opted_in"),
    )
    # When the recipient's mail client sends the one-click POST
    resp, inbound = unsubscribe("POST", token, form=True, customers=(synced,))
    # Then the unsubscribe is honoured
    assert resp["statusCode"] == 200
    assert inbound.events == [("consent.changed", unsubscribed("c1", NOW))]


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
