"""``kizuna scoring run``: the daily scoring job on demand, locally or on a deployed stack."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from kizuna_tools.cli.options import Aws, option_groups

scoring_app = typer.Typer(help="The daily RFM scoring job.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

# In the scoring state machine's logical id (CDK: <stack construct>ScoringStateMachine<hash>,
# from names.SCORING_CONSTRUCT_ID and names.SCORING_STATE_MACHINE_ID).
SCORING_MACHINE_ID = "ScoringStateMachine"


@scoring_app.callback()
def _scoring() -> None:
    """The daily RFM scoring job."""


def scoring_state_machine(cloudformation: Any, stack: str) -> str:
    """The ARN of a deployed stack's scoring state machine (what its schedule starts)."""
    found = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page.get("StackResourceSummaries", []):
            if (
                resource["ResourceType"] == "AWS::StepFunctions::StateMachine"
                and SCORING_MACHINE_ID in resource["LogicalResourceId"]
            ):
                found.append(str(resource["PhysicalResourceId"]))
    if len(found) != 1:
        raise typer.BadParameter(
            f"stack {stack} has {len(found)} scoring state machines", param_hint="--stack"
        )
    return found[0]


@scoring_app.command("run")
@option_groups
def scoring_run(
    aws: Aws,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="score as of this ISO instant or date (not after now, or the local virtual "
            "clock); default now, as the daily schedule does"
        ),
    ] = None,
    stack: Annotated[
        str | None, typer.Option(help="a deployed stack: start its scoring state machine")
    ] = None,
    local: Annotated[
        str | None,
        typer.Option(
            help="the local server of `kizuna local serve` (e.g. http://127.0.0.1:8080)",
            envvar="KIZUNA_LOCAL_URL",
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="wait for the run to finish")] = True,
) -> None:
    """Run the daily scoring job now: what the schedule starts (the scoring state machine),
    with ``{"as_of": ...}`` as its input."""
    from kizuna_tools.cli.local import _instant, local_call

    if (stack is None) == (local is None):
        raise typer.BadParameter("give one of --stack NAME or --local URL")
    instant = _instant(as_of, "--as-of")
    if local is not None:
        body = {"as_of": instant.isoformat()} if instant else {}
        result = local_call(local, "POST", "/_local/scoring", body)
    else:
        assert stack is not None
        if instant is not None and instant > datetime.now(UTC):
            raise typer.BadParameter("must not be in the future", param_hint="--as-of")
        result = _run_on_stack(aws, stack, instant, wait)
    out.print_json(json.dumps(result, default=str))
    if result.get("status") not in ("SUCCEEDED", "RUNNING"):
        raise typer.Exit(code=1)


def _run_on_stack(aws: Aws, stack: str, as_of: datetime | None, wait: bool) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    machine = scoring_state_machine(aws.client("cloudformation"), stack)
    started = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"as_of": as_of.isoformat() if as_of else None}),
    )
    arn = started["executionArn"]
    console.print(f"started {arn}", markup=False, highlight=False)
    described = sfn.describe_execution(executionArn=arn)
    while wait and described["status"] == "RUNNING":
        time.sleep(5)
        described = sfn.describe_execution(executionArn=arn)
    return {
        "execution": arn,
        "status": described["status"],
        "as_of": as_of.isoformat() if as_of else None,
        "output": json.loads(described.get("output") or "null"),
        "error": described.get("error"),
        "cause": described.get("cause"),
    }
