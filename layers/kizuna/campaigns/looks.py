"""The looks of a campaign's sequential winner test, as its occurrence records them.

``winner.rule: sequential`` with ``max_wait_hours`` looks at the variants' counts once a day
until the test decides (:mod:`kizuna.services.campaign` records each look on the occurrence
item, ``looks``, with the next one's time, ``next_look_at``). The CLI report, the API and
the console all show the same lines, built here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kizuna.domain.timestamps import parse_time

__all__ = ["Look", "decision_line", "looks_of", "next_look_of"]


@dataclass(frozen=True)
class Look:
    """One look: when it was due and taken, each variant's (exposed, converted), the
    p-value and the winner it chose (None: undecided at this look)."""

    number: int
    due: datetime
    at: datetime
    counts: dict[str, tuple[int, int]]  # variant -> (exposed, converted)
    p_value: float
    winner: str | None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Look:
        counts = item.get("counts") or {}
        return cls(
            number=int(item["number"]),
            due=parse_time(str(item["due"])),
            at=parse_time(str(item["at"])),
            counts={
                str(name): (int(c.get("exposed", 0)), int(c.get("converted", 0)))
                for name, c in counts.items()
            },
            p_value=float(item["p_value"]),
            winner=str(item["winner"]) if item.get("winner") else None,
        )

    def line(self) -> str:
        """``look 2 (due …, taken …): a 40/400, b 62/410; p 0.0123 -> b``"""
        counts = ", ".join(f"{n} {k}/{e}" for n, (e, k) in self.counts.items()) or "no counts"
        return (
            f"look {self.number} (due {self.due:%Y-%m-%d %H:%M}Z, "
            f"taken {self.at:%Y-%m-%d %H:%M}Z): {counts}; "
            f"p {self.p_value:.4g} -> {self.winner or 'undecided'}"
        )


def looks_of(occurrence: Mapping[str, Any]) -> list[Look]:
    """An occurrence item's looks, in order."""
    found: Iterable[Mapping[str, Any]] = occurrence.get("looks") or ()
    return sorted((Look.from_item(look) for look in found), key=lambda look: look.number)


def next_look_of(occurrence: Mapping[str, Any]) -> datetime | None:
    """When an undecided test looks next (None once a winner is chosen, or no look is due)."""
    if occurrence.get("next_look_at") and not occurrence.get("winner"):
        return parse_time(str(occurrence["next_look_at"]))
    return None


def decision_line(
    looks: Sequence[Look], winner: str | None, next_look_at: datetime | None
) -> str | None:
    """The decision so far after the looks (None: no look yet)."""
    if not looks:
        return None
    n = len(looks)
    taken = f"{n} look{'s' if n > 1 else ''}"
    decided = next((look.winner for look in looks if look.winner), None)
    if decided:
        return f"decision: {decided} after {taken}"
    if winner:
        return f"decision: undecided after {taken}, the rest get {winner}"
    if next_look_at is not None:
        return f"decision: undecided after {taken}, next look {next_look_at:%Y-%m-%d %H:%M}Z"
    return f"decision: undecided after {taken}"
