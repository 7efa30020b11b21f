"""Items of the activity table: a customer's time-ordered history.

Key layout (table ``activity``): ``pk = customer_id``, ``sk = KIND#<iso time>#<id>``.
Kinds: ORDER, CANCEL, POINTS (earn, reversal, adjustment), CONSENT, EVENT (behaviour,
with a TTL), and MSG (the message ledger, written by delivery).

One row per customer has a fixed sort key: ``MEMBER#since``, the membership start, in
``gsi1`` under ``ANNIV#<MM-DD>#<shard>`` (the daily sweep's ``customer.anniversary``,
:mod:`kizuna.programs.sweeps`). Ingest puts it again when ``member_since`` changes, so the
index entry moves with it; erasure deletes it with the rest of the partition.

Each points lot is in ``gsi1`` too, on the row of the fact that earned it (an ORDER row, a
POINTS adjustment that adds points): under ``LOTS#<shard>`` (16 shards: every order writes
there), sorted by the time it was earned (:func:`lot_index_keys`). The daily sweep's
``customer.points_expiring`` finds the lots that expire in its window there (earned
``points_expiry_days`` before it), so every lot is warned of, not only the customer's
earliest (:mod:`kizuna.programs.sweeps`). The row stays in the index after its points were
spent or cancelled: the sweep re-reads the customer and keeps only live lots.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from kizuna.domain.shards import LOT_SHARDS, shard_of
from kizuna.domain.timestamps import iso
from kizuna.domain.yearly import month_day

MEMBER_KIND = "MEMBER"
ANNIVERSARY_INDEX_PREFIX = "ANNIV#"
LOTS_INDEX_PREFIX = "LOTS#"
ADJUSTMENT_KEY_PREFIX = "adjust#"  # a POINTS row's key: ``adjust#<adjustment id>``


class ActivityItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    kind: str
    at: datetime
    key: str
    data: dict[str, Any]
    expires_at: int | None = None
    # the sort key of the customer's row this one supersedes (an order sent again with a
    # later time: its earlier ORDER row; an earlier cancellation: the later CANCEL row),
    # deleted in the same write; never stored
    replaces: str | None = None

    @property
    def sk(self) -> str:
        if self.kind == MEMBER_KIND:  # one per customer: a new start replaces the old
            return f"{MEMBER_KIND}#{self.key}"
        return f"{self.kind}#{iso(self.at)}#{self.key}"


def anniversary_partition(mmdd: str, shard: str) -> str:
    """The ``gsi1`` partition of the members whose start is on ``mmdd`` (``MM-DD``)."""
    return f"{ANNIVERSARY_INDEX_PREFIX}{mmdd}#{shard}"


def member_row(customer_id: str, member_since: date, at: datetime) -> ActivityItem:
    """The customer's MEMBER row: indexed by the ``MM-DD`` of the start (``02-29`` stays
    itself, found with 28 February of a non-leap year, as birthdays are)."""
    return ActivityItem(
        customer_id=customer_id,
        kind=MEMBER_KIND,
        at=at,
        key="since",
        data={
            "member_since": member_since.isoformat(),
            "gsi1pk": anniversary_partition(month_day(member_since), shard_of(customer_id)),
            "gsi1sk": customer_id,
        },
    )


def lots_partition(shard: str) -> str:
    """The ``gsi1`` partition of the points lots of the customers of ``shard``."""
    return f"{LOTS_INDEX_PREFIX}{shard}"


def lot_index_keys(customer_id: str, earned_at: datetime) -> dict[str, str]:
    """``gsi1`` keys of the row of a fact that earns a points lot: by the time earned (not the
    expiry: the sweep adds the ``points_expiry_days`` configured when it runs, as the replay
    of the lots does), then the customer, so the keys of one instant are apart."""
    return {
        "gsi1pk": lots_partition(shard_of(customer_id, LOT_SHARDS)),
        "gsi1sk": f"{iso(earned_at)}#{customer_id}",
    }


def earns_lot(item: ActivityItem) -> bool:
    """Is ``item`` the row of a fact that earns a points lot: an ORDER row, or a POINTS
    adjustment that adds points? (Not a CANCEL, an adjustment that takes points, nor the
    POINTS earn and reversal rows the first versions wrote: the ORDER row holds that lot.)"""
    if item.kind == "ORDER":
        return True
    if item.kind != "POINTS" or not item.key.startswith(ADJUSTMENT_KEY_PREFIX):
        return False
    delta = item.data.get("delta")
    return isinstance(delta, int | Decimal) and delta > 0


def lot_keys(item: ActivityItem) -> dict[str, str]:
    """The ``gsi1`` keys ``item`` is written with (:func:`lot_index_keys` of its customer and
    time) if it earns a lot (:func:`earns_lot`), else none: the one rule ingest writes rows
    by, and ``kizuna points backfill-lots`` adds the keys to rows written before it by."""
    return lot_index_keys(item.customer_id, item.at) if earns_lot(item) else {}


def superseded(
    items: Iterable[ActivityItem],
) -> tuple[list[ActivityItem], list[tuple[str, str]]]:
    """(the items to put, each key once, the last given; the ``(customer, sort key)`` rows to
    delete): the rows the items supersede (``replaces``), and an item of this same write
    another supersedes (an order sent three times in one batch: only the latest row stays)."""
    unique = {(i.customer_id, i.sk): i for i in items}
    gone = {(i.customer_id, i.replaces) for i in unique.values() if i.replaces is not None}
    kept = [i for key, i in unique.items() if key not in gone]
    return kept, sorted(gone)


def with_lot_keys(item: ActivityItem) -> ActivityItem:
    """``item`` with its :func:`lot_keys` in its data (itself when it earns no lot)."""
    keys = lot_keys(item)
    return item.model_copy(update={"data": {**item.data, **keys}}) if keys else item
