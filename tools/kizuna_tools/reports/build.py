"""The three reports, computed from plain data (no AWS): customer structure, programs,
segments. :mod:`kizuna_tools.reports.sources` reads the data; :mod:`kizuna_tools.reports.document`
turns the results into tables, CSV and the HTML report.

Definitions (also in docs/REPORTS.md):

- **Treated** customers of a program entered it (a journey started); **holdout** customers
  triggered it but were held out (no message). A customer's entry time is the first entry.
- **Converted**: reached the program's goal within its attribution window (the evaluate
  function records it, for treated and holdout alike). Lift is treated minus holdout
  conversion rate, with Newcombe's 95% interval (:func:`kizuna.analytics.stats.lift`).
- **Revenue per customer**: what the orders after the entry (never the trigger's own order)
  to the end of the window count for, averaged over the group: an order its total less the
  refunds the ledger holds, never below 0, and 0 once cancelled (:attr:`Order.revenue`, the
  loyalty rule).
- **Structure**: customers treated by any program against customers only ever held out,
  their RFM segment (or rank) on two snapshot dates, as a migration matrix; with the global
  control group on, also everyone else against the control group.
- **Rates over time**, from the daily snapshot cells: second-purchase rate = customers whose
  first order is under 90 days old who ordered again / those customers; repeat rate =
  customers with two or more orders / customers with one or more; dormancy rate = dormant /
  buyers.
- **Response rate** (segments): customers who opened or clicked a message / the messaged
  customers a response could be seen from (:func:`response_measurable`: not one reached
  only on SMS, say, or by LINE messages none of whose links went tracked).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from kizuna.analytics.stats import Lift, Migration, Rate, lift, migration, rate
from kizuna.campaigns.engine import measured
from kizuna.domain.customer import net_of_refunds, refunded_whole
from kizuna.domain.timestamps import parse_time
from kizuna.scoring.snapshot import CELL_FIELDS, NONE, SnapshotRow, cell_fields

GLOBAL_CONTROL = "global_control"  # kizuna.delivery.control.GLOBAL_CONTROL
# the activity rows an order's revenue and conversions are read from (:class:`Ledger`)
ORDER_KINDS = ("ORDER", "CANCEL", "REFUND")
DIMENSIONS = ("region", "prefecture", "age_band", "gender", "occupation")
# A declared attribute's dimension: ``attributes.membership_tier_pos``
# (kizuna.scoring.snapshot.breakdown_attributes: not personal, an enum or a boolean).
ATTRIBUTE_PREFIX = "attributes."


@dataclass(frozen=True)
class Entry:
    program: str
    customer_id: str
    at: datetime
    holdout: bool


@dataclass(frozen=True)
class Conversion:
    program: str
    customer_id: str
    at: datetime
    holdout: bool


@dataclass(frozen=True)
class Message:
    program: str
    customer_id: str
    at: datetime
    status: str
    channel: str | None
    reason: str | None
    engaged: bool = False  # opened or clicked (SES events and the app's push.opened stamp it)
    # whether a response could show on it (:func:`response_measurable`)
    response_measurable: bool = True


def response_measurable(item: Mapping[str, Any]) -> bool:
    """Could an open or a click of this sent message show on its ledger entry? The
    campaigns' rule (:func:`kizuna.campaigns.engine.measured`): sent on a channel that
    reports opens (email, push, cards) or clicks (email, LINE's tracked links, cards), and
    for clicks with its clicks measurable (not a message with links none of which went
    tracked, ``links_untracked``: :func:`kizuna.delivery.ledger.clicks_measurable`; an email
    so marked is still measured for its opens). Not an
    SMS, a direct mail or a webhook, which report neither. A message with no link is
    measured: nothing to click is a known non-click, on LINE as in an email."""
    return measured("open", item) or measured("click", item)


@dataclass(frozen=True)
class Order:
    customer_id: str
    at: datetime
    total: float
    # what a campaign goal's conditions test (:func:`kizuna.campaigns.engine.order_meets_goal`)
    order_id: str = ""
    currency: str | None = None
    channel: str | None = None
    product_ids: tuple[str, ...] = ()
    # a CANCEL row read for the order (campaign conversions leave it out, as the console
    # and the winner test do, and no report counts its revenue: docs/REPORTS.md)
    cancelled: bool = False
    # the amounts of the REFUND rows read for the order, one per refund id
    refunds: tuple[Decimal, ...] = ()

    @property
    def counts(self) -> bool:
        """Not cancelled, nor refunded in whole (refunds of the whole total are a
        cancellation: :func:`kizuna.domain.customer.refunded_whole`, as loyalty, the console
        and the winner test count it)."""
        return not self.cancelled and not refunded_whole(self._total, self.refunds)

    @property
    def revenue(self) -> float:
        """What the order counts for in the reports' revenue, as loyalty counts it: its
        total less its refunds, never below 0 (:func:`kizuna.domain.customer.net_of_refunds`);
        0 once cancelled."""
        return float(net_of_refunds(self._total, self.refunds)) if not self.cancelled else 0.0

    @property
    def _total(self) -> Decimal:
        # exact, as the ledger stores it (a float sum of refunds of the whole total may miss 0)
        return Decimal(str(self.total))

    def detail(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "total": self.total,
            "currency": self.currency,
            "channel": self.channel,
            "product_ids": list(self.product_ids),
        }


@dataclass
class Ledger:
    """What the activity table says happened."""

    entries: list[Entry] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    # (customer, program) -> "step:arm" of the A/B splits the customer was assigned
    arms: dict[tuple[str, str], str] = field(default_factory=dict)
    # customers a program decision held out as members of the global control group
    global_control: set[str] = field(default_factory=set)
    # (customer, order id) -> the place in ``orders`` of the order's row read so far
    _order_at: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    # (customer, order id) of the CANCEL rows read so far
    _cancelled: set[tuple[str, str]] = field(default_factory=set, repr=False)
    # (customer, order id) -> refund id -> amount, of the REFUND rows read so far
    _refunds: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict, repr=False)

    def add_item(self, item: Mapping[str, Any]) -> None:
        """One activity-table item (other kinds are ignored)."""
        kind = item.get("kind")
        cid = str(item.get("pk", item.get("customer_id", "")))
        if kind == "ENTRY" and item.get("reason") == GLOBAL_CONTROL:
            # a global control customer is in neither group of the program's lift (its
            # holdout is drawn apart); the global control comparison counts them
            self.global_control.add(cid)
        elif kind == "ENTRY" and item.get("decision") in ("entered", "holdout"):
            self.entries.append(
                Entry(
                    str(item["program"]),
                    cid,
                    parse_time(item.get("entered_at") or item["at"]),
                    item["decision"] == "holdout",
                )
            )
        elif kind == "CONV":
            self.conversions.append(
                Conversion(
                    str(item["program"]),
                    cid,
                    parse_time(item["at"]),
                    item.get("reason") == "holdout",
                )
            )
        elif kind == "MSG" and item.get("status"):
            self.messages.append(
                Message(
                    str(item["program"]),
                    cid,
                    parse_time(item["at"]),
                    str(item["status"]),
                    item.get("channel"),
                    item.get("reason"),
                    bool(item.get("open_at") or item.get("click_at")),
                    response_measurable(item),
                )
            )
        elif kind == "ORDER" and item.get("total") is not None:
            self._add_order(cid, item)
        elif kind == "CANCEL" and item.get("order_id"):
            key = (cid, str(item["order_id"]))
            self._cancelled.add(key)
            if (place := self._order_at.get(key)) is not None:
                self.orders[place] = replace(self.orders[place], cancelled=True)
        elif kind == "REFUND" and item.get("order_id") and item.get("amount") is not None:
            self._add_refund(cid, item)
        elif kind == "JOURNEY" and item.get("arms"):
            arms = sorted(dict(item["arms"]).items())
            self.arms[(cid, str(item["program"]))] = ", ".join(f"{s}:{a}" for s, a in arms)

    def _add_order(self, cid: str, item: Mapping[str, Any]) -> None:
        """One order once: an order sent again with a later time left its earlier row
        (before ingest replaced it, ``ActivityItem.replaces``: tables written then keep it)
        (rows are keyed by time); the customer's state took the later one, and so do the
        reports (the same order counted twice doubled its revenue)."""
        key = (cid, str(item.get("order_id") or item.get("sk") or id(item)))
        lines = item.get("lines") or []
        products = (str(line.get("product_id")) for line in lines if isinstance(line, Mapping))
        order = Order(
            cid,
            parse_time(item["at"]),
            float(item["total"]),
            order_id=str(item.get("order_id") or ""),
            currency=item.get("currency"),
            channel=item.get("channel"),
            product_ids=tuple(dict.fromkeys(products)),
            cancelled=key in self._cancelled,
            refunds=tuple(self._refunds.get(key, {}).values()),
        )
        place = self._order_at.get(key)
        if place is None:
            self._order_at[key] = len(self.orders)
            self.orders.append(order)
        elif order.at > self.orders[place].at:
            self.orders[place] = order

    def _add_refund(self, cid: str, item: Mapping[str, Any]) -> None:
        """One refund once, by its id within the order (a retry stamped earlier moves its
        row, ``ActivityItem.replaces``, and a scan may still meet both, of one amount: ingest
        refuses the id with another), on its order whether read before or after it."""
        key = (cid, str(item["order_id"]))
        refunds = self._refunds.setdefault(key, {})
        refunds[str(item.get("refund_id") or item.get("sk") or id(item))] = Decimal(
            str(item["amount"])
        )
        if (place := self._order_at.get(key)) is not None:
            self.orders[place] = replace(self.orders[place], refunds=tuple(refunds.values()))

    @classmethod
    def from_items(cls, items: Iterable[Mapping[str, Any]]) -> Ledger:
        ledger = cls()
        for item in items:
            ledger.add_item(item)
        return ledger


def _groups(ledger: Ledger, program: str) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """(treated, holdout): customer -> first entry time, for one program. A customer who was
    treated once counts as treated."""
    treated: dict[str, datetime] = {}
    holdout: dict[str, datetime] = {}
    for e in sorted(ledger.entries, key=lambda e: e.at):
        if e.program != program:
            continue
        group = holdout if e.holdout else treated
        group.setdefault(e.customer_id, e.at)
    for cid in treated:
        holdout.pop(cid, None)
    return treated, holdout


class ProgramRow(BaseModel):
    """One line of the program report: a program, or one of its arms or channels."""

    model_config = ConfigDict(frozen=True)

    program: str
    arm: str | None = None
    channel: str | None = None
    entries: int = 0  # entries of treated customers, re-entries included
    treated: int
    holdout: int
    sent: int
    engaged: int = 0  # treated customers who opened or clicked a message
    sent_by_channel: dict[str, int] = {}
    suppressed: dict[str, int] = {}
    converted: int
    holdout_converted: int
    lift: Lift
    revenue_per_customer: float | None
    holdout_revenue_per_customer: float | None
    revenue_per_recipient: float | None

    @property
    def label(self) -> str:
        return self.arm or self.channel or "all"


def _revenue(
    orders_by: Mapping[str, Sequence[Order]], group: Mapping[str, datetime], window: timedelta
) -> dict[str, float]:
    return {
        cid: sum(o.revenue for o in orders_by.get(cid, ()) if start < o.at <= start + window)
        for cid, start in group.items()
    }


def _mean(values: Iterable[float]) -> float | None:
    seq = list(values)
    return round(sum(seq) / len(seq), 2) if seq else None


@dataclass(frozen=True)
class _Program:
    program: str
    entries: Sequence[Entry]
    holdout: Mapping[str, datetime]
    converted: set[str]
    messages: Sequence[Message]
    revenue: Mapping[str, float]
    holdout_revenue: Mapping[str, float]

    def row(
        self, members: Mapping[str, datetime], arm: str | None = None, channel: str | None = None
    ) -> ProgramRow:
        ids = set(members)
        mine = [m for m in self.messages if m.customer_id in ids]
        sent = [m for m in mine if m.status == "sent"]
        recipients = {m.customer_id for m in sent}
        engaged = {m.customer_id for m in sent if m.engaged}
        conv = len(self.converted & ids)
        held = len(self.converted & set(self.holdout))
        return ProgramRow(
            program=self.program,
            arm=arm,
            channel=channel,
            entries=sum(1 for e in self.entries if not e.holdout and e.customer_id in ids),
            treated=len(ids),
            holdout=len(self.holdout),
            sent=len(sent),
            engaged=len(engaged),
            sent_by_channel=dict(Counter(m.channel or "?" for m in sent)),
            suppressed=dict(Counter(m.reason or "?" for m in mine if m.status == "suppressed")),
            converted=conv,
            holdout_converted=held,
            lift=lift(conv, len(ids), held, len(self.holdout)),
            revenue_per_customer=_mean(self.revenue[c] for c in ids),
            holdout_revenue_per_customer=_mean(self.holdout_revenue.values()),
            revenue_per_recipient=(
                round(sum(self.revenue[c] for c in recipients) / len(recipients), 2)
                if recipients
                else None
            ),
        )


def program_report(
    ledger: Ledger, windows: Mapping[str, int], default_window_days: int = 14
) -> list[ProgramRow]:
    """Per program: all treated customers, then per A/B arm, then per channel of the first
    message sent (each against the program's whole holdout; a channel row compares
    customers the policy chose that channel for, so read it as descriptive, not causal)."""
    orders_by: dict[str, list[Order]] = defaultdict(list)
    for o in ledger.orders:
        orders_by[o.customer_id].append(o)
    rows: list[ProgramRow] = []
    for program in sorted({e.program for e in ledger.entries}):
        window = timedelta(days=windows.get(program, default_window_days))
        treated, holdout = _groups(ledger, program)
        converted = {c.customer_id for c in ledger.conversions if c.program == program}
        messages = [m for m in ledger.messages if m.program == program]
        sent = [m for m in messages if m.status == "sent"]
        first_channel: dict[str, str] = {}
        for m in sorted(sent, key=lambda m: m.at):
            if m.channel:
                first_channel.setdefault(m.customer_id, m.channel)
        revenue = _revenue(orders_by, treated, window)
        ctx = _Program(
            program,
            [e for e in ledger.entries if e.program == program],
            holdout,
            converted,
            messages,
            revenue,
            _revenue(orders_by, holdout, window),
        )
        rows.append(ctx.row(treated))
        by_arm: dict[str, dict[str, datetime]] = defaultdict(dict)
        for cid, at in treated.items():
            if (cid, program) in ledger.arms:
                by_arm[ledger.arms[(cid, program)]][cid] = at
        for arm in sorted(by_arm):
            rows.append(ctx.row(by_arm[arm], arm=arm))
        by_channel: dict[str, dict[str, datetime]] = defaultdict(dict)
        for cid, at in treated.items():
            if cid in first_channel:
                by_channel[first_channel[cid]][cid] = at
        for channel in sorted(by_channel):
            rows.append(ctx.row(by_channel[channel], channel=channel))
    return rows


# -- structure ---------------------------------------------------------------------------
def treated_and_holdout(ledger: Ledger, program: str | None = None) -> tuple[set[str], set[str]]:
    """Customers treated by ``program`` and its holdout; without a program, customers
    treated by any program and customers only ever held out."""
    entries = [e for e in ledger.entries if program is None or e.program == program]
    treated = {e.customer_id for e in entries if not e.holdout}
    holdout = {e.customer_id for e in entries if e.holdout} - treated
    return treated, holdout


@dataclass(frozen=True)
class StructureChange:
    attribute: str  # rfm_segment | rank
    before: date
    after: date
    treated: Migration
    holdout: Migration  # the holdout, or the global control group (``against``)
    program: str | None = None  # None: every program
    against: str = "holdout"  # or global_control: everyone else against the control group


def structure_change(
    before: Sequence[SnapshotRow],
    after: Sequence[SnapshotRow],
    treated: set[str],
    holdout: set[str],
    attribute: str,
    order: Sequence[str],
    program: str | None = None,
    against: str = "holdout",
) -> StructureChange:
    """Migration of ``attribute`` between two snapshot dates, treated vs holdout. States
    not in ``order`` (an unscored customer) appear as ``(none)``."""

    def states(rows: Sequence[SnapshotRow], members: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for r in rows:
            value = getattr(r, attribute)
            if r.customer_id in members and value in order:
                out[r.customer_id] = str(value)
        return out

    if not before or not after:
        raise ValueError("structure change needs snapshot rows on both dates")
    return StructureChange(
        attribute=attribute,
        before=before[0].date,
        after=after[0].date,
        treated=migration(states(before, treated), states(after, treated), order),
        holdout=migration(states(before, holdout), states(after, holdout), order),
        program=program,
        against=against,
    )


@dataclass(frozen=True)
class Trend:
    dates: list[date]
    # name -> one value per date
    segments: dict[str, list[int]]
    ranks: dict[str, list[int]]
    second_purchase: list[Rate]
    repeat: list[Rate]
    dormancy: list[Rate]
    customers: list[int]
    buyers: list[int] = field(default_factory=list)
    revenue_12m: list[float] = field(default_factory=list)


def trend(cells_by_date: Mapping[date, Mapping[str, Mapping[str, Any]]]) -> Trend:
    """Sizes and rates per snapshot date, from the snapshots table's cells."""
    dates = sorted(cells_by_date)
    segments: dict[str, list[int]] = {}
    ranks: dict[str, list[int]] = {}
    second: list[Rate] = []
    repeat: list[Rate] = []
    dormancy: list[Rate] = []
    customers: list[int] = []
    buyers: list[int] = []
    revenue: list[float] = []
    for i, day in enumerate(dates):
        totals: Counter[str] = Counter()
        spend = 0.0
        for key, values in cells_by_date[day].items():
            where = cell_fields(key)
            n = int(values.get("customers", 0))
            for name, bucket in (("rfm_segment", segments), ("rank", ranks)):
                series = bucket.setdefault(where[name] or NONE, [0] * len(dates))
                series[i] += n
            for measure in (
                "customers",
                "buyers",
                "repeaters",
                "dormant",
                "new_buyers",
                "new_repeaters",
            ):
                totals[measure] += int(values.get(measure, 0))
            spend += float(values.get("spend_12m", 0))
        for bucket in (segments, ranks):
            for series in bucket.values():
                series.extend([0] * (len(dates) - len(series)))
        second.append(rate(totals["new_repeaters"], totals["new_buyers"]))
        repeat.append(rate(totals["repeaters"], totals["buyers"]))
        dormancy.append(rate(totals["dormant"], totals["buyers"]))
        customers.append(totals["customers"])
        buyers.append(totals["buyers"])
        revenue.append(round(spend, 2))
    return Trend(dates, segments, ranks, second, repeat, dormancy, customers, buyers, revenue)


# -- segments --------------------------------------------------------------------------
class SegmentRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    dimension: str
    value: str
    customers: int
    buyers: int
    revenue_12m: float
    revenue_per_customer: float
    messaged: int
    # messaged customers sent a message a response to which could show: the response
    # rate's denominator (not those reached only on SMS, say, or by a LINE message none of
    # whose links went tracked: their silence is not a non-response)
    response_measured: int
    response_rate: float | None  # of response_measured, those who opened or clicked a message
    conversion_rate: float | None  # messaged customers who reached a program goal
    second_purchase_rate: float | None  # >= 2 orders among buyers


def attribute_dimensions(rows: Sequence[SnapshotRow]) -> list[str]:
    """``attributes.<name>`` for every declared attribute the rows carry, by name."""
    return [ATTRIBUTE_PREFIX + n for n in sorted({n for r in rows for n in r.attributes})]


def _value(row: SnapshotRow, dimension: str) -> str:
    if dimension.startswith(ATTRIBUTE_PREFIX):
        return row.attributes.get(dimension.removeprefix(ATTRIBUTE_PREFIX)) or NONE
    return str(getattr(row, dimension) or NONE)


def segment_analysis(
    rows: Sequence[SnapshotRow], ledger: Ledger, dimensions: Sequence[str] | None = None
) -> list[SegmentRow]:
    """Customers, revenue, response and second purchases by attribute band, on one date: by
    :data:`DIMENSIONS` and the declared attributes the snapshot carries (by default)."""
    if dimensions is None:
        dimensions = [*DIMENSIONS, *attribute_dimensions(rows)]
    sent = [m for m in ledger.messages if m.status == "sent"]
    messaged = {m.customer_id for m in sent}
    # the response rate is over the customers a response could be seen from
    measurable = {m.customer_id for m in sent if m.response_measurable or m.engaged}
    engaged = {m.customer_id for m in sent if m.engaged}
    converted = {c.customer_id for c in ledger.conversions if not c.holdout} & messaged
    out: list[SegmentRow] = []
    for dimension in dimensions:
        groups: dict[str, list[SnapshotRow]] = defaultdict(list)
        for r in rows:
            groups[_value(r, dimension)].append(r)
        for value in sorted(groups, key=lambda v: (-len(groups[v]), v)):
            members = groups[value]
            ids = {r.customer_id for r in members}
            buyers = [r for r in members if r.order_count >= 1]
            revenue = sum(r.spend_12m for r in members)
            reached = ids & messaged
            responsive = ids & measurable
            out.append(
                SegmentRow(
                    dimension=dimension,
                    value=value,
                    customers=len(members),
                    buyers=len(buyers),
                    revenue_12m=round(revenue, 2),
                    revenue_per_customer=round(revenue / len(members), 2),
                    messaged=len(reached),
                    response_measured=len(responsive),
                    response_rate=(
                        round(len(engaged & responsive) / len(responsive), 4)
                        if responsive
                        else None
                    ),
                    conversion_rate=(
                        round(len(converted & reached) / len(reached), 4) if reached else None
                    ),
                    second_purchase_rate=(
                        round(sum(r.order_count >= 2 for r in buyers) / len(buyers), 4)
                        if buyers
                        else None
                    ),
                )
            )
    return out


__all__ = [
    "CELL_FIELDS",
    "ORDER_KINDS",
    "Conversion",
    "Entry",
    "Ledger",
    "Message",
    "Order",
    "ProgramRow",
    "SegmentRow",
    "StructureChange",
    "Trend",
    "program_report",
    "response_measurable",
    "segment_analysis",
    "structure_change",
    "treated_and_holdout",
    "trend",
]
