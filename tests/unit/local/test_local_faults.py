"""``--faults``: the spec's syntax, its refusals, and the draws it makes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from kizuna_tools.local.faults import KINDS, FaultInjector, FaultPlan, FaultSpecError


def test_the_most_specific_target_applies() -> None:
    plan = FaultPlan.parse(
        "dynamodb=0.1,sesv2=0.1,dynamodb.TransactWriteItems=0.2:after,*=0.01,kinds=throttle+after"
    )
    transact = plan.rule_for("dynamodb", "TransactWriteItems")
    assert transact is not None and (transact.rate, transact.kinds) == (0.2, ("after",))
    put = plan.rule_for("dynamodb", "PutItem")
    assert put is not None and (put.rate, put.kinds) == (0.1, None)
    other = plan.rule_for("lambda", "Invoke")
    assert other is not None and other.target == "*" and other.rate == 0.01
    assert plan.default_kinds == ("throttle", "after")
    assert plan.seed == 0


def test_seed_comes_from_the_spec_or_the_run() -> None:
    assert FaultPlan.parse("sqs=0.5", seed=42).seed == 42
    assert FaultPlan.parse("sqs=0.5,seed=7", seed=42).seed == 7
    assert "seed=7" in FaultPlan.parse("sqs=0.5,seed=7").describe()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty fault spec"),
        ("dynamodb", "expected TARGET=RATE"),
        ("dynamodb=", "expected TARGET=RATE"),
        ("dynamodb=1.5", "rate must be a number in [0, 1]"),
        ("dynamodb=-0.1", "rate must be a number in [0, 1]"),
        ("dynamodb=nan", "rate must be a number in [0, 1]"),
        ("dynamodb=lots", "rate must be a number in [0, 1]"),
        ("dynamo=0.1", "no AWS service 'dynamo'"),
        ("dynamodb.PutThing=0.1", "dynamodb has no operation 'PutThing'"),
        ("dynamodb.=0.1", "expected service.Operation"),
        ("*.PutItem=0.1", "expected service.Operation"),
        ("dynamodb=0.1:explode", "unknown fault kind 'explode'"),
        ("dynamodb=0.1:throttle+throttle", "a kind is named twice"),
        ("dynamodb=0.1:duplicate", "'duplicate' does not apply to dynamodb"),
        ("sqs.SendMessage=0.1:duplicate", "'duplicate' does not apply to sqs.SendMessage"),
        ("dynamodb=0.1,dynamodb=0.2", "dynamodb is given twice"),
        ("kinds=throttle", "names no TARGET=RATE"),
        ("dynamodb=0.1,kinds=", "expected TARGET=RATE"),
        ("dynamodb=0.1,kinds=throttle,kinds=after", "kinds= is given twice"),
        ("dynamodb=0.1,seed=x", "the seed must be an integer"),
    ],
)
def test_malformed_specs_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        FaultPlan.parse(spec)
    assert message in str(caught.value)


def test_draws_follow_the_rate_and_are_repeatable() -> None:
    plan = FaultPlan.parse("dynamodb=0.1,seed=3")

    def run() -> list[str | None]:
        injector = FaultInjector(plan)
        return [injector.draw("dynamodb", "PutItem") for _ in range(5000)]

    first = run()
    assert first == run()  # same seed, same calls: same faults
    faulted = [k for k in first if k is not None]
    assert 400 < len(faulted) < 600  # 10% of 5,000
    # every call kind comes up (duplicate does not apply to a DynamoDB call)
    assert set(faulted) == {"throttle", "error", "after", "timeout"}
    other = FaultInjector(FaultPlan.parse("dynamodb=0.1,seed=4"))
    assert [other.draw("dynamodb", "PutItem") for _ in range(5000)] != first


def test_an_untargeted_service_and_a_zero_rate_get_nothing() -> None:
    injector = FaultInjector(FaultPlan.parse("dynamodb=0,sesv2=1"))
    assert all(injector.draw("dynamodb", "PutItem") is None for _ in range(200))
    assert all(injector.draw("sqs", "SendMessage") is None for _ in range(200))
    assert all(injector.draw("sesv2", "SendEmail") is not None for _ in range(200))
    summary = injector.summary()
    assert summary["total"] == 200 and set(summary["by_target"]) == {"sesv2.SendEmail"}


def test_duplicates_are_drawn_apart_from_the_calls() -> None:
    injector = FaultInjector(FaultPlan.parse("sqs=1:duplicate,events=0.5"))
    assert injector.duplicate("sqs")
    assert injector.draw("sqs", "SendMessage") is None  # only duplicates asked for sqs
    drawn = [injector.duplicate("events") for _ in range(400)]
    assert 150 < sum(drawn) < 250
    assert injector.counts[("events.PutEvents", "duplicate")] == sum(drawn)


def test_throttle_and_error_refuse_before_the_call() -> None:
    injector = FaultInjector(FaultPlan.parse("dynamodb=1:throttle,lambda=1:error"))
    context: dict[str, Any] = {}
    refused = injector.before_call("dynamodb", "TransactWriteItems", "https://x", context)
    assert refused is not None
    http, parsed = refused
    assert http.status_code == 400 and parsed["Error"]["Code"] == "ThrottlingException"
    refused = injector.before_call("dynamodb", "PutItem", "https://x", context)
    assert refused is not None
    assert refused[1]["Error"]["Code"] == "ProvisionedThroughputExceededException"
    refused = injector.before_call("lambda", "Invoke", "https://x", context)
    assert refused is not None
    assert refused[0].status_code == 500 and refused[1]["Error"]["Code"] == "ServiceException"
    assert context == {}


class _Http:
    def __init__(self) -> None:
        self.status_code = 200
        self.url = "https://dynamodb.us-east-1.amazonaws.com/"


def test_after_turns_a_call_that_took_effect_into_a_5xx() -> None:
    injector = FaultInjector(FaultPlan.parse("dynamodb=1:after"))
    context: dict[str, Any] = {}
    assert injector.before_call("dynamodb", "PutItem", "https://x", context) is None
    http = _Http()
    parsed: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 200}}
    injector.after_call(http, parsed, context)
    assert http.status_code == 500
    assert parsed["Error"]["Code"] == "InternalServerError"
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_timeout_loses_the_answer_of_a_call_that_took_effect() -> None:
    injector = FaultInjector(FaultPlan.parse("sesv2=1:timeout"))
    context: dict[str, Any] = {}
    assert injector.before_call("sesv2", "SendEmail", "https://x", context) is None
    with pytest.raises(ReadTimeoutError):
        injector.after_call(_Http(), {}, context)


def test_a_call_that_failed_by_itself_is_left_alone() -> None:
    injector = FaultInjector(FaultPlan.parse("dynamodb=1:after"))
    context: dict[str, Any] = {}
    injector.before_call("dynamodb", "PutItem", "https://x", context)
    http = _Http()
    http.status_code = 400
    parsed: dict[str, Any] = {"Error": {"Code": "ConditionalCheckFailedException"}}
    injector.after_call(http, parsed, context)
    assert http.status_code == 400 and parsed["Error"]["Code"] == "ConditionalCheckFailedException"


def test_every_kind_is_documented_in_the_module() -> None:
    from kizuna_tools.local import faults

    assert all(f"``{kind}``" in (faults.__doc__ or "") for kind in KINDS)


def test_the_cli_refuses_a_malformed_spec_before_running_anything() -> None:
    from typer.testing import CliRunner

    from kizuna_tools.cli import app

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["local", "run", *args])
        return result.exit_code, " ".join(result.output.replace("│", " ").split())

    code, output = run("--faults", "dynamodb=2")
    assert code == 2 and "rate must be a number in [0, 1]" in output
    code, output = run("--reference")
    assert code == 2 and "--reference compares with a --faults run" in output
