"""The evaluate function's work: an SQS batch of bus events -> program decisions.

Records are validated one by one (Powertools batch processing); an event that can never be
evaluated goes to the dead-letter queue with its reason, unless a producer sent it: ingest
receives every producer event and dead-letters the invalid ones itself, so a bad event makes
one letter, not two. The valid ones are evaluated
together (one read of customers and journeys for the batch). Evaluation is idempotent
(deterministic execution names, conditional journey items), so when it fails the whole
batch is simply delivered again.

A derived event whose claim the stored customer does not bear out (kizuna.programs.claims) is
reported as a failed record, so SQS delivers it again after the visibility timeout (the
daily scoring puts its events before it saves); on its last receive evaluate records it as
``skipped: claim_not_in_state`` and it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.events import DERIVED_MODELS, InboundDetail
from kizuna.events.custom import BUILTIN, Vocabulary, vocabulary
from kizuna.events.envelope import (
    EventRejected,
    check_attributes,
    check_occurred_at,
    fact_id,
    parse_envelope,
    validate_detail,
)
from kizuna.ports import DeadLetterSink
from kizuna.programs.evaluate import EvaluateResult, Evaluator, IncomingEvent
from kizuna.runtime.config import EventTimeConfig
from kizuna.runtime.observability import failure, logger
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE
from kizuna.services.failures import DeadLetterPolicy


def incoming(
    raw: str | dict[str, Any],
    now: datetime | None = None,
    limits: EventTimeConfig | None = None,
    vocab: Vocabulary = BUILTIN,
) -> IncomingEvent:
    """Validate a bus event for evaluation; raise EventRejected if it cannot be. A producer's
    event is validated as ingest validates it: by ``vocab`` (the configuration's custom
    events and attributes, :func:`kizuna.events.custom.vocabulary`) and, with ``now``, its
    occurred_at within ``limits``."""
    env = parse_envelope(raw)
    derived = env.source == KIZUNA_EVENT_SOURCE
    model = DERIVED_MODELS.get(env.detail_type) if derived else vocab.inbound_model(env.detail_type)
    if model is None:
        raise EventRejected(
            "UnknownEventType",
            f"detail-type {env.detail_type!r} from {env.source!r} is not evaluated",
            "the detail-type from this source is not evaluated",  # the producer's text: unlogged
        )
    detail = validate_detail(env, model)
    if not derived:
        check_attributes(env.detail_type, detail)
    at: datetime = getattr(detail, "occurred_at", env.time)
    if now is not None and not derived:
        check_occurred_at(env.detail_type, at, now, limits or EventTimeConfig())
    event_id = (
        fact_id(env.id, env.detail_type, detail)
        if isinstance(detail, InboundDetail)
        else str(env.detail.get("event_id"))
    )
    return IncomingEvent(event_id=event_id, detail_type=env.detail_type, time=at, detail=env.detail)


def _from_producer(raw: str) -> bool:
    """Whether the body is a well-formed bus event from a producer (not from Kizuna)."""
    try:
        return parse_envelope(raw).source != KIZUNA_EVENT_SOURCE
    except EventRejected:
        return False


class EvaluateService:
    def __init__(
        self,
        evaluator: Evaluator,
        dead_letters: DeadLetterSink,
        max_receive_count: int,
        vocab: Vocabulary | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.failures = DeadLetterPolicy(dead_letters, max_receive_count)
        # custom events start programs too: validated by the evaluator's configuration
        self.vocab = vocab or vocabulary(evaluator.cfg)

    def process_batch(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        events: dict[str, IncomingEvent] = {}
        records: dict[str, SQSRecord] = {}
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event["Records"], handler=self._validator(events, records)):
            processor.process()
        failed = {str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]}
        order = list(events)
        try:
            result = self.evaluator.evaluate([events[mid] for mid in order])
        except Exception as exc:
            logger.error("evaluation failed; the batch will be retried", **failure(exc))
            failed |= {mid for mid in events if self.failures.retry(records[mid], exc)}
        else:
            self._log(result)
            if result.deferred:
                logger.info(
                    "derived claims not in state yet; delivered again later",
                    records=len(result.deferred),
                )
            failed |= {order[n] for n in result.deferred}
            failed |= {
                order[n]
                for n, error in result.unreadable.items()
                if self.failures.retry(records[order[n]], error)
            }
        return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(failed)]}

    def _validator(
        self, events: dict[str, IncomingEvent], records: dict[str, SQSRecord]
    ) -> Callable[[SQSRecord], None]:
        def validate(record: SQSRecord) -> None:
            records[record.message_id] = record
            try:
                ev = incoming(
                    record.body,
                    self.evaluator.clock.now(),
                    self.evaluator.cfg.event_time,
                    self.vocab,
                )
            except EventRejected as exc:
                if _from_producer(record.body):
                    logger.info(
                        "event not evaluated; ingest dead-letters it",
                        error_type=exc.error_type,
                        reason=exc.logged,
                    )
                    return
                logger.warning("event rejected", error_type=exc.error_type, reason=exc.logged)
                self.failures.keep(record, exc.error_type, exc.reason)
                return
            events[record.message_id] = replace(ev, final=self.failures.exhausted(record))

        return validate

    @staticmethod
    def _log(result: EvaluateResult) -> None:
        for d in result.decisions:
            logger.info(
                "program decision",
                program=d.program,
                decision=d.decision,
                reason=d.reason,
                customer_id=d.customer_id,
            )
