"""The feedback function: SES delivery events -> suppression (through ingest) and ledger.

A permanent bounce or a complaint suppresses the customer's *current* email address; every
event (delivery, open, click too) is stamped on the message's ledger entry, found by the
execution and step tags the send wrote, with SES's message id when the entry has none (an
outcome never recorded: the reconciliation sweep settles it from these). Idempotent: a
stamp keeps the earliest time it was seen (``open_at`` is the first open, whatever the order
events come in), suppressions are last-writer-wins facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.delivery.feedback import FeedbackAction, FeedbackError, parse_ses_event, suppression
from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import address_hash
from kizuna.domain.timestamps import iso
from kizuna.ports import DeadLetterSink, Inbound
from kizuna.runtime.clock import Clock
from kizuna.runtime.observability import logger
from kizuna.services.failures import DeadLetterPolicy


class FeedbackStore(Protocol):
    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]: ...

    def stamp_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        field: str,
        value: str,
        message_id: str | None = None,
    ) -> bool: ...

    def customers_by_phone_hash(self, phone_hash: str) -> list[str]: ...


class FeedbackService:
    def __init__(
        self,
        store: FeedbackStore,
        inbound: Inbound,
        dead_letters: DeadLetterSink,
        clock: Clock,
        max_receive_count: int,
    ) -> None:
        self.store = store
        self.inbound = inbound
        self.clock = clock
        self.failures = DeadLetterPolicy(dead_letters, max_receive_count)

    def sweep_sms_opt_outs(self, opted_out: Iterable[str]) -> int:
        """Numbers that replied STOP (SNS ListPhoneNumbersOptedOut) -> suppressed customers."""
        now = self.clock.now()
        count = 0
        for number in opted_out:
            for cid in self.store.customers_by_phone_hash(address_hash(number)):
                self.inbound.put_inbound(suppression(cid, now, "sms", "opt_out", number))
                count += 1
        return count

    def process_batch(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event["Records"], handler=self._record_handler()):
            processor.process()
        return {
            "batchItemFailures": [
                {"itemIdentifier": str(f["itemIdentifier"])}
                for f in processor.response()["batchItemFailures"]
            ]
        }

    def _record_handler(self) -> Callable[[SQSRecord], None]:
        def handle(record: SQSRecord) -> None:
            try:
                action = parse_ses_event(record.json_body)
            except (FeedbackError, ValueError) as exc:
                logger.warning("feedback rejected", reason=str(exc))
                self.failures.keep(record, type(exc).__name__, str(exc))
                return
            if action is None:
                return
            try:
                self.apply(action)
            except Exception as exc:
                if self.failures.retry(record, exc):
                    raise

        return handle

    def apply(self, action: FeedbackAction) -> None:
        at = action.occurred_at or self.clock.now()
        cid = action.customer_id
        if cid is None:
            logger.info("feedback without Kizuna tags ignored", kind=action.kind)
            return
        if action.execution and action.step:
            self.store.stamp_message(
                cid, action.execution, action.step, f"{action.kind}_at", iso(at), action.message_id
            )
        if not action.suppress:
            return
        customer = self.store.get_customers([cid]).get(cid)
        address = customer.email if customer else None
        self.inbound.put_inbound(suppression(cid, at, action.channel, action.kind, address))
        logger.info(
            "channel suppressed", channel=str(action.channel), reason=action.kind, customer_id=cid
        )
