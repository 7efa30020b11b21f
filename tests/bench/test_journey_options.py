"""bench/journey_options.py's arithmetic on hand-made programs, mixes and prices: the
cohort walk's transitions (read off the compiled state machine) and calls, cohorts a day,
evaluate's batches, the timers' segments, and the pricing of each option, checked against
sums done by hand and against the compiler's own estimate (no cloud)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cost_model import FunctionUse, OpCount
from bench.journey_options import (
    FALLBACK_PIPELINE,
    PROGRAMS_DIR,
    CohortWalk,
    Delivery,
    Machine,
    Mix,
    MorePrices,
    ProgramMix,
    Tally,
    calls_for,
    cohorts,
    cohorts_a_day,
    evaluate_batches,
    load_mix,
    load_more_prices,
    member_path,
    mix_from_pipeline,
    more_prices_from,
    report,
    status_quo,
    timers,
)
from kizuna.programs.compiler import estimated_transitions
from kizuna.programs.loader import load_programs
from kizuna.programs.model import Program
from tests.bench.test_cost_model import ROUND

MORE = MorePrices(express_request=1e-6, express_gb_second=1e-5, scheduler_invocation=2e-6)
ALL_SENT = Delivery(delivered_share=1.0, push_share=0.0)


def program(
    *steps: dict[str, Any], trigger: str = "customer.first_purchase", **more: Any
) -> Program:
    return Program.model_validate(
        {
            "id": "p-test",
            "name": "test",
            "trigger": {"event": trigger},
            "steps": list(steps),
            **more,
        }
    )


def send(sid: str, **more: Any) -> dict[str, Any]:
    return {"id": sid, "type": "send", "channels": ["email"], "template": "t", **more}


EXIT = {"id": "done", "type": "exit"}
NO_READS = OpCount(0, 0, 0)


def mix(
    entries: float,
    emails: float,
    transitions: float,
    days: float = 10,
    batches: float = 0,
    reads: OpCount = NO_READS,
) -> Mix:
    """One program (``p-test``), and a send function: 20 invocations of 150 ms at 1 GB,
    each a PutItem; evaluate's ``batches`` and ``reads``."""
    return Mix(
        days=days,
        customers=1000,
        programs={"p-test": ProgramMix(entries, {"email": emails}, transitions)},
        functions={"send": FunctionUse(20, 150.0, 1024), "journey": FunctionUse(0, 100.0, 512)},
        dynamodb={"PutItem": OpCount(20, 20)},
        step_calls=20,
        batch_gb_s_per_message=0.01,
        evaluate_invocations=batches,
        evaluate_reads=reads,
    )


def pipeline(evaluate_calls: dict[str, int] | None = None) -> dict[str, Any]:
    """A pipeline result: one program, a scoring state machine, a campaign's messages."""
    return {
        "customers": 100,
        "days": 5,
        "journeys_started": 30,
        "transitions": {
            "p-test": {"executions": 20, "mean": 4.0},
            "KizunaScoringStateMachine6A99C288": {"executions": 5, "mean": 3.0},
        },
        "summary": {"messages": {"p-test": {"email": 25, "push": 5}, "a-campaign": {"email": 9}}},
        "invocations": {"journey": 10, "send": 30, "evaluate": 4},
        "mean_handler_ms": {"journey": 50.0, "send": 100.0},
        "functions": {"journey": {"memory_mb": 512}, "send": {"memory_mb": 1024}},
        "calls": {
            "journey": {"dynamodb:GetItem": 10},
            "send": {"sesv2:SendEmail": 25},
            "evaluate": evaluate_calls or {"dynamodb:PutItem": 30},
        },
        "items": {
            "journey": {"dynamodb:GetItem": {"calls": 10, "items": 10, "strong": 10}},
            "evaluate": {
                "dynamodb:BatchGetItem": {"calls": 6, "items": 30, "strong": 30},
                "dynamodb:GetItem": {"calls": 2, "items": 2, "strong": 2},
                "dynamodb:PutItem": {"calls": 30, "items": 30, "strong": 0},
            },
        },
    }


def test_more_prices_per_unit() -> None:
    # given the prices file's structure
    data = {
        "aws": {
            "stepfunctions_express_requests_per_million": {"price": 1.0},
            "stepfunctions_express_gb_second": {"price": 0.0000166667},
            "scheduler_invocations_per_million": {"price": 1.25},
        }
    }
    # then each is per single unit; the committed file carries the three entries
    assert more_prices_from(data) == MorePrices(1e-6, 0.0000166667, 1.25e-6)
    assert load_more_prices() == MorePrices(1e-6, 0.0000166667, 1e-6)


@pytest.mark.parametrize(
    ("items", "per_call", "expected"),
    [(0, 25, 0.0), (0.4, 25, 0.4), (1, 25, 1.0), (25, 25, 1.0), (26, 25, 2.0)],
)
def test_calls_for(items: float, per_call: int, expected: float) -> None:
    assert calls_for(items, per_call) == expected


def test_member_path_counts_expected_steps() -> None:
    # given a send, a 50/50 split whose first arm waits and branches to a second send
    p = program(
        send("a"),
        {
            "id": "s",
            "type": "split",
            "arms": [
                {"name": "x", "weight": 50, "next": "w"},
                {"name": "y", "weight": 50, "next": "done"},
            ],
        },
        {"id": "w", "type": "wait", "days": 7},
        {"id": "b", "type": "branch", "condition": {"rank": ["Gold"]}, "then": "c", "else": "done"},
        send("c", next="done"),
        EXIT,
    )
    # when an entry walks it, branches 50/50
    path = member_path(p, branch_share=0.5)
    # then: 1 + 0.5 x 0.5 sends, half a wait, the split and half a branch
    assert path.sends == pytest.approx(1.25)
    assert path.waits == pytest.approx(0.5)
    assert path.decisions == pytest.approx(1.5)
    assert path.first_wait is False


def test_the_machine_is_read_off_the_compiled_program() -> None:
    # given a send, a branch whose else side exits, a second send (a child can start at the
    # branch and at the second send: a dispatch Choice)
    p = program(
        send("a"),
        {"id": "b", "type": "branch", "condition": {"rank": ["Gold"]}, "then": "c", "else": "done"},
        send("c", next="done"),
        EXIT,
    )
    m = Machine.of(p)
    # then an execution (started at its instant: no Wait) enters the Choice before any
    # step; a send is its Task
    # (the crash path, a__failed, is not walked), the exit no state: c ends the execution.
    # The send and the branch after it are one task (fused), and so are the branch and the
    # send it keeps (the state a child group at b starts in)
    assert m.steps == {"a", "b", "c"}
    assert m.start("a") == (1, "a")
    assert m.start("c") == (1, "c")
    assert (m.run("a"), m.fused("a")) == ((1, "c"), "b")
    assert (m.run("b"), m.fused("b")) == ((1, None), "c")
    assert (m.run("c"), m.fused("c")) == ((1, None), None)
    # and a program no child can start elsewhere in has no Choice: it starts at the step
    alone = Machine.of(program(send("a", next="done"), EXIT))
    assert alone.start("a") == (0, "a")
    # a wait until a local time is its Task and its Wait
    local = Machine.of(
        program(
            send("a"),
            {"id": "w", "type": "wait", "days": 1, "until_local_time": "19:00"},
            send("c", next="done"),
            EXIT,
        )
    )
    assert local.run("w") == (2, "c")


def test_a_root_cohort_costs_what_the_compiler_estimates() -> None:
    # given the demo's programs, no member diverging (branches all then, one time zone;
    # rank-up's second split arm exits)
    loaded, issues = load_programs(PROGRAMS_DIR)
    assert not issues
    for seed in loaded:
        p = seed.model_copy(update={"start": "window"})  # option C as designed (the model's)
        t = CohortWalk(p, ALL_SENT, branch_share=0.0, zones=(1.0,)).root(100)
        # then the root execution enters the states compiler.estimated_transitions counts
        assert (t.transitions, t.executions) == (estimated_transitions(p)["max"], 1), p.id


def test_a_straight_cohort_costs_its_states_and_splits_over_500() -> None:
    # given a program that starts with a local-time wait: send, fixed wait, send, exit
    p = program(
        {"id": "w", "type": "wait", "days": 1, "until_local_time": "10:00"},
        send("a"),
        {"id": "v", "type": "wait", "days": 7},
        send("c", next="done"),
        EXIT,
    )
    walk = CohortWalk(p, ALL_SENT)
    # when 100 members share a cohort
    t = walk.root(100)
    # then the first wait is the cohort's own timer: Choice (a child can start at c),
    # send, wait, send; the exit is no state
    assert t.transitions == 4 == estimated_transitions(p)["max"]
    assert (t.executions, t.roots, t.invocations) == (1, 1, 2)
    assert t.delivered == 200
    assert "PutItem" not in t.dynamodb  # no seal
    assert t.dynamodb["Query"] == OpCount(2, 200, 200)  # members and children, one a step
    assert t.dynamodb["BatchGetItem"] == OpCount(4, 400, 400)  # customer + CONTACT, 100 keys
    assert t.dynamodb["TransactWriteItems"] == OpCount(4, 400)  # claim + CONTACT, 100 a call
    assert t.dynamodb["BatchWriteItem"] == OpCount(8, 200)  # outcomes, 25 a call
    assert t.provider_calls == 200
    # and 1,200 members: the root's first send keeps 500 and moves 500 and 200 to two
    # children that start at that send (the Choice's default; one start by evaluate); each
    # step reads the whole cohort (2 pages of 1,000)
    big = walk.root(1200)
    assert (big.transitions, big.executions, big.roots, big.invocations) == (4 + 2 * 4, 3, 1, 6)
    assert big.dynamodb["Query"] == OpCount(6 * 2, 6 * 1200, 6 * 1200)
    # headers (1 call, 2 items), moved members (20 + 8 calls), outcomes (2 x (20 + 20 + 8))
    assert big.dynamodb["BatchWriteItem"] == OpCount(1 + 28 + 2 * 48, 2 + 700 + 2400)
    assert big.delivered == 2400


def test_a_send_with_a_goal_that_exits_reads_journeys_in_the_same_call() -> None:
    # given a program whose goal exits the journey
    p = program(send("a", next="done"), EXIT, goal={"event": "order.placed"})
    t = CohortWalk(p, ALL_SENT).root(100)
    # then customers, CONTACT and JOURNEY# items: 300 keys, 100 a call; the send
    assert t.dynamodb["BatchGetItem"] == OpCount(3, 300, 300)
    assert t.transitions == 1


def test_nothing_runs_for_a_program_with_nothing_after_its_first_wait() -> None:
    p = program({"id": "w", "type": "wait", "days": 1})
    assert CohortWalk(p, ALL_SENT).root(10) == Tally()
    # a first wait that leads to an exit: the execution is its Succeed
    q = program({"id": "w", "type": "wait", "days": 1, "next": "done"}, EXIT)
    t = CohortWalk(q, ALL_SENT).root(10)
    assert (t.transitions, t.executions, t.invocations) == (1, 1, 0)


def test_a_branch_side_that_continues_starts_a_child_if_a_member_takes_it() -> None:
    # given a branch whose then side exits and whose else side sends
    p = program(
        send("a"),
        {"id": "b", "type": "branch", "condition": {"rank": ["Gold"]}, "then": "done", "else": "c"},
        send("c", next="done"),
        EXIT,
    )
    walk = CohortWalk(p, ALL_SENT, branch_share=0.5)
    # when the cohort is large, the child exists: Choice, a and b (one task, which ends the
    # root); the child Choice, c
    assert walk.root(100).transitions == pytest.approx(2 + 2)
    # when it is one member, the child exists half the time
    one = walk.root(1)
    assert one.transitions == pytest.approx(2 + 0.5 * 2)
    assert one.executions == pytest.approx(1.5)
    # a's outcome, b's decision; half the time the child's header, its moved member, c's
    # outcome
    assert one.dynamodb["BatchWriteItem"] == OpCount(1 + 1 + 0.5 * 3, 1 + 1 + 0.5 * 3)


def test_an_emptied_group_goes_on_and_an_exit_side_leaves_without_a_child() -> None:
    # given a branch that keeps the then side (two sends) and sends the else side to exit
    p = program(
        {"id": "b", "type": "branch", "condition": {"rank": ["Gold"]}, "then": "c", "else": "done"},
        send("c"),
        send("d", next="done"),
        EXIT,
    )
    # when one member is in the group, as the engine runs it: half the time the member
    # leaves at b (moved out of the group, no execution), and the group walks c and d with
    # or without them: Choice, b and c (one task), d
    t = CohortWalk(p, ALL_SENT, branch_share=0.5).root(1)
    assert t.transitions == pytest.approx(1 + 1 + 1)
    assert t.executions == 1
    assert t.invocations == pytest.approx(1 + 1)  # b and c; d, with or without members
    # b's decision, the leaving member half the time, c's and d's outcomes half the time
    assert t.dynamodb["BatchWriteItem"].items == pytest.approx(1 + 0.5 + 0.5 + 0.5)
    # each step queries the partition once, with or without members
    assert t.dynamodb["Query"].calls == pytest.approx(3)
    # and an emptied group ending at its next Task (the alternative: Task and end)
    lean = CohortWalk(p, ALL_SENT, 0.5, empty_goes_on=False).root(1)
    assert lean.transitions == pytest.approx(1 + 1 + 0.5 * 1 + 0.5 * 1)
    assert lean.executions == 1
    assert lean.invocations == pytest.approx(1 + 0.5 * 1)


def test_split_arms_to_an_exit_leave_in_the_split() -> None:
    # given a split whose second arm (30%) exits
    p = program(
        {
            "id": "s",
            "type": "split",
            "arms": [
                {"name": "x", "weight": 70, "next": "a"},
                {"name": "y", "weight": 30, "next": "done"},
            ],
        },
        send("a", next="done"),
        EXIT,
    )
    t = CohortWalk(p, ALL_SENT).root(100)
    # then one execution: Choice, s and a (one task); 30 members moved out, 70
    # messages
    assert (t.transitions, t.executions) == (pytest.approx(2), 1)
    assert t.delivered == pytest.approx(70)
    # s's 100 decisions (4 calls), 30 leaving (2 calls), 70 outcomes (3 calls)
    assert t.dynamodb["BatchWriteItem"] == OpCount(pytest.approx(9), pytest.approx(200))


def test_other_time_zones_continue_in_children() -> None:
    # given a send, a wait until a local time, a send; two zones of half the customers
    p = program(
        send("a"),
        {"id": "w", "type": "wait", "days": 1, "until_local_time": "19:00"},
        send("c", next="done"),
        EXIT,
    )
    t = CohortWalk(p, ALL_SENT, zones=(0.5, 0.5)).root(2)
    # then: Choice, a and w's instant (one task), w's Wait, c; the other zone's child
    # (Choice, c; started by its timer) exists with probability 1 - 0.5^2
    assert t.transitions == pytest.approx(1 + 1 + 1 + 1 + 0.75 * 2)
    assert t.executions == pytest.approx(1.75)
    # and if the wait leads to an exit, the other zones leave there: no child
    q = program(
        send("a"),
        {"id": "w", "type": "wait", "days": 1, "until_local_time": "19:00", "next": "done"},
        EXIT,
    )
    alone = CohortWalk(q, ALL_SENT, zones=(0.5, 0.5)).root(2)
    assert (alone.transitions, alone.executions) == (pytest.approx(1 + 1 + 1), 1)


def test_cohorts_a_day_by_first_step_and_trigger() -> None:
    local_first = program(
        {"id": "w", "type": "wait", "days": 1, "until_local_time": "10:00"}, send("a"), EXIT
    )
    # a local-time first wait: a cohort per zone that has an entry
    classes = cohorts_a_day(local_first, 10, 60, zones=(0.9, 0.1))
    assert classes[0] == pytest.approx((1 - 0.1**10, 9 / (1 - 0.1**10)))
    assert classes[1] == pytest.approx((1 - 0.9**10, 1 / (1 - 0.9**10)))
    # a daily job's trigger: the day's entries arrive together
    daily = program(send("a"), EXIT, trigger="customer.segment_changed")
    assert cohorts_a_day(daily, 10, 60, zones=(1.0,)) == [(1.0, 10)]
    # spread over 16 active hours in 60-minute windows: the windows with an entry
    spread = program(send("a"), EXIT)
    filled = 16 * (1 - (15 / 16) ** 10)
    assert cohorts_a_day(spread, 10, 60, zones=(1.0,)) == [pytest.approx((filled, 10 / filled))]
    assert cohorts_a_day(spread, 0, 60, zones=(1.0,)) == []


def test_evaluate_batches_read_once_and_join_50_entries_a_call() -> None:
    # given 100 entries in 20 evaluate batches that read 400 keys in 40 calls (two a batch)
    m = mix(entries=100, emails=100, transitions=3, batches=20, reads=OpCount(40, 400, 400))
    # then as built: one read a batch (20 keys < 100), one join transaction a batch (5 < 50)
    assert evaluate_batches(m) == (20, 20)
    # at 10x the customers, 10x the batches of the same size
    assert evaluate_batches(m, scale=10) == (200, 200)
    # 200 keys a batch: two reads; no measured batches: one an entry
    heavy = mix(entries=100, emails=100, transitions=3, batches=20, reads=OpCount(20, 4000))
    assert evaluate_batches(heavy) == (40, 20)
    assert evaluate_batches(mix(entries=100, emails=100, transitions=3)) == (0, 100)


def test_status_quo_is_the_measured_transitions_and_functions() -> None:
    # given 10 entries of 5 transitions each, 20 emails, 20 send invocations; evaluate read
    # in 8 calls
    m = mix(entries=10, emails=20, transitions=5, batches=4, reads=OpCount(8, 40, 40))
    option = status_quo(m)
    costs = option.costs(ROUND, MORE)
    # then 50 transitions at 1e-5; 20 requests; 20 x 0.15 s x 1 GB; 20 PutItem WRUs
    assert (option.transitions, option.executions) == (50, 10)
    assert costs["Step Functions"] == pytest.approx(5e-4)
    assert costs["Lambda requests"] == pytest.approx(20e-6)
    assert costs["Lambda compute"] == pytest.approx(3 * 1e-5)
    assert costs["DynamoDB writes"] == pytest.approx(20 * 2e-6)
    assert costs["Step Functions Express"] == costs["EventBridge Scheduler"] == 0
    per_m = option.per_million_messages(ROUND, MORE)
    assert per_m["Step Functions"] == pytest.approx(25.0)  # 5e-4 / 20 x 1M
    assert option.per_message(option.step_calls) == 1.0
    assert option.start_calls / option.entries == 1.0
    # evaluate: its 8 reads as measured, a PutItem and a start an entry
    assert option.entry_calls == 8 + 10 + 10


def test_timers_schedule_each_wait_and_run_segments_between_them() -> None:
    # given a program that starts with a wait and has a second wait (20 entries)
    p = program(
        {"id": "w", "type": "wait", "days": 1, "until_local_time": "10:00"},
        send("a"),
        {"id": "v", "type": "wait", "days": 7},
        send("c", next="done"),
        EXIT,
    )
    option = timers(mix(entries=20, emails=40, transitions=6), {"p-test": p})
    # then two schedules an entry (evaluate schedules the first), two Express segments; the
    # send's 3 s over 40 segments is 0.075 s, billed 0.1 s at 64 MB
    assert option.transitions == 0
    assert option.scheduler_invocations == 40
    assert option.express_requests == option.executions == 40
    assert option.express_gb_seconds == pytest.approx(40 * 0.1 * 64 / 1024)
    assert option.step_calls == 20 + 20 + 40  # measured, CreateSchedule (2nd wait), starts
    costs = option.costs(ROUND, MORE)
    assert costs["Step Functions Express"] == pytest.approx(40e-6 + 0.25 * 1e-5)
    assert costs["EventBridge Scheduler"] == pytest.approx(80e-6)


def test_timers_write_each_decision_to_the_ledger() -> None:
    p = program(
        send("a"),
        {"id": "b", "type": "branch", "condition": {"rank": ["Gold"]}, "then": "c", "else": "done"},
        send("c", next="done"),
        EXIT,
    )
    option = timers(mix(entries=10, emails=15, transitions=5), {"p-test": p})
    assert option.dynamodb["PutItem"] == OpCount(30, 30)  # 20 measured + 10 decisions
    assert option.express_requests == 10  # no wait: one segment an entry
    assert option.scheduler_invocations == 0


def test_cohorts_option_for_a_daily_program() -> None:
    # given 100 entries over 10 days of a program triggered by the daily scoring, evaluated
    # in 20 batches
    p = program(send("a"), EXIT, trigger="customer.segment_changed")
    m = mix(entries=100, emails=100, transitions=3, batches=20, reads=OpCount(40, 400, 400))
    # when a day's 10 entries share one cohort
    option = cohorts(m, {"p-test": p})
    # then a cohort costs the send (no Choice, the exit no state; its timer started it at
    # its instant: one Scheduler invocation); 10 of them; one start each
    assert option.transitions == pytest.approx(10)
    assert option.scheduler_invocations == pytest.approx(10)
    assert option.start_calls == option.executions == pytest.approx(10)
    assert option.members_per_cohort == pytest.approx(10)
    assert option.extra_entry_wru == pytest.approx(300)  # +3 WRU an entry
    assert option.per_message(option.transitions) == pytest.approx(0.1)
    # evaluate: a read and a join transaction a batch, a start a cohort
    assert option.entry_calls == pytest.approx(20 + 20 + 10)
    # and at 10x the customers: 100 a cohort, the same 10 cohorts
    big = cohorts(m, {"p-test": p}, scale=10)
    assert big.transitions == pytest.approx(10)
    assert big.messages == 1000
    # and cohorts of one member cost less than the measured 3 transitions an entry
    alone = cohorts(m, {"p-test": p}, members=1.0)
    assert alone.transitions == pytest.approx(100)
    # compute: 1 invocation a cohort (send) at the helper's 0.1 s x 0.5 GB, and 0.01 GB-s
    # a delivered message
    costs = option.costs(ROUND, MORE)
    assert costs["Lambda compute"] == pytest.approx((10 * 0.05 + 100 * 0.01) * 1e-5)
    # writes: entries' transactions, and per cohort 20 transaction items (claim per
    # member, CONTACT per message: 2 WRU each), 10 outcomes
    assert costs["DynamoDB writes"] == pytest.approx((300 + 10 * (40 + 10)) * 2e-6)


def test_mix_from_a_pipeline_result() -> None:
    m = mix_from_pipeline(pipeline(), 0.02)
    # then the started journeys go to the program; the campaign's messages are not counted
    assert list(m.programs) == ["p-test"]
    assert (m.entries, m.messages) == (30, 30)
    assert m.step_calls == 35
    assert m.dynamodb == {"GetItem": OpCount(10, 10, 10)}
    assert m.helper_gb_s == pytest.approx(0.05 * 0.5)
    # and evaluate's batches and reads (its writes are not reads)
    assert m.evaluate_invocations == 4
    assert m.evaluate_reads == OpCount(8, 32, 32)


def test_only_a_run_of_the_previous_engine_is_the_status_quo(tmp_path: Path) -> None:
    # given a run of the previous engine (evaluate writes entries in PutItem)
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"date": "d", "pipeline": pipeline()}))
    assert load_mix(previous).entries == 30
    # and a run of the cohort engine (evaluate joins in TransactWriteItems): the constants
    cohort = tmp_path / "cohort.json"
    calls = {"dynamodb:TransactWriteItems": 3}
    cohort.write_text(json.dumps({"date": "d", "pipeline": pipeline(calls)}))
    m = load_mix(cohort)
    assert m.entries == pytest.approx(FALLBACK_PIPELINE["journeys_started"])
    assert "constants" in m.source


def test_the_report_on_the_fallback_mix(tmp_path: Path) -> None:
    # given no bench results: the constants taken from docs/PERFORMANCE.md
    m = load_mix(tmp_path / "absent.json")
    assert m.entries == pytest.approx(FALLBACK_PIPELINE["journeys_started"])
    assert m.messages == 2051
    assert (m.evaluate_invocations, m.evaluate_reads.calls) == (622, 1068 + 176)
    loaded, issues = load_programs(PROGRAMS_DIR)
    assert not issues
    text = report(m, {p.id: p for p in loaded}, ROUND, MORE, scales=(1,))
    # then every option is priced, the status quo at its measured transitions per message
    assert "| S: status quo" in text and "| T: timers" in text and "| C1x: cohorts" in text
    assert status_quo(m).per_message(status_quo(m).transitions) == pytest.approx(5.45, abs=0.01)
