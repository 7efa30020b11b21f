"""cdk-nag (v3) AwsSolutions checks and Kizuna's acknowledged findings.

cdk-nag v3 runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``) and
reads acknowledgments recorded with ``Validations.of(construct).acknowledge``; v2's
``NagSuppressions`` no longer exists. Every acknowledgment here is put on the one resource it
is about, with the finding id (``RuleId[finding]``) where the rule reports findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from kizuna_infra.kizuna import Kizuna

MIN_REASON_LENGTH = 20


def nag_checks(scope: IConstruct | None = None) -> AwsSolutionsChecks:
    """The rule pack Kizuna is held to; acknowledgments are copied into the template."""
    return AwsSolutionsChecks(scope, verbose=True, write_suppressions_to_cloud_formation=True)


def apply_nag_checks(app: IConstruct) -> AwsSolutionsChecks:
    """Run AwsSolutions checks at synthesis; an unacknowledged finding fails ``synth``."""
    checks = nag_checks(app)
    Validations.of(app).add_plugins(checks)
    return checks


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    if len(reason) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def _logical_id(construct: IConstruct) -> str:
    """The resolved CloudFormation logical id of an L2's resource (as cdk-nag prints it)."""
    element = cast(CfnElement, construct.node.default_child)
    stack = Stack.of(construct)
    return cast(str, stack.resolve(stack.get_logical_id(element)))


def _resource(construct: IConstruct) -> IConstruct:
    """The L1 resource of an L2, so an acknowledgment does not spill onto its children."""
    resource = construct.node.default_child
    if resource is None:
        raise LookupError(f"{construct.node.path} has no CloudFormation resource")
    return resource


def _default_policy(role: iam.Role) -> IConstruct:
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        raise LookupError(f"{role.node.path} has no DefaultPolicy to acknowledge findings on")
    return _resource(policy)


def acknowledge_findings(kizuna: Kizuna) -> None:
    """Acknowledge, resource by resource, the findings Kizuna accepts by design."""
    ingest = kizuna.ingest

    acknowledge(
        _resource(ingest.function),
        "AwsSolutions-L1",
        "Kizuna pins python3.13: the dependency layer is built for cp313/arm64 and the "
        "design fixes the Lambda runtime; runtime upgrades are deliberate, tested changes.",
    )

    activity_arn = f"<{_logical_id(kizuna.tables.activity)}.Arn>"
    acknowledge(
        _default_policy(ingest.role),
        f"AwsSolutions-IAM5[Resource::{activity_arn}/index/*]",
        "grant_read_write_data on the activity table covers its own indexes (gsi1) only; "
        "the wildcard is limited to <activity table ARN>/index/*.",
    )

    if ingest.tracing:
        acknowledge(
            _default_policy(ingest.role),
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
            "permissions; added only when tracing is turned on.",
        )
