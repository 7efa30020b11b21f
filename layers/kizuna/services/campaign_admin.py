"""Campaigns as people manage them: validate, store, schedule, pause, resume, cancel; the
estimate, the dry run, the preview of each variant and the results; named segments' count
and sample.

The CLI (``kizuna campaigns``, ``kizuna segments``) and the HTTP API and console
(:mod:`kizuna.api`) both call this module: what "valid" means, which status may follow
which, and what a dry run shows are decided here once. The campaign function's own work (an
occurrence) is :mod:`kizuna.services.campaign`; the decisions per recipient are
:mod:`kizuna.campaigns.engine`'s, used here as the batch send uses them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from kizuna.analytics.stats import Lift, lift
from kizuna.campaigns.assign import (
    HOLDOUT,
    WINNER,
    assign,
    sent_to_the_rest,
    shown_arm,
    winner_decided,
    winner_decided_shown,
)
from kizuna.campaigns.engine import (
    SEND_STEP,
    STOPPED,
    Member,
    converted,
    in_audience,
    plan_recipient,
    topic_of,
)
from kizuna.campaigns.loader import (
    CampaignError,
    CampaignIssue,
    check_campaign,
    parse_campaign,
)
from kizuna.campaigns.looks import decision_line, looks_of, next_look_of
from kizuna.campaigns.model import (
    SCHEDULER_RETRY_SECONDS,
    Campaign,
    CampaignStatus,
    LocalTimeSchedule,
    OnceSchedule,
    RecurringSchedule,
    deadline_of,
    has_passed,
    local_time_window,
)
from kizuna.delivery.control import GLOBAL_CONTROL, control_for
from kizuna.delivery.deployed import undeployed
from kizuna.delivery.samples import (
    CHECK_SECRET,
    DRY_RUN_SECRET,
    PREVIEW_SECRET,
    SAMPLE_UNSUBSCRIBE_URL,
    rank_names,
    sample_coupon,
    sample_recipient,
)
from kizuna.delivery.templates import (
    LINE_JSON,
    PARTS,
    SUFFIX,
    FilesRenderer,
    Renderer,
    RenderError,
)
from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import iso, parse_time
from kizuna.domain.zones import zone_or
from kizuna.events.custom import vocabulary
from kizuna.events.inbound import DESCRIPTION_PATTERN, TEXT_PATTERN
from kizuna.ports import (
    Contacted,
    DefinitionConflict,
    ExecutionStatuses,
    ExecutionsUnavailable,
    StoredCampaign,
)
from kizuna.programs.issues import read_yaml
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger
from kizuna.segments import SegmentDefinition, members
from kizuna.services.campaign import ENDED_EXECUTION, OUTCOMES, campaign_context

# A campaign's own template file: ``<template>/<locale>/<part>.j2`` (or ``line.json``: LINE
# message objects, kizuna.delivery.line_messages).
TEMPLATE_FILE: Final = re.compile(
    r"^(?P<template>[a-z][a-z0-9_-]{0,39})/(?P<locale>[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?)/"
    r"(?:(?P<part>[a-z]+\.[a-z]+)\.j2|(?P<json>line\.json))\Z"
)
# A template of the library (the templates folder deployed with the function):
# ``<folder>/<template>``, e.g. ``month-end-sale/sale``.
LIBRARY_TEMPLATE: Final = re.compile(
    r"^(?P<folder>[a-z0-9][a-z0-9-]{0,62})/(?P<name>[a-z][a-z0-9_-]{0,39})\Z"
)
MAX_TEMPLATE_FILES: Final = 200
# A campaign is stored as one DynamoDB item (400 KB): its definition and all its template
# files, with room for the item's other attributes.
MAX_STORED_BYTES: Final = 380 * 1024
MAX_DESCRIPTION: Final = 2000
_TEXT: Final = re.compile(TEXT_PATTERN)
_DESCRIPTION: Final = re.compile(DESCRIPTION_PATTERN)
ALL_PARTS: Final = frozenset(p for parts in PARTS.values() for p in parts)
DRY_RUN_BATCH: Final = 100
MAX_SAMPLE: Final = 100


# --- collaborators -----------------------------------------------------------------------------
class DefinitionStore(Protocol):
    """The campaigns table (:class:`kizuna.adapters.campaigns.CampaignStore`)."""

    def put_definition(
        self,
        campaign: Campaign,
        templates: Mapping[str, str],
        updated_by: str,
        now: datetime,
        *,
        expected_version: int | None = None,
        only_from: frozenset[str] | None = None,
        started: int | None = None,
    ) -> int: ...

    def get_definition(self, campaign_id: str) -> StoredCampaign | None: ...

    def list_definitions(self) -> list[StoredCampaign]: ...

    def set_status(
        self, campaign_id: str, status: str, now: datetime, expected: set[str] | None = None
    ) -> bool: ...

    def list_occurrences(self, campaign_id: str) -> list[dict[str, Any]]: ...

    def first_occurrence(self, campaign_id: str) -> dict[str, Any] | None: ...


class Schedules(Protocol):
    """The campaigns' schedules (:class:`kizuna.adapters.scheduler.CampaignSchedules`)."""

    def put(self, campaign: Campaign, status: CampaignStatus, now: datetime) -> None: ...

    def get(self, campaign_id: str) -> dict[str, Any] | None: ...


class Customers(Protocol):
    """The customers and activity tables (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]: ...

    def get_customer(self, customer_id: str) -> Customer | None: ...

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def read_recipients(
        self, customer_ids: Sequence[str]
    ) -> tuple[dict[str, Customer], dict[str, Contacted]]: ...

    def program_ledger(self, program: str) -> Iterator[dict[str, Any]]: ...


class NotFound(LookupError):
    """No such campaign, segment or customer."""


class StatusConflict(Exception):
    """The campaign's status does not allow this action (e.g. pausing a draft)."""


# --- validation ----------------------------------------------------------------------------------
def campaign_template_problems(
    campaign: Campaign, renderer: Renderer, cfg: KizunaConfig, now: datetime
) -> list[str]:
    """Each of the campaign's templates (variants included) for each channel and locale,
    rendered with the context a send gives a sample customer of that locale."""
    problems: list[str] = []
    for template in campaign.templates():
        for channel in campaign.channels:

            def context_for(locale: str, ch: str = channel) -> Mapping[str, Any]:
                customer = sample_recipient(locale, now, cfg.custom, rank_names(cfg))
                coupon = sample_coupon(
                    campaign.coupon,
                    CHECK_SECRET,
                    campaign.id,
                    customer.customer_id,
                    "check",
                    SEND_STEP,
                    now,
                )
                return campaign_context(
                    campaign,
                    customer,
                    cfg,
                    coupon=coupon,
                    unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if ch == "email" else None,
                )

            problems += [
                f"template {template!r} ({channel}) {problem}"
                for problem in renderer.check(campaign.id, template, channel, context_for)
            ]
    return problems


def library_templates(root: Path) -> list[str]:
    """Every template of the library, ``<folder>/<template>`` (folders starting with ``_``,
    the shared layouts, are not templates)."""
    found: list[str] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for template in sorted(p for p in folder.iterdir() if p.is_dir()):
            name = f"{folder.name}/{template.name}"
            if LIBRARY_TEMPLATE.match(name):
                found.append(name)
    return found


def _files_under(folder: Path, locales: Collection[str] | None) -> dict[str, str]:
    """``<locale>/<part>.j2`` (and ``<locale>/line.json``) -> source of one template folder."""
    files: dict[str, str] = {}
    for path in sorted([*folder.rglob(f"*{SUFFIX}"), *folder.rglob(LINE_JSON)]):
        relative = path.relative_to(folder).as_posix()
        if locales is not None and relative.split("/", 1)[0] not in locales:
            continue
        files[relative] = path.read_text(encoding="utf-8")
    return files


@dataclass(frozen=True)
class CampaignRules:
    """What a campaign is checked against: the configuration, the templates folder, the
    named segments, the programs' ids (a campaign may not take a program's id) and the
    channels the stack sends on (None: not known, as in ``kizuna campaigns validate``)."""

    cfg: KizunaConfig
    templates_root: Path
    segments: Mapping[str, SegmentDefinition] = field(default_factory=dict)
    program_ids: frozenset[str] = frozenset()
    deployed_channels: frozenset[str] | None = None

    def renderer(self, campaign_id: str, files: Mapping[str, str]) -> FilesRenderer:
        """A renderer of the campaign's own files (``<template>/<locale>/<part>.j2``), which
        may extend the templates folder's shared layouts."""
        return FilesRenderer(
            {f"{campaign_id}/{name}": source for name, source in files.items()},
            self.templates_root,
            default_locale=self.cfg.contact.default_locale,
        )

    def folder_files(self, campaign: Campaign) -> dict[str, str]:
        """The campaign's template files from the templates folder
        (``templates/<campaign id>/<template>/...``), as ``kizuna campaigns apply`` stores
        them."""
        root = self.templates_root / campaign.id
        files: dict[str, str] = {}
        for template in campaign.templates():
            for name, source in _files_under(root / template, None).items():
                files[f"{template}/{name}"] = source
        return files

    def library_files(
        self, sources: Mapping[str, str], locales: Collection[str] | None = None
    ) -> dict[str, str]:
        """Template files copied from the library: ``sources`` maps a template name of the
        campaign to ``<folder>/<template>``; with ``locales``, only those locale folders.
        Raises :class:`CampaignError` naming the field."""
        issues: list[CampaignIssue] = []
        files: dict[str, str] = {}
        for name, source in sources.items():
            where = f"template_sources.{name}"
            match = LIBRARY_TEMPLATE.match(source)
            folder = self.templates_root / source if match else None
            if folder is None or not folder.is_dir():
                issues.append(CampaignIssue("<campaign>", where, f"no template {source!r}"))
                continue
            found = _files_under(folder, locales)
            if not found:
                wanted = ", ".join(sorted(locales or ())) or "any locale"
                issues.append(
                    CampaignIssue("<campaign>", where, f"{source!r} has no files for {wanted}")
                )
            files.update({f"{name}/{rel}": text for rel, text in found.items()})
        if issues:
            raise CampaignError(issues)
        return files

    def file_issues(
        self, campaign: Campaign, files: Mapping[str, str], file: str
    ) -> list[CampaignIssue]:
        """Template files given as data: names, sizes, and only the campaign's templates;
        the name and description as written (checked on every write, not on a stored
        definition's read: one stored before these rules still loads)."""
        issues: list[CampaignIssue] = []
        if not _TEXT.fullmatch(campaign.name) or not campaign.name.strip():
            issues.append(CampaignIssue(file, "name", "printable characters, not only spaces"))
        if len(campaign.description) > MAX_DESCRIPTION or not _DESCRIPTION.fullmatch(
            campaign.description
        ):
            issues.append(
                CampaignIssue(
                    file,
                    "description",
                    f"at most {MAX_DESCRIPTION:,} printable characters (line feeds and tabs too)",
                )
            )
        wanted = set(campaign.templates())
        if len(files) > MAX_TEMPLATE_FILES:
            issues.append(CampaignIssue(file, "templates", f"more than {MAX_TEMPLATE_FILES} files"))
        size = sum(len(k.encode()) + len(v.encode()) for k, v in files.items())
        size += len(campaign.model_dump_json().encode())
        if size > MAX_STORED_BYTES:
            issues.append(
                CampaignIssue(
                    file,
                    "templates",
                    f"{size // 1024} KB with its definition, over {MAX_STORED_BYTES // 1024} KB: "
                    "a campaign is stored as one DynamoDB item (400 KB)",
                )
            )
        for name in files:
            match = TEMPLATE_FILE.match(name)
            if match is None or (match["json"] is None and match["part"] not in ALL_PARTS):
                issues.append(
                    CampaignIssue(
                        file, f"templates.{name}", "name files <template>/<locale>/<part>.j2"
                    )
                )
            elif match["template"] not in wanted:
                issues.append(
                    CampaignIssue(
                        file,
                        f"templates.{name}",
                        f"the campaign uses no template {match['template']!r}",
                    )
                )
        renderer = self.renderer(campaign.id, files)
        for template in sorted(wanted):
            problem = renderer.default_locale_problem(campaign.id, template)
            if problem:
                issues.append(CampaignIssue(file, "templates", problem))
        return issues

    def issues(
        self,
        campaign: Campaign,
        files: Mapping[str, str],
        now: datetime,
        *,
        file: str = "<campaign>",
        base_dir: Path | None = None,
    ) -> list[CampaignIssue]:
        """Every problem of a parsed campaign with these template files: segments, goal,
        ids, template parts, then each template rendered per channel and locale (what
        ``kizuna campaigns validate`` checks)."""
        renderer = self.renderer(campaign.id, files)
        issues = self.file_issues(campaign, files, file)
        issues += self.channel_issues(campaign, file)
        issues += check_campaign(
            file,
            campaign,
            templates=renderer,
            segment_names=set(self.segments),
            program_ids=self.program_ids,
            base_dir=base_dir,
            vocab=vocabulary(self.cfg),
            webhooks=tuple(self.cfg.webhooks),
        )
        if not issues:
            issues += [
                CampaignIssue(file, "template", problem)
                for problem in campaign_template_problems(campaign, renderer, self.cfg, now)
            ]
        return issues

    def channel_issues(self, campaign: Campaign, file: str = "<campaign>") -> list[CampaignIssue]:
        """A campaign none of whose channels the stack sends on: every message of it would be
        suppressed (``no_channel``). Nothing when the stack's channels are not known."""
        if self.deployed_channels is None:
            return []
        problem = undeployed(list(map(str, campaign.channels)), self.deployed_channels)
        return [CampaignIssue(file, "channels", problem)] if problem else []

    def validate(
        self, raw: Any, files: Mapping[str, str], now: datetime, *, file: str = "<campaign>"
    ) -> Campaign:
        """A campaign from data (a parsed YAML or JSON document) and its template files, or
        :class:`CampaignError` with every issue, each naming its field."""
        campaign = parse_campaign(raw, file)
        issues = self.issues(campaign, files, now, file=file)
        if issues:
            raise CampaignError(issues)
        return campaign

    def load_file(self, path: Path, now: datetime) -> tuple[Campaign, dict[str, str]]:
        """A campaign file (``campaigns/<id>.yaml``) and its templates from the templates
        folder, validated as :meth:`validate` does; the id must be the file's name."""
        file = str(path)
        raw = read_yaml(path, lambda message: CampaignError([CampaignIssue(file, None, message)]))
        campaign = parse_campaign(raw, file)
        files = self.folder_files(campaign)
        issues = []
        if path.stem != campaign.id:
            issues.append(CampaignIssue(file, "id", f"{campaign.id!r} must match the file name"))
        issues += self.issues(campaign, files, now, file=file, base_dir=path.parent)
        if issues:
            raise CampaignError(issues)
        return campaign, files


# --- status --------------------------------------------------------------------------------------
# action -> (the status it sets, the statuses it may start from)
TRANSITIONS: Final[dict[str, tuple[CampaignStatus, frozenset[str]]]] = {
    "schedule": (CampaignStatus.SCHEDULED, frozenset({"draft"})),
    "pause": (CampaignStatus.PAUSED, frozenset({"scheduled"})),
    "resume": (CampaignStatus.SCHEDULED, frozenset({"paused"})),
    "cancel": (CampaignStatus.CANCELLED, frozenset({"scheduled", "paused", "draft"})),
}
# A definition may be replaced while nothing final happened to it.
EDITABLE: Final = frozenset({"draft", "scheduled", "paused"})


def start_of(campaign: Campaign) -> datetime | None:
    """When a one-off campaign's occurrence starts (None for a recurring one)."""
    schedule = campaign.schedule
    if isinstance(schedule, OnceSchedule):
        return schedule.at
    if isinstance(schedule, LocalTimeSchedule):
        return local_time_window(schedule)[0]
    return None


def passed_field(campaign: Campaign, now: datetime) -> tuple[str, str] | None:
    """The schedule's field whose time has passed, and that time: a one-off campaign's time
    (``schedule.at``; a local-time one's date and time from where it comes first), or a
    recurring campaign's ``schedule.end``. None while it is ahead (or there is no end)."""
    schedule = campaign.schedule
    deadline = deadline_of(schedule)
    if deadline is None or not has_passed(schedule, now):
        return None
    if isinstance(schedule, RecurringSchedule):
        return "schedule.end", deadline.isoformat()
    if isinstance(schedule, LocalTimeSchedule):
        when = f"{schedule.date} {schedule.time}, first at {deadline.isoformat()}"
        return "schedule.date and time", when
    return "schedule.at", deadline.isoformat()


def passed_time(campaign: Campaign, now: datetime) -> str | None:
    """Why the campaign cannot be scheduled now (written, scheduled or resumed as
    ``scheduled``), naming the field: a one-off campaign's time has passed (no grace, as the
    ``schedule`` action never had one), or a recurring campaign's end (it would not run
    again). Whether Scheduler refuses a one-time schedule in the past or fires it at once is
    not documented: either way the campaign would not do what its marketer meant."""
    passed = passed_field(campaign, now)
    if passed is None:
        return None
    field, when = passed
    return f"{campaign.id}: {field} ({when}) has passed: change the schedule"


def changed_schedule_field(before: Campaign, after: Campaign) -> str | None:
    """The schedule's field a write changes (``schedule.at``; ``schedule.date``,
    ``schedule.time`` or both of a local-time one; ``schedule`` for another type), None
    when the schedule is the same (an instant with another offset is the same instant)."""
    old, new = before.schedule, after.schedule
    if old == new:
        return None
    if isinstance(old, OnceSchedule) and isinstance(new, OnceSchedule):
        return "schedule.at"
    if isinstance(old, LocalTimeSchedule) and isinstance(new, LocalTimeSchedule):
        fields = [f for f in ("date", "time") if getattr(old, f) != getattr(new, f)]
        return "schedule." + " and ".join(fields) if fields else "schedule"
    return "schedule"


def experiment_changed(before: Campaign, after: Campaign) -> bool:
    """Does a write change the experiment an occurrence measures (``variants``, ``winner``,
    ``holdout_percent``, ``goal``)?"""
    return (before.variants, before.winner, before.holdout_percent, before.goal) != (
        after.variants,
        after.winner,
        after.holdout_percent,
        after.goal,
    )


def unchanged(stored: StoredCampaign, campaign: Campaign, files: Mapping[str, str]) -> bool:
    """The same definition (whatever its status) and the same template files."""
    same = campaign.model_copy(update={"status": stored.campaign.status})
    return same == stored.campaign and dict(files) == dict(stored.templates)


# --- what the commands and routes show -----------------------------------------------------------
@dataclass
class DryRun:
    """What an occurrence would do now: the audience, each member's decision, the channel
    of each send, the reason of each suppression or deferral, and (for a dry run) one
    rendered message per locale and channel."""

    audience: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    samples: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    """One variant's template rendered for one locale and channel."""

    variant: str
    template: str
    locale: str
    channel: str
    rendered_locale: str | None = None  # the locale folder used (a fallback shows here)
    parts: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class VariantResult:
    """Per variant (or ``holdout``) of an occurrence: decisions and conversions.

    ``converted``: among the sent (the holdout: among the held out). ``assigned`` and
    ``assigned_converted``: every member of the variant whatever was decided (sent,
    suppressed, deferred, failed), and their conversions after the decision; ``lift``
    compares those with the holdout, **intent to treat** as the campaign report does
    (docs/CAMPAIGNS.md): the sent alone against the whole holdout compares the reachable,
    consented, uncapped customers with everyone. None without a holdout, and for the
    holdout itself."""

    variant: str
    sent: int = 0
    suppressed: int = 0
    deferred: int = 0
    failed: int = 0
    holdout: int = 0
    converted: int = 0
    assigned: int = 0
    assigned_converted: int = 0
    lift: Lift | None = None


@dataclass
class OccurrenceResult:
    occurrence: str
    status: str
    counts: dict[str, int]
    winner: str | None = None
    winner_reason: str | None = None
    # did the test choose ``winner``? False: it found none and the rest of the audience got
    # the first variant; None: no winner recorded (:func:`winner_decided_shown`)
    winner_decided: bool | None = None
    stop_reason: str | None = None
    variants: list[VariantResult] = field(default_factory=list)
    looks: list[str] = field(default_factory=list)  # a sequential winner test's looks
    decision: str | None = None  # ... and its decision so far (None: no look yet)
    next_look_at: str | None = None  # an undecided test's next look
    # An unfinished occurrence whose execution ended without finishing it (FAILED,
    # TIMED_OUT, ABORTED), and when: nothing more is sent until an operator redrives the
    # execution or closes the occurrence (``kizuna campaigns close``).
    execution_status: str | None = None
    execution_ended_at: str | None = None


# the settled ledger statuses an occurrence's results count (``sending``: a claim not
# settled yet, only among the assigned)
COUNTED: Final = ("sent", "suppressed", "deferred", "failed", "holdout")


def _variant_of(row: Mapping[str, Any], decided: bool) -> str:
    """The row's variant as results show it; ``decided``: did the occurrence's test choose
    the variant the rest of the audience got (:func:`kizuna.campaigns.assign.winner_decided`)."""
    if row.get("arm") == GLOBAL_CONTROL:
        return GLOBAL_CONTROL  # apart from the campaign's own holdout
    if row.get("arm") == HOLDOUT or row.get("status") == "holdout":
        return HOLDOUT
    if row.get("arm") == WINNER:  # the rest of the audience, apart from the test pool
        return shown_arm(WINNER, str(row.get("variant") or ""), decided) or WINNER
    return str(row.get("variant") or "default")


def results_of(
    campaign: Campaign,
    occurrences: Iterable[Mapping[str, Any]],
    ledger: Iterable[Mapping[str, Any]],
    customers: Callable[[Sequence[str]], Mapping[str, Customer]],
) -> list[OccurrenceResult]:
    """Per occurrence: the counters, and per variant sent, suppressed, deferred, failed and
    converted (an order after the message within the goal's window, default 7 days; the
    holdout's orders after its decision are its baseline), and the intent-to-treat lift of
    each variant's assigned members against the holdout (:class:`VariantResult`)."""
    window = campaign.goal.within_days if campaign.goal else 7
    conditions = campaign.goal.conditions if campaign.goal else {}
    out: dict[str, OccurrenceResult] = {}
    # occurrences whose test chose no winner: the rest of the audience got the first variant
    # (an occurrence the ledger names but that has no record reads as decided)
    undecided: set[str] = set()
    for occ in occurrences:
        name = str(occ["occurrence"])
        if not winner_decided(occ):
            undecided.add(name)
        out[name] = OccurrenceResult(
            name,
            str(occ.get("status", "")),
            {c: int(occ.get(c, 0)) for c in ("audience", *OUTCOMES)},
            occ.get("winner"),
            occ.get("winner_reason"),
            winner_decided_shown(occ),
            occ.get("stop_reason"),
        )
        looks, following = looks_of(occ), next_look_of(occ)
        out[name].looks = [look.line() for look in looks]
        out[name].decision = decision_line(looks, occ.get("winner"), following)
        out[name].next_look_at = iso(following) if following else None
    rows = [r for r in ledger if r.get("campaign") == campaign.id and r.get("occurrence")]
    found = customers(sorted({str(r["pk"]) for r in rows})) if rows else {}
    by_variant: dict[tuple[str, str], VariantResult] = {}
    for row in rows:
        occurrence = str(row["occurrence"])
        result = out.setdefault(occurrence, OccurrenceResult(occurrence, "", {}))
        key = (occurrence, _variant_of(row, occurrence not in undecided))
        if key not in by_variant:
            by_variant[key] = VariantResult(key[1])
            result.variants.append(by_variant[key])
        variant = by_variant[key]
        status = str(row.get("status"))
        if status in COUNTED:
            setattr(variant, status, getattr(variant, status) + 1)
        variant.assigned += 1  # (``sending``, a claim not settled yet, is assigned too)
        customer = found.get(str(row.get("pk")))
        if customer is None:
            continue
        at = parse_time(str(row.get("sent_at") or row["at"]))
        if converted(customer, at, window, conditions):
            variant.assigned_converted += 1
            variant.converted += int(status in ("sent", "holdout"))
    for result in out.values():
        result.variants.sort(key=lambda v: (v.variant == HOLDOUT, v.variant))
        held = next((v for v in result.variants if v.variant == HOLDOUT), None)
        if held is None or not held.assigned:
            continue
        # with winner selection the holdout is of the main pool, decided with the rest of
        # the audience after the winner wait: no baseline for the test pool's arms, sent
        # days before (the report's rule, tools/kizuna_tools/reports/campaigns.py)
        names = [v.variant for v in result.variants]
        selection = result.winner is not None or any(sent_to_the_rest(n) for n in names)
        for v in result.variants:
            if v.variant in (HOLDOUT, GLOBAL_CONTROL) or not v.assigned:
                continue
            if not selection or sent_to_the_rest(v.variant):
                base = (held.assigned_converted, held.assigned)
                v.lift = lift(v.assigned_converted, v.assigned, *base)
    return [out[k] for k in sorted(out)]


@dataclass
class CampaignAdmin:
    """The stored campaigns of a stack and what people do with them."""

    rules: CampaignRules
    store: DefinitionStore
    customers: Customers
    schedules: Schedules | None = None
    # the campaign state machine's executions (DescribeExecution); None: not asked
    executions: ExecutionStatuses | None = None

    @property
    def cfg(self) -> KizunaConfig:
        return self.rules.cfg

    # reading -------------------------------------------------------------------------------
    def list_all(self) -> list[StoredCampaign]:
        return self.store.list_definitions()

    def get(self, campaign_id: str) -> StoredCampaign:
        found = self.store.get_definition(campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        return found

    def schedule_of(self, campaign_id: str) -> dict[str, Any] | None:
        return self.schedules.get(campaign_id) if self.schedules is not None else None

    # writing -------------------------------------------------------------------------------
    def save(
        self,
        campaign: Campaign,
        files: Mapping[str, str],
        by: str,
        now: datetime,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Store a validated definition and its template files, then bring its schedule in
        line (enabled only while scheduled). ``expected_version``: 0 to create (it must not
        exist), the version read to update (:class:`kizuna.ports.DefinitionConflict` when
        another write came between); None replaces whatever is stored (``apply``), except
        what :meth:`left_as_is` leaves (its version returned, nothing written), a paused
        campaign written ``scheduled`` stays paused (:meth:`as_applied`), and what
        :meth:`write_problem` refuses (:class:`StatusConflict`): an ended campaign (cancelled
        or done) is never written again, nobody writes ``done``, a one-off campaign that ran
        keeps its schedule, ``scheduled`` is written only while a one-off campaign's time
        (a recurring one's end) is ahead, and the experiment stays as it is while an
        occurrence is unfinished (:meth:`experiment_problem`), one that starts meanwhile
        included."""
        current = self.store.get_definition(campaign.id) if expected_version != 0 else None
        written = campaign
        only_from = EDITABLE
        if expected_version is None:
            if self.left_as_is(campaign, files, now, current):
                return current.version if current else 0  # re-applied as it was: left as it is
            written = self.as_applied(campaign, current)
            if written.status == CampaignStatus.SCHEDULED:
                # a pause between the read and the write is not overwritten by apply either
                only_from = EDITABLE - {str(CampaignStatus.PAUSED)}
            problem = self.apply_problem(campaign, files, now, current)
        else:
            problem = self.write_problem(written, files, now, current)
        if problem:
            raise StatusConflict(problem)
        # a change of the experiment, found no occurrence unfinished, or of a one-off's time,
        # found not run, is written only if no occurrence started since ``current`` was
        # read (each start counts itself on it)
        guarded = current is not None and (
            experiment_changed(current.campaign, written)
            or (
                start_of(current.campaign) is not None
                and changed_schedule_field(current.campaign, written) is not None
            )
        )
        started = current.occurrences_started if current is not None and guarded else None
        try:
            version = self.store.put_definition(
                written,
                files,
                by,
                now,
                expected_version=expected_version,
                only_from=only_from,
                started=started,
            )
        except DefinitionConflict:
            # another write came between: a stale version, the campaign ended meanwhile, or
            # an occurrence started
            now_stored = self.store.get_definition(campaign.id)
            if now_stored is not None and now_stored.status not in EDITABLE:
                raise StatusConflict(
                    f"{campaign.id} is {now_stored.status}: it cannot be changed"
                ) from None
            if expected_version is None and now_stored is not None:
                # paused meanwhile, or an occurrence started (apply read it otherwise):
                # apply again, over the pause; the occurrence's refusal is raised then
                return self.save(campaign, files, by, now)
            started_meanwhile = (
                self.ran_problem(written, now_stored, now)
                or self.experiment_problem(written, now_stored)
                or self.ran_through_problem(written, current, now_stored, expected_version)
            )
            if started_meanwhile:
                raise StatusConflict(started_meanwhile) from None
            raise
        if self.schedules is not None:
            self.schedules.put(written, written.status, now)
        return version

    def as_applied(self, campaign: Campaign, current: StoredCampaign | None) -> Campaign:
        """The definition as ``apply`` (a write naming no version) writes it over
        ``current``: a campaign stored ``paused`` (a marketer paused it: the console, the API
        or ``kizuna campaigns pause``) whose file says ``scheduled`` is written ``paused``,
        changed or not: a deploy pipeline re-applying ``campaigns/`` does not resume it; the
        console, the API or ``kizuna campaigns resume`` does. Any other status is the
        file's."""
        if (
            current is not None
            and current.status == CampaignStatus.PAUSED
            and campaign.status == CampaignStatus.SCHEDULED
        ):
            return campaign.model_copy(update={"status": CampaignStatus.PAUSED})
        return campaign

    def apply_problem(
        self,
        campaign: Campaign,
        files: Mapping[str, str],
        now: datetime,
        current: StoredCampaign | None,
    ) -> str | None:
        """Why ``apply`` may not write this definition over ``current``: what
        :meth:`write_problem` says of it as applied (:meth:`as_applied`), and, when a file
        saying ``scheduled`` is kept paused, its time must still be ahead, or the resume
        that ``apply`` invites would be refused (a campaign that ran can be resumed:
        :meth:`transition`)."""
        written = self.as_applied(campaign, current)
        if written.status != campaign.status and self.store.first_occurrence(campaign.id) is None:
            passed = passed_time(campaign, now)
            if passed:
                return passed
        return self.write_problem(written, files, now, current)

    def left_as_is(
        self,
        campaign: Campaign,
        files: Mapping[str, str],
        now: datetime,
        current: StoredCampaign | None,
    ) -> str | None:
        """Why ``apply`` (a write naming no version: a deploy pipeline re-applying
        ``campaigns/``) leaves ``current`` as it is instead of writing this definition (None:
        it does not; :meth:`write_problem` decides). Only when the definition and its files
        are unchanged: an ended campaign (cancelled or done, whatever status its file says)
        keeps what it did; a paused one whose file says ``scheduled`` (or ``paused``) stays
        paused; a status a person set since the file was applied (the file's status is the
        one written then) stays; a campaign stored ``scheduled`` and still written ``scheduled``
        whose time (or end) has since passed was scheduled in time, and is running or done:
        its schedule is not put again (a one-time schedule in the past)."""
        if current is None or not unchanged(current, campaign, files):
            return None
        if current.status not in EDITABLE:
            return current.status
        if current.status == CampaignStatus.PAUSED and campaign.status in (
            CampaignStatus.PAUSED,
            CampaignStatus.SCHEDULED,
        ):
            return current.status  # the marketer's pause stays (:meth:`as_applied`)
        if (
            current.campaign.status == campaign.status != current.status
            and campaign.status != CampaignStatus.PAUSED
        ):
            # the file says what it said when it was applied (a draft); a person has since
            # scheduled (or paused) it: that stays. A file saying ``paused`` is not trusted
            # so (apply stores a ``scheduled`` file kept paused as ``paused``: which one it
            # was is not known), and pauses it again: of the two, the one that sends nothing
            return f"{current.status}: changed since this file was applied"
        if current.status == campaign.status == CampaignStatus.SCHEDULED:
            passed = passed_field(campaign, now)
            if passed:
                return f"{current.status}; {passed[0]} has passed"
        return None

    def write_problem(
        self,
        campaign: Campaign,
        files: Mapping[str, str],
        now: datetime,
        current: StoredCampaign | None,
    ) -> str | None:
        """Why this definition may not be written over ``current`` (None: it may). Only a
        draft, scheduled or paused campaign is written over (an ended one keeps what it did;
        :meth:`left_as_is` says when ``apply`` leaves it as it is); ``done`` is Kizuna's to
        set; a one-off campaign that ran keeps its schedule (:meth:`ran_problem`); a campaign
        is written as scheduled only while a one-off's time or a recurring one's end is ahead
        (:func:`passed_time`, as the ``schedule`` and ``resume`` actions check)."""
        if current is not None and current.status not in EDITABLE:
            return (
                f"{campaign.id} is {current.status}: it cannot be changed "
                "(a new campaign needs a new id)"
            )
        if campaign.status == CampaignStatus.DONE:
            return (
                f"{campaign.id}: status done is set by Kizuna when a one-off campaign has sent; "
                "write draft, scheduled, paused or cancelled"
            )
        ran = self.ran_problem(campaign, current, now) or self.experiment_problem(campaign, current)
        if ran:
            return ran
        if campaign.status == CampaignStatus.SCHEDULED:
            return passed_time(campaign, now)
        return None

    def experiment_problem(self, campaign: Campaign, current: StoredCampaign | None) -> str | None:
        """Why this write may not change the experiment (``variants``, ``winner``,
        ``holdout_percent``, ``goal``): an occurrence is unfinished (running, or stopped and
        not yet closed). Its test pool was sent the variants stored when it started and its
        winner is chosen among them (by the goal, for ``metric: goal``), its members' arms
        are frozen: a variant renamed, reweighted or removed meanwhile, or another goal,
        would have the winner chosen, and the rest sent, by another definition than the one
        measured. Templates stay editable (a broken link is fixed mid-run; the fix reaches
        everyone sent after it). Asked only when one of them changes. An occurrence that
        starts after ``current`` was read is not listed here: :meth:`save` writes such a
        change on condition that ``current.occurrences_started`` is unchanged (each start
        adds one in the transaction that writes the occurrence, itself conditioned on the
        definition's version it read), so either the write is refused and this is asked
        again, or the occurrence starts on the definition written."""
        if current is None or not experiment_changed(current.campaign, campaign):
            return None
        for occ in self.store.list_occurrences(campaign.id):
            if not occ.get("completed_at") and occ.get("status") in ("running", *STOPPED):
                return (
                    f"{campaign.id}: variants, winner, holdout_percent and goal cannot be "
                    f"changed "
                    f"while occurrence {occ['occurrence']} is unfinished (its test pool, "
                    f"winner and holdout are measured by them); change them after it "
                    f"completes (a stopped one: kizuna campaigns close)"
                )
        return None

    def ran_through_problem(
        self,
        campaign: Campaign,
        current: StoredCampaign | None,
        now_stored: StoredCampaign | None,
        expected_version: int | None,
    ) -> str | None:
        """Why a change of the experiment over ``current`` (the version the writer read,
        ``expected_version``) was refused when, read again (``now_stored``), nobody else
        has written the definition and no occurrence is unfinished: an occurrence started
        after ``current`` was read (its start counted itself on ``occurrences_started``, on
        which :meth:`save` conditions the write) and has finished since. Nothing was
        written; written again, the change is measured from the next occurrence on. None
        otherwise (another write came between: read it again)."""
        if (
            current is None
            or now_stored is None
            or expected_version != current.version
            or now_stored.version != current.version
            or now_stored.occurrences_started == current.occurrences_started
            or not experiment_changed(current.campaign, campaign)
        ):
            return None
        occurrences = self.store.list_occurrences(campaign.id)
        latest = max(occurrences, key=lambda o: str(o.get("started_at", "")), default=None)
        which = f"occurrence {latest['occurrence']}" if latest else "an occurrence"
        return (
            f"{campaign.id}: {which} started and finished while this change was being "
            "written, so nothing was written (variants, winner, holdout_percent and goal are "
            "written only if no occurrence started since the campaign was read); no "
            "occurrence is unfinished now: write the change again (read the campaign first "
            "to see that occurrence's results)"
        )

    def ran_problem(
        self, campaign: Campaign, current: StoredCampaign | None, now: datetime
    ) -> str | None:
        """Why this write may not change a one-off campaign's schedule: it already ran (an
        occurrence exists, whatever its status; the campaign stays ``scheduled`` until it
        completes), or it is stored ``scheduled`` and its time has passed (Scheduler fired
        it, or is still retrying for up to 6 hours, and its occurrence is not written yet).
        A new time would put a new schedule, and a new occurrence would send to the same
        customers again; whatever status is written (a paused one could be resumed at the
        new time). Asked only when the schedule changes; an occurrence that starts between
        this read and the write refuses the write (:meth:`save` conditions it on
        ``occurrences_started``), with this reason."""
        if current is None or start_of(current.campaign) is None:
            return None
        field = changed_schedule_field(current.campaign, campaign)
        if field is None:
            return None
        occurrence = self.store.first_occurrence(campaign.id)
        if occurrence is None:
            deadline = deadline_of(current.campaign.schedule)
            retries = timedelta(seconds=SCHEDULER_RETRY_SECONDS)
            starting = deadline is not None and deadline <= now < deadline + retries
            if current.status == CampaignStatus.SCHEDULED and starting:
                return (
                    f"{campaign.id}: {field} cannot be changed: its time has passed and "
                    "the campaign is starting; a one-off campaign runs once (to send "
                    "again, create a new campaign with a new id)"
                )
            return None
        return (
            f"{campaign.id}: {field} cannot be changed: the campaign already ran "
            f"(occurrence {occurrence.get('occurrence')}); a one-off campaign runs once "
            "(to send again, create a new campaign with a new id)"
        )

    def transition(self, campaign_id: str, action: str, now: datetime) -> tuple[str, str]:
        """Schedule, pause, resume or cancel: the status changes only from the statuses the
        action allows (checked in the same write), then the schedule follows. Returns the
        (old, new) statuses."""
        if action not in TRANSITIONS:
            raise ValueError(f"unknown action {action!r}")
        target, allowed = TRANSITIONS[action]
        stored = self.get(campaign_id)
        running = False
        if target == CampaignStatus.SCHEDULED:  # schedule, resume
            problem = passed_time(stored.campaign, now)
            if problem and action == "resume" and start_of(stored.campaign) is not None:
                # a one-off paused mid-run: its occurrence waits for the resume (its batches
                # retry), unless its execution has ended; its fired schedule stays disabled
                occurrence = self.store.first_occurrence(campaign_id)
                running = (
                    occurrence is not None
                    and occurrence.get("status") == "running"
                    and self._execution_ended(occurrence) is None
                )
            if problem and not running:
                raise StatusConflict(problem)
        if not self.store.set_status(campaign_id, str(target), now, expected=set(allowed)):
            current = self.get(campaign_id).status
            raise StatusConflict(
                f"{campaign_id} is {current}; {action} needs " + " or ".join(sorted(allowed))
            )
        if self.schedules is not None and not running:
            self.schedules.put(stored.campaign, target, now)
        return stored.status, str(target)

    # what it would do ----------------------------------------------------------------------
    def dry_run(self, stored: StoredCampaign, now: datetime, *, samples: bool = True) -> DryRun:
        """What an occurrence would do now, decided as the batch send decides, without a
        claim, a ledger row or a provider call; with ``samples``, one message rendered per
        locale and channel for the first member of each (with a coupon no send issues)."""
        campaign = stored.campaign
        conditions = {name: dict(s.conditions) for name, s in self.rules.segments.items()}
        audience = [
            Member(
                c.customer_id,
                assign(
                    campaign,
                    c.customer_id,
                    control_for(self.cfg, [topic_of(campaign, self.cfg)]),
                ).arm,
            )
            for c in self.customers.scan_customers()
            if in_audience(campaign, c, now, self.cfg, conditions)
        ]
        result = DryRun(len(audience))
        renderer = self.rules.renderer(campaign.id, stored.templates)
        for start in range(0, len(audience), DRY_RUN_BATCH):
            group = audience[start : start + DRY_RUN_BATCH]
            found, contacts = self.customers.read_recipients([m.customer_id for m in group])
            for member in group:
                customer = found.get(member.customer_id)
                plan = plan_recipient(
                    campaign,
                    member,
                    customer,
                    contact.sent if (contact := contacts.get(member.customer_id)) else {},
                    now,
                    self.cfg,
                    None,
                )
                result.by_status[plan.status] += 1
                if plan.status == "send" and plan.channel:
                    result.by_channel[plan.channel] += 1
                elif plan.reason and plan.reason != plan.status:
                    result.by_reason[f"{plan.status}: {plan.reason}"] += 1
                if not samples or plan.status != "send" or customer is None:
                    continue
                if plan.channel is None or plan.template is None:
                    continue
                key = (customer.locale or self.cfg.contact.default_locale, plan.channel)
                if key not in result.samples:
                    result.samples[key] = self._render_parts(
                        renderer, campaign, plan.template, plan.channel, customer, now, "dry-run"
                    )[1]
        return result

    def preview(
        self,
        stored: StoredCampaign,
        now: datetime,
        *,
        customer: Customer | None = None,
        locales: Sequence[str] = ("ja", "en"),
        channels: Sequence[str] | None = None,
    ) -> list[Preview]:
        """Each variant's template rendered for each locale and channel, with ``customer``'s
        data read in that locale (or a sample customer of that locale)."""
        campaign = stored.campaign
        renderer = self.rules.renderer(campaign.id, stored.templates)
        variants = [(v.name, campaign.template_of(v.name)) for v in campaign.variants] or [
            ("default", campaign.template)
        ]
        wanted = [str(c) for c in campaign.channels if channels is None or str(c) in channels]
        out: list[Preview] = []
        for variant, template in variants:
            for locale in locales:
                sample = customer or sample_recipient(
                    locale, now, self.rules.cfg.custom, rank_names(self.rules.cfg)
                )
                reader = sample.model_copy(update={"locale": locale})
                for channel in wanted:
                    used, parts = self._render_parts(
                        renderer, campaign, template, channel, reader, now, "preview"
                    )
                    error = parts.pop("error", None)
                    out.append(Preview(variant, template, locale, channel, used, parts, error))
        return out

    def _sent_at(self, campaign: Campaign, customer: Customer, now: datetime) -> datetime:
        """When ``customer`` would be sent a campaign still to come: its instant, or its
        date and local time in the customer's zone (their coupon's expiry counts from it, not
        from the preview: a sale on the 29th, valid 3 days, runs to the 1st); now for a
        recurring one, or once that time has passed."""
        schedule = campaign.schedule
        if isinstance(schedule, OnceSchedule):
            return max(now, schedule.at)
        if isinstance(schedule, LocalTimeSchedule):
            zone = zone_or(customer.time_zone, self.cfg.contact.default_time_zone)
            local = datetime.combine(schedule.date, schedule.local_time, tzinfo=zone)
            return max(now, local)
        return now

    def _render_parts(
        self,
        renderer: Renderer,
        campaign: Campaign,
        template: str,
        channel: str,
        customer: Customer,
        now: datetime,
        purpose: str,
    ) -> tuple[str | None, dict[str, str]]:
        """(the locale folder used, the rendered parts or ``{"error": why}``)."""
        secret = DRY_RUN_SECRET if purpose == "dry-run" else PREVIEW_SECRET
        coupon = sample_coupon(
            campaign.coupon,
            secret,
            campaign.id,
            customer.customer_id,
            purpose,
            SEND_STEP,
            self._sent_at(campaign, customer, now),
        )
        try:
            used = renderer.resolve_locale(campaign.id, template, customer.locale)
            context = campaign_context(
                campaign,
                customer,
                self.cfg,
                coupon=coupon,
                unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if channel == "email" else None,
            )
            rendered = renderer.render(campaign.id, template, channel, customer.locale, context)
        except RenderError as exc:
            return None, {"error": exc.reason}
        parts = {k: str(v) for k, v in rendered.model_dump().items() if v and k != "channel"}
        return used, parts

    # what it did ---------------------------------------------------------------------------
    def results(self, stored: StoredCampaign) -> list[OccurrenceResult]:
        campaign = stored.campaign
        occurrences = [{**o} for o in self.store.list_occurrences(campaign.id)]
        results = results_of(
            campaign,
            occurrences,
            self.customers.program_ledger(campaign.id),
            # an item this version cannot read: counted as not converted, not a failed page
            lambda ids: self.customers.get_customers(ids, unreadable_ok=True),
        )
        by_name = {str(o["occurrence"]): o for o in occurrences}
        for result in results:
            occ = by_name.get(result.occurrence)
            ended = self._execution_ended(occ) if occ is not None else None
            if ended is not None:
                result.execution_status, result.execution_ended_at = ended
        return results

    def _execution_ended(self, occ: Mapping[str, Any]) -> tuple[str, str | None] | None:
        """For an occurrence not finished yet whose execution ended without finishing it
        (no later execution runs an occurrence): that execution's status and end. Asked
        only of an unfinished occurrence with its execution noted: a page reads one or two.
        Step Functions not answering leaves the occurrence as it is shown without it."""
        execution = occ.get("execution")
        unfinished = not occ.get("completed_at") and occ.get("status") in ("running", *STOPPED)
        if self.executions is None or not execution or not unfinished:
            return None
        try:
            found = self.executions.state(str(execution))
        except ExecutionsUnavailable as exc:
            logger.warning("execution status unknown", reason=str(exc))
            return None
        if found is None or found.status not in ENDED_EXECUTION:
            return None  # running, a redrive pending, or its history gone (90 days)
        return found.status, iso(found.stopped_at) if found.stopped_at else None


# --- segments ------------------------------------------------------------------------------------
def segment_members(
    segment: SegmentDefinition,
    customers: Customers,
    now: datetime,
    cfg: KizunaConfig,
    limit: int | None = None,
) -> list[str]:
    """The ids of the segment's members now, in scan order (the first ``limit``)."""
    out: list[str] = []
    for customer_id in members(segment, customers.scan_customers(), now, cfg):
        out.append(customer_id)
        if limit is not None and len(out) >= limit:
            break
    return out
