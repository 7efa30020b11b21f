"""Campaigns: the campaign function, the one generic campaign state machine, and the
Scheduler group and role that start it.

Every campaign occurrence runs through the same Standard state machine; nothing is made per
campaign at deploy time. ``kizuna campaigns apply`` creates one EventBridge Scheduler schedule
per campaign in :attr:`Campaigns.schedule_group`, targeting :attr:`Campaigns.state_machine`
with :attr:`Campaigns.scheduler_role` and :attr:`Campaigns.dead_letter_queue`, input
``{"campaign_id": ..., "scheduled_time": "<aws.scheduler.scheduled-time>"}``:

``Prepare`` (the campaign function decides whether this occurrence runs, in this execution
only: it is given ``$$.Execution.Id``; its answer is the state: ``run``, ``campaign_id``,
``occurrence``, ``segments``, ``total_segments``) ->
``ShouldRun`` (no: ``Skipped``) -> ``Freeze``, a Distributed Map over the scan segments
(each freezes its part of the audience into the occurrence's manifest) -> ``NoPlanYet``
(``$.plan`` = null) -> ``Plan`` (the function answers the next step, ``after`` the previous
one) -> ``Route`` on ``$.plan.phase``:

* ``done`` -> ``Complete`` (counts, the ``campaign.completed`` event, then the occurrence's
  manifest deleted) -> ``Completed``;
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

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from kizuna.runtime.settings import (
    ENV_ANALYTICS_BUCKET,
    ENV_CAMPAIGNS_TABLE,
)
from kizuna.services.contracts import CAMPAIGN_PAUSED_ERROR
from kizuna_infra import names, schedules
from kizuna_infra.delivery import Delivery
from kizuna_infra.functions import (
    DEFAULT_LOG_RETENTION,
    KizunaFunction,
    Wiring,
)
from kizuna_infra.schedules import scheduler_role_and_queue
from kizuna_infra.states import (
    Retry,
    lambda_invoke,
    standard_state_machine,
    state_machine_log_group,
)

CAMPAIGN_TIMEOUT = Duration.minutes(5)
CAMPAIGN_MEMORY_MB = 1024
# An occurrence spans every customer's local time (about a day), a winner wait (a sequential
# rule's daily looks: up to 14 days, winner.max_wait_hours) and pauses.
RUN_TIMEOUT = Duration.days(21)
FREEZE_MAX_CONCURRENCY = 16  # scan segments frozen at once: bounds the read rate on customers
SEND_MAX_CONCURRENCY = 10  # chunks sent at once: with the chunk size and pacing, the send rate
# While a campaign is paused SendBatch raises CampaignPaused: retried every minute, for a day.
PAUSED_RETRY = Retry((CAMPAIGN_PAUSED_ERROR,), Duration.seconds(60), 1_440, backoff_rate=1)
# Every action of the campaign function is idempotent (claims per occurrence and customer,
# fixed manifest keys): a failed invocation is retried with backoff.
TASK_RETRY = Retry((sfn.Errors.TASKS_FAILED,), Duration.seconds(10), 3)
LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"
THROTTLE_RETRY = Retry((LAMBDA_THROTTLED,), Duration.seconds(2), 6)


def schedule_group_name(stack: Stack) -> str:
    """``<stack name>-campaigns``, the stack name cut so the whole fits Scheduler's 64."""
    return schedules.schedule_group_name(
        stack, names.CAMPAIGN_SCHEDULE_GROUP_SUFFIX, names.CAMPAIGN_SCHEDULE_GROUP_MAX_LENGTH
    )


class Campaigns(Construct):
    """Campaign function, campaign state machine, Scheduler group, role and dead-letter queue.

    Keyword arguments:
        delivery: the send function's construct; the campaign function sends through the
            same channels, SES identity and configuration set, signing secret and
            unsubscribe URL, with the same settings and grants.
        templates_dir, segments_dir: bundled next to the handler (``templates/`` always,
            ``segments/`` when the folder exists).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        delivery: Delivery,
        templates_dir: Path | None = None,
        segments_dir: Path | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        source_root = wiring.shared["source_root"]
        self.tracing = wiring.shared.get("tracing", False)
        log_retention = wiring.shared.get("log_retention", DEFAULT_LOG_RETENTION)
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
            environment=wiring.environment(
                {
                    ENV_CAMPAIGNS_TABLE: wiring.tables.campaigns.table_name,
                    ENV_ANALYTICS_BUCKET: wiring.tables.analytics.bucket_name,
                    **delivery.channel_environment(),
                },
            ),
            extras=data_dirs,
            timeout=CAMPAIGN_TIMEOUT,
            memory_size=CAMPAIGN_MEMORY_MB,
            **wiring.shared,
        )
        function = self.campaign.function
        # Freeze: a parallel scan of the customers; send: one BatchGetItem per 100.
        wiring.tables.customers.grant(
            function, "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:GetItem"
        )
        # Caps and consent history, ledger rows, and the exactly-once claims written in
        # batches (TransactWriteItems is authorized per item: Put/Update/ConditionCheck).
        wiring.tables.activity.grant(
            function,
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
        )
        wiring.tables.campaigns.grant_read_write_data(function)
        # Reads under campaigns/ (the manifests, and a static audience's list.csv); writes
        # (with the lifecycle tag) and deletes (Complete) an occurrence's objects only,
        # campaigns/<id>/<occurrence>/...: never a list.csv a user uploaded, one level up.
        objects = wiring.tables.analytics.arn_for_objects(f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=function, actions=["s3:GetObject"], resource_arns=[objects]
        )
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
            resource_arns=[
                wiring.tables.analytics.arn_for_objects(f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*/*/*")
            ],
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[wiring.tables.analytics.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*"]}},
            )
        )
        wiring.bus.grant_put_events_to(function)
        # Delivery: as the send function is granted.
        self.sms_policy = delivery.grant_sending(self.campaign, names.CAMPAIGN_SMS_POLICY_ID)

        # --- The state machine -------------------------------------------------------------
        self.state_machine = self._state_machine(stack, log_retention)

        # --- Scheduler: the group the CLI puts schedules in, the role they run as ------------
        self.schedule_group_name = schedule_group_name(stack)
        self.schedule_group, self.schedule_group_arn = schedules.schedule_group(
            self, names.CAMPAIGN_SCHEDULE_GROUP_ID, stack, self.schedule_group_name
        )
        # Only schedules of this account's campaign group may assume the role.
        self.scheduler_role, self.dead_letter_queue = scheduler_role_and_queue(
            self,
            description="EventBridge Scheduler starting campaign occurrences",
            schedule_group_arn=self.schedule_group_arn,
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
                # a retry of this execution runs the occurrence; another execution does not
                "execution": state("$$.Execution.Id"),
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

        self.log_group = state_machine_log_group(
            self,
            names.CAMPAIGN_LOG_GROUP_ID,
            name=f"{stack.stack_name}{names.CAMPAIGN_LOG_GROUP_SUFFIX}",
            retention=log_retention,
        )
        return standard_state_machine(
            self,
            names.CAMPAIGN_STATE_MACHINE_ID,
            log_group=self.log_group,
            tracing=self.tracing,
            comment="Kizuna campaigns: one occurrence of any campaign, sent in batches",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=RUN_TIMEOUT,
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
        paused = (PAUSED_RETRY,) if state_id == names.CAMPAIGN_SEND_BATCH_STATE else ()
        return lambda_invoke(
            self,
            state_id,
            self.campaign.function,
            payload,
            retries=(THROTTLE_RETRY, *paused, TASK_RETRY),
            output_path=output_path,
            result_path=result_path,
            result_selector=result_selector,
            payload_only=payload_only,
        )
