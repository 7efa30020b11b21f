"""The sweep function: scheduled triggers onto the bus, and the daily look at the splits'
winner rules (:func:`check_winners`).

Each kind sweeps from its watermark to now and saves the new watermark only once its events
are on the bus: a run that fails (or never runs) leaves the watermark where it was, and the
next run -- Lambda's retry, the redriven dead letter, or simply the next hour -- catches up.
Events are re-derived from fresh state with deterministic ids, so a window swept twice
starts nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kizuna.ports import EventPublisher, Watermark, WatermarkStore
from kizuna.programs.model import Program
from kizuna.programs.sweeps import SweepKind, SweepStore, sweep_window, window
from kizuna.programs.winners import WinnerDecision, check_split, winner_splits
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import failure, logger


class SweepRequest(BaseModel):
    """What an EventBridge Scheduler schedule sends."""

    model_config = ConfigDict(extra="ignore")

    kinds: list[SweepKind] = Field(default_factory=list)
    # the window of a kind's first run (no watermark yet)
    lookback_minutes: int = Field(ge=1, le=60 * 24 * 7)
    # carts: how late a cart event may arrive and still be swept (default: the domain's)
    lateness_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 7)
    # look at the programs' splits with a winner rule (the daily run)
    winners: bool = False
    # write the previous day's direct-mail print files (the daily run; docs/channels/DM.md)
    direct_mail: bool = False

    @model_validator(mode="after")
    def _something(self) -> SweepRequest:
        if not (self.kinds or self.winners or self.direct_mail):
            raise ValueError("kinds: name at least one (or winners, direct_mail)")
        return self


class WinnerStore(Protocol):
    """What the winner check reads and writes (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def program_ledger(self, program: str) -> Iterable[Mapping[str, Any]]: ...

    def split_winners(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]: ...

    def save_split_winner(self, decision: WinnerDecision) -> bool: ...


class SweepFailed(RuntimeError):
    """Some kinds could not be swept; their watermarks stay put for the next run."""


def check_winners(programs: Sequence[Program], store: WinnerStore, now: datetime) -> int:
    """Look once at every undecided split with a winner rule (:mod:`kizuna.programs.winners`)
    and record the winners the test names, each once; the number recorded. A split decided
    before is not looked at again: its decision stands."""
    decided = 0
    for program in programs:
        splits = winner_splits(program)
        if not program.enabled or not splits:
            continue
        known = store.split_winners([(program.id, s.id) for s in splits])
        open_splits = [s for s in splits if (program.id, s.id) not in known]
        if not open_splits:
            continue
        rows = list(store.program_ledger(program.id))
        for split in open_splits:
            outcome, decision = check_split(program, split, rows, now)
            if decision is None:
                logger.info(
                    "split undecided", program=program.id, step=split.id, reason=outcome.reason
                )
                continue
            if store.save_split_winner(decision):
                decided += 1
                logger.info(
                    "split winner",
                    program=program.id,
                    step=split.id,
                    winner=decision.winner,
                    reason=decision.reason,
                )
    return decided


def run_sweep(
    request: SweepRequest,
    store: SweepStore,
    watermarks: WatermarkStore,
    publisher: EventPublisher,
    cfg: KizunaConfig,
    clock: Clock,
    programs: Sequence[Program] = (),
    winners: WinnerStore | None = None,
    direct_mail: Callable[[datetime], int] | None = None,
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
            logger.error("sweep failed", kind=str(kind), **failure(exc))
            failures.append(f"{kind}: {type(exc).__name__}")
            continue
        if failed:
            failures.append(f"{kind}: {len(failed)} events could not be put on the bus")
            continue
        watermarks.save_sweep_watermark(kind, Watermark(edge=w.end, ran_at=now))
        counts[kind] = len(events)
    if request.winners and winners is not None:
        try:
            counts["winners"] = check_winners(programs, winners, now)
        except Exception as exc:  # the next day looks again
            logger.error("winner check failed", **failure(exc))
            failures.append(f"winners: {type(exc).__name__}")
    if request.direct_mail and direct_mail is not None:
        try:
            counts["dm_files"] = direct_mail(now)
        except Exception as exc:  # the next day's run does not write this day: a retry must
            logger.error("direct-mail print files failed", **failure(exc))
            failures.append(f"direct_mail: {type(exc).__name__}")
    if failures:
        raise SweepFailed("; ".join(failures))
    return counts
