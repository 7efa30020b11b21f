"""Events onto EventBridge, in PutEvents calls of at most 10 entries and 256 KB, with retries
of failed entries: Kizuna's derived events (:class:`EventBridgePublisher`) and the shop's
events put through the HTTP API (:class:`ShopEventBus`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kizuna.adapters.retry import RETRYABLE_CODES, retrying
from kizuna.delivery.direct_mail import FILE_READY
from kizuna.events import DerivedEvent
from kizuna.events.derived import DmFileReady
from kizuna.ports import PutOutcome
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE

PUT_EVENTS_LIMIT = 10
# Kizuna's bound on an entry and on a whole PutEvents request, counted as :func:`entry_size`
# counts ("Calculating PutEvents event entry size"): 256 KB, EventBridge's own until January
# 2026 (1 MB since), and still the input limit of the Step Functions executions events start.
ENTRY_LIMIT_BYTES = 256 * 1024
TIME_BYTES = 14  # a Time counts 14 bytes, whatever its text


def entry_size(source: str, detail_type: str, detail: str, *, timed: bool = False) -> int:
    """An entry's size as EventBridge counts it: the UTF-8 bytes of its source, detail-type
    and detail, and 14 for a ``Time`` (Kizuna's entries name no resources)."""
    size = len(source.encode()) + len(detail_type.encode()) + len(detail.encode())
    return size + (TIME_BYTES if timed else 0)


def put_batches(sizes: Sequence[int]) -> tuple[list[list[int]], list[int]]:
    """The entries' indexes, in order, in PutEvents calls of at most 10 entries and 256 KB;
    and the indexes of entries over 256 KB alone (no call could carry them)."""
    batches: list[list[int]] = []
    too_large: list[int] = []
    batch: list[int] = []
    total = 0
    for i, n in enumerate(sizes):
        if n > ENTRY_LIMIT_BYTES:
            too_large.append(i)
            continue
        if batch and (len(batch) == PUT_EVENTS_LIMIT or total + n > ENTRY_LIMIT_BYTES):
            batches.append(batch)
            batch, total = [], 0
        batch.append(i)
        total += n
    if batch:
        batches.append(batch)
    return batches, too_large


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str, attempts: int = 3) -> None:
        self._client = client
        self._bus = bus_name
        self._attempts = attempts

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        """Put the events on the bus, in calls of at most 10 entries and 256 KB; returns the
        indexes of those not put (refused after the retries, or over 256 KB alone)."""
        entries = [e.to_entry(self._bus, KIZUNA_EVENT_SOURCE) for e in events]
        sizes = [
            entry_size(e["Source"], e["DetailType"], e["Detail"], timed="Time" in e)
            for e in entries
        ]
        batches, failed = put_batches(sizes)
        for batch in batches:
            pending = batch
            for attempt in range(self._attempts):
                # a call failing as a whole (5xx, throttling, timeout) is made again: the
                # events' ids are deterministic, consumers drop the copies
                resp = retrying(self._client.put_events, Entries=[entries[i] for i in pending])
                if not resp.get("FailedEntryCount"):
                    pending = []
                    break
                pending = [
                    i for i, r in zip(pending, resp["Entries"], strict=True) if "ErrorCode" in r
                ]
                time.sleep(min(0.05 * 2**attempt, 0.5))
            failed.extend(pending)
        return sorted(failed)

    def put_file_ready(self, detail: Mapping[str, Any]) -> None:
        """A direct-mail print file is written (``dm.file_ready``, source ``kizuna``: only
        Kizuna's roles may put it); raises when EventBridge refuses it, so the manifest is
        not written and the next run announces the file again."""
        entry = {
            "EventBusName": self._bus,
            "Source": KIZUNA_EVENT_SOURCE,
            "DetailType": FILE_READY,
            "Detail": DmFileReady.model_validate(detail).model_dump_json(),
        }
        resp = retrying(self._client.put_events, Entries=[entry])
        if resp.get("FailedEntryCount"):
            code = resp["Entries"][0].get("ErrorCode", "unknown")
            raise RuntimeError(f"{FILE_READY} not put on the bus: {code}")


# --- the shop's events, put through the HTTP API ---------------------------------------------
class ShopEventBus:
    """Puts inbound events (detail-type, detail JSON) on the bus under one ``source`` (never
    ``kizuna``: the bus policy refuses it), in PutEvents calls of at most 10 entries and
    256 KB; an entry refused with a retryable code (throttling, an internal failure) is put
    again, up to ``attempts`` times; the others are answered as they failed."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        source: str,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if source == KIZUNA_EVENT_SOURCE:
            raise ValueError("the shop's events cannot carry Kizuna's own source")
        self._client = client
        self._bus = bus_name
        self.source = source
        self._attempts = attempts
        self._sleep = sleep

    def put(self, events: Sequence[tuple[str, str]]) -> list[PutOutcome]:
        """Each event's outcome, in order. An entry over :data:`ENTRY_LIMIT_BYTES` is not
        sent (``EntryTooLarge``): the caller checks sizes first."""
        outcomes: dict[int, PutOutcome] = {}
        sizes = [entry_size(self.source, detail_type, detail) for detail_type, detail in events]
        batches, too_large = put_batches(sizes)
        for i in too_large:
            outcomes[i] = PutOutcome(error_code="EntryTooLarge", error_message=f"{sizes[i]} bytes")
        for batch in batches:
            outcomes.update(self._put_batch(events, batch))
        return [outcomes[i] for i in range(len(events))]

    def _put_batch(
        self, events: Sequence[tuple[str, str]], indexes: list[int]
    ) -> dict[int, PutOutcome]:
        done: dict[int, PutOutcome] = {}
        pending = list(indexes)
        for attempt in range(self._attempts):
            entries = [
                {
                    "EventBusName": self._bus,
                    "Source": self.source,
                    "DetailType": events[i][0],
                    "Detail": events[i][1],
                }
                for i in pending
            ]
            # a call failing as a whole is made again (retrying): ingest absorbs a copy
            resp = retrying(self._client.put_events, Entries=entries)
            retry: list[int] = []
            for i, answer in zip(pending, resp["Entries"], strict=True):
                code = answer.get("ErrorCode")
                if not code:
                    done[i] = PutOutcome(event_id=str(answer["EventId"]))
                elif code in RETRYABLE_CODES and attempt + 1 < self._attempts:
                    retry.append(i)
                else:
                    done[i] = PutOutcome(
                        error_code=str(code), error_message=str(answer.get("ErrorMessage", ""))
                    )
            if not retry:
                break
            pending = retry
            self._sleep(min(0.05 * 2**attempt, 0.5))
        return done
