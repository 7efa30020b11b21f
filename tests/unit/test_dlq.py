"""Resolving dead-letter queues and journey ARNs for the operations commands (no AWS)."""

from __future__ import annotations

import pytest

from kizuna_tools.dlq import resolve_dlq_url

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
