"""Operations commands: ``kizuna customers export|erase`` and ``kizuna dlq list|show|redrive``.

Both talk to a deployed stack (``--stack`` reads its outputs) or to explicit resources
(``--customers-table``, ``--queue-url``); ``--endpoint-url`` points them at a local runtime.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kizuna_tools.cli.options import (
    ActivityTable,
    CustomersTable,
    Endpoint,
    Profile,
    Region,
)
from kizuna_tools.cli.options import session as _session

customers_app = typer.Typer(
    help="Access and erasure requests for one customer.", no_args_is_help=True
)
dlq_app = typer.Typer(help="Dead-letter queues: inspect and replay.", no_args_is_help=True)

console = Console(stderr=True)
out = Console()

CustomerId = Annotated[str, typer.Argument(help="customer id")]
Stack = Annotated[str | None, typer.Option(help="deployed stack to read the outputs of")]


def _outputs(session: Any, stack: str | None, endpoint_url: str | None) -> dict[str, str]:
    from kizuna_tools.dlq import stack_outputs

    if not stack:
        return {}
    return stack_outputs(session.client("cloudformation", endpoint_url=endpoint_url), stack)


def _store(
    stack: str | None,
    customers_table: str | None,
    activity_table: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> Any:
    from kizuna.adapters.dynamodb import DynamoStore

    session = _session(region, profile)
    outputs = _outputs(session, stack, endpoint_url)
    customers_table = customers_table or outputs.get("CustomersTableName")
    activity_table = activity_table or outputs.get("ActivityTableName")
    if not customers_table or not activity_table:
        raise typer.BadParameter("give --stack, or --customers-table and --activity-table")
    return DynamoStore(
        session.resource("dynamodb", endpoint_url=endpoint_url), customers_table, activity_table
    )


def _journey_prefix(stack: str, outputs: dict[str, str]) -> str:
    """Journeys are named ``<stack name, 32 chars>-<program>`` (kizuna_infra.programs)."""
    arns = [v for k, v in outputs.items() if k.startswith("Journey") and ":stateMachine:" in v]
    if not arns:
        return ""
    return f"{arns[0].split(':stateMachine:')[0]}:stateMachine:{stack[:32]}-"


@customers_app.command("export")
def customers_export(
    customer_id: CustomerId,
    stack: Stack = None,
    customers_table: CustomersTable = None,
    activity_table: ActivityTable = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Everything held about a customer, as JSON on stdout (an access request)."""
    from kizuna.domain.privacy import export

    store = _store(stack, customers_table, activity_table, endpoint_url, region, profile)
    data = export(customer_id, store)
    if data is None:
        console.print(f"no data held for {customer_id}")
        raise typer.Exit(code=1)
    typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2, sort_keys=True))


@customers_app.command("erase")
def customers_erase(
    customer_id: CustomerId,
    stack: Stack = None,
    customers_table: CustomersTable = None,
    activity_table: ActivityTable = None,
    journey_arn_prefix: Annotated[
        str, typer.Option(help="state machine ARN prefix of the journeys (to stop them)")
    ] = "",
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Erase a customer now: profile, activity, ledger, journeys. Same as putting a
    ``customer.erase`` event on the bus, which is what producers should do."""
    from kizuna.adapters.stepfunctions import StepFunctionsStopper
    from kizuna.domain.privacy import erase
    from kizuna.runtime.clock import utcnow

    if not yes:
        typer.confirm(f"Erase everything held about {customer_id}?", abort=True)
    store = _store(stack, customers_table, activity_table, endpoint_url, region, profile)
    session = _session(region, profile)
    if not journey_arn_prefix and stack:
        journey_arn_prefix = _journey_prefix(stack, _outputs(session, stack, endpoint_url))
    stopper = StepFunctionsStopper(
        session.client("stepfunctions", endpoint_url=endpoint_url), journey_arn_prefix
    )
    if not journey_arn_prefix:
        console.print("running journeys are not stopped: give --stack or --journey-arn-prefix")
    report = erase(customer_id, store, stopper, utcnow())
    table = Table(title=f"erased {customer_id}")
    for col in ("customer item", "activity items", "journeys stopped"):
        table.add_column(col, justify="right")
    table.add_row(
        "deleted" if report.customer_found else "none",
        str(report.activity_deleted),
        str(report.journeys_stopped),
    )
    out.print(table)


# --- dead-letter queues ---------------------------------------------------------------------
Queue = Annotated[
    str, typer.Argument(help="ingest, evaluate or feedback (with --stack), or a queue URL")
]


def _dlq(
    queue: str, stack: str | None, endpoint_url: str | None, region: str | None, profile: str | None
) -> Any:
    from kizuna_tools.dlq import DeadLetterQueue, resolve_dlq_url

    session = _session(region, profile)
    try:
        url = resolve_dlq_url(queue, _outputs(session, stack, endpoint_url))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUEUE") from exc
    return DeadLetterQueue(session.client("sqs", endpoint_url=endpoint_url), url)


@dlq_app.command("list")
def dlq_list(
    queue: Queue,
    stack: Stack = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """How many dead messages, by error type."""
    from collections import Counter

    dlq = _dlq(queue, stack, endpoint_url, region, profile)
    messages = dlq.peek(limit=1000)
    counts = Counter(m.error_type for m in messages)
    table = Table(title=f"{queue}: {dlq.depth()} message(s)")
    table.add_column("error type")
    table.add_column("messages", justify="right")
    for error_type, n in counts.most_common():
        table.add_row(error_type, str(n))
    out.print(table)


@dlq_app.command("show")
def dlq_show(
    queue: Queue,
    limit: Annotated[int, typer.Option(min=1, help="messages to show")] = 20,
    stack: Stack = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Each dead message: its error and its body."""
    dlq = _dlq(queue, stack, endpoint_url, region, profile)
    for m in dlq.peek(limit=limit):
        out.rule(f"{m.message_id}  receives={m.receive_count}")
        out.print(f"[bold]{m.error_type}[/bold]: {m.error}", markup=True, highlight=False)
        out.print(m.body, markup=False, highlight=False)


@dlq_app.command("redrive")
def dlq_redrive(
    queue: Queue,
    to: Annotated[
        str | None, typer.Option(help="queue URL to send to (default: the queue it serves)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
    stack: Stack = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Replay dead messages after the cause is fixed (consumers are idempotent)."""
    dlq = _dlq(queue, stack, endpoint_url, region, profile)
    try:
        target = to or dlq.source_url()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from exc
    report = dlq.redrive(target, limit=limit)
    out.print(f"moved {report.moved} message(s) to {target}; {report.failed} failed")
    if report.failed:
        raise typer.Exit(code=1)
