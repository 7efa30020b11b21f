"""Channel adapters against moto: what SES and SNS accepted and stored."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.ses.models import RawMessage, ses_backends
from moto.sns.models import sns_backends

from kizuna.delivery.channels import (
    OutboundMessage,
    PermanentFailure,
    SesEmail,
    SnsSms,
    line_token_from,
    send_with_retry,
)
from kizuna.delivery.content import EmailContent, SmsContent
from kizuna.delivery.unsubscribe import UnsubscribeLinks, verify
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"  # moto's default account
SENDER = "news@shop.example"
SECRET = b"unsubscribe-secret-for-moto-tests"
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
CONTENT = EmailContent(
    subject="山田 花子様、Gold会員まであと80ポイント",
    html="<p>山田 花子様</p><p>あと<b>80</b>ポイント</p>",
    text="山田 花子様\nあと80ポイント",
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        yield


@pytest.fixture
def sesv2(aws: None) -> Any:
    client = boto3.client("sesv2", region_name=REGION)
    client.create_email_identity(EmailIdentity=SENDER)
    client.create_configuration_set(ConfigurationSetName="kizuna-email")
    return client


def record_requests(client: Any, operation: str) -> list[dict[str, Any]]:
    """The JSON bodies a client sends for one operation (what moto received)."""
    bodies: list[dict[str, Any]] = []
    client.meta.events.register(
        f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}",
        lambda request, **_: bodies.append(json.loads(request.body)),
    )
    return bodies


def message(**fields: Any) -> OutboundMessage:
    """The points nudge to cust_0001, by email unless ``fields`` say otherwise."""
    base: dict[str, Any] = {
        "customer_id": "cust_0001",
        "program": "points-nudge",
        "step": "send-1",
        "execution": "points-nudge-cust_0001-20260105",
        "channel": "email",
        "address": "hanako@example.jp",
        "content": CONTENT,
    }
    base.update(fields)
    return OutboundMessage(**base)


def links() -> UnsubscribeLinks:
    return UnsubscribeLinks("https://unsub.example.com/u", SECRET, now=lambda: NOW)


def sent_emails() -> list[Any]:
    return list(ses_backends[ACCOUNT][REGION].sent_messages)


# --- SES -------------------------------------------------------------------------------------
def test_simple_email_with_headers_tags_and_configuration_set_is_accepted(sesv2: Any) -> None:
    # given the SES adapter in its default (Simple content) mode
    requests = record_requests(sesv2, "SendEmail")
    adapter = SesEmail(sesv2, f"Kizuna Shop <{SENDER}>", "kizuna-email", links())
    # when a message is sent
    result = adapter.send(message())
    # then moto accepted the request with the configuration set, tags and one-click headers
    (request,) = requests
    assert request["ConfigurationSetName"] == "kizuna-email"
    assert {t["Name"]: t["Value"] for t in request["EmailTags"]} == {
        "program": "points-nudge",
        "step": "send-1",
        "customer": "cust__0001",
        "execution": "points-nudge-cust__0001-20260105",
    }
    headers = {h["Name"]: h["Value"] for h in request["Content"]["Simple"]["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = headers["List-Unsubscribe"].removeprefix("<https://unsub.example.com/u?t=").rstrip(">")
    assert verify(SECRET, token, NOW).customer_id == "cust_0001"
    # and stored the message (moto keeps subject and HTML body of a Simple message)
    (stored,) = sent_emails()
    assert stored.id == result.provider_message_id
    assert stored.subject == CONTENT.subject
    assert stored.body == CONTENT.html
    assert stored.destinations == {"ToAddresses": ["hanako@example.jp"]}


def test_raw_email_lands_with_its_headers(sesv2: Any) -> None:
    # given the adapter building the MIME itself
    adapter = SesEmail(sesv2, f"Kizuna ショップ <{SENDER}>", "kizuna-email", links(), raw_mime=True)
    # when sent
    result = adapter.send(message())
    # then the message moto stored carries the one-click headers and a decodable subject
    (stored,) = sent_emails()
    assert isinstance(stored, RawMessage) and stored.id == result.provider_message_id
    # (moto adds the To header's recipients to the envelope's: same address twice)
    assert set(stored.destinations) == {"hanako@example.jp"}
    parsed = email.message_from_string(stored.raw_data, policy=email.policy.default)
    assert parsed["Subject"] == CONTENT.subject
    assert parsed["From"].addresses[0].display_name == "Kizuna ショップ"
    unsubscribe = str(parsed["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<https://unsub.example.com/u?t=") and unsubscribe.endswith(">")
    assert verify(SECRET, unsubscribe[1:-1].split("t=", 1)[1], NOW).channel == "email"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # text is canonical MIME: CRLF line ends
    text, html = (part.get_content().replace("\r\n", "\n").strip() for part in parsed.iter_parts())
    assert (text, html) == (CONTENT.text, CONTENT.html)


def test_unverified_sender_is_a_permanent_failure(sesv2: Any) -> None:
    adapter = SesEmail(sesv2, "nobody@elsewhere.example", "kizuna-email", links())
    with pytest.raises(PermanentFailure, match="SendEmail: MessageRejected"):
        send_with_retry(adapter, message(), sleep=lambda _: None)
    assert sent_emails() == []


def test_throttled_send_is_retried_and_delivered_once(sesv2: Any) -> None:
    # given SES answers the first two calls with throttling
    throttles = [2]

    def throttle(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if throttles[0] == 0:
            return None
        throttles[0] -= 1
        error = {
            "Error": {
                "Code": "TooManyRequestsException",
                "Message": "Maximum sending rate exceeded.",
            }
        }
        return AWSResponse("https://email.ap-northeast-1.amazonaws.com", 429, {}, None), error

    sesv2.meta.events.register("before-call.sesv2.SendEmail", throttle)
    sleeps: list[float] = []
    adapter = SesEmail(sesv2, SENDER, "kizuna-email", links())
    # when sent with retries
    result = send_with_retry(adapter, message(), sleep=sleeps.append)
    # then it went out exactly once, on the third attempt, after two backoffs
    assert result.attempts == 3 and len(sleeps) == 2
    assert [m.id for m in sent_emails()] == [result.provider_message_id]


# --- SNS -------------------------------------------------------------------------------------
def test_sms_lands_in_moto_with_its_type(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    requests: list[str] = []
    sns.meta.events.register(
        "before-send.sns.Publish", lambda request, **_: requests.append(request.body)
    )
    text = "山田様、あと80ポイントでGold会員です。"
    sms = message(
        channel="sms",
        address="+819012345678",
        content=SmsContent.of(text),
        sms_type="Transactional",
    )
    result = SnsSms(sns).send(sms)
    stored = sns_backends[ACCOUNT][REGION].sms_messages
    assert stored[result.provider_message_id] == ("+819012345678", text)
    body = requests[0] if isinstance(requests[0], str) else requests[0].decode()
    assert "AWS.SNS.SMS.SMSType" in body and "Transactional" in body


def test_sms_opt_out_sweep_reads_moto(aws: None) -> None:
    numbers = list(SnsSms(boto3.client("sns", region_name=REGION)).opted_out_numbers())
    assert all(n.startswith("+") for n in numbers)


# --- LINE token from Secrets Manager ---------------------------------------------------------
def test_line_token_from_secrets_manager_is_cached(aws: None) -> None:
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS.clear()  # providers built outside this mock would hold stale clients
    try:
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(Name="kizuna/line", SecretString=json.dumps({"token": "tok-1"}))
        provider = line_token_from(secret_name="kizuna/line", field="token", max_age=300)
        assert provider() == "tok-1"
        secrets.put_secret_value(
            SecretId="kizuna/line", SecretString=json.dumps({"token": "tok-2"})
        )
        assert provider() == "tok-1"  # cached for max_age
        DEFAULT_PROVIDERS.clear()  # a new container
        assert provider() == "tok-2"
    finally:
        DEFAULT_PROVIDERS.clear()
