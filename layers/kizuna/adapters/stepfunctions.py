"""Start journeys' cohort executions: one Step Functions Standard state machine per program.

An execution begins at the instant in its input (``at``): a state machine has no Wait before
its first step (a Wait would be one more state transition per execution, which is most of
what a small cohort costs). So an execution due now is started now, and one due later by a
**journey timer**: a one-time EventBridge Scheduler schedule, in the stack's journey group,
whose target is Scheduler's universal target for ``states:StartExecution`` with the very
name and input the direct start would use. Scheduler invokes its target within a minute
after the instant (never before it), retries for a day, then dead-letters the request, with
the reason, to evaluate's dead-letter queue (``kizuna dlq redrive evaluate`` starts it); the
schedule deletes itself once it ran. A timer costs one CreateSchedule now and one Scheduler
invocation later, in place of a StartExecution and a Wait state.

Names are deterministic, so starting twice is harmless: a second timer for the same
execution finds the first (``ConflictException``), a second start finds the execution
(``ExecutionAlreadyExists``); both answer False.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kizuna.ports import ExecutionState, ExecutionsUnavailable
from kizuna.runtime.clock import Clock, SystemClock

# Scheduler's universal target for StartExecution (the request's parameters are the Input).
START_EXECUTION_TARGET = "arn:aws:scheduler:::aws-sdk:sfn:startExecution"
TIMER_MAX_EVENT_AGE_SECONDS = 24 * 3600
TIMER_RETRY_ATTEMPTS = 185  # Scheduler's maximum, within the day above
_NAME_LIMIT = 64  # a schedule name: 1-64 of [0-9a-zA-Z-_.]


@dataclass(frozen=True)
class JourneyTimers:
    """Where journey timers go: the Scheduler group, the role they run as, and the queue
    that keeps a start Scheduler could not make."""

    client: Any  # boto3 "scheduler"
    group: str
    role_arn: str
    dead_letter_arn: str = ""


def timer_name(program_id: str, execution: str) -> str:
    """The schedule that starts execution ``execution`` of ``program_id``: the program's id
    (readable in the console) and a digest of both (unique in the group)."""
    digest = hashlib.sha256(f"{program_id}/{execution}".encode()).hexdigest()[:40]
    return f"{program_id[: _NAME_LIMIT - len(digest) - 1]}-{digest}"


def at_expression(at: datetime) -> str:
    """``at(...)`` in UTC, whole seconds, rounded up: a timer never fires early."""
    at = at.astimezone(UTC)
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})"


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


class StepFunctionsStarter:
    def __init__(
        self,
        client: Any,
        arn_prefix: str,
        timers: JourneyTimers | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``arn_prefix`` + program id is the state machine ARN (names are deterministic).
        Without ``timers``, an execution due later cannot be started (RuntimeError)."""
        self._client = client
        self._prefix = arn_prefix
        self._timers = timers
        self._clock = clock or SystemClock()

    def state_machine_arn(self, program_id: str) -> str:
        return f"{self._prefix}{program_id}"

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        """Start the execution, or its timer if ``payload["at"]`` is still ahead; False if
        that execution (or its timer) already exists."""
        document = json.dumps(payload, default=str)
        at = _instant(payload.get("at"))
        if at is not None and at > self._clock.now():
            return self._schedule(program_id, name, document, at)
        try:
            self._client.start_execution(
                stateMachineArn=self.state_machine_arn(program_id), name=name, input=document
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            return False
        return True

    def timer_request(
        self, program_id: str, name: str, document: str, at: datetime
    ) -> dict[str, Any]:
        """The CreateSchedule request of the timer that starts ``name`` at ``at``."""
        if self._timers is None:
            raise RuntimeError(
                f"execution {name} of {program_id} is due at {at.isoformat()}: starting it "
                "later needs the journey timers (JOURNEY_SCHEDULE_GROUP, "
                "JOURNEY_SCHEDULER_ROLE_ARN)"
            )
        target: dict[str, Any] = {
            "Arn": START_EXECUTION_TARGET,
            "RoleArn": self._timers.role_arn,
            "Input": json.dumps(
                {
                    "StateMachineArn": self.state_machine_arn(program_id),
                    "Name": name,
                    "Input": document,
                }
            ),
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": TIMER_MAX_EVENT_AGE_SECONDS,
                "MaximumRetryAttempts": TIMER_RETRY_ATTEMPTS,
            },
        }
        if self._timers.dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self._timers.dead_letter_arn}
        return {
            "Name": timer_name(program_id, name),
            "GroupName": self._timers.group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Description": f"Kizuna journey {program_id}/{name}"[:512],
            "Target": target,
        }

    def _schedule(self, program_id: str, name: str, document: str, at: datetime) -> bool:
        request = self.timer_request(program_id, name, document, at)
        assert self._timers is not None  # timer_request refused otherwise
        client = self._timers.client
        try:
            client.create_schedule(**request)
        except client.exceptions.ConflictException:
            return False
        return True


class Executions:
    """An execution's status by ARN (DescribeExecution): what ``kizuna campaigns close``
    checks before it closes an occurrence by hand."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def state(self, execution_arn: str) -> ExecutionState | None:
        try:
            described = self._client.describe_execution(executionArn=execution_arn)
        except self._client.exceptions.ExecutionDoesNotExist:
            return None
        except (ClientError, BotoCoreError) as exc:
            raise ExecutionsUnavailable(
                f"DescribeExecution failed: {type(exc).__name__}: {exc}"
            ) from exc
        stopped = described.get("stopDate")
        return ExecutionState(
            str(described["status"]), stopped.astimezone(UTC) if stopped else None
        )
