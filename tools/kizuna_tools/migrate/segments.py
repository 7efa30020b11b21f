"""Pinpoint segments -> ``segments/*.yaml``: dimensions as conditions on the customer view.

A dimensional segment's ``Dimensions`` and ``SegmentGroups`` become one condition in the
language of audiences and segments (EventBridge content filters on the customer view):

============================  ===============================================================
Pinpoint                      Kizuna condition
============================  ===============================================================
Attributes / UserAttributes   ``attributes.<name>``: INCLUSIVE -> the values, EXCLUSIVE ->
                              ``anything-but``, CONTAINS -> ``wildcard *v*``; on a date
                              attribute ON / BEFORE / AFTER / BETWEEN -> the dates as
                              ``prefix`` matchers (``2025-07``, ``2025-08``...)
Metrics                       ``attributes.<name>: [{numeric: [op, value]}]``
Location.Country              ``attributes.country``
Demographic.Channel           ``reachable`` (an address and an opt-in on that channel)
Behavior.Recency ACTIVE|INACT  ``behaviour.app.opened.count_<N>d`` >= 1 | 0 (``app.opened``
                              counted over N = 1, 7, 14 or 30 days: ``custom.tracked``)
SegmentGroups                 ALL -> both conditions, ANY -> ``$or``; a source segment's
                              conditions are included
============================  ===============================================================

What cannot be said (device platform, make, model, app version, GPS distance, NONE groups,
an IMPORT segment as a source, conditions on personal attributes) is a *decision*: the
segment is written with what can be said, its description starts ``INCOMPLETE``, and the
campaigns and journeys using it are held (draft, disabled) until a person decides. An
IMPORT segment (a list of endpoints from a file) is not migrated: Kizuna segments are
conditions, and a campaign can take a customer list instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from kizuna.events.custom import Vocabulary
from kizuna.programs.view_rules import view_condition_problems
from kizuna.runtime.config import ValueType
from kizuna_tools.migrate.attributes import AttributeMap, Target, json_number, number
from kizuna_tools.migrate.names import kebab, unique
from kizuna_tools.migrate.report import Report, Status

RECENCY_DAYS = {"HR_24": 1, "DAY_7": 7, "DAY_14": 14, "DAY_30": 30}
ACTIVITY_EVENT = "app.opened"
CHANNELS = {"EMAIL": "email", "SMS": "sms", "APNS": "push", "GCM": "push", "PUSH": "push"}
NUMERIC = {
    "GREATER_THAN": ">",
    "GREATER_THAN_OR_EQUAL": ">=",
    "LESS_THAN": "<",
    "LESS_THAN_OR_EQUAL": "<=",
    "EQUAL": "=",
}
MAX_PREFIXES = 60
EVERYONE: dict[str, Any] = {"customer_id": [{"exists": True}]}


class Inexpressible(ValueError):
    """A Pinpoint condition that has no Kizuna equivalent (the message says why)."""


@dataclass
class Translation:
    """A condition, what it could not say (``decisions``) and what it says differently."""

    condition: dict[str, Any] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def absorb(self, other: Translation) -> None:
        self.decisions += [d for d in other.decisions if d not in self.decisions]
        self.notes += [n for n in other.notes if n not in self.notes]

    @property
    def complete(self) -> bool:
        return not self.decisions


# -- combining conditions ---------------------------------------------------------------------
def conjoin(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Both conditions (a deep merge); raises Inexpressible when both constrain one field
    (an EventBridge field's matchers are alternatives, so "x and y" on one field is not
    expressible, except two numeric bounds, which are joined into one range)."""
    out = copy.deepcopy(dict(a))
    for key, value in b.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping) and key != "$or":
            out[key] = conjoin(out[key], value)
        elif isinstance(out[key], list) and isinstance(value, list):
            joined = _numeric_range(out[key], value)
            if joined is None:
                raise Inexpressible(f"two conditions on {key!r} at once")
            out[key] = joined
        else:
            raise Inexpressible(f"two conditions on {key!r} at once")
    return out


def _numeric_range(a: list[Any], b: list[Any]) -> list[Any] | None:
    def bound(m: list[Any]) -> list[Any] | None:
        if len(m) == 1 and isinstance(m[0], Mapping) and set(m[0]) == {"numeric"}:
            spec = m[0]["numeric"]
            return spec if isinstance(spec, list) and len(spec) == 2 else None
        return None

    x, y = bound(a), bound(b)
    if x is None or y is None:
        return None
    lower = [s for s in (x, y) if s[0] in (">", ">=")]
    upper = [s for s in (x, y) if s[0] in ("<", "<=")]
    if len(lower) == 1 and len(upper) == 1 and lower[0][1] < upper[0][1]:
        return [{"numeric": [*lower[0], *upper[0]]}]
    return None


def disjoin(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """Any of the conditions (``$or``); an empty one matches everyone."""
    kept = [c for c in conditions if c]
    if len(kept) < len(conditions):
        return {}
    if len(kept) == 1:
        return kept[0]
    return {"$or": kept}


# -- dates as prefixes ------------------------------------------------------------------------
def _cover(lo: str, hi: str) -> list[str]:
    """Digit prefixes covering exactly the digit strings from ``lo`` to ``hi`` (same
    length, lo <= hi)."""
    if lo == hi:
        return [lo]
    i = next(k for k in range(len(lo)) if lo[k] != hi[k])
    head, rest = lo[:i], len(lo) - i - 1
    a, b = int(lo[i]), int(hi[i])
    out: list[str] = []
    if lo[i + 1 :] == "0" * rest:
        out.append(head + str(a))
    else:
        out += [head + str(a) + p for p in _cover(lo[i + 1 :], "9" * rest)]
    out += [head + str(d) for d in range(a + 1, b)]
    if hi[i + 1 :] == "9" * rest:
        out.append(head + str(b))
    else:
        out += [head + str(b) + p for p in _cover("0" * rest, hi[i + 1 :])]
    return out


FIRST_DATE = date(1900, 1, 1)  # open ranges stop here (said in the report)
LAST_DATE = date(2099, 12, 31)


def date_prefixes(first: date | None, last: date | None) -> list[str]:
    """``YYYY-MM-DD`` prefixes matching exactly the valid dates from ``first`` to ``last``
    (inclusive; None: from 1900-01-01, until 2099-12-31). Day 00 and month 00 exist in no
    date, nor day 32 or month 13, so a range starting on the 1st or ending on a month's last
    day is widened over them: fewer prefixes, the same dates."""
    first, last = first or FIRST_DATE, last or LAST_DATE
    if first > last:
        return []
    lo = first.strftime("%Y%m%d")
    if first.day == 1:
        lo = lo[:6] + "00" if first.month != 1 else lo[:4] + "0000"
    hi = last.strftime("%Y%m%d")
    if (last + timedelta(days=1)).day == 1:
        hi = hi[:6] + "99" if last.month != 12 else hi[:4] + "9999"

    def dashed(p: str) -> str:
        return p[:4] + (f"-{p[4:6]}" if len(p) > 4 else "") + (f"-{p[6:]}" if len(p) > 6 else "")

    return [dashed(p) for p in _cover(lo, hi) if _some_date(p)]


def _some_date(prefix: str) -> bool:
    """Whether some valid date's ``YYYYMMDD`` starts with these digits."""
    if len(prefix) <= 4:
        return True
    if prefix[4] not in "01" or (len(prefix) >= 6 and not 1 <= int(prefix[4:6]) <= 12):
        return False
    if len(prefix) <= 6:
        return True
    year, month = int(prefix[:4]), int(prefix[4:6])
    days = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    low = int(prefix[6:]) * (10 ** (8 - len(prefix)))
    return any(1 <= d <= days for d in range(low, low + 10 ** (8 - len(prefix))))


def _instant(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Inexpressible(f"{value!r} is not an ISO 8601 date or time") from exc


def _midnight(at: datetime) -> bool:
    return (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0)


def date_matchers(kind: str, values: list[str]) -> list[Any]:
    """ON / BEFORE / AFTER / BETWEEN on a date attribute, read as Pinpoint reads it (the date
    as an instant at midnight UTC compared with the value)."""
    instants = [_instant(v) for v in values]
    if not instants:
        raise Inexpressible(f"{kind} without a value")
    first: date | None
    last: date | None
    if kind == "ON":
        dates = sorted({i.date() for i in instants})
        return [d.isoformat() for d in dates]
    if kind == "BEFORE":
        at = instants[0]
        first, last = None, at.date() - timedelta(days=1) if _midnight(at) else at.date()
    elif kind == "AFTER":
        first, last = instants[0].date() + timedelta(days=1), None
    elif kind == "BETWEEN":
        if len(instants) != 2:
            raise Inexpressible("BETWEEN takes two values")
        lo, hi = sorted(instants)
        first = lo.date() if _midnight(lo) else lo.date() + timedelta(days=1)
        last = hi.date()
    else:  # pragma: no cover - callers pass the date kinds only
        raise Inexpressible(kind)
    prefixes = date_prefixes(first, last)
    if not prefixes:
        raise Inexpressible(f"{kind} {values}: no date matches")
    if len(prefixes) > MAX_PREFIXES:
        raise Inexpressible(f"{kind} {values}: over {MAX_PREFIXES} date prefixes")
    return [p if len(p) == 10 else {"prefix": p} for p in prefixes]


# -- values -----------------------------------------------------------------------------------
def _wildcard(value: str, label: str) -> dict[str, str]:
    if "*" in value or "\\" in value:
        raise Inexpressible(f"{label} CONTAINS {value!r}: a '*' or '\\' in the text")
    return {"wildcard": f"*{value}*"}


def attribute_matchers(target: Target, kind: str, values: list[str], notes: list[str]) -> list[Any]:
    """The matchers of an AttributeDimension on a declared attribute, by its type."""
    spec = target.spec
    assert spec is not None
    label = target.label
    if not values:
        raise Inexpressible(f"{label} {kind}: no values")
    if spec.type == ValueType.DATE and kind in ("ON", "BEFORE", "AFTER", "BETWEEN"):
        notes.append(
            f"{label} {kind} {', '.join(values)}: dates compared as Pinpoint did "
            "(a date is its midnight UTC), written as date prefixes (open ranges from "
            f"{FIRST_DATE} until {LAST_DATE})"
        )
        return date_matchers(kind, values)
    if kind in ("ON", "BEFORE", "AFTER", "BETWEEN"):
        raise Inexpressible(
            f"{label} {kind}: a time comparison on a {spec.type.value} attribute (only "
            "date attributes can be compared in Kizuna conditions)"
        )
    typed: list[Any]
    if spec.type == ValueType.BOOLEAN:
        if any(v.lower() not in ("true", "false") for v in values):
            raise Inexpressible(f"{label}: a boolean compared with {values}")
        typed = sorted({v.lower() == "true" for v in values})
        if kind == "EXCLUSIVE":
            if len(typed) == 2:
                raise Inexpressible(f"{label}: EXCLUSIVE true and false excludes everyone")
            notes.append(f"{label} EXCLUSIVE {values[0]}: customers whose value is the other one")
            return [not typed[0]]
    elif spec.type == ValueType.NUMBER:
        # exactly the number Pinpoint compared with, or a decision (never a rounded float)
        exact = [json_number(n) if (n := number(v)) is not None else None for v in values]
        if any(n is None for n in exact):
            raise Inexpressible(f"{label}: a number compared with {values}")
        typed = list(exact)
    else:
        typed = list(values)
        if spec.enum is not None:
            unknown = [v for v in values if v not in spec.enum]
            if unknown:
                notes.append(f"{label}: no customer has {', '.join(map(repr, unknown))}")
    if kind == "INCLUSIVE":
        return typed
    if kind == "EXCLUSIVE":
        if spec.type == ValueType.BOOLEAN:  # handled above
            raise Inexpressible(label)
        notes.append(
            f"{label} EXCLUSIVE: customers without {target.name} are not in it (Pinpoint "
            "counted endpoints without the attribute in)"
        )
        return [{"anything-but": typed}]
    if kind == "CONTAINS":
        if spec.type not in (ValueType.STRING, ValueType.STRING_LIST, ValueType.DATE):
            raise Inexpressible(f"{label}: CONTAINS on a {spec.type.value}")
        return [_wildcard(v, label) for v in values]
    raise Inexpressible(f"{label}: AttributeType {kind}")


def numeric_matchers(label: str, metric: Mapping[str, Any]) -> list[Any]:
    op = NUMERIC.get(str(metric.get("ComparisonOperator")))
    if op is None:
        raise Inexpressible(f"{label}: comparison {metric.get('ComparisonOperator')!r}")
    raw = metric.get("Value", "")
    # the number as the file wrote it (read exactly: kizuna_tools.migrate.inputs)
    shown = str(raw) if isinstance(raw, int | float | Decimal) else repr(raw)
    value = number(raw) if isinstance(raw, int | float | Decimal | str) else None
    if value is None:
        raise Inexpressible(
            f"{label}: {shown} is not a Kizuna number (within +-1e12, at most 6 decimals)"
        )
    if abs(value) > 5_000_000_000:
        raise Inexpressible(f"{label}: {shown} is outside +-5e9")
    n = json_number(value)
    if n is None:
        raise Inexpressible(f"{label}: {shown} has more digits than a float keeps")
    return [{"numeric": [op, n]}]


def event_conditions(
    dims: Mapping[str, Any], where: str, names: AttributeMap
) -> tuple[Translation, dict[str, ValueType]]:
    """An event filter's ``Attributes`` and ``Metrics`` (a campaign's ``EventFilter``, a
    journey's ``EventStartCondition``) as conditions on the custom event's fields, and the
    fields it names with their types (an attribute is text, a metric a number): field names
    in snake case, or for a name without Latin letters the migration's generated one
    (:meth:`AttributeMap.event_field`); INCLUSIVE -> the values, EXCLUSIVE ->
    ``anything-but``, CONTAINS -> ``wildcard *v*``, a metric -> ``numeric``."""
    result = Translation()
    fields: dict[str, ValueType] = {}
    sources = (
        ("Attributes", "event attribute", ValueType.STRING),
        ("Metrics", "event metric", ValueType.NUMBER),
    )
    for source, what, kind in sources:
        for name, dim in sorted((dims.get(source) or {}).items()):
            (field_name, generated), label = names.event_field(name), f"{what} {name}"
            if field_name in fields:
                result.decisions.append(f"{where}: {label}: a second filter on {field_name}")
                continue
            fields[field_name] = kind
            try:
                if kind == ValueType.NUMBER:
                    matchers = numeric_matchers(label, dim)
                else:
                    matchers = _event_matchers(label, field_name, dim, result.notes)
            except Inexpressible as exc:
                result.decisions.append(f"{where}: {exc}")
            else:
                result.condition[field_name] = matchers
            if generated:
                result.notes.append(
                    f"{what} {name} -> field {field_name} (a generated name: {name} has no "
                    "Latin letters)"
                )
            elif field_name != name:
                result.notes.append(f"{what} {name} -> field {field_name}")
    return result, fields


def _event_matchers(
    label: str, field_name: str, dim: Mapping[str, Any], notes: list[str]
) -> list[Any]:
    kind = str(dim.get("AttributeType", "INCLUSIVE"))
    values = [str(v) for v in dim.get("Values", [])]
    if not values:
        raise Inexpressible(f"{label}: no values")
    if kind == "INCLUSIVE":
        return values
    if kind == "EXCLUSIVE":
        notes.append(f"{field_name} EXCLUSIVE: events without {field_name} do not match")
        return [{"anything-but": values}]
    if kind == "CONTAINS":
        return [_wildcard(v, label) for v in values]
    raise Inexpressible(f"{label}: {kind} on an event attribute (event fields are text)")


def _nest(path: list[str], matchers: list[Any]) -> dict[str, Any]:
    condition: dict[str, Any] = {path[-1]: matchers}
    for key in reversed(path[:-1]):
        condition = {key: condition}
    return condition


# -- the translation --------------------------------------------------------------------------
@dataclass
class Conditions:
    """Translates Pinpoint dimensions into customer-view conditions, declaring the
    attributes and the activity windows they need."""

    attributes: AttributeMap
    activity_windows: set[int] = field(default_factory=set)

    def dimensions(self, dims: Mapping[str, Any] | None, where: str) -> Translation:
        """A ``SegmentDimensions`` object (all its parts must hold)."""
        result = Translation()
        parts: list[dict[str, Any]] = []
        for source in ("Attributes", "UserAttributes"):
            for name, dim in sorted((dims or {}).get(source, {}).items()):
                parts += self._attempt(
                    result, lambda s=source, n=name, d=dim: self._attribute(s, n, d, result)
                )
        for name, metric in sorted((dims or {}).get("Metrics", {}).items()):
            parts += self._attempt(result, lambda n=name, m=metric: self._metric(n, m))
        for key, dim in sorted(((dims or {}).get("Demographic") or {}).items()):
            parts += self._attempt(result, lambda k=key, d=dim: self._demographic(k, d))
        location = (dims or {}).get("Location") or {}
        if "Country" in location:
            parts += self._attempt(result, lambda: self._country(location["Country"], result))
        if "GPSPoint" in location:
            result.decisions.append(
                "Location.GPSPoint: Kizuna keeps no coordinates; a distance condition cannot "
                "be carried over (use region or prefecture)"
            )
        recency = ((dims or {}).get("Behavior") or {}).get("Recency")
        if recency:
            parts += self._attempt(result, lambda: self._recency(recency, result))
        result.condition = _all(parts, result, where)
        return result

    @staticmethod
    def _attempt(result: Translation, build: Any) -> list[dict[str, Any]]:
        try:
            return [build()]
        except Inexpressible as exc:
            result.decisions.append(str(exc))
            return []

    def _attribute(
        self, source: str, name: str, dim: Mapping[str, Any], result: Translation
    ) -> dict[str, Any]:
        target = self.attributes.ensure(source, name)
        path = target.view_path
        if path is None:
            why = "a profile name" if target.profile else "personal data"
            raise Inexpressible(
                f"{target.label}: {why}, which conditions cannot name (Kizuna keeps personal "
                "data out of the customer view)"
            )
        if not target.seen:
            result.notes.append(f"{target.label}: no endpoint has it; declared as a string")
        kind = str(dim.get("AttributeType", "INCLUSIVE"))
        values = [str(v) for v in dim.get("Values", [])]
        return _nest(path, attribute_matchers(target, kind, values, result.notes))

    def _metric(self, name: str, metric: Mapping[str, Any]) -> dict[str, Any]:
        target = self.attributes.ensure("Metrics", name)
        path = target.view_path
        if path is None:
            raise Inexpressible(f"{target.label}: personal data cannot be in a condition")
        return _nest(path, numeric_matchers(target.label, metric))

    def _demographic(self, key: str, dim: Mapping[str, Any]) -> dict[str, Any]:
        values = [str(v) for v in dim.get("Values", [])]
        exclusive = dim.get("DimensionType") == "EXCLUSIVE"
        if key != "Channel":
            raise Inexpressible(
                f"Demographic.{key} {'EXCLUSIVE' if exclusive else 'INCLUSIVE'} "
                f"{', '.join(values)}: Kizuna keeps no device {key.lower()}"
            )
        unknown = [v for v in values if v not in CHANNELS]
        if unknown:
            raise Inexpressible(f"Demographic.Channel {', '.join(unknown)}: not a Kizuna channel")
        channels = sorted({CHANNELS[v] for v in values})
        return {"reachable": [{"anything-but": channels}] if exclusive else channels}

    def _country(self, dim: Mapping[str, Any], result: Translation) -> dict[str, Any]:
        target = self.attributes.ensure("Location", "Country")
        path = target.view_path
        assert path is not None
        values = [str(v) for v in dim.get("Values", [])]
        kind = "EXCLUSIVE" if dim.get("DimensionType") == "EXCLUSIVE" else "INCLUSIVE"
        return _nest(path, attribute_matchers(target, kind, values, result.notes))

    def _recency(self, recency: Mapping[str, Any], result: Translation) -> dict[str, Any]:
        days = RECENCY_DAYS.get(str(recency.get("Duration")))
        if days is None:
            raise Inexpressible(f"Behavior.Recency {recency.get('Duration')!r}")
        self.activity_windows.add(days)
        active = recency.get("RecencyType", "ACTIVE") == "ACTIVE"
        result.notes.append(
            f"Behavior.Recency {recency.get('RecencyType')} {recency.get('Duration')}: "
            f"app.opened counted over {days} day(s) (Pinpoint counted any activity of the "
            "endpoint's app: send app.opened from the app when it comes to the foreground)"
        )
        matchers: list[Any] = [{"numeric": [">=", 1]}] if active else [0]
        return {"behaviour": {ACTIVITY_EVENT: {f"count_{days}d": matchers}}}


# -- segments ---------------------------------------------------------------------------------
@dataclass
class SegmentOutcome:
    pinpoint_id: str
    pinpoint_name: str
    name: str | None  # the Kizuna segment (None: not written)
    translation: Translation
    description: str = ""
    imported: bool = False
    version: int | None = None
    problems: list[str] = field(default_factory=list)  # refused by Kizuna's segment rules

    @property
    def written(self) -> bool:
        return self.name is not None and not self.problems

    @property
    def complete(self) -> bool:
        return self.written and self.translation.complete

    @property
    def condition(self) -> dict[str, Any]:
        return self.translation.condition or EVERYONE

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "conditions": self.condition}


@dataclass
class SegmentsResult:
    by_id: dict[str, SegmentOutcome] = field(default_factory=dict)

    def name_of(self, pinpoint_id: str) -> str | None:
        outcome = self.by_id.get(pinpoint_id)
        return outcome.name if outcome and outcome.written else None


def translate_segments(
    items: list[Mapping[str, Any]], conditions: Conditions, report: Report
) -> SegmentsResult:
    """Every segment of a GetSegments response (sources before the segments naming them).
    Their conditions are checked by :func:`check_segments` once every attribute is declared."""
    result = SegmentsResult()
    taken: set[str] = set()
    by_id = {str(s.get("Id")): s for s in items}
    for segment in _sources_first(items):
        pid = str(segment.get("Id"))
        label = str(segment.get("Name") or pid)
        if segment.get("SegmentType") == "IMPORT":
            result.by_id[pid] = SegmentOutcome(
                pid, label, None, Translation(), imported=True, version=segment.get("Version")
            )
            definition = segment.get("ImportDefinition") or {}
            report.add(
                "segment",
                label,
                Status.NOT_MIGRATED,
                pinpoint_id=pid,
                notes=[
                    f"an IMPORT segment ({definition.get('Size', '?')} endpoints from "
                    f"{definition.get('Format', '?')} {definition.get('S3Url', '')}): Kizuna "
                    "segments are conditions, not lists"
                ],
                decisions=[
                    "give campaigns that used it a customer_list (a CSV with a customer_id "
                    "column), or describe its members as conditions"
                ],
            )
            continue
        translation = _segment_condition(segment, conditions, result, by_id)
        if not translation.condition and translation.complete:
            translation.notes.append("no dimensions: everyone")
        name = unique(kebab(label, fallback="segment", max_length=63), taken, 63, "-")
        outcome = SegmentOutcome(
            pid,
            label,
            name,
            translation,
            _description(segment, translation),
            version=segment.get("Version"),
        )
        result.by_id[pid] = outcome
        item = report.add(
            "segment",
            label,
            Status.MIGRATED,
            pinpoint_id=pid,
            became=[f"segments/{name}.yaml"],
            notes=translation.notes,
            decisions=translation.decisions,
        )
        if translation.decisions:
            item.note("written with the conditions that could be carried over (INCOMPLETE)")
    return result


def check_segments(result: SegmentsResult, vocab: Vocabulary, report: Report) -> None:
    """The segments loader's rules on every segment's condition (the customer view with the
    declared attributes and counted events of ``vocab``, values typed by the declarations);
    a refused segment is not written."""
    for outcome in result.by_id.values():
        if outcome.name is None:
            continue
        outcome.problems = view_condition_problems(
            outcome.condition, "conditions", vocab, segments=False
        )
        if outcome.problems:
            item = report.find("segment", outcome.pinpoint_name)
            if item is not None:
                item.status = Status.NOT_MIGRATED
                item.became = []
                more = len(outcome.problems) - 3
                item.decide(
                    "not valid in Kizuna, not written: "
                    + "; ".join(outcome.problems[:3])
                    + (f"; and {more} more" if more > 0 else "")
                )


def _sources_first(items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    ids = {str(s.get("Id")) for s in items}
    done: set[str] = set()
    order: list[Mapping[str, Any]] = []

    def visit(segment: Mapping[str, Any], path: tuple[str, ...]) -> None:
        pid = str(segment.get("Id"))
        if pid in done or pid in path:
            return
        for group in (segment.get("SegmentGroups") or {}).get("Groups", []):
            for ref in group.get("SourceSegments", []):
                ref_id = str(ref.get("Id"))
                if ref_id in ids:
                    visit(next(s for s in items if str(s.get("Id")) == ref_id), (*path, pid))
        done.add(pid)
        order.append(segment)

    for segment in items:
        visit(segment, ())
    return order


def _segment_condition(
    segment: Mapping[str, Any],
    conditions: Conditions,
    done: SegmentsResult,
    by_id: Mapping[str, Mapping[str, Any]],
) -> Translation:
    label = str(segment.get("Name") or segment.get("Id"))
    result = conditions.dimensions(segment.get("Dimensions"), label)
    groups = segment.get("SegmentGroups") or {}
    group_conditions: list[dict[str, Any]] = []
    for i, group in enumerate(groups.get("Groups", [])):
        where = f"{label} group {i + 1}"
        dims = [conditions.dimensions(d, where) for d in group.get("Dimensions", [])]
        for d in dims:
            result.absorb(d)
        kind = group.get("Type", "ALL")
        group_condition: dict[str, Any] = {}
        if kind == "NONE" and dims:
            result.decisions.append(
                f"{where}: Type NONE (endpoints matching none of its "
                "dimensions) cannot be said as a condition"
            )
        elif kind == "ANY":
            group_condition = disjoin([d.condition for d in dims])
        else:
            for d in dims:
                try:
                    group_condition = conjoin(group_condition, d.condition)
                except Inexpressible as exc:
                    result.decisions.append(f"{where}: {exc}")
        sources = []
        for ref in group.get("SourceSegments", []):
            ref_id = str(ref.get("Id"))
            outcome = done.by_id.get(ref_id)
            if outcome is None or not outcome.written:
                what = (
                    "an IMPORT segment"
                    if outcome and outcome.imported
                    else "a segment not migrated"
                )
                name = outcome.pinpoint_name if outcome else ref_id
                result.decisions.append(f"{where}: its source segment {name!r} is {what}")
                continue
            result.absorb(outcome.translation)
            sources.append(outcome.translation.condition)
            if ref.get("Version") not in (None, by_id.get(ref_id, {}).get("Version")):
                result.notes.append(
                    f"{where}: source {outcome.pinpoint_name!r} version {ref['Version']}; "
                    "its latest version was migrated"
                )
        if sources:
            source_condition = (
                disjoin(sources)
                if group.get("SourceType", "ANY") == "ANY"
                else _all(sources, result, where)
            )
            try:
                group_condition = conjoin(source_condition, group_condition)
            except Inexpressible as exc:
                result.decisions.append(f"{where}: {exc}")
        group_conditions.append(group_condition)
    include = groups.get("Include", "ALL")
    if group_conditions:
        if include == "NONE":
            result.decisions.append(f"{label}: Include NONE cannot be said as a condition")
        elif include == "ANY":
            combined = disjoin(group_conditions)
            try:
                result.condition = conjoin(result.condition, combined)
            except Inexpressible as exc:
                result.decisions.append(f"{label}: {exc}")
        else:
            result.condition = _all([result.condition, *group_conditions], result, label)
    return result


def _all(conditions: list[dict[str, Any]], result: Translation, where: str) -> dict[str, Any]:
    """Every condition at once (:func:`conjoin`); what cannot be joined is a decision."""
    out: dict[str, Any] = {}
    for c in conditions:
        try:
            out = conjoin(out, c)
        except Inexpressible as exc:
            result.decisions.append(f"{where}: {exc}")
    return out


def _description(segment: Mapping[str, Any], translation: Translation) -> str:
    text = f"From Pinpoint segment {segment.get('Name')!r} ({segment.get('Id')})."
    if translation.decisions:
        text = (
            "INCOMPLETE (see MIGRATION-REPORT.md): "
            + "; ".join(translation.decisions)
            + ". "
            + text
        )
    return text


def write_segments(out: Path, result: SegmentsResult) -> list[Path]:
    written = []
    folder = out / "segments"
    for outcome in result.by_id.values():
        if not outcome.written:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{outcome.name}.yaml"
        path.write_text(dump_yaml(outcome.document()), encoding="utf-8")
        written.append(path)
    return written


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
