"""ASL conformance: what Step Functions checks at CreateStateMachine, checked before deploy.

Issue #13: every compiled journey had a ``__end`` Succeed state nothing led to; moto took it,
AWS refused it (``MISSING_TRANSITION_TARGET``). The compiler now emits only reachable states
and validates its own output; :func:`validate_definition` is usable on any definition.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from kizuna.programs import compiler
from kizuna.programs.asl import (
    InvalidDefinition,
    check_definition,
    intrinsic_problem,
    path_problem,
    validate_definition,
)
from kizuna.programs.compiler import (
    DISPATCH,
    END,
    REMOVED,
    child_starts,
    compile_program,
    estimated_transitions,
    start_step,
)
from kizuna.programs.loader import load_program, load_programs
from kizuna.programs.members import ROOT as ROOT_GROUP
from kizuna.programs.model import Program
from kizuna.services.contracts import GroupRequest
from kizuna_tools import aslcheck
from kizuna_tools.cli import app
from tests.factories import sample_program

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS, PROGRAM_ISSUES = load_programs(ROOT / "programs")
# Transitions of a cohort's root execution (issue 15): started at its instant by a journey
# timer (no Wait; a wait-first program's first wait is that timer), the dispatch if a child
# group can start elsewhere, then one per step (a local-time wait: two; an exit: none, the
# state before it ends the execution). Whatever the cohort's size.
SEED_TRANSITIONS = {  # a send and the branch, split or local time next to it are one task
    "cart-abandonment": {"min": 2, "max": 2},  # at_once: the root starts after the wait
    "champions-care": {"min": 0, "max": 0},  # at_once, a send and nothing after: no execution
    "points-to-next-rank": {"min": 1, "max": 1},  # no dispatch: the send is the StartAt
    "post-purchase-recommendation": {"min": 1, "max": 1},
    "rank-up-congratulations": {"min": 2, "max": 2},  # at_once
    "second-purchase-coupon": {"min": 4, "max": 4},
    "winback-before-dormancy": {"min": 2, "max": 2},  # at_once
}
FALLS_OFF_THE_END = sample_program("{id: pause, type: wait, days: 1}")
NO_SEND_TO_EXIT = sample_program(
    "{id: check, type: branch, condition: {rank: [Gold]}, then: done}",
    "{id: done, type: exit}",
)


def exits(program: Program) -> set[str]:
    return {s.id for s in program.steps if s.type == "exit"}


def reachable(definition: dict[str, Any]) -> set[str]:
    states = definition["States"]
    seen, todo = {definition["StartAt"]}, [definition["StartAt"]]
    while todo:
        state = states[todo.pop()]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        for n in nexts:
            if n and n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def machine(**states: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


def load(tmp_path: Path, text: str) -> Program:
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    return load_program(path)


# --- the compiler --------------------------------------------------------------------------
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.id)
def test_every_program_compiles_to_a_definition_aws_accepts(program: Program) -> None:
    # Given a seed program / When it is compiled
    definition = compile_program(program)
    # Then the validator finds nothing and every state is reachable from StartAt
    assert validate_definition(definition) == []
    assert set(definition["States"]) == reachable(definition)


def test_the_seeds_are_all_there() -> None:
    assert PROGRAM_ISSUES == []
    assert {p.id for p in PROGRAMS} == set(SEED_TRANSITIONS)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.id)
def test_pruning_keeps_the_seeds_behaviour(program: Program) -> None:
    definition = compile_program(program)
    assert estimated_transitions(program) == SEED_TRANSITIONS[program.id]
    # Every step has its state but an exit (the state before it ends the execution) and a
    # wait-first program's first wait (the cohort's own: its timer)
    first_wait = program.steps[0].id if program.steps[0].type == "wait" else None
    kept = {s.id for s in program.steps if s.type != "exit" and s.id != first_wait}
    assert {n for n in definition["States"] if not n.startswith("__")} - kept <= {
        n for n in definition["States"] if "__" in n
    }
    assert kept <= set(definition["States"])
    # no Wait before the first step (a timer starts the execution at its instant): the
    # dispatch if a child group may start elsewhere, else the root's first step
    dispatch = definition["States"].get(DISPATCH)
    assert definition["StartAt"] == (DISPATCH if dispatch else start_step(program))
    assert all(
        state["Type"] != "Wait" or "TimestampPath" not in state or state["TimestampPath"] != "$.at"
        for state in definition["States"].values()
    )
    # a child group starts where it may (the dispatch), the root where its cohort starts
    starts = {start_step(program)} | (
        {c["Next"] for c in dispatch["Choices"]} if dispatch else set()
    )
    assert starts == {s for s in child_starts(program) if s not in exits(program)} | {
        start_step(program)
    }
    # __end only where a Catch needs a state to go to (a failed send before the exit)
    if END in definition["States"]:
        assert definition["States"][END] == {"Type": "Succeed"}


def test_end_is_emitted_when_a_step_falls_off_the_end(tmp_path: Path) -> None:
    # Given a program whose last step has no successor
    definition = compile_program(load(tmp_path, FALLS_OFF_THE_END))
    # Then the wait ends the execution, and the definition is valid
    assert definition["States"]["pause"]["End"] is True
    assert validate_definition(definition) == []


def test_a_branch_without_else_goes_to_end(tmp_path: Path) -> None:
    definition = compile_program(load(tmp_path, NO_SEND_TO_EXIT))
    # the group goes on along `then` (an exit: the step ends the execution); the members of
    # the missing `else` leave in the step
    assert definition["States"]["check"]["End"] is True
    assert END not in definition["States"]
    assert validate_definition(definition) == []


def renamed(program: Program, old: str, new: str) -> Program:
    """``program`` redeployed with step ``old`` renamed ``new``."""
    steps = []
    for step in program.steps:
        d = step.model_dump(by_alias=True, exclude_none=True)
        d["id"] = new if d["id"] == old else d["id"]
        for key in ("next", "then", "else"):
            if d.get(key) == old:
                d[key] = new
        steps.append(d)
    return Program.model_validate(
        {**program.model_dump(by_alias=True, exclude_none=True), "steps": steps}
    )


def dispatched(definition: dict[str, Any], step: str, group: str) -> str:
    """Where ``__dispatch`` sends an execution started at ``step`` for ``group``."""
    state = definition["States"][DISPATCH]
    for rule in state["Choices"]:
        if {"$.step": step, "$.group": group}[rule["Variable"]] == rule["StringEquals"]:
            return str(rule["Next"])
    return str(state["Default"])


DISPATCHED = [p for p in PROGRAMS if DISPATCH in compile_program(p)["States"]]


@pytest.mark.parametrize("program", DISPATCHED, ids=lambda p: p.id)
def test_a_group_at_a_step_the_program_no_longer_has_is_recorded_never_restarted(
    program: Program,
) -> None:
    # Given a seed whose executions may start elsewhere than the root's first step
    definition = compile_program(program)
    first = start_step(program)
    # a child group deferred at a step before a redeploy renamed it (second-purchase-coupon's
    # reminder -> reminder_v2) goes to __removed, never to the first step (the coupon,
    # then the 7-day wait again)
    assert dispatched(definition, "gone_step", "a1b2c3") == REMOVED
    for sid in child_starts(program):
        if sid not in exits(program):
            assert dispatched(definition, sid, "a1b2c3") == sid
    # the root group starts at the root's first step, by name or not (a cohort due before a
    # redeploy that renamed it starts the renamed step)
    if first is not None:  # (champions-care: at_once, nothing after its send, no root)
        assert dispatched(definition, first, ROOT_GROUP) == first
        assert dispatched(definition, "gone_step", ROOT_GROUP) == first
    # __removed asks the journey function to record the group's members leaving there, and
    # the execution ends
    removed = definition["States"][REMOVED]
    payload = removed["Parameters"]["Payload"]
    assert removed["Parameters"]["FunctionName"] == "${JourneyFunctionArn}"
    assert payload["action"] == "removed" and payload["step.$"] == "$.step"
    assert removed["End"] is True and "Catch" not in removed
    request = {k.removesuffix(".$"): v for k, v in payload.items()}
    assert GroupRequest.model_validate(request).action == "removed"
    assert validate_definition(definition) == []


def test_the_renamed_reminder_of_second_purchase_coupon_is_not_the_coupon_again() -> None:
    program = next(p for p in PROGRAMS if p.id == "second-purchase-coupon")
    definition = compile_program(renamed(program, "reminder", "reminder_v2"))
    assert dispatched(definition, "reminder", "a1b2c3") == REMOVED
    assert dispatched(definition, "reminder_v2", "a1b2c3") == "reminder_v2"
    assert dispatched(definition, "coupon", ROOT_GROUP) == "coupon"
    # and the root's path costs what it did: the Choice, then the steps
    assert (
        estimated_transitions(renamed(program, "reminder", "reminder_v2"))
        == (SEED_TRANSITIONS[program.id])
    )


def test_the_pre_fix_definitions_are_refused_as_aws_refused_them() -> None:
    # Given a seed's definition with a Succeed state nothing leads to (what the compiler
    # used to add as __end)
    program = next(p for p in PROGRAMS if p.id == "points-to-next-rank")
    definition = compile_program(program)
    definition["States"]["__done"] = {"Type": "Succeed"}
    # Then it is refused, naming the state
    assert validate_definition(definition) == [
        "State '__done' is not reachable from StartAt 'nudge'"
    ]


def test_the_compiler_refuses_its_own_bad_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a compiler bug that leaves a state nothing leads to
    build = compiler._states

    def buggy(program: Program) -> tuple[str, dict[str, Any]]:
        start, states = build(program)
        return start, {**states, "orphan": {"Type": "Succeed"}}

    monkeypatch.setattr(compiler, "_states", buggy)
    # When a program is compiled / Then it fails then and there, naming program and state
    with pytest.raises(InvalidDefinition) as info:
        compile_program(PROGRAMS[0])
    assert info.value.name == f"program {PROGRAMS[0].id}"
    start = build(PROGRAMS[0])[0]
    assert info.value.problems == [f"State 'orphan' is not reachable from StartAt {start!r}"]
    assert "orphan" in str(info.value)


# --- the validator -------------------------------------------------------------------------
GOOD = machine(
    Start={
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Payload": {
                "id.$": "$.customer_id",
                "when.$": "$$.Execution.StartTime",
                "key.$": "States.Format('{}-{}', $.a['b c'][0], States.UUID())",
                "n.$": "States.MathAdd($.n, -1)",
                "list.$": "$.items[?(@.price > 10)]",
                "deep.$": "$..sku",
            },
        },
        "ResultSelector": {"ok.$": "$.Payload.ok"},
        "ResultPath": "$.result",
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
        "Next": "Route",
    },
    Route={
        "Type": "Choice",
        "Choices": [
            {
                "And": [
                    {"Variable": "$.result.ok", "IsPresent": True},
                    {"Variable": "$.result.ok", "BooleanEquals": True},
                ],
                "Next": "Fan",
            },
            {"Variable": "$.a", "StringEqualsPath": "$.b", "Next": "Later"},
        ],
        "Default": "Failed",
    },
    Later={"Type": "Wait", "TimestampPath": "$.until", "Next": "Fan"},
    Fan={
        "Type": "Parallel",
        "Branches": [machine(One={"Type": "Pass", "End": True})],
        "Next": "Each",
    },
    Each={
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"item.$": "$$.Map.Item.Value"},
        "ItemProcessor": machine(Two={"Type": "Pass", "Result": {"x": 1}, "End": True}),
        "OutputPath": "$",
        "End": True,
    },
    Failed={"Type": "Fail", "Error": "Broken", "CausePath": "States.JsonToString($.error)"},
)


def test_a_good_definition_passes() -> None:
    assert validate_definition(GOOD) == []
    check_definition(GOOD)  # no raise


def broken(where: str, value: Any) -> dict[str, Any]:
    """GOOD with the item at ``where`` ("States/Route/Choices/1") set to ``value`` (deleted when
    value is ...)."""
    definition = copy.deepcopy(GOOD)
    target: Any = definition
    *parents, last = (int(key) if key.isdigit() else key for key in where.split("/"))
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return definition


# (id, where in GOOD, what is put there (... deletes it), the problem listed)
# fmt: off
BROKEN = [
    ("unreachable", "States/Orphan", {"Type": "Succeed"},
     "State 'Orphan' is not reachable from StartAt 'Start'"),
    ("dangling-next", "States/Later/Next", "Nowhere",
     "State 'Later': Next 'Nowhere' is not a state"),
    ("dangling-choice", "States/Route/Choices/1/Next", "Nowhere",
     "State 'Route': Choices[1].Next 'Nowhere' is not a state"),
    ("dangling-catch", "States/Start/Catch/0/Next", "Nowhere",
     "State 'Start': Catch[0].Next 'Nowhere' is not a state"),
    ("start", "StartAt", "Nowhere",
     "top level: StartAt 'Nowhere' is not a state"),
    ("choice-end", "States/Route/End", True,
     "State 'Route': a Choice state has neither Next nor End"),
    ("choice-empty", "States/Route/Choices", [],
     "State 'Route': a Choice needs a non-empty Choices list"),
    ("next-and-end", "States/Later/End", True,
     "State 'Later': Next and End are exclusive"),
    ("neither", "States/Later/Next", ...,
     "State 'Later': needs Next or End: true"),
    ("wait-two", "States/Later/Seconds", 5,
     "State 'Later': a Wait needs exactly one of Seconds, Timestamp, SecondsPath, "
     "TimestampPath (has Seconds, TimestampPath)"),
    ("retry-empty", "States/Start/Retry/0/ErrorEquals", [],
     "State 'Start': Retry[0]: ErrorEquals must be a non-empty list"),
    ("catch-all-not-alone", "States/Start/Catch/0/ErrorEquals", ["States.ALL", "X"],
     "State 'Start': Catch[0]: States.ALL must appear alone, in the last entry"),
    ("jsonpath-no-dollar", "States/Start/ResultPath", "result",
     "State 'Start': ResultPath: 'result' is not a reference path (must start with $)"),
    ("reference-wildcard", "States/Start/ResultPath", "$.items[*]",
     "State 'Start': ResultPath: '$.items[*]': [*]: a reference path takes only a name "
     "or an index in []"),
    ("jsonpath-trailing-dot", "States/Start/InputPath", "$.a..b.",
     "State 'Start': InputPath: '$.a..b.': a name must follow '.' at 6"),
    ("jsonpath-bracket", "States/Start/Parameters/Payload/id.$", "$.a[0",
     "State 'Start': Parameters.Payload.id.$: '$.a[0': unbalanced '[' at 3"),
    ("variable", "States/Route/Choices/1/Variable", "a.b",
     "State 'Route': Choices[1]: Variable: 'a.b' is not a path (must start with $)"),
    ("timestamp-path", "States/Later/TimestampPath", "$$.x y",
     "State 'Later': TimestampPath: '$$.x y': unexpected ' ' at 4"),
    ("intrinsic-name", "States/Start/Parameters/Payload/key.$", "States.Fromat('x')",
     "State 'Start': Parameters.Payload.key.$: \"States.Fromat('x')\": unknown intrinsic "
     "function States.Fromat"),
    ("intrinsic-parenthesis", "States/Start/Parameters/Payload/key.$", "States.Format('x', $.a",
     "State 'Start': Parameters.Payload.key.$: \"States.Format('x', $.a\": unbalanced "
     "parentheses or quotes"),
    ("intrinsic-quote", "States/Start/Parameters/Payload/key.$", "States.Format('x)",
     "State 'Start': Parameters.Payload.key.$: \"States.Format('x)\": unbalanced "
     "parentheses or quotes"),
    ("intrinsic-arity", "States/Start/ResultSelector/ok.$", "States.MathAdd($.a)",
     "State 'Start': ResultSelector.ok.$: 'States.MathAdd($.a)': States.MathAdd takes 2 "
     "argument(s), not 1"),
    ("intrinsic-argument", "States/Failed/CausePath", "States.JsonToString(error)",
     "State 'Failed': CausePath: 'States.JsonToString(error)': argument 'error' is not a "
     "string, number, boolean, null, path or function"),
    ("map-leaves-its-scope", "States/Each/ItemProcessor/States/Two/Next", "Start",
     "Map 'Each' > State 'Two': Next 'Start' is not a state"),
    ("parallel-unreachable", "States/Fan/Branches/0/States/Lost", {"Type": "Succeed"},
     "Parallel 'Fan' branch 0 > State 'Lost' is not reachable from StartAt 'One'"),
    ("duplicate-name", "States/Each/ItemProcessor/States/One", {"Type": "Succeed"},
     "Map 'Each' > State 'One': name already used in Parallel 'Fan' branch 0 (must be "
     "unique)"),
    ("parallel-empty", "States/Fan/Branches", [],
     "State 'Fan': a Parallel needs a non-empty Branches list"),
    ("map-no-processor", "States/Each/ItemProcessor", ...,
     "State 'Each': a Map needs an ItemProcessor (or Iterator)"),
    ("long-name", f"States/{'X' * 81}", {"Type": "Succeed"},
     f"State '{'X' * 81}': name longer than 80 characters"),
    ("comparison", "States/Route/Choices/1/StringEqual", "x",
     "State 'Route': Choices[1]: unknown comparison StringEqual"),
    ("type", "States/Later/Type", "Sleep",
     "State 'Later': unknown Type 'Sleep'"),
]
# fmt: on


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        *(
            pytest.param(broken(where, value), expected, id=case)
            for case, where, value, expected in BROKEN
        ),
        pytest.param(
            machine(A={"Type": "Pass", "Next": "B"}, B={"Type": "Pass", "Next": "A"}),
            "top level: no terminal state (End: true, Succeed or Fail)",
            id="no-terminal",
        ),
    ],
)
def test_each_problem_is_refused_with_its_state(definition: dict[str, Any], expected: str) -> None:
    # When a broken definition is validated / Then the problem is listed with its state
    assert expected in validate_definition(definition)
    with pytest.raises(InvalidDefinition, match="invalid Amazon States Language") as info:
        check_definition(definition, name="journey x")
    assert info.value.name == "journey x"
    assert expected in info.value.problems
    assert str(info.value).startswith("journey x: invalid Amazon States Language definition")


def test_every_problem_is_listed_at_once() -> None:
    definition = broken("States/Orphan", {"Type": "Pass", "Next": "Nowhere"})
    definition["States"]["Later"]["Seconds"] = 1
    problems = validate_definition(definition)
    assert problems == [
        "State 'Later': a Wait needs exactly one of Seconds, Timestamp, SecondsPath, "
        "TimestampPath (has Seconds, TimestampPath)",
        "State 'Orphan': Next 'Nowhere' is not a state",
        "State 'Orphan' is not reachable from StartAt 'Start'",
    ]


@pytest.mark.parametrize(
    "path",
    ["$", "$$", "$.a", "$.a.b[0]", "$['a b'].c", "$.a[-1]", "$.a[0:2]", "$.a[*].b", "$..b",
     "$.a[0,1]", "$.a[?(@.b == 'x)')]", "$$.Map.Item.Value", "$.a-b_c"],
)  # fmt: skip
def test_paths_aws_accepts(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(
    "path", ["", "a", "$.", "$a", "$.a[", "$.a]", "$.a[]", "$.a[b]", "$.a b", "$.a[?(@.b]"]
)
def test_paths_aws_refuses(path: str) -> None:
    assert path_problem(path) is not None


@pytest.mark.parametrize(
    "call",
    ["States.UUID()", "States.Format('a {} \\' b', $.x)", "States.Array(1, 'a', true, null)",
     "States.MathRandom($.a, 10)", "States.Hash(States.JsonToString($), 'SHA-256')",
     "States.StringToJson(States.Format('{}', $.j))"],
)  # fmt: skip
def test_intrinsics_aws_accepts(call: str) -> None:
    assert intrinsic_problem(call) is None


@given(st.text(alphabet="$.[]()'\"*?@:,-0123456789abc ", max_size=20))
def test_paths_never_crash_the_validator(text: str) -> None:
    # For any text, a path is judged (a reason or None), never an exception
    for judged in (path_problem(text), intrinsic_problem("States.Format(" + text)):
        assert judged is None or isinstance(judged, str)
    validate_definition(machine(A={"Type": "Pass", "InputPath": text, "End": True}))


# --- kizuna programs validate ---------------------------------------------------------------
def test_programs_validate_checks_the_state_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(ROOT)
    # Given the seed programs / When they are validated / Then all pass, ASL included
    result = runner.invoke(app, ["programs", "validate"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count("ASL valid") == len(PROGRAMS)

    # Given a compiler that leaves an unreachable state
    build = compiler._states
    monkeypatch.setattr(
        compiler, "_states", lambda p: (build(p)[0], {**build(p)[1], "orphan": {"Type": "Succeed"}})
    )
    # When they are validated / Then every program fails, with its file and the state
    result = runner.invoke(app, ["programs", "validate"])
    assert result.exit_code == 1
    assert "programs/champions-care.yaml (state machine): State 'orphan' is not reachable" in (
        " ".join(result.output.split())
    )


def test_check_programs_reports_the_compilers_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    build = compiler._states
    monkeypatch.setattr(
        compiler, "_states", lambda p: (build(p)[0], {**build(p)[1], "orphan": {"Type": "Succeed"}})
    )
    start = build(PROGRAMS[0])[0]
    found = aslcheck.check_programs(PROGRAMS[:1], npm=False)
    assert found == {PROGRAMS[0].id: [f"State 'orphan' is not reachable from StartAt {start!r}"]}


# --- definitions from a template ------------------------------------------------------------
def test_state_machine_definitions_are_joined_and_substituted() -> None:
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": {
                        "Fn::Join": [
                            "",
                            [
                                '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:',
                                {"Ref": "AWS::Partition"},
                                ':states:::lambda:invoke","Parameters":{"FunctionName":"',
                                {"Fn::GetAtt": ["Fn", "Arn"]},
                                '","Payload":{"t":"${Tbl}"}},"End":true}}}',
                            ],
                        ]
                    },
                    "DefinitionSubstitutions": {"Tbl": {"Ref": "Table"}},
                },
            },
        }
    }
    (definition,) = aslcheck.state_machine_definitions(template).values()
    task = definition["States"]["A"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {
        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Fn",
        "Payload": {"t": "Table"},
    }
