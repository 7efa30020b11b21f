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
