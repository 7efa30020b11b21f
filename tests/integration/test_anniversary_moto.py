"""Membership anniversaries on DynamoDB (moto): ingest writes the customer's MEMBER row into
the activity table's gsi1 under ``ANNIV#<MM-DD>#<shard>``, a changed ``member_since`` moves
it, the daily sweep finds it there and puts ``customer.anniversary`` once, a program
triggered by it enters the customer, and erasure deletes the row."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import erase
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.loader import load_program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter
from tests.factories import opted_in, parsed, upsert
from tests.integration.test_coupon_expiry_moto import store  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

PROGRAM = """\
id: anniversary-thanks
name: Thank you for a year with us
trigger:
  event: customer.anniversary
  conditions: {years: [1]}
steps:
  - {id: thanks, type: send, channels: [email], template: thanks}
"""
JOINED = datetime(2025, 6, 1, 3, tzinfo=UTC)


def member_rows(db: DynamoStore, cid: str) -> list[dict[str, object]]:
    return db.activity(cid, "MEMBER#")


def test_the_member_row_is_indexed_moved_swept_and_erased(
    store: DynamoStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg = KizunaConfig()
    # given a Tokyo member who joined on 9 June 2025 (first said 10 June, then corrected)
    for n, since in enumerate(("2025-06-10", "2025-06-09")):
        raw = upsert("m1", JOINED, f"ev-m1-{n}", member_since=since, time_zone="Asia/Tokyo")
        raw["detail"]["occurred_at"] = JOINED.replace(minute=n).isoformat()
        ingest_one(store, parsed(raw), cfg, FixedClock(JOINED))
    current = store.get_customer("m1")
    assert current is not None and current.member_since == date(2025, 6, 9)
    reachable = current.model_copy(update={"email": "m1@example.jp", "consent": opted_in("email")})
    store.save_customer(reachable, current.version)
    (row,) = member_rows(store, "m1")
    assert row["member_since"] == "2025-06-09" and str(row["gsi1pk"]).startswith("ANNIV#06-09#")
    assert store.members_since_on("06-09") == ["m1"]
    assert store.members_since_on("06-10") == []  # the index row moved with the start
    # when the daily sweep runs at 01:00 in Tokyo on 9 June 2026, and again the same day
    publisher = MemoryPublisher()
    request = SweepRequest(kinds=["anniversaries"], lookback_minutes=1440)
    at = datetime(2026, 6, 8, 16, tzinfo=UTC)
    assert run_sweep(request, store, store, publisher, cfg, FixedClock(at)) == {"anniversaries": 1}
    assert run_sweep(request, store, store, publisher, cfg, FixedClock(at)) == {"anniversaries": 0}
    (event,) = publisher.events
    detail = event.detail.model_dump(mode="json")
    assert (detail["date"], detail["years"], detail["event_id"]) == (
        "2026-06-09",
        1,
        "m1:anniversary:2026",
    )
    # then a program triggered by customer.anniversary (years: [1]) enters the member
    (tmp_path / "anniversary-thanks.yaml").write_text(PROGRAM)
    program = load_program(tmp_path / "anniversary-thanks.yaml")
    evaluator = Evaluator([program], store, MemoryStarter(), MemoryPublisher(), cfg, FixedClock(at))
    incoming = IncomingEvent(
        event_id=event.detail.event_id,
        detail_type=event.detail_type,
        time=event.detail.occurred_at,
        detail=detail,
    )
    result = evaluator.evaluate([incoming])
    assert [(d.customer_id, d.decision) for d in result.decisions] == [("m1", "entered")]
    # and erasure deletes the MEMBER row: out of the index
    erase("m1", store, store, at)
    assert member_rows(store, "m1") == []
    assert store.members_since_on("06-09") == []
