"""Dead-letter queues for the operations commands (no AWS): resolving them, reading each
kind of dead letter, and replaying it to where it failed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kizuna_tools.dlq import DeadLetterQueue, resolve_dlq_url

OUTPUTS = {
    "IngestDeadLetterQueueUrl": "https://sqs.ap-northeast-1.amazonaws.com/1/ingest-dlq",
    "JourneyCartAbandonmentArn": "arn:aws:states:ap-northeast-1:1:stateMachine:Kizuna-cart-abandonment",
}


def test_a_logical_name_resolves_through_the_stack_outputs_and_a_url_is_kept() -> None:
    assert resolve_dlq_url("ingest", OUTPUTS) == OUTPUTS["IngestDeadLetterQueueUrl"]
    assert resolve_dlq_url("https://example/q", None) == "https://example/q"


@pytest.mark.parametrize(
    ("queue", "fragment"), [("nope", "unknown queue"), ("evaluate", "--stack")]
)
def test_unknown_or_missing_queues_say_what_to_give(queue: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        resolve_dlq_url(queue, OUTPUTS)


# --- the kinds of dead letter, and where each is replayed (in-memory clients) ---------------
FUNCTION = "arn:aws:lambda:ap-northeast-1:1:function:kizuna-sweep"
MACHINE = "arn:aws:states:ap-northeast-1:1:stateMachine:kizuna-scoring"
SCHEDULE = "arn:aws:scheduler:ap-northeast-1:1:schedule/default/hourly-carts"
RULE = "arn:aws:events:ap-northeast-1:1:rule/kizuna/ingest"
INGEST_QUEUE = "arn:aws:sqs:ap-northeast-1:1:kizuna-ingest"
INGEST_URL = "https://sqs.ap-northeast-1.amazonaws.com/1/kizuna-ingest"
DLQ_URL = "https://sqs.ap-northeast-1.amazonaws.com/1/kizuna-dlq"
SWEEP = {"kinds": ["carts"], "lookback_minutes": 60}


def attributes(**values: str) -> dict[str, dict[str, str]]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def kept_by_its_consumer() -> dict[str, Any]:
    return {
        "Body": '{"detail-type": "order.placed"}',
        "MessageAttributes": attributes(
            **{"kizuna-error-type": "ValidationError", "kizuna-error": "total: not a number"}
        ),
    }


def undeliverable_by_a_rule() -> dict[str, Any]:
    return {
        "Body": '{"detail-type": "order.placed"}',
        "MessageAttributes": attributes(
            ERROR_CODE="SQS.QueueDoesNotExist",
            ERROR_MESSAGE="queue is gone",
            RULE_ARN=RULE,
            TARGET_ARN=INGEST_QUEUE,
        ),
    }


def not_invoked_by_a_schedule(target: str = FUNCTION) -> dict[str, Any]:
    return {
        "Body": json.dumps(SWEEP),
        "MessageAttributes": attributes(
            ERROR_CODE="AWS.Scheduler.InternalServerError",
            ERROR_MESSAGE="Lambda throttled the invocation",
            EXECUTION_ID="d7b2c0b4",
            SCHEDULE_ARN=SCHEDULE,
            TARGET_ARN=target,
        ),
    }


def failed_asynchronously() -> dict[str, Any]:
    record = {
        "version": "1.0",
        "timestamp": "2026-01-05T05:00:03Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": f"{FUNCTION}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": SWEEP,
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "SweepFailed", "errorMessage": "carts: RuntimeError"},
    }
    return {"Body": json.dumps(record)}


class Sqs:
    """Queues as lists: receive hides a message until it is deleted or released."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.queues: dict[str, list[dict[str, Any]]] = {DLQ_URL: []}
        self.hidden: set[str] = set()
        for n, m in enumerate(messages):
            self.queues[DLQ_URL].append({"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", **m})

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, **_: Any) -> Any:
        visible = [m for m in self.queues[QueueUrl] if m["ReceiptHandle"] not in self.hidden]
        self.hidden |= {m["ReceiptHandle"] for m in visible[:MaxNumberOfMessages]}
        return {"Messages": visible[:MaxNumberOfMessages]}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[Any]) -> None:
        self.hidden -= {e["ReceiptHandle"] for e in Entries}

    def delete_message_batch(self, QueueUrl: str, Entries: list[Any]) -> None:
        gone = {e["ReceiptHandle"] for e in Entries}
        self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m["ReceiptHandle"] not in gone]

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.queues.setdefault(QueueUrl, []).append({"Body": MessageBody})

    def list_dead_letter_source_queues(self, QueueUrl: str) -> Any:
        return {"queueUrls": [INGEST_URL]}


class Lambda:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> Any:
        self.invoked.append((FunctionName, InvocationType, json.loads(Payload)))
        return {"StatusCode": 202}


class StepFunctions:
    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []

    def start_execution(self, stateMachineArn: str, input: str) -> Any:
        if "missing" in stateMachineArn:
            raise RuntimeError("StateMachineDoesNotExist")
        self.started.append((stateMachineArn, json.loads(input)))
        return {"executionArn": f"{stateMachineArn}:x"}


def dlq(*messages: dict[str, Any]) -> tuple[DeadLetterQueue, Sqs, Lambda, StepFunctions]:
    sqs, functions, machines = Sqs(list(messages)), Lambda(), StepFunctions()
    queue = DeadLetterQueue(sqs, DLQ_URL, lambda_client=functions, sfn_client=machines)
    return queue, sqs, functions, machines


@pytest.mark.parametrize(
    ("message", "kind", "error_type", "error", "target"),
    [
        (kept_by_its_consumer(), "queue", "ValidationError", "total: not a number", None),
        (undeliverable_by_a_rule(), "rule", "SQS.QueueDoesNotExist", "queue is gone", INGEST_QUEUE),
        (
            not_invoked_by_a_schedule(),
            "schedule",
            "AWS.Scheduler.InternalServerError",
            "Lambda throttled the invocation",
            FUNCTION,
        ),
        (failed_asynchronously(), "lambda", "SweepFailed", "carts: RuntimeError", FUNCTION),
        (
            {"Body": "not json"},
            "queue",
            "ReceivesExhausted",
            "moved by SQS after the queue's maxReceiveCount receives, none reported done: "
            "the consumer failed or timed out each time (see its logs for the message id)",
            None,
        ),
    ],
    ids=["queue", "rule", "schedule", "lambda", "bare"],
)
def test_every_kind_of_dead_letter_shows_its_reason_and_its_target(
    message: dict[str, Any], kind: str, error_type: str, error: str, target: str | None
) -> None:
    queue, *_ = dlq(message)
    (dead,) = queue.peek()
    assert (dead.kind, dead.error_type, dead.error, dead.target) == (
        kind,
        error_type,
        error,
        target,
    )


def test_redrive_replays_each_kind_to_where_it_failed() -> None:
    # given a DLQ holding one dead letter of each kind
    queue, sqs, functions, machines = dlq(
        kept_by_its_consumer(),
        undeliverable_by_a_rule(),
        not_invoked_by_a_schedule(),
        not_invoked_by_a_schedule(target=MACHINE),
        failed_asynchronously(),
    )
    # when it is redriven
    report = queue.redrive()
    # then each went back where it failed, with what was first sent, and the DLQ is empty
    assert (report.moved, report.failed) == (5, 0)
    assert [json.loads(m["Body"]) for m in sqs.queues[INGEST_URL]] == [
        {"detail-type": "order.placed"},
        {"detail-type": "order.placed"},
    ]
    assert functions.invoked == [(FUNCTION, "Event", SWEEP), (FUNCTION, "Event", SWEEP)]
    assert machines.started == [(MACHINE, SWEEP)]
    assert sqs.queues[DLQ_URL] == []


def test_a_dead_letter_that_cannot_be_replayed_stays_and_is_reported() -> None:
    gone = MACHINE.replace("scoring", "missing")
    queue, sqs, functions, _ = dlq(not_invoked_by_a_schedule(target=gone), failed_asynchronously())
    report = queue.redrive()
    assert (report.moved, report.failed) == (1, 1)
    assert functions.invoked == [(FUNCTION, "Event", SWEEP)]
    assert "StateMachineDoesNotExist" in report.errors[0]
    assert [m["MessageAttributes"]["TARGET_ARN"]["StringValue"] for m in sqs.queues[DLQ_URL]] == [
        gone
    ]
    assert queue.peek()[0].kind == "schedule"  # visible again, for the next attempt


def test_a_missing_output_names_only_options_the_command_has() -> None:
    # Given no stack outputs, when a queue is named by its logical name
    with pytest.raises(ValueError) as refused:
        resolve_dlq_url("ingest", None)
    # then the advice names --stack or the URL as the QUEUE argument (no --queue-url option
    # exists on `kizuna dlq list|show|redrive`)
    assert "--queue-url" not in str(refused.value)
    assert "give --stack NAME, or the queue's URL instead of 'ingest'" in str(refused.value)
