"""Schedules on EventBridge Scheduler: one per campaign, in the stack's campaign schedule
group, starting the one generic campaign state machine; and the erasure sweeps, one-time
schedules in the journey timers' group that put a ``customer.erase`` on the ingest queue."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kizuna.adapters.stepfunctions import (
    TIMER_MAX_EVENT_AGE_SECONDS,
    TIMER_RETRY_ATTEMPTS,
    at_expression,
)
from kizuna.campaigns.model import (
    SCHEDULER_RETRY_SECONDS,
    Campaign,
    CampaignStatus,
    RecurringSchedule,
    scheduler_expression,
    scheduler_start,
)
from kizuna.events.envelope import erasure_sweep_event

# Scheduler fills this in with the occurrence's scheduled instant.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
RETRY_ATTEMPTS = 10
MAX_EVENT_AGE_SECONDS = SCHEDULER_RETRY_SECONDS


def schedule_input(campaign_id: str) -> str:
    """What the state machine receives: the campaign and the occurrence's instant."""
    return json.dumps({"campaign_id": campaign_id, "scheduled_time": SCHEDULED_TIME})


@dataclass(eq=False)
class CampaignSchedules:
    client: Any  # boto3 "scheduler"
    group: str
    state_machine_arn: str
    role_arn: str
    dead_letter_arn: str | None = None

    def request(self, campaign: Campaign, status: CampaignStatus, now: datetime) -> dict[str, Any]:
        """The CreateSchedule / UpdateSchedule request for a campaign in this status at
        ``now``: only a scheduled campaign's schedule is enabled; a recurring one's start as
        :func:`kizuna.campaigns.model.scheduler_start` gives it, and its end while ahead
        (once it has passed: disabled, no StartDate or EndDate)."""
        expression, time_zone = scheduler_expression(campaign)
        target: dict[str, Any] = {
            "Arn": self.state_machine_arn,
            "RoleArn": self.role_arn,
            "Input": schedule_input(campaign.id),
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
                "MaximumRetryAttempts": RETRY_ATTEMPTS,
            },
        }
        if self.dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        request: dict[str, Any] = {
            "Name": campaign.id,
            "GroupName": self.group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": time_zone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target,
            "State": "ENABLED" if status == CampaignStatus.SCHEDULED else "DISABLED",
            "Description": f"Kizuna campaign {campaign.id}"[:512],
        }
        if isinstance(campaign.schedule, RecurringSchedule):
            end = campaign.schedule.end
            if end is not None and end <= now:
                # Its end has passed: nothing is left to run, so the schedule is disabled
                # whatever the status (a pause or cancel after the end), and neither date is
                # sent: whether Scheduler refuses an EndDate in the past is not documented,
                # and a cancel must not fail on it. (Without an EndDate an enabled schedule
                # would run on: a campaign whose end passed is never written, scheduled or
                # resumed as scheduled.)
                request["State"] = "DISABLED"
                return request
            start = scheduler_start(campaign.schedule, now)
            if start is not None:
                request["StartDate"] = start
            if end is not None:
                request["EndDate"] = end
        return request

    def put(self, campaign: Campaign, status: CampaignStatus, now: datetime) -> None:
        """Create the campaign's schedule, or bring it in line with the campaign."""
        request = self.request(campaign, status, now)
        try:
            self.client.create_schedule(**request)
        except self.client.exceptions.ConflictException:
            self.client.update_schedule(**request)

    def delete(self, campaign_id: str) -> bool:
        try:
            self.client.delete_schedule(Name=campaign_id, GroupName=self.group)
        except self.client.exceptions.ResourceNotFoundException:
            return False
        return True

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.client.get_schedule(Name=campaign_id, GroupName=self.group)
        except self.client.exceptions.ResourceNotFoundException:
            return None
        return found


# Every sweep's schedule name starts so ('.' is never part of a program id, so no journey
# timer's name does): ingest may create schedules so named only.
SWEEP_NAME_PREFIX = "erasure."


def sweep_name(customer_id: str) -> str:
    """The sweep's schedule: :data:`SWEEP_NAME_PREFIX` and a digest of the id, never the
    id in clear."""
    digest = hashlib.sha256(f"kizuna-sweep\x1f{customer_id}".encode()).hexdigest()[:40]
    return SWEEP_NAME_PREFIX + digest


@dataclass(eq=False)
class ErasureSweepSchedules:
    """:class:`kizuna.domain.privacy.ErasureSweeps` on Scheduler: a one-time schedule (it
    deletes itself once it ran), in the journey timers' group, run as the sweep's own role,
    whose target is the ingest queue, input the sweep's ``customer.erase``
    (:func:`kizuna.events.envelope.erasure_sweep_event`). The schedule holds the customer
    id until it runs; one Scheduler could not deliver goes, with the reason, to ingest's
    dead-letter queue (``kizuna dlq redrive ingest`` runs it)."""

    client: Any  # boto3 "scheduler"
    group: str
    role_arn: str
    queue_arn: str
    dead_letter_arn: str

    def request(self, customer_id: str, at: datetime) -> dict[str, Any]:
        return {
            "Name": sweep_name(customer_id),
            "GroupName": self.group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Description": "Kizuna erasure sweep",
            "Target": {
                "Arn": self.queue_arn,
                "RoleArn": self.role_arn,
                "Input": erasure_sweep_event(customer_id, at),
                "RetryPolicy": {
                    "MaximumEventAgeInSeconds": TIMER_MAX_EVENT_AGE_SECONDS,
                    "MaximumRetryAttempts": TIMER_RETRY_ATTEMPTS,
                },
                "DeadLetterConfig": {"Arn": self.dead_letter_arn},
            },
        }

    def schedule(self, customer_id: str, at: datetime) -> None:
        """Create the sweep's schedule; one already there (a retried erasure) is kept."""
        with contextlib.suppress(self.client.exceptions.ConflictException):
            self.client.create_schedule(**self.request(customer_id, at))
