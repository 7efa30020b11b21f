"""The local runtime's virtual clock and the timers that wait on it.

:class:`VirtualClock` implements :class:`kizuna.runtime.clock.Clock`; the runtime installs it with
``kizuna.runtime.clock.set_clock`` so handlers read virtual time. :class:`Timeline` holds the
threads that wait for a virtual instant (Step Functions Wait states, retry intervals): the
runtime wakes them one at a time, in the order of ``(due, key)``, as it moves the clock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class VirtualClock:
    """A clock that only moves forward, when the runtime tells it to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(
                "VirtualClock needs a timezone-aware start, e.g. datetime(..., tzinfo=UTC)"
            )
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def epoch(self) -> float:
        return self._now.timestamp()

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("VirtualClock.set needs a timezone-aware datetime")
        with self._lock:
            at = at.astimezone(UTC)
            if at < self._now:
                raise ValueError(f"the virtual clock cannot go back from {self._now} to {at}")
            self._now = at

    def advance(self, delta: timedelta) -> datetime:
        self.set(self._now + delta)
        return self._now


class RuntimeClosed(Exception):
    """Raised in a thread still waiting on the virtual clock when the runtime shuts down."""


@dataclass(order=True)
class Timer:
    """One thread waiting for the virtual clock to reach ``due``."""

    due: datetime
    key: tuple[str, ...]
    seq: int
    event: threading.Event = field(compare=False, default_factory=threading.Event)
    thread_id: int = field(compare=False, default=0)
    cancelled: bool = field(compare=False, default=False)


class Timeline:
    """Threads blocked until a virtual instant, woken in ``(due, key, seq)`` order."""

    def __init__(self, clock: VirtualClock, on_change: Callable[[], None] | None = None) -> None:
        self._clock = clock
        self._heap: list[Timer] = []
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._closed = False
        self._blocked: dict[int, Timer] = {}
        self._waking: set[int] = set()
        self._on_change = on_change or (lambda: None)

    # --- called from the threads that wait ---------------------------------------------
    def wait_until(
        self,
        due: datetime,
        key: tuple[str, ...],
        is_running: Callable[[], bool] = lambda: True,
        poll_seconds: float = 0.5,
    ) -> None:
        """Block the calling thread until the runtime moves the clock to ``due``.

        Returns early if ``is_running()`` turns false (the execution was stopped); raises
        :class:`RuntimeClosed` if the runtime shuts down meanwhile.
        """
        if self._closed:
            raise RuntimeClosed("the local cloud is closed")
        if due <= self._clock.now():
            return
        timer = Timer(due=due, key=key, seq=next(self._seq), thread_id=threading.get_ident())
        with self._lock:
            heapq.heappush(self._heap, timer)
            self._blocked[timer.thread_id] = timer
        self._on_change()
        try:
            while not timer.event.wait(poll_seconds):
                if self._closed or not is_running():
                    break
        finally:
            with self._lock:
                timer.cancelled = True
                self._blocked.pop(timer.thread_id, None)
                self._waking.discard(timer.seq)
            self._on_change()
        if self._closed and is_running():
            # Still running at shutdown (a stopped execution just returns): unwind it.
            raise RuntimeClosed("the local cloud was closed while a state was waiting")

    # --- called by the runtime -----------------------------------------------------------
    def _prune(self) -> None:
        while self._heap and (self._heap[0].cancelled or self._heap[0].event.is_set()):
            heapq.heappop(self._heap)

    def next_due(self) -> datetime | None:
        with self._lock:
            self._prune()
            return self._heap[0].due if self._heap else None

    def release_next(self, until: datetime) -> Timer | None:
        """Wake the first timer due at or before ``until`` (the clock must be there already)."""
        with self._lock:
            self._prune()
            if not self._heap or self._heap[0].due > until:
                return None
            timer = heapq.heappop(self._heap)
            # Until the woken thread runs again it still looks parked: count it as busy.
            self._waking.add(timer.seq)
            self._blocked.pop(timer.thread_id, None)
            timer.event.set()
        return timer

    def waking(self) -> int:
        """How many released timers have not resumed their thread yet."""
        return len(self._waking)

    def blocked_ids(self) -> KeysView[int]:
        """Idents of the threads parked on the clock (a live view: read, do not keep)."""
        return self._blocked.keys()

    def is_blocked(self, thread_id: int | None) -> bool:
        return thread_id is not None and thread_id in self._blocked

    def pending(self) -> list[Timer]:
        with self._lock:
            self._prune()
            return sorted(t for t in self._heap if not t.cancelled)

    def close(self) -> None:
        """Wake every waiting thread; each raises :class:`RuntimeClosed`."""
        self._closed = True
        with self._lock:
            timers, self._heap = self._heap, []
            self._blocked.clear()
            self._waking.clear()
        for timer in timers:
            timer.event.set()


def seconds(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> timedelta:
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
