"""Every state machine in the synthesized template is one AWS accepts (issue #13).

moto creates any definition, so the local tests could not see that AWS refuses a journey
with an unreachable state at CreateStateMachine. Here the synthesized definitions (joined,
substitutions applied) go through our validator and the npm ``asl-validator``; and a
compiler that emits an unreachable state fails synth and the local runtime's provisioning.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from kizuna.programs import compiler
from kizuna.programs.asl import InvalidDefinition, validate_definition
from kizuna.programs.model import Program
from kizuna_infra.stack import KizunaStack
from kizuna_tools.aslcheck import find_asl_validator, run_asl_validator, state_machine_definitions
from kizuna_tools.local.testing import CloudFactory

pytestmark = pytest.mark.infra

ORPHAN = {"Type": "Succeed", "Comment": "injected: nothing leads here"}


@pytest.fixture(scope="module")
def definitions(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return state_machine_definitions(template_json)


def test_every_journey_and_the_scoring_machine_are_checked(
    definitions: dict[str, dict[str, Any]], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    machines = {logical_id(m) for m in stack.kizuna.programs.state_machines.values()}
    assert len(machines) == 7
    assert machines < set(definitions)  # and the scoring machine
    for definition in definitions.values():
        assert "${" not in json.dumps(definition)  # every substitution applied


def test_our_validator_accepts_every_state_machine(
    definitions: dict[str, dict[str, Any]],
) -> None:
    problems = {name: validate_definition(d) for name, d in definitions.items()}
    assert {name: p for name, p in problems.items() if p} == {}


@pytest.fixture(scope="module")
def asl_validator() -> Path:
    """The npm asl-validator; the test using it is skipped, and says so, when it is missing."""
    executable = find_asl_validator()
    if executable is None:
        pytest.skip(
            "NOT CHECKED: node_modules/.bin/asl-validator is missing; run `make test` "
            "(or `npm install`) so the npm asl-validator checks every state machine"
        )
    return executable


def test_asl_validator_accepts_every_state_machine(
    definitions: dict[str, dict[str, Any]], asl_validator: Path
) -> None:
    problems = run_asl_validator(definitions, asl_validator)
    assert set(problems) == set(definitions)
    assert {name: p for name, p in problems.items() if p} == {}


def test_asl_validator_refuses_what_aws_refused(
    definitions: dict[str, dict[str, Any]], asl_validator: Path
) -> None:
    # The second opinion is not vacuous: it refuses the pre-fix shape (an orphan Succeed)
    name, definition = next(iter(definitions.items()))
    broken = copy.deepcopy(definition)
    broken["States"]["__orphan"] = {"Type": "Succeed"}
    assert run_asl_validator({name: broken}, asl_validator) == {
        name: ["MISSING_TRANSITION_TARGET: State __orphan is not reachable"]
    }


def inject_unreachable_state(monkeypatch: pytest.MonkeyPatch) -> None:
    build = compiler._states

    def buggy(program: Program) -> tuple[str, dict[str, Any]]:
        start_at, states = build(program)
        return start_at, {**states, "orphan": ORPHAN}

    monkeypatch.setattr(compiler, "_states", buggy)


def test_an_unreachable_state_fails_synth(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., cdk.App]
) -> None:
    # Given a compiler bug that leaves an unreachable state in every journey
    inject_unreachable_state(monkeypatch)
    # When the stack is synthesized / Then it fails, naming the program and the state
    with pytest.raises(InvalidDefinition) as info:
        KizunaStack(make_app())
    assert info.value.name.startswith("program ")
    assert any("State 'orphan' is not reachable" in p for p in info.value.problems)


@pytest.mark.integration
def test_an_unreachable_state_fails_local_provisioning(
    template_json: dict[str, Any], local_cloud_factory: CloudFactory
) -> None:
    # Given a copy of the template with an unreachable state in one journey's definition
    template = copy.deepcopy(template_json)
    machines = [
        (logical_id, r)
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine" and "Journeys" in logical_id
    ]
    logical_id, resource = machines[0]
    properties = resource["Properties"]
    orphan = '"States": {"orphan": ' + json.dumps(ORPHAN) + ", "
    if isinstance(properties["DefinitionString"], str):  # ARNs in DefinitionSubstitutions
        properties["DefinitionString"] = properties["DefinitionString"].replace(
            '"States": {', orphan, 1
        )
    else:
        pieces = properties["DefinitionString"]["Fn::Join"][1]
        at = next(i for i, p in enumerate(pieces) if isinstance(p, str) and '"States": {' in p)
        pieces[at] = pieces[at].replace('"States": {', orphan, 1)
    assert validate_definition(state_machine_definitions(template)[logical_id]) != []

    # When the local runtime provisions it / Then it refuses, as CreateStateMachine would
    with pytest.raises(InvalidDefinition) as info:
        local_cloud_factory(template)
    assert logical_id in info.value.name
    assert info.value.problems == [
        f"State 'orphan' is not reachable from StartAt "
        f"{state_machine_definitions(template)[logical_id]['StartAt']!r}"
    ]
