"""Dead-letter queues as an operator sees them: what is there, why, and replaying it.

Kizuna's DLQs hold four kinds of dead letter, and a queue may hold more than one kind (the
ingest DLQ takes both its consumer's dead letters and the bus rule's undeliverable events):

``queue``
    A message its consumer gave up on: the body exactly as it arrived, the reason in
    message attributes (``kizuna-error-type``, ``kizuna-error``: see
    :mod:`kizuna.adapters.sqs`). Replayed to the queue the DLQ serves (or ``--to``).
``rule``
    An event an EventBridge rule could not deliver to its target: the event as the body,
    ``ERROR_CODE``, ``ERROR_MESSAGE``, ``RULE_ARN`` and ``TARGET_ARN`` attributes.
    Replayed to ``TARGET_ARN``.
``schedule``
    A target EventBridge Scheduler could not invoke (after its retry policy): the
    schedule's input as the body, ``ERROR_CODE``, ``ERROR_MESSAGE``, ``EXECUTION_ID``,
    ``SCHEDULE_ARN`` and ``TARGET_ARN`` attributes. Replayed to ``TARGET_ARN`` with the
    same input (a function invoked asynchronously, a state machine started, a queue sent).
    A journey timer (a one-time schedule starting a cohort execution due later, dead-lettered
    to the evaluate DLQ) targets Scheduler's universal ``aws-sdk:sfn:startExecution``: its
    body is the StartExecution request (``StateMachineArn``, ``Name``, ``Input``), replayed
    as that call, under that name; ``ExecutionAlreadyExists`` counts as done (it ran).
``lambda``
    An asynchronous invocation that failed every attempt (the function's on-failure
    destination): a JSON record with ``requestContext`` (the function), ``requestPayload``
    and ``responsePayload`` (``errorType``, ``errorMessage``). Replayed by invoking the
    function asynchronously with ``requestPayload``.

A message leaves the DLQ only once its replay was accepted. Replaying is safe because every
consumer is idempotent (ingest folds facts by id, evaluate and the journey timers start
journeys under deterministic names, a sweep catches up from its watermark and derives the
same event ids).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# logical queue name -> the stack output holding its DLQ URL (kizuna_infra.names)
DLQ_OUTPUTS: Mapping[str, str] = {
    "ingest": "IngestDeadLetterQueueUrl",
    "evaluate": "EvaluateDeadLetterQueueUrl",
    "feedback": "FeedbackDeadLetterQueueUrl",
    "sweep-schedules": "SweepScheduleDeadLetterQueueUrl",
    "feedback-schedules": "FeedbackScheduleDeadLetterQueueUrl",
    "scoring-schedule": "ScoringScheduleDeadLetterQueueUrl",
    "campaign-schedules": "CampaignScheduleDeadLetterQueueUrl",
}
ERROR_TYPE = "kizuna-error-type"
ERROR = "kizuna-error"
BATCH = 10

QUEUE, RULE, SCHEDULE, LAMBDA = "queue", "rule", "schedule", "lambda"
# Scheduler's universal target for StartExecution: the dead letter's body is the request.
SFN_START_EXECUTION_TARGET = "arn:aws:scheduler:::aws-sdk:sfn:startExecution"


@dataclass(frozen=True)
class DeadMessage:
    message_id: str
    receipt_handle: str
    body: str
    error_type: str
    error: str
    receive_count: int
    kind: str = QUEUE
    # where a replay goes: None for the queue the DLQ serves, else a target's ARN
    target: str | None = None
    # what a replay sends (the body, or an on-failure record's request payload)
    payload: str = ""
    source: str = "-"  # the rule or schedule that dead-lettered it, when known


# the reason of a message SQS moved itself (no consumer annotated it)
RECEIVES_EXHAUSTED = "ReceivesExhausted"


@dataclass
class RedriveReport:
    moved: int = 0
    failed: int = 0
    error_types: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def resolve_dlq_url(queue: str, outputs: Mapping[str, str] | None) -> str:
    """A logical name (ingest, evaluate, ...) via the stack outputs, or a URL as is."""
    if queue.startswith(("https://", "http://")):
        return queue
    if queue not in DLQ_OUTPUTS:
        raise ValueError(f"unknown queue {queue!r}: one of {', '.join(DLQ_OUTPUTS)} or a URL")
    if not outputs or DLQ_OUTPUTS[queue] not in outputs:
        raise ValueError(
            f"no output {DLQ_OUTPUTS[queue]}: give --stack NAME, "
            f"or the queue's URL instead of {queue!r}"
        )
    return outputs[DLQ_OUTPUTS[queue]]


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    resp = cloudformation.describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in resp["Stacks"][0].get("Outputs", [])}


def _attributes(message: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(name): str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }


def _on_failure_record(body: str) -> dict[str, Any] | None:
    """A Lambda on-failure destination record, or None."""
    try:
        record = json.loads(body)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    context = record.get("requestContext")
    if not isinstance(context, dict) or not str(context.get("functionArn", "")):
        return None
    if "requestPayload" not in record:
        return None
    return record


def _unqualified(function_arn: str) -> str:
    """``arn:...:function:name:$LATEST`` -> ``arn:...:function:name``."""
    head, _, rest = function_arn.partition(":function:")
    return f"{head}:function:{rest.split(':', 1)[0]}" if rest else function_arn


def dead_message(message: Mapping[str, Any]) -> DeadMessage:
    """A received SQS message as a dead letter: its kind, reason, and where it replays to."""
    attrs = _attributes(message)
    body = str(message["Body"])
    # moved by SQS itself unless told otherwise: the consumer never annotated it (it timed
    # out, crashed, or could not reach the DLQ on the last receive). That is its reason.
    dead = DeadMessage(
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        body=body,
        error_type=RECEIVES_EXHAUSTED,
        error="moved by SQS after the queue's maxReceiveCount receives, none reported done: "
        "the consumer failed or timed out each time (see its logs for the message id)",
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
        payload=body,
    )
    if ERROR_TYPE in attrs:
        return replace(dead, error_type=attrs[ERROR_TYPE], error=attrs.get(ERROR, "-"))
    if "ERROR_CODE" in attrs and "TARGET_ARN" in attrs:
        scheduled = "SCHEDULE_ARN" in attrs
        return replace(
            dead,
            error_type=attrs["ERROR_CODE"] or "-",
            error=attrs.get("ERROR_MESSAGE") or "-",
            kind=SCHEDULE if scheduled else RULE,
            target=attrs["TARGET_ARN"],
            source=attrs.get("SCHEDULE_ARN" if scheduled else "RULE_ARN", "-"),
        )
    record = _on_failure_record(body)
    if record is not None:
        response = record.get("responsePayload")
        response = response if isinstance(response, dict) else {}
        context = record["requestContext"]
        condition = str(context.get("condition") or "-")
        return replace(
            dead,
            error_type=str(response.get("errorType") or condition),
            error=str(response.get("errorMessage") or condition),
            kind=LAMBDA,
            target=_unqualified(str(context["functionArn"])),
            payload=json.dumps(record["requestPayload"]),
            source=f"{condition} ({context.get('approximateInvokeCount', '?')} tries)",
        )
    return dead


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 5 and parts[0] == "arn" else ""


def queue_url_of(arn: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` -> its queue URL."""
    _, partition, _, region, account, name = arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


class DeadLetterQueue:
    """One DLQ. ``lambda_client`` and ``sfn_client`` replay rule and schedule targets and
    on-failure records; a DLQ of queue dead letters needs only ``client`` (SQS)."""

    def __init__(
        self,
        client: Any,
        url: str,
        *,
        lambda_client: Any = None,
        sfn_client: Any = None,
    ) -> None:
        self._client = client
        self._lambda = lambda_client
        self._sfn = sfn_client
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
        return [dead_message(m) for m in resp.get("Messages", [])]

    def _release(self, messages: list[DeadMessage]) -> None:
        """Make received messages visible again at once."""
        for start in range(0, len(messages), BATCH):
            self._client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                    for i, m in enumerate(messages[start : start + BATCH])
                ],
            )

    def peek(self, limit: int = 100, visibility: int = 30) -> list[DeadMessage]:
        """Up to ``limit`` messages, made visible again at once (nothing is removed)."""
        seen: dict[str, DeadMessage] = {}
        while len(seen) < limit:
            batch = [m for m in self._receive(visibility) if m.message_id not in seen]
            if not batch:
                break
            seen.update((m.message_id, m) for m in batch)
        self._release(list(seen.values()))
        return list(seen.values())[:limit]

    def _replay(self, m: DeadMessage, queue_url: str | None) -> None:
        """Hand one dead letter back to where it failed; raises if that was refused."""
        if m.target is None:
            if queue_url is None:
                queue_url = self.source_url()
            self._client.send_message(QueueUrl=queue_url, MessageBody=m.payload)
            return
        service = _service(m.target)
        if m.target == SFN_START_EXECUTION_TARGET and self._sfn is not None:
            self._start_execution(m.payload)
        elif service == "lambda" and self._lambda is not None:
            resp = self._lambda.invoke(
                FunctionName=m.target, InvocationType="Event", Payload=m.payload.encode()
            )
            if int(resp.get("StatusCode", 0)) >= 300 or resp.get("FunctionError"):
                raise RuntimeError(f"invoke of {m.target} was refused")
        elif service == "states" and self._sfn is not None:
            self._sfn.start_execution(stateMachineArn=m.target, input=m.payload)
        elif service == "sqs":
            self._client.send_message(QueueUrl=queue_url_of(m.target), MessageBody=m.payload)
        else:
            raise ValueError(f"cannot replay to {m.target}")

    def _start_execution(self, payload: str) -> None:
        """Make the StartExecution request a journey timer could not make. An execution of
        that name already exists: it ran (started again, or directly), which is done."""
        request = json.loads(payload)
        if not isinstance(request, dict) or not request.get("StateMachineArn"):
            raise ValueError("not a StartExecution request: no StateMachineArn")
        parameters = {"stateMachineArn": str(request["StateMachineArn"])}
        for key, parameter in (
            ("Name", "name"),
            ("Input", "input"),
            ("TraceHeader", "traceHeader"),
        ):
            if key in request:
                value = request[key]
                parameters[parameter] = value if isinstance(value, str) else json.dumps(value)
        try:
            self._sfn.start_execution(**parameters)
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return

    def redrive(
        self,
        target_url: str | None = None,
        limit: int | None = None,
        visibility: int = 60,
    ) -> RedriveReport:
        """Replay messages (queue dead letters to ``target_url``, default the queue this DLQ
        serves; the others to their target); delete each from the DLQ once it was accepted.
        A message that could not be replayed stays, and is counted as failed."""
        report = RedriveReport()
        kept: dict[str, DeadMessage] = {}
        while limit is None or report.moved < limit:
            batch = [m for m in self._receive(visibility) if m.message_id not in kept]
            if limit is not None:
                batch = batch[: limit - report.moved]
            if not batch:
                break
            done: list[DeadMessage] = []
            for m in batch:
                try:
                    self._replay(m, target_url)
                except Exception as exc:  # reported; the message stays
                    kept[m.message_id] = m
                    report.failed += 1
                    report.errors.append(f"{m.message_id}: {type(exc).__name__}: {exc}")
                else:
                    done.append(m)
            if done:
                self._client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                        for i, m in enumerate(done)
                    ],
                )
            report.moved += len(done)
            report.error_types.update(m.error_type for m in done)
        self._release(list(kept.values()))
        return report
