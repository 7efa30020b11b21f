"""The global control group: a stable random share of customers that no program enters and
no campaign sends to (recorded as held out, ``held_out: global_control``), checked before a
program's or a campaign's own holdout; transactional messages still go."""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.campaigns.assign import HOLDOUT, assign
from kizuna.campaigns.engine import Member, plan_recipient
from kizuna.campaigns.loader import parse_campaign
from kizuna.delivery.control import GLOBAL_CONTROL, control_bucket, in_global_control
from kizuna.delivery.templates import Renderer
from kizuna.programs.evaluate import Evaluator
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import GlobalControlConfig, KizunaConfig, MeasurementConfig
from kizuna.services.contracts import TransactionalRequest
from kizuna.services.send import SendService
from kizuna.services.transactional import TransactionalService
from kizuna_tools.fakes import MemoryInbound, MemoryPublisher, MemoryStarter, MemoryStore
from tests import factories
from tests.factories import T0, Email, campaign_definition, opted_in
from tests.unit.test_campaign_service import World, total
from tests.unit.test_evaluate import customer, first_purchase

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS, _ = load_programs(ROOT / "programs")
SPC = next(p for p in PROGRAMS if p.id == "second-purchase-coupon")
CONTROL = GlobalControlConfig(percent=10, salt="2026-q1", since=date(2026, 1, 1))
CFG = KizunaConfig(measurement=MeasurementConfig(global_control=CONTROL))
IDS = [f"c{i}" for i in range(20_000)]


def controlled(n: int = 1, *, program_holdout: bool | None = None) -> list[str]:
    """The first ``n`` customer ids in the control group (and in the program's holdout or
    not, when asked)."""
    return [
        cid
        for cid in IDS
        if in_global_control(CONTROL, cid)
        and (program_holdout is None or in_holdout(SPC, cid) == program_holdout)
    ][:n]


def treated(n: int = 1) -> list[str]:
    return [c for c in IDS if not in_global_control(CONTROL, c) and not in_holdout(SPC, c)][:n]


# -- configuration -------------------------------------------------------------------------
def test_off_by_default_and_nobody_is_in_it() -> None:
    off = KizunaConfig().measurement.global_control
    assert not off.enabled
    assert not any(in_global_control(off, cid) for cid in IDS[:1000])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"percent": 5, "since": "2026-01-01"}, "salt"),
        ({"percent": 5, "salt": "  ", "since": "2026-01-01"}, "salt"),
        ({"percent": 5, "salt": "s"}, "since"),
        ({"percent": 21, "salt": "s", "since": "2026-01-01"}, "percent"),
        ({"percent": -1, "salt": "s", "since": "2026-01-01"}, "percent"),
        ({"percent": 5, "salt": "s", "since": "2026-01-01", "seed": 1}, "seed"),
    ],
)
def test_a_group_needs_a_salt_and_a_start_date_and_at_most_20_percent(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as err:
        KizunaConfig.model_validate({"measurement": {"global_control": fields}})
    assert named in str(err.value)


# -- membership ----------------------------------------------------------------------------
def test_membership_is_a_stable_hash_of_salt_and_customer_in_any_order() -> None:
    # given: the same customers in two orders
    shuffled = IDS[:]
    random.Random(7).shuffle(shuffled)
    first = {c for c in IDS if in_global_control(CONTROL, c)}
    second = {c for c in shuffled if in_global_control(CONTROL, c)}
    # then: the same group, about the configured share
    assert first == second
    assert abs(len(first) / len(IDS) - 0.10) < 0.01
    # the bucket is sha256(global_control, salt, customer) (the holdouts' helper)
    digest = hashlib.sha256("\x1f".join(("global_control", "2026-q1", "c1")).encode()).digest()
    assert control_bucket(CONTROL, "c1") == int.from_bytes(digest[:8], "big") % 10_000 / 100


def test_the_percent_moves_the_boundary_and_only_a_new_salt_redraws() -> None:
    wider = CONTROL.model_copy(update={"percent": 15})
    redrawn = CONTROL.model_copy(update={"salt": "2026-q2"})
    base = {c for c in IDS if in_global_control(CONTROL, c)}
    # raising the percent keeps everyone and adds the customers just above the boundary
    assert base < {c for c in IDS if in_global_control(wider, c)}
    # a new salt draws a new group: about 10% of the old one stays in it by chance
    overlap = len(base & {c for c in IDS if in_global_control(redrawn, c)}) / len(base)
    assert overlap < 0.15


# -- programs ------------------------------------------------------------------------------
def evaluator(cfg: KizunaConfig = CFG) -> tuple[Evaluator, MemoryStore, MemoryStarter]:
    store, starter = MemoryStore(), MemoryStarter()
    ev = Evaluator(PROGRAMS, store, starter, MemoryPublisher(), cfg, FixedClock(T0))
    return ev, store, starter


def test_a_control_customer_enters_no_program_and_the_ledger_says_why() -> None:
    # given: a control customer the program's own holdout would have treated, and one it
    # would have held out anyway, and a treated customer
    (outside,) = controlled(program_holdout=False)
    (both,) = controlled(program_holdout=True)
    (other,) = treated()
    ev, store, starter = evaluator()
    for cid in (outside, both, other):
        store.customers[cid] = customer(cid)
    # when
    result = ev.evaluate([first_purchase(c) for c in (outside, both, other)])
    # then: the control customers are held out by the global control (checked first), the
    # other enters; nothing starts for the control customers
    got = {d.customer_id: (d.decision, d.reason) for d in result.decisions}
    assert got == {
        outside: ("holdout", GLOBAL_CONTROL),
        both: ("holdout", GLOBAL_CONTROL),
        other: ("entered", None),
    }
    assert len(starter.started) == 1
    row = store.ledger(outside, "ENTRY")[0].data
    assert row["held_out"] == GLOBAL_CONTROL
    assert row["global_control_percent"] == 10
    assert row["global_control_since"] == "2026-01-01"
    assert row["bucket"] == control_bucket(CONTROL, outside) < 10
    assert store.journeys[(outside, SPC.id)].execution is None


def test_a_control_customer_stays_out_on_every_re_entry_and_every_run() -> None:
    # given: control customers whose triggers come again and again, in different orders
    cids = controlled(5)
    for run in range(3):
        ev, store, starter = evaluator()
        order = cids[:] if run % 2 == 0 else cids[::-1]
        for cid in order:
            store.customers[cid] = customer(cid)
        for k in range(3):  # later purchases: re-entries if the program allowed them
            events = [
                first_purchase(c, event_id=f"{c}:{k}", at=T0 + timedelta(days=40 * k))
                for c in order
            ]
            result = ev.evaluate(events)
            assert all(d.decision != "entered" for d in result.decisions)
        assert starter.started == {}
        for cid in cids:
            reasons = {r.data["reason"] for r in store.ledger(cid, "ENTRY")}
            assert GLOBAL_CONTROL in reasons and "entered" not in {
                r.data["decision"] for r in store.ledger(cid, "ENTRY")
            }


def test_with_the_group_off_the_same_customers_enter_as_before() -> None:
    (cid,) = controlled(program_holdout=False)
    ev, store, _ = evaluator(KizunaConfig())
    store.customers[cid] = customer(cid)
    assert [d.decision for d in ev.evaluate([first_purchase(cid)]).decisions] == ["entered"]


# -- campaigns -----------------------------------------------------------------------------
def test_a_control_customer_is_assigned_the_control_arm_before_the_campaign_holdout() -> None:
    campaign = parse_campaign(campaign_definition(holdout_percent=50))
    arms = {cid: assign(campaign, cid, CONTROL) for cid in IDS[:5000]}
    for cid, arm in arms.items():
        if in_global_control(CONTROL, cid):
            assert arm.arm == GLOBAL_CONTROL and arm.held_out
        else:
            assert arm.arm != GLOBAL_CONTROL
    assert HOLDOUT in {a.arm for a in arms.values()}
    # planned: recorded as held out by the global control, never sent
    (cid,) = controlled()
    plan = plan_recipient(
        campaign,
        Member(cid, GLOBAL_CONTROL),
        factories.customer(cid, consent=opted_in("email")),
        {},
        T0,
        CFG,
        None,
    )
    assert (plan.status, plan.reason, plan.channel) == ("holdout", GLOBAL_CONTROL, None)
    assert plan.detail is not None and plan.detail["held_out"] == GLOBAL_CONTROL


def test_a_campaign_occurrence_sends_to_nobody_in_the_control_group() -> None:
    # given: 200 customers, about 20 of them in the control group
    w = World(n=200, cfg=CFG)
    members = {f"c{i:03d}" for i in range(200) if in_global_control(CONTROL, f"c{i:03d}")}
    assert members
    # when
    results = w.send_all(w.start())
    # then: every other customer is sent to, no control customer; each has its ledger row
    sent = {m.customer_id for m in w.channels["email"].sent}
    assert not sent & members
    assert total(results, "sent") == 200 - len(members) == len(sent)
    for cid in members:
        row = w.ledger()[cid]
        assert (row["status"], row["reason"], row["arm"]) == (
            "holdout",
            GLOBAL_CONTROL,
            GLOBAL_CONTROL,
        )


# -- transactional -------------------------------------------------------------------------
class Keys:
    def bind_request(self, execution: str, request_hash: str, at: str, expires_at: int) -> str:
        return request_hash


def test_transactional_messages_still_reach_a_control_customer() -> None:
    (cid,) = controlled()
    store = MemoryStore()
    store.customers[cid] = factories.customer(cid, email=f"{cid}@example.jp")
    email = Email()
    sender = SendService(
        PROGRAMS,
        store,
        Renderer(ROOT / "templates"),
        {"email": email},
        MemoryInbound(),
        CFG,
        FixedClock(T0),
        coupon_secret=b"k" * 32,
        sleep=lambda _: None,
    )
    req = TransactionalRequest(
        execution="tx:" + "a" * 32,
        request_hash="b" * 64,
        caller="test",
        customer_id=cid,
        template="order_confirmation",
        channels=("email",),
        data={"order_id": "A-1", "total": 5400, "currency": "JPY"},
    )
    response = TransactionalService(sender, Keys()).send(req)
    assert response.status == "sent", response
    assert len(email.sent) == 1


def test_a_program_about_the_transactional_topic_is_not_held_back_by_the_control() -> None:
    # given: the seed program re-declared as about the transactional topic (service)
    service = SPC.model_copy(update={"topic": "service"})
    store, starter = MemoryStore(), MemoryStarter()
    ev = Evaluator([service], store, starter, MemoryPublisher(), CFG, FixedClock(T0))
    (outside,) = controlled(program_holdout=False)
    store.customers[outside] = customer(outside)
    # when
    result = ev.evaluate([first_purchase(outside)])
    # then: the control customer enters (the group holds back marketing only)
    assert [(d.decision, d.reason) for d in result.decisions] == [("entered", None)]
