"""Each contact-policy rule deciding on its own, in the documented order."""

from datetime import UTC, datetime, timedelta
from typing import Any

from kizuna.delivery.policy import Outcome, address_hash, decide, quiet_until
from kizuna.domain.customer import ConsentState, Customer, Device, Suppression
from kizuna.runtime.config import ContactPolicyConfig

NOON_TOKYO = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 JST
NIGHT_TOKYO = datetime(2026, 1, 5, 13, 30, tzinfo=UTC)  # 22:30 JST
CFG = ContactPolicyConfig()  # 2/day, 5/week, bypass >= 90, quiet 21:00-08:00


def consent(*channels: str) -> dict[str, ConsentState]:
    return {
        c: ConsentState(status="opted_in", at=NOON_TOKYO, source="t", stamp="s") for c in channels
    }


def customer(**extra: Any) -> Customer:
    base: dict[str, Any] = {
        "customer_id": "c1",
        "email": "a@example.jp",
        "phone": "+819012345678",
        "line_user_id": "U" + "0" * 32,
        "time_zone": "Asia/Tokyo",
        "devices": {"k": Device(token="t" * 32, platform="FCM", at=NOON_TOKYO)},
        "consent": consent("email", "sms", "push", "line"),
    }
    base.update(extra)
    return Customer(**base)


def test_first_consented_channel_of_the_fallback_list_is_used() -> None:
    c = customer(consent=consent("push", "email"))
    d = decide(c, ["line", "push", "email"], 50, [], NOON_TOKYO, CFG)
    assert (d.outcome, d.channel) == (Outcome.SEND, "push")
    assert d.skipped == (("line", "no_consent"),)


def test_no_reachable_channel_is_suppressed_with_no_channel() -> None:
    c = customer(email=None, consent=consent("email"))
    d = decide(c, ["email", "sms"], 50, [], NOON_TOKYO, CFG)
    assert (d.outcome, d.reason) == (Outcome.SUPPRESS, "no_channel")
    assert dict(d.skipped) == {"email": "no_address", "sms": "no_consent"}


def test_suppressed_address_is_skipped_but_a_new_address_is_not() -> None:
    sup = {
        "email": Suppression(
            reason="bounce", at=NOON_TOKYO, address_hash=address_hash("a@example.jp")
        )
    }
    d = decide(customer(suppressions=sup), ["email", "sms"], 50, [], NOON_TOKYO, CFG)
    assert d.channel == "sms" and d.skipped == (("email", "suppressed_bounce"),)
    d2 = decide(
        customer(suppressions=sup, email="new@example.jp"), ["email"], 50, [], NOON_TOKYO, CFG
    )
    assert d2.channel == "email"


def test_frequency_caps_per_day_and_week_unless_priority_bypasses() -> None:
    c = customer()
    two_today = [NOON_TOKYO - timedelta(hours=1), NOON_TOKYO - timedelta(hours=5)]
    assert decide(c, ["email"], 50, two_today, NOON_TOKYO, CFG).reason == "frequency_cap_day"
    five_this_week = [NOON_TOKYO - timedelta(days=d) for d in (1.5, 2, 3, 4, 5)]
    assert decide(c, ["email"], 50, five_this_week, NOON_TOKYO, CFG).reason == "frequency_cap_week"
    assert decide(c, ["email"], 95, two_today, NOON_TOKYO, CFG).outcome == Outcome.SEND
    old = [NOON_TOKYO - timedelta(days=8)] * 10
    assert decide(c, ["email"], 50, old, NOON_TOKYO, CFG).outcome == Outcome.SEND


def test_quiet_hours_defer_interruptive_channels_to_the_morning() -> None:
    c = customer()
    d = decide(c, ["push"], 50, [], NIGHT_TOKYO, CFG)
    assert (d.outcome, d.reason) == (Outcome.DEFER, "quiet_hours")
    assert d.until == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)  # 08:00 JST next day
    # email is not interruptive
    assert decide(c, ["email"], 50, [], NIGHT_TOKYO, CFG).outcome == Outcome.SEND


def test_quiet_hours_follow_the_customers_time_zone() -> None:
    # 22:30 in Tokyo is 13:30 in London: not quiet there
    assert quiet_until(NIGHT_TOKYO, "Europe/London", CFG) is None
    assert quiet_until(NIGHT_TOKYO, "Asia/Tokyo", CFG) is not None
