"""Behavioural counters: how often a customer did an event lately, kept on the customer item
so a condition such as "``wishlist.added`` at least twice in 14 days" or "no ``app.opened``
for 30 days" reads one item, never the customer's history.

Ingest adds each new occurrence of a counted event (a custom event, or a built-in one listed
in ``custom.tracked``) with :func:`count_occurrence`; the customer view reads the counter at
its own clock (:func:`kizuna.events.custom.counter_view`). A counter keeps the epoch seconds
of the latest occurrences, ascending: at most ``MAX_OCCURRENCES`` (so ``count_<N>d``
saturates at 100) and none at or before the event's longest window counted back from its
latest occurrence, or from ingest's clock if that is earlier (an occurrence a few seconds in
the future of ingest's clock is allowed): such an occurrence can never count again, as the
view's clock is later. Both bounds depend only on the set of occurrences (and, for the
window, on ingest's clock), so the counter is the same whatever order they arrive in.

Each occurrence is counted once: ingest applies an event id once (its idempotency record in
``Customer.processed``), an ``order.placed`` counts when its order is first placed (the same
order under another event id is the same fact), a ``cart.updated`` that restates the current
cart is not a new occurrence. A redelivery that arrives after its idempotency record was
pruned (``idempotency_days``, or the record budget) counts again.
"""

from __future__ import annotations

from datetime import datetime

from kizuna.domain.customer import BehaviourCounter, Customer
from kizuna.domain.timestamps import beyond, epoch_seconds
from kizuna.events.custom import MAX_OCCURRENCES

DAY_SECONDS = 86_400


def count_occurrence(
    counter: BehaviourCounter | None,
    at: datetime,
    windows: tuple[int, ...],
    now: datetime | None = None,
    horizon: datetime | None = None,
) -> BehaviourCounter:
    """``counter`` with one more occurrence at ``at`` (a new counter: the stored one is never
    changed in place). ``windows``: the event's windows in days; ``now``: the receiver's
    clock (the windows' reference is never later); ``horizon``: the latest time trusted (a
    stored ``last_at`` beyond it loses to any occurrence)."""
    counter = counter or BehaviourCounter()
    recent = sorted([*counter.recent, epoch_seconds(at)])
    latest = recent[-1] if now is None else min(recent[-1], epoch_seconds(now))
    if windows:
        cutoff = latest - max(windows) * DAY_SECONDS
        recent = [t for t in recent if t > cutoff]
    last = counter.last_at
    if last is None or at > last or beyond(last, horizon):
        last = at
    return BehaviourCounter(recent=recent[-MAX_OCCURRENCES:], total=counter.total + 1, last_at=last)


def with_occurrence(
    customer: Customer, detail_type: str, at: datetime, windows: tuple[int, ...]
) -> Customer:
    """``customer`` (unchanged) as it will be once ingest has counted one more
    ``detail_type`` at ``at``: what evaluate shows a program's audience when the event that
    triggers it has not been folded yet (ingest and evaluate receive it at the same time)."""
    counter = count_occurrence(customer.behaviour.get(detail_type), at, windows)
    return customer.model_copy(update={"behaviour": {**customer.behaviour, detail_type: counter}})
