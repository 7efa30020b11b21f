"""Dates that come back every year (a birthday).

A yearly date is celebrated on the customer's *local* calendar date (their ``time_zone``, or
the shop's default): it starts at local midnight, which is a different UTC instant in Tokyo
and in New York. A 29 February origin is celebrated on **28 February** in a non-leap year
(it stays in its month, and the customer hears from us no later than on the day).

The sweep finds candidates through a sparse index keyed by the origin's ``MM-DD``
(:func:`month_day`); :func:`keys_for_window` names every key whose local midnight may fall
in a window, in any time zone on Earth (UTC-12 to UTC+14); :func:`occurrences` then gives,
for one customer, the exact celebrations whose local midnight is in the window.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The widest offsets in use: local midnight of a date D is between D 00:00 - 14 h and
# D 00:00 + 12 h in UTC.
EARLIEST_OFFSET = timedelta(hours=14)
LATEST_OFFSET = timedelta(hours=12)
LEAP_DAY = "02-29"


def month_day(origin: date) -> str:
    """The index key of a yearly date: ``MM-DD`` of its origin (``02-29`` stays itself)."""
    return origin.strftime("%m-%d")


def celebrated_on(origin: date, year: int) -> date:
    """The date on which ``origin`` comes back in ``year``: 29 February is 28 February in a
    non-leap year."""
    if origin.month == 2 and origin.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, origin.month, origin.day)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def keys_for_window(start: datetime, end: datetime) -> list[str]:
    """The ``MM-DD`` keys of every local date that may start in [start, end) somewhere on
    Earth; ``02-29`` goes with 28 February of a non-leap year. Sorted, without repeats."""
    first = (start - LATEST_OFFSET).date()
    last = (end + EARLIEST_OFFSET).date()
    keys: set[str] = set()
    day = first
    while day <= last:
        keys.add(month_day(day))
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            keys.add(LEAP_DAY)
        day += timedelta(days=1)
    return sorted(keys)


@dataclass(frozen=True)
class Occurrence:
    """One celebration: the local date, how many years since the origin, when it starts."""

    day: date
    years: int
    starts_at: datetime


def occurrences(origin: date, tz: ZoneInfo, start: datetime, end: datetime) -> list[Occurrence]:
    """The celebrations of ``origin`` (years >= 1) whose local midnight in ``tz`` is in
    [start, end), oldest first."""
    out: list[Occurrence] = []
    for year in range(start.astimezone(tz).year - 1, end.astimezone(tz).year + 2):
        years = year - origin.year
        if years < 1:
            continue
        day = celebrated_on(origin, year)
        at = local_midnight(day, tz)
        if start <= at < end:
            out.append(Occurrence(day, years, at))
    return out
