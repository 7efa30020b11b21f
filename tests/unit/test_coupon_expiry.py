"""Coupons a send issued: recorded once (a retried send writes nothing more), redeemed only by
their own customer's order, reminded by the daily sweep once per coupon and reminder day
(``coupon.expiring``), which starts a program when the coupon is still unused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kizuna.delivery.coupons import IssuedCoupon, code_ref, coupon_code
from kizuna.events import DerivedEvent, OrderPlaced
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.loader import TRIGGER_EVENTS, load_program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig, LifecycleConfig
from kizuna.services.ingest import ingest_one
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import customer, opted_in, order, parsed
from tests.unit.test_send_service import NOON, FakeChannel, build, req

DAILY = SweepRequest(kinds=["coupons"], lookback_minutes=1440)
SECRET = b"s" * 32
TOKYO = ZoneInfo("Asia/Tokyo")


def code(customer_id: str, execution: str = "ex-1") -> str:
    return coupon_code(SECRET, "second-purchase-coupon", customer_id, execution, "coupon")


def issued(customer_id: str, expires_at: datetime, execution: str = "ex-1") -> IssuedCoupon:
    return IssuedCoupon(
        customer_id=customer_id,
        code=code(customer_id, execution),
        program="second-purchase-coupon",
        execution=execution,
        step="coupon",
        discount="10%",
        issued_at=expires_at - timedelta(days=14),
        expires_at=expires_at,
    )


def with_coupons(*coupons: IssuedCoupon) -> MemoryStore:
    store = MemoryStore()
    store.record_entries("coupon", [], coupons)
    return store


def placed(customer_id: str, order_id: str, at: datetime, *codes: str) -> Any:
    raw = order(customer_id, order_id, 3000, at)
    raw["detail"]["coupon_codes"] = list(codes)
    return parsed(raw)


# --- issue ------------------------------------------------------------------------------------
def test_a_sent_coupon_is_recorded_once_even_when_the_send_is_retried() -> None:
    # given a coupon send that went out at noon
    svc, store, _, _ = build()
    assert svc.send(req()).status == "sent"
    sent_code = store.messages[("c1", "MSG#ex-1#coupon")]["coupon"]
    # when Step Functions retries the task an hour later
    svc.clock = FixedClock(NOON + timedelta(hours=1))
    assert svc.send(req()).status == "sent"
    # then there is one coupon row, issued at noon, valid 14 days (to the end of the 19th in
    # the customer's Tokyo), the ledger's code
    assert list(store.coupons) == [("c1", sent_code)]
    row = store.coupons[("c1", sent_code)]
    assert row["status"] == "issued" and row["issued_at"] == NOON
    assert row["valid_until"] == datetime(2026, 1, 19, 23, 59, 59, 999999, TOKYO)
    assert (row["program"], row["execution"], row["discount"]) == (
        "second-purchase-coupon",
        "ex-1",
        "10%",
    )


def test_an_order_on_the_last_day_the_message_names_redeems_the_coupon() -> None:
    # given a coupon sent at noon in Tokyo, valid 14 days: its message says the 19th
    svc, store, chans, _ = build()
    assert svc.send(req()).status == "sent"
    (msg,) = chans["email"].sent
    assert "有効期限: 2026年1月19日" in msg.content.text  # type: ignore[union-attr]
    sent_code = store.messages[("c1", "MSG#ex-1#coupon")]["coupon"]
    # when the customer orders on the 19th at 18:00 in Tokyo (later than the send's noon)
    at = datetime(2026, 1, 19, 18, tzinfo=TOKYO)
    ingest_one(store, placed("c1", "o-1", at, sent_code), KizunaConfig(), FixedClock(at))
    # then the coupon is redeemed
    assert store.coupons[("c1", sent_code)]["status"] == "redeemed"


def test_a_coupon_expires_at_the_end_of_the_customers_own_last_day() -> None:
    # given a customer in New York: the send's noon in Tokyo is 22:00 on the 4th there
    svc, store, _, _ = build(time_zone="America/New_York")
    assert svc.send(req()).status == "sent"
    sent_code = store.messages[("c1", "MSG#ex-1#coupon")]["coupon"]
    # then the coupon is valid to the end of the 18th in New York, not of the 19th in Tokyo
    end = datetime(2026, 1, 18, 23, 59, 59, 999999, ZoneInfo("America/New_York"))
    assert store.coupons[("c1", sent_code)]["valid_until"] == end


def test_a_coupon_whose_message_was_never_delivered_is_not_issued() -> None:
    from kizuna.delivery.channels import Throttled

    svc, store, _, _ = build(channels={"email": FakeChannel(fail=[Throttled()] * 5)})
    assert svc.send(req()).status == "failed"
    assert store.coupons == {}


TWO_COUPON_STEPS = """\
id: second-purchase-coupon
name: Two coupon steps (docs/PROGRAMS.md, branching on engagement)
trigger: {event: customer.first_purchase}
steps:
  - {id: coupon, type: send, channels: [email], template: coupon,
     coupon: {discount: "10%", valid_days: 14}}
  - {id: wait_open, type: wait, days: 2}
  - {id: line_coupon, type: send, channels: [line], template: coupon,
     coupon: {discount: "20%", valid_days: 30}, next: done}
  - {id: done, type: exit}
"""


def test_two_coupon_steps_of_one_execution_issue_two_coupons(tmp_path: Path) -> None:
    # given a journey whose two send steps each issue a coupon
    (tmp_path / "second-purchase-coupon.yaml").write_text(TWO_COUPON_STEPS)
    program = load_program(tmp_path / "second-purchase-coupon.yaml")
    svc, store, _, _ = build()
    svc.programs = {program.id: program}
    # when the first step's 10% coupon is sent and the customer uses it the next day
    assert svc.send(req(step="coupon")).status == "sent"
    first = store.messages[("c1", "MSG#ex-1#coupon")]["coupon"]
    day1 = NOON + timedelta(days=1)
    ingest_one(store, placed("c1", "o-1", day1, first), KizunaConfig(), FixedClock(day1))
    # and the second step's 20% coupon is sent two days later
    svc.clock = FixedClock(NOON + timedelta(days=2))
    assert svc.send(req(step="line_coupon")).status == "sent"
    second = store.messages[("c1", "MSG#ex-1#line_coupon")]["coupon"]
    # then each step has its own code: the used one stays used, the new one is issued
    assert second != first
    used, new = store.coupons[("c1", first)], store.coupons[("c1", second)]
    assert (used["status"], used["discount"], used["step"]) == ("redeemed", "10%", "coupon")
    assert (new["status"], new["discount"], new["step"]) == ("issued", "20%", "line_coupon")


def test_a_code_issued_before_the_step_was_derived_in_is_still_redeemed() -> None:
    # given a coupon row whose code was derived from (program, customer, execution) alone
    import hashlib
    import hmac

    from kizuna.delivery.coupons import ALPHABET

    ids = [b"kizuna/coupon/v1", b"second-purchase-coupon", b"c1", b"ex-1"]
    number = int.from_bytes(hmac.new(SECRET, b"\x00".join(ids), hashlib.sha256).digest())
    body = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in range(12))
    old = f"KZ-{body[:4]}-{body[4:8]}-{body[8:]}"
    assert old != code("c1")
    until = datetime(2026, 1, 20, tzinfo=UTC)
    store = with_coupons(issued("c1", until).model_copy(update={"code": old}))
    # when the customer's order names it: it is redeemed, as before
    clock = FixedClock(datetime(2026, 1, 10, tzinfo=UTC))
    ingest_one(store, placed("c1", "o-1", clock.now(), old), KizunaConfig(), clock)
    assert store.coupons[("c1", old)]["status"] == "redeemed"


# --- redemption -------------------------------------------------------------------------------
def test_an_order_redeems_its_customers_own_issued_coupon_only() -> None:
    # given c1's and c2's coupons, valid until the 20th
    until = datetime(2026, 1, 20, tzinfo=UTC)
    store = with_coupons(issued("c1", until), issued("c2", until))
    cfg, clock = KizunaConfig(), FixedClock(datetime(2026, 1, 10, tzinfo=UTC))
    # when c1 orders naming c2's code: nothing changes
    ingest_one(store, placed("c1", "o-1", clock.now(), code("c2")), cfg, clock)
    assert {k: r["status"] for k, r in store.coupons.items()} == {
        ("c1", code("c1")): "issued",
        ("c2", code("c2")): "issued",
    }
    # when c1 orders naming their own code (redelivered too): only theirs is redeemed
    for _ in range(2):
        ingest_one(store, placed("c1", "o-2", clock.now(), code("c1")), cfg, clock)
    mine = store.coupons[("c1", code("c1"))]
    assert (mine["status"], mine["order_id"]) == ("redeemed", "o-2")
    assert store.coupons[("c2", code("c2"))]["status"] == "issued"


def test_an_expired_coupon_is_not_redeemed() -> None:
    until = datetime(2026, 1, 20, tzinfo=UTC)
    store = with_coupons(issued("c1", until))
    clock = FixedClock(until + timedelta(days=1))
    ingest_one(store, placed("c1", "o-1", clock.now(), code("c1")), KizunaConfig(), clock)
    assert store.coupons[("c1", code("c1"))]["status"] == "issued"


@pytest.mark.parametrize(
    "codes",
    [
        ["kz-7q4m-x2kd-9bnr"],  # not canonical: the shop normalises first
        ["KZ-7Q4M-X2KD"],  # two groups
        ["KZ-7Q4M-X2KD-9BNU"],  # U is not in the alphabet
        ["KZ-7Q4M-X2KD-9BNR", "KZ-7Q4M-X2KD-9BNR"],  # twice
        [f"KZ-7Q4M-X2KD-9BN{c}" for c in "012345"],  # more than five
        "KZ-7Q4M-X2KD-9BNR",  # not a list
    ],
)
def test_malformed_coupon_codes_reject_the_order_naming_the_field(codes: Any) -> None:
    raw = order("c1", "o-1", 3000, NOON)["detail"]
    with pytest.raises(ValidationError) as info:
        OrderPlaced.model_validate({**raw, "coupon_codes": codes})
    assert "coupon_codes" in str(info.value)


def test_an_order_without_codes_is_valid_as_before() -> None:
    raw = order("c1", "o-1", 3000, NOON)["detail"]
    assert OrderPlaced.model_validate(raw).coupon_codes == ()


# --- the sweep --------------------------------------------------------------------------------
def sweep(store: MemoryStore, now: datetime, cfg: KizunaConfig) -> list[DerivedEvent]:
    publisher = MemoryPublisher()
    run_sweep(DAILY, store, store, publisher, cfg, FixedClock(now))
    return list(publisher.events)


def test_the_sweep_reminds_once_per_unused_coupon_and_reminder_day() -> None:
    # given three coupons expiring on the 20th at 15:00 (c3's redeemed), reminders 3 and 1
    # days before
    until = datetime(2026, 1, 20, 15, tzinfo=UTC)
    store = with_coupons(issued("c1", until), issued("c2", until), issued("c3", until))
    store.coupons[("c3", code("c3"))]["status"] = "redeemed"
    cfg = KizunaConfig(lifecycle=LifecycleConfig(coupon_reminder_days=(3, 1)))
    # when the daily sweep runs every day at 16:00, and twice on the 17th
    seen: list[tuple[str, int, str]] = []
    for day in range(10, 22):
        now = datetime(2026, 1, day, 16, tzinfo=UTC)
        runs = 2 if day == 17 else 1
        for _ in range(runs):
            for e in sweep(store, now, cfg):
                d = e.detail.model_dump(mode="json")
                seen.append((d["customer_id"], d["days_left"], now.date().isoformat()))
                assert d["code"] == code(d["customer_id"]) and d["program"] == (
                    "second-purchase-coupon"
                )
                assert d["expires_at"].startswith("2026-01-20T15:00")
                assert code(d["customer_id"]) not in d["event_id"]  # the id names a digest
                assert code_ref(code(d["customer_id"])) in d["event_id"]
    # then each unused coupon is reminded on the 17th (3 days) and the 19th (1 day), once
    assert sorted(seen) == [
        ("c1", 1, "2026-01-19"),
        ("c1", 3, "2026-01-17"),
        ("c2", 1, "2026-01-19"),
        ("c2", 3, "2026-01-17"),
    ]


def test_a_coupon_redeemed_before_its_reminder_is_not_reminded() -> None:
    until = datetime(2026, 1, 20, 15, tzinfo=UTC)
    store = with_coupons(issued("c1", until))
    cfg, clock = KizunaConfig(), FixedClock(datetime(2026, 1, 15, tzinfo=UTC))
    ingest_one(store, placed("c1", "o-1", clock.now(), code("c1")), cfg, clock)
    assert sweep(store, datetime(2026, 1, 16, 16, tzinfo=UTC), cfg) == []
    assert sweep(store, datetime(2026, 1, 17, 16, tzinfo=UTC), cfg) == []


@pytest.mark.parametrize("days", [(0,), (3, 3), (91,)])
def test_reminder_days_are_validated(days: Sequence[int]) -> None:
    with pytest.raises(ValidationError, match="coupon_reminder_days"):
        LifecycleConfig(coupon_reminder_days=tuple(days))


# --- the trigger ------------------------------------------------------------------------------
REMINDER = """\
id: coupon-reminder
name: Coupon reminder
trigger:
  event: coupon.expiring
  conditions:
    days_left: [3]
steps:
  - {id: remind, type: send, channels: [email], template: reminder}
"""


def incoming(event: DerivedEvent) -> IncomingEvent:
    return IncomingEvent(
        event_id=event.detail.event_id,
        detail_type=event.detail_type,
        time=event.detail.occurred_at,
        detail=event.detail.model_dump(mode="json"),
    )


def test_a_program_triggered_by_coupon_expiring_enters_the_customer(tmp_path: Path) -> None:
    assert "coupon.expiring" in TRIGGER_EVENTS
    (tmp_path / "coupon-reminder.yaml").write_text(REMINDER)
    program = load_program(tmp_path / "coupon-reminder.yaml")
    # given c1's unused coupon and its 3-day reminder, and c2's, redeemed since the sweep
    until = datetime(2026, 1, 20, 15, tzinfo=UTC)
    store = with_coupons(issued("c1", until), issued("c2", until))
    cfg = KizunaConfig()
    for cid in ("c1", "c2"):
        store.customers[cid] = customer(cid, email=f"{cid}@example.jp", consent=opted_in("email"))
    now = datetime(2026, 1, 17, 16, tzinfo=UTC)
    events = sweep(store, now, cfg)
    assert sorted(e.detail.customer_id for e in events) == ["c1", "c2"]
    ingest_one(store, placed("c2", "c2-o1", now, code("c2")), cfg, FixedClock(now))
    # when evaluate receives the reminders
    starter = MemoryStarter()
    evaluator = Evaluator([program], store, starter, MemoryPublisher(), cfg, FixedClock(now))
    result = evaluator.evaluate([incoming(e) for e in events])
    # then c1 enters the program; c2's claim no longer holds (the coupon is redeemed)
    decisions = {(d.customer_id, d.decision, d.reason) for d in result.decisions}
    assert decisions == {
        ("c1", "entered", None),
        ("c2", "skipped", "claim_not_in_state"),
    }
