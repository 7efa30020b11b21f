"""When is an execution thread blocked? (the local runtime's quiescence test, no AWS)

The runtime moves the virtual clock only when every execution thread is finished, parked on
the clock, or blocked waiting for another thread. A thread judged blocked while it is in
fact about to run lets the clock move under it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

from kizuna_tools.local.executions import _blocked, is_running


def frame_of(code: Any, **local: Any) -> Any:
    """A stand-in for an innermost frame: its code and its locals."""
    return SimpleNamespace(f_code=code, f_locals=local)


def innermost(thread: threading.Thread) -> Any:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        if frame is not None and frame.f_code.co_name == "wait":
            return frame
        time.sleep(0.01)
    raise AssertionError("the thread never waited")


def test_a_thread_waiting_on_an_event_nobody_set_is_blocked() -> None:
    event = threading.Event()
    waiter = threading.Thread(target=event.wait, daemon=True)
    waiter.start()
    try:
        assert _blocked(innermost(waiter))
    finally:
        event.set()
        waiter.join(5)


def test_a_notified_condition_wait_is_runnable_even_once_its_waiter_is_locked_again() -> None:
    # Given a Condition.wait whose waiter was notified (taken off the queue) and re-acquired
    # by the woken thread: the lock is locked again, as it was while blocked
    condition = threading.Condition()
    waiter = threading.Lock()
    waiter.acquire()
    frame = frame_of(threading.Condition.wait.__code__, self=condition, waiter=waiter)
    # Then the thread is on its way out of the wait: runnable
    assert not _blocked(frame)
    # and while the waiter is still queued on the condition, it is blocked
    condition._waiters.append(waiter)  # type: ignore[attr-defined]
    assert _blocked(frame)


def test_event_wait_itself_is_on_its_way_in_or_out() -> None:
    # Event.wait checks its flag, calls Condition.wait, and returns: in its own frame the
    # thread is not blocked (it was judged blocked before: no waiter in its locals)
    frame = frame_of(threading.Event.wait.__code__, self=threading.Event(), signaled=True)
    assert not _blocked(frame)


def test_a_join_blocks_until_its_thread_ends_and_nobody_takes_its_lock() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)
    worker.start()
    joining = frame_of(threading.Thread.join.__code__, self=worker)
    assert is_running(worker) and _blocked(joining)
    release.set()
    worker.join(5)
    assert not is_running(worker) and not _blocked(joining)


def test_a_thread_not_started_yet_counts_as_running() -> None:
    pending = threading.Thread(target=lambda: None, daemon=True)
    assert is_running(pending)
    pending.start()
    pending.join(5)
    assert not is_running(pending)
