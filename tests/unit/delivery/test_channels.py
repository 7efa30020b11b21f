"""Channel adapters without AWS: botocore Stubber for SES/SNS/push, a fake HTTP for LINE."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from email.message import EmailMessage
from html import escape as html_escape
from io import BytesIO
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from delivery_helpers import T0, make_customer
from hypothesis import given
from hypothesis import strategies as st

from kizuna.delivery import channels
from kizuna.delivery.channels import (
    HttpResponse,
    InvalidAddress,
    InvalidAddressInfo,
    LinePush,
    OutboundMessage,
    PermanentFailure,
    PinpointPush,
    PushTarget,
    SendResult,
    SesEmail,
    SnsSms,
    TemporaryFailure,
    Throttled,
    UrllibHttp,
    address_for,
    classify_client_error,
    line_retry_key,
    line_token_from,
    push_batches,
    push_targets,
    report_dead_devices,
    send_all,
    send_many_with_retry,
    send_with_retry,
)
from kizuna.delivery.content import EmailContent, LineContent, PushContent, SmsContent
from kizuna.delivery.links import HtmlLink, html_links
from kizuna.delivery.tags import decode_tag_value, encode_tag_value
from kizuna.delivery.unsubscribe import UnsubscribeLinks, verify
from kizuna.events.inbound import CUSTOMER_ID_PATTERN

SECRET = b"unsubscribe-secret-for-tests-000"
LINE_TOKEN = "line-channel-access-token-SECRET-42"
EMAIL = EmailContent(subject="山田 花子様へのお知らせ", html="<p>こんにちは</p>", text="こんにちは")


def aws(service: str) -> Any:
    return boto3.client(
        service,
        region_name="ap-northeast-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def message(channel: str = "email", **fields: Any) -> OutboundMessage:
    defaults: tuple[Any, Any] = {
        "email": ("hanako@example.jp", EMAIL),
        "sms": ("+819012345678", SmsContent.of("あと80ポイントでGold会員です")),
        "push": (
            (
                PushTarget(key="ios-1", token="apns-token-1", platform="APNS"),
                PushTarget(key="android-1", token="fcm-token-1", platform="FCM"),
            ),
            PushContent(title="あと80ポイント", body="Gold会員まであと少し"),
        ),
        "line": ("U" + "0" * 32, LineContent(text="こんにちは")),
    }[channel]
    base: dict[str, Any] = {
        "customer_id": "cust_0001",
        "program": "points-nudge",
        "step": "send-1",
        "execution": "points-nudge-cust_0001-20260105",
        "channel": channel,
        "address": defaults[0],
        "content": defaults[1],
    }
    base.update(fields)
    return OutboundMessage(**base)


def client_error(code: str, status: int = 400, operation: str = "SendEmail") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


# --- the message -----------------------------------------------------------------------------
def test_outbound_message_checks_channel_content_and_address() -> None:
    assert message("push").idempotency_key == "points-nudge-cust_0001-20260105/send-1"
    with pytest.raises(ValueError, match="sms content on the email channel"):
        message("email", content=SmsContent.of("hi"))
    with pytest.raises(ValueError, match="push needs at least one device"):
        message("push", address=())
    with pytest.raises(ValueError, match="email needs a single address"):
        message("email", address=(PushTarget(key="k", token="t", platform="APNS"),))
    # the message's own tags cannot override Kizuna's
    tagged = message(tags={"customer": "someone-else", "campaign": "spring"})
    assert tagged.kizuna_tags()["customer"] == "cust_0001"
    assert tagged.kizuna_tags()["campaign"] == "spring"


def test_addresses_from_the_customer() -> None:
    customer = make_customer(
        devices={
            "old": {"token": "t-old", "platform": "FCM", "at": T0},
            "new": {"token": "t-new", "platform": "APNS", "at": T0 + timedelta(days=1)},
        }
    )
    assert [t.key for t in push_targets(customer)] == ["new", "old"]
    assert address_for(customer, "email") == "hanako@example.jp"
    assert address_for(customer, "sms") == "+819012345678"
    assert address_for(customer, "line") == "U" + "0" * 32
    assert address_for(make_customer(phone="090-1234-5678"), "sms") is None
    assert address_for(make_customer(devices={}), "push") is None
    with pytest.raises(ValueError):
        address_for(customer, "fax")


# --- retry -----------------------------------------------------------------------------------
class Scripted:
    """A channel that plays back outcomes: an exception to raise or a result to return."""

    def __init__(self, *outcomes: Exception | SendResult) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


OK = SendResult(provider_message_id="m-1")


def test_retries_throttling_with_exponential_backoff() -> None:
    sleeps: list[float] = []
    channel = Scripted(Throttled(), client_error("ThrottlingException", 400), OK)
    result = send_with_retry(channel, message(), sleep=sleeps.append, jitter=lambda: 1.0)
    assert result.provider_message_id == "m-1" and result.attempts == 3
    assert sleeps == [0.2, 0.4]


def test_jitter_scales_each_delay_between_half_and_full() -> None:
    sleeps: list[float] = []
    channel = Scripted(TemporaryFailure("x"), TemporaryFailure("x"), OK)
    send_with_retry(channel, message(), sleep=sleeps.append, jitter=lambda: 0.0)
    assert sleeps == [0.1, 0.2]


@pytest.mark.parametrize(
    "code",
    [
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailable",
    ],
)
def test_retryable_client_error_codes(code: str) -> None:
    sleeps: list[float] = []
    channel = Scripted(client_error(code, 400), OK)
    assert send_with_retry(channel, message(), sleep=sleeps.append).attempts == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(("code", "status"), [("InternalFailure", 500), ("Unknown", 502)])
def test_an_internal_error_after_the_request_arrived_is_not_sent_again(
    code: str, status: int
) -> None:
    # the provider may have taken the message (SES and the push API take no idempotency
    # key): sending again could deliver it twice, so the send fails as "outcome unknown"
    channel = Scripted(client_error(code, status), OK)
    with pytest.raises(TemporaryFailure) as caught:
        send_with_retry(channel, message(), sleep=lambda _: None)
    assert channel.calls == 1 and caught.value.maybe_sent
    assert "outcome unknown" in caught.value.reason


def test_gives_up_after_attempts_and_raises_the_last_error() -> None:
    sleeps: list[float] = []
    channel = Scripted(*(client_error("ServiceUnavailable", 503) for _ in range(4)))
    with pytest.raises(TemporaryFailure) as caught:
        send_with_retry(channel, message(), attempts=4, sleep=sleeps.append, jitter=lambda: 1.0)
    assert channel.calls == 4 and sleeps == [0.2, 0.4, 0.8]
    assert isinstance(caught.value.__cause__, ClientError)
    assert caught.value.reason == "SendEmail: ServiceUnavailable"


def test_delay_is_capped_and_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    channel = Scripted(Throttled(retry_after=3), TemporaryFailure("x"), TemporaryFailure("x"), OK)
    send_with_retry(
        channel, message(), base_delay=2, max_delay=3.5, sleep=sleeps.append, jitter=lambda: 1.0
    )
    assert sleeps == [3, 3.5, 3.5]


@pytest.mark.parametrize(
    "error",
    [
        PermanentFailure("MessageRejected"),
        InvalidAddress("email", "not an email address"),
        client_error("AccessDeniedException", 403),
        TemporaryFailure("no answer", maybe_sent=True),
    ],
)
def test_permanent_and_ambiguous_failures_are_not_retried(error: Exception) -> None:
    sleeps: list[float] = []
    channel = Scripted(error, OK)
    with pytest.raises((PermanentFailure, TemporaryFailure)):
        send_with_retry(channel, message(), sleep=sleeps.append)
    assert channel.calls == 1 and sleeps == []


def test_classify_client_error() -> None:
    assert isinstance(classify_client_error(client_error("Whatever", 429)), Throttled)
    assert isinstance(classify_client_error(client_error("Whatever", 502)), TemporaryFailure)
    assert isinstance(classify_client_error(client_error("LimitExceededException")), Throttled)
    permanent = classify_client_error(client_error("MessageRejected"))
    assert type(permanent) is PermanentFailure and permanent.reason == "SendEmail: MessageRejected"


# --- SES -------------------------------------------------------------------------------------
def links() -> UnsubscribeLinks:
    return UnsubscribeLinks("https://unsub.example.com/u", SECRET, now=lambda: T0)


def test_ses_simple_send_has_configuration_set_tags_and_one_click_headers() -> None:
    client = aws("sesv2")
    adapter = SesEmail(client, "Kizuna Shop <news@shop.example>", "kizuna-email", links())
    url = links().url("cust_0001", "email")
    expected = {
        "FromEmailAddress": "Kizuna Shop <news@shop.example>",
        "Destination": {"ToAddresses": ["hanako@example.jp"]},
        "ConfigurationSetName": "kizuna-email",
        "EmailTags": [
            {"Name": "program", "Value": "points-nudge"},
            {"Name": "step", "Value": "send-1"},
            {"Name": "customer", "Value": "cust__0001"},
            {"Name": "execution", "Value": "points-nudge-cust__0001-20260105"},
        ],
        "Content": {
            "Simple": {
                "Subject": {"Data": EMAIL.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": EMAIL.text, "Charset": "UTF-8"},
                    "Html": {"Data": EMAIL.html, "Charset": "UTF-8"},
                },
                "Headers": [
                    {"Name": "List-Unsubscribe", "Value": f"<{url}>"},
                    {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                ],
            }
        },
    }
    with Stubber(client) as stub:
        stub.add_response("send_email", {"MessageId": "ses-1"}, expected)
        result = adapter.send(message())
        stub.assert_no_pending_responses()
    assert result == SendResult(provider_message_id="ses-1")
    token = url.split("t=", 1)[1]
    assert verify(SECRET, token, T0).customer_id == "cust_0001"


def test_ses_raw_mime_carries_headers_and_japanese_subject() -> None:
    client = aws("sesv2")
    adapter = SesEmail(
        client, "Kizuna Shop <news@shop.example>", "kizuna-email", links(), raw_mime=True
    )
    sent: dict[str, Any] = {}
    with Stubber(client) as stub:
        stub.add_response(
            "send_email",
            {"MessageId": "ses-2"},
            {
                "FromEmailAddress": ANY,
                "Destination": ANY,
                "ConfigurationSetName": "kizuna-email",
                "EmailTags": ANY,
                "Content": ANY,
            },
        )
        client.meta.events.register(
            "provide-client-params.sesv2.SendEmail", lambda params, **_: sent.update(params)
        )
        adapter.send(message())
    raw = sent["Content"]["Raw"]["Data"]
    assert raw.isascii()  # 7-bit clean: encoded words and base64 bodies
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == EMAIL.subject
    # long enough to be folded onto a continuation line, which unfolds to the same value
    assert str(parsed["List-Unsubscribe"]).strip().startswith("<https://unsub.example.com/u?t=")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text.strip() == EMAIL.text and html.strip() == EMAIL.html


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("TooManyRequestsException", 429, Throttled),
        ("MessageRejected", 400, PermanentFailure),
        ("InternalFailure", 500, TemporaryFailure),
    ],
)
def test_ses_errors_are_classified(code: str, status: int, error: type[Exception]) -> None:
    client = aws("sesv2")
    adapter = SesEmail(client, "news@shop.example", "kizuna-email", links())
    with Stubber(client) as stub:
        stub.add_client_error("send_email", service_error_code=code, http_status_code=status)
        with pytest.raises(error):
            adapter.send(message())


def test_ses_rejects_an_address_that_is_not_one() -> None:
    adapter = SesEmail(aws("sesv2"), "news@shop.example", "kizuna-email", links())
    with pytest.raises(InvalidAddress) as caught:
        adapter.send(message(address="hanako@example.jp\r\nBcc: x@y"))
    assert caught.value.address_key == "email"


def test_ses_ambiguous_timeout_is_not_retried() -> None:
    client = aws("sesv2")
    adapter = SesEmail(client, "news@shop.example", "kizuna-email", links())

    def timeout(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://email.ap-northeast-1.amazonaws.com")

    client.meta.events.register("before-call.sesv2.SendEmail", timeout)
    with pytest.raises(TemporaryFailure) as caught:
        send_with_retry(adapter, message(), sleep=lambda _: None)
    assert caught.value.maybe_sent


def sent_email(html: str) -> SendResult:
    """The result of sending an email whose HTML part is ``html`` and the footer the base
    template gives it: the customer's unsubscribe link, written ``ses:no-track``."""
    client = aws("sesv2")
    adapter = SesEmail(client, "news@shop.example", "kizuna-email", links())
    unsubscribe = html_escape(links().url("cust_0001", "email", topic="news"))
    footer = f'<a ses:no-track href="{unsubscribe}">配信停止はこちら</a>'
    content = EmailContent(subject="お知らせ", html=f"{html}\n{footer}", text="お知らせ")
    with Stubber(client) as stub:
        stub.add_response("send_email", {"MessageId": "ses-1"}, ANY_SEND_EMAIL)
        return adapter.send(message(content=content))


ANY_SEND_EMAIL = {
    "FromEmailAddress": ANY,
    "Destination": ANY,
    "ConfigurationSetName": ANY,
    "EmailTags": ANY,
    "Content": ANY,
}


@pytest.mark.parametrize(
    ("html", "untracked"),
    [
        # only links SES's click tracking leaves alone: a customer who tapped the shop's
        # phone number was recorded "not engaged" and counted a non-click by a click winner
        ('<a href="tel:0312345678">お電話</a>', True),
        ('<a href="mailto:info@shop.example?subject=%E8%B3%AA%E5%95%8F">メール</a>', True),
        ('<a href="sms:+819012345678">SMS</a> <a href="line://ti/p/@shop">LINE</a>', True),
        ('<A HREF=" TEL:03-1234-5678 ">03-1234-5678</A>', True),
        # a web link the email asks SES not to track
        ('<a ses:no-track href="https://shop.example/contact">お問い合わせ</a>', True),
        # one web link SES tracks is enough
        ('<a href="tel:0312345678">お電話</a> <a href="https://shop.example/">店舗</a>', False),
        ('<a class="b" href="HTTP://shop.example/sale?a=1&amp;b=2">SALE</a>', False),
        # nothing to click but the footer: measured (no click is a fact)
        ("<p>ご来店ありがとうございました。</p>", False),
        ('<a name="top"></a><a href="#top">上へ</a><a href=" ">x</a>', False),
        ('<img src="https://shop.example/a.png" alt="">', False),
    ],
)
def test_an_email_whose_links_ses_does_not_track_says_so(html: str, untracked: bool) -> None:
    """``links_untracked``, as for LINE: the HTML part has links (the unsubscribe link
    aside) and none is a web link SES's click tracking rewrites, so no click of it can be
    seen; one tracked link is enough, and an email with no link is measured."""
    assert sent_email(html).links_untracked is untracked


def test_html_links_are_the_hrefs_of_anchors_whatever_their_scheme() -> None:
    html = (
        '<a href="https://shop.example/?a=1&amp;b=2">x</a><a ses:no-track href=" tel:03 ">'
        '<a href="#top"><a><area href="tel:1"><img src="https://shop.example/i.png"><a href=>'
        "<a href=mailto:a@shop.example>"
    )
    assert html_links(html) == [
        HtmlLink("https://shop.example/?a=1&b=2", no_track=False),
        HtmlLink("tel:03", no_track=True),
        HtmlLink("mailto:a@shop.example", no_track=False),
    ]


# --- SNS -------------------------------------------------------------------------------------
def test_sns_sms_publishes_with_type_and_sender() -> None:
    client = aws("sns")
    adapter = SnsSms(client, sender_id="KIZUNA")
    expected = {
        "PhoneNumber": "+819012345678",
        "Message": "あと80ポイントでGold会員です",
        "MessageAttributes": {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
            "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "KIZUNA"},
        },
    }
    with Stubber(client) as stub:
        stub.add_response("publish", {"MessageId": "sns-1"}, expected)
        assert adapter.send(message("sms", sms_type="Transactional")).provider_message_id == "sns-1"


def test_sns_sms_checks_numbers_and_sender_ids() -> None:
    adapter = SnsSms(aws("sns"))
    with pytest.raises(InvalidAddress) as caught:
        adapter.send(message("sms", address="09012345678"))
    assert caught.value.invalid == (InvalidAddressInfo(key="phone", reason="not an E.164 number"),)
    with pytest.raises(ValueError):
        SnsSms(aws("sns"), sender_id="TOO-LONG-SENDER")
    with pytest.raises(PermanentFailure):
        adapter.send(message("email"))


def test_sns_opted_out_numbers_follow_pages() -> None:
    client = aws("sns")
    with Stubber(client) as stub:
        stub.add_response(
            "list_phone_numbers_opted_out", {"phoneNumbers": ["+811"], "nextToken": "n"}, {}
        )
        stub.add_response(
            "list_phone_numbers_opted_out", {"phoneNumbers": ["+812"]}, {"nextToken": "n"}
        )
        assert list(SnsSms(client).opted_out_numbers()) == ["+811", "+812"]


# --- push ------------------------------------------------------------------------------------
def push_response(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "MessageResponse": {"ApplicationId": "app-1", "RequestId": "req-1", "Result": dict(results)}
    }


def ok(message_id: str) -> dict[str, Any]:
    return {"DeliveryStatus": "SUCCESSFUL", "StatusCode": 200, "MessageId": message_id}


def test_push_sends_to_apns_and_fcm_tokens() -> None:
    client = aws("pinpoint")
    adapter = PinpointPush(client, "app-1")
    msg = message("push")
    expected = {
        "ApplicationId": "app-1",
        "MessageRequest": {
            "Addresses": {
                "apns-token-1": {"ChannelType": "APNS"},
                "fcm-token-1": {"ChannelType": "GCM"},
            },
            "Context": {
                "program": "points-nudge",
                "step": "send-1",
                "customer": "cust_0001",
                "execution": "points-nudge-cust_0001-20260105",
                # the reference the app echoes in push.opened
                "message": "points-nudge-cust_0001-20260105/send-1",
            },
            "MessageConfiguration": {
                "APNSMessage": {
                    "Body": "Gold会員まであと少し",
                    "Action": "OPEN_APP",
                    "CollapseId": ANY,
                    "Title": "あと80ポイント",
                },
                "GCMMessage": {
                    "Body": "Gold会員まであと少し",
                    "Action": "OPEN_APP",
                    "Title": "あと80ポイント",
                },
            },
            "TraceId": ANY,
        },
    }
    with Stubber(client) as stub:
        stub.add_response(
            "send_messages",
            push_response({"apns-token-1": ok("p-1"), "fcm-token-1": ok("p-2")}),
            expected,
        )
        result = adapter.send(msg)
    assert result == SendResult(provider_message_id="p-1")


def failed(status: str, code: int) -> dict[str, Any]:
    return {"DeliveryStatus": status, "StatusCode": code}


def push_stub(client: Any, *outcomes: tuple[Mapping[str, Any], Mapping[str, Any]]) -> Stubber:
    """A Stubber answering one SendMessages per (APNs token, FCM token) pair of results."""
    stub = Stubber(client)
    for apns, fcm in outcomes:
        stub.add_response(
            "send_messages", push_response({"apns-token-1": apns, "fcm-token-1": fcm})
        )
    return stub


def test_push_reports_dead_tokens_and_updated_ones() -> None:
    client = aws("pinpoint")
    dead = {**failed("PERMANENT_FAILURE", 410), "StatusMessage": "Unregistered"}
    with push_stub(client, (dead, {**ok("p-2"), "UpdatedToken": "fcm-token-2"})):
        result = PinpointPush(client, "app-1").send(message("push"))
    assert result.provider_message_id == "p-2"
    assert result.invalid_addresses == (
        InvalidAddressInfo(key="ios-1", reason="PERMANENT_FAILURE 410"),
    )
    assert result.updated_addresses == {"android-1": "fcm-token-2"}


@pytest.mark.parametrize(
    ("apns", "fcm", "error", "invalid"),
    [
        pytest.param(
            failed("PERMANENT_FAILURE", 400),
            failed("TEMPORARY_FAILURE", 410),
            InvalidAddress,
            ["android-1", "ios-1"],
            id="only-dead-tokens-is-an-invalid-address",
        ),
        pytest.param(
            failed("THROTTLED", 429),
            failed("PERMANENT_FAILURE", 404),
            Throttled,
            ["android-1"],
            id="throttled-everywhere-is-retryable-and-keeps-dead-tokens",
        ),
    ],
)
def test_push_failing_on_every_token(
    apns: dict[str, Any], fcm: dict[str, Any], error: type[Exception], invalid: list[str]
) -> None:
    client = aws("pinpoint")
    with push_stub(client, (apns, fcm)), pytest.raises(error) as caught:
        PinpointPush(client, "app-1").send(message("push"))
    assert sorted(i.key for i in caught.value.invalid) == invalid


def test_push_temporary_failure_and_unknown_outcomes() -> None:
    client = aws("pinpoint")
    with push_stub(
        client,
        (failed("TEMPORARY_FAILURE", 503), failed("TEMPORARY_FAILURE", 500)),
        (failed("UNKNOWN_FAILURE", 0), failed("OPT_OUT", 200)),
    ):
        adapter = PinpointPush(client, "app-1")
        with pytest.raises(TemporaryFailure):
            adapter.send(message("push"))
        with pytest.raises(PermanentFailure, match="OPT_OUT, UNKNOWN_FAILURE"):
            adapter.send(message("push"))


@pytest.mark.parametrize(
    ("code", "why"),
    [
        pytest.param(403, "InvalidProviderToken", id="apns-key"),
        pytest.param(401, "THIRD_PARTY_AUTH_ERROR", id="fcm-credentials"),
        pytest.param(413, "PayloadTooLarge", id="payload"),
    ],
)
def test_a_push_refused_for_the_sender_keeps_every_device(code: int, why: str) -> None:
    # given APNs and FCM refusing the sender (credentials or payload), not the devices
    client = aws("pinpoint")
    refused = {**failed("PERMANENT_FAILURE", code), "StatusMessage": why}
    with push_stub(client, (refused, refused), (refused, ok("p-2"))):
        adapter = PinpointPush(client, "app-1")
        # when every device answers so, then the message fails and no device is dead
        with pytest.raises(PermanentFailure) as caught:
            adapter.send(message("push"))
        assert not isinstance(caught.value, InvalidAddress)
        assert caught.value.invalid == ()
        assert caught.value.reason == f"push not delivered: PERMANENT_FAILURE {code}"
        # when another device got it, then it is sent and no device is dead either
        assert adapter.send(message("push")).invalid_addresses == ()


@pytest.mark.parametrize(
    "why", ['{"reason":"BadTopic"}', "BadCertificateEnvironment", "TopicDisallowed", "PayloadEmpty"]
)
def test_an_apns_400_refusing_the_apps_request_keeps_every_device(why: str) -> None:
    # given APNs answering 400 for the app's topic, environment or payload (every device alike)
    client = aws("pinpoint")
    refused = {**failed("PERMANENT_FAILURE", 400), "StatusMessage": why}
    dead = {**failed("PERMANENT_FAILURE", 400), "StatusMessage": '{"reason":"BadDeviceToken"}'}
    with push_stub(client, (refused, refused), (dead, dead)):
        adapter = PinpointPush(client, "app-1")
        # then the message fails and no device is dead
        with pytest.raises(PermanentFailure) as caught:
            adapter.send(message("push"))
        assert not isinstance(caught.value, InvalidAddress) and caught.value.invalid == ()
        # while a token APNs calls bad is still dead
        with pytest.raises(InvalidAddress) as gone:
            adapter.send(message("push"))
        assert len(gone.value.invalid) == 2


def test_push_through_a_before_call_hook_like_the_local_runtime() -> None:
    # given a client whose SendMessages is answered by a hook (as kizuna_tools.local does)
    client = aws("pinpoint")
    seen: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        body = json.loads(params["body"])
        seen.append(body)
        result = {token: ok(f"id-{token}") for token in body["Addresses"]}
        return AWSResponse("https://pinpoint", 200, {}, None), push_response(result)

    client.meta.events.register("before-call.pinpoint.SendMessages", answer)
    # when sent in the sandbox
    result = PinpointPush(client, "app-1", apns_sandbox=True).send(message("push"))
    # then the hook saw the request and the result maps back
    assert result.provider_message_id == "id-apns-token-1"
    assert seen[0]["Addresses"]["apns-token-1"] == {"ChannelType": "APNS_SANDBOX"}


def test_push_client_errors_are_classified() -> None:
    client = aws("pinpoint")
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_messages", service_error_code="TooManyRequestsException", http_status_code=429
        )
        stub.add_client_error(
            "send_messages", service_error_code="NotFoundException", http_status_code=404
        )
        with pytest.raises(Throttled):
            PinpointPush(client, "app-1").send(message("push"))
        with pytest.raises(PermanentFailure):
            PinpointPush(client, "app-1").send(message("push"))


# --- push, many customers in one call -------------------------------------------------------
def campaign_push(n: int, *tokens: str, title: str = "セール") -> OutboundMessage:
    """Customer ``n``'s push of one campaign occurrence (shared execution and step)."""
    return OutboundMessage(
        customer_id=f"c{n:03d}",
        program="sale",
        step="send",
        execution="campaign:sale:20260105T0300Z",
        channel="push",
        address=tuple(
            PushTarget(key=f"d{i}", token=t, platform="APNS" if t.startswith("apns") else "FCM")
            for i, t in enumerate(tokens)
        ),
        content=PushContent(title=title, body=f"c{n:03d}様、セール開催中"),
    )


def test_push_to_many_customers_is_one_call_with_each_addresss_own_message() -> None:
    # given three customers' pushes (one with two devices, one without a title)
    client = aws("pinpoint")
    batch = [
        campaign_push(1, "apns-token-1", "fcm-token-1"),
        campaign_push(2, "fcm-token-2", title=""),
        campaign_push(3, "fcm-token-3"),
    ]

    def address(n: int, channel: str, title: str | None = "セール") -> dict[str, Any]:
        config: dict[str, Any] = {
            "ChannelType": channel,
            "BodyOverride": f"c{n:03d}様、セール開催中",
            "Context": {
                "program": "sale",
                "step": "send",
                "customer": f"c{n:03d}",
                "execution": "campaign:sale:20260105T0300Z",
                "message": "campaign:sale:20260105T0300Z/send",
            },
        }
        return config | ({"TitleOverride": title} if title else {})

    expected = {
        "ApplicationId": "app-1",
        "MessageRequest": {
            "Addresses": {
                "apns-token-1": address(1, "APNS"),
                "fcm-token-1": address(1, "GCM"),
                "fcm-token-2": address(2, "GCM", None),
                "fcm-token-3": address(3, "GCM"),
            },
            "MessageConfiguration": {
                "APNSMessage": {"Action": "OPEN_APP", "CollapseId": ANY},
                "GCMMessage": {"Action": "OPEN_APP"},
            },
            "TraceId": ANY,
        },
    }
    dead = {**failed("PERMANENT_FAILURE", 410), "StatusMessage": "Unregistered"}
    answer = {
        "apns-token-1": dead,
        "fcm-token-1": ok("p-1"),
        "fcm-token-2": failed("THROTTLED", 429),
        "fcm-token-3": dead,
    }
    # when they are sent together
    with Stubber(client) as stub:
        stub.add_response("send_messages", push_response(answer), expected)
        first, second, third = PinpointPush(client, "app-1").send_many(batch)
    # then each customer's outcome is decided as a single send decides it
    assert isinstance(first, SendResult) and first.provider_message_id == "p-1"
    assert first.invalid_addresses == (
        InvalidAddressInfo(key="d0", reason="PERMANENT_FAILURE 410"),
    )
    assert isinstance(second, Throttled)
    assert isinstance(third, InvalidAddress) and third.address_key == "d0"


def test_a_failed_push_batch_call_is_every_messages_failure() -> None:
    client = aws("pinpoint")
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_messages", service_error_code="TooManyRequestsException", http_status_code=429
        )
        outcomes = PinpointPush(client, "app-1").send_many(
            [campaign_push(1, "fcm-token-1"), campaign_push(2, "fcm-token-2")]
        )
    assert [type(o) for o in outcomes] == [Throttled, Throttled]
    assert PinpointPush(client, "app-1").send_many([]) == []


def test_a_push_batch_refuses_what_one_request_cannot_carry() -> None:
    adapter = PinpointPush(aws("pinpoint"), "app-1")
    with pytest.raises(ValueError, match="one campaign occurrence or cohort run, and step"):
        adapter.batch_request([campaign_push(1, "t1"), message("push")])
    with pytest.raises(ValueError, match="twice"):
        adapter.batch_request([campaign_push(1, "shared"), campaign_push(2, "shared")])
    too_many = [campaign_push(n, f"token-{n}") for n in range(101)]
    with pytest.raises(ValueError, match="at most 100"):
        adapter.batch_request(too_many)


def test_push_batches_fill_calls_up_to_the_limit_without_repeating_a_token() -> None:
    # given devices 2, 1, 1, 2, 1 (the fourth shares a token with the first)
    batch = [
        campaign_push(0, "a", "b"),
        campaign_push(1, "c"),
        campaign_push(2, "d"),
        campaign_push(3, "a", "e"),
        campaign_push(4, "f"),
    ]
    # then: at most 3 devices a call, and "a" never twice in one call
    assert push_batches(batch, 3) == [[0, 1], [2, 3], [4]]
    assert push_batches(batch) == [[0, 1, 2], [3, 4]]
    assert push_batches([]) == []


class FlakyBatchPush:
    """A batching channel answering from a script: one list of outcomes per call."""

    max_addresses = 100

    def __init__(self, *answers: list[SendResult | channels.DeliveryError]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def send(self, message: OutboundMessage) -> SendResult:
        raise AssertionError("batched")

    def send_many(
        self, messages: Sequence[OutboundMessage]
    ) -> list[SendResult | channels.DeliveryError]:
        self.calls.append([m.customer_id for m in messages])
        return self.answers.pop(0)


def test_a_push_batch_retries_only_its_retryable_messages() -> None:
    # given: the first call throttles c002 and may have delivered c003 (no answer)
    sent = SendResult(provider_message_id="p")
    push = FlakyBatchPush(
        [
            sent,
            Throttled(retry_after=2.0),
            TemporaryFailure("no answer", maybe_sent=True),
            PermanentFailure("x"),
        ],
        [sent],
    )
    batch = [campaign_push(n, f"t-{n}") for n in range(1, 5)]
    sleeps: list[float] = []
    # when
    outcomes = send_many_with_retry(push, batch, sleep=sleeps.append, jitter=lambda: 1.0)
    # then: only c002 goes again, after the Retry-After it asked for
    assert push.calls == [["c001", "c002", "c003", "c004"], ["c002"]]
    assert sleeps == [2.0]
    first, second, third, fourth = outcomes
    assert isinstance(first, SendResult) and first.attempts == 1
    assert isinstance(second, SendResult) and second.attempts == 2
    assert isinstance(third, TemporaryFailure) and isinstance(fourth, PermanentFailure)


def test_send_all_batches_push_and_sends_the_rest_one_by_one() -> None:
    # given: two pushes, an email (throttled once) and an SMS
    push = FlakyBatchPush([SendResult(provider_message_id="p1"), InvalidAddress("d0", "410")])

    class OneByOne:
        def __init__(self, *failures: Exception) -> None:
            self.failures = list(failures)
            self.sent: list[str] = []

        def send(self, m: OutboundMessage) -> SendResult:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(m.customer_id)
            return SendResult(provider_message_id=f"id-{m.customer_id}")

    email_channel, sms_channel = OneByOne(Throttled()), OneByOne(PermanentFailure("no"))
    batch = [
        campaign_push(1, "t-1"),
        message("email", customer_id="c002"),
        campaign_push(3, "t-3"),
        message("sms", customer_id="c004"),
    ]
    # when
    outcomes = send_all(
        {"push": push, "email": email_channel, "sms": sms_channel}, batch, sleep=lambda _: None
    )
    # then: one push call; outcomes in the messages' order
    assert push.calls == [["c001", "c003"]] and email_channel.sent == ["c002"]
    assert [type(o).__name__ for o in outcomes] == [
        "SendResult",
        "SendResult",
        "InvalidAddress",
        "PermanentFailure",
    ]


def test_dead_devices_are_reported_through_the_inbound_port() -> None:
    from kizuna_tools.fakes import MemoryInbound

    inbound = MemoryInbound()
    dead = (InvalidAddressInfo(key="d1", reason="410"), InvalidAddressInfo(key="gone", reason="x"))
    report_dead_devices(inbound, campaign_push(7, "tok-aaaaaaaa", "tok-bbbbbbbb"), dead, T0)
    report_dead_devices(
        inbound, message("email"), (InvalidAddressInfo(key="email", reason="x"),), T0
    )
    ((kind, detail),) = inbound.events
    assert kind == "device.unregistered"
    assert (detail.customer_id, detail.token, detail.occurred_at) == ("c007", "tok-bbbbbbbb", T0)  # type: ignore[attr-defined]


# --- LINE ------------------------------------------------------------------------------------
class FakeHttp:
    def __init__(self, *responses: HttpResponse | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[dict[str, Any]] = []

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HttpResponse:
        self.requests.append(
            {"url": url, "headers": dict(headers), "body": json.loads(body), "timeout": timeout}
        )
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def line_ok(message_id: str = "461230966842064897") -> HttpResponse:
    body = json.dumps({"sentMessages": [{"id": message_id, "quoteToken": "q"}]}).encode()
    return HttpResponse(200, {"x-line-request-id": "req-1"}, body)


def test_line_push_request() -> None:
    http = FakeHttp(line_ok())
    result = LinePush(lambda: LINE_TOKEN, http).send(message("line"))
    assert result.provider_message_id == "461230966842064897"
    (request,) = http.requests
    assert request["url"] == "https://api.line.me/v2/bot/message/push"
    assert request["body"] == {
        "to": "U" + "0" * 32,
        "messages": [{"type": "text", "text": "こんにちは"}],
    }
    assert request["headers"]["Authorization"] == f"Bearer {LINE_TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    sent = message("line")
    assert request["headers"]["X-Line-Retry-Key"] == line_retry_key(
        sent.execution, sent.step, sent.customer_id
    )


def test_line_retry_key_is_a_stable_uuid_per_execution_step_and_customer() -> None:
    key = line_retry_key("exec-1", "step-1", "c1")
    assert uuid.UUID(key).version == 5
    assert key == line_retry_key("exec-1", "step-1", "c1")
    assert (
        key != line_retry_key("exec-1", "step-2", "c1") != line_retry_key("exec-2", "step-1", "c1")
    )
    # one execution (a cohort, a campaign occurrence) sends a step to many customers
    assert key != line_retry_key("exec-1", "step-1", "c2")


def test_line_retries_reuse_the_retry_key_and_409_means_already_sent() -> None:
    # given LINE fails, then says the retry key was already accepted
    http = FakeHttp(
        HttpResponse(500, {}, b'{"message":"Internal error"}'),
        OSError("connection reset"),
        HttpResponse(
            409,
            {"x-line-accepted-request-id": "accepted-1"},
            b'{"message":"The retry key is already accepted"}',
        ),
    )
    # when sent with retries
    result = send_with_retry(
        LinePush(lambda: LINE_TOKEN, http), message("line"), sleep=lambda _: None
    )
    # then it is one message, accepted once, under one retry key
    assert result.provider_message_id == "accepted-1" and result.attempts == 3
    assert len({r["headers"]["X-Line-Retry-Key"] for r in http.requests}) == 1


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (HttpResponse(429, {"retry-after": "2"}, b'{"message":"Too many requests"}'), Throttled),
        (HttpResponse(503, {}, b""), TemporaryFailure),
        (
            HttpResponse(
                400, {}, b'{"message":"The property, \'to\', in the request body is invalid"}'
            ),
            PermanentFailure,
        ),
        (HttpResponse(401, {}, b'{"message":"Authentication failed"}'), PermanentFailure),
        (HttpResponse(409, {}, b'{"message":"conflict"}'), PermanentFailure),
    ],
)
def test_line_statuses(response: HttpResponse, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        LinePush(lambda: LINE_TOKEN, FakeHttp(response)).send(message("line"))
    assert type(caught.value) is error
    if isinstance(caught.value, Throttled):
        assert caught.value.retry_after == 2


def test_line_never_leaks_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[HttpResponse | Exception] = [
        HttpResponse(401, {}, b'{"message":"Authentication failed"}'),
        HttpResponse(500, {}, b"oops"),
        OSError("boom"),
        HttpResponse(429, {}, b"{}"),
    ]
    for failure in failures:
        with pytest.raises(channels.DeliveryError) as caught:
            send_with_retry(
                LinePush(lambda: LINE_TOKEN, FakeHttp(failure)), message("line"), attempts=1
            )
        err = caught.value
        seen = " ".join(
            [str(err), repr(err), repr(err.args), repr(err.__cause__), repr(err.__context__)]
        )
        assert LINE_TOKEN not in seen
    assert LINE_TOKEN not in caplog.text


def test_urllib_http_returns_error_statuses_as_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[urllib.request.Request] = []

    class Answer(BytesIO):
        status = 200
        headers: Mapping[str, str] = {"X-Line-Request-Id": "r-1"}

    def fake_urlopen(request: urllib.request.Request, timeout: float) -> Answer:
        calls.append(request)
        if len(calls) == 1:
            return Answer(b"{}")
        headers = email.message.Message()
        headers["Retry-After"] = "1"
        raise urllib.error.HTTPError(request.full_url, 429, "Too Many", headers, BytesIO(b"{}"))

    http = UrllibHttp()
    monkeypatch.setattr(http.opener, "open", fake_urlopen)
    assert http.post("https://api.line.me/x", {"A": "b"}, b"{}", 1.0) == HttpResponse(
        200, {"x-line-request-id": "r-1"}, b"{}"
    )
    assert http.post("https://api.line.me/x", {}, b"{}", 1.0).status == 429
    assert calls[0].get_method() == "POST"
    with pytest.raises(ValueError):
        http.post("http://api.line.me/x", {}, b"{}", 1.0)


def test_line_token_from_secrets_manager_or_ssm(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.utilities import parameters

    calls: list[tuple[str, dict[str, Any]]] = []

    def get_secret(name: str, **kwargs: Any) -> str:
        calls.append((name, kwargs))
        return (
            json.dumps({"channel_access_token": "tok-json"}) if name == "json" else " tok-plain \n"
        )

    def get_parameter(name: str, **kwargs: Any) -> bytes:
        calls.append((name, kwargs))
        return b"tok-ssm"

    monkeypatch.setattr(parameters, "get_secret", get_secret)
    monkeypatch.setattr(parameters, "get_parameter", get_parameter)
    assert line_token_from(secret_name="plain")() == "tok-plain"
    assert (
        line_token_from(secret_name="json", field="channel_access_token", max_age=60)()
        == "tok-json"
    )
    assert line_token_from(parameter_name="/kizuna/line")() == "tok-ssm"
    assert calls == [
        ("plain", {"max_age": 300}),
        ("json", {"max_age": 60}),
        ("/kizuna/line", {"decrypt": True, "max_age": 300}),
    ]
    with pytest.raises(PermanentFailure, match="no field"):
        line_token_from(secret_name="plain", field="x")()
    with pytest.raises(ValueError, match="exactly one"):
        line_token_from()
    with pytest.raises(ValueError, match="exactly one"):
        line_token_from(secret_name="a", parameter_name="b")


# --- tags ------------------------------------------------------------------------------------
@given(st.text(min_size=1, max_size=40))
def test_tag_values_round_trip_in_the_ses_alphabet(value: str) -> None:
    encoded = encode_tag_value(value)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded)
    assert decode_tag_value(encoded) == value


def test_tag_value_examples() -> None:
    assert encode_tag_value("cust-42") == "cust-42"
    assert encode_tag_value("a.b@x") == "a_2Eb_40x"
    assert encode_tag_value("c_1") == "c__1"
    assert encode_tag_value("山") == "_E5_B1_B1"
    with pytest.raises(ValueError):
        encode_tag_value("")
    with pytest.raises(ValueError):
        encode_tag_value("山" * 70)  # 210 bytes: over 256 characters even in base64


@given(st.from_regex(CUSTOMER_ID_PATTERN, fullmatch=True))
def test_every_customer_id_is_carried_in_a_tag(customer_id: str) -> None:
    # escaped, a 128-character id of ".:@" is 384 characters: it goes in base64 instead
    encoded = encode_tag_value(customer_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", encoded)
    assert decode_tag_value(encoded) == customer_id


def test_a_value_too_long_to_escape_is_carried_in_base64() -> None:
    value = ".:@" * 42 + "a."  # 128 characters, 384 escaped
    encoded = encode_tag_value(value)
    assert encoded.startswith("_b") and len(encoded) == 173
    assert decode_tag_value(encoded) == value
    assert decode_tag_value("_b!!") == "_b!!"  # stray input comes back as it came
    # only the form encode writes: a short value in base64, or another spelling of the same
    # bytes (non-zero padding bits), is not read as a value
    assert decode_tag_value("_bad") == "_bad"  # base64 of "i": never written so
    assert decode_tag_value(encoded[:-1] + chr(ord(encoded[-1]) + 1)) != value
    tags = SesEmail.email_tags(message(customer_id=value))
    assert [t["Name"] for t in tags] == ["program", "step", "customer", "execution"]


def test_ses_skips_tags_too_long_to_carry() -> None:
    tags = SesEmail.email_tags(message(customer_id="山" * 70))  # 210 bytes
    assert [t["Name"] for t in tags] == ["program", "step", "execution"]


def test_a_cohort_runs_pushes_batch_across_entries_and_split_by_run() -> None:
    # members of one cohort run have their own entries (the ledger's key) but one run
    def member(n: int, run: str) -> OutboundMessage:
        return campaign_push(n, f"tok-{run}-{n}").model_copy(
            update={"execution": f"entry-{n}", "batch": run}
        )

    same = [member(n, "run-a") for n in range(3)]
    assert push_batches(same) == [[0, 1, 2]]
    request = PinpointPush(aws("pinpoint"), "app-1").batch_request(same)
    contexts = [a["Context"]["execution"] for a in request["Addresses"].values()]
    assert contexts == ["entry-0", "entry-1", "entry-2"]  # each address names its entry
    assert push_batches([*same, member(3, "run-b")]) == [[0, 1, 2], [3]]


def test_send_all_starts_nothing_past_its_deadline_and_never_waits_into_it() -> None:
    """Each call takes 10 s of the clock, 25 s to deliver: channel by channel, the email
    (0 s), the two SMS (10 s, 20 s) start in time, the push batch (30 s) is not started
    (OutOfTime: surely not sent); a retry whose wait would reach the deadline is not
    waited for (its throttling stands)."""
    clock = [0.0]

    class Slow:
        def __init__(self, *failures: Exception) -> None:
            self.failures: list[Exception] = list(failures)
            self.sent: list[str] = []

        def send(self, m: OutboundMessage) -> SendResult:
            clock[0] += 10.0
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(m.customer_id)
            return SendResult(provider_message_id=f"id-{m.customer_id}")

    email_channel, sms_channel = Slow(), Slow()
    slow_email = Slow(Throttled(retry_after=5.0))
    push = FlakyBatchPush([SendResult(provider_message_id="p1")])
    batch = [
        message("email", customer_id="c001"),
        message("sms", customer_id="c002"),
        campaign_push(3, "t-3"),
        message("sms", customer_id="c004"),
    ]
    sleeps: list[float] = []
    outcomes = send_all(
        {"push": push, "email": email_channel, "sms": sms_channel},
        batch,
        sleep=sleeps.append,
        deadline=25.0,
        monotonic=lambda: clock[0],
    )
    assert email_channel.sent == ["c001"] and sms_channel.sent == ["c002", "c004"]
    assert push.calls == [] and clock[0] == 30.0
    assert [type(o).__name__ for o in outcomes] == [
        "SendResult",
        "SendResult",
        "OutOfTime",
        "SendResult",
    ]
    not_started = outcomes[2]
    assert isinstance(not_started, channels.OutOfTime)
    assert not_started.reason == "not attempted: out of time"
    assert not not_started.maybe_sent and not not_started.retryable
    # a throttled retry whose wait would reach the deadline is not waited for
    clock[0] = 0.0
    with pytest.raises(Throttled):
        send_with_retry(
            slow_email, message(), sleep=sleeps.append, deadline=14.0, monotonic=lambda: clock[0]
        )
    assert sleeps == [] and slow_email.sent == []
    # past the deadline a push batch is not called at all
    (late,) = send_many_with_retry(
        push, [campaign_push(5, "t-5")], deadline=1.0, monotonic=lambda: 2.0
    )
    assert isinstance(late, channels.OutOfTime) and push.calls == []


def test_urllib_http_keeps_the_status_when_the_body_breaks_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 200 whose body stops coming (the request's time is up: its socket is shut, a read
    times out) is a 200 with what came of the body, not "no answer" (which would post the
    message again and, once the attempts were spent, record a delivered message failed)."""

    class Breaks:
        status = 200
        headers: Mapping[str, str] = {"X-Request-Id": "r-9"}

        def __init__(self) -> None:
            self.reads = 0

        def read1(self, n: int) -> bytes:
            self.reads += 1
            if self.reads > 1:
                raise TimeoutError("timed out")
            return b'{"ok":'

        def __enter__(self) -> Breaks:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    http = UrllibHttp()
    monkeypatch.setattr(http.opener, "open", lambda request, timeout: Breaks())
    answer = http.post("https://crm.example.com/hook", {}, b"{}", 10.0)
    assert answer == HttpResponse(200, {"x-request-id": "r-9"}, b'{"ok":')


def test_urllib_http_takes_an_answer_that_is_not_http_as_no_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A garbage status line or a broken chunked body before the status (http.client's own
    exceptions, not OSErrors) is "no answer" to the channels, as a reset connection is: it
    was not raised past them to fail the whole group's invocation."""
    import http.client

    def garbage(request: Any, timeout: float) -> Any:
        raise http.client.BadStatusLine("HTTP/9 nonsense")

    client = UrllibHttp()
    monkeypatch.setattr(client.opener, "open", garbage)
    with pytest.raises(OSError, match="not an HTTP answer"):
        client.post("https://crm.example.com/hook", {}, b"{}", 10.0)


class DeliversThenRaises:
    """A batching channel: its first call delivers one message and is throttled on the
    other; the retry raises what no channel expects (an answer that cannot be read)."""

    max_addresses = 100

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: OutboundMessage) -> SendResult:
        raise AssertionError("a batching channel is called with send_many")

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Any]:
        self.calls += 1
        if self.calls == 1:
            return [SendResult(provider_message_id="pm-1"), Throttled("push THROTTLED 429")]
        raise RuntimeError("the answer could not be read")


def test_a_retry_raising_unexpectedly_leaves_what_the_first_attempt_delivered() -> None:
    channel = DeliversThenRaises()
    first, second = (
        message(
            "push",
            customer_id=cid,
            address=(PushTarget(key="d", token=f"t-{cid}", platform="FCM"),),
        )
        for cid in ("c1", "c2")
    )
    outcomes = send_all({"push": channel}, [first, second], sleep=lambda _: None)
    assert channel.calls == 2
    # the first message was delivered on the first attempt: it stays sent, with its id
    assert isinstance(outcomes[0], SendResult)
    assert outcomes[0].provider_message_id == "pm-1"
    # the retried one fails, maybe sent (never sent again)
    assert isinstance(outcomes[1], TemporaryFailure) and outcomes[1].maybe_sent
    assert "unexpected RuntimeError" in outcomes[1].reason


def test_an_unexpected_error_on_one_line_push_leaves_the_other_pushes_of_the_group() -> None:
    calls = {"n": 0}

    def token() -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the channel token could not be read")
        return LINE_TOKEN

    http = FakeHttp(line_ok("m1"), line_ok("m2"), line_ok("m4"), line_ok("m5"))
    personal = [
        message(
            "line",
            customer_id=f"c{n}",
            address="U" + f"{n:032d}",
            content=LineContent(text=f"c{n}様、セール開催中"),  # one push each
        )
        for n in range(1, 6)
    ]
    outcomes = send_all({"line": LinePush(token, http)}, personal, sleep=lambda _: None)
    # the pushes before and after the failed one went and are recorded sent
    assert len(http.requests) == 4
    assert [isinstance(o, SendResult) for o in outcomes] == [True, True, False, True, True]
    failed = outcomes[2]
    assert isinstance(failed, TemporaryFailure) and failed.maybe_sent
