"""The daily direct-mail job: a day's collected recipients as print files.

One CSV per program (or campaign) and template (:mod:`kizuna.delivery.direct_mail`), its
manifest (file, rows, sha256, program, template, date) beside it, then a ``dm.file_ready``
event (source ``kizuna``: the bus policy lets only Kizuna's roles put it) for the print
vendor's integration. Order: the CSV, the event, the manifest last; a re-run finds the
manifest with the same checksum and writes nothing, puts nothing. A row collected late for
that day (a send at 23:59 still running) changes the checksum: the file is written again
under the same name, with a new manifest and event (consumers keep the latest sha256).

A row was collected when its message was sent, up to a day before: the job reads the day's
customers again (one batched read) and prints only the rows the contact policy's dm check
still lets through, at the customer's current address
(:func:`kizuna.delivery.direct_mail.recheck`). A withheld row is left out of the file, logged
with its reason, and its message's ledger entry says so (``withheld_at``,
``not_delivered_reason``: one conditional update of those two attributes, the first one
kept); a re-run withholds it again and changes nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from kizuna.delivery.direct_mail import (
    DmRows,
    Withheld,
    batches,
    day_prefix,
    file_key,
    manifest,
    manifest_bytes,
    print_day,
    print_file,
    recheck,
)
from kizuna.delivery.ledger import NOT_DELIVERED_REASON, WITHHELD_AT
from kizuna.domain.timestamps import iso
from kizuna.ports import CustomerReader, MessageStamps
from kizuna.runtime.config import PreferencesConfig
from kizuna.runtime.observability import logger

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


class PrintFiles(Protocol):
    """The encrypted print-file bucket (:class:`kizuna.adapters.s3.S3Objects`)."""

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def keys(self, prefix: str) -> list[str]: ...


class FileReadyEvents(Protocol):
    def put_file_ready(self, detail: Mapping[str, Any]) -> None: ...


def manifest_key(csv_key: str) -> str:
    return csv_key.removesuffix(".csv") + ".manifest.json"


def write_print_files(
    day: date,
    rows: DmRows,
    files: PrintFiles,
    events: FileReadyEvents,
    prefix: str = "dm/",
    *,
    customers: CustomerReader,
    now: datetime,
    preferences: PreferencesConfig,
    ledger: MessageStamps,
) -> list[dict[str, Any]]:
    """Write ``day``'s print files, of the rows still allowed to print at ``now``
    (``customers``: read now, so a withdrawal, topic opt-out, pause, suppression or move
    since the send is honoured); the manifests written by this run (none on a re-run)."""
    collected = rows.dm_rows(day)
    current = customers.get_customers(
        list(dict.fromkeys(r.customer_id for r in collected)), unreadable_ok=True
    )
    printable, withheld = recheck(collected, current, now, preferences)
    for w in withheld:
        logger.info(
            "dm row withheld from the print file",
            customer_id=w.row.customer_id,
            program=w.row.program,
            execution=w.row.execution,
            step=w.row.step,
            reason=w.reason,
        )
    written = []
    files_now = {
        file_key(prefix, day, program, template): (program, template, found)
        for (program, template), found in batches(printable).items()
    }
    # a file an earlier run wrote that has no row left to print (its customers erased or
    # withheld since): rewritten with no row, never left holding their names and addresses
    folder = day_prefix(prefix, day)
    for earlier in files.keys(folder):
        program, _, template = earlier.removeprefix(folder).removesuffix(".csv").partition("/")
        if earlier.endswith(".csv") and earlier not in files_now and template:
            files_now[earlier] = (program, template, [])
    for key, (program, template, found) in files_now.items():
        body = print_file(found)
        document = manifest(key, body, len(found), program, template, day)
        previous = files.get(manifest_key(key))
        if previous is not None and json.loads(previous).get("sha256") == document["sha256"]:
            continue
        files.put(key, body, CSV_CONTENT_TYPE)
        events.put_file_ready(document)
        files.put(manifest_key(key), manifest_bytes(document))
        logger.info("dm print file written", program=program, template=template, rows=len(found))
        written.append(document)
    _mark_withheld(withheld, ledger, now)
    return written


def _mark_withheld(withheld: Sequence[Withheld], ledger: MessageStamps, now: datetime) -> None:
    """Say on each withheld message's ledger entry that it was not printed, after the files
    are out: a stamp that fails (throttled past the retries) is logged and left, never the
    reason a day's mail is not printed (a re-run stamps it)."""
    for w in withheld:
        try:
            ledger.stamp_message(
                w.row.customer_id,
                w.row.execution,
                w.row.step,
                WITHHELD_AT,
                iso(now),
                channel="dm",
                also={NOT_DELIVERED_REASON: f"withheld from the print file ({w.reason})"},
            )
        except Exception as exc:  # any failure: the files are out, keep going
            logger.warning(
                "withheld dm row not marked on the ledger",
                customer_id=w.row.customer_id,
                execution=w.row.execution,
                step=w.row.step,
                error=type(exc).__name__,
            )


def write_previous_day(
    now: datetime,
    time_zone: str,
    rows: DmRows,
    files: PrintFiles,
    events: FileReadyEvents,
    prefix: str = "dm/",
    *,
    customers: CustomerReader,
    preferences: PreferencesConfig,
    ledger: MessageStamps,
) -> int:
    """The daily sweep's task: the print files of the day before ``now`` in ``time_zone``
    (the sends of that day are done); the number of files written."""
    day = print_day(now, time_zone) - timedelta(days=1)
    written = write_print_files(
        day,
        rows,
        files,
        events,
        prefix,
        customers=customers,
        now=now,
        preferences=preferences,
        ledger=ledger,
    )
    return len(written)


__all__ = [
    "FileReadyEvents",
    "PrintFiles",
    "manifest_key",
    "write_previous_day",
    "write_print_files",
]
