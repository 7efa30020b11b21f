"""Time, as every Kizuna component reads it.

Domain code takes a :class:`Clock` parameter; handlers use :func:`get_clock`, which is the
system clock on AWS and the local runtime's virtual clock when that runtime installs one
with :func:`set_clock`. A 7-day journey wait then takes no real time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> None:
    """Install the process-wide clock (the local runtime's virtual clock)."""
    global _clock  # noqa: PLW0603 - one process-wide clock is the point
    _clock = clock


def utcnow() -> datetime:
    return _clock.now()


class CurrentClock:
    """Reads whichever clock is installed at call time (what long-lived services hold)."""

    def now(self) -> datetime:
        return _clock.now()
