"""``kizuna points backfill-lots``: the points-lot index keys for rows written before them.

Ingest writes each row that earns a points lot (an ORDER row, a POINTS adjustment that adds
points) with ``gsi1`` keys under ``LOTS#<shard>`` (:func:`kizuna.domain.activity.lot_keys`),
where the daily points sweep finds every lot that expires in its window. Rows written by a
version before that carry no such keys: their lots are found only through
``by_points_expiry`` (a customer's earliest expiry), so a later close lot expires without a
warning. This pass scans the activity table and gives each such row the keys ingest writes
today, by the same rule: whether the lot is still live does not matter (ingest indexes a row
once, and the sweep re-reads the customer and replays their lots). ``since`` leaves rows
earned before it alone (counted, not written): a lot earned more than ``points_expiry_days``
ago has expired and the sweep never reads its index entry, so on a table of imported order
history most of the writes would buy nothing.

Each write is conditional (the row still exists, and has no ``gsi1pk``): safe to run again,
while ingest is live, and never re-creating a row an erasure deleted after the scan read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kizuna.domain.activity import earns_lot, lot_keys
from kizuna.ports import LotRows, ScannedRow


@dataclass
class BackfillReport:
    """Counts only (never a customer id)."""

    scanned: int = 0  # items the scan read (every kind: the read cost)
    lot_rows: int = 0  # rows that earn a lot
    updated: int = 0  # keys written (or, on a dry run, to write)
    already_indexed: int = 0  # rows that had their keys
    skipped: int = 0  # the condition failed: erased, or given keys, since the scan read it
    before_since: int = 0  # rows without keys earned before ``since``: left alone


def missing_lot_keys(row: ScannedRow) -> dict[str, str]:
    """The ``gsi1`` keys to add to ``row``: the ones ingest writes it with today, when it earns
    a lot and has none yet; none otherwise (not a lot's row, or already in the index)."""
    return {} if row.indexed else lot_keys(row.item)


def backfill_lots(
    table: LotRows,
    *,
    segment: int = 0,
    total_segments: int = 1,
    dry_run: bool = False,
    since: datetime | None = None,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Give every row of one scan segment that earns a lot and has no ``gsi1`` keys those
    keys (with ``since``, only rows earned at or after it); ``progress`` sees the counts after
    each page."""
    if since is not None and since.utcoffset() is None:
        raise ValueError("since must carry its time zone")
    report = BackfillReport()
    for page in table.scan_lot_rows(segment, total_segments):
        report.scanned += page.scanned
        for row in page.rows:
            if not earns_lot(row.item):
                continue
            report.lot_rows += 1
            keys = missing_lot_keys(row)
            if not keys:
                report.already_indexed += 1
            elif since is not None and row.item.at < since:
                report.before_since += 1
            elif dry_run or table.add_lot_keys(row.item.customer_id, row.sk, keys):
                report.updated += 1
            else:
                report.skipped += 1
        if progress is not None:
            progress(report)
    return report
