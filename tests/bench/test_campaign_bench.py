"""The campaign bench's arithmetic on fixed inputs (no cloud): per-message figures, ratios,
transitions counted from history event types, and the cost model's price of a send path."""

from __future__ import annotations

from typing import Any

import pytest

from bench.campaign_bench import delta, entered_types, per_message, ratio, state_entered
from bench.cost_model import S3RequestPrices, campaign_costs
from tests.bench.test_cost_model import ROUND


def test_per_message_divides_by_delivered_largest_first() -> None:
    # given counts of two operations for 4 delivered messages
    counts = {"dynamodb:BatchGetItem": 1.0, "sesv2:SendEmail": 4.0}
    # when divided per message
    out = per_message(counts, 4)
    # then each is per message, the largest first; nothing delivered gives zeros
    assert list(out.items()) == [("sesv2:SendEmail", 1.0), ("dynamodb:BatchGetItem", 0.25)]
    assert per_message(counts, 0) == {"sesv2:SendEmail": 0.0, "dynamodb:BatchGetItem": 0.0}


def test_ratio_and_delta() -> None:
    assert ratio(1.2, 4.8) == pytest.approx(0.25)
    assert ratio(1.0, 0.0) is None
    assert delta({"a": 5, "b": 2}, {"a": 3, "b": 2}) == {"a": 2.0}


def test_transitions_are_the_states_entered() -> None:
    # given a history with execution, task and map events
    events = [
        {"type": "ExecutionStarted"},
        {"type": "TaskStateEntered"},
        {"type": "TaskStateExited"},
        {"type": "MapStateEntered"},
        {"type": "MapRunStarted"},
        {"type": "WaitStateEntered"},
    ]
    # then only the ...StateEntered events are billed transitions
    assert state_entered(events) == 3
    assert entered_types({"TaskStateEntered": 4, "MapRunStarted": 2, "PassStateEntered": 1}) == 5


def run(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invocations": {"campaign": 10},
        "handler_seconds": {"campaign": 2.0},  # 200 ms each
        "memory_mb": {"campaign": 1024},
        "architecture": {"campaign": "arm64"},
        "calls": {"s3:GetObject": 4, "s3:PutObject": 2, "s3:ListObjectsV2": 1},
        "items": {
            "dynamodb:TransactWriteItems": {"calls": 2, "items": 100, "strong": 0},
            "dynamodb:BatchGetItem": {"calls": 4, "items": 200, "strong": 200},
            "events:PutEvents": {"calls": 1, "items": 1, "strong": 0},
        },
        "transitions": {"states_entered": 20},
        "delivered": 100,
    }
    return {**base, **overrides}


def test_campaign_costs_by_service_per_million_messages() -> None:
    # when a campaign run of 100 delivered messages is priced at round prices
    out = campaign_costs(run(), ROUND, S3RequestPrices(put_copy_post_list=1e-5, get_and_other=1e-6))
    per = out["per_million_messages"]
    scale = 1_000_000 / 100
    # then: Lambda 10 requests and 10 x 0.2 s x 1 GB; transactional writes 2 WRU an item;
    # strongly consistent point reads 1 RRU; one event; 20 transitions; S3 3 PUT/LIST, 4 GET
    assert per["Lambda requests"] == pytest.approx(10 * 1e-6 * scale)
    assert per["Lambda compute"] == pytest.approx(2.0 * 1e-5 * scale)
    assert per["DynamoDB writes"] == pytest.approx(200 * 2e-6 * scale)
    assert per["DynamoDB reads"] == pytest.approx(200 * 1e-6 * scale)
    assert per["EventBridge"] == pytest.approx(1e-6 * scale)
    assert per["SQS"] == 0
    assert per["Step Functions"] == pytest.approx(20 * 1e-5 * scale)
    assert per["S3 requests"] == pytest.approx((3 * 1e-5 + 4 * 1e-6) * scale)
    assert "channel fees" not in per
    assert per["total"] == pytest.approx(sum(v for k, v in per.items() if k != "total"))
    assert out["units"]["lambda_gb_seconds"] == pytest.approx(2.0)


def test_journey_path_pays_for_its_trigger_events_and_queue() -> None:
    # given the journey path: 5 trigger events through evaluate's queue, 2 batches
    journey = run(
        invocations={"evaluate": 2, "send": 5},
        handler_seconds={"evaluate": 0.1, "send": 0.5},
        memory_mb={"evaluate": 512, "send": 512},
        architecture={},
        calls={},
        items={},
        trigger_events=5,
        delivered=5,
    )
    per = campaign_costs(journey, ROUND)["per_million_messages"]
    # then 5 events on the bus, and SQS: 5 messages + a receive and a delete per batch
    assert per["EventBridge"] == pytest.approx(5 * 1e-6 / 5 * 1_000_000)
    assert per["SQS"] == pytest.approx((5 + 2 * 2) * 1e-6 / 5 * 1_000_000)
