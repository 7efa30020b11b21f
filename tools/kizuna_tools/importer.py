"""Bulk import of existing CRM data (customers, order history, refunds) from CSV or JSON
Lines.

Rows become the same inbound events the bus carries and go through the same fold
(:func:`kizuna.domain.ingest.apply_events`), so imported orders give exactly the state the
same orders sent as events would. Writes are grouped per customer: one BatchGetItem per 100
customers, one conditional PutItem per customer, activity through BatchWriteItem. History
is not news: no derived events are emitted, so no journey starts for a years-old order.

Customers columns (CSV header or JSON keys): ``customer_id`` (required), ``email``,
``phone`` (E.164), ``first_name``, ``last_name``, ``region``, ``prefecture``,
``birth_date`` (YYYY-MM-DD), ``gender`` (female/male/other/unknown), ``occupation``,
``locale`` (ja, en), ``time_zone`` (IANA), ``email_consent``, ``sms_consent``,
``push_consent``, ``line_consent``, ``dm_consent`` (opted_in/opted_out, yes/no, y/n,
true/false, 1/0 in any letter case; nothing else),
``postal_address`` (direct mail: JSON Lines an object, CSV ``postal_address.<field>``
columns: ``recipient_name``, ``postal_code``, ``country``, ``region``, ``locality``,
``line1``, ``line2``), ``updated_at``
(ISO 8601 with offset; else the file's ``as_of``, ``--as-of``: a row with neither is
rejected), the shop's own attributes as declared in the
configuration (``custom.attributes``): JSON Lines ``attributes`` (an object; ``null`` clears
one), CSV one ``attributes.<name>`` column each (the cell typed by the declaration: text,
a number in plain ASCII digits (``-12.5``), ``true``/``false``, ``YYYY-MM-DD``, a JSON array
of strings; an empty cell leaves it as it is), and push devices: JSON Lines ``push_tokens``
(a list of ``{"token", "platform"}``, platform APNS or FCM), CSV ``push_tokens``
(``APNS:<token>`` or ``FCM:<token>``, several separated by spaces), each a
``device.registered`` event. An attribute that is not declared rejects the row, naming it;
a customer id on two rows rejects every row that gives it.

Orders columns: CSV has one row per order line: ``order_id``, ``customer_id``,
``ordered_at`` (ISO 8601 with offset), ``product_id``, ``category``, ``quantity``,
``unit_price``, ``total`` (optional, defaults to the sum of the lines), ``currency``
(default and only value: the shop's ``loyalty.currency``), ``channel`` (web/app/store,
default store), ``cancelled_at`` (optional).
JSON Lines has one order per line with the same keys and a ``lines`` array (a line without
it is rejected; an order id on two lines rejects both).

Refunds columns (one refund a row, each the ``order.refunded`` event): ``order_id``,
``refund_id``, ``customer_id``, ``refunded_at`` (ISO 8601 with offset), ``amount`` (more
than 0), ``currency`` (default and only value: the shop's ``loyalty.currency``),
``reason``; JSON Lines may give the returned ``lines`` as an order's. An
``(customer_id, order_id, refund_id)`` on two rows rejects every row that gives it.

A column (or JSON key) that is none of these rejects the row: a misspelled ``totl`` or
``curency`` is never silently ignored; so does a JSON ``null`` (but an attribute's, which
clears it) and a JSON ``""`` (but free text's, where it is the text; a CSV empty cell is a
column left out). Nothing is written when any row is rejected unless
``partial`` is given (``kizuna import --partial``): then the valid rows are.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError
from pydantic import ValidationError

from kizuna.domain import strict_json
from kizuna.domain.customer import MAX_DEVICES, PROFILE_FIELDS, Customer, refund_digest
from kizuna.domain.privacy import ERASED_MARKER_DAYS
from kizuna.events import (
    ConsentChanged,
    DeviceRegistered,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
)
from kizuna.events.custom import vocabulary
from kizuna.events.envelope import (
    EventRejected,
    ParsedEvent,
    check_attributes,
    check_occurred_at,
    describe_validation_error,
)
from kizuna.events.inbound import (
    AMOUNT_TEXT,
    NUMBER_TEXT_RULE,
    SIGNED_NUMBER_TEXT,
    WHOLE_NUMBER_TEXT,
)
from kizuna.ports import CustomerStore
from kizuna.runtime.config import KizunaConfig, ValueType
from kizuna.services.ingest import IngestStats, apply_to_customers

# the profile columns are the customer.upserted fields
CUSTOMER_FIELDS = PROFILE_FIELDS
CONSENT_COLUMNS = {
    "email_consent": "email",
    "sms_consent": "sms",
    "push_consent": "push",
    "line_consent": "line",
    "dm_consent": "dm",
}
ATTRIBUTES = "attributes"  # JSON Lines: an object; CSV: attributes.<name> columns
PUSH_TOKENS = "push_tokens"
POSTAL_ADDRESS = "postal_address"  # JSON Lines: an object; CSV: postal_address.<field> columns
CUSTOMER_COLUMNS = frozenset(
    {"customer_id", "updated_at", *CUSTOMER_FIELDS, *CONSENT_COLUMNS, ATTRIBUTES, PUSH_TOKENS}
)
LINE_COLUMNS = ("product_id", "category", "quantity", "unit_price")
# Free text: in JSON Lines, "" is its value (an empty name); for any other key it is no value
# (not an address, a time, an amount, a currency...) and rejects the line. In CSV an empty
# cell is a value left out, whatever the column.
FREE_TEXT_COLUMNS = frozenset({"first_name", "last_name", "region", "prefecture", "occupation"})
FREE_TEXT_LINE_COLUMNS = frozenset({"category"})
# An order's own columns: one value per order (in CSV, every line of the order repeats them).
ORDER_LEVEL_COLUMNS = (
    "order_id",
    "customer_id",
    "ordered_at",
    "total",
    "currency",
    "channel",
    "cancelled_at",
)
ORDER_COLUMNS = frozenset({*ORDER_LEVEL_COLUMNS, *LINE_COLUMNS})
# A refund (order.refunded) a row: CSV has no returned lines; JSON Lines may give ``lines``.
REFUND_COLUMNS = frozenset(
    {"order_id", "refund_id", "customer_id", "refunded_at", "amount", "currency", "reason"}
)
REFUND_KEYS = frozenset({*REFUND_COLUMNS, "lines"})
FREE_TEXT_REFUND_COLUMNS = frozenset({"reason"})
TRUE_WORDS = {"opted_in", "yes", "true", "1", "y"}
FALSE_WORDS = {"opted_out", "no", "false", "0", "n"}
CUSTOMERS_PER_BATCH = 100
# devices a customer row may register: as many as a customer keeps (4 KB tokens: 20 stay far
# below the 400 KB item)
MAX_DEVICES_PER_ROW = MAX_DEVICES
IMPORT_SOURCE = "kizuna.import"


@dataclass
class RowError:
    row: int
    error: str


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    imported: int = 0
    customers_written: int = 0
    errors: list[RowError] = field(default_factory=list)
    # customers whose valid rows could not be written (their rows are in ``errors`` too)
    customers_failed: list[str] = field(default_factory=list)
    # valid rows the customer's state in Kizuna refused when written (in ``errors`` too: a
    # refund id Kizuna holds with another amount, say): nothing of such a row (of such an
    # order's rows) was written; the customer's other rows were
    refused: int = 0
    # refunds imported whose order Kizuna does not hold: they wait for it, as ingest's do
    refunds_waiting: int = 0
    # valid rows of customers erased in the last ERASED_MARKER_DAYS (in ``errors`` too):
    # not written, as ingest drops their events
    erased: int = 0

    @property
    def rejected(self) -> int:
        return len(self.errors)


class RowRejected(ValueError):
    pass


# A row of a customer erased in the last ERASED_MARKER_DAYS: ingest drops such a customer's
# events (kizuna.domain.privacy), and so does an import; the row says why it was not written
# and what happens once the marker has expired.
ERASED_ROW = (
    f"not written: the customer was erased in the last {ERASED_MARKER_DAYS} days; remove "
    "them from the source data (an import after that creates them again, as a new customer)"
)


# -- reading ---------------------------------------------------------------------------------
class ImportFileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, a header that names a column twice, a
    field over the CSV reader's limit): nothing of it is imported, whatever ``partial``."""


def _csv_header(fieldnames: Sequence[str] | None) -> None:
    names = list(fieldnames or [])
    for i, name in enumerate(names, start=1):
        if not name.strip():
            raise ImportFileError(f"row 1: column {i} has no name (a trailing comma?)")
        if name != name.strip():
            raise ImportFileError(f"row 1: the column {name.strip()!r} has spaces around it")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ImportFileError(f"row 1: {', '.join(map(repr, repeated))} given twice")


JSON_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})  # JSON Lines: one record a line


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) pairs; CSV rows count from 2 (the header is row 1). A row that
    cannot be one comes with ``"__error__": why``: invalid JSON as ``{"__error__": why}``, a
    CSV row with fewer or more values than the header with the values it has (so the order
    it names can be refused whole); a file that cannot be read raises
    :class:`ImportFileError`."""
    suffix = path.suffix.lower()
    if suffix not in {*JSON_SUFFIXES, ".csv", ".tsv"}:
        raise ValueError(f"{path.name}: use .csv, .tsv or .jsonl")
    number = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if suffix in JSON_SUFFIXES:
                for number, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    yield number, _json_row(line)
                return
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            _csv_header(reader.fieldnames)
            for number, row in enumerate(reader, start=2):
                if None in row:
                    yield number, {**row, "__error__": "more values than header columns"}
                elif any(value is None for value in row.values()):
                    yield number, {**row, "__error__": "fewer values than header columns"}
                else:
                    # values as written: a padded id is rejected, never trimmed into another
                    yield number, dict(row)
    except UnicodeDecodeError:
        raise ImportFileError(
            f"not UTF-8 (after row {number}): save the file as UTF-8 and import it again"
        ) from None
    except csv.Error as exc:
        raise ImportFileError(f"row {number + 1}: unreadable CSV ({exc})") from None


def _json_row(line: str) -> dict[str, Any]:
    try:
        value = strict_json.loads(line)
    except json.JSONDecodeError as exc:
        return {"__error__": f"invalid JSON: {exc.msg}"}
    except strict_json.RepeatedKey as exc:  # {"email": "a@x", "email": "b@x"}
        return {"__error__": str(exc)}
    except strict_json.NotJsonNumber as exc:  # {"total": NaN}: Python reads it, JSON has none
        return {"__error__": f"invalid JSON: {exc}"}
    return value if isinstance(value, dict) else {"__error__": "not an object"}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _time(value: Any, column: str) -> datetime:
    if _blank(value):
        raise RowRejected(f"{column}: required")
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise RowRejected(f"{column}: not an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise RowRejected(f"{column}: needs a UTC offset (e.g. +09:00)")
    return at


def _event(
    model: type[Any], event_id: str, detail_type: str, detail: dict[str, Any]
) -> ParsedEvent:
    try:
        parsed = model.model_validate(detail)
    except ValidationError as exc:
        raise RowRejected(describe_validation_error(exc)) from exc
    return ParsedEvent(
        event_id=event_id,
        detail_type=detail_type,
        source=IMPORT_SOURCE,
        time=parsed.occurred_at,
        detail=parsed,
    )


def _postal_columns(row: dict[str, Any]) -> dict[str, Any]:
    """CSV ``postal_address.<field>`` columns as one ``postal_address`` object (all blank:
    none; a field the address does not have is rejected by the model, naming it)."""
    prefix = f"{POSTAL_ADDRESS}."
    parts = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    if not parts:
        return row
    out = {k: v for k, v in row.items() if not k.startswith(prefix)}
    if POSTAL_ADDRESS in out:
        raise RowRejected("postal_address: give the object or its columns, not both")
    filled = {k: v for k, v in parts.items() if not _blank(v)}
    if filled:
        out[POSTAL_ADDRESS] = filled
    return out


# -- rows to events ---------------------------------------------------------------------------
def customer_events(
    row: dict[str, Any],
    now: datetime,
    cfg: KizunaConfig | None = None,
    *,
    as_of: datetime | None = None,
    empty_is_absent: bool = False,
) -> list[ParsedEvent]:
    """A customer row as ``customer.upserted`` (validated with ``cfg``'s declared attributes),
    ``consent.changed`` per consent column and ``device.registered`` per push token, all at
    the row's ``updated_at``, else at ``as_of`` (when the file was exported). A row with
    neither is rejected: stamped with the import's own time it would win over every change
    made since the export (an unsubscribe) -- and again at each re-run.

    ``empty_is_absent``: a CSV row, whose empty cell is a column left out; else (JSON Lines)
    ``""`` is free text's value and rejects any other key."""
    if "__error__" in row:
        raise RowRejected(row["__error__"])
    _no_nulls(row)
    if not empty_is_absent:
        _no_empty_text(row, FREE_TEXT_COLUMNS)
    cid = row.get("customer_id")
    if _blank(cid):
        raise RowRejected("customer_id: required")
    if not _blank(row.get("updated_at")):
        at = _time(row.get("updated_at"), "updated_at")
    elif as_of is not None:
        at = as_of
    else:
        raise RowRejected(
            "updated_at: required, or give the file's export time (--as-of): a row stamped "
            "with the import's time would undo later changes, such as an unsubscribe"
        )
    cfg = cfg or KizunaConfig()
    row = _attribute_columns(row, cfg)
    row = _postal_columns(row)
    _known_columns(row, CUSTOMER_COLUMNS)
    detail = {"customer_id": cid, "occurred_at": at}
    detail.update(
        {
            k: row[k]
            for k in CUSTOMER_FIELDS
            if k in row and not (empty_is_absent and _blank(row[k]))
        }
    )
    if ATTRIBUTES in row:
        if not isinstance(row[ATTRIBUTES], dict):
            raise RowRejected("attributes: an object of declared attributes")
        if row[ATTRIBUTES]:
            detail[ATTRIBUTES] = row[ATTRIBUTES]
    stamp = at.isoformat()
    upserted = vocabulary(cfg).inbound_model("customer.upserted")
    assert upserted is not None
    events = [_event(upserted, f"import:customer:{cid}:{stamp}", "customer.upserted", detail)]
    try:
        # the row's own attributes over a customer's budget: the bus refuses such an event at
        # its door, and the fold would refuse the row when written; a dry run says so too
        check_attributes("customer.upserted", events[0].detail)
    except EventRejected as exc:
        raise RowRejected(exc.reason) from exc
    for column, channel in CONSENT_COLUMNS.items():
        raw = row.get(column)
        if _blank(raw):
            continue
        word = str(raw).lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise RowRejected(f"{column}: use opted_in/opted_out (or yes/no, true/false, 1/0)")
        status = "opted_in" if word in TRUE_WORDS else "opted_out"
        events.append(
            _event(
                ConsentChanged,
                f"import:consent:{cid}:{channel}:{stamp}",
                "consent.changed",
                {
                    "customer_id": cid,
                    "occurred_at": at,
                    "channel": channel,
                    "status": status,
                    "source": "import",
                },
            )
        )
    devices = _push_tokens(row.get(PUSH_TOKENS))
    if len(devices) > MAX_DEVICES_PER_ROW:
        raise RowRejected(f"push_tokens: at most {MAX_DEVICES_PER_ROW} devices a customer")
    for i, device in enumerate(devices):
        digest = hashlib.sha256(str(device.get("token")).encode()).hexdigest()[:16]
        try:
            events.append(
                _event(
                    DeviceRegistered,
                    f"import:device:{cid}:{digest}:{stamp}",
                    "device.registered",
                    {"customer_id": cid, "occurred_at": at, **device},
                )
            )
        except RowRejected as exc:
            raise RowRejected(f"push_tokens.{i}: {exc}") from exc
    return events


def _attribute_columns(row: dict[str, Any], cfg: KizunaConfig) -> dict[str, Any]:
    """CSV ``attributes.<name>`` columns as one ``attributes`` object, each cell typed by the
    attribute's declaration; an undeclared name rejects the row."""
    columns = [k for k in row if k.startswith(f"{ATTRIBUTES}.")]
    if not columns:
        return row
    if ATTRIBUTES in row:
        raise RowRejected("give attributes as one object or as attributes.<name> columns")
    declared = vocabulary(cfg).attributes
    out = {k: v for k, v in row.items() if k not in columns}
    values: dict[str, Any] = {}
    for column in columns:
        name = column.split(".", 1)[1]
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(sorted(declared)) or "none declared"
            raise RowRejected(f"{column}: not a declared attribute (custom.attributes: {known})")
        cell = row[column]
        if _blank(cell):
            continue
        values[name] = _typed_cell(column, str(cell), spec.type)
    out[ATTRIBUTES] = values
    return out


def _typed_cell(column: str, cell: str, kind: ValueType) -> Any:
    if kind in (ValueType.STRING, ValueType.DATE):
        return cell
    if kind == ValueType.BOOLEAN:
        if cell not in ("true", "false"):
            raise RowRejected(f"{column}: true or false")
        return cell == "true"
    if kind == ValueType.NUMBER:
        if not SIGNED_NUMBER_TEXT.fullmatch(cell):
            raise RowRejected(
                f"{column}: a number: ASCII digits, an optional leading '-' and '.' fraction "
                "(no space, '_', exponent or leading zero)"
            )
        return json.loads(cell)
    try:
        value = json.loads(cell)
    except json.JSONDecodeError as exc:
        raise RowRejected(f'{column}: a JSON array of strings (["a", "b"])') from exc
    if kind == ValueType.STRING_LIST and not isinstance(value, list):
        raise RowRejected(f'{column}: a JSON array of strings (["a", "b"])')
    return value


def _push_tokens(raw: Any) -> list[dict[str, Any]]:
    """``push_tokens`` as device dicts: a JSON Lines list of {token, platform}, or a CSV cell
    of ``PLATFORM:token`` separated by spaces."""
    if _blank(raw):
        return []
    if isinstance(raw, str):
        devices = []
        for part in raw.split():
            platform, sep, token = part.partition(":")
            if not sep:
                raise RowRejected("push_tokens: write each as APNS:<token> or FCM:<token>")
            devices.append({"platform": platform, "token": token})
        return devices
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        raise RowRejected("push_tokens: a list of {token, platform}")
    for i, device in enumerate(raw):
        unknown = sorted(set(device) - {"token", "platform"})
        if unknown:
            raise RowRejected(f"push_tokens.{i}: unknown keys {', '.join(unknown)}")
    return list(raw)


def _no_nulls(row: dict[str, Any], prefix: str = "") -> None:
    """A JSON ``null`` is refused (a CSV cell is never one): dropped, it would be read as
    "leave it as it is" or as a default (``"currency": null`` as the shop's currency) while
    the row is reported imported. Only an attribute's ``null`` (inside ``attributes``) means
    something: it clears the attribute."""
    nulls = [f"{prefix}{key}" for key, value in row.items() if value is None]
    if nulls:
        raise RowRejected(f"{', '.join(nulls)}: null is not a value (leave the key out)")


def _no_empty_text(row: dict[str, Any], free_text: frozenset[str], prefix: str = "") -> None:
    """JSON Lines: ``""`` is refused but for free text (where it is the text): taken as a key
    left out, it was read as the default (``"currency": ""`` as the shop's currency,
    ``"total": ""`` as the sum of the lines) or as "leave it as it is" (``"cancelled_at":
    ""``: not cancelled)."""
    empty = [f"{prefix}{key}" for key, value in row.items() if value == "" and key not in free_text]
    if empty:
        raise RowRejected(f'{", ".join(empty)}: "" is not a value (give one or leave the key out)')


def _known_columns(row: dict[str, Any], known: Iterable[str], what: str = "columns") -> None:
    unknown = sorted(set(row) - set(known))
    if unknown:
        raise RowRejected(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _number_text(value: Any, column: str, pattern: re.Pattern[str], what: str) -> None:
    """A number given as text must be written as ``pattern`` says (a JSON number is left to
    the event's model)."""
    if isinstance(value, str) and not pattern.fullmatch(value):
        raise RowRejected(f"{column}: {what} ({NUMBER_TEXT_RULE})")


def _decimal(value: Any, column: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise RowRejected(f"{column}: not a number") from exc


def group_order_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], report: ImportReport, *, json_lines: bool = False
) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """(row numbers, order) pairs: CSV order lines grouped by ``order_id``; a JSON Lines file
    has one whole order per line (``json_lines``)."""
    if json_lines:
        yield from _json_orders(rows, report)
        return
    orders: dict[str, tuple[list[int], dict[str, Any]]] = {}
    spoiled: dict[str, int] = {}  # order id -> its first row rejected on its own
    for number, row in rows:
        report.rows += 1
        oid = row.get("order_id")
        try:
            if "__error__" in row:
                raise RowRejected(row["__error__"])
            _known_columns(row, ORDER_COLUMNS)
            if _blank(oid):
                raise RowRejected("order_id: required")
        except RowRejected as exc:
            report.errors.append(RowError(number, str(exc)))
            if isinstance(oid, str) and oid:
                spoiled.setdefault(oid, number)
            continue
        own = {c: row[c] for c in ORDER_LEVEL_COLUMNS if c in row}
        numbers, order = orders.setdefault(str(oid), ([], {**own, "lines": []}))
        numbers.append(number)
        differs = [c for c in ORDER_LEVEL_COLUMNS if row.get(c) != order.get(c)]
        if differs:
            order.setdefault("__error__", f"rows of order {oid} differ in {', '.join(differs)}")
        line = {k: row.get(k) for k in LINE_COLUMNS}
        order["lines"].append({k: v for k, v in line.items() if not _blank(v)})
    for oid, first in spoiled.items():
        # an order short of a line is not imported: a re-run with the row fixed would find
        # the order already folded and change nothing
        if oid in orders:
            error = f"row {first} of order {oid} is rejected: an order is imported whole or not"
            orders[oid][1].setdefault("__error__", error)
    yield from orders.values()


def _json_orders(
    rows: Iterable[tuple[int, dict[str, Any]]], report: ImportReport
) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """JSON Lines orders: one whole order a line, with its ``lines`` array. An order id on two
    lines rejects both (which is the order? neither is imported, so a re-run with the line
    fixed is not shadowed by an order already folded), naming the other rows; a line without
    ``lines`` (an order line written flat) is refused, never grouped with another."""
    by_id: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    others: list[tuple[int, dict[str, Any]]] = []
    for number, row in rows:
        report.rows += 1
        if "__error__" in row:
            report.errors.append(RowError(number, row["__error__"]))
            continue
        oid = row.get("order_id")
        if isinstance(oid, str) and oid:
            by_id.setdefault(oid, []).append((number, row))
        else:  # no usable id: the order's own validation says so
            others.append((number, row))
    for oid, lines in by_id.items():
        numbers = [n for n, _ in lines]
        if len(lines) > 1:
            for n in numbers:
                rest = ", ".join(str(m) for m in numbers if m != n)
                also = f"row {rest}" if len(numbers) == 2 else f"rows {rest}"
                report.errors.append(
                    RowError(n, f"order_id {oid} is also on {also}: one line per order")
                )
            continue
        others.append(lines[0])
    for number, row in sorted(others, key=lambda pair: pair[0]):
        if "lines" not in row:
            error = "lines: required (a JSON line is one whole order, with its lines array)"
            report.errors.append(RowError(number, error))
            continue
        yield [number], row


def _read_lines(lines: Any, *, empty_is_absent: bool) -> list[dict[str, Any]]:
    """An order's (a return's) ``lines``, each checked as a row is: no null, no ``""`` but a
    category's (JSON Lines), no unknown key, numbers written as text as the rules say."""
    if not isinstance(lines, list):
        raise RowRejected("lines: a list of order lines")
    read_lines = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise RowRejected(f"lines.{i}: an object with {', '.join(LINE_COLUMNS)}")
        _no_nulls(line, f"lines.{i}.")
        if not empty_is_absent:
            _no_empty_text(line, FREE_TEXT_LINE_COLUMNS, f"lines.{i}.")
        _known_columns(line, LINE_COLUMNS, f"keys in lines.{i}")
        quantity = line.get("quantity")
        _number_text(quantity, f"lines.{i}.quantity", WHOLE_NUMBER_TEXT, "a whole number")
        _number_text(line.get("unit_price"), f"lines.{i}.unit_price", AMOUNT_TEXT, "an amount")
        if isinstance(quantity, str):  # plain digits (checked): the event's count is a number
            line = {**line, "quantity": int(quantity)}
        read_lines.append(line)
    return read_lines


def order_events(
    order: dict[str, Any], cfg: KizunaConfig, *, empty_is_absent: bool = False
) -> list[ParsedEvent]:
    """An order as ``order.placed`` (and ``order.cancelled``). ``currency`` defaults to the
    shop's (``loyalty.currency``); another is rejected here, as ingest refuses the event
    (:func:`shop_currency`). ``empty_is_absent``: grouped
    from CSV rows, whose empty cells are columns left out (else ``""`` rejects any key but a
    line's ``category``)."""
    if "__error__" in order:
        raise RowRejected(order["__error__"])
    _no_nulls(order)
    if not empty_is_absent:
        _no_empty_text(order, frozenset())
    _known_columns(order, {*ORDER_LEVEL_COLUMNS, "lines"}, "keys")
    oid, cid = order.get("order_id"), order.get("customer_id")
    if _blank(cid):
        raise RowRejected("customer_id: required")
    at = _time(order.get("ordered_at"), "ordered_at")
    lines = _read_lines(order.get("lines") or [], empty_is_absent=empty_is_absent)
    total = order.get("total")
    _number_text(None if _blank(total) else total, "total", AMOUNT_TEXT, "an amount")
    if _blank(total):
        total = sum(
            (
                _decimal(line.get("unit_price", 0), "unit_price")
                * _decimal(line.get("quantity", 1), "quantity")
                for line in lines
            ),
            Decimal(0),
        )
    detail = {
        "customer_id": cid,
        "occurred_at": at,
        "order_id": oid,
        "lines": lines,
        "total": total,
        "currency": order.get("currency") or cfg.loyalty.currency,
        "channel": order.get("channel") or "store",
    }
    events = [_event(OrderPlaced, f"import:order:{oid}", "order.placed", detail)]
    assert isinstance(events[0].detail, OrderPlaced)
    shop_currency(events[0].detail.currency, "total", cfg)
    if not _blank(order.get("cancelled_at")):
        cancelled_at = _time(order["cancelled_at"], "cancelled_at")
        if cancelled_at < at:  # a typo, or another order's date: never a cancelled order
            raise RowRejected("cancelled_at: before ordered_at")
        events.append(
            _event(
                OrderCancelled,
                f"import:cancel:{oid}",
                "order.cancelled",
                {"customer_id": cid, "occurred_at": cancelled_at, "order_id": oid},
            )
        )
    return events


def refund_events(
    row: dict[str, Any], cfg: KizunaConfig, *, empty_is_absent: bool = False
) -> list[ParsedEvent]:
    """A refund row as the ``order.refunded`` event ingest folds (one refund per
    ``(order_id, refund_id)``: its event id is derived from them, so a re-run is the same
    refund). ``currency`` defaults to the shop's (``loyalty.currency``); another is rejected
    here, as ingest refuses the event. ``lines`` (the returned lines) only in JSON Lines.
    ``empty_is_absent``: a CSV row, whose empty cell is a column left out; else ``""`` is
    ``reason``'s value and rejects any other key."""
    if "__error__" in row:
        raise RowRejected(row["__error__"])
    _no_nulls(row)
    if not empty_is_absent:
        _no_empty_text(row, FREE_TEXT_REFUND_COLUMNS)
    if empty_is_absent and "lines" in row:
        raise RowRejected("lines: the returned lines are imported from JSON Lines only")
    _known_columns(row, REFUND_COLUMNS if empty_is_absent else REFUND_KEYS, "columns")
    row = {k: v for k, v in row.items() if not (empty_is_absent and _blank(v))}
    for column in ("order_id", "refund_id", "customer_id", "amount"):
        if _blank(row.get(column)):
            raise RowRejected(f"{column}: required")
    at = _time(row.get("refunded_at"), "refunded_at")
    _number_text(row["amount"], "amount", AMOUNT_TEXT, "an amount")
    detail: dict[str, Any] = {
        "customer_id": row["customer_id"],
        "occurred_at": at,
        "order_id": row["order_id"],
        "refund_id": row["refund_id"],
        "amount": row["amount"],
        "currency": row.get("currency", cfg.loyalty.currency),
    }
    if "lines" in row:
        detail["lines"] = _read_lines(row["lines"], empty_is_absent=False)
    if "reason" in row:
        detail["reason"] = row["reason"]
    # ids are checked (by the model) before they name the event
    event_id = f"import:refund:{row['order_id']}:{refund_digest(str(row['refund_id']))}"
    event = _event(OrderRefunded, event_id, "order.refunded", detail)
    assert isinstance(event.detail, OrderRefunded)
    shop_currency(event.detail.currency, "amount", cfg)
    return [event]


def shop_currency(currency: str, amount: str, cfg: KizunaConfig) -> None:
    """Reject a row in another currency than the shop's, as ingest refuses its event
    (points, ranks and spend count one currency)."""
    if currency != cfg.loyalty.currency:
        raise RowRejected(
            f"currency: {currency} is not the shop's order currency "
            f"({cfg.loyalty.currency}, loyalty.currency); convert the {amount} before "
            "importing it"
        )


def within_window(events: list[ParsedEvent], now: datetime, cfg: KizunaConfig) -> list[ParsedEvent]:
    """``events``, if every time lies within ``cfg.event_time`` of ``now`` (as on the bus)."""
    for ev in events:
        try:
            check_occurred_at(ev.detail_type, ev.detail.occurred_at, now, cfg.event_time)
        except EventRejected as exc:
            raise RowRejected(exc.reason) from exc
    return events


def repeated_ids(
    rows: Sequence[tuple[int, dict[str, Any]]], key: str | tuple[str, ...], one_per: str
) -> dict[int, str]:
    """Row number -> error, for each row whose ``key`` (``customer_id``, ``product_id``; or
    the columns that together name a refund, ``("customer_id", "order_id", "refund_id")``)
    another row
    gives too: every one of them is rejected, naming the others: which row is the customer
    (the product, the refund) is not guessed (importing the first, or the last, with
    ``partial``, took one of them as it)."""
    keys = (key,) if isinstance(key, str) else key
    numbers_of: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for number, row in rows:
        values = tuple(v for k in keys if isinstance(v := row.get(k), str) and v)
        if len(values) == len(keys):
            numbers_of[values].append(number)
    errors: dict[int, str] = {}
    for values, numbers in numbers_of.items():
        if len(numbers) < 2:
            continue
        named = " ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True))
        for n in numbers:
            rest = ", ".join(str(m) for m in numbers if m != n)
            also = f"row {rest}" if len(numbers) == 2 else f"rows {rest}"
            errors[n] = f"{named} is also on {also}: one row per {one_per}"
    return errors


# -- applying ---------------------------------------------------------------------------------
@dataclass
class CustomerFailure:
    """A customer whose rows could not be written (the other customers were)."""

    customer_id: str
    error: str


@dataclass
class Written:
    """What :func:`apply_grouped` wrote: the customers written, those that failed, the
    events not applied (customer -> event id -> reason: those the customer's state refused
    and, given ``together``, the other events of their records; the customer's other
    events were applied), the refunds whose order Kizuna does not hold, and the customers
    erased recently, of whom nothing was written."""

    customers: int = 0
    failures: list[CustomerFailure] = field(default_factory=list)
    refused: dict[str, dict[str, str]] = field(default_factory=dict)
    refunds_waiting: int = 0
    erased: list[str] = field(default_factory=list)


def apply_grouped(
    store: CustomerStore,
    by_customer: dict[str, list[ParsedEvent]],
    cfg: KizunaConfig,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    together: Mapping[str, Mapping[str, Hashable]] | None = None,
) -> Written:
    """Fold each customer's events and save once per customer. One customer failing (a
    DynamoDB error, a conflict that does not resolve) never stops the import: it is
    reported and the rest go on. An event the customer's state refuses (a refund id Kizuna
    holds with another amount, attributes over the item's budget) is not applied, as
    ingest does not apply it: it is reported, the customer's other events are applied.
    ``together`` (customer -> event id -> its record: a row, an order's rows): a record's
    events are applied all or none, so a row whose attributes are refused does not write
    its consent either (kizuna.services.ingest.apply_to_customers).

    Each customer's events are folded at once (``bulk``: history is not news), so the cost
    is linear in their number and the item stays bounded (kizuna.domain.loyalty.settle)."""
    out = Written()
    ids = list(by_customer)
    for start in range(0, len(ids), CUSTOMERS_PER_BATCH):
        chunk = {cid: by_customer[cid] for cid in ids[start : start + CUSTOMERS_PER_BATCH]}
        stats = IngestStats()
        outcomes = apply_to_customers(store, chunk, cfg, now, stats, bulk=True, together=together)
        for cid, outcome in outcomes.items():
            if isinstance(outcome, NoRegionError | NoCredentialsError | EndpointConnectionError):
                raise outcome  # no customer can be written: the setup is wrong, say so once
            if isinstance(outcome, Exception):
                out.failures.append(CustomerFailure(cid, _describe(outcome)))
                continue
            if outcome.erased:
                out.erased.append(cid)
                continue
            if outcome.refused:
                out.refused[cid] = dict(outcome.refused)
            out.refunds_waiting += sum(
                1
                for ev in chunk[cid]
                if isinstance(ev.detail, OrderRefunded)
                and ev.event_id not in outcome.refused
                and _waiting(outcome.customer, ev.detail.order_id)
            )
        out.customers += stats.customers_saved
        if progress:
            progress(sum(len(events) for events in chunk.values()))
    return out


def _waiting(customer: Customer, order_id: str) -> bool:
    """Does ``customer`` (as written) not hold ``order_id`` placed: its refunds wait for it
    (or, waiting longer than a cancellation waits, were dropped, as ingest drops them)? An
    order the item does not hold at all while some orders are settled is taken as settled."""
    order = customer.orders.get(order_id)
    if order is not None:
        return not order.placed
    return customer.history.before_at is None


def _describe(exc: Exception) -> str:
    """The error's type and, for an AWS error, its code (never the message: it may quote
    the item)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return f"{type(exc).__name__}: {code}" if code else type(exc).__name__


def import_file(
    kind: str,
    path: Path,
    store: CustomerStore | None,
    cfg: KizunaConfig,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    *,
    partial: bool = False,
    as_of: datetime | None = None,
) -> ImportReport:
    """Validate every row; import them all when none is rejected, the valid ones when
    ``partial`` (``store=None`` validates only). ``as_of``: when a customers file was
    exported, the time of its rows without ``updated_at``. :class:`ImportFileError` when
    the file cannot be read as a whole (nothing is written then)."""
    report = ImportReport(kind=kind)
    by_customer: dict[str, list[ParsedEvent]] = defaultdict(list)
    rows_of: dict[str, list[list[int]]] = defaultdict(list)  # customer -> rows of each record
    # customer -> event id -> the rows of the record it is of (written all or none)
    rows_of_event: dict[str, dict[str, tuple[int, ...]]] = defaultdict(dict)

    def take(numbers: list[int], events: list[ParsedEvent]) -> None:
        cid = events[0].customer_id
        by_customer[cid].extend(events)
        rows_of[cid].append(numbers)
        rows_of_event[cid].update((ev.event_id, tuple(numbers)) for ev in events)
        report.imported += 1

    if as_of is not None and as_of > now:
        raise ImportFileError(f"--as-of {as_of.isoformat()} is later than now")
    csv_file = path.suffix.lower() not in JSON_SUFFIXES
    if kind == "customers":
        rows = list(read_rows(path))
        repeated = repeated_ids(rows, "customer_id", "customer")
        for number, row in rows:
            report.rows += 1
            try:
                if number in repeated:
                    raise RowRejected(repeated[number])
                events = customer_events(row, now, cfg, as_of=as_of, empty_is_absent=csv_file)
                events = within_window(events, now, cfg)
            except RowRejected as exc:
                report.errors.append(RowError(number, str(exc)))
                continue
            take([number], events)
    elif kind == "orders":
        for numbers, order in group_order_rows(read_rows(path), report, json_lines=not csv_file):
            try:
                events = order_events(order, cfg, empty_is_absent=csv_file)
                events = within_window(events, now, cfg)
            except RowRejected as exc:
                report.errors.extend(RowError(n, str(exc)) for n in numbers)
                continue
            take(numbers, events)
    elif kind == "refunds":
        rows = list(read_rows(path))
        # a customer's orders are theirs: another customer's order 1001 is another order
        repeated = repeated_ids(rows, ("customer_id", "order_id", "refund_id"), "refund")
        for number, row in rows:
            report.rows += 1
            try:
                if number in repeated:
                    raise RowRejected(repeated[number])
                events = refund_events(row, cfg, empty_is_absent=csv_file)
                events = within_window(events, now, cfg)
            except RowRejected as exc:
                report.errors.append(RowError(number, str(exc)))
                continue
            take([number], events)
    else:
        raise ValueError(f"unknown import kind {kind!r}")
    if store is not None and (partial or not report.errors):
        written = apply_grouped(store, by_customer, cfg, now, progress, rows_of_event)
        report.customers_written = written.customers
        report.refunds_waiting = written.refunds_waiting
        for cid, refused in written.refused.items():
            # a record (a row, an order's rows) is written whole or not at all: its other
            # events are in ``refused`` with the reason of the one refused
            reasons: dict[tuple[int, ...], list[str]] = defaultdict(list)
            for event_id, reason in refused.items():
                if reason not in reasons[rows_of_event[cid][event_id]]:
                    reasons[rows_of_event[cid][event_id]].append(reason)
            for record, why in reasons.items():
                report.imported -= 1
                report.refused += len(record)
                named = "the row" if len(record) == 1 else f"rows {', '.join(map(str, record))}"
                reason = f"refused by Kizuna: {'; '.join(why)} (no part of {named} was written)"
                report.errors.extend(RowError(n, reason) for n in record)
        for cid in written.erased:
            numbers = [n for record in rows_of[cid] for n in record]
            report.imported -= len(rows_of[cid])
            report.erased += len(numbers)
            report.errors.extend(RowError(n, ERASED_ROW) for n in numbers)
        for failure in written.failures:
            report.customers_failed.append(failure.customer_id)
            report.imported -= len(rows_of[failure.customer_id])
            reason = f"customer not written ({failure.error}); re-run the import to retry"
            report.errors.extend(
                RowError(n, reason) for numbers in rows_of[failure.customer_id] for n in numbers
            )
    report.errors.sort(key=lambda e: e.row)
    return report
