"""Console: the deployed programs, each with its journey (an outline and the Mermaid
text: the CSP allows no script to draw it), its figures over a range and its lift."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.api.params import iso_day
from kizuna.programs.diagram import mermaid
from kizuna.programs.model import BranchStep, Program, SendStep, SplitStep, WaitStep
from kizuna.services import programs as service

router = APIGatewayHttpRouter()


@router.get("/console/programs", include_in_schema=False)
def programs_page() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    d = deps(router)
    found = service.deployed(d.programs_dir, d.config, d.segments_dir)
    rows = [service.summary(p) for p in sorted(found.values(), key=lambda p: p.id)]
    return console.render(router.current_event, "programs.html", principal=principal, rows=rows)


def step_labels(program: Program, t: Translator) -> dict[str, str]:
    """What each step does, in the page's language (the outline's words; the Mermaid text
    stays as code)."""
    labels: dict[str, str] = {}
    for step in program.steps:
        if isinstance(step, SendStep):
            text = t(
                "programs.step.send", template=step.template, channels=" → ".join(step.channels)
            )
        elif isinstance(step, WaitStep):
            units = (("days", step.days), ("hours", step.hours), ("minutes", step.minutes))
            duration = " ".join(t(f"programs.step.{u}", n=n) for u, n in units if n)
            time = step.until_local_time
            if time and duration:
                text = t("programs.step.wait_until", duration=duration, time=time)
            elif time:
                text = t("programs.step.wait_only_until", time=time)
            else:
                text = t("programs.step.wait", duration=duration)
        elif isinstance(step, BranchStep):
            e = step.engagement
            text = (
                t("programs.step.branch")
                if e is None
                else t(
                    "programs.step.engagement",
                    event=t(f"programs.step.engagement.{e.event.value}"),
                    step=e.step,
                    hours=e.within_hours,
                )
            )
        elif isinstance(step, SplitStep):
            arms = " / ".join(f"{a.name} {a.weight}%" for a in step.arms)
            text = t("programs.step.split", arms=arms)
        else:
            text = t("programs.step.exit")
        labels[step.id] = text
    return labels


def _day(value: str | None) -> date | None:
    return iso_day(value) if value else None


@router.get("/console/programs/<name>", include_in_schema=False)
def program_page(name: str) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    d = deps(router)
    program = service.deployed(d.programs_dir, d.config, d.segments_dir).get(name)
    t = Translator(console.lang_of(event))
    if program is None:
        return console.render(
            event,
            "error.html",
            status=404,
            principal=principal,
            message=t("programs.not_found", name=name),
        )
    query = event.query_string_parameters or {}
    error = None
    stats = None
    now = d.now()
    try:
        first, last = _day(query.get("from")), _day(query.get("to"))
        start = datetime.combine(first, datetime.min.time(), UTC) if first else None
        end = datetime.combine(last, datetime.min.time(), UTC) if last else None
        if end is not None and end < service.LATEST:  # else refused naming `to`
            end += timedelta(days=1)
        start, end = service.stats_range(start, end, now)
        stats = service.program_stats(d.store, d.reports, program.id, start, end, now)
    except service.RangeError as problem:
        error = t("programs.range_error", field=problem.field, reason=str(problem))
    except ValueError:
        error = t("programs.date_error")
    return console.render(
        event,
        "program.html",
        status=200 if error is None else 400,
        principal=principal,
        program=program,
        summary=service.summary(program),
        outline=service.outline(program),
        labels=step_labels(program, t),
        mermaid=mermaid(program),
        stats=stats,
        error=error,
        shown_from=(stats.ledger.start.date().isoformat() if stats else query.get("from", "")),
        shown_to=(
            (stats.ledger.end - timedelta(microseconds=1)).date().isoformat()
            if stats
            else query.get("to", "")
        ),
    )
