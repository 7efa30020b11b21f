"""Dates that come back every year (a birthday).

A yearly date is celebrated on the customer's *local* calendar date (their ``time_zone``, or
the shop's default): it starts at local midnight, which is a different UTC instant in Tokyo
and in New York. A 29 February origin is celebrated on **28 February** in a non-leap year
(it stays in its month, and the customer hears from us no later than on the day).

The sweep finds candidates through a sparse index keyed by the origin's ``MM-DD``
(:func:`month_day`); :func:`keys_for_window` names every key whose local date may start in a
window, or be under way at its start, in any time zone on Earth (UTC-12 to UTC+14);
:func:`occurrences` then gives, for one customer, the celebrations due in the window.

The due rule. Windows chain (each instant is swept once), and each run judges a customer by
the zone it reads *now*. A celebration is due in [start, end) when its local midnight in the
current zone is in the window, or, for a customer whose zone changed (``zone_changed_at``,
when ingest received the new zone), when its local date is under way at ``start`` (local
midnight before it, the next one after it) and the zone changed no earlier than
:data:`CHANGE_MARGIN` before that local midnight. The second case is a move east: the runs
before the change judged the date by the old zone's midnight, still to come, and the new
zone's midnight is already behind the window. Only a run that may be the first to read the
change looks again (``seen_by``: the change came after the previous run read the customers,
less a margin; without a previous run, any): a run that read it before has judged the day
already, by one case or the other. The id is per customer and local year, so a date judged
due twice (a move west, a move east after the old zone's midnight was swept, a change at the
margins) is the same event, deduplicated downstream; a customer whose zone did not change
since the day began is judged by the first case alone (nothing more for them). Still missed:
a move so far east that the new zone's whole date ended before the start of the first run
that reads it, while the old zone's midnight was after that start: the two local midnights
are then a day apart or more (23 hours on a daylight-saving day), which only a move from
about UTC-10..-12 to UTC+12..+14 can make; a change of the shop's default zone (not a
customer's change, not stamped); a read that trails the change by more than the margins.
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
# A run reads the customers a moment after its window ends (and a read may trail a write by a
# second or so): a zone that changed this close before a local midnight may not have been
# seen by the run that swept the midnight, so the next run looks at the day again.
CHANGE_MARGIN = timedelta(minutes=5)


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
    """The ``MM-DD`` keys of every local date that may start in [start, end), or be under way
    at ``start``, somewhere on Earth; ``02-29`` goes with 28 February of a non-leap year.
    Sorted, without repeats. (A date under way at ``start`` in a zone is the local date
    there, between ``start`` - 12 h and ``start`` + 14 h: within the same range.)"""
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


def occurrences(
    origin: date,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    zone_changed_at: datetime | None = None,
    seen_by: datetime | None = None,
) -> list[Occurrence]:
    """The celebrations of ``origin`` (years >= 1) due in [start, end), oldest first: those
    whose local midnight in ``tz`` is in the window and, when the zone changed at
    ``zone_changed_at`` (a receive time) no earlier than :data:`CHANGE_MARGIN` before its
    local midnight and after ``seen_by`` (when the previous run read the customers; None:
    unknown), the one under way in ``tz`` at ``start`` (see the module's due rule)."""
    out: list[Occurrence] = []
    for year in range(start.astimezone(tz).year - 1, end.astimezone(tz).year + 2):
        years = year - origin.year
        if years < 1:
            continue
        day = celebrated_on(origin, year)
        at = local_midnight(day, tz)
        if start <= at < end or (
            zone_changed_at is not None
            and zone_changed_at >= at - CHANGE_MARGIN
            and (seen_by is None or zone_changed_at > seen_by)
            and at < start < local_midnight(day + timedelta(days=1), tz)
        ):
            out.append(Occurrence(day, years, at))
    return out
