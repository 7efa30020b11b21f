"""The customer page (API and console) shows the preference centre's choices: each topic and
channel the customer named, with when and where, and a running pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kizuna.domain.customer import ConsentState, Customer, PauseState
from kizuna.runtime.config import KizunaConfig
from kizuna.services.customers import customer_profile

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
AT = NOW - timedelta(days=2)


def choice(status: str) -> ConsentState:
    return ConsentState(status=status, at=AT, source="preference_page", stamp=f"{AT}|{status}")


def test_topic_choices_and_a_running_pause_are_on_the_profile() -> None:
    c = Customer(
        customer_id="c1",
        topics={"promotions": {"email": choice("opted_out"), "line": choice("opted_in")}},
        pause=PauseState(
            until=NOW + timedelta(days=28), at=AT, source="preference_page", stamp="s"
        ),
    )
    prefs = customer_profile(c, reveal=False, now=NOW, cfg=KizunaConfig()).preferences
    assert [(p.topic, p.channel, p.status, p.source) for p in prefs.topics] == [
        ("promotions", "email", "opted_out", "preference_page"),
        ("promotions", "line", "opted_in", "preference_page"),
    ]
    assert prefs.paused_until == NOW + timedelta(days=28)


def test_an_ended_pause_and_no_choices_show_nothing() -> None:
    c = Customer(
        customer_id="c1",
        pause=PauseState(until=NOW - timedelta(days=1), at=AT, source="app", stamp="s"),
    )
    prefs = customer_profile(c, reveal=False, now=NOW, cfg=KizunaConfig()).preferences
    assert prefs.topics == [] and prefs.paused_until is None and prefs.pause_source is None
