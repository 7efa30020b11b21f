"""Journey bookkeeping per customer and program (activity table, ``sk = JOURNEY#<program>``)
and the stable hashes that assign holdout and A/B arms."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kizuna.programs.model import Program, SplitStep


class JourneyState(BaseModel):
    """A customer's history with one program."""

    model_config = ConfigDict(extra="ignore")

    customer_id: str
    program: str
    rev: int = 0  # bumped on every write (optimistic concurrency)
    entries: int = 0
    first_entry_at: datetime | None = None
    last_entry_at: datetime | None = None
    last_event_id: str | None = None
    # Digests (:func:`trigger_digest`) of the triggers taken before the last one, newest
    # first, at most RECENT_TRIGGERS: a redelivered older trigger (a retried sweep, a
    # redriven dead letter, after another trigger re-entered a ``reentry: always`` program)
    # is known as taken, not entered again. Digests keep the item small (~20 bytes each).
    earlier_triggers: list[str] = Field(default_factory=list)
    execution: str | None = None  # the entry's key in the ledger (MSG#<execution>#<step>)
    cohort: str | None = None  # the cohort that carries the entry (its execution's name)
    group: str | None = None  # an at_once program's entry group (None: the cohort's root)
    holdout: bool = False
    arms: dict[str, str] = Field(default_factory=dict)
    goal_reached_at: datetime | None = None
    converted_execution: str | None = None
    converted_by: str | None = None  # the goal event's id: its redelivery is no new conversion

    def took(self, event_id: str) -> bool:
        """This trigger was entered (or held out) already: the last one or a recent one."""
        return event_id == self.last_event_id or trigger_digest(event_id) in self.earlier_triggers

    def triggers_after(self) -> list[str]:
        """``earlier_triggers`` of the entry a new trigger makes after this one."""
        taken = [trigger_digest(self.last_event_id)] if self.last_event_id else []
        return [*taken, *self.earlier_triggers][:RECENT_TRIGGERS]


# How many earlier triggers a journey state remembers (beyond the last one).
RECENT_TRIGGERS = 16


def trigger_digest(event_id: str) -> str:
    """A short, stable stand-in for a trigger's event id (64 bits of SHA-256)."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:16]


def bucket(*parts: str) -> float:
    """A stable number in [0, 100) for the parts (same customer + program -> same arm)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def holdout_bucket(program: Program, customer_id: str) -> float:
    """The customer's place in [0, 100) for the program's holdout (held out below
    ``holdout_percent``): the ledger records it with a holdout decision."""
    return bucket("holdout", program.id, customer_id)


def in_holdout(program: Program, customer_id: str) -> bool:
    return holdout_bucket(program, customer_id) < program.holdout_percent


def assign_arms(
    program: Program, customer_id: str, winners: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The entry's arm at each split, by stable hash and the arms' weights; at a split whose
    winner was decided (``winners``: split step id -> arm, :mod:`kizuna.programs.winners`),
    the winner. Assigned once, at entry: a member keeps the arm for the whole journey."""
    arms: dict[str, str] = {}
    for step in program.steps:
        if isinstance(step, SplitStep):
            chosen = (winners or {}).get(step.id)
            if chosen is not None and any(a.name == chosen for a in step.arms):
                arms[step.id] = chosen
                continue
            point = bucket("split", program.id, step.id, customer_id)
            edge = 0.0
            for arm in step.arms:
                edge += arm.weight
                if point < edge:
                    arms[step.id] = arm.name
                    break
            else:
                arms[step.id] = step.arms[-1].name
    return arms


def execution_name(program_id: str, trigger_event_id: str) -> str:
    """Deterministic: the same trigger event can never start two journeys (<= 80 chars)."""
    digest = hashlib.sha256(f"{program_id}\x1f{trigger_event_id}".encode()).hexdigest()[:32]
    return f"{program_id[:40]}-{digest}"
