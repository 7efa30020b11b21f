"""The sweep function: scheduled triggers onto the bus.

Each kind sweeps from its watermark to now and saves the new watermark only once its events
are on the bus: a run that fails (or never runs) leaves the watermark where it was, and the
next run -- Lambda's retry, the redriven dead letter, or simply the next hour -- catches up.
Events are re-derived from fresh state with deterministic ids, so a window swept twice
starts nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from kizuna.ports import EventPublisher, Watermark, WatermarkStore
from kizuna.programs.sweeps import SweepKind, SweepStore, sweep_window, window
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import logger


class SweepRequest(BaseModel):
    """What an EventBridge Scheduler schedule sends."""

    model_config = ConfigDict(extra="ignore")

    kinds: list[SweepKind] = Field(min_length=1)
    # the window of a kind's first run (no watermark yet)
    lookback_minutes: int = Field(ge=1, le=60 * 24 * 7)
    # carts: how late a cart event may arrive and still be swept (default: the domain's)
    lateness_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 7)


class SweepFailed(RuntimeError):
    """Some kinds could not be swept; their watermarks stay put for the next run."""


def run_sweep(
    request: SweepRequest,
    store: SweepStore,
    watermarks: WatermarkStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    clock: Clock,
) -> dict[str, int]:
    now = clock.now()
    lookback = timedelta(minutes=request.lookback_minutes)
    lateness = (
        None if request.lateness_minutes is None else timedelta(minutes=request.lateness_minutes)
    )
    counts: dict[str, int] = {}
    failures: list[str] = []
    for kind in dict.fromkeys(request.kinds):
        try:
            previous = watermarks.sweep_watermark(kind)
            w = window(kind, now, lookback, cfg, previous, lateness)
            events = sweep_window(kind, store, now, w, cfg)
            failed = publisher.publish(events)
        except Exception as exc:  # one kind failing must not hold the others back
            logger.exception("sweep failed", kind=str(kind))
            failures.append(f"{kind}: {type(exc).__name__}")
            continue
        if failed:
            failures.append(f"{kind}: {len(failed)} events could not be put on the bus")
            continue
        watermarks.save_sweep_watermark(kind, Watermark(edge=w.end, ran_at=now))
        counts[kind] = len(events)
    if failures:
        raise SweepFailed("; ".join(failures))
    return counts
