"""What the journey helper function answers for a running journey: branch conditions on
fresh customer state, and "until a local time of day" in the customer's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
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


DAY_SECONDS = 24 * 3600


def _wall(day: date, at: time, tz: ZoneInfo) -> list[datetime]:
    """The instants (UTC) at which the clock in ``tz`` reads ``at`` on ``day``: one, two
    when the clocks go back through ``at`` (the repeated hour: the first, then the second
    reading), or, when they go forward over it (``at`` never shows: the spring gap), the
    instant ``at`` would be with the offset before the change, the gap's length later on
    the clock (02:30 on New York's spring-forward night is 03:30 EDT), as iCalendar has it."""
    wanted = datetime.combine(day, at)
    found = []
    for fold in (0, 1):
        instant = datetime.combine(day, at, tzinfo=tz).replace(fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None, fold=0) == wanted:
            found.append(instant)
    if not found:  # in the gap: fold 0 takes the offset before the change
        found.append(datetime.combine(day, at, tzinfo=tz).astimezone(UTC))
    return sorted(set(found))


def next_local_time(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` whose local wall-clock time in ``tz`` is
    ``at`` (compared as instants: in the repeated autumn hour the second reading of ``at``
    counts when the first is already past). On a day ``at`` does not exist (the clocks go
    forward over it), that day's reading is ``at`` shifted by the gap (:func:`_wall`)."""
    start = after.astimezone(tz).date()
    for offset in range(3):  # a zone's day is at most 26 hours: the next date always does
        for instant in _wall(start + timedelta(days=offset), at, tz):
            if instant >= after:
                return instant
    raise AssertionError(f"no {at} in {tz.key} within two days of {after.isoformat()}")


def add_local_days(instant: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``days`` later on the calendar in ``tz``: the same wall-clock time ``days`` dates on
    (23 or 25 hours for a day the clocks change), in UTC. A wall time the clocks skip that
    date is shifted by the gap; one they repeat is its first reading."""
    if days == 0:
        return instant.astimezone(UTC)
    local = instant.astimezone(tz).replace(fold=0) + timedelta(days=days)
    return local.astimezone(UTC)


def local_time_after(
    customer: Customer | None, now: datetime, after_seconds: int, hhmm: str, cfg: KizunaConfig
) -> datetime:
    """The end of a wait of ``after_seconds`` then ``until_local_time`` ``hhmm``, begun at
    ``now``, in the customer's zone: the wait's whole days (``after_seconds // 86400``) are
    calendar days in that zone, the rest (hours and minutes under a day) elapsed time; then
    the next ``hhmm`` at or after that (:func:`next_local_time`)."""
    hh, mm = (int(x) for x in hhmm.split(":"))
    tz = zone(customer.time_zone if customer else None, cfg.contact.default_time_zone)
    days, rest = divmod(after_seconds, DAY_SECONDS)
    start = add_local_days(now, days, tz) + timedelta(seconds=rest)
    return next_local_time(start, time(hh, mm), tz)


def local_time_on_date_of(
    customer: Customer | None, at: datetime, hhmm: str, cfg: KizunaConfig
) -> datetime:
    """``hhmm`` on the local date ``at`` falls on in the customer's zone (else the configured
    default), in UTC: its first reading when the clocks repeat it, shifted by the gap when
    they skip it (:func:`_wall`); before ``at`` when that time has passed there."""
    hh, mm = (int(x) for x in hhmm.split(":"))
    tz = zone(customer.time_zone if customer else None, cfg.contact.default_time_zone)
    return _wall(at.astimezone(tz).date(), time(hh, mm), tz)[0]


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
