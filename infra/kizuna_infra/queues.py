"""The queue settings every event-driven Kizuna function uses: bus rule -> SQS (with DLQ).

A rule's target retries for a day and then dead-letters; the work queue redrives to its
dead-letter queue after ``max_receive_count`` receives; the consumer reports partial batch
failures. Every queue is SQS-encrypted and refuses non-TLS requests.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

DEFAULT_MAX_RECEIVE_COUNT = 5
# SQS's recommendation for Lambda consumers: visibility timeout >= 6 x function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
DLQ_RETENTION = Duration.days(14)
TARGET_MAX_EVENT_AGE = Duration.hours(24)
TARGET_RETRY_ATTEMPTS = 185  # EventBridge's maximum
BATCH_SIZE = 10
MAX_BATCHING_WINDOW = Duration.seconds(1)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        retention_period=DLQ_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )


def work_queue(
    scope: Construct,
    construct_id: str,
    *,
    dead_letters: sqs.IQueue,
    consumer_timeout: Duration,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        visibility_timeout=Duration.seconds(
            consumer_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
        ),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(
            queue=dead_letters, max_receive_count=max_receive_count
        ),
    )


def queue_target(queue: sqs.IQueue, dead_letters: sqs.IQueue) -> targets.SqsQueue:
    """A rule target that retries delivery for a day, then dead-letters the event."""
    return targets.SqsQueue(
        queue,
        dead_letter_queue=dead_letters,
        max_event_age=TARGET_MAX_EVENT_AGE,
        retry_attempts=TARGET_RETRY_ATTEMPTS,
    )


def queue_event_source(queue: sqs.IQueue) -> sources.SqsEventSource:
    return sources.SqsEventSource(
        queue,
        batch_size=BATCH_SIZE,
        max_batching_window=MAX_BATCHING_WINDOW,
        report_batch_item_failures=True,
    )
