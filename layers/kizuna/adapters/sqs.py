"""Keep a failed record in the dead-letter queue with the reason it failed.

The body is kept exactly as it arrived (so `kizuna dlq redrive` can replay it); the reason
travels in message attributes, which SQS's own redrive would not add.

SQS counts a message's size as its body's UTF-8 bytes and, for each attribute, the bytes of
its name, data type and value, against the queue's maximum (1 MiB, the queues' default; a
SendMessageBatch's messages together against the same): a body that came in at the limit
has no room left for the reason. So the body is never cut (a replay must be the event as it
arrived); the reason is cut to the room left, said so at its end, and where not even the
other attributes fit, the letter goes as its body alone, as SQS's redrive would keep it
(its reason is logged with its message id). Letters go in SendMessageBatch calls of at most
10 messages and 1 MiB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kizuna.ports import DeadLetter
from kizuna.runtime.observability import logger

SEND_BATCH_LIMIT = 10
MAX_ATTRIBUTE_LEN = 1000
# SQS's bound on one message (body and attributes) and on one SendMessageBatch's messages
# together: 1 MiB since August 2025, every queue's default (Kizuna's set no other).
MAX_MESSAGE_BYTES = 1024 * 1024
REASON = "kizuna-error"
CUT_NOTE = " [cut: the letter is at SQS's message size]"


def message_size(body: str, attributes: dict[str, dict[str, str]]) -> int:
    """A message's size as SQS counts it: the body's UTF-8 bytes and each attribute's name,
    data type and value."""
    size = len(body.encode())
    for name, attribute in attributes.items():
        size += len(name.encode()) + len(attribute["DataType"].encode())
        size += len(attribute["StringValue"].encode())
    return size


def _cut(text: str, room: int) -> str:
    """``text`` in at most ``room`` UTF-8 bytes: whole, or its start and :data:`CUT_NOTE`
    ("-" where not even the note fits)."""
    if len(text.encode()) <= room:
        return text
    keep = room - len(CUT_NOTE.encode())
    if keep <= 0:
        return "-"
    return text.encode()[:keep].decode(errors="ignore") + CUT_NOTE


def letter_entry(letter: DeadLetter, index: int, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """The SendMessageBatch entry of one letter, at most ``limit`` bytes as SQS counts them
    when its body is (the reason cut to fit, or no attributes at all where even a "-" for it
    does not)."""
    attributes = {
        "kizuna-error-type": {"DataType": "String", "StringValue": letter.error_type},
        REASON: {"DataType": "String", "StringValue": "-"},
        "kizuna-message-id": {"DataType": "String", "StringValue": letter.message_id},
        "kizuna-receive-count": {"DataType": "Number", "StringValue": str(letter.receive_count)},
    }
    room = limit - message_size(letter.body, attributes) + 1  # the "-" is given back
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": letter.body}
    if room < 1:
        logger.warning(
            "dead letter sent without its reason: its body leaves no room for it",
            message_id=letter.message_id,
            error_type=letter.error_type,
            body_bytes=len(letter.body.encode()),
        )
        return entry
    reason = _cut(letter.reason[:MAX_ATTRIBUTE_LEN] or "-", room)
    attributes[REASON]["StringValue"] = reason
    entry["MessageAttributes"] = attributes
    return entry


def _size(entry: dict[str, Any]) -> int:
    return message_size(entry["MessageBody"], entry.get("MessageAttributes") or {})


class SqsDeadLetters:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, letters: Sequence[DeadLetter]) -> list[str]:
        failed: list[str] = []
        batches: list[list[tuple[DeadLetter, dict[str, Any]]]] = [[]]
        total = 0
        for letter in letters:
            entry = letter_entry(letter, len(batches[-1]))
            size = _size(entry)
            if batches[-1] and (
                len(batches[-1]) == SEND_BATCH_LIMIT or total + size > MAX_MESSAGE_BYTES
            ):
                batches.append([])
                total = 0
                entry["Id"] = "0"
            batches[-1].append((letter, entry))
            total += size
        for batch in batches:
            if not batch:
                continue
            entries = [entry for _, entry in batch]
            resp = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            failed.extend(batch[int(f["Id"])][0].message_id for f in resp.get("Failed", []))
        return failed
