"""Event-driven Kizuna functions: bus rule(s) -> SQS (with DLQ) -> function.

A rule's target retries for a day and then dead-letters; the work queue redrives to its
dead-letter queue after ``max_receive_count`` receives; the consumer reports partial batch
failures (and may dead-letter a record itself, with the reason). Every queue is
SQS-encrypted and refuses non-TLS requests. :class:`QueuedFunction` puts it all together.
"""

from __future__ import annotations

from typing import Unpack

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kizuna.adapters.sqs import MAX_MESSAGE_BYTES
from kizuna.runtime.settings import ENV_DEAD_LETTER_QUEUE_URL, ENV_MAX_RECEIVE_COUNT
from kizuna_infra import names
from kizuna_infra.functions import DEFAULT_TIMEOUT, FunctionProps, KizunaFunction

DEFAULT_MAX_RECEIVE_COUNT = 5
# SQS's recommendation for Lambda consumers: visibility timeout >= 6 x function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
DLQ_RETENTION = Duration.days(14)
TARGET_MAX_EVENT_AGE = Duration.hours(24)
TARGET_RETRY_ATTEMPTS = 185  # EventBridge's maximum
BATCH_SIZE = 10
MAX_BATCHING_WINDOW = Duration.seconds(1)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    # Set, not left to the default (256 KiB for queues made before SQS's 1 MiB increase, and
    # still documented so in places): the dead-letter sender cuts a letter's reason to fit
    # kizuna.adapters.sqs.MAX_MESSAGE_BYTES, which must be this queue's limit.
    return sqs.Queue(
        scope,
        construct_id,
        retention_period=DLQ_RETENTION,
        max_message_size_bytes=MAX_MESSAGE_BYTES,
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


class QueuedFunction(KizunaFunction):
    """A :class:`KizunaFunction` fed by its own queue: ``<id>/Queue`` redriving to
    ``<id>/DeadLetterQueue``, beside ``<id>/Function``, ``Role`` and ``LogGroup``.

    The queue's visibility timeout follows the function's timeout; the function consumes it
    in batches, reports partial batch failures, may send to the dead-letter queue, and
    finds its URL and ``max_receive_count`` in its environment. :meth:`add_rule` routes bus
    events to the queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        **props: Unpack[FunctionProps],
    ) -> None:
        super().__init__(scope, construct_id, **props)
        self.dead_letter_queue = dead_letter_queue(self, names.DLQ_ID)
        self.queue = work_queue(
            self,
            names.QUEUE_ID,
            dead_letters=self.dead_letter_queue,
            consumer_timeout=props.get("timeout", DEFAULT_TIMEOUT),
            max_receive_count=max_receive_count,
        )
        self.rules: list[events.Rule] = []
        self.function.add_environment(ENV_DEAD_LETTER_QUEUE_URL, self.dead_letter_queue.queue_url)
        self.function.add_environment(ENV_MAX_RECEIVE_COUNT, str(max_receive_count))
        self.function.add_event_source(queue_event_source(self.queue))
        self.dead_letter_queue.grant_send_messages(self.function)

    def add_rule(
        self,
        rule_id: str,
        *,
        bus: events.IEventBus,
        description: str,
        event_pattern: events.EventPattern,
    ) -> events.Rule:
        """A rule on ``bus`` sending what matches ``event_pattern`` to this queue."""
        rule = events.Rule(
            self,
            rule_id,
            event_bus=bus,
            description=description,
            event_pattern=event_pattern,
            targets=[queue_target(self.queue, self.dead_letter_queue)],
        )
        self.rules.append(rule)
        return rule
