"""What a migration step says about an object it converted: one note per fact a person may
need, each with a level (what to do about it) and the object it is about.

Levels: ``info`` (carried over differently, nothing to do), ``decision`` (carried over with a
choice a person should confirm or change), ``dropped`` (not carried over: Kizuna has no such
thing), ``risk`` (carried over, but review it: raw HTML, absolute dates), ``error`` (could not
be converted: the object is not written, or is written incomplete as the message says).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["info", "decision", "dropped", "risk", "error"]
LEVELS: tuple[Level, ...] = ("info", "decision", "dropped", "risk", "error")


@dataclass(frozen=True)
class Note:
    level: Level
    subject: str  # e.g. "journey 'Welcome series' activity 'wait_1'", "template 'welcome_ja'"
    message: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.subject}: {self.message}"


__all__ = ["LEVELS", "Level", "Note"]
