"""Bus and archive, layers, stack outputs, and configuration from CDK context."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kizuna_infra import names
from kizuna_infra.layers import CopyPackageBundler, PipInstallBundler
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


# --- Bus ----------------------------------------------------------------------------------


def test_bus_is_named_kizuna(template: Template) -> None:
    buses = template.find_resources("AWS::Events::EventBus")
    assert [b["Properties"]["Name"] for b in buses.values()] == ["kizuna"]


def test_archive_keeps_every_event_on_the_bus_for_thirty_days(
    template: Template, stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    [archive] = template.find_resources("AWS::Events::Archive").values()
    props = archive["Properties"]
    assert props["SourceArn"] == {"Fn::GetAtt": [logical_id(stack.kizuna.bus.bus), "Arn"]}
    assert props["RetentionDays"] == 30
    assert "EventPattern" not in props  # no pattern: everything is archived


# --- Layers -------------------------------------------------------------------------------


def test_two_layers_for_python313_arm64(template: Template) -> None:
    layers = template.find_resources("AWS::Lambda::LayerVersion")
    assert len(layers) == 2
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


def test_outputs_for_producers_and_operators(template_json: dict[str, Any]) -> None:
    assert set(template_json["Outputs"]) == {
        names.OUTPUT_BUS_NAME,
        names.OUTPUT_BUS_ARN,
        names.OUTPUT_CUSTOMERS_TABLE,
        names.OUTPUT_ACTIVITY_TABLE,
        names.OUTPUT_IDEMPOTENCY_TABLE,
        names.OUTPUT_INGEST_DLQ_URL,
    }


@pytest.fixture(scope="module")
def configured(make_app: Callable[..., cdk.App]) -> Template:
    """A stack configured through cdk.json-style context."""
    app = make_app(
        {
            names.CONTEXT_CONFIG_KEY: {"timezone": "Asia/Tokyo", "ranks": ["Silver", "Gold"]},
            names.CONTEXT_BUS_NAME_KEY: "shop-events",
        }
    )
    return Template.from_stack(KizunaStack(app))


def test_context_config_reaches_the_function_as_json(configured: Template) -> None:
    [function] = configured.find_resources("AWS::Lambda::Function").values()
    config = function["Properties"]["Environment"]["Variables"]["KIZUNA_CONFIG"]
    assert json.loads(config) == {"timezone": "Asia/Tokyo", "ranks": ["Silver", "Gold"]}


def test_context_bus_name(configured: Template) -> None:
    [bus] = configured.find_resources("AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == "shop-events"
