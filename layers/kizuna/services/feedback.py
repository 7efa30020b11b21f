"""The feedback function: SES delivery events -> suppression (through ingest) and ledger.

An event acts only on a message Kizuna sent: the ledger entry its customer, execution and
step tags name must exist, and hold SES's message id or none yet (an outcome never
recorded). Anything else -- an untagged message, another sender's mail, a message id that
is not the entry's -- is not an error: it is ignored, logged without personal data and
counted (``FeedbackIgnored`` by ``reason``). The EventBridge rule already takes only the
events of the stack's own configuration set.

A permanent bounce or a complaint of a known customer suppresses the addresses SES names
(hashed as the send-time check hashes them: the address that bounced, not the customer's
address of today). Every event (delivery, open, click too) is stamped on the message's
ledger entry, with SES's message id when the entry has none (the reconciliation sweep
settles such entries from these). Idempotent: a stamp keeps the earliest time it was seen
(``open_at`` is the first open, whatever the order events come in), suppressions are
last-writer-wins facts.

A reject or a rendering failure (SES accepted the API call, then never delivered the
message) is stamped the same way (``reject_at``, ``rendering_failure_at``) and, in the same
write, gives the entry a ``not_delivered_reason`` (``rejected: Bad content``, ``rendering
failure``; the first one stays). The entry's outcome stays ``sent`` -- SES took the message,
the send's counters say so, and it is never sent again -- and the reason is what the
customer's timeline shows. Each one stamped counts once in ``EmailNotDelivered`` (by
``reason``: ``reject``, ``rendering_failure``); a redelivered event counts no more.

A mailbox provider's report about the mail rather than the recipient's complaint (a
``provider_report``: Feedback-Type ``auth-failure``, the message failed SPF, DKIM or DMARC
there, or ``virus``) suppresses and stamps nothing: it is logged (its type, program and step,
no customer nor address) and counted in ``EmailProviderReport`` by ``reason`` (the type),
which the stack alarms on. A redelivered report counts again (nothing is written to tell it
from a new one): the alarm asks for a look, not a tally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.delivery.feedback import (
    NOT_DELIVERED,
    FeedbackAction,
    FeedbackError,
    parse_ses_event,
    suppression,
)
from kizuna.delivery.ledger import NOT_DELIVERED_REASON
from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import address_hash
from kizuna.domain.timestamps import iso
from kizuna.ports import DeadLetterSink, Inbound, MessageStamps
from kizuna.runtime.clock import Clock
from kizuna.runtime.observability import (
    PROVIDER_REPORT_METRIC,
    REASON_DIMENSION,
    count,
    logger,
)
from kizuna.services.failures import DeadLetterPolicy


class FeedbackStore(MessageStamps, Protocol):
    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def customers_by_phone_hash(self, phone_hash: str) -> list[str]: ...

    def ledger_entries(
        self, customer_ids: Sequence[str], execution: str, step: str
    ) -> dict[str, dict[str, Any]]: ...


IGNORED_METRIC = "FeedbackIgnored"
NOT_DELIVERED_METRIC = "EmailNotDelivered"


def _count(name: str, reason: str) -> None:
    count(name, 1, REASON_DIMENSION, reason)


def count_ignored(reason: str) -> None:
    """One ``FeedbackIgnored`` metric (dimension ``reason``) for an event not acted on."""
    _count(IGNORED_METRIC, reason)


def count_not_delivered(kind: str) -> None:
    """One ``EmailNotDelivered`` metric (dimension ``reason``: ``reject``,
    ``rendering_failure``) for a message SES accepted and never delivered."""
    _count(NOT_DELIVERED_METRIC, kind)


def count_provider_report(feedback_type: str) -> None:
    """One ``EmailProviderReport`` metric (dimension ``reason``: ``auth-failure``,
    ``virus``) for a mailbox provider's report that is not the recipient's complaint."""
    _count(PROVIDER_REPORT_METRIC, feedback_type)


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
            except (FeedbackError, ValueError) as exc:  # ValueError: a body that is not JSON
                # the log says why in fixed words; the message, which can quote the event,
                # is kept in the dead letter with the body (the event as it arrived)
                if isinstance(exc, FeedbackError):
                    logger.warning("feedback rejected", reason=exc.code, fields=exc.fields)
                else:
                    logger.warning(
                        "feedback rejected", reason="unreadable", error=type(exc).__name__
                    )
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
        """Stamp the event on its ledger entry (a reject or a rendering failure with the
        entry's ``not_delivered_reason``, counted) and, for a permanent bounce or a
        complaint, suppress the addresses it names; ignore (counted) an event for a message
        Kizuna did not send. A provider's report (``auth-failure``, ``virus``) is logged and
        counted only: never a suppression nor a stamp."""
        if action.kind == "provider_report":
            # the stack's own configuration set sent it (the rule takes no other): counted
            # whatever the tags name, with no ledger read (the program and step are Kizuna's
            # own tag values: which content, never whom)
            logger.warning(
                "email provider report",
                reason=action.reason,
                program=action.program,
                step=action.step,
            )
            count_provider_report(action.reason)
            return
        at = action.occurred_at or self.clock.now()
        cid, execution, step = action.customer_id, action.execution, action.step
        if cid is None or not execution or not step:
            self._ignore(action, "untagged")
            return
        entry = self.store.ledger_entries([cid], execution, step).get(cid)
        if entry is None:
            self._ignore(action, "no_ledger_entry")
            return
        sent_as = entry.get("provider_message_id")
        if sent_as and str(sent_as) != action.message_id:
            self._ignore(action, "other_message")
            return
        if action.kind in NOT_DELIVERED:
            stamped = self.store.stamp_message(
                cid,
                execution,
                step,
                f"{action.kind}_at",
                iso(at),
                action.message_id,
                also={NOT_DELIVERED_REASON: action.reason},
            )
            if stamped:  # not again for a redelivered event
                logger.warning(
                    "email not delivered", reason=action.kind, customer_id=cid, step=step
                )
                count_not_delivered(action.kind)
            return
        self.store.stamp_message(
            cid, execution, step, f"{action.kind}_at", iso(at), action.message_id
        )
        if not action.suppress:
            return
        if cid not in self.store.get_customers([cid]):
            self._ignore(action, "unknown_customer")  # a bounce never creates a customer
            return
        if not action.address_hashes:
            self._ignore(action, "no_address")  # never "every address": only what bounced
            return
        for hashed in action.address_hashes:
            self.inbound.put_inbound(
                suppression(cid, at, action.channel, action.kind, None, hashed=hashed)
            )
        logger.info(
            "channel suppressed", channel=str(action.channel), reason=action.kind, customer_id=cid
        )

    @staticmethod
    def _ignore(action: FeedbackAction, reason: str) -> None:
        logger.info("feedback ignored", reason=reason, kind=action.kind)
        count_ignored(reason)
