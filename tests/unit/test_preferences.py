"""The preference centre's model and policy: topics in configuration, the
``preferences.changed`` fold, and the contact policy's topic and pause checks."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.delivery.policy import Outcome, decide
from kizuna.domain.customer import Customer, Device
from kizuna.domain.ingest import apply_events
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.runtime.config import ContactPolicyConfig, KizunaConfig, PreferencesConfig
from tests import factories
from tests.factories import LINE_USER, PHONE, envelope
from tests.factories import opted_in as consent

NOON_TOKYO = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
CFG = KizunaConfig()
CONTACT = ContactPolicyConfig()


def customer(**extra: Any) -> Customer:
    base: dict[str, Any] = {
        "email": "a@example.jp",
        "phone": PHONE,
        "line_user_id": LINE_USER,
        "devices": {"k": Device(token="t" * 32, platform="FCM", at=NOON_TOKYO)},
        "consent": consent("email", "sms", "push", "line"),
    }
    return factories.customer(**{**base, **extra})


def prefs(
    c: Customer, at: datetime, n: int = 0, **fields: Any
) -> tuple[Customer, list[dict[str, Any]]]:
    detail = {"customer_id": c.customer_id, "occurred_at": at.isoformat(), **fields}
    raw = envelope("preferences.changed", detail, f"p{n}")
    applied = apply_events(c, [parse_inbound(raw)], CFG, at)
    return applied.customer, [a.model_dump() for a in applied.activity]


# -- configuration ---------------------------------------------------------------------------
def test_default_topics_with_one_transactional() -> None:
    p = PreferencesConfig()
    assert p.names == ("promotions", "loyalty", "newsletter", "service")
    assert p.transactional_topic == "service" and p.default_topic == "promotions"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"topics": []}, "at least 1"),
        ({"topics": [{"name": "Promo", "labels": {"en": "a", "ja": "b"}}]}, "name"),
        (
            {
                "topics": [
                    {"name": "a", "labels": {"en": "a", "ja": "a"}, "transactional": True},
                    {"name": "a", "labels": {"en": "a", "ja": "a"}},
                ],
                "default_topic": "a",
            },
            "declared twice",
        ),
        (
            {
                "topics": [{"name": "news", "labels": {"en": "N", "ja": "N"}}],
                "default_topic": "news",
            },
            "exactly one topic must be transactional",
        ),
        (
            {
                "topics": [
                    {"name": "news", "labels": {"en": "N", "ja": "N"}},
                    {"name": "svc", "labels": {"en": "S", "ja": "S"}, "transactional": True},
                ]
            },
            "default_topic: 'promotions' is not a declared topic",
        ),
        ({"topics": [{"name": "x", "labels": {"en": "x"}}]}, "ja"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_topics_are_validated_strictly(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PreferencesConfig.model_validate(raw)


# -- the fold --------------------------------------------------------------------------------
def test_preferences_are_stamped_per_topic_and_channel_last_writer_wins() -> None:
    c = customer()
    later, earlier = NOON_TOKYO + timedelta(hours=2), NOON_TOKYO + timedelta(hours=1)
    c, rows = prefs(c, later, 1, topics={"promotions": {"email": "opted_out"}}, source="page")
    assert rows and rows[0]["data"]["source"] == "page" and rows[0]["kind"] == "CONSENT"
    # an older opt-in arriving later does not undo the newer opt-out; another channel changes
    c, _ = prefs(c, earlier, 2, topics={"promotions": {"email": "opted_in", "sms": "opted_out"}})
    assert c.topics["promotions"]["email"].status == "opted_out"
    assert c.topics["promotions"]["sms"].status == "opted_out"
    # the same event again: no new row
    _, again = prefs(c, later, 1, topics={"promotions": {"email": "opted_out"}}, source="page")
    assert again == []


def test_pause_runs_from_occurred_at_and_resume_ends_it() -> None:
    c, rows = prefs(customer(), NOON_TOKYO, 1, pause_days=30)
    assert c.pause is not None and c.pause.until == NOON_TOKYO + timedelta(days=30)
    assert rows[0]["data"]["pause_days"] == 30
    c, _ = prefs(c, NOON_TOKYO + timedelta(days=1), 2, resume=True)
    assert c.pause is not None and c.pause.until is None


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        # not declared: the name is the producer's, not repeated in the (logged) reason
        ({"topics": {"coupons": {"email": "opted_out"}}}, "detail.topics.<key>: "),
        # transactional: not optional (a declared name is named)
        ({"topics": {"service": {"email": "opted_out"}}}, "detail.topics.service: "),
    ],
)
def test_an_undeclared_or_transactional_opt_out_is_refused_and_changes_nothing(
    fields: dict[str, Any], where: str
) -> None:
    c = customer()
    detail = {"customer_id": c.customer_id, "occurred_at": NOON_TOKYO.isoformat(), **fields}
    applied = apply_events(
        c, [parse_inbound(envelope("preferences.changed", detail, "x"))], CFG, NOON_TOKYO
    )
    assert "x" in applied.refused and applied.customer.topics == {} and not applied.activity
    assert where in applied.refused["x"] and "coupons" not in applied.refused["x"]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"pause_days": 7},
        {"pause_days": 30, "resume": True},
        {"topics": {"promotions": {}}},
        {"topics": {"promotions": {"fax": "opted_out"}}},
        {"topics": {"promotions": {"email": "maybe"}}},
        {"topics": {"Promo tions": {"email": "opted_out"}}},
    ],
)
def test_malformed_preferences_events_are_rejected(fields: dict[str, Any]) -> None:
    detail = {"customer_id": "c1", "occurred_at": NOON_TOKYO.isoformat(), **fields}
    with pytest.raises(EventRejected, match=r"preferences\.changed"):
        parse_inbound(envelope("preferences.changed", detail, "x"))


# -- the policy ------------------------------------------------------------------------------
def test_topic_opt_out_stops_that_topic_on_that_channel_and_falls_back() -> None:
    c, _ = prefs(customer(), NOON_TOKYO, topics={"promotions": {"email": "opted_out"}})
    d = decide(c, ["email", "sms"], 50, [], NOON_TOKYO, CONTACT, topic="promotions")
    assert (d.outcome, d.channel) == (Outcome.SEND, "sms")
    assert d.skipped == (("email", "topic_opted_out"),)
    other = decide(c, ["email"], 50, [], NOON_TOKYO, CONTACT, topic="newsletter")
    assert (other.outcome, other.channel) == (Outcome.SEND, "email")


def test_topic_opted_out_on_every_channel_is_the_reason() -> None:
    everywhere = {ch: "opted_out" for ch in ("email", "sms", "push", "line")}
    c, _ = prefs(customer(), NOON_TOKYO, topics={"promotions": everywhere})
    d = decide(c, ["email", "line"], 50, [], NOON_TOKYO, CONTACT, topic="promotions")
    assert (d.outcome, d.reason) == (Outcome.SUPPRESS, "topic_opted_out")
    # the channel's master switch still comes first: not consented is what the row says
    c2 = c.model_copy(update={"consent": consent("line")})
    d2 = decide(c2, ["email", "sms"], 50, [], NOON_TOKYO, CONTACT, topic="promotions")
    assert d2.reason == "no_channel" and dict(d2.skipped) == {
        "email": "no_consent",
        "sms": "no_consent",
    }


def test_pause_stops_marketing_until_its_end_and_transactional_still_goes() -> None:
    c, _ = prefs(customer(), NOON_TOKYO, pause_days=30)
    d = decide(c, ["email"], 50, [], NOON_TOKYO + timedelta(days=29), CONTACT, topic="loyalty")
    assert (d.outcome, d.reason) == (Outcome.SUPPRESS, "paused")
    assert d.detail == {"paused_until": "2026-02-04T03:00:00.000000Z"}
    after = decide(c, ["email"], 50, [], NOON_TOKYO + timedelta(days=30), CONTACT, topic="loyalty")
    assert after.outcome == Outcome.SEND
    tx = decide(
        c,
        ["email"],
        50,
        [],
        NOON_TOKYO + timedelta(days=1),
        CONTACT,
        topic="service",
        topic_transactional=True,
    )
    assert tx.outcome == Outcome.SEND


def test_transactional_topic_bypasses_topic_opt_out_but_not_the_channel() -> None:
    c = customer()
    c = c.model_copy(
        update={
            "topics": {
                "service": {"email": c.consent["email"].model_copy(update={"status": "opted_out"})}
            }
        }
    )
    d = decide(c, ["email"], 50, [], NOON_TOKYO, CONTACT, topic="service", topic_transactional=True)
    assert d.outcome == Outcome.SEND
    off = c.model_copy(update={"consent": consent("sms")})
    d2 = decide(
        off, ["email"], 50, [], NOON_TOKYO, CONTACT, topic="service", topic_transactional=True
    )
    assert (d2.outcome, d2.skipped) == (Outcome.SUPPRESS, (("email", "no_consent"),))
