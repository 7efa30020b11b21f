"""Pinpoint journeys (GetJourney) to Kizuna programs (``programs/<id>.yaml``).

:func:`convert_journey` reads one ``JourneyResponse`` and returns the program as a dict (what
the YAML file holds), the translated templates its send steps use (to be written under
``templates/<program id>/`` with :func:`kizuna_tools.migrate.templates.write_templates`) and a
note for everything a person may need to know or decide. The mapping:

* **Start.** An ``EventStartCondition`` becomes the trigger: Pinpoint's ``_session.start`` is
  ``app.opened``, ``_monetization.purchase`` is ``order.placed``; a custom event is Kizuna's
  custom event :func:`event_type` (``WishlistAdded`` -> ``wishlist.added``, unless the
  context maps it); its attribute and metric filters become trigger conditions on the custom
  event's fields (:func:`kizuna_tools.migrate.segments.event_conditions`, as a campaign's event
  filter); its ``SegmentId`` becomes the audience ``{segments: [...]}``. Kizuna programs start
  on an event, never on a segment: a ``SegmentStartCondition`` journey becomes a program with
  that segment as its audience and the context's ``segment_start_event`` as trigger; without
  one it is written **disabled** with ``app.opened`` as a placeholder trigger (a decision).
* **Activities.** ``EMAIL``/``SMS``/``PUSH`` are ``send`` steps on that channel with the
  translated template (SMS ``MessageType`` is ``sms_type``). ``Wait`` is a ``wait`` of its
  ``WaitFor`` duration (``WaitUntil``, an absolute date, has no counterpart: the wait is
  dropped, a decision). ``ConditionalSplit`` is a ``branch`` (after a ``wait`` of its
  ``EvaluationWaitTime``); ``MultiCondition`` a chain of branches, in order, ending in its
  default; ``RandomSplit`` a ``split`` with the percentages as weights. Segment conditions
  name the migrated segment; segment dimensions become view conditions, translated as a
  segment's are (:class:`kizuna_tools.migrate.segments.Conditions`: attributes typed by their
  declaration, dates, location, channels, app recency), and conditions that must all hold
  are joined as a segment's groups are. A yes/no split whose only condition is an email
  activity's ``_email.open`` / ``_email.click`` (INCLUSIVE) is an engagement branch
  (``opened``; ``clicked`` for clicks alone) within the hours from the email to the split's
  evaluation (the waits between them and its ``EvaluationWaitTime``, at least on every path;
  the email on every path to the split). Other engagement conditions (delivered, bounced,
  push or SMS events, an engagement beside other conditions, in a multi-condition split)
  are taken as false (a decision), so customers follow the "no" path. ``Holdout`` at the
  start of the journey is the program's ``holdout_percent`` (Kizuna holds out at entry);
  anywhere else it is a ``split`` whose ``holdout`` arm exits (a decision: its conversions
  are not compared).
  ``CUSTOM``, ``ContactCenter`` and any other activity are not carried over: the journey
  goes on to their next activity.
* **Limits.** ``EndpointReentryCap`` 1 (or none) is ``reentry: once``; unlimited re-entry is
  ``every`` ``EndpointReentryInterval`` days, or ``always``. Caps, quiet time, open hours,
  the schedule and refresh settings are reported: Kizuna's contact policy is project-wide.
* **State.** Only an ``ACTIVE`` journey is written enabled.

Every terminal path ends in one ``exit`` step (``end``); step ids come from the activity ids
(``^[a-z][a-z0-9_]{0,39}$``), the program id from the journey's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from kizuna.runtime.config import ValueType
from kizuna_tools.migrate import names
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.notes import Level, Note
from kizuna_tools.migrate.segments import (
    Conditions,
    Inexpressible,
    conjoin,
    disjoin,
    event_conditions,
)
from kizuna_tools.migrate.templates import Kind, TemplateResult

__all__ = [
    "JourneyContext",
    "JourneyResult",
    "convert_journey",
    "event_type",
    "parse_duration",
    "program_id",
    "program_yaml",
    "write_program",
]

PLACEHOLDER_TRIGGER = "app.opened"
END = "end"
MAX_STEPS = 40
_CHANNELS: dict[str, Kind] = {"EMAIL": "email", "SMS": "sms", "PUSH": "push"}
# Pinpoint's email engagement events an engagement branch measures (Kizuna: opened, clicked)
_EMAIL_ENGAGEMENT = ("_email.open", "_email.click")
MAX_WINDOW_HOURS = 720
# (condition or None when it cannot be expressed, the reasons)
Translated = tuple[dict[str, Any] | None, list[str]]


# --- names and durations ---------------------------------------------------------------------
def event_type(pinpoint: str, overrides: Mapping[str, str] | None = None) -> str | None:
    """The Kizuna detail-type of a Pinpoint event type: the context's own mapping, then the
    standard events with a counterpart, then a custom event's own name when it is a Kizuna
    detail-type (``wishlist.added``), else its first word, a dot and the rest
    (``WishlistAdded`` -> ``wishlist.added``; one word: ``Checkin`` -> ``app.checkin``), as
    the migration declares it (:func:`kizuna_tools.migrate.names.event_type`); None for
    another standard ``_x.y`` event: Kizuna has none."""
    if overrides and pinpoint in overrides:
        return overrides[pinpoint]
    if pinpoint in names.BUILTIN_EVENTS:
        return names.BUILTIN_EVENTS[pinpoint]
    if pinpoint.startswith("_"):
        return None
    return names.event_type(pinpoint)


def program_id(name: str, journey_id: str, taken: Collection[str] = ()) -> str:
    """A program id (``^[a-z][a-z0-9-]{1,39}$``) from the journey's name, else its id;
    ``-2``, ``-3``... when taken (:func:`kizuna_tools.migrate.names.object_id`, as a
    campaign's)."""
    ident = re.sub(r"[^a-z0-9]", "", journey_id.lower())[:12]
    fallback = f"journey-{ident}" if ident else "journey"
    return names.object_id(name, fallback=fallback, taken=set(taken))


_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+)Y)?(?:(?P<M>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z"
)


def parse_duration(text: str) -> tuple[int, list[str]]:
    """An ISO 8601 duration (``P1D``, ``PT12H``, ``P1DT30M``) in whole minutes, and what
    was approximated (years as 365 days, months as 30, seconds rounded up to a minute).
    Raises ValueError for anything else."""
    m = _DURATION.match(text or "")
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {k: v for k, v in m.groupdict().items() if v is not None}
    approx = []
    if "Y" in parts or "M" in parts:
        approx.append("years as 365 days and months as 30")
    days = int(parts.get("Y", 0)) * 365 + int(parts.get("M", 0)) * 30
    days += int(parts.get("W", 0)) * 7 + int(parts.get("D", 0))
    seconds = float(parts.get("s", 0))
    minutes = days * 1440 + int(parts.get("h", 0)) * 60 + int(parts.get("m", 0))
    if seconds:
        minutes += math.ceil(seconds / 60)
        if seconds % 60:
            approx.append("seconds rounded up to a whole minute")
    return minutes, approx


def _step_id(raw: str, used: set[str]) -> str:
    """A step id (``^[a-z][a-z0-9_]{0,39}$``) for an activity id, not in ``used`` (the exit
    step's among them), then added to it."""
    return names.unique(names.snake(raw), used, names.MAX_ATTRIBUTE, "_")


# --- context and result ----------------------------------------------------------------------
@dataclass(frozen=True)
class JourneyContext:
    """What the rest of the migration knows: the translated templates (all kinds and
    locales), the migrated segments (Pinpoint segment id -> Kizuna segment name), event-type
    overrides (Pinpoint -> Kizuna), program ids already used, the event that starts a
    segment journey (None: written disabled, a decision) and the segments' translator of
    dimensions (with the migration's attributes; its own, empty, by default)."""

    templates: Sequence[TemplateResult] = ()
    segments: Mapping[str, str] = field(default_factory=dict)
    event_types: Mapping[str, str] = field(default_factory=dict)
    taken_ids: Collection[str] = ()
    segment_start_event: str | None = None
    conditions: Conditions = field(default_factory=lambda: Conditions(AttributeMap()))


@dataclass
class JourneyResult:
    journey_id: str
    name: str
    program_id: str
    program: dict[str, Any] | None  # None: not convertible (an error note says why)
    templates: list[TemplateResult] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    activities: dict[str, str] = field(default_factory=dict)  # activity id -> what it became
    trigger_fields: dict[str, ValueType] = field(default_factory=dict)  # the custom event's


# --- conversion ------------------------------------------------------------------------------
@dataclass
class _Plan:
    """The steps of one activity (first is its entry), or a pass-through to another one."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    through: str | None = None  # activity id (or None: end of journey) when no steps


class _Converter:
    def __init__(self, journey: Mapping[str, Any], ctx: JourneyContext):
        self.j = journey
        self.ctx = ctx
        self.name = str(journey.get("Name") or journey.get("Id") or "journey")
        self.subject = f"journey {self.name!r}"
        self.notes: list[Note] = []
        self.used_ids: set[str] = {END}
        self.acts: Mapping[str, Any] = journey.get("Activities") or {}
        self.step_ids = {aid: _step_id(aid, self.used_ids) for aid in self.acts}
        self.plans: dict[str, _Plan] = {}
        self.templates: dict[str, list[TemplateResult]] = {}
        self.holdout_percent = 0
        self.activities: dict[str, str] = {}
        self.trigger_fields: dict[str, ValueType] = {}

    def note(self, level: Level, message: str, activity: str | None = None) -> None:
        where = self.subject + (f" activity {activity!r}" if activity else "")
        self.notes.append(Note(level, where, message))

    # -- activities -------------------------------------------------------------------
    def target(self, aid: str | None, seen: frozenset[str] = frozenset()) -> str:
        """The step id an edge to activity ``aid`` goes to (through pass-throughs)."""
        if aid is None:
            return END
        if aid in seen or aid not in self.plans:
            if aid not in self.acts:
                self.note("error", f"goes to unknown activity {aid!r}: ends there instead")
            return END
        plan = self.plans[aid]
        if plan.steps:
            return str(plan.steps[0]["id"])
        return self.target(plan.through, seen | {aid})

    def plan_all(self, start: str | None) -> None:
        for aid, act in self.acts.items():
            self.plans[aid] = self.plan(aid, act or {}, is_start=aid == start)

    def plan(self, aid: str, act: Mapping[str, Any], is_start: bool) -> _Plan:
        sid = self.step_ids[aid]
        kinds = [k for k in act if k != "Description" and act[k] is not None]
        if len(kinds) != 1:
            self.note("error", f"holds {kinds or 'no activity'}: not carried over", aid)
            self.activities[aid] = "dropped"
            return _Plan(through=None)
        kind = kinds[0]
        body = act[kind] or {}
        if kind in _CHANNELS:
            return self.send(aid, sid, _CHANNELS[kind], body)
        if kind == "Wait":
            return self.wait(aid, sid, body)
        if kind == "ConditionalSplit":
            return self.yes_no(aid, sid, body)
        if kind == "MultiCondition":
            return self.multi(aid, sid, body)
        if kind == "RandomSplit":
            return self.random(aid, sid, body)
        if kind == "Holdout":
            return self.holdout(aid, sid, body, is_start)
        label = {"CUSTOM": "a custom (Lambda or webhook)", "ContactCenter": "a contact center"}
        self.note(
            "dropped",
            f"{label.get(kind, kind)} activity is not carried over: goes on to its next activity",
            aid,
        )
        self.activities[aid] = "dropped"
        return _Plan(through=body.get("NextActivity"))

    def send(self, aid: str, sid: str, kind: Kind, body: Mapping[str, Any]) -> _Plan:
        name = body.get("TemplateName")
        members = [r for r in self.ctx.templates if r.kind == kind and r.name == name]
        if not name or not members:
            why = "no TemplateName" if not name else f"{kind} template {name!r} is not exported"
            self.note("error", f"{why}: the send is dropped", aid)
            self.activities[aid] = "dropped"
            return _Plan(through=body.get("NextActivity"))
        template = members[0].template
        group = [r for r in self.ctx.templates if r.template == template]
        self.templates[template] = group
        locales = sorted({r.locale for r in group if r.kind == kind})
        if len(locales) > 1:
            self.note(
                "info",
                f"Pinpoint sent {name!r} ({members[0].locale}) to everyone; Kizuna's template "
                f"{template!r} has {', '.join(locales)}: each customer gets their locale",
                aid,
            )
        step: dict[str, Any] = {"id": sid, "type": "send", "channels": [kind]}
        step["template"] = template
        config = body.get("MessageConfig") or {}
        if kind == "sms" and config.get("MessageType") == "TRANSACTIONAL":
            step["sms_type"] = "transactional"
        dropped = sorted(k for k in config if k != "MessageType" and config[k])
        if dropped:
            self.note(
                "dropped",
                f"MessageConfig {', '.join(dropped)}: Kizuna's channel configuration decides",
                aid,
            )
        if body.get("TemplateVersion"):
            self.note("info", f"TemplateVersion {body['TemplateVersion']}: the exported one", aid)
        step["next"] = body.get("NextActivity")
        self.activities[aid] = f"send step {sid!r} ({kind}, template {template!r})"
        return _Plan(steps=[step])

    def wait_step(
        self, aid: str, sid: str, wait: Mapping[str, Any], nxt: str | None, what: str
    ) -> list[dict[str, Any]]:
        if wait.get("WaitUntil"):
            self.note(
                "decision",
                f"{what} until an absolute date ({wait['WaitUntil']}) has no Kizuna "
                "counterpart: no wait is made; add a wait of the right length",
                aid,
            )
            return []
        try:
            minutes, approx = parse_duration(str(wait.get("WaitFor") or ""))
        except ValueError as err:
            self.note("error", f"{what}: {err}; no wait is made", aid)
            return []
        for a in approx:
            self.note("info", f"{what} {wait.get('WaitFor')}: {a}", aid)
        if minutes == 0:
            return []
        days, rest = divmod(minutes, 1440)
        if days > 365:
            self.note("decision", f"{what} of {days} days is cut to Kizuna's 365", aid)
            days, rest = 365, 0
        step: dict[str, Any] = {"id": sid, "type": "wait"}
        for key, value in (("days", days), ("hours", rest // 60), ("minutes", rest % 60)):
            if value:
                step[key] = value
        step["next"] = nxt
        return [step]

    def wait(self, aid: str, sid: str, body: Mapping[str, Any]) -> _Plan:
        steps = self.wait_step(
            aid, sid, body.get("WaitTime") or {}, body.get("NextActivity"), "wait"
        )
        self.activities[aid] = f"wait step {sid!r}" if steps else "dropped"
        return _Plan(steps=steps, through=body.get("NextActivity"))

    def simple(self, aid: str, cond: Mapping[str, Any]) -> Translated:
        """A SimpleCondition as a view condition (None: not expressible, with why)."""
        if cond.get("EventCondition"):
            event = cond["EventCondition"]
            types = ((event.get("Dimensions") or {}).get("EventType") or {}).get("Values")
            return None, [
                f"engagement condition {types or ''} on activity "
                f"{event.get('MessageActivity')!r}: Kizuna translates engagement only as a "
                "yes/no split's single condition (TODO: in a multi-condition split, or beside "
                "other conditions)"
            ]
        if cond.get("SegmentCondition"):
            seg = str(cond["SegmentCondition"].get("SegmentId"))
            name = self.ctx.segments.get(seg)
            if name is None:
                return None, [f"segment {seg!r} was not migrated"]
            return {"segments": [name]}, []
        # the wire name is segmentDimensions (its locationName); SDKs print SegmentDimensions
        dims = cond.get("segmentDimensions") or cond.get("SegmentDimensions")
        if not dims:
            return None, ["an empty condition"]
        translation = self.ctx.conditions.dimensions(dims, "segment dimensions")
        for note in translation.notes:
            self.note("info", note, aid)
        if translation.decisions:
            return None, translation.decisions
        if not translation.condition:
            return None, ["an empty segment dimension"]
        return translation.condition, []

    def combined(self, aid: str, body: Mapping[str, Any]) -> Translated:
        condition = body.get("Condition") or {}
        parts = [self.simple(aid, c) for c in condition.get("Conditions") or []]
        reasons = [r for _, why in parts for r in why]
        ok = [p for p, _ in parts if p is not None]
        if not parts:
            return None, ["no conditions"]
        if condition.get("Operator", "ALL") == "ANY":
            return (disjoin(ok) if ok else None), reasons
        if len(ok) < len(parts):
            return None, reasons
        merged: dict[str, Any] = {}
        for p in ok:
            try:
                merged = conjoin(merged, p)
            except Inexpressible as exc:
                return None, [f"{exc} (ALL)"]
        return merged, reasons

    def engagement_split(
        self, aid: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, str] | None:
        """A yes/no split whose only condition is engagement with a message: Kizuna's
        ``engagement`` (or None and why it cannot be); None when it is another split."""
        conditions = (body.get("Condition") or {}).get("Conditions") or []
        if len(conditions) != 1 or not conditions[0].get("EventCondition"):
            return None
        event = conditions[0]["EventCondition"]
        types = (event.get("Dimensions") or {}).get("EventType") or {}
        values = sorted({str(v) for v in types.get("Values") or []})
        msg = event.get("MessageActivity")
        what = f"engagement condition {values} on activity {msg!r}"
        if (
            types.get("DimensionType", "INCLUSIVE") != "INCLUSIVE"
            or not values
            or not set(values) <= set(_EMAIL_ENGAGEMENT)
        ):
            return None, (
                f"{what}: Kizuna branches on an email's opens and clicks "
                f"({', '.join(_EMAIL_ENGAGEMENT)}) only"
            )
        mail = (self.acts.get(msg) or {}).get("EMAIL") if isinstance(msg, str) else None
        if not isinstance(mail, Mapping):
            return None, f"{what}: not an email activity (Kizuna measures opens of email only)"
        if not any(
            r.kind == "email" and r.name == mail.get("TemplateName") for r in self.ctx.templates
        ):
            return None, f"{what}: that email is not carried over"
        around = self._path_avoiding(msg, aid)
        if around is not None:
            return None, (
                f"{what}: the email is not on every path to the split ({' -> '.join(around)})"
            )
        minutes = self._least_wait(msg, aid)
        hours = min(minutes // 60, MAX_WINDOW_HOURS)
        if hours < 1:
            return None, (
                f"{what}: less than an hour from the email to the evaluation (Kizuna's "
                "window is whole hours, at least 1)"
            )
        if minutes // 60 > MAX_WINDOW_HOURS:
            self.note("info", f"the engagement window is cut to Kizuna's {MAX_WINDOW_HOURS} h", aid)
        kind = "clicked" if values == ["_email.click"] else "opened"
        engagement = {"step": self.step_ids[msg], "event": kind, "within_hours": hours}
        self.note(
            "info",
            f"{what}: an engagement branch, {kind} within {hours} h of the email (the waits "
            "from the email to the split's evaluation; Kizuna counts a click as an open)",
            aid,
        )
        return engagement, ""

    def _next_activities(self, aid: str) -> list[str]:
        act = self.acts.get(aid) or {}
        found: list[str] = []
        for body in act.values():
            if not isinstance(body, Mapping):
                continue
            for key in ("NextActivity", "TrueActivity", "FalseActivity", "DefaultActivity"):
                if body.get(key):
                    found.append(str(body[key]))
            found += [
                str(b["NextActivity"]) for b in body.get("Branches") or [] if b.get("NextActivity")
            ]
        return [a for a in found if a in self.acts]

    def _path_avoiding(self, avoid: str, goal: str) -> list[str] | None:
        """A path of activities from the start to ``goal`` not passing ``avoid``."""
        start = str(self.j.get("StartActivity"))
        stack = [[start]] if start != avoid else []
        seen: set[str] = set()
        while stack:
            path = stack.pop()
            if path[-1] == goal:
                return path
            if path[-1] in seen:
                continue
            seen.add(path[-1])
            stack += [[*path, n] for n in self._next_activities(path[-1]) if n != avoid]
        return None

    def _own_wait(self, aid: str) -> int:
        """Minutes an activity makes a customer wait in Kizuna (a wait's duration, a split's
        evaluation wait; a wait until a date: none)."""
        act = self.acts.get(aid) or {}
        for kind, key in (
            ("Wait", "WaitTime"),
            ("ConditionalSplit", "EvaluationWaitTime"),
            ("MultiCondition", "EvaluationWaitTime"),
        ):
            wait = (act.get(kind) or {}).get(key) or {}
            if wait.get("WaitFor") and not wait.get("WaitUntil"):
                try:
                    return min(parse_duration(str(wait["WaitFor"]))[0], 365 * 1440)
                except ValueError:
                    return 0
        return 0

    def _least_wait(self, start: str, goal: str) -> int:
        """The least waiting (minutes) on any path from ``start`` to ``goal``, ``goal``'s own
        evaluation wait included."""
        memo: dict[str, int | None] = {}

        def best(aid: str, visiting: frozenset[str]) -> int | None:
            if aid == goal:
                return self._own_wait(aid)
            if aid in visiting:
                return None
            if aid not in memo:
                found = [
                    b
                    for n in self._next_activities(aid)
                    if (b := best(n, visiting | {aid})) is not None
                ]
                memo[aid] = self._own_wait(aid) + min(found) if found else None
            return memo[aid]

        return best(start, frozenset()) or 0

    def yes_no(self, aid: str, sid: str, body: Mapping[str, Any]) -> _Plan:
        engaged = self.engagement_split(aid, body)
        if engaged is not None and engaged[0] is not None:
            self.activities[aid] = f"branch step {sid!r} (engagement)"
            branch = {
                "id": sid,
                "type": "branch",
                "engagement": engaged[0],
                "then": ("act", body.get("TrueActivity")),
                "else": ("act", body.get("FalseActivity")),
            }
            return _Plan(steps=[*self._wait_before(aid, sid, body), branch])
        condition, reasons = (None, [engaged[1]]) if engaged else self.combined(aid, body)
        for why in reasons:
            self.note("decision", f"condition taken as false: {why}", aid)
        if condition is None:
            self.note(
                "decision", "the split cannot be expressed: everyone takes the 'no' path", aid
            )
            self.activities[aid] = "dropped (false path)"
            waits = self._wait_before(aid, sid, body, ("act", body.get("FalseActivity")))
            return _Plan(steps=waits, through=body.get("FalseActivity"))
        branch = {
            "id": sid,
            "type": "branch",
            "condition": condition,
            "then": ("act", body.get("TrueActivity")),
            "else": ("act", body.get("FalseActivity")),
        }
        waits = self._wait_before(aid, sid, body)
        self.activities[aid] = f"branch step {sid!r}"
        return _Plan(steps=[*waits, branch])

    def _wait_before(
        self, aid: str, sid: str, body: Mapping[str, Any], then: tuple[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The split's EvaluationWaitTime as a wait step going to the split (or ``then``:
        the path everyone takes when the split cannot be expressed: they still wait)."""
        wait = body.get("EvaluationWaitTime")
        if not wait:
            return []
        wid = _step_id(f"{sid}_wait", self.used_ids)
        steps = self.wait_step(aid, wid, wait, None, "evaluation wait")
        for s in steps:
            s["next"] = then or ("step", sid)
        return steps

    def multi(self, aid: str, sid: str, body: Mapping[str, Any]) -> _Plan:
        branches: list[tuple[dict[str, Any], str | None]] = []
        for i, branch in enumerate(body.get("Branches") or [], start=1):
            condition, reasons = self.simple(aid, branch.get("Condition") or {})
            for why in reasons:
                self.note("decision", f"branch {i} never taken: {why}", aid)
            if condition is not None:
                branches.append((condition, branch.get("NextActivity")))
        default = body.get("DefaultActivity")
        if not branches:
            self.note("decision", "no branch can be expressed: everyone takes the default", aid)
            self.activities[aid] = "dropped (default path)"
            waits = self._wait_before(aid, sid, body, ("act", default))
            return _Plan(steps=waits, through=default)
        ids = [sid] + [_step_id(f"{sid}_{i}", self.used_ids) for i in range(2, len(branches) + 1)]
        steps: list[dict[str, Any]] = []
        for i, (condition, nxt) in enumerate(branches):
            otherwise = ("step", ids[i + 1]) if i + 1 < len(ids) else ("act", default)
            steps.append(
                {
                    "id": ids[i],
                    "type": "branch",
                    "condition": condition,
                    "then": ("act", nxt),
                    "else": otherwise,
                }
            )
        self.activities[aid] = f"branch steps {', '.join(repr(i) for i in ids)}"
        return _Plan(steps=[*self._wait_before(aid, sid, body), *steps])

    def random(self, aid: str, sid: str, body: Mapping[str, Any]) -> _Plan:
        arms: list[dict[str, Any]] = []
        total = 0
        for i, branch in enumerate(body.get("Branches") or [], start=1):
            pct = int(branch.get("Percentage") or 0)
            total += pct
            if pct <= 0:
                self.note("info", f"branch {i} has 0%: no arm", aid)
                continue
            arms.append(
                {"name": f"arm_{i}", "weight": pct, "next": ("act", branch.get("NextActivity"))}
            )
        if total != 100:
            self.note("error", f"percentages add up to {total}, not 100: not carried over", aid)
            raise _Refused(f"random split {aid!r} percentages add up to {total}")
        if len(arms) == 1:
            self.activities[aid] = "dropped (one arm)"
            return _Plan(through=arms[0]["next"][1])
        if len(arms) > 5:
            raise _Refused(f"random split {aid!r} has {len(arms)} branches (Kizuna: 5)")
        self.activities[aid] = f"split step {sid!r}"
        return _Plan(steps=[{"id": sid, "type": "split", "arms": arms}])

    def holdout(self, aid: str, sid: str, body: Mapping[str, Any], is_start: bool) -> _Plan:
        pct = int(body.get("Percentage") or 0)
        nxt = body.get("NextActivity")
        if pct <= 0:
            self.activities[aid] = "dropped (0%)"
            return _Plan(through=nxt)
        if pct >= 100:
            self.note("decision", "a 100% holdout: nobody goes on; the journey ends here", aid)
            self.activities[aid] = "end"
            return _Plan(through=None)
        if is_start and pct <= 50:
            self.holdout_percent = pct
            self.activities[aid] = f"holdout_percent {pct}"
            self.note("info", f"holdout {pct}% at the start: the program's holdout_percent", aid)
            return _Plan(through=nxt)
        why = "over Kizuna's 50% holdout" if is_start else "not at the start of the journey"
        self.note(
            "decision",
            f"holdout {pct}% {why}: a split whose 'holdout' arm exits (customers stop there "
            "as in Pinpoint, but the program's conversion report does not compare them)",
            aid,
        )
        self.activities[aid] = f"split step {sid!r} (holdout arm)"
        arms = [
            {"name": "holdout", "weight": pct, "next": ("act", None)},
            {"name": "continue", "weight": 100 - pct, "next": ("act", nxt)},
        ]
        return _Plan(steps=[{"id": sid, "type": "split", "arms": arms}])

    # -- assembly ---------------------------------------------------------------------
    def resolve(self, ref: Any) -> str:
        if isinstance(ref, tuple):
            kind, value = ref
            return str(value) if kind == "step" else self.target(value)
        return self.target(ref)

    def steps(self, start: str) -> list[dict[str, Any]]:
        """Every step, ids resolved, in depth-first order from the start; END last."""
        by_id: dict[str, dict[str, Any]] = {}
        for plan in self.plans.values():
            for step in plan.steps:
                by_id[step["id"]] = step
        for step in by_id.values():
            for key in ("next", "then", "else"):
                if key in step:
                    step[key] = self.resolve(step[key])
            for arm in step.get("arms", []):
                arm["next"] = self.resolve(arm["next"])
        ordered: list[dict[str, Any]] = []
        seen: set[str] = set()
        pending = [self.target(start)]
        while pending:
            sid = pending.pop()
            if sid in seen or sid == END:
                continue
            seen.add(sid)
            step = by_id[sid]
            ordered.append(step)
            nexts = [step.get("next"), step.get("then"), step.get("else")]
            nexts += [a["next"] for a in step.get("arms", [])]
            pending += [n for n in reversed(nexts) if n]
        owner = {step["id"]: aid for aid, plan in self.plans.items() for step in plan.steps}
        for sid in by_id:
            if sid not in seen:
                self.note(
                    "dropped",
                    f"step {sid!r} can no longer be reached (a path taken as false)",
                    owner[sid],
                )
                self.activities[owner[sid]] = "dropped (unreachable)"
        if any(
            END in (s.get("next"), s.get("then"), s.get("else"))
            or any(a["next"] == END for a in s.get("arms", []))
            for s in ordered
        ):
            ordered.append({"id": END, "type": "exit"})
        return ordered


class _Refused(Exception):
    pass


def _trigger(
    conv: _Converter, start: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(trigger, audience, enabled-allowed)."""
    ctx = conv.ctx
    audience: dict[str, Any] = {}

    def segment(seg_id: Any) -> None:
        name = ctx.segments.get(str(seg_id))
        if name is None:
            conv.note(
                "decision",
                f"segment {seg_id!r} was not migrated: the audience is everyone; "
                "add the segment or an audience condition",
            )
        else:
            audience["segments"] = [name]

    event_start = start.get("EventStartCondition")
    if event_start:
        if event_start.get("SegmentId"):
            segment(event_start["SegmentId"])
        trigger, ok = _event_trigger(conv, event_start.get("EventFilter") or {})
        return trigger, audience, ok
    segment_start = start.get("SegmentStartCondition")
    if segment_start:
        segment(segment_start.get("SegmentId"))
    else:
        conv.note("error", "no StartCondition: started like a segment journey")
    if ctx.segment_start_event:
        conv.note(
            "decision",
            f"a segment journey: Kizuna programs start on an event; it starts on "
            f"{ctx.segment_start_event!r} for customers in the segment",
        )
        return {"event": ctx.segment_start_event}, audience, True
    conv.note(
        "decision",
        "a segment journey: Kizuna programs start on an event, not when a segment is "
        f"evaluated; written disabled with the placeholder trigger {PLACEHOLDER_TRIGGER!r} "
        "and the segment as audience: choose the event (or send a one-off campaign) and enable",
    )
    return {"event": PLACEHOLDER_TRIGGER}, audience, False


def _event_trigger(conv: _Converter, flt: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    dims = flt.get("Dimensions") or {}
    types = dims.get("EventType") or {}
    values = [str(v) for v in types.get("Values") or []]
    if flt.get("FilterType") == "SYSTEM" or types.get("DimensionType") == "EXCLUSIVE" or not values:
        conv.note(
            "decision",
            f"start on {flt.get('FilterType')} events {values} "
            f"({types.get('DimensionType', 'INCLUSIVE')}) has no Kizuna trigger: written "
            f"disabled with the placeholder trigger {PLACEHOLDER_TRIGGER!r}",
        )
        return {"event": PLACEHOLDER_TRIGGER}, False
    mapped = [(v, event_type(v, conv.ctx.event_types)) for v in values]
    usable = [(v, k) for v, k in mapped if k is not None]
    for v, k in mapped:
        if k is None:
            conv.note("dropped", f"start event {v!r}: a Pinpoint standard event Kizuna lacks")
    if not usable:
        conv.note(
            "decision", f"written disabled with the placeholder trigger {PLACEHOLDER_TRIGGER!r}"
        )
        return {"event": PLACEHOLDER_TRIGGER}, False
    if len(usable) > 1:
        conv.note(
            "decision",
            f"started on any of {[v for v, _ in usable]}: a Kizuna program has one trigger; "
            f"it starts on {usable[0][1]!r} (copy the program for the others)",
        )
    pinpoint, kizuna = usable[0]
    trigger: dict[str, Any] = {"event": kizuna}
    if kizuna in names.BUILTIN_EVENTS.values():
        for group in ("Attributes", "Metrics"):
            for raw in dims.get(group) or {}:
                conv.note(
                    "decision",
                    f"trigger filter {group}.{raw} dropped: {kizuna} has no field for "
                    f"Pinpoint's {raw!r}",
                )
        return trigger, True
    if pinpoint not in conv.ctx.event_types:
        conv.note("info", f"custom event {pinpoint!r} is Kizuna's {kizuna!r} (declare it)")
    translation, fields = event_conditions(dims, "trigger filter", conv.ctx.conditions.attributes)
    for why in translation.decisions:
        conv.note("decision", f"{why}: the filter is dropped")
    for note in translation.notes:
        conv.note("info", note)
    if translation.condition:
        trigger["conditions"] = translation.condition
    conv.trigger_fields = fields
    return trigger, True


def _reentry(conv: _Converter, limits: Mapping[str, Any]) -> dict[str, Any]:
    cap = limits.get("EndpointReentryCap")
    interval = limits.get("EndpointReentryInterval")
    if cap in (None, 1):
        return {"mode": "once"}
    if cap not in (0, None):
        conv.note("dropped", f"EndpointReentryCap {cap}: Kizuna does not count entries")
    if interval:
        try:
            minutes, _ = parse_duration(str(interval))
        except ValueError as err:
            conv.note("error", f"EndpointReentryInterval: {err}; re-entry always allowed")
            return {"mode": "always"}
        days = max(1, math.ceil(minutes / 1440))
        if minutes % 1440:
            conv.note("info", f"EndpointReentryInterval {interval}: rounded up to {days} days")
        return {"mode": "every", "days": min(days, 3650)}
    return {"mode": "always"}


_REPORTED = {
    "QuietTime": "quiet time: Kizuna's quiet hours are project-wide (contact policy)",
    "LocalTime": "LocalTime: Kizuna waits and quiet hours use each customer's time zone",
    "WaitForQuietTime": "WaitForQuietTime: Kizuna defers a send in quiet hours",
    "RefreshFrequency": "RefreshFrequency: no segment refresh in Kizuna (programs start on events)",
    "RefreshOnSegmentUpdate": "RefreshOnSegmentUpdate: no segment refresh in Kizuna",
    "OpenHours": "OpenHours: not carried over (quiet hours are project-wide)",
    "ClosedDays": "ClosedDays: not carried over",
    "SendingSchedule": "SendingSchedule: not carried over",
    "TimezoneEstimationMethods": "TimezoneEstimationMethods: Kizuna uses the customer's time zone",
    "JourneyChannelSettings": "JourneyChannelSettings (Connect): not carried over",
}
_LIMITS = ("DailyCap", "TotalCap", "MessagesPerSecond", "TimeframeCap")


def _journey_body(response: Mapping[str, Any]) -> Mapping[str, Any]:
    body = response.get("JourneyResponse", response)
    if not isinstance(body, Mapping) or not isinstance(body.get("Activities", {}), Mapping):
        raise ValueError("not a GetJourney response: JourneyResponse.Activities is not an object")
    return body


def convert_journey(response: Mapping[str, Any], ctx: JourneyContext) -> JourneyResult:
    """One journey (a GetJourney response, wrapped or not) as a Kizuna program."""
    body = _journey_body(response)
    conv = _Converter(body, ctx)
    journey_id = str(body.get("Id") or "")
    pid = program_id(conv.name, journey_id, ctx.taken_ids)
    result = JourneyResult(journey_id, conv.name, pid, None)
    start = body.get("StartActivity")
    if not start or start not in conv.acts:
        conv.note("error", f"StartActivity {start!r} is not an activity: not converted")
        result.notes = conv.notes
        return result
    trigger, audience, can_enable = _trigger(conv, body.get("StartCondition") or {})
    try:
        conv.plan_all(start)
        steps = conv.steps(start)
    except _Refused as why:
        conv.note("error", f"not converted: {why}")
        result.notes, result.activities = conv.notes, conv.activities
        return result
    state = body.get("State")
    enabled = can_enable and state == "ACTIVE"
    if state != "ACTIVE":
        conv.note("info", f"state {state}: written disabled")
    limits = body.get("Limits") or {}
    for key, message in _REPORTED.items():
        if body.get(key) not in (None, False, {}, []):
            conv.note("dropped", message)
    for key in _LIMITS:
        if limits.get(key):
            conv.note(
                "dropped", f"Limits.{key} {limits[key]}: Kizuna's frequency caps are project-wide"
            )
    schedule = body.get("Schedule") or {}
    if schedule.get("StartTime") or schedule.get("EndTime"):
        conv.note(
            "decision",
            f"schedule from {schedule.get('StartTime') or 'creation'} to "
            f"{schedule.get('EndTime') or 'no end'} ({schedule.get('Timezone', 'UTC')}): a "
            "Kizuna program runs while enabled; enable it at the start, disable it at the end",
        )
    program: dict[str, Any] = {
        "id": pid,
        "name": conv.name[:120],
        "description": f"Migrated from Pinpoint journey {journey_id or conv.name}.",
        "enabled": enabled,
        "trigger": trigger,
    }
    if audience:
        program["audience"] = audience
    program["reentry"] = _reentry(conv, limits)
    if conv.holdout_percent:
        program["holdout_percent"] = conv.holdout_percent
    program["steps"] = steps
    used = {s.get("template") for s in steps if s["type"] == "send"}
    result.templates = [r for t, rs in conv.templates.items() if t in used for r in rs]
    if not used:
        conv.note("error", "no send step left: not converted")
    elif len(steps) > MAX_STEPS:
        conv.note("error", f"{len(steps)} steps (Kizuna: {MAX_STEPS}): not converted")
    else:
        result.program = program
    result.notes, result.activities = conv.notes, conv.activities
    result.trigger_fields = conv.trigger_fields
    return result


# --- files -----------------------------------------------------------------------------------
def program_yaml(program: Mapping[str, Any]) -> str:
    header = f"# {program['description']}\n" if program.get("description") else ""
    return header + yaml.safe_dump(dict(program), sort_keys=False, allow_unicode=True)


def write_program(out: FilePath, result: JourneyResult) -> FilePath | None:
    """``out/programs/<id>.yaml`` and the program's templates under ``out/templates``."""
    from kizuna_tools.migrate.templates import write_templates

    if result.program is None:
        return None
    path = out / "programs" / f"{result.program_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(program_yaml(result.program), encoding="utf-8")
    write_templates(out, result.program_id, result.templates)
    return path
