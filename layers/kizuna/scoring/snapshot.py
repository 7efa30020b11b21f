"""The daily customer-structure snapshot, taken by the scoring job in the same pass.

Every scoring shard already reads every customer of its segment, so the snapshot costs no
extra reads: for each customer one :class:`SnapshotRow` (RFM segment, rank, region,
prefecture, age band, gender, occupation, the shop's declared attributes that are not
personal data and take few values — an enum or a boolean —, lifecycle, orders, spend, the
first and last order times — no name, email, phone, address or birth date, only the age
band; still personal data, keyed by the customer id, kept 730 days and not erased:
docs/ARCHITECTURE.md, "What is kept after an erasure"), written as JSON Lines to S3
(``snapshots/date=YYYY-MM-DD/part-NNNN.jsonl``, an Athena table over it is defined in
CDK), and the shard's counts per :class:`Cell` (RFM segment x rank x region x age band x
gender x occupation), which the run's last step adds up into the snapshots table: one item
per date and non-empty cell, what reports read.

A cell's key is a JSON array of its six values, ``null`` for unset
(``["Loyal","Silver","Kanto","30s",null,null]``): region and occupation are free text, so a
``|`` in them (or a region spelled ``(none)``) names no other cell. Keys written before
(the values joined by ``|``, unset as ``(none)``) are still read: :func:`cell_fields`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kizuna.domain.customer import Customer
from kizuna.programs.view import age_band, age_on, lifecycle
from kizuna.runtime.config import CustomConfig, KizunaConfig, ValueType

NONE = "(none)"
# The cohort of the second-purchase rate: customers whose first order is this recent.
NEW_BUYER_DAYS = 90
CELL_FIELDS = ("rfm_segment", "rank", "region", "age_band", "gender", "occupation")
# How cell keys were written before the JSON array: joined by "|", unset as NONE.
LEGACY_CELL_SEPARATOR = "|"
# What age_band and gender can be (kizuna.programs.view.age_band, the inbound Gender): never
# a "|", so they place the free-text region and occupation of a legacy key that has one.
_AGE_BAND = re.compile(r"under20|70plus|[2-6]0s")
_GENDERS = frozenset({"female", "male", "other", "unknown"})


class SnapshotRow(BaseModel):
    """One customer on one date, as the snapshot export and the reports see them."""

    model_config = ConfigDict(frozen=True)

    date: date
    customer_id: str
    rfm_segment: str | None = None
    rank: str | None = None
    region: str | None = None
    prefecture: str | None = None
    age_band: str | None = None
    gender: str | None = None
    occupation: str | None = None
    # declared attributes a report breaks down by (:func:`breakdown_attributes`): name -> the
    # value as text ("vip", "true"); unset ones are absent
    attributes: dict[str, str] = Field(default_factory=dict)
    lifecycle: str
    order_count: int = 0
    spend_12m: float = 0.0
    lifetime_value: float = 0.0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None

    def cell(self) -> str:
        """The snapshot cell's key: a JSON array of the cell's values (module docstring)."""
        values = [getattr(self, f) or None for f in CELL_FIELDS]
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def breakdown_attributes(custom: CustomConfig) -> list[str]:
    """The declared attributes reports break customers down by: not personal data, and an
    enum string or a boolean (a free text or a number has too many values to compare)."""
    return [
        a.name
        for a in custom.attributes
        if not a.personal
        and (a.type == ValueType.BOOLEAN or (a.type == ValueType.STRING and a.enum))
    ]


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def row_for(customer: Customer, as_of: datetime, cfg: KizunaConfig) -> SnapshotRow:
    today = as_of.date()
    attributes = {
        name: _text(customer.attributes[name])
        for name in breakdown_attributes(cfg.custom)
        if customer.attributes.get(name) is not None
    }
    age = age_on(customer.birth_date, today) if customer.birth_date else None
    return SnapshotRow(
        date=today,
        customer_id=customer.customer_id,
        rfm_segment=customer.rfm_segment,
        rank=customer.rank,
        region=customer.region,
        prefecture=customer.prefecture,
        age_band=age_band(age),
        gender=customer.gender,
        occupation=customer.occupation,
        attributes=attributes,
        lifecycle=lifecycle(customer, as_of, cfg),
        order_count=customer.order_count,
        spend_12m=float(customer.spend_12m),
        lifetime_value=float(customer.lifetime_value),
        first_order_at=customer.first_order_at,
        last_order_at=customer.last_order_at,
    )


class CellTotals(BaseModel):
    """What the snapshots table keeps per date and cell."""

    model_config = ConfigDict(frozen=True)

    customers: int = 0
    buyers: int = 0  # at least one order, ever
    repeaters: int = 0  # at least two orders
    dormant: int = 0
    new_buyers: int = 0  # first order in the last NEW_BUYER_DAYS
    new_repeaters: int = 0  # ... and a second order since
    spend_12m: Decimal = Decimal(0)
    lifetime_value: Decimal = Decimal(0)

    def add(self, other: CellTotals) -> CellTotals:
        return CellTotals(
            customers=self.customers + other.customers,
            buyers=self.buyers + other.buyers,
            repeaters=self.repeaters + other.repeaters,
            dormant=self.dormant + other.dormant,
            new_buyers=self.new_buyers + other.new_buyers,
            new_repeaters=self.new_repeaters + other.new_repeaters,
            spend_12m=self.spend_12m + other.spend_12m,
            lifetime_value=self.lifetime_value + other.lifetime_value,
        )


def totals_of(row: SnapshotRow) -> CellTotals:
    new = (
        row.first_order_at is not None
        and (row.date - row.first_order_at.date()).days < NEW_BUYER_DAYS
    )
    return CellTotals(
        customers=1,
        buyers=int(row.order_count >= 1),
        repeaters=int(row.order_count >= 2),
        dormant=int(row.lifecycle == "dormant"),
        new_buyers=int(new),
        new_repeaters=int(new and row.order_count >= 2),
        spend_12m=Decimal(str(row.spend_12m)),
        lifetime_value=Decimal(str(row.lifetime_value)),
    )


def cells(rows: Iterable[SnapshotRow]) -> dict[str, CellTotals]:
    out: dict[str, CellTotals] = {}
    for row in rows:
        key = row.cell()
        out[key] = out.get(key, CellTotals()).add(totals_of(row))
    return out


def merge_cells(parts: Iterable[dict[str, CellTotals]]) -> dict[str, CellTotals]:
    out: dict[str, CellTotals] = {}
    for part in parts:
        for key, totals in part.items():
            out[key] = out.get(key, CellTotals()).add(totals)
    return out


def cell_fields(key: str) -> dict[str, str | None]:
    """A cell key's values by field (``None``: unset), whichever way it was written; never
    raises on a stored key (a report over a day must not fail on one cell)."""
    if key.startswith("["):
        try:
            values = json.loads(key)
        except ValueError:
            values = None
        if (
            isinstance(values, list)
            and len(values) == len(CELL_FIELDS)
            and all(v is None or isinstance(v, str) for v in values)
        ):
            return dict(zip(CELL_FIELDS, values, strict=True))
    return _legacy_cell_fields(key)


def _legacy_cell_fields(key: str) -> dict[str, str | None]:
    """A key joined by ``|`` (before the JSON array). A region or occupation holding a ``|``
    made it longer than six parts: the age band and gender, which never hold one, place them
    (the first place that fits; a region ending in ``|<age band>|<gender>`` is ambiguous).
    A value spelled ``(none)`` was merged with unset when written: both read as unset."""
    parts = [None if p == NONE else p for p in key.split(LEGACY_CELL_SEPARATOR)]
    if len(parts) == len(CELL_FIELDS):
        return dict(zip(CELL_FIELDS, parts, strict=True))
    out: dict[str, str | None] = dict.fromkeys(CELL_FIELDS)
    out["rfm_segment"] = parts[0]
    out["rank"] = parts[1] if len(parts) > 1 else None
    for k in range(3, len(parts) - 2):
        age, gender = parts[k], parts[k + 1]
        if (age is None or _AGE_BAND.fullmatch(age)) and (gender is None or gender in _GENDERS):
            region, occupation = _joined(parts[2:k]), _joined(parts[k + 2 :])
            out.update(region=region, age_band=age, gender=gender, occupation=occupation)
            break
    return out


def _joined(parts: list[str | None]) -> str | None:
    if len(parts) == 1:
        return parts[0]
    return LEGACY_CELL_SEPARATOR.join(p or NONE for p in parts)
