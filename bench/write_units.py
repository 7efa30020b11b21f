"""DynamoDB write request units as AWS bills them, measured on moto: the table's and each
global secondary index's.

moto reports no consumed capacity (a constant), and the cost model's formula priced a write
as one unit an item (two in a transaction) with no index: the ledger's ``gsi1`` (projection
ALL) and the sparse ``sending`` index were left out. :func:`metered_write_units` looks at
every item a write touches, before and after it, in moto's own tables, and prices it by
AWS's rules (Amazon DynamoDB Developer Guide, "Global secondary indexes: provisioned
throughput considerations" and "Item sizes and formats"):

* the table: the larger of the item's sizes before and after, in 1 KB units (at least
  one), twice in a transaction; a delete, the item's size; a failed conditional write
  still pays for its item;
* each global secondary index: nothing if the item is in it neither before nor after; one
  write of the index entry if it enters, leaves, or stays with any projected attribute
  changed; two (a delete and a put) if its index key changes. An index entry is the
  table's key, the index's key and the projected attributes, plus 100 bytes. An index
  write in a transaction is priced as a standard write (an assumption: AWS documents the
  doubling for the table's items; if it doubles index entries too, the bill is higher).

Not modelled: a ``ConditionCheck`` in a transaction (priced as a transactional write of
its item, as before), writes another thread makes to the same item during the call (the
bench's threads rarely share an item), local secondary indexes (Kizuna has none).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

KB = 1024
INDEX_ENTRY_OVERHEAD = 100  # bytes AWS adds to each index entry
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")

Item = Mapping[str, Mapping[str, Any]]  # attribute -> typed value ({"S": "x"})


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    name: str
    keys: tuple[str, ...]
    indexes: tuple[IndexSpec, ...] = ()


@dataclass(frozen=True)
class Units:
    table: float = 0.0
    index: float = 0.0

    def __add__(self, other: Units) -> Units:
        return Units(self.table + other.table, self.index + other.index)


# --- sizes ------------------------------------------------------------------------------------
def _number_size(text: str) -> int:
    """1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed)."""
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one typed value (DynamoDB JSON)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        raw = inner if isinstance(inner, bytes) else base64.b64decode(str(inner))
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in inner)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(len(v if isinstance(v, bytes) else base64.b64decode(str(v))) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item, attributes: Sequence[str] | None = None) -> int:
    """Attribute names plus values (only ``attributes`` when given)."""
    names = item.keys() if attributes is None else [a for a in attributes if a in item]
    return sum(len(name.encode()) + value_size(item[name]) for name in names)


def _units(size: int) -> int:
    return max(1, math.ceil(size / KB))


# --- units ------------------------------------------------------------------------------------
def _projected(table: TableSpec, index: IndexSpec, item: Item) -> list[str]:
    keys = list(dict.fromkeys([*table.keys, *index.keys]))
    if index.projection == "ALL":
        return list(item)
    if index.projection == "INCLUDE":
        return list(dict.fromkeys([*keys, *index.include]))
    return keys


def _entry_size(table: TableSpec, index: IndexSpec, item: Item) -> int:
    return item_size(item, _projected(table, index, item)) + INDEX_ENTRY_OVERHEAD


def index_units(table: TableSpec, index: IndexSpec, old: Item | None, new: Item | None) -> int:
    """Write units one write costs ``index``."""
    was = old is not None and all(k in old for k in index.keys)
    now = new is not None and all(k in new for k in index.keys)
    if not was and not now:
        return 0
    if was and not now:
        assert old is not None
        return _units(_entry_size(table, index, old))
    if now and not was:
        assert new is not None
        return _units(_entry_size(table, index, new))
    assert old is not None and new is not None
    if any(old[k] != new[k] for k in index.keys):
        return _units(_entry_size(table, index, old)) + _units(_entry_size(table, index, new))
    projected = set(_projected(table, index, old)) | set(_projected(table, index, new))
    if any(old.get(a) != new.get(a) for a in projected):
        return _units(_entry_size(table, index, new))
    return 0


def write_units(
    table: TableSpec, old: Item | None, new: Item | None, *, transactional: bool = False
) -> Units:
    """What one item's write costs the table and its indexes (``old``/``new``: the item
    before and after; None where there is none)."""
    size = max(item_size(old) if old else 0, item_size(new) if new else 0)
    base = _units(size) * (2 if transactional else 1)
    return Units(float(base), float(sum(index_units(table, i, old, new) for i in table.indexes)))


# --- on moto ----------------------------------------------------------------------------------
def _targets(operation: str, body: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(table, kind, item or key) of each item a write names; kind: item, key or check."""
    if operation == "PutItem":
        return [(body["TableName"], "item", body["Item"])]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(body["TableName"], "key", body["Key"])]
    if operation == "BatchWriteItem":
        out = []
        for name, requests in body.get("RequestItems", {}).items():
            for r in requests:
                if "PutRequest" in r:
                    out.append((name, "item", r["PutRequest"]["Item"]))
                elif "DeleteRequest" in r:
                    out.append((name, "key", r["DeleteRequest"]["Key"]))
        return out
    if operation == "TransactWriteItems":
        out = []
        for entry in body.get("TransactItems", []):
            for action, spec in entry.items():
                if action == "Put":
                    out.append((spec["TableName"], "item", spec["Item"]))
                elif action in ("Update", "Delete"):
                    out.append((spec["TableName"], "key", spec["Key"]))
                elif action == "ConditionCheck":
                    out.append((spec["TableName"], "check", spec["Key"]))
        return out
    return []


class MotoTables:
    """Table schemas and items as moto holds them (read without an API call)."""

    def __init__(self, account_id: str = "123456789012") -> None:
        self.account_id = account_id
        self._specs: dict[tuple[str, str], TableSpec] = {}

    def _table(self, region: str, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account_id][region].get_table(name)

    def spec(self, region: str, name: str) -> TableSpec:
        found = self._specs.get((region, name))
        if found is None:
            table = self._table(region, name)
            keys = tuple(k for k in (table.hash_key_attr, table.range_key_attr) if k)
            indexes = tuple(
                IndexSpec(
                    index.name,
                    tuple(k["AttributeName"] for k in index.schema),
                    str((index.projection or {}).get("ProjectionType", "ALL")),
                    tuple((index.projection or {}).get("NonKeyAttributes", [])),
                )
                for index in table.global_indexes
            )
            found = self._specs[(region, name)] = TableSpec(name, keys, indexes)
        return found

    def item(self, region: str, name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        table = self._table(region, name)
        from moto.dynamodb.models.dynamo_type import DynamoType

        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        found = table.get_item(hash_key, range_key)
        if found is None:
            return None
        attributes: dict[str, Any] = copy.deepcopy(found.to_json()["Attributes"])
        return attributes


def measure_write(
    tables: MotoTables,
    region: str,
    operation: str,
    body: Mapping[str, Any],
    call: Callable[[], Any],
    record: Callable[[Units], None],
) -> Any:
    """Run ``call`` (the write) and ``record`` what it cost, failed or not (AWS bills a
    failed conditional write): the items it names, read before and after."""
    transactional = operation == "TransactWriteItems"
    named = []
    try:
        for name, kind, data in _targets(operation, body):
            spec = tables.spec(region, name)
            key = {k: data[k] for k in spec.keys}
            named.append((spec, kind, key, tables.item(region, name, key)))
    except Exception:  # no such table, a key missing: the call answers with its own error
        return call()
    try:
        return call()
    finally:
        record(_priced(tables, region, named, transactional))


def _priced(
    tables: MotoTables,
    region: str,
    named: Sequence[tuple[TableSpec, str, dict[str, Any], dict[str, Any] | None]],
    transactional: bool,
) -> Units:
    total = Units()
    for spec, kind, key, old in named:
        new = old if kind == "check" else tables.item(region, spec.name, key)
        total += write_units(spec, old, new, transactional=transactional)
    return total


@contextmanager
def metered_write_units(
    record: Callable[[str, Units], None], account_id: str = "123456789012"
) -> Iterator[None]:
    """Every DynamoDB write any client makes in this process (on moto) is priced and
    ``record``-ed with its operation, in the thread that made it (a wrapper on botocore's
    ``_make_request``: once per API call, retries inside it)."""
    from botocore.client import BaseClient

    tables = MotoTables(account_id)
    original = BaseClient._make_request
    failures: list[BaseException] = []
    lock = threading.Lock()

    def make_request(self: Any, operation_model: Any, request_dict: Any, context: Any) -> Any:
        operation = operation_model.name
        if self.meta.service_model.service_name != "dynamodb" or operation not in WRITES:
            return original(self, operation_model, request_dict, context)
        body = request_dict.get("body") or b"{}"
        params = json.loads(body.decode() if isinstance(body, bytes) else body)

        def call() -> Any:
            return original(self, operation_model, request_dict, context)

        def priced(units: Units) -> None:
            try:
                record(operation, units)
            except Exception as exc:  # pragma: no cover - a bench bug, reported at the end
                with lock:
                    failures.append(exc)

        return measure_write(tables, self.meta.region_name, operation, params, call, priced)

    BaseClient._make_request = make_request
    try:
        yield
    finally:
        BaseClient._make_request = original
    if failures:
        raise RuntimeError(f"write units not recorded: {failures[0]!r}")
