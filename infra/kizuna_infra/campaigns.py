"""Campaigns: the campaign function, the one generic campaign state machine, and the
Scheduler group and role that start it.

Every campaign occurrence runs through the same Standard state machine; nothing is made per
campaign at deploy time. ``kizuna campaigns apply`` creates one EventBridge Scheduler schedule
per campaign in :attr:`Campaigns.schedule_group`, targeting :attr:`Campaigns.state_machine`
with :attr:`Campaigns.scheduler_role` and :attr:`Campaigns.dead_letter_queue`, input
``{"campaign_id": ..., "scheduled_time": "<aws.scheduler.scheduled-time>"}``:

``Prepare`` (the campaign function decides whether this occurrence runs; its answer is the
state: ``run``, ``campaign_id``, ``occurrence``, ``segments``, ``total_segments``) ->
``ShouldRun`` (no: ``Skipped``) -> ``Freeze``, a Distributed Map over the scan segments
(each freezes its part of the audience into the occurrence's manifest) -> ``NoPlanYet``
(``$.plan`` = null) -> ``Plan`` (the function answers the next step, ``after`` the previous
one) -> ``Route`` on ``$.plan.phase``:

* ``done`` -> ``Complete`` (counts, the ``campaign.completed`` event) -> ``Completed``;
* ``winner`` -> ``WaitForResults`` (until ``$.plan.wait_until``) -> ``ChooseWinner`` -> ``Plan``;
* otherwise -> ``Send``, a Distributed Map over ``$.plan.chunks`` (at most
  :data:`SEND_MAX_CONCURRENCY` at once: with the chunk size, the send rate), each item
  ``Pace`` (wait until the chunk's ``not_before``) -> ``SendBatch`` (hundreds of recipients
  per invocation; while the campaign is paused the function raises ``CampaignPaused``,
  retried every minute for a day) -> ``Plan``.

Transitions grow with chunks, not recipients. The requests are
``kizuna.services.contracts`` (``PrepareRequest``, ``FreezeRequest``, ``PlanRequest``,
``SendBatchRequest``, ``WinnerRequest``, ``CompleteRequest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from kizuna.runtime.settings import (
    ENV_ANALYTICS_BUCKET,
    ENV_CAMPAIGNS_TABLE,
    ENV_EVENT_BUS_NAME,
    ENV_KIZUNA_CONFIG,
)
from kizuna.services.contracts import CAMPAIGN_PAUSED_ERROR
from kizuna_infra import names
from kizuna_infra.data import DataTables
from kizuna_infra.delivery import SMS_ACTIONS, Delivery
from kizuna_infra.functions import DEFAULT_LOG_RETENTION, KizunaFunction, SharedProps
from kizuna_infra.queues import dead_letter_queue

CAMPAIGN_TIMEOUT = Duration.minutes(5)
CAMPAIGN_MEMORY_MB = 1024
# An occurrence spans every customer's local time (about a day), a winner wait and pauses.
RUN_TIMEOUT = Duration.days(7)
FREEZE_MAX_CONCURRENCY = 16  # scan segments frozen at once: bounds the read rate on customers
SEND_MAX_CONCURRENCY = 10  # chunks sent at once: with the chunk size and pacing, the send rate
# While a campaign is paused SendBatch raises CampaignPaused: retried every minute, for a day.
PAUSED_RETRY_INTERVAL = Duration.seconds(60)
PAUSED_MAX_ATTEMPTS = 1_440
# Every action of the campaign function is idempotent (claims per occurrence and customer,
# fixed manifest keys): a failed invocation is retried with backoff.
TASK_RETRY_ATTEMPTS = 3
TASK_RETRY_INTERVAL = Duration.seconds(10)
THROTTLE_RETRY_ATTEMPTS = 6
THROTTLE_RETRY_INTERVAL = Duration.seconds(2)
LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"


def schedule_group_name(stack: Stack) -> str:
    """``<stack name>-campaigns``, the stack name cut so the whole fits Scheduler's 64."""
    suffix = names.CAMPAIGN_SCHEDULE_GROUP_SUFFIX
    keep = names.CAMPAIGN_SCHEDULE_GROUP_MAX_LENGTH - len(suffix)
    return f"{stack.stack_name[:keep]}{suffix}"


class Campaigns(Construct):
    """Campaign function, campaign state machine, Scheduler group, role and dead-letter queue.

    Keyword arguments:
        delivery: the send function's construct; the campaign function sends through the
            same SES identity and configuration set, signing secret and unsubscribe URL.
        email_from, push_application_id, line_token_secret_arn, line_token_parameter,
        sms_sender_id: the channel settings the send function gets (see
            :class:`~kizuna_infra.delivery.Delivery`).
        templates_dir, segments_dir: bundled next to the handler (``templates/`` always,
            ``segments/`` when the folder exists).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        tables: DataTables,
        shared: SharedProps,
        delivery: Delivery,
        templates_dir: Path | None = None,
        segments_dir: Path | None = None,
        config_json: str = "{}",
        email_from: str = names.DEFAULT_EMAIL_FROM,
        push_application_id: str = "",
        line_token_secret_arn: str = "",
        line_token_parameter: str = "",
        sms_sender_id: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        source_root = shared["source_root"]
        self.tracing = shared.get("tracing", False)
        log_retention = shared.get("log_retention", DEFAULT_LOG_RETENTION)
        templates_dir = templates_dir or source_root / names.TEMPLATES_DIR
        segments_dir = segments_dir or source_root / names.SEGMENTS_DIR
        data_dirs = {names.TEMPLATES_DIR: templates_dir}
        if segments_dir.is_dir():
            data_dirs[names.SEGMENTS_DIR] = segments_dir
        stack = Stack.of(self)

        # --- The campaign function --------------------------------------------------------
        self.campaign = KizunaFunction(
            self,
            names.CAMPAIGN_FUNCTION_ID,
            folder=names.CAMPAIGN_FUNCTION_NAME,
            description="Kizuna campaign: freeze audiences, plan, send in batches, complete",
            environment={
                **tables.environment,
                ENV_CAMPAIGNS_TABLE: tables.campaigns.table_name,
                ENV_ANALYTICS_BUCKET: tables.analytics.bucket_name,
                ENV_EVENT_BUS_NAME: bus.event_bus_name,
                ENV_KIZUNA_CONFIG: config_json,
                names.ENV_SIGNING_SECRET_ARN: delivery.signing_secret.secret_arn,
                names.ENV_EMAIL_FROM: email_from,
                names.ENV_SES_CONFIGURATION_SET: (
                    delivery.configuration_set.configuration_set_name
                ),
                names.ENV_UNSUBSCRIBE_URL: delivery.unsubscribe_url.url,
                names.ENV_PUSH_APPLICATION_ID: push_application_id,
                names.ENV_LINE_TOKEN_SECRET_ARN: line_token_secret_arn,
                names.ENV_LINE_TOKEN_PARAMETER: line_token_parameter,
                names.ENV_SMS_SENDER_ID: sms_sender_id,
            },
            extras=data_dirs,
            timeout=CAMPAIGN_TIMEOUT,
            memory_size=CAMPAIGN_MEMORY_MB,
            **shared,
        )
        function = self.campaign.function
        # Freeze: a parallel scan of the customers; send: one BatchGetItem per 100.
        tables.customers.grant(
            function, "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:GetItem"
        )
        # Caps and consent history, ledger rows, and the exactly-once claims written in
        # batches (TransactWriteItems is authorized per item: Put/Update/ConditionCheck).
        tables.activity.grant(
            function,
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
        )
        tables.campaigns.grant_read_write_data(function)
        # Manifests and chunk files under campaigns/ only.
        objects = tables.analytics.arn_for_objects(f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=function, actions=["s3:GetObject", "s3:PutObject"], resource_arns=[objects]
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[tables.analytics.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*"]}},
            )
        )
        bus.grant_put_events_to(function)
        # Delivery: as the send function is granted.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["ses:SendEmail", "ses:SendRawEmail"],
            resource_arns=[delivery.ses_identity_arn, delivery.configuration_set_arn],
        )
        if push_application_id:
            iam.Grant.add_to_principal(
                grantee=function,
                actions=["mobiletargeting:SendMessages"],
                resource_arns=[
                    stack.format_arn(
                        service="mobiletargeting",
                        resource="apps",
                        resource_name=f"{push_application_id}/messages",
                    )
                ],
            )
        if line_token_secret_arn:
            secretsmanager.Secret.from_secret_complete_arn(
                self, "LineTokenSecret", line_token_secret_arn
            ).grant_read(function)
        if line_token_parameter:
            ssm.StringParameter.from_secure_string_parameter_attributes(
                self, "LineTokenParameter", parameter_name=line_token_parameter
            ).grant_read(function)
        delivery.signing_secret.grant_read(function)
        # SMS goes to phone numbers, which are not IAM resources: a policy of its own, so its
        # "*" is acknowledged on exactly this statement.
        self.sms_policy = iam.Policy(
            self.campaign,
            names.CAMPAIGN_SMS_POLICY_ID,
            roles=[self.campaign.role],
            statements=[iam.PolicyStatement(actions=list(SMS_ACTIONS), resources=["*"])],
        )

        # --- The state machine -------------------------------------------------------------
        self.state_machine = self._state_machine(stack, log_retention)

        # --- Scheduler: the group the CLI puts schedules in, the role they run as ------------
        self.schedule_group_name = schedule_group_name(stack)
        self.schedule_group = scheduler.CfnScheduleGroup(
            self, names.CAMPAIGN_SCHEDULE_GROUP_ID, name=self.schedule_group_name
        )
        self.schedule_group_arn = stack.format_arn(
            service="scheduler",
            resource="schedule-group",
            resource_name=self.schedule_group_name,
        )
        self.dead_letter_queue = dead_letter_queue(self, names.SCHEDULE_DLQ_ID)
        # Only schedules of this account's campaign group may assume the role.
        self.scheduler_role = iam.Role(
            self,
            names.SCHEDULER_ROLE_ID,
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": Aws.ACCOUNT_ID,
                        "aws:SourceArn": self.schedule_group_arn,
                    }
                },
            ),
            description="EventBridge Scheduler starting campaign occurrences",
        )
        self.state_machine.grant_start_execution(self.scheduler_role)
        # Scheduler dead-letters an undeliverable occurrence as this role (SendMessage only).
        iam.Grant.add_to_principal(
            grantee=self.scheduler_role,
            actions=["sqs:SendMessage"],
            resource_arns=[self.dead_letter_queue.queue_arn],
        )

    # --- the definition ----------------------------------------------------------------------
    def _state_machine(self, stack: Stack, log_retention: logs.RetentionDays) -> sfn.StateMachine:
        state = sfn.JsonPath.string_at
        occurrence = {
            "campaign_id": state("$.campaign_id"),
            "occurrence": state("$.occurrence"),
        }

        prepare = self._invoke(
            names.CAMPAIGN_PREPARE_STATE,
            {
                "action": "prepare",
                "campaign_id": state("$.campaign_id"),
                "scheduled_time": state("$.scheduled_time"),
            },
            output_path="$.Payload",
        )
        skipped = sfn.Succeed(
            self, names.CAMPAIGN_SKIPPED_STATE, comment="Not scheduled, paused or cancelled"
        )

        freeze_segment = self._invoke(
            names.CAMPAIGN_FREEZE_SEGMENT_STATE, result_selector={"frozen": True}
        )
        freeze = sfn.DistributedMap(
            self,
            names.CAMPAIGN_FREEZE_MAP,
            comment="Freeze the audience: one parallel-scan segment per item",
            items_path="$.segments",
            item_selector={
                "action": "freeze",
                **occurrence,
                "segment": sfn.JsonPath.number_at("$$.Map.Item.Value"),
                "total_segments": sfn.JsonPath.number_at("$.total_segments"),
            },
            max_concurrency=FREEZE_MAX_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
        )
        freeze.item_processor(freeze_segment)

        # The loop's state: the occurrence and the last plan, null before the first (CDK drops
        # a literal null, so it is parsed from JSON). Prepare's segment list is left behind.
        no_plan = sfn.Pass(
            self,
            names.CAMPAIGN_NO_PLAN_STATE,
            comment="The first Plan has no previous plan",
            parameters={
                **occurrence,
                "plan": sfn.JsonPath.string_at("States.StringToJson('null')"),
            },
        )
        plan = self._invoke(
            names.CAMPAIGN_PLAN_STATE,
            {"action": "plan", **occurrence, "after": sfn.JsonPath.object_at("$.plan")},
            result_path="$.plan",
            payload_only=True,
        )

        complete = self._invoke(
            names.CAMPAIGN_COMPLETE_STATE,
            {"action": "complete", **occurrence},
            output_path="$.Payload",
        )
        completed = sfn.Succeed(self, names.CAMPAIGN_COMPLETED_STATE)

        wait_for_results = sfn.Wait(
            self,
            names.CAMPAIGN_WAIT_RESULTS_STATE,
            comment="The test pool's opens, clicks or goals accrue",
            time=sfn.WaitTime.timestamp_path("$.plan.wait_until"),
        )
        choose_winner = self._invoke(
            names.CAMPAIGN_CHOOSE_WINNER_STATE,
            {"action": "choose_winner", **occurrence},
            result_path=sfn.JsonPath.DISCARD,
        )

        pace = sfn.Wait(
            self,
            names.CAMPAIGN_PACE_STATE,
            comment="Not before the chunk's instant (local time, quiet hours, rate limit)",
            time=sfn.WaitTime.timestamp_path("$.chunk.not_before"),
        )
        send_batch = self._invoke(names.CAMPAIGN_SEND_BATCH_STATE, result_selector={"sent": True})
        send = sfn.DistributedMap(
            self,
            names.CAMPAIGN_SEND_MAP,
            comment="Send the plan's chunks, a few hundred recipients each",
            items_path="$.plan.chunks",
            item_selector={
                "action": "send_batch",
                **occurrence,
                "chunk": sfn.JsonPath.object_at("$$.Map.Item.Value"),
            },
            max_concurrency=SEND_MAX_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
        )
        send.item_processor(pace.next(send_batch))

        route = (
            sfn.Choice(self, names.CAMPAIGN_ROUTE_CHOICE)
            .when(sfn.Condition.string_equals("$.plan.phase", "done"), complete.next(completed))
            .when(
                sfn.Condition.string_equals("$.plan.phase", "winner"),
                wait_for_results.next(choose_winner).next(plan),
            )
            .otherwise(send.next(plan))
        )
        should_run = (
            sfn.Choice(self, names.CAMPAIGN_RUN_CHOICE)
            .when(sfn.Condition.boolean_equals("$.run", True), freeze)
            .otherwise(skipped)
        )
        freeze.next(no_plan).next(plan).next(route)
        definition = prepare.next(should_run)

        self.log_group = logs.LogGroup(
            self,
            names.CAMPAIGN_LOG_GROUP_ID,
            log_group_name=(
                f"{names.STATE_MACHINE_LOG_GROUP_PREFIX}{stack.stack_name}"
                f"{names.CAMPAIGN_LOG_GROUP_SUFFIX}"
            ),
            retention=log_retention,
            # Named (vended logs), so a retained group would block re-creating the stack;
            # execution data (customer ids in chunks' keys) is not logged.
            removal_policy=RemovalPolicy.DESTROY,
        )
        return sfn.StateMachine(
            self,
            names.CAMPAIGN_STATE_MACHINE_ID,
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment="Kizuna campaigns: one occurrence of any campaign, sent in batches",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=RUN_TIMEOUT,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
            tracing_enabled=self.tracing,
        )

    def _invoke(
        self,
        state_id: str,
        payload: dict[str, Any] | None = None,
        *,
        output_path: str | None = None,
        result_path: str | None = None,
        result_selector: dict[str, Any] | None = None,
        payload_only: bool = False,
    ) -> tasks.LambdaInvoke:
        """A state invoking the campaign function (``payload`` or, without one, the state's
        input). Lambda's own errors (CDK's service-exception retry, and throttling) are
        retried with backoff; so is a failed invocation, every action being idempotent.
        SendBatch also retries ``CampaignPaused`` every minute for a day."""
        task = tasks.LambdaInvoke(
            self,
            state_id,
            lambda_function=self.campaign.function,
            payload=sfn.TaskInput.from_object(payload) if payload is not None else None,
            payload_response_only=payload_only,
            output_path=output_path,
            result_path=result_path,
            result_selector=result_selector,
        )
        task.add_retry(
            errors=[LAMBDA_THROTTLED],
            interval=THROTTLE_RETRY_INTERVAL,
            max_attempts=THROTTLE_RETRY_ATTEMPTS,
            backoff_rate=2,
        )
        if state_id == names.CAMPAIGN_SEND_BATCH_STATE:
            task.add_retry(
                errors=[CAMPAIGN_PAUSED_ERROR],
                interval=PAUSED_RETRY_INTERVAL,
                max_attempts=PAUSED_MAX_ATTEMPTS,
                backoff_rate=1,
            )
        task.add_retry(
            errors=[sfn.Errors.TASKS_FAILED],
            interval=TASK_RETRY_INTERVAL,
            max_attempts=TASK_RETRY_ATTEMPTS,
            backoff_rate=2,
        )
        return task
