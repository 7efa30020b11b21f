"""Scoring: the daily RFM scoring job (``kizuna.scoring.job``).

EventBridge Scheduler (daily, in the shop's time zone, with retries and a dead-letter
queue) starts a Step Functions Standard state machine:

``Boundaries`` (the score function samples every scan segment and returns the shared
quantile boundaries, the run's ``as_of`` and the segment numbers) -> ``ScoreSegments``, a
**Distributed Map** over those segment numbers (inline items, no ItemReader: the items are
DynamoDB parallel-scan segments, not S3 objects) -> ``ScoreSegment`` (the score function on
one segment; retried with backoff, it is idempotent: it writes only what changed and its
events have deterministic ids; its work files in the analytics bucket have fixed keys) ->
``Finish`` (the score function adds the shards' work files up: recommendations into the
products table, the day's snapshot cells into the snapshots table).
"""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from kizuna.runtime.settings import (
    ENV_ANALYTICS_BUCKET,
    ENV_PRODUCTS_TABLE,
    ENV_SNAPSHOTS_TABLE,
)
from kizuna_infra import names
from kizuna_infra.functions import DEFAULT_LOG_RETENTION, KizunaFunction, Wiring
from kizuna_infra.schedules import (
    DEFAULT_TIME_ZONE,
    SCHEDULE_MAX_EVENT_AGE,
    SCHEDULE_RETRY_ATTEMPTS,
    scheduler_role_and_queue,
)
from kizuna_infra.states import (
    Retry,
    lambda_invoke,
    standard_state_machine,
    state_machine_log_group,
)

SCORE_TIMEOUT = Duration.minutes(15)
SCORE_MEMORY_MB = 1024
# After the daily sweep (01:00): scores are fresh when marketers start their day.
DAILY_SCORING = "cron(0 2 * * ? *)"
SEGMENT_RETRY = Retry((sfn.Errors.TASKS_FAILED,), Duration.seconds(30), 5)
MAX_CONCURRENCY = 16  # segments scored at once: bounds the write rate on the customers table
RUN_TIMEOUT = Duration.hours(6)


class Scoring(Construct):
    """Score function, scoring state machine and its daily schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        scan_segments: int = 16,
        schedule_time_zone: TimeZone = DEFAULT_TIME_ZONE,
    ) -> None:
        super().__init__(scope, construct_id)
        tracing = wiring.shared.get("tracing", False)
        log_retention = wiring.shared.get("log_retention", DEFAULT_LOG_RETENTION)
        self.tracing = tracing
        self.scan_segments = scan_segments

        # --- The score function ----------------------------------------------------------
        self.score = KizunaFunction(
            self,
            names.SCORE_FUNCTION_ID,
            folder=names.SCORE_FUNCTION_NAME,
            description="Kizuna score: RFM scores, segments and time-dependent ranks",
            service_name=names.SCORE_SERVICE_NAME,
            environment=wiring.environment(
                {
                    ENV_PRODUCTS_TABLE: wiring.tables.products.table_name,
                    ENV_SNAPSHOTS_TABLE: wiring.tables.snapshots.table_name,
                    ENV_ANALYTICS_BUCKET: wiring.tables.analytics.bucket_name,
                }
            ),
            timeout=SCORE_TIMEOUT,
            memory_size=SCORE_MEMORY_MB,
            **wiring.shared,
        )
        # Scan, re-read on a version conflict, conditional put: customers only.
        wiring.tables.customers.grant(
            self.score.function,
            "dynamodb:Scan",
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
        )
        wiring.bus.grant_put_events_to(self.score.function)
        # The run's work files and the snapshot export (its own prefixes only).
        work = wiring.tables.analytics.arn_for_objects(f"{names.ANALYTICS_WORK_PREFIX}*")
        export = wiring.tables.analytics.arn_for_objects(f"{names.ANALYTICS_SNAPSHOTS_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=self.score.function, actions=["s3:PutObject"], resource_arns=[work, export]
        )
        iam.Grant.add_to_principal(
            grantee=self.score.function, actions=["s3:GetObject"], resource_arns=[work]
        )
        wiring.tables.products.grant(
            self.score.function,
            "dynamodb:Scan",
            "dynamodb:UpdateItem",  # related products, per product
            "dynamodb:PutItem",  # the best sellers item
        )
        wiring.tables.snapshots.grant(
            self.score.function,
            "dynamodb:Query",  # the day's cells an earlier run wrote (replaced)
            "dynamodb:PutItem",
            "dynamodb:BatchWriteItem",  # puts and the earlier run's stale cells' deletes
        )

        # --- The state machine -----------------------------------------------------------
        boundaries = self._invoke(
            names.SCORING_BOUNDARIES_STATE,
            # the execution's input ({} from the schedule, {"as_of": ...} from `kizuna
            # scoring run --as-of`) rides along: the run's as_of is decided here
            {
                "action": "boundaries",
                "total_segments": scan_segments,
                "run": sfn.JsonPath.object_at("$"),
            },
        )
        segment = self._invoke(names.SCORING_SEGMENT_STATE)
        segments = sfn.DistributedMap(
            self,
            names.SCORING_MAP_STATE,
            items_path="$.segments",
            item_selector={
                "action": "score",
                "segment": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "total_segments": scan_segments,
                "boundaries": sfn.JsonPath.object_at("$.boundaries"),
                "as_of": sfn.JsonPath.string_at("$.as_of"),
            },
            max_concurrency=MAX_CONCURRENCY,
            # keep the run's as_of for Finish; the shards' results (counts) go beside it
            result_path="$.shards",
        )
        segments.item_processor(segment)
        finish = self._invoke(
            names.SCORING_FINISH_STATE,
            {
                "action": "finish",
                "total_segments": scan_segments,
                "as_of": sfn.JsonPath.string_at("$.as_of"),
            },
        )

        stack = Stack.of(self)
        self.log_group = state_machine_log_group(
            self,
            names.SCORING_LOG_GROUP_ID,
            name=f"{stack.stack_name}{names.SCORING_LOG_GROUP_SUFFIX}",
            retention=log_retention,
        )
        self.state_machine = standard_state_machine(
            self,
            names.SCORING_STATE_MACHINE_ID,
            log_group=self.log_group,
            tracing=tracing,
            comment="Kizuna daily scoring: RFM, segments, time-dependent ranks",
            definition_body=sfn.DefinitionBody.from_chainable(
                boundaries.next(segments).next(finish)
            ),
            timeout=RUN_TIMEOUT,
        )

        # --- The daily schedule ----------------------------------------------------------
        self.scheduler_role, self.dead_letter_queue = scheduler_role_and_queue(
            self, description="EventBridge Scheduler starting the daily scoring"
        )
        self.schedule = scheduler.Schedule(
            self,
            names.SCORING_SCHEDULE_ID,
            description="Daily RFM scoring, segments and ranks",
            schedule=scheduler.ScheduleExpression.expression(DAILY_SCORING, schedule_time_zone),
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object({}),
                role=self.scheduler_role,
                dead_letter_queue=self.dead_letter_queue,
                max_event_age=SCHEDULE_MAX_EVENT_AGE,
                retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
            ),
        )
        cfn_schedule = cast(scheduler.CfnSchedule, self.schedule.node.default_child)
        cfn_schedule.add_metadata(names.SCHEDULE_METADATA_KEY, names.SCORING_SCHEDULE_NAME)

    def _invoke(self, state_id: str, payload: dict[str, Any] | None = None) -> tasks.LambdaInvoke:
        """A state invoking the score function (its result is the state's output), retried
        with backoff: every action of the score function is idempotent."""
        return lambda_invoke(
            self,
            state_id,
            self.score.function,
            payload,
            retries=(SEGMENT_RETRY,),
            output_path="$.Payload",
        )
