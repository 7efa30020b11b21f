"""What the state machines send Kizuna's functions, and what they answer: plain pydantic
models, so a handler parses its request without loading the service behind it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["sent", "suppressed", "deferred", "failed", "exit", "duplicate"]


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["send"] = "send"
    program: str
    step: str
    customer_id: str
    execution: str
    entered_at: datetime


class SendResponse(BaseModel):
    status: Status
    until: str | None = None
    channel: str | None = None
    reason: str | None = None


# --- campaigns: what the campaign state machine sends the campaign function --------------
class _CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: str
    occurrence: str


class PrepareRequest(BaseModel):
    """From EventBridge Scheduler, through the state machine's input."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["prepare"] = "prepare"
    campaign_id: str
    scheduled_time: datetime


class FreezeRequest(_CampaignRequest):
    action: Literal["freeze"] = "freeze"
    segment: int
    total_segments: int


class PlanRequest(_CampaignRequest):
    action: Literal["plan"] = "plan"
    after: dict[str, object] | None = None  # the previous plan's phase and pass


class Chunk(BaseModel):
    """Up to a few hundred recipients due at the same instant, in one manifest object."""

    model_config = ConfigDict(extra="forbid")

    key: str
    phase: Literal["test", "main", "deferred"]
    pass_number: int = 0
    due: datetime
    not_before: datetime


class SendBatchRequest(_CampaignRequest):
    action: Literal["send_batch"] = "send_batch"
    chunk: Chunk


class WinnerRequest(_CampaignRequest):
    action: Literal["choose_winner"] = "choose_winner"


class CompleteRequest(_CampaignRequest):
    action: Literal["complete"] = "complete"
