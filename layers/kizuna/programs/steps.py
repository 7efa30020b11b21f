"""What the journey helper function answers for a running journey: branch conditions on
fresh customer state, and "until a local time of day" in the customer's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kizuna.domain.customer import Customer
from kizuna.domain.zones import zone_or
from kizuna.programs.model import BranchStep, Program
from kizuna.programs.patterns import matches
from kizuna.programs.view import customer_view
from kizuna.runtime.config import KizunaConfig


def zone(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone, else the configured default (:func:`kizuna.domain.zones.zone_or`)."""
    return zone_or(name, default)


def next_local_time(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` whose local wall-clock time is ``at``."""
    local = after.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return candidate.astimezone(UTC)


def local_time_after(
    customer: Customer | None, now: datetime, after_seconds: int, hhmm: str, cfg: KizunaConfig
) -> datetime:
    hh, mm = (int(x) for x in hhmm.split(":"))
    tz = zone(customer.time_zone if customer else None, cfg.contact.default_time_zone)
    return next_local_time(now + timedelta(seconds=after_seconds), time(hh, mm), tz)


def check_branch(
    program: Program,
    step_id: str,
    customer: Customer | None,
    now: datetime,
    cfg: KizunaConfig,
    segments: Mapping[str, Mapping[str, Any]] | None = None,
) -> bool:
    step = program.step(step_id)
    if not isinstance(step, BranchStep):
        raise ValueError(f"{program.id}.{step_id} is not a branch")
    if step.condition is None:  # an engagement branch reads the ledger (services/cohort.py)
        raise ValueError(f"{program.id}.{step_id} is an engagement branch, not a condition")
    if customer is None:
        return False
    return matches(step.condition, customer_view(customer, now, cfg, segments))
