"""Compile a program into Amazon States Language (a Step Functions Standard workflow) that
carries a **cohort** of entries (:mod:`kizuna.programs.cohorts`), one step at a time.

- an execution starts at its instant (``$.at``: the cohort's due instant, or a child
  group's): started then by a journey timer, a one-time EventBridge Scheduler schedule
  (:mod:`kizuna.adapters.stepfunctions`), so no Wait state precedes its first step;
  ``__dispatch`` (the StartAt, if child groups may start elsewhere) goes to the step the
  group starts at (``$.step``), the root group to the root's first step; a step the
  program no longer has (a child group started before a redeploy that renamed or removed
  it) goes to ``__removed``, which records each member leaving the journey there
  (``step_removed``) and ends the execution: never back to the first step;
- ``send`` -> one invocation of the send function over the group (contact policy, render,
  claim, deliver, record — per member); after a crash that outlasts every retry, the
  journey function records ``failed`` for each member the step did not decide for, and
  the journey goes on; that ``__failed`` task retries every error longer still, and if it
  too fails the execution fails (an alarm, and a redrive runs it again): it never goes on
  with members who have no ledger entry for the step;
- ``wait`` -> a Wait state; "until a local time" asks the journey function for the instant
  most of the group shares (members in other time zones continue in child groups); a
  program's first wait is the cohort's own: its execution starts when it ends;
- ``branch`` / ``split`` -> one invocation of the journey function, which moves the members
  of the other side / other arms to child groups; the group goes on along ``then`` / the
  first arm;
- ``exit`` -> nothing: the state before it ends the execution;
- a step and the step its group goes on to at once (a send and then a branch, a split or
  a wait until a local time, or a branch or split and then a send or another of them;
  never two sends) -> **one** task:
  the invocation runs both, one after the other, as the two tasks would (:data:`FUSED`).
  After a crash that outlasts every retry it goes to ``<step>__alone``, the first step
  by itself (its own retries, and a send's ``__failed``), then the second by itself: the
  same path as before, one transition more, only then. The second step keeps its own state
  for the groups that start there.

A ``start: at_once`` program (:func:`entry_segment`) runs its first task when the entry is
evaluated, outside Step Functions; its root starts after the wait that task hands off at
(``__dispatch``'s root rule), and the states before it stay for the child groups that start
there (quiet-hours deferrals, overflow).

A group with nobody left goes on (each later step is one query that finds no member): a
Choice after every step to end it early would cost a transition per step for every cohort.
ARNs are ``${...}`` placeholders, filled by CloudFormation
``DefinitionSubstitutions`` (see :data:`SUBSTITUTIONS`). Only reachable states are emitted,
and every compiled definition goes through :func:`kizuna.programs.asl.check_definition`
before it is returned: a compiler bug fails here, at synth, not at ``cdk deploy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kizuna.programs.asl import check_definition
from kizuna.programs.loader import next_of
from kizuna.programs.members import ROOT
from kizuna.programs.model import BranchStep, ExitStep, Program, SendStep, SplitStep, WaitStep

SUBSTITUTIONS = ("SendFunctionArn", "JourneyFunctionArn")
DISPATCH = "__dispatch"
END = "__end"
REMOVED = "__removed"  # __dispatch's Default: a group at a step the program no longer has
LAMBDA_RETRY = [
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
    },
    {
        "ErrorEquals": ["States.TaskFailed"],
        "IntervalSeconds": 10,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    },
]
# `<send step>__failed` records `failed` for the members of a step that crashed: it must not
# give up where the step did (a 5xx, a throttle, a timeout or the function's own error,
# retried for about 20 minutes); it is idempotent (claims: a member already decided for
# keeps its entry).
FAILED_RETRY = [
    LAMBDA_RETRY[0],
    {
        "ErrorEquals": ["States.ALL"],
        "IntervalSeconds": 10,
        "MaxAttempts": 7,
        "BackoffRate": 2.0,
    },
]
GROUP_INPUT = {
    "program.$": "$.program",
    "cohort.$": "$.cohort",
    "group.$": "$.group",
    "run.$": "$.run",
}


def _invoke(
    function: str,
    payload: dict[str, Any],
    rest: dict[str, Any],
    retry: list[dict[str, Any]] = LAMBDA_RETRY,
) -> dict[str, Any]:
    """A Lambda task over the group, with retries; ``rest`` (ResultSelector, ResultPath,
    Catch, Next, ...) completes it. The answer is dropped unless ``rest`` keeps it."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "${" + function + "}", "Payload": payload},
        "Retry": retry,
        "ResultPath": None,
        **rest,
    }


ALONE = "__alone"  # the unfused first step of a fused pair: the crash path


def _action(step: object) -> str | None:
    """What a function does for a step it runs by itself in one invocation (a local-time
    wait answers an instant: never fused)."""
    if isinstance(step, SendStep):
        return "send"
    if isinstance(step, BranchStep):
        return "check"
    if isinstance(step, SplitStep):
        return "split"
    return None


def _kept_next(program: Program, index: int) -> str | None:
    """Where the group goes on after step ``index`` (a branch's ``then``, a split's first
    arm; the members who go elsewhere moved to child groups)."""
    step = program.steps[index]
    if isinstance(step, BranchStep):
        return step.then
    if isinstance(step, SplitStep):
        return step.arms[0].next
    found = next_of(program, index)
    return found[0] if found else None


def fused_with(program: Program, index: int) -> str | None:
    """The step fused with step ``index`` into its task, if any: the step the group goes on
    to at once, when both are sends, branches or splits and at most one is a send (one
    invocation stays within one send's time)."""
    step = program.steps[index]
    first = _action(step)
    if first is None or (index == 0 and isinstance(step, WaitStep)):
        return None
    target = _kept_next(program, index)
    if target is None:
        return None
    second = _second_action(program.step(target))
    if second is None or (first == "send" and second == "send"):
        return None
    return target


def _second_action(step: object) -> str | None:
    """What a step does as the second of a fused pair: also a wait until a local time (the
    task answers its instant; its Wait follows)."""
    if isinstance(step, WaitStep) and step.until_local_time is not None:
        return "local_time"
    return _action(step)


@dataclass(frozen=True)
class EntrySegment:
    """What an ``at_once`` program runs when an entry is evaluated: its first task (the
    first step, and the step fused after it), then where the group goes on.

    - ``wait``: the wait the group hands off at (a fixed wait after the task, or the local
      time fused into it): the root execution of the cohort due when it ends carries the
      group on, from ``resume``;
    - no wait, ``resume`` set: the group goes on at once at ``resume`` (a child execution);
    - neither: the journey is over after the task."""

    step: str
    action: str
    then: tuple[tuple[str, str], ...]  # (action, step) fused after it
    wait: WaitStep | None
    resume: str | None

    @property
    def last(self) -> str:
        """The step whose invocation hands the group off."""
        return self.then[-1][1] if self.then else self.step

    def request(self, program: str, cohort: str, group: str, run: str) -> dict[str, Any]:
        """What evaluate invokes the function with (a
        :class:`kizuna.services.contracts.GroupRequest`)."""
        return {
            "action": self.action,
            "program": program,
            "cohort": cohort,
            "group": group,
            "run": run,
            "step": self.step,
            "then": [{"action": a, "step": s} for a, s in self.then],
            "entry": True,
        }

    @property
    def function(self) -> str:
        """The function that runs it: the send function if it sends."""
        actions = {self.action, *(a for a, _ in self.then)}
        return "send" if "send" in actions else "journey"


def entry_segment(program: Program) -> EntrySegment | None:
    """An ``at_once`` program's entry segment (None for ``window`` programs)."""
    if program.start != "at_once":
        return None
    first = program.steps[0]
    action = _action(first)
    assert action is not None, "the model refuses at_once for a program starting with a wait"
    index = {s.id: i for i, s in enumerate(program.steps)}
    fused = fused_with(program, 0)
    then: tuple[tuple[str, str], ...] = ()
    last = first.id
    if fused is not None:
        second = _second_action(program.step(fused))
        assert second is not None
        then, last = ((second, fused),), fused
    last_step = program.step(last)
    if isinstance(last_step, WaitStep):  # a local time, fused: the task answers its instant
        after = next_of(program, index[last])
        return EntrySegment(first.id, action, then, last_step, _onward(program, after))
    target = _kept_next(program, index[last])
    if target is None or isinstance(program.step(target), ExitStep):
        return EntrySegment(first.id, action, then, None, None)
    target_step = program.step(target)
    if isinstance(target_step, WaitStep) and target_step.until_local_time is not None:
        # not fused (the task is a pair already): no instant answered; the group goes on at
        # once at the wait, whose own task puts each member at their local time
        return EntrySegment(first.id, action, then, None, target)
    if isinstance(target_step, WaitStep):
        after = next_of(program, index[target])
        return EntrySegment(first.id, action, then, target_step, _onward(program, after))
    return EntrySegment(first.id, action, then, None, target)


def _onward(program: Program, after: list[str]) -> str | None:
    """The step after a wait, unless the journey ends there."""
    if not after or isinstance(program.step(after[0]), ExitStep):
        return None
    return after[0]


def start_step(program: Program) -> str | None:
    """Where a cohort's root execution starts: after the first wait (the cohort's due
    instant is that wait's end); for an ``at_once`` program, after the wait its entry
    segment hands off at (:func:`entry_segment`); else at the first step."""
    segment = entry_segment(program)
    if segment is not None:
        return segment.resume if segment.wait is not None else None
    if isinstance(program.steps[0], WaitStep):
        found = next_of(program, 0)
        return found[0] if found else None
    return program.steps[0].id


def child_starts(program: Program) -> list[str]:
    """The steps a child group can start at (:mod:`kizuna.services.cohort`): any step a
    function runs (a group over the limit splits there; a send defers there), a branch's
    and a split's targets, the step after a wait until a local time, and where an
    ``at_once`` program's entry group goes on (:func:`entry_segment`)."""
    found: list[str] = []
    for i, step in enumerate(program.steps):
        runs = isinstance(step, SendStep | BranchStep | SplitStep) or (
            isinstance(step, WaitStep) and step.until_local_time is not None
        )
        if runs and not (i == 0 and isinstance(step, WaitStep)):  # a cohort's own wait
            found.append(step.id)
        if isinstance(step, BranchStep):
            found += [t for t in (step.then, step.otherwise) if t]
        elif isinstance(step, SplitStep):
            found += [a.next for a in step.arms if a.next]
        elif isinstance(step, WaitStep) and step.until_local_time is not None:
            found += next_of(program, i)
    segment = entry_segment(program)
    if segment is not None and segment.resume is not None:  # where an entry group goes on
        found.append(segment.resume)
    return list(dict.fromkeys(found))


def compile_program(program: Program) -> dict[str, Any]:
    """The program's ASL definition; raises :class:`kizuna.programs.asl.InvalidDefinition`
    if Step Functions would refuse it."""
    start_at, states = _states(program)
    definition = {
        "Comment": f"Kizuna program {program.id}: {program.name} (one execution per cohort)",
        "StartAt": start_at,
        "States": states,
    }
    check_definition(definition, name=f"program {program.id}")
    return definition


def _states(program: Program) -> tuple[str, dict[str, Any]]:
    """Where an execution starts, and the states: the dispatch, every step's states, then
    ``__end`` if something leads there.

    An ``exit`` step is no state of its own: the state before it ends the execution
    (``End``), one transition fewer per execution; a Catch, which needs a state to go to,
    goes to ``__end``."""
    exits = {s.id for s in program.steps if isinstance(s, ExitStep)}
    first = start_step(program)

    def then(target: str | None) -> dict[str, Any]:
        """How a state goes on to ``target`` (None: the journey is over)."""
        return {"End": True} if target is None or target in exits else {"Next": target}

    def catch_to(target: str | None) -> str:
        return END if target is None or target in exits else target

    starts = [sid for sid in child_starts(program) if sid not in exits]
    # the first state is where an execution starts (StartAt): the dispatch if a child group
    # may start at another step than the root's, else the root's first step; an execution
    # is started at its instant (a journey timer), so no Wait comes before it
    states: dict[str, Any] = {}
    if any(sid != first for sid in starts):
        # every step a group may start at by name, and the root group at the root's first
        # step (whatever its $.step: a cohort due before a redeploy that renamed it);
        # anything else is a step this program no longer has: never the first step again
        choices = [{"Variable": "$.step", "StringEquals": sid, "Next": sid} for sid in starts]
        if first is not None:
            choices.append({"Variable": "$.group", "StringEquals": ROOT, "Next": catch_to(first)})
        states[DISPATCH] = {"Type": "Choice", "Choices": choices, "Default": REMOVED}
        states[REMOVED] = _invoke(
            "JourneyFunctionArn",
            {**GROUP_INPUT, "action": "removed", "step.$": "$.step"},
            {"End": True},
            FAILED_RETRY,
        )
        start_at = DISPATCH
    else:
        start_at = catch_to(first)
    if start_at == END:
        states[END] = {"Type": "Succeed"}  # nothing to run (never started)

    def after(i: int) -> str | None:
        found = next_of(program, i)
        return found[0] if found else None

    def single(i: int, name: str) -> dict[str, Any]:
        """Step ``i`` by itself, as state ``name`` (and a send's ``__failed``)."""
        step = program.steps[i]
        sid = step.id
        found: dict[str, Any] = {}
        if isinstance(step, SendStep):
            found[name] = _invoke(
                "SendFunctionArn",
                {**GROUP_INPUT, "action": "send", "step": sid},
                {
                    "Catch": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "ResultPath": "$.error",
                            "Next": f"{sid}__failed",
                        }
                    ],
                    **then(after(i)),
                },
            )
            # a crash after all retries (kept in $.error): every member the step did not
            # decide for gets a `failed` ledger entry (never silently none), and the
            # journey goes on. No Catch: should recording fail too (after FAILED_RETRY),
            # the execution fails, loudly, rather than go on without those entries
            found[f"{sid}__failed"] = _invoke(
                "JourneyFunctionArn",
                {**GROUP_INPUT, "action": "failed", "step": sid},
                then(after(i)),
                FAILED_RETRY,
            )
        elif isinstance(step, BranchStep | SplitStep):
            found[name] = _invoke(
                "JourneyFunctionArn",
                {**GROUP_INPUT, "action": _action(step), "step": sid},
                then(_kept_next(program, i)),
            )
        return found

    index = {s.id: i for i, s in enumerate(program.steps)}
    for i, step in enumerate(program.steps):
        sid = step.id
        if i == 0 and isinstance(step, WaitStep):
            continue  # a wait-first program's cohort is due when that wait ends: its timer
        fused = fused_with(program, i)
        if fused is not None:
            first, second = _action(step), _second_action(program.step(fused))
            # after the pair: where the second step goes on; a local time's Wait
            onward = (
                {
                    "ResultSelector": {"at.$": "$.Payload.at"},
                    "ResultPath": "$.wait",
                    "Next": f"{fused}__wait",
                }
                if second == "local_time"
                else then(_kept_next(program, index[fused]))
            )
            states[sid] = _invoke(
                "SendFunctionArn" if "send" in (first, second) else "JourneyFunctionArn",
                {
                    **GROUP_INPUT,
                    "action": first,
                    "step": sid,
                    "then": [{"action": second, "step": fused}],
                },
                {
                    "Catch": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "ResultPath": "$.error",
                            "Next": sid + ALONE,
                        }
                    ],
                    **onward,
                },
            )
            states.update(single(i, sid + ALONE))
        elif isinstance(step, SendStep | BranchStep | SplitStep):
            states.update(single(i, sid))
        elif isinstance(step, WaitStep):
            seconds = int(step.duration.total_seconds())
            if step.until_local_time is None:
                states[sid] = {"Type": "Wait", "Seconds": seconds, **then(after(i))}
            else:
                states[sid] = _invoke(
                    "JourneyFunctionArn",
                    {
                        **GROUP_INPUT,
                        "action": "local_time",
                        "step": sid,
                        "after_seconds": seconds,
                        "local_time": step.until_local_time,
                    },
                    {
                        "ResultSelector": {"at.$": "$.Payload.at"},
                        "ResultPath": "$.wait",
                        "Next": f"{sid}__wait",
                    },
                )
                states[f"{sid}__wait"] = {
                    "Type": "Wait",
                    "TimestampPath": "$.wait.at",
                    **then(after(i)),
                }
    if END not in states and END in {t for state in states.values() for t in _transitions(state)}:
        states[END] = {"Type": "Succeed"}
    return start_at, states


def _transitions(state: dict[str, Any]) -> list[str]:
    """The states ``state`` can go to (Next, Default, Choices and Catch)."""
    found = [state[key] for key in ("Next", "Default") if key in state]
    for entry in state.get("Choices", []) + state.get("Catch", []):
        found.append(entry["Next"])
    return found


def estimated_transitions(program: Program) -> dict[str, int]:
    """States a cohort's root execution enters on its shortest and longest path (no
    retries, no deferrals, the group never empty): what a cohort costs in transitions,
    whatever its size. Members who diverge cost a child execution: the dispatch plus the rest
    of their path."""
    if start_step(program) is None and entry_segment(program) is not None:
        return {"min": 0, "max": 0}  # an at_once program's root never runs: none to hand off to
    asl = compile_program(program)
    states = asl["States"]
    memo: dict[str, tuple[int, int]] = {}

    def walk(name: str) -> tuple[int, int]:
        if name in memo:
            return memo[name]
        state = states[name]
        nexts: list[str] = []
        if name == DISPATCH:  # the root's start (none: the root never runs)
            root = [c["Next"] for c in state["Choices"] if c["Variable"] == "$.group"]
            nexts = root or [state["Default"]]
        elif state["Type"] == "Choice":
            nexts = [c["Next"] for c in state["Choices"]] + [state["Default"]]
        elif "Next" in state:
            nexts = [state["Next"]]
        if not nexts:
            memo[name] = (1, 1)
        else:
            paths = [walk(n) for n in dict.fromkeys(nexts)]
            memo[name] = (1 + min(p[0] for p in paths), 1 + max(p[1] for p in paths))
        return memo[name]

    lo, hi = walk(asl["StartAt"])
    return {"min": lo, "max": hi}
