"""Delivery feedback -> actions, from realistic event fixtures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from delivery_helpers import load_fixture

from kizuna.delivery.channels import InvalidAddressInfo
from kizuna.delivery.feedback import (
    NOT_DELIVERED,
    FeedbackAction,
    FeedbackError,
    invalid_token_actions,
    parse_invalid_token,
    parse_ses_event,
    parse_sms_opt_out,
    sms_opt_out_records,
    suppression,
)
from kizuna.delivery.policy import address_hash
from kizuna.delivery.tags import encode_tag_value
from kizuna.events import Channel, ConsentChannel
from tests.factories import sms_opted_out

MESSAGE_ID = "010001942a5c7f1e-5d1b2c3a-9f8e-4d7c-b6a5-1234567890ab-000000"


def ses(name: str) -> FeedbackAction:
    action = parse_ses_event(load_fixture(name))
    assert action is not None
    return action


def test_permanent_bounce_suppresses_email_and_names_the_message() -> None:
    action = ses("ses_bounce_permanent.json")
    assert action == FeedbackAction(
        customer_id="cust_0001.jp",  # decoded from the escaped tag
        channel=Channel.EMAIL,
        program="points-nudge",
        step="send-1",
        execution="points-nudge-cust_0001.jp-20260105",
        kind="bounce",
        suppress=True,
        reason="permanent bounce: General (5.1.1)",
        message_id=MESSAGE_ID,
        occurred_at=datetime(2026, 1, 5, 1, 0, 4, 900000, tzinfo=UTC),
        address_hashes=(address_hash("hanako@example.jp"),),  # the address that bounced
        event_id="6e4f1c1a-0000-4000-8000-000000000001",
    )
    # the SMTP diagnostic quotes the address: it never reaches the reason
    assert "example.jp" not in action.reason
    assert "example.jp" not in action.model_dump_json()  # hashed, never in clear


def test_transient_bounce_does_not_suppress() -> None:
    action = ses("ses_bounce_transient.json")
    assert (action.kind, action.suppress) == ("bounce", False)
    assert action.reason == "transient bounce: MailboxFull (4.2.2)"


def test_complaint_suppresses_email() -> None:
    action = ses("ses_complaint.json")
    assert (action.kind, action.suppress, action.reason) == ("complaint", True, "complaint: abuse")
    assert action.occurred_at == datetime(2026, 1, 5, 3, 12, tzinfo=UTC)
    assert action.address_hashes == (address_hash("hanako@example.jp"),)


@pytest.mark.parametrize("feedback_type", ["not-spam", "Not-Spam", " not-spam "])
def test_a_not_spam_report_is_no_complaint(feedback_type: str) -> None:
    # RFC 5965's Feedback-Type not-spam: the recipient says the message is wanted
    event = load_fixture("ses_complaint.json")
    event["detail"]["complaint"]["complaintFeedbackType"] = feedback_type
    assert parse_ses_event(event) is None
    # every other type is a complaint, and suppresses
    for other in ("abuse", "fraud", "other", None):
        event["detail"]["complaint"]["complaintFeedbackType"] = other
        assert ses_action(event).suppress, other


@pytest.mark.parametrize("feedback_type", ["auth-failure", "virus", "Auth-Failure", " VIRUS "])
def test_a_providers_auth_failure_or_virus_report_is_no_complaint(feedback_type: str) -> None:
    # RFC 6591's auth-failure (SPF/DKIM/DMARC failed at the provider) and RFC 5965's virus:
    # the provider's finding about the mail, not the recipient's wish
    event = load_fixture("ses_complaint.json")
    event["detail"]["complaint"]["complaintFeedbackType"] = feedback_type
    action = ses_action(event)
    assert (action.kind, action.suppress) == ("provider_report", False)
    assert action.reason == feedback_type.strip().lower()  # SES's token, never an address
    assert action.address_hashes == ()
    assert action.message_id and action.program  # which mail, for the operator


def test_suppressing_feedback_names_the_addresses_ses_names() -> None:
    # the recipients SES names, normalised as the send-time suppression check hashes them
    event = load_fixture("ses_bounce_permanent.json")
    event["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = " Old@Example.JP "
    assert ses_action(event).address_hashes == (address_hash("old@example.jp"),)
    # no recipients named: the message's destination ("Name <address>" or bare)
    event["detail"]["bounce"]["bouncedRecipients"] = [{"status": "5.1.1"}]
    event["detail"]["mail"]["destination"] = ['"Hanako" <hanako@example.jp>']
    assert ses_action(event).address_hashes == (address_hash("hanako@example.jp"),)
    # nothing named at all: no address (the service then suppresses nothing)
    event["detail"]["mail"]["destination"] = []
    assert ses_action(event).address_hashes == ()
    # a transient bounce names none: it suppresses nothing
    assert ses("ses_bounce_transient.json").address_hashes == ()
    complaint = load_fixture("ses_complaint.json")
    complaint["detail"]["complaint"]["complainedRecipients"] = [{"emailAddress": "a@b.jp"}]
    assert ses_action(complaint).address_hashes == (address_hash("a@b.jp"),)


def ses_action(event: dict[str, Any]) -> FeedbackAction:
    action = parse_ses_event(event)
    assert action is not None
    return action


@pytest.mark.parametrize(
    ("fixture", "kind", "reason"),
    [
        ("ses_delivery.json", "delivery", "delivered"),
        ("ses_open.json", "open", "opened"),
        # the query (ids, tokens) is dropped from a clicked link
        ("ses_click.json", "click", "clicked shop.example/products/matcha"),
    ],
)
def test_engagement_events_do_not_suppress(fixture: str, kind: str, reason: str) -> None:
    action = ses(fixture)
    assert (action.kind, action.suppress, action.reason) == (kind, False, reason)
    assert action.customer_id == "cust_0001.jp" and action.channel is ConsentChannel.EMAIL


def test_bare_ses_record_as_sns_or_firehose_carry_it() -> None:
    record = load_fixture("ses_bounce_permanent.json")["detail"]
    action = parse_ses_event(record)
    assert action is not None and action.kind == "bounce" and action.event_id is None


def test_untagged_message_has_no_customer_but_keeps_the_message_id() -> None:
    action = ses("ses_bounce_untagged.json")
    assert action.customer_id is None and action.program is None
    assert action.message_id == MESSAGE_ID and action.suppress
    assert action.reason == "permanent bounce: Suppressed (5.1.1)"


def test_events_kizuna_does_not_act_on_are_ignored() -> None:
    assert parse_ses_event(load_fixture("ses_send.json")) is None
    delayed = load_fixture("ses_send.json")
    delayed["detail-type"] = "Email Delivery Delayed"
    delayed["detail"]["eventType"] = "DeliveryDelay"
    assert parse_ses_event(delayed) is None
    assert parse_ses_event(delayed["detail"]) is None


def test_a_reject_says_the_message_was_not_delivered_and_suppresses_nothing() -> None:
    # given SES took the API call, then found a virus in the message
    action = ses("ses_reject.json")
    # then the message is named, as accepted and not delivered; the address is not at fault
    assert action == FeedbackAction(
        customer_id="cust_0001.jp",
        channel=Channel.EMAIL,
        program="points-nudge",
        step="send-1",
        execution="points-nudge-cust_0001.jp-20260105",
        kind="reject",
        suppress=False,
        reason="rejected: Bad content",  # SES's fixed phrase
        message_id=MESSAGE_ID,
        occurred_at=datetime(2026, 1, 5, 1, 0, 2, 12000, tzinfo=UTC),  # a reject has no time
        event_id="6e4f1c1a-0000-4000-8000-000000000008",
    )
    assert action.kind in NOT_DELIVERED
    # and the bare record (SNS, Firehose) says the same
    bare = parse_ses_event(load_fixture("ses_reject.json")["detail"])
    assert bare == action.model_copy(update={"event_id": None})


def test_a_rendering_failure_never_quotes_the_error_message() -> None:
    # given SES could not render a template, its error quoting the template data
    event = load_fixture("ses_rendering_failure.json")
    assert "hanako@example.jp" in event["detail"]["failure"]["errorMessage"]
    action = ses_action(event)
    # then a fixed reason: nothing of the error message, nor of the template data
    assert (action.kind, action.suppress) == ("rendering_failure", False)
    assert action.reason == "rendering failure" and action.kind in NOT_DELIVERED
    assert action.customer_id == "cust_0001.jp" and action.message_id == MESSAGE_ID
    assert action.address_hashes == ()
    dumped = action.model_dump_json()
    for quoted in ("hanako", "山田", "花子", "coupon", "not present", "points-nudge-send-1"):
        assert quoted not in dumped
    # and the bare record says the same
    bare = parse_ses_event(event["detail"])
    assert bare is not None and (bare.kind, bare.reason) == ("rendering_failure", action.reason)


@pytest.mark.parametrize(
    ("said", "reason"),
    [
        ("Bad content", "rejected: Bad content"),
        ("  Bad content ", "rejected: Bad content"),
        ("Bad content: hanako@example.jp", "rejected"),  # not a fixed phrase: not kept
        ("Virus found in 'Coupon for Yamada Hanako.pdf'", "rejected"),
        ("x" * 49, "rejected"),  # a phrase, not a paragraph
    ],
)
def test_a_reject_keeps_sess_reason_only_when_it_is_a_short_plain_phrase(
    said: str, reason: str
) -> None:
    event = load_fixture("ses_reject.json")
    event["detail"]["reject"]["reason"] = said
    assert ses_action(event).reason == reason


@pytest.mark.parametrize(
    ("fixture", "mutate", "message"),
    [
        ("ses_reject.json", lambda d: d.pop("reject"), "Reject event without reject"),
        ("ses_reject.json", lambda d: d.update(reject={}), r"malformed SES event: reject\.reason"),
        (
            "ses_reject.json",
            lambda d: d.update(reject={"reason": ""}),
            r"malformed SES event: reject\.reason",
        ),
        (
            "ses_reject.json",
            lambda d: d.update(reject="Bad content"),
            "malformed SES event: reject",
        ),
        (
            "ses_rendering_failure.json",
            lambda d: d.pop("failure"),
            "Rendering Failure event without failure",
        ),
    ],
)
def test_a_malformed_reject_or_rendering_failure_raises(
    fixture: str, mutate: Any, message: str
) -> None:
    event = load_fixture(fixture)
    mutate(event["detail"])
    with pytest.raises(FeedbackError, match=message):
        parse_ses_event(event)
    with pytest.raises(FeedbackError, match=message):  # the bare record too
        parse_ses_event(event["detail"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(source="com.example.shop"), "not an SES event"),
        (lambda e: e.pop("source"), "not an EventBridge event"),
        (lambda e: e["detail"].pop("mail"), "malformed SES event: mail"),
        (
            lambda e: e["detail"]["bounce"].update(bounceType="Soft"),
            "malformed SES event: bounce.bounceType",
        ),
        (lambda e: e["detail"].pop("bounce"), "Bounce event without bounce"),
        (lambda e: e["detail"].pop("eventType"), "malformed SES event: eventType"),
    ],
)
def test_malformed_events_raise(mutate: Any, message: str) -> None:
    event = load_fixture("ses_bounce_permanent.json")
    mutate(event)
    with pytest.raises(FeedbackError, match=message):
        parse_ses_event(event)


@pytest.mark.parametrize(
    "customer_tag",
    [
        "bad_2Fid_23x",  # decodes to "bad/id#x": no customer id Kizuna writes
        "_FF_FE",  # not UTF-8
        "_2Dleading-dash",
    ],
)
def test_a_customer_tag_that_is_no_customer_id_is_malformed(customer_tag: str) -> None:
    event = load_fixture("ses_bounce_permanent.json")
    event["detail"]["mail"]["tags"]["customer"] = [customer_tag]
    with pytest.raises(FeedbackError, match=r"malformed SES event: mail\.tags\.customer"):
        parse_ses_event(event)


def test_a_bounce_for_a_customer_id_too_long_to_escape_names_the_customer() -> None:
    # the send carried it in base64 (tags.py): the bounce is acted on, not "untagged"
    customer_id = "a" + ".:@" * 42 + "z"
    event = load_fixture("ses_bounce_permanent.json")
    event["detail"]["mail"]["tags"]["customer"] = [encode_tag_value(customer_id)]
    assert ses_action(event).customer_id == customer_id


@pytest.mark.parametrize("body", [123, None, "text", [1, 2], True])
def test_a_json_body_that_is_not_an_object_is_malformed(body: Any) -> None:
    with pytest.raises(FeedbackError, match="not an SES event"):
        parse_ses_event(body)


def test_sms_opt_out() -> None:
    action = parse_sms_opt_out(load_fixture("sms_opt_out.json"))
    assert action == FeedbackAction(
        customer_id="cust-0001",
        channel=Channel.SMS,
        kind="opt_out",
        suppress=True,
        reason="opted out by SMS reply (STOP)",
        occurred_at=datetime(2026, 1, 6, tzinfo=UTC),
    )
    with pytest.raises(FeedbackError, match="phone_number"):
        parse_sms_opt_out({"phone_number": "090-1234-5678", "customer_id": "c"})


def test_sms_sweep_keeps_known_customers_only() -> None:
    at = datetime(2026, 1, 6, tzinfo=UTC)
    records = sms_opt_out_records(
        ["+819012345678", "+819099999999"], {"+819012345678": "cust-0001"}, at
    )
    assert [parse_sms_opt_out(r).customer_id for r in records] == ["cust-0001"]


def test_invalid_push_token() -> None:
    action = parse_invalid_token(load_fixture("push_invalid_token.json"))
    assert (action.kind, action.channel, action.suppress) == ("invalid_token", Channel.PUSH, False)
    assert (action.customer_id, action.address_key) == ("cust-0001", "ios-1")
    assert action.program == "points-nudge" and action.reason == "PERMANENT_FAILURE 410"
    with pytest.raises(FeedbackError, match="device_key"):
        parse_invalid_token({"customer_id": "c"})


def test_invalid_tokens_from_a_send_result() -> None:
    actions = invalid_token_actions(
        "cust-0001",
        [
            InvalidAddressInfo(key="ios-1", reason="410"),
            InvalidAddressInfo(key="android-1", reason="404"),
        ],
        program="p",
        step="s",
        execution="e",
    )
    assert [(a.address_key, a.reason, a.execution) for a in actions] == [
        ("ios-1", "410", "e"),
        ("android-1", "404", "e"),
    ]


def test_a_suppression_is_a_typed_event_with_the_address_hashed() -> None:
    # given feedback that stops SMS for a number (when its event is built)
    at = datetime(2026, 1, 6, tzinfo=UTC)
    event = suppression("cust-0001", at, "sms", "opt_out", "+819012345678")
    # then it is the inbound model ingest validates, and the number is never in clear
    assert event == sms_opted_out("cust-0001", at, "+819012345678")
    assert "9012345678" not in event.model_dump_json()
    # and without an address the whole channel is suppressed
    assert suppression("c", at, Channel.EMAIL, "bounce", None).address_hash is None
