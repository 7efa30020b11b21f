"""Winners chosen by the data: a split step's ``winner`` rule, checked daily (plain Python).

For each split with a ``winner`` rule and no decision yet, the daily sweep reads the
program's ledger (the activity table's program/time index) and counts, per arm:

- **reached**: the entries that reached the split (``STEP#<entry>#<split>`` rows whose
  decision is ``arm:<name>``; these rows are on the program's index);
- **exposed**: for ``opened`` and ``clicked``, the reached entries whose arm's next send
  step sent them the email (its ``MSG#<entry>#<step>`` row ``sent``: a suppressed or
  deferred message could not be opened), for ``clicked`` with its clicks measurable (not
  sent with its links untracked: :func:`kizuna.delivery.ledger.clicks_measurable`, the
  campaigns' rule); for ``goal``, every reached entry;
- **converted**: of the exposed, ``opened`` — the message's ``open_at`` or ``click_at`` (a
  click is an open); ``clicked`` — ``click_at``; ``goal`` — a conversion of that very entry
  (a ``CONV`` row of the treated entry).

:func:`kizuna.analytics.sequential.decide` looks at the counts (an always-valid test: a daily
look does not inflate its error rate; nothing is decided while an arm has fewer than
``min_per_arm`` exposed). When it names a winner, :func:`check_split` returns the
:class:`WinnerDecision` with its evidence, which the store writes once (a conditional put of
``PROGRAM#<program>`` / ``WINNER#<split>``, on the program's index too, so the program's
ledger shows it). From then on, entries get the winner at that split
(:func:`kizuna.programs.journeys.assign_arms`); members who entered before keep their arm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kizuna.analytics.sequential import Arm, Decision, decide
from kizuna.delivery.ledger import clicks_measurable
from kizuna.domain.timestamps import iso
from kizuna.programs.model import Program, SplitStep

WINNER_KIND: Final = "WINNER"
WINNER_PK: Final = "PROGRAM#"  # the activity table's partition of a program's decisions
ARM_PREFIX: Final = "arm:"  # a split's STEP row decision: arm:<name>


def winner_key(program: str, step: str) -> dict[str, str]:
    """Where a split's decision lives (the activity table; ``#`` is in no customer id)."""
    return {"pk": f"{WINNER_PK}{program}", "sk": f"{WINNER_KIND}#{step}"}


def winner_splits(program: Program) -> list[SplitStep]:
    """The program's splits with a winner rule."""
    return [s for s in program.steps if isinstance(s, SplitStep) and s.winner is not None]


@dataclass(frozen=True)
class ArmCounts:
    reached: int
    exposed: int
    converted: int


@dataclass(frozen=True)
class WinnerDecision:
    """A split's decided winner and the evidence: what the ledger row keeps."""

    program: str
    step: str
    winner: str
    metric: str
    alpha: float
    min_per_arm: int
    arms: Mapping[str, ArmCounts]
    p_value: float
    difference: float
    lift: float | None
    interval: tuple[float, float] | None
    reason: str
    decided_at: datetime

    def item(self) -> dict[str, Any]:
        """The durable record (without its keys): plain JSON values."""
        return {
            "kind": WINNER_KIND,
            "program": self.program,
            "step": self.step,
            "winner": self.winner,
            "metric": self.metric,
            "rule": "sequential",
            "alpha": self.alpha,
            "min_per_arm": self.min_per_arm,
            "arms": {
                n: {"reached": c.reached, "exposed": c.exposed, "converted": c.converted}
                for n, c in self.arms.items()
            },
            "p_value": self.p_value,
            "difference": self.difference,
            "lift": self.lift,
            "interval": list(self.interval) if self.interval is not None else None,
            "reason": self.reason,
            "decided_at": iso(self.decided_at),
            "at": iso(self.decided_at),
        }


def _message_parts(sk: str) -> tuple[str, str] | None:
    """(entry, step) of ``MSG#<entry>#<step>`` (an entry id has no ``#``)."""
    parts = sk.split("#")
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "MSG" else None


def count_arms(
    program: Program, split: SplitStep, rows: Iterable[Mapping[str, Any]]
) -> dict[str, ArmCounts]:
    """Per arm of ``split``: entries that reached it, were exposed and converted (module
    docstring), from the program's ledger rows (any order)."""
    assert split.winner is not None
    metric = split.winner.metric
    next_of = {a.name: a.next for a in split.arms}
    reached: dict[tuple[str, str], str] = {}  # (customer, entry) -> arm
    messages: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    converted: set[tuple[str, str]] = set()
    for row in rows:
        if row.get("program") != program.id:
            continue
        kind = row.get("kind")
        customer = str(row.get("pk", ""))
        decision = str(row.get("decision") or "")
        if kind == "STEP" and row.get("step") == split.id and decision.startswith(ARM_PREFIX):
            reached[(customer, str(row.get("execution")))] = decision[len(ARM_PREFIX) :]
        elif kind == "MSG":
            parts = _message_parts(str(row.get("sk", "")))
            if parts is not None:
                messages[(customer, *parts)] = row
        elif kind == "CONV" and decision == "converted" and row.get("reason") != "holdout":
            converted.add((customer, str(row.get("execution"))))
    counts = {a.name: [0, 0, 0] for a in split.arms}
    for (customer, entry), arm in reached.items():
        if arm not in counts:
            continue  # an arm since removed from the file
        tally = counts[arm]
        tally[0] += 1
        if metric == "goal":
            tally[1] += 1
            tally[2] += (customer, entry) in converted
            continue
        message = messages.get((customer, entry, next_of[arm] or ""))
        if message is None or message.get("status") != "sent":
            continue
        if metric == "clicked" and not clicks_measurable(message):
            continue  # its silence says nothing about clicks: not exposed
        tally[1] += 1
        if metric == "opened":
            tally[2] += bool(message.get("open_at") or message.get("click_at"))
        else:
            tally[2] += bool(message.get("click_at"))
    return {n: ArmCounts(*c) for n, c in counts.items()}


def check_split(
    program: Program, split: SplitStep, rows: Iterable[Mapping[str, Any]], now: datetime
) -> tuple[Decision, WinnerDecision | None]:
    """One daily look at a split: the test's outcome, and the decision to record when it
    names a winner (None: undecided, look again tomorrow)."""
    rule = split.winner
    assert rule is not None
    counts = count_arms(program, split, rows)
    outcome = decide(
        {n: Arm(c.exposed, c.converted) for n, c in counts.items()},
        alpha=rule.alpha,
        min_per_arm=rule.min_per_arm,
    )
    if outcome.winner is None:
        return outcome, None
    return outcome, WinnerDecision(
        program=program.id,
        step=split.id,
        winner=outcome.winner,
        metric=rule.metric,
        alpha=rule.alpha,
        min_per_arm=rule.min_per_arm,
        arms=counts,
        p_value=outcome.p_value,
        difference=outcome.difference,
        lift=outcome.lift,
        interval=outcome.interval,
        reason=f"{rule.metric} rate: {outcome.reason}",
        decided_at=now,
    )
