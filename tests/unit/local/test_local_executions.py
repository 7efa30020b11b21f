"""When is an execution thread blocked? (the local runtime's quiescence test, no AWS)

The runtime moves the virtual clock only when every execution thread is finished, parked on
the clock, or blocked waiting for another thread. A thread judged blocked while it is in
fact about to run lets the clock move under it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
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


STRESS = """
import sys, threading, time, weakref
from kizuna_tools.local.executions import current_frames
sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible

class Node:
    pass

alive = weakref.WeakSet()
stop = time.monotonic() + float(sys.argv[1])

def ask() -> None:
    while time.monotonic() < stop:
        current_frames()

def litter() -> None:  # cycles the collector frees, each with a weakref callback to run
    while time.monotonic() < stop:
        for _ in range(200):
            a, b = Node(), Node()
            a.b, b.a = b, a
            alive.add(a)
            alive.add(b)

threads = [threading.Thread(target=ask), threading.Thread(target=litter)]
for thread in threads:
    thread.start()
ask()
for thread in threads:
    thread.join()
print("done")
"""


def test_asking_for_the_frames_from_two_threads_during_collections_does_not_deadlock() -> None:
    # CPython 3.11's sys._current_frames() deadlocks when a collection starts inside it and
    # another thread asks too (gh-106883): a CI run hung in the local runtime's watchdog and
    # driver that way. Without the collector held off, this script hangs within seconds
    # most runs; with it, it finishes.
    import subprocess

    tools = str(Path(__file__).resolve().parents[3] / "tools")
    done = subprocess.run(
        [sys.executable, "-c", STRESS, "6"],
        env={**os.environ, "PYTHONPATH": tools},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
