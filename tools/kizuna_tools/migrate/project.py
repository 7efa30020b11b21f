"""``kizuna migrate pinpoint DIR --out OUT``: read a Pinpoint project, write a Kizuna one.

The order matters: the endpoints first (they decide which custom attributes exist and of
which type), then the templates (translated once), the segments (conditions on those
attributes), the campaigns and the journeys (which name segments, templates and events),
and last the configuration that declares everything they named, against which every
segment condition is checked. Nothing is written until everything is read; OUT must be
empty unless ``force`` (then only the files a migration writes are replaced).

OUT::

    kizuna-config.json   KizunaConfig: custom.attributes, custom.events, custom.tracked,
                         contact (quiet hours and caps), the rest from the base config
    customers.jsonl      for `kizuna import customers` (attributes, consent, push devices)
    segments/*.yaml      templates/<owner>/<template>/<locale>/<part>.j2
    campaigns/*.yaml     programs/*.yaml
    MIGRATION-REPORT.md  MIGRATION-REPORT.json
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kizuna.events.custom import vocabulary
from kizuna.programs.view import SEGMENTS_FIELD
from kizuna.runtime.config import (
    ContactPolicyConfig,
    CustomConfig,
    KizunaConfig,
    TrackedEvent,
    ValueType,
)
from kizuna_tools.migrate import inputs
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.campaigns import (
    CampaignContext,
    CampaignsResult,
    ContactPlan,
    Events,
    Ids,
    migrate_campaigns,
    quiet_problem,
    quiet_union,
    write_campaigns,
)
from kizuna_tools.migrate.endpoints import CustomersResult, migrate_endpoints
from kizuna_tools.migrate.journeys import JourneyContext, convert_journey
from kizuna_tools.migrate.library import Library, Translated
from kizuna_tools.migrate.names import snake
from kizuna_tools.migrate.report import Item, Report, Status
from kizuna_tools.migrate.segments import (
    ACTIVITY_EVENT,
    Conditions,
    SegmentsResult,
    check_segments,
    translate_segments,
    write_segments,
)
from kizuna_tools.migrate.templates import translate_template
from kizuna_tools.migrate.validation import refusals

OUTPUTS = (
    "kizuna-config.json",
    "customers.jsonl",
    "segments",
    "templates",
    "campaigns",
    "programs",
    "MIGRATION-REPORT.md",
    "MIGRATION-REPORT.json",
)


class MigrationError(ValueError):
    """The migration cannot start (the folders); the message says what to do."""


@dataclass
class Migration:
    """Everything read and translated, before it is written."""

    source: Path
    now: datetime
    base: KizunaConfig
    report: Report = field(default_factory=Report)
    customers: CustomersResult | None = None
    library: Library | None = None
    segments: SegmentsResult = field(default_factory=SegmentsResult)
    campaigns: CampaignsResult = field(default_factory=CampaignsResult)
    events: Events = field(default_factory=Events)
    contact: ContactPlan = field(default_factory=ContactPlan)
    ids: Ids = field(default_factory=Ids)
    conditions: Conditions | None = None
    settings: Mapping[str, Any] | None = None
    config: KizunaConfig | None = None

    @property
    def attributes(self) -> AttributeMap:
        assert self.customers is not None
        return self.customers.attributes

    def naming(self, raw: str) -> str:
        """The Kizuna name of a Pinpoint attribute (templates ask by name only:
        user attributes first, then endpoint attributes, then metrics)."""
        for source in ("UserAttributes", "Attributes", "Metrics", "Location"):
            target = self.attributes.get(source, raw)
            if target is not None:
                return target.name
        return snake(raw)


@dataclass
class MigrationResult:
    out: Path
    report: Report
    config: KizunaConfig
    files: list[Path]


def migrate_pinpoint(
    source: Path,
    out: Path,
    *,
    base: KizunaConfig | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> MigrationResult:
    """Migrate the Pinpoint project in ``source`` into a Kizuna project in ``out``."""
    if not source.is_dir():
        raise MigrationError(f"{source}: no such folder")
    _check_out(out, force)
    migration = read_project(source, base=base or KizunaConfig(), now=now or datetime.now(UTC))
    if force:
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    files = write_project(migration, out)
    assert migration.config is not None
    return MigrationResult(out, migration.report, migration.config, files)


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MigrationError(f"{out}: not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MigrationError(f"{out} is not empty: give --force to replace a migration's files")


def read_project(source: Path, *, base: KizunaConfig, now: datetime) -> Migration:
    m = Migration(source, now, base)
    documents = _documents(source, m.report)
    m.settings = _one(documents, "application-settings.json")
    endpoints_dir = source / "endpoints"
    m.customers = migrate_endpoints(endpoints_dir if endpoints_dir.is_dir() else None, m.report)
    if not endpoints_dir.is_dir():
        m.report.add("input", "endpoints/", Status.NOT_MIGRATED, notes=["no endpoint export"])
    m.library = _library(m, documents)
    m.conditions = Conditions(m.attributes)
    segments = _items(_one(documents, "segments.json"))
    m.segments = translate_segments(segments, m.conditions, m.report)
    _check_segments(m)  # before anything names them: a refused segment is named by nothing
    ctx = CampaignContext(
        m.segments, m.library, m.events, m.contact, m.ids, m.report, now, m.attributes
    )
    m.campaigns = migrate_campaigns(_items(_one(documents, "campaigns.json")), ctx)
    _journeys(m, documents)
    for item in m.library.unused():
        item.note("used by no campaign or journey: not written")
        item.status = Status.NOT_MIGRATED
    _declare_template_attributes(m)
    m.config = _config(m)
    _check_conditions(m)
    _check_validators(m)
    _hold_undecided(m)
    return m


# -- reading ----------------------------------------------------------------------------------
def _documents(source: Path, report: Report) -> dict[str, Any]:
    """rel path -> payload of every response file of the layout (the others reported)."""
    found: dict[str, Any] = {}
    for path in sorted(source.rglob("*.json")):
        rel = path.relative_to(source).as_posix()
        if rel.startswith("endpoints/"):
            continue
        if inputs.shape_of(rel) is None:
            report.add(
                "input",
                rel,
                Status.NOT_MIGRATED,
                notes=["not a file of the input layout: not read"],
            )
            continue
        payload, problems = inputs.load(path, rel)
        if problems:
            report.add(
                "input",
                rel,
                Status.NOT_MIGRATED,
                notes=["does not fit Pinpoint's model, not read: " + "; ".join(problems[:8])],
            )
            continue
        found[rel] = payload
    return found


def _one(documents: Mapping[str, Any], rel: str) -> Any:
    return documents.get(rel)


def _items(payload: Any) -> list[Mapping[str, Any]]:
    if isinstance(payload, Mapping):
        return [i for i in payload.get("Item", []) if isinstance(i, Mapping)]
    return []


def _library(m: Migration, documents: Mapping[str, Any]) -> Library:
    library = Library(translate_template, m.base.contact.default_locale, m.naming, m.report)
    for rel, payload in sorted(documents.items()):
        parts = rel.split("/")
        if parts[0] != "templates" or len(parts) != 3:
            continue
        kind = parts[1]
        name = str(payload.get("TemplateName") or Path(parts[2]).stem)
        library.add(kind, name, payload, rel)
    return library


_PATH_SOURCES = {
    "User.UserAttributes": "UserAttributes",
    "Attributes": "Attributes",
    "Metrics": "Metrics",
    "Location": "Location",
}


def _declare_template_attributes(m: Migration) -> None:
    """Declare the custom attributes templates read that no endpoint had (a template naming
    an undeclared attribute is refused by the template check)."""
    assert m.library is not None
    declared = {t.name for t in m.attributes.items()}
    for name, path in m.library.attribute_paths():
        if name in declared:
            continue
        where, _, raw = path.rpartition(".")
        source = _PATH_SOURCES.get(where)
        if source is None or not raw:
            continue
        target = m.attributes.ensure(source, raw)
        declared.add(target.name)
        spec = target.spec
        m.report.add(
            "attribute",
            target.label,
            Status.CHANGED,
            became=[f"custom.attributes.{target.name} ({spec.type.value if spec else '?'})"],
            notes=["no endpoint has it; a template reads it: declared so the template renders"],
        )


# -- journeys ---------------------------------------------------------------------------------
def _journeys(m: Migration, documents: Mapping[str, Any]) -> None:
    if not any(rel.startswith("journeys/") for rel in documents):
        return
    assert m.library is not None and m.conditions is not None
    journeys: list[tuple[str, Mapping[str, Any]]] = []
    for rel, payload in sorted(documents.items()):
        if not rel.startswith("journeys/"):
            continue
        if "Activities" in payload or "StartActivity" in payload:
            journeys.append((rel, payload))
        else:
            journeys += [(rel, j) for j in _items(payload)]
    templates = [t.result for t in m.library.by_name.values()]
    segments = {pid: o.name for pid, o in m.segments.by_id.items() if o.written and o.name}
    for rel, journey in journeys:
        ctx = JourneyContext(
            templates=templates,
            segments=segments,
            event_types={p: k for k, p in m.events.sources.items()},
            taken_ids=frozenset(m.ids.taken),
            conditions=m.conditions,
        )
        label = str(journey.get("Name") or journey.get("Id") or rel)
        item = m.report.add("journey", label, pinpoint_id=str(journey.get("Id") or ""))
        try:
            result = convert_journey(journey, ctx)
        except (ValueError, OverflowError) as exc:  # one journey, not the migration
            item.status = Status.NOT_MIGRATED
            item.note(f"{rel}: {exc}")
            continue
        for note in result.notes:
            item.tell(
                note.level, f"{note.subject}: {note.message}" if note.subject else note.message
            )
        for activity, became in sorted(result.activities.items()):
            item.note(f"activity {activity} -> {became}")
        if result.program is None:
            item.status = Status.NOT_MIGRATED
            continue
        program = dict(result.program)
        m.ids.taken.add(result.program_id)
        _declare_trigger(m, program, result.trigger_fields, item, journey)
        _hold_incomplete(m, program, item)
        groups: dict[str, list[Translated]] = {}
        for r in result.templates:
            groups.setdefault(r.template, []).append(Translated(r.kind, r.name, r))
            if m.library.pending(r.kind, r.name):
                item.decide(f"its {r.kind} template {r.name!r} has decisions to make (see it here)")
        for template, parts in groups.items():
            for problem in m.library.use(result.program_id, template, parts, label):
                item.decide(problem)
        m.campaigns.programs[result.program_id] = program
        item.became.append(f"programs/{result.program_id}.yaml")


def _declare_trigger(
    m: Migration,
    program: dict[str, Any],
    fields: dict[str, ValueType],
    item: Item,
    journey: Mapping[str, Any],
) -> None:
    """Declare the custom event a journey starts on (with the fields its filter names)."""
    event = str((program.get("trigger") or {}).get("event", ""))
    if vocabulary(m.base).inbound_model(event) is not None or _builtin(event):
        return
    start = (journey.get("StartCondition") or {}).get("EventStartCondition") or {}
    values = (
        ((start.get("EventFilter") or {}).get("Dimensions") or {})
        .get("EventType", {})
        .get("Values", [])
    )
    pinpoint = next((str(v) for v in values if not str(v).startswith("_")), event)
    declared = m.events.declare(pinpoint, fields, m.report)
    if isinstance(declared, str) and declared != event:
        item.decide(f"its trigger {event!r} differs from the declared {declared!r}")
    elif not isinstance(declared, str):
        item.decide(str(declared))


def _builtin(event: str) -> bool:
    from kizuna.events import DERIVED_EVENT_TYPES

    return event in DERIVED_EVENT_TYPES


def _hold_incomplete(m: Migration, program: dict[str, Any], item: Item) -> None:
    """A program naming an INCOMPLETE segment has a decision to make (so it is held)."""
    incomplete = {o.name for o in m.segments.by_id.values() if o.written and not o.complete}
    named = set(_segment_names(program.get("audience") or {}))
    for step in program.get("steps") or []:
        named |= set(_segment_names(step.get("condition") or {}))
    for name in sorted(named & incomplete):
        item.decide(f"it uses the INCOMPLETE segment {name!r}: decide the segment first")


def _segment_names(condition: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key, value in condition.items():
        if key == SEGMENTS_FIELD and isinstance(value, list):
            found += [v for v in value if isinstance(v, str)]
        elif key == "$or" and isinstance(value, list):
            for alternative in value:
                found += _segment_names(alternative)
    return found


# -- the configuration ------------------------------------------------------------------------
def _config(m: Migration, *, report: bool = True) -> KizunaConfig:
    tracked = list(m.base.custom.tracked)
    windows = set(m.conditions.activity_windows if m.conditions else ())
    if windows:
        others = [t for t in tracked if t.detail_type != ACTIVITY_EVENT]
        old = next((t for t in tracked if t.detail_type == ACTIVITY_EVENT), None)
        days = tuple(sorted(windows | set(old.windows_days if old else ())))
        tracked = [*others, TrackedEvent(detail_type=ACTIVITY_EVENT, windows_days=days)]
    if windows and report:
        m.report.add(
            "configuration",
            "custom.tracked",
            Status.CHANGED,
            became=[f"custom.tracked {ACTIVITY_EVENT} windows {list(days)}"],
            notes=["segments on app activity (Behavior.Recency) count app.opened over these days"],
        )
    declared_attributes = {a.name for a in m.base.custom.attributes}
    attributes = list(m.base.custom.attributes) + [
        a for a in m.attributes.declarations() if a.name not in declared_attributes
    ]
    declared_events = {e.detail_type for e in m.base.custom.events}
    events = list(m.base.custom.events) + [
        e for k, e in sorted(m.events.declared.items()) if k not in declared_events
    ]
    custom = CustomConfig(
        attributes=tuple(attributes), events=tuple(events), tracked=tuple(tracked)
    )
    contact = _contact(m) if report else m.base.contact
    config = m.base.model_copy(update={"custom": custom, "contact": contact})
    return KizunaConfig.model_validate(config.model_dump())


def _contact(m: Migration) -> ContactPolicyConfig:
    base = m.base.contact
    update: dict[str, Any] = {}
    item = m.report.add(
        "configuration", "contact policy", Status.MIGRATED, became=["kizuna-config.json contact"]
    )
    settings = m.settings or {}
    app_quiet = settings.get("QuietTime") or {}
    if app_quiet.get("Start") and app_quiet.get("End"):
        problem = quiet_problem(app_quiet["Start"], app_quiet["End"])
        if problem is not None:  # the campaigns' quiet times (or Kizuna's) are used instead
            item.decide(f"application settings: {problem}")
            app_quiet = {}
    windows = [(q.start, q.end) for q in m.contact.quiet]
    sources = sorted({f"{q.source} {q.start}-{q.end}" for q in m.contact.quiet})
    if app_quiet.get("Start") and app_quiet.get("End"):
        update["quiet_start"], update["quiet_end"] = app_quiet["Start"], app_quiet["End"]
        item.note(
            f"quiet hours {app_quiet['Start']}-{app_quiet['End']}: the project's "
            "(application settings)"
        )
        differing = [
            s for s in sources if not s.endswith(f"{app_quiet['Start']}-{app_quiet['End']}")
        ]
        if differing:
            item.decide("campaigns had other quiet times: " + "; ".join(differing))
    elif windows:
        union = quiet_union(windows)
        if union is None:
            first = windows[0]
            update["quiet_start"], update["quiet_end"] = first
            item.decide(
                "quiet times that make no single window: "
                + "; ".join(sources)
                + f"; {first[0]}-{first[1]} is used"
            )
        else:
            update["quiet_start"], update["quiet_end"] = union
            if len(set(windows)) > 1:
                item.decide(
                    f"quiet times differ ({'; '.join(sources)}): Kizuna has one for the project; "
                    f"{union[0]}-{union[1]} covers them all"
                )
            else:
                item.note(f"quiet hours {union[0]}-{union[1]} (from {', '.join(sources)})")
        if m.contact.no_quiet:
            item.note(
                f"without quiet time in Pinpoint: {', '.join(sorted(set(m.contact.no_quiet)))}"
            )
    else:
        item.note(
            f"no quiet time in Pinpoint: Kizuna's {base.quiet_start}-{base.quiet_end} is kept "
            "(every message it would send then waits)"
        )
    limits = settings.get("Limits") or {}
    if isinstance(limits.get("Daily"), int) and limits["Daily"] > 0:
        update["max_per_day"] = limits["Daily"]
        update["max_per_week"] = max(base.max_per_week, limits["Daily"])
        item.note(f"Limits.Daily {limits['Daily']} (application settings) -> max_per_day")
    for source, limit, value in m.contact.limits:
        item.note(f"{source}: Limits.{limit} {value} (per campaign in Pinpoint)")
    day = update.get("max_per_day", base.max_per_day)
    week = update.get("max_per_week", base.max_per_week)
    item.note(
        f"caps: {day} a day, {week} a week per customer, across every program and campaign "
        "(Pinpoint's limits were per campaign or journey)"
    )
    if m.customers is not None and m.customers.locales:
        top_locale = m.customers.locales.most_common(1)[0][0]
        if top_locale != base.default_locale:
            item.note(
                f"most customers read {top_locale!r}; default_locale stays {base.default_locale!r}"
            )
    return ContactPolicyConfig.model_validate({**base.model_dump(), **update})


def _check_segments(m: Migration) -> None:
    """Every segment condition against the customer view with what is declared so far (the
    attributes and the activity windows segments need are all known by now)."""
    check_segments(m.segments, vocabulary(_config(m, report=False)), m.report)


def _check_conditions(m: Migration) -> None:
    """Campaigns and programs against their models (one that does not fit is not written)."""
    from kizuna.campaigns.model import Campaign
    from kizuna.programs.model import Program

    for kind, docs, model in (
        ("campaign", m.campaigns.campaigns, Campaign),
        ("journey", m.campaigns.programs, Program),
    ):
        for pid, doc in list(docs.items()):
            try:
                model.model_validate(doc)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                owner = _owner(m.report, pid) or m.report.add(kind, pid)
                owner.decide(f"not written: {where}: {first['msg']}")
                owner.status = Status.NOT_MIGRATED
                del docs[pid]


def _check_validators(m: Migration) -> None:
    """Every campaign and program as ``kizuna campaigns validate`` and ``kizuna programs
    validate`` check it (:func:`kizuna_tools.migrate.validation.refusals`): what they refuse
    is a decision on its item (so it is held, and the report says what is missing)."""
    assert m.config is not None and m.library is not None
    found = refusals(m.config, m.segments, m.library, m.campaigns, m.now)
    for rel, problems in sorted(found.items()):
        kind = "campaign" if rel.startswith("campaigns/") else "journey"
        item = _item_of(m.report, rel) or m.report.add(kind, rel, became=[rel])
        for problem in problems:
            item.decide(f"Kizuna's validation refuses {rel} as written: {problem}")


def _hold_undecided(m: Migration) -> None:
    """Every campaign and program whose report item has a decision to make is held, as the
    report promises: a scheduled or paused campaign is written a ``draft``, a program
    ``enabled: false``. Whichever step made the decision (a journey's activity, a template's
    TODO, a segment, a validator), nothing with one runs as if it had been made."""
    for folder, docs, key, live, held in (
        ("campaigns", m.campaigns.campaigns, "status", ("scheduled", "paused"), "draft"),
        ("programs", m.campaigns.programs, "enabled", (True,), False),
    ):
        for pid, doc in docs.items():
            item = _item_of(m.report, f"{folder}/{pid}.yaml")
            if item is None or not item.decisions or doc.get(key) not in live:
                continue
            doc[key] = held
            if folder == "campaigns":
                item.note("status draft: held as a draft until the decisions below are made")
            else:
                item.note("written disabled until the decisions below are made")


def _item_of(report: Report, became: str) -> Item | None:
    return next((i for i in report.items if became in i.became), None)


def _owner(report: Report, pid: str) -> Item | None:
    for item in report.items:
        if any(b.endswith(f"/{pid}.yaml") for b in item.became):
            item.became = [b for b in item.became if not b.endswith(f"/{pid}.yaml")]
            return item
    return None


# -- writing ----------------------------------------------------------------------------------
def write_project(m: Migration, out: Path) -> list[Path]:
    assert m.config is not None and m.customers is not None and m.library is not None
    files: list[Path] = []
    config_path = out / "kizuna-config.json"
    config_path.write_text(
        json.dumps(m.config.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    files.append(config_path)
    customers = out / "customers.jsonl"
    with customers.open("w", encoding="utf-8") as fh:
        for row in m.customers.rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    files.append(customers)
    files += write_segments(out, m.segments)
    files += m.library.write(out)
    files += write_campaigns(out, m.campaigns)
    m.report.counts["files_written"] = len(files) + 2
    files += m.report.write(out)
    return files
