"""The product catalogue: what a recommendation needs to show a product (name, URL).

Orders carry product ids only; a shop imports its catalogue (``kizuna import products``,
CSV/TSV/JSONL with ``product_id``, ``name``, ``url`` and optionally ``category``) into the
products table, where the daily job adds what it learned (related products, best sellers).
A product without a name is never recommended: a message does not show a bare id. Values
are taken as written: spaces around one, a JSON ``null`` or a JSON number reject the row,
as a control or invisible character in a name or category does (the events' ``Text``);
a product id on two rows rejects every row that gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from kizuna.events.inbound import Identifier, Text
from kizuna_tools.importer import (
    JSON_SUFFIXES,
    ImportReport,
    RowError,
    RowRejected,
    _no_empty_text,
    _no_nulls,
    read_rows,
    repeated_ids,
)

Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]


def _not_padded(value: str) -> str:
    """A value is taken as written: spaces around it (a CSV cell " Sencha", an ideographic
    space) reject it, never trimmed into another value."""
    if value != value.strip():
        raise ValueError("spaces around the value")
    return value


class ProductRecord(BaseModel):
    # strict: a JSON number or true is not a name (nor an id), never read as its text
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    product_id: Identifier
    # name and category are text as an order line's category is (no control, line or
    # invisible format character: a name is shown in messages)
    name: Annotated[Text, Field(min_length=1, max_length=200), AfterValidator(_not_padded)]
    url: Url
    category: Annotated[Text, Field(max_length=64), AfterValidator(_not_padded)] | None = None


class CatalogWriter(Protocol):
    def upsert_catalog(self, records: Iterable[ProductRecord]) -> int: ...


def parse_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], report: ImportReport, *, empty_is_absent: bool
) -> Iterator[ProductRecord]:
    """Valid rows as records, the others in ``report``. ``empty_is_absent``: CSV, whose empty
    cell is a column left out; in JSON Lines ``""`` is no product's value (a name has one, a
    category is left out) and rejects the row. A product id on two rows rejects every row
    that gives it, each naming the others."""
    listed = list(rows)
    repeated = repeated_ids(listed, "product_id", "product")
    for number, row in listed:
        report.rows += 1
        if number in repeated:
            report.errors.append(RowError(number, repeated[number]))
            continue
        if "__error__" in row:
            report.errors.append(RowError(number, str(row["__error__"])))
            continue
        unknown = sorted(set(row) - set(ProductRecord.model_fields))
        if unknown:
            known = ", ".join(ProductRecord.model_fields)
            report.errors.append(
                RowError(number, f"unknown columns: {', '.join(unknown)} (known: {known})")
            )
            continue
        try:
            _no_nulls(row)  # JSON Lines: a category left out is none; a null is no value
            if not empty_is_absent:
                _no_empty_text(row, frozenset())
        except RowRejected as exc:
            report.errors.append(RowError(number, str(exc)))
            continue
        try:
            record = ProductRecord.model_validate({k: v for k, v in row.items() if v != ""})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors()
            )
            report.errors.append(RowError(number, problems))
            continue
        report.imported += 1
        yield record


def import_products(
    path: Path,
    store: CatalogWriter | None,
    progress: Callable[[int], None] | None = None,
    *,
    partial: bool = False,
) -> ImportReport:
    """Validate every row; upsert them all when none is rejected, the valid ones when
    ``partial`` (``store=None`` validates only). A product id on two rows rejects all of
    them (which is the product is not guessed); a column that is not a product field rejects
    the row."""
    report = ImportReport(kind="products")
    rows = parse_rows(
        read_rows(path), report, empty_is_absent=path.suffix.lower() not in JSON_SUFFIXES
    )
    records = list(rows)
    if store is not None and records and (partial or not report.errors):
        report.customers_written = store.upsert_catalog(records)
    if progress:
        progress(report.rows)
    return report
