"""Direct mail (the ``dm`` channel): a send *collects* the recipient; a daily job prints.

A DM send passes the same contact policy (consent and a complete postal address) and the
same ``MSG#`` claim as any message; the channel (:class:`DmCollector`) then writes one row
per recipient into the print batch of its day (in the configured time zone), program or
campaign and template: an activity item in the customer's partition (so erasure removes
it with the customer), on ``gsi1`` under ``DMDAY#<day>``. The daily job
(:mod:`kizuna.services.direct_mail`) turns a day's rows into one CSV per program and
template (:func:`print_file`), a manifest (:func:`manifest`) and a ``dm.file_ready`` event.
Before it prints, the job asks the contact policy again (:func:`recheck`): a customer who
withdrew dm consent, opted out of the message's topic on dm, paused messages, was
suppressed on dm, removed their address or is gone since the send is withheld with the
policy's reason; one who moved is printed at the current address.

CSV: UTF-8, RFC 4180 (every cell quoted, CRLF), the columns of :data:`COLUMNS`, rows in a
fixed order (customer, execution) so the same rows give the same bytes and checksum. A cell
that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (what a spreadsheet
reads as a formula) is prefixed with a single quote (``'``): OWASP's CSV-injection advice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from kizuna.delivery.channels import OutboundMessage, PermanentFailure, SendResult
from kizuna.delivery.content import MAX_DM_LINES, DmContent
from kizuna.delivery.dm_rows import DmRow
from kizuna.delivery.policy import address_for, channel_block, paused_until, topic_block
from kizuna.domain.customer import UNREADABLE_CUSTOMER, Customer, PostalAddress, unreadable_of
from kizuna.domain.zones import zone_or
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import PreferencesConfig

ADDRESS_COLUMNS = (
    "recipient_name",
    "postal_code",
    "country",
    "region",
    "locality",
    "line1",
    "line2",
)
LINE_COLUMNS = tuple(f"line_{i}" for i in range(1, MAX_DM_LINES + 1))
COLUMNS = ("customer_id", *ADDRESS_COLUMNS, *LINE_COLUMNS)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FILE_READY = "dm.file_ready"


class DmRows(Protocol):
    """Where collected rows live (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def put_dm_row(self, row: DmRow) -> None: ...

    def dm_rows(self, day: date) -> list[DmRow]: ...


def print_day(at: datetime, time_zone: str) -> date:
    """The print batch a send at ``at`` joins: its date in the configured time zone."""
    return at.astimezone(zone_or(time_zone)).date()


class DmCollector:
    """The ``dm`` channel: records the recipient in the day's print batch. Putting the same
    row twice (a retried send) writes the same item: one row per claimed send."""

    def __init__(self, rows: DmRows, clock: Clock, time_zone: str) -> None:
        self.rows = rows
        self.clock = clock
        self.time_zone = time_zone

    def send(self, message: OutboundMessage) -> SendResult:
        content, address = message.content, message.address
        if not isinstance(content, DmContent) or not isinstance(address, PostalAddress):
            raise PermanentFailure("dm: not a direct mail")
        if not message.template:
            raise PermanentFailure("dm: no template named")
        day = print_day(self.clock.now(), self.time_zone)
        row = DmRow(
            day=day,
            program=message.program,
            template=message.template,
            customer_id=message.customer_id,
            execution=message.execution,
            step=message.step,
            address=address,
            lines=content.lines,
            topic=message.topic,
            transactional=message.transactional,
        )
        self.rows.put_dm_row(row)
        return SendResult(provider_message_id=f"dm:{day.isoformat()}/{row.program}/{row.template}")


@dataclass(frozen=True)
class Withheld:
    """A collected row the print file leaves out, and the contact policy's reason."""

    row: DmRow
    reason: str


def print_block(
    row: DmRow, customer: Customer, now: datetime, preferences: PreferencesConfig
) -> str | None:
    """Why ``row`` may not be printed now, asked as the send asked it: the dm channel's
    consent (the transactional API's: the absence of an opt-out), suppression and address;
    for a row of a topic that is not the transactional one, an opt-out of the topic on dm
    and a pause still running at ``now``. None: print it."""
    address = address_for(customer, "dm")
    block = channel_block(customer, "dm", address, transactional=row.transactional)
    if block is None and not isinstance(address, PostalAddress):
        block = "no_address"
    if block is None and row.topic is not None and not preferences.is_transactional(row.topic):
        block = topic_block(customer, "dm", row.topic)
        if block is None and paused_until(customer, now) is not None:
            block = "paused"
    return block


def recheck(
    rows: Iterable[DmRow],
    customers: Mapping[str, Customer],
    now: datetime,
    preferences: PreferencesConfig,
) -> tuple[list[DmRow], list[Withheld]]:
    """A day's rows against the customers as they are now (``customers``: read at print
    time, ``now``): the rows to print, each at the customer's current address, and the rows
    withheld because the dm channel's check of the contact policy no longer passes
    (:func:`print_block`), or the customer is gone (``unknown_customer``) or their item
    cannot be read by this version (``unreadable_customer``: the others still print)."""
    printed: list[DmRow] = []
    withheld: list[Withheld] = []
    unreadable = unreadable_of(customers)
    for row in rows:
        customer = customers.get(row.customer_id)
        if customer is None:
            why = UNREADABLE_CUSTOMER if row.customer_id in unreadable else "unknown_customer"
            withheld.append(Withheld(row, why))
            continue
        block = print_block(row, customer, now, preferences)
        address = address_for(customer, "dm")
        if block is not None or not isinstance(address, PostalAddress):
            withheld.append(Withheld(row, block or "no_address"))
            continue
        printed.append(
            row if row.address == address else row.model_copy(update={"address": address})
        )
    return printed, withheld


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{value}" if value.startswith(FORMULA_START) else value


def csv_row(row: DmRow) -> list[str]:
    address = row.address.model_dump()
    lines = list(row.lines) + [""] * (MAX_DM_LINES - len(row.lines))
    cells = [row.customer_id, *(address.get(c) or "" for c in ADDRESS_COLUMNS), *lines]
    return [safe_cell(str(c)) for c in cells]


def batches(rows: Iterable[DmRow]) -> dict[tuple[str, str], list[DmRow]]:
    """A day's rows by (program, template), each in file order."""
    out: dict[tuple[str, str], list[DmRow]] = {}
    for row in rows:
        out.setdefault((row.program, row.template), []).append(row)
    return {
        key: sorted(found, key=lambda r: (r.customer_id, r.execution, r.step))
        for key, found in sorted(out.items())
    }


def print_file(rows: Sequence[DmRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(csv_row(row))
    return buffer.getvalue().encode("utf-8")


def day_prefix(prefix: str, day: date) -> str:
    """Where the print files of ``day`` are (one per program and template)."""
    return f"{prefix}date={day.isoformat()}/"


def file_key(prefix: str, day: date, program: str, template: str) -> str:
    return f"{day_prefix(prefix, day)}{program}/{template}.csv"


def manifest(
    key: str, body: bytes, rows: int, program: str, template: str, day: date
) -> dict[str, Any]:
    return {
        "file": key,
        "rows": rows,
        "sha256": hashlib.sha256(body).hexdigest(),
        "program": program,
        "template": template,
        "date": day.isoformat(),
        "columns": list(COLUMNS),
        "encoding": "utf-8",
    }


def manifest_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2).encode()


__all__ = [
    "COLUMNS",
    "FILE_READY",
    "DmCollector",
    "DmRow",
    "DmRows",
    "Withheld",
    "batches",
    "csv_row",
    "day_prefix",
    "file_key",
    "manifest",
    "print_day",
    "print_file",
    "recheck",
    "safe_cell",
]
