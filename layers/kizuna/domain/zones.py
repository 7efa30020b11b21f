"""IANA time zones: the one place a zone's name becomes a ``ZoneInfo``.

A name is a zone only if tzdata lists it (``zoneinfo.available_timezones``): ``ZoneInfo``
itself raises more than ``ZoneInfoNotFoundError`` for a hostile name ("Asia" is a folder of
tzdata: ``IsADirectoryError``; a 300-character name: ``OSError``), which would fail a
whole batch of other customers' messages.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_zone(name: object) -> bool:
    """Is ``name`` an IANA time zone tzdata knows (``Asia/Tokyo``, ``UTC``)?"""
    return isinstance(name, str) and name in known_zones()


def zone_or(name: str | None, *fallbacks: str | None) -> ZoneInfo:
    """``name``'s zone, else the first known of ``fallbacks``, else UTC; never raises."""
    for candidate in (name, *fallbacks):
        if is_zone(candidate):
            return ZoneInfo(str(candidate))
    return ZoneInfo("UTC")
