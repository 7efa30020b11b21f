"""EventBridge and EventBridge Scheduler schedule expressions: parsed as AWS reads them,
refused where AWS refuses them, and evaluated (the next firing after an instant).

``rate(5 minutes)``, ``cron(0 9 ? * MON-FRI *)`` (AWS's six fields: minutes, hours,
day-of-month, month, day-of-week, year; with ``L``, ``W`` and ``#``; one of day-of-month and
day-of-week must be ``?``) and Scheduler's one-time ``at(2026-01-02T09:00:00)``. Cron and
``at`` are read in the schedule's time zone. A campaign's schedule is validated with
:func:`parse_schedule` before it is stored; the local runtime fires schedules with it on
its virtual clock.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)\Z")
_CRON = re.compile(r"^cron\((.+)\)\Z")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)\Z")

_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SEARCH_YEARS = 6


class Schedule(Protocol):
    @property
    def expression(self) -> str: ...

    def next_after(self, after: datetime) -> datetime | None:
        """The first firing strictly after ``after`` (UTC), or None if it never fires again."""
        ...


@dataclass(frozen=True)
class RateSchedule:
    expression: str
    period: timedelta
    anchor: datetime

    def next_after(self, after: datetime) -> datetime | None:
        if after < self.anchor:
            return self.anchor + self.period
        periods = int((after - self.anchor) / self.period) + 1
        return self.anchor + periods * self.period


@dataclass(frozen=True)
class AtSchedule:
    expression: str
    at: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at > after else None


def _weekday_aws(d: date) -> int:
    """AWS numbers days of the week 1 (Sunday) to 7 (Saturday)."""
    return (d.weekday() + 1) % 7 + 1


def _number(token: str, names: dict[str, int]) -> int:
    token = token.upper()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ValueError(f"not a number or name: {token!r}")
    return int(token)


def _expand(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    names = names or {}
    values: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ValueError(f"bad step in {field!r}")
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _number(first, names), _number(last, names)
        else:
            start = _number(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"{field!r} is outside {low}-{high}")
        if start <= end:
            values.update(range(start, end + 1, step))
        else:  # wrap-around range such as FRI-MON
            values.update(v for v in range(start, high + 1, step))
            values.update(range(low, end + 1, step))
    return values


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    dom_field: str
    months: frozenset[int]
    dow_field: str
    years: frozenset[int] | None
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, body: str, zone: ZoneInfo) -> CronSchedule:
        fields = body.split()
        if len(fields) != 6:
            raise ValueError(f"cron needs 6 fields (min hour dom month dow year): {expression!r}")
        minute, hour, dom, month, dow, year = fields
        if dom != "?" and dow != "?":
            raise ValueError(f"one of day-of-month and day-of-week must be '?': {expression!r}")
        schedule = cls(
            expression=expression,
            minutes=frozenset(_expand(minute, 0, 59)),
            hours=frozenset(_expand(hour, 0, 23)),
            dom_field=dom.upper(),
            months=frozenset(_expand(month, 1, 12, _MONTHS)),
            dow_field=dow.upper(),
            years=None if year in ("*", "?") else frozenset(_expand(year, 1970, 2199)),
            zone=zone,
        )
        _check_day_of_month(dom.upper())
        _check_day_of_week(dow.upper())
        return schedule

    def _dom_matches(self, d: date) -> bool:
        field = self.dom_field
        last = calendar.monthrange(d.year, d.month)[1]
        if field in ("?", "*"):
            return True
        if field == "L":
            return d.day == last
        if field.startswith("L-"):
            return d.day == last - int(field[2:])
        if field == "LW":
            return d == _nearest_weekday(date(d.year, d.month, last))
        if field.endswith("W"):
            target = min(int(field[:-1]), last)
            return d == _nearest_weekday(date(d.year, d.month, target))
        return d.day in _expand(field, 1, 31)

    def _dow_matches(self, d: date) -> bool:
        field = self.dow_field
        weekday = _weekday_aws(d)
        if field in ("?", "*"):
            return True
        if "#" in field:
            day_text, nth_text = field.split("#", 1)
            return weekday == _number(day_text, _DAYS) and (d.day - 1) // 7 + 1 == int(nth_text)
        if field.endswith("L") and field != "L":
            last = calendar.monthrange(d.year, d.month)[1]
            return weekday == _number(field[:-1], _DAYS) and d.day > last - 7
        if field == "L":
            return weekday == 7
        return weekday in _expand(field, 1, 7, _DAYS)

    def _day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        if self.years is not None and d.year not in self.years:
            return False
        return self._dom_matches(d) and self._dow_matches(d)

    def next_after(self, after: datetime) -> datetime | None:
        local = after.astimezone(self.zone)
        day = local.date()
        times = sorted(time(h, m) for h in self.hours for m in self.minutes)
        for _ in range(366 * _SEARCH_YEARS):
            if self._day_matches(day):
                for t in times:
                    candidate = datetime.combine(day, t, tzinfo=self.zone).astimezone(UTC)
                    if candidate > after:
                        return candidate
            day += timedelta(days=1)
        return None


def _in(value: int, low: int, high: int, field: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{field!r} is outside {low}-{high}")


def _check_day_of_month(field: str) -> None:
    """Raise ValueError for a day-of-month field Scheduler does not read: ``?``, ``*``,
    ``L``, ``LW``, ``L-n``, ``nW`` (n a day 1-31), or days, ranges, steps and lists of 1-31."""
    if field in ("?", "*", "L", "LW"):
        return
    if field.startswith("L-"):
        _in(_number(field[2:], {}), 0, 30, field)
    elif field.endswith("W"):
        _in(_number(field[:-1], {}), 1, 31, field)
    else:
        _expand(field, 1, 31)


def _check_day_of_week(field: str) -> None:
    """Raise ValueError for a day-of-week field Scheduler does not read: ``?``, ``*``,
    ``L``, ``dL`` (the last d of the month), ``d#n`` (the nth d, n 1-5), or days (1-7 or
    SUN-SAT), ranges, steps and lists of them."""
    if field in ("?", "*", "L"):
        return
    if "#" in field:
        day, nth = field.split("#", 1)
        _in(_number(day, _DAYS), 1, 7, field)
        _in(_number(nth, {}), 1, 5, field)
    elif field.endswith("L"):
        _in(_number(field[:-1], _DAYS), 1, 7, field)
    else:
        _expand(field, 1, 7, _DAYS)


def _nearest_weekday(d: date) -> date:
    if d.weekday() == 5:  # Saturday -> Friday, unless that leaves the month
        return d - timedelta(days=1) if d.day > 1 else d + timedelta(days=2)
    if d.weekday() == 6:  # Sunday -> Monday, unless that leaves the month
        last = calendar.monthrange(d.year, d.month)[1]
        return d + timedelta(days=1) if d.day < last else d - timedelta(days=2)
    return d


def parse_schedule(expression: str, *, anchor: datetime, timezone: str = "UTC") -> Schedule:
    """Parse a schedule expression; ``anchor`` is when a rate() schedule started counting."""
    text = expression.strip()
    zone = ZoneInfo(timezone or "UTC")
    if match := _RATE.match(text):
        value, unit = int(match.group(1)), match.group(2).rstrip("s")
        if value < 1:
            raise ValueError(f"rate must be positive: {expression!r}")
        if (value == 1) != (match.group(2) == unit):
            # AWS's rule for rate expressions: rate(1 hour), rate(5 hours); never
            # rate(1 hours) nor rate(5 hour)
            wanted = unit if value == 1 else f"{unit}s"
            raise ValueError(
                f"rate of {value} takes the unit {wanted!r} (singular for 1, plural above):"
                f" {expression!r}"
            )
        return RateSchedule(text, timedelta(seconds=value * _UNIT_SECONDS[unit]), anchor)
    if match := _CRON.match(text):
        return CronSchedule.parse(text, match.group(1), zone)
    if match := _AT.match(text):
        at = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone).astimezone(UTC)
        return AtSchedule(text, at)
    raise ValueError(f"unsupported schedule expression: {expression!r}")


def check_expression(expression: str, timezone: str = "UTC") -> None:
    """Raise ValueError, with the reason, for an expression EventBridge Scheduler refuses
    (a cron field out of range, day-of-month and day-of-week both given, a bad ``at``...)."""
    parse_schedule(expression, anchor=datetime(2000, 1, 1, tzinfo=UTC), timezone=timezone)
