"""Load and validate programs: every problem is reported with file, step and a clear
message, before anything is synthesized or deployed."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from kizuna.events import DERIVED_EVENT_TYPES, INBOUND_EVENT_TYPES, detail_fields
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.programs.issues import IssuesError, load_folder, pydantic_errors, read_yaml
from kizuna.programs.model import (
    BranchStep,
    EngagementEvent,
    Program,
    SendStep,
    SplitStep,
    WaitStep,
    successors,
)
from kizuna.programs.pattern_rules import condition_problems, known
from kizuna.programs.value_rules import event_value_rules, value_problems
from kizuna.programs.view import SEGMENTS_FIELD
from kizuna.programs.view_rules import view_condition_problems

# What may start a program or count as its goal (built in; a shop's declared events too,
# see trigger_events and goal_events).
TRIGGER_EVENTS = frozenset(DERIVED_EVENT_TYPES) | {
    "order.placed",
    "product.viewed",
    "cart.updated",
    "app.opened",
}
GOAL_EVENTS = TRIGGER_EVENTS | frozenset(INBOUND_EVENT_TYPES)


def trigger_events(vocab: Vocabulary = BUILTIN) -> frozenset[str]:
    """What may start a program: :data:`TRIGGER_EVENTS` and the shop's declared events."""
    return TRIGGER_EVENTS | frozenset(vocab.events)


def goal_events(vocab: Vocabulary = BUILTIN) -> frozenset[str]:
    """What may count as a program's goal: :data:`GOAL_EVENTS` and the declared events."""
    return GOAL_EVENTS | frozenset(vocab.events)


def unknown_event(where: str, event: str, allowed: frozenset[str]) -> str:
    """``trigger.event: unknown event type 'wishlist.add'; did you mean ...``, with where a
    shop's own event is declared."""
    return (
        f"{where}: unknown event type {event!r}; {known(event, dict.fromkeys(allowed))} "
        "(a shop's own event is declared in the configuration's custom.events)"
    )


@dataclass(frozen=True)
class ProgramIssue:
    file: str
    step: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [step {self.step}]" if self.step else "")
        return f"{where}: {self.message}"


class ProgramError(IssuesError[ProgramIssue]):
    """A program that cannot be deployed, with every issue."""


class TemplateCatalog(Protocol):
    def parts_missing(self, program: str, template: str, channel: str) -> list[str]: ...

    def default_locale_problem(self, program: str, template: str) -> str | None: ...


def next_of(program: Program, index: int) -> list[str]:
    """Successors of step ``index``; a send or wait without ``next`` goes to the next step
    in the list."""
    step = program.steps[index]
    found = successors(step)
    if (
        isinstance(step, SendStep | WaitStep)
        and step.next is None
        and index + 1 < len(program.steps)
    ):
        found = [program.steps[index + 1].id]
    return found


def _pydantic_issues(file: str, raw: Any, exc: ValidationError) -> list[ProgramIssue]:
    issues = []
    errors = pydantic_errors(exc, union="step", choices="send, wait, branch, split, exit")
    for loc, message in errors:
        step = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            try:
                step = str(raw["steps"][loc[1]].get("id", f"#{loc[1] + 1}"))
            except (KeyError, IndexError, TypeError, AttributeError):
                step = f"#{loc[1] + 1}"
            loc = loc[2:]
            if loc and loc[0] in {"send", "wait", "branch", "split", "exit"}:
                loc = loc[1:]
        field = ".".join(str(p) for p in loc)
        issues.append(ProgramIssue(file, step, f"{field}: {message}" if field else message))
    return issues


def check_graph(file: str, program: Program) -> list[ProgramIssue]:
    issues: list[ProgramIssue] = []
    ids = [s.id for s in program.steps]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            issues.append(ProgramIssue(file, sid, "duplicate step id"))
        seen.add(sid)
    index = {s.id: i for i, s in enumerate(program.steps)}
    for i, step in enumerate(program.steps):
        for target in next_of(program, i):
            if target not in index:
                issues.append(ProgramIssue(file, step.id, f"goes to unknown step {target!r}"))
        if isinstance(step, BranchStep) and step.then is None and step.otherwise is None:
            issues.append(ProgramIssue(file, step.id, "a branch needs then or else"))
    if issues:
        return issues
    # reachability from the first step
    reached: set[str] = set()
    stack = [program.steps[0].id]
    while stack:
        sid = stack.pop()
        if sid in reached:
            continue
        reached.add(sid)
        stack.extend(next_of(program, index[sid]))
    for step in program.steps:
        if step.id not in reached:
            issues.append(ProgramIssue(file, step.id, "unreachable from the first step"))
    # cycles (a journey must end)
    state: dict[str, int] = {}

    def visit(sid: str, path: list[str]) -> None:
        state[sid] = 1
        for nxt in next_of(program, index[sid]):
            if state.get(nxt) == 1:
                cycle = " -> ".join([*path[path.index(nxt) :], nxt]) if nxt in path else nxt
                issues.append(ProgramIssue(file, sid, f"cycle: {cycle}"))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[sid] = 2

    visit(program.steps[0].id, [program.steps[0].id])
    if not issues:
        issues += _execution_length_issues(file, program, index)
    return issues


# Step Functions stops a Standard execution after one year; a day is kept for the retries,
# the journey timer's delay and the steps' own time.
LONGEST_EXECUTION = timedelta(days=364)


def _execution_length_issues(
    file: str, program: Program, index: dict[str, int]
) -> list[ProgramIssue]:
    """A path whose waits add up to more than one execution may last: the steps after them
    would never run (the execution is stopped, ``TIMED_OUT``). The first step of a program
    that starts with a wait is the cohort's journey timer, not a Wait state (its execution
    starts when it ends, local time included): not counted. Every other wait is, an
    ``at_once`` program's first included (a group its entry deferred for quiet hours waits
    it in its own execution); a wait until a local time counts a day for the local time (a
    group waits up to a day for it)."""
    skip_first = isinstance(program.steps[0], WaitStep)
    memo: dict[tuple[str, bool], tuple[timedelta, list[str]]] = {}

    def longest(sid: str, skipping: bool) -> tuple[timedelta, list[str]]:
        if (sid, skipping) in memo:
            return memo[(sid, skipping)]
        step = program.steps[index[sid]]
        own, onward = timedelta(), False
        if isinstance(step, WaitStep) and not skipping:
            own = step.duration + (timedelta(days=1) if step.until_local_time else timedelta())
        best: tuple[timedelta, list[str]] = (timedelta(), [])
        for nxt in next_of(program, index[sid]):
            best = max(best, longest(nxt, onward), key=lambda found: (found[0], len(found[1])))
        memo[(sid, skipping)] = (own + best[0], [sid, *best[1]])
        return memo[(sid, skipping)]

    total, path = longest(program.steps[0].id, skip_first)
    if total <= LONGEST_EXECUTION:
        return []
    days = total / timedelta(days=1)
    return [
        ProgramIssue(
            file,
            None,
            f"the waits on the path {' -> '.join(path)} add up to {days:g} days in one "
            f"execution (a first step's wait is the journey timer's, a local time counts a "
            f"day); "
            f"Step Functions stops an execution after a year, so the steps after them would "
            f"never run: at most {LONGEST_EXECUTION.days} days",
        )
    ]


# Channels whose messages report opens and clicks: email (SES open and click events, stamped
# on the ledger entry by the feedback function): what split winners measure. Push reports opens
# only, LINE clicks only (BRANCH_CHANNELS), SMS neither.
ENGAGEMENT_CHANNELS: frozenset[str] = frozenset({"email"})
# What an engagement branch may test, by channel: email reports opens and clicks (SES); push
# reports opens (the app's ``push.opened``, stamped by ingest) and has no link to click; LINE
# reports clicks of its tracked links (kizuna.delivery.links), never opens; a card reports
# both (the shop's site marks it seen and clicked: kizuna.services.cards).
BRANCH_CHANNELS: dict[EngagementEvent, frozenset[str]] = {
    EngagementEvent.OPENED: frozenset({"card", "email", "push"}),
    EngagementEvent.CLICKED: frozenset({"card", "email", "line"}),
}


def _path_avoiding(program: Program, avoid: str, goal: str) -> list[str] | None:
    """A path from the first step to ``goal`` that does not pass ``avoid`` (None: every
    path passes it)."""
    index = {s.id: i for i, s in enumerate(program.steps)}
    first = program.steps[0].id
    stack: list[list[str]] = [[first]] if first != avoid else []
    seen: set[str] = set()
    while stack:
        path = stack.pop()
        sid = path[-1]
        if sid == goal:
            return path
        if sid in seen:
            continue
        seen.add(sid)
        stack += [[*path, n] for n in next_of(program, index[sid]) if n != avoid]
    return None


def _shortest_wait(program: Program, start: str, goal: str) -> tuple[float, list[str]] | None:
    """The least fixed waiting (hours: the waits' durations; a local time of day may add to
    it) on any path from ``start`` to ``goal``, and that path (None: no path)."""
    index = {s.id: i for i, s in enumerate(program.steps)}
    memo: dict[str, tuple[float, list[str]] | None] = {}

    def best(sid: str) -> tuple[float, list[str]] | None:
        if sid == goal:
            return 0.0, [sid]
        if sid not in memo:
            step = program.steps[index[sid]]
            own = step.duration.total_seconds() / 3600 if isinstance(step, WaitStep) else 0.0
            found = [b for b in map(best, next_of(program, index[sid])) if b is not None]
            memo[sid] = (
                min(((own + h, [sid, *p]) for h, p in found), key=lambda b: b[0]) if found else None
            )
        return memo[sid]

    return best(start)


def check_engagement(file: str, program: Program) -> list[ProgramIssue]:
    """An engagement branch names a send step that every path to the branch passes, whose
    channels report the event (opened: email or push; clicked: email only), with at least
    ``within_hours`` of waiting between them (else the branch would decide while the window
    is still open); ``converted`` needs the program's goal. Call on a graph :func:`check_graph`
    accepted (no cycle)."""
    issues: list[ProgramIssue] = []
    for branch in program.steps:
        if not isinstance(branch, BranchStep) or branch.engagement is None:
            continue
        eng = branch.engagement
        try:
            target = program.step(eng.step)
        except KeyError:
            issues.append(ProgramIssue(file, branch.id, f"engagement.step: no step {eng.step!r}"))
            continue
        if not isinstance(target, SendStep):
            issues.append(
                ProgramIssue(
                    file,
                    branch.id,
                    f"engagement.step: {eng.step!r} is a {target.type} step; name a send step",
                )
            )
            continue
        around = _path_avoiding(program, eng.step, branch.id)
        if around is not None:
            issues.append(
                ProgramIssue(
                    file,
                    branch.id,
                    f"engagement.step: {eng.step!r} must come before the branch on every path "
                    f"to it; this one does not pass it: {' -> '.join(around)}",
                )
            )
            continue
        if eng.event != EngagementEvent.CONVERTED:
            seen = BRANCH_CHANNELS[eng.event]
            blind = [str(c) for c in target.channels if str(c) not in seen]
            if blind:
                *most, last = sorted(seen)
                on = f"{', '.join(most)} or {last}"
                issues.append(
                    ProgramIssue(
                        file,
                        branch.id,
                        f"engagement.event: {eng.event.value!r} is measured for {on} only "
                        f"(SES open and click events, the app's push.opened, LINE tracked links, "
                        f"cards marked by the shop's site); "
                        f"step {eng.step!r} may send on {', '.join(blind)}, whose messages would "
                        f"always count as not {eng.event.value}: send that step on {on} "
                        f"only, or test 'converted'",
                    )
                )
        elif program.goal is None:
            issues.append(
                ProgramIssue(
                    file,
                    branch.id,
                    "engagement.event: 'converted' means the program's goal was reached; "
                    "this program has no goal",
                )
            )
        shortest = _shortest_wait(program, eng.step, branch.id)
        if shortest is not None and shortest[0] < eng.within_hours:
            hours, path = shortest
            issues.append(
                ProgramIssue(
                    file,
                    branch.id,
                    f"engagement.within_hours: the branch can run {hours:g} h after "
                    f"{eng.step!r} ({' -> '.join(path)}), while its {eng.within_hours} h window "
                    f"is still open; wait at least {eng.within_hours} h between them",
                )
            )
    return issues


def check_split_winners(file: str, program: Program) -> list[ProgramIssue]:
    """A split's ``winner`` needs something to measure: ``opened`` and ``clicked`` the email
    that every arm sends next (each arm's ``next`` a send step on email only, as SES reports
    opens and clicks for email alone); ``goal`` the program's goal."""
    issues: list[ProgramIssue] = []
    for split in program.steps:
        if not isinstance(split, SplitStep) or split.winner is None:
            continue
        metric = split.winner.metric
        if metric == "goal":
            if program.goal is None:
                issues.append(
                    ProgramIssue(
                        file,
                        split.id,
                        "winner.metric: 'goal' means the program's goal was reached; "
                        "this program has no goal",
                    )
                )
            continue
        for arm in split.arms:
            target = None
            if arm.next is not None:
                try:
                    target = program.step(arm.next)
                except KeyError:
                    continue  # check_graph reports the dangling id
            if not isinstance(target, SendStep):
                what = "ends the journey" if target is None else f"goes to a {target.type} step"
                issues.append(
                    ProgramIssue(
                        file,
                        split.id,
                        f"winner.metric: {metric!r} is measured on the email each arm sends "
                        f"next; arm {arm.name!r} {what}: make every arm's next step an email "
                        f"send, or choose 'goal'",
                    )
                )
                continue
            blind = [str(c) for c in target.channels if str(c) not in ENGAGEMENT_CHANNELS]
            if blind:
                issues.append(
                    ProgramIssue(
                        file,
                        split.id,
                        f"winner.metric: {metric!r} is measured for email only (SES open and "
                        f"click events); arm {arm.name!r} sends step {target.id!r}, which may "
                        f"send on {', '.join(blind)}: send it on email only, or choose 'goal'",
                    )
                )
    return issues


def segment_references(pattern: Any) -> list[Any]:
    """Values a condition matches the view's ``segments`` field against (in ``$or`` too)."""
    found: list[Any] = []
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            if key == SEGMENTS_FIELD:
                found += value if isinstance(value, list) else [value]
            elif key == "$or" and isinstance(value, list):
                for alternative in value:
                    found += segment_references(alternative)
    return found


def check_segments(
    file: str, program: Program, segment_names: Collection[str]
) -> list[ProgramIssue]:
    """Audience and branch conditions may only name segments that exist, by exact name."""
    issues: list[ProgramIssue] = []
    conditions: list[tuple[str | None, Any]] = [(None, program.audience)]
    conditions += [
        (s.id, s.condition)
        for s in program.steps
        if isinstance(s, BranchStep) and s.condition is not None
    ]
    for step_id, condition in conditions:
        for ref in segment_references(condition):
            if not isinstance(ref, str):
                issues.append(
                    ProgramIssue(file, step_id, f"segments: name segments exactly, got {ref!r}")
                )
            elif ref not in segment_names:
                known = ", ".join(sorted(segment_names)) or "none defined"
                issues.append(
                    ProgramIssue(file, step_id, f"segments: no segment {ref!r} ({known})")
                )
    return issues


def check_conditions(
    file: str, program: Program, vocab: Vocabulary = BUILTIN
) -> list[ProgramIssue]:
    """EventBridge's own rules on every condition: strictly (size included) on the trigger and
    goal, which go into the bus rule's pattern; the same syntax rules on audience and branches,
    which only Kizuna evaluates. Every field a condition names must exist: in the customer
    view for audience and branches (the shop's declared attributes and counters included:
    :mod:`kizuna.programs.view_rules`), in the event's detail for trigger and goal (a
    declared event's own fields); and every value compared with a field must be one it can
    hold (:mod:`kizuna.programs.value_rules`: ``total: ["5000"]`` is not a number,
    ``direction: [upp]`` not a direction)."""
    issues: list[ProgramIssue] = []
    events = [(program.trigger.event, "trigger.conditions", program.trigger.conditions)]
    if program.goal:
        events.append((program.goal.event, "goal.conditions", program.goal.conditions))
    for event, where, condition in events:
        fields = detail_fields(event, vocab)
        problems = condition_problems(condition, where, to_eventbridge=True, fields=fields)
        if not problems and fields is not None:
            problems = value_problems(condition, where, event_value_rules(event, vocab))
        issues += [ProgramIssue(file, None, problem) for problem in problems]
    views: list[tuple[str | None, str, dict[str, Any]]] = [(None, "audience", program.audience)]
    views += [
        (s.id, "condition", s.condition)
        for s in program.steps
        if isinstance(s, BranchStep) and s.condition is not None
    ]
    issues += [
        ProgramIssue(file, step_id, problem)
        for step_id, where, condition in views
        for problem in view_condition_problems(condition, where, vocab)
    ]
    return issues


def unknown_topic(where: str, topic: str, vocab: Vocabulary) -> str | None:
    """``topic: unknown topic 'promo' (declared: ...)`` if ``topic`` is not declared."""
    declared = vocab.preferences.names
    if topic in declared:
        return None
    return (
        f"{where}: unknown topic {topic!r} (declared: {', '.join(declared)}; topics are "
        "declared in the configuration's preferences.topics)"
    )


def _topic_issues(file: str, program: Program, vocab: Vocabulary) -> list[ProgramIssue]:
    issues = []
    if program.topic is not None and (problem := unknown_topic("topic", program.topic, vocab)):
        issues.append(ProgramIssue(file, None, problem))
    for step in program.steps:
        if not isinstance(step, SendStep) or step.topic is None:
            continue
        if problem := unknown_topic("topic", step.topic, vocab):
            issues.append(ProgramIssue(file, step.id, problem))
    return issues


def check_semantics(
    file: str, program: Program, templates: TemplateCatalog | None, vocab: Vocabulary = BUILTIN
) -> list[ProgramIssue]:
    issues: list[ProgramIssue] = []
    triggers = trigger_events(vocab)
    if program.trigger.event not in triggers:
        issues.append(
            ProgramIssue(
                file, None, unknown_event("trigger.event", program.trigger.event, triggers)
            )
        )
    goals = goal_events(vocab)
    if program.goal and program.goal.event not in goals:
        issues.append(
            ProgramIssue(file, None, unknown_event("goal.event", program.goal.event, goals))
        )
    if Path(file).stem != program.id:
        issues.append(ProgramIssue(file, None, f"id {program.id!r} must match the file name"))
    if not any(isinstance(s, SendStep) for s in program.steps):
        issues.append(ProgramIssue(file, None, "a program needs at least one send step"))
    issues += _topic_issues(file, program, vocab)
    for step in program.steps:
        if isinstance(step, SplitStep) and sum(a.weight for a in step.arms) != 100:
            issues.append(ProgramIssue(file, step.id, "split weights must add up to 100"))
        if isinstance(step, SendStep) and templates is not None:
            if (problem := templates.default_locale_problem(program.id, step.template)) is not None:
                issues.append(ProgramIssue(file, step.id, problem))
            for channel in step.channels:
                for part in templates.parts_missing(program.id, step.template, channel):
                    issues.append(
                        ProgramIssue(
                            file, step.id, f"template {step.template!r} has no {part} for {channel}"
                        )
                    )
    return issues


def check_webhooks(file: str, program: Program, webhooks: Collection[str]) -> list[ProgramIssue]:
    """Send steps naming a webhook endpoint the configuration does not declare."""
    known = ", ".join(sorted(webhooks)) or "none declared"
    return [
        ProgramIssue(
            file, step.id, f"webhook {step.webhook!r} is not a configured endpoint ({known})"
        )
        for step in program.steps
        if isinstance(step, SendStep) and step.webhook is not None and step.webhook not in webhooks
    ]


def load_program(
    path: Path,
    templates: TemplateCatalog | None = None,
    segment_names: Collection[str] | None = None,
    vocab: Vocabulary = BUILTIN,
    webhooks: Collection[str] | None = None,
) -> Program:
    """Parse and validate one program file; raise ProgramError with every issue found.
    ``vocab`` is the shop's declared vocabulary (``vocabulary(config)``): its events may be
    triggers and goals, its attributes and counters named in audiences and branches."""
    file = str(path)
    raw = read_yaml(path, lambda message: ProgramError([ProgramIssue(file, None, message)]))
    if not isinstance(raw, dict):
        raise ProgramError([ProgramIssue(file, None, "a program is a YAML mapping")])
    try:
        program = Program.model_validate(raw)
    except ValidationError as exc:
        raise ProgramError(_pydantic_issues(file, raw, exc)) from exc
    issues = check_graph(file, program)
    if not issues:  # engagement checks walk the paths: only on a sound graph
        issues += check_engagement(file, program)
    issues += check_split_winners(file, program)
    issues += check_semantics(file, program, templates, vocab)
    issues += check_conditions(file, program, vocab)
    if segment_names is not None:
        issues += check_segments(file, program, segment_names)
    if webhooks is not None:
        issues += check_webhooks(file, program, webhooks)
    if issues:
        raise ProgramError(issues)
    return program


def load_programs(
    directory: Path,
    templates: TemplateCatalog | None = None,
    segment_names: Collection[str] | None = None,
    vocab: Vocabulary = BUILTIN,
    webhooks: Collection[str] | None = None,
) -> tuple[list[Program], list[ProgramIssue]]:
    """All programs in a folder, and every issue across them (duplicates included). With
    ``segment_names``, conditions naming an unknown segment are issues too; with
    ``webhooks`` (the configuration's endpoint names), a step naming another endpoint;
    ``vocab`` as in :func:`load_program`."""
    programs, issues = load_folder(
        directory,
        lambda path: load_program(path, templates, segment_names, vocab, webhooks),
        ProgramError,
    )
    # an id is its file's name (load_program refuses another): two programs of one id are
    # <id>.yaml and <id>.yml
    seen: set[str] = set()
    for p in programs:
        if p.id in seen:
            issues.append(
                ProgramIssue(
                    str(directory / f"{p.id}.yml"),
                    None,
                    f"program id {p.id!r} is also used by {directory / f'{p.id}.yaml'}: "
                    f"keep one of the two files",
                )
            )
        seen.add(p.id)
    return programs, issues


def enabled(programs: Iterable[Program]) -> list[Program]:
    return [p for p in programs if p.enabled]
