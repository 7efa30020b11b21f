"""cdk-nag AwsSolutions checks on the app exactly as ``infra/app.py`` builds it.

cdk-nag v3 is a CDK policy-validation plugin: findings are not annotations but a validation
report, and an unacknowledged finding fails ``app.synth()``.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match

from kizuna_infra import Kizuna
from kizuna_infra.nag import MIN_REASON_LENGTH, nag_checks

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def findings(scope: cdk.App | cdk.Stack) -> list[str]:
    report = nag_checks().validate_scope(scope)
    return [
        f"{v.rule_name} ({v.severity}) at "
        + ", ".join(r.construct_path or r.resource_logical_id or "?" for r in v.violating_resources)
        for v in report.violations
    ]


@pytest.fixture(scope="module")
def app_and_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[cdk.App, cdk.Stack]:
    build_app = runpy.run_path(str(ROOT / "infra" / "app.py"), run_name="kizuna_app")["build_app"]
    app, stack = build_app(
        context={"aws:cdk:bundling-stacks": []},
        outdir=str(tmp_path_factory.mktemp("nag.out")),
    )
    return app, stack


@pytest.fixture(scope="module")
def synthesized(app_and_stack: tuple[cdk.App, cdk.Stack]) -> dict[str, Any]:
    app, stack = app_and_stack
    # The AwsSolutions plugin runs here: synth raises on any unacknowledged finding.
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_no_unacknowledged_findings(app_and_stack: tuple[cdk.App, cdk.Stack]) -> None:
    app, _ = app_and_stack
    assert findings(app) == []


def test_app_synthesizes_with_the_checks_applied(synthesized: dict[str, Any]) -> None:
    assert synthesized["Resources"]


def test_no_cdk_errors_or_warnings(
    app_and_stack: tuple[cdk.App, cdk.Stack], synthesized: dict[str, Any]
) -> None:
    _, stack = app_and_stack
    annotations = Annotations.from_stack(stack)
    assert annotations.find_error("*", Match.any_value()) == []
    assert annotations.find_warning("*", Match.any_value()) == []


def acknowledgments(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (logical_id, rule["id"], rule["reason"])
        for logical_id, resource in template["Resources"].items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]


def test_every_acknowledgment_has_a_real_reason(synthesized: dict[str, Any]) -> None:
    acks = acknowledgments(synthesized)
    assert acks, "acknowledgments were not written to the template"
    for logical_id, rule_id, reason in acks:
        assert len(reason.strip()) >= MIN_REASON_LENGTH, (logical_id, rule_id)
        assert rule_id.startswith("AwsSolutions-"), (logical_id, rule_id)


def test_acknowledgments_name_their_resource_and_finding(synthesized: dict[str, Any]) -> None:
    # No blanket acknowledgments: nothing on the stack, and each one is on the single
    # resource it is about (changing this list is a reviewed decision).
    assert "cdk_nag" not in synthesized.get("Metadata", {})
    acked = {
        (synthesized["Resources"][logical_id]["Type"], rule_id)
        for logical_id, rule_id, _ in acknowledgments(synthesized)
    }
    [activity] = [
        logical_id
        for logical_id, r in synthesized["Resources"].items()
        if r["Type"] == "AWS::DynamoDB::Table"
        and {"AttributeName": "gsi1pk", "AttributeType": "S"}
        in r["Properties"]["AttributeDefinitions"]
    ]
    assert acked == {
        ("AWS::Lambda::Function", "AwsSolutions-L1"),
        ("AWS::IAM::Policy", f"AwsSolutions-IAM5[Resource::<{activity}.Arn>/index/*]"),
    }
    assert len(acknowledgments(synthesized)) == len(acked)


@pytest.fixture(scope="module")
def make_stack() -> Callable[[], cdk.Stack]:
    def make() -> cdk.Stack:
        app = cdk.App(context={"aws:cdk:bundling-stacks": []})
        return cdk.Stack(app, "Probe")

    return make


def test_tracing_variant_is_also_clean(make_stack: Callable[[], cdk.Stack]) -> None:
    # Given Kizuna embedded with X-Ray tracing on (adds a Resource::* statement)
    stack = make_stack()
    Kizuna(stack, "Kizuna", tracing=True)
    # Then its known finding is acknowledged and nothing else is reported
    assert findings(stack) == []


def test_checks_do_report_findings(make_stack: Callable[[], cdk.Stack]) -> None:
    # Given a queue with neither DLQ nor SSL enforcement (guards against a vacuous pass)
    stack = make_stack()
    sqs.Queue(stack, "Careless")
    reported = findings(stack)
    assert any(f.startswith("AwsSolutions-SQS3") for f in reported), reported
    assert any(f.startswith("AwsSolutions-SQS4") for f in reported), reported
