"""Keep a failed record in the dead-letter queue with the reason it failed.

The body is kept exactly as it arrived (so `kizuna dlq redrive` can replay it); the reason
travels in message attributes, which SQS's own redrive would not add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kizuna.ports import DeadLetter

SEND_BATCH_LIMIT = 10
MAX_ATTRIBUTE_LEN = 1000


class SqsDeadLetters:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, letters: Sequence[DeadLetter]) -> list[str]:
        failed: list[str] = []
        for start in range(0, len(letters), SEND_BATCH_LIMIT):
            chunk = letters[start : start + SEND_BATCH_LIMIT]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": letter.body,
                    "MessageAttributes": {
                        "kizuna-error-type": {
                            "DataType": "String",
                            "StringValue": letter.error_type,
                        },
                        "kizuna-error": {
                            "DataType": "String",
                            "StringValue": letter.reason[:MAX_ATTRIBUTE_LEN] or "-",
                        },
                        "kizuna-message-id": {
                            "DataType": "String",
                            "StringValue": letter.message_id,
                        },
                        "kizuna-receive-count": {
                            "DataType": "Number",
                            "StringValue": str(letter.receive_count),
                        },
                    },
                }
                for i, letter in enumerate(chunk)
            ]
            resp = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            failed.extend(chunk[int(f["Id"])].message_id for f in resp.get("Failed", []))
        return failed
