"""Where published reports live: the analytics bucket, ``reports/``.

``kizuna report html --publish`` (and the demo) build the report from a scan of the ledger
(tooling, never in Lambda) and publish it here; the API reads it back. Layout:

- ``reports/<yyyy-mm-dd>.json`` — the :class:`ReportDocument` of that UTC day (its
  ``generated_at``), and ``reports/<yyyy-mm-dd>.html`` its self-contained HTML;
- ``reports/latest.json`` — a copy of the last one published, written last, so it never
  names a report whose dated copy is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from kizuna.analytics.document import ReportDocument
from kizuna.ports import ReportObjects

PREFIX: Final = "reports/"
LATEST_KEY: Final = "reports/latest.json"
_DATED = re.compile(r"^reports/(\d{4}-\d{2}-\d{2})\.json\Z")


def dated_key(day: date, suffix: str = "json") -> str:
    return f"{PREFIX}{day.isoformat()}.{suffix}"


@dataclass(frozen=True)
class Published:
    json_key: str
    html_key: str | None
    latest_key: str


def publish(objects: ReportObjects, doc: ReportDocument, html: str | None = None) -> Published:
    """Store the document (and its HTML) under its UTC day, then as the latest. Publishing
    the same day again replaces that day's report."""
    day = doc.generated_at.date()
    body = doc.model_dump_json().encode()
    html_key = None
    if html is not None:
        html_key = dated_key(day, "html")
        objects.put(html_key, html.encode(), content_type="text/html; charset=utf-8")
    json_key = dated_key(day)
    objects.put(json_key, body)
    objects.put(LATEST_KEY, body)
    return Published(json_key, html_key, LATEST_KEY)


def _read(objects: ReportObjects, key: str) -> ReportDocument | None:
    body = objects.get(key)
    return None if body is None else ReportDocument.model_validate_json(body)


def latest(objects: ReportObjects) -> ReportDocument | None:
    """The last report published; None before the first."""
    return _read(objects, LATEST_KEY)


def of_day(objects: ReportObjects, day: date) -> ReportDocument | None:
    return _read(objects, dated_key(day))


def days(objects: ReportObjects) -> list[date]:
    """The days with a published report, newest first."""
    out: set[date] = set()
    for key in objects.keys(PREFIX):
        match = _DATED.match(key)
        if match:
            try:
                out.add(date.fromisoformat(match.group(1)))
            except ValueError:
                continue  # not one of ours
    return sorted(out, reverse=True)
