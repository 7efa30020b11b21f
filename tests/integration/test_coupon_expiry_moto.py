"""Coupon reminders on DynamoDB (moto): a journey send issues a coupon (its COUPON# row, once
under a retry), nobody redeems it (another customer's order names it), the daily sweep finds
it through the activity table's gsi1 and puts ``coupon.expiring``, and a program triggered
by it enters the customer; a redeemed coupon leaves the index; erasure deletes the rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import erase
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.loader import load_program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.send import SendRequest
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter
from tests.factories import customer, opted_in, order, parsed, send_service
from tests.moto_setup import create_activity_table, create_table, fake_aws_env
from tests.unit.test_coupon_expiry import REMINDER
from tests.unit.test_send_service import FakeChannel

pytestmark = pytest.mark.integration

REGION = "us-east-1"
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "customers", "customer_id")
        create_activity_table(ddb)
        yield DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )


def coupon_rows(store: DynamoStore, cid: str) -> list[dict[str, object]]:
    return store.activity(cid, "COUPON#")


def test_issue_then_no_redemption_then_sweep_then_program_entry(
    store: DynamoStore, tmp_path: Path
) -> None:
    cfg = KizunaConfig()
    for cid in ("c1", "c2"):
        c = customer(cid, email=f"{cid}@example.jp", consent=opted_in("email"), order_count=1)
        store.save_customer(c, 0)
    # given the second-purchase coupon sent to c1 and c2 at noon (c1's send retried later)
    svc = send_service(store, {"email": FakeChannel()}, FixedClock(NOON))
    for cid in ("c1", "c2"):
        request = SendRequest(
            program="second-purchase-coupon",
            step="coupon",
            customer_id=cid,
            execution=f"ex-{cid}",
            entered_at=NOON - timedelta(days=1),
        )
        assert svc.send(request).status == "sent"
    svc.clock = FixedClock(NOON + timedelta(hours=1))
    svc.send(
        SendRequest(
            program="second-purchase-coupon",
            step="coupon",
            customer_id="c1",
            execution="ex-c1",
            entered_at=NOON - timedelta(days=1),
        )
    )
    (row1,) = coupon_rows(store, "c1")
    (row2,) = coupon_rows(store, "c2")
    code1, code2 = str(row1["sk"])[7:], str(row2["sk"])[7:]
    # valid 14 days: to the end of the 19th in Tokyo
    assert row1["status"] == "issued" and row1["valid_until"] == "2026-01-19T14:59:59.999999Z"
    assert row1["issued_at"] == "2026-01-05T03:00:00.000000Z"  # the first send's, kept
    # when c1's code is named on c2's order (not theirs: nothing), and c2 uses their own
    later = NOON + timedelta(days=2)
    for cid, order_id, codes in (("c2", "o-x", [code1]), ("c2", "o-y", [code2])):
        raw = order(cid, order_id, 3000, later)
        raw["detail"]["coupon_codes"] = codes
        ingest_one(store, parsed(raw), cfg, FixedClock(later))
    assert coupon_rows(store, "c1")[0]["status"] == "issued"
    redeemed = coupon_rows(store, "c2")[0]
    assert redeemed["status"] == "redeemed" and "gsi1pk" not in redeemed  # out of the index
    # and the daily sweep runs 3 days before the expiry (01:00 on the 17th in Tokyo; again
    # the same day)
    publisher = MemoryPublisher()
    request = SweepRequest(kinds=["coupons"], lookback_minutes=1440)
    sweep_at = datetime(2026, 1, 16, 16, tzinfo=UTC)
    assert run_sweep(request, store, store, publisher, cfg, FixedClock(sweep_at)) == {"coupons": 1}
    assert run_sweep(request, store, store, publisher, cfg, FixedClock(sweep_at)) == {"coupons": 0}
    (event,) = publisher.events
    detail = event.detail.model_dump(mode="json")
    assert (detail["customer_id"], detail["code"], detail["days_left"]) == ("c1", code1, 3)
    assert code1 not in detail["event_id"]
    # then a program triggered by coupon.expiring enters c1
    (tmp_path / "coupon-reminder.yaml").write_text(REMINDER)
    program = load_program(tmp_path / "coupon-reminder.yaml")
    starter = MemoryStarter()
    evaluator = Evaluator([program], store, starter, MemoryPublisher(), cfg, FixedClock(sweep_at))
    result = evaluator.evaluate(
        [
            IncomingEvent(
                event_id=event.detail.event_id,
                detail_type=event.detail_type,
                time=event.detail.occurred_at,
                detail=detail,
            )
        ]
    )
    assert [(d.customer_id, d.decision) for d in result.decisions] == [("c1", "entered")]
    # and erasing c1 deletes their coupon row with the rest of their partition
    erase("c1", store, store, sweep_at)
    assert coupon_rows(store, "c1") == []
