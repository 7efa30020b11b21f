"""Suppressions are kept per address (docs/ARCHITECTURE.md, "A bounded customer item"): a
suppression of one address never lifts or hides another's, whatever order they arrive in.

The defect this guards against: one suppression a channel, last writer wins. A customer
complains from their address of today; a delayed hard bounce of a message to their previous
address arrives later (dated later): it replaced the complaint, and email to the person who
complained resumed. In the other order the complaint was dropped as older, with the same
result."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.adapters.dynamodb import customer_from_item, customer_to_item
from kizuna.delivery.policy import address_hash, channel_block
from kizuna.domain.customer import (
    ANY_ADDRESS,
    MAX_SUPPRESSED_ADDRESSES,
    Customer,
    Suppression,
)
from kizuna.domain.ingest import apply_events
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.customers import customer_profile
from kizuna.services.feedback import FeedbackService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryInbound, MemoryStore
from tests.factories import NOON, customer, envelope
from tests.sqs_events import sqs_event, sqs_record
from tests.unit.test_feedback_unsubscribe import ses_event

CFG = KizunaConfig()
NOW = NOON + timedelta(days=30)
NEW, OLD = "new@example.jp", "old@example.jp"


def suppressed(
    n: int | str, address: str | None, reason: str, at: datetime, channel: str = "email"
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "customer_id": "c1",
        "occurred_at": at.isoformat(),
        "channel": channel,
        "reason": reason,
    }
    if address is not None:
        detail["address_hash"] = address_hash(address)
    return envelope("channel.suppressed", detail, f"sup-{n}", source="kizuna.feedback")


def fold(raws: list[dict[str, Any]], start: Customer | None = None) -> Customer:
    state = start or customer("c1", email=NEW)
    for raw in raws:
        state = apply_events(state, [parse_inbound(raw, NOW)], CFG, NOW).customer
    return state


COMPLAINT = suppressed("complaint", NEW, "complaint", NOON + timedelta(days=2))
LATE_BOUNCE = suppressed("bounce", OLD, "bounce", NOON + timedelta(days=4))


@pytest.mark.parametrize("order", ["complaint first", "bounce first"])
def test_a_late_bounce_of_an_old_address_never_lifts_a_complaint(order: str) -> None:
    # given a complaint from the customer's address of today and a later-dated hard bounce
    # of a message to their previous address, in either order of arrival
    raws = [COMPLAINT, LATE_BOUNCE] if order == "complaint first" else [LATE_BOUNCE, COMPLAINT]
    # when both are folded
    state = fold(raws)
    # then the address that complained stays blocked, and the old one is blocked too
    assert channel_block(state, "email", NEW) == "suppressed_complaint"
    assert channel_block(state, "email", OLD) == "suppressed_bounce"
    # and the channel's latest (what an earlier version reads) is the bounce
    assert state.suppressions["email"].reason == "bounce"
    # and the customer's profile says what stops their address of today
    email = next(c for c in _channels(state) if c["channel"] == "email")
    assert (email["suppressed"], email["blocked_by"]) == ("complaint", "suppressed_complaint")


def _channels(state: Customer) -> list[dict[str, Any]]:
    profile = customer_profile(state, reveal=False, now=NOW, cfg=CFG)
    return [c.model_dump() for c in profile.channels]


def test_both_orders_give_the_same_state() -> None:
    assert (
        fold([COMPLAINT, LATE_BOUNCE]).derived_view()
        == fold([LATE_BOUNCE, COMPLAINT]).derived_view()
    )


def test_a_bounce_naming_two_recipients_suppresses_both_through_feedback() -> None:
    # given a message Kizuna sent and a permanent bounce that names two recipients
    store, inbound = MemoryStore(), MemoryInbound()
    store.customers["c1"] = customer("c1", email=NEW)
    store.record_message("c1", "ex-1", "coupon", {"status": "sent", "sent_at": "x"})
    service = FeedbackService(store, inbound, MemoryDeadLetters(), FixedClock(NOW), 3)
    bounce = ses_event(
        "Email Bounced",
        "Bounce",
        {
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": NEW}, {"emailAddress": OLD}],
                "timestamp": "2026-01-06T03:00:00.000Z",
            }
        },
    )
    # when feedback handles it and ingest folds what it put (one event a recipient, one
    # instant)
    assert service.process_batch(sqs_event(sqs_record(bounce, "m1"))) == {"batchItemFailures": []}
    raws = [
        envelope(kind, json.loads(detail.model_dump_json()), f"fb-{n}", source="kizuna.feedback")
        for n, (kind, detail) in enumerate(inbound.events)
    ]
    assert len(raws) == 2
    # then each bounced address is suppressed, in either order of arrival
    for state in (fold(raws), fold(raws[::-1])):
        assert channel_block(state, "email", NEW) == "suppressed_bounce"
        assert channel_block(state, "email", OLD) == "suppressed_bounce"
        assert len(state.suppressed_addresses["email"]) == 2
    assert fold(raws).derived_view() == fold(raws[::-1]).derived_view()


def old_shape_item() -> dict[str, Any]:
    """A customer item the previous version wrote: one suppression a channel, no
    ``suppressed_addresses``."""
    item = customer_to_item(customer("c1", email=NEW))
    item.pop("suppressed_addresses", None)
    item["suppressions"] = {
        "email": {
            "reason": "complaint",
            "at": (NOON + timedelta(days=2)).isoformat(),
            "address_hash": address_hash(NEW),
        }
    }
    return item


def test_an_item_of_the_previous_version_still_blocks() -> None:
    state = customer_from_item(old_shape_item())
    assert state.suppressed_addresses == {}
    assert channel_block(state, "email", NEW) == "suppressed_complaint"
    assert channel_block(state, "email", OLD) is None


def test_an_item_of_the_previous_version_keeps_its_suppression_beside_a_new_one() -> None:
    # given the previous version's item (a complaint from new@) and a later bounce of old@
    state = fold([LATE_BOUNCE], customer_from_item(old_shape_item()))
    # then both addresses are blocked, each by its own suppression
    assert channel_block(state, "email", NEW) == "suppressed_complaint"
    assert channel_block(state, "email", OLD) == "suppressed_bounce"
    assert set(state.suppressed_addresses["email"]) == {address_hash(NEW), address_hash(OLD)}
    # and the item now has the new shape, whatever arrives next
    again = fold([LATE_BOUNCE], customer_from_item(customer_to_item(state)))
    assert again.derived_view() == state.derived_view()


def test_an_item_of_the_previous_version_takes_the_new_shape_at_its_next_fold() -> None:
    # given the previous version's item and an event that has nothing to do with suppressions
    opened = envelope(
        "app.opened",
        {"customer_id": "c1", "occurred_at": NOON.isoformat(), "platform": "APNS"},
        "open-1",
    )
    state = fold([opened], customer_from_item(old_shape_item()))
    assert list(state.suppressed_addresses["email"]) == [address_hash(NEW)]
    assert channel_block(state, "email", NEW) == "suppressed_complaint"


def test_what_an_earlier_version_reads_still_blocks_on_the_channels_latest() -> None:
    # given an item this version wrote, read as an earlier version reads it (the unknown
    # ``suppressed_addresses`` left out)
    item = customer_to_item(fold([COMPLAINT, LATE_BOUNCE]))
    item.pop("suppressed_addresses")
    earlier = customer_from_item(item)
    # then it holds one suppression a channel, the latest, as that version wrote them
    assert earlier.suppressions["email"] == Suppression(
        reason="bounce", at=NOON + timedelta(days=4), address_hash=address_hash(OLD)
    )


def test_a_suppression_of_every_address_sits_beside_those_of_one() -> None:
    state = fold(
        [
            COMPLAINT,
            suppressed("any", None, "returned", NOON + timedelta(days=1)),
            LATE_BOUNCE,
        ]
    )
    assert set(state.suppressed_addresses["email"]) == {
        address_hash(NEW),
        address_hash(OLD),
        ANY_ADDRESS,
    }
    # the latest of those that name the address (or every address) is the reason
    assert channel_block(state, "email", NEW) == "suppressed_complaint"
    assert channel_block(state, "email", "third@example.jp") == "suppressed_returned"


def test_one_address_keeps_its_latest_suppression_and_one_row_for_it() -> None:
    # given a bounce of new@, then an older complaint of the same address
    first = apply_events(
        customer("c1", email=NEW), [parse_inbound(LATE_BOUNCE | _to(NEW), NOW)], CFG, NOW
    )
    assert [a.data["reason"] for a in first.activity] == ["bounce"]
    second = apply_events(first.customer, [parse_inbound(COMPLAINT, NOW)], CFG, NOW)
    # then the older one changes nothing and writes no CONSENT row (as before)
    assert second.activity == []
    assert second.customer.suppressed_addresses["email"][address_hash(NEW)].reason == "bounce"


def _to(address: str) -> dict[str, Any]:
    detail = dict(LATE_BOUNCE["detail"])
    detail["address_hash"] = address_hash(address)
    return {"detail": detail}


def test_the_suppressed_addresses_are_bounded_per_channel() -> None:
    # given more suppressed addresses than are kept, on two channels
    raws = [
        suppressed(
            f"{channel}{n}", f"a{n}@example.jp", "bounce", NOON + timedelta(hours=n), channel
        )
        for n in range(MAX_SUPPRESSED_ADDRESSES + 5)
        for channel in ("email", "sms")
    ]
    state = fold(raws)
    # then each channel keeps the newest MAX_SUPPRESSED_ADDRESSES
    for channel in ("email", "sms"):
        kept = state.suppressed_addresses[channel]
        assert len(kept) == MAX_SUPPRESSED_ADDRESSES
        assert set(kept) == {
            address_hash(f"a{n}@example.jp") for n in range(5, MAX_SUPPRESSED_ADDRESSES + 5)
        }
        assert state.suppressions[channel].address_hash == address_hash(
            f"a{MAX_SUPPRESSED_ADDRESSES + 4}@example.jp"
        )
    # and an address older than every one kept is dropped, its late suppression too
    assert channel_block(state, "email", "a0@example.jp") is None
    late = fold([suppressed("late", "z@example.jp", "bounce", NOON - timedelta(days=1))], state)
    assert late.derived_view() == state.derived_view()
    # and whatever the order of arrival, the same ones
    assert fold(raws[::-1]).derived_view() == state.derived_view()


ADDRESSES = [f"a{n}@example.jp" for n in range(MAX_SUPPRESSED_ADDRESSES + 3)] + [None]


@st.composite
def suppressions(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(min_value=1, max_value=30))
    events = []
    for i in range(n):
        address = draw(st.sampled_from(ADDRESSES))
        reason = draw(st.sampled_from(["bounce", "complaint", "opt_out"]))
        at = NOON + timedelta(hours=draw(st.integers(min_value=0, max_value=6)))
        events.append(suppressed(i, address, reason, at))
    extra = draw(st.lists(st.sampled_from(events), max_size=5))
    return events, draw(st.permutations(events + extra))


def reference(raws: list[dict[str, Any]]) -> dict[str, tuple[datetime, str]]:
    """Plain Python: the latest ``(at, reason)`` of each address, the newest
    MAX_SUPPRESSED_ADDRESSES addresses kept (ties: the larger reason, then the larger key)."""
    latest: dict[str, tuple[datetime, str]] = {}
    for raw in raws:
        d = raw["detail"]
        key = d.get("address_hash") or ANY_ADDRESS
        fact = (datetime.fromisoformat(d["occurred_at"]), d["reason"])
        latest[key] = max(latest.get(key, fact), fact)
    ranked = sorted(latest.items(), key=lambda kv: (*kv[1], kv[0]), reverse=True)
    return dict(ranked[:MAX_SUPPRESSED_ADDRESSES])


@settings(max_examples=120, deadline=None)
@given(suppressions())
def test_suppressions_in_any_order_and_number_give_the_same_state(
    history: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    in_order, delivered = history
    state = fold(delivered)
    assert state.derived_view() == fold(in_order).derived_view()
    kept = {key: (s.at, s.reason) for key, s in state.suppressed_addresses["email"].items()}
    assert kept == reference(in_order)
    # and every address kept is blocked
    for address in ADDRESSES:
        key = address_hash(address) if address else ANY_ADDRESS
        if key in kept and address is not None:
            assert channel_block(state, "email", address) is not None
