"""A producer cannot impersonate Kizuna (issue 20, item 6): on the real template and the local
runtime, a forged ``customer.segment_changed`` to Champions sends nothing.

Two guards, each tested on its own: the bus policy refuses source ``kizuna`` from anyone but
the functions that derive events (the local runtime enforces the template's policy as AWS
does), and evaluate re-checks the claim against the stored customer, so a forged claim that
reaches the bus anyway (a Kizuna role misused, a policy edited) enters nobody.
"""

from __future__ import annotations

from typing import Any

import pytest

from kizuna_tools.local.bus_policy import PRODUCER_ARN, acting_as, role_of
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import ledger, sent, settle, signup, treated

pytestmark = pytest.mark.integration


def forged_champion(cloud: LocalCloud, cid: str) -> dict[str, Any]:
    return {
        "Source": "kizuna",
        "DetailType": "customer.segment_changed",
        "Detail": {
            "schema_version": 1,
            "event_id": f"{cid}:segment:Champions:forged",
            "customer_id": cid,
            "occurred_at": cloud.clock.now().isoformat(),
            "caused_by": "scoring:forged",
            "from_segment": None,
            "to_segment": "Champions",
            "recency": 5,
            "frequency": 5,
            "monetary": 5,
        },
    }


def test_the_bus_refuses_kizuna_events_from_a_producer(cloud: LocalCloud) -> None:
    # Given a customer who never qualified for Champions
    cid = treated("champions-care", "f")
    signup(cloud, cid)
    # When a producer puts a segment_changed to Champions under Kizuna's source
    [result] = cloud.put_events([forged_champion(cloud, cid)])
    # Then the bus refuses it, as AWS does with the synthesized policy
    assert result["ErrorCode"] == "AccessDeniedException"
    assert PRODUCER_ARN in result["ErrorMessage"]
    settle(cloud)
    assert sent(cloud, cid) == []
    assert ledger(cloud, cid, "ENTRY") == []
    # a Kizuna function that derives nothing (the public unsubscribe URL's) is refused too
    with acting_as(role_of(cloud.template, "unsubscribe")):
        [again] = cloud.put_events([forged_champion(cloud, cid)])
    assert again["ErrorCode"] == "AccessDeniedException"
    # and the producer's own events still go through
    [fine] = cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "app.opened",
                "Detail": {"customer_id": cid, "occurred_at": cloud.clock.now().isoformat()},
            }
        ]
    )
    assert "ErrorCode" not in fine


def test_a_forged_claim_that_reaches_the_bus_sends_nothing(cloud: LocalCloud) -> None:
    # Given a customer who never qualified for Champions
    cid = treated("champions-care", "g")
    signup(cloud, cid)
    # When the forged event gets onto the bus under an allowed role (the bus policy bypassed)
    with acting_as(role_of(cloud.template, "score")):
        [result] = cloud.put_events([forged_champion(cloud, cid)])
    assert "ErrorCode" not in result
    cloud.drain()
    # Then evaluate defers it (the scoring puts before it saves) and, on the queue's last
    # receive, records it as skipped with the reason; nothing is ever sent
    cloud.advance(minutes=30)
    settle(cloud)
    assert sent(cloud, cid) == []
    assert [(e["program"], e["decision"], e["reason"]) for e in ledger(cloud, cid, "ENTRY")] == [
        ("champions-care", "skipped", "claim_not_in_state")
    ]
    assert not any(cloud.dlq_messages().values())
    cloud.advance(days=1)
    assert sent(cloud, cid) == []
