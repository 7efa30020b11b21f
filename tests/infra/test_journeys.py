"""Programs: journeys (one state machine per program), the evaluate rule, and the sweeps."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from infra_helpers import (
    StackIds,
    actions_of,
    arn,
    as_list,
    environment,
    function_statements,
    index_arn,
    iter_resources,
    of_type,
    qualified_arn,
    resources_for,
    statements_of,
)
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

from kizuna.delivery.deployed import deployed_channels
from kizuna.delivery.templates import Renderer
from kizuna.programs.compiler import SUBSTITUTIONS, compile_program
from kizuna.programs.loader import load_programs
from kizuna.runtime.settings import EvaluateSettings, JourneySettings, SweepSettings
from kizuna.services.sweep import SweepRequest
from kizuna_infra import Kizuna
from kizuna_infra.programs import (
    InvalidProgramsError,
    evaluate_patterns,
    load_enabled_programs,
    state_machine_prefix,
    trigger_clauses,
    undeployed_sends,
)
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
LogicalId = Callable[[Any], str]


class Ids(StackIds):
    def __init__(self, stack: KizunaStack, logical_id: LogicalId) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        p = k.programs
        self.prefix = p.prefix
        self.machines = {pid: logical_id(m) for pid, m in p.state_machines.items()}
        self.journey_role = logical_id(p.journey_role)
        self.journey_log_groups = {pid: logical_id(g) for pid, g in p.journey_log_groups.items()}
        self.evaluate = logical_id(p.evaluate.function)
        self.evaluate_queue = logical_id(p.evaluate.queue)
        self.evaluate_dlq = logical_id(p.evaluate.dead_letter_queue)
        self.evaluate_rules = [logical_id(r) for r in p.evaluate.rules]
        self.journey = logical_id(p.journey_helper.function)
        self.sweep = logical_id(p.sweep.function)
        self.sweep_dlq = logical_id(p.sweep_schedules.dead_letter_queue)
        self.sweep_scheduler_role = logical_id(p.sweep_schedules.role)
        self.send = logical_id(k.delivery.send.function)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: LogicalId) -> Ids:
    return Ids(stack, logical_id)


@pytest.fixture(scope="module")
def repo_programs() -> dict[str, Any]:
    programs, issues = load_programs(ROOT / "programs", templates=Renderer(ROOT / "templates"))
    assert issues == []
    return {p.id: p for p in programs if p.enabled}


# --- Journeys -------------------------------------------------------------------------------


def test_one_standard_state_machine_per_enabled_program(
    resources: dict[str, Any], repo_programs: dict[str, Any], ids: Ids
) -> None:
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    journeys = [m for m in machines.values() if "kizuna:program" in m.get("Metadata", {})]
    assert {m["Metadata"]["kizuna:program"] for m in journeys} == set(repo_programs)
    assert len(repo_programs) == 7  # the seed programs
    for program_id, logical in ids.machines.items():
        props = machines[logical]["Properties"]
        assert props["StateMachineType"] == "STANDARD"
        assert props["StateMachineName"] == f"{ids.prefix}{program_id}"
        assert machines[logical]["Metadata"] == {"kizuna:program": program_id}


def test_state_machine_names_are_derived_from_the_stack_name(
    ids: Ids, make_app: Callable[..., cdk.App]
) -> None:
    assert ids.prefix == "Kizuna-"
    # A long stack name is cut: the longest program id (40 characters) still fits the
    # 80-character limit of a state machine name, and the prefix stays deterministic.
    long = cdk.Stack(make_app(), "Shop-" + "x" * 60)
    assert state_machine_prefix(long) == "Shop-" + "x" * 27 + "-"
    assert len(state_machine_prefix(long)) + 40 <= 80


def test_definitions_are_the_compiled_programs_with_substitutions(
    resources: dict[str, Any], repo_programs: dict[str, Any], ids: Ids
) -> None:
    for program_id, logical in ids.machines.items():
        props = resources[logical]["Properties"]
        assert json.loads(props["DefinitionString"]) == compile_program(repo_programs[program_id])
        assert props["DefinitionSubstitutions"] == {
            "SendFunctionArn": arn(ids.send),
            "JourneyFunctionArn": arn(ids.journey),
        }
        assert set(props["DefinitionSubstitutions"]) == set(SUBSTITUTIONS)


def test_journeys_log_every_transition_without_execution_data(
    resources: dict[str, Any], ids: Ids
) -> None:
    for program_id, logical in ids.machines.items():
        props = resources[logical]["Properties"]
        assert props["LoggingConfiguration"] == {
            "Level": "ALL",
            "IncludeExecutionData": False,
            "Destinations": [
                {"CloudWatchLogsLogGroup": {"LogGroupArn": arn(ids.journey_log_groups[program_id])}}
            ],
        }
        # tracing is off by default
        assert props.get("TracingConfiguration", {"Enabled": False}) == {"Enabled": False}
        group = resources[ids.journey_log_groups[program_id]]["Properties"]
        assert group["LogGroupName"] == f"/aws/vendedlogs/states/{ids.prefix}{program_id}"
        assert group["RetentionInDays"] == 30


def test_journey_role_invokes_send_and_journey_only(resources: dict[str, Any], ids: Ids) -> None:
    statements = statements_of(resources, ids.journey_role)
    assert sorted(map(json.dumps, resources_for(statements, "lambda:InvokeFunction"))) == sorted(
        map(
            json.dumps,
            [arn(ids.send), qualified_arn(ids.send), arn(ids.journey), qualified_arn(ids.journey)],
        )
    )
    # every step is a function over a group of the cohort: the machine reads no table
    assert not {a for a in actions_of(statements) if a.startswith("dynamodb:")}


# --- Evaluate rule ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluate_pattern(resources: dict[str, Any], ids: Ids) -> dict[str, Any]:
    [rule] = ids.evaluate_rules
    pattern: dict[str, Any] = resources[rule]["Properties"]["EventPattern"]
    return pattern


def event(source: str, detail_type: str, **detail: Any) -> EventMessageType:
    return {"source": source, "detail-type": detail_type, "detail": detail}


def test_evaluate_rule_is_an_or_of_triggers_and_goals(evaluate_pattern: dict[str, Any]) -> None:
    assert set(evaluate_pattern) == {"$or"}
    clauses = evaluate_pattern["$or"]
    # the second-purchase program's trigger (derived: from Kizuna itself)
    assert {"source": ["kizuna"], "detail-type": ["customer.first_purchase"]} in clauses
    # the order.placed goal (inbound: from producers, never from Kizuna)
    assert {"source": [{"anything-but": ["kizuna"]}], "detail-type": ["order.placed"]} in clauses
    # conditions become the clause's detail
    assert {
        "source": ["kizuna"],
        "detail-type": ["customer.segment_changed"],
        "detail": {"to_segment": ["Champions"]},
    } in clauses
    # each clause once
    assert len({json.dumps(c, sort_keys=True) for c in clauses}) == len(clauses)


def test_evaluate_rule_matches_program_events_only(evaluate_pattern: dict[str, Any]) -> None:
    # Given the synthesized pattern, evaluated by moto's EventBridge matcher
    pattern = EventPattern.load(json.dumps(evaluate_pattern))
    # Then triggers and goals match, from the right source, with their conditions
    assert pattern.matches_event(event("kizuna", "customer.first_purchase", customer_id="c1"))
    assert pattern.matches_event(event("shop", "order.placed", customer_id="c1"))
    assert pattern.matches_event(
        event("kizuna", "customer.segment_changed", to_segment="Champions")
    )
    assert pattern.matches_event(event("kizuna", "customer.rank_changed", direction="up"))
    # and nothing else wakes the evaluate function
    assert not pattern.matches_event(event("shop", "order.cancelled", customer_id="c1"))
    assert not pattern.matches_event(event("shop", "customer.first_purchase", customer_id="c1"))
    assert not pattern.matches_event(event("kizuna", "order.placed", customer_id="c1"))
    assert not pattern.matches_event(event("kizuna", "customer.segment_changed", to_segment="Lost"))
    assert not pattern.matches_event(event("kizuna", "customer.rank_changed", direction="down"))


def test_evaluate_rule_feeds_the_queue_with_retries_and_dlq(
    resources: dict[str, Any], ids: Ids
) -> None:
    [rule] = ids.evaluate_rules
    props = resources[rule]["Properties"]
    assert props["EventBusName"] == {"Ref": ids.bus}
    assert props["Targets"] == [
        {
            "Id": "Target0",
            "Arn": arn(ids.evaluate_queue),
            "DeadLetterConfig": {"Arn": arn(ids.evaluate_dlq)},
            "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
        }
    ]
    queue = resources[ids.evaluate_queue]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": arn(ids.evaluate_dlq),
        "maxReceiveCount": 5,
    }


def test_patterns_split_over_rules_when_too_long(repo_programs: dict[str, Any]) -> None:
    # Given a budget far below the real pattern's size
    programs = list(repo_programs.values())
    patterns = evaluate_patterns(programs, max_chars=300)
    # Then every clause is in exactly one pattern, and each pattern fits the budget
    assert len(patterns) > 1
    assert [c for p in patterns for c in p["$or"]] == trigger_clauses(programs)
    assert all(len(json.dumps(p, separators=(",", ":"))) <= 300 for p in patterns)
    # And the real pattern fits EventBridge's default 2,048-character quota in one rule
    assert len(evaluate_patterns(programs)) == 1


# --- Evaluate function --------------------------------------------------------------------------


def test_evaluate_environment_satisfies_its_settings(resources: dict[str, Any], ids: Ids) -> None:
    env = environment(resources, ids.evaluate)
    assert {n for n, f in EvaluateSettings.model_fields.items() if f.is_required()} <= set(env)
    assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": ids.evaluate_dlq}
    assert env["MAX_RECEIVE_COUNT"] == "5"


def test_journey_arn_prefix_plus_program_id_is_the_state_machine_arn(
    resources: dict[str, Any], ids: Ids
) -> None:
    prefix = environment(resources, ids.evaluate)["JOURNEY_ARN_PREFIX"]
    assert prefix == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":states:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":stateMachine:{ids.prefix}",
            ],
        ]
    }


def test_evaluate_may_start_the_journeys_and_nothing_else(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.evaluate)
    started = resources_for(statements, "states:StartExecution")
    assert sorted(map(json.dumps, started)) == sorted(
        json.dumps({"Ref": m}) for m in ids.machines.values()
    )
    assert {a for a in actions_of(statements) if a.startswith("states:")} == {
        "states:StartExecution"
    }
    assert "*" not in list(iter_resources(statements))


def test_evaluate_grants(resources: dict[str, Any], ids: Ids) -> None:
    statements = function_statements(resources, ids.evaluate)
    assert arn(ids.customers) in resources_for(statements, "dynamodb:GetItem")
    assert resources_for(statements, "dynamodb:PutItem") == [
        arn(ids.activity),
        index_arn(ids.activity),
    ]
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids.evaluate_dlq)]


# --- Journey helper and sweep -------------------------------------------------------------------


def test_journey_helper_reads_customers_writes_activity_and_starts_child_groups(
    resources: dict[str, Any], ids: Ids
) -> None:
    env = environment(resources, ids.journey)
    assert {n for n, f in JourneySettings.model_fields.items() if f.is_required()} <= set(env)
    assert "stateMachine:Kizuna-" in json.dumps(env["JOURNEY_ARN_PREFIX"])
    statements = function_statements(resources, ids.journey)
    # customers: read only; activity: members move between groups, decisions are written
    writes = {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"}
    assert writes <= set(actions_of(statements))
    for action in writes:
        assert json.dumps(arn(ids.customers)) not in map(
            json.dumps, resources_for(statements, action)
        )
    # child executions of the stack's journeys, nothing else of Step Functions
    states = [s for s in statements if any(a.startswith("states:") for a in as_list(s["Action"]))]
    assert len(states) == 1 and as_list(states[0]["Action"]) == ["states:StartExecution"]
    assert json.dumps(states[0]["Resource"]).endswith(':stateMachine:Kizuna-*"]]}')


def test_sweep_queries_the_customer_indexes_and_puts_events(
    resources: dict[str, Any], ids: Ids
) -> None:
    env = environment(resources, ids.sweep)
    assert {n for n, f in SweepSettings.model_fields.items() if f.is_required()} <= set(env)
    statements = function_statements(resources, ids.sweep)
    # the customers' indexes, and the activity table's gsi1 alone (a program's ledger rows
    # for split winners; unused coupons by expiry)
    assert resources_for(statements, "dynamodb:Query") == [
        arn(ids.customers),
        index_arn(ids.customers),
        {"Fn::Join": ["", [arn(ids.activity), "/index/gsi1"]]},
    ]
    # its only writes: its watermarks and the splits' winners, activity items whose key
    # starts with SWEEP# or PROGRAM#
    (own,) = [s for s in statements if "dynamodb:PutItem" in as_list(s["Action"])]
    assert sorted(as_list(own["Action"])) == [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    ]
    assert own["Resource"] == arn(ids.activity)
    assert own["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SWEEP#*", "PROGRAM#*"]}
    }
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]


def test_sweep_writes_direct_mail_print_files_under_dm_only(
    resources: dict[str, Any], ids: Ids, stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    tables = stack.kizuna.tables
    bucket, key = logical_id(tables.print_files), logical_id(tables.print_files_key)
    env = environment(resources, ids.sweep)
    assert env["PRINT_FILES_BUCKET"] == {"Ref": bucket}
    statements = function_statements(resources, ids.sweep)
    dm_objects = {"Fn::Join": ["", [arn(bucket), "/dm/*"]]}
    assert resources_for(statements, "s3:GetObject") == [dm_objects]
    assert resources_for(statements, "s3:PutObject") == [dm_objects]
    # listing (so a missing manifest reads as NoSuchKey, not AccessDenied): this bucket only
    assert resources_for(statements, "s3:ListBucket") == [arn(bucket)]
    assert resources_for(statements, "kms:GenerateDataKey") == [arn(key)]
    assert resources_for(statements, "kms:Decrypt") == [arn(key)]
    # nothing else of the bucket: no delete, no other prefix
    s3_actions = {a for s in statements for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    # a withheld row's ledger entry: an UpdateItem naming only the keys, the channel, the
    # stamp and the reason (no other attribute of any item, nothing returned)
    (stamp,) = [s for s in statements if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert as_list(stamp["Action"]) == ["dynamodb:UpdateItem"]
    assert stamp["Resource"] == arn(ids.activity)
    assert stamp["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:Attributes": ["pk", "sk", "channel", "withheld_at", "not_delivered_reason"]
        },
        "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]},
    }


@pytest.fixture(scope="module")
def sweep_schedules(resources: dict[str, Any], ids: Ids) -> dict[str, Any]:
    return {
        s["Metadata"]["kizuna:schedule"]: s["Properties"]
        for s in of_type(resources, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == arn(ids.sweep)
    }


def test_daily_and_hourly_sweeps(sweep_schedules: dict[str, Any]) -> None:
    daily, hourly = sweep_schedules["sweep-daily"], sweep_schedules["sweep-hourly"]
    assert daily["ScheduleExpression"] == "cron(0 1 * * ? *)"
    assert daily["ScheduleExpressionTimezone"] == "Asia/Tokyo"
    assert json.loads(daily["Target"]["Input"]) == {
        "kinds": ["dormancy", "points_expiry", "birthdays", "anniversaries", "coupons"],
        "lookback_minutes": 1440,
        "winners": True,
        "direct_mail": True,
    }
    assert hourly["ScheduleExpression"] == "rate(1 hour)"
    assert json.loads(hourly["Target"]["Input"]) == {"kinds": ["carts"], "lookback_minutes": 60}
    # the handler parses both inputs
    for schedule in (daily, hourly):
        SweepRequest.model_validate_json(schedule["Target"]["Input"])


def test_sweep_schedules_retry_then_dead_letter(
    sweep_schedules: dict[str, Any], resources: dict[str, Any], ids: Ids
) -> None:
    for schedule in sweep_schedules.values():
        target = schedule["Target"]
        assert target["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": 3600,
            "MaximumRetryAttempts": 10,
        }
        assert target["DeadLetterConfig"] == {"Arn": arn(ids.sweep_dlq)}
        assert target["RoleArn"] == arn(ids.sweep_scheduler_role)
    # Scheduler may invoke the sweep and dead-letter, nothing else
    statements = statements_of(resources, ids.sweep_scheduler_role)
    assert actions_of(statements) == {"lambda:InvokeFunction", "sqs:SendMessage"}
    assert resources_for(statements, "sqs:SendMessage") == [arn(ids.sweep_dlq)]
    trust = resources[ids.sweep_scheduler_role]["Properties"]["AssumeRolePolicyDocument"]
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_sweep_failures_land_in_the_same_dlq(resources: dict[str, Any], ids: Ids) -> None:
    [config] = [
        c["Properties"]
        for c in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": ids.sweep}
    ]
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": arn(ids.sweep_dlq)}}
    assert config["MaximumRetryAttempts"] == 2


# --- Validation at synth ------------------------------------------------------------------------


@pytest.fixture()
def broken_programs(tmp_path: Path) -> Path:
    """The seed programs, one of them sending a template that does not exist."""
    programs = tmp_path / "programs"
    shutil.copytree(ROOT / "programs", programs)
    path = programs / "second-purchase-coupon.yaml"
    path.write_text(path.read_text().replace("template: coupon", "template: no_such_template"))
    return programs


def test_missing_template_lists_every_issue(broken_programs: Path) -> None:
    with pytest.raises(InvalidProgramsError) as raised:
        load_enabled_programs(broken_programs, ROOT / "templates")
    message = str(raised.value)
    assert "second-purchase-coupon.yaml" in message
    assert "no_such_template" in message
    assert message.count("\n  - ") == len(raised.value.issues) > 1


def test_invalid_programs_fail_synthesis(
    broken_programs: Path, make_app: Callable[..., cdk.App]
) -> None:
    stack = cdk.Stack(make_app(), "Broken")
    with pytest.raises(InvalidProgramsError, match="no_such_template"):
        Kizuna(stack, "Kizuna", programs_dir=broken_programs)


def test_a_send_step_with_no_deployed_channel_is_warned_of_at_synthesis(
    tmp_path: Path, make_app: Callable[..., cdk.App]
) -> None:
    # given the seed programs with one step that sends on LINE only, in a stack without a
    # LINE token (and without a push application)
    programs = tmp_path / "programs"
    shutil.copytree(ROOT / "programs", programs)
    path = programs / "points-to-next-rank.yaml"
    text = path.read_text()
    (channels,) = {line.split("channels:")[1] for line in text.splitlines() if "channels:" in line}
    path.write_text(text.replace(f"channels:{channels}", "channels: [line]"))
    stack = cdk.Stack(make_app(), "LineOnly")
    # when synthesized
    Kizuna(stack, "Kizuna", programs_dir=programs)
    # then synthesis warns of it: every message of the step would be suppressed
    (warning,) = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("none of its channels")
    )
    message = str(warning.entry.data)
    assert "program points-to-next-rank, step" in message
    assert "(line) is deployed in this stack" in message and "kizuna:lineTokenSecretArn" in message
    # and the same program with LINE deployed, or the seed programs, give no warning
    deployed = deployed_channels(push=False, line=True, webhook=False)
    assert undeployed_sends(load_enabled_programs(programs, ROOT / "templates"), deployed) == []
    seeds = load_enabled_programs(ROOT / "programs", ROOT / "templates")
    assert undeployed_sends(seeds, deployed_channels(push=False, line=False, webhook=False)) == []


def test_every_program_issue_is_reported_not_only_the_first(tmp_path: Path) -> None:
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / "a.yaml").write_text("id: a\nname: A\n")
    (programs / "b.yaml").write_text("not: [valid")
    with pytest.raises(InvalidProgramsError) as raised:
        load_enabled_programs(programs, ROOT / "templates")
    files = {Path(issue.file).name for issue in raised.value.issues}
    assert files == {"a.yaml", "b.yaml"}
    assert all(str(issue) in str(raised.value) for issue in raised.value.issues)


def test_a_content_folder_replaces_the_checkouts_programs_templates_and_segments(
    tmp_path: Path, make_app: Callable[..., cdk.App]
) -> None:
    # Given a shop's own folder (as `kizuna migrate pinpoint` writes one) with one program,
    # its templates and one segment
    content = tmp_path / "shop"
    (content / "programs").mkdir(parents=True)
    shutil.copy(ROOT / "programs" / "rank-up-congratulations.yaml", content / "programs")
    shutil.copytree(ROOT / "templates", content / "templates")
    (content / "segments").mkdir()
    shutil.copy(ROOT / "segments" / "champions.yaml", content / "segments")

    # When the stack is synthesized with context kizuna:contentDir
    stack = KizunaStack(make_app({"kizuna:contentDir": str(content)}))

    # Then its journeys are that folder's programs, not the checkout's
    programs = stack.kizuna.programs
    assert [p.id for p in programs.programs] == ["rank-up-congratulations"]
    resources = Template.from_stack(stack).to_json()["Resources"]
    machines = list(of_type(resources, "AWS::StepFunctions::StateMachine").values())
    journeys = [m for m in machines if "rank-up" in json.dumps(m["Properties"])]
    assert journeys, "the folder's program has its state machine"
    assert not [m for m in machines if "second-purchase" in json.dumps(m["Properties"])]
