"""The journey helper function: answers a running journey's questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import iso
from kizuna.programs.model import Program
from kizuna.programs.steps import check_branch, local_time_after
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig


class JourneyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["check", "local_time"]
    program: str
    step: str
    customer_id: str
    execution: str
    after_seconds: int = 0
    local_time: str | None = None


class CustomerReader(Protocol):
    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]: ...


class JourneyService:
    def __init__(
        self,
        programs: Sequence[Program],
        customers: CustomerReader,
        cfg: KizunaConfig,
        clock: Clock,
        segments: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.programs = {p.id: p for p in programs}
        self.customers = customers
        self.cfg = cfg
        self.clock = clock
        self.segments = dict(segments or {})

    def answer(self, request: JourneyRequest) -> dict[str, Any]:
        program = self.programs[request.program]
        customer = self.customers.get_customers([request.customer_id]).get(request.customer_id)
        now: datetime = self.clock.now()
        if request.action == "check":
            match = check_branch(program, request.step, customer, now, self.cfg, self.segments)
            return {"match": match}
        assert request.local_time is not None
        at = local_time_after(customer, now, request.after_seconds, request.local_time, self.cfg)
        return {"at": iso(at)}
