"""A campaign's schedule request on moto's Scheduler: a recurring campaign paused or
cancelled after its end is disabled without its past end (nor its start) sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from kizuna.adapters.scheduler import CampaignSchedules
from kizuna.campaigns.loader import parse_campaign
from kizuna.campaigns.model import CampaignStatus
from tests.factories import campaign_definition

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:campaign"
ROLE = "arn:aws:iam::123456789012:role/scheduler"


class Recording:
    """The Scheduler client, each create and update request kept."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def create_schedule(self, **request: Any) -> Any:
        self.requests.append(("create", request))
        return self.client.create_schedule(**request)

    def update_schedule(self, **request: Any) -> Any:
        self.requests.append(("update", request))
        return self.client.update_schedule(**request)


def test_a_recurring_campaign_paused_or_cancelled_after_its_end_sends_no_past_end() -> None:
    end = NOW + timedelta(days=7)
    weekly = parse_campaign(
        campaign_definition(
            id="weekly-sale",
            status="scheduled",
            template="sale",
            channels=["email"],
            schedule={
                "type": "recurring",
                "rate": "rate(7 days)",
                "start": (NOW + timedelta(hours=1)).isoformat(),
                "end": end.isoformat(),
            },
        )
    )
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name="campaigns")
        recording = Recording(client)
        schedules = CampaignSchedules(recording, "campaigns", ARN, ROLE)
        # Given the weekly campaign scheduled while its end is ahead: start and end sent
        schedules.put(weekly, CampaignStatus.SCHEDULED, NOW)
        kind, first = recording.requests[-1]
        assert (kind, first["State"], first["EndDate"]) == ("create", "ENABLED", end)
        assert "StartDate" in first

        # When it is paused, then cancelled, after its end
        later = end + timedelta(days=1)
        for status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
            schedules.put(weekly, status, later)
            kind, request = recording.requests[-1]
            # Then the schedule is updated, disabled, with neither date
            assert kind == "update" and request["State"] == "DISABLED"
            assert "EndDate" not in request and "StartDate" not in request
        # and even written as scheduled (never, by the status rules) it is not enabled
        schedules.put(weekly, CampaignStatus.SCHEDULED, later)
        assert recording.requests[-1][1]["State"] == "DISABLED"
        found = client.get_schedule(Name="weekly-sale", GroupName="campaigns")
        assert found["State"] == "DISABLED"
