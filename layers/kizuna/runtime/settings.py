"""Environment contract between the CDK app and the Lambda handlers.

Each handler parses its environment into one of these models at cold start, so a missing
variable fails at once with its name. The CDK constructs import the same names, so the two
sides cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Environment variable names (the CDK app sets exactly these).
ENV_CUSTOMERS_TABLE = "CUSTOMERS_TABLE"
ENV_ACTIVITY_TABLE = "ACTIVITY_TABLE"
ENV_EVENT_BUS_NAME = "EVENT_BUS_NAME"
ENV_DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
ENV_KIZUNA_CONFIG = "KIZUNA_CONFIG"
ENV_MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
ENV_JOURNEY_ARN_PREFIX = "JOURNEY_ARN_PREFIX"
ENV_PROGRAMS_DIR = "PROGRAMS_DIR"
ENV_TEMPLATES_DIR = "TEMPLATES_DIR"
ENV_SIGNING_SECRET_ARN = "SIGNING_SECRET_ARN"  # noqa: S105 - a variable name
ENV_EMAIL_FROM = "EMAIL_FROM"
ENV_SES_CONFIGURATION_SET = "SES_CONFIGURATION_SET"
ENV_UNSUBSCRIBE_URL = "UNSUBSCRIBE_URL"
ENV_PUSH_APPLICATION_ID = "PUSH_APPLICATION_ID"
ENV_LINE_TOKEN_SECRET_ARN = "LINE_TOKEN_SECRET_ARN"  # noqa: S105 - a variable name
ENV_LINE_TOKEN_PARAMETER = "LINE_TOKEN_PARAMETER"  # noqa: S105 - a variable name
ENV_SMS_SENDER_ID = "SMS_SENDER_ID"
ENV_PRODUCTS_TABLE = "PRODUCTS_TABLE"
ENV_SNAPSHOTS_TABLE = "SNAPSHOTS_TABLE"
ENV_ANALYTICS_BUCKET = "ANALYTICS_BUCKET"

# Source of every event Kizuna itself puts on the bus; inbound rules exclude it.
KIZUNA_EVENT_SOURCE = "kizuna"


class _FunctionSettings(BaseSettings):
    """Environment variables by exact name; unrelated ones (AWS_*, POWERTOOLS_*) ignored."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")


class _TableSettings(_FunctionSettings):
    CUSTOMERS_TABLE: str = Field(min_length=1)
    ACTIVITY_TABLE: str = Field(min_length=1)


class IngestSettings(_TableSettings):
    """Environment of the ingest function."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    DEAD_LETTER_QUEUE_URL: str = Field(min_length=1)
    # JSON of kizuna.runtime.config.KizunaConfig; empty means the defaults.
    KIZUNA_CONFIG: str = "{}"
    # Receives after which the handler dead-letters a record itself (keeps the reason);
    # must match the queue's maxReceiveCount.
    MAX_RECEIVE_COUNT: int = Field(default=5, ge=1)
    # State machine ARN prefix of the journeys, to stop an erased customer's executions
    # (empty: no journeys deployed).
    JOURNEY_ARN_PREFIX: str = ""


@lru_cache(maxsize=1)
def ingest_settings() -> IngestSettings:
    return IngestSettings()


class EvaluateSettings(_TableSettings):
    """Environment of the evaluate function."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    DEAD_LETTER_QUEUE_URL: str = Field(min_length=1)
    JOURNEY_ARN_PREFIX: str = Field(min_length=1)
    KIZUNA_CONFIG: str = "{}"
    MAX_RECEIVE_COUNT: int = Field(default=5, ge=1)
    PROGRAMS_DIR: str | None = None


@lru_cache(maxsize=1)
def evaluate_settings() -> EvaluateSettings:
    return EvaluateSettings()


class JourneySettings(_TableSettings):
    """Environment of the journey helper function (branch checks, local times)."""

    KIZUNA_CONFIG: str = "{}"
    PROGRAMS_DIR: str | None = None


@lru_cache(maxsize=1)
def journey_settings() -> JourneySettings:
    return JourneySettings()


class SweepSettings(_TableSettings):
    """Environment of the sweep function (scheduled triggers)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    KIZUNA_CONFIG: str = "{}"


@lru_cache(maxsize=1)
def sweep_settings() -> SweepSettings:
    return SweepSettings()


class ScoreSettings(_TableSettings):
    """Environment of the score function (the daily scoring state machine's tasks)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    KIZUNA_CONFIG: str = "{}"
    PRODUCTS_TABLE: str = Field(min_length=1)
    SNAPSHOTS_TABLE: str = Field(min_length=1)
    ANALYTICS_BUCKET: str = Field(min_length=1, description="work files and snapshot export")


@lru_cache(maxsize=1)
def score_settings() -> ScoreSettings:
    return ScoreSettings()


class SendSettings(_TableSettings):
    """Environment of the send function (the journeys' Send task)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    KIZUNA_CONFIG: str = "{}"
    PROGRAMS_DIR: str | None = None
    TEMPLATES_DIR: str | None = None
    PRODUCTS_TABLE: str = Field(min_length=1, description="recommendations per product")
    SIGNING_SECRET_ARN: str = Field(min_length=1, description="HMAC key for coupons/unsubscribe")
    EMAIL_FROM: str = Field(min_length=3)
    SES_CONFIGURATION_SET: str = Field(min_length=1)
    UNSUBSCRIBE_URL: str = Field(min_length=1, description="the unsubscribe function URL")
    PUSH_APPLICATION_ID: str = ""
    LINE_TOKEN_SECRET_ARN: str = ""
    LINE_TOKEN_PARAMETER: str = Field(default="", description="or an SSM SecureString name")
    SMS_SENDER_ID: str = ""


@lru_cache(maxsize=1)
def send_settings() -> SendSettings:
    return SendSettings()


class FeedbackSettings(_TableSettings):
    """Environment of the feedback function (SES events, SMS opt-outs, push tokens)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    DEAD_LETTER_QUEUE_URL: str = Field(min_length=1)
    MAX_RECEIVE_COUNT: int = Field(default=5, ge=1)


@lru_cache(maxsize=1)
def feedback_settings() -> FeedbackSettings:
    return FeedbackSettings()


class UnsubscribeSettings(_FunctionSettings):
    """Environment of the unsubscribe function (Lambda function URL)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    SIGNING_SECRET_ARN: str = Field(min_length=1)


@lru_cache(maxsize=1)
def unsubscribe_settings() -> UnsubscribeSettings:
    return UnsubscribeSettings()
