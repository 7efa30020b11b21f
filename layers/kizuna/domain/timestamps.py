"""Timestamps as Kizuna stores them: UTC, ISO 8601, fixed width so strings sort by time."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Final

# ISO 8601 as Kizuna takes a time or a date from outside (an event, a template's |date): a
# calendar date, or a time to the minute at least (a fraction of a second to the nanosecond)
# with its UTC offset. ASCII digits only (``\d`` takes full-width ones); no space for the
# ``T``, no ``+0900``, no lowercase ``t``/``z``, no epoch seconds.
ISO_DAY_TEXT: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ISO_LOCAL_TIME_TEXT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
)
ISO_OFFSET_TEXT: Final = re.compile(r"Z|[+-][0-9]{2}:[0-9]{2}")
ISO_TIME_TEXT: Final = re.compile(ISO_LOCAL_TIME_TEXT.pattern + f"(?:{ISO_OFFSET_TEXT.pattern})")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(at: datetime, content: object, rank: str = "") -> str:
    """A last-writer-wins version: the later time wins; at the same time, a digest of the
    content breaks the tie. The same fact sent twice (even under two event ids) has the same
    stamp, so it changes nothing and costs no write. ``rank`` decides ties before the
    digest (an opt-out beats an opt-in given at the same instant)."""
    digest = hashlib.sha256(repr(content).encode()).hexdigest()[:16]
    return f"{iso(at)}|{rank}{digest}"


def epoch_seconds(at: datetime) -> int:
    return int(at.timestamp())


def parse_time(value: object) -> datetime:
    """A stored timestamp (``iso`` output, or any ISO 8601 with offset) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def beyond(at: datetime | str | None, horizon: datetime | None) -> bool:
    """Whether a stored time (or a :func:`stamp`) lies after ``horizon`` (the receiver's clock
    plus the allowed skew). Such a time came from the future before ingest rejected those
    (kizuna.runtime.config.EventTimeConfig): it must not win every later comparison."""
    if at is None or horizon is None:
        return False
    if isinstance(at, str):
        return at.split("|", 1)[0] > iso(horizon)
    return at > horizon
