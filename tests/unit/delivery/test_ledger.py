"""The ledger's send protocol as rules (kizuna.delivery.ledger): who may claim over an entry,
who may dispatch it, how a stale one settles; and what a cohort member keeps of its trigger."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.delivery.ledger import claimable, own_dispatch, sending_keys, settle
from kizuna.programs.members import TRIGGER_KEYS, trigger_of

SENDING: dict[str, Any] = {"status": "sending", "claimed_by": "run-a", "claim_token": "t1"}


@pytest.mark.parametrize(
    ("existing", "owner", "expected"),
    [
        (None, "run-a", True),  # nothing there
        ({"status": "deferred", "claimed_by": "run-a"}, "run-b", True),  # its deferral ended
        (SENDING, "run-a", True),  # a retry of the same execution
        (SENDING, "run-b", False),  # another execution: a duplicate
        (SENDING, None, False),  # a claim naming no owner (the cohort's failure marker)
        ({**SENDING, "dispatched_at": "x"}, "run-a", False),  # the provider may have it
        ({**SENDING, "status": "sent"}, "run-a", False),  # decided
        ({"status": "suppressed", "claimed_by": "run-a"}, "run-a", False),
    ],
)
def test_who_may_claim_over_an_entry(
    existing: dict[str, Any] | None, owner: str | None, expected: bool
) -> None:
    assert claimable(existing, owner) is expected


def test_only_the_token_holder_dispatches_and_again_after_a_5xx() -> None:
    assert own_dispatch(SENDING, "t1")
    assert own_dispatch({**SENDING, "dispatched_at": "x"}, "t1")  # the same write again
    assert not own_dispatch(SENDING, "t2")  # re-claimed by another invocation since
    assert not own_dispatch({**SENDING, "status": "sent"}, "t1")
    assert not own_dispatch(None, "t1")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (SENDING, ("failed", "not_dispatched")),
        ({**SENDING, "dispatched_at": "x"}, ("failed", "outcome_unknown")),
        ({**SENDING, "dispatched_at": "x", "delivery_at": "y"}, ("sent", "reconciled")),
        ({**SENDING, "dispatched_at": "x", "bounce_at": "y"}, ("sent", "reconciled")),
        ({**SENDING, "dispatched_at": "x", "provider_message_id": "m"}, ("sent", "reconciled")),
        # SES took the API call, then rejected the message or could not render it: never
        # sent again; the entry's not_delivered_reason says it was not delivered
        ({**SENDING, "dispatched_at": "x", "reject_at": "y"}, ("sent", "reconciled")),
        ({**SENDING, "dispatched_at": "x", "rendering_failure_at": "y"}, ("sent", "reconciled")),
        ({**SENDING, "reject_at": "y"}, ("failed", "not_dispatched")),
    ],
)
def test_a_stale_sending_entry_settles_from_what_the_ledger_holds(
    entry: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert settle(entry) == expected


def test_sending_keys_spread_customers_over_shards_and_sort_by_claim_time() -> None:
    keys = {sending_keys(f"c{i}", "2026-01-05T03:00:00Z")["sending_pk"] for i in range(200)}
    assert len(keys) == 16
    assert sending_keys("c1", "2026-01-05T03:00:00Z")["sending_at"].startswith("2026-01-05T03")


def test_a_member_keeps_its_triggers_small_scalars_only() -> None:
    detail: dict[str, Any] = {
        "customer_id": "c1",
        "to_rank": "Gold",
        "rank_points": 320,
        "lines": [{"product_id": "p"}],  # nested: left out
        "note": "x" * 500,  # long: left out
        **{f"k{i}": i for i in range(40)},
    }
    kept = trigger_of("customer.rank_changed", detail, frozenset())
    assert kept["type"] == "customer.rank_changed" and kept["to_rank"] == "Gold"
    assert kept["rank_points"] == 320 and "lines" not in kept and "note" not in kept
    assert len(kept) <= TRIGGER_KEYS + 1
