"""The ingest function's work: an SQS batch of inbound events becomes customer state.

1. Every record is validated on its own (Powertools batch processing): an event that can
   never succeed goes to the dead-letter queue *with its reason* and the rest goes on.
2. The valid events are grouped per customer: one BatchGetItem for the batch, activity
   items with BatchWriteItem (before the state: they are the fact log), one
   optimistic-concurrency PutItem per customer (re-read and re-applied on conflict).
3. Derived events go out with PutEvents (10 a call).

Two event types are not folded into state: ``customer.erase`` (handed to the eraser) and
``push.opened`` (the app opened from a push: ``open_at`` stamped on that message's ledger
entry, :meth:`IngestService._push_opens`).

A record is reported successful only when all of that is stored. A record that fails is
retried by SQS; on its last receive it is dead-lettered with the reason instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.delivery.coupons import Redemption
from kizuna.delivery.tags import parse_message_ref
from kizuna.domain.customer import Customer, unreadable_error, unreadable_of
from kizuna.domain.ingest import Applied, HistoryNeeded, apply_events, facts_from_activity
from kizuna.domain.privacy import ErasureReport
from kizuna.domain.timestamps import iso
from kizuna.events import ERASE_TYPE, DerivedEvent, PushOpened
from kizuna.events.custom import BUILTIN, Vocabulary, vocabulary
from kizuna.events.envelope import EventRejected, ParsedEvent, parse_inbound
from kizuna.events.inbound import OrderPlaced
from kizuna.ports import (
    CustomerStore,
    DeadLetterSink,
    EventPublisher,
    MessageStamps,
    VersionConflict,
)
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger
from kizuna.services.failures import DeadLetterPolicy

MAX_CONFLICT_RETRIES = 8


@dataclass
class IngestStats:
    processed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    derived: int = 0
    conflicts: int = 0
    customers_saved: int = 0
    erased: int = 0
    dropped_erased: int = 0
    push_opens: int = 0  # push.opened events that stamped a ledger entry


def apply_to_customers(
    store: CustomerStore,
    by_customer: Mapping[str, Sequence[ParsedEvent]],
    cfg: KizunaConfig,
    now: datetime,
    stats: IngestStats | None = None,
    *,
    bulk: bool = False,
    vocab: Vocabulary | None = None,
    together: Mapping[str, Mapping[str, Hashable]] | None = None,
) -> dict[str, Applied | Exception]:
    """Apply each customer's events, write their activity, and save each customer at most
    once.

    One batched read for all customers; the activity of every customer is written (one
    BatchWriteItem) *before* any customer is saved, so a fact the state holds always has
    its activity item (the customer's fact log, which settled history is rebuilt from, see
    :class:`kizuna.domain.ingest.HistoryNeeded`), and a redelivery finds nothing to write
    again. A customer saved concurrently by someone else is re-read, re-applied and its
    activity re-written. The outcome per customer is what was applied, or the error.
    ``bulk`` folds history (the importer): see :func:`kizuna.domain.ingest.apply_events`.
    An event the customer's state refuses is in its outcome's ``refused`` (not applied).
    ``vocab``: the configuration's vocabulary (built from ``cfg`` if not given).
    ``together`` (the importer: customer -> event id -> the record, a row, it is of): a
    record's events are applied all or none (see :func:`_fold`).
    """
    stats = stats or IngestStats()
    vocab = vocab or vocabulary(cfg)
    horizon = now + cfg.event_time.max_future_skew  # no valid event is later (parse_inbound)
    out: dict[str, Applied | Exception] = {}
    try:
        current = store.get_customers(list(by_customer), unreadable_ok=True)
    except Exception as exc:  # the whole read failed: every customer is retried
        return dict.fromkeys(by_customer, exc)
    # an item this version cannot read: that customer's events fail (retried, then
    # dead-lettered with the reason), never applied to a new customer; the others go on
    unreadable = unreadable_of(current)
    try:  # an event in flight when its customer was erased must not re-create them
        erased = store.erased(
            [cid for cid in by_customer if cid not in current and cid not in unreadable], now
        )
    except Exception as exc:
        return dict.fromkeys(by_customer, exc)
    first: dict[str, Applied] = {}
    for cid, events in by_customer.items():
        if cid in unreadable:
            out[cid] = unreadable_error(current, cid)
            continue
        if cid in erased:
            stats.dropped_erased += len(events)
            out[cid] = Applied(customer=Customer(customer_id=cid), erased=True)
            continue
        try:
            base = current.get(cid) or Customer(customer_id=cid)
            records = (together or {}).get(cid)
            first[cid] = _fold(store, base, events, cfg, now, bulk, horizon, vocab, records)
        except Exception as exc:
            out[cid] = exc
    try:
        store.put_activity([item for a in first.values() for item in a.activity])
    except Exception as exc:  # e.g. throttled BatchWriteItem: nothing saved, all retried
        out.update(dict.fromkeys(first, exc))
        return out
    for cid, applied in first.items():
        try:
            out[cid] = _save(
                store,
                current.get(cid),
                applied,
                by_customer[cid],
                cfg,
                now,
                stats,
                bulk,
                horizon,
                vocab,
                (together or {}).get(cid),
            )
            redeem(store, by_customer[cid])
        except Exception as exc:
            out[cid] = exc
    return out


def redeem(store: CustomerStore, events: Sequence[ParsedEvent]) -> None:
    """Mark the coupons the customer's orders name as redeemed (conditional: only their own,
    issued and unexpired at the order's time; a redelivered order finds them redeemed and
    changes nothing). A code that redeems nothing is counted in the log, never shown."""
    wanted = [
        Redemption(
            customer_id=ev.customer_id,
            code=code,
            order_id=ev.detail.order_id,
            at=ev.detail.occurred_at,
        )
        for ev in events
        if isinstance(ev.detail, OrderPlaced)
        for code in ev.detail.coupon_codes
    ]
    if not wanted:
        return
    done = store.redeem_coupons(wanted)
    if done < len(wanted):
        logger.info("coupon codes not redeemed", named=len(wanted), redeemed=done)


def _fold(
    store: CustomerStore,
    base: Customer,
    events: Sequence[ParsedEvent],
    cfg: KizunaConfig,
    now: datetime,
    bulk: bool,
    horizon: datetime | None = None,
    vocab: Vocabulary | None = None,
    records: Mapping[str, Hashable] | None = None,
) -> Applied:
    """Apply the events; when they concern settled facts, with the customer's fact log.

    ``records`` (event id -> the record it is of: an import's row, an order and its
    cancellation): a record's events are applied all or none. When the state refuses one,
    the record's other events are in ``refused`` too, with its reason, and the events are
    folded again without them, before anything is written (the activity is that fold's)."""
    options: dict[str, Any] = {"bulk": bulk, "horizon": horizon, "vocab": vocab}
    log: list[ParsedEvent] | None = None

    def fold(left: list[ParsedEvent]) -> Applied:
        nonlocal log
        try:
            return apply_events(base, left, cfg, now, **options)
        except HistoryNeeded:
            if log is None:  # read once, whatever the folds again
                log = facts_from_activity(base.customer_id, store.fact_log(base.customer_id))
            return apply_events(base, left, cfg, now, log=log, **options)

    applied = fold(list(events))
    withheld: dict[str, str] = {}
    while records:
        reason_of = {records[e]: why for e, why in applied.refused.items() if e in records}
        siblings = {
            ev.event_id: reason_of[records[ev.event_id]]
            for ev in events
            if ev.event_id in records
            and records[ev.event_id] in reason_of
            and ev.event_id not in applied.refused
            and ev.event_id not in withheld
        }
        if not siblings:
            break
        withheld |= applied.refused | siblings
        applied = fold([ev for ev in events if ev.event_id not in withheld])
    applied.refused = withheld | applied.refused
    return applied


def _save(
    store: CustomerStore,
    customer: Customer | None,
    applied: Applied,
    events: Sequence[ParsedEvent],
    cfg: KizunaConfig,
    now: datetime,
    stats: IngestStats,
    bulk: bool,
    horizon: datetime | None = None,
    vocab: Vocabulary | None = None,
    records: Mapping[str, Hashable] | None = None,
) -> Applied:
    """Save one customer (its activity is written); on a version conflict re-read,
    re-apply, re-write the activity and try again."""
    cid = applied.customer.customer_id
    for attempt in range(MAX_CONFLICT_RETRIES):
        if attempt:
            customer = store.get_customers([cid]).get(cid)
            if customer is None and store.erased([cid], now):  # erased meanwhile
                stats.dropped_erased += len(events)
                return Applied(customer=Customer(customer_id=cid), erased=True)
            base = customer or Customer(customer_id=cid)
            applied = _fold(store, base, events, cfg, now, bulk, horizon, vocab, records)
            store.put_activity(applied.activity)
        if not applied.changed:  # (a new customer whose every event was refused: not created)
            return applied
        try:
            store.save_customer(
                applied.customer, expected_version=customer.version if customer else 0
            )
        except VersionConflict:
            stats.conflicts += 1
            continue
        stats.customers_saved += 1
        return applied
    raise VersionConflict(f"gave up after {MAX_CONFLICT_RETRIES} concurrent writes")


def ingest_one(
    store: CustomerStore, event: ParsedEvent, cfg: KizunaConfig, clock: Clock
) -> Applied:
    """Apply a single event (tools and benchmarks); raise if it could not be saved (an event
    the state refuses is in the outcome's ``refused``)."""
    result = apply_to_customers(store, {event.customer_id: [event]}, cfg, clock.now())
    outcome = result[event.customer_id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@dataclass
class _Batch:
    records: dict[str, SQSRecord] = field(default_factory=dict)
    events: dict[str, ParsedEvent] = field(default_factory=dict)  # message id -> event
    failed: set[str] = field(default_factory=set)


@dataclass(eq=False)
class IngestService:
    store: CustomerStore
    publisher: EventPublisher
    dead_letters: DeadLetterSink
    cfg: KizunaConfig
    clock: Clock
    max_receive_count: InitVar[int]
    eraser: Callable[[str], ErasureReport] | None = None
    # the ledger push.opened stamps (the store, on AWS); None: opens are not recorded
    stamps: MessageStamps | None = None
    # the configuration's custom attributes and events (kizuna.events.custom); from ``cfg``
    # if not given
    vocab: Vocabulary | None = None
    stats: IngestStats = field(default_factory=IngestStats, init=False)
    failures: DeadLetterPolicy = field(init=False)

    def __post_init__(self, max_receive_count: int) -> None:
        self.failures = DeadLetterPolicy(self.dead_letters, max_receive_count)
        self.vocab = self.vocab or vocabulary(self.cfg)

    def process_batch(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event; return the partial batch response Lambda expects."""
        batch = _Batch()
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event["Records"], handler=self._validator(batch)):
            processor.process()
        batch.failed |= {
            str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]
        }
        self._apply(batch)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(batch.failed)]}

    # -- 1. validate ----------------------------------------------------------------------
    def _validator(self, batch: _Batch) -> Callable[[SQSRecord], None]:
        def validate(record: SQSRecord) -> None:
            batch.records[record.message_id] = record
            try:
                batch.events[record.message_id] = parse_inbound(
                    record.body, self.clock.now(), self.cfg.event_time, self.vocab or BUILTIN
                )
            except EventRejected as exc:
                self._reject(record, exc.error_type, exc.reason, exc.logged)

        return validate

    def _reject(
        self, record: SQSRecord, error_type: str, reason: str, logged: str | None = None
    ) -> None:
        """Dead-letter an event that can never be applied, with the reason (which names the
        field, never its value; ``logged``: the reason as the log line says it, where the
        letter's quotes the producer); RuntimeError if the letter could not be kept."""
        self.stats.rejected += 1
        logger.warning(
            "event rejected",
            error_type=error_type,
            reason=reason if logged is None else logged,
            message_id=record.message_id,
        )
        self.failures.keep(record, error_type, reason)
        self.stats.dead_lettered += 1

    # -- 2. apply, 3. store -----------------------------------------------------------------
    def _erase(self, batch: _Batch) -> None:
        """Erasure requests are not folded into state: the customer's other events in the
        batch are dropped with them (there is nobody left to apply them to)."""
        requests = {mid: ev for mid, ev in batch.events.items() if ev.detail_type == ERASE_TYPE}
        for cid in dict.fromkeys(ev.customer_id for ev in requests.values()):
            mids = [mid for mid, ev in batch.events.items() if ev.customer_id == cid]
            request_ids = [
                getattr(requests[m].detail, "request_id", None) for m in mids if m in requests
            ]
            try:
                if self.eraser is None:
                    raise RuntimeError("erasure is not configured for this ingest")
                report = self.eraser(cid)
            except Exception as exc:
                logger.warning("erasure failed", request_ids=request_ids, error=type(exc).__name__)
                for mid in mids:
                    self._fail(batch, mid, exc)
            else:
                # the customer id is not logged: the requester's reference identifies it (as
                # sent: CustomerErase refuses one that is an email address or phone number)
                logger.info(
                    "customer erased",
                    request_ids=request_ids,
                    customer_found=report.customer_found,
                    activity_deleted=report.activity_deleted,
                    journeys_stopped=report.journeys_stopped,
                    sweep_scheduled=report.sweep_scheduled is not None,
                )
                self.stats.erased += 1
                self.stats.processed += len(mids)
            for mid in mids:
                del batch.events[mid]

    def _push_opens(self, batch: _Batch) -> None:
        """``push.opened``: ``open_at`` on the customer's own ledger entry the reference
        names, if it was sent on push (the key holds the event's customer id, so a forged
        reference reaches no other customer's ledger); the earliest open stays. A reference
        that matches nothing changes nothing and is logged (without the customer or the
        reference)."""
        opens = {
            mid: (ev.customer_id, ev.detail)
            for mid, ev in batch.events.items()
            if isinstance(ev.detail, PushOpened)
        }
        for mid, (customer_id, detail) in opens.items():
            del batch.events[mid]
            if self.stamps is None:
                logger.warning("push open not recorded: no ledger", message_id=mid)
                self.stats.processed += 1
                continue
            execution, step = parse_message_ref(detail.message)
            try:
                stamped = self.stamps.stamp_message(
                    customer_id,
                    execution,
                    step,
                    "open_at",
                    iso(detail.occurred_at),
                    channel="push",
                )
            except Exception as exc:
                self._fail(batch, mid, exc)
                continue
            self.stats.processed += 1
            if stamped:
                self.stats.push_opens += 1
            else:
                logger.info("push open matched no unopened push message", message_id=mid)

    def _apply(self, batch: _Batch) -> None:
        self._erase(batch)
        self._push_opens(batch)
        by_customer: dict[str, list[ParsedEvent]] = defaultdict(list)
        owners: dict[str, list[str]] = defaultdict(list)
        for mid, ev in batch.events.items():
            by_customer[ev.customer_id].append(ev)
            owners[ev.customer_id].append(mid)
        if not by_customer:
            return
        outcomes = apply_to_customers(
            self.store, by_customer, self.cfg, self.clock.now(), self.stats, vocab=self.vocab
        )
        applied: list[tuple[str, Applied]] = []
        for cid, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                logger.warning(
                    "customer update failed", customer_id=cid, error=type(outcome).__name__
                )
                for mid in owners[cid]:
                    self._fail(batch, mid, outcome)
            else:
                applied.append((cid, outcome))
        derived: list[DerivedEvent] = []
        derived_owner: list[str] = []
        for cid, a in applied:
            for mid in owners[cid]:
                refused = a.refused.get(batch.events[mid].event_id)
                if refused is not None:
                    self._refuse(batch, mid, refused)
                    continue
                events = a.derived_by_event.get(batch.events[mid].event_id, [])
                derived += events
                derived_owner += [mid] * len(events)
            self.stats.processed += sum(
                1 for mid in owners[cid] if batch.events[mid].event_id not in a.refused
            )
        if derived:
            bad = self.publisher.publish(derived)
            self.stats.derived += len(derived) - len(bad)
            for mid in {derived_owner[i] for i in bad}:
                self._fail(batch, mid, RuntimeError("PutEvents failed for derived events"))

    # -- failures -------------------------------------------------------------------------
    def _refuse(self, batch: _Batch, message_id: str, reason: str) -> None:
        """An event the customer's state refused (kizuna.domain.ingest.EventRefused)."""
        try:
            self._reject(batch.records[message_id], "InvalidEvent", reason)
        except RuntimeError:  # the letter could not be kept: SQS delivers it again
            batch.failed.add(message_id)

    def _fail(self, batch: _Batch, message_id: str, exc: Exception) -> None:
        """Retry the record, or on its last receive dead-letter it with the reason."""
        if self.failures.retry(batch.records[message_id], exc):
            batch.failed.add(message_id)
        else:
            self.stats.dead_lettered += 1
