"""What every function, queue, rule and schedule shares; function code bundling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from infra_helpers import arn, as_list, of_type, role_of, statements_of
from pydantic_settings import BaseSettings

from kizuna.runtime import settings
from kizuna_infra.functions import RUNTIME, FunctionBundler, bundle_hash, function_code
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": settings.IngestSettings,
    "evaluate": settings.EvaluateSettings,
    "journey": settings.JourneySettings,
    "sweep": settings.SweepSettings,
    "send": settings.SendSettings,
    "feedback": settings.FeedbackSettings,
    "unsubscribe": settings.LinkSettings,  # unsubscribe and tracked links
    "score": settings.ScoreSettings,
    "campaign": settings.CampaignSettings,
    "api": settings.ApiSettings,
}
POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


@pytest.fixture(scope="module")
def functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every function of the template, by its kizuna:function folder."""
    found = of_type(resources, "AWS::Lambda::Function")
    by_folder = {f["Metadata"]["kizuna:function"]: f for f in found.values()}
    assert len(by_folder) == len(found), "two functions claim the same folder"
    return by_folder


def logical_of(resources: dict[str, Any], function: dict[str, Any]) -> str:
    [logical] = [k for k, r in resources.items() if r is function]
    return logical


def test_every_function_names_an_existing_handler_folder(
    functions: dict[str, dict[str, Any]],
) -> None:
    assert set(functions) == set(SETTINGS)
    for folder in functions:
        assert (ROOT / "functions" / folder).is_dir(), folder


def test_every_function_runs_python313_arm64_with_both_layers_and_its_own_logs(
    functions: dict[str, dict[str, Any]], resources: dict[str, Any], stack: KizunaStack
) -> None:
    for folder, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13", folder
        assert props["Architectures"] == ["arm64"], folder
        assert props["Handler"] == "handler.handler", folder
        # the score function also gets the scoring (numpy) layer: tests/infra/test_layers.py
        assert len(props["Layers"]) == (3 if folder == "score" else 2), folder
        assert props.get("TracingConfig", {"Mode": "PassThrough"}) == {"Mode": "PassThrough"}
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[log_group]["Properties"]["RetentionInDays"] == 30
        role = role_of(resources, logical_of(resources, function))
        assert "ManagedPolicyArns" not in resources[role]["Properties"], folder
        writes = [
            r
            for s in statements_of(resources, role)
            if "logs:PutLogEvents" in as_list(s["Action"])
            for r in as_list(s["Resource"])
        ]
        assert writes == [arn(log_group)], folder


def test_every_function_environment_is_exactly_its_settings_model(
    functions: dict[str, dict[str, Any]],
) -> None:
    # The handler parses its environment at cold start: every required field is set, and
    # nothing is set that the model does not read.
    for folder, function in functions.items():
        env = set(function["Properties"]["Environment"]["Variables"]) - POWERTOOLS
        fields = SETTINGS[folder].model_fields
        assert {n for n, f in fields.items() if f.is_required()} <= env, folder
        assert env <= set(fields), (folder, env - set(fields))


def test_every_queue_is_encrypted_and_refuses_plain_http(resources: dict[str, Any]) -> None:
    policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    for logical, queue in of_type(resources, "AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, logical
        denies = [
            s
            for p in policies
            if {"Ref": logical} in p["Properties"]["Queues"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
        ]
        assert {"Bool": {"aws:SecureTransport": "false"}} in [d["Condition"] for d in denies]


def test_every_consumed_queue_redrives_to_a_dlq_after_six_timeouts(
    resources: dict[str, Any],
) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert mappings
    for mapping in mappings:
        props = mapping["Properties"]
        queue = resources[props["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        function = resources[props["FunctionName"]["Ref"]]["Properties"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
        assert queue["VisibilityTimeout"] == 6 * function["Timeout"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_rule_target_retries_then_dead_letters(resources: dict[str, Any]) -> None:
    for logical, rule in of_type(resources, "AWS::Events::Rule").items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, logical
            assert "Arn" in target["DeadLetterConfig"], logical


def test_every_schedule_retries_dead_letters_and_is_named(resources: dict[str, Any]) -> None:
    schedules = of_type(resources, "AWS::Scheduler::Schedule")
    assert {s["Metadata"]["kizuna:schedule"] for s in schedules.values()} == {
        "sweep-daily",
        "sweep-hourly",
        "sms-opt-outs",
        "reconcile-sends",
        "scoring-daily",
    }
    for schedule in schedules.values():
        target = schedule["Properties"]["Target"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
        dlq = resources[target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]]
        assert dlq["Type"] == "AWS::SQS::Queue"
        assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_no_identity_policy_grants_every_action(resources: dict[str, Any]) -> None:
    for logical, policy in of_type(resources, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action, (logical, action)


# --- Bundling ---------------------------------------------------------------------------------


@pytest.fixture()
def source(tmp_path: Path) -> dict[str, Path]:
    function = tmp_path / "functions" / "send"
    programs = tmp_path / "programs"
    templates = tmp_path / "templates" / "p" / "t" / "ja"
    for folder in (function / "__pycache__", programs, templates):
        folder.mkdir(parents=True)
    (function / "handler.py").write_text("def handler(e, c): ...\n")
    (function / "__pycache__" / "handler.cpython-313.pyc").write_bytes(b"\0")
    (programs / "p.yaml").write_text("id: p\n")
    (templates / "email.subject.j2").write_text("Hello\n")
    return {
        "function": function,
        "programs": programs,
        "templates": tmp_path / "templates",
    }


def test_bundle_puts_programs_and_templates_next_to_the_handler(
    source: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    extras = {"programs": source["programs"], "templates": source["templates"]}
    assert FunctionBundler(source["function"], extras).try_bundle(str(out)) is True
    assert (out / "handler.py").is_file()
    assert (out / "programs" / "p.yaml").is_file()
    assert (out / "templates" / "p" / "t" / "ja" / "email.subject.j2").is_file()
    assert not (out / "__pycache__").exists()


def test_bundle_hash_follows_programs_and_templates(source: dict[str, Path]) -> None:
    extras = {"programs": source["programs"], "templates": source["templates"]}
    before = bundle_hash(source["function"], extras)
    # caches do not count
    (source["programs"] / "__pycache__").mkdir()
    (source["programs"] / "__pycache__" / "x.pyc").write_bytes(b"1")
    assert bundle_hash(source["function"], extras) == before
    # a program edit does
    (source["programs"] / "p.yaml").write_text("id: p\nenabled: false\n")
    after_program = bundle_hash(source["function"], extras)
    assert after_program != before
    # and so does a template edit, or a file moving between folders
    (source["templates"] / "p" / "t" / "ja" / "email.subject.j2").write_text("Hi\n")
    assert bundle_hash(source["function"], extras) != after_program
    assert bundle_hash(source["function"], {"programs": source["templates"]}) != bundle_hash(
        source["function"], {"templates": source["templates"]}
    )


def asset_key(make_app: Callable[..., cdk.App], code: lambda_.Code) -> str:
    stack = cdk.Stack(make_app(), "Code")
    lambda_.Function(stack, "Function", runtime=RUNTIME, handler="handler.handler", code=code)
    [function] = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    key: str = function["Properties"]["Code"]["S3Key"]
    return key


def test_asset_changes_when_a_program_changes(
    source: dict[str, Path], make_app: Callable[..., cdk.App]
) -> None:
    # Given a function bundled with programs/ (synthesized without running the bundling)
    root = source["function"].parents[1]
    extras = {"programs": source["programs"]}
    before = asset_key(make_app, function_code(root, "send", extras))
    assert asset_key(make_app, function_code(root, "send", extras)) == before
    # When a program changes, then the function's asset changes (and it is redeployed)
    (source["programs"] / "p.yaml").write_text("id: p\nenabled: false\n")
    assert asset_key(make_app, function_code(root, "send", extras)) != before


def test_missing_folders_fail_early(source: dict[str, Path]) -> None:
    root = source["function"].parents[1]
    with pytest.raises(FileNotFoundError, match="no function folder"):
        function_code(root, "nope")
    with pytest.raises(FileNotFoundError, match="no folder"):
        function_code(root, "send", {"programs": root / "missing"})
