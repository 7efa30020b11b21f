"""Inbound events: bus rule -> SQS (with DLQ) -> ingest function.

The handler reports partial batch failures; after ``max_receive_count`` receives SQS moves a
record to the dead-letter queue, and the handler (which knows the validation error) may also
send it there itself with the reason, so nothing is dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kizuna.events import INBOUND_EVENT_TYPES
from kizuna.settings import (
    ENV_ACTIVITY_TABLE,
    ENV_CUSTOMERS_TABLE,
    ENV_DEAD_LETTER_QUEUE_URL,
    ENV_EVENT_BUS_NAME,
    ENV_IDEMPOTENCY_TABLE,
    ENV_KIZUNA_CONFIG,
    KIZUNA_EVENT_SOURCE,
)
from kizuna_infra import names
from kizuna_infra.data import DataTables

DEFAULT_TIMEOUT = Duration.seconds(30)
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_RECEIVE_COUNT = 5
# SQS's recommendation for Lambda consumers: visibility timeout >= 6 x function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
DLQ_RETENTION = Duration.days(14)
TARGET_MAX_EVENT_AGE = Duration.hours(24)
TARGET_RETRY_ATTEMPTS = 185  # EventBridge's maximum
BATCH_SIZE = 10
MAX_BATCHING_WINDOW = Duration.seconds(1)


class Ingest(Construct):
    """Validates inbound events and updates customer state."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        tables: DataTables,
        layers: list[lambda_.ILayerVersion],
        source_root: Path,
        config_json: str = "{}",
        tracing: bool = False,
        timeout: Duration = DEFAULT_TIMEOUT,
        memory_size: int = DEFAULT_MEMORY_MB,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self.tracing = tracing

        # --- Queues --------------------------------------------------------------------
        self.dead_letter_queue = sqs.Queue(
            self,
            names.INGEST_DLQ_ID,
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            names.INGEST_QUEUE_ID,
            visibility_timeout=Duration.seconds(timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )

        # --- Bus -> queue ---------------------------------------------------------------
        self.rule = events.Rule(
            self,
            names.INGEST_RULE_ID,
            event_bus=bus,
            description="Inbound events from producers (not Kizuna's own) to the ingest queue",
            event_pattern=events.EventPattern(
                detail_type=list(INBOUND_EVENT_TYPES),
                source=events.Match.anything_but(KIZUNA_EVENT_SOURCE),
            ),
            targets=[
                targets.SqsQueue(
                    self.queue,
                    dead_letter_queue=self.dead_letter_queue,
                    max_event_age=TARGET_MAX_EVENT_AGE,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                )
            ],
        )

        # --- Function -------------------------------------------------------------------
        self.log_group = logs.LogGroup(self, names.INGEST_LOG_GROUP_ID, retention=log_retention)
        # An explicit role: logs are granted on this function's own log group instead of the
        # account-wide AWSLambdaBasicExecutionRole managed policy.
        self.role = iam.Role(
            self,
            names.INGEST_ROLE_ID,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Kizuna ingest function",
        )
        self.log_group.grant_write(self.role)

        self.function = lambda_.Function(
            self,
            names.INGEST_FUNCTION_ID,
            description="Kizuna ingest: validate inbound events, update customer state",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler=names.FUNCTION_HANDLER,
            code=lambda_.Code.from_asset(
                str(source_root / names.FUNCTIONS_DIR / names.INGEST_FUNCTION_NAME),
                exclude=list(names.ASSET_EXCLUDES),
            ),
            layers=layers,
            memory_size=memory_size,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            environment={
                ENV_CUSTOMERS_TABLE: tables.customers.table_name,
                ENV_ACTIVITY_TABLE: tables.activity.table_name,
                ENV_IDEMPOTENCY_TABLE: tables.idempotency.table_name,
                ENV_EVENT_BUS_NAME: bus.event_bus_name,
                ENV_DEAD_LETTER_QUEUE_URL: self.dead_letter_queue.queue_url,
                ENV_KIZUNA_CONFIG: config_json,
                names.ENV_MAX_RECEIVE_COUNT: str(max_receive_count),
                names.ENV_POWERTOOLS_SERVICE_NAME: names.INGEST_SERVICE_NAME,
                names.ENV_POWERTOOLS_METRICS_NAMESPACE: names.METRICS_NAMESPACE,
                names.ENV_POWERTOOLS_LOG_LEVEL: "INFO",
            },
        )
        # Tells the local runtime which functions/<name>/handler.py this resource runs.
        cfn_function = cast(lambda_.CfnFunction, self.function.node.default_child)
        cfn_function.add_metadata(names.FUNCTION_METADATA_KEY, names.INGEST_FUNCTION_NAME)

        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=BATCH_SIZE,
                max_batching_window=MAX_BATCHING_WINDOW,
                report_batch_item_failures=True,
            )
        )

        # --- Permissions (grant_* only) -------------------------------------------------
        for table in tables.all:
            table.grant_read_write_data(self.function)
        bus.grant_put_events_to(self.function)
        self.dead_letter_queue.grant_send_messages(self.function)
