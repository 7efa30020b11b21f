"""Each function ships what it runs: numpy in the score function's layer only, no tooling in
the ``kizuna`` layer, and handler modules that import nothing heavy they do not need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kizuna_infra import names
from kizuna_infra.layers import CopyPackageBundler, PipInstallBundler
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ROOT / names.LAYERS_DIR
FUNCTIONS = ROOT / names.FUNCTIONS_DIR
# Tooling that moved to tools/kizuna_tools and must never be shipped again.
TOOLING = ("kizuna_tools", "cli", "local", "reports", "demo", "simulation", "importer", "fakes")


def requirements(file: str) -> set[str]:
    lines = (LAYERS / file).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def layer_refs(resources: dict[str, Any]) -> dict[str, list[str]]:
    """Every function's layers (logical ids), by its ``kizuna:function`` folder."""
    return {
        r["Metadata"][names.FUNCTION_METADATA_KEY]: [
            ref["Ref"] for ref in r["Properties"]["Layers"]
        ]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and names.FUNCTION_METADATA_KEY in r["Metadata"]
    }


# --- Which function gets which layer --------------------------------------------------------


def test_only_the_score_function_has_the_scoring_layer(
    resources: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    # Given the synthesized stack's three layers
    layers = stack.kizuna.layers
    scoring = logical_id(layers.scoring_dependencies)
    common = [logical_id(layers.dependencies), logical_id(layers.kizuna)]
    # When reading every function's layers
    by_function = layer_refs(resources)
    # Then the score function has the scoring layer beside the common two; no other has it
    assert set(by_function) >= {"score", "send", "ingest", "evaluate"}
    assert sorted(by_function.pop("score")) == sorted([*common, scoring])
    for folder, refs in by_function.items():
        assert refs == common, folder


def test_scoring_layer_is_built_from_its_own_requirements(
    resources: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    layer = resources[logical_id(stack.kizuna.layers.scoring_dependencies)]
    assert names.SCORING_REQUIREMENTS_FILE in layer["Properties"]["Description"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    command = PipInstallBundler(LAYERS / names.SCORING_REQUIREMENTS_FILE).command("/tmp/x")
    assert command[-2:] == ["-r", str(LAYERS / names.SCORING_REQUIREMENTS_FILE)]


# --- What the layers hold -------------------------------------------------------------------


def test_dependency_layer_has_no_numpy_and_the_scoring_layer_only_numpy() -> None:
    common = requirements(names.LAYER_REQUIREMENTS_FILE)
    scoring = requirements(names.SCORING_REQUIREMENTS_FILE)
    assert not any(r.lower().startswith("numpy") for r in common)
    assert [r.split("==")[0] for r in scoring] == ["numpy"]


def test_every_layer_pin_is_the_one_pyproject_uses() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {d for d in project["dependencies"] if "==" in d}
    for file in (names.LAYER_REQUIREMENTS_FILE, names.SCORING_REQUIREMENTS_FILE):
        assert requirements(file) <= pinned, file
        assert not any(r.startswith(("boto3", "botocore")) for r in requirements(file)), file


def test_kizuna_layer_asset_holds_the_runtime_package_and_no_tooling(tmp_path: Path) -> None:
    # Given the kizuna layer's bundler, run into a temporary asset directory
    CopyPackageBundler(ROOT / names.KIZUNA_PACKAGE_DIR).try_bundle(str(tmp_path))
    # When listing what it holds
    python = tmp_path / "python"
    top = sorted(p.name for p in python.iterdir())
    modules = {p.relative_to(python).with_suffix("").parts for p in python.rglob("*.py")}
    # Then only the kizuna package, with its runtime parts and none of the tooling
    assert top == ["kizuna"]
    assert ("kizuna", "runtime", "wiring") in modules
    assert ("kizuna", "scoring", "rfm") in modules
    for parts in modules:
        assert not set(parts) & set(TOOLING), parts
    assert not list(python.rglob("__pycache__"))


# --- What a handler imports at cold start ----------------------------------------------------

PROBE = """
import json, sys
import handler
heavy = ("kizuna_tools", "numpy", "jinja2", "boto3", "yaml", "typer", "rich", "moto")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""

ALLOWED = {"score": {"numpy"}, "send": {"jinja2"}}


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in FUNCTIONS.glob("*/handler.py")))
def test_handler_import_loads_only_what_its_function_needs(folder: str) -> None:
    # Given a fresh interpreter with the function folder and the layer on sys.path, as Lambda
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(FUNCTIONS / folder), str(LAYERS)])
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # When importing its handler module
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=FUNCTIONS / folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # Then no tooling, no boto3 (clients are built on the first invocation), and numpy or
    # jinja2 only where the function itself needs them
    loaded = set(json.loads(done.stdout))
    assert loaded <= ALLOWED.get(folder, set()), f"{folder} imports {sorted(loaded)}"


# Third-party modules the Lambda runtime itself provides (python3.13 managed runtime).
RUNTIME_PROVIDED = {"boto3", "botocore"}


def imported_top_level(package: Path) -> set[str]:
    """Top-level names of every module the package imports, anywhere in its files."""
    import ast

    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_third_party_import_of_the_runtime_package_is_in_a_layer() -> None:
    """A module the runtime package imports but no layer installs fails only on AWS (the
    local runtime and the tests run in the venv, which has everything): PyYAML was missing
    although evaluate, journey and send parse the bundled programs/ and segments/ YAML."""
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()

    def norm(name: str) -> str:
        return name.lower().replace("_", "-")

    shipped = {
        norm(line.split("==")[0].split("[")[0])
        for file in (names.LAYER_REQUIREMENTS_FILE, "requirements-scoring.txt")
        for line in requirements(file)
    }
    third_party = {
        name
        for name in imported_top_level(ROOT / names.KIZUNA_PACKAGE_DIR)
        if name not in sys.stdlib_module_names and name not in {"kizuna", "__future__"}
    }
    missing = {
        name: distributions.get(name, [name])
        for name in third_party - RUNTIME_PROVIDED
        if not {norm(d) for d in distributions.get(name, [name])} & shipped
    }
    assert not missing, f"imported by layers/kizuna but in no layer: {missing}"
