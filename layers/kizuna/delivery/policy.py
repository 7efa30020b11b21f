"""The contact policy: one for all programs, checked at send time, in order.

1. consent and suppression per channel (with an address to send to);
2. global frequency caps per customer across programs (per day, per week), unless the
   program's priority is at or above ``bypass_caps_priority``;
3. quiet hours in the customer's time zone for interruptive channels (SMS, push, LINE):
   the message is deferred to the end of the quiet period, never dropped;
4. fallback: the first channel of the step's ordered list that passes 1 is used.

Every outcome has a reason, written to the ledger by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import address_hash
from kizuna.programs.steps import next_local_time, zone
from kizuna.runtime.config import ContactPolicyConfig

__all__ = ["Outcome", "PolicyDecision", "address_hash", "decide", "quiet_until"]

INTERRUPTIVE = frozenset({"sms", "push", "line"})


class Outcome(StrEnum):
    SEND = "send"
    SUPPRESS = "suppressed"
    DEFER = "deferred"


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Outcome
    channel: str | None = None
    reason: str | None = None
    until: datetime | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (channel, why) for channels passed over


def address_of(customer: Customer, channel: str) -> str | None:
    if channel == "email":
        return customer.email
    if channel == "sms":
        return customer.phone
    if channel == "line":
        return customer.line_user_id
    if channel == "push":
        return ",".join(sorted(customer.devices)) or None
    return None


def channel_block(customer: Customer, channel: str) -> str | None:
    """Why ``channel`` cannot be used for this customer, or None if it can."""
    address = address_of(customer, channel)
    if not address:
        return "no_address"
    consent = customer.consent.get(channel)
    if consent is None or consent.status != "opted_in":
        return "no_consent"
    suppression = customer.suppressions.get(channel)
    if suppression is not None and (
        suppression.address_hash is None or suppression.address_hash == address_hash(address)
    ):
        return f"suppressed_{suppression.reason}"
    return None


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


def decide(
    customer: Customer,
    channels: Sequence[str],
    priority: int,
    sent_at: Sequence[datetime],
    now: datetime,
    cfg: ContactPolicyConfig,
    configured: frozenset[str] | None = None,
) -> PolicyDecision:
    """``sent_at``: when this customer was sent messages (any program); ``configured``: the
    channels this deployment can send on (None: all)."""
    skipped: list[tuple[str, str]] = []
    channel = None
    for candidate in channels:
        block = channel_block(customer, candidate)
        if block is None and configured is not None and candidate not in configured:
            block = "channel_not_configured"
        if block is None:
            channel = candidate
            break
        skipped.append((candidate, block))
    if channel is None:
        return PolicyDecision(Outcome.SUPPRESS, None, "no_channel", skipped=tuple(skipped))
    if priority < cfg.bypass_caps_priority:
        day = sum(1 for t in sent_at if t > now - timedelta(days=1))
        week = sum(1 for t in sent_at if t > now - timedelta(days=7))
        if day >= cfg.max_per_day:
            return PolicyDecision(
                Outcome.SUPPRESS, channel, "frequency_cap_day", skipped=tuple(skipped)
            )
        if week >= cfg.max_per_week:
            return PolicyDecision(
                Outcome.SUPPRESS, channel, "frequency_cap_week", skipped=tuple(skipped)
            )
    if channel in INTERRUPTIVE:
        until = quiet_until(now, customer.time_zone, cfg)
        if until is not None:
            return PolicyDecision(Outcome.DEFER, channel, "quiet_hours", until, tuple(skipped))
    return PolicyDecision(Outcome.SEND, channel, None, skipped=tuple(skipped))
