"""What the API and the console say about programs: the deployed bundle (list, definition,
diagram, an outline of the steps) and each program's figures (from the ledger's
program/time index over a range, and the lift of the last published report)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from kizuna.analytics import published
from kizuna.analytics.document import LiftSection, section_of
from kizuna.analytics.programs import ProgramFigures, program_figures
from kizuna.analytics.stats import Lift
from kizuna.domain.timestamps import iso
from kizuna.ports import ReportObjects
from kizuna.programs.loader import next_of
from kizuna.programs.model import BranchStep, Program, SendStep, SplitStep
from kizuna.runtime.config import KizunaConfig

DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
# the times a range may name: within them, the range's arithmetic (a default `from` 30 days
# before `to`, the console's day after `to`) and its conversions to UTC stay within the
# years datetime holds (0001-01-05T00:00:00Z as `to` raised OverflowError: a 500)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class ProgramLedger(Protocol):
    """:meth:`kizuna.adapters.dynamodb.DynamoStore.program_ledger`."""

    def program_ledger(self, program: str, start: str, end: str) -> Iterator[dict[str, Any]]: ...


def deployed(
    programs_dir: Path | None, cfg: KizunaConfig, segments_dir: Path | None = None
) -> dict[str, Program]:
    """The programs the function was deployed with, by id (none without a bundle), validated
    against the deployed configuration's vocabulary and the named segments beside them
    (``segments_dir``, else bundled)."""
    if programs_dir is None:
        return {}
    from kizuna.events.custom import vocabulary
    from kizuna.programs.bundle import load_deployed_programs

    segments = str(segments_dir) if segments_dir is not None else None
    found = load_deployed_programs(str(programs_dir), vocabulary(cfg), segments)
    return {p.id: p for p in found if isinstance(p, Program)}


class ProgramSummary(BaseModel):
    name: str = Field(description="the program's id")
    title: str
    trigger: str = Field(description="the event that starts it")
    steps: int
    channels: list[str] = Field(description="channels its messages may use, first seen first")
    holdout_percent: int
    status: Literal["enabled", "disabled"]


def summary(program: Program) -> ProgramSummary:
    channels: dict[str, None] = {}
    for step in program.steps:
        if isinstance(step, SendStep):
            channels.update((str(c), None) for c in step.channels)
    return ProgramSummary(
        name=program.id,
        title=program.name,
        trigger=program.trigger.event,
        steps=len(program.steps),
        channels=list(channels),
        holdout_percent=program.holdout_percent,
        status="enabled" if program.enabled else "disabled",
    )


@dataclass(frozen=True)
class OutlineStep:
    """One step of the journey as the console lists it: its label and where it goes."""

    number: int
    id: str
    type: str
    label: str
    next: list[tuple[str, str]]  # (edge label, step id); label "" for a plain edge


def outline(program: Program) -> list[OutlineStep]:
    """The journey as an ordered list (the diagram without a script to draw it)."""
    from kizuna.programs.diagram import label

    out: list[OutlineStep] = []
    for i, step in enumerate(program.steps):
        edges: list[tuple[str, str]]
        if isinstance(step, BranchStep):
            edges = [(side, t) for side, t in (("yes", step.then), ("no", step.otherwise)) if t]
        elif isinstance(step, SplitStep):
            edges = [(a.name, a.next) for a in step.arms if a.next]
        else:
            edges = [("", t) for t in next_of(program, i)]
        text = label(step).replace("<br/>", " · ")
        out.append(OutlineStep(i + 1, step.id, step.type, text, edges))
    return out


class ReportLift(BaseModel):
    """The program's lift in the last published report (the whole period it covers)."""

    as_of: datetime = Field(description="when the report was generated")
    period_start: str | None
    period_end: str | None
    rows: list[tuple[str | None, Lift]] = Field(description="(arm or None, lift)")


class ProgramStats(BaseModel):
    ledger: ProgramFigures = Field(description="from the ledger, over the range, as of now")
    report: ReportLift | None = Field(description="from the last published report, if any")


class RangeError(ValueError):
    """A range the stats refuse; ``field`` names the query parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def stats_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """``[start, end)``: by default the last 30 days to now; at most 366 days."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise RangeError(name, "give a time zone (e.g. 2026-11-01T00:00:00Z)")
        if value is not None and not EARLIEST <= value < LATEST:
            raise RangeError(name, "a time from 1970-01-01 and before 9000-01-01")
    end = end or now
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise RangeError("from", "'from' must be before 'to'")
    if end - start > MAX_RANGE:
        raise RangeError("from", "the range is at most 366 days (the report covers longer)")
    return start, end


def report_lift(objects: ReportObjects | None, program: str) -> ReportLift | None:
    doc = published.latest(objects) if objects is not None else None
    if doc is None:
        return None
    section = section_of(doc, "program_lift")
    if not isinstance(section, LiftSection):
        return None
    rows = [(r.arm, r.lift) for r in section.rows if r.program == program]
    if not rows:
        return None
    return ReportLift(
        as_of=doc.generated_at,
        period_start=doc.period.start.isoformat() if doc.period else None,
        period_end=doc.period.end.isoformat() if doc.period else None,
        rows=rows,
    )


def program_stats(
    ledger: ProgramLedger,
    reports: ReportObjects | None,
    program: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> ProgramStats:
    rows = ledger.program_ledger(program, iso(start), iso(end))
    figures = program_figures(program, rows, start=start, end=end, as_of=now)
    return ProgramStats(ledger=figures, report=report_lift(reports, program))
