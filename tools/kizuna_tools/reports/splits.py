"""Program splits with a winner rule: per arm, the entries that reached the split, were
exposed and converted, and the decision (docs/PROGRAMS.md, "Split winners chosen by the
data"). A decided split shows the evidence its ``WINNER#<split>`` row keeps (the counts the
test saw); an undecided one, today's counts from the program's ledger."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kizuna.programs.model import Program
from kizuna.programs.winners import WINNER_KIND, ArmCounts, count_arms, winner_splits


@dataclass(frozen=True)
class SplitResult:
    program: str
    step: str
    metric: str
    arms: Mapping[str, ArmCounts]
    winner: str | None = None  # None: undecided
    p_value: float | None = None
    difference: float | None = None
    interval: tuple[float, float] | None = None
    decided_at: str | None = None


def _decided(program: str, step: str, metric: str, row: Mapping[str, Any]) -> SplitResult:
    arms = {
        str(name): ArmCounts(int(c["reached"]), int(c["exposed"]), int(c["converted"]))
        for name, c in dict(row.get("arms") or {}).items()
    }
    interval = row.get("interval")
    return SplitResult(
        program=program,
        step=step,
        metric=str(row.get("metric") or metric),
        arms=arms,
        winner=str(row["winner"]),
        p_value=None if row.get("p_value") is None else float(row["p_value"]),
        difference=None if row.get("difference") is None else float(row["difference"]),
        interval=(float(interval[0]), float(interval[1])) if interval else None,
        decided_at=None if row.get("decided_at") is None else str(row["decided_at"]),
    )


def split_results(program: Program, rows: Iterable[Mapping[str, Any]]) -> list[SplitResult]:
    """Each winner-rule split of ``program``, from its ledger rows (its program/time index:
    the ``WINNER`` rows are on it too)."""
    splits = winner_splits(program)
    if not splits:
        return []
    rows = list(rows)
    decided = {
        str(r.get("step")): r
        for r in rows
        if r.get("kind") == WINNER_KIND and r.get("program") == program.id and r.get("winner")
    }
    out: list[SplitResult] = []
    for split in splits:
        assert split.winner is not None
        metric = split.winner.metric
        if split.id in decided:
            out.append(_decided(program.id, split.id, metric, decided[split.id]))
        else:
            counts = count_arms(program, split, rows)
            out.append(SplitResult(program=program.id, step=split.id, metric=metric, arms=counts))
    return out
