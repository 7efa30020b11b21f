"""Treated population against the global control group: how the customer structure of
everyone marketing may reach compares with a random share it never reaches (plain Python,
no AWS; docs/REPORTS.md, "Treated vs global control").

The global control group is drawn by a stable hash of the customer id (kizuna.delivery.
control), independently of behaviour, so the two groups differ only by the marketing the
treated population received: a difference here is the effect of the programs and campaigns
as a whole. Per window of ``days`` ending at ``end`` (the report's last snapshot):

- **repeat rate**: customers with two or more orders in the window / customers with one or
  more (an order cancelled or refunded in whole is none, as loyalty counts orders);
- **second-purchase rate of new buyers**: customers whose first order ever falls in the
  window and who ordered again in it / those customers;
- **dormancy rate**: customers who had ordered before the window and did not order in it /
  customers who had ordered before the window;
- **revenue per customer**: what the orders in the window count for (``orders``: the
  total less its refunds, never below 0) / customers of the group
  (everyone known on ``end``, buyers or not), with a normal (Welch) 95% interval of the
  difference;
- the rates: treated minus control with Newcombe's 95% interval (:func:`kizuna.analytics.
  stats.lift`, the program lift's);
- **rank and RFM segment migration** (with snapshots): each group's customers' state in the
  snapshot when the window opens (the day before its first day; the first day's when that
  one is missing) and in the last one, as a from × to matrix; the share of customers present
  in both who moved up / stayed / moved down (the order given: ranks highest first, segments
  by :func:`kizuna.scoring.rfm.segment_order`), treated − control with Newcombe's interval.
  A customer absent from the first snapshot (or without a state in it) is *new* (the
  matrix's ``entered``), never a mover.

And over the whole comparison, **LTV per customer**: the last snapshot's ``lifetime_value``
(realised revenue from the customer's first order to that date, imported history included;
not a prediction) averaged over every customer of the group, non-buyers at 0, with the Welch
interval of the difference.

A window is only computed when the data covers it (its start is on or after the group's
``since`` and the first data); with less data than the shortest window, the one window the
data covers is computed instead (its ``days`` says how long). A group under
:data:`SMALL_GROUP` customers is flagged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from kizuna.analytics.stats import (
    Interval,
    Lift,
    Migration,
    Rate,
    lift,
    migration,
    rate,
    z_value,
)

WINDOWS = (30, 90, 180, 365)
SMALL_GROUP = 100
"""Fewer customers than this in a group (or at risk of a rate): intervals are wide, and the
normal interval of revenue may be off; the report labels the figure "small"."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeanGap(_Frozen):
    """Difference of two means (treated − control) with a normal 95% interval (Welch's
    standard error); None where a group has fewer than two customers."""

    treated_mean: float | None
    control_mean: float | None
    difference: float | None
    ci: Interval | None


def mean_gap(treated: list[float], control: list[float], confidence: float = 0.95) -> MeanGap:
    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    def var(xs: list[float], m: float) -> float:
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    mt, mc = mean(treated), mean(control)
    if mt is None or mc is None:
        return MeanGap(treated_mean=mt, control_mean=mc, difference=None, ci=None)
    diff = mt - mc
    if len(treated) < 2 or len(control) < 2:
        return MeanGap(treated_mean=mt, control_mean=mc, difference=diff, ci=None)
    se = math.sqrt(var(treated, mt) / len(treated) + var(control, mc) / len(control))
    half = z_value(confidence) * se
    return MeanGap(
        treated_mean=mt,
        control_mean=mc,
        difference=diff,
        ci=Interval(low=diff - half, high=diff + half),
    )


Attribute = Literal["rank", "rfm_segment"]


class CustomerState(Protocol):
    """One customer in one snapshot (:class:`kizuna.scoring.snapshot.SnapshotRow`)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def rank(self) -> str | None: ...
    @property
    def rfm_segment(self) -> str | None: ...
    @property
    def lifetime_value(self) -> float: ...


class MigrationGap(_Frozen):
    """Rank or RFM segment migration over a window, treated against the global control.

    ``treated`` and ``control`` are the from × to matrices (``entered``: new customers, absent
    or without a state on ``before``, not movers); up / stayed / down are shares of the
    customers present on both dates (``retained``), treated − control with Newcombe's
    interval (``up``: moved to a better state; ``down``: to a worse one, lower is better)."""

    attribute: Attribute
    before: date = Field(description="the snapshot at the window's start")
    after: date = Field(description="the snapshot at its end")
    treated: Migration
    control: Migration
    up: Lift
    stayed: Lift
    down: Lift


class GroupFigures(_Frozen):
    customers: int = Field(ge=0, description="customers of the group known on the end date")
    repeat: Rate
    second_purchase: Rate
    dormancy: Rate
    revenue: float = Field(
        description="what the orders in the window count for: their totals less their "
        "refunds, never below 0, a cancelled order 0"
    )
    revenue_per_customer: float | None


class ControlWindow(_Frozen):
    """One window's figures, treated (everyone else) and the global control group."""

    days: int = Field(ge=1)
    start: datetime
    end: datetime
    treated: GroupFigures
    control: GroupFigures
    repeat: Lift = Field(description="treated − control repeat rate")
    second_purchase: Lift = Field(description="treated − control second-purchase rate")
    dormancy: Lift = Field(description="treated − control dormancy rate (lower is better)")
    revenue_per_customer: MeanGap
    small: bool = Field(description="a group or a rate's denominator under SMALL_GROUP")
    rank: MigrationGap | None = Field(
        default=None, description="rank migration (None: no snapshot at the window's start)"
    )
    rfm_segment: MigrationGap | None = Field(
        default=None, description="RFM segment migration (None: as rank)"
    )


class ControlComparison(_Frozen):
    """Treated population vs global control over the windows the data allows."""

    percent: float = Field(description="the configured share of the control group")
    since: date | None = Field(description="the group's start date (its salt's)")
    end: datetime
    windows: tuple[ControlWindow, ...] = ()
    ltv: MeanGap | None = Field(
        default=None,
        description="realised LTV per customer to ``ltv_as_of`` (the last snapshot's "
        "lifetime_value; non-buyers at 0), treated − control; None without snapshots",
    )
    ltv_as_of: date | None = Field(default=None, description="the snapshot LTV is read from")


def _group(
    members: set[str],
    first_order: Mapping[str, datetime | None],
    orders: Mapping[str, list[tuple[datetime, float]]],
    start: datetime,
    end: datetime,
) -> tuple[GroupFigures, dict[str, tuple[int, int]], list[float]]:
    """The group's figures, (successes, at risk) per rate, and revenue per customer."""
    buyers = repeaters = new = new_again = earlier = lapsed = 0
    revenues: list[float] = []
    for cid in members:
        inside = [(at, total) for at, total in orders.get(cid, []) if start <= at < end]
        revenues.append(sum(t for _, t in inside))
        if inside:
            buyers += 1
            repeaters += len(inside) >= 2
        first = first_order.get(cid)
        if first is not None and start <= first < end:
            new += 1
            new_again += len(inside) >= 2
        elif first is not None and first < start:
            earlier += 1
            lapsed += not inside
    counts = {"repeat": (repeaters, buyers), "second": (new_again, new), "dorm": (lapsed, earlier)}
    total = sum(revenues)
    figures = GroupFigures(
        customers=len(members),
        repeat=rate(repeaters, buyers),
        second_purchase=rate(new_again, new),
        dormancy=rate(lapsed, earlier),
        revenue=total,
        revenue_per_customer=total / len(members) if members else None,
    )
    return figures, counts, revenues


def control_comparison(
    first_order: Mapping[str, datetime | None],
    orders: Iterable[tuple[str, datetime, float]],
    in_control: Callable[[str], bool],
    end: datetime,
    *,
    percent: float,
    since: date | None,
    data_start: datetime | None,
    windows: Iterable[int] = WINDOWS,
    snapshot: Callable[[date], Sequence[CustomerState]] | None = None,
    state_orders: Mapping[Attribute, Sequence[str]] | None = None,
) -> ControlComparison:
    """``first_order``: every customer known on ``end`` and their first order ever (None:
    none yet); ``orders``: (customer, at, revenue) of every order that counts (its total
    less its refunds, never below 0; none cancelled or refunded in whole: as loyalty counts
    orders, such an order is no purchase in the rates);
    ``data_start``: when the data begins (the first order or snapshot), so a window that
    starts before it is left out, as is one that starts before ``since``. ``snapshot``: the
    rows of a snapshot date (empty: none that day), the last one being the day before
    ``end``; with it, ``state_orders`` (attribute -> its states, best first) gives each
    window's migrations, and the last snapshot the LTV."""
    if snapshot is not None:
        snapshot = _read_once(snapshot)
    by_customer: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for cid, at, total in orders:
        by_customer[cid].append((at, total))
    control = {c for c in first_order if in_control(c)}
    treated = set(first_order) - control
    earliest = [t for t in (data_start,) if t is not None]
    if since is not None:
        earliest.append(datetime.combine(since, datetime.min.time(), tzinfo=end.tzinfo))
    allowed = [
        d for d in sorted(set(windows)) if not any(end - timedelta(days=d) < t for t in earliest)
    ]
    if not allowed and earliest:
        # shorter data than the shortest window: the whole period it covers, labelled by days
        available = (end - max(earliest)).days
        allowed = [available] if available >= 1 else []
    out: list[ControlWindow] = []
    for days in allowed:
        start = end - timedelta(days=days)
        t, t_counts, t_rev = _group(treated, first_order, by_customer, start, end)
        c, c_counts, c_rev = _group(control, first_order, by_customer, start, end)
        lifts = {k: lift(*t_counts[k], *c_counts[k]) for k in t_counts}
        at_risk = [n for _, n in c_counts.values() if n] + [len(control)]
        moves = _migrations(snapshot, state_orders or {}, in_control, start, end)
        out.append(
            ControlWindow(
                days=days,
                start=start,
                end=end,
                treated=t,
                control=c,
                repeat=lifts["repeat"],
                second_purchase=lifts["second"],
                dormancy=lifts["dorm"],
                revenue_per_customer=mean_gap(t_rev, c_rev),
                small=min(at_risk) < SMALL_GROUP,
                rank=moves.get("rank"),
                rfm_segment=moves.get("rfm_segment"),
            )
        )
    ltv, as_of = None, None
    if snapshot is not None:
        as_of = (end - timedelta(days=1)).date()
        values = {r.customer_id: float(r.lifetime_value) for r in snapshot(as_of)}
        if values:
            ltv = mean_gap(
                [values.get(c, 0.0) for c in treated], [values.get(c, 0.0) for c in control]
            )
        else:
            as_of = None
    return ControlComparison(
        percent=percent,
        since=since,
        end=end,
        windows=tuple(out),
        ltv=ltv,
        ltv_as_of=as_of,
    )


def _states(
    rows: Sequence[CustomerState],
    attribute: Attribute,
    order: Sequence[str],
    member: Callable[[str], bool],
) -> dict[str, str]:
    """customer -> state, for the group's customers with a state in ``order`` (the others
    are "(none)" in the migration)."""
    known = set(order)
    out: dict[str, str] = {}
    for r in rows:
        value = r.rank if attribute == "rank" else r.rfm_segment
        if value is not None and value in known and member(r.customer_id):
            out[r.customer_id] = value
    return out


def _read_once(
    snapshot: Callable[[date], Sequence[CustomerState]],
) -> Callable[[date], Sequence[CustomerState]]:
    """``snapshot``, each date read once (every window reads the last snapshot)."""
    read: dict[date, Sequence[CustomerState]] = {}

    def rows(day: date) -> Sequence[CustomerState]:
        if day not in read:
            read[day] = snapshot(day)
        return read[day]

    return rows


def _migrations(
    snapshot: Callable[[date], Sequence[CustomerState]] | None,
    state_orders: Mapping[Attribute, Sequence[str]],
    in_control: Callable[[str], bool],
    start: datetime,
    end: datetime,
) -> dict[str, MigrationGap]:
    """The window's migrations by attribute; none without a snapshot at either end."""
    if snapshot is None or not state_orders:
        return {}
    after_day = (end - timedelta(days=1)).date()
    after = snapshot(after_day)
    before_day = start.date() - timedelta(days=1)
    before = snapshot(before_day)
    if not before:  # the first snapshot: the state at the end of the window's first day
        before_day = start.date()
        before = snapshot(before_day)
    if not after or not before or before_day >= after_day:
        return {}
    out: dict[str, MigrationGap] = {}

    def treated_only(cid: str) -> bool:
        return not in_control(cid)

    for attribute, order in state_orders.items():
        t = migration(
            _states(before, attribute, order, treated_only),
            _states(after, attribute, order, treated_only),
            order,
        )
        c = migration(
            _states(before, attribute, order, in_control),
            _states(after, attribute, order, in_control),
            order,
        )
        out[attribute] = MigrationGap(
            attribute=attribute,
            before=before_day,
            after=after_day,
            treated=t,
            control=c,
            up=lift(t.up, t.retained, c.up, c.retained),
            stayed=lift(t.stayed, t.retained, c.stayed, c.retained),
            down=lift(t.down, t.retained, c.down, c.retained),
        )
    return out
