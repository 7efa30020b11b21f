"""Each contact-policy rule deciding on its own, in the documented order."""

from datetime import UTC, datetime, timedelta
from typing import Any

from kizuna.delivery.policy import (
    CONTACT_DAYS,
    Outcome,
    address_hash,
    contact_times,
    decide,
    quiet_until,
)
from kizuna.domain.customer import Customer, Device, Suppression
from kizuna.runtime.config import ContactPolicyConfig
from tests import factories
from tests.factories import LINE_USER, PHONE
from tests.factories import opted_in as consent

NOON_TOKYO = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 JST
NIGHT_TOKYO = datetime(2026, 1, 5, 13, 30, tzinfo=UTC)  # 22:30 JST
CFG = ContactPolicyConfig()  # 2/day, 5/week, bypass >= 90, quiet 21:00-08:00


def customer(**extra: Any) -> Customer:
    """c1, opted in to every channel and reachable on each (one push device)."""
    base: dict[str, Any] = {
        "email": "a@example.jp",
        "phone": PHONE,
        "line_user_id": LINE_USER,
        "devices": {"k": Device(token="t" * 32, platform="FCM", at=NOON_TOKYO)},
        "consent": consent("email", "sms", "push", "line"),
    }
    return factories.customer(**{**base, **extra})


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


def test_a_night_message_over_a_cap_is_deferred_and_sent_when_the_cap_has_room() -> None:
    # given: two pushes this morning (07:30 and 08:00 JST): the daily cap is full at 22:30
    c = customer()
    morning = [datetime(2026, 1, 4, 22, 30, tzinfo=UTC), datetime(2026, 1, 4, 23, 0, tzinfo=UTC)]
    # when: decided in quiet hours
    night = decide(c, ["push"], 50, morning, NIGHT_TOKYO, CFG)
    # then: deferred to 08:00, not suppressed at night (the cap is a rolling 24 hours)
    assert (night.outcome, night.reason) == (Outcome.DEFER, "quiet_hours")
    assert night.until is not None
    again = decide(c, ["push"], 50, morning, night.until, CFG)
    assert (again.outcome, again.channel) == (Outcome.SEND, "push")
    # and two sent at 09:00 and 10:00 JST still hold the cap at 08:00 the next day
    later = [datetime(2026, 1, 5, 0, 0, tzinfo=UTC), datetime(2026, 1, 5, 1, 0, tzinfo=UTC)]
    capped = decide(c, ["push"], 50, later, night.until, CFG)
    assert (capped.outcome, capped.reason) == (Outcome.SUPPRESS, "frequency_cap_day")
    # an email (not interruptive) over the cap at night is suppressed as by day
    email = decide(c, ["email"], 50, morning, NIGHT_TOKYO, CFG)
    assert (email.outcome, email.reason) == (Outcome.SUPPRESS, "frequency_cap_day")


def test_quiet_hours_follow_the_customers_time_zone() -> None:
    # 22:30 in Tokyo is 13:30 in London: not quiet there
    assert quiet_until(NIGHT_TOKYO, "Europe/London", CFG) is None
    assert quiet_until(NIGHT_TOKYO, "Asia/Tokyo", CFG) is not None


def test_one_function_resolves_an_address_for_the_policy_and_the_channels() -> None:
    # the contact policy and the channel adapters ask the same resolver
    from kizuna.delivery import channels, policy

    assert channels.address_for is policy.address_for


def test_a_phone_that_is_not_e164_is_no_address_and_the_next_channel_is_used() -> None:
    # given a number SMS cannot send to (the policy used to accept any phone, the channel
    # only E.164: the step then ended no_channel without trying email)
    c = customer(phone="090-1234-5678")
    # when SMS is tried first
    d = decide(c, ["sms", "email"], 50, [], NOON_TOKYO, CFG)
    # then SMS is passed over and email is used, with the address it was decided for
    assert (d.outcome, d.channel, d.address) == (Outcome.SEND, "email", "a@example.jp")
    assert d.skipped == (("sms", "no_address"),)


def test_a_device_push_cannot_reach_is_no_address() -> None:
    c = customer(devices={"k": Device(token="t" * 32, platform="WNS", at=NOON_TOKYO)})
    d = decide(c, ["push", "line"], 50, [], NOON_TOKYO, CFG)
    assert (d.channel, d.skipped) == ("line", (("push", "no_address"),))


def test_the_last_check_is_asked_only_of_a_channel_that_passed_the_others() -> None:
    # given a last check (the carrier's opt-out list) that blocks SMS
    asked: list[str] = []

    def carrier(channel: str) -> str | None:
        asked.append(channel)
        return "suppressed_opt_out" if channel == "sms" else None

    c = customer(consent=consent("sms", "email"))
    # when push (no consent), SMS and email are tried
    d = decide(c, ["push", "sms", "email"], 50, [], NOON_TOKYO, CFG, blocked=carrier)
    # then push never reaches the check, SMS is blocked by it, email is used
    assert asked == ["sms", "email"] and d.channel == "email"
    assert d.skipped == (("push", "no_consent"), ("sms", "suppressed_opt_out"))


def test_a_contact_entry_that_is_not_a_time_is_stale_not_a_failed_send() -> None:
    """No version writes one (a hand edit): it raised, failing every send group and campaign
    batch that held the customer; it is removed by the next note instead."""
    sent = {"ex-1#coupon": "2026-01-05T01:00:00.000000Z", "typo": "yesterday", "n": "12"}
    times, stale = contact_times(sent, NOON_TOKYO)
    assert times == [datetime(2026, 1, 5, 1, 0, tzinfo=UTC)]
    assert stale == ["n", "typo"]


def test_the_contact_item_gives_the_caps_their_times_and_names_its_stale_keys() -> None:
    # given a CONTACT item with a journey message, a campaign and a send a week old
    sent = {
        "ex-1#coupon": "2026-01-05T01:00:00.000000Z",
        "campaign:sale:1": "2026-01-04T03:00:00.000000Z",
        "campaign:old:1": (NOON_TOKYO - timedelta(days=CONTACT_DAYS)).isoformat(),
    }
    # when it is read
    times, stale = contact_times(sent, NOON_TOKYO)
    # then both recent sends count (journey and campaign alike), the old one is stale
    assert sorted(times) == [
        datetime(2026, 1, 4, 3, 0, tzinfo=UTC),
        datetime(2026, 1, 5, 1, 0, tzinfo=UTC),
    ]
    assert stale == ["campaign:old:1"]
    d = decide(
        customer(), ["email"], 50, [*times, NOON_TOKYO - timedelta(hours=1)], NOON_TOKYO, CFG
    )
    assert (d.outcome, d.reason) == (Outcome.SUPPRESS, "frequency_cap_day")


# --- transactional messages ---------------------------------------------------------------------
def test_transactional_skips_caps_and_quiet_hours() -> None:
    # given: at night, after a week's worth of marketing sends
    sent = [NIGHT_TOKYO - timedelta(hours=h) for h in range(1, 8)]
    marketing = decide(customer(), ["sms"], 50, sent, NIGHT_TOKYO, CFG)
    assert (marketing.outcome, marketing.reason) == (Outcome.DEFER, "quiet_hours")
    assert marketing.until is not None
    morning = decide(customer(), ["sms"], 50, sent, marketing.until, CFG)
    assert (morning.outcome, morning.reason) == (Outcome.SUPPRESS, "frequency_cap_day")
    # when transactional: sent now
    d = decide(customer(), ["sms"], 0, sent, NIGHT_TOKYO, CFG, transactional=True)
    assert (d.outcome, d.channel, d.until) == (Outcome.SEND, "sms", None)


def test_transactional_needs_no_opt_in_but_an_opt_out_refuses() -> None:
    no_record = customer(consent={})
    d = decide(no_record, ["email"], 0, [], NOON_TOKYO, CFG, transactional=True)
    assert (d.outcome, d.channel) == (Outcome.SEND, "email")
    refused = consent("sms") | {
        "email": consent("email")["email"].model_copy(update={"status": "opted_out"})
    }
    d = decide(
        customer(consent=refused), ["email", "sms"], 0, [], NOON_TOKYO, CFG, transactional=True
    )
    assert d.channel == "sms" and d.skipped == (("email", "opted_out"),)


def test_transactional_honours_suppressions_and_the_carrier_list() -> None:
    sup = {"email": Suppression(reason="complaint", at=NOON_TOKYO)}
    d = decide(customer(suppressions=sup), ["email"], 0, [], NOON_TOKYO, CFG, transactional=True)
    assert (d.outcome, d.reason) == (Outcome.SUPPRESS, "no_channel")
    assert d.skipped == (("email", "suppressed_complaint"),)
    d = decide(
        customer(),
        ["sms"],
        0,
        [],
        NOON_TOKYO,
        CFG,
        blocked=lambda _: "suppressed_opt_out",
        transactional=True,
    )
    assert d.outcome == Outcome.SUPPRESS and d.skipped == (("sms", "suppressed_opt_out"),)
