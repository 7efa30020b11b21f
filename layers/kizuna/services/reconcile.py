"""The reconciliation sweep: ledger entries left at ``sending`` get an outcome.

An entry stays ``sending`` when its send crashed between the claim and the outcome, or when
the outcome could not be written after the provider had the message. On its schedule the
sweep reads the entries claimed more than ``stale_after`` ago (the sparse ``sending``
index, no scan) and settles each with :func:`kizuna.delivery.ledger.settle`: ``sent`` when
the provider's message id or its feedback proves it took the message, ``failed`` with
``not_dispatched`` when no invocation ever called the provider, ``failed`` with
``outcome_unknown`` otherwise. Nothing is ever sent again from here (a customer never gets
a message twice); every settled entry is counted in ``StaleSending`` (by outcome), which
is alarmed on.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any, Protocol

from kizuna.delivery.ledger import settle
from kizuna.domain.timestamps import iso
from kizuna.runtime.clock import Clock
from kizuna.runtime.observability import count_stale_sending, logger

# Longer than a send invocation can live (Lambda's 15-minute maximum): an entry this old
# has no invocation left that could still record it.
STALE_AFTER = timedelta(minutes=20)


class ReconcileStore(Protocol):
    """The activity table as the sweep sees it (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def stale_sending(self, claimed_before: str) -> list[dict[str, Any]]: ...

    def settle_message(self, entry: dict[str, Any], status: str, reason: str, at: str) -> bool: ...


def metric_outcome(status: str, reason: str) -> str:
    """The ``outcome`` dimension of a settled entry: sent, not_dispatched, outcome_unknown."""
    return "sent" if status == "sent" else reason


class ReconcileService:
    def __init__(
        self, store: ReconcileStore, clock: Clock, stale_after: timedelta = STALE_AFTER
    ) -> None:
        self.store = store
        self.clock = clock
        self.stale_after = stale_after

    def run(self) -> dict[str, int]:
        """Settle every stale ``sending`` entry; the counts by outcome."""
        now = self.clock.now()
        counts: Counter[str] = Counter()
        try:
            for entry in self.store.stale_sending(iso(now - self.stale_after)):
                status, reason = settle(entry)
                if not self.store.settle_message(entry, status, reason, iso(now)):
                    continue  # recorded or re-claimed since it was read: not stale after all
                outcome = metric_outcome(status, reason)
                counts[outcome] += 1
                log = logger.warning if outcome == "outcome_unknown" else logger.info
                log(
                    "stale send settled",
                    customer_id=entry.get("pk"),
                    program=entry.get("program"),
                    step=entry.get("step"),
                    channel=entry.get("channel"),
                    status=status,
                    reason=reason,
                )
        finally:
            # also when a later entry's write failed (the run fails, and is run again): the
            # entries settled so far are no longer `sending`, so no later run counts them
            for outcome, n in counts.items():
                count_stale_sending(outcome, n)
        return dict(counts)
