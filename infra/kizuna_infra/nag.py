"""cdk-nag (v3) AwsSolutions checks and Kizuna's acknowledged findings.

cdk-nag v3 runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``) and
reads acknowledgments recorded with ``Validations.of(construct).acknowledge``; v2's
``NagSuppressions`` no longer exists. Every acknowledgment here is put on the one resource it
is about, with the finding id (``RuleId[finding]``) where the rule reports findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from kizuna.adapters.scheduler import SWEEP_NAME_PREFIX

if TYPE_CHECKING:
    from kizuna_infra.api import Api
    from kizuna_infra.campaigns import Campaigns
    from kizuna_infra.functions import KizunaFunction
    from kizuna_infra.kizuna import Kizuna
    from kizuna_infra.schedules import ScheduledInvocations
    from kizuna_infra.scoring import Scoring

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


RUNTIME_REASON = (
    "Kizuna pins python3.13: the dependency layer is built for cp313/arm64 and the design "
    "fixes the Lambda runtime; runtime upgrades are deliberate, tested changes."
)
XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; "
    "added only when tracing is turned on."
)
INDEX_REASONS = {
    "customers": "grant_*_data on the customers table covers its own sparse sweep indexes "
    "(by_last_order, by_points_expiry, by_open_cart, by_birthday, by_phone) "
    "only; the wildcard is limited to <customers table ARN>/index/*.",
    "activity": "grant_*_data on the activity table covers its own indexes (gsi1) only; "
    "the wildcard is limited to <activity table ARN>/index/*.",
}
QUALIFIED_INVOKE_REASON = (
    "grant_invoke adds <function ARN>:* so that a version or alias of this one function may "
    "be invoked; the wildcard matches qualifiers of this function only."
)


def _acknowledge_function(
    function: KizunaFunction, index_tables: Mapping[str, dynamodb.Table]
) -> None:
    """The runtime pin, the table-index wildcards its grants add, and X-Ray when traced."""
    acknowledge(_resource(function.function), "AwsSolutions-L1", RUNTIME_REASON)
    policy = _default_policy(function.role)
    for name, table in index_tables.items():
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{_logical_id(table)}.Arn>/index/*]",
            INDEX_REASONS[name],
        )
    if function.tracing:
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)


def _acknowledge_qualified_invoke(role: iam.Role, functions: list[lambda_.Function]) -> None:
    for function in functions:
        acknowledge(
            _default_policy(role),
            f"AwsSolutions-IAM5[Resource::<{_logical_id(function)}.Arn>:*]",
            QUALIFIED_INVOKE_REASON,
        )


def _acknowledge_schedules(schedules: ScheduledInvocations) -> None:
    _acknowledge_qualified_invoke(schedules.role, [cast(lambda_.Function, schedules.function)])
    acknowledge(
        _resource(schedules.dead_letter_queue),
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue: of the Scheduler target and of the "
        "function's asynchronous on-failure destination; cdk-nag only recognizes DLQs that "
        "a RedrivePolicy points to.",
    )


def distributed_map_findings(state_machine: IConstruct) -> list[str]:
    """The two execution wildcards CDK's DistributedMap grants its own state machine."""
    machine = '{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"' + _logical_id(state_machine) + '"}]}]}'
    prefix = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
    prefix += "<AWS::AccountId>:execution:"
    return [f"{prefix}{machine}:*]", f"{prefix}{machine}/*:*]"]


ANALYTICS_PREFIX_REASONS = {
    "work": "The score function writes and reads its per-run work files (one object per "
    "run date and scan segment, keys known only at run time) under work/ only.",
    "snapshots": "The score function writes the daily snapshot export (one object per run "
    "date and scan segment) under snapshots/ only.",
}


def _acknowledge_scoring(scoring: Scoring, customers: dynamodb.Table, bucket: IConstruct) -> None:
    """The score function, the scoring state machine (and its Distributed Map's child
    executions) and the daily schedule's dead-letter queue."""
    _acknowledge_function(scoring.score, {"customers": customers})
    for prefix, reason in ANALYTICS_PREFIX_REASONS.items():
        acknowledge(
            _default_policy(scoring.score.role),
            f"AwsSolutions-IAM5[Resource::<{_logical_id(bucket)}.Arn>/{prefix}/*]",
            reason,
        )
    _acknowledge_distributed_machine(
        scoring.state_machine, scoring.score.function, tracing=scoring.tracing, items="segment"
    )
    acknowledge(
        _resource(scoring.dead_letter_queue),
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue, of the daily scoring schedule's target; "
        "cdk-nag only recognizes DLQs that a RedrivePolicy points to.",
    )


def _acknowledge_distributed_machine(
    machine: sfn.StateMachine, function: lambda_.Function, *, tracing: bool, items: str
) -> None:
    """A state machine invoking one function, with Distributed Maps (scoring, campaigns):
    the qualified invoke, log delivery (and X-Ray), the child executions, SF2 when untraced."""
    role = cast(iam.Role, machine.role)
    _acknowledge_qualified_invoke(role, [function])
    acknowledge(
        _default_policy(role),
        "AwsSolutions-IAM5[Resource::*]",
        "Step Functions' CloudWatch Logs delivery (logs:CreateLogDelivery, "
        "PutResourcePolicy, DescribeLogGroups, ...) supports no resource-level permissions"
        + ("; so do X-Ray's PutTraceSegments/PutTelemetryRecords." if tracing else "."),
    )
    policy = machine.node.try_find_child("DistributedMapPolicy")
    if policy is None:
        raise LookupError(f"{machine.node.path} has no DistributedMapPolicy")
    for finding in distributed_map_findings(machine):
        acknowledge(
            _resource(policy),
            finding,
            f"A Distributed Map runs each {items} as a child execution of this state "
            "machine: Describe/Stop/Redrive need its executions' ARNs, which only exist at "
            "run time; the wildcard is limited to this one state machine's executions.",
        )
    if not tracing:
        acknowledge(
            _resource(machine),
            "AwsSolutions-SF2",
            "X-Ray tracing is off by default (it costs per trace); every transition is "
            "logged at level ALL. Kizuna(tracing=True) turns it on.",
        )


def _acknowledge_campaigns(campaigns: Campaigns, kizuna: Kizuna) -> None:
    """The campaign function (table indexes, its campaigns/ prefix, SMS), the campaign
    state machine (its Distributed Maps' child executions) and the schedules' DLQ."""
    tables = kizuna.tables
    _acknowledge_function(
        campaigns.campaign, {"customers": tables.customers, "activity": tables.activity}
    )
    acknowledge(
        _default_policy(campaigns.campaign.role),
        f"AwsSolutions-IAM5[Resource::<{_logical_id(tables.analytics)}.Arn>/campaigns/*]",
        "The campaign function reads each occurrence's frozen audience and chunk files, and "
        "a static audience's list.csv (keys known only at run time), under campaigns/ only.",
    )
    acknowledge(
        _default_policy(campaigns.campaign.role),
        f"AwsSolutions-IAM5[Resource::<{_logical_id(tables.analytics)}.Arn>/campaigns/*/*/*]",
        "The campaign function writes (tagged) and, on Complete, deletes its occurrences' "
        "objects (campaigns/<id>/<occurrence>/..., keys known only at run time); the two "
        "levels keep a user's campaigns/<id>/list.csv out of reach.",
    )
    acknowledge(
        _resource(campaigns.sms_policy),
        "AwsSolutions-IAM5[Resource::*]",
        "sns:Publish of an SMS goes to a phone number, which is not an IAM resource, and "
        "sns:CheckIfPhoneNumberIsOptedOut has no resource-level permissions: both need "
        "Resource '*'. This policy holds that one statement only.",
    )
    _acknowledge_distributed_machine(
        campaigns.state_machine,
        campaigns.campaign.function,
        tracing=campaigns.tracing,
        items="scan segment and each chunk of recipients",
    )
    acknowledge(
        _resource(campaigns.dead_letter_queue),
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue, of the campaign schedules' target (the "
        "CLI sets it on every schedule it creates); cdk-nag only recognizes DLQs that a "
        "RedrivePolicy points to.",
    )


def _acknowledge_api(api: Api, kizuna: Kizuna) -> None:
    """The API function (table indexes, its S3 prefixes, the campaigns' schedules, the send
    function), its console routes, the console's distribution and the user pool."""
    tables = kizuna.tables
    _acknowledge_function(
        api.function, {"customers": tables.customers, "activity": tables.activity}
    )
    policy = _default_policy(api.function.role)
    bucket = _logical_id(tables.analytics)
    for resource, reason in (
        (
            f"<{bucket}.Arn>/reports/*",
            "The API reads the reports (one JSON object per report, keys known only at run "
            "time) under reports/ only.",
        ),
        (
            f"<{bucket}.Arn>/campaigns/*/list.csv",
            "A campaign's static audience list is one object per campaign, "
            "campaigns/<campaign id>/list.csv; the API writes that object only.",
        ),
        (
            "arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/"
            f"{api.schedule_group_name}/*",
            "Campaign routes create, update, read and delete one schedule per campaign, named "
            "after it, in the campaigns' own Scheduler group only.",
        ),
    ):
        acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
    executions = distributed_map_findings(kizuna.campaigns.state_machine)[0]
    acknowledge(
        policy,
        executions,
        "The campaign page reads how an unfinished occurrence's execution ended "
        "(states:DescribeExecution only): an execution's name is known only at run time, "
        "and the grant covers the campaign state machine's executions only.",
    )
    _acknowledge_qualified_invoke(api.function.role, [kizuna.delivery.send.function])
    for route in api.console_routes:
        acknowledge(
            _resource(route),
            "AwsSolutions-APIG4",
            "Console pages have no API Gateway authorizer: a browser sends no bearer token. "
            "The function verifies the session cookie (a Cognito id token, HttpOnly, Secure, "
            "SameSite) on every page and a CSRF field on every form; without one it shows the "
            "sign-in form only.",
        )
    for route in api.card_routes:
        acknowledge(
            _resource(route),
            "AwsSolutions-APIG4",
            "The shop's site or app calls the card routes for its signed-in customer with a "
            "card token (HMAC over the customer id and an expiry, a key only Kizuna holds); "
            "the function verifies it on every request and answers about that customer only.",
        )
    distribution = _resource(api.distribution)
    acknowledge(
        distribution,
        "AwsSolutions-CFR1",
        "The console serves a shop's own staff, wherever they travel; every request needs a "
        "Cognito sign-in and WAF limits each client IP. Add a geo restriction if your shop "
        "needs one.",
    )
    acknowledge(
        distribution,
        "AwsSolutions-CFR3",
        "Every request CloudFront forwards reaches the HTTP API, whose access log (JSON, "
        "without bodies) records it; WAF samples what it blocks. CloudFront standard logs "
        "would need an ACL-enabled bucket for no extra reader.",
    )
    acknowledge(
        distribution,
        "AwsSolutions-CFR4",
        "The distribution uses CloudFront's default *.cloudfront.net certificate, with which "
        "CloudFront fixes the viewer's minimum TLS version itself; give the console a custom "
        "domain and certificate to choose TLSv1.2_2021. The origin is HTTPS TLSv1.2 only.",
    )
    pool = _resource(api.user_pool)
    acknowledge(
        pool,
        "AwsSolutions-COG2",
        "The console signs in with USER_PASSWORD_AUTH and answers no MFA challenge; the pool "
        "has no self sign-up (an admin creates every account), a 12-character password "
        "policy with every character class, and 1-hour id tokens.",
    )
    if not api.advanced_security:
        acknowledge(
            pool,
            "AwsSolutions-COG8",
            "Cognito threat protection needs the Plus feature plan, billed per monthly active "
            "user; Kizuna(advanced_security=True) turns it on (enforced).",
        )


def _acknowledge_cohort_children(kizuna: Kizuna) -> None:
    """The journey and send functions start child executions of a cohort (members who went
    another way): by the journeys' name prefix, as naming each state machine would make a
    dependency cycle (every journey names both functions)."""
    prefix = kizuna.programs.prefix
    finding = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
        f"<AWS::AccountId>:stateMachine:{prefix}*]"
    )
    for function in (kizuna.programs.journey_helper, kizuna.delivery.send):
        acknowledge(
            _default_policy(cast(iam.Role, function.function.role)),
            finding,
            "states:StartExecution on the stack's journeys only (state machines named "
            f"{prefix}<program>): a cohort step starts the child executions of members who "
            "went another way. Naming each machine would make a cycle: every journey's "
            "definition names this function.",
        )


def _acknowledge_journey_timers(kizuna: Kizuna) -> None:
    """A cohort execution due later is started by a one-time schedule: the evaluate, journey
    and send functions create schedules in the journeys' group (named per execution, known
    only at run time), which run as a role that starts the journeys by their name prefix.
    Ingest creates an erasure's sweep there too (kizuna.domain.privacy)."""
    programs = kizuna.programs
    schedules = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
        f"<AWS::AccountId>:schedule/{programs.journey_schedule_group_name}/*]"
    )
    for function in (programs.evaluate, programs.journey_helper, kizuna.delivery.send):
        acknowledge(
            _default_policy(cast(iam.Role, function.function.role)),
            schedules,
            "scheduler:CreateSchedule in the journeys' own Scheduler group only: a cohort "
            "execution due later is started by a one-time schedule named after it (known "
            "only at run time), which deletes itself once it ran.",
        )
    acknowledge(
        _default_policy(cast(iam.Role, kizuna.ingest.function.role)),
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
        f"<AWS::AccountId>:schedule/{programs.journey_schedule_group_name}/"
        f"{SWEEP_NAME_PREFIX}*]",
        "scheduler:CreateSchedule of erasure sweeps only (erasure.<digest of the customer "
        "id>, known only at run time) in the journeys' Scheduler group: a one-time schedule "
        "that puts the erase request on ingest's queue again and deletes itself once it ran.",
    )
    prefix = programs.prefix
    acknowledge(
        _default_policy(programs.journey_scheduler_role),
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
        f"<AWS::AccountId>:stateMachine:{prefix}*]",
        "states:StartExecution on the stack's journeys only (state machines named "
        f"{prefix}<program>): the journey timers' schedules start cohort executions of any "
        "program for the journey and send functions, which may start them by the same "
        "prefix themselves; one statement keeps this policy the same size however many "
        "programs the stack holds.",
    )


def acknowledge_findings(kizuna: Kizuna) -> None:
    """Acknowledge, resource by resource, the findings Kizuna accepts by design."""
    customers = {"customers": kizuna.tables.customers}
    both = {**customers, "activity": kizuna.tables.activity}
    programs = kizuna.programs
    delivery = kizuna.delivery

    for function, index_tables in (
        (kizuna.ingest, both),
        (programs.evaluate, both),
        (programs.journey_helper, both),
        (programs.sweep, customers),
        (delivery.send, both),
        (delivery.unsubscribe, {}),
        (delivery.feedback, both),
        *([(delivery.line_webhook, {})] if delivery.line_webhook else []),
    ):
        _acknowledge_function(function, index_tables)
    _acknowledge_cohort_children(kizuna)
    _acknowledge_journey_timers(kizuna)

    # --- Journeys (Step Functions) ------------------------------------------------------
    journeys = _default_policy(programs.journey_role)
    _acknowledge_qualified_invoke(
        programs.journey_role, [delivery.send.function, programs.journey_helper.function]
    )
    acknowledge(
        journeys,
        "AwsSolutions-IAM5[Resource::*]",
        "Step Functions' CloudWatch Logs delivery (logs:CreateLogDelivery, "
        "PutResourcePolicy, DescribeLogGroups, ...) supports no resource-level permissions"
        + ("; so do X-Ray's PutTraceSegments/PutTelemetryRecords." if programs.tracing else "."),
    )
    if not programs.tracing:
        for machine in programs.state_machines.values():
            acknowledge(
                _resource(machine),
                "AwsSolutions-SF2",
                "X-Ray tracing is off by default (it costs per trace, and journeys wait for "
                "days); every transition is logged at level ALL. Kizuna(tracing=True) turns "
                "it on.",
            )

    # --- Schedules ------------------------------------------------------------------------
    _acknowledge_schedules(programs.sweep_schedules)
    _acknowledge_schedules(delivery.feedback.schedules)
    _acknowledge_scoring(kizuna.scoring, kizuna.tables.customers, kizuna.tables.analytics)
    _acknowledge_campaigns(kizuna.campaigns, kizuna)
    _acknowledge_api(kizuna.api, kizuna)
    acknowledge(
        _resource(kizuna.tables.analytics),
        "AwsSolutions-S1",
        "The analytics bucket holds only Kizuna's own scoring work files and snapshot "
        "export, written by one function whose calls CloudTrail records; server access logs "
        "would need a second bucket for no reader. Add them with your org's logging bucket.",
    )

    acknowledge(
        _resource(kizuna.tables.print_files),
        "AwsSolutions-S1",
        "The print-file bucket holds only the daily direct-mail CSVs Kizuna's sweep writes; "
        "reads are the vendor's role, which CloudTrail data events can record. Server access "
        "logs would need a second bucket: add them with your org's logging bucket.",
    )
    acknowledge(
        _default_policy(programs.sweep.role),
        f"AwsSolutions-IAM5[Resource::<{_logical_id(kizuna.tables.print_files)}.Arn>/dm/*]",
        "The sweep writes the day's direct-mail print files and manifests (keys named by "
        "date, program and template, known only at run time) under dm/ only.",
    )

    # --- Delivery -------------------------------------------------------------------------
    acknowledge(
        _resource(delivery.signing_secret),
        "AwsSolutions-SMG4",
        "The signing secret is the HMAC key of coupon codes and unsubscribe links already "
        "sent in emails; automatic rotation would break them. Rotate by hand, writing "
        '{"current": new, "previous": old}: the verifier accepts the previous key too.',
    )
    acknowledge(
        _resource(delivery.sms_policy),
        "AwsSolutions-IAM5[Resource::*]",
        "sns:Publish of an SMS goes to a phone number, which is not an IAM resource, and "
        "sns:CheckIfPhoneNumberIsOptedOut has no resource-level permissions: both need "
        "Resource '*'. This policy holds that one statement only.",
    )
    acknowledge(
        _resource(delivery.feedback.sms_opt_out_policy),
        "AwsSolutions-IAM5[Resource::*]",
        "sns:ListPhoneNumbersOptedOut supports no resource-level permissions. This policy "
        "holds that one statement only.",
    )
