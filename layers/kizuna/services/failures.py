"""What to do with a record that failed: retry it, or on its last receive keep it in the
dead-letter queue with the reason (SQS's own redrive would lose the reason)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kizuna.ports import DeadLetter, DeadLetterSink


class DeadLetterPolicy:
    def __init__(self, sink: DeadLetterSink, max_receive_count: int) -> None:
        self.sink = sink
        self.max_receive_count = max_receive_count
        self.dead_lettered = 0

    def exhausted(self, record: SQSRecord) -> bool:
        return int(record.attributes.approximate_receive_count) >= self.max_receive_count

    def keep(self, record: SQSRecord, error_type: str, reason: str) -> None:
        """Dead-letter now; raise RuntimeError if the letter could not be kept."""
        letter = DeadLetter(
            message_id=record.message_id,
            body=record.body,
            error_type=error_type,
            reason=reason,
            receive_count=int(record.attributes.approximate_receive_count),
        )
        if self.sink.send([letter]):
            raise RuntimeError("could not dead-letter the record; leaving it to SQS redrive")
        self.dead_lettered += 1

    def retry(self, record: SQSRecord, exc: Exception) -> bool:
        """True if SQS should deliver the record again; False if it is now dead-lettered."""
        if self.exhausted(record):
            try:
                self.keep(record, type(exc).__name__, str(exc))
            except RuntimeError:
                return True
            return False
        return True
