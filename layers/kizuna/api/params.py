"""What a query string or a path segment may hold, read strictly: one place for every route
and console page.

pydantic's lax mode reads text generously: ``int`` takes ``"1_0"``, ``" 10"``, ``"+10"``
and ``"10.0"``; ``datetime`` takes ``"1700000000"`` (a moment of 2023) and a bare date;
``date`` takes epoch seconds; Python's ``date.fromisoformat`` takes ``"20260101"`` and
``"2026-W01-1"``. A request is refused (422 on the API, 400 on the console) instead of
being read as something its sender may not have meant."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Final

from pydantic import BeforeValidator

_COUNT: Final = re.compile(r"^[1-9][0-9]{0,5}\Z")  # ASCII digits (\d takes "２")
_DAY: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIME: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")


def _count(value: object) -> object:
    if isinstance(value, str) and not _COUNT.match(value):
        raise ValueError("a whole number written in digits 0-9, e.g. 20")
    return value


def _time(value: object) -> object:
    if isinstance(value, str) and not _TIME.match(value):
        raise ValueError("an ISO 8601 time with a zone, e.g. 2026-11-01T00:00:00Z")
    return value


def _day(value: object) -> object:
    if isinstance(value, str) and not _DAY.match(value):
        raise ValueError("a date as YYYY-MM-DD")
    return value


DIGITS: Final = BeforeValidator(_count)
"""A count's text: a positive whole number in ASCII digits, no sign, space, separator or
leading zero. Written after the bounds, ``Annotated[int, Field(ge=1, le=N), DIGITS,
Query()]``: bounds after a validator (or given to ``Query``) reach the OpenAPI document as
``ge``/``le``, which JSON Schema does not know, instead of ``minimum``/``maximum``."""
Time = Annotated[datetime, BeforeValidator(_time)]
"""ISO 8601 ``YYYY-MM-DDTHH:MM...``; whether it has a zone is the route's to say."""
Day = Annotated[date, BeforeValidator(_day)]
"""A calendar day as ``YYYY-MM-DD``."""


def iso_day(text: str) -> date:
    """``YYYY-MM-DD`` and nothing else (no basic or week form); :class:`ValueError`
    otherwise, as ``date.fromisoformat`` raises for a day that does not exist."""
    if not _DAY.match(text):
        raise ValueError("a date as YYYY-MM-DD")
    return date.fromisoformat(text)
