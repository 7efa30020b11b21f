"""Campaign schedules on EventBridge Scheduler: one schedule per campaign, in the stack's
campaign schedule group, starting the one generic campaign state machine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kizuna.campaigns.model import Campaign, CampaignStatus, RecurringSchedule, scheduler_expression

# Scheduler fills this in with the occurrence's scheduled instant.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
RETRY_ATTEMPTS = 10
MAX_EVENT_AGE_SECONDS = 6 * 3600


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

    def request(self, campaign: Campaign, status: CampaignStatus) -> dict[str, Any]:
        """The CreateSchedule / UpdateSchedule request for a campaign in this status: only a
        scheduled campaign's schedule is enabled."""
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
            if campaign.schedule.start:
                request["StartDate"] = campaign.schedule.start
            if campaign.schedule.end:
                request["EndDate"] = campaign.schedule.end
        return request

    def put(self, campaign: Campaign, status: CampaignStatus) -> None:
        """Create the campaign's schedule, or bring it in line with the campaign."""
        request = self.request(campaign, status)
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
