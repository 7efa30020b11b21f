"""Pinpoint campaigns -> ``campaigns/*.yaml``; event-triggered campaigns -> ``programs/*.yaml``.

==============================  ===========================================================
Pinpoint                        Kizuna
==============================  ===========================================================
SegmentId                       ``audience.segments: [<segment>]`` (an IMPORT segment: an
                                empty ``customer_list`` CSV to fill, the campaign a draft)
Schedule ONCE                   ``once`` at StartTime; with IsLocalTime ``local_time`` (the
                                date and time in each customer's zone)
Schedule HOURLY ... MONTHLY     ``recurring`` with a cron in the campaign's UTC offset
                                (``Etc/GMT-9`` for ``UTC+09``), start and end
Schedule EVENT                  a **program** triggered by the custom event (declared in
                                ``custom.events``), the filter's Attributes and Metrics as
                                trigger conditions on its fields
TemplateConfiguration /         one template with a part per channel, copied into the
MessageConfiguration            campaign's folder; channels in the order email, sms, push
Treatments (A/B)                ``variants`` (weights out of what is not held out);
                                in a program, a ``split`` step
HoldoutPercent                  ``holdout_percent``
Limits.MessagesPerSecond        ``rate_limit_per_minute``
Limits.Daily / Total (EVENT)    the program's ``reentry``
QuietTime                       the contact policy's quiet hours (kizuna-config.json)
State, IsPaused                 ``status`` (a campaign with a decision to make stays a draft)
==============================  ===========================================================

Pinpoint sent a multi-channel campaign on every channel of every endpoint; Kizuna sends one
message per customer, on the first reachable channel of ``channels``: the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from kizuna.campaigns.model import (
    LocalTimeSchedule,
    OnceSchedule,
    RecurringSchedule,
    Schedule,
    has_passed,
)
from kizuna.runtime.config import CustomEvent, CustomEventField, ValueType
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.library import Library, Translated, message_kinds
from kizuna_tools.migrate.names import BUILTIN_EVENTS, event_type, kebab, object_id, snake, unique
from kizuna_tools.migrate.report import Item, Report, Status
from kizuna_tools.migrate.segments import (
    Inexpressible,
    SegmentsResult,
    dump_yaml,
    event_conditions,
)

RECURRING = {"HOURLY", "DAILY", "WEEKLY", "MONTHLY"}
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
STATUS = {
    "SCHEDULED": "scheduled",
    "EXECUTING": "scheduled",
    "PENDING_NEXT_RUN": "scheduled",
    "PAUSED": "paused",
    "COMPLETED": "done",
    "DELETED": "cancelled",
    "INVALID": "draft",
}
SMS_TYPES = {"TRANSACTIONAL": "transactional", "PROMOTIONAL": "promotional"}


# -- the shared parts: ids, the contact policy, the declared events ---------------------------
@dataclass
class Ids:
    """Campaign and program ids share one namespace (a campaign may not take a program's id)."""

    taken: set[str] = field(default_factory=set)

    def new(self, name: str, fallback: str) -> str:
        return object_id(name, fallback=fallback, taken=self.taken)


@dataclass
class Quiet:
    start: str
    end: str
    source: str


@dataclass
class ContactPlan:
    """Quiet hours and limits met in campaigns and journeys, for the contact policy."""

    quiet: list[Quiet] = field(default_factory=list)
    limits: list[tuple[str, str, int]] = field(default_factory=list)  # (source, limit, value)
    no_quiet: list[str] = field(default_factory=list)

    def add_quiet(self, quiet: Mapping[str, Any] | None, source: str) -> str | None:
        """Note a quiet time; one that is not ``HH:MM`` (``9pm``, ``25:00``) is left out and
        the problem returned (a decision for its owner)."""
        if quiet and quiet.get("Start") and quiet.get("End"):
            problem = quiet_problem(quiet["Start"], quiet["End"])
            if problem is not None:
                return problem
            self.quiet.append(Quiet(str(quiet["Start"]), str(quiet["End"]), source))
        else:
            self.no_quiet.append(source)
        return None

    def add_limit(self, source: str, limit: str, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            self.limits.append((source, limit, value))


HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")  # the contact policy's quiet_start


def quiet_problem(start: Any, end: Any) -> str | None:
    """Why a Pinpoint QuietTime cannot be Kizuna's quiet hours (None: it can)."""
    if all(isinstance(t, str) and HHMM.fullmatch(t) for t in (start, end)):
        return None
    return (
        f"QuietTime {start!r}-{end!r} is not HH:MM (00:00-23:59): not used for the contact "
        "policy's quiet hours; decide them (kizuna-config.json contact)"
    )


def quiet_union(windows: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The one window covering every quiet window (minutes on a 24-hour circle), or None
    when they do not make one contiguous window."""
    quiet = [False] * 1440
    for first, last in windows:
        a, b = _minutes(first), _minutes(last)
        m = a
        while m != b:
            quiet[m] = True
            m = (m + 1) % 1440
    if all(quiet):
        return None
    starts = [m for m in range(1440) if quiet[m] and not quiet[m - 1]]
    if len(starts) != 1:
        return None
    start = starts[0]
    end = start
    while quiet[end % 1440]:
        end += 1
    return _hhmm(start), _hhmm(end % 1440)


def _minutes(hhmm: str) -> int:
    hh, mm = hhmm.split(":")
    return (int(hh) * 60 + int(mm)) % 1440


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass
class Events:
    """Custom events declared for triggers (``custom.events``)."""

    declared: dict[str, CustomEvent] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # detail-type -> Pinpoint name

    def declare(
        self, pinpoint: str, fields: dict[str, ValueType], report: Report
    ) -> str | Inexpressible:
        detail_type = event_type(pinpoint)
        if detail_type in self.sources and self.sources[detail_type] != pinpoint:
            return Inexpressible(
                f"events {self.sources[detail_type]!r} and {pinpoint!r} both become {detail_type!r}"
            )
        old = self.declared.get(detail_type)
        merged = {f.name: f for f in (old.fields if old else ())}
        for name, kind in fields.items():
            if name in merged and merged[name].type != kind:
                return Inexpressible(
                    f"{detail_type}.{name} is a {merged[name].type.value} and a {kind.value}"
                )
            try:
                merged.setdefault(name, CustomEventField(name=name, type=kind))
            except ValidationError:
                return Inexpressible(f"{pinpoint}: Kizuna refuses a field named {name!r}")
        try:
            self.declared[detail_type] = CustomEvent(
                detail_type=detail_type,
                description=f"Pinpoint custom event {pinpoint}",
                fields=tuple(sorted(merged.values(), key=lambda f: f.name)),
            )
        except ValidationError as err:
            # a common field's name (customer_id, occurred_at...): refused, said so
            reason = "; ".join(str(e["msg"]) for e in err.errors())
            return Inexpressible(f"{pinpoint} cannot be declared as {detail_type}: {reason}")
        if detail_type not in self.sources:
            self.sources[detail_type] = pinpoint
            report.add(
                "event",
                pinpoint,
                Status.CHANGED if detail_type != pinpoint else Status.MIGRATED,
                became=[f"custom.events {detail_type}"],
                notes=[f"renamed {pinpoint} -> {detail_type}"] if detail_type != pinpoint else [],
                decisions=[
                    f"your app sends Pinpoint's {pinpoint!r} event: put {detail_type!r} on "
                    "Kizuna's bus instead (with the customer_id and the fields declared in "
                    "kizuna-config.json)"
                ],
            )
        return detail_type


def event_trigger(
    filter_: Mapping[str, Any],
    events: Events,
    report: Report,
    where: str,
    *,
    attributes: AttributeMap,
) -> tuple[list[tuple[str, dict[str, Any]]], list[str], list[str]]:
    """A CampaignEventFilter (or a journey's EventStartCondition filter) as Kizuna triggers:
    ([(detail-type, conditions on its fields)], decisions, notes); ``attributes``: the
    migration's, which name a field without Latin letters."""
    dims = filter_.get("Dimensions") or {}
    decisions: list[str] = []
    notes: list[str] = []
    event_dim = dims.get("EventType") or {}
    names = [str(v) for v in event_dim.get("Values", [])]
    if event_dim.get("DimensionType") == "EXCLUSIVE":
        return [], [f"{where}: EventType EXCLUSIVE (every event but {names}) cannot trigger"], notes
    if not names:
        return [], [f"{where}: no event type"], notes
    translation, fields = event_conditions(dims, where, attributes)
    conditions = translation.condition
    decisions += translation.decisions
    notes += translation.notes
    triggers: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        if name.startswith("_"):
            builtin = BUILTIN_EVENTS.get(name)
            if builtin is None:
                decisions.append(
                    f"{where}: {name} is a Pinpoint system event (message or session "
                    "activity): Kizuna has no trigger for it"
                )
                continue
            if conditions:
                decisions.append(
                    f"{where}: {name} -> {builtin}: its attribute and metric filters do "
                    f"not apply to {builtin}'s fields"
                )
                continue
            notes.append(f"{name} -> the built-in {builtin}")
            triggers.append((builtin, {}))
            continue
        declared = events.declare(name, fields, report)
        if isinstance(declared, Inexpressible):
            decisions.append(f"{where}: {declared}")
            continue
        triggers.append((declared, dict(conditions)))
    return triggers, decisions, notes


# -- schedules --------------------------------------------------------------------------------
def utc_offset(raw: str | None) -> timezone | None:
    """Pinpoint's schedule time zone (``UTC``, ``UTC+09``, ``UTC-05:30``) as an offset."""
    text = (raw or "UTC").strip().upper()
    if text in ("UTC", "GMT", "Z"):
        return UTC
    if not text.startswith("UTC") or len(text) < 5 or text[3] not in "+-":
        return None
    sign = 1 if text[3] == "+" else -1
    hh, _, mm = text[4:].partition(":")
    if not hh.isdigit() or (mm and not mm.isdigit()) or int(hh) > 14 or int(mm or 0) >= 60:
        return None
    return timezone(sign * timedelta(hours=int(hh), minutes=int(mm or 0)))


def iana_zone(offset: timezone) -> str | None:
    """The IANA zone of a whole-hour offset (``+09:00`` -> ``Etc/GMT-9``: the sign is
    inverted, POSIX style), else None."""
    delta = offset.utcoffset(None)
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    if rest:
        return None
    if hours == 0:
        return "UTC"
    return f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


def parse_time(value: str, offset: timezone) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=offset)


def cron(frequency: str, local: datetime) -> str:
    m, h = local.minute, local.hour
    if frequency == "HOURLY":
        return f"cron({m} * * * ? *)"
    if frequency == "DAILY":
        return f"cron({m} {h} * * ? *)"
    if frequency == "WEEKLY":
        return f"cron({m} {h} ? * {DAYS[local.weekday()]} *)"
    return f"cron({m} {h} {local.day} * ? *)"


@dataclass
class ScheduleOutcome:
    schedule: dict[str, Any] | None
    past: bool = False
    decisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def schedule_of(raw: Mapping[str, Any], now: datetime, state: str, updated: str) -> ScheduleOutcome:
    frequency = str(raw.get("Frequency", "ONCE"))
    offset = utc_offset(raw.get("Timezone"))
    out = ScheduleOutcome(None)
    if offset is None:
        out.decisions.append(f"Timezone {raw.get('Timezone')!r} is not a UTC offset")
        return out
    start_raw = str(raw.get("StartTime", ""))
    if start_raw.upper() == "IMMEDIATE":
        at = _instant_or(updated, now)
        out.schedule = {"type": "once", "at": at.isoformat()}
        out.past = True
        if state == "COMPLETED":
            out.notes.append(
                f"started IMMEDIATE and completed: written as done, at {at.isoformat()}"
            )
        else:
            out.decisions.append("started IMMEDIATE in Pinpoint: choose when it runs in Kizuna")
        return out
    try:
        start = parse_time(start_raw, offset)
        end = parse_time(str(raw["EndTime"]), offset) if raw.get("EndTime") else None
    except ValueError:
        out.decisions.append(f"StartTime {start_raw!r} is not an ISO 8601 time")
        return out
    for member, when in (("StartTime", start), ("EndTime", end)):
        try:  # 9999-12-31T23:00Z in UTC+09 is past the calendar's end
            if when is not None:
                _ = (when.astimezone(UTC), when.astimezone(offset))
        except OverflowError:
            out.decisions.append(
                f"{member} {raw.get(member)!r} is past the calendar's end in "
                f"{raw.get('Timezone') or 'UTC'}"
            )
            return out
    local = start.astimezone(offset)
    if frequency == "ONCE":
        if raw.get("IsLocalTime"):
            out.schedule = {
                "type": "local_time",
                "date": local.date().isoformat(),
                "time": local.strftime("%H:%M"),
            }
            out.notes.append(f"{local.strftime('%Y-%m-%d %H:%M')} in each customer's own time zone")
        else:
            out.schedule = {"type": "once", "at": start.isoformat()}
        out.past = _passed(out.schedule, now)
        return out
    if frequency in RECURRING:
        zone = iana_zone(offset)
        base = local
        if zone is None:
            base, zone = start.astimezone(UTC), "UTC"
            out.notes.append(f"{raw.get('Timezone')} is not a whole hour: the cron is in UTC")
        elif zone.startswith("Etc/"):
            out.notes.append(f"{raw.get('Timezone')} is the IANA zone {zone} (POSIX sign)")
        out.schedule = {
            "type": "recurring",
            "cron": cron(frequency, base),
            "time_zone": zone,
            "start": start.isoformat(),
            **({"end": end.isoformat()} if end else {}),
        }
        if frequency == "MONTHLY" and base.day > 28:
            out.notes.append(f"monthly on day {base.day}: months without it are skipped")
        if raw.get("IsLocalTime"):
            out.decisions.append(
                "IsLocalTime: Pinpoint sent each endpoint at its own local time; a Kizuna "
                f"recurring campaign runs at one time in {zone} for everyone"
            )
        out.past = _passed(out.schedule, now)
        return out
    out.decisions.append(f"Frequency {frequency}: not a Kizuna schedule")
    return out


_SCHEDULE: TypeAdapter[OnceSchedule | LocalTimeSchedule | RecurringSchedule] = TypeAdapter(Schedule)


def _passed(schedule: Mapping[str, Any], now: datetime) -> bool:
    """Whether a written schedule's time (a recurring one's end) has passed, as ``apply``
    decides it (:func:`kizuna.campaigns.model.has_passed`: a local-time send from where it
    comes first, UTC+14), so that a campaign written ``scheduled`` is not then refused. A
    schedule the model refuses is not passed: ``apply`` reports it with its reason."""
    try:
        return has_passed(_SCHEDULE.validate_python(schedule), now)
    except ValidationError:
        return False


def _instant_or(value: str, default: datetime) -> datetime:
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return default
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# -- messages ---------------------------------------------------------------------------------
@dataclass
class Message:
    """What one treatment sends: its channels and the translated parts."""

    channels: list[str]
    parts: list[Translated]
    template: str | None
    sms_type: str | None = None
    decisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sendable(
    holder: Mapping[str, Any], library: Library, fallback_name: str, item: Item
) -> Message | None:
    """:func:`message_of`, its notes and decisions on ``item``; None (the item not migrated)
    when it has nothing Kizuna can send."""
    message = message_of(holder, library, fallback_name)
    item.record(message.notes, message.decisions)
    if not message.channels or not message.parts or message.template is None:
        item.status = Status.NOT_MIGRATED
        item.note("no message Kizuna can send (email, SMS or push)")
        return None
    return message


def message_of(holder: Mapping[str, Any], library: Library, fallback_name: str) -> Message:
    """A campaign's (or treatment's) templates or inline messages as Kizuna parts."""
    msg = holder.get("MessageConfiguration") or {}
    tmpl = holder.get("TemplateConfiguration") or {}
    kinds = message_kinds(msg, tmpl)
    out = Message(kinds, [], None)
    for other, what in (
        ("VoiceTemplate", "voice"),
        ("InAppTemplate", "in-app"),
    ):
        if (tmpl.get(other) or {}).get("Name"):
            out.notes.append(f"its {what} template is not carried over (not a Kizuna channel)")
    for other, what in (
        ("ADMMessage", "Amazon Device Messaging"),
        ("BaiduMessage", "Baidu"),
        ("CustomMessage", "custom channel"),
        ("InAppMessage", "in-app"),
    ):
        if msg.get(other):
            out.notes.append(f"its {what} message is not carried over (not a Kizuna channel)")
    sms = msg.get("SMSMessage") or {}
    if sms.get("MessageType") in SMS_TYPES:
        out.sms_type = SMS_TYPES[sms["MessageType"]]
    for key in ("SenderId", "OriginationNumber", "EntityId", "TemplateId"):
        if sms.get(key):
            out.notes.append(f"SMSMessage.{key} is set on the delivery side in Kizuna, not here")
    if (msg.get("EmailMessage") or {}).get("FromAddress"):
        out.notes.append("EmailMessage.FromAddress: Kizuna sends from the deployment's sender")
    names = {"email": "EmailTemplate", "sms": "SMSTemplate", "push": "PushTemplate"}
    for kind in kinds:
        ref = tmpl.get(names[kind]) or {}
        if ref.get("Name"):
            group = library.group(kind, str(ref["Name"]))
            if not group:
                out.decisions.append(f"{kind} template {ref['Name']!r} is not in templates/{kind}/")
                continue
            if ref.get("Version"):
                out.notes.append(
                    f"{kind} template {ref['Name']} version {ref['Version']}: the exported "
                    "version was used"
                )
            out.parts += group
            out.template = out.template or group[0].template
            for member in group:
                if library.pending(kind, member.pinpoint):
                    out.decisions.append(
                        f"its {kind} template {member.pinpoint!r} has decisions to make (see "
                        "the template in this report)"
                    )
        else:
            translated = library.inline(kind, f"{fallback_name}", msg)
            if translated is None:
                continue
            out.notes.append(f"its inline {kind} message became a template ({translated.locale})")
            out.parts.append(translated)
            for note in getattr(translated.result, "todos", []):
                out.decisions.append(f"TODO left in the {kind} message: {note}")
            for note in getattr(translated.result, "notes", []):
                if getattr(note, "level", "") in ("decision", "error"):
                    out.decisions.append(f"{kind} message: {note.message}")
    if out.template is None and out.parts:
        out.template = out.parts[0].template
    if len(kinds) > 1:
        out.notes.append(
            f"channels {', '.join(kinds)}: Pinpoint sent on each channel of each endpoint; "
            "Kizuna sends one message per customer, on the first reachable of these"
        )
    return out


# -- campaigns --------------------------------------------------------------------------------
@dataclass
class CampaignsResult:
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> YAML document
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> YAML document
    lists: dict[str, str] = field(default_factory=dict)  # campaigns/<file> -> CSV text


@dataclass
class CampaignContext:
    segments: SegmentsResult
    library: Library
    events: Events
    contact: ContactPlan
    ids: Ids
    report: Report
    now: datetime
    # the migration's attributes: they name an event filter's fields without Latin letters
    attributes: AttributeMap = field(default_factory=AttributeMap)


def migrate_campaigns(items: list[Mapping[str, Any]], ctx: CampaignContext) -> CampaignsResult:
    result = CampaignsResult()
    for raw in items:
        label = str(raw.get("Name") or raw.get("Id"))
        item = ctx.report.add("campaign", label, pinpoint_id=str(raw.get("Id")))
        schedule = raw.get("Schedule") or {}
        frequency = str(schedule.get("Frequency", "ONCE"))
        if frequency == "IN_APP_EVENT" or (raw.get("MessageConfiguration") or {}).get(
            "InAppMessage"
        ):
            item.status = Status.NOT_MIGRATED
            item.note("an in-app campaign: Kizuna has no in-app channel")
            continue
        if raw.get("CustomDeliveryConfiguration"):
            item.status = Status.NOT_MIGRATED
            item.note("delivered through a custom channel (a Lambda function or a URL)")
            continue
        problem = ctx.contact.add_quiet(schedule.get("QuietTime"), f"campaign {label}")
        if problem is not None:
            item.decide(problem)
        limits = raw.get("Limits") or {}
        for key in ("Daily", "Total", "Session"):
            ctx.contact.add_limit(f"campaign {label}", key, limits.get(key))
        try:
            if frequency == "EVENT":
                _event_campaign(raw, label, item, ctx, result)
            else:
                _scheduled_campaign(raw, label, item, ctx, result)
        except (ValueError, OverflowError) as exc:  # one campaign's data, not the migration
            _drop(item, result, f"could not be converted: {exc}")
    return result


def _drop(item: Item, result: CampaignsResult, why: str) -> None:
    """The campaign is not migrated (whatever of it was written so far is taken back)."""
    for became in item.became:
        folder, _, file = became.partition("/")
        docs = {"campaigns": result.campaigns, "programs": result.programs}.get(folder, {})
        docs.pop(file.removesuffix(".yaml"), None)
        result.lists.pop(file, None)
    item.became = []
    item.status = Status.NOT_MIGRATED
    item.decide(why)


def _audience(
    raw: Mapping[str, Any], cid: str, item: Item, ctx: CampaignContext, result: CampaignsResult
) -> dict[str, Any] | None:
    seg_id = str(raw.get("SegmentId", ""))
    outcome = ctx.segments.by_id.get(seg_id)
    if outcome is None:
        item.decide(f"its segment {seg_id} is not in segments.json")
        return None
    if outcome.imported:
        file = f"{cid}-customers.csv"
        result.lists[file] = "customer_id\n"
        item.decide(
            f"its segment {outcome.pinpoint_name!r} was an IMPORT list: fill campaigns/{file} "
            "with the customer ids (it is empty)"
        )
        return {"customer_list": file}
    if not outcome.written:
        item.decide(f"its segment {outcome.pinpoint_name!r} could not be migrated")
        return None
    if not outcome.complete:
        item.decide(f"its segment {outcome.name!r} is INCOMPLETE: decide it first")
    if raw.get("SegmentVersion") not in (None, outcome.version):
        item.note(
            f"it used version {raw['SegmentVersion']} of its segment; the exported version "
            f"{outcome.version} was migrated"
        )
    return {"segments": [outcome.name]}


def _variants(
    raw: Mapping[str, Any],
    default_template: str | None,
    item: Item,
    ctx: CampaignContext,
    owner: str,
    channels: list[str],
) -> tuple[list[dict[str, Any]], list[tuple[str, list[Translated]]]]:
    """(variants, [(template, parts)]) from the default and additional treatments."""
    extra = raw.get("AdditionalTreatments") or []
    if not extra:
        return [], []
    holdout = int(raw.get("HoldoutPercent") or 0)
    sizes = [100 - holdout - sum(int(t.get("SizePercent") or 0) for t in extra)]
    sizes += [int(t.get("SizePercent") or 0) for t in extra]
    if any(s <= 0 for s in sizes):
        item.decide(f"treatment sizes {sizes} with holdout {holdout}% do not add up")
        return [], []
    weights = _weights(sizes)
    names: set[str] = set()
    variants = [
        {
            "name": unique(
                kebab(str(raw.get("TreatmentName") or "a"), fallback="a", max_length=20),
                names,
                20,
                "-",
            ),
            "weight": weights[0],
        }
    ]
    templates: list[tuple[str, list[Translated]]] = []
    taken_templates = {default_template} if default_template else set()
    for i, treatment in enumerate(extra, start=1):
        name = unique(
            kebab(
                str(treatment.get("TreatmentName") or chr(ord("a") + i)),
                fallback="v",
                max_length=20,
            ),
            names,
            20,
            "-",
        )
        message = message_of(treatment, ctx.library, f"{owner}-{name}")
        for d in message.decisions:
            item.decide(f"treatment {name}: {d}")
        variant: dict[str, Any] = {"name": name, "weight": weights[i]}
        if message.template and message.parts:
            template = message.template
            if template in taken_templates and message.template != default_template:
                template = unique(template, set(taken_templates), 40, "_")
            taken_templates.add(template)
            variant["template"] = template
            templates.append((template, message.parts))
            if sorted(message.channels) != sorted(channels):
                item.note(
                    f"treatment {name} sends on {message.channels}; the campaign's channels "
                    f"{channels} are used"
                )
        if treatment.get("Schedule"):
            item.note(
                f"treatment {name} has its own schedule in Pinpoint; Kizuna sends all "
                "variants together"
            )
        variants.append(variant)
    item.note(
        "treatments -> variants "
        + ", ".join(f"{v['name']} {v['weight']}%" for v in variants)
        + f" of the {100 - holdout}% not held out"
    )
    return variants, templates


def _weights(sizes: list[int]) -> list[int]:
    """Integer weights adding up to 100, in proportion to ``sizes`` (largest remainder)."""
    total = sum(sizes)
    exact = [s * 100 / total for s in sizes]
    weights = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - weights[i], reverse=True)
    for i in order[: 100 - sum(weights)]:
        weights[i] += 1
    return [max(1, w) for w in weights]


def _status(raw: Mapping[str, Any], past: bool, decided: bool) -> tuple[str, str | None]:
    state = str((raw.get("State") or {}).get("CampaignStatus") or "SCHEDULED")
    status = "paused" if raw.get("IsPaused") else STATUS.get(state, "draft")
    why = None
    if status == "scheduled" and past:
        status, why = "draft", "its time has passed"
    if decided and status in ("scheduled", "paused"):
        status, why = "draft", "held as a draft until the decisions below are made"
    return status, why


def _scheduled_campaign(
    raw: Mapping[str, Any], label: str, item: Item, ctx: CampaignContext, result: CampaignsResult
) -> None:
    cid = ctx.ids.new(label, "campaign")
    state = str((raw.get("State") or {}).get("CampaignStatus") or "")
    sched = schedule_of(
        raw.get("Schedule") or {}, ctx.now, state, str(raw.get("LastModifiedDate", ""))
    )
    item.record(sched.notes, sched.decisions)
    if sched.schedule is None:
        item.status = Status.NOT_MIGRATED
        return
    audience = _audience(raw, cid, item, ctx, result)
    if audience is None:
        item.status = Status.NOT_MIGRATED
        return
    message = _sendable(raw, ctx.library, cid, item)
    if message is None:
        return
    holdout = int(raw.get("HoldoutPercent") or 0)
    if holdout > 50:
        item.decide(f"HoldoutPercent {holdout}: Kizuna holds out at most 50%")
        holdout = 50
    variants, variant_templates = _variants(raw, message.template, item, ctx, cid, message.channels)
    status, why = _status(raw, sched.past, bool(item.decisions))
    if why:
        item.note(f"status {status}: {why}")
    doc: dict[str, Any] = {
        "id": cid,
        "name": label[:120],
        "description": _description(raw),
        "status": status,
        "audience": audience,
        "schedule": sched.schedule,
        "channels": message.channels,
        "template": message.template,
    }
    if message.sms_type:
        doc["sms_type"] = message.sms_type
    if variants:
        doc["variants"] = variants
    if holdout:
        doc["holdout_percent"] = holdout
    mps = (raw.get("Limits") or {}).get("MessagesPerSecond")
    if isinstance(mps, int) and mps > 0:
        doc["rate_limit_per_minute"] = min(mps * 60, 1_000_000)
        item.note(
            f"MessagesPerSecond {mps} -> rate_limit_per_minute {doc['rate_limit_per_minute']}"
        )
    _limit_notes(raw, item, event=False)
    _use_templates(ctx.library, cid, message, variant_templates, item)
    result.campaigns[cid] = doc
    item.became.append(f"campaigns/{cid}.yaml")
    if "customer_list" in audience:
        item.became.append(f"campaigns/{audience['customer_list']}")


def _use_templates(
    library: Library,
    owner: str,
    message: Message,
    variants: list[tuple[str, list[Translated]]],
    item: Item,
) -> None:
    """Give ``owner`` (a campaign or program id) its message's templates and its variants';
    what they need decided is the item's."""
    assert message.template is not None  # a message _sendable returned
    for template, parts in [(message.template, message.parts), *variants]:
        for problem in library.use(owner, template, parts, item.source):
            item.decide(problem)


def _limit_notes(raw: Mapping[str, Any], item: Item, *, event: bool) -> None:
    limits = raw.get("Limits") or {}
    for key, text in (
        ("Daily", "messages a day to one endpoint"),
        ("Total", "messages in all to one endpoint"),
        ("Session", "messages a session"),
        ("MaximumDuration", "seconds to deliver"),
    ):
        value = limits.get(key)
        if not value or (event and key in ("Daily", "Total")):
            continue
        item.note(
            f"Limits.{key} {value} ({text}): no per-campaign equivalent; the contact "
            "policy caps every customer across programs and campaigns"
        )


def _description(raw: Mapping[str, Any]) -> str:
    text = str(raw.get("Description") or "").strip()
    if text and text[-1] not in ".!?。":
        text += "."
    source = f"From Pinpoint campaign {raw.get('Name')!r} ({raw.get('Id')})."
    return f"{text} {source}".strip()


def _event_campaign(
    raw: Mapping[str, Any], label: str, item: Item, ctx: CampaignContext, result: CampaignsResult
) -> None:
    schedule = raw.get("Schedule") or {}
    triggers, decisions, notes = event_trigger(
        schedule.get("EventFilter") or {}, ctx.events, ctx.report, label, attributes=ctx.attributes
    )
    item.record(notes, decisions)
    if not triggers:
        item.status = Status.NOT_MIGRATED
        return
    base_id = ctx.ids.new(label, "program")
    audience = _audience(raw, base_id, item, ctx, result)
    if audience is None or "customer_list" in audience:
        result.lists.pop(f"{base_id}-customers.csv", None)
        if audience is not None:
            item.decide("a program's audience cannot be a customer list: describe it as conditions")
        item.status = Status.NOT_MIGRATED
        return
    message = _sendable(raw, ctx.library, base_id, item)
    if message is None:
        return
    holdout = min(int(raw.get("HoldoutPercent") or 0), 50)
    limits = raw.get("Limits") or {}
    reentry = _reentry(limits, item)
    variants, variant_templates = _variants(
        raw, message.template, item, ctx, base_id, message.channels
    )
    start, end = schedule.get("StartTime"), schedule.get("EndTime")
    enabled = (
        STATUS.get(str((raw.get("State") or {}).get("CampaignStatus")), "draft") == "scheduled"
    )
    enabled = enabled and not raw.get("IsPaused")
    offset = utc_offset(schedule.get("Timezone")) or UTC
    if start and str(start).upper() != "IMMEDIATE":
        try:
            if parse_time(str(start), offset) > ctx.now:
                item.decide(f"Pinpoint starts it at {start}; a Kizuna program starts when enabled")
        except ValueError:
            item.decide(f"StartTime {start!r} is not an ISO 8601 time")
    if item.decisions and enabled:
        enabled = False
        item.note("written disabled until the decisions below are made")
    if end:  # a reminder for later, not a reason to hold it now
        try:
            if parse_time(str(end), offset) < ctx.now:
                enabled = False
                item.note(f"its EndTime {end} has passed: written disabled")
            else:
                item.decide(
                    f"Pinpoint stops it at {end}; a Kizuna program runs until disabled: "
                    "disable it then"
                )
        except ValueError:
            item.decide(f"EndTime {end!r} is not an ISO 8601 time")
    _limit_notes(raw, item, event=True)
    for i, (detail_type, conditions) in enumerate(triggers):
        pid = base_id if i == 0 else ctx.ids.new(f"{label} {detail_type}", "program")
        steps = _steps(message, variants)
        doc: dict[str, Any] = {
            "id": pid,
            "name": label[:120],
            "description": _description(raw) + " An event-triggered campaign.",
            "enabled": enabled,
            "trigger": {"event": detail_type, **({"conditions": conditions} if conditions else {})},
            "audience": audience,
            "reentry": reentry,
        }
        if holdout:
            doc["holdout_percent"] = holdout
        doc["steps"] = steps
        _use_templates(ctx.library, pid, message, variant_templates, item)
        result.programs[pid] = doc
        item.became.append(f"programs/{pid}.yaml")
    item.note("an event-triggered campaign: a program with a trigger")


def _reentry(limits: Mapping[str, Any], item: Item) -> dict[str, Any]:
    daily, total = limits.get("Daily") or 0, limits.get("Total") or 0
    if total == 1:
        item.note("Limits.Total 1 -> reentry once")
        return {"mode": "once"}
    if daily:
        days = 1
        item.note(
            f"Limits.Daily {daily} -> reentry every {days} day (one message a day per customer)"
        )
        if daily > 1:
            item.decide(
                f"Limits.Daily {daily}: a Kizuna program enters a customer at most once a day here"
            )
        if total:
            item.decide(f"Limits.Total {total}: Kizuna has no lifetime cap per program")
        return {"mode": "every", "days": days}
    if total:
        item.decide(f"Limits.Total {total}: Kizuna has no lifetime cap per program")
    return {"mode": "always"}


def _steps(message: Message, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def send(step_id: str, template: str) -> dict[str, Any]:
        step: dict[str, Any] = {
            "id": step_id,
            "type": "send",
            "channels": message.channels,
            "template": template,
        }
        if message.sms_type:
            step["sms_type"] = message.sms_type
        step["next"] = "done"
        return step

    assert message.template is not None
    if not variants:
        return [send("send", message.template), {"id": "done", "type": "exit"}]
    arms, sends = [], []
    for v in variants:
        step_id = f"send_{snake(v['name'], fallback='v')}"[:40]
        arms.append({"name": v["name"], "weight": v["weight"], "next": step_id})
        sends.append(send(step_id, v.get("template", message.template)))
    return [
        {"id": "treatments", "type": "split", "arms": arms},
        *sends,
        {"id": "done", "type": "exit"},
    ]


def write_campaigns(out: Path, result: CampaignsResult) -> list[Path]:
    written = []
    for folder, docs in (("campaigns", result.campaigns), ("programs", result.programs)):
        for cid, doc in docs.items():
            path = out / folder / f"{cid}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_yaml(doc), encoding="utf-8")
            written.append(path)
    for file, text in result.lists.items():
        path = out / "campaigns" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = [
    "CampaignContext",
    "CampaignsResult",
    "ContactPlan",
    "Events",
    "Ids",
    "event_trigger",
    "migrate_campaigns",
    "quiet_problem",
    "quiet_union",
    "schedule_of",
    "write_campaigns",
]
