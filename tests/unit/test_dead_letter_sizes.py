"""Dead letters SQS takes: a body at the queue's limit keeps its reason only as far as it
fits, and letters go in batches SQS accepts (moto, with SQS's own size rules applied by
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.sqs import CUT_NOTE, MAX_MESSAGE_BYTES, SqsDeadLetters
from kizuna.ports import DeadLetter
from kizuna_tools.local.patches import sqs_message_size


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="ap-northeast-1")
        url = client.create_queue(QueueName="kizuna-ingest-dlq")["QueueUrl"]
        yield client, url


def received(client: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        found += batch
        for m in batch:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def letter(body: str, reason: str = "InvalidEvent: detail.total: " + "x" * 990) -> DeadLetter:
    return DeadLetter(
        message_id="0b9ed6b3-1c1f-4be3-9a2a-5b3f5a3d1c01",
        body=body,
        error_type="InvalidEvent",
        reason=reason,
        receive_count=1,
    )


def body_of(size: int) -> str:
    """A JSON body of ``size`` UTF-8 bytes, mostly 3-byte characters."""
    head, tail = '{"detail":"', '"}'
    room = size - len(head) - len(tail)
    return head + "あ" * (room // 3) + "a" * (room % 3) + tail


def test_a_body_near_the_limit_keeps_its_reason_cut_to_fit_and_is_never_cut(
    queue: tuple[Any, str],
) -> None:
    """A body SQS took at 1 MiB less a few hundred bytes: the reason's 1,000 characters do
    not fit beside it (SQS counts attributes too); the letter goes with the reason cut and
    said so, the body whole, at most 1 MiB."""
    client, url = queue
    body = body_of(MAX_MESSAGE_BYTES - 600)
    assert SqsDeadLetters(client, url).send([letter(body)]) == []
    (kept,) = received(client, url)
    assert kept["Body"] == body
    attrs = kept["MessageAttributes"]
    assert attrs["kizuna-error-type"]["StringValue"] == "InvalidEvent"
    reason = attrs["kizuna-error"]["StringValue"]
    assert reason.startswith("InvalidEvent: detail.total: ") and reason.endswith(CUT_NOTE)
    assert sqs_message_size(body, attrs) <= MAX_MESSAGE_BYTES


def test_a_body_at_the_limit_is_kept_without_attributes_rather_than_refused(
    queue: tuple[Any, str],
) -> None:
    """A body of exactly 1 MiB leaves no room for any attribute: it is kept as SQS's own
    redrive would keep it (the body alone), not refused on every receive."""
    client, url = queue
    body = body_of(MAX_MESSAGE_BYTES)
    assert SqsDeadLetters(client, url).send([letter(body)]) == []
    (kept,) = received(client, url)
    assert kept["Body"] == body
    assert not kept.get("MessageAttributes")


def test_letters_go_in_batches_of_at_most_one_mib(queue: tuple[Any, str]) -> None:
    """Ten letters of 300 KB (3 MB together) go in batches SQS takes, each whole."""
    client, url = queue
    letters = [
        DeadLetter(f"m{i}", body_of(300 * 1024), "InvalidEvent", f"reason {i}", 2)
        for i in range(10)
    ]
    assert SqsDeadLetters(client, url).send(letters) == []
    kept = received(client, url)
    assert sorted(
        m["MessageAttributes"]["kizuna-message-id"]["StringValue"] for m in kept
    ) == sorted(f"m{i}" for i in range(10))
    assert {m["Body"] for m in kept} == {letters[0].body}
    assert sorted(m["MessageAttributes"]["kizuna-error"]["StringValue"] for m in kept) == sorted(
        f"reason {i}" for i in range(10)
    )
