"""Campaigns: the campaigns table, the campaign function, the one campaign state machine,
and the Scheduler group, role and dead-letter queue the CLI schedules occurrences with."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from aws_cdk.assertions import Template
from infra_helpers import (
    CONFIGURED_WEBHOOK_SECRETS,
    StackIds,
    actions_of,
    arn,
    as_list,
    environment,
    function_statements,
    index_arn,
    iter_resources,
    of_type,
    qualified_arn,
    resources_for,
    statements_of,
    webhook_secret_resources,
)

from kizuna.runtime import settings
from kizuna.services import contracts
from kizuna_infra import campaigns, names
from kizuna_infra.stack import KizunaStack
from kizuna_tools.aslcheck import state_machine_definitions

pytestmark = pytest.mark.infra

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}
# What the campaign function is told, beside the send function's delivery settings.
CAMPAIGN_ENV = {
    settings.ENV_CUSTOMERS_TABLE,
    settings.ENV_ACTIVITY_TABLE,
    settings.ENV_CAMPAIGNS_TABLE,
    settings.ENV_ANALYTICS_BUCKET,
    settings.ENV_EVENT_BUS_NAME,
    settings.ENV_KIZUNA_CONFIG,
}
DELIVERY_ENV = {
    names.ENV_EMAIL_FROM,
    names.ENV_SES_CONFIGURATION_SET,
    names.ENV_SIGNING_SECRET_ARN,
    names.ENV_UNSUBSCRIBE_URL,
    names.ENV_PUSH_APPLICATION_ID,
    names.ENV_LINE_TOKEN_SECRET_ARN,
    names.ENV_LINE_TOKEN_PARAMETER,
    names.ENV_SMS_SENDER_ID,
}


class Ids(StackIds):
    def __init__(self, stack: KizunaStack, logical_id: Any) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        c = k.campaigns
        self.table = logical_id(k.tables.campaigns)
        self.bucket = logical_id(k.tables.analytics)
        self.function = logical_id(c.campaign.function)
        self.send = logical_id(k.delivery.send.function)
        self.signing = logical_id(k.delivery.signing_secret)
        self.machine = logical_id(c.state_machine)
        self.machine_role = logical_id(c.state_machine.role)
        self.group = logical_id(c.schedule_group)
        self.scheduler_role = logical_id(c.scheduler_role)
        self.dlq = logical_id(c.dead_letter_queue)
        self.sms_policy = logical_id(c.sms_policy)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: Any) -> Ids:
    return Ids(stack, logical_id)


@pytest.fixture(scope="module")
def asl(template_json: dict[str, Any], ids: Ids) -> dict[str, Any]:
    return state_machine_definitions(template_json)[ids.machine]


def states_of(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, those of the Map item processors included (names are unique)."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in asl["States"].items():
        found[name] = state
        if "ItemProcessor" in state:
            found.update(states_of(state["ItemProcessor"]))
    return found


def retry_of(state: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(r["ErrorEquals"]): r for r in state["Retry"]}


def bucket_objects(bucket: str, prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [arn(bucket), f"/{prefix}*"]]}


# --- The campaigns table -----------------------------------------------------------------------
def test_campaigns_table_is_on_demand_encrypted_recoverable_and_retained(
    resources: dict[str, Any], ids: Ids
) -> None:
    table = resources[ids.table]
    props = table["Properties"]
    keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
    assert keys == {"HASH": "campaign_id", "RANGE": "sk"}
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        "campaign_id": "S",
        "sk": "S",
    }
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True
    recovery = props["PointInTimeRecoverySpecification"]
    assert recovery["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


# --- The campaign function -----------------------------------------------------------------------
def test_campaign_function_is_told_its_tables_bucket_bus_and_the_send_settings(
    resources: dict[str, Any], ids: Ids
) -> None:
    env = environment(resources, ids.function)
    assert set(env) >= CAMPAIGN_ENV | DELIVERY_ENV
    assert env[settings.ENV_CAMPAIGNS_TABLE] == {"Ref": ids.table}
    assert env[settings.ENV_ANALYTICS_BUCKET] == {"Ref": ids.bucket}
    # the handler's settings model finds every variable it requires, and reads every one set
    fields = settings.CampaignSettings.model_fields
    assert {n for n, f in fields.items() if f.is_required()} <= set(env)
    assert set(env) - {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    } <= set(fields)
    props = resources[ids.function]["Properties"]
    assert props["Timeout"] == 300
    assert props["MemorySize"] == 1024
    assert resources[ids.function]["Metadata"][names.FUNCTION_METADATA_KEY] == "campaign"


def test_campaign_function_sends_with_exactly_the_send_functions_channel_settings(
    configured: Template, configured_stack: KizunaStack, logical_id: Any
) -> None:
    # Given every channel configured (push app, LINE secret, SMS sender id, From address)
    resources = configured.to_json()["Resources"]
    campaign = configured_stack.kizuna.campaigns
    function = logical_id(campaign.campaign.function)
    send = logical_id(configured_stack.kizuna.delivery.send.function)
    ours, theirs = environment(resources, function), environment(resources, send)

    # Then the campaign function's delivery settings are the send function's
    assert {n: ours[n] for n in DELIVERY_ENV} == {n: theirs[n] for n in DELIVERY_ENV}
    assert ours[names.ENV_PUSH_APPLICATION_ID] == "0123456789abcdef0123456789abcdef"

    # And it may send push on that app only, and read the LINE token secret
    statements = function_statements(resources, function)
    [pinpoint] = resources_for(statements, "mobiletargeting:SendMessages")
    assert "0123456789abcdef0123456789abcdef/messages" in json.dumps(pinpoint)
    secrets = resources_for(statements, "secretsmanager:GetSecretValue")
    assert any("kizuna/line-AbCdEf" in json.dumps(s) for s in secrets)
    # and exactly the configured webhooks' keys
    assert webhook_secret_resources(statements) == CONFIGURED_WEBHOOK_SECRETS


def test_campaign_function_is_granted_only_what_the_batch_send_path_does(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.function)
    customers = [arn(ids.customers), index_arn(ids.customers)]
    activity = [arn(ids.activity), index_arn(ids.activity)]
    campaigns_table = arn(ids.table)

    # customers: scanned (freeze), read in batches; never written
    for action in ("dynamodb:Scan", "dynamodb:GetItem"):
        assert customers[0] in resources_for(statements, action)
        assert activity[0] not in resources_for(statements, action)
    assert resources_for(statements, "dynamodb:BatchGetItem")[:2] == customers
    # activity: caps, ledger and claims in batches (TransactWriteItems is per-item actions)
    for action in (
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    ):
        assert activity[0] in resources_for(statements, action), action
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert customers[0] not in resources_for(statements, action), action
    assert activity[0] not in resources_for(statements, "dynamodb:DeleteItem")
    # the campaigns table: read and write
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert campaigns_table in resources_for(statements, action), action

    # the bucket: objects under campaigns/ only (put with their tag), and listing that
    # prefix only; deleting an occurrence's objects, never a user's campaigns/<id>/list.csv
    objects = bucket_objects(ids.bucket, names.ANALYTICS_CAMPAIGNS_PREFIX)
    occurrences = bucket_objects(ids.bucket, f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*/*/")
    assert resources_for(statements, "s3:GetObject") == [objects]
    for action in ("s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"):
        assert resources_for(statements, action) == [occurrences], action
    pattern = occurrences["Fn::Join"][1][-1].removeprefix("/")
    assert fnmatch.fnmatchcase("campaigns/sale/20260105T0300Z/pass-0/main/x.jsonl", pattern)
    assert not fnmatch.fnmatchcase("campaigns/sale/list.csv", pattern)
    [listing] = [s for s in statements if "s3:ListBucket" in as_list(s["Action"])]
    assert listing["Resource"] == arn(ids.bucket)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["campaigns/*"]}}

    # events on Kizuna's bus; the signing secret; email as the send function sends it
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]
    assert resources_for(statements, "secretsmanager:GetSecretValue") == [{"Ref": ids.signing}]
    send_statements = function_statements(resources, ids.send)
    assert resources_for(statements, "ses:SendEmail") == resources_for(
        send_statements, "ses:SendEmail"
    )

    # no wildcard action anywhere; "*" resources only in the SMS policy, for SMS only
    assert not [a for a in actions_of(statements) if "*" in a]
    wildcard = [s for s in statements if "*" in list(iter_resources([s]))]
    assert [set(as_list(s["Action"])) for s in wildcard] == [
        {"sns:Publish", "sns:CheckIfPhoneNumberIsOptedOut"}
    ]
    sms = resources[ids.sms_policy]["Properties"]["PolicyDocument"]["Statement"]
    assert sms == wildcard


# --- The state machine ---------------------------------------------------------------------------
def test_the_run_prepares_freezes_and_loops_on_plan(asl: dict[str, Any], ids: Ids) -> None:
    states = asl["States"]
    prepare = states[asl["StartAt"]]
    assert asl["StartAt"] == names.CAMPAIGN_PREPARE_STATE
    assert prepare["Parameters"]["Payload"] == {
        "action": "prepare",
        "campaign_id.$": "$.campaign_id",
        "scheduled_time.$": "$.scheduled_time",
        "execution.$": "$$.Execution.Id",  # a duplicated delivery's execution runs nothing
    }
    assert prepare["OutputPath"] == "$.Payload"
    should_run = states[prepare["Next"]]
    assert should_run["Type"] == "Choice"
    assert should_run["Choices"] == [
        {"Variable": "$.run", "BooleanEquals": True, "Next": names.CAMPAIGN_FREEZE_MAP}
    ]
    assert states[should_run["Default"]]["Type"] == "Succeed"

    freeze = states[names.CAMPAIGN_FREEZE_MAP]
    assert freeze["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert freeze["ItemsPath"] == "$.segments"
    assert freeze["MaxConcurrency"] == campaigns.FREEZE_MAX_CONCURRENCY
    assert freeze["ResultPath"] is None
    selector = freeze["ItemSelector"]
    assert selector["segment.$"] == "$$.Map.Item.Value"
    assert {k.removesuffix(".$") for k in selector} == set(contracts.FreezeRequest.model_fields)

    # NoPlanYet: the loop's state is the occurrence and a null plan
    no_plan = states[freeze["Next"]]
    assert no_plan["Type"] == "Pass"
    assert no_plan["Parameters"]["plan.$"] == "States.StringToJson('null')"
    plan = states[no_plan["Next"]]
    assert plan is states[names.CAMPAIGN_PLAN_STATE]
    assert plan["Resource"] == f"arn:aws:lambda:us-east-1:123456789012:function:{ids.function}"
    assert plan["Parameters"]["after.$"] == "$.plan"
    assert {k.removesuffix(".$") for k in plan["Parameters"]} == set(
        contracts.PlanRequest.model_fields
    )
    assert plan["ResultPath"] == "$.plan"

    route = states[plan["Next"]]
    assert route["Type"] == "Choice"
    by_phase = {c["StringEquals"]: c["Next"] for c in route["Choices"]}
    assert by_phase == {
        "done": names.CAMPAIGN_COMPLETE_STATE,
        "winner": names.CAMPAIGN_WAIT_RESULTS_STATE,
    }
    assert {c["Variable"] for c in route["Choices"]} == {"$.plan.phase"}
    assert route["Default"] == names.CAMPAIGN_SEND_MAP
    # every way round the loop comes back to Plan
    assert states[names.CAMPAIGN_SEND_MAP]["Next"] == names.CAMPAIGN_PLAN_STATE
    assert states[names.CAMPAIGN_CHOOSE_WINNER_STATE]["Next"] == names.CAMPAIGN_PLAN_STATE
    complete = states[names.CAMPAIGN_COMPLETE_STATE]
    assert states[complete["Next"]]["Type"] == "Succeed"


def test_winner_selection_waits_until_the_plans_instant(asl: dict[str, Any]) -> None:
    states = asl["States"]
    wait = states[names.CAMPAIGN_WAIT_RESULTS_STATE]
    assert wait == {**wait, "Type": "Wait", "TimestampPath": "$.plan.wait_until"}
    assert wait["Next"] == names.CAMPAIGN_CHOOSE_WINNER_STATE
    choose = states[names.CAMPAIGN_CHOOSE_WINNER_STATE]
    assert choose["ResultPath"] is None  # the state keeps campaign_id and occurrence
    assert choose["Parameters"]["Payload"] == {
        "action": "choose_winner",
        "campaign_id.$": "$.campaign_id",
        "occurrence.$": "$.occurrence",
    }


def test_send_is_a_distributed_map_of_paced_batches_that_survive_a_pause(
    asl: dict[str, Any],
) -> None:
    send = asl["States"][names.CAMPAIGN_SEND_MAP]
    assert send["Type"] == "Map"
    assert send["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",  # a Pace may wait for hours
    }
    assert send["ItemsPath"] == "$.plan.chunks"
    assert send["MaxConcurrency"] == campaigns.SEND_MAX_CONCURRENCY
    assert send["ResultPath"] is None
    assert send["ItemSelector"] == {
        "action": "send_batch",
        "campaign_id.$": "$.campaign_id",
        "occurrence.$": "$.occurrence",
        "chunk.$": "$$.Map.Item.Value",
    }
    inner = send["ItemProcessor"]
    pace = inner["States"][inner["StartAt"]]
    assert pace["Type"] == "Wait"
    assert pace["TimestampPath"] == "$.chunk.not_before"
    batch = inner["States"][pace["Next"]]
    assert batch["End"] is True
    assert batch["Parameters"]["Payload.$"] == "$"  # the item, as SendBatchRequest

    retries = retry_of(batch)
    paused = retries[(contracts.CAMPAIGN_PAUSED_ERROR,)]
    assert (paused["IntervalSeconds"], paused["MaxAttempts"], paused["BackoffRate"]) == (
        60,
        1440,
        1,
    )
    assert retries[("States.TaskFailed",)]["MaxAttempts"] == 3
    # the catch-all comes after CampaignPaused, or it would swallow the pause
    order = [r["ErrorEquals"][0] for r in batch["Retry"]]
    assert order.index(contracts.CAMPAIGN_PAUSED_ERROR) < order.index("States.TaskFailed")


def test_every_lambda_task_retries_lambdas_own_errors_with_backoff(asl: dict[str, Any]) -> None:
    tasks = {n: s for n, s in states_of(asl).items() if s["Type"] == "Task"}
    assert set(tasks) == {
        names.CAMPAIGN_PREPARE_STATE,
        names.CAMPAIGN_FREEZE_SEGMENT_STATE,
        names.CAMPAIGN_PLAN_STATE,
        names.CAMPAIGN_SEND_BATCH_STATE,
        names.CAMPAIGN_CHOOSE_WINNER_STATE,
        names.CAMPAIGN_COMPLETE_STATE,
    }
    for name, task in tasks.items():
        retried = {e for r in task["Retry"] for e in r["ErrorEquals"] if r["BackoffRate"] > 1}
        assert LAMBDA_SERVICE_ERRORS | {"Lambda.TooManyRequestsException"} <= retried, name
        assert "States.TaskFailed" in retried, name
        # nothing is caught: a task that keeps failing fails the run (and its alarm)
        assert "Catch" not in task, name


def test_state_machine_is_standard_bounded_logged_without_data_and_invokes_only_campaign(
    resources: dict[str, Any], ids: Ids, asl: dict[str, Any]
) -> None:
    props = resources[ids.machine]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert asl["TimeoutSeconds"] == 21 * 24 * 3600
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False
    assert props.get("TracingConfiguration", {"Enabled": False})["Enabled"] is False
    statements = statements_of(resources, ids.machine_role)
    assert resources_for(statements, "lambda:InvokeFunction") == [
        arn(ids.function),
        qualified_arn(ids.function),
    ]
    # the Distributed Maps' child executions: this state machine only
    assert resources_for(statements, "states:StartExecution") == [{"Ref": ids.machine}]


# --- Scheduler -------------------------------------------------------------------------------------
def test_scheduler_role_may_only_start_the_campaign_machine_for_the_campaign_group(
    resources: dict[str, Any], ids: Ids
) -> None:
    group = resources[ids.group]
    assert group["Type"] == "AWS::Scheduler::ScheduleGroup"
    assert group["Properties"]["Name"] == "Kizuna-campaigns"
    # no schedule in the template: the CLI makes one per campaign in the group
    assert not [
        s
        for s in of_type(resources, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Ref": ids.machine}
    ]

    [trust] = resources[ids.scheduler_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    conditions = trust["Condition"]["StringEquals"]
    assert conditions["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "schedule-group/Kizuna-campaigns" in json.dumps(conditions["aws:SourceArn"])

    statements = statements_of(resources, ids.scheduler_role)
    assert actions_of(statements) == {"states:StartExecution", "sqs:SendMessage"}
    assert resources_for(statements, "states:StartExecution") == [{"Ref": ids.machine}]
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids.dlq)]
    dlq = resources[ids.dlq]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_schedule_group_name_fits_schedulers_limit() -> None:
    import aws_cdk as cdk

    stack = cdk.Stack(cdk.App(), "S" * 128)
    name = campaigns.schedule_group_name(stack)
    assert len(name) == names.CAMPAIGN_SCHEDULE_GROUP_MAX_LENGTH
    assert name.endswith("-campaigns")


# --- Outputs and alarms ----------------------------------------------------------------------------
def test_outputs_the_cli_reads(template_json: dict[str, Any], ids: Ids) -> None:
    outputs = {k: v["Value"] for k, v in template_json["Outputs"].items()}
    assert outputs[names.OUTPUT_CAMPAIGNS_TABLE] == {"Ref": ids.table}
    assert outputs[names.OUTPUT_CAMPAIGN_STATE_MACHINE_ARN] == {"Ref": ids.machine}
    assert outputs[names.OUTPUT_CAMPAIGN_SCHEDULER_ROLE_ARN] == arn(ids.scheduler_role)
    assert outputs[names.OUTPUT_CAMPAIGN_SCHEDULE_GROUP] == {"Ref": ids.group}
    assert outputs[names.OUTPUT_CAMPAIGN_SCHEDULE_DLQ_ARN] == arn(ids.dlq)
    # kizuna campaigns apply refuses a campaign on none of them
    assert outputs[names.OUTPUT_DEPLOYED_CHANNELS] == "card,dm,email,sms"


def test_failed_runs_function_errors_and_dead_letters_alarm(
    resources: dict[str, Any], ids: Ids
) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()

    def watched(metric: str, dimension: str, logical: str) -> bool:
        return any(
            a["Properties"]["MetricName"] == metric
            and {"Name": dimension, "Value": {"Ref": logical}} in a["Properties"]["Dimensions"]
            for a in alarms
        )

    assert watched("ExecutionsFailed", "StateMachineArn", ids.machine)
    assert watched("Errors", "FunctionName", ids.function)
    dlq_name = {"Fn::GetAtt": [ids.dlq, "QueueName"]}
    assert any(
        {"Name": "QueueName", "Value": dlq_name} in a["Properties"]["Dimensions"] for a in alarms
    )


def test_a_closed_occurrence_outlasts_any_batch_in_flight() -> None:
    """`kizuna campaigns close` waits CLOSE_AFTER after the execution ended: a SendBatch
    invocation under way runs to the function's timeout, so the wait must outlast it."""
    from kizuna.services.campaign import CLOSE_AFTER

    assert CLOSE_AFTER.total_seconds() >= 3 * campaigns.CAMPAIGN_TIMEOUT.to_seconds()
