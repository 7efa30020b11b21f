"""Builds the real adapters once per Lambda container (the handlers' only factory).

One factory per function, and each imports what it builds (boto3, its adapters, its service)
in its own body: importing this module loads nothing but the standard library, so a
handler's cold start pays for its own function only, and boto3 is loaded on the first
invocation, when the first client is created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from kizuna.adapters.dynamodb import DynamoStore, ProductStore, SnapshotStore
    from kizuna.adapters.eventbridge import EventBridgePublisher
    from kizuna.adapters.s3 import S3Objects
    from kizuna.adapters.stepfunctions import StepFunctionsStarter
    from kizuna.delivery.channels import Channel
    from kizuna.delivery.unsubscribe import UnsubscribeLinks
    from kizuna.events.custom import Vocabulary
    from kizuna.programs.model import Program
    from kizuna.runtime.settings import (
        DeliverySettings,
        EvaluateSettings,
        JourneySettings,
        SendSettings,
    )
    from kizuna.scoring.requests import ScoringRequest
    from kizuna.services.campaign import CampaignService
    from kizuna.services.cohort import CohortService
    from kizuna.services.evaluate import EvaluateService
    from kizuna.services.feedback import FeedbackService
    from kizuna.services.ingest import IngestService
    from kizuna.services.line_webhook import LineWebhookService
    from kizuna.services.links import LinkClickService
    from kizuna.services.reconcile import ReconcileService
    from kizuna.services.send import SendService
    from kizuna.services.sweep import SweepRequest
    from kizuna.services.transactional import TransactionalService
    from kizuna.services.unsubscribe import UnsubscribeService

# seconds a channel's AWS call (SES, SNS, Pinpoint) may take to connect and to answer
PROVIDER_CONNECT_TIMEOUT = 5
PROVIDER_READ_TIMEOUT = 10


def deployed_vocabulary(config_json: str) -> Vocabulary:
    """The shop's declared vocabulary in the deployed configuration (``KIZUNA_CONFIG``)."""
    from kizuna.events.custom import vocabulary
    from kizuna.runtime.config import load_config

    return vocabulary(load_config(config_json))


def programs(
    explicit_dir: str | None, config_json: str, segments_dir: str | None = None
) -> list[Program]:
    """The deployed programs (``explicit_dir``, else bundled), validated against the deployed
    configuration and the named segments (``segments_dir``, else bundled)."""
    from kizuna.programs.bundle import load_deployed_programs, resolve_dir

    directory = str(resolve_dir("programs", explicit_dir))
    vocab = deployed_vocabulary(config_json)
    return cast("list[Program]", list(load_deployed_programs(directory, vocab, segments_dir)))


@lru_cache(maxsize=1)
def ingest_service() -> IngestService:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.eventbridge import EventBridgePublisher
    from kizuna.adapters.scheduler import ErasureSweepSchedules
    from kizuna.adapters.sqs import SqsDeadLetters
    from kizuna.domain.privacy import ErasureReport, erase
    from kizuna.events.custom import vocabulary
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import ingest_settings
    from kizuna.services.ingest import IngestService

    s = ingest_settings()
    store = DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE)
    clock = CurrentClock()
    cfg = load_config(s.KIZUNA_CONFIG)

    @lru_cache(maxsize=1)
    def sweeps() -> ErasureSweepSchedules:  # at the first erasure, not at cold start
        return ErasureSweepSchedules(
            boto3.client("scheduler"),
            s.ERASURE_SWEEP_GROUP,
            s.ERASURE_SWEEP_ROLE_ARN,
            s.INGEST_QUEUE_ARN,
            s.DEAD_LETTER_QUEUE_ARN,
        )

    def eraser(customer_id: str) -> ErasureReport:
        return erase(customer_id, store, store, clock.now(), sweeps=sweeps())

    return IngestService(
        store=store,
        publisher=EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
        dead_letters=SqsDeadLetters(boto3.client("sqs"), s.DEAD_LETTER_QUEUE_URL),
        cfg=cfg,
        clock=clock,
        max_receive_count=s.MAX_RECEIVE_COUNT,
        eraser=eraser,
        stamps=store,
        # the custom attributes and events of the configuration, built at cold start
        vocab=vocabulary(cfg),
    )


@lru_cache(maxsize=1)
def evaluate_service() -> EvaluateService:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.eventbridge import EventBridgePublisher
    from kizuna.adapters.lambda_async import AsyncInvoker, JourneyLauncher
    from kizuna.adapters.sqs import SqsDeadLetters
    from kizuna.programs.bundle import load_deployed_segments
    from kizuna.programs.evaluate import Evaluator
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import evaluate_settings
    from kizuna.services.evaluate import EvaluateService

    s = evaluate_settings()
    store = DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE)
    evaluator = Evaluator(
        programs(s.PROGRAMS_DIR, s.KIZUNA_CONFIG, s.SEGMENTS_DIR),
        store,
        JourneyLauncher(
            _starter(s),
            AsyncInvoker(
                boto3.client("lambda"),
                {
                    name: fn
                    for name, fn in (
                        ("send", s.SEND_FUNCTION_NAME),
                        ("journey", s.JOURNEY_FUNCTION_NAME),
                    )
                    if fn
                },
            ),
        ),
        EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
        load_config(s.KIZUNA_CONFIG),
        CurrentClock(),
        segments=load_deployed_segments(s.SEGMENTS_DIR, deployed_vocabulary(s.KIZUNA_CONFIG)),
    )
    return EvaluateService(
        evaluator,
        SqsDeadLetters(boto3.client("sqs"), s.DEAD_LETTER_QUEUE_URL),
        s.MAX_RECEIVE_COUNT,
    )


def _starter(s: EvaluateSettings | JourneySettings | SendSettings) -> StepFunctionsStarter:
    """Cohort executions: started now, or by a journey timer when due later."""
    import boto3

    from kizuna.adapters.stepfunctions import JourneyTimers, StepFunctionsStarter
    from kizuna.runtime.clock import CurrentClock

    return StepFunctionsStarter(
        boto3.client("stepfunctions"),
        s.JOURNEY_ARN_PREFIX,
        JourneyTimers(
            boto3.client("scheduler"),
            s.JOURNEY_SCHEDULE_GROUP,
            s.JOURNEY_SCHEDULER_ROLE_ARN,
            s.JOURNEY_SCHEDULE_DLQ_ARN,
        ),
        CurrentClock(),
    )


def _cohorts(s: JourneySettings | SendSettings, sender: SendService | None = None) -> CohortService:
    """A cohort's steps over the deployed programs, starting child executions."""
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.programs.bundle import load_deployed_segments
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.services.cohort import CohortService

    return CohortService(
        programs(s.PROGRAMS_DIR, s.KIZUNA_CONFIG, s.SEGMENTS_DIR),
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        _starter(s),
        load_config(s.KIZUNA_CONFIG),
        CurrentClock(),
        sender=sender,
        # the send function decides the branches fused with its sends: it has them too
        segments=load_deployed_segments(s.SEGMENTS_DIR, deployed_vocabulary(s.KIZUNA_CONFIG)),
    )


@lru_cache(maxsize=1)
def journey_service() -> CohortService:
    """The journey function: a cohort's branches, splits and local times."""
    from kizuna.runtime.settings import journey_settings

    return _cohorts(journey_settings())


@lru_cache(maxsize=1)
def sweep_parts() -> tuple[DynamoStore, EventBridgePublisher]:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.eventbridge import EventBridgePublisher
    from kizuna.runtime.settings import sweep_settings

    s = sweep_settings()
    return (
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
    )


@dataclass(frozen=True)
class ScoringAnalytics:
    objects: S3Objects
    catalog: ProductStore
    snapshots: SnapshotStore


@lru_cache(maxsize=1)
def score_parts() -> tuple[DynamoStore, EventBridgePublisher, ScoringAnalytics]:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore, ProductStore, SnapshotStore
    from kizuna.adapters.eventbridge import EventBridgePublisher
    from kizuna.adapters.s3 import S3Objects
    from kizuna.runtime.settings import score_settings

    s = score_settings()
    dynamodb = boto3.resource("dynamodb")
    return (
        DynamoStore(dynamodb, s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        EventBridgePublisher(boto3.client("events"), s.EVENT_BUS_NAME),
        ScoringAnalytics(
            S3Objects(boto3.client("s3"), s.ANALYTICS_BUCKET),
            ProductStore(dynamodb, s.PRODUCTS_TABLE),
            SnapshotStore(dynamodb, s.SNAPSHOTS_TABLE),
        ),
    )


@lru_cache(maxsize=1)
def sweep_job() -> Callable[[SweepRequest], dict[str, int]]:
    """The sweep function's one call: ``run_sweep`` with this container's parts bound."""
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import sweep_settings
    from kizuna.services.sweep import run_sweep

    store, publisher = sweep_parts()
    s = sweep_settings()
    cfg = load_config(s.KIZUNA_CONFIG)
    direct_mail = None
    if s.PRINT_FILES_BUCKET:
        import boto3

        from kizuna.adapters.s3 import S3Objects
        from kizuna.services.direct_mail import write_previous_day

        direct_mail = partial(
            write_previous_day,
            time_zone=cfg.contact.default_time_zone,
            rows=store,
            customers=store,  # read again at print time (docs/channels/DM.md)
            preferences=cfg.preferences,
            ledger=store,  # a withheld row's ledger entry says so
            # the bucket's own KMS key encrypts (no AES256 header)
            files=S3Objects(boto3.client("s3"), s.PRINT_FILES_BUCKET, server_side_encryption=None),
            events=publisher,
        )
    return partial(
        run_sweep,
        store=store,
        watermarks=store,
        publisher=publisher,
        cfg=cfg,
        clock=CurrentClock(),
        programs=programs(s.PROGRAMS_DIR, s.KIZUNA_CONFIG, s.SEGMENTS_DIR),
        winners=store,
        direct_mail=direct_mail,
    )


@lru_cache(maxsize=1)
def score_job() -> Callable[[ScoringRequest], dict[str, Any]]:
    """The score function's one call: ``run_scoring`` with this container's parts bound."""
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import score_settings
    from kizuna.scoring.job import run_scoring

    store, publisher, analytics = score_parts()
    cfg = load_config(score_settings().KIZUNA_CONFIG)
    return partial(
        run_scoring,
        store=store,
        publisher=publisher,
        cfg=cfg,
        clock=CurrentClock(),
        analytics=analytics,
    )


def signing_keys(secret_arn: str) -> list[bytes]:
    """The HMAC key(s) from Secrets Manager (cached 5 minutes). A JSON secret
    ``{"current": ..., "previous": ...}`` lets a rotation keep old links valid."""
    import json

    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_secret(secret_arn, max_age=300)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except ValueError:
        return [text.encode()]
    if isinstance(data, dict):
        return [str(data[k]).encode() for k in ("current", "previous") if data.get(k)]
    return [text.encode()]


@dataclass(frozen=True)
class Delivery:
    """What both send paths build the same way: the channels, the unsubscribe links, the
    coupon key, and the SNS client (for the carrier opt-out check)."""

    channels: dict[str, Channel]
    links: UnsubscribeLinks
    coupon_secret: bytes
    sns: Any


def delivery(s: DeliverySettings) -> Delivery:
    import boto3
    from botocore.config import Config

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.delivery.cards import CardChannel
    from kizuna.delivery.channels import LinePush, PinpointPush, SesEmail, SnsSms, line_token_from
    from kizuna.delivery.direct_mail import DmCollector
    from kizuna.delivery.links import TrackedLinks
    from kizuna.delivery.unsubscribe import UnsubscribeLinks
    from kizuna.delivery.webhook import WebhookPost, webhook_key_from
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.services.send import derive_key

    # send_with_retry owns retries: botocore's own would stack under it and could resend;
    # a provider call answers in well under a second: one hung for botocore's default 60 s
    # would run the send function into its timeout (the group's rest left outcome_unknown)
    once = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=PROVIDER_CONNECT_TIMEOUT,
        read_timeout=PROVIDER_READ_TIMEOUT,
    )
    cfg = load_config(s.KIZUNA_CONFIG)
    key = signing_keys(s.SIGNING_SECRET_ARN)[0]
    links = UnsubscribeLinks(
        s.UNSUBSCRIBE_URL, derive_key(key, "unsubscribe"), now=CurrentClock().now
    )
    # LINE reports no clicks: its links to the shop's declared hosts go through the same
    # function URL, signed alike
    tracked = TrackedLinks(
        s.UNSUBSCRIBE_URL,
        derive_key(key, "unsubscribe"),
        hosts=cfg.tracked_links,
        now=CurrentClock().now,
    )
    sns = boto3.client("sns", config=once)
    channels: dict[str, Channel] = {
        "email": SesEmail(
            boto3.client("sesv2", config=once), s.EMAIL_FROM, s.SES_CONFIGURATION_SET, links
        ),
        "sms": SnsSms(sns, s.SMS_SENDER_ID or None),
    }
    if s.PUSH_APPLICATION_ID:
        channels["push"] = PinpointPush(
            boto3.client("pinpoint", config=once), s.PUSH_APPLICATION_ID
        )
    # direct mail collects into the day's print batch (the daily sweep writes the files)
    channels["dm"] = DmCollector(
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        CurrentClock(),
        cfg.contact.default_time_zone,
    )
    if s.LINE_TOKEN_SECRET_ARN:
        channels["line"] = LinePush(
            line_token_from(secret_name=s.LINE_TOKEN_SECRET_ARN), links=tracked
        )
    elif s.LINE_TOKEN_PARAMETER:
        channels["line"] = LinePush(
            line_token_from(parameter_name=s.LINE_TOKEN_PARAMETER), links=tracked
        )
    webhooks = cfg.webhooks
    if webhooks:
        channels["webhook"] = WebhookPost(webhooks, webhook_key_from())
    # cards need nothing outside Kizuna: kept in the activity table for the shop's site
    channels["card"] = CardChannel(
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        CurrentClock().now,
    )
    return Delivery(channels, links, derive_key(key, "coupon"), sns)


def carrier_opt_outs(sns: Any) -> Callable[[str], bool]:
    """Is a number on SNS's opt-out list (it replied STOP): one CheckIfPhoneNumberIsOptedOut
    call, made only for a recipient the contact policy would send an SMS."""

    def opted_out(phone: str) -> bool:
        return bool(sns.check_if_phone_number_is_opted_out(phoneNumber=phone)["isOptedOut"])

    return opted_out


@lru_cache(maxsize=1)
def send_service() -> SendService:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore, ProductStore
    from kizuna.adapters.inbound import BusInbound
    from kizuna.delivery.templates import Renderer
    from kizuna.programs.bundle import resolve_dir
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import send_settings
    from kizuna.services.send import SendService

    s = send_settings()
    cfg = load_config(s.KIZUNA_CONFIG)
    d = delivery(s)
    return SendService(
        programs(s.PROGRAMS_DIR, s.KIZUNA_CONFIG, s.SEGMENTS_DIR),
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        Renderer(
            resolve_dir("templates", s.TEMPLATES_DIR), default_locale=cfg.contact.default_locale
        ),
        d.channels,
        BusInbound(boto3.client("events"), s.EVENT_BUS_NAME),
        cfg,
        CurrentClock(),
        coupon_secret=d.coupon_secret,
        unsubscribe=d.links,
        sms_opted_out=carrier_opt_outs(d.sns),
        products=ProductStore(boto3.resource("dynamodb"), s.PRODUCTS_TABLE),
    )


@lru_cache(maxsize=1)
def transactional_service() -> TransactionalService:
    """The send function's transactional messages: :func:`send_service`'s send path."""
    from kizuna.services.transactional import TransactionalService

    sender = send_service()
    return TransactionalService(sender, cast("DynamoStore", sender.store))


@lru_cache(maxsize=1)
def cohort_sends() -> CohortService:
    """The send function's cohort steps: a group's messages through :func:`send_service`."""
    from kizuna.runtime.settings import send_settings

    return _cohorts(send_settings(), send_service())


@lru_cache(maxsize=1)
def campaign_service() -> CampaignService:
    import boto3

    from kizuna.adapters.campaigns import CampaignEvents, CampaignStore
    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.inbound import BusInbound
    from kizuna.adapters.s3 import S3Objects
    from kizuna.programs.bundle import load_deployed_segments, resolve_dir
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE, campaign_settings
    from kizuna.services.campaign import CampaignService

    s = campaign_settings()
    cfg = load_config(s.KIZUNA_CONFIG)
    d = delivery(s)
    dynamodb = boto3.resource("dynamodb")
    events = boto3.client("events")
    return CampaignService(
        CampaignStore(dynamodb, s.CAMPAIGNS_TABLE),
        DynamoStore(dynamodb, s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        S3Objects(boto3.client("s3"), s.ANALYTICS_BUCKET),
        d.channels,
        CampaignEvents(events, s.EVENT_BUS_NAME, KIZUNA_EVENT_SOURCE),
        cfg,
        CurrentClock(),
        templates_root=resolve_dir("templates", s.TEMPLATES_DIR),
        segments=load_deployed_segments(s.SEGMENTS_DIR, deployed_vocabulary(s.KIZUNA_CONFIG)),
        coupon_secret=d.coupon_secret,
        unsubscribe=d.links,
        chunk_size=s.CHUNK_SIZE,
        scan_segments=s.SCAN_SEGMENTS or None,
        inbound=BusInbound(events, s.EVENT_BUS_NAME),
        sms_opted_out=carrier_opt_outs(d.sns),
    )


@lru_cache(maxsize=1)
def feedback_service() -> FeedbackService:
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.inbound import BusInbound
    from kizuna.adapters.sqs import SqsDeadLetters
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.settings import feedback_settings
    from kizuna.services.feedback import FeedbackService

    s = feedback_settings()
    return FeedbackService(
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        BusInbound(boto3.client("events"), s.EVENT_BUS_NAME),
        SqsDeadLetters(boto3.client("sqs"), s.DEAD_LETTER_QUEUE_URL),
        CurrentClock(),
        s.MAX_RECEIVE_COUNT,
    )


@lru_cache(maxsize=1)
def reconcile_service() -> ReconcileService:
    """The reconciliation sweep of stale ``sending`` ledger entries (run by the feedback
    function on its schedule: it settles ledger entries from provider evidence)."""
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.settings import feedback_settings
    from kizuna.services.reconcile import ReconcileService

    s = feedback_settings()
    return ReconcileService(
        DynamoStore(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE), CurrentClock()
    )


@lru_cache(maxsize=1)
def unsubscribe_service() -> UnsubscribeService:
    import boto3

    from kizuna.adapters.dynamodb import CustomerTable
    from kizuna.adapters.inbound import BusInbound
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import unsubscribe_settings
    from kizuna.services.send import derive_key
    from kizuna.services.unsubscribe import UnsubscribeService

    s = unsubscribe_settings()
    keys = [derive_key(k, "unsubscribe") for k in signing_keys(s.SIGNING_SECRET_ARN)]
    return UnsubscribeService(
        keys,
        BusInbound(boto3.client("events"), s.EVENT_BUS_NAME, source="kizuna.unsubscribe"),
        CurrentClock(),
        CustomerTable(boto3.resource("dynamodb"), s.CUSTOMERS_TABLE),
        load_config(s.KIZUNA_CONFIG).preferences,
    )


@lru_cache(maxsize=1)
def link_click_service() -> LinkClickService:
    """Tracked link clicks (``GET /l/<token>`` on the unsubscribe function's URL)."""
    import boto3

    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import link_settings
    from kizuna.services.links import LinkClickService
    from kizuna.services.send import derive_key

    s = link_settings()
    keys = [derive_key(k, "unsubscribe") for k in signing_keys(s.SIGNING_SECRET_ARN)]
    # the customers table is never read here: the store's customers side stays unused
    store = DynamoStore(boto3.resource("dynamodb"), s.ACTIVITY_TABLE, s.ACTIVITY_TABLE)
    # a token is followed only to a host the configuration declares (tracked_links.hosts)
    return LinkClickService(keys, store, CurrentClock(), load_config(s.KIZUNA_CONFIG).tracked_links)


def line_webhook_service() -> LineWebhookService:
    import boto3

    from kizuna.adapters.dynamodb import LineWebhookStore
    from kizuna.adapters.inbound import BusInbound
    from kizuna.delivery.channels import line_token_from
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.settings import line_webhook_settings
    from kizuna.services.line_webhook import LineWebhookService
    from kizuna.services.send import derive_key

    s = line_webhook_settings()
    keys = [derive_key(k, "line-link") for k in signing_keys(s.SIGNING_SECRET_ARN)]
    secret = line_token_from(
        secret_name=s.LINE_CHANNEL_SECRET_ARN or None,
        parameter_name=s.LINE_CHANNEL_SECRET_PARAMETER or None,
    )
    dynamodb = boto3.resource("dynamodb")
    return LineWebhookService(
        secret,
        keys,
        BusInbound(boto3.client("events"), s.EVENT_BUS_NAME, source="kizuna.line"),
        LineWebhookStore(dynamodb, s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE),
        CurrentClock(),
    )


def sms_opted_out_numbers() -> list[str]:
    import boto3

    from kizuna.delivery.channels import SnsSms

    return list(SnsSms(boto3.client("sns")).opted_out_numbers())


@lru_cache(maxsize=1)
def api_app() -> APIGatewayHttpResolver:
    """The HTTP API and console (:mod:`kizuna.api`)."""
    from datetime import datetime

    import boto3

    from kizuna.adapters.audit import AuditLog
    from kizuna.adapters.campaigns import CampaignStore
    from kizuna.adapters.cognito import CognitoSignIn, HttpJwks, jwks_url
    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.eventbridge import ShopEventBus
    from kizuna.adapters.s3 import S3Objects
    from kizuna.adapters.scheduler import CampaignSchedules
    from kizuna.adapters.send_function import SendFunction
    from kizuna.adapters.stepfunctions import Executions
    from kizuna.api.app import build_app
    from kizuna.api.auth import TokenVerifier
    from kizuna.api.deps import ApiDeps
    from kizuna.delivery.deployed import parse_channels
    from kizuna.runtime.clock import CurrentClock
    from kizuna.runtime.config import load_config
    from kizuna.runtime.settings import SHOP_API_SOURCE, api_settings

    s = api_settings()
    dynamodb = boto3.resource("dynamodb")
    clock = CurrentClock()

    def now() -> datetime:
        return clock.now()

    verifier = TokenVerifier(
        region=s.AWS_REGION,
        user_pool_id=s.USER_POOL_ID,
        client_id=s.USER_POOL_CLIENT_ID,
        jwks=_jwks_loader(s.JWKS_URL or jwks_url(s.AWS_REGION, s.USER_POOL_ID), HttpJwks),
    )
    store = DynamoStore(dynamodb, s.CUSTOMERS_TABLE, s.ACTIVITY_TABLE)
    deps = ApiDeps(
        config=load_config(s.KIZUNA_CONFIG),
        store=store,
        audit=AuditLog(dynamodb, s.ACTIVITY_TABLE),
        verifier=verifier,
        sign_in=CognitoSignIn(boto3.client("cognito-idp"), s.USER_POOL_CLIENT_ID),
        now=now,
        programs_dir=_dir_or_none("programs", s.PROGRAMS_DIR),
        templates_dir=_dir_or_none("templates", s.TEMPLATES_DIR),
        segments_dir=_dir_or_none("segments", s.SEGMENTS_DIR),
        campaigns=CampaignStore(dynamodb, s.CAMPAIGNS_TABLE),
        campaign_schedules=CampaignSchedules(
            boto3.client("scheduler"),
            s.CAMPAIGN_SCHEDULE_GROUP,
            s.CAMPAIGN_STATE_MACHINE_ARN,
            s.CAMPAIGN_SCHEDULER_ROLE_ARN,
            s.CAMPAIGN_SCHEDULE_DLQ_ARN or None,
        ),
        campaign_executions=Executions(boto3.client("stepfunctions")),
        secure_cookies=s.SECURE_COOKIES,
        reports=S3Objects(boto3.client("s3"), s.ANALYTICS_BUCKET) if s.ANALYTICS_BUCKET else None,
        events=ShopEventBus(boto3.client("events"), s.EVENT_BUS_NAME, SHOP_API_SOURCE),
        messages=SendFunction(_send_invoker(), s.SEND_FUNCTION_NAME)
        if s.SEND_FUNCTION_NAME
        else None,
        cards=_cards(store, s.SIGNING_SECRET_ARN, now) if s.SIGNING_SECRET_ARN else None,
        deployed_channels=parse_channels(s.DEPLOYED_CHANNELS),
    )
    return build_app(deps)


def _cards(store: Any, signing_secret_arn: str, now: Callable[[], Any]) -> Any:
    """The cards routes' service: card tokens under a key derived from the signing secret
    for cards alone (every key of a rotation verifies)."""
    from kizuna.delivery.cards import CardTokens
    from kizuna.services.cards import CardService
    from kizuna.services.send import derive_key

    def keys() -> list[bytes]:  # read when a card route is first called (then cached)
        return [derive_key(k, "cards") for k in signing_keys(signing_secret_arn)]

    return CardService(store, CardTokens(keys, now), now)


def _send_invoker() -> Any:
    """A Lambda client for the synchronous send: no retry of its own (a retry is the API
    client's, with its idempotency key) and a read timeout within API Gateway's 30 s."""
    import boto3
    from botocore.config import Config

    once = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=25)
    return boto3.client("lambda", config=once)


def _jwks_loader(url: str, http: Callable[[str], Any]) -> Callable[[], Any]:
    return cast("Callable[[], Any]", http(url))


def _dir_or_none(kind: str, explicit: str | None) -> Any:
    from kizuna.programs.bundle import resolve_dir

    try:
        return resolve_dir(kind, explicit)
    except (FileNotFoundError, ValueError):
        return None
