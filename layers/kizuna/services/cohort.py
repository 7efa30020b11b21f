"""A cohort execution's steps (:mod:`kizuna.programs.cohorts`): one invocation per step over
one group of members, deciding per member on fresh state.

- ``send`` (the send function): every member's message through
  :meth:`kizuna.services.send.SendService.send_many`; members deferred by quiet hours continue
  in child groups at the same step, members whose goal was reached leave;
- ``check`` (a branch: a condition on the fresh customer view, or engagement with an earlier
  send's message read from the ledger), ``split``, ``local_time`` (the journey function): the
  members who go elsewhere (``else``, another arm, another local-time instant) continue in
  child groups.

Every step first splits a group of more than :data:`GROUP_LIMIT` members into child groups
of at most that many. Child groups are written (header, then members) before any child
execution starts, and the child executions are (re)started from the headers, so a step
retried after a crash finds and starts its own children, and a member is never in two
groups. A group with no member left goes on doing nothing. Each member's branch, split and
local-time decision is recorded in the activity table (``STEP#<entry>#<step>``), naming the
execution that carries them on.

A step the deployed program no longer has (renamed or removed by a redeploy while an
execution of the earlier definition was under way, or a child group started at it before
the redeploy, which the state machine's ``__dispatch`` sends to ``removed``): its members
leave the journey there, each with the decision ``exit``, reason ``step_removed``, and the
execution goes on over nobody (never a KeyError, never the program's first step again). A
step that kept its id but changed its type (a send became a branch) asked for by an
execution of the earlier definition: the same, with reason ``step_changed``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from kizuna.domain.customer import UNREADABLE_CUSTOMER, Customer, unreadable_of
from kizuna.domain.timestamps import iso, parse_time
from kizuna.ports import Claim, Claimed
from kizuna.programs.cohorts import (
    child_group,
    chunked,
    due_of,
    execution_input,
    expires_at,
    joinable,
    run_name,
    stamp,
    wait_ends,
)
from kizuna.programs.compiler import entry_segment
from kizuna.programs.engagement import decide
from kizuna.programs.journeys import JourneyState
from kizuna.programs.loader import next_of, segment_references
from kizuna.programs.members import GONE, GROUP_LIMIT, ROOT, Child, Member
from kizuna.programs.model import (
    BranchStep,
    Engagement,
    EngagementEvent,
    ExitStep,
    Program,
    SendStep,
    SplitStep,
    WaitStep,
)
from kizuna.programs.patterns import failures, matches
from kizuna.programs.steps import local_time_after
from kizuna.programs.view import customer_view
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger
from kizuna.services.contracts import GroupRequest, SendRequest, SendResponse


class CohortStore(Protocol):
    """The activity table as a cohort step sees it (:class:`kizuna.adapters.dynamodb.
    DynamoStore`)."""

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def read_group(
        self, cohort: str, group: str, step: str | Sequence[str]
    ) -> tuple[list[Member], list[Child]]: ...

    def settle_step(
        self,
        cohort: str,
        step: str,
        decisions: Sequence[tuple[str, str, dict[str, Any]]],
        children: Sequence[Child],
        moves: Sequence[tuple[str, Sequence[Member]]],
        expires_at: int,
    ) -> None: ...

    def claim_messages(self, execution: str, step: str, claims: Sequence[Claim]) -> Claimed: ...

    def engagement_state(
        self,
        keys: Sequence[tuple[str, str]],
        step: str,
        program: str | None = None,
        decided_at: str | None = None,
    ) -> tuple[
        dict[tuple[str, str], dict[str, Any]],
        dict[str, JourneyState],
        dict[tuple[str, str], dict[str, Any]],
    ]: ...

    def branch_state(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], dict[str, Any]]]: ...


class Starter(Protocol):
    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool: ...


class Sender(Protocol):
    def send_many(self, reqs: Sequence[SendRequest]) -> list[SendResponse]: ...


@dataclass
class _Outcome:
    """What a step did to its group: who stays, who goes where (None: nowhere, their
    journey is over), what the state machine gets back."""

    kept: list[Member] = field(default_factory=list)
    moves: list[tuple[Child | None, list[Member]]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)  # member sk -> decision
    # member sk -> what the decision rests on (the branch conditions that failed)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


# A step the deployed program no longer has: its members leave the journey there.
STEP_REMOVED = "step_removed"
# A step that kept its id but is of another type than the execution asks it to do (an
# execution of the earlier definition): its members leave the journey there too.
STEP_CHANGED = "step_changed"

# The action each step type answers (an execution asks by the type it was compiled with).
_ACTIONS: dict[str, type[SendStep | BranchStep | SplitStep | WaitStep]] = {
    "send": SendStep,
    "check": BranchStep,
    "split": SplitStep,
    "local_time": WaitStep,
}


def _answers(action: str, step: SendStep | WaitStep | BranchStep | SplitStep) -> bool:
    """Can ``step`` do what an execution asks of it (a local time: a wait that has one)?"""
    if action == "local_time":
        return isinstance(step, WaitStep) and step.until_local_time is not None
    return isinstance(step, _ACTIONS[action])


# What a branch's decision rests on, kept when a retried step follows the decision it recorded.
_GROUNDS = ("failed", "reason", "engagement")


def _stands(
    out: _Outcome, member: Member, recorded: Mapping[str, Any] | None, other: list[Member]
) -> bool:
    """A branch decision this step recorded already for ``member`` (an earlier attempt of a
    retried task, which may have gone on to send on that side) stands: the member follows
    it, never the other side on fresh state (both sides' messages). True if it did."""
    decision = (recorded or {}).get("decision")
    if decision not in ("then", "else"):
        return False
    out.decisions[member.sk] = str(decision)
    grounds = {k: recorded[k] for k in _GROUNDS if recorded and k in recorded}
    if grounds:
        out.details[member.sk] = grounds
    (out.kept if decision == "then" else other).append(member)
    return True


def _idle(step: object, now: datetime) -> dict[str, Any]:
    """The answer of a step over an empty group (a local-time wait: no wait)."""
    return {"at": iso(now)} if isinstance(step, WaitStep) else {}


def _found(program: Program, step_id: str) -> SendStep | WaitStep | BranchStep | SplitStep | None:
    """The program's step ``step_id``, None if it has none by that id (an exit is never
    asked for: the state before it ends the execution)."""
    for step in program.steps:
        if step.id == step_id:
            return None if isinstance(step, ExitStep) else step
    return None


def _deferred_group(step: str, at: datetime) -> str:
    """The child group an at_once program's entry groups share when a quiet-hours deferral
    moves their members at ``step`` to ``at``."""
    return "d" + hashlib.sha256(f"{step}\x1f{stamp(at)}".encode()).hexdigest()[:11]


def _digest(members: Sequence[Member]) -> str:
    """Names a set of members: a retried step moving the same members names the same child;
    different members (fresh state changed) go to a new one, never to a finished child."""
    joined = "\x1f".join(sorted(m.sk for m in members))
    return hashlib.sha256(joined.encode()).hexdigest()[:8]


class CohortService:
    def __init__(
        self,
        programs: Sequence[Program],
        store: CohortStore,
        starter: Starter,
        cfg: KizunaConfig,
        clock: Clock,
        *,
        sender: Sender | None = None,
        segments: Mapping[str, Mapping[str, Any]] | None = None,
        group_limit: int = GROUP_LIMIT,
    ) -> None:
        self.programs = {p.id: p for p in programs}
        self.store = store
        self.starter = starter
        self.cfg = cfg
        self.clock = clock
        self.sender = sender
        self.segments = dict(segments or {})
        self.group_limit = group_limit

    def handle(self, req: GroupRequest) -> dict[str, Any]:
        """The step ``req`` names over the group, then the step fused after it (``then``)
        over the members who went on, exactly as two tasks one after the other would: the
        group and the child groups either step made already (a retry's) are read once, the
        second step going on with the members the first kept; a retry after a crash between
        them does the first again for nobody new (its decisions and claims stand). The
        answer sums the sends' counts."""
        if req.then and req.action not in ("send", "check", "split"):
            raise ValueError(f"{req.program}.{req.step}: nothing is fused after {req.action!r}")
        if req.action == "failed":
            return self._failed(req)
        steps = [req.step, *(link.step for link in req.then)]
        found, started = self.store.read_group(req.cohort, req.group, steps)
        answer, kept = self._step(
            req.model_copy(update={"then": []}), found, started, hand_off=not req.then
        )
        for n, link in enumerate(req.then):
            more, kept = self._step(
                req.model_copy(update={"action": link.action, "step": link.step, "then": []}),
                kept,
                started,
                hand_off=n == len(req.then) - 1,
            )
            counts = Counter(answer.get("counts", {})) + Counter(more.get("counts", {}))
            failed = [*answer.get("failed_channels", []), *more.get("failed_channels", [])]
            answer = {**answer, **more}
            if counts or failed:
                answer |= {"counts": dict(counts), "failed_channels": failed}
        return answer

    def _step(
        self,
        req: GroupRequest,
        found: list[Member],
        started: Sequence[Child],
        *,
        hand_off: bool = False,
    ) -> tuple[dict[str, Any], list[Member]]:
        """One step over the group's members ``found`` (the answer, and the members who
        stay in the group); ``started``: child groups an earlier attempt made. With
        ``hand_off`` (the last step of an entry segment, ``req.entry``) the members who go
        on move to the execution that carries them from the segment's wait
        (:meth:`_hand_off`)."""
        program = self.programs[req.program]
        expires = expires_at(program, due_of(req.cohort))
        now = self.clock.now()
        step = _found(program, req.step)
        if step is None or req.action == "removed":
            return self._removed(req, found, started, expires, now, STEP_REMOVED), []
        if not _answers(req.action, step):
            return self._removed(req, found, started, expires, now, STEP_CHANGED), []
        mine = [c for c in started if c.origin == step.id]
        members, overflow = chunked(found, self.group_limit)
        moves: list[tuple[Child | None, list[Member]]] = [
            (self._child(req, step.id, step.id, f"part:{_digest(chunk)}", now), chunk)
            for chunk in overflow
        ]
        outcome = (
            self._act(req, program, members, now) if members else _Outcome(answer=_idle(step, now))
        )
        moves += outcome.moves
        if req.entry and hand_off and outcome.kept:
            moves += self._hand_off(req, program, step.id, outcome, now)
            outcome.kept = []
        children = [c for c, _ in moves if c is not None]
        self.store.settle_step(
            req.cohort,
            step.id,
            self._decisions(req, step.id, outcome, moves, now),
            children,
            [(child.group if child else GONE, group) for child, group in moves if group],
            expires,
        )
        # this attempt's children, and any an earlier attempt made (it may have crashed
        # before it started them): starting one twice is the same execution
        self._start(program.id, req.cohort, [*mine, *children])
        logger.info(
            "cohort step",
            program=program.id,
            step=step.id,
            action=req.action,
            members=len(members),
            kept=len(outcome.kept),
            children=len(children),
        )
        return outcome.answer, outcome.kept

    def _removed(
        self,
        req: GroupRequest,
        found: list[Member],
        started: Sequence[Child],
        expires: int,
        now: datetime,
        reason: str,
    ) -> dict[str, Any]:
        """A step the deployed program no longer has (``step_removed``), or has with another
        type than the execution asks for (``step_changed``): every member of the group
        leaves the journey here, recorded (``exit``, ``reason``), and the execution goes on
        over nobody. The child groups an earlier attempt at the step wrote are started
        (their own dispatch records their members the same way)."""
        out = _Outcome(answer={"at": iso(now)} if req.action == "local_time" else {})
        for m in found:
            out.decisions[m.sk] = "exit"
            out.details[m.sk] = {"reason": reason}
        moves: list[tuple[Child | None, list[Member]]] = [(None, found)] if found else []
        self.store.settle_step(
            req.cohort,
            req.step,
            self._decisions(req, req.step, out, moves, now),
            [],
            [(GONE, found)] if found else [],
            expires,
        )
        self._start(req.program, req.cohort, [c for c in started if c.origin == req.step])
        if found:
            logger.warning(
                "cohort step not in the deployed program: its members left the journey",
                program=req.program,
                step=req.step,
                action=req.action,
                reason=reason,
                members=len(found),
            )
        return out.answer

    def _start(self, program_id: str, cohort: str, children: Sequence[Child]) -> None:
        """Start each child group's execution (due now: at once; later: a schedule)."""
        for child in {c.sk: c for c in children}.values():
            name = run_name(cohort, child.group)
            payload = execution_input(program_id, cohort, child.group, child.step, child.at)
            self.starter.start(program_id, name, payload)

    def _hand_off(
        self, req: GroupRequest, program: Program, step: str, outcome: _Outcome, now: datetime
    ) -> list[tuple[Child | None, list[Member]]]:
        """Where an entry group's members go on after the entry segment
        (:func:`kizuna.programs.compiler.entry_segment`): the cohort's root group, due when
        the segment's wait ends (the cohort evaluate chose for them), while it is still
        joinable; else a child group at their own instant (late, or another instant than
        the cohort's), or at once if no wait follows. The journey is over for them if
        nothing does."""
        segment = entry_segment(program)
        if segment is None or segment.resume is None:
            return []
        kept = outcome.kept
        if segment.wait is None:
            key = f"next:{_digest(kept)}"
            return [(self._child(req, step, segment.resume, key, now), kept)]
        by_at: dict[datetime, list[Member]] = {}
        if segment.wait.until_local_time is not None:  # fused: the task answered the instant
            by_at[parse_time(outcome.answer["at"]).replace(second=0, microsecond=0)] = kept
        else:
            for m in kept:
                at = wait_ends(segment.wait, m.entered_at, None, self.cfg, program.cohort_minutes)
                by_at.setdefault(at, []).append(m)
        due = due_of(req.cohort)
        moves: list[tuple[Child | None, list[Member]]] = []
        for at, group in sorted(by_at.items()):
            if at == due and joinable(due, now):
                child = Child(ROOT, req.group, step, segment.resume, ROOT, due)
            else:
                key = f"until-{stamp(at)}:{_digest(group)}"
                child = self._child(req, step, segment.resume, key, at)
            moves.append((child, group))
        return moves

    def _child(self, req: GroupRequest, at_step: str, start: str, key: str, due: datetime) -> Child:
        return Child(child_group(req.group, at_step, key), req.group, at_step, start, key, due)

    def _act(
        self, req: GroupRequest, program: Program, members: list[Member], now: datetime
    ) -> _Outcome:
        step = program.step(req.step)
        if req.action == "send" and isinstance(step, SendStep):
            return self._send(req, members, now, self._first_local_time(req, program))
        if req.action == "check" and isinstance(step, BranchStep):
            return self._branch(req, step, members, now)
        if req.action == "split" and isinstance(step, SplitStep):
            return self._split(req, step, members, now)
        if req.action == "local_time" and isinstance(step, WaitStep):
            return self._local_time(req, program, step, members, now)
        raise ValueError(f"{program.id}.{req.step}: no action {req.action!r} on this step")

    def _failed(self, req: GroupRequest) -> dict[str, Any]:
        """The send step crashed after every retry: each member without a ledger entry for
        it gets ``failed`` (a claim: what the step did decide stays; a ``sending`` claim
        stays ``sending``, the provider may have taken it: the reconciliation sweep,
        :mod:`kizuna.services.reconcile`, settles it). The child groups the step had
        written (quiet-hours deferrals, the overflow beyond the group limit) are started
        here: the step may have failed after moving members to them but before starting
        them (StartExecution or CreateSchedule failing on every retry), and nothing else
        would ever run them. Starting one twice is the same execution."""
        now = iso(self.clock.now())
        members, children = self.store.read_group(req.cohort, req.group, req.step)
        self._start(req.program, req.cohort, children)
        claims = [
            Claim(
                m.customer_id,
                {
                    "program": req.program,
                    "step": req.step,
                    "execution": m.entry,
                    "cohort": req.cohort,
                    "run": req.run,
                    "status": "failed",
                    "reason": "step_failed",
                    "at": now,
                },
                execution=m.entry,
            )
            for m in members
        ]
        already = (
            self.store.claim_messages(req.run, req.step, claims).duplicates if claims else set()
        )
        logger.error(
            "cohort send step failed",
            program=req.program,
            step=req.step,
            members=len(members),
            recorded=len(claims) - len(already),
        )
        return {"failed": len(claims) - len(already)}

    # -- the steps ------------------------------------------------------------------------
    @staticmethod
    def _first_local_time(req: GroupRequest, program: Program) -> str | None:
        """The ``HH:MM`` of the program's first wait when this is the root group's first
        step after it (the instant the cohort is due was fixed at entry in the zone the
        customer had then; the send checks it on their zone now), else None."""
        first = program.steps[0]
        if (
            req.group != ROOT
            or req.entry
            or entry_segment(program) is not None
            or not isinstance(first, WaitStep)
            or first.until_local_time is None
        ):
            return None
        return first.until_local_time if next_of(program, 0)[:1] == [req.step] else None

    def _send(
        self, req: GroupRequest, members: list[Member], now: datetime, local: str | None = None
    ) -> _Outcome:
        assert self.sender is not None, "the send function sends"
        due = due_of(req.cohort) if local is not None else None
        answers = self.sender.send_many(
            [
                SendRequest(
                    program=req.program,
                    step=req.step,
                    customer_id=m.customer_id,
                    execution=m.entry,
                    entered_at=m.entered_at,
                    cohort=req.cohort,
                    run=req.run,
                    trigger=dict(m.trigger) or None,
                    not_before_local=local,
                    local_date_at=due,
                )
                for m in members
            ]
        )
        counts = Counter(a.status for a in answers)
        failed = [a.channel or "" for a in answers if a.status == "failed"]
        out = _Outcome(answer={"counts": dict(counts), "failed_channels": failed})
        gone: list[Member] = []
        deferred: dict[str, list[Member]] = {}
        for member, answer in zip(members, answers, strict=True):
            if answer.status == "exit":
                gone.append(member)
            elif answer.status == "deferred" and answer.until:
                deferred.setdefault(answer.until, []).append(member)
            else:
                out.kept.append(member)
        if gone:
            out.moves.append((None, gone))
        for until, group in sorted(deferred.items()):
            at = parse_time(until)
            key = f"until-{stamp(at)}:{_digest(group)}"
            child = self._child(req, req.step, req.step, key, at)
            if req.entry and joinable(at, now):
                # entry groups of one cohort deferred to one instant share a child (its
                # header is each group's own, so each one's retry finds and starts it)
                child = replace(child, group=_deferred_group(req.step, at))
            out.moves.append((child, group))
        return out

    def _branch(
        self, req: GroupRequest, step: BranchStep, members: list[Member], now: datetime
    ) -> _Outcome:
        if step.engagement is not None:
            return self._engagement(req, step, step.engagement, members, now)
        assert step.condition is not None
        unknown = [ref for ref in segment_references(step.condition) if ref not in self.segments]
        if unknown:  # never decide "else" for want of a definition: fail, loudly
            raise ValueError(
                f"{req.program}.{step.id}: segments {sorted(map(str, unknown))} are not "
                "deployed with this function"
            )
        customers, decided = self.store.branch_state(
            [(m.customer_id, m.entry) for m in members], step.id
        )
        out = _Outcome()
        other: list[Member] = []
        # a customer whose item this version cannot read leaves the journey here (never a
        # side decided without their state: a message meant for the other side), with that
        # reason; a retry keeps it; the group's others are decided as ever
        unreadable = unreadable_of(customers)
        gone: list[Member] = []
        for m in members:
            recorded = decided.get((m.customer_id, m.entry))
            if _stands(out, m, recorded, other):
                continue
            if m.customer_id in unreadable or (recorded or {}).get("decision") == "exit":
                out.decisions[m.sk] = "exit"
                out.details[m.sk] = {"reason": UNREADABLE_CUSTOMER}
                gone.append(m)
                continue
            customer = customers.get(m.customer_id)
            view = customer_view(customer, now, self.cfg, self.segments) if customer else None
            if view is not None and matches(step.condition, view):
                out.kept.append(m)
                out.decisions[m.sk] = "then"
            else:
                other.append(m)
                out.decisions[m.sk] = "else"
                out.details[m.sk] = (
                    {"failed": failures(step.condition, view)}
                    if view is not None
                    else {"reason": "unknown_customer"}
                )
        self._elsewhere(req, out, other, step.otherwise, "else", now)
        if gone:
            out.moves.append((None, gone))  # their journey is over: no execution for that
        return out

    def _engagement(
        self,
        req: GroupRequest,
        step: BranchStep,
        engagement: Engagement,
        members: list[Member],
        now: datetime,
    ) -> _Outcome:
        """An engagement branch: each member's ledger entry of the engagement's send step
        (and for ``converted`` their journey state), read in one batch, strongly
        consistent, as it is now (:func:`kizuna.programs.engagement.decide`)."""
        converted = engagement.event == EngagementEvent.CONVERTED
        entries, journeys, decided = self.store.engagement_state(
            [(m.customer_id, m.entry) for m in members],
            engagement.step,
            req.program if converted else None,
            decided_at=step.id,
        )
        out = _Outcome()
        other: list[Member] = []
        for m in members:
            if _stands(out, m, decided.get((m.customer_id, m.entry)), other):
                continue
            verdict = decide(
                engagement,
                entries.get((m.customer_id, m.entry)),
                journeys.get(m.customer_id),
                m.entry,
            )
            out.details[m.sk] = {"engagement": verdict.detail, "reason": verdict.reason}
            if verdict.held:
                out.kept.append(m)
                out.decisions[m.sk] = "then"
            else:
                other.append(m)
                out.decisions[m.sk] = "else"
        self._elsewhere(req, out, other, step.otherwise, "else", now)
        return out

    def _split(
        self, req: GroupRequest, step: SplitStep, members: list[Member], now: datetime
    ) -> _Outcome:
        first = step.arms[0]
        out = _Outcome()
        by_arm: dict[str, list[Member]] = {}
        for m in members:
            arm = m.arms.get(step.id, first.name)
            out.decisions[m.sk] = f"arm:{arm}"
            if arm == first.name:
                out.kept.append(m)
            else:
                by_arm.setdefault(arm, []).append(m)
        targets = {a.name: a.next for a in step.arms}
        for arm, group in sorted(by_arm.items()):
            self._elsewhere(req, out, group, targets.get(arm), f"arm-{arm}", now)
        return out

    def _local_time(
        self,
        req: GroupRequest,
        program: Program,
        step: WaitStep,
        members: list[Member],
        now: datetime,
    ) -> _Outcome:
        assert step.until_local_time is not None
        # an item this version cannot read: the default zone (its send fails it alone)
        customers = self.store.get_customers([m.customer_id for m in members], unreadable_ok=True)
        seconds = int(step.duration.total_seconds())
        due: dict[str, datetime] = {
            m.sk: local_time_after(
                customers.get(m.customer_id), now, seconds, step.until_local_time, self.cfg
            )
            for m in members
        }
        # the group keeps the instant most of it shares (the earliest of a tie)
        counts = Counter(due.values())
        keep = min(counts, key=lambda at: (-counts[at], at))
        out = _Outcome(answer={"at": iso(keep)})
        index = [s.id for s in program.steps].index(step.id)
        after = next_of(program, index)
        by_due: dict[datetime, list[Member]] = {}
        for m in members:
            out.decisions[m.sk] = f"until:{iso(due[m.sk])}"
            if due[m.sk] == keep:
                out.kept.append(m)
            else:
                by_due.setdefault(due[m.sk], []).append(m)
        for at, group in sorted(by_due.items()):
            if not after or isinstance(program.step(after[0]), ExitStep):
                out.moves.append((None, group))
                continue
            key = f"until-{stamp(at)}:{_digest(group)}"
            out.moves.append((self._child(req, step.id, after[0], key, at), group))
        return out

    def _elsewhere(
        self,
        req: GroupRequest,
        out: _Outcome,
        group: list[Member],
        target: str | None,
        reason: str,
        now: datetime,
    ) -> None:
        """``group`` goes on at ``target`` in a child group (no target: their journey is
        over)."""
        if not group:
            return
        if target is None or isinstance(self.programs[req.program].step(target), ExitStep):
            out.moves.append((None, group))  # their journey is over: no execution for that
            return
        key = f"{reason}:{_digest(group)}"
        out.moves.append((self._child(req, req.step, target, key, now), group))

    def _decisions(
        self,
        req: GroupRequest,
        step: str,
        outcome: _Outcome,
        moves: Sequence[tuple[Child | None, list[Member]]],
        now: datetime,
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Each member's decision at this step and the execution that carries them on."""
        if not outcome.decisions:
            return []
        runs = {m.sk: req.run for m in outcome.kept}
        for child, group in moves:
            for m in group:
                runs[m.sk] = run_name(req.cohort, child.group) if child else ""
        members = [*outcome.kept, *(m for _, group in moves for m in group)]
        return [
            (
                m.customer_id,
                m.entry,
                {
                    "program": req.program,
                    "step": step,
                    "execution": m.entry,
                    "cohort": req.cohort,
                    "run": req.run,
                    "decision": outcome.decisions[m.sk],
                    "next_run": runs.get(m.sk) or None,
                    "at": iso(now),
                    **outcome.details.get(m.sk, {}),
                },
            )
            for m in members
            if m.sk in outcome.decisions
        ]
