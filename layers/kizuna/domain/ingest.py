"""Apply inbound events to a customer: the facts change, the state is recomputed, and the
difference becomes derived events and activity items."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kizuna.domain.activity import (
    ADJUSTMENT_KEY_PREFIX,
    ActivityItem,
    member_row,
    with_lot_keys,
)
from kizuna.domain.behaviour import count_occurrence
from kizuna.domain.customer import (
    MAX_ATTRIBUTES_BYTES,
    MAX_ORDER_PRODUCTS,
    MAX_REFUNDS,
    PROCESSED_BUDGET,
    PROFILE_FIELDS,
    SEEN_BUDGET,
    AdjustmentFact,
    CartState,
    ConsentState,
    Customer,
    Device,
    OrderFact,
    PauseState,
    ProcessedRecord,
    RefundFact,
    SettledHistory,
    Suppression,
    attribute_values,
    bound_devices,
    bound_suppressions,
    channel_suppressions,
    refund_digest,
    stored_attribute,
    suppression_key,
    suppression_rank,
    within_attributes_budget,
)
from kizuna.domain.loyalty import (
    points_near_next_rank,
    rank_changed,
    recompute,
    refund_key,
    replay_points,
    settle,
    time_driven_key,
)
from kizuna.domain.timestamps import beyond, epoch_seconds, iso, stamp
from kizuna.domain.zones import zone_or
from kizuna.events import (
    AppOpened,
    CartUpdated,
    Cause,
    ChannelSuppressed,
    ConsentChanged,
    ConsentStatus,
    CustomerUpserted,
    DerivedEvent,
    DeviceRegistered,
    DeviceUnregistered,
    FirstPurchase,
    InboundDetail,
    LineLinked,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    PointsAdjusted,
    PreferencesChanged,
    ProductViewed,
    RepeatPurchase,
    inbound_type,
)
from kizuna.events.custom import CustomEventDetail, Vocabulary, vocabulary
from kizuna.events.derived import DERIVED_MODELS, derived_event
from kizuna.events.envelope import ParsedEvent
from kizuna.runtime.config import KizunaConfig

# the source of the events rebuilt from a customer's fact log
LOG_SOURCE = "kizuna.log"


@dataclass
class Applied:
    """The outcome of applying one or more events to one customer."""

    customer: Customer
    derived: list[DerivedEvent] = field(default_factory=list)
    activity: list[ActivityItem] = field(default_factory=list)
    # event id -> derived events of that event (re-emitted for a duplicate delivery)
    derived_by_event: dict[str, list[DerivedEvent]] = field(default_factory=dict)
    # event id -> why the fold refused it (not applied: dead-letter it with the reason)
    refused: dict[str, str] = field(default_factory=dict)

    changed: bool = False
    # the customer was erased recently (kizuna.domain.privacy): none of the events was
    # applied, nothing was written (ingest drops them; an import reports their rows)
    erased: bool = False


class EventRefused(Exception):
    """An event valid on its own that the customer's state cannot take (its custom
    attributes would take the customer over MAX_ATTRIBUTES_BYTES): it is not applied, and
    ingest dead-letters it with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def device_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


# -- one bad timestamp -------------------------------------------------------------------------
# Ingest rejects an occurred_at beyond the allowed skew, but a customer item may hold one from
# before it did (or from a tool that applied events unchecked). ``horizon`` (the receiver's
# clock plus the skew; None: no check) is where trust ends: a stored time or stamp beyond it
# loses to any incoming fact, so it cannot win every later update.


def _newer(current: str | None, candidate: str, horizon: datetime | None = None) -> bool:
    return current is None or candidate > current or beyond(current, horizon)


def _later(current: datetime | None, at: datetime, horizon: datetime | None) -> bool:
    return current is None or at > current or beyond(current, horizon)


def _opt_out_key(channel: str, topic: str | None = None) -> str:
    if topic is not None:
        return f"topic.{topic}.{channel}.opted_out_at"
    return f"consent.{channel}.opted_out_at"


def _note_opt_out(
    c: Customer, channel: str, at: datetime, horizon: datetime | None, topic: str | None = None
) -> None:
    """Remember the latest opt-out of ``channel`` (of ``topic`` on it) ever seen (the latest
    wins, in any order of arrival, as every stamp): :func:`last_opt_out`."""
    key = _opt_out_key(channel, topic)
    current = c.stamps.get(key)
    if _later(datetime.fromisoformat(current) if current else None, at, horizon):
        c.stamps[key] = iso(at)


def last_opt_out(customer: Customer, channel: str, topic: str | None = None) -> datetime | None:
    """When the customer last opted out of ``channel`` (of ``topic`` on it; None: never
    seen). ``consent.at`` (a topic's ``at``) moves on every newer event, a repeated opt-in
    or a preference page saved unchanged too; this says whether an opt-out came in between
    (an unsubscribe link is stale only after an opt-out and back in)."""
    value = customer.stamps.get(_opt_out_key(channel, topic))
    return datetime.fromisoformat(value) if value else None


def _last_event_at(c: Customer, at: datetime, horizon: datetime | None) -> datetime:
    """The customer's latest event time after one at ``at``. A stored one beyond the horizon
    is replaced by the latest trusted time of the facts that move the rolling windows."""
    if not beyond(c.last_event_at, horizon):
        return at if c.last_event_at is None or at > c.last_event_at else c.last_event_at
    trusted = [o.at for o in c.orders.values() if o.at is not None]
    trusted += [a.at for a in c.adjustments.values()]
    return max([at, *(t for t in trusted if not beyond(t, horizon))])


def _apply_facts(
    c: Customer,
    ev: ParsedEvent,
    cfg: KizunaConfig,
    horizon: datetime | None = None,
    *,
    vocab: Vocabulary | None = None,
    now: datetime | None = None,
    count: bool = True,
    held: Customer | None = None,
) -> list[ActivityItem]:
    """Mutate ``c``'s facts with ``ev``; return the activity items the event writes.

    ``held``: the customer item whose refunds count against MAX_REFUNDS (default ``c``; a
    fold from the fact log gives the stored item, ``c`` holds the settled orders too).

    A new occurrence of a counted event (``vocab.windows``: custom events and tracked
    built-ins) is added to ``c.behaviour`` unless ``count`` is False (the fact log replayed
    by a rebuild: those orders were counted when they were first folded). ``now``: the
    receiver's clock (see :func:`kizuna.domain.behaviour.count_occurrence`)."""
    vocab = vocab or vocabulary(cfg)
    d = ev.detail
    if count and isinstance(d, OrderPlaced | OrderRefunded) and d.currency != cfg.loyalty.currency:
        # points, ranks, spend and the RFM scores count one currency: an order in another
        # would earn at this one's rate (a dollar counted as a yen); refused, dead-lettered
        what = "total" if isinstance(d, OrderPlaced) else "amount"
        raise EventRefused(
            f"{ev.detail_type}: detail.currency: {d.currency} is not the shop's order "
            f"currency ({cfg.loyalty.currency}, loyalty.currency); convert the {what} "
            "before sending it"
        )
    if count and isinstance(d, OrderRefunded):
        # not for the fact log replayed: it holds the refunds of orders settled since
        _check_refund(c, d, held or c)
    windows = vocab.windows.get(ev.detail_type) if count else None
    new = windows is not None and _new_occurrence(c, ev)
    items = _change_facts(c, ev, cfg, vocab, horizon)
    if new and windows is not None:
        c.behaviour[ev.detail_type] = count_occurrence(
            c.behaviour.get(ev.detail_type), ev.detail.occurred_at, windows, now, horizon
        )
    return items


def _new_occurrence(c: Customer, ev: ParsedEvent) -> bool:
    """Is ``ev`` an occurrence ``c``'s counters have not seen (called before it is applied)?
    An order counts when it is first placed (the same order under another event id is the
    same fact); a cart update that restates the current cart is not a new one."""
    d = ev.detail
    if isinstance(d, OrderPlaced):
        known = c.orders.get(d.order_id)
        return known is None or not known.placed
    if isinstance(d, CartUpdated):
        return c.cart is None or c.cart.stamp != stamp(
            d.occurred_at, (d.cart_id, d.items, d.currency)
        )
    return True


def _apply_attributes(
    c: Customer, d: CustomerUpserted, at: datetime, horizon: datetime | None
) -> None:
    """Custom attributes, last writer wins per attribute (stamped ``attributes.<name>``, as
    the profile fields are); an explicit null clears one and keeps its stamp, so an older
    value arriving later does not bring it back. EventRefused, with nothing changed, if the
    customer's attributes would be over MAX_ATTRIBUTES_BYTES."""
    stated = attribute_values(getattr(d, "attributes", None))
    if not stated:
        return
    values = dict(c.attributes)
    stamps: dict[str, str] = {}
    for name, value in stated.items():
        key = f"attributes.{name}"
        st = stamp(at, value)
        if not _newer(c.stamps.get(key), st, horizon):
            continue
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
        stamps[key] = st
    if not stamps:
        return
    if not within_attributes_budget(values):
        raise EventRefused(
            f"customer.upserted: detail.attributes: the customer's custom attributes would be "
            f"over {MAX_ATTRIBUTES_BYTES} bytes (names and values as UTF-8 JSON)"
        )
    c.attributes = values
    c.stamps.update(stamps)


def _custom_event(ev: ParsedEvent, vocab: Vocabulary) -> list[ActivityItem]:
    """A custom event's activity row (``EVENT#``, TTL ``retention_days``): its type and, under
    ``fields`` (never beside the row's keys), its fields except those declared personal.
    Personal fields are not stored at all: the row is history shown to people who may not
    see personal data, and nothing reads them back; they reach only the programs the event
    starts (their trigger conditions: a journey entry's ``trigger`` keeps none of them,
    :func:`kizuna.programs.members.trigger_of`)."""
    spec = vocab.events.get(ev.detail_type)
    if spec is None:  # pragma: no cover - parsed with a vocabulary that declares it
        return []
    d = ev.detail
    personal = {f.name for f in spec.fields if f.personal}
    fields = {
        f.name: _stored_field(getattr(d, f.name))
        for f in spec.fields
        if f.name not in personal and getattr(d, f.name) is not None
    }
    at = d.occurred_at
    return [
        ActivityItem(
            customer_id=ev.customer_id,
            kind="EVENT",
            at=at,
            key=f"{ev.detail_type}#{ev.event_id}",
            data={"type": ev.detail_type, "fields": fields},
            expires_at=epoch_seconds(at + timedelta(days=spec.retention_days)),
        )
    ]


def _stored_field(value: Any) -> Any:
    """A custom event field as an activity item keeps it: times and dates as ISO strings,
    lists as lists, numbers as Decimal."""
    if isinstance(value, datetime):
        return iso(value)
    return stored_attribute(value)


def _check_preferences(d: PreferencesChanged, cfg: KizunaConfig) -> None:
    """EventRefused, before anything changed, for a topic the configuration does not
    declare or an opt-out of the transactional topic (not optional)."""
    problem = cfg.preferences.choice_problem(d.topics)
    if problem is not None:
        name, reason = problem
        # a name the configuration does not declare is the producer's: not repeated (logged)
        where = name if cfg.preferences.topic(name) is not None else "<key>"
        raise EventRefused(f"preferences.changed: detail.topics.{where}: {reason}")


def _preferences(
    c: Customer, ev: ParsedEvent, d: PreferencesChanged, horizon: datetime | None
) -> list[ActivityItem]:
    """Topic consent, last writer wins per topic and channel (stamped as consent.changed,
    an opt-out winning a tie), and the pause; one CONSENT row as the proof (with the
    source), unless the event is already the current state of everything it names."""
    at = d.occurred_at
    news = False
    topics = dict(c.topics)
    for name, channels in d.topics.items():
        per = dict(topics.get(name, {}))
        for channel, status in channels.items():
            rank = "1" if status == ConsentStatus.OPTED_OUT else "0"
            st = stamp(at, (status, d.source), rank=rank)
            cur = per.get(channel)
            if cur is not None and cur.stamp == st:
                continue
            news = True
            if cur is None or _newer(cur.stamp, st, horizon):
                per[str(channel)] = ConsentState(status=status, at=at, source=d.source, stamp=st)
            if status == ConsentStatus.OPTED_OUT:
                _note_opt_out(c, str(channel), at, horizon, topic=name)
        topics[name] = per
    c.topics = topics
    until: datetime | None = None
    if d.pause_days is not None or d.resume:
        until = at + timedelta(days=d.pause_days) if d.pause_days is not None else None
        st = stamp(at, ("pause", d.pause_days, d.source), rank="1" if until else "0")
        if c.pause is None or c.pause.stamp != st:
            news = True
            if c.pause is None or _newer(c.pause.stamp, st, horizon):
                c.pause = PauseState(until=until, at=at, source=d.source, stamp=st)
    if not news:
        return []  # the current state already: its row was written with it
    data: dict[str, Any] = {
        "status": "preferences",
        "topics": {
            name: {str(ch): str(v) for ch, v in chs.items()} for name, chs in d.topics.items()
        },
        "source": d.source,
    }
    if d.pause_days is not None:
        data["pause_days"] = d.pause_days
        data["pause_until"] = iso(until) if until else None
    if d.resume:
        data["resume"] = True
    return [
        ActivityItem(
            customer_id=c.customer_id,
            kind="CONSENT",
            at=at,
            key=f"preferences#{ev.event_id}",
            data=data,
        )
    ]


def _check_refund(c: Customer, d: OrderRefunded, held: Customer) -> None:
    """EventRefused, before anything changed, for a refund id of the order already recorded
    with another amount (a refund id names one refund: a correction is a new one), and for a
    new refund while the item (``held``) holds MAX_REFUNDS (of orders not yet settled)."""
    order = c.orders.get(d.order_id)
    known = order.refunds.get(refund_digest(d.refund_id)) if order is not None else None
    if known is not None and known.amount != d.amount:
        raise EventRefused(
            "order.refunded: detail.amount: this refund_id of the order was recorded with "
            "another amount; a refund id names one refund (send another refund under a new "
            "refund_id)"
        )
    if known is None and sum(len(o.refunds) for o in held.orders.values()) >= MAX_REFUNDS:
        raise EventRefused(
            f"order.refunded: the customer has {MAX_REFUNDS} refunds of orders not yet "
            "settled, the most a customer item keeps; send it again once older orders settle"
        )


def _refund(c: Customer, d: OrderRefunded) -> list[ActivityItem]:
    """The refund on its order (kept, at the order's own time, by ``recompute``), and its
    REFUND row; one per refund: a retry at a later time adds nothing, one at an earlier
    time moves it there (its row replaces the later one)."""
    at = d.occurred_at
    order = c.orders.get(d.order_id) or OrderFact()
    digest = refund_digest(d.refund_id)
    known = order.refunds.get(digest)  # same amount: _check_refund
    if known is not None and known.at <= at:
        # this refund already (its row was written before the state), or a producer's
        # retry of it stamped later: the earliest stands, one row
        return []
    refund = RefundFact(at=at, amount=d.amount)
    c.orders[d.order_id] = order.model_copy(update={"refunds": {**order.refunds, digest: refund}})
    row = ActivityItem(
        customer_id=c.customer_id,
        kind="REFUND",
        at=at,
        key=refund_key(d.order_id, d.refund_id),
        data={
            "order_id": d.order_id,
            "refund_id": d.refund_id,
            "amount": d.amount,
            "currency": d.currency,
            "reason": d.reason,
            "lines": [line.model_dump() for line in d.lines],
        },
    )
    if known is not None:
        row = row.model_copy(update={"replaces": row.model_copy(update={"at": known.at}).sk})
    return [row]


def _change_facts(
    c: Customer,
    ev: ParsedEvent,
    cfg: KizunaConfig,
    vocab: Vocabulary,
    horizon: datetime | None = None,
) -> list[ActivityItem]:
    d = ev.detail
    at = d.occurred_at
    cid = c.customer_id
    if isinstance(d, CustomerUpserted):  # first: a refused event changes nothing at all
        _apply_attributes(c, d, at, horizon)
    if isinstance(d, PreferencesChanged):
        _check_preferences(d, cfg)
    c.last_event_at = _last_event_at(c, at, horizon)

    match d:
        case CustomerUpserted():
            for name in PROFILE_FIELDS:
                value = getattr(d, name)
                if value is None:
                    continue
                st = stamp(at, value)
                if not _newer(c.stamps.get(name), st, horizon):
                    continue
                setattr(c, name, value)
                c.stamps[name] = st
            since = d.member_since
            if since is not None and c.stamps.get("member_since") == stamp(at, since):
                # this event holds the start (a redelivery puts the same row again)
                return [member_row(cid, since, at)]
            return []
        case CustomEventDetail():
            return _custom_event(ev, vocab)
        case ConsentChanged():
            cur = c.consent.get(d.channel)
            st = stamp(at, (d.status, d.source), rank="1" if d.status == "opted_out" else "0")
            if cur is not None and cur.stamp == st:
                return []  # the current consent already: its row was written with it
            if cur is None or _newer(cur.stamp, st, horizon):
                c.consent[d.channel] = ConsentState(
                    status=d.status, at=at, source=d.source, stamp=st
                )
            if d.status == ConsentStatus.OPTED_OUT:
                _note_opt_out(c, d.channel, at, horizon)
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="CONSENT",
                    at=at,
                    key=f"{d.channel}#{ev.event_id}",
                    data={"channel": d.channel, "status": d.status, "source": d.source},
                )
            ]
        case PreferencesChanged():
            return _preferences(c, ev, d, horizon)
        case OrderPlaced():
            order = c.orders.get(d.order_id) or OrderFact()
            st = stamp(at, (d.total, d.currency, d.channel, d.lines))
            if order.placed and order.stamp == st:
                return []  # folded already: its row was written before the state
            if order.placed and not _newer(order.stamp, st, horizon):
                # a send of this order that loses to the one folded (same time, other
                # content; or older): its row would overwrite the winner's (the fact log a
                # rebuild reads, the reports' order) or add a second order. (A later send
                # arriving after an earlier one replaces the earlier row: ``replaces``.)
                return []
            products = tuple(dict.fromkeys(line.product_id for line in d.lines))
            c.orders[d.order_id] = order.model_copy(
                update={
                    "placed": True,
                    "at": at,
                    "total": d.total,
                    "currency": d.currency,
                    "channel": d.channel,
                    "products": products[:MAX_ORDER_PRODUCTS],
                    "stamp": st,
                }
            )
            order_row = ActivityItem(
                customer_id=cid,
                kind="ORDER",
                at=at,
                key=d.order_id,
                data={
                    "order_id": d.order_id,
                    "total": d.total,
                    "currency": d.currency,
                    "channel": d.channel,
                    "lines": [line.model_dump() for line in d.lines],
                },
            )
            if order.placed and order.at is not None:
                # a later send of an order folded before: its earlier row (keyed by its
                # time) goes, so the timeline, the export and a rebuild hold one order
                earlier = order_row.model_copy(update={"at": order.at}).sk
                if earlier != order_row.sk:
                    order_row = order_row.model_copy(update={"replaces": earlier})
            return [with_lot_keys(order_row)]  # the lot it earns (the points sweep)
        case OrderCancelled():
            order = c.orders.get(d.order_id) or OrderFact()
            if order.cancelled_at is not None and order.cancelled_at <= at:
                # this cancellation already (its row was written before the state), or a
                # producer's retry of it stamped later: the earliest one stands, one row
                return []
            c.orders[d.order_id] = order.model_copy(update={"cancelled_at": at})
            cancel_row = ActivityItem(
                customer_id=cid,
                kind="CANCEL",
                at=at,
                key=d.order_id,
                data={"order_id": d.order_id, "reason": d.reason},
            )
            if order.cancelled_at is not None:
                # earlier than the one folded: its row (keyed by its time) goes, so the
                # timeline, the export and a rebuild hold one cancellation
                later = cancel_row.model_copy(update={"at": order.cancelled_at}).sk
                cancel_row = cancel_row.model_copy(update={"replaces": later})
            return [cancel_row]
        case OrderRefunded():
            return _refund(c, d)
        case PointsAdjusted():
            if d.adjustment_id in c.adjustments or c.history.settled_adjustment_id(d.adjustment_id):
                return []  # this adjustment already (its retry may carry a later time)
            c.adjustments[d.adjustment_id] = AdjustmentFact(at=at, delta=d.delta, reason=d.reason)
            adjustment_row = ActivityItem(
                customer_id=cid,
                kind="POINTS",
                at=at,
                key=f"{ADJUSTMENT_KEY_PREFIX}{d.adjustment_id}",
                data={"delta": d.delta, "reason": d.reason},
            )
            return [with_lot_keys(adjustment_row)]  # a new lot if it adds points
        case DeviceRegistered():
            key = device_key(d.token)
            gone = c.unregistered_devices.get(key)
            if gone is not None and at <= gone and not beyond(gone, horizon):
                return []  # unregistered since: a retried or late registration
            cur_dev = c.devices.get(key)
            if cur_dev is None or _later(cur_dev.at, at, horizon):
                c.devices[key] = Device(token=d.token, platform=d.platform, at=at)
                c.unregistered_devices.pop(key, None)
                # bounded: the keys whose latest fact is oldest go (this one, if oldest)
                c.devices, c.unregistered_devices = bound_devices(c.devices, c.unregistered_devices)
            return []
        case DeviceUnregistered():
            key = device_key(d.token)
            dev = c.devices.get(key)
            if dev is not None and at < dev.at and not beyond(dev.at, horizon):
                return []  # registered again since
            if dev is not None or _later(c.unregistered_devices.get(key), at, horizon):
                c.devices.pop(key, None)
                c.unregistered_devices[key] = at
                c.devices, c.unregistered_devices = bound_devices(c.devices, c.unregistered_devices)
            return []
        case ChannelSuppressed():
            incoming = Suppression(reason=d.reason, at=at, address_hash=d.address_hash)
            key = suppression_key(incoming)
            per_address = channel_suppressions(c, d.channel)
            cur_sup = per_address.get(key)
            if (
                cur_sup is not None
                and suppression_rank(key, incoming) <= suppression_rank(key, cur_sup)
                and not beyond(cur_sup.at, horizon)
            ):
                return []  # one row per address: its current suppression's
            per_address[key] = incoming
            _keep_suppressions(c, d.channel, per_address)
            if key not in c.suppressed_addresses[d.channel]:
                return []  # older than every address kept: as if it had been dropped
            return [
                ActivityItem(
                    customer_id=cid,
                    kind="CONSENT",
                    at=at,
                    key=f"{d.channel}#suppressed",
                    data={"channel": d.channel, "status": "suppressed", "reason": d.reason},
                )
            ]
        case LineLinked():
            st = stamp(at, d.line_user_id)
            if _newer(c.stamps.get("line_user_id"), st, horizon):
                c.line_user_id = d.line_user_id
                c.stamps["line_user_id"] = st
            return []
        case CartUpdated():
            st = stamp(at, (d.cart_id, d.items, d.currency))
            if c.cart is not None and c.cart.stamp == st:
                return []
            if c.cart is None or _newer(c.cart.stamp, st, horizon):
                c.cart = CartState(
                    cart_id=d.cart_id,
                    item_count=sum(i.quantity for i in d.items),
                    value=sum((i.unit_price * i.quantity for i in d.items), Decimal(0)),
                    currency=d.currency,
                    product_ids=tuple(i.product_id for i in d.items),
                    at=at,
                    stamp=st,
                )
            return [_behaviour(ev, cfg, {"cart_id": d.cart_id, "items": len(d.items)})]
        case ProductViewed():
            if _later(c.last_product_view_at, at, horizon):
                c.last_product_view_at = at
            return [_behaviour(ev, cfg, {"product_id": d.product_id, "category": d.category})]
        case AppOpened():
            if _later(c.last_app_open_at, at, horizon):
                c.last_app_open_at = at
            return [_behaviour(ev, cfg, {"platform": d.platform})]
    raise TypeError(f"no rule for {type(d).__name__}")  # pragma: no cover - union is closed


def _keep_suppressions(c: Customer, channel: str, by_address: dict[str, Suppression]) -> None:
    """``channel``'s suppressions by address, bounded, and its latest (what an earlier
    version reads: docs/DEPLOY.md), on ``c`` (new containers: ``c`` may be a fork)."""
    kept, latest = bound_suppressions(by_address)
    c.suppressed_addresses = {**c.suppressed_addresses, channel: kept}
    if latest is not None:
        c.suppressions = {**c.suppressions, channel: latest}


def _bound_all_suppressions(c: Customer) -> None:
    """Every channel's suppressions kept per address and bounded: an item an earlier version
    wrote (one suppression a channel) takes the new shape at its next fold."""
    for channel in sorted({*c.suppressions, *c.suppressed_addresses}):
        _keep_suppressions(c, channel, channel_suppressions(c, channel))


def _behaviour(ev: ParsedEvent, cfg: KizunaConfig, data: dict[str, Any]) -> ActivityItem:
    at = ev.detail.occurred_at
    return ActivityItem(
        customer_id=ev.customer_id,
        kind="EVENT",
        at=at,
        key=f"{ev.detail_type}#{ev.event_id}",
        data={"type": ev.detail_type, **data},
        expires_at=epoch_seconds(at + timedelta(days=cfg.behaviour_ttl_days)),
    )


def _derive(
    before: Customer, after: Customer, ev: ParsedEvent, cfg: KizunaConfig, news: bool = True
) -> list[DerivedEvent]:
    """The derived events of ``ev`` (which took the state from ``before`` to ``after``);
    ``news=False`` for history (a fact older than the item's checkpoint): it may move the
    rank, it starts no purchase journey."""
    at = ev.detail.occurred_at
    cause = Cause(after.customer_id, at, ev.event_id)
    out: list[DerivedEvent] = []
    d = ev.detail

    if isinstance(d, OrderPlaced) and news:
        fact = after.orders[d.order_id]
        newly_counted = fact.counts and not (
            d.order_id in before.orders and before.orders[d.order_id].counts
        )
        if newly_counted:
            purchase: dict[str, Any] = {
                "order_id": d.order_id,
                "total": d.total,
                "currency": d.currency,
                "channel": d.channel,
                **_purchase_lists(ev),
            }
            if before.order_count == 0:
                out.append(derived_event(FirstPurchase, "first_purchase", cause, **purchase))
            else:
                out.append(
                    derived_event(
                        RepeatPurchase,
                        f"repeat_purchase:{d.order_id}",
                        cause,
                        order_count=after.order_count,
                        **purchase,
                    )
                )

    # a customer without a rank yet (this is their first event) holds the first one: a first
    # order that reaches Gold is a rank-up, as it is after any other first event
    held = before.rank or cfg.loyalty.ranks[0].name
    # a rank time moved (an old order left the window) is named by that fact, as the daily
    # scoring names it: the two may both notice one drop (the run puts before it saves)
    key = time_driven_key(before, after, cfg.loyalty)
    moved = rank_changed(before, after, cfg.loyalty, at, ev.event_id, from_rank=held, key=key)
    if moved is not None:
        out.append(moved)

    near = points_near_next_rank(before, after, cfg.loyalty, at, ev.event_id, key=key)
    if near is not None:
        out.append(near)
    return out


_LEDGER_ROWS = frozenset({"ORDER", "CANCEL", "REFUND"})


def _with_ledger(
    activity: list[ActivityItem], customer: Customer, cfg: KizunaConfig
) -> list[ActivityItem]:
    """ORDER, CANCEL and REFUND rows carry the points around the order, the cancellation or
    the refund at its place in time (the replay of ``customer``'s facts, its ledger), so the
    activity history is also the point ledger without a second write per order: not the
    stored balance, which
    is as of the customer's latest event (points may have expired since, a later order may
    have been folded already)."""
    if not any(item.kind in _LEDGER_ROWS for item in activity):
        return activity
    replay = replay_points(customer, cfg.loyalty)
    by_kind = {"ORDER": replay.ledger, "CANCEL": replay.cancels, "REFUND": replay.refunds}
    out = []
    for item in activity:
        if item.kind in _LEDGER_ROWS:
            # ORDER and CANCEL rows are keyed by the order id, a refund's entry by its
            # order id and refund digest
            key = item.key
            if item.kind == "REFUND":
                key = refund_key(item.data["order_id"], refund_digest(item.data["refund_id"]))
            entry = by_kind[item.kind].get(key)
            # (every order and cancellation the state holds has an entry; the stored
            # balance is only a guard, a row never goes without its points fields)
            before, after, rank = (
                (entry.balance_before, entry.balance_after, entry.rank_after)
                if entry is not None
                else (customer.points_balance, customer.points_balance, customer.rank)
            )
            item = item.model_copy(
                update={
                    "data": {
                        **item.data,
                        "points_balance_before": before,
                        "points_balance_after": after,
                        "rank_after": rank,
                    }
                }
            )
        out.append(item)
    return out


# fields of derived events a record leaves out: the redelivered event gives them back
# (a 500-line order's product ids would take 64 KB of the customer item)
_FROM_EVENT = ("product_ids", "categories")


def _purchase_lists(ev: ParsedEvent) -> dict[str, tuple[str, ...]]:
    d = ev.detail
    if not isinstance(d, OrderPlaced):
        return {}
    return {
        "product_ids": tuple(dict.fromkeys(line.product_id for line in d.lines)),
        "categories": tuple(dict.fromkeys(line.category for line in d.lines if line.category)),
    }


def restore_derived(record: ProcessedRecord, ev: ParsedEvent) -> list[DerivedEvent]:
    """The derived events ``record`` keeps for ``ev`` (delivered again), as first emitted."""
    out = []
    for raw in record.derived:
        model = DERIVED_MODELS[raw["detail_type"]]
        detail = dict(raw["detail"])
        if raw.get("from_event"):
            detail.update(_purchase_lists(ev))
        out.append(
            DerivedEvent(detail_type=raw["detail_type"], detail=model.model_validate(detail))
        )
    return out


class HistoryNeeded(Exception):
    """An event is about an order or adjustment the customer item has settled: the fold needs
    the customer's fact log (their ORDER, CANCEL, REFUND and POINTS activity items) to apply it
    exactly once. Call :func:`apply_events` again with ``log``."""


def needs_history(customer: Customer, events: Sequence[ParsedEvent]) -> bool:
    """Does any of ``events`` concern a fact that only the fact log can answer for (a late
    order or adjustment before the settlement checkpoint, a cancellation or a refund of an
    order not in the item while some are settled)?"""
    history = customer.history
    if history.before_at is None:
        return False
    for ev in events:
        d = ev.detail
        if isinstance(d, OrderPlaced):
            late = d.order_id not in customer.orders and history.settled_order(
                d.occurred_at, d.order_id
            )
        elif isinstance(d, OrderCancelled | OrderRefunded):
            late = d.order_id not in customer.orders
        elif isinstance(d, PointsAdjusted):
            late = (
                d.adjustment_id not in customer.adjustments
                and not history.settled_adjustment_id(d.adjustment_id)
                and history.settled_adjustment(d.occurred_at)
            )
        else:
            late = False
        if late:
            return True
    return False


def facts_from_activity(customer_id: str, items: Sequence[ActivityItem]) -> list[ParsedEvent]:
    """The order, cancellation, refund and adjustment events a customer's ORDER, CANCEL,
    REFUND and POINTS activity items record (what the fold needs to rebuild their settled
    history)."""
    out = []
    for item in items:
        base = {"customer_id": customer_id, "occurred_at": item.at}
        d = item.data
        detail: InboundDetail
        if item.kind == "ORDER":
            detail = OrderPlaced.model_validate(
                {
                    **base,
                    "order_id": d["order_id"],
                    "lines": d["lines"],
                    "total": d["total"],
                    "currency": d["currency"],
                    "channel": d["channel"],
                }
            )
        elif item.kind == "CANCEL":
            detail = OrderCancelled.model_validate(
                {**base, "order_id": d["order_id"], "reason": d.get("reason")}
            )
        elif item.kind == "REFUND":
            detail = OrderRefunded.model_validate(
                {
                    **base,
                    "order_id": d["order_id"],
                    "refund_id": d["refund_id"],
                    "amount": d["amount"],
                    "currency": d["currency"],
                    "lines": d.get("lines") or (),
                    "reason": d.get("reason"),
                }
            )
        elif item.kind == "POINTS" and item.key.startswith(ADJUSTMENT_KEY_PREFIX):
            detail = PointsAdjusted.model_validate(
                {
                    **base,
                    "adjustment_id": item.key.removeprefix(ADJUSTMENT_KEY_PREFIX),
                    "delta": d["delta"],
                    "reason": d["reason"],
                }
            )
        else:
            continue
        out.append(
            ParsedEvent(
                event_id=f"log:{item.sk}",
                detail_type=inbound_type(detail),
                source=LOG_SOURCE,
                time=item.at,
                detail=detail,
            )
        )
    return out


def _rebuilt(
    customer: Customer, log: Sequence[ParsedEvent], cfg: KizunaConfig, vocab: Vocabulary
) -> Customer:
    """``customer`` with its orders, adjustments and settled history rebuilt from the fact
    log, every fact kept one by one (settled again at the end of the fold). The log's orders
    are not counted again in the behaviour counters: they were when first folded."""
    state = customer.model_copy(
        deep=True, update={"orders": {}, "adjustments": {}, "history": SettledHistory()}
    )
    for ev in sorted(log, key=lambda e: e.detail.occurred_at):
        _apply_facts(state, ev, cfg, vocab=vocab, count=False)
    return state  # the derived fields are still the stored ones: the state "before"


def _fork(c: Customer) -> Customer:
    """A copy of ``c`` whose containers can change without changing ``c``: the fold replaces
    the facts in them, it never changes one in place (cheaper than a deep copy)."""
    return c.model_copy(
        update={
            name: dict(getattr(c, name))
            for name in (
                "attributes",
                "stamps",
                "behaviour",
                "consent",
                "topics",
                "devices",
                "unregistered_devices",
                "suppressions",
                "suppressed_addresses",
                "orders",
                "adjustments",
                "processed",
            )
        }
    )


def _fold_as_of(before: Customer, after: Customer, horizon: datetime | None) -> datetime | None:
    """The instant ``after`` (``before`` with events applied) is computed as of: its latest
    event, never earlier than the instant ``before`` was computed as of, never beyond
    ``horizon``.

    Never back in time: a late event (a bank-transfer order confirmed days later, an
    offline app's sync, a redriven letter, an order before the settlement checkpoint) must
    not undo what a fold as of a later instant settled (the scoring run's lost rank,
    expired points) and announce a rank-up the customer no longer has. A stored ``as_of``
    beyond ``horizon`` (a poisoned 2999) is not kept."""
    as_of = after.last_event_at
    if (
        before.as_of is not None
        and not beyond(before.as_of, horizon)
        and (as_of is None or as_of < before.as_of)
    ):
        as_of = before.as_of
    return horizon if beyond(as_of, horizon) else as_of


def _apply_late(
    base: Customer,
    late: list[ParsedEvent],
    cfg: KizunaConfig,
    now: datetime,
    result: Applied,
    bulk: bool,
    vocab: Vocabulary,
    horizon: datetime | None,
    stored: Customer,
) -> Customer:
    """Fold events about settled facts into ``base`` (rebuilt from the fact log, every fact
    one by one) at once: one recompute for all of them, however long the history, as of
    the same instant the live path would (:func:`_fold_as_of`). An event the state refuses
    (:class:`EventRefused`) is not applied: it is in ``result.refused``. ``stored``: the
    customer item as stored (the refunds it holds count against MAX_REFUNDS)."""
    state = _fork(base)
    activity: list[ActivityItem] = []
    fresh: list[ParsedEvent] = []
    for ev in late:
        record = state.processed.get(ev.event_id)
        if record is not None:  # delivered again: re-emit what it produced
            result.derived_by_event[ev.event_id] = restore_derived(record, ev)
            result.derived += result.derived_by_event[ev.event_id]
            continue
        trial = _fork(state)
        try:
            activity += _apply_facts(trial, ev, cfg, horizon, vocab=vocab, now=now, held=stored)
        except EventRefused as refused:  # (a late order in another currency): not applied
            result.refused[ev.event_id] = refused.reason
            continue
        state = trial
        fresh.append(ev)
    state = recompute(state, cfg.loyalty, _fold_as_of(base, state, horizon))
    result.activity += _with_ledger(activity, state, cfg)
    if fresh and not bulk:  # the state moved once for all of them: the last is the cause
        derived = _derive(base, state, fresh[-1], cfg, news=False)
        for ev in fresh:
            state.processed[ev.event_id] = _record(derived if ev is fresh[-1] else [], now)
        result.derived += derived
        result.derived_by_event[fresh[-1].event_id] = derived
    return state


def _earliest_touched(state: Customer, events: Sequence[ParsedEvent]) -> tuple[datetime, str]:
    """The earliest place in the fold's timeline that ``events`` change: facts before it can
    stay settled while they are applied."""
    touched = [(state.last_event_at or datetime.max.replace(tzinfo=UTC), "")]
    for ev in events:
        d = ev.detail
        if isinstance(d, OrderPlaced):
            touched.append((d.occurred_at, d.order_id))
            known = state.orders.get(d.order_id)
            if known is not None and known.at is not None:
                touched.append((known.at, d.order_id))
        elif isinstance(d, OrderCancelled | OrderRefunded):
            known = state.orders.get(d.order_id)
            if known is not None and known.at is not None:
                touched.append((known.at, d.order_id))
        elif isinstance(d, PointsAdjusted):
            touched.append((d.occurred_at, ""))
    return min(touched)


def _record(derived: list[DerivedEvent], now: datetime) -> ProcessedRecord:
    out: list[dict[str, Any]] = []
    for e in derived:
        detail = e.detail.model_dump(mode="json")
        raw: dict[str, Any] = {"detail_type": e.detail_type, "detail": detail}
        if isinstance(e.detail, FirstPurchase | RepeatPurchase):
            for name in _FROM_EVENT:
                detail.pop(name)
            raw["from_event"] = True
        out.append(raw)
    return ProcessedRecord(at=now, derived=out)


def _prune_processed(
    processed: dict[str, ProcessedRecord], horizon: datetime
) -> dict[str, ProcessedRecord]:
    """Records younger than ``horizon``, the most recent first while they fit: those with
    derived events in PROCESSED_BUDGET serialized bytes (they are what a redelivery
    re-emits), the others (a redelivery only writes nothing) in SEEN_BUDGET."""
    kept: dict[str, ProcessedRecord] = {}
    size = {True: 0, False: 0}
    budget = {True: PROCESSED_BUDGET, False: SEEN_BUDGET}
    for key, record in sorted(processed.items(), key=lambda kv: kv[1].at, reverse=True):
        if record.at <= horizon:
            continue
        kind = bool(record.derived)
        size[kind] += len(key) + 40 + len(json.dumps(record.derived, default=str))
        if size[kind] <= budget[kind]:
            kept[key] = record
    return kept


def _effective_zone(customer: Customer, cfg: KizunaConfig) -> str:
    """The zone the yearly sweeps read ``customer`` in: theirs, else the shop's."""
    return zone_or(customer.time_zone, cfg.contact.default_time_zone).key


def apply_events(
    customer: Customer,
    events: list[ParsedEvent],
    cfg: KizunaConfig,
    now: datetime,
    *,
    log: Sequence[ParsedEvent] | None = None,
    bulk: bool = False,
    horizon: datetime | None = None,
    vocab: Vocabulary | None = None,
) -> Applied:
    """Apply ``events`` (all for ``customer``) in order.

    An event already in the customer's idempotency records is not applied again; the
    derived events it produced the first time are returned again so they can be re-emitted
    (at-least-once out, deduplicated downstream by their deterministic ids). A fact already
    folded writes no activity again: its activity item was written before the state.

    Raises HistoryNeeded when an event concerns a settled fact and ``log`` (the customer's
    fact log, :func:`facts_from_activity`) is not given. ``bulk`` folds history (the
    importer): the facts are applied at once, no derived event is produced or recorded,
    and ORDER rows carry the points around the order at its place in time. The item is
    settled at the end (:func:`kizuna.domain.loyalty.settle`) so it stays bounded.

    ``horizon`` (ingest: its clock plus ``cfg.event_time.max_future_skew``) is the latest
    time trusted: a stored time beyond it loses to any incoming fact, and the state is never
    computed as of a time beyond it (see ``_newer``).

    ``vocab`` (default: ``cfg``'s) says which events are counted in ``behaviour`` and how
    custom events are kept. An event the state cannot take (:class:`EventRefused`) is not
    applied nor recorded: it is in ``refused`` with the reason, the others go on.
    """
    for ev in events:
        if ev.customer_id != customer.customer_id:
            raise ValueError("event for another customer")
    vocab = vocab or vocabulary(cfg)
    result = Applied(customer=customer)
    if log is not None:
        late = [ev for ev in events if needs_history(customer, [ev])]
        events = [ev for ev in events if not needs_history(customer, [ev])]
        rebuilt = _rebuilt(customer, log, cfg, vocab)
        state = _apply_late(rebuilt, late, cfg, now, result, bulk, vocab, horizon, customer)
        state = settle(state, cfg.loyalty, limit=_earliest_touched(state, events))
    elif needs_history(customer, events):
        raise HistoryNeeded(customer.customer_id)
    else:
        state = customer.model_copy(deep=True)
    if bulk:
        activity: list[ActivityItem] = []
        for ev in events:
            try:
                activity.extend(_apply_facts(state, ev, cfg, vocab=vocab, now=now))
            except EventRefused as refused:  # raised before anything changed
                result.refused[ev.event_id] = refused.reason
        # never back before the instant the stored customer was computed as of (an import
        # after the daily scoring run must not bring back the rank it took away)
        state = recompute(state, cfg.loyalty, _fold_as_of(customer, state, horizon))
        # only these rows: the late events' (already in ``result.activity``) carry the
        # points of the fold from the fact log; in this state their orders are settled
        # again, and have no ledger entry
        result.activity += _with_ledger(activity, state, cfg)
    else:
        for ev in events:
            record = state.processed.get(ev.event_id)
            if record is not None:
                replay = restore_derived(record, ev)
                result.derived.extend(replay)
                result.derived_by_event[ev.event_id] = replay
                continue
            before = state
            after = _fork(before)
            try:
                activity = _apply_facts(after, ev, cfg, horizon, vocab=vocab, now=now)
            except EventRefused as refused:
                result.refused[ev.event_id] = refused.reason
                continue
            after = recompute(after, cfg.loyalty, _fold_as_of(before, after, horizon))
            if after.cart_open_at != before.cart_open_at:
                after.cart_open_seen_at = now if after.cart_open_at is not None else None
            derived = _derive(before, after, ev, cfg)
            activity = _with_ledger(activity, after, cfg)
            # every event is recorded (those with derived events first, see _prune_processed):
            # a redelivery is recognised and writes no activity again
            after.processed[ev.event_id] = _record(derived, now)
            state = after
            result.derived.extend(derived)
            result.derived_by_event[ev.event_id] = derived
            result.activity.extend(activity)
    if customer.version > 0 and _effective_zone(state, cfg) != _effective_zone(customer, cfg):
        # receive time, not event time: the sweep reads the new zone from now on (a late
        # event that loses to a newer stamp changes nothing, and stamps nothing). A first
        # zone that is the shop's own (a customer stored by an order before signing up)
        # moves nothing: the sweeps already read them in it
        state.time_zone_changed_at = now
    state = settle(state, cfg.loyalty)
    # an item stored before devices were bounded gets its bound at its next fold
    state.devices, state.unregistered_devices = bound_devices(
        state.devices, state.unregistered_devices
    )
    # and one stored with a suppression a channel, its suppressions per address
    _bound_all_suppressions(state)
    state.processed = _prune_processed(state.processed, now - timedelta(days=cfg.idempotency_days))
    result.changed = state != customer
    result.customer = state
    return result
