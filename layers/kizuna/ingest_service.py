"""The ingest function's work: an SQS batch of inbound events becomes customer state.

Per record: validate; apply to the customer with an optimistic-concurrency write; buffer
the activity items and derived events. After the batch: write activity (BatchWriteItem)
and put derived events (PutEvents, 10 at a time). A record is only reported successful once
all of that is stored; anything that can never succeed (invalid event) or has run out of
receives goes to the dead-letter queue *with its reason*, and the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.activity import ActivityItem
from kizuna.clock import Clock
from kizuna.config import KizunaConfig
from kizuna.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.events import DerivedEvent
from kizuna.events.envelope import EventRejected, ParsedEvent, parse_inbound
from kizuna.observability import logger
from kizuna.ports import CustomerStore, DeadLetter, DeadLetterSink, EventPublisher, VersionConflict

MAX_CONFLICT_RETRIES = 8


@dataclass
class IngestStats:
    processed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    derived: int = 0
    conflicts: int = 0


def ingest_one(
    store: CustomerStore,
    event: ParsedEvent,
    cfg: KizunaConfig,
    clock: Clock,
    stats: IngestStats | None = None,
) -> tuple[list[ActivityItem], list[DerivedEvent]]:
    """Apply one event to its customer, retrying on concurrent modification."""
    for _ in range(MAX_CONFLICT_RETRIES):
        current = store.get_customers([event.customer_id]).get(event.customer_id)
        base = current or Customer(customer_id=event.customer_id)
        applied = apply_events(base, [event], cfg, clock.now())
        if not applied.changed and current is not None:
            return applied.activity, applied.derived
        try:
            store.save_customer(applied.customer, expected_version=base.version)
        except VersionConflict:
            if stats:
                stats.conflicts += 1
            continue
        return applied.activity, applied.derived
    raise VersionConflict(f"gave up after {MAX_CONFLICT_RETRIES} concurrent modifications")


@dataclass
class _Pending:
    record: SQSRecord
    activity: list[ActivityItem] = field(default_factory=list)
    derived: list[DerivedEvent] = field(default_factory=list)


class IngestService:
    def __init__(
        self,
        store: CustomerStore,
        publisher: EventPublisher,
        dead_letters: DeadLetterSink,
        cfg: KizunaConfig,
        clock: Clock,
        max_receive_count: int,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.cfg = cfg
        self.clock = clock
        self.max_receive_count = max_receive_count
        self.stats = IngestStats()
        self._pending: dict[str, _Pending] = {}

    # -- one batch ------------------------------------------------------------------------
    def process_batch(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event; return the partial batch response Lambda expects."""
        self._pending = {}
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event["Records"], handler=self._record):
            processor.process()
        failed = {str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]}
        failed |= self._flush()
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in sorted(failed)]}

    def _record(self, record: SQSRecord) -> None:
        try:
            parsed = parse_inbound(record.body)
        except EventRejected as exc:
            self.stats.rejected += 1
            logger.warning(
                "event rejected",
                error_type=exc.error_type,
                reason=exc.reason,
                message_id=record.message_id,
            )
            self._dead_letter(record, exc.error_type, exc.reason)
            return
        try:
            activity, derived = ingest_one(self.store, parsed, self.cfg, self.clock, self.stats)
        except Exception as exc:
            if self._exhausted(record):
                self._dead_letter(record, type(exc).__name__, str(exc))
                return
            logger.exception(
                "event failed, will be retried",
                detail_type=parsed.detail_type,
                message_id=record.message_id,
            )
            raise
        self.stats.processed += 1
        self._pending[record.message_id] = _Pending(record, activity, derived)

    def _flush(self) -> set[str]:
        """Store buffered activity and put derived events; return message ids to retry."""
        failed: set[str] = set()
        pending = list(self._pending.values())
        for p in pending:
            try:
                self.store.put_activity(p.activity)
            except Exception as exc:  # a throttled batch write: retry this record
                logger.exception("activity write failed", message_id=p.record.message_id)
                failed |= self._retry_or_dead_letter(p.record, exc)
        events: list[DerivedEvent] = []
        owner: list[str] = []
        for p in pending:
            if p.record.message_id in failed:
                continue
            events.extend(p.derived)
            owner.extend(p.record.message_id for _ in p.derived)
        if events:
            bad = self.publisher.publish(events)
            self.stats.derived += len(events) - len(bad)
            for mid in {owner[i] for i in bad}:
                failed |= self._retry_or_dead_letter(
                    self._pending[mid].record, RuntimeError("PutEvents failed for derived events")
                )
        return failed

    # -- failures -------------------------------------------------------------------------
    def _exhausted(self, record: SQSRecord) -> bool:
        return int(record.attributes.approximate_receive_count) >= self.max_receive_count

    def _retry_or_dead_letter(self, record: SQSRecord, exc: Exception) -> set[str]:
        if self._exhausted(record):
            try:
                self._dead_letter(record, type(exc).__name__, str(exc))
            except RuntimeError:
                return {record.message_id}
            return set()
        return {record.message_id}

    def _dead_letter(self, record: SQSRecord, error_type: str, reason: str) -> None:
        letter = DeadLetter(
            message_id=record.message_id,
            body=record.body,
            error_type=error_type,
            reason=reason,
            receive_count=int(record.attributes.approximate_receive_count),
        )
        if self.dead_letters.send([letter]):
            raise RuntimeError("could not dead-letter the record; leaving it to SQS redrive")
        self.stats.dead_lettered += 1
