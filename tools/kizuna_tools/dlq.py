"""Dead-letter queues as an operator sees them: what is there, why, and replaying it.

A dead message keeps its body exactly as it arrived and its reason in message attributes
(``kizuna-error-type``, ``kizuna-error``: see :mod:`kizuna.adapters.sqs`).
Redrive sends each body back to the queue the DLQ serves and deletes it from the DLQ only
once it is there; replaying is safe because every consumer is idempotent (ingest folds
facts by id, evaluate starts journeys under deterministic names).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# logical queue name -> the stack output holding its DLQ URL (kizuna_infra.names)
DLQ_OUTPUTS: Mapping[str, str] = {
    "ingest": "IngestDeadLetterQueueUrl",
    "evaluate": "EvaluateDeadLetterQueueUrl",
    "feedback": "FeedbackDeadLetterQueueUrl",
}
ERROR_TYPE = "kizuna-error-type"
ERROR = "kizuna-error"
BATCH = 10


@dataclass(frozen=True)
class DeadMessage:
    message_id: str
    receipt_handle: str
    body: str
    error_type: str
    error: str
    receive_count: int


@dataclass
class RedriveReport:
    moved: int = 0
    failed: int = 0
    error_types: Counter[str] = field(default_factory=Counter)


def resolve_dlq_url(queue: str, outputs: Mapping[str, str] | None) -> str:
    """A logical name (ingest, evaluate, feedback) via the stack outputs, or a URL as is."""
    if queue.startswith(("https://", "http://")):
        return queue
    if queue not in DLQ_OUTPUTS:
        raise ValueError(f"unknown queue {queue!r}: one of {', '.join(DLQ_OUTPUTS)} or a URL")
    if not outputs or DLQ_OUTPUTS[queue] not in outputs:
        raise ValueError(f"no output {DLQ_OUTPUTS[queue]} (give --stack or --queue-url)")
    return outputs[DLQ_OUTPUTS[queue]]


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    resp = cloudformation.describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in resp["Stacks"][0].get("Outputs", [])}


def _attr(message: Mapping[str, Any], name: str) -> str:
    return str(message.get("MessageAttributes", {}).get(name, {}).get("StringValue", "-"))


def _dead(message: Mapping[str, Any]) -> DeadMessage:
    return DeadMessage(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        error_type=_attr(message, ERROR_TYPE),
        error=_attr(message, ERROR),
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
    )


class DeadLetterQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self.url = url

    def depth(self) -> int:
        attrs = self._client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def source_url(self) -> str:
        """The queue whose redrive policy targets this DLQ (its consumer's queue)."""
        urls = self._client.list_dead_letter_source_queues(QueueUrl=self.url).get("queueUrls", [])
        if len(urls) != 1:
            raise ValueError(f"{self.url} serves {len(urls)} queues: give the target queue URL")
        return str(urls[0])

    def _receive(self, visibility: int) -> list[DeadMessage]:
        resp = self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=BATCH,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        return [_dead(m) for m in resp.get("Messages", [])]

    def peek(self, limit: int = 100, visibility: int = 30) -> list[DeadMessage]:
        """Up to ``limit`` messages, made visible again at once (nothing is removed)."""
        seen: dict[str, DeadMessage] = {}
        while len(seen) < limit:
            batch = [m for m in self._receive(visibility) if m.message_id not in seen]
            if not batch:
                break
            seen.update((m.message_id, m) for m in batch)
        messages = list(seen.values())[:limit]
        handles = list(seen.values())
        for start in range(0, len(handles), BATCH):
            self._client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                    for i, m in enumerate(handles[start : start + BATCH])
                ],
            )
        return messages

    def redrive(
        self,
        target_url: str,
        limit: int | None = None,
        visibility: int = 60,
    ) -> RedriveReport:
        """Send messages back to ``target_url``; delete each from the DLQ once it is there."""
        report = RedriveReport()
        while limit is None or report.moved < limit:
            batch = self._receive(visibility)
            if limit is not None:
                batch = batch[: limit - report.moved]
            if not batch:
                break
            resp = self._client.send_message_batch(
                QueueUrl=target_url,
                Entries=[{"Id": str(i), "MessageBody": m.body} for i, m in enumerate(batch)],
            )
            sent = [batch[int(s["Id"])] for s in resp.get("Successful", [])]
            report.failed += len(resp.get("Failed", []))
            if sent:
                self._client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                        for i, m in enumerate(sent)
                    ],
                )
            report.moved += len(sent)
            report.error_types.update(m.error_type for m in sent)
            if resp.get("Failed"):
                break
        return report
