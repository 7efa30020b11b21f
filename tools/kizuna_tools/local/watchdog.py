"""The local runtime fails loudly when nothing progresses, instead of hanging.

While the runtime drives the app (``drain``, ``advance``, ``put_events``, ``invoke``,
``close``), a daemon thread watches two signals of progress: a function invocation that
completed and a move of the virtual clock. When neither changed for ``timeout`` seconds of
wall time, it writes a stall report — what the driver was doing, what the clock and the
executions wait for, the function running and since when, and every thread's stack — and
calls ``on_stall`` with it. The default ``on_stall`` (:func:`exit_on_stall`) writes the
report to stderr and ends the process with :data:`STALL_EXIT_CODE`: a stuck thread cannot
be unwound from outside, so ending the process is the only exit that always works.

Time the runtime is not driving (a test or a notebook holding an idle cloud) never counts.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kizuna_tools.local.executions import current_frames

STALL_EXIT_CODE = 70  # EX_SOFTWARE
DEFAULT_STALL_TIMEOUT = 120.0


class Stalled(Exception):
    """Raised (by a custom ``on_stall``) or reported when the local runtime stopped moving."""


@dataclass
class _Phase:
    what: str
    since: float = field(default_factory=time.monotonic)


def thread_stacks() -> str:
    """Every live thread's Python stack, innermost call last, with its name and ident."""
    frames = current_frames()
    names = {t.ident: t for t in threading.enumerate()}
    parts = []
    for ident, frame in sorted(frames.items(), key=lambda kv: kv[0]):
        thread = names.get(ident)
        name = thread.name if thread is not None else "?"
        daemon = " daemon" if thread is not None and thread.daemon else ""
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"--- thread {name!r} ({ident}{daemon})\n{stack}")
    return "\n".join(parts)


def exit_on_stall(report: str) -> None:
    """Write the report to stderr and end the process with :data:`STALL_EXIT_CODE`."""
    with contextlib.suppress(Exception):
        sys.stderr.write(report + "\n")
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(STALL_EXIT_CODE)


class Watchdog:
    """Reports a stall when ``progress()`` does not change for ``timeout`` seconds while a
    phase is open (:meth:`phase`).

    ``progress`` returns anything comparable (the runtime: completed invocations and the
    clock); ``describe`` returns what the runtime waits for, added to the report.
    """

    def __init__(
        self,
        timeout: float,
        progress: Callable[[], object],
        describe: Callable[[], str],
        on_stall: Callable[[str], None] = exit_on_stall,
        poll_seconds: float | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the stall timeout must be positive (seconds)")
        self.timeout = timeout
        self._progress = progress
        self._describe = describe
        self._on_stall = on_stall
        self._poll = poll_seconds if poll_seconds is not None else min(1.0, timeout / 4)
        self._phases: list[_Phase] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: object = None
        self._last_change = time.monotonic()
        self.stalls: list[str] = []

    # --- the driver's side ---------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Mark the runtime as driving (``what`` names it in a report); phases nest."""
        entry = _Phase(what)
        with self._lock:
            if not self._phases:  # idle time before this never counts
                self._last_change = time.monotonic()
            self._phases.append(entry)
        try:
            yield
        finally:
            with self._lock:
                if entry in self._phases:
                    self._phases.remove(entry)

    def phases(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [f"{p.what} (for {now - p.since:.1f}s)" for p in self._phases]

    def start(self) -> Watchdog:
        self._last = self._progress()
        self._last_change = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kizuna-local-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # --- the watching thread ---------------------------------------------------------------
    def check(self) -> str | None:
        """One look: the stall report if the runtime is stalled now, else None."""
        progress = self._progress()
        now = time.monotonic()
        with self._lock:
            driving = bool(self._phases)
            if progress != self._last or not driving:
                self._last, self._last_change = progress, now
                return None
            idle = now - self._last_change
        if idle < self.timeout:
            return None
        return self.report(idle)

    def report(self, idle: float) -> str:
        lines = [
            f"kizuna_tools.local: STALLED - no function invocation completed and the virtual "
            f"clock did not move for {idle:.0f}s (stall timeout {self.timeout:g}s).",
            "driving: " + (" > ".join(self.phases()) or "(nothing)"),
        ]
        try:
            lines.append(self._describe())
        except Exception as exc:  # the report must come out whatever state the runtime is in
            lines.append(f"(could not describe the runtime: {type(exc).__name__}: {exc})")
        lines.append("threads:")
        lines.append(thread_stacks())
        return "\n".join(lines)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            report = self.check()
            if report is None:
                continue
            self.stalls.append(report)
            self._on_stall(report)
            with self._lock:  # a custom on_stall returned: report again only after another period
                self._last_change = time.monotonic()
