"""The sweep function: scheduled triggers onto the bus."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from kizuna.ports import EventPublisher
from kizuna.programs.sweeps import SweepKind, SweepStore, sweep
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig


class SweepRequest(BaseModel):
    """What an EventBridge Scheduler schedule sends."""

    model_config = ConfigDict(extra="ignore")

    kinds: list[SweepKind]
    lookback_minutes: int = Field(ge=1, le=60 * 24 * 7)


def run_sweep(
    request: SweepRequest,
    store: SweepStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    clock: Clock,
) -> dict[str, int]:
    now = clock.now()
    counts: dict[str, int] = {}
    for kind in request.kinds:
        events = sweep(kind, store, now, timedelta(minutes=request.lookback_minutes), cfg)
        failed = publisher.publish(events)
        if failed:
            raise RuntimeError(f"{len(failed)} {kind} events could not be put on the bus")
        counts[kind] = len(events)
    return counts
