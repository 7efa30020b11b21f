"""Every decision names its reason in full: which audience or branch condition failed
(each operator), the re-entry rule, the holdout bucket, the channels, the cap and the
quiet hours, as data in the ledger row (bounded, no personal data, no extra read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.campaigns.assign import HOLDOUT
from kizuna.campaigns.assign import holdout_bucket as campaign_bucket
from kizuna.campaigns.engine import Member, plan_recipient
from kizuna.campaigns.loader import parse_campaign
from kizuna.delivery.policy import Outcome, decide
from kizuna.domain.customer import ConsentState
from kizuna.domain.privacy import DIRECT_IDENTIFIER_FIELDS
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import holdout_bucket
from kizuna.programs.patterns import MAX_CHARS, MAX_FAILED, MAX_VALUES, failures, matches
from kizuna.programs.view import VIEW_FIELDS
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import T0
from tests.unit.test_evaluate import (
    BY_ID,
    PROGRAMS,
    customer,
    first_purchase,
    held_out_customer_id,
    placed,
    treated_customer_id,
)


@pytest.fixture
def world() -> Any:
    """Evaluate over the seed programs and in-memory stores (as test_evaluate's)."""
    store, starter, publisher = MemoryStore(), MemoryStarter(), MemoryPublisher()
    clock = FixedClock(T0)
    ev = Evaluator(PROGRAMS, store, starter, publisher, KizunaConfig(), clock)
    return ev, store, starter, publisher, clock


VIEW = {
    "lifecycle": "repeat",
    "rank": "Silver",
    "order_count": 2,
    "spend_12m": 12000.5,
    "region": "kanto",
    "locale": "ja",
    "reachable": ["email"],
    "consent": {"email": "opted_in"},
    "segments": ["champions"],
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # exact values
        (
            {"lifecycle": ["new"]},
            [{"field": "lifecycle", "expected": ["new"], "found": "repeat"}],
        ),
        # numeric, one bound and a range: in the condition's own terms
        (
            {"order_count": [{"numeric": [">=", 3]}]},
            [{"field": "order_count", "expected": [{">=": 3}], "found": 2}],
        ),
        (
            {"spend_12m": [{"numeric": [">", 0, "<=", 10000]}]},
            [{"field": "spend_12m", "expected": [{">": 0, "<=": 10000}], "found": 12000.5}],
        ),
        # exists
        ({"age": [{"exists": True}]}, [{"field": "age", "expected": [{"exists": True}]}]),
        (
            {"rank": [{"exists": False}]},
            [{"field": "rank", "expected": [{"exists": False}], "found": "Silver"}],
        ),
        # string operators
        (
            {"region": [{"prefix": "kan"}, {"suffix": "ai"}]},
            [],
        ),
        (
            {"region": [{"prefix": "tok"}]},
            [{"field": "region", "expected": [{"prefix": "tok"}], "found": "kanto"}],
        ),
        (
            {"region": [{"suffix": "sai"}]},
            [{"field": "region", "expected": [{"suffix": "sai"}], "found": "kanto"}],
        ),
        (
            {"locale": [{"equals-ignore-case": "EN"}]},
            [{"field": "locale", "expected": [{"equals-ignore-case": "EN"}], "found": "ja"}],
        ),
        (
            {"region": [{"wildcard": "k*i"}]},
            [{"field": "region", "expected": [{"wildcard": "k*i"}], "found": "kanto"}],
        ),
        (
            {"rank": [{"anything-but": ["Silver", "Gold"]}]},
            [
                {
                    "field": "rank",
                    "expected": [{"anything-but": ["Silver", "Gold"]}],
                    "found": "Silver",
                }
            ],
        ),
        (
            {"rank": [{"anything-but": {"prefix": "Sil"}}]},
            [
                {
                    "field": "rank",
                    "expected": [{"anything-but": {"prefix": "Sil"}}],
                    "found": "Silver",
                }
            ],
        ),
        # a missing field: no ``found``
        ({"gender": ["female"]}, [{"field": "gender", "expected": ["female"]}]),
        # arrays: any element; found is the list
        (
            {"reachable": ["line", "push"]},
            [{"field": "reachable", "expected": ["line", "push"], "found": ["email"]}],
        ),
        (
            {"segments": ["gold-at-risk"]},
            [{"field": "segments", "expected": ["gold-at-risk"], "found": ["champions"]}],
        ),
        # nested objects: a dotted path
        (
            {"consent": {"email": ["opted_out"], "sms": ["opted_in"]}},
            [
                {"field": "consent.email", "expected": ["opted_out"], "found": "opted_in"},
                {"field": "consent.sms", "expected": ["opted_in"]},
            ],
        ),
        # $or: each alternative's failures
        (
            {"$or": [{"lifecycle": ["new"]}, {"rank": ["Gold"], "region": ["kanto"]}]},
            [
                {
                    "any_of": [
                        [{"field": "lifecycle", "expected": ["new"], "found": "repeat"}],
                        [{"field": "rank", "expected": ["Gold"], "found": "Silver"}],
                    ]
                }
            ],
        ),
        # several conditions: the failed ones only, in the pattern's order
        (
            {"lifecycle": ["repeat"], "rank": ["Gold"], "order_count": [{"numeric": ["<", 2]}]},
            [
                {"field": "rank", "expected": ["Gold"], "found": "Silver"},
                {"field": "order_count", "expected": [{"<": 2}], "found": 2},
            ],
        ),
    ],
)
def test_failures_name_each_failed_condition(pattern: dict[str, Any], expected: Any) -> None:
    assert failures(pattern, VIEW) == expected
    assert matches(pattern, VIEW) is (expected == [])


def test_failures_are_bounded() -> None:
    # given a pattern of many failing conditions, long values and long lists
    pattern = {f"f{i}": ["x"] for i in range(20)}
    data = {f"f{i}": "y" * 500 for i in range(20)}
    data["f0"] = [f"v{i}" for i in range(50)]  # type: ignore[assignment]
    pattern["f1"] = [f"w{i}" * 40 for i in range(50)]
    # then: the first MAX_FAILED conditions, lists and strings cut
    got = failures(pattern, data)
    assert len(got) == MAX_FAILED
    assert len(got[0]["found"]) == MAX_VALUES
    assert len(got[1]["expected"]) == MAX_VALUES
    assert all(len(v) <= MAX_CHARS for v in got[1]["expected"])
    assert len(got[1]["found"]) == MAX_CHARS


values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", "ab"]))
matchers = st.one_of(
    values,
    st.builds(lambda n: {"numeric": [">=", n]}, st.integers(-5, 5)),
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(lambda p: {"prefix": p}, st.sampled_from(["a", "b"])),
    st.builds(lambda v: {"anything-but": [v]}, st.sampled_from(["a", "b"])),
)
patterns = st.dictionaries(
    st.sampled_from(["x", "y", "z"]), st.lists(matchers, min_size=1, max_size=3)
)
datas = st.dictionaries(
    st.sampled_from(["x", "y", "z"]), st.one_of(values, st.lists(values, max_size=3))
)


@given(patterns, patterns, datas)
def test_failures_are_empty_exactly_when_the_pattern_matches(
    p1: dict[str, Any], p2: dict[str, Any], data: dict[str, Any]
) -> None:
    for pattern in (p1, {**p1, "$or": [p1 or {"x": ["a"]}, p2 or {"y": ["b"]}]}):
        assert (failures(pattern, data) == []) is matches(pattern, data)


def test_failed_fields_are_view_fields_only() -> None:
    """``found`` is one of the customer view's values, and the view holds no direct
    identifier (email, phone, name, birth date, token, LINE id); the rows live in the
    customer's own partition, erased with them."""
    assert not DIRECT_IDENTIFIER_FIELDS & set(VIEW_FIELDS)
    # (``consent.email`` is the email channel's consent status, not an address)


# -- evaluate: the ENTRY rows -----------------------------------------------------------------
def test_an_audience_skip_names_the_failed_condition(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _, _, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid, order_count=2)  # lifecycle 'repeat', not 'new'
    ev.evaluate([first_purchase(cid)])
    row = store.ledger(cid, "ENTRY")[0].data
    assert row["reason"] == "audience"
    assert row["failed"] == [{"field": "lifecycle", "expected": ["new"], "found": "repeat"}]


def test_reentry_rules_say_when_the_last_entry_was(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _, _, clock = world
    # once: the second first-purchase (another event id) is skipped, naming the first entry
    cid = treated_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    ev.evaluate([first_purchase(cid, event_id="again")])
    rows = {r.data["decision"]: r.data for r in store.ledger(cid, "ENTRY")}
    assert rows["skipped"]["reason"] == "reentry_once"
    assert rows["skipped"]["last_entry_at"] == rows["entered"]["entered_at"]
    # every N days: the window and the last entry
    program = BY_ID["post-purchase-recommendation"]
    other = next(f"r{i}" for i in range(500) if holdout_bucket(program, f"r{i}") >= 10)
    store.customers[other] = customer(other, order_count=3, orders=placed("r1", "r2", "r3"))

    def repeat(eid: str) -> IncomingEvent:
        return IncomingEvent(
            eid, "customer.repeat_purchase", clock.now(), {"customer_id": other, "order_id": eid}
        )

    ev.evaluate([repeat("r1")])
    clock.set(T0 + timedelta(days=7))
    ev.evaluate([repeat("r2")])
    rows = {r.data["decision"]: r.data for r in store.ledger(other, "ENTRY")}
    assert rows["skipped"]["reason"] == "reentry_window"
    assert rows["skipped"]["reentry_days"] == program.reentry.days == 14
    assert rows["skipped"]["last_entry_at"] == rows["entered"]["entered_at"]


def test_no_channel_names_the_programs_channels_and_the_reachable_ones(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _, _, _ = world
    cid = treated_customer_id()
    store.customers[cid] = customer(cid, consent={})
    ev.evaluate([first_purchase(cid)])
    row = store.ledger(cid, "ENTRY")[0].data
    assert row["reason"] == "no_channel"
    assert row["reachable"] == []
    assert row["channels"] == ["email", "line", "push"]
    # and why each cannot: as the contact policy would say it
    assert row["skipped"] == ["email:no_consent", "line:no_address", "push:no_address"]


def test_a_holdout_records_the_percentage_and_the_bucket(world) -> None:  # type: ignore[no-untyped-def]
    ev, store, _, _, _ = world
    cid = held_out_customer_id()
    store.customers[cid] = customer(cid)
    ev.evaluate([first_purchase(cid)])
    row = store.ledger(cid, "ENTRY")[0].data
    program = BY_ID["second-purchase-coupon"]
    assert row["held_out"] == "program"
    assert row["holdout_percent"] == program.holdout_percent == 10
    assert row["bucket"] == holdout_bucket(program, cid) < 10


# -- the contact policy: caps and quiet hours ---------------------------------------------
NOON_JST = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
NIGHT_JST = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo


def _consented(**extra: Any) -> Any:
    stamp = ConsentState(status="opted_in", at=T0, source="t", stamp="x")
    return customer(
        "c1",
        phone="+819012345678",
        time_zone="Asia/Tokyo",
        consent={"email": stamp, "sms": stamp},
        **extra,
    )


@pytest.mark.parametrize(
    ("sent", "reason", "cap"),
    [
        (1, "frequency_cap_day", {"limit": 1, "days": 1, "count": 1, "priority": 50}),
        (0, "frequency_cap_week", {"limit": 3, "days": 7, "count": 3, "priority": 50}),
    ],
)
def test_a_frequency_cap_names_the_cap_its_window_and_the_count(
    sent: int, reason: str, cap: dict[str, int]
) -> None:
    cfg = KizunaConfig().contact.model_copy(update={"max_per_day": 1, "max_per_week": 3})
    times = [NOON_JST - timedelta(hours=1)] * sent + [NOON_JST - timedelta(days=3)] * (3 - sent)
    decision = decide(_consented(), ["email"], 50, times, NOON_JST, cfg)
    assert (decision.outcome, decision.reason) == (Outcome.SUPPRESS, reason)
    assert decision.detail == {"cap": cap}


def test_quiet_hours_name_the_window_and_the_zone() -> None:
    cfg = KizunaConfig().contact
    decision = decide(_consented(), ["sms"], 50, [], NIGHT_JST, cfg)
    assert (decision.outcome, decision.reason) == (Outcome.DEFER, "quiet_hours")
    assert decision.detail == {
        "quiet": {"start": cfg.quiet_start, "end": cfg.quiet_end, "time_zone": "Asia/Tokyo"}
    }


def test_a_campaign_holdout_records_the_percentage_and_the_bucket() -> None:
    from tests import factories

    campaign = parse_campaign(factories.campaign_definition(holdout_percent=20))
    member = Member("c1", HOLDOUT)
    plan = plan_recipient(campaign, member, _consented(), {}, NOON_JST, KizunaConfig(), None)
    assert plan.status == "holdout"
    assert plan.detail == {
        "held_out": "campaign",
        "holdout_percent": 20,
        "bucket": campaign_bucket(campaign, "c1"),
    }
