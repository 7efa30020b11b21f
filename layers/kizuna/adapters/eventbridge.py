"""Derived events onto EventBridge, in PutEvents batches of 10 with retries of failed entries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kizuna.adapters.retry import retrying
from kizuna.events import DerivedEvent
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE

PUT_EVENTS_LIMIT = 10


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str, attempts: int = 3) -> None:
        self._client = client
        self._bus = bus_name
        self._attempts = attempts

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        failed: list[int] = []
        for start in range(0, len(events), PUT_EVENTS_LIMIT):
            pending = list(range(start, min(start + PUT_EVENTS_LIMIT, len(events))))
            for attempt in range(self._attempts):
                entries = [events[i].to_entry(self._bus, KIZUNA_EVENT_SOURCE) for i in pending]
                # a call failing as a whole (5xx, throttling, timeout) is made again: the
                # events' ids are deterministic, consumers drop the copies
                resp = retrying(self._client.put_events, Entries=entries)
                if not resp.get("FailedEntryCount"):
                    pending = []
                    break
                pending = [
                    i for i, r in zip(pending, resp["Entries"], strict=True) if "ErrorCode" in r
                ]
                time.sleep(min(0.05 * 2**attempt, 0.5))
            failed.extend(pending)
        return failed
