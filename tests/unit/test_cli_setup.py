"""One configuration, found the same way by every command; a missing AWS setup is one line
saying what to set (exit code 2), not a botocore traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.cli import app
from kizuna_tools.demo import DEMO_CONFIG, DEMO_CONTEXT, simulation_config
from kizuna_tools.project import ConfigError, project_config

ROOT = Path(__file__).resolve().parents[2]
SILVER_AT_100 = {
    "loyalty": {
        "ranks": [{"name": "Bronze", "min_points": 0}, {"name": "Silver", "min_points": 100}]
    }
}


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory outside the checkout, no KIZUNA_CONFIG, no project root set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    monkeypatch.delenv("KIZUNA_PROJECT_ROOT", raising=False)
    return tmp_path


def test_the_checkout_configuration_is_cdk_json_and_the_local_stack_uses_it(
    elsewhere: Path,
) -> None:
    # Given no --config, no KIZUNA_CONFIG and no cdk.json around the working directory
    found = project_config()
    # Then the checkout's cdk.json is the configuration: what `cdk deploy` gives the functions,
    # what `kizuna local run|serve` synthesize the local stack with
    cdk_json = json.loads((ROOT / "cdk.json").read_text())["context"]["kizuna:config"]
    assert found.raw == cdk_json == DEMO_CONFIG
    # (the simulated shop's stack adds only its producer clock skew)
    assert DEMO_CONTEXT["kizuna:config"] == simulation_config(cdk_json)
    assert simulation_config(cdk_json).keys() - cdk_json.keys() <= {"event_time"}
    assert found.source == f"{ROOT / 'cdk.json'} (kizuna:config)"
    # and the sample shop's thresholds are in it (Silver at 100 rank points)
    assert [r.min_points for r in found.config.loyalty.ranks][:2] == [0, 100]


def test_the_resolution_order(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A project's cdk.json (nearest from the working directory) wins over the checkout's
    (elsewhere / "cdk.json").write_text(json.dumps({"context": {"kizuna:config": SILVER_AT_100}}))
    (elsewhere / "sub").mkdir()
    monkeypatch.chdir(elsewhere / "sub")
    assert project_config().raw == SILVER_AT_100
    # KIZUNA_CONFIG (the JSON, as the functions read it) wins over cdk.json
    monkeypatch.setenv("KIZUNA_CONFIG", json.dumps({"lifecycle": {"dormant_after_days": 99}}))
    assert project_config().config.lifecycle.dormant_after_days == 99
    # --config FILE wins over both
    file = elsewhere / "other.json"
    file.write_text("{}")
    assert project_config(file).config == KizunaConfig()
    assert project_config(file).source == f"--config {file}"
    # A cdk.json without kizuna:config means the defaults
    monkeypatch.delenv("KIZUNA_CONFIG")
    (elsewhere / "cdk.json").write_text(json.dumps({"context": {}}))
    assert project_config().source == "defaults"


def test_a_broken_configuration_is_one_line_naming_its_source(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZUNA_CONFIG", '{"loyalty": {"earn_rate": -1}}')
    with pytest.raises(ConfigError, match=r"^KIZUNA_CONFIG: not a valid Kizuna configuration"):
        project_config()
    orders = elsewhere / "orders.csv"
    orders.write_text("order_id\n")
    result = CliRunner().invoke(app, ["import", "orders", str(orders), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: configuration: KIZUNA_CONFIG: not a valid")
    assert "Traceback" not in result.output


@pytest.fixture
def no_aws(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No region, no credentials anywhere botocore looks (files, environment, IMDS)."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(elsewhere / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(elsewhere / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    orders = elsewhere / "orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,product_id,quantity,unit_price\n"
        "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000\n"
    )
    return orders


def test_no_region_is_one_line_saying_what_to_set(no_aws: Path) -> None:
    result = CliRunner().invoke(
        app, ["import", "orders", str(no_aws), "--customers-table", "c", "--activity-table", "a"]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: no AWS region: give --region or set AWS_REGION (or AWS_DEFAULT_REGION)"
    ]
    assert "Traceback" not in result.output and "NoRegionError" not in result.output


def test_no_credentials_is_one_line_saying_what_to_set(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    result = CliRunner().invoke(
        app, ["import", "orders", str(no_aws), "--customers-table", "c", "--activity-table", "a"]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: no AWS credentials: set AWS_PROFILE")
    assert "Traceback" not in result.output


def test_a_stack_that_does_not_exist_is_one_line_saying_what_to_check(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    import kizuna_tools.dlq

    # Given --stack naming no stack (a typo, or another region): CloudFormation's answer
    def describe_stacks(cloudformation: object, stack: str) -> dict[str, str]:
        raise ClientError(
            {
                "Error": {
                    "Code": "ValidationError",
                    "Message": f"Stack with id {stack} does not exist",
                }
            },
            "DescribeStacks",
        )

    monkeypatch.setattr(kizuna_tools.dlq, "stack_outputs", describe_stacks)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for command in (
        ["dlq", "list", "ingest", "--stack", "Kizna", "--region", "us-east-1"],
        ["customers", "export", "c1", "--stack", "Kizna", "--region", "us-east-1"],
    ):
        # When a command reads the stack's outputs
        result = CliRunner().invoke(app, command)
        # Then one line says so and what to check (exit code 2), not a botocore traceback
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.output
        assert errors[0].startswith("Error: Stack with id Kizna does not exist: check --stack")
        assert "Traceback" not in result.output


def test_an_order_import_counts_orders_apart_from_rows(elsewhere: Path) -> None:
    # Given one order of two lines (two CSV rows) and an order of one
    orders = elsewhere / "orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,product_id,quantity,unit_price\n"
        "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000\n"
        "o1,c1,2026-01-05T10:00:00+09:00,p2,1,500\n"
        "o2,c2,2026-01-06T10:00:00+09:00,p1,1,1000\n"
    )
    # When they are checked
    result = CliRunner().invoke(
        app,
        [
            *("import", "orders", str(orders), "--dry-run"),
            *("--customers-table", "c", "--activity-table", "a"),
        ],
        env={"COLUMNS": "200"},
    )
    # Then the table says 3 rows made 2 orders, none rejected: not "3 rows, 2 imported"
    assert result.exit_code == 0, result.output
    assert "orders imported" in result.output and "rows rejected" in result.output
    counts = next(line for line in result.output.splitlines() if "dry run" in line)
    assert counts.replace("│", " ").split() == ["3", "2", "0", "dry", "run"]
