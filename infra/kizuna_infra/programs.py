"""Programs: the YAML in ``programs/`` becomes journeys, the rule that starts them, and sweeps.

* Every program is loaded and validated at synth (templates included): one problem anywhere
  fails synthesis with the full list, before anything reaches AWS.
* One Step Functions **Standard** state machine per enabled program, named
  ``<prefix><program id>`` so the evaluate, journey and send functions can compute its ARN
  from the prefix; one execution carries a cohort of entries (kizuna.programs.cohorts).
* Evaluate: one bus rule whose pattern is a ``$or`` of every enabled program's trigger and
  goal (events that match no program never wake a Lambda) -> SQS (with DLQ) -> function.
* The journey helper function answers the state machines' branch and local-time questions.
* Journey timers: a cohort execution due later (a cohort evaluate starts, a child group the
  journey helper or send starts) is started at its instant by a one-time EventBridge
  Scheduler schedule in the journeys' own group, run as a role that may start the journeys
  only; what Scheduler cannot start goes to evaluate's dead-letter queue (alarmed;
  ``kizuna dlq redrive``).
* Sweep: scheduled triggers (dormancy risk, points expiry and birthdays daily; abandoned
  carts hourly), run by EventBridge Scheduler.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from aws_cdk import ArnFormat, Duration, Stack, TimeZone, Token
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from kizuna.adapters.dynamodb import SWEEP_WATERMARK_PK
from kizuna.adapters.scheduler import SWEEP_NAME_PREFIX
from kizuna.delivery.ledger import WITHHELD_STAMPS
from kizuna.delivery.templates import DEFAULT_LOCALE, Renderer
from kizuna.events import DERIVED_EVENT_TYPES
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.programs.compiler import SUBSTITUTIONS, compile_program
from kizuna.programs.loader import ProgramError, ProgramIssue, enabled, load_programs
from kizuna.programs.model import Program, SendStep
from kizuna.programs.sweeps import SweepKind
from kizuna.programs.winners import WINNER_PK
from kizuna.runtime.config import load_config
from kizuna.runtime.settings import (
    ENV_DEAD_LETTER_QUEUE_ARN,
    ENV_ERASURE_SWEEP_GROUP,
    ENV_ERASURE_SWEEP_ROLE_ARN,
    ENV_INGEST_QUEUE_ARN,
    ENV_JOURNEY_ARN_PREFIX,
    ENV_JOURNEY_FUNCTION_NAME,
    ENV_JOURNEY_SCHEDULE_DLQ_ARN,
    ENV_JOURNEY_SCHEDULE_GROUP,
    ENV_JOURNEY_SCHEDULER_ROLE_ARN,
    ENV_KIZUNA_CONFIG,
    ENV_PRINT_FILES_BUCKET,
    ENV_SEND_FUNCTION_NAME,
    KIZUNA_EVENT_SOURCE,
)
from kizuna.segments import load_segments
from kizuna_infra import names, schedules
from kizuna_infra.functions import (
    DEFAULT_LOG_RETENTION,
    KizunaFunction,
    Wiring,
)
from kizuna_infra.queues import DEFAULT_MAX_RECEIVE_COUNT, QueuedFunction
from kizuna_infra.schedules import (
    ASYNC_MAX_EVENT_AGE,
    ASYNC_RETRY_ATTEMPTS,
    DEFAULT_TIME_ZONE,
    ScheduledInvocations,
    scheduler_role,
)
from kizuna_infra.states import standard_state_machine, state_machine_log_group

EVALUATE_TIMEOUT = Duration.seconds(30)
SWEEP_TIMEOUT = Duration.minutes(5)
# EventBridge's default quota on an event pattern is 2,048 characters; a pattern that
# outgrows it is split over several rules to the same queue.
MAX_PATTERN_CHARS = 2048
DAILY_SWEEP = {
    "kinds": [
        SweepKind.DORMANCY.value,
        SweepKind.POINTS.value,
        SweepKind.BIRTHDAYS.value,
        SweepKind.ANNIVERSARIES.value,
        SweepKind.COUPONS.value,
    ],
    "lookback_minutes": 1440,
    "winners": True,  # the splits' winner rules, looked at once a day
    "direct_mail": True,  # the previous day's direct-mail print files
}
HOURLY_SWEEP = {"kinds": [SweepKind.CARTS.value], "lookback_minutes": 60}


# --- Loading ---------------------------------------------------------------------------------


# Channels every stack sends on (kizuna.runtime.wiring.delivery): push needs an End User
# Messaging Push application, LINE a channel access token, a webhook the configuration's
# endpoints.
def undeployed_sends(programs: Sequence[Program], deployed: Collection[str]) -> list[str]:
    """Each send step none of whose channels the stack deploys: every message of it would
    be suppressed (``no_channel``, ``channel_not_configured``), which synthesis warns of."""
    return [
        f"program {program.id}, step {step.id}: none of its channels "
        f"({', '.join(map(str, step.channels))}) is deployed in this stack (push needs "
        f"{names.CONTEXT_PUSH_APPLICATION_ID_KEY}, LINE {names.CONTEXT_LINE_TOKEN_SECRET_ARN_KEY} "
        f"or {names.CONTEXT_LINE_TOKEN_PARAMETER_KEY}, a webhook the configuration's "
        f"webhooks): every message of it would be suppressed, no_channel"
        for program in programs
        for step in program.steps
        if isinstance(step, SendStep) and not set(map(str, step.channels)) & set(deployed)
    ]


class InvalidProgramsError(ProgramError):
    """Programs that cannot be deployed; the message lists every issue."""

    def __init__(self, directory: Path, issues: list[ProgramIssue]) -> None:
        super().__init__(issues)
        lines = "\n".join(f"  - {issue}" for issue in issues)
        self.args = (f"{len(issues)} problem(s) with the programs in {directory}:\n{lines}",)


def load_enabled_programs(
    programs_dir: Path,
    templates_dir: Path,
    segments_dir: Path | None = None,
    vocab: Vocabulary = BUILTIN,
    webhooks: Collection[str] | None = None,
    default_locale: str = DEFAULT_LOCALE,
) -> list[Program]:
    """The enabled programs; raises :class:`InvalidProgramsError` listing every issue of every
    program (enabled or not), missing message templates and unknown segments included.
    ``vocab``: the configuration's declared attributes and events, which programs and
    segments may name (a custom event's trigger goes into the evaluate rule like any other)."""
    if not programs_dir.is_dir():
        raise FileNotFoundError(f"no programs folder {programs_dir}")
    segment_names: list[str] = []
    if segments_dir is not None and segments_dir.is_dir():
        segment_names = list(load_segments(segments_dir, vocab))
    programs, issues = load_programs(
        programs_dir,
        templates=Renderer(templates_dir, default_locale=default_locale),
        segment_names=segment_names,
        vocab=vocab,
        webhooks=webhooks,
    )
    if issues:
        raise InvalidProgramsError(programs_dir, issues)
    return enabled(programs)


# --- Names -----------------------------------------------------------------------------------


def state_machine_prefix(stack: Stack) -> str:
    """``<stack name, at most 32 characters>-``: deterministic, so every journey's ARN is
    ``JOURNEY_ARN_PREFIX + program id`` (a program id has at most 40 characters; a state
    machine name at most 80)."""
    if Token.is_unresolved(stack.stack_name):
        raise ValueError("Kizuna needs a stack with a concrete name to name its journeys")
    return f"{stack.stack_name[: names.STATE_MACHINE_PREFIX_STACK_CHARS]}-"


def journey_schedule_group_name(stack: Stack) -> str:
    """``<stack name>-journeys``, the stack name cut so the whole fits Scheduler's 64."""
    return schedules.schedule_group_name(
        stack, names.JOURNEY_SCHEDULE_GROUP_SUFFIX, names.JOURNEY_SCHEDULE_GROUP_MAX_LENGTH
    )


# --- Evaluate rule pattern ---------------------------------------------------------------------


def event_clause(event: str, conditions: Mapping[str, Any]) -> dict[str, Any]:
    """One ``$or`` clause: Kizuna's own derived events come from source ``kizuna``, anything
    else (orders, behaviour) from producers."""
    source: list[Any] = (
        [KIZUNA_EVENT_SOURCE]
        if event in DERIVED_EVENT_TYPES
        else [{"anything-but": [KIZUNA_EVENT_SOURCE]}]
    )
    clause: dict[str, Any] = {"source": source, "detail-type": [event]}
    if conditions:
        clause["detail"] = dict(conditions)
    return clause


def trigger_clauses(programs: Iterable[Program]) -> list[dict[str, Any]]:
    """Every program's trigger, then every goal; each distinct clause once, in that order."""
    programs = list(programs)
    clauses = [event_clause(p.trigger.event, p.trigger.conditions) for p in programs]
    clauses += [event_clause(p.goal.event, p.goal.conditions) for p in programs if p.goal]
    unique = dict.fromkeys(json.dumps(c, sort_keys=True) for c in clauses)
    return [json.loads(c) for c in unique]


def _size(pattern: Mapping[str, Any]) -> int:
    return len(json.dumps(pattern, separators=(",", ":")))


def evaluate_patterns(
    programs: Iterable[Program], *, max_chars: int = MAX_PATTERN_CHARS
) -> list[dict[str, Any]]:
    """``{"$or": [...]}`` patterns covering every clause, each within ``max_chars``."""
    patterns: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    for clause in trigger_clauses(programs):
        if current and _size({"$or": [*current, clause]}) > max_chars:
            patterns.append({"$or": current})
            current = []
        if _size({"$or": [clause]}) > max_chars:
            raise ValueError(f"an event pattern clause is over {max_chars} characters: {clause}")
        current.append(clause)
    if current:
        patterns.append({"$or": current})
    return patterns


# --- Constructs --------------------------------------------------------------------------------


class Evaluate(QueuedFunction):
    """Bus rule(s) -> SQS (with DLQ) -> evaluate function, which starts journeys."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        programs: list[Program],
        journey_arn_prefix: str,
        wiring: Wiring,
        data_dirs: dict[str, Path],
        max_receive_count: int,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            folder=names.EVALUATE_FUNCTION_NAME,
            description="Kizuna evaluate: start journeys of programs whose trigger matches",
            environment=wiring.environment(
                {
                    ENV_JOURNEY_ARN_PREFIX: journey_arn_prefix,
                },
            ),
            extras=data_dirs,
            timeout=EVALUATE_TIMEOUT,
            max_receive_count=max_receive_count,
            **wiring.shared,
        )
        for n, pattern in enumerate(evaluate_patterns(programs)):
            rule = self.add_rule(
                names.EVALUATE_RULE_ID if n == 0 else f"{names.EVALUATE_RULE_ID}{n + 1}",
                bus=wiring.bus,
                description="Events that start or convert a Kizuna program, to the evaluate queue",
                # Replaced below on the L1 resource: an L2 pattern has no top-level $or.
                event_pattern=events.EventPattern(detail_type=list(DERIVED_EVENT_TYPES)),
            )
            cast(events.CfnRule, rule.node.default_child).event_pattern = pattern

        wiring.tables.customers.grant_read_data(self.function)
        wiring.tables.activity.grant_read_write_data(self.function)
        wiring.bus.grant_put_events_to(self.function)


class Programs(Construct):
    """Journeys (one state machine per enabled program), evaluate, journey helper, journey
    timers (a Scheduler group and the role its schedules run as), sweeps.

    ``send_function`` is the delivery construct's send function, which every Send step of
    every journey invokes; like evaluate and the journey helper it starts cohort
    executions, so it gets the journey timers' environment and grants too.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        send_function: lambda_.Function,
        programs_dir: Path | None = None,
        templates_dir: Path | None = None,
        segments_dir: Path | None = None,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        schedule_time_zone: TimeZone = DEFAULT_TIME_ZONE,
    ) -> None:
        super().__init__(scope, construct_id)
        source_root = wiring.shared["source_root"]
        tracing = wiring.shared.get("tracing", False)
        log_retention = wiring.shared.get("log_retention", DEFAULT_LOG_RETENTION)
        programs_dir = programs_dir or source_root / names.PROGRAMS_DIR
        templates_dir = templates_dir or source_root / names.TEMPLATES_DIR
        segments_dir = segments_dir or source_root / names.SEGMENTS_DIR
        deployed = load_config(wiring.config_json)
        self.programs = load_enabled_programs(
            programs_dir,
            templates_dir,
            segments_dir,
            wiring.vocabulary(),
            webhooks=tuple(deployed.webhooks),
            default_locale=deployed.contact.default_locale,
        )
        # what evaluate and the journey helper read: programs, and named segments if any
        data_dirs = {names.PROGRAMS_DIR: programs_dir}
        if segments_dir.is_dir():
            data_dirs[names.SEGMENTS_DIR] = segments_dir
        self.tracing = tracing
        stack = Stack.of(self)
        self.prefix = state_machine_prefix(stack)
        self.journey_arn_prefix = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.prefix,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        # --- Journey helper (a cohort's branches, splits, local times) ---------------
        self.journey_helper = KizunaFunction(
            self,
            names.JOURNEY_CONSTRUCT_ID,
            folder=names.JOURNEY_FUNCTION_NAME,
            description="Kizuna journey helper: cohort branches, splits, local times",
            environment={
                **wiring.tables.environment,
                ENV_KIZUNA_CONFIG: wiring.config_json,
                ENV_JOURNEY_ARN_PREFIX: self.journey_arn_prefix,
            },
            extras=data_dirs,
            **wiring.shared,
        )
        wiring.tables.customers.grant_read_data(self.journey_helper.function)
        # members move between groups, child groups and decisions are written
        wiring.tables.activity.grant_read_write_data(self.journey_helper.function)
        # The journey and send functions start child executions of the cohorts (by the
        # journeys' name prefix: naming the machines would make a cycle, as every machine
        # names both functions).
        send_function.add_environment(ENV_JOURNEY_ARN_PREFIX, self.journey_arn_prefix)
        start_children = iam.PolicyStatement(
            actions=["states:StartExecution"], resources=[f"{self.journey_arn_prefix}*"]
        )
        for function in (self.journey_helper.function, send_function):
            function.add_to_role_policy(start_children)

        # --- Journeys: one Standard state machine per enabled program ----------------------
        journeys = Construct(self, names.JOURNEYS_CONSTRUCT_ID)
        self.journey_role = iam.Role(
            journeys,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Kizuna journeys (one state machine per program)",
        )
        send_function.grant_invoke(self.journey_role)
        self.journey_helper.function.grant_invoke(self.journey_role)
        substitutions = {
            "SendFunctionArn": send_function.function_arn,
            "JourneyFunctionArn": self.journey_helper.function.function_arn,
        }
        if set(substitutions) != set(SUBSTITUTIONS):
            raise RuntimeError(f"the compiler's placeholders changed: {SUBSTITUTIONS}")

        self.state_machines: dict[str, sfn.StateMachine] = {}
        self.journey_log_groups: dict[str, logs.LogGroup] = {}
        for program in self.programs:
            name = f"{self.prefix}{program.id}"
            program_scope = Construct(journeys, program.id)
            log_group = state_machine_log_group(
                program_scope,
                "LogGroup",
                name=name,
                retention=log_retention,
            )
            machine = standard_state_machine(
                program_scope,
                names.STATE_MACHINE_ID,
                log_group=log_group,
                tracing=tracing,
                state_machine_name=name,
                comment=f"Kizuna program {program.id}",
                definition_body=sfn.DefinitionBody.from_string(
                    json.dumps(compile_program(program))
                ),
                definition_substitutions=substitutions,
                role=self.journey_role,
            )
            cfn_machine = cast(sfn.CfnStateMachine, machine.node.default_child)
            cfn_machine.add_metadata(names.PROGRAM_METADATA_KEY, program.id)
            self.state_machines[program.id] = machine
            self.journey_log_groups[program.id] = log_group

        # --- Evaluate -------------------------------------------------------------------
        self.evaluate = Evaluate(
            self,
            names.EVALUATE_CONSTRUCT_ID,
            programs=self.programs,
            journey_arn_prefix=self.journey_arn_prefix,
            wiring=wiring,
            data_dirs=data_dirs,
            max_receive_count=max_receive_count,
        )
        for machine in self.state_machines.values():
            machine.grant_start_execution(self.evaluate.function)
        # at_once programs: evaluate invokes their entry segments asynchronously; Lambda
        # retries a failed one twice, then keeps it in evaluate's dead-letter queue, with
        # the error (alarmed; `kizuna dlq redrive` invokes it again)
        if any(p.start == "at_once" for p in self.programs):
            for function, env in (
                (send_function, ENV_SEND_FUNCTION_NAME),
                (self.journey_helper.function, ENV_JOURNEY_FUNCTION_NAME),
            ):
                self.evaluate.function.add_environment(env, function.function_name)
                # the function itself (grant_invoke would add its versions: `<arn>:*`)
                self.evaluate.function.add_to_role_policy(
                    iam.PolicyStatement(
                        actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                    )
                )
                function.configure_async_invoke(
                    max_event_age=ASYNC_MAX_EVENT_AGE,
                    retry_attempts=ASYNC_RETRY_ATTEMPTS,
                    on_failure=destinations.SqsDestination(self.evaluate.dead_letter_queue),
                )

        # --- Journey timers: one-time schedules starting executions due later ---------------
        self._journey_timers(
            stack,
            starters=[self.evaluate.function, self.journey_helper.function, send_function],
            start_journeys=start_children,
        )

        # --- Sweeps ----------------------------------------------------------------------
        self.sweep = KizunaFunction(
            self,
            names.SWEEP_CONSTRUCT_ID,
            folder=names.SWEEP_FUNCTION_NAME,
            description="Kizuna sweep: scheduled triggers (dormancy, points, carts, birthdays, "
            "coupons), split winners",
            environment=wiring.environment(
                {ENV_PRINT_FILES_BUCKET: wiring.tables.print_files.bucket_name}
            ),
            extras=data_dirs,  # the programs: their splits' winner rules
            timeout=SWEEP_TIMEOUT,
            **wiring.shared,
        )
        wiring.tables.customers.grant_read_data(self.sweep.function)  # the table and its indexes
        wiring.bus.grant_put_events_to(self.sweep.function)
        # its watermarks (SWEEP# partitions) and the splits' winners (PROGRAM# partitions):
        # activity items there, and nothing else of the table
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"],
                resources=[wiring.tables.activity.table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [f"{SWEEP_WATERMARK_PK}*", f"{WINNER_PK}*"]
                    }
                },
            )
        )
        # the activity table's gsi1: what a winner rule counts (a program's ledger rows, one
        # Query), unused coupons by expiry (COUPONS#<shard> partitions), members by start
        # date (ANNIV#<MM-DD>#<shard>) and points lots by the time earned (LOTS#<shard>)
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{wiring.tables.activity.table_arn}/index/{names.ACTIVITY_GSI1}"],
            )
        )

        # a direct mail withheld from the print file: its ledger entry's two stamps, nothing
        # else of the table (a conditional UpdateItem naming only these attributes)
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[wiring.tables.activity.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(WITHHELD_STAMPS)},
                    "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
                },
            )
        )

        # direct mail's print files: read (the manifest of a re-run) and write under dm/
        # only, with the key's encrypt/decrypt; the day's rows are a Query of gsi1 (above)
        # (reading a missing manifest needs the bucket's List: NoSuchKey, not AccessDenied)
        bucket = wiring.tables.print_files
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{names.DM_PREFIX}*")],
            )
        )
        # (no s3:prefix condition: a GetObject's implied List check carries no prefix)
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        self.sweep.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[wiring.tables.print_files_key.key_arn],
            )
        )

        self.sweep_schedules = ScheduledInvocations(
            self.sweep, "Schedules", function=self.sweep.function
        )
        self.sweep_schedules.add(
            names.SWEEP_DAILY_SCHEDULE_ID,
            name=names.SWEEP_DAILY_SCHEDULE_NAME,
            expression=scheduler.ScheduleExpression.expression(
                "cron(0 1 * * ? *)", schedule_time_zone
            ),
            payload=DAILY_SWEEP,
            description="Daily sweep: dormancy risk, points expiring, birthdays, coupons "
            "expiring, yesterday's direct-mail print files",
        )
        self.sweep_schedules.add(
            names.SWEEP_HOURLY_SCHEDULE_ID,
            name=names.SWEEP_HOURLY_SCHEDULE_NAME,
            expression=scheduler.ScheduleExpression.rate(Duration.hours(1)),
            payload=HOURLY_SWEEP,
            description="Hourly sweep: abandoned carts",
        )

    def _journey_timers(
        self,
        stack: Stack,
        *,
        starters: list[lambda_.Function],
        start_journeys: iam.PolicyStatement,
    ) -> None:
        """The journeys' Scheduler group and the role its schedules run as; ``starters``
        (evaluate, journey helper, send) create a one-time schedule there for a cohort
        execution due later, which Scheduler starts at that instant (its universal target
        ``aws-sdk:sfn:startExecution``) or dead-letters to evaluate's DLQ."""
        timers = Construct(self, names.JOURNEY_TIMERS_CONSTRUCT_ID)
        self.journey_schedule_group_name = journey_schedule_group_name(stack)
        self.journey_schedule_group, self.journey_schedule_group_arn = schedules.schedule_group(
            timers, names.JOURNEY_SCHEDULE_GROUP_ID, stack, self.journey_schedule_group_name
        )
        # Only schedules of this account's journey group may assume the role; it may start
        # the stack's journeys (by their name prefix, as the journey and send functions
        # do) and dead-letter to evaluate's DLQ, nothing else.
        self.journey_scheduler_role = scheduler_role(
            timers,
            description="EventBridge Scheduler starting journey executions due later",
            schedule_group_arn=self.journey_schedule_group_arn,
        )
        self.journey_scheduler_role.add_to_principal_policy(start_journeys)
        dead_letters = self.evaluate.dead_letter_queue
        iam.Grant.add_to_principal(
            grantee=self.journey_scheduler_role,
            actions=["sqs:SendMessage"],
            resource_arns=[dead_letters.queue_arn],
        )
        if dead_letters.encryption_master_key is not None:  # a customer managed key
            dead_letters.encryption_master_key.grant(
                self.journey_scheduler_role, "kms:Decrypt", "kms:GenerateDataKey"
            )

        # The functions: schedules in the journeys' group only, run as that role only.
        create_schedules = iam.PolicyStatement(
            actions=["scheduler:CreateSchedule"], resources=[self.journey_schedules_arn(stack)]
        )
        for function in starters:
            function.add_environment(ENV_JOURNEY_SCHEDULE_GROUP, self.journey_schedule_group.ref)
            function.add_environment(
                ENV_JOURNEY_SCHEDULER_ROLE_ARN, self.journey_scheduler_role.role_arn
            )
            function.add_environment(ENV_JOURNEY_SCHEDULE_DLQ_ARN, dead_letters.queue_arn)
            function.add_to_role_policy(create_schedules)
            self.journey_scheduler_role.grant_pass_role(function.grant_principal)

    def add_erasure_sweeps(
        self, function: lambda_.Function, queue: sqs.IQueue, dead_letters: sqs.IQueue
    ) -> None:
        """Ingest (``function``, consuming ``queue``) schedules each erasure's sweep
        (kizuna.domain.privacy) in the journeys' group: a one-time schedule named
        ``erasure.<digest>``, run as a role of its own that may only put a message on
        ``queue`` or dead-letter it to ``dead_letters`` (both SQS-managed encrypted: no key
        grant). Ingest may create schedules so named only, and pass that role only."""
        stack = Stack.of(self)
        sweeps = Construct(self, names.ERASURE_SWEEPS_CONSTRUCT_ID)
        self.erasure_sweep_role = scheduler_role(
            sweeps,
            description="EventBridge Scheduler putting an erasure's sweep on the ingest queue",
            schedule_group_arn=self.journey_schedule_group_arn,
        )
        iam.Grant.add_to_principal(
            grantee=self.erasure_sweep_role,
            actions=["sqs:SendMessage"],
            resource_arns=[queue.queue_arn, dead_letters.queue_arn],
        )
        function.add_environment(ENV_ERASURE_SWEEP_GROUP, self.journey_schedule_group.ref)
        function.add_environment(ENV_ERASURE_SWEEP_ROLE_ARN, self.erasure_sweep_role.role_arn)
        function.add_environment(ENV_INGEST_QUEUE_ARN, queue.queue_arn)
        function.add_environment(ENV_DEAD_LETTER_QUEUE_ARN, dead_letters.queue_arn)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["scheduler:CreateSchedule"],
                resources=[
                    stack.format_arn(
                        service="scheduler",
                        resource="schedule",
                        resource_name=(f"{self.journey_schedule_group_name}/{SWEEP_NAME_PREFIX}*"),
                    )
                ],
            )
        )
        self.erasure_sweep_role.grant_pass_role(function.grant_principal)

    def journey_schedules_arn(self, stack: Stack) -> str:
        """Every schedule of the journeys' Scheduler group."""
        return stack.format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.journey_schedule_group_name}/*",
        )

    @property
    def functions(self) -> list[lambda_.Function]:
        return [self.evaluate.function, self.journey_helper.function, self.sweep.function]
