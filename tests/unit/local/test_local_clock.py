"""The virtual clock and its timeline of waiting threads (no AWS)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kizuna_tools.local.virtual_clock import RuntimeClosed, Timeline, VirtualClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_clock_moves_only_forward_and_needs_a_time_zone() -> None:
    clock = VirtualClock(T0)
    assert clock.advance(timedelta(days=7)) == T0 + timedelta(days=7)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2026, 1, 1))  # naive: the point of the test


def _park(timeline: Timeline, due: datetime, key: str, woke: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            timeline.wait_until(due, (key,), poll_seconds=0.05)
        except RuntimeClosed:
            woke.append(f"{key}: closed")
            return
        woke.append(key)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_pending(timeline: Timeline, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(timeline.pending()) < count:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_timeline_releases_by_due_time_then_key_one_at_a_time() -> None:
    clock = VirtualClock(T0)
    timeline = Timeline(clock)
    woke: list[str] = []
    threads = [
        _park(timeline, T0 + timedelta(days=2), "late", woke),
        _park(timeline, T0 + timedelta(days=1), "b", woke),
        _park(timeline, T0 + timedelta(days=1), "a", woke),
    ]
    _wait_pending(timeline, 3)

    assert [t.key for t in timeline.pending()] == [("a",), ("b",), ("late",)]
    assert timeline.next_due() == T0 + timedelta(days=1)
    clock.set(T0 + timedelta(days=1))
    while timeline.release_next(clock.now()) is not None:
        deadline = time.monotonic() + 5
        while timeline.waking():
            assert time.monotonic() < deadline
            time.sleep(0.001)
    assert woke == ["a", "b"]
    assert timeline.release_next(clock.now()) is None  # "late" is not due

    timeline.close()
    for thread in threads:
        thread.join(timeout=5)
    assert woke == ["a", "b", "late: closed"]  # unwound by close(), not woken


def test_waiting_for_the_past_returns_at_once_and_a_closed_timeline_refuses() -> None:
    clock = VirtualClock(T0)
    timeline = Timeline(clock)
    timeline.wait_until(T0, ("now",))
    timeline.close()
    with pytest.raises(RuntimeClosed):
        timeline.wait_until(T0 + timedelta(seconds=1), ("later",))
