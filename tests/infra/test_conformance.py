"""The synthesized template is one AWS would take: every rule's event pattern passes
EventBridge's own rules, and the template is within CloudFormation, Step Functions and
Lambda limits, with room for more programs than the seeds."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kizuna.programs.pattern_rules import validate_pattern
from kizuna_infra import limits, names
from kizuna_infra.kizuna import Kizuna
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
AppFactory = Callable[..., cdk.App]


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


# --- Event patterns ------------------------------------------------------------------------


def _resolved(value: Any) -> Any:
    """A pattern as EventBridge receives it: CloudFormation resolves a ``Ref`` (the SES rule
    names the stack's configuration set) to a string before the rule is created."""
    if isinstance(value, dict):
        if set(value) in ({"Ref"}, {"Fn::GetAtt"}):
            return "resolved-by-cloudformation"
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def test_every_rule_pattern_is_one_eventbridge_accepts(template_json: dict[str, Any]) -> None:
    # Given every EventBridge rule of the stack
    rules = _resources(template_json, "AWS::Events::Rule")
    patterns = {
        k: _resolved(r["Properties"]["EventPattern"])
        for k, r in rules.items()
        if "EventPattern" in r["Properties"]
    }
    assert len(patterns) >= 3  # ingest, evaluate, feedback

    # Then each passes EventBridge's rules, size quota included
    assert {k: validate_pattern(p) for k, p in patterns.items()} == {k: [] for k in patterns}


# --- Template limits -----------------------------------------------------------------------


def test_the_template_is_within_every_limit(
    stack: KizunaStack, template_json: dict[str, Any]
) -> None:
    assert limits.template_problems(template_json) == []


def test_body_size_is_measured_on_the_file_cdk_deploy_uploads(
    stack: KizunaStack, template_json: dict[str, Any]
) -> None:
    # Given the template file of the cloud assembly
    assembly = stack.node.root.synth()  # type: ignore[attr-defined]
    path = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)

    # Then the helper measures the same bytes
    assert limits.template_body_bytes(template_json) == path.stat().st_size
    assert path.stat().st_size < limits.MAX_TEMPLATE_BYTES


def test_definitions_and_environments_have_room(template_json: dict[str, Any]) -> None:
    machines = _resources(template_json, "AWS::StepFunctions::StateMachine")
    functions = _resources(template_json, "AWS::Lambda::Function")
    assert max(map(limits.definition_bytes, machines.values())) < limits.MAX_DEFINITION_BYTES / 10
    sizes = {k: limits.environment_bytes(f) for k, f in functions.items()}
    assert max(sizes.values()) < limits.MAX_ENVIRONMENT_BYTES, sizes


def test_the_limits_check_catches_each_kind_of_excess() -> None:
    template = {
        "Resources": {
            **{f"R{i}": {"Type": "AWS::SNS::Topic"} for i in range(501)},
            "Bad-Id": {"Type": "AWS::SNS::Topic"},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Environment": {"Variables": {"BIG": "x" * 5000}}},
            },
        },
        "Outputs": {f"O{i}": {} for i in range(201)},
    }
    problems = limits.template_problems(template)
    assert any(p.startswith("Resources: 503, over 500") for p in problems)
    assert any(p.startswith("Outputs: 201, over 200") for p in problems)
    assert any(p.startswith("Resources.Bad-Id: logical ids") for p in problems)
    assert any(p.startswith("Fn: environment") for p in problems)


# --- How many programs fit -----------------------------------------------------------------


def _with_copies(tmp: Path, copies: int) -> tuple[Path, Path]:
    """A programs folder with every seed program and ``copies`` renamed copies of each (their
    templates too)."""
    programs, templates = tmp / "programs", tmp / "templates"
    shutil.copytree(ROOT / names.PROGRAMS_DIR, programs)
    shutil.copytree(ROOT / names.TEMPLATES_DIR, templates)
    for path in sorted((ROOT / names.PROGRAMS_DIR).glob("*.yaml")):
        for n in range(copies):
            new_id = f"{path.stem}-c{n}"
            text = re.sub(r"(?m)^id: .*$", f"id: {new_id}", path.read_text(encoding="utf-8"))
            (programs / f"{new_id}.yaml").write_text(text, encoding="utf-8")
            if (templates / path.stem).is_dir():
                shutil.copytree(templates / path.stem, templates / new_id)
    return programs, templates


def _synth(
    make_app: AppFactory, programs: Path | None = None, templates: Path | None = None
) -> dict[str, Any]:
    app = make_app()
    stack = cdk.Stack(app, names.STACK_ID)
    Kizuna(stack, names.KIZUNA_CONSTRUCT_ID, programs_dir=programs, templates_dir=templates)
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def growth(make_app: AppFactory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same stack synthesized with the seed programs and with one copy of each."""
    smaller = _synth(make_app)
    programs, templates = _with_copies(tmp_path_factory.mktemp("more-programs"), copies=1)
    larger = _synth(make_app, programs, templates)
    return {"smaller": smaller, "larger": larger}


def test_how_many_programs_fit_in_one_stack(
    growth: dict[str, Any], template_json: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the template with the seed programs, and with twice as many
    seeds = len(limits.program_ids(growth["smaller"]))
    more = len(limits.program_ids(growth["larger"]))
    assert more == 2 * seeds

    # When the cost of one program is measured
    cost = limits.marginal_cost(growth["smaller"], seeds, growth["larger"], more)
    fit = limits.capacity(
        len(template_json["Resources"]), limits.template_body_bytes(template_json), seeds, cost
    )
    with capsys.disabled():
        print(f"\n[limits] {limits.capacity_report(cost, fit, seeds)}")

    # Then it matches what a program's own constructs hold (state machine, log group, alarm)
    counted = {
        len(limits.program_resources(template_json, p)) for p in limits.program_ids(template_json)
    }
    assert counted == {cost.resources} == {limits.RESOURCES_PER_PROGRAM}
    # the constants the synth-time check uses are not below what is measured
    assert cost.template_bytes <= limits.TEMPLATE_BYTES_PER_PROGRAM
    base_bytes = limits.template_body_bytes(template_json) - seeds * cost.template_bytes
    assert base_bytes <= limits.BASE_TEMPLATE_BYTES
    assert len(template_json["Resources"]) - seeds * cost.resources <= limits.BASE_RESOURCES
    assert limits.planned_capacity().programs <= fit.programs
    # and the seeds fit with a wide margin
    assert fit.programs >= 5 * seeds


def test_synth_refuses_more_programs_than_fit() -> None:
    fit = limits.planned_capacity().programs
    limits.check_program_capacity(fit)
    with pytest.raises(
        limits.TooManyProgramsError, match=rf"{fit + 1} enabled programs.*at most {fit}"
    ):
        limits.check_program_capacity(fit + 1)
