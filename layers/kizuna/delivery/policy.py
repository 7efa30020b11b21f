"""The contact policy: one for all programs, checked at send time, in order.

1. consent and suppression per channel and address (with an address to send to: any
   suppression of that address, or of every address, stops it); a ``webhook`` step
   delivers to the shop's own endpoint and needs neither (docs/channels/WEBHOOK.md);
2. quiet hours in the customer's time zone for interruptive channels (SMS, push, LINE):
   the message is deferred to the end of the quiet period, never dropped, and every rule is
   decided again then (the caps too: a night message over a cap that is lifted by the
   morning is sent in the morning, not suppressed at night);
3. global frequency caps per customer across programs (per day, per week, rolling), unless
   the program's priority is at or above ``bypass_caps_priority``;
4. fallback: the first channel of the step's ordered list that passes 1 is used.

Rule 1 has three parts, in order (docs/PREFERENCES.md): the channel's consent and
suppressions (the master switch), then the customer's consent to the message's **topic** on
that channel (``topic_opted_out``: the next channel is tried, as for consent; when no channel
is left because of it, the message's reason is ``topic_opted_out``), then the customer's
**pause** of everything (``paused``, until its end). A transactional topic (``service``)
bypasses the topic opt-out and the pause, never the master switch.

A **transactional** message (an order confirmation asked for through the API, "template T
to customer C now") is the customer's business with the shop, not marketing, and follows
what Amazon Pinpoint and Braze do with transactional sends: no opt-in is needed and the
marketing rules 2 and 3 do not apply (no frequency caps, no quiet hours: it goes now or not
at all), but an explicit refusal still stops it: a channel the customer opted out of, a
suppression (hard bounce, complaint, carrier STOP) and the carrier's opt-out list are
honoured as for any message.

Every outcome has a reason, written to the ledger by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kizuna.domain.customer import (
    PHONE_PATTERN,
    Customer,
    PostalAddress,
    Suppression,
    channel_suppressions,
    suppression_rank,
)
from kizuna.domain.loyalty import address_hash
from kizuna.domain.timestamps import iso, parse_time
from kizuna.programs.steps import next_local_time, zone
from kizuna.runtime.config import ContactPolicyConfig

__all__ = [
    "ALLOWED_UNLESS_OPTED_OUT",
    "ANY_E164",
    "CONTACT_DAYS",
    "CONTENDED",
    "E164",
    "OUT_OF_TIME",
    "OUT_OF_TIME_DEFERRAL",
    "Address",
    "Outcome",
    "PolicyDecision",
    "PushTarget",
    "address_for",
    "address_hash",
    "channel_block",
    "contact_times",
    "contended",
    "decide",
    "paused_until",
    "push_targets",
    "quiet_until",
    "suppression_for",
    "topic_block",
]

INTERRUPTIVE = frozenset({"sms", "push", "line"})
CONTACT_DAYS = 7  # how long a send stays in a customer's CONTACT item (the weekly cap)
CONTENDED = "contact_contended"  # the reason of a send deferred by :func:`contended`
# the reason of a journey's first send deferred to its local time in the customer's new zone
LOCAL_TIME_MOVED = "local_time_moved"
CONTENDED_DEFERRAL = timedelta(minutes=1)
# the reason of a claimed message its invocation had no time left to send (surely not sent):
# deferred a minute, claimed and decided again then
OUT_OF_TIME = "out_of_time"
OUT_OF_TIME_DEFERRAL = timedelta(minutes=1)
E164 = re.compile(PHONE_PATTERN.removesuffix("$") + r"\Z")  # a customer's phone, whole
# any E.164 number, whole: what a lookup takes (a number stored before PHONE_PATTERN
# refused "+81 0...", now no SMS address, is still found to be corrected)
ANY_E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
Platform = Literal["APNS", "FCM"]


class Outcome(StrEnum):
    SEND = "send"
    SUPPRESS = "suppressed"
    DEFER = "deferred"


class PushTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, description="The device's key in Customer.devices")
    token: str = Field(min_length=1)
    platform: Platform


Address = str | tuple[PushTarget, ...] | PostalAddress


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Outcome
    channel: str | None = None
    reason: str | None = None
    until: datetime | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (channel, why) for channels passed over
    address: Address | None = None  # where ``channel`` reaches the customer
    # what the reason rests on, as data for the ledger row: ``cap`` (which frequency cap,
    # its window, what was counted) or ``quiet`` (the quiet hours and the zone they were
    # read in); see docs/PROGRAMS.md, "The ledger's reasons"
    detail: Mapping[str, object] | None = None


def push_targets(customer: Customer) -> tuple[PushTarget, ...]:
    """The customer's push devices, newest registration first."""
    devices = sorted(customer.devices.items(), key=lambda kv: kv[1].at, reverse=True)
    return tuple(
        PushTarget.model_validate({"key": key, "token": d.token, "platform": d.platform})
        for key, d in devices
        if d.platform in ("APNS", "FCM") and d.token
    )


def address_for(customer: Customer, channel: str) -> Address | None:
    """Where ``channel`` reaches the customer, or None: the one resolver of a customer's
    address for a channel, used by the policy (is the channel usable?) and by the send
    (where does the message go?). Consent is :func:`channel_block`'s business."""
    match str(channel):
        case "email":
            return customer.email or None
        case "sms":
            return customer.phone if customer.phone and E164.match(customer.phone) else None
        case "push":
            return push_targets(customer) or None
        case "line":
            return customer.line_user_id or None
        case "webhook":
            # the shop's own endpoint, not the customer's: the customer id is what it gets
            # (the endpoint itself is the step's or campaign's ``webhook``)
            return customer.customer_id
        case "card":
            # a card waits in Kizuna for the shop's own site or app (docs/channels/CARDS.md)
            return customer.customer_id
        case "dm":  # a stored address is complete (every field but line2 is required)
            return customer.postal_address
    raise ValueError(f"unknown channel {channel!r}")


# Channels a customer is in unless they opted out: a card is seen only on the shop's own
# site or app, where the customer is signed in (docs/channels/CARDS.md, "Consent").
ALLOWED_UNLESS_OPTED_OUT = frozenset({"card"})


def _hash_of(address: Address) -> str:
    """The suppression hash of an address (push: of its device keys)."""
    if isinstance(address, str):
        return address_hash(address)
    if isinstance(address, PostalAddress):
        return address_hash(address.model_dump_json())
    return address_hash(",".join(sorted(t.key for t in address)))


def channel_block(
    customer: Customer, channel: str, address: Address | None, *, transactional: bool = False
) -> str | None:
    """Why ``channel`` cannot be used for this customer at ``address``, or None if it can.
    A marketing message needs the customer's opt-in; a transactional one only the absence
    of an opt-out."""
    if not address:
        return "no_address"
    if channel == "webhook":
        # a touch through the shop's own system (a CRM, a print vendor): no channel the
        # customer consents to; the global control, caps and holdouts still apply
        return None
    consent = customer.consent.get(channel)
    if transactional or channel in ALLOWED_UNLESS_OPTED_OUT:
        if consent is not None and consent.status == "opted_out":
            return "opted_out"
    elif consent is None or consent.status != "opted_in":
        return "no_consent"
    suppression = suppression_for(customer, channel, address)
    if suppression is not None:
        return f"suppressed_{suppression.reason}"
    return None


def suppression_for(customer: Customer, channel: str, address: Address) -> Suppression | None:
    """The suppression that stops ``channel`` at ``address``, or None: the latest of the
    channel's suppressions of that address or of every address (one per address is kept;
    one of another address, older or newer, never lifts it)."""
    suppressions = channel_suppressions(customer, channel)
    if not suppressions:
        return None
    hashed = _hash_of(address)
    blocking = [
        (suppression_rank(key, s), s)
        for key, s in suppressions.items()
        if s.address_hash is None or s.address_hash == hashed
    ]
    return max(blocking, key=lambda ranked: ranked[0])[1] if blocking else None


def topic_block(customer: Customer, channel: str, topic: str) -> str | None:
    """``topic_opted_out`` if the customer opted out of ``topic`` on ``channel``."""
    consent = customer.topics.get(topic, {}).get(channel)
    if consent is not None and consent.status == "opted_out":
        return "topic_opted_out"
    return None


def paused_until(customer: Customer, now: datetime) -> datetime | None:
    """The end of the customer's pause if it is still running at ``now``."""
    pause = customer.pause
    if pause is None or pause.until is None or pause.until <= now:
        return None
    return pause.until


def _hhmm(value: str) -> time:
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def quiet_until(now: datetime, tz_name: str | None, cfg: ContactPolicyConfig) -> datetime | None:
    """End of the quiet period if ``now`` falls in it (in the customer's zone)."""
    tz = zone(tz_name, cfg.default_time_zone)
    start, end = _hhmm(cfg.quiet_start), _hhmm(cfg.quiet_end)
    local = now.astimezone(tz).time()
    quiet = (start <= local or local < end) if start > end else (start <= local < end)
    if not quiet:
        return None
    return next_local_time(now, end, tz)


def contact_times(
    sent: Mapping[str, str], now: datetime, own: str | None = None
) -> tuple[list[datetime], list[str]]:
    """A customer's CONTACT item (``sent``: message key -> ISO time, written with every
    claimed send, journey or campaign): the times within the cap window (:func:`decide`'s
    ``sent_at``), and the keys older than it (removed by the next write). ``own``: the key
    of the message being decided, never counted against itself (an earlier claim of this
    same message noted it, and crashed before sending: the retry's note replaces it)."""
    horizon = now - timedelta(days=CONTACT_DAYS)
    times, stale = [], []
    for key, at in sent.items():
        if key == own:
            continue
        try:
            t = parse_time(str(at))
        except ValueError:  # not a time (no version writes one: a hand edit): removed by
            stale.append(key)  # the next note, never failing every send to the customer
            continue
        if t > horizon:
            times.append(t)
        else:
            stale.append(key)
    return times, sorted(stale)


def contended(now: datetime) -> PolicyDecision:
    """A send whose claim found the customer's CONTACT item changed since its read each
    time it was decided again (other sends noted meanwhile): deferred a minute, to be
    decided then on what was sent; never dropped, never sent past a cap."""
    return PolicyDecision(Outcome.DEFER, None, CONTENDED, now + CONTENDED_DEFERRAL)


def decide(
    customer: Customer,
    channels: Sequence[str],
    priority: int,
    sent_at: Sequence[datetime],
    now: datetime,
    cfg: ContactPolicyConfig,
    configured: frozenset[str] | None = None,
    blocked: Callable[[str], str | None] | None = None,
    *,
    transactional: bool = False,
    topic: str | None = None,
    topic_transactional: bool = False,
) -> PolicyDecision:
    """``sent_at``: when this customer was sent messages (any program); ``configured``: the
    channels this deployment can send on (None: all); ``blocked``: a last check, asked only
    of a channel that passed every other one (the carrier's opt-out list for SMS): why it
    cannot be used, or None. ``transactional``: see the module's docstring (consent as an
    absence of opt-out, no caps, no quiet hours: SEND or SUPPRESS, never DEFER). ``topic``:
    the message's preference topic (None: none is checked); ``topic_transactional``: it is
    the transactional topic (no topic opt-out, no pause)."""
    skipped: list[tuple[str, str]] = []
    preferences = topic is not None and not topic_transactional
    channel: str | None = None
    address: Address | None = None
    for candidate in channels:
        at = address_for(customer, candidate)
        block = channel_block(customer, candidate, at, transactional=transactional)
        if block is None and configured is not None and candidate not in configured:
            block = "channel_not_configured"
        if block is None and preferences:
            assert topic is not None
            block = topic_block(customer, candidate, topic)
        if block is None and blocked is not None:
            block = blocked(candidate)
        if block is None:
            channel, address = candidate, at
            break
        skipped.append((candidate, block))
    if channel is None:
        if any(why == "topic_opted_out" for _, why in skipped):
            return PolicyDecision(Outcome.SUPPRESS, None, "topic_opted_out", skipped=tuple(skipped))
        return PolicyDecision(Outcome.SUPPRESS, None, "no_channel", skipped=tuple(skipped))

    def chosen(
        outcome: Outcome,
        reason: str | None,
        until: datetime | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> PolicyDecision:
        return PolicyDecision(outcome, channel, reason, until, tuple(skipped), address, detail)

    pause_end = paused_until(customer, now) if preferences else None
    if pause_end is not None:
        return chosen(Outcome.SUPPRESS, "paused", detail={"paused_until": iso(pause_end)})
    if transactional:
        return chosen(Outcome.SEND, None)
    if channel in INTERRUPTIVE:
        # before the caps: the caps are rolling windows, decided again when the quiet
        # period ends (a cap full at 23:00 may have room at 08:00)
        until = quiet_until(now, customer.time_zone, cfg)
        if until is not None:
            quiet = {
                "start": cfg.quiet_start,
                "end": cfg.quiet_end,
                "time_zone": str(zone(customer.time_zone, cfg.default_time_zone)),
            }
            return chosen(Outcome.DEFER, "quiet_hours", until, {"quiet": quiet})
    if priority < cfg.bypass_caps_priority:
        day = sum(1 for t in sent_at if t > now - timedelta(days=1))
        week = sum(1 for t in sent_at if t > now - timedelta(days=7))
        for reason, count, limit, days in (
            ("frequency_cap_day", day, cfg.max_per_day, 1),
            ("frequency_cap_week", week, cfg.max_per_week, 7),
        ):
            if count >= limit:
                cap = {"limit": limit, "days": days, "count": count, "priority": priority}
                return chosen(Outcome.SUPPRESS, reason, detail={"cap": cap})
    return chosen(Outcome.SEND, None)
