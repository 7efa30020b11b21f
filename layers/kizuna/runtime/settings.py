"""Environment contract between the CDK app and the Lambda handlers.

Each handler parses its environment into one of these models at cold start, so a missing
variable fails at once with its name. The CDK constructs import the same names, so the two
sides cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every campaign manifest object (kizuna.adapters.s3.S3Objects.put_lines) carries this tag;
# the analytics bucket's lifecycle rule expires tagged objects under campaigns/ once the
# longest occurrence is over (a static audience's list.csv, uploaded by a user, is untagged
# and kept). The campaign function's Complete deletes an occurrence's objects sooner.
CAMPAIGN_MANIFEST_TAG_KEY = "kizuna-object"
CAMPAIGN_MANIFEST_TAG_VALUE = "campaign-manifest"
# Days after which the rule expires them: past the campaign state machine's 21-day timeout
# (tests/infra/test_data.py holds the bound). An occurrence older than this (a redriven
# execution) may have lost chunks: Plan and ChooseWinner refuse to go on.
CAMPAIGN_MANIFEST_EXPIRY_DAYS = 22

# Environment variable names (the CDK app sets exactly these).
ENV_CUSTOMERS_TABLE = "CUSTOMERS_TABLE"
ENV_ACTIVITY_TABLE = "ACTIVITY_TABLE"
ENV_EVENT_BUS_NAME = "EVENT_BUS_NAME"
ENV_DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
ENV_KIZUNA_CONFIG = "KIZUNA_CONFIG"
ENV_MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
ENV_JOURNEY_ARN_PREFIX = "JOURNEY_ARN_PREFIX"
# Journey timers: a cohort execution due later is started by a one-time EventBridge
# Scheduler schedule in this group, run as this role (StartExecution on the journeys only),
# dead-lettered to this queue (evaluate's DLQ).
ENV_JOURNEY_SCHEDULE_GROUP = "JOURNEY_SCHEDULE_GROUP"
ENV_JOURNEY_SCHEDULER_ROLE_ARN = "JOURNEY_SCHEDULER_ROLE_ARN"
ENV_JOURNEY_SCHEDULE_DLQ_ARN = "JOURNEY_SCHEDULE_DLQ_ARN"
ENV_ERASURE_SWEEP_GROUP = "ERASURE_SWEEP_GROUP"
ENV_ERASURE_SWEEP_ROLE_ARN = "ERASURE_SWEEP_ROLE_ARN"
ENV_INGEST_QUEUE_ARN = "INGEST_QUEUE_ARN"
ENV_DEAD_LETTER_QUEUE_ARN = "DEAD_LETTER_QUEUE_ARN"
ENV_PROGRAMS_DIR = "PROGRAMS_DIR"
ENV_TEMPLATES_DIR = "TEMPLATES_DIR"
ENV_SIGNING_SECRET_ARN = "SIGNING_SECRET_ARN"  # noqa: S105 - a variable name
ENV_EMAIL_FROM = "EMAIL_FROM"
ENV_SES_CONFIGURATION_SET = "SES_CONFIGURATION_SET"
ENV_UNSUBSCRIBE_URL = "UNSUBSCRIBE_URL"
ENV_PUSH_APPLICATION_ID = "PUSH_APPLICATION_ID"
ENV_LINE_TOKEN_SECRET_ARN = "LINE_TOKEN_SECRET_ARN"  # noqa: S105 - a variable name
ENV_LINE_TOKEN_PARAMETER = "LINE_TOKEN_PARAMETER"  # noqa: S105 - a variable name
ENV_LINE_CHANNEL_SECRET_ARN = "LINE_CHANNEL_SECRET_ARN"  # noqa: S105 - a variable name
ENV_LINE_CHANNEL_SECRET_PARAMETER = "LINE_CHANNEL_SECRET_PARAMETER"  # noqa: S105 - a name
ENV_SMS_SENDER_ID = "SMS_SENDER_ID"
ENV_PRODUCTS_TABLE = "PRODUCTS_TABLE"
ENV_SNAPSHOTS_TABLE = "SNAPSHOTS_TABLE"
ENV_ANALYTICS_BUCKET = "ANALYTICS_BUCKET"
ENV_PRINT_FILES_BUCKET = "PRINT_FILES_BUCKET"  # direct mail's print files (encrypted)
ENV_CAMPAIGNS_TABLE = "CAMPAIGNS_TABLE"
ENV_CHUNK_SIZE = "CHUNK_SIZE"
ENV_SCAN_SEGMENTS = "SCAN_SEGMENTS"
ENV_USER_POOL_ID = "USER_POOL_ID"
ENV_USER_POOL_CLIENT_ID = "USER_POOL_CLIENT_ID"
ENV_JWKS_URL = "JWKS_URL"
ENV_SECURE_COOKIES = "SECURE_COOKIES"
# The API function: what the campaign routes schedule and start, and the send function it
# invokes for a transactional message.
ENV_SEGMENTS_DIR = "SEGMENTS_DIR"
ENV_CAMPAIGN_STATE_MACHINE_ARN = "CAMPAIGN_STATE_MACHINE_ARN"
ENV_CAMPAIGN_SCHEDULE_GROUP = "CAMPAIGN_SCHEDULE_GROUP"
ENV_CAMPAIGN_SCHEDULER_ROLE_ARN = "CAMPAIGN_SCHEDULER_ROLE_ARN"
ENV_CAMPAIGN_SCHEDULE_DLQ_ARN = "CAMPAIGN_SCHEDULE_DLQ_ARN"
ENV_DEPLOYED_CHANNELS = "DEPLOYED_CHANNELS"
ENV_SEND_FUNCTION_NAME = "SEND_FUNCTION_NAME"
ENV_JOURNEY_FUNCTION_NAME = "JOURNEY_FUNCTION_NAME"

# Source of every event Kizuna itself puts on the bus; inbound rules exclude it.
KIZUNA_EVENT_SOURCE = "kizuna"
# Source of the shop's events put through the HTTP API (POST /machine/events): an inbound
# source like any producer's (never ``kizuna``, which the bus policy refuses).
SHOP_API_SOURCE = "shop.api"


class _FunctionSettings(BaseSettings):
    """Environment variables by exact name; unrelated ones (AWS_*, POWERTOOLS_*) ignored."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")


class _TableSettings(_FunctionSettings):
    CUSTOMERS_TABLE: str = Field(min_length=1)
    ACTIVITY_TABLE: str = Field(min_length=1)


class _ConfigSettings(_FunctionSettings):
    # JSON of kizuna.runtime.config.KizunaConfig; empty means the defaults.
    KIZUNA_CONFIG: str = "{}"


class _BusSettings(_TableSettings):
    """A function that puts events on Kizuna's bus."""

    EVENT_BUS_NAME: str = Field(min_length=1)


class _QueueSettings(_BusSettings):
    """A function consuming an SQS queue, which dead-letters a record itself."""

    DEAD_LETTER_QUEUE_URL: str = Field(min_length=1)
    # Receives after which the handler dead-letters a record itself (keeps the reason);
    # must match the queue's maxReceiveCount.
    MAX_RECEIVE_COUNT: int = Field(default=5, ge=1)


class IngestSettings(_QueueSettings, _ConfigSettings):
    """Environment of the ingest function: with the Scheduler group an erasure schedules
    its sweep in (:mod:`kizuna.domain.privacy`), the role the sweep runs as, and the ARNs
    of its own queue (the sweep's target) and dead-letter queue."""

    ERASURE_SWEEP_GROUP: str = Field(min_length=1)
    ERASURE_SWEEP_ROLE_ARN: str = Field(min_length=1)
    INGEST_QUEUE_ARN: str = Field(min_length=1)
    DEAD_LETTER_QUEUE_ARN: str = Field(min_length=1)


@lru_cache(maxsize=1)
def ingest_settings() -> IngestSettings:
    return IngestSettings()


class _JourneyStartSettings(_FunctionSettings):
    """What a function that starts cohort executions needs: the journeys' ARN prefix, and
    the Scheduler group, role and dead-letter queue of the one-time schedules that start an
    execution due later (:class:`kizuna.adapters.stepfunctions.StepFunctionsStarter`)."""

    JOURNEY_ARN_PREFIX: str = Field(min_length=1)
    JOURNEY_SCHEDULE_GROUP: str = Field(min_length=1)
    JOURNEY_SCHEDULER_ROLE_ARN: str = Field(min_length=1)
    JOURNEY_SCHEDULE_DLQ_ARN: str = ""


class EvaluateSettings(_QueueSettings, _ConfigSettings, _JourneyStartSettings):
    """Environment of the evaluate function."""

    PROGRAMS_DIR: str | None = None
    SEGMENTS_DIR: str | None = None
    # what runs an at_once program's entry segment (invoked asynchronously)
    SEND_FUNCTION_NAME: str | None = None
    JOURNEY_FUNCTION_NAME: str | None = None


@lru_cache(maxsize=1)
def evaluate_settings() -> EvaluateSettings:
    return EvaluateSettings()


class JourneySettings(_TableSettings, _ConfigSettings, _JourneyStartSettings):
    """Environment of the journey helper function (a cohort's branches, splits and local
    times; it starts the child executions)."""

    PROGRAMS_DIR: str | None = None
    SEGMENTS_DIR: str | None = None


@lru_cache(maxsize=1)
def journey_settings() -> JourneySettings:
    return JourneySettings()


class SweepSettings(_BusSettings, _ConfigSettings):
    """Environment of the sweep function (scheduled triggers; the splits' winner rules, for
    which it reads the programs)."""

    PROGRAMS_DIR: str | None = None
    SEGMENTS_DIR: str | None = None
    PRINT_FILES_BUCKET: str = Field(
        default="", description="direct mail's print files; none: the daily job is off"
    )


@lru_cache(maxsize=1)
def sweep_settings() -> SweepSettings:
    return SweepSettings()


class ScoreSettings(_BusSettings, _ConfigSettings):
    """Environment of the score function (the daily scoring state machine's tasks)."""

    PRODUCTS_TABLE: str = Field(min_length=1)
    SNAPSHOTS_TABLE: str = Field(min_length=1)
    ANALYTICS_BUCKET: str = Field(min_length=1, description="work files and snapshot export")


@lru_cache(maxsize=1)
def score_settings() -> ScoreSettings:
    return ScoreSettings()


class DeliverySettings(_BusSettings, _ConfigSettings):
    """What a function that sends messages needs: the templates, the signing key, and each
    channel's settings (the send and campaign functions)."""

    TEMPLATES_DIR: str | None = None
    SEGMENTS_DIR: str | None = None
    SIGNING_SECRET_ARN: str = Field(min_length=1, description="HMAC key for coupons/unsubscribe")
    EMAIL_FROM: str = Field(min_length=3)
    SES_CONFIGURATION_SET: str = Field(min_length=1)
    UNSUBSCRIBE_URL: str = Field(min_length=1, description="the unsubscribe function URL")
    PUSH_APPLICATION_ID: str = ""
    LINE_TOKEN_SECRET_ARN: str = ""
    LINE_TOKEN_PARAMETER: str = Field(default="", description="or an SSM SecureString name")
    SMS_SENDER_ID: str = ""


class SendSettings(DeliverySettings, _JourneyStartSettings):
    """Environment of the send function (the journeys' Send task; it starts the child
    executions of members deferred by quiet hours)."""

    PROGRAMS_DIR: str | None = None
    PRODUCTS_TABLE: str = Field(min_length=1, description="recommendations per product")


@lru_cache(maxsize=1)
def send_settings() -> SendSettings:
    return SendSettings()


class FeedbackSettings(_QueueSettings):
    """Environment of the feedback function (SES events, SMS opt-outs, push tokens)."""


@lru_cache(maxsize=1)
def feedback_settings() -> FeedbackSettings:
    return FeedbackSettings()


class UnsubscribeSettings(_ConfigSettings):
    """Environment of the unsubscribe function (Lambda function URL); the configuration
    for its preference topics."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    SIGNING_SECRET_ARN: str = Field(min_length=1)
    # read (GetItem) to check the token against the customer's consent: never written
    CUSTOMERS_TABLE: str = Field(min_length=1)


@lru_cache(maxsize=1)
def unsubscribe_settings() -> UnsubscribeSettings:
    return UnsubscribeSettings()


class LinkSettings(UnsubscribeSettings):
    """The same function's whole environment: the unsubscribe settings, and the ledger for
    tracked link clicks (``/l/<token>``)."""

    # ledger entries: click_at stamped (UpdateItem on an existing entry, never a new one)
    ACTIVITY_TABLE: str = Field(min_length=1)


@lru_cache(maxsize=1)
def link_settings() -> LinkSettings:
    return LinkSettings()


class LineWebhookSettings(_FunctionSettings):
    """Environment of the LINE webhook function (Lambda function URL)."""

    EVENT_BUS_NAME: str = Field(min_length=1)
    # HMAC key of account-link nonces (the coupon/unsubscribe signing secret, derived)
    SIGNING_SECRET_ARN: str = Field(min_length=1)
    # read only: customers by LINE user id (index) and by id
    CUSTOMERS_TABLE: str = Field(min_length=1)
    # one claim per webhook event id (redeliveries change nothing twice)
    ACTIVITY_TABLE: str = Field(min_length=1)
    LINE_CHANNEL_SECRET_ARN: str = ""
    LINE_CHANNEL_SECRET_PARAMETER: str = Field(default="", description="or an SSM SecureString")

    @model_validator(mode="after")
    def _one_secret(self) -> LineWebhookSettings:
        if bool(self.LINE_CHANNEL_SECRET_ARN) == bool(self.LINE_CHANNEL_SECRET_PARAMETER):
            raise ValueError(
                "give exactly one of LINE_CHANNEL_SECRET_ARN and LINE_CHANNEL_SECRET_PARAMETER"
            )
        return self


@lru_cache(maxsize=1)
def line_webhook_settings() -> LineWebhookSettings:
    return LineWebhookSettings()


class CampaignSettings(DeliverySettings):
    """Environment of the campaign function (every task of the campaign state machine)."""

    CAMPAIGNS_TABLE: str = Field(min_length=1)
    ANALYTICS_BUCKET: str = Field(min_length=1, description="the campaign manifests")
    CHUNK_SIZE: int = Field(default=500, ge=1, le=1000, description="recipients per object")
    # parallel-scan segments of the audience freeze (0: the config's scoring.scan_segments)
    SCAN_SEGMENTS: int = Field(default=0, ge=0, le=1000)


@lru_cache(maxsize=1)
def campaign_settings() -> CampaignSettings:
    return CampaignSettings()


class ApiSettings(_BusSettings, _ConfigSettings):
    """Environment of the API function (HTTP API and console)."""

    USER_POOL_ID: str = Field(min_length=1)
    USER_POOL_CLIENT_ID: str = Field(min_length=1)
    # The pool's JWKS; empty means Cognito's well-known URL of USER_POOL_ID (the local
    # runtime points it at its own stand-in).
    JWKS_URL: str = ""
    AWS_REGION: str = Field(default="us-east-1", min_length=1)
    # Secure cookies (HTTPS); only the local server on 127.0.0.1 turns this off.
    SECURE_COOKIES: bool = True
    PROGRAMS_DIR: str | None = None
    TEMPLATES_DIR: str | None = None
    SEGMENTS_DIR: str | None = None
    # Campaigns (kizuna.services.campaign_admin): the definitions, and their EventBridge
    # Scheduler schedules, which start the campaign state machine with the scheduler role
    # (the stack outputs CampaignsTableName, CampaignStateMachineArn,
    # CampaignScheduleGroupName, CampaignSchedulerRoleArn, CampaignScheduleDlqArn).
    CAMPAIGNS_TABLE: str = Field(min_length=1)
    CAMPAIGN_STATE_MACHINE_ARN: str = Field(min_length=1)
    CAMPAIGN_SCHEDULE_GROUP: str = Field(min_length=1)
    CAMPAIGN_SCHEDULER_ROLE_ARN: str = Field(min_length=1)
    CAMPAIGN_SCHEDULE_DLQ_ARN: str = ""
    # The channels the stack sends on (kizuna.delivery.deployed, comma-separated): a campaign
    # on none of them is refused; empty (a stack from before it): not checked.
    DEPLOYED_CHANNELS: str = ""
    # Reports (read under reports/) and static audience lists (campaigns/<id>/list.csv).
    ANALYTICS_BUCKET: str = Field(min_length=1)
    SNAPSHOTS_TABLE: str = Field(min_length=1, description="daily snapshot cells (reports)")
    # The send function, invoked synchronously for transactional messages; empty: the
    # message routes answer 503.
    SEND_FUNCTION_NAME: str = ""
    # The signing secret: card tokens (/cards) are signed with a key derived from it; empty:
    # the cards routes answer 503.
    SIGNING_SECRET_ARN: str = ""


@lru_cache(maxsize=1)
def api_settings() -> ApiSettings:
    return ApiSettings()
