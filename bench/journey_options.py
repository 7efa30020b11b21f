"""Journeys in batches (issue 15), priced before the engine was built and kept in step with
it since: three ways to run the demo's programs, each priced with ``bench/cost_model.py``'s
unit prices on the demo's measured mix.

* **status quo** — the previous engine, one Standard execution per entry: the
  transitions, Lambda invocations, handler times and DynamoDB items measured by the
  pipeline bench (``out/bench.json`` if it is a run of that engine, else the figures of
  its 2026-11-30 run, below);
* **timers** — per-customer durable timers: each wait is a one-time EventBridge Scheduler
  schedule (deleted after it fires), each stretch between waits a short Express execution
  that runs the same per-customer tasks as today;
* **cohorts** — entries of a program sharing their first due instant share one Standard
  execution; each step is one Lambda invocation over the group's members through the batch
  send path; members who diverge continue in child executions (docs/ARCHITECTURE.md,
  "Journeys in cohorts").

Pure arithmetic on measured counts and the programs in ``programs/*.yaml``; the cohort
figures are a model (stated below), not a measurement: the engine's measured figures are
docs/PERFORMANCE.md's "Journeys: previous engine vs cohort engine (same run)". Scope: the
journey path from the start of a journey to its last step. Of evaluate, only what the
engine changes at entry is counted, in its own column and not in the steps' calls: its
read (S: two calls a batch, customers then journeys, as measured; T and C: one
BatchGetItem over both tables a batch), the entry's write (S and T: a PutItem; C: the
journey state and the cohort member in shared TransactWriteItems, 50 entries a call, one
call per evaluate batch as an upper bound, 4 WRU an entry: +3 WRU against a PutItem) and
its start call. Channel fees excluded.

Cohort model, per program and day:

* entries a day = the run's entries of the program x scale / days;
* cohorts a day: a first step that waits until a local time keys the cohort by that local
  instant, so each time zone with an entry that day makes one cohort; otherwise entries
  share the W-minute window they arrive in (the program's ``cohort_minutes`` unless
  ``--window``), and arrive together when a daily job triggers them (segment changes from
  the 02:00 scoring, dormancy risk from the 01:00 sweep), by the hour when the hourly
  sweep does (abandoned carts), spread evenly over the shop's active hours otherwise (the
  demo's events fall between 07:00 and 23:00):
  ``slots x (1 - (1 - 1/slots) ** entries)`` windows hold one (a lower bound on the size:
  real arrivals bunch); an entry within 2 minutes of its window's end joins the next
  window's cohort, which shifts the windows but not their number;
* transitions are read off the compiled state machine
  (``kizuna.programs.compiler.compile_program``), not re-derived: an execution, root or
  child, is started at its instant (by a journey timer, a one-time Scheduler schedule,
  when that is later: one Scheduler invocation, priced), enters ``__dispatch`` (a Choice,
  its StartAt) only if a child group can start elsewhere than the root
  (``child_starts``), then the states of
  each step on the success path (a send, branch or split: its Task; a wait until a local
  time: Task and Wait; a fixed wait: its Wait; an exit: nothing, the state before it
  ends the execution). A root starts at ``start_step``: a wait-first program's first wait
  is its timer. The crash path (``<step>__failed``, ``__end``) is not priced;
* the first step invoked over a group of more than 500 keeps 500 and moves the others,
  500 at a time, to child executions that start at that step; members who diverge (a
  branch's else side, other split arms, another time zone at a local-time wait) continue
  in a child execution if any member of the group does: probability
  ``1 - (1 - share) ** members``; members whose next step is an exit (or nothing) leave
  in the step that decides: no child. An emptied group goes on to the end, each step
  finding nobody (``--empty-ends`` prices the alternative the engine does not build: its
  next Task ends it, 2 transitions). Branch sides are 50/50 (``--branch-share``); split
  arms by weight; time zones as the demo's shop (``tools/kizuna_tools/simulation.py``:
  90% Asia/Tokyo, the rest among four zones); goal exits and quiet-hours deferrals are
  left out;
* per step invocation: one consistent Query of the cohort's partition (the group's
  members and the child headers an earlier attempt made, filtered from every item, 1 MB
  a page; the headers are not counted); send steps read customers, CONTACT items and,
  with a goal that exits, JOURNEY# items in one BatchGetItem (2 or 3 keys a member, 100
  keys a call), write a claim per member and a CONTACT update per message in
  TransactWriteItems (100 actions a call), outcomes in BatchWriteItem (25 a call), call
  the providers (push: 100 a call); branches read fresh customers, local-time waits the
  members' zones (100 a call); branches, splits and local-time waits record each
  member's decision (``STEP#<entry>#<step>``, BatchWriteItem) and move the members who
  leave; the step's children cost their headers (one BatchWriteItem), their moved
  members and a StartExecution each. Evaluate starts a cohort's root execution once per
  warm container, counted once per cohort (a lower bound);
* Lambda compute: an invocation costs the journey helper's measured mean handler time,
  and each delivered message the campaign function's measured GB-s per delivered message
  (both on moto, both over-estimates).

Run: ``.venv/bin/python bench/journey_options.py`` (``--help`` for the parameters).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cost_model import (  # noqa: E402
    MILLION,
    PRICES_FILE,
    FunctionUse,
    OpCount,
    Prices,
    Usage,
    cost_by_service,
    load_prices,
    per_million,
)
from kizuna.adapters.dynamodb import (  # noqa: E402
    BATCH_GET_LIMIT,
    BATCH_WRITE_LIMIT,
    TRANSACT_LIMIT,
)
from kizuna.programs.compiler import compile_program, start_step  # noqa: E402
from kizuna.programs.loader import load_programs, next_of  # noqa: E402
from kizuna.programs.members import GROUP_LIMIT  # noqa: E402
from kizuna.programs.model import (  # noqa: E402
    BranchStep,
    ExitStep,
    Program,
    SendStep,
    SplitStep,
    WaitStep,
)

BENCH_JSON = ROOT / "out" / "bench.json"
EVALUATE_READS = ("dynamodb:BatchGetItem", "dynamodb:GetItem")
PROGRAMS_DIR = ROOT / "programs"

# the engine's own limits: members per step invocation (bigger groups split into children),
# keys per BatchGetItem, actions per TransactWriteItems, items per BatchWriteItem
MAX_GROUP = GROUP_LIMIT
BATCH_GET_ITEMS = BATCH_GET_LIMIT
TRANSACT_ACTIONS = TRANSACT_LIMIT
BATCH_WRITE_ITEMS = BATCH_WRITE_LIMIT
JOINS_PER_CALL = TRANSACT_LIMIT // 2  # evaluate: journey state + member item per entry
PUSH_PER_CALL = 100  # SendMessages
QUERY_PAGE_ITEMS = 1000  # a Query returns 1 MB a page: 1,000 items of 1 KB
EXTRA_ENTRY_WRU = 3.0  # 2 items in a TransactWriteItems (2 WRU each) instead of a PutItem (1)
EXPRESS_MEMORY_MB = 64  # an Express execution's memory is billed in 64 MB chunks
EXPRESS_ROUNDING_S = 0.1  # and its duration rounded up to 100 ms

# Who emits a program's trigger decides how its entries arrive: slots a day (see the model).
# 02:00 daily scoring and 01:00 daily sweep (infra/kizuna_infra/scoring.py, programs.py);
# the hourly sweep finds abandoned carts.
DAILY_TRIGGERS = frozenset(
    {"customer.segment_changed", "customer.dormancy_risk", "customer.points_expiring"}
)
HOURLY_TRIGGERS = frozenset({"cart.abandoned"})
# The demo shop's events fall between 07:00 and 23:00 local time (simulation.Shop._at).
ACTIVE_MINUTES = 16 * 60
# The demo shop's customers by time zone (tools/kizuna_tools/simulation.py): 90% Japanese
# in Asia/Tokyo, the others in one of four zones. The first is the shop's default zone.
DEMO_ZONES = (0.9, 0.025, 0.025, 0.025, 0.025)

# The pipeline run docs/PERFORMANCE.md reports (2026-11-30, 1,000 customers x 30 days), for
# when out/bench.json is absent: journeys, invocations, handler ms and transitions per
# program are the doc's tables; messages per program, items per call, evaluate's
# invocations and reads, and the campaign function's GB-s per message are that run's
# out/bench.json (the doc prints only totals).
FALLBACK_PIPELINE: dict[str, Any] = {
    "customers": 1000,
    "days": 30,
    "journeys_started": 1641,
    "transitions": {
        "cart-abandonment": {"executions": 108, "mean": 10.472},
        "champions-care": {"executions": 140, "mean": 3.107},
        "points-to-next-rank": {"executions": 141, "mean": 5.0},
        "post-purchase-recommendation": {"executions": 184, "mean": 5.0},
        "rank-up-congratulations": {"executions": 351, "mean": 5.980},
        "second-purchase-coupon": {"executions": 359, "mean": 9.404},
        "winback-before-dormancy": {"executions": 104, "mean": 7.490},
    },
    "invocations": {"journey": 1580, "send": 2301, "evaluate": 622},
    "mean_handler_ms": {"journey": 114.0, "send": 228.8},
    "functions": {"journey": {"memory_mb": 512}, "send": {"memory_mb": 512}},
    "calls": {
        "journey": {"dynamodb:GetItem": 1580},
        "send": {
            "dynamodb:BatchGetItem": 4402,
            "dynamodb:PutItem": 2301,
            "dynamodb:TransactWriteItems": 2051,
            "sesv2:SendEmail": 1450,
            "pinpoint:SendMessages": 484,
            "sns:CheckIfPhoneNumberIsOptedOut": 19,
            "sns:Publish": 19,
            "secretsmanager:GetSecretValue": 1,
            "ssm:GetParameter": 1,
        },
    },
    "items": {
        "evaluate": {
            "dynamodb:BatchGetItem": {"calls": 1068, "items": 10007, "strong": 10007},
            "dynamodb:GetItem": {"calls": 176, "items": 176, "strong": 176},
        },
        "journey": {"dynamodb:GetItem": {"calls": 1580, "items": 1580, "strong": 1580}},
        "send": {
            "dynamodb:BatchGetItem": {"calls": 4402, "items": 7173, "strong": 6450},
            "dynamodb:PutItem": {"calls": 2301, "items": 2301, "strong": 0},
            "dynamodb:TransactWriteItems": {"calls": 2051, "items": 4102, "strong": 0},
        },
    },
    "summary": {
        "messages": {
            "cart-abandonment": {"push": 51, "line": 7, "email": 145},
            "champions-care": {"email": 123, "line": 5},
            "points-to-next-rank": {"line": 9, "push": 70, "email": 58},
            "post-purchase-recommendation": {"email": 135, "push": 28, "line": 2},
            "rank-up-congratulations": {"email": 337, "push": 85, "line": 18},
            "second-purchase-coupon": {"email": 441, "push": 179, "line": 44},
            "winback-before-dormancy": {"email": 211, "push": 71, "sms": 19, "line": 13},
        }
    },
}
# The campaign function: 7,285 handler seconds at 1,024 MB for 100,000 delivered emails.
FALLBACK_BATCH_GB_S_PER_MESSAGE = 7285.4 / 100_000


# -- prices cost_model does not read ----------------------------------------------------------
@dataclass(frozen=True)
class MorePrices:
    """USD per single unit: Step Functions Express and EventBridge Scheduler (prices.yaml)."""

    express_request: float
    express_gb_second: float
    scheduler_invocation: float


def more_prices_from(data: Mapping[str, Any]) -> MorePrices:
    aws = data["aws"]
    return MorePrices(
        express_request=float(aws["stepfunctions_express_requests_per_million"]["price"]) / MILLION,
        express_gb_second=float(aws["stepfunctions_express_gb_second"]["price"]),
        scheduler_invocation=float(aws["scheduler_invocations_per_million"]["price"]) / MILLION,
    )


def load_more_prices(path: Path = PRICES_FILE) -> MorePrices:
    return more_prices_from(yaml.safe_load(path.read_text()))


# -- the demo's mix ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProgramMix:
    entries: float  # journey entries of the program in the run
    messages: Mapping[str, float]  # channel -> delivered messages
    transitions_per_entry: float  # measured mean states entered per finished execution

    @property
    def delivered(self) -> float:
        return float(sum(self.messages.values()))


@dataclass(frozen=True)
class Mix:
    """One measured run of the per-customer engine: what every option is priced on."""

    days: float
    customers: int
    programs: Mapping[str, ProgramMix]
    functions: Mapping[str, FunctionUse]  # the journey helper and send functions
    dynamodb: Mapping[str, OpCount]  # their DynamoDB operations
    step_calls: float  # every AWS call they made, provider calls included
    batch_gb_s_per_message: float  # the batch send path's compute per delivered message
    source: str = ""
    evaluate_invocations: float = 0.0
    evaluate_reads: OpCount = field(default_factory=lambda: OpCount(0, 0, 0))  # customers, journeys

    @property
    def entries(self) -> float:
        return sum(p.entries for p in self.programs.values())

    @property
    def messages(self) -> float:
        return sum(p.delivered for p in self.programs.values())

    @property
    def helper_gb_s(self) -> float:
        """One journey helper invocation (a handler that reads an item), GB-s."""
        use = self.functions["journey"]
        return use.mean_ms / 1000 * use.memory_mb / 1024


def mix_from_pipeline(
    pipe: Mapping[str, Any], batch_gb_s_per_message: float, source: str = ""
) -> Mix:
    """The mix of a pipeline bench result (``out/bench.json``'s ``pipeline``). Entries per
    program: the run's journeys shared as the finished executions are (executions still
    waiting are assumed to be spread like them, as cost_model assumes)."""
    # the programs' state machines (the scoring and campaign ones are "...StateMachine...")
    measured = {p: t for p, t in pipe["transitions"].items() if "StateMachine" not in p}
    finished = sum(float(t["executions"]) for t in measured.values())
    started = float(pipe["journeys_started"])
    messages = pipe["summary"]["messages"]
    programs = {
        p: ProgramMix(
            entries=started * float(t["executions"]) / finished,
            messages={ch: float(n) for ch, n in messages.get(p, {}).items()},
            transitions_per_entry=float(t["mean"]),
        )
        for p, t in measured.items()
    }
    functions: dict[str, FunctionUse] = {}
    dynamodb: dict[str, OpCount] = {}
    calls = 0.0
    for role in ("journey", "send"):
        functions[role] = FunctionUse(
            invocations=float(pipe["invocations"].get(role, 0)),
            mean_ms=float(pipe["mean_handler_ms"].get(role, 0.0)),
            memory_mb=int(pipe["functions"].get(role, {}).get("memory_mb", 512)),
        )
        for key, c in pipe["items"].get(role, {}).items():
            service, operation = key.split(":", 1)
            if service != "dynamodb":
                continue
            prev = dynamodb.get(operation, OpCount(0, 0, 0))
            dynamodb[operation] = OpCount(
                prev.calls + float(c["calls"]),
                prev.items + float(c["items"]),
                prev.strong_items + float(c.get("strong", 0)),
            )
        calls += float(sum(pipe["calls"].get(role, {}).values()))
    reads = [c for op, c in pipe["items"].get("evaluate", {}).items() if op in EVALUATE_READS]
    return Mix(
        days=float(pipe["days"]),
        customers=int(pipe["customers"]),
        programs=programs,
        functions=functions,
        dynamodb=dynamodb,
        step_calls=calls,
        batch_gb_s_per_message=batch_gb_s_per_message,
        source=source,
        evaluate_invocations=float(pipe["invocations"].get("evaluate", 0)),
        evaluate_reads=OpCount(
            sum(float(c["calls"]) for c in reads),
            sum(float(c["items"]) for c in reads),
            sum(float(c.get("strong", 0)) for c in reads),
        ),
    )


def previous_engine(pipe: Mapping[str, Any]) -> bool:
    """Whether a pipeline result is a run of the previous, per-entry engine: the cohort
    engine's evaluate writes entries in TransactWriteItems, the previous one in PutItem."""
    return "dynamodb:TransactWriteItems" not in pipe.get("calls", {}).get("evaluate", {})


def load_mix(path: Path = BENCH_JSON) -> Mix:
    """The mix of ``out/bench.json`` if it has a pipeline section of the previous engine (the
    status quo), else the fallback."""
    if path.exists():
        results = json.loads(path.read_text())
        pipe = results.get("pipeline")
        if pipe and "items" in pipe and previous_engine(pipe):
            batch = FALLBACK_BATCH_GB_S_PER_MESSAGE
            campaign = (results.get("campaign") or {}).get("campaign")
            if campaign and campaign.get("delivered"):
                seconds = sum(campaign["handler_seconds"].values())
                memory = next(iter(campaign["memory_mb"].values()))
                batch = seconds * memory / 1024 / float(campaign["delivered"])
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            return mix_from_pipeline(pipe, batch, f"{shown} ({results.get('date', '?')})")
    return mix_from_pipeline(
        FALLBACK_PIPELINE,
        FALLBACK_BATCH_GB_S_PER_MESSAGE,
        "constants from docs/PERFORMANCE.md (the 2026-11-30 run)",
    )


# -- walking a program ----------------------------------------------------------------------
def _next(program: Program, step_id: str) -> str | None:
    found = next_of(program, [s.id for s in program.steps].index(step_id))
    return found[0] if found else None


def ends(program: Program, step_id: str | None) -> bool:
    return step_id is None or isinstance(program.step(step_id), ExitStep)


def sides(
    program: Program, step_id: str, branch_share: float, zones: Sequence[float]
) -> list[tuple[float, str | None]]:
    """Where a step's members go, with their shares; the first is the side the group keeps
    (a branch's then, the first arm, the default time zone)."""
    step = program.step(step_id)
    if isinstance(step, BranchStep):
        return [(1 - branch_share, step.then), (branch_share, step.otherwise)]
    if isinstance(step, SplitStep):
        return [(a.weight / 100, a.next) for a in step.arms]
    if isinstance(step, WaitStep) and step.local_time is not None:
        after = _next(program, step_id)
        return [(share, after) for share in zones]
    return [(1.0, _next(program, step_id) if not isinstance(step, ExitStep) else None)]


@dataclass(frozen=True)
class Machine:
    """A program's compiled state machine (``compile_program``): the states an execution
    enters on the success path, read off the ASL itself so that the model follows the
    compiler (the crash path, ``<step>__failed`` and ``__end``, is not walked)."""

    states: Mapping[str, Mapping[str, Any]]
    steps: frozenset[str]  # the program's steps that are states (no exits, no first wait)
    start_at: str

    @classmethod
    def of(cls, program: Program) -> Machine:
        asl = compile_program(program)
        states = asl["States"]
        return cls(states, frozenset(s.id for s in program.steps if s.id in states), asl["StartAt"])

    def _follow(self, name: str, step: str | None) -> tuple[int, str | None]:
        """From state ``name``: (states entered until the next step's state, that step; None
        when the execution ends). A Choice goes to ``step`` if it names it, else to its
        Default."""
        entered = 0
        while True:
            state = self.states[name]
            entered += 1
            if state["Type"] == "Choice":
                found = [c["Next"] for c in state["Choices"] if c.get("StringEquals") == step]
                target = found[0] if found else state["Default"]
            else:
                target = state.get("Next")
            if target is None:  # End
                return entered, None
            if target in self.steps:
                return entered, target
            name = target

    def start(self, step: str | None) -> tuple[int, str | None]:
        """An execution started at ``step`` (its ``$.step``): the states it enters before it
        (``__dispatch`` where the program has one: the StartAt), and the step reached (None:
        the execution ends there, e.g. a wait-first program whose wait leads to an exit)."""
        if self.start_at in self.steps:  # no dispatch: the execution starts at its step
            return 0, self.start_at
        entered, reached = self._follow(self.start_at, step)
        if reached != (step if step in self.steps else None):
            raise AssertionError(f"an execution started at {step} reaches {reached}")
        return entered, reached

    def run(self, step: str) -> tuple[int, str | None]:
        """The states the group enters at ``step`` (its Task, Wait, or Task and Wait), and
        the step after (None: the execution ends)."""
        return self._follow(step, None)

    def fused(self, step: str) -> str | None:
        """The step ``step``'s task runs right after it in the same invocation (the
        compiler's fused pair), if any."""
        then = self.states[step].get("Parameters", {}).get("Payload", {}).get("then")
        return str(then[0]["step"]) if then else None


@dataclass(frozen=True)
class MemberPath:
    """Expected steps one entry passes (member level, goal exits ignored)."""

    sends: float
    waits: float
    decisions: float  # branches and splits
    first_wait: bool  # the program starts with a wait


def member_path(program: Program, branch_share: float = 0.5) -> MemberPath:
    sends = waits = decisions = 0.0

    def walk(step_id: str | None, weight: float) -> None:
        nonlocal sends, waits, decisions
        if step_id is None or weight == 0:
            return
        step = program.step(step_id)
        if isinstance(step, ExitStep):
            return
        if isinstance(step, SendStep):
            sends += weight
        if isinstance(step, WaitStep):
            waits += weight
        if isinstance(step, BranchStep | SplitStep):
            decisions += weight
        for share, target in sides(program, step_id, branch_share, (1.0,)):
            walk(target, weight * share)

    walk(program.steps[0].id, 1.0)
    return MemberPath(sends, waits, decisions, isinstance(program.steps[0], WaitStep))


def calls_for(items: float, per_call: int) -> float:
    """Calls for ``items`` expected items, ``per_call`` a call; below one item, the chance
    that there is one."""
    if items <= 0:
        return 0.0
    return items if items < 1 else float(math.ceil(items / per_call))


@dataclass
class Tally:
    """What cohort executions use (expected values; they add up)."""

    transitions: float = 0.0
    executions: float = 0.0  # StartExecution: root cohorts (evaluate) and children
    roots: float = 0.0  # of which root cohorts
    invocations: float = 0.0  # Lambda step invocations
    delivered: float = 0.0
    provider_calls: float = 0.0
    dynamodb: dict[str, OpCount] = field(default_factory=dict)

    def call(self, operation: str, calls: float, items: float, strong: float = 0.0) -> None:
        prev = self.dynamodb.get(operation, OpCount(0, 0, 0))
        self.dynamodb[operation] = OpCount(
            prev.calls + calls, prev.items + items, prev.strong_items + strong
        )

    def add(self, other: Tally, weight: float = 1.0) -> None:
        self.transitions += weight * other.transitions
        self.executions += weight * other.executions
        self.roots += weight * other.roots
        self.invocations += weight * other.invocations
        self.delivered += weight * other.delivered
        self.provider_calls += weight * other.provider_calls
        for op, c in other.dynamodb.items():
            self.call(op, weight * c.calls, weight * c.items, weight * c.strong_items)

    @property
    def dynamodb_calls(self) -> float:
        return sum(c.calls for c in self.dynamodb.values())


@dataclass(frozen=True)
class Delivery:
    """Per member at a send step: the share delivered, and the push share of those."""

    delivered_share: float
    push_share: float


@dataclass(frozen=True)
class CohortWalk:
    """Expected use of one program's cohort executions, step by step, as the engine runs
    them (``kizuna.services.cohort``), their transitions read off the compiled state
    machine (:class:`Machine`). One alternative is priced by a flag: ``empty_goes_on`` — an
    emptied group walks the rest of the program, each step finding nobody, as the engine
    does (False: its next Task ends it: 2 transitions)."""

    program: Program
    delivery: Delivery
    branch_share: float = 0.5
    zones: Sequence[float] = DEMO_ZONES
    empty_goes_on: bool = True
    machine: Machine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "machine", Machine.of(self.program))

    def root(self, members: float) -> Tally:
        """A root cohort of ``members`` entries, started by evaluate at the compiler's
        ``start_step``. Nothing runs for a program with nothing after its first wait."""
        first = start_step(self.program)
        if first is None:
            return Tally()
        out = self.execution(first, members, members)
        out.roots = 1
        return out

    def execution(self, step_id: str, g: float, cohort: float) -> Tally:
        """One execution (root or child) started at ``step_id`` with ``g`` members."""
        entered, first = self.machine.start(step_id)
        out = Tally(transitions=entered, executions=1)
        out.add(self.rest(first, g, cohort))
        return out

    def rest(self, step_id: str | None, g: float, cohort: float, chained: bool = False) -> Tally:
        """The rest of one execution from ``step_id`` with ``g`` members (0: an emptied group,
        which goes on, each step finding nobody) in a cohort of ``cohort`` members. The
        first step invoked over more than MAX_GROUP members keeps MAX_GROUP of them and moves
        the others, MAX_GROUP at a time, to child executions that start at that step.
        ``chained``: the step runs in the invocation of the step before (a fused pair: no
        state, no invocation of its own; it reads the group again)."""
        t = Tally()
        if step_id is None:
            return t  # the state before ended the execution
        step = self.program.step(step_id)
        entered, following = self.machine.run(step_id)
        fused = None if chained else self.machine.fused(step_id)
        if chained:  # its own state (if it heads a pair) is not entered: go on as the step
            entered = 0
            main = sides(self.program, step_id, self.branch_share, self.zones)[0][1]
            following = None if ends(self.program, main) else main
        elif fused is not None:
            following = fused  # the second step of the pair, in this invocation
        if isinstance(step, WaitStep) and step.local_time is None:
            t.transitions += entered
            t.add(self.rest(following, g, cohort))
            return t
        t.invocations += 0 if chained else 1
        # the group's members and the children an earlier attempt made: one consistent
        # query of the cohort's partition, filtered (it reads every item, 1 MB a page)
        pages = max(1.0, math.ceil(cohort / QUERY_PAGE_ITEMS))
        t.call("Query", pages, cohort, cohort)
        if g <= 0 and not self.empty_goes_on:
            # the alternative: the Task ends the execution (its state and an end; a step
            # fused after another: the end only)
            t.transitions += 1 if chained else 2
            return t
        t.transitions += entered
        overflow = max(0.0, g - MAX_GROUP)
        chunks = [float(MAX_GROUP)] * int(overflow // MAX_GROUP)
        if overflow % MAX_GROUP:
            chunks.append(overflow % MAX_GROUP)
        g -= overflow
        children: list[tuple[float, float, str]] = [(1.0, c, step_id) for c in chunks]
        if isinstance(step, SendStep):
            sent = g * self.delivery.delivered_share
            push = sent * self.delivery.push_share
            # customers, CONTACT items and (a goal that exits) JOURNEY# items: one
            # BatchGetItem over both tables, 100 keys a call
            keys = (3 if self.program.goal and self.program.goal.exit_journey else 2) * g
            t.call("BatchGetItem", calls_for(keys, BATCH_GET_ITEMS), keys, keys)
            # a claim per member and a CONTACT update per message, 100 actions a call
            t.call("TransactWriteItems", calls_for(g + sent, TRANSACT_ACTIONS), g + sent)
            t.call("BatchWriteItem", calls_for(sent, BATCH_WRITE_ITEMS), sent)  # outcomes
            t.delivered += sent
            t.provider_calls += sent - push + calls_for(push, PUSH_PER_CALL)
            after = self.rest(following, g, cohort, chained=fused is not None)
        else:
            if isinstance(step, BranchStep | WaitStep):  # fresh state, or each member's zone
                t.call("BatchGetItem", calls_for(g, BATCH_GET_ITEMS), g, g)
            t.call("BatchWriteItem", calls_for(g, BATCH_WRITE_ITEMS), g)  # each decision
            (kept, main), *others = sides(self.program, step_id, self.branch_share, self.zones)
            if following != (None if ends(self.program, main) else main):
                raise AssertionError(f"{step_id}: the group goes on to {following}, not {main}")
            for share, target in others:
                if share <= 0 or g <= 0:
                    continue
                p = 1 - (1 - share) ** g  # some member goes there
                moved = g * share / p
                if target is None or ends(self.program, target):
                    # their journey is over: they leave the group (moved to "-"), no child
                    t.call("BatchWriteItem", p * calls_for(moved, BATCH_WRITE_ITEMS), p * moved)
                else:
                    children.append((p, moved, target))
            p = 1 - (1 - kept) ** g if kept < 1 else 1.0
            after = Tally()
            if p > 0:
                after.add(self.rest(following, g * kept / p, cohort, fused is not None), p)
            if p < 1:
                after.add(self.rest(following, 0.0, cohort, fused is not None), 1 - p)
        # the step's child groups: headers in one BatchWriteItem, then each child's members
        # moved (BatchWriteItem) and its execution started
        if children:
            headers = sum(p for p, _, _ in children)
            calls = (
                1 - math.prod(1 - p for p, _, _ in children)  # if any child is made
                if headers <= BATCH_WRITE_ITEMS
                else calls_for(headers, BATCH_WRITE_ITEMS)
            )
            t.call("BatchWriteItem", calls, headers)
            for p, moved, target in children:
                child = Tally()
                child.call("BatchWriteItem", calls_for(moved, BATCH_WRITE_ITEMS), moved)
                child.add(self.execution(target, moved, cohort))
                t.add(child, p)
        t.add(after)
        return t


def cohorts_a_day(
    program: Program,
    entries_a_day: float,
    window_minutes: float,
    zones: Sequence[float],
    active_minutes: float = ACTIVE_MINUTES,
) -> list[tuple[float, float]]:
    """(cohorts a day, members per cohort) classes for a program's entries of one day."""
    if entries_a_day <= 0:
        return []
    first = program.steps[0]
    if isinstance(first, WaitStep) and first.local_time is not None:
        out = []
        for share in zones:
            p = 1 - (1 - share) ** entries_a_day
            if p > 0:
                out.append((p, entries_a_day * share / p))
        return out
    if program.trigger.event in DAILY_TRIGGERS:
        slots = 1.0
    elif program.trigger.event in HOURLY_TRIGGERS:
        slots = max(1.0, active_minutes / max(60.0, window_minutes))
    else:
        slots = max(1.0, active_minutes / window_minutes)
    filled = slots * (1 - (1 - 1 / slots) ** entries_a_day) if slots > 1 else 1.0
    return [(filled, entries_a_day / filled)]


# -- options ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One way to run the mix: run totals, priced per delivered message."""

    name: str
    entries: float
    messages: float
    functions: Mapping[str, FunctionUse]
    dynamodb: Mapping[str, OpCount]
    start_calls: float  # calls that start journeys (StartExecution, CreateSchedule)
    step_calls: float  # calls of the steps, provider calls included
    executions: float  # Standard or Express executions
    transitions: float = 0.0  # Standard
    express_requests: float = 0.0
    express_gb_seconds: float = 0.0
    scheduler_invocations: float = 0.0
    extra_entry_wru: float = 0.0
    members_per_cohort: float | None = None
    entry_reads: float = 0.0  # evaluate's reads of customers and journeys
    entry_writes: float = 0.0  # evaluate's writes of the entries (journey state, member)

    @property
    def entry_calls(self) -> float:
        """What evaluate calls for the journeys: its reads, the entries' writes, the starts."""
        return self.entry_reads + self.entry_writes + self.start_calls

    def costs(self, prices: Prices, more: MorePrices) -> dict[str, float]:
        """USD of the run by service (no channel fees)."""
        usage = Usage(
            functions=dict(self.functions),
            dynamodb=dict(self.dynamodb),
            transitions=self.transitions,
        )
        by_service = cost_by_service(usage, prices)
        for unused in ("EventBridge", "SQS", "channel fees"):
            by_service.pop(unused)
        by_service["DynamoDB writes"] += self.extra_entry_wru * prices.dynamodb_wru
        by_service["Step Functions Express"] = (
            self.express_requests * more.express_request
            + self.express_gb_seconds * more.express_gb_second
        )
        by_service["EventBridge Scheduler"] = self.scheduler_invocations * more.scheduler_invocation
        return by_service

    def per_million_messages(self, prices: Prices, more: MorePrices) -> dict[str, float]:
        return per_million(self.costs(prices, more), self.messages)

    def per_message(self, count: float) -> float:
        return count / self.messages if self.messages else 0.0


def evaluate_batches(mix: Mix, scale: float = 1.0) -> tuple[float, float]:
    """(read calls, entry write calls) of evaluate as built, at ``scale``: per batch (an
    invocation, the run's batches at every scale) one BatchGetItem over both tables (100 keys
    a call), and the batch's entries in shared TransactWriteItems (50 entries a call),
    counted for every batch (an upper bound). Without measured batches, one per entry."""
    batches = mix.evaluate_invocations * scale or mix.entries * scale
    if not batches:
        return 0.0, 0.0
    keys = mix.evaluate_reads.items * scale / batches
    entries = mix.entries * scale / batches
    return (
        batches * calls_for(keys, BATCH_GET_ITEMS),
        batches * calls_for(entries, JOINS_PER_CALL),
    )


def status_quo(mix: Mix) -> Option:
    """One Standard execution per entry, as measured; evaluate read customers and
    journeys in two calls a batch (measured), wrote an entry in a PutItem."""
    return Option(
        name="S: status quo, one Standard execution per entry (measured)",
        entries=mix.entries,
        messages=mix.messages,
        functions=mix.functions,
        dynamodb=mix.dynamodb,
        start_calls=mix.entries,
        step_calls=mix.step_calls,
        executions=mix.entries,
        transitions=sum(p.entries * p.transitions_per_entry for p in mix.programs.values()),
        entry_reads=mix.evaluate_reads.calls,
        entry_writes=mix.entries,
    )


def timers(mix: Mix, programs: Mapping[str, Program], branch_share: float = 0.5) -> Option:
    """Scheduler timers and Express segments: today's per-customer tasks (measured), each
    wait a one-time schedule (CreateSchedule; deleted after it fires by ActionAfterCompletion;
    the Scheduler's StartExecution of the next segment), each stretch between waits an Express
    execution (billed 64 MB for the tasks' measured time, rounded up to 100 ms). A program
    that starts with a wait is scheduled by evaluate: no first segment. Each branch or split
    decision is written to the ledger (a PutItem), since Express keeps no history but in
    CloudWatch Logs: "why did customer X get step S" stays one ledger query. Evaluate reads
    as built (one call a batch) and writes an entry in a PutItem."""
    segments = waits = later_waits = decisions = 0.0
    for pid, pm in mix.programs.items():
        path = member_path(programs[pid], branch_share)
        waits += pm.entries * path.waits
        later_waits += pm.entries * (path.waits - path.first_wait)
        segments += pm.entries * (1 + path.waits - path.first_wait)
        decisions += pm.entries * path.decisions
    dynamodb = dict(mix.dynamodb)
    prev = dynamodb.get("PutItem", OpCount(0, 0, 0))
    dynamodb["PutItem"] = OpCount(prev.calls + decisions, prev.items + decisions, prev.strong_items)
    task_seconds = sum(u.invocations * u.mean_ms / 1000 for u in mix.functions.values())
    billed = math.ceil(task_seconds / segments / EXPRESS_ROUNDING_S) * EXPRESS_ROUNDING_S
    return Option(
        name="T: timers, a Scheduler schedule per wait + Express segments",
        entries=mix.entries,
        messages=mix.messages,
        functions=mix.functions,
        dynamodb=dynamodb,
        start_calls=mix.entries,  # StartExecution, or CreateSchedule for a first wait
        # CreateSchedule for later waits, the Scheduler's StartExecution, the decisions
        step_calls=mix.step_calls + later_waits + waits + decisions,
        executions=segments,
        express_requests=segments,
        express_gb_seconds=segments * billed * EXPRESS_MEMORY_MB / 1024,
        scheduler_invocations=waits,
        entry_reads=evaluate_batches(mix)[0],
        entry_writes=mix.entries,
    )


def delivery_of(mix: Mix, pid: str, program: Program, branch_share: float) -> Delivery:
    pm = mix.programs[pid]
    sends = pm.entries * member_path(program, branch_share).sends
    delivered = pm.delivered
    return Delivery(
        delivered_share=min(1.0, delivered / sends) if sends else 0.0,
        push_share=pm.messages.get("push", 0.0) / delivered if delivered else 0.0,
    )


@dataclass(frozen=True)
class CohortModel:
    """The cohort model's parameters (see the module's docstring)."""

    window_minutes: float | None = None  # None: each program's cohort_minutes
    branch_share: float = 0.5
    zones: Sequence[float] = DEMO_ZONES
    empty_goes_on: bool = True


@dataclass(frozen=True)
class ProgramCohorts:
    program: str
    entries_a_day: float
    cohorts_a_day: float
    members_per_cohort: float
    transitions_per_entry: float
    day: Tally


def program_cohorts(
    mix: Mix,
    pid: str,
    program: Program,
    scale: float = 1.0,
    model: CohortModel = CohortModel(),
    members: float | None = None,
    one_a_day: bool = False,
) -> ProgramCohorts:
    """One program's cohorts for a day at ``scale`` times the demo's customers; with
    ``members``, cohorts of exactly that many entries; with ``one_a_day``, a day's entries in
    one cohort."""
    entries = mix.programs[pid].entries * scale / mix.days
    walk = CohortWalk(
        program,
        delivery_of(mix, pid, program, model.branch_share),
        model.branch_share,
        model.zones,
        model.empty_goes_on,
    )
    if members is not None:
        classes = [(entries / members, members)]
    elif one_a_day:
        classes = [(1.0, entries)] if entries else []
    else:
        window = model.window_minutes or program.cohort_minutes
        classes = cohorts_a_day(program, entries, window, model.zones)
    day = Tally()
    for count, size in classes:
        day.add(walk.root(size), count)
    cohorts = sum(count for count, _ in classes)
    return ProgramCohorts(
        program=pid,
        entries_a_day=entries,
        cohorts_a_day=cohorts,
        members_per_cohort=entries / cohorts if cohorts else 0.0,
        transitions_per_entry=day.transitions / entries if entries else 0.0,
        day=day,
    )


def cohorts(
    mix: Mix,
    programs: Mapping[str, Program],
    scale: float = 1.0,
    model: CohortModel = CohortModel(),
    members: float | None = None,
    one_a_day: bool = False,
    name: str | None = None,
) -> Option:
    """Cohort executions for ``scale`` times the demo's customers (the same mix per customer),
    as run totals over the run's days; evaluate as built (:func:`evaluate_batches`)."""
    total = Tally()
    entries = 0.0
    for pid in mix.programs:
        pc = program_cohorts(mix, pid, programs[pid], scale, model, members, one_a_day)
        total.add(pc.day, mix.days)
        entries += pc.entries_a_day * mix.days
    reads, writes = evaluate_batches(mix, scale)
    gb_s = total.invocations * mix.helper_gb_s + total.delivered * mix.batch_gb_s_per_message
    step = FunctionUse(
        invocations=total.invocations,
        mean_ms=gb_s / total.invocations * 1000 if total.invocations else 0.0,
        memory_mb=1024,
    )
    return Option(
        name=name or f"cohorts at {scale:g}x the demo's customers",
        entries=entries,
        messages=mix.messages * scale,
        functions={"step": step},
        dynamodb=total.dynamodb,
        start_calls=total.roots,
        step_calls=total.dynamodb_calls + total.executions - total.roots + total.provider_calls,
        executions=total.executions,
        transitions=total.transitions,
        # every execution due later starts by a timer: an upper bound (children due at once
        # are started directly)
        scheduler_invocations=total.executions,
        extra_entry_wru=EXTRA_ENTRY_WRU * entries,
        members_per_cohort=entries / total.roots if total.roots else None,
        entry_reads=reads,
        entry_writes=writes,
    )


# -- the report ----------------------------------------------------------------------------
def _num(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def options_table(options: Sequence[Option], prices: Prices, more: MorePrices) -> str:
    rows = []
    for o in options:
        usd = o.per_million_messages(prices, more)
        orchestration = (
            usd["Step Functions"] + usd["Step Functions Express"] + usd["EventBridge Scheduler"]
        )
        rows.append(
            [
                o.name,
                "-" if o.members_per_cohort is None else _num(o.members_per_cohort),
                _num(o.per_message(o.transitions)),
                _num(o.per_message(o.express_requests)),
                _num(o.per_message(o.scheduler_invocations)),
                _num(o.per_message(o.step_calls)),
                _num(o.entry_calls / o.entries if o.entries else 0.0),
                _num(o.executions / o.entries if o.entries else 0.0),
                _usd(orchestration),
                _usd(usd["total"]),
            ]
        )
    return markdown(
        [
            "option",
            "members per cohort",
            "Standard transitions / message",
            "Express requests / message",
            "Scheduler invocations / message",
            "AWS calls / message (steps)",
            "evaluate calls / entry (read, write, start)",
            "executions / entry",
            "orchestration $ / 1M messages",
            "platform $ / 1M messages",
        ],
        rows,
    )


def services_table(options: Sequence[Option], prices: Prices, more: MorePrices) -> str:
    columns = [o.per_million_messages(prices, more) for o in options]
    services = list(columns[0])
    return markdown(
        ["USD per 1M delivered messages", *[o.name.split(":")[0] for o in options]],
        [[svc, *[_usd(c[svc]) for c in columns]] for svc in services],
    )


def programs_table(
    mix: Mix, programs: Mapping[str, Program], scales: Sequence[float], model: CohortModel
) -> str:
    rows = []
    for pid, pm in sorted(mix.programs.items()):
        at = [program_cohorts(mix, pid, programs[pid], s, model) for s in scales]
        rows.append(
            [
                pid,
                _num(at[0].entries_a_day),
                " / ".join(_num(pc.members_per_cohort) for pc in at),
                _num(pm.transitions_per_entry),
                " / ".join(_num(pc.transitions_per_entry) for pc in at),
            ]
        )
    scale_names = " / ".join(f"{s:g}x" for s in scales)
    return markdown(
        [
            "program",
            "entries a day (demo)",
            f"members per cohort ({scale_names})",
            "transitions per entry today (measured)",
            f"cohorts: transitions per entry ({scale_names})",
        ],
        rows,
    )


def options(
    mix: Mix,
    programs: Mapping[str, Program],
    scales: Sequence[float] = (1, 10, 100),
    model: CohortModel = CohortModel(),
) -> list[Option]:
    """The status quo, timers, and cohorts: of one member, of a day's entries, and at
    ``scales`` times the demo's customers."""
    out = [
        status_quo(mix),
        timers(mix, programs, model.branch_share),
        cohorts(mix, programs, model=model, members=1.0, name="C1: cohorts of 1"),
        cohorts(
            mix,
            programs,
            model=model,
            one_a_day=True,
            name=f"C-day: a day's entries per cohort, {mix.customers:,} customers",
        ),
    ]
    for s in scales:
        name = f"C{s:g}x: cohorts, {mix.customers * s:,.0f} customers"
        out.append(cohorts(mix, programs, scale=s, model=model, name=name))
    return out


def report(
    mix: Mix,
    programs: Mapping[str, Program],
    prices: Prices,
    more: MorePrices,
    scales: Sequence[float] = (1, 10, 100),
    model: CohortModel = CohortModel(),
) -> str:
    priced = options(mix, programs, scales, model)
    window = (
        f"{model.window_minutes:g}"
        if model.window_minutes
        else "/".join(sorted({f"{programs[p].cohort_minutes:g}" for p in mix.programs}))
    )
    return "\n\n".join(
        [
            f"Mix: {mix.source}: {mix.entries:,.0f} journey entries, {mix.messages:,.0f} "
            f"delivered journey messages, {len(mix.programs)} programs, {mix.days:g} days. "
            f"Cohort window {window} min, branch else-share "
            f"{model.branch_share:g}, emptied groups go on: {model.empty_goes_on}.",
            options_table(priced, prices, more),
            services_table(priced, prices, more),
            programs_table(mix, programs, scales, model),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH_JSON, help="pipeline results")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="cohort window W, minutes (default: each program's cohort_minutes)",
    )
    parser.add_argument("--branch-share", type=float, default=0.5, help="a branch's else side")
    parser.add_argument("--scales", default="1,10,100", help="customers, x the demo's")
    parser.add_argument(
        "--empty-ends",
        action="store_true",
        help="an emptied group ends at its next Task (a Catch) instead of walking on",
    )
    args = parser.parse_args(argv)
    loaded, issues = load_programs(PROGRAMS_DIR)
    if issues:
        parser.error("; ".join(str(i) for i in issues))
    mix = load_mix(args.bench)
    # option C as designed: every program starts with its window's cohort (an at_once
    # program's entry segment runs outside Step Functions; the engine comparison in
    # bench/run.py measures it)
    programs = {p.id: p.model_copy(update={"start": "window"}) for p in loaded}
    missing = set(mix.programs) - set(programs)
    if missing:
        parser.error(f"programs measured but not in programs/: {', '.join(sorted(missing))}")
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    model = CohortModel(args.window, args.branch_share, DEMO_ZONES, not args.empty_ends)
    print(report(mix, programs, load_prices(), load_more_prices(), scales, model))


if __name__ == "__main__":
    main()
