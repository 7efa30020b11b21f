"""Evaluate: which programs does an event start (or convert), for whom, and why not.

For each event: programs whose trigger matches; for a derived event, its claim against the
customer's stored state (kizuna.programs.claims: a forged or stale claim enters nobody);
the customer's fresh state against the audience; the re-entry rule; a channel pre-check;
holdout by stable hash. An entry starts the program's state machine under a deterministic
execution name, so a duplicated event never starts two journeys. Every decision — entered,
holdout, skipped with its reason — is written to the activity ledger. Goal events mark
conversions (treated and holdout alike).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from kizuna.delivery.control import (
    GLOBAL_CONTROL,
    control_detail,
    control_for,
    in_global_control,
)
from kizuna.delivery.policy import ALLOWED_UNLESS_OPTED_OUT, address_for, channel_block
from kizuna.domain.activity import ActivityItem
from kizuna.domain.behaviour import with_occurrence
from kizuna.domain.customer import (
    Customer,
    UnreadableCustomer,
    unreadable_error,
    unreadable_of,
)
from kizuna.domain.timestamps import iso
from kizuna.events import DERIVED_MODELS, Cause, DerivedEvent, ProgramConverted, derived_event
from kizuna.events.custom import vocabulary
from kizuna.events.inbound import DELIVERY_ONLY_CHANNELS
from kizuna.programs.claims import (
    CLAIM_NOT_IN_STATE,
    POINTS_EXPIRING,
    Stored,
    claim_holds,
    coupon_key,
    journey_key,
    points_lots,
)
from kizuna.programs.cohorts import (
    cohort_id,
    due_of,
    execution_input,
    expires_at,
    first_due,
    join_due,
    run_name,
)
from kizuna.programs.compiler import entry_segment
from kizuna.programs.journeys import (
    JourneyState,
    assign_arms,
    execution_name,
    holdout_bucket,
)
from kizuna.programs.members import ROOT, Join, Member, trigger_of
from kizuna.programs.model import Program, ReentryMode, SendStep
from kizuna.programs.patterns import failures, matches
from kizuna.programs.view import customer_view
from kizuna.programs.winners import winner_splits
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger


def written(state: JourneyState, previous: JourneyState | None) -> JourneyState:
    """``state`` as the store now holds it (its ``rev`` bumped over ``previous``'s): what a
    later event of the same batch reads, so a second entry in one batch (two rank-ups) is
    written over the first instead of being taken for a concurrent one and dropped."""
    return state.model_copy(update={"rev": (previous.rev if previous else 0) + 1})


@dataclass(frozen=True)
class IncomingEvent:
    event_id: str  # the fact's id: a derived event's deterministic id, else the envelope id
    detail_type: str
    time: datetime
    detail: dict[str, Any]
    # No later delivery will come (the queue's last receive): a derived claim that the
    # stored state does not bear out is recorded as skipped now instead of deferred.
    final: bool = True

    @property
    def customer_id(self) -> str | None:
        cid = self.detail.get("customer_id")
        return cid if isinstance(cid, str) else None


@dataclass(frozen=True)
class Decision:
    program: str
    customer_id: str
    event_id: str
    decision: str  # entered | holdout | skipped | converted
    reason: str | None = None
    execution: str | None = None
    cohort: str | None = None
    # what the reason rests on, as data, written into the ledger row beside ``reason``
    # (the failed audience conditions, the last entry, the holdout bucket...): see
    # docs/PROGRAMS.md, "The ledger's reasons"
    detail: Mapping[str, Any] | None = None


class JourneyStore(Protocol):
    def read_entries(
        self, customer_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, Customer], dict[tuple[str, str], JourneyState]]:
        """Customers and their journey states (customer, program), read together."""
        ...

    def read_coupons(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The ``COUPON#`` rows of (customer, code), strongly consistent."""
        ...

    def join_cohorts(
        self,
        joins: Sequence[Join],
        rows: Sequence[tuple[int | None, ActivityItem]] = (),
    ) -> set[int]:
        """Each join's journey state and cohort member, written together (in shared
        transactions) with the ledger rows tied to it (a row tied to None: written anyway);
        the indexes of the joins whose journey changed since it was read (their rows are not
        written)."""
        ...

    def save_journey(self, state: JourneyState, previous: JourneyState | None) -> bool:
        """Conditional write: False if the item changed since ``previous`` was read."""
        ...

    def put_activity(self, items: Sequence[ActivityItem]) -> None: ...

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        """Ids erased recently (kizuna.domain.privacy): nothing is recorded under them."""
        ...

    def split_winners(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The decided winners of these (program, split step) keys (undecided: absent)."""
        ...


class JourneyStarter(Protocol):
    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        """Start the program's state machine; False if that execution already exists."""
        ...

    def run(self, function: str, payload: dict[str, Any]) -> None:
        """Invoke ``function`` (``send`` or ``journey``) asynchronously with ``payload``: an
        at_once program's entry segment (Lambda retries it, then dead-letters it)."""
        ...


class Publisher(Protocol):
    def publish(self, events: Sequence[DerivedEvent]) -> list[int]: ...


@dataclass(frozen=True)
class _Entry:
    """An entry decided, to be written with the batch's others."""

    program: Program
    event: IncomingEvent
    join: Join
    # the decision to record once written (None: entered); a holdout's is its own
    decision: Decision | None = None


@dataclass
class EvaluateResult:
    decisions: list[Decision] = field(default_factory=list)
    started: int = 0
    # positions (in the events evaluated) of derived events whose claim is not in the
    # stored state (yet): deliver them again later
    deferred: set[int] = field(default_factory=set)
    # positions of events whose customer's stored item this version cannot read, and why
    # (the refused fields): failed (delivered again, then dead-lettered with the reason),
    # the batch's others evaluated
    unreadable: dict[int, UnreadableCustomer] = field(default_factory=dict)

    def count(self, decision: str) -> int:
        return sum(1 for d in self.decisions if d.decision == decision)


def unreachable(customer: Customer, channel: str) -> str:
    """Why ``channel`` cannot reach the customer (as the contact policy says it:
    ``no_address``, ``no_consent``, ``suppressed_<why>``)."""
    return channel_block(customer, channel, address_for(customer, channel)) or "no_consent"


def channels_of(program: Program) -> set[str]:
    return {c for s in program.steps if isinstance(s, SendStep) for c in s.channels}


def _in_entry_groups(entries: list[_Entry]) -> list[_Entry]:
    """The at_once programs' entries of a flush, each program's in a group of its own
    (``e`` and a digest of its entries: one entry segment invocation for them)."""
    by_program: dict[str, list[str]] = {}
    for e in entries:
        if e.program.start == "at_once" and e.join.member is not None and e.join.state.execution:
            by_program.setdefault(e.program.id, []).append(e.join.state.execution)
    if not by_program:
        return entries
    groups = {
        pid: "e" + hashlib.sha256("\x1f".join(sorted(names)).encode()).hexdigest()[:11]
        for pid, names in by_program.items()
    }
    placed: list[_Entry] = []
    for e in entries:
        group = groups.get(e.program.id)
        if group is None or e.join.member is None:  # a holdout joins no group
            placed.append(e)
            continue
        join = replace(
            e.join,
            state=e.join.state.model_copy(update={"group": group}),
            member=replace(e.join.member, group=group),
        )
        placed.append(replace(e, join=join))
    return placed


class Evaluator:
    def __init__(
        self,
        programs: Sequence[Program],
        store: JourneyStore,
        starter: JourneyStarter,
        publisher: Publisher,
        cfg: KizunaConfig,
        clock: Clock,
        segments: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.programs = [p for p in programs if p.enabled]
        # named segments (name -> conditions) that audiences may name: ``segments: [...]``
        self.segments = dict(segments or {})
        self.store = store
        self.starter = starter
        self.publisher = publisher
        self.cfg = cfg
        self.vocab = vocabulary(cfg)  # custom events and the counted ones
        self.clock = clock
        self._started: set[str] = set()  # cohorts this container has started
        # splits' decided winners, (program, step) -> arm: a decision never changes, so it is
        # read until found, then kept for the container's life
        self._winners: dict[tuple[str, str], str] = {}

    def triggered(self, ev: IncomingEvent) -> list[Program]:
        return [
            p
            for p in self.programs
            if p.trigger.event == ev.detail_type and matches(p.trigger.conditions, ev.detail)
        ]

    def goals(self, ev: IncomingEvent) -> list[Program]:
        return [
            p
            for p in self.programs
            if p.goal and p.goal.event == ev.detail_type and matches(p.goal.conditions, ev.detail)
        ]

    def evaluate(self, events: Sequence[IncomingEvent]) -> EvaluateResult:
        result = EvaluateResult()
        work = [
            (n, ev, self.triggered(ev), self.goals(ev))
            for n, ev in enumerate(events)
            if ev.customer_id
        ]
        work = [w for w in work if w[2] or w[3]]
        if not work:
            return result
        cids = list(dict.fromkeys(ev.customer_id for _, ev, _, _ in work if ev.customer_id))
        wanted = [
            (ev.customer_id, p.id) for _, ev, ts, gs in work for p in [*ts, *gs] if ev.customer_id
        ]
        wanted += [
            (ev.customer_id, pid)
            for _, ev, _, _ in work
            if ev.customer_id and (pid := journey_key(ev.detail_type, ev.detail))
        ]
        keys = list(dict.fromkeys(wanted))
        customers, journeys = self.store.read_entries(cids, keys)
        # an event that comes after its customer's erasure (late, or a redriven dead letter)
        # decides nothing and writes no row under the id: the erasure's sweep has run
        unreadable = unreadable_of(customers)
        missing = [cid for cid in cids if cid not in customers and cid not in unreadable]
        erased = self.store.erased(missing, self.clock.now()) if missing else set()
        self._read_winners([p for _, _, ts, _ in work for p in ts])
        coupon_keys = [k for _, ev, _, _ in work if (k := coupon_key(ev.detail_type, ev.detail))]
        coupons = self.store.read_coupons(coupon_keys) if coupon_keys else {}
        ledger: list[ActivityItem] = []
        converted: list[DerivedEvent] = []
        now = self.clock.now()
        pending: dict[tuple[str, str], _Entry] = {}

        def flush(final: bool = False) -> None:
            """Write the entries waiting to be written, with their ledger rows (and, the
            last time, every other row of the batch: one transaction where they fit);
            start the ones written."""
            entries = _in_entry_groups(list(pending.values()))
            pending.clear()
            decisions = [
                e.decision
                or Decision(
                    e.join.state.program,
                    e.join.state.customer_id,
                    e.event.event_id,
                    "entered",
                    None,
                    e.join.state.execution,
                    e.join.state.cohort,
                )
                for e in entries
            ]
            rows: list[tuple[int | None, ActivityItem]] = [
                (n, self._ledger(d, e.event, now))
                for n, (d, e) in enumerate(zip(decisions, entries, strict=True))
            ]
            if final:
                rows += [(None, row) for row in ledger]
                ledger.clear()
            if not entries:
                if rows:
                    self.store.put_activity([row for _, row in rows])
                return
            conflicts = self.store.join_cohorts([e.join for e in entries], rows)
            for n, entry in enumerate(entries):
                state = entry.join.state
                if n in conflicts:
                    logger.info(
                        "journey entered concurrently",
                        program=state.program,
                        customer_id=state.customer_id,
                    )
                    continue
                journeys[(state.customer_id, state.program)] = written(state, entry.join.previous)
                result.decisions.append(decisions[n])
                if entry.decision is None:  # entered (a holdout starts nothing)
                    self._start(entry.program, state)
                    result.started += 1

        for n, ev, triggered, goals in work:
            cid = ev.customer_id
            assert cid is not None
            if cid in erased:
                logger.info("event for an erased customer: nothing decided", type=ev.detail_type)
                continue
            if cid in unreadable:
                result.unreadable[n] = unreadable_error(customers, cid)
                continue
            if any((cid, p.id) in pending for p in [*triggered, *goals]):
                flush()  # a later event of the same journey sees what the earlier one wrote
            if not self._claim_holds(ev, customers.get(cid), journeys, coupons):
                # triggers already acted on (a redelivery) stand; nothing else goes on
                acted = [p for p in triggered if self._acted_on(ev, p, journeys)]
                fresh = [p for p in triggered if p not in acted]
                if (fresh or goals) and not ev.final:
                    result.deferred.add(n)
                    continue
                if fresh or goals:
                    logger.warning(
                        "derived event not borne out by the customer's state",
                        detail_type=ev.detail_type,
                        customer_id=cid,
                    )
                for program in fresh:
                    skipped = Decision(program.id, cid, ev.event_id, "skipped", CLAIM_NOT_IN_STATE)
                    result.decisions.append(skipped)
                    ledger.append(self._ledger(skipped, ev, now))
                for program in acted:
                    self._trigger(program, ev, customers.get(cid), journeys, now)
                continue
            for (
                program
            ) in goals:  # conversions first: an order can end one journey and start another
                decision = self._goal(program, ev, journeys, converted, now)
                if decision:
                    result.decisions.append(decision)
                    ledger.append(self._ledger(decision, ev, now))
            for program in triggered:
                outcome = self._trigger(program, ev, customers.get(cid), journeys, now)
                if outcome is None:
                    continue  # a redelivered trigger: nothing new to record
                if isinstance(outcome, _Entry):
                    pending[(cid, program.id)] = outcome
                    continue
                result.decisions.append(outcome)
                ledger.append(self._ledger(outcome, ev, now))
        flush(final=True)
        if converted:
            failed = self.publisher.publish(converted)
            if failed:
                raise RuntimeError(f"{len(failed)} program.converted events could not be put")
        return result

    def _read_winners(self, programs: Sequence[Program]) -> None:
        """The winners decided since this container last looked, of the splits of these
        programs that have a winner rule (one read per batch while any is undecided)."""
        undecided = [
            (p.id, s.id)
            for p in {p.id: p for p in programs}.values()
            for s in winner_splits(p)
            if (p.id, s.id) not in self._winners
        ]
        if undecided:
            self._winners.update(self.store.split_winners(undecided))

    def winners_of(self, program: Program) -> dict[str, str]:
        """Split step -> its decided winner, as far as this container knows."""
        return {step: arm for (pid, step), arm in self._winners.items() if pid == program.id}

    # -- claims ---------------------------------------------------------------------------
    def _claim_holds(
        self,
        ev: IncomingEvent,
        customer: Customer | None,
        journeys: Mapping[tuple[str, str], JourneyState],
        coupons: Mapping[tuple[str, str], Mapping[str, Any]],
    ) -> bool:
        """Whether the stored state bears out a derived event. Only derived events make
        claims; an unknown customer is left to ``_trigger`` (``unknown_customer``)."""
        if ev.detail_type not in DERIVED_MODELS or customer is None or ev.customer_id is None:
            return True
        pid = journey_key(ev.detail_type, ev.detail)
        coupon = coupon_key(ev.detail_type, ev.detail)
        stored: Stored = None
        if pid:
            stored = journeys.get((ev.customer_id, pid))
        elif coupon:
            stored = coupons.get(coupon)
        elif ev.detail_type == POINTS_EXPIRING:
            stored = points_lots(customer, self.cfg.loyalty)
        return claim_holds(ev.detail_type, ev.detail, customer, stored)

    @staticmethod
    def _acted_on(
        ev: IncomingEvent, program: Program, journeys: Mapping[tuple[str, str], JourneyState]
    ) -> bool:
        """The program already took this very trigger (a redelivery): its entry stands
        whatever the state says now."""
        state = journeys.get((ev.customer_id or "", program.id))
        return state is not None and state.took(ev.event_id)

    # -- triggers -------------------------------------------------------------------------
    def _counted(self, customer: Customer, ev: IncomingEvent) -> Customer:
        """The customer as the audience sees them: with ``ev`` in their behaviour counters
        when it is a counted event (custom or tracked) that ingest has not folded yet (both
        receive it at once), so "the second ``wishlist.added`` in 14 days" is decided the
        same whichever function comes first. Folded: its id is in ingest's idempotency
        records (an order: its order is known)."""
        windows = self.vocab.windows.get(ev.detail_type)
        if windows is None or ev.event_id in customer.processed:
            return customer
        order = customer.orders.get(str(ev.detail.get("order_id")))
        if ev.detail_type == "order.placed" and order is not None and order.placed:
            return customer
        return with_occurrence(customer, ev.detail_type, ev.time, windows)

    def _trigger(
        self,
        program: Program,
        ev: IncomingEvent,
        customer: Customer | None,
        journeys: dict[tuple[str, str], JourneyState],
        now: datetime,
    ) -> Decision | _Entry | None:
        """A decision not to enter (skipped, holdout), an entry to write, or None."""
        cid = ev.customer_id
        assert cid is not None
        key = (cid, program.id)
        previous = journeys.get(key)
        name = execution_name(program.id, ev.event_id)
        if previous is not None and previous.took(ev.event_id):
            # the same trigger again (EventBridge/SQS redelivery, a repeated sweep), the
            # last one or an earlier one: make sure the last one's execution exists, record
            # nothing new
            if previous.execution == name and not previous.holdout:
                self._start(program, previous)
            return None

        def skip(reason: str, **detail: Any) -> Decision:
            return Decision(program.id, cid, ev.event_id, "skipped", reason, detail=detail)

        if customer is None:
            return skip("unknown_customer")
        view = customer_view(self._counted(customer, ev), now, self.cfg, self.segments)
        if not matches(program.audience, view):
            return skip("audience", failed=failures(program.audience, view))
        if previous is not None and previous.entries > 0:
            last = iso(previous.last_entry_at) if previous.last_entry_at else None
            if program.reentry.mode == ReentryMode.ONCE:
                return skip("reentry_once", last_entry_at=last)
            if (
                program.reentry.mode == ReentryMode.EVERY
                and previous.last_entry_at
                and previous.last_entry_at > now - timedelta(days=program.reentry.days or 0)
            ):
                return skip("reentry_window", last_entry_at=last, reentry_days=program.reentry.days)
        channels = channels_of(program)
        # a card needs no opt-in (only the absence of an opt-out): not in the view's
        # ``reachable`` (which audiences read), reachable for the entry all the same
        # a delivery-only channel (webhook) reaches every customer: no address, no consent
        reachable = (
            set(view["reachable"])
            | DELIVERY_ONLY_CHANNELS
            | {
                c
                for c in channels & ALLOWED_UNLESS_OPTED_OUT
                if channel_block(customer, c, address_for(customer, c)) is None
            }
        )
        if not channels & reachable:
            return skip(
                "no_channel",
                channels=sorted(channels),
                reachable=sorted(reachable - DELIVERY_ONLY_CHANNELS),
                skipped=[f"{c}:{unreachable(customer, c)}" for c in sorted(channels)],
            )
        # The global control group first: its customers enter no program (a held-out
        # decision, recorded like a holdout's), before the program's own holdout draw.
        default = self.cfg.preferences.default_topic
        topics = [program.topic_of(s, default) for s in program.steps if isinstance(s, SendStep)]
        control = control_for(self.cfg, topics)
        in_control = in_global_control(control, cid)
        point = holdout_bucket(program, cid)
        holdout = in_control or point < program.holdout_percent
        # The entry is never before its trigger: a goal must come strictly after the entry,
        # so the order that triggered a program (a repeat purchase, say) cannot also be its
        # conversion, even when the trigger is stamped later than the evaluation clock.
        entered_at = max(now, ev.time)
        state = JourneyState(
            customer_id=cid,
            program=program.id,
            entries=(previous.entries if previous else 0) + 1,
            first_entry_at=previous.first_entry_at if previous else entered_at,
            last_entry_at=entered_at,
            last_event_id=ev.event_id,
            earlier_triggers=previous.triggers_after() if previous else [],
            execution=None if holdout else name,
            holdout=holdout,
            arms=assign_arms(program, cid, self.winners_of(program)),
            # an earlier entry may still be under way (re-entry shorter than the journey):
            # its conversion stays, so its later sends still exit on the goal; every reader
            # compares it with its own entry (the time entered, the execution)
            goal_reached_at=previous.goal_reached_at if previous else None,
            converted_execution=previous.converted_execution if previous else None,
            converted_by=previous.converted_by if previous else None,
        )
        if holdout:  # its journey state alone, written with the batch's entries
            held = (
                Decision(
                    program.id,
                    cid,
                    ev.event_id,
                    "holdout",
                    GLOBAL_CONTROL,
                    detail=control_detail(control, cid),
                )
                if in_control
                else Decision(
                    program.id,
                    cid,
                    ev.event_id,
                    "holdout",
                    "holdout",
                    detail={
                        "held_out": "program",
                        "holdout_percent": program.holdout_percent,
                        "bucket": point,
                    },
                )
            )
            return _Entry(program, ev, Join(state, previous, None, None, 0), held)
        trigger = trigger_of(ev.detail_type, ev.detail, self.vocab.personal_fields(ev.detail_type))
        return _Entry(
            program, ev, self._join(program, customer, state, previous, now, trigger, ev.time)
        )

    def _join(
        self,
        program: Program,
        customer: Customer,
        state: JourneyState,
        previous: JourneyState | None,
        now: datetime,
        trigger: dict[str, Any],
        occurred_at: datetime,
    ) -> Join:
        """The entry in its cohort (the next window's if that one is about to leave; a
        program that starts with a wait counts it from the trigger's ``occurred_at``:
        :func:`kizuna.programs.cohorts.join_due`), with what its trigger said (two rank-ups
        in one batch: two members, each its own rank)."""
        assert state.execution is not None and state.last_entry_at is not None
        due = join_due(program, state.last_entry_at, occurred_at, customer, self.cfg, now)
        member = Member(
            state.customer_id, state.execution, state.last_entry_at, state.arms, trigger=trigger
        )
        cohort = cohort_id(program.id, due)
        return Join(
            state.model_copy(update={"cohort": cohort}),
            previous,
            cohort,
            member,
            expires_at(program, due),
        )

    def _start(self, program: Program, state: JourneyState) -> None:
        """Start the state's cohort execution (once per container: later entries of the
        same cohort join the running execution; a retried batch starts it again, which
        Step Functions answers with the same execution). An at_once program's entry group
        runs its entry segment instead: one asynchronous invocation per group (a redelivery
        invokes it again: each member's step is decided once)."""
        cohort = state.cohort
        segment = entry_segment(program)
        if segment is not None:
            if cohort is None or state.group is None or f"{cohort}/{state.group}" in self._started:
                return
            run = run_name(cohort, state.group)
            self.starter.run(
                segment.function, segment.request(program.id, cohort, state.group, run)
            )
            self._started.add(f"{cohort}/{state.group}")
            return
        if cohort is None or cohort in self._started:
            return
        _, start = first_due(program, state.last_entry_at or self.clock.now(), None, self.cfg)
        if start is None:
            return  # nothing after the first wait: the entry is recorded, nothing runs
        payload = execution_input(program.id, cohort, ROOT, start, due_of(cohort))
        self.starter.start(program.id, cohort, payload)
        self._started.add(cohort)

    # -- goals ----------------------------------------------------------------------------
    def _goal(
        self,
        program: Program,
        ev: IncomingEvent,
        journeys: dict[tuple[str, str], JourneyState],
        converted: list[DerivedEvent],
        now: datetime,
    ) -> Decision | None:
        assert program.goal is not None
        cid = ev.customer_id
        assert cid is not None
        state = journeys.get((cid, program.id))
        if state is None or state.last_entry_at is None:
            return None
        entered = state.last_entry_at
        at = ev.time
        if not entered < at <= entered + timedelta(days=program.goal.within_days):
            return None  # before (or the trigger itself) or after the attribution window
        if state.goal_reached_at is not None and state.goal_reached_at >= entered:
            if not _converted_by(state, ev.event_id, at):
                return None  # this entry converted already, on another event
            # this very event converted it, and is delivered again: the conversion's event
            # or ledger row may have failed after the write (their ids are the same again)
        else:
            updated = state.model_copy(
                update={
                    "goal_reached_at": at,
                    "converted_execution": state.execution,
                    "converted_by": ev.event_id,
                }
            )
            if self.store.save_journey(updated, state):
                journeys[(cid, program.id)] = written(updated, state)
            else:
                # changed since read; or the write took effect and answered an error (a 5xx,
                # a timeout), and the SDK's retry failed its condition: read what is there
                _, found = self.store.read_entries([], [(cid, program.id)])
                current = found.get((cid, program.id))
                if current is None or not _converted_by(current, ev.event_id, at, state.execution):
                    return None
                journeys[(cid, program.id)] = current
        total = ev.detail.get("total")
        converted.append(
            derived_event(
                ProgramConverted,
                f"converted:{program.id}:{entered.isoformat()}",
                Cause(cid, at, ev.event_id),
                program=program.id,
                holdout=state.holdout,
                execution=state.execution,
                goal_event=ev.detail_type,
                entered_at=entered,
                value=Decimal(str(total)) if total is not None else None,
            )
        )
        return Decision(
            program.id,
            cid,
            ev.event_id,
            "converted",
            "holdout" if state.holdout else None,
            state.execution,
            state.cohort,
        )

    def _ledger(self, d: Decision, ev: IncomingEvent, now: datetime) -> ActivityItem:
        kind = "CONV" if d.decision == "converted" else "ENTRY"
        return ActivityItem(
            customer_id=d.customer_id,
            kind=kind,
            # A skip stands at its trigger's time, so a redelivered trigger skipped again
            # rewrites its one row (with the reason of the last delivery) instead of adding
            # one per delivery; an entry or a holdout is recorded once (the journey state
            # keeps the trigger) and stands at the time it was decided.
            at=ev.time if d.decision == "skipped" else now,
            key=f"{d.program}#{d.event_id}",
            data={
                "program": d.program,
                "decision": d.decision,
                "reason": d.reason,
                "execution": d.execution,
                "cohort": d.cohort,
                "trigger_type": ev.detail_type,
                "trigger_id": d.event_id,
                # when the entry counts from for attribution (never before its trigger)
                "entered_at": iso(max(now, ev.time))
                if d.decision in ("entered", "holdout")
                else None,
                **(d.detail or {}),
            },
        )


def _converted_by(
    state: JourneyState, event_id: str, at: datetime, execution: str | None = None
) -> bool:
    """Did this goal event (its id; at ``at``) convert this entry (its own execution)? Another
    event at the same instant (two orders in a second, a producer's retried put) did not."""
    if state.converted_execution != (execution if execution is not None else state.execution):
        return False
    if state.converted_by is not None:
        return state.converted_by == event_id
    return state.goal_reached_at == at  # saved before the event's id was kept
