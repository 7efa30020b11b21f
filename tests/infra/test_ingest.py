"""Ingest pipeline: bus rule -> queue (with DLQ) -> function, and what it may touch."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from infra_helpers import (
    StackIds,
    arn,
    as_list,
    index_arn,
    iter_resources,
    resources_for,
    statements_of,
)
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

from kizuna.adapters.sqs import MAX_MESSAGE_BYTES
from kizuna.events import INBOUND_EVENT_TYPES
from kizuna.programs.pattern_rules import validate_pattern
from kizuna.runtime.settings import IngestSettings
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra


class Ids(StackIds):
    """Logical ids of the resources under test, resolved from the construct tree."""

    def __init__(self, stack: KizunaStack, logical_id: Callable[[Any], str]) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        self.queue = logical_id(k.ingest.queue)
        self.dlq = logical_id(k.ingest.dead_letter_queue)
        self.rule = logical_id(k.ingest.rule)
        self.function = logical_id(k.ingest.function)
        self.role = logical_id(k.ingest.role)
        self.log_group = logical_id(k.ingest.log_group)
        self.layers = [logical_id(layer) for layer in k.layers.all]
        self.journey_group = logical_id(k.programs.journey_schedule_group)
        self.sweep_role = logical_id(k.programs.erasure_sweep_role)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: Callable[[Any], str]) -> Ids:
    return Ids(stack, logical_id)


@pytest.fixture(scope="module")
def function(resources: dict[str, Any], ids: Ids) -> dict[str, Any]:
    result: dict[str, Any] = resources[ids.function]
    return result


@pytest.fixture(scope="module")
def statements(resources: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    """Every statement of every identity policy on the ingest function's role."""
    return statements_of(resources, ids.role)


# --- Queues -------------------------------------------------------------------------------


def test_queue_redrives_to_the_dlq_after_five_receives(resources: dict[str, Any], ids: Ids) -> None:
    props = resources[ids.queue]["Properties"]
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": arn(ids.dlq), "maxReceiveCount": 5}


def test_queue_visibility_timeout_is_six_function_timeouts(
    resources: dict[str, Any], function: dict[str, Any], ids: Ids
) -> None:
    assert function["Properties"]["Timeout"] == 30
    assert resources[ids.queue]["Properties"]["VisibilityTimeout"] == 6 * 30


def test_dlq_takes_the_letters_the_dead_letter_sender_sizes(
    resources: dict[str, Any], ids: Ids
) -> None:
    # the sender cuts a reason to fit MAX_MESSAGE_BYTES; a queue left at an older default of
    # 256 KiB would refuse a letter sized for 1 MiB
    assert resources[ids.dlq]["Properties"]["MaximumMessageSize"] == MAX_MESSAGE_BYTES == 1048576


def test_dlq_keeps_messages_fourteen_days(resources: dict[str, Any], ids: Ids) -> None:
    assert resources[ids.dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize("queue", ["queue", "dlq"])
def test_queues_are_encrypted_and_enforce_ssl(
    template: Template, resources: dict[str, Any], ids: Ids, queue: str
) -> None:
    logical = getattr(ids, queue)
    assert resources[logical]["Properties"]["SqsManagedSseEnabled"] is True
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": logical}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Effect": "Deny",
                            "Action": "sqs:*",
                            "Principal": {"AWS": "*"},
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            "Resource": arn(logical),
                        }
                    ]
                )
            },
        },
    )


# --- Rule ---------------------------------------------------------------------------------


def test_rule_sends_every_event_from_producers(resources: dict[str, Any], ids: Ids) -> None:
    # every type, so an unknown one reaches ingest and is dead-lettered with its reason
    props = resources[ids.rule]["Properties"]
    assert props["EventBusName"] == {"Ref": ids.bus}
    assert props["EventPattern"] == {"source": [{"anything-but": ["kizuna"]}]}
    assert validate_pattern(props["EventPattern"]) == []


def test_rule_pattern_takes_unknown_types_and_ignores_kizunas_own(
    resources: dict[str, Any], ids: Ids
) -> None:
    # Given the synthesized pattern, evaluated by moto's EventBridge matcher
    pattern = EventPattern.load(json.dumps(resources[ids.rule]["Properties"]["EventPattern"]))

    def event(source: str, detail_type: str) -> EventMessageType:
        return {"source": source, "detail-type": detail_type, "detail": {}}

    # Then producers' events match, whatever their type (Kizuna's feedback reports too)
    for detail_type in (*INBOUND_EVENT_TYPES, "bogus.type", "Order.Placed"):
        assert pattern.matches_event(event("shop", detail_type)), detail_type
    assert pattern.matches_event(event("crm", "customer.first_purchase"))
    assert pattern.matches_event(event("kizuna.feedback", "channel.suppressed"))
    # and Kizuna's own events do not
    for detail_type in ("customer.first_purchase", "campaign.completed", "order.placed"):
        assert not pattern.matches_event(event("kizuna", detail_type))


def test_rule_target_retries_for_a_day_then_dead_letters(
    resources: dict[str, Any], ids: Ids
) -> None:
    [target] = resources[ids.rule]["Properties"]["Targets"]
    assert target["Arn"] == arn(ids.queue)
    assert target["DeadLetterConfig"] == {"Arn": arn(ids.dlq)}
    assert target["RetryPolicy"] == {
        "MaximumEventAgeInSeconds": 24 * 3600,
        "MaximumRetryAttempts": 185,
    }


def test_eventbridge_may_send_to_the_queue_and_dlq_only_from_this_rule(
    template: Template, ids: Ids
) -> None:
    for queue in (ids.queue, ids.dlq):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Allow",
                                    "Principal": {"Service": "events.amazonaws.com"},
                                    "Condition": {"ArnEquals": {"aws:SourceArn": arn(ids.rule)}},
                                    "Resource": arn(queue),
                                }
                            )
                        ]
                    )
                },
            },
        )


# --- Function -----------------------------------------------------------------------------


def test_event_source_reports_partial_batch_failures(template: Template, ids: Ids) -> None:
    mappings = template.find_resources(
        "AWS::Lambda::EventSourceMapping",
        {"Properties": {"FunctionName": {"Ref": ids.function}}},
    )
    [mapping] = mappings.values()
    assert mapping["Properties"] == {
        "EventSourceArn": arn(ids.queue),
        "FunctionName": {"Ref": ids.function},
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }


def test_function_runs_python313_on_arm64_with_both_layers(
    function: dict[str, Any], ids: Ids
) -> None:
    props = function["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handler.handler"
    assert props["MemorySize"] == 512
    assert props["Layers"] == [{"Ref": layer} for layer in ids.layers]
    assert props["Role"] == arn(ids.role)
    # Tracing is off unless asked for (the X-Ray SDK costs cold start).
    assert props.get("TracingConfig", {"Mode": "PassThrough"}) == {"Mode": "PassThrough"}


def test_function_tells_the_local_runtime_which_handler_it_is(
    function: dict[str, Any],
) -> None:
    assert function["Metadata"]["kizuna:function"] == "ingest"


def test_function_environment(function: dict[str, Any], ids: Ids) -> None:
    env = dict(function["Properties"]["Environment"]["Variables"])
    # erasure takes the customer out of their journeys' cohorts (DynamoDB): no state machine;
    # it schedules its sweep in the journeys' Scheduler group, onto this queue (or its DLQ)
    assert env == {
        "CUSTOMERS_TABLE": {"Ref": ids.customers},
        "ACTIVITY_TABLE": {"Ref": ids.activity},
        "EVENT_BUS_NAME": {"Ref": ids.bus},
        "DEAD_LETTER_QUEUE_URL": {"Ref": ids.dlq},
        "DEAD_LETTER_QUEUE_ARN": arn(ids.dlq),
        "INGEST_QUEUE_ARN": arn(ids.queue),
        "ERASURE_SWEEP_GROUP": {"Ref": ids.journey_group},
        "ERASURE_SWEEP_ROLE_ARN": arn(ids.sweep_role),
        "KIZUNA_CONFIG": "{}",
        "MAX_RECEIVE_COUNT": "5",
        "POWERTOOLS_SERVICE_NAME": "kizuna-ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "Kizuna",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def test_function_environment_satisfies_the_handlers_settings_model(
    function: dict[str, Any], resources: dict[str, Any], ids: Ids
) -> None:
    # The handler parses its environment into IngestSettings at cold start: every field it
    # reads must be set, and MAX_RECEIVE_COUNT must agree with the queue's redrive policy.
    env = function["Properties"]["Environment"]["Variables"]
    assert set(IngestSettings.model_fields) <= set(env)
    redrive = resources[ids.queue]["Properties"]["RedrivePolicy"]
    assert int(env["MAX_RECEIVE_COUNT"]) == redrive["maxReceiveCount"]


def test_function_logs_to_its_own_log_group_kept_one_month(
    function: dict[str, Any], resources: dict[str, Any], ids: Ids
) -> None:
    assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": ids.log_group}}
    assert resources[ids.log_group]["Properties"]["RetentionInDays"] == 30


# --- Permissions --------------------------------------------------------------------------


def test_role_has_no_managed_policies(resources: dict[str, Any], ids: Ids) -> None:
    assert "ManagedPolicyArns" not in resources[ids.role]["Properties"]


def test_no_statement_grants_on_every_resource(statements: list[dict[str, Any]], ids: Ids) -> None:
    for resource in iter_resources(statements):
        assert resource != "*"
        if isinstance(resource, dict) and "Fn::Join" in resource:
            # The only composed ARNs allowed: a table's own indexes, the executions of a
            # journey state machine (erasure stops them), the journey timers' schedules (an
            # erasure's sweeps)
            if ":execution:" in json.dumps(resource):
                assert json.dumps(resource).endswith('":*"]]}')
                continue
            if ":scheduler:" in json.dumps(resource):
                assert json.dumps(resource).endswith(':schedule/Kizuna-journeys/erasure.*"]]}')
                continue
            assert resource in (index_arn(ids.customers), index_arn(ids.activity))


def test_table_access_is_scoped_to_the_customers_and_activity_tables(
    statements: list[dict[str, Any]], ids: Ids
) -> None:
    tables = [arn(ids.customers), arn(ids.activity)]
    indexes = [index_arn(ids.customers), index_arn(ids.activity)]
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        granted = resources_for(statements, action)
        assert all(r in [*tables, *indexes] for r in granted), granted
        assert all(t in granted for t in tables), action
    dynamodb_resources = [
        r
        for s in statements
        if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    ]
    assert all(r in [*tables, *indexes] for r in dynamodb_resources)


def test_put_events_only_on_the_kizuna_bus(statements: list[dict[str, Any]], ids: Ids) -> None:
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]


def test_send_message_only_to_the_dlq(statements: list[dict[str, Any]], ids: Ids) -> None:
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids.dlq)]


def test_consumes_only_the_ingest_queue(statements: list[dict[str, Any]], ids: Ids) -> None:
    assert resources_for(statements, "sqs:ReceiveMessage") == [arn(ids.queue)]
    assert resources_for(statements, "sqs:DeleteMessage") == [arn(ids.queue)]


def test_writes_logs_only_to_its_log_group(statements: list[dict[str, Any]], ids: Ids) -> None:
    assert resources_for(statements, "logs:PutLogEvents") == [arn(ids.log_group)]
    assert resources_for(statements, "logs:CreateLogGroup") == []


def test_ingest_touches_no_state_machine(statements: list[dict[str, Any]]) -> None:
    # erasure leaves a journey by deleting the customer's cohort membership (DynamoDB):
    # executions carry no customer id, and stopping one would stop everyone in it
    assert not [s for s in statements if any(a.startswith("states:") for a in as_list(s["Action"]))]
