"""Cohorts: a program's entries that are due together share one Step Functions execution.

An entry's **cohort** is named by the instant its journey first has something to do:

- the program starts with a wait: the instant that wait ends for this entry — for
  ``until_local_time`` the local time itself (a day's entries in one time zone share it,
  exactly), for a fixed duration the entry time plus the duration rounded *up* to the
  program's cohort window;
- an ``start: at_once`` program: the instant the wait after its first task ends
  (:func:`kizuna.programs.compiler.entry_segment`): the first task runs at entry, over
  the batch's *entry group*, and hands the group to the cohort's root there;
- otherwise: the end of the cohort window the entry falls in.

A program that starts with a wait counts it from the trigger's time (``occurred_at``: local
midnight for a birthday), not from when evaluate ran (:func:`join_due`).

An entry joins a cohort up to :data:`JOIN_MARGIN` before its instant (later, the next
window's): an evaluate invocation that read the clock before then has written its members
(its timeout is far shorter) when the cohort's execution, named by the cohort, wakes at the
instant and walks the compiled program over the cohort's members. Members who diverge — the
other side of a branch, other split arms, another local-time instant, a quiet-hours
deferral, or the members beyond :data:`GROUP_LIMIT` — move to a **child group** that
continues in a child execution of the same state machine, started at that step and waiting
until its own instant (members whose next step is an exit simply leave). A group always
keeps the same side (a branch's ``then``, a split's first arm, the instant most members
share), so the compiled state machine's edges are the program's.

Plain functions and values: no AWS, no clock.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from kizuna.domain.customer import Customer
from kizuna.programs.compiler import entry_segment
from kizuna.programs.loader import next_of
from kizuna.programs.members import (
    GROUP_LIMIT,
    ROOT,
    Member,
)
from kizuna.programs.model import Program, SendStep, WaitStep
from kizuna.programs.steps import local_time_after, zone
from kizuna.runtime.config import KizunaConfig

JOIN_MARGIN = timedelta(minutes=2)  # > 2 x the evaluate function's timeout
STAMP = "%Y%m%dT%H%MZ"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(STAMP)


def ceil_to(at: datetime, minutes: int) -> datetime:
    """``at`` rounded up to a multiple of ``minutes`` since midnight UTC (already on one:
    itself, to the second)."""
    at = at.astimezone(UTC).replace(microsecond=0)
    midnight = at.replace(hour=0, minute=0, second=0)
    step = timedelta(minutes=minutes)
    elapsed = at - midnight
    n = -(-elapsed // step)  # ceiling division of timedeltas
    return midnight + n * step


def first_due(
    program: Program,
    entered_at: datetime,
    customer: Customer | None,
    cfg: KizunaConfig,
) -> tuple[datetime, str | None]:
    """(the cohort instant of an entry at ``entered_at``, the step the cohort's root
    execution starts at — None when it has nothing to do: nothing after the first wait, or
    an ``at_once`` program whose entry segment hands off at no wait)."""
    first = program.steps[0]
    window = program.cohort_minutes
    segment = entry_segment(program)
    if segment is not None:  # at_once: the cohort is due when the wait it hands off at ends
        if segment.wait is None or segment.resume is None:
            return ceil_to(entered_at + timedelta(seconds=1), window), None
        return wait_ends(segment.wait, entered_at, customer, cfg, window), segment.resume
    if isinstance(first, WaitStep):
        after = next_of(program, 0)
        return wait_ends(first, entered_at, customer, cfg, window), after[0] if after else None
    return ceil_to(entered_at + timedelta(seconds=1), window), first.id


def wait_ends(
    wait: WaitStep, since: datetime, customer: Customer | None, cfg: KizunaConfig, window: int
) -> datetime:
    """The cohort instant of a wait begun at ``since``: a local time exactly (to the
    minute), a fixed duration rounded up to the window."""
    if wait.until_local_time is not None:
        due = local_time_after(
            customer, since, int(wait.duration.total_seconds()), wait.until_local_time, cfg
        )
        return due.replace(second=0, microsecond=0)
    return ceil_to(since + wait.duration, window)


def next_window(now: datetime, minutes: int) -> datetime:
    """The first cohort instant an entry evaluated at ``now`` may still join: the end of the
    window after :data:`JOIN_MARGIN`."""
    return ceil_to(now + JOIN_MARGIN + timedelta(seconds=1), minutes)


def join_due(
    program: Program,
    entered_at: datetime,
    occurred_at: datetime,
    customer: Customer | None,
    cfg: KizunaConfig,
    now: datetime,
) -> datetime:
    """The cohort an entry evaluated at ``now`` joins (its instant).

    A program that starts with a wait counts it from the trigger's ``occurred_at``, not from
    the evaluation: a birthday (``occurred_at`` local midnight) put by the daily sweep at
    11:00 in New York still waits "until 09:00" *that day*. If that instant has passed (or
    is too close to join), the entry goes at the next window, provided it is still the same
    date, in the customer's time zone, as the instant it missed: the message is late that
    day, never the next. Later than that (a sweep catching up on a failed day, a trigger
    delivered days late, an import of old orders) the wait counts from the evaluation, as
    if the trigger had just happened: nothing stale at once, and nothing lost. Any other
    program is due by :func:`first_due` from ``entered_at``, the next window if that is too
    close."""
    window = program.cohort_minutes
    first = program.steps[0]
    if entry_segment(program) is None and isinstance(first, WaitStep) and occurred_at < entered_at:
        due = wait_ends(first, occurred_at, customer, cfg, window)
        if joinable(due, now):
            return due
        late = next_window(now, window)
        tz = zone(customer.time_zone if customer else None, cfg.contact.default_time_zone)
        if late.astimezone(tz).date() == due.astimezone(tz).date():
            return late
    due, _ = first_due(program, entered_at, customer, cfg)
    return due if joinable(due, now) else next_window(now, window)


def cohort_id(program_id: str, due: datetime) -> str:
    """The cohort (and its root execution's name): ``<program>-<due>`` (<= 55 characters)."""
    return f"{program_id}-{stamp(due)}"


def due_of(cohort: str) -> datetime:
    """The instant a cohort is due, from its id."""
    return datetime.strptime(cohort.rsplit("-", 1)[1], STAMP).replace(tzinfo=UTC)


def horizon(program: Program) -> timedelta:
    """At most how long a journey can take: every wait (and a day for each local time), and
    a day for each send's quiet-hours deferral."""
    total = timedelta()
    for step in program.steps:
        if isinstance(step, WaitStep):
            total += step.duration + (timedelta(days=1) if step.until_local_time else timedelta())
        elif isinstance(step, SendStep):
            total += timedelta(days=1)
    return total


def expires_at(program: Program, due: datetime) -> int:
    """When a cohort's items may go (DynamoDB TTL): 30 days after its journey's horizon."""
    return int((due + horizon(program) + timedelta(days=30)).timestamp())


def child_group(parent: str, step: str, key: str) -> str:
    """A child group's id: deterministic, so a retried step finds (and restarts) its own."""
    return hashlib.sha256(f"{parent}\x1f{step}\x1f{key}".encode()).hexdigest()[:12]


def run_name(cohort: str, group: str) -> str:
    """The execution that carries a group (<= 68 characters)."""
    return cohort if group == ROOT else f"{cohort}-{group}"


def joinable(due: datetime, now: datetime) -> bool:
    """May an entry evaluated at ``now`` still join the cohort due at ``due``?"""
    return now <= due - JOIN_MARGIN


def execution_input(
    program: str, cohort: str, group: str, step: str, at: datetime
) -> dict[str, Any]:
    """What a cohort execution starts with (no customer id: executions keep their input for
    90 days, an erased customer's id must not stay there)."""
    return {
        "program": program,
        "cohort": cohort,
        "group": group,
        "run": run_name(cohort, group),
        "step": step,
        "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def chunked(
    members: list[Member], limit: int = GROUP_LIMIT
) -> tuple[list[Member], list[list[Member]]]:
    """The first ``limit`` members (by sort key: the same on a retry) and the rest in chunks."""
    ordered = sorted(members, key=lambda m: m.sk)
    rest = ordered[limit:]
    return ordered[:limit], [rest[i : i + limit] for i in range(0, len(rest), limit)]
