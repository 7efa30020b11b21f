"""When are moto's Step Functions executions done for now?

moto runs every execution (and every Parallel branch, Map iteration and task with a
timeout) in its own daemon thread and lists them in ``moto.stepfunctions.parser.utils.
TMP_THREADS``. The executions are *quiescent* when each of those threads has finished, is
parked on the virtual clock (a Wait state or a Retry interval), or is blocked in
``threading`` waiting for another of them (a join, an event, a task token).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from kizuna_tools.local.virtual_clock import Timeline

_THREADING_FILE = threading.__file__
_BLOCKING_FUNCTIONS = frozenset({"wait", "_wait_for_tstate_lock", "join"})


def _moto_threads() -> list[Any]:
    from moto.stepfunctions.parser.utils import TMP_THREADS

    threads: list[Any] = TMP_THREADS
    return threads


def prune_finished(timeline: Timeline | None = None) -> int:
    """Drop finished threads from moto's list (it only grows). Returns how many are left.

    moto only appends to the list; deleting from the end backwards keeps the indexes of the
    entries still to visit valid even while another thread appends.
    """
    threads = _moto_threads()
    for index in range(len(threads) - 1, -1, -1):
        thread = threads[index]
        if timeline is not None and timeline.is_blocked(thread.ident):
            continue  # parked on the clock: alive, no need to ask (is_alive takes a lock)
        if thread.ident is not None and not thread.is_alive():
            del threads[index]
    return len(threads)


def _ident(thread: threading.Thread) -> int | None:
    # ``Thread.ident`` is a property; its backing attribute is read millions of times a run
    ident: int | None = getattr(thread, "_ident", None)
    return ident


def survey(timeline: Timeline) -> tuple[int, list[threading.Thread]]:
    """One pass over moto's threads: drop the finished ones, and return how many are left
    and which of them are busy (what :func:`prune_finished` and :func:`busy_threads` say,
    at the cost of one loop: the runtime asks this every few hundred microseconds while
    executions run, over every parked journey's thread)."""
    threads = _moto_threads()
    blocked = timeline.blocked_ids()
    busy: list[threading.Thread] = []
    candidates: list[threading.Thread] = []
    for index in range(len(threads) - 1, -1, -1):
        thread = threads[index]
        ident = _ident(thread)
        if ident is None:  # appended, not started yet
            busy.append(thread)
        elif ident in blocked:  # parked on the clock: the common case, a set lookup
            continue
        elif not thread.is_alive():
            del threads[index]
        else:
            candidates.append(thread)
    if candidates:
        frames = sys._current_frames()
        for thread in candidates:
            frame = frames.get(_ident(thread) or -1)
            if frame is None or not _blocked(frame):
                busy.append(thread)
    return len(threads), busy


def busy_threads(timeline: Timeline) -> list[threading.Thread]:
    """Execution threads that are doing something (not parked, not blocked, not done)."""
    busy = []
    candidates = []
    for thread in list(_moto_threads()):
        if thread.ident is None:  # appended, not started yet
            busy.append(thread)
            continue
        # most threads are parked on the clock: a dict lookup, before anything costlier
        if timeline.is_blocked(thread.ident) or not thread.is_alive():
            continue
        candidates.append(thread)
    if not candidates:
        return busy
    frames = sys._current_frames()
    for thread in candidates:
        frame = frames.get(thread.ident)
        if frame is None:  # alive without a Python frame: starting or finishing
            busy.append(thread)
            continue
        if _blocked(frame):
            continue
        busy.append(thread)
    return busy


def _blocked(frame: Any) -> bool:
    """Is this innermost frame a wait that nothing has ended yet?

    A join on a thread that has finished, or a condition wait whose waiter lock was
    released (notified), is about to return: that thread is runnable, not blocked.
    """
    code = frame.f_code
    if code.co_filename != _THREADING_FILE or code.co_name not in _BLOCKING_FUNCTIONS:
        return False
    local = frame.f_locals
    if code.co_name in ("_wait_for_tstate_lock", "join"):
        target = local.get("self")
        return not isinstance(target, threading.Thread) or target.is_alive()
    waiter = local.get("waiter")  # Condition.wait (and so Event.wait)
    return waiter is None or bool(waiter.locked())


def describe(threads: list[threading.Thread]) -> str:
    frames = sys._current_frames()
    lines = []
    for thread in threads[:10]:
        frame = frames.get(thread.ident or -1)
        where = (
            f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}" if frame else "?"
        )
        lines.append(f"{thread.name}: {where}")
    return "; ".join(lines)
