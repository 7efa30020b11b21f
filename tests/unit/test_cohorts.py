"""Cohorts (issue 15): entries due together share one execution; each step decides per member
on fresh state, and the members who go elsewhere continue in child groups — once, even when
a step is retried."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kizuna.domain.customer import Customer, OrderFact, ProcessedRecord
from kizuna.domain.privacy import erase
from kizuna.domain.timestamps import iso
from kizuna.programs.cohorts import (
    JOIN_MARGIN,
    ceil_to,
    cohort_id,
    due_of,
    first_due,
    run_name,
)
from kizuna.programs.compiler import fused_with
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_program, load_programs
from kizuna.programs.members import GONE, ROOT, Member
from kizuna.programs.model import Program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.cohort import CohortService
from kizuna.services.contracts import GroupRequest, SendRequest, SendResponse
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests import factories
from tests.factories import Email, opted_in

ROOT_DIR = Path(__file__).resolve().parents[2]
SEEDS = {p.id: p for p in load_programs(ROOT_DIR / "programs")[0]}
# the window's tests: every seed as a window program (rank-up and cart start at_once)
PROGRAMS = {pid: p.model_copy(update={"start": "window"}) for pid, p in SEEDS.items()}
CFG = KizunaConfig()
NIGHT = datetime(2026, 1, 5, 13, 20, tzinfo=UTC)  # 22:20 in Tokyo


def tokyo(cid: str, **fields: Any) -> Customer:
    fields = {"time_zone": "Asia/Tokyo", **fields}
    return factories.customer(cid, email=f"{cid}@example.jp", consent=opted_in("email"), **fields)


# --- the cohort of an entry -------------------------------------------------------------------
def test_a_days_entries_in_one_time_zone_share_the_local_time_instant() -> None:
    program = PROGRAMS["second-purchase-coupon"]  # wait 1 day until 10:00, then the coupon
    # from 10:00 one day to 10:00 the next (Tokyo), entries meet at 10:00 the day after
    early = first_due(program, datetime(2026, 1, 4, 1, 30, tzinfo=UTC), tokyo("a"), CFG)
    late = first_due(program, datetime(2026, 1, 5, 0, 30, tzinfo=UTC), tokyo("b"), CFG)
    assert early == late == (datetime(2026, 1, 6, 1, 0, tzinfo=UTC), "coupon")
    # a New Yorker's 10:00 is another instant: another cohort
    ny = first_due(
        program,
        datetime(2026, 1, 5, 0, 5, tzinfo=UTC),
        tokyo("c", time_zone="America/New_York"),
        CFG,
    )
    assert ny[0] != early[0]


def test_a_send_first_program_leaves_at_the_end_of_the_window() -> None:
    program = PROGRAMS["rank-up-congratulations"]
    assert program.cohort_minutes == 60
    due, start = first_due(program, NIGHT, tokyo("a"), CFG)
    assert (due, start) == (datetime(2026, 1, 5, 14, 0, tzinfo=UTC), "congratulate")
    assert due_of(cohort_id(program.id, due)) == due
    assert ceil_to(datetime(2026, 1, 5, 14, 0, tzinfo=UTC), 60) == datetime(
        2026, 1, 5, 14, 0, tzinfo=UTC
    )


# --- evaluate: joining ---------------------------------------------------------------------------
def treated(program: Program, prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(500) if not in_holdout(program, f"{prefix}{i}")][:n]


def rank_changed(cid: str, at: datetime) -> IncomingEvent:
    return IncomingEvent(
        event_id=f"{cid}:rank",
        detail_type="customer.rank_changed",
        time=at,
        detail={"customer_id": cid, "from_rank": "Bronze", "to_rank": "Silver", "direction": "up"},
    )


def evaluator(store: MemoryStore, starter: MemoryStarter, now: datetime) -> Evaluator:
    return Evaluator(
        list(PROGRAMS.values()), store, starter, MemoryPublisher(), CFG, FixedClock(now)
    )


def test_entries_of_one_window_share_one_execution_started_once() -> None:
    store, starter = MemoryStore(), MemoryStarter()
    program = PROGRAMS["rank-up-congratulations"]
    ids = treated(program, "r", 5)
    for cid in ids:
        store.customers[cid] = tokyo(cid, rank="Silver")
    ev = evaluator(store, starter, NIGHT)
    ev.evaluate([rank_changed(cid, NIGHT) for cid in ids[:3]])
    ev.evaluate([rank_changed(cid, NIGHT) for cid in ids[3:]])  # another batch
    cohort = cohort_id(program.id, datetime(2026, 1, 5, 14, 0, tzinfo=UTC))
    assert list(starter.started) == [cohort]
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == set(ids)
    payload = starter.started[cohort][1]
    assert ids[0] not in str(payload)  # no customer id in an execution's input
    assert store.journeys[(ids[0], program.id)].cohort == cohort
    # the ledger names the entry and the cohort that carries it
    entry = store.ledger(ids[0], "ENTRY")[-1].data
    assert entry["cohort"] == cohort and entry["execution"].startswith(program.id)


def test_an_entry_too_close_to_its_cohorts_instant_joins_the_next_one() -> None:
    store, starter = MemoryStore(), MemoryStarter()
    program = PROGRAMS["rank-up-congratulations"]
    (cid,) = treated(program, "z", 1)
    store.customers[cid] = tokyo(cid, rank="Silver")
    now = datetime(2026, 1, 5, 14, 0, tzinfo=UTC) - JOIN_MARGIN + timedelta(seconds=1)
    evaluator(store, starter, now).evaluate([rank_changed(cid, now)])
    assert store.journeys[(cid, program.id)].cohort == cohort_id(
        program.id, datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    )


# docs/PROGRAMS.md "Birthdays": wait until 09:00 local, then the coupon
BIRTHDAY = Program.model_validate(
    {
        "id": "birthday-coupon",
        "name": "Birthday coupon",
        "priority": 60,
        "trigger": {"event": "customer.birthday", "conditions": {"age": [{"numeric": [">=", 18]}]}},
        "audience": {"reachable": ["line", "email", "push"]},
        "reentry": {"mode": "every", "days": 300},
        "steps": [
            {"id": "morning", "type": "wait", "until_local_time": "09:00"},
            {
                "id": "coupon",
                "type": "send",
                "channels": ["line", "email", "push"],
                "template": "coupon",
                "coupon": {"discount": "15%", "valid_days": 30},
            },
        ],
    }
)
SWEEP = datetime(2027, 3, 10, 16, 0, tzinfo=UTC)  # the daily sweep: 01:00 in Tokyo


def birthday_cohort(cid: str, zone_name: str, day: date, now: datetime) -> datetime:
    """The instant a customer in ``zone_name`` whose birthday ``day`` is, evaluated at
    ``now``, is due (the sweep's event: ``occurred_at`` the date's local midnight)."""
    store, starter = MemoryStore(), MemoryStarter()
    store.customers[cid] = tokyo(cid, time_zone=zone_name, birth_date=date(1985, 3, day.day))
    midnight = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
    ev = IncomingEvent(
        event_id=f"{cid}:birthday:{day.year}",
        detail_type="customer.birthday",
        time=midnight,
        detail={
            "customer_id": cid,
            "date": day.isoformat(),
            "age": day.year - 1985,
            "time_zone": zone_name,
            "occurred_at": midnight.isoformat(),
        },
    )
    Evaluator([BIRTHDAY], store, starter, MemoryPublisher(), CFG, FixedClock(now)).evaluate([ev])
    cohort = store.journeys[(cid, BIRTHDAY.id)].cohort
    assert cohort is not None
    return due_of(cohort)


def test_a_birthday_morning_wait_counts_from_the_local_midnight_not_from_the_sweep() -> None:
    # the sweep at 01:00 in Tokyo: a Tokyo birthday is due at 09:00 that morning
    tokyo_due = birthday_cohort("b1", "Asia/Tokyo", date(2027, 3, 11), SWEEP)
    assert tokyo_due == datetime(2027, 3, 11, 0, 0, tzinfo=UTC)
    # the same sweep is 11:00 on a New Yorker's birthday: 09:00 has passed, so the coupon
    # goes at the next window that day (12:00), not at 09:00 the next day
    ny_due = birthday_cohort("b2", "America/New_York", date(2027, 3, 10), SWEEP)
    assert ny_due == datetime(2027, 3, 10, 17, 0, tzinfo=UTC)
    assert ny_due.astimezone(ZoneInfo("America/New_York")).date() == date(2027, 3, 10)
    # a Londoner's 09:00 is still to come when an hourly run puts it (02:00 there)
    london = birthday_cohort("b3", "Europe/London", date(2027, 3, 10), SWEEP.replace(hour=2))
    assert london == datetime(2027, 3, 10, 9, 0, tzinfo=UTC)


def test_a_birthday_evaluated_after_its_date_ended_waits_for_the_next_morning() -> None:
    # Singapore's 10 March began at the sweep's previous edge: the sweep at 16:00Z puts it at
    # 00:00 on the 11th there; the next window (01:00 on the 11th) is not the birthday any
    # more, so the wait counts from the evaluation (09:00 on the 11th), never a 01:00 send
    due = birthday_cohort("b4", "Asia/Singapore", date(2027, 3, 10), SWEEP)
    assert due == datetime(2027, 3, 11, 1, 0, tzinfo=UTC)
    # a trigger delivered days late (a catch-up, a redrive) is not sent at once either
    late = birthday_cohort("b5", "America/New_York", date(2027, 3, 10), SWEEP + timedelta(days=2))
    assert late == datetime(2027, 3, 13, 14, 0, tzinfo=UTC)  # 09:00 the next morning


def test_a_first_wait_counts_from_the_trigger_that_came_late() -> None:
    # a first order (12:00 in Tokyo on the 4th) evaluated a day late: "wait 1 day until
    # 10:00" is the 6th's 10:00 (a day after the order), not the 7th's
    store, starter = MemoryStore(), MemoryStarter()
    program = PROGRAMS["second-purchase-coupon"]
    (cid,) = treated(program, "f", 1)
    ordered = datetime(2026, 1, 4, 3, 0, tzinfo=UTC)
    store.customers[cid] = tokyo(
        cid,
        order_count=1,
        first_order_at=ordered,
        last_order_at=ordered,
        orders={"o1": OrderFact(placed=True, at=ordered)},
    )
    ev = IncomingEvent(
        f"{cid}:fp", "customer.first_purchase", ordered, {"customer_id": cid, "order_id": "o1"}
    )
    evaluator(store, starter, ordered + timedelta(days=1)).evaluate([ev])
    state = store.journeys[(cid, program.id)]
    assert state.cohort == cohort_id(program.id, datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    # the entry itself is still when it was decided (a goal must come after it)
    assert state.last_entry_at == ordered + timedelta(days=1)


# --- the steps ---------------------------------------------------------------------------------
BRANCHY = """
id: branchy
name: Branchy
trigger: {event: customer.first_purchase}
steps:
  - {id: hello, type: send, channels: [email], template: hello}
  - {id: check, type: branch, condition: {rank: [Gold]}, then: gold, else: other}
  - {id: gold, type: wait, days: 1, next: done}
  - {id: other, type: wait, days: 2, until_local_time: "09:00", next: split}
  - id: split
    type: split
    arms: [{name: a, weight: 50, next: done}, {name: b, weight: 50, next: bye}]
  - {id: bye, type: wait, days: 1, next: done}
  - {id: done, type: exit}
"""


class FakeSender:
    """Answers per customer id: ``exit:...``, ``deferred:<iso>`` or sent."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[list[SendRequest]] = []

    def send_many(self, reqs: Any) -> list[SendResponse]:
        self.calls.append(list(reqs))
        out = []
        for r in reqs:
            answer = self.answers.get(r.customer_id, "sent")
            if answer.startswith("deferred:"):
                out.append(SendResponse(status="deferred", until=answer.split(":", 1)[1]))
            else:
                out.append(SendResponse(status=answer))  # type: ignore[arg-type]
        return out


@pytest.fixture
def branchy(tmp_path: Path) -> Program:
    (tmp_path / "branchy.yaml").write_text(BRANCHY)
    return load_program(tmp_path / "branchy.yaml")


def world(
    program: Program,
    members: dict[str, Customer],
    sender: FakeSender | None = None,
    limit: int = 500,
) -> tuple[CohortService, MemoryStore, MemoryStarter, str]:
    store, starter = MemoryStore(), MemoryStarter()
    cohort = cohort_id(program.id, NIGHT.replace(minute=0))
    for cid, customer in members.items():
        store.customers[cid] = customer
        arms = {"split": "a" if cid.endswith(("0", "2", "4", "6", "8")) else "b"}
        store.members.setdefault(cohort, {})
        member = Member(cid, f"{program.id}-{cid}", NIGHT - timedelta(hours=1), arms)
        store.members[cohort][member.sk] = member
    service = CohortService(
        [program], store, starter, CFG, FixedClock(NIGHT), sender=sender, group_limit=limit
    )
    return service, store, starter, cohort


def ask(
    service: CohortService, cohort: str, action: str, step: str, group: str = ROOT, **extra: Any
) -> dict[str, Any]:
    req = GroupRequest(
        action=action,  # type: ignore[arg-type]
        program=next(iter(service.programs)),
        cohort=cohort,
        group=group,
        run=run_name(cohort, group),
        step=step,
        **extra,
    )
    return service.handle(req)


def test_a_branch_keeps_then_and_moves_else_to_one_child_started_at_else(branchy: Program) -> None:
    people = {f"g{i}": tokyo(f"g{i}", rank="Gold" if i < 3 else "Bronze") for i in range(7)}
    service, store, starter, cohort = world(branchy, people)
    ask(service, cohort, "check", "check")
    kept = {m.customer_id for m in store.cohort_members(cohort, ROOT)}
    assert kept == {"g0", "g1", "g2"}
    (child,) = store.cohort_children(cohort, ROOT, "check")
    assert child.step == "other"
    assert {m.customer_id for m in store.cohort_members(cohort, child.group)} == {
        "g3",
        "g4",
        "g5",
        "g6",
    }
    assert [(n, p["step"], p["group"]) for n, (_, p) in starter.started.items()] == [
        (run_name(cohort, child.group), "other", child.group)
    ]
    # each member's decision, and the execution that carries them on, is in the ledger
    step = store.steps[("g4", f"STEP#{branchy.id}-g4#check")]
    assert step["decision"] == "else" and step["next_run"] == run_name(cohort, child.group)
    # and why: the condition that failed, from the view already read (no extra read)
    assert step["failed"] == [{"field": "rank", "expected": ["Gold"], "found": "Bronze"}]
    then = store.steps[("g0", f"STEP#{branchy.id}-g0#check")]
    assert then["decision"] == "then" and "failed" not in then


def test_a_retried_step_moves_nobody_twice_and_restarts_its_own_children(branchy: Program) -> None:
    people = {f"g{i}": tokyo(f"g{i}", rank="Gold" if i < 3 else "Bronze") for i in range(7)}
    service, store, starter, cohort = world(branchy, people)
    ask(service, cohort, "check", "check")
    ask(service, cohort, "check", "check")  # Step Functions retried the task
    assert len(store.cohort_children(cohort, ROOT, "check")) == 1
    assert len(starter.started) == 1  # started again under the same name: the same execution
    assert len({m.sk for group in store.members.values() for m in group.values()}) == 7


def test_split_arms_that_go_to_an_exit_start_nothing(branchy: Program) -> None:
    people = {f"s{i}": tokyo(f"s{i}") for i in range(6)}
    service, store, starter, cohort = world(branchy, people)
    # the group at `split`: arm a -> done (exit), b -> bye; the group keeps arm a
    ask(service, cohort, "split", "split")
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"s0", "s2", "s4"}
    (child,) = store.cohort_children(cohort, ROOT, "split")
    assert child.step == "bye"
    assert len(starter.started) == 1


def test_local_time_keeps_the_instant_most_share_and_sends_the_others_on(branchy: Program) -> None:
    people = {f"t{i}": tokyo(f"t{i}") for i in range(4)}
    people["t9"] = tokyo("t9", time_zone="Europe/London")
    service, store, _starter, cohort = world(branchy, people)
    answer = ask(
        service, cohort, "local_time", "other", after_seconds=2 * 86400, local_time="09:00"
    )
    assert answer == {"at": "2026-01-08T00:00:00.000000Z"}  # 09:00 in Tokyo
    (child,) = store.cohort_children(cohort, ROOT, "other")
    assert child.step == "split" and child.at == datetime(2026, 1, 8, 9, 0, tzinfo=UTC)
    assert [m.customer_id for m in store.cohort_members(cohort, child.group)] == ["t9"]


def test_a_send_defers_by_instant_and_lets_converted_members_go(branchy: Program) -> None:
    people = {f"d{i}": tokyo(f"d{i}") for i in range(5)}
    until = "2026-01-05T23:00:00.000000Z"
    sender = FakeSender({"d1": f"deferred:{until}", "d2": f"deferred:{until}", "d3": "exit"})
    service, store, _starter, cohort = world(branchy, people, sender)
    answer = ask(service, cohort, "send", "hello")
    assert answer["counts"] == {"sent": 2, "deferred": 2, "exit": 1}
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"d0", "d4"}
    assert [m.customer_id for m in store.cohort_members(cohort, GONE)] == ["d3"]
    (child,) = store.cohort_children(cohort, ROOT, "hello")
    assert child.step == "hello" and child.at == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
    assert {m.customer_id for m in store.cohort_members(cohort, child.group)} == {"d1", "d2"}
    # every request names the member's own entry (the ledger key) and the carrying execution
    assert {(r.execution, r.run) for r in sender.calls[0]} == {
        (f"branchy-d{i}", cohort) for i in range(5)
    }


def test_a_fused_send_then_branch_decides_only_for_the_members_who_went_on(
    branchy: Program,
) -> None:
    # Given a group of five: d1 deferred by quiet hours, d3 converted (leaves), d0 and d4 Gold
    people = {f"d{i}": tokyo(f"d{i}", rank="Gold" if i in (0, 4) else "Bronze") for i in range(6)}
    until = "2026-01-05T23:00:00.000000Z"
    sender = FakeSender({"d1": f"deferred:{until}", "d3": "exit"})
    service, store, starter, cohort = world(branchy, people, sender)
    # When the compiler's fused task runs the send and then the branch in one invocation
    answer = ask(service, cohort, "send", "hello", then=[{"action": "check", "step": "check"}])
    # Then it answers the send's counts, the group keeps the Gold members who were sent to,
    # the Bronze ones who were go on at `other`, and the deferred one waits to redo both
    assert answer["counts"] == {"sent": 4, "deferred": 1, "exit": 1}
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"d0", "d4"}
    (deferred,) = store.cohort_children(cohort, ROOT, "hello")
    assert (deferred.step, deferred.at) == ("hello", datetime(2026, 1, 5, 23, 0, tzinfo=UTC))
    (other,) = store.cohort_children(cohort, ROOT, "check")
    assert other.step == "other"
    assert {m.customer_id for m in store.cohort_members(cohort, other.group)} == {"d2", "d5"}
    decided = {cid for cid, sk in store.steps if sk.endswith("#check")}
    assert decided == {"d0", "d2", "d4", "d5"}  # nobody deferred or gone was branched
    # and a retry of the whole task (Step Functions after a timeout) moves nobody twice
    ask(service, cohort, "send", "hello", then=[{"action": "check", "step": "check"}])
    assert len(store.cohort_children(cohort, ROOT, "check")) == 1
    assert len(starter.started) == 2  # the same two children, started again by name
    assert len({m.sk for group in store.members.values() for m in group.values()}) == 6


def test_a_fused_send_then_local_time_answers_the_counts_and_the_instant(
    branchy: Program,
) -> None:
    # Given four members in Tokyo and one in London, one of them deferred by quiet hours
    people = {f"t{i}": tokyo(f"t{i}") for i in range(4)}
    people["t9"] = tokyo("t9", time_zone="Europe/London")
    sender = FakeSender({"t3": "deferred:2026-01-05T23:00:00.000000Z"})
    service, store, _starter, cohort = world(branchy, people, sender)
    # When the send and the wait until 09:00 after it run as one task
    answer = ask(service, cohort, "send", "hello", then=[{"action": "local_time", "step": "other"}])
    # Then the answer has the send's counts and the instant the group waits until (the Wait
    # reads it); London goes on in a child group, the deferred member redoes both later
    assert answer["counts"] == {"sent": 4, "deferred": 1}
    assert answer["at"] == "2026-01-08T00:00:00.000000Z"  # 09:00 in Tokyo
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"t0", "t1", "t2"}
    (london,) = store.cohort_children(cohort, ROOT, "other")
    assert london.step == "split"
    assert [m.customer_id for m in store.cohort_members(cohort, london.group)] == ["t9"]
    (deferred,) = store.cohort_children(cohort, ROOT, "hello")
    assert [m.customer_id for m in store.cohort_members(cohort, deferred.group)] == ["t3"]


def test_a_branch_on_a_segment_it_does_not_have_fails_instead_of_deciding_else(
    tmp_path: Path,
) -> None:
    # Given a branch on a named segment, and a cohort service without that segment's
    # definition (a function deployed without the segments folder)
    text = BRANCHY.replace("condition: {rank: [Gold]}", "condition: {segments: [vip]}")
    (tmp_path / "branchy.yaml").write_text(text)
    program = load_program(tmp_path / "branchy.yaml")
    service, store, starter, cohort = world(program, {"v1": tokyo("v1")})
    # Then the step fails (Step Functions retries it, then the execution fails: an alarm)
    # and nobody is moved or recorded as "else"
    with pytest.raises(ValueError, match="vip"):
        ask(service, cohort, "check", "check")
    assert store.steps == {} and starter.started == {}
    assert [m.customer_id for m in store.cohort_members(cohort, ROOT)] == ["v1"]


def test_only_one_step_is_fused_after_another_and_never_the_failure_path() -> None:
    base = {"program": "p", "cohort": "c", "group": ROOT, "run": "c", "step": "a"}
    with pytest.raises(ValidationError):
        GroupRequest(**base, action="send", then=[{"action": "failed", "step": "w"}])
    with pytest.raises(ValidationError):
        GroupRequest(
            **base,
            action="send",
            then=[{"action": "check", "step": "b"}, {"action": "split", "step": "s"}],
        )
    with pytest.raises(ValidationError):
        GroupRequest(**base, action="send", then=[{"action": "check", "step": "b", "x": 1}])


def test_a_big_group_is_split_into_groups_of_at_most_the_limit(branchy: Program) -> None:
    people = {f"b{i:02d}": tokyo(f"b{i:02d}") for i in range(23)}
    sender = FakeSender()
    service, store, starter, cohort = world(branchy, people, sender, limit=10)
    ask(service, cohort, "send", "hello")
    assert len(sender.calls[0]) == 10
    children = store.cohort_children(cohort, ROOT, "hello")
    sizes = sorted(len(store.cohort_members(cohort, c.group)) for c in children)
    assert sizes == [3, 10] and all(c.step == "hello" for c in children)
    assert len(starter.started) == 2


def test_erasure_takes_the_customer_out_of_their_cohorts() -> None:
    store, starter = MemoryStore(), MemoryStarter()
    program = PROGRAMS["rank-up-congratulations"]
    (cid,) = treated(program, "e", 1)
    store.customers[cid] = tokyo(cid, rank="Silver")
    evaluator(store, starter, NIGHT).evaluate([rank_changed(cid, NIGHT)])
    cohort = store.journeys[(cid, program.id)].cohort
    assert cohort and store.cohort_members(cohort, ROOT)
    journey = store.journeys[(cid, program.id)]

    class Privacy:
        def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]:
            return (
                [{"sk": f"JOURNEY#{program.id}", "cohort": journey.cohort}]
                if customer_id == cid
                else []
            )

        def delete_activity(self, customer_id: str, sort_keys: Any) -> None: ...

        def delete_customer(self, customer_id: str) -> bool:
            return True

        def customer_item(self, customer_id: str) -> None: ...

        def mark_erased(self, key: str, expires_at: int, now: int) -> None: ...

        def count_erasure(self, day: str, key: str) -> None: ...

    report = erase(cid, Privacy(), store, NIGHT)  # type: ignore[arg-type]
    assert report.journeys_stopped == 1
    assert store.cohort_members(cohort, ROOT) == []


def test_a_send_step_that_crashed_leaves_nobody_without_an_outcome(branchy: Program) -> None:
    people = {f"f{i}": tokyo(f"f{i}") for i in range(3)}
    service, store, _, cohort = world(branchy, people)
    # f0 was sent before the crash: its entry stays
    store.messages[("f0", "MSG#branchy-f0#hello")] = {"status": "sent", "channel": "email"}
    assert ask(service, cohort, "failed", "hello") == {"failed": 2}
    statuses = {cid: store.messages[(cid, f"MSG#branchy-{cid}#hello")] for cid in people}
    assert statuses["f0"]["status"] == "sent"
    assert statuses["f1"]["status"] == statuses["f2"]["status"] == "failed"
    assert statuses["f1"]["reason"] == "step_failed" and statuses["f1"]["run"] == cohort


@pytest.mark.parametrize(
    ("action", "extra", "answer"),
    [
        ("send", {}, {}),  # an execution of the earlier definition, at a renamed send
        ("check", {}, {}),  # ... at a removed branch
        ("local_time", {"after_seconds": 0, "local_time": "09:00"}, {"at": iso(NIGHT)}),
        ("removed", {}, {}),  # a child group started at it: the dispatch's Default
    ],
)
def test_a_step_the_deployed_program_no_longer_has_lets_its_members_leave_recorded(
    branchy: Program, action: str, extra: dict[str, Any], answer: dict[str, Any]
) -> None:
    # Given a group at `reminder`, a step a redeploy renamed (branchy has none by that id)
    people = {f"r{i}": tokyo(f"r{i}") for i in range(3)}
    sender = FakeSender()
    service, store, starter, cohort = world(branchy, people, sender)
    # When the execution asks for it: no KeyError, nothing sent, nobody started elsewhere
    got = ask(service, cohort, action, "reminder", **extra)
    assert got == answer
    assert sender.calls == [] and starter.started == {}
    # Then every member left the journey there, each with the reason recorded
    assert store.cohort_members(cohort, ROOT) == []
    assert {m.customer_id for m in store.cohort_members(cohort, GONE)} == set(people)
    for cid in people:
        row = store.steps[(cid, f"STEP#branchy-{cid}#reminder")]
        assert (row["decision"], row["reason"], row["next_run"]) == ("exit", "step_removed", None)
        assert row["run"] == cohort
    # and the execution going on asks for steps over nobody (a retry too: nobody twice)
    assert ask(service, cohort, action, "reminder", **extra) == got
    assert ask(service, cohort, "check", "check") == {}
    assert len(store.steps) == 3


@pytest.mark.parametrize(
    ("action", "step", "extra", "answer"),
    [
        ("send", "check", {}, {}),  # the earlier definition's send `check`, now a branch
        ("check", "hello", {}, {}),  # its branch `hello`, now a send
        ("split", "check", {}, {}),
        ("local_time", "split", {"after_seconds": 0, "local_time": "09:00"}, {"at": iso(NIGHT)}),
        # a wait until a local time that is now a fixed wait (the same type, no local time)
        ("local_time", "gold", {"after_seconds": 0, "local_time": "09:00"}, {"at": iso(NIGHT)}),
    ],
)
def test_a_step_that_kept_its_id_but_changed_type_lets_its_members_leave_recorded(
    branchy: Program, action: str, step: str, extra: dict[str, Any], answer: dict[str, Any]
) -> None:
    # Given a group at a step an execution of the earlier definition asks for by its old type
    people = {f"t{i}": tokyo(f"t{i}") for i in range(3)}
    sender = FakeSender()
    service, store, starter, cohort = world(branchy, people, sender)
    # When it asks: no ValueError (a send recorded failed, a branch failed the execution)
    got = ask(service, cohort, action, step, **extra)
    assert got == answer
    assert sender.calls == [] and starter.started == {}
    # Then every member left the journey there, each with the reason recorded
    assert store.cohort_members(cohort, ROOT) == []
    assert {m.customer_id for m in store.cohort_members(cohort, GONE)} == set(people)
    for cid in people:
        row = store.steps[(cid, f"STEP#branchy-{cid}#{step}")]
        assert (row["decision"], row["reason"], row["next_run"]) == ("exit", "step_changed", None)
    assert ask(service, cohort, action, step, **extra) == got
    assert len(store.steps) == 3


def test_a_fused_step_the_program_no_longer_has_lets_those_the_first_kept_leave(
    branchy: Program,
) -> None:
    # the earlier definition fused `hello` with a branch since renamed: hello is sent, then
    # the members it kept leave at the branch
    people = {f"s{i}": tokyo(f"s{i}") for i in range(2)}
    sender = FakeSender()
    service, store, _, cohort = world(branchy, people, sender)
    ask(service, cohort, "send", "hello", then=[{"action": "check", "step": "check_v1"}])
    assert len(sender.calls) == 1
    assert {m.customer_id for m in store.cohort_members(cohort, GONE)} == set(people)
    assert {k for _, k in store.steps} == {f"STEP#branchy-{c}#check_v1" for c in people}


class _FlakyStarter(MemoryStarter):
    """StartExecution / CreateSchedule failing (throttled, 5xx) while ``broken``."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        if self.broken:
            raise RuntimeError("ThrottlingException")
        return super().start(program_id, name, payload)


def test_a_send_step_that_failed_after_settling_still_starts_its_children(
    branchy: Program,
) -> None:
    # given: a group of 5 at a send step with a group limit of 3 (d3, d4 overflow to a
    # child), d1 deferred by quiet hours (a child at the same step)
    people = {f"d{i}": tokyo(f"d{i}") for i in range(5)}
    sender = FakeSender({"d1": "deferred:2026-01-05T23:00:00.000000Z"})
    service, store, _, cohort = world(branchy, people, sender, limit=3)
    starter = _FlakyStarter()
    service.starter = starter
    # when: the step settles (headers written, members moved) but starting the children
    # fails on the first attempt and on each of Step Functions' retries
    for _ in range(4):
        with pytest.raises(RuntimeError):
            ask(service, cohort, "send", "hello")
    children = store.cohort_children(cohort, ROOT, "hello")
    moved = {m.customer_id for c in children for m in store.cohort_members(cohort, c.group)}
    assert len(children) == 2 and moved == {"d1", "d3", "d4"}
    assert not starter.started
    # and the Catch's hello__failed runs once starting works again
    starter.broken = False
    ask(service, cohort, "failed", "hello")
    # then: every child group's execution is started: nobody is stranded
    assert {run_name(cohort, c.group) for c in children} <= set(starter.started)


# --- two rank changes in one batch (issue #20, item 11) -------------------------------------
@pytest.mark.parametrize("batches", [[[0, 1]], [[0], [1]]], ids=["one-batch", "two-batches"])
def test_two_rank_ups_in_one_window_send_one_message_each_naming_its_rank(
    batches: list[list[int]],
) -> None:
    # given: c rose Bronze -> Silver -> Gold (now Gold, in English), the two changes
    # evaluated in one batch or in two, within one cohort window
    store, starter = MemoryStore(), MemoryStarter()
    program = PROGRAMS["rank-up-congratulations"]
    (cid,) = treated(program, "up", 1)
    moves = [("Bronze", "Silver"), ("Silver", "Gold")]
    details = [
        {
            "customer_id": cid,
            "caused_by": f"o{n}",
            "from_rank": before,
            "to_rank": after,
            "direction": "up",
            "rank_points": 100 * (n + 1),
        }
        for n, (before, after) in enumerate(moves)
    ]
    # (ingest keeps what each order derived: the Silver change is true though c is Gold now)
    store.customers[cid] = tokyo(cid, rank="Gold", locale="en").model_copy(
        update={
            "processed": {
                d["caused_by"]: ProcessedRecord(
                    at=NIGHT, derived=[{"detail_type": "customer.rank_changed", "detail": d}]
                )
                for d in details
            }
        }
    )
    events = [
        IncomingEvent(
            event_id=f"rank_changed:{d['from_rank']}:{d['to_rank']}:{d['caused_by']}",
            detail_type="customer.rank_changed",
            time=NIGHT,
            detail=d,
        )
        for d in details
    ]
    # when: they are evaluated, and the cohort's send step runs
    ev = evaluator(store, starter, NIGHT)
    for batch in batches:
        ev.evaluate([events[i] for i in batch])
    (cohort,) = starter.started
    members = store.cohort_members(cohort, ROOT)
    assert sorted(m.trigger["to_rank"] for m in members) == ["Gold", "Silver"]
    email = Email()
    sender = factories.send_service(store, {"email": email}, FixedClock(NIGHT))
    service = CohortService(
        [program], store, starter, CFG, FixedClock(NIGHT + timedelta(hours=1)), sender=sender
    )
    ask(service, cohort, "send", "congratulate")
    # then: one message per rank change, each naming the rank of its change
    subjects = sorted(m.content.subject for m in email.sent)  # type: ignore[union-attr]
    assert subjects == ["Congratulations! You are now Gold", "Congratulations! You are now Silver"]
    silver = next(m for m in email.sent if "Silver" in m.content.subject)  # type: ignore[union-attr]
    assert "Free shipping over 3,000 yen" in silver.content.text  # type: ignore[union-attr]


# --- start: at_once (an entry's first steps run when it is evaluated) -----------------------
AT_ONCE = SEEDS["rank-up-congratulations"]  # congratulate + split, wait 7 days, branch + send


def test_at_once_is_refused_for_a_program_that_starts_with_a_wait() -> None:
    data = SEEDS["second-purchase-coupon"].model_dump(mode="json", exclude_none=True)
    with pytest.raises(ValidationError, match="at_once"):
        Program.model_validate({**data, "start": "at_once"})


def test_at_once_entries_run_their_segment_per_batch_in_the_cohort_due_after_the_wait() -> None:
    # given: 5 rank-ups evaluated in two batches at 22:20 Tokyo
    store, starter = MemoryStore(), MemoryStarter()
    program = AT_ONCE
    assert program.start == "at_once"
    ids = treated(program, "a", 5)
    for cid in ids:
        store.customers[cid] = tokyo(cid, rank="Silver")
    ev = Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(NIGHT))
    ev.evaluate([rank_changed(cid, NIGHT) for cid in ids[:3]])
    ev.evaluate([rank_changed(cid, NIGHT) for cid in ids[3:]])
    # then: no execution yet; one invocation of the send function per batch, each over its
    # own entry group of the cohort due when the 7-day wait ends (rounded up to the hour)
    due = datetime(2026, 1, 12, 14, 0, tzinfo=UTC)
    cohort = cohort_id(program.id, due)
    assert starter.started == {}
    assert [f for f, _ in starter.runs] == ["send", "send"]
    first, second = (payload for _, payload in starter.runs)
    assert first["cohort"] == second["cohort"] == cohort and first["group"] != second["group"]
    assert first["entry"] is True and first["step"] == "congratulate"
    assert first["then"] == [{"action": "split", "step": "split_followup"}]
    assert first["run"] == run_name(cohort, first["group"]) and ids[0] not in str(first)
    grouped = {m.customer_id for m in store.cohort_members(cohort, first["group"])}
    assert grouped == set(ids[:3])
    assert store.journeys[(ids[0], program.id)].group == first["group"]
    # a redelivered trigger (another container: evaluate crashed after the join) invokes
    # the same group's segment again; nothing new is recorded
    again = Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(NIGHT))
    assert again.evaluate([rank_changed(ids[0], NIGHT)]).decisions == []
    assert starter.runs[-1] == ("send", first)


def segment_world(
    program: Program, people: dict[str, Customer], now: datetime = NIGHT
) -> tuple[MemoryStore, MemoryStarter, FakeSender, list[dict[str, Any]]]:
    store, starter, sender = MemoryStore(), MemoryStarter(), FakeSender()
    store.customers.update(people)
    ev = Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(now))
    for cid in people:  # one batch each: one entry group each
        ev.evaluate([rank_changed(cid, now)])
    return store, starter, sender, [payload for _, payload in starter.runs]


def run_segment(
    program: Program, store: MemoryStore, starter: MemoryStarter, sender: Any, payload: Any, at: Any
) -> dict[str, Any]:
    service = CohortService([program], store, starter, CFG, FixedClock(at), sender=sender)
    return service.handle(GroupRequest.model_validate(payload))


def test_an_entry_segment_sends_now_and_hands_the_group_off_to_the_cohorts_root() -> None:
    program = AT_ONCE
    ids = treated(program, "h", 12)
    people = {cid: tokyo(cid, rank="Silver") for cid in ids}
    store, starter, sender, payloads = segment_world(program, people)
    for payload in payloads:
        run_segment(program, store, starter, sender, payload, NIGHT + timedelta(seconds=5))
    # every entry got its congratulation at once (one send per group)
    assert sorted(r.customer_id for call in sender.calls for r in call) == sorted(ids)
    cohort = payloads[0]["cohort"]
    due = due_of(cohort)
    # the "benefits" arm waits in the cohort's root, started once at the branch after the
    # wait, due at the wait's end; the "none" arm's journey is over (no execution for them)
    benefits = {cid for cid in ids if _arm(store, cid)}
    root = {m.customer_id for m in store.cohort_members(cohort, ROOT)}
    assert root == benefits and 0 < len(root) < len(ids)
    gone = {m.customer_id for m in store.cohort_members(cohort, GONE)}
    assert gone == set(ids) - benefits
    assert list(starter.started) == [cohort]
    assert starter.started[cohort][1] == {
        "program": program.id,
        "cohort": cohort,
        "group": ROOT,
        "run": cohort,
        "step": "gold_or_better",
        "at": due.isoformat().replace("+00:00", "Z"),
    }
    # the ledger names the execution that carries each member on
    some = next(iter(benefits))
    (row,) = [v for (c, k), v in store.steps.items() if c == some]
    assert row["decision"] == "arm:benefits" and row["next_run"] == cohort
    assert row["run"].startswith(cohort + "-e")
    # a retried segment (Lambda retries after a crash) moves nobody twice, sends nothing
    # new, and starts the root again (the same name: the same execution)
    before = len(sender.calls)
    run_segment(program, store, starter, sender, payloads[0], NIGHT + timedelta(minutes=2))
    assert len(sender.calls) == before
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == root


def _arm(store: MemoryStore, cid: str) -> bool:
    journey = next(j for (c, _), j in store.journeys.items() if c == cid)
    return journey.arms.get("split_followup") == "benefits"


def test_a_segment_too_late_for_its_cohort_hands_off_to_a_child_at_the_same_instant() -> None:
    program = AT_ONCE
    ids = treated(program, "l", 40)
    people = {cid: tokyo(cid, rank="Silver") for cid in ids}
    store, starter, sender, payloads = segment_world(program, people)
    cohort = payloads[0]["cohort"]
    late = due_of(cohort) - JOIN_MARGIN + timedelta(seconds=1)  # Lambda's retries took long
    for payload in payloads:
        run_segment(program, store, starter, sender, payload, late)
    assert store.cohort_members(cohort, ROOT) == [] and cohort not in starter.started
    children = list(starter.started.values())
    assert children and all(p["step"] == "gold_or_better" for _, p in children)
    assert all(p["at"] == starter.started[n][1]["at"] for n, (_, p) in starter.started.items())


def test_a_cart_segment_hands_off_at_the_local_time_each_zone_its_own() -> None:
    # cart-abandonment's steps (remind + the next 19:00, then the branch), on a trigger that
    # needs no cart claim
    seed = SEEDS["cart-abandonment"]
    program = seed.model_copy(update={"trigger": AT_ONCE.trigger, "audience": {}})
    tz = {"k0": "Asia/Tokyo", "k1": "Asia/Tokyo", "k2": "America/New_York"}
    ids = [cid for cid in tz if not in_holdout(program, cid)]
    store, starter, sender = MemoryStore(), MemoryStarter(), FakeSender()
    for cid in ids:
        store.customers[cid] = tokyo(cid, time_zone=tz[cid], rank="Silver")
    ev = Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(NIGHT))
    ev.evaluate([rank_changed(cid, NIGHT) for cid in ids])
    # one batch, two cohorts (each zone's 19:00): the group's segment runs in each
    assert [f for f, _ in starter.runs] == ["send", "send"]
    for _, payload in starter.runs:
        assert payload["then"] == [{"action": "local_time", "step": "next_evening"}]
        run_segment(program, store, starter, sender, payload, NIGHT + timedelta(seconds=3))
    tokyo_cohort = store.journeys[("k0", program.id)].cohort
    assert tokyo_cohort is not None
    # a day on (22:20 Tokyo), then 19:00 Tokyo (10:00 UTC): the cohort evaluate chose
    assert due_of(tokyo_cohort) == datetime(2026, 1, 7, 10, 0, tzinfo=UTC)
    root = {m.customer_id for m in store.cohort_members(tokyo_cohort, ROOT)}
    assert root == {c for c in ids if tz[c] == "Asia/Tokyo"}
    assert tokyo_cohort in starter.started
    assert starter.started[tokyo_cohort][1]["step"] == "cart_still_open"
    ny_cohort = store.journeys[("k2", program.id)].cohort
    if "k2" in ids:  # New York's 19:00 the next day: its own cohort's root
        assert ny_cohort and ny_cohort != tokyo_cohort and ny_cohort in starter.started
        assert {m.customer_id for m in store.cohort_members(ny_cohort, ROOT)} == {"k2"}
    assert sorted(r.customer_id for call in sender.calls for r in call) == sorted(ids)


def test_entry_groups_deferred_to_one_instant_share_one_child_execution() -> None:
    # given: three rank-ups at night in three batches (three entry groups of one cohort),
    # each deferred by quiet hours to 08:00 Tokyo (23:00 UTC)
    program = AT_ONCE
    ids = treated(program, "q", 3)
    people = {cid: tokyo(cid, rank="Silver") for cid in ids}
    store, starter, _, payloads = segment_world(program, people)
    until = "2026-01-05T23:00:00Z"
    sender = FakeSender({cid: f"deferred:{until}" for cid in ids})
    for payload in payloads:
        run_segment(program, store, starter, sender, payload, NIGHT + timedelta(seconds=5))
    cohort = payloads[0]["cohort"]
    assert len({p["group"] for p in payloads}) == 3
    # then: one child execution at congratulate, due at 08:00, carries all three
    children = {n: p for n, (_, p) in starter.started.items()}
    ((name, child),) = children.items()
    assert (child["step"], child["at"]) == ("congratulate", until)
    assert {m.customer_id for m in store.cohort_members(cohort, child["group"])} == set(ids)
    # each entry group wrote its own header to it: a retry of any one starts it again
    for payload in payloads:
        (header,) = store.cohort_children(cohort, payload["group"], "congratulate")
        assert header.group == child["group"]
    # deferred too late to share (08:00 less than the margin away): a child of its own
    late_ids = treated(program, "ql", 1)
    store2, starter2, _, late_payloads = segment_world(
        program, {cid: tokyo(cid, rank="Silver") for cid in late_ids}
    )
    soon = (NIGHT + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    run_segment(
        program,
        store2,
        starter2,
        FakeSender({late_ids[0]: f"deferred:{soon}"}),
        late_payloads[0],
        NIGHT,
    )
    ((_, (_, own)),) = starter2.started.items()
    assert own["group"] != child["group"] and own["step"] == "congratulate"
    assert name == run_name(cohort, child["group"])


TWO_SENDS = """
id: two-sends
name: Two sends
start: at_once
trigger: {event: customer.rank_changed}
steps:
  - {id: hello, type: send, channels: [email], template: hello}
  - {id: again, type: send, channels: [email], template: hello, next: done}
  - {id: done, type: exit}
"""


def test_an_entry_segment_with_no_wait_after_it_goes_on_at_once_in_a_child(
    tmp_path: Path,
) -> None:
    # two sends in a row are never one task: the entry segment is the first send, and the
    # group goes on at the second at once, in a child execution (no root: nothing waits)
    (tmp_path / "two-sends.yaml").write_text(TWO_SENDS)
    program = load_program(tmp_path / "two-sends.yaml")
    ids = treated(program, "n", 2)
    store, starter, sender, payloads = segment_world(
        program, {cid: tokyo(cid, rank="Silver") for cid in ids}
    )
    for payload in payloads:
        run_segment(program, store, starter, sender, payload, NIGHT)
    # one child per entry group (one batch each), started at the second send, now
    cohort = payloads[0]["cohort"]
    children = [p for _, p in starter.started.values()]
    assert len(children) == 2 and cohort not in starter.started
    assert {(c["step"], c["at"]) for c in children} == {("again", "2026-01-05T13:20:00Z")}
    moved = {m.customer_id for c in children for m in store.cohort_members(cohort, c["group"])}
    assert moved == set(ids)
    assert sorted(r.customer_id for call in sender.calls for r in call) == sorted(ids)


SEND_BRANCH_EVENING = """\
id: thanks-then-evening
name: Thanks, then an evening note for Silver
start: at_once
trigger: {event: customer.rank_changed}
steps:
  - {id: hello, type: send, channels: [email], template: hello}
  - id: gold
    type: branch
    condition: {rank: [Silver]}
    then: evening
    else: done
  - {id: evening, type: wait, until_local_time: "19:00"}
  - {id: note, type: send, channels: [email], template: hello, next: done}
  - {id: done, type: exit}
"""


def test_an_entry_segment_whose_pair_is_followed_by_a_local_time_wait_goes_on_at_that_wait(
    tmp_path: Path,
) -> None:
    # a send fused with a branch, then a wait until a local time: the task answers no
    # instant (the wait is not fused into it), so the group goes on at once at the wait,
    # whose own task puts each member at their evening (it raised KeyError 'at' before:
    # every attempt, after the first message, with nothing recorded for the branch)
    (tmp_path / "thanks-then-evening.yaml").write_text(SEND_BRANCH_EVENING)
    program = load_program(tmp_path / "thanks-then-evening.yaml")
    ids = treated(program, "e", 4)
    store, starter, sender, payloads = segment_world(
        program, {cid: tokyo(cid, rank="Silver") for cid in ids}
    )
    for payload in payloads:
        run_segment(program, store, starter, sender, payload, NIGHT)
    assert sorted(r.customer_id for call in sender.calls for r in call) == sorted(ids)
    cohort = payloads[0]["cohort"]
    children = [p for _, p in starter.started.values()]
    assert {(c["step"], c["at"]) for c in children} == {("evening", "2026-01-05T13:20:00Z")}
    moved = {m.customer_id for c in children for m in store.cohort_members(cohort, c["group"])}
    assert moved == set(ids)
    # the wait's task (its child execution's first) then puts them at 19:00 Tokyo the next
    # day: the instant its Wait reads
    service = CohortService([program], store, starter, CFG, FixedClock(NIGHT), sender=sender)
    for child in children:
        answer = ask(service, cohort, "local_time", "evening", group=child["group"])
        assert answer["at"].startswith("2026-01-06T10:00:00")


BRANCH_THEN_SEND = """\
id: second-purchase-coupon
name: Gold reminder, or thanks (the templates of the program of that id)
trigger: {event: customer.rank_changed}
steps:
  - {id: gold, type: branch, condition: {rank: [Gold]}, then: reminder, else: thanks}
  - {id: reminder, type: send, channels: [email], template: reminder, next: done}
  - {id: thanks, type: send, channels: [email], template: reminder, next: done}
  - {id: done, type: exit}
"""


def test_a_retried_branch_and_send_keeps_the_branch_it_decided_and_sends_one_side(
    tmp_path: Path,
) -> None:
    # Given a branch fused with the send on its "then" side, whose first attempt decided
    # "then", sent, and failed settling the send (a Lambda timeout, a 5xx)
    (tmp_path / "second-purchase-coupon.yaml").write_text(BRANCH_THEN_SEND)
    program = load_program(tmp_path / "second-purchase-coupon.yaml")
    assert fused_with(program, 0) == "reminder"
    store, starter = MemoryStore(), MemoryStarter()
    store.customers["c1"] = tokyo("c1", rank="Gold")
    cohort = cohort_id(program.id, NIGHT)
    member = Member("c1", f"{program.id}-e1", NIGHT - timedelta(days=1))
    store.members[cohort] = {member.sk: member}
    email = Email()
    sender = factories.send_service(store, {"email": email}, FixedClock(NIGHT), programs=[program])
    service = CohortService([program], store, starter, CFG, FixedClock(NIGHT), sender=sender)
    settle = store.settle_step

    def fails_after_the_send(cohort: str, step: str, *args: Any, **kwargs: Any) -> None:
        if step == "reminder":
            raise RuntimeError("injected: timed out settling the send")
        settle(cohort, step, *args, **kwargs)

    store.settle_step = fails_after_the_send  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        ask(service, cohort, "check", "gold", then=[{"action": "send", "step": "reminder"}])
    store.settle_step = settle  # type: ignore[method-assign]
    assert [m.step for m in email.sent] == ["reminder"]

    # When the customer is no longer Gold and Step Functions retries the task
    store.customers["c1"] = tokyo("c1", rank="Silver")
    ask(service, cohort, "check", "gold", then=[{"action": "send", "step": "reminder"}])
    for _, payload in list(starter.started.values()):  # any child it started (none)
        ask(service, cohort, "send", payload["step"], group=payload["group"])

    # Then the decision it recorded stands: one side's message, and the ledger agrees
    assert [m.step for m in email.sent] == ["reminder"]
    assert not starter.started
    (row,) = store.steps.values()
    assert row["decision"] == "then"
    assert {sk: m["status"] for (_, sk), m in store.messages.items()} == {
        f"MSG#{program.id}-e1#reminder": "sent"
    }


def test_a_member_whose_item_cannot_be_read_leaves_at_a_branch_the_others_decided(
    branchy: Program,
) -> None:
    """A customer item this version cannot read (the adapter names it in ``unreadable``):
    that member leaves the journey at the branch, with the reason, never sent down a side
    decided without their state; a retry keeps it; the group's others are decided as ever."""
    from kizuna.domain.customer import Customers

    people = {f"g{i}": tokyo(f"g{i}", rank="Gold" if i < 2 else "Bronze") for i in range(4)}
    service, store, _, cohort = world(branchy, people)
    real = store.branch_state

    def unreadable_g1(keys: Any, step: str) -> Any:
        customers, decided = real(keys, step)
        readable = {cid: c for cid, c in customers.items() if cid != "g1"}
        return Customers(readable, {"g1": ("order_count",)}), decided

    store.branch_state = unreadable_g1  # type: ignore[method-assign]
    ask(service, cohort, "check", "check")
    store.branch_state = real  # type: ignore[method-assign]
    ask(service, cohort, "check", "check")  # a retry, the item fixed meanwhile: g1 has left
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"g0"}
    (child,) = store.cohort_children(cohort, ROOT, "check")
    assert {m.customer_id for m in store.cohort_members(cohort, child.group)} == {"g2", "g3"}
    gone = store.steps[("g1", f"STEP#{branchy.id}-g1#check")]
    assert (gone["decision"], gone["reason"], gone.get("next_run")) == (
        "exit",
        "unreadable_customer",
        None,
    )


def test_a_member_who_moved_west_before_the_first_local_time_gets_it_in_the_new_zone() -> None:
    """second-purchase-coupon waits a day until 10:00, then sends the coupon. Three members
    entered in Tokyo, due at 10:00 there (01:00 UTC); since then one moved to London (10:00
    there is still to come that date) and one to Honolulu (10:00 there has passed). The
    Londoner got the email at 01:00 London. The send decides it on the customer read it
    makes anyway (no call of its own): deferred to 10:00 London, in a child group."""
    from tests.factories import send_service
    from tests.unit.test_send_service import FakeChannel

    program = PROGRAMS["second-purchase-coupon"]
    assert program.steps[0].until_local_time == "10:00"  # type: ignore[union-attr]
    due = datetime(2026, 1, 7, 1, 0, tzinfo=UTC)
    cohort = cohort_id(program.id, due)
    store, starter = MemoryStore(), MemoryStarter()
    people = {
        "k0": tokyo("k0", order_count=1),
        "k1": tokyo("k1", order_count=1, time_zone="Europe/London"),
        "k2": tokyo("k2", order_count=1, time_zone="Pacific/Honolulu"),
    }
    for cid, person in people.items():
        store.customers[cid] = person
        member = Member(cid, f"{program.id}-{cid}", due - timedelta(days=1, hours=2))
        store.members.setdefault(cohort, {})[member.sk] = member
    clock = FixedClock(due + timedelta(seconds=30))  # the root's timer fires
    email = FakeChannel()
    sender = send_service(store, {"email": email}, clock, programs=[program])
    service = CohortService([program], store, starter, CFG, clock, sender=sender)
    first = next(s.id for s in program.steps[1:])
    ask(service, cohort, "send", first)
    # the coupon goes now to the member still in Tokyo and to the one whose 10:00 passed
    assert sorted(m.customer_id for m in email.sent) == ["k0", "k2"]
    # the Londoner: deferred to 10:00 London, in a child group at the step, started then
    (child,) = store.cohort_children(cohort, ROOT, first)
    assert child.at == datetime(2026, 1, 7, 10, 0, tzinfo=UTC)
    assert [m.customer_id for m in store.cohort_members(cohort, child.group)] == ["k1"]
    row = store.messages[("k1", f"MSG#{program.id}-k1#{first}")]
    assert (row["status"], row["reason"]) == ("deferred", "local_time_moved")
    assert row["until"].startswith("2026-01-07T10:00:00")
    # at 10:00 London the child sends it (a child group is never deferred so again)
    later = FixedClock(child.at + timedelta(seconds=20))
    email_later = FakeChannel()
    again = send_service(store, {"email": email_later}, later, programs=[program])
    at_ten = CohortService([program], store, starter, CFG, later, sender=again)
    ask(at_ten, cohort, "send", first, group=child.group)
    assert [m.customer_id for m in email_later.sent] == ["k1"]
