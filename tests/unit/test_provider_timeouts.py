"""The channels' AWS clients (SES, SNS, Pinpoint) give up on a call that does not answer in
seconds: botocore's default read timeout (60 s) equals the send function's, so one hung call
ran the function into its timeout and left the rest of the group outcome_unknown. One attempt
each: the send path's own retry decides what may be tried again."""

from __future__ import annotations

import pytest

from kizuna.runtime import wiring
from kizuna.runtime.settings import DeliverySettings
from tests.moto_setup import fake_aws_env


def test_the_channel_clients_time_out_in_seconds_and_try_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_aws_env(monkeypatch, "ap-northeast-1")
    monkeypatch.setattr(wiring, "signing_keys", lambda _arn: [b"k" * 32])
    settings = DeliverySettings.model_construct(
        KIZUNA_CONFIG="{}",
        SIGNING_SECRET_ARN="arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:s",
        EMAIL_FROM="shop@example.jp",
        SES_CONFIGURATION_SET="kizuna",
        UNSUBSCRIBE_URL="https://u.example/",
        PUSH_APPLICATION_ID="app",
        SMS_SENDER_ID="",
        LINE_TOKEN_SECRET_ARN="",
        LINE_TOKEN_PARAMETER="",
        CUSTOMERS_TABLE="customers",
        ACTIVITY_TABLE="activity",
    )
    channels = wiring.delivery(settings).channels
    clients = [channels[name]._client for name in ("email", "sms", "push")]  # type: ignore[attr-defined]
    for client in clients:
        config = client.meta.config
        assert config.read_timeout == wiring.PROVIDER_READ_TIMEOUT == 10
        assert config.connect_timeout == wiring.PROVIDER_CONNECT_TIMEOUT == 5
        assert config.retries["total_max_attempts"] == 1
