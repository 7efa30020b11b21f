"""Bus and archive, layers, stack outputs, and configuration from CDK context."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from infra_helpers import CONFIGURED_CONTEXT

from kizuna.runtime.config import KizunaConfig, load_config
from kizuna_infra import Kizuna, names
from kizuna_infra.layers import CopyPackageBundler, PipInstallBundler
from kizuna_infra.stack import KizunaStack, journey_output_id
from kizuna_tools.dlq import DLQ_OUTPUTS

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


# --- Bus ----------------------------------------------------------------------------------


def test_bus_is_named_kizuna(template: Template) -> None:
    buses = template.find_resources("AWS::Events::EventBus")
    assert [b["Properties"]["Name"] for b in buses.values()] == ["kizuna"]


# The archive and the bus policy: tests/infra/test_bus_security.py


# --- Layers -------------------------------------------------------------------------------


def test_three_layers_for_python313_arm64(template: Template) -> None:
    # dependencies and the kizuna package for every function, numpy for the score function
    layers = template.find_resources("AWS::Lambda::LayerVersion")
    assert len(layers) == 3
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_dependency_layer_pins_match_pyproject() -> None:
    # Given the runtime dependencies pinned in pyproject.toml
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {d for d in project["dependencies"] if "==" in d}
    # When reading the layer's requirements
    lines = (ROOT / "layers" / "requirements.txt").read_text().splitlines()
    requirements = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    # Then every layer pin is the one pyproject uses, and boto3 comes from the runtime
    assert requirements <= pinned
    assert not any(r.startswith(("boto3", "botocore")) for r in requirements)


def test_pip_bundler_installs_wheels_for_the_lambda_platform(tmp_path: Path) -> None:
    command = PipInstallBundler(ROOT / "layers" / "requirements.txt").command(str(tmp_path))
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    args = " ".join(command)
    assert "--platform manylinux2014_aarch64" in args
    assert "--implementation cp" in args
    assert "--python-version 3.13" in args
    assert "--only-binary=:all:" in args
    assert f"--target {tmp_path / 'python'}" in args


def test_package_bundler_copies_the_package_without_caches(tmp_path: Path) -> None:
    # Given a package with a bytecode cache
    package = tmp_path / "src" / "kizuna"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    out = tmp_path / "out"

    # When bundled
    assert CopyPackageBundler(package).try_bundle(str(out)) is True

    # Then the layer holds python/kizuna without the cache
    assert (out / "python" / "kizuna" / "__init__.py").exists()
    assert not (out / "python" / "kizuna" / "__pycache__").exists()


# --- Outputs and context --------------------------------------------------------------------


def test_outputs_for_producers_and_operators(
    template_json: dict[str, Any], stack: KizunaStack
) -> None:
    journeys = {journey_output_id(p.id) for p in stack.kizuna.programs.programs}
    assert set(template_json["Outputs"]) == {
        names.OUTPUT_BUS_NAME,
        names.OUTPUT_BUS_ARN,
        names.OUTPUT_CUSTOMERS_TABLE,
        names.OUTPUT_ACTIVITY_TABLE,
        names.OUTPUT_ANALYTICS_BUCKET,
        names.OUTPUT_INGEST_DLQ_URL,
        names.OUTPUT_EVALUATE_DLQ_URL,
        names.OUTPUT_FEEDBACK_DLQ_URL,
        names.OUTPUT_SWEEP_SCHEDULE_DLQ_URL,
        names.OUTPUT_FEEDBACK_SCHEDULE_DLQ_URL,
        names.OUTPUT_SCORING_SCHEDULE_DLQ_URL,
        names.OUTPUT_CAMPAIGN_SCHEDULE_DLQ_URL,
        names.OUTPUT_UNSUBSCRIBE_URL,
        names.OUTPUT_CONFIGURATION_SET,
        names.OUTPUT_SIGNING_SECRET_ARN,
        names.OUTPUT_CAMPAIGNS_TABLE,
        names.OUTPUT_CAMPAIGN_STATE_MACHINE_ARN,
        names.OUTPUT_CAMPAIGN_SCHEDULER_ROLE_ARN,
        names.OUTPUT_CAMPAIGN_SCHEDULE_GROUP,
        names.OUTPUT_CAMPAIGN_SCHEDULE_DLQ_ARN,
        names.OUTPUT_DEPLOYED_CHANNELS,
        names.OUTPUT_JOURNEY_SCHEDULE_GROUP,
        names.OUTPUT_API_URL,
        names.OUTPUT_CONSOLE_URL,
        names.OUTPUT_USER_POOL_ID,
        names.OUTPUT_USER_POOL_CLIENT_ID,
        *journeys,
    }


def test_kizuna_dlq_reaches_every_dead_letter_queue_by_name(template_json: dict[str, Any]) -> None:
    # Given every dead-letter queue of the stack (queues', rules' and schedules')
    resources = template_json["Resources"]
    dead_letter_queues = {
        logical_id
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::SQS::Queue" and "DeadLetterQueue" in logical_id
    }
    # Then each is the output behind one of `kizuna dlq`'s queue names (list, show, redrive)
    outputs = template_json["Outputs"]
    named = {outputs[output]["Value"]["Ref"] for output in DLQ_OUTPUTS.values()}
    assert named == dead_letter_queues


def test_one_output_per_journey_with_its_state_machine_arn(
    template_json: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    # Given the first-purchase program's state machine
    machine = stack.kizuna.programs.state_machines["second-purchase-coupon"]
    # Then its ARN is an output named after the program
    output = template_json["Outputs"]["JourneySecondPurchaseCouponArn"]
    assert output["Value"] == {"Ref": logical_id(machine)}


def test_unsubscribe_url_and_configuration_set_outputs(
    template_json: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    delivery = stack.kizuna.delivery
    outputs = template_json["Outputs"]
    assert outputs[names.OUTPUT_UNSUBSCRIBE_URL]["Value"] == {
        "Fn::GetAtt": [logical_id(delivery.unsubscribe_url), "FunctionUrl"]
    }
    assert outputs[names.OUTPUT_CONFIGURATION_SET]["Value"] == {
        "Ref": logical_id(delivery.configuration_set)
    }


def test_cdk_json_declares_every_optional_context_key() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert context[names.CONTEXT_EMAIL_FROM_KEY] == names.DEFAULT_EMAIL_FROM
    for key in (
        names.CONTEXT_SES_IDENTITY_KEY,
        names.CONTEXT_PUSH_APPLICATION_ID_KEY,
        names.CONTEXT_LINE_TOKEN_SECRET_ARN_KEY,
        names.CONTEXT_SMS_SENDER_ID_KEY,
        names.CONTEXT_WEB_ACL_ARN_KEY,
    ):
        assert context[key] == "", key


def test_context_config_reaches_every_function_that_reads_it_as_json(
    configured: Template,
) -> None:
    configs = {
        f["Metadata"]["kizuna:function"]: f["Properties"]["Environment"]["Variables"].get(
            "KIZUNA_CONFIG"
        )
        for f in configured.find_resources("AWS::Lambda::Function").values()
    }
    readers = {"ingest", "evaluate", "journey", "sweep", "send", "score", "campaign", "api"}
    readers.add("unsubscribe")  # the preference page shows the configured topics
    for folder in readers:
        assert load_config(configs[folder]) == KizunaConfig.model_validate(
            CONFIGURED_CONTEXT[names.CONTEXT_CONFIG_KEY]
        )
    assert {folder for folder, config in configs.items() if config is not None} == readers


def test_daily_schedules_follow_the_configured_time_zone(configured: Template) -> None:
    schedules = configured.find_resources("AWS::Scheduler::Schedule").values()
    zones = {
        s["Metadata"]["kizuna:schedule"]: s["Properties"]["ScheduleExpressionTimezone"]
        for s in schedules
    }
    assert zones["sweep-daily"] == zones["sms-opt-outs"] == "Europe/London"


@pytest.mark.parametrize(
    "config",
    [
        {"contact": {"max_per_day": 0}},
        {"contact": {"default_time_zone": "Mars/Olympus_Mons"}},
        {"no_such_setting": True},
    ],
)
def test_invalid_config_fails_synthesis(config: dict[str, Any]) -> None:
    stack = cdk.Stack(cdk.App(context={"aws:cdk:bundling-stacks": []}), "Probe")
    with pytest.raises((ValueError, ZoneInfoNotFoundError)):
        Kizuna(stack, "Kizuna", config=config)


def test_context_bus_name(configured: Template) -> None:
    [bus] = configured.find_resources("AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == "shop-events"
