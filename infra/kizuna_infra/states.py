"""Step Functions pieces every Kizuna state machine shares: a Lambda task retried with
backoff, a named log group, and a Standard state machine logging without execution data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from kizuna_infra import names


@dataclass(frozen=True)
class Retry:
    """One ``Retry`` entry of a task: which errors, how often, how far apart."""

    errors: tuple[str, ...]
    interval: Duration
    max_attempts: int
    backoff_rate: float = 2


def lambda_invoke(
    scope: Construct,
    state_id: str,
    function: lambda_.IFunction,
    payload: dict[str, Any] | None = None,
    *,
    retries: Iterable[Retry],
    output_path: str | None = None,
    result_path: str | None = None,
    result_selector: dict[str, Any] | None = None,
    payload_only: bool = False,
) -> tasks.LambdaInvoke:
    """A state invoking ``function`` with ``payload`` (without one, the state's input),
    retried as ``retries`` say, in that order."""
    task = tasks.LambdaInvoke(
        scope,
        state_id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(payload) if payload is not None else None,
        payload_response_only=payload_only,
        output_path=output_path,
        result_path=result_path,
        result_selector=result_selector,
    )
    for retry in retries:
        task.add_retry(
            errors=list(retry.errors),
            interval=retry.interval,
            max_attempts=retry.max_attempts,
            backoff_rate=retry.backoff_rate,
        )
    return task


def state_machine_log_group(
    scope: Construct, construct_id: str, *, name: str, retention: logs.RetentionDays
) -> logs.LogGroup:
    """A state machine's log group, ``/aws/vendedlogs/states/<name>`` (vended logs).
    Destroyed with the stack: a retained named group would block re-creating it, and it
    holds no personal data (execution data is never logged)."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=f"{names.STATE_MACHINE_LOG_GROUP_PREFIX}{name}",
        retention=retention,
        removal_policy=RemovalPolicy.DESTROY,
    )


def standard_state_machine(
    scope: Construct,
    construct_id: str,
    *,
    log_group: logs.ILogGroup,
    tracing: bool,
    **props: Any,
) -> sfn.StateMachine:
    """A Standard state machine logging every transition to ``log_group``, without inputs
    and outputs: they carry customer ids and state, which stay out of the logs."""
    return sfn.StateMachine(
        scope,
        construct_id,
        state_machine_type=sfn.StateMachineType.STANDARD,
        logs=sfn.LogOptions(
            destination=log_group,
            level=sfn.LogLevel.ALL,
            include_execution_data=False,
        ),
        tracing_enabled=tracing,
        **props,
    )
