"""The campaign engine's decisions: per recipient (the journeys' contact policy), the
manifest layout, the sequencer and its pacing, the circuit breaker and the winner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.campaigns.engine import (
    ArmResult,
    Member,
    breaker_reason,
    chunk_of,
    deferred_key,
    group_members,
    measured,
    next_step,
    pace,
    pick_winner,
    plan_recipient,
)
from kizuna.campaigns.loader import parse_campaign
from kizuna.campaigns.model import Campaign
from kizuna.domain.customer import Customer
from kizuna.runtime.config import KizunaConfig
from tests import factories
from tests.factories import LINE_USER, PHONE, opted_in

NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo, 22:00 (Sunday) in New York
CFG = KizunaConfig()


def campaign(**extra: Any) -> Campaign:
    """The sale, by email or else LINE."""
    return parse_campaign(factories.campaign_definition(**{"channels": ["email", "line"], **extra}))


def customer(consent: tuple[str, ...] = ("email", "line", "sms"), **extra: Any) -> Customer:
    """c1, with an address on email, LINE and SMS, opted in to ``consent``."""
    base = {"phone": PHONE, "line_user_id": LINE_USER, "consent": opted_in(*consent)}
    return factories.customer(**{**base, **extra})


# --- per recipient -------------------------------------------------------------------------
def test_consent_and_fallback_choose_the_first_usable_channel() -> None:
    # given: a customer who said no to email but yes to LINE
    c = customer(consent=("line",))
    # when
    plan = plan_recipient(campaign(), Member("c1", "default"), c, {}, NOON, CFG, None)
    # then: LINE, and why email was passed over
    assert (plan.status, plan.channel) == ("send", "line")
    assert plan.skipped == (("email", "no_consent"),)
    none = plan_recipient(
        campaign(), Member("c1", "default"), customer(consent=()), {}, NOON, CFG, None
    )
    assert (none.status, none.reason) == ("suppressed", "no_channel")


def test_frequency_caps_count_the_contact_item_unless_priority_bypasses_them() -> None:
    # given: two sends today in the CONTACT item (the daily cap) and one stale entry
    sent = {
        "campaign:a:1": (NOON - timedelta(hours=2)).isoformat(),
        "campaign:b:1": (NOON - timedelta(hours=5)).isoformat(),
        "campaign:old:1": (NOON - timedelta(days=9)).isoformat(),
    }
    # when
    capped = plan_recipient(campaign(), Member("c1", "default"), customer(), sent, NOON, CFG, None)
    urgent = plan_recipient(
        campaign(priority=95), Member("c1", "default"), customer(), sent, NOON, CFG, None
    )
    # then
    assert (capped.status, capped.reason) == ("suppressed", "frequency_cap_day")
    assert capped.stale == ("campaign:old:1",)
    assert urgent.status == "send"


def test_quiet_hours_defer_in_the_customers_own_zone() -> None:
    # given: an SMS campaign; 22:00 in New York is quiet, 12:00 in Tokyo is not
    sms = campaign(channels=["sms"])
    ny = customer(time_zone="America/New_York")
    # when
    deferred = plan_recipient(sms, Member("c1", "default"), ny, {}, NOON, CFG, None)
    tokyo = plan_recipient(sms, Member("c1", "default"), customer(), {}, NOON, CFG, None)
    # then: deferred to 08:00 New York time, not dropped
    assert (deferred.status, deferred.reason) == ("deferred", "quiet_hours")
    assert deferred.until == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
    assert tokyo.status == "send"


def test_holdout_is_recorded_and_variants_choose_their_template() -> None:
    ab = campaign(
        variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "template": "urgent"}],
        winner={"test_percent": 20, "metric": "open", "wait_hours": 4},
    )
    held = plan_recipient(ab, Member("c1", "holdout"), customer(), {}, NOON, CFG, None)
    b = plan_recipient(ab, Member("c1", "b"), customer(), {}, NOON, CFG, None)
    rest = plan_recipient(ab, Member("c1", "winner"), customer(), {}, NOON, CFG, "b")
    assert (held.status, held.channel) == ("holdout", None)
    assert (b.variant, b.template) == ("b", "urgent")
    assert (rest.variant, rest.template) == ("b", "urgent")
    unknown = plan_recipient(ab, Member("gone", "a"), None, {}, NOON, CFG, None)
    assert (unknown.status, unknown.reason) == ("suppressed", "unknown_customer")


# --- the manifest ---------------------------------------------------------------------------
def test_members_are_grouped_by_pool_and_due_in_numbered_chunks() -> None:
    members = [(Member(f"c{i}", "a"), "main", NOON) for i in range(5)]
    members += [(Member("t1", "b"), "test", NOON + timedelta(hours=1))]
    objects = group_members(members, segment=3, chunk_size=2)
    assert list(objects) == [
        "pass-0/main/20260105T030000Z/seg-0003-0000.jsonl",
        "pass-0/main/20260105T030000Z/seg-0003-0001.jsonl",
        "pass-0/main/20260105T030000Z/seg-0003-0002.jsonl",
        "pass-0/test/20260105T040000Z/seg-0003-0003.jsonl",
    ]
    chunk = chunk_of("pass-0/test/20260105T040000Z/seg-0003-0003.jsonl")
    assert (chunk.phase, chunk.pass_number, chunk.due) == ("test", 0, NOON + timedelta(hours=1))
    key = deferred_key(1, NOON, "pass-0/main/20260105T030000Z/seg-0003-0001.jsonl")
    assert key.startswith("pass-1/deferred/20260105T030000Z/seg-0003-0001-")


# --- the sequencer ---------------------------------------------------------------------------
def keys_of(objects: list[str]) -> Any:
    return lambda prefix: sorted(k for k in objects if k.startswith(prefix))


def test_without_winner_main_then_deferred_passes_then_done() -> None:
    c = campaign()
    objects = [
        "pass-0/main/20260105T030000Z/seg-0000-0000.jsonl",
        "pass-1/deferred/20260105T130000Z/seg-0000-0000-abc.jsonl",
    ]
    first = next_step(c, None, "running", keys_of(objects))
    assert (first.phase, first.pass_number, len(first.chunks)) == ("main", 0, 1)
    second = next_step(c, {"phase": "main", "pass": 0}, "running", keys_of(objects))
    assert (second.phase, second.pass_number) == ("deferred", 1)
    assert second.chunks[0].due == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
    assert next_step(c, {"phase": "deferred", "pass": 1}, "running", keys_of(objects)).phase == (
        "done"
    )
    assert next_step(c, None, "stopped", keys_of(objects)).phase == "done"


def test_with_winner_test_then_wait_then_main() -> None:
    c = campaign(
        variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
        winner={"test_percent": 20, "metric": "click", "wait_hours": 4},
    )
    objects = [
        "pass-0/test/20260105T030000Z/seg-0000-0000.jsonl",
        "pass-0/main/20260105T030000Z/seg-0000-0001.jsonl",
    ]
    test = next_step(c, None, "running", keys_of(objects))
    assert test.phase == "test"
    wait = next_step(c, {"phase": "test", "pass": 0}, "running", keys_of(objects))
    assert (wait.phase, wait.wait_until) == ("winner", NOON + timedelta(hours=4))
    assert wait.as_json()["wait_until"] == "2026-01-05T07:00:00Z"
    main = next_step(c, {"phase": "winner", "pass": 0}, "running", keys_of(objects))
    assert (main.phase, len(main.chunks)) == ("main", 1)


def test_pacing_spreads_chunks_under_the_rate_limit() -> None:
    keys = [f"pass-0/main/20260105T030000Z/seg-0000-{i:04d}.jsonl" for i in range(3)]
    chunks = pace(keys, rate_limit_per_minute=250, chunk_size=500)
    assert [c.not_before - NOON for c in chunks] == [timedelta(minutes=m) for m in (0, 2, 4)]
    assert [c.not_before for c in pace(keys, None)] == [NOON] * 3


def test_a_million_recipients_plan_stays_small() -> None:
    # given: 2,000 chunks of 500 (16 scan segments)
    keys = [
        f"pass-0/main/20260105T030000Z/seg-{s:04d}-{i:04d}.jsonl"
        for s in range(16)
        for i in range(125)
    ]
    objects = keys_of(keys)
    step = next_step(campaign(rate_limit_per_minute=10_000), None, "running", objects)
    # then: the answer fits a Step Functions payload with room to spare
    size = len(json.dumps(step.as_json()))
    print(f"\nplan for 2,000 chunks, first page: {size / 1024:.0f} KiB")
    assert len(step.chunks) == 1000 and step.next_chunk == 1000 and size < 200 * 1024


def test_a_plan_of_any_size_fits_step_functions_state_in_pages() -> None:
    """4,800 chunks (2.4 million recipients, 1.6 million in one phase, paced): no Plan answer is over
    Step Functions' 256 KB state, and the pages cover every chunk once, in due order, before
    the next phase; the winner's wait counts from the test pool's last chunk, on any page."""
    keys = [
        f"pass-0/{phase}/20260105T{h:02d}0000Z/seg-{s:04d}-{i:04d}.jsonl"
        for phase, hours, per_segment in (("test", (3, 4), 50), ("main", (5,), 200))
        for h in hours
        for s in range(16)
        for i in range(per_segment)
    ]
    c = campaign(
        rate_limit_per_minute=10_000,
        variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
        winner={"test_percent": 20, "metric": "click", "wait_hours": 4},
    )
    objects = keys_of(keys)
    seen: dict[str, list[str]] = {"test": [], "main": []}
    after: dict[str, Any] | None = None
    pages = 0
    while True:
        answer = next_step(c, after, "running", objects).as_json()
        assert len(json.dumps(answer).encode()) < 200 * 1024  # of 256 KB
        if answer["phase"] == "winner":
            assert answer["wait_until"] == "2026-01-05T08:00:00Z"  # 04:00 UTC + 4 hours
            after = answer
            continue
        if answer["phase"] == "done":
            break
        seen[answer["phase"]] += [chunk["key"] for chunk in answer["chunks"]]
        pages += 1
        after = answer
    assert seen["test"] == sorted(k for k in keys if "/test/" in k)
    assert seen["main"] == sorted(k for k in keys if "/main/" in k)
    assert pages == 2 + 4


# --- safety and results ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "failed", "stops"), [(900, 60, False), (950, 50, True), (50, 40, False)]
)
def test_circuit_breaker(sent: int, failed: int, stops: bool) -> None:
    reason = breaker_reason(campaign(), {"sent": sent, "failed": failed})
    assert (reason is not None) == stops
    if reason:
        assert "50 of 1000" in reason and "5%" in reason


def test_winner_is_the_best_rate_ties_go_to_the_first() -> None:
    results = {"a": ArmResult(100, 10), "b": ArmResult(80, 12)}
    winner, reason, decided = pick_winner(["a", "b"], results, "open")
    assert winner == "b" and "b: 12/80 (15.0%)" in reason and decided
    assert pick_winner(["a", "b"], {"a": ArmResult(10, 1), "b": ArmResult(10, 1)}, "click")[0] == (
        "a"
    )


def test_a_recipient_whose_item_cannot_be_read_is_held_out_as_ever_or_failed() -> None:
    """An item this version cannot read (``customer`` None, ``unreadable``): the holdout and
    the global control group need no item (their baselines keep them); a recipient to send
    to fails with the reason, in their variant's results."""
    from kizuna.campaigns.assign import HOLDOUT
    from kizuna.delivery.control import GLOBAL_CONTROL

    tested = campaign(variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}])
    for arm, expected in ((HOLDOUT, "holdout"), (GLOBAL_CONTROL, "holdout")):
        plan = plan_recipient(tested, Member("c1", arm), None, {}, NOON, CFG, None, unreadable=True)
        assert plan.status == expected
    failed = plan_recipient(tested, Member("c1", "b"), None, {}, NOON, CFG, None, unreadable=True)
    assert (failed.status, failed.reason, failed.variant) == ("failed", "unreadable_customer", "b")
    # an id Kizuna does not hold (not unreadable) stays unknown
    unknown = plan_recipient(tested, Member("c1", "b"), None, {}, NOON, CFG, None)
    assert (unknown.status, unknown.reason) == ("suppressed", "unknown_customer")


def test_the_best_rule_is_undecided_when_nobody_was_measured() -> None:
    """No test pool member sent on a channel that reports the metric: the first variant,
    said undecided (it was called "best open rate" with every arm at 0/0)."""
    winner, reason, decided = pick_winner(["a", "b"], {}, "open")
    assert winner == "a" and reason.startswith("undecided: no test pool recipient of a, b")
    assert not decided  # the first variant by default, not a winner
    assert "the rest get the first variant (a)" in reason
    # nor when one variant had nobody measured: its 0 would lose for that alone
    winner, reason, decided = pick_winner(["b", "a"], {"a": ArmResult(10, 3)}, "click")
    assert winner == "b" and reason.startswith("undecided: no test pool recipient of b was")
    assert not decided
    assert "(sent on a channel that reports the click metric, its links tracked)" in reason


def test_a_message_sent_with_its_links_untracked_is_not_measured_for_clicks() -> None:
    """A LINE text that went with its links as written (tracked, it was over LINE's limit):
    no click of it can be stamped, so a click winner leaves it out of the variant's
    denominator, as a message on a channel that reports no clicks."""
    line = {"status": "sent", "channel": "line"}
    untracked = {**line, "links_untracked": True}
    assert measured("click", line)
    assert not measured("click", untracked)
    assert measured("click", {**untracked, "click_at": "2026-01-05T04:00:00Z"})  # seen anyway
    assert measured("goal", untracked)  # an order is seen whatever the links
    assert not measured("open", line)  # LINE reports no opens
    assert not measured("click", {"status": "sent", "channel": "sms"})
