"""The cost model's arithmetic on fixed inputs, checked against sums done by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bench.cost_model import (
    CHANNEL_PRICE,
    PRICES_FILE,
    FunctionUse,
    OpCount,
    Prices,
    Usage,
    cost_by_service,
    dynamodb_units,
    lambda_cost,
    load_prices,
    per_million,
    pipeline_costs,
    prices_from,
)
from tests.factories import ROUND_PRICES as ROUND

# The cost lines, in the order the expected figures below are written.
SERVICES = (
    "Lambda requests",
    "Lambda compute",
    "DynamoDB writes",
    "DynamoDB reads",
    "EventBridge",
    "SQS",
    "Step Functions",
    "channel fees",
)


def by_service(*amounts: float, scheduler: float = 0.0, **more: float) -> dict[str, float]:
    """One amount for each of SERVICES, in order, EventBridge Scheduler's (journey timers),
    and ``more`` lines (the total)."""
    return {
        **dict(zip(SERVICES, amounts, strict=True)),
        "EventBridge Scheduler": scheduler,
        **more,
    }


@pytest.mark.parametrize(
    ("operation", "count", "expected"),
    [
        ("PutItem", OpCount(3, 3), (3, 0)),
        ("BatchWriteItem", OpCount(2, 30), (30, 0)),  # N items are N WRUs
        ("TransactWriteItems", OpCount(1, 4), (8, 0)),
        ("GetItem", OpCount(4, 4, 2), (0, 3)),  # 2 strong + 2 x 0.5 eventual
        ("BatchGetItem", OpCount(1, 10, 10), (0, 10)),
        ("Query", OpCount(10, 8, 8), (0, 5)),  # 8 items = 2 units, but 10 calls >= 5
        ("Query", OpCount(2, 80, 40), (0, 15)),  # 40/4 strong + 40/8 eventual
        ("DescribeTable", OpCount(1, 1), (0, 0)),
    ],
)
def test_dynamodb_units(operation: str, count: OpCount, expected: tuple[float, float]) -> None:
    assert dynamodb_units(operation, count) == pytest.approx(expected)


def test_lambda_cost_requests_and_gb_seconds() -> None:
    prices = Prices(
        lambda_request=0.20 / 1e6,
        lambda_gb_second={"arm64": 0.0000133334, "x86_64": 0.0000166667},
        dynamodb_wru=0,
        dynamodb_rru=0,
        eventbridge_event=0,
        stepfunctions_transition=0,
        sqs_request=0,
        channels={},
    )
    # 1M invocations x 0.1 s x 0.5 GB = 50,000 GB-s
    requests, compute = lambda_cost(FunctionUse(1_000_000, 100.0, 512, "arm64"), prices)
    assert requests == pytest.approx(0.20)
    assert compute == pytest.approx(50_000 * 0.0000133334)
    _, x86 = lambda_cost(FunctionUse(1_000_000, 100.0, 512, "x86_64"), prices)
    assert x86 == pytest.approx(50_000 * 0.0000166667)


def test_cost_by_service_and_per_million() -> None:
    usage = Usage(
        functions={"ingest": FunctionUse(10, 100.0, 512)},
        dynamodb={"BatchWriteItem": OpCount(10, 100), "BatchGetItem": OpCount(10, 100, 100)},
        eventbridge_events=120,
        sqs_requests=120,
        transitions=4,
        channel_messages={"email_ses": 15},
    )
    costs = cost_by_service(usage, ROUND)
    # (Lambda compute: 10 x 0.1 s x 0.5 GB = 0.5 GB-s)
    assert costs == pytest.approx(by_service(1e-5, 5e-6, 2e-4, 1e-4, 1.2e-4, 1.2e-4, 4e-5, 1.5e-3))
    spread = per_million(costs, 100)
    assert spread["DynamoDB writes"] == pytest.approx(2.0)
    assert spread["total"] == pytest.approx(sum(costs.values()) * 10_000)
    assert per_million(costs, 0)["total"] == 0


def _pipe() -> dict[str, Any]:
    return {
        "events": 100,
        "journeys_started": 10,
        "invocations": {"ingest": 10, "send": 20, "journey": 10},
        "mean_handler_ms": {"ingest": 100.0, "send": 200.0, "journey": 50.0},
        "functions": {
            "ingest": {"memory_mb": 512, "architecture": "arm64"},
            "send": {"memory_mb": 1024, "architecture": "arm64"},
            "journey": {"memory_mb": 512, "architecture": "arm64"},
        },
        "items": {
            "ingest": {
                "dynamodb:BatchWriteItem": {"calls": 10, "items": 100, "strong": 0},
                "dynamodb:BatchGetItem": {"calls": 10, "items": 100, "strong": 100},
                "events:PutEvents": {"calls": 5, "items": 20, "strong": 0},
            },
            "send": {
                "dynamodb:PutItem": {"calls": 40, "items": 40, "strong": 0},
                "dynamodb:GetItem": {"calls": 20, "items": 20, "strong": 0},
            },
        },
        "queue_messages": {"ingest": 100, "dead-letter": 3},
        "transitions": {
            "p1": {"executions": 5, "mean": 4.0, "max": 4},
            "p2": {"executions": 5, "mean": 6.0, "max": 6},
            "KizunaScoringStateMachineX": {"executions": 2, "mean": 2.0, "max": 2},
        },
        "event_types": {"order.placed": 25, "customer.registered": 75},
        "summary": {"outbox": {"email": 15, "push": 5, "sms": 0, "line": 0}},
    }


def test_pipeline_costs_by_hand() -> None:
    out = pipeline_costs(_pipe(), ROUND)
    # processing = ingest: requests 1e-5, compute 5e-6, WRU 100 x 2e-6, RRU 100 x 1e-6,
    # EventBridge (20 derived + 100 inbound) x 1e-6, SQS (100 sends + 2 x 10 batches) x 1e-6,
    # scoring 2 x 2 transitions x 1e-5 = 5.95e-4 over 100 events
    inbound = out["per_million_inbound_events"]
    assert inbound == pytest.approx(by_service(0.1, 0.05, 2.0, 1.0, 1.2, 1.2, 0.4, 0.0, total=5.95))
    assert out["per_million_order_events"]["total"] == pytest.approx(5.95e-4 / 25 * 1e6)
    # delivery = journey + send over 20 messages: requests 30 x 1e-6; compute
    # (20 x 0.2 s x 1 GB + 10 x 0.05 s x 0.5 GB) x 1e-5; WRU 40 x 2e-6; RRU 20 x 0.5 x 1e-6;
    # transitions (5 x 4 + 5 x 6) / 10 = 5 per entry x 10 entries x 1e-5;
    # fees 15 x 1e-4 + 5 x 1e-6
    messages = out["per_million_messages"]
    assert messages == pytest.approx(
        by_service(1.5, 2.125, 4.0, 0.5, 0.0, 0.0, 25.0, 75.25, total=108.375)
    )
    assert out["mix_floor_per_million_messages"] == pytest.approx(75.25)
    assert out["per_million_messages_all_in"]["total"] == pytest.approx(
        (5.95e-4 + 2.1675e-3) / 20 * 1e6
    )
    assert out["units"]["transitions_per_entry"] == pytest.approx(5.0)


def test_prices_from_converts_units() -> None:
    def entry(price: float) -> dict[str, float]:
        return {"price": price}

    data = {
        "jpy_per_usd": 150,
        "read": "2026-11-24",
        "aws": {
            "lambda_requests_per_million": entry(0.20),
            "lambda_gb_second_arm64": entry(0.0000133334),
            "lambda_gb_second_x86_64": entry(0.0000166667),
            "dynamodb_on_demand_write_request_unit_per_million": entry(0.625),
            "dynamodb_on_demand_read_request_unit_per_million": entry(0.125),
            "eventbridge_custom_events_per_million": entry(1.0),
            "stepfunctions_standard_transitions_per_thousand": entry(0.025),
            "sqs_standard_requests_per_million": entry(0.40),
            "scheduler_invocations_per_million": entry(1.00),
        },
        "channels": {"email_ses": entry(0.0001), "line_japan": {"price_jpy": 3.0}},
        "saas": {
            "messages_per_contact_month": 10,
            "klaviyo": {"plan": "x", "price_per_month": 150, "contacts": 10000, "url": "u"},
            "braze": {"plan": "none", "price_per_month": None, "url": "u"},
        },
    }
    p = prices_from(data)
    assert p.lambda_request == pytest.approx(2e-7)
    assert p.dynamodb_wru == pytest.approx(6.25e-7)
    assert p.stepfunctions_transition == pytest.approx(2.5e-5)
    assert p.scheduler_invocation == pytest.approx(1e-6)
    assert p.channels["line_japan"] == pytest.approx(0.02)  # 3 JPY at 150 JPY/USD
    klaviyo, braze = p.saas
    assert klaviyo.per_contact_month() == pytest.approx(0.015)
    # $0.015 a contact a month over 10 messages = $0.0015 a message = $1,500 per 1M
    assert klaviyo.per_million_messages(10) == pytest.approx(1500.0)
    assert braze.per_million_messages(10) is None


def test_journey_timers_are_priced_on_the_delivery_side() -> None:
    # Given a run in which evaluate set 6 journey timers and the send function 4 (each runs
    # once: one Scheduler invocation), at $1 per million invocations
    pipe = _pipe()
    pipe["calls"] = {
        "evaluate": {"scheduler:CreateSchedule": 6, "dynamodb:Query": 3},
        "send": {"scheduler:CreateSchedule": 4},
        "api": {"scheduler:CreateSchedule": 100},  # campaign schedules: not the journeys'
    }
    prices = dataclasses.replace(ROUND, scheduler_invocation=1e-6)
    out = pipeline_costs(pipe, prices)
    # Then 10 invocations x 1e-6 over 20 messages = $0.5 per 1M, on the messages
    assert out["per_million_messages"]["EventBridge Scheduler"] == pytest.approx(0.5)
    assert out["per_million_inbound_events"]["EventBridge Scheduler"] == 0.0


def test_prices_file_is_complete() -> None:
    prices = load_prices(PRICES_FILE)
    assert prices.read
    assert prices.scheduler_invocation > 0
    for key in ("email_ses", "sms_us", "sms_japan", "push", "line_japan"):
        assert prices.channels[key] > 0
    assert {v.name for v in prices.saas} >= {"klaviyo", "customer_io", "braze"}


def test_transitions_are_what_the_machines_entered_not_executions_times_entries() -> None:
    # two cohort executions (4 and 6 states) carried ten entries; a campaign ran 18 states
    pipe = {
        **_pipe(),
        "journeys_started": 10,
        "transitions": {
            "p1": {"executions": 1, "mean": 4.0, "max": 4},
            "p2": {"executions": 1, "mean": 6.0, "max": 6},
            "KizunaCampaignsStateMachineX": {"executions": 1, "mean": 18.0, "max": 18},
            "KizunaScoringStateMachineX": {"executions": 2, "mean": 2.0, "max": 2},
        },
    }
    out = pipeline_costs(pipe, ROUND)
    assert out["units"]["transitions_per_entry"] == pytest.approx(1.0)  # (4 + 6) / 10
    # the delivery side pays the journeys' 10 states and the campaign's 18
    assert out["per_million_messages"]["Step Functions"] == pytest.approx(28 * 1e-5 / 20 * 1e6)


def test_direct_mail_is_priced_per_piece_from_the_prices_file() -> None:
    # given: the prices file's postage (JPY)
    prices = load_prices(PRICES_FILE)
    # then: the dm channel has its own per-piece price, converted like LINE's
    assert CHANNEL_PRICE["dm"] == "dm_postage"
    assert prices.channels["dm_postage"] == pytest.approx(85.0 / 150)


def test_measured_write_units_replace_the_one_unit_an_item_formula() -> None:
    """A run that measured its writes (bench.write_units: sizes and index entries) is priced
    on them; reads and unmeasured results keep the formula."""
    from bench.cost_model import _merge, _op_counts

    measured = _op_counts(
        {
            "dynamodb:TransactWriteItems": {
                "calls": 1,
                "items": 2,
                "strong": 0,
                "wru_table": 4,
                "wru_index": 2,
            },
            "dynamodb:GetItem": {"calls": 1, "items": 1, "strong": 1, "wru_table": 0},
        }
    )
    assert dynamodb_units("TransactWriteItems", measured["TransactWriteItems"]) == (6.0, 0.0)
    assert dynamodb_units("GetItem", measured["GetItem"]) == (0.0, 1.0)
    old = _op_counts({"dynamodb:TransactWriteItems": {"calls": 1, "items": 2, "strong": 0}})
    assert old["TransactWriteItems"].write_units is None
    assert dynamodb_units("TransactWriteItems", old["TransactWriteItems"]) == (4.0, 0.0)
    # one side measured, the other not: each priced its own way, then summed
    both = _merge(measured, old)
    assert dynamodb_units("TransactWriteItems", both["TransactWriteItems"]) == (10.0, 0.0)
