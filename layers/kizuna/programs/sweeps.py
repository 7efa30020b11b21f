"""Scheduled triggers, found without scanning the whole base.

Sparse indexes on the customers table (partition ``gsi_shard``, 4 shards) hold only
the customers they concern: ``by_last_order`` (``last_order_at``), ``by_points_expiry``
(``points_next_expiry_at``) and ``by_open_cart`` (``cart_open_at``). A sweep queries the
index values that crossed its threshold since the last sweep that succeeded, re-checks fresh
state, and emits derived events with deterministic ids (so an overlapping sweep starts
nothing twice):

- ``customer.dormancy_risk``: no order for ``dormancy_risk_days`` (before dormancy);
- ``customer.points_expiring``: a points lot expires within ``points_expiry_warning_days``,
  one event per lot (lots of one expiry are one), the id per customer and expiry. Each lot
  expires ``points_expiry_days`` after it was earned, and lots expire by time, not by a
  write: ``by_points_expiry`` holds only the customer's *earliest* live expiry as of their
  last write, so a later lot of several close ones would be behind the watermark when a
  write moved the index to it. So each fact that earns a lot (an ORDER row, a POINTS
  adjustment that adds points) is also in the activity table's ``gsi1`` under
  ``LOTS#<shard>`` (16 shards), by the time it was earned
  (:func:`kizuna.domain.activity.lot_index_keys`): a run takes the customers with a lot
  earned ``points_expiry_days`` before its window (the configuration of the run, as the
  replay's) and those of ``by_points_expiry`` in the window (customers last written before
  lots were indexed), re-reads them and replays their lots (:func:`points_events`): a lot
  spent, cancelled, expired or erased since gives nothing;
- ``cart.abandoned``: a cart with items and no order for ``cart_abandoned_hours``;
- ``customer.birthday``: the birthday's local date began (midnight in the customer's time
  zone) in the window, or, for a customer whose zone changed since that midnight
  (``Customer.time_zone_changed_at``, a receive time) after the previous run read it, is
  under way at the window's start: a move east after the earlier runs judged the date by the
  old zone (the due rule of :mod:`kizuna.domain.yearly`). Its index (``by_birthday``) is
  keyed by ``MM-DD``, not by an instant: a run queries the keys of the local dates that may
  begin in its window, or be under way at its start, anywhere on Earth
  (:func:`kizuna.domain.yearly.keys_for_window`) and keeps the customers whose own date is
  due; the id is per customer and local year, so a date judged due twice (a move west, or
  east) is the same event;
- ``customer.anniversary``: the anniversary of ``member_since`` began (local midnight, the
  same due rule as birthdays; years >= 1). Not a fifth index on the customers table: the
  ``MEMBER`` activity row (:func:`kizuna.domain.activity.member_row`) is in the activity
  table's ``gsi1`` under ``ANNIV#<MM-DD>#<shard>``; a run queries the keys of
  :func:`keys_for_window`, re-reads the customers and keeps those whose current start is due
  in the window; the id is per customer and local year;
- ``coupon.expiring``: an issued, unused coupon (a ``COUPON#<code>`` activity row) expires in
  N days, for each N of ``lifecycle.coupon_reminder_days``: the reminder is due at the
  expiry minus N days, and a run emits the reminders that fell due in its window. The rows
  are found by expiry in the activity table's ``gsi1`` (``COUPONS#<shard>``, only while
  issued); the id is per customer, coupon (a digest of the code, never the code) and N.

Catching up. Each kind keeps a durable :class:`Watermark` (the index value it has swept up
to, and when that run read the index), saved only after the run's events are on the bus. A
run sweeps [watermark, edge): after a failed run (or an hour the schedule could not run) the
next one sweeps everything since the last success, so no window is lost. With no watermark
yet, a run sweeps the request's ``lookback``.

Late events. An event is stamped with when it happened, and the index with that time: a cart
event that arrives hours late lands below the watermark, where no later window would look.
So a cart sweep also re-reads ``lateness`` below its watermark and emits a cart there when
ingest saw it open only after the previous run read the index
(``Customer.cart_open_seen_at``, a receive time): that run could not have seen it. A cart
older than ``lateness`` when it arrives is not swept (a reminder days late is not useful).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from kizuna.delivery.coupons import code_ref
from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import live_lots
from kizuna.domain.shards import INDEX_SHARDS
from kizuna.domain.timestamps import iso, parse_time
from kizuna.domain.yearly import keys_for_window, occurrences
from kizuna.events import (
    Anniversary,
    Birthday,
    CartAbandoned,
    Cause,
    CouponExpiring,
    DerivedEvent,
    DormancyRisk,
    PointsExpiring,
    derived_event,
)
from kizuna.ports import Watermark
from kizuna.programs.steps import zone
from kizuna.runtime.config import KizunaConfig


class SweepKind(StrEnum):
    DORMANCY = "dormancy"
    POINTS = "points_expiry"
    CARTS = "carts"
    BIRTHDAYS = "birthdays"
    ANNIVERSARIES = "anniversaries"
    COUPONS = "coupons"


INDEXES = {
    SweepKind.DORMANCY: ("by_last_order", "last_order_at"),
    SweepKind.POINTS: ("by_points_expiry", "points_next_expiry_at"),
    SweepKind.CARTS: ("by_open_cart", "cart_open_at"),
    SweepKind.BIRTHDAYS: ("by_birthday", "birthday_mmdd"),
}


# phone number (hashed) -> customer, for the SMS opt-out sweep
PHONE_INDEX = "by_phone"
PHONE_HASH_ATTRIBUTE = "phone_hash"


# How late a cart event may arrive (after its cart turned abandoned) and still be swept.
DEFAULT_LATENESS = {SweepKind.CARTS: timedelta(hours=24)}
# A run reads the index a little after it starts, and the index trails the table by up to
# seconds: a cart seen open this close before the previous run is checked again (a repeat
# is harmless, the event id is the same).
INDEX_LAG = timedelta(minutes=5)


class SweepStore(Protocol):
    def query_window(
        self, index: str, attribute: str, shard: str, start: str, end: str
    ) -> list[str]:
        """Customer ids whose ``attribute`` is in [start, end) in one shard."""
        ...

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def coupons_expiring(self, start: str, end: str) -> list[dict[str, Any]]:
        """Issued coupon rows whose ``valid_until`` is in [start, end) (ISO times)."""
        ...

    def lots_earned(self, start: str, end: str) -> list[str]:
        """Customer ids with a points lot earned in [start, end) (ISO times; the ORDER and
        POINTS rows indexed by :func:`kizuna.domain.activity.lot_index_keys`), each once."""
        ...

    def members_since_on(self, month_day: str) -> list[str]:
        """Customer ids whose MEMBER row is indexed under ``month_day`` (``MM-DD``), every
        shard."""
        ...


@dataclass(frozen=True)
class Window:
    """Index values in [start, end) are swept; those below ``late_until`` only if they were
    seen after ``seen_by`` (a late arrival the previous run could not have read). For
    birthdays and anniversaries, ``seen_by`` is when the previous run read (less
    INDEX_LAG): a zone changed after it may not have been judged yet
    (:func:`kizuna.domain.yearly.occurrences`)."""

    start: datetime
    end: datetime
    late_until: datetime | None = None
    seen_by: datetime | None = None


def edge(kind: SweepKind, now: datetime, cfg: KizunaConfig) -> datetime:
    """The index value that crosses the threshold at ``now``."""
    lc = cfg.lifecycle
    if kind == SweepKind.DORMANCY:
        return now - timedelta(days=lc.dormancy_risk_days)
    if kind == SweepKind.POINTS:
        return now + timedelta(days=lc.points_expiry_warning_days)
    if kind in (SweepKind.BIRTHDAYS, SweepKind.ANNIVERSARIES, SweepKind.COUPONS):
        return now  # the local midnights, the reminders' due times, that have passed
    return now - timedelta(hours=lc.cart_abandoned_hours)


def window(
    kind: SweepKind,
    now: datetime,
    lookback: timedelta,
    cfg: KizunaConfig,
    previous: Watermark | None = None,
    lateness: timedelta | None = None,
) -> Window:
    """[watermark, edge) after a previous run, else [edge - lookback, edge); for carts, also
    ``lateness`` below the watermark, for late arrivals; for yearly dates, when the previous
    run read."""
    end = edge(kind, now, cfg)
    if previous is None:
        return Window(end - lookback, end)
    since = min(previous.edge, end)
    if kind in (SweepKind.BIRTHDAYS, SweepKind.ANNIVERSARIES):
        return Window(since, end, seen_by=previous.ran_at - INDEX_LAG)
    late = DEFAULT_LATENESS.get(kind, timedelta(0)) if lateness is None else lateness
    if kind != SweepKind.CARTS or late <= timedelta(0):
        return Window(since, end)
    return Window(since - late, end, late_until=since, seen_by=previous.ran_at - INDEX_LAG)


def _in_window(kind: SweepKind, c: Customer, w: Window) -> bool:
    """A candidate from the late band is kept only if it arrived after the previous run."""
    if w.late_until is None or w.seen_by is None or kind != SweepKind.CARTS:
        return True
    if c.cart_open_at is None or c.cart_open_at >= w.late_until:
        return True
    return c.cart_open_seen_at is not None and c.cart_open_seen_at > w.seen_by


def event_for(
    kind: SweepKind, c: Customer, now: datetime, cfg: KizunaConfig
) -> DerivedEvent | None:
    """The derived event for a candidate, if fresh state still qualifies."""
    lc = cfg.lifecycle
    cause = Cause(c.customer_id, now, f"sweep:{kind}")
    if kind == SweepKind.DORMANCY:
        if c.last_order_at is None:
            return None
        idle = (now - c.last_order_at).days
        if not lc.dormancy_risk_days <= idle < lc.dormant_after_days:
            return None
        return derived_event(
            DormancyRisk,
            f"dormancy_risk:{iso(c.last_order_at)}",
            cause,
            last_order_at=c.last_order_at,
            days_since_last_order=idle,
            dormant_after_days=lc.dormant_after_days,
            order_count=c.order_count,
        )
    cart = c.cart
    if c.cart_open_at is None or cart is None:
        return None
    if now - c.cart_open_at < timedelta(hours=lc.cart_abandoned_hours):
        return None
    return derived_event(
        CartAbandoned,
        f"cart_abandoned:{cart.stamp}",
        cause,
        cart_id=cart.cart_id,
        item_count=cart.item_count,
        value=cart.value,
        currency=cart.currency,
        product_ids=cart.product_ids,
        cart_updated_at=cart.at,
    )


def points_events(c: Customer, w: Window, now: datetime, cfg: KizunaConfig) -> list[DerivedEvent]:
    """One warning per lot of ``c`` still holding points that expires in the window and
    after ``now`` (lots of one expiry are one), from the replay of the customer's facts: a
    lot spent, cancelled or expired since the index was written gives none. The id is per
    customer and expiry, so a lot is warned of once whichever index found it.
    ``points_balance``: the points held now (an earlier lot may have expired since the
    customer was last written)."""
    after = now if c.as_of is None else max(now, c.as_of)
    live = live_lots(c, cfg.loyalty, after)
    balance = sum(live.values())
    cause = Cause(c.customer_id, now, f"sweep:{SweepKind.POINTS}")
    return [
        derived_event(
            PointsExpiring,
            f"points_expiring:{iso(at)}",
            cause,
            points=points,
            expires_at=at,
            points_balance=balance,
        )
        for at, points in live.items()
        if w.start <= at < w.end
    ]


def points_candidates(store: SweepStore, w: Window, cfg: KizunaConfig) -> list[str]:
    """Customers with a lot that may expire in the window: a lot earned
    ``points_expiry_days`` before it (the lot index), or the earliest expiry written on the
    customer (``by_points_expiry``: customers last written before lots were indexed)."""
    ids: list[str] = []
    index, attribute = INDEXES[SweepKind.POINTS]
    for shard in range(INDEX_SHARDS):
        ids += store.query_window(index, attribute, str(shard), iso(w.start), iso(w.end))
    life = timedelta(days=cfg.loyalty.points_expiry_days)
    ids += store.lots_earned(iso(w.start - life), iso(w.end - life))
    return list(dict.fromkeys(ids))


def birthday_events(c: Customer, w: Window, cfg: KizunaConfig) -> list[DerivedEvent]:
    """Birthdays of ``c`` due in the window: local midnight (the customer's time zone, else
    the shop's) in it, or the day under way at its start after a zone change
    (:func:`kizuna.domain.yearly.occurrences`); the id names the customer and the local
    year, so a window swept twice, a re-run the same day or a zone change repeats the same
    event."""
    if c.birth_date is None:
        return []
    tz = zone(c.time_zone, cfg.contact.default_time_zone)
    return [
        derived_event(
            Birthday,
            f"birthday:{o.day.year}",
            Cause(c.customer_id, o.starts_at, f"sweep:{SweepKind.BIRTHDAYS}"),
            date=o.day,
            age=o.years,
            time_zone=tz.key,
        )
        for o in occurrences(c.birth_date, tz, w.start, w.end, c.time_zone_changed_at, w.seen_by)
    ]


def anniversary_events(c: Customer, w: Window, cfg: KizunaConfig) -> list[DerivedEvent]:
    """Membership anniversaries of ``c`` due in the window, as birthdays (years >= 1:
    nothing in the join year); one id per customer and local year."""
    if c.member_since is None:
        return []
    tz = zone(c.time_zone, cfg.contact.default_time_zone)
    return [
        derived_event(
            Anniversary,
            f"anniversary:{o.day.year}",
            Cause(c.customer_id, o.starts_at, f"sweep:{SweepKind.ANNIVERSARIES}"),
            date=o.day,
            years=o.years,
            member_since=c.member_since,
            time_zone=tz.key,
        )
        for o in occurrences(c.member_since, tz, w.start, w.end, c.time_zone_changed_at, w.seen_by)
    ]


def anniversaries(store: SweepStore, w: Window, cfg: KizunaConfig) -> list[DerivedEvent]:
    """The members indexed under the window's ``MM-DD`` keys, re-read: a start changed since
    the index was read is judged on the customer's current ``member_since``."""
    ids = list(
        dict.fromkeys(
            cid for key in keys_for_window(w.start, w.end) for cid in store.members_since_on(key)
        )
    )
    out: list[DerivedEvent] = []
    for start in range(0, len(ids), 100):
        customers = store.get_customers(ids[start : start + 100], unreadable_ok=True)
        for cid in ids[start : start + 100]:
            customer = customers.get(cid)
            if customer is not None:
                out += anniversary_events(customer, w, cfg)
    return out


def coupon_events(row: dict[str, Any], days: int) -> DerivedEvent:
    """The reminder ``days`` before an issued coupon expires (``row``: its ``COUPON#`` row)."""
    code, expires = str(row["sk"]).removeprefix("COUPON#"), parse_time(row["valid_until"])
    return derived_event(
        CouponExpiring,
        f"coupon_expiring:{code_ref(code)}:{days}",
        Cause(str(row["pk"]), expires - timedelta(days=days), f"sweep:{SweepKind.COUPONS}"),
        code=code,
        program=str(row["program"]),
        discount=str(row["discount"]),
        expires_at=expires,
        days_left=days,
    )


def coupon_reminders(store: SweepStore, w: Window, cfg: KizunaConfig) -> list[DerivedEvent]:
    """For each reminder day N, the issued coupons expiring in [start + N, end + N): their
    reminder fell due in the window, so each (coupon, N) is in exactly one window."""
    out: list[DerivedEvent] = []
    for days in sorted(set(cfg.lifecycle.coupon_reminder_days)):
        ahead = timedelta(days=days)
        rows = store.coupons_expiring(iso(w.start + ahead), iso(w.end + ahead))
        out += [coupon_events(row, days) for row in rows]
    return out


def sweep(
    kind: SweepKind,
    store: SweepStore,
    now: datetime,
    lookback: timedelta,
    cfg: KizunaConfig,
    previous: Watermark | None = None,
    lateness: timedelta | None = None,
) -> list[DerivedEvent]:
    """The events of one run (see :func:`window` for what it reads)."""
    return sweep_window(kind, store, now, window(kind, now, lookback, cfg, previous, lateness), cfg)


def sweep_window(
    kind: SweepKind, store: SweepStore, now: datetime, w: Window, cfg: KizunaConfig
) -> list[DerivedEvent]:
    if kind == SweepKind.COUPONS:
        return coupon_reminders(store, w, cfg)
    if kind == SweepKind.ANNIVERSARIES:
        return anniversaries(store, w, cfg)
    ids: list[str] = []
    if kind == SweepKind.POINTS:
        ids = points_candidates(store, w, cfg)
    else:
        index, attribute = INDEXES[kind]
        for shard in range(INDEX_SHARDS):
            if kind == SweepKind.BIRTHDAYS:
                for key in keys_for_window(w.start, w.end):
                    # "~" sorts after every digit: exactly the key
                    ids += store.query_window(index, attribute, str(shard), key, key + "~")
            else:
                ids += store.query_window(index, attribute, str(shard), iso(w.start), iso(w.end))
    out: list[DerivedEvent] = []
    for start in range(0, len(ids), 100):
        customers = store.get_customers(ids[start : start + 100], unreadable_ok=True)
        for cid in ids[start : start + 100]:
            customer = customers.get(cid)
            if customer is None or not _in_window(kind, customer, w):
                continue
            if kind == SweepKind.BIRTHDAYS:
                out += birthday_events(customer, w, cfg)
                continue
            if kind == SweepKind.POINTS:
                out += points_events(customer, w, now, cfg)
                continue
            event = event_for(kind, customer, now, cfg)
            if event is not None:
                out.append(event)
    return out
