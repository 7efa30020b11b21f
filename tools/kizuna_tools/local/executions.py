"""When are moto's Step Functions executions done for now?

moto runs every execution (and every Parallel branch, Map iteration and task with a
timeout) in its own daemon thread and lists them in ``moto.stepfunctions.parser.utils.
TMP_THREADS``. The executions are *quiescent* when each of those threads has finished, is
parked on the virtual clock (a Wait state or a Retry interval), or is blocked in
``threading`` waiting for another of them (a join, an event, a task token).

Every check here only *reads* another thread's state: the runtime never acquires a lock that
belongs to an execution thread (``Thread.is_alive`` does, on the thread's state lock, and
racing a ``join`` there can trip ``Thread._stop``'s assertion in either thread).
"""

from __future__ import annotations

import gc
import sys
import threading
from types import FrameType
from typing import Any

from kizuna_tools.local.virtual_clock import Timeline

_FRAMES = threading.Lock()


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()``, with the garbage collector held off while it runs.

    CPython 3.11 can deadlock there (gh-106883, fixed in 3.13): the call holds the
    interpreter's thread-list lock while it builds its dict; a collection that starts then
    runs weakref callbacks in Python, which may hand the GIL to another thread that asks
    for the frames too and waits on the lock while holding the GIL. The runtime's driver
    and its watchdog both ask (a test run hung there under pytest-xdist). The lock keeps
    two callers from re-enabling the collector under each other.
    """
    with _FRAMES:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames()
        finally:
            if enabled:
                gc.enable()


_THREADING_FILE = threading.__file__
_BLOCKING_FUNCTIONS = frozenset({"wait", "_wait_for_tstate_lock", "join"})
_CONDITION_WAIT = threading.Condition.wait.__code__


def is_running(thread: threading.Thread) -> bool:
    """Started and not finished, read without taking the thread's state lock (the C runtime
    releases that lock when the thread ends)."""
    started: threading.Event = thread._started  # type: ignore[attr-defined]
    if not started.is_set():
        return True  # appended and not started yet, or starting: it will run
    lock = getattr(thread, "_tstate_lock", None)
    return lock is not None and bool(lock.locked())


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
            continue  # parked on the clock: alive
        if thread.ident is not None and not is_running(thread):
            del threads[index]
    return len(threads)


def _ident(thread: threading.Thread) -> int | None:
    # ``Thread.ident`` is a property; its backing attribute is read millions of times a run
    ident: int | None = getattr(thread, "_ident", None)
    return ident


def survey(timeline: Timeline, prune: bool = True) -> tuple[int, list[threading.Thread]]:
    """One pass over moto's threads: drop the finished ones, and return how many are left
    and which of them are busy (what :func:`prune_finished` and :func:`busy_threads` say,
    at the cost of one loop: the runtime asks this every few hundred microseconds while
    executions run, over every parked journey's thread). ``prune=False`` reads only (for
    another thread than the driver: two threads deleting by index would delete wrongly)."""
    threads = _moto_threads()
    blocked = timeline.blocked_ids()
    finished = 0
    busy: list[threading.Thread] = []
    candidates: list[threading.Thread] = []
    for index in range(len(threads) - 1, -1, -1):
        thread = threads[index]
        ident = _ident(thread)
        if ident is None:  # appended, not started yet
            busy.append(thread)
        elif ident in blocked:  # parked on the clock: the common case, a set lookup
            continue
        elif not is_running(thread):
            if prune:
                del threads[index]
            else:
                finished += 1
        else:
            candidates.append(thread)
    if candidates:
        frames = current_frames()
        for thread in candidates:
            frame = frames.get(_ident(thread) or -1)
            if frame is None or not _blocked(frame):
                busy.append(thread)
    return len(threads) - finished, busy


def busy_threads(timeline: Timeline) -> list[threading.Thread]:
    """Execution threads that are doing something (not parked, not blocked, not done)."""
    busy = []
    candidates = []
    for thread in list(_moto_threads()):
        if thread.ident is None:  # appended, not started yet
            busy.append(thread)
            continue
        # most threads are parked on the clock: a dict lookup, before anything costlier
        if timeline.is_blocked(thread.ident) or not is_running(thread):
            continue
        candidates.append(thread)
    if not candidates:
        return busy
    frames = current_frames()
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

    Blocked: a join on a thread still running; a ``Condition.wait`` whose waiter is still
    queued on the condition (not notified). Anything else in ``threading`` is on its way in
    or out of a wait and will run: a join on a finished thread, a condition wait that was
    notified (its waiter left the queue; once the woken thread re-acquires it the waiter
    is locked again, so ``locked()`` alone cannot tell), ``Event.wait`` itself (checking
    its flag, or returning).
    """
    code = frame.f_code
    if code.co_filename != _THREADING_FILE or code.co_name not in _BLOCKING_FUNCTIONS:
        return False
    local = frame.f_locals
    if code.co_name in ("_wait_for_tstate_lock", "join"):
        target = local.get("self")
        return isinstance(target, threading.Thread) and is_running(target)
    if code is not _CONDITION_WAIT:  # Event.wait, Barrier.wait...: not inside the wait
        return False
    condition, waiter = local.get("self"), local.get("waiter")
    if condition is None or waiter is None:
        return False  # entering: no waiter yet
    queued = waiter in list(getattr(condition, "_waiters", ()))
    return queued and bool(waiter.locked())


def describe(threads: list[threading.Thread]) -> str:
    frames = current_frames()
    lines = []
    for thread in threads[:10]:
        frame = frames.get(thread.ident or -1)
        where = (
            f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}" if frame else "?"
        )
        lines.append(f"{thread.name}: {where}")
    return "; ".join(lines)
