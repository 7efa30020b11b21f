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
from infra_helpers import CONFIGURED_CONTEXT

from kizuna.adapters.scheduler import SWEEP_NAME_PREFIX
from kizuna_infra import Kizuna, KizunaStack
from kizuna_infra.nag import MIN_REASON_LENGTH, distributed_map_findings, nag_checks

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
def app_and_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[cdk.App, KizunaStack]:
    build_app = runpy.run_path(str(ROOT / "infra" / "app.py"), run_name="kizuna_app")["build_app"]
    app, stack = build_app(
        context={"aws:cdk:bundling-stacks": []},
        outdir=str(tmp_path_factory.mktemp("nag.out")),
    )
    return app, stack


@pytest.fixture(scope="module")
def synthesized(app_and_stack: tuple[cdk.App, KizunaStack]) -> dict[str, Any]:
    app, stack = app_and_stack
    # The AwsSolutions plugin runs here: synth raises on any unacknowledged finding.
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_no_unacknowledged_findings(app_and_stack: tuple[cdk.App, KizunaStack]) -> None:
    app, _ = app_and_stack
    assert findings(app) == []


def test_app_synthesizes_with_the_checks_applied(synthesized: dict[str, Any]) -> None:
    assert synthesized["Resources"]


def test_no_cdk_errors_or_warnings(
    app_and_stack: tuple[cdk.App, KizunaStack], synthesized: dict[str, Any]
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


def _logical_id(construct: Any) -> str:
    stack = cdk.Stack.of(construct)
    element = construct.node.default_child or construct
    result: str = stack.resolve(stack.get_logical_id(element))
    return result


def _default_policy(role: Any) -> str:
    return _logical_id(role.node.find_child("DefaultPolicy"))


def expected_acknowledgments(stack: KizunaStack) -> list[tuple[str, str]]:
    """Every acknowledged finding, by resource: changing this list is a reviewed decision."""
    k = stack.kizuna
    programs, delivery = k.programs, k.delivery
    customers = f"AwsSolutions-IAM5[Resource::<{_logical_id(k.tables.customers)}.Arn>/index/*]"
    activity = f"AwsSolutions-IAM5[Resource::<{_logical_id(k.tables.activity)}.Arn>/index/*]"

    def qualified(function: Any) -> str:
        return f"AwsSolutions-IAM5[Resource::<{_logical_id(function)}.Arn>:*]"

    expected: list[tuple[str, str]] = []
    # Every function: the pinned runtime; grants on tables with indexes: <table>/index/*.
    for function, index_findings in (
        (k.ingest, [customers, activity]),
        (programs.evaluate, [customers, activity]),
        (programs.journey_helper, [customers, activity]),
        (programs.sweep, [customers]),
        (delivery.send, [customers, activity]),
        (delivery.unsubscribe, []),
        (delivery.feedback, [customers, activity]),
    ):
        expected.append((_logical_id(function.function), "AwsSolutions-L1"))
        expected += [(_default_policy(function.role), f) for f in index_findings]
    # Journeys: qualified invokes, log delivery "*", no X-Ray.
    journeys = _default_policy(programs.journey_role)
    expected += [
        (journeys, qualified(delivery.send.function)),
        (journeys, qualified(programs.journey_helper.function)),
        (journeys, "AwsSolutions-IAM5[Resource::*]"),
    ]
    expected += [(_logical_id(m), "AwsSolutions-SF2") for m in programs.state_machines.values()]
    # Cohorts: the journey and send functions start child executions (by name prefix)
    children = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
        f"<AWS::AccountId>:stateMachine:{programs.prefix}*]"
    )
    expected += [
        (_default_policy(programs.journey_helper.role), children),
        (_default_policy(delivery.send.role), children),
    ]
    # Journey timers: evaluate, journey and send create one-time schedules in the journeys'
    # group, and ingest an erasure's sweep; the role those schedules run as starts the
    # journeys (by name prefix).
    timers = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
        f"<AWS::AccountId>:schedule/{programs.journey_schedule_group_name}/*]"
    )
    expected += [
        (_default_policy(function.role), timers)
        for function in (programs.evaluate, programs.journey_helper, delivery.send)
    ]
    expected.append(
        (_default_policy(k.ingest.role), timers.replace("/*]", f"/{SWEEP_NAME_PREFIX}*]"))
    )
    expected.append((_default_policy(programs.journey_scheduler_role), children))
    # Schedules: Scheduler's qualified invoke; their DLQs are DLQs without a redrive source.
    for schedules in (programs.sweep_schedules, delivery.feedback.schedules):
        expected.append((_default_policy(schedules.role), qualified(schedules.function)))
        expected.append((_logical_id(schedules.dead_letter_queue), "AwsSolutions-SQS3"))
    # Delivery: the signing secret is not rotated; SMS and opt-out listing need "*".
    expected += [
        (_logical_id(delivery.signing_secret), "AwsSolutions-SMG4"),
        (_logical_id(delivery.sms_policy), "AwsSolutions-IAM5[Resource::*]"),
        (_logical_id(delivery.feedback.sms_opt_out_policy), "AwsSolutions-IAM5[Resource::*]"),
    ]
    # Scoring: the function (customers only), the state machine (qualified invoke, log
    # delivery "*", its Distributed Map's child executions, no X-Ray), the schedule's DLQ.
    scoring = k.scoring
    expected.append((_logical_id(scoring.score.function), "AwsSolutions-L1"))
    expected.append((_default_policy(scoring.score.role), customers))
    bucket = _logical_id(k.tables.analytics)
    expected += [
        (_default_policy(scoring.score.role), f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{p}/*]")
        for p in ("work", "snapshots")
    ]
    expected.append((bucket, "AwsSolutions-S1"))
    # Direct mail: the print-file bucket (no access logs), the sweep's dm/ objects
    print_files = _logical_id(k.tables.print_files)
    expected.append((print_files, "AwsSolutions-S1"))
    expected.append(
        (
            _default_policy(programs.sweep.role),
            f"AwsSolutions-IAM5[Resource::<{print_files}.Arn>/dm/*]",
        )
    )
    machine = _default_policy(scoring.state_machine.role)
    expected += [
        (machine, qualified(scoring.score.function)),
        (machine, "AwsSolutions-IAM5[Resource::*]"),
    ]
    executions = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
        '<AWS::AccountId>:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"'
        + _logical_id(scoring.state_machine)
        + '"}]}]}'
    )
    child_policy = _logical_id(scoring.state_machine.node.find_child("DistributedMapPolicy"))
    expected += [(child_policy, f"{executions}:*]"), (child_policy, f"{executions}/*:*]")]
    expected.append((_logical_id(scoring.state_machine), "AwsSolutions-SF2"))
    expected.append((_logical_id(scoring.dead_letter_queue), "AwsSolutions-SQS3"))
    # Campaigns: the function (both tables' indexes, campaigns/ objects, SMS "*"), the
    # state machine (as scoring's, two Distributed Maps), the schedules' DLQ.
    campaigns = k.campaigns
    policy = _default_policy(campaigns.campaign.role)
    expected += [
        (_logical_id(campaigns.campaign.function), "AwsSolutions-L1"),
        (policy, customers),
        (policy, activity),
        (policy, f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/campaigns/*]"),
        # deleting an occurrence's objects, two levels down (never a user's list.csv)
        (policy, f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/campaigns/*/*/*]"),
        (_logical_id(campaigns.sms_policy), "AwsSolutions-IAM5[Resource::*]"),
    ]
    machine = _default_policy(campaigns.state_machine.role)
    expected += [
        (machine, qualified(campaigns.campaign.function)),
        (machine, "AwsSolutions-IAM5[Resource::*]"),
    ]
    child_policy = _logical_id(campaigns.state_machine.node.find_child("DistributedMapPolicy"))
    expected += [(child_policy, f) for f in distributed_map_findings(campaigns.state_machine)]
    expected.append((_logical_id(campaigns.state_machine), "AwsSolutions-SF2"))
    expected.append((_logical_id(campaigns.dead_letter_queue), "AwsSolutions-SQS3"))
    # API: the function (both tables' indexes, reports/ and static lists, the campaigns'
    # schedules, the campaign executions it describes, the send function), the console routes (cookie, no authorizer), the
    # distribution (no geo restriction, API access logs, default certificate), the pool (no
    # MFA challenge in the console's sign-in, no paid threat protection by default).
    api = k.api
    policy = _default_policy(api.function.role)
    schedules = (
        "arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/"
        f"{campaigns.schedule_group_name}/*"
    )
    expected += [
        (_logical_id(api.function.function), "AwsSolutions-L1"),
        (policy, customers),
        (policy, activity),
        (policy, f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/reports/*]"),
        (policy, f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/campaigns/*/list.csv]"),
        (policy, f"AwsSolutions-IAM5[Resource::{schedules}]"),
        (policy, distributed_map_findings(campaigns.state_machine)[0]),
        (policy, qualified(delivery.send.function)),
    ]
    expected += [(_logical_id(route), "AwsSolutions-APIG4") for route in api.console_routes]
    expected += [(_logical_id(route), "AwsSolutions-APIG4") for route in api.card_routes]
    distribution = _logical_id(api.distribution)
    expected += [(distribution, f"AwsSolutions-CFR{n}") for n in (1, 3, 4)]
    pool = _logical_id(api.user_pool)
    expected += [(pool, "AwsSolutions-COG2"), (pool, "AwsSolutions-COG8")]
    return sorted(expected)


def test_acknowledgments_name_their_resource_and_finding(
    app_and_stack: tuple[cdk.App, KizunaStack], synthesized: dict[str, Any]
) -> None:
    # No blanket acknowledgments: nothing on the stack, and each one is on the single
    # resource it is about (changing this list is a reviewed decision).
    assert "cdk_nag" not in synthesized.get("Metadata", {})
    _, stack = app_and_stack
    acked = sorted((logical_id, rule_id) for logical_id, rule_id, _ in acknowledgments(synthesized))
    assert acked == expected_acknowledgments(stack)


def test_wildcards_are_acknowledged_only_where_iam_requires_them(
    synthesized: dict[str, Any],
) -> None:
    # Every Resource "*" in an identity policy is one of the actions that support no
    # resource-level permissions.
    allowed = {
        "sns:Publish",  # SMS to a phone number
        "sns:CheckIfPhoneNumberIsOptedOut",
        "sns:ListPhoneNumbersOptedOut",
        "logs:CreateLogDelivery",  # Step Functions log delivery
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for resource in synthesized["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Resource"] == "*":
                actions = statement["Action"]
                assert set(actions if isinstance(actions, list) else [actions]) <= allowed


@pytest.fixture(scope="module")
def make_stack() -> Callable[[], cdk.Stack]:
    def make() -> cdk.Stack:
        app = cdk.App(context={"aws:cdk:bundling-stacks": []})
        return cdk.Stack(app, "Probe")

    return make


def test_tracing_and_every_channel_variant_is_also_clean(
    make_stack: Callable[[], cdk.Stack],
) -> None:
    # Given Kizuna embedded with X-Ray tracing on (adds Resource::* statements), push and
    # LINE configured (adds their grants), and Cognito threat protection on (no COG8)
    stack = make_stack()
    Kizuna(
        stack,
        "Kizuna",
        tracing=True,
        advanced_security=True,
        push_application_id="0123456789abcdef0123456789abcdef",
        line_token_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:line-AbCdEf",
        config=CONFIGURED_CONTEXT["kizuna:config"],  # with webhooks (their keys' grants)
    )
    # Then its known findings are acknowledged and nothing else is reported
    assert findings(stack) == []


def test_checks_do_report_findings(make_stack: Callable[[], cdk.Stack]) -> None:
    # Given a queue with neither DLQ nor SSL enforcement (guards against a vacuous pass)
    stack = make_stack()
    sqs.Queue(stack, "Careless")
    reported = findings(stack)
    assert any(f.startswith("AwsSolutions-SQS3") for f in reported), reported
    assert any(f.startswith("AwsSolutions-SQS4") for f in reported), reported
