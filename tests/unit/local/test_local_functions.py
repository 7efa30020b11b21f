"""Handlers run in-process as Lambda runs them (no AWS)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from kizuna_tools.local.cloud import fill_input_template
from kizuna_tools.local.functions import FunctionRunner, FunctionSpec


def spec(root: Path, code: str, env: dict[str, str] | None = None) -> FunctionSpec:
    folder = root / "functions" / "f"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(textwrap.dedent(code))
    (folder / "helper.py").write_text("VALUE = 'sibling module'\n")
    return FunctionSpec(
        logical_id="F",
        name="kizuna-F",
        arn="arn:aws:lambda:us-east-1:123456789012:function:kizuna-F",
        code_name="f",
        handler_path=folder / "handler.py",
        environment=env or {},
        memory_mb=512,
        timeout_seconds=30,
    )


def test_handler_sees_its_environment_and_context_then_environment_is_restored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TABLE", raising=False)
    runner = FunctionRunner(tmp_path)
    function = spec(
        tmp_path,
        """
        import os
        from helper import VALUE

        def handler(event, context):
            return {"table": os.environ["TABLE"], "region": os.environ["AWS_REGION"],
                    "name": context.function_name, "memory": context.memory_limit_in_mb,
                    "remaining": context.get_remaining_time_in_millis(),
                    "event": event, "helper": VALUE}
    """,
        {"TABLE": "customers"},
    )

    invocation = runner.invoke(function, {"x": 1})

    assert invocation.ok
    assert invocation.result["table"] == "customers"
    assert invocation.result["region"] == "us-east-1"
    assert invocation.result["name"] == "kizuna-F"
    assert invocation.result["memory"] == 512
    assert 0 < invocation.result["remaining"] <= 30_000
    assert invocation.result["helper"] == "sibling module"
    assert "TABLE" not in os.environ


def test_environment_overrides_apply_to_every_function(tmp_path: Path) -> None:
    runner = FunctionRunner(tmp_path, environment_overrides={"POWERTOOLS_LOG_LEVEL": "ERROR"})
    function = spec(
        tmp_path,
        """
        import os

        def handler(event, context):
            return [os.environ["POWERTOOLS_LOG_LEVEL"], os.environ["TABLE"]]
    """,
        {"TABLE": "t", "POWERTOOLS_LOG_LEVEL": "INFO"},
    )
    assert runner.invoke(function, {}).result == ["ERROR", "t"]


def test_handler_errors_become_lambda_error_payloads(tmp_path: Path) -> None:
    runner = FunctionRunner(tmp_path)
    function = spec(
        tmp_path,
        """
        def handler(event, context):
            raise KeyError("customer_id")
    """,
    )
    invocation = runner.invoke(function, {})
    assert not invocation.ok
    assert invocation.payload()["errorType"] == "KeyError"
    assert "customer_id" in invocation.payload()["errorMessage"]


def test_missing_handler_is_an_error_not_a_crash(tmp_path: Path) -> None:
    runner = FunctionRunner(tmp_path)
    function = FunctionSpec("G", "kizuna-G", "arn", "g", tmp_path / "functions/g/handler.py")
    invocation = runner.invoke(function, {})
    assert not invocation.ok
    assert invocation.payload()["errorType"] == "FileNotFoundError"


def test_input_template_fills_json_and_text() -> None:
    values = {"c": "cust-1", "n": 3, "d": {"a": 1}}
    assert fill_input_template('{"id": <c>, "n": <n>, "d": <d>, "s": "hi <c>!"}', values) == (
        '{"id": "cust-1", "n": 3, "d": {"a": 1}, "s": "hi cust-1!"}'
    )
    assert fill_input_template("customer <c> bought <n>", values) == "customer cust-1 bought 3"
