"""Functions run on a schedule (EventBridge Scheduler), with retries and a dead-letter queue.

Scheduler invokes the function asynchronously: a failed invoke is retried by Scheduler and
then dead-lettered with its error; a function error is retried by Lambda and then sent, with
the error, to the same queue (an on-failure destination). Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from aws_cdk import Aws, Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kizuna_infra import names
from kizuna_infra.queues import dead_letter_queue

DEFAULT_TIME_ZONE = TimeZone.of(names.SCHEDULE_TIME_ZONE)
SCHEDULE_MAX_EVENT_AGE = Duration.hours(1)
SCHEDULE_RETRY_ATTEMPTS = 10
ASYNC_MAX_EVENT_AGE = Duration.hours(1)
ASYNC_RETRY_ATTEMPTS = 2  # Lambda's maximum for asynchronous invocations


def schedule_group_name(stack: Stack, suffix: str, max_length: int) -> str:
    """``<stack name><suffix>``, the stack name cut so the whole fits ``max_length``
    (Scheduler's 64 for a group name)."""
    return f"{stack.stack_name[: max_length - len(suffix)]}{suffix}"


def schedule_group(
    scope: Construct, construct_id: str, stack: Stack, name: str
) -> tuple[scheduler.CfnScheduleGroup, str]:
    """A Scheduler schedule group named ``name``, and its ARN (what a role's
    ``aws:SourceArn`` condition names, :func:`scheduler_role`)."""
    group = scheduler.CfnScheduleGroup(scope, construct_id, name=name)
    arn = stack.format_arn(service="scheduler", resource="schedule-group", resource_name=name)
    return group, arn


def scheduler_role(
    scope: Construct, *, description: str, schedule_group_arn: str | None = None
) -> iam.Role:
    """The role schedules run as (``<scope>/SchedulerRole``). Only schedules of this
    account -- of ``schedule_group_arn`` when given -- may assume it (confused-deputy
    protection)."""
    condition = {"aws:SourceAccount": Aws.ACCOUNT_ID}
    if schedule_group_arn is not None:
        condition["aws:SourceArn"] = schedule_group_arn
    return iam.Role(
        scope,
        names.SCHEDULER_ROLE_ID,
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": condition}
        ),
        description=description,
    )


def scheduler_role_and_queue(
    scope: Construct, *, description: str, schedule_group_arn: str | None = None
) -> tuple[iam.Role, sqs.Queue]:
    """:func:`scheduler_role` and the schedules' dead-letter queue
    (``<scope>/ScheduleDeadLetterQueue``)."""
    queue = dead_letter_queue(scope, names.SCHEDULE_DLQ_ID)
    role = scheduler_role(scope, description=description, schedule_group_arn=schedule_group_arn)
    return role, queue


class ScheduledInvocations(Construct):
    """A role Scheduler assumes, a dead-letter queue, and schedules invoking one function."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction):
        super().__init__(scope, construct_id)
        self.function = function
        self.role, self.dead_letter_queue = scheduler_role_and_queue(
            self, description=f"EventBridge Scheduler invoking {construct_id}"
        )
        function.configure_async_invoke(
            max_event_age=ASYNC_MAX_EVENT_AGE,
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )
        self.schedules: dict[str, scheduler.Schedule] = {}

    def add(
        self,
        construct_id: str,
        *,
        name: str,
        expression: scheduler.ScheduleExpression,
        payload: Mapping[str, Any],
        description: str,
    ) -> scheduler.Schedule:
        """A schedule sending ``payload`` to the function; ``name`` goes into the
        ``kizuna:schedule`` Metadata the local runtime reads."""
        schedule = scheduler.Schedule(
            self,
            construct_id,
            description=description,
            schedule=expression,
            target=scheduler_targets.LambdaInvoke(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object(dict(payload)),
                role=self.role,
                dead_letter_queue=self.dead_letter_queue,
                max_event_age=SCHEDULE_MAX_EVENT_AGE,
                retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
            ),
        )
        cfn_schedule = cast(scheduler.CfnSchedule, schedule.node.default_child)
        cfn_schedule.add_metadata(names.SCHEDULE_METADATA_KEY, name)
        self.schedules[name] = schedule
        return schedule
