"""Operations commands: ``kizuna customers export|erase``, ``kizuna dlq list|show|redrive`` and
``kizuna points backfill-lots``.

They talk to a deployed stack (``--stack`` reads its outputs) or to explicit resources
(``--customers-table``; a dead-letter queue's URL as ``QUEUE``); ``--endpoint-url`` points
them at a local runtime.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kizuna_tools.cli.options import ActivityTable, Aws, CustomersTable, option_groups

customers_app = typer.Typer(
    help="Access and erasure requests for one customer.", no_args_is_help=True
)
dlq_app = typer.Typer(help="Dead-letter queues: inspect and replay.", no_args_is_help=True)
points_app = typer.Typer(help="Points: upkeep after an upgrade.", no_args_is_help=True)

console = Console(stderr=True)
out = Console()


CustomerId = Annotated[str, typer.Argument(help="customer id")]
LegacyId = Annotated[
    bool,
    typer.Option(
        "--legacy-id",
        help="accept an id stored before the id grammar (1-128 characters, no whitespace, "
        "no '#'), so such a customer can still be exported and erased",
    ),
]
# What Kizuna accepted (after trimming) before the id grammar; no internal key matches it.
_LEGACY_ID = re.compile(r"[^#\s]{1,128}")


def _checked(customer_id: str, legacy: bool) -> str:
    """The id as given, if it is one by the grammar (docs/EVENTS.md): never trimmed."""
    from kizuna.events.inbound import CUSTOMER_ID_PATTERN, is_customer_id

    if is_customer_id(customer_id) or (legacy and _LEGACY_ID.fullmatch(customer_id)):
        return customer_id
    raise typer.BadParameter(
        f"not a customer id: it must match {CUSTOMER_ID_PATTERN}", param_hint="CUSTOMER_ID"
    )


Stack = Annotated[str | None, typer.Option(help="deployed stack to read the outputs of")]


def _outputs(aws: Aws, stack: str | None) -> dict[str, str]:
    from kizuna_tools.dlq import stack_outputs

    if not stack:
        return {}
    return stack_outputs(aws.client("cloudformation"), stack)


@dataclass(frozen=True)
class Tables:
    """A customer's tables: named, or read from the stack's outputs."""

    stack: Stack = None
    customers_table: CustomersTable = None
    activity_table: ActivityTable = None

    def names(self, aws: Aws) -> tuple[str, str]:
        """The customers and activity tables' names."""
        outputs = _outputs(aws, self.stack)
        customers_table = self.customers_table or outputs.get("CustomersTableName")
        activity_table = self.activity_table or outputs.get("ActivityTableName")
        if not customers_table or not activity_table:
            raise typer.BadParameter("give --stack, or --customers-table and --activity-table")
        return customers_table, activity_table

    def store(self, aws: Aws) -> Any:
        from kizuna.adapters.dynamodb import DynamoStore

        customers_table, activity_table = self.names(aws)  # before any AWS call
        return DynamoStore(aws.resource("dynamodb"), customers_table, activity_table)

    def audit(self, aws: Aws) -> Any:
        from kizuna.adapters.audit import AuditLog

        activity_table = self.names(aws)[1]
        return AuditLog(aws.resource("dynamodb"), activity_table)


@customers_app.command("export")
@option_groups
def customers_export(
    customer_id: CustomerId, tables: Tables, aws: Aws, legacy_id: LegacyId = False
) -> None:
    """Everything held about a customer, as JSON on stdout (an access request): the customer
    item, every activity item, their members in the journey cohorts those name and the audit
    rows whose target they are."""
    from kizuna.domain.privacy import export

    customer_id = _checked(customer_id, legacy_id)
    store = tables.store(aws)
    data = export(customer_id, store, store, tables.audit(aws))
    if data is None:
        console.print(f"no data held for {customer_id}")
        raise typer.Exit(code=1)
    typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2, sort_keys=True))


@customers_app.command("erase")
@option_groups
def customers_erase(
    customer_id: CustomerId,
    tables: Tables,
    *,
    aws: Aws,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    legacy_id: LegacyId = False,
) -> None:
    """Erase a customer now: profile, activity, ledger, journeys, as a ``customer.erase``
    event on the bus does (what producers should do). With ``--stack``, the sweep too: the
    command then puts the erasure on ingest's queue, whose erasure schedules the sweep that
    runs again by itself 20 minutes later (for what a journey step or campaign running
    meanwhile wrote back); with table names only (or a ``--legacy-id`` outside the id
    grammar, which ingest refuses), run this command again then."""
    from datetime import timedelta

    from kizuna.domain.privacy import SWEEP_AFTER, erase
    from kizuna.events.envelope import erasure_sweep_event
    from kizuna.events.inbound import is_customer_id
    from kizuna.runtime.clock import utcnow

    customer_id = _checked(customer_id, legacy_id)
    if not yes:
        typer.confirm(f"Erase everything held about {customer_id}?", abort=True)
    store = tables.store(aws)
    report = erase(customer_id, store, store, utcnow())
    table = Table(title=f"erased {customer_id}")
    for col in ("customer item", "activity items", "journeys left"):
        table.add_column(col, justify="right")
    table.add_row(
        "deleted" if report.customer_found else "none",
        str(report.activity_deleted),
        str(report.journeys_stopped),
    )
    out.print(table)
    minutes = int(SWEEP_AFTER.total_seconds() // 60)
    if tables.stack and is_customer_id(customer_id):
        # ingest erases again (finding nothing) and schedules the sweep, as for an event;
        # the event is stamped a minute early, so a clock a little fast is no future event
        # to ingest (an id outside the grammar, --legacy-id, is one ingest refuses: below)
        now = utcnow()
        try:
            queue = _ingest_queue_url(aws, tables.stack)
            aws.client("sqs").send_message(
                QueueUrl=queue,
                MessageBody=erasure_sweep_event(customer_id, now - timedelta(minutes=1)),
            )
        except Exception as exc:  # erased all the same: say what is left to do
            console.print(
                f"erased, but the sweep could not be arranged ({type(exc).__name__}): run this "
                f"again after {(now + SWEEP_AFTER).isoformat(timespec='seconds')}"
            )
            raise typer.Exit(code=1) from exc
        console.print(
            "ingest erases again and sweeps by itself about "
            f"{(now + SWEEP_AFTER).isoformat(timespec='seconds')} (what a journey step or "
            f"campaign that read this customer before now writes in the next {minutes} minutes)"
        )
        return
    # table names only, or an id ingest would refuse: say when to run it again
    console.print(
        "a journey step or campaign that read this customer before now can still write "
        f"for up to {minutes} minutes: unless this was that second run, run this again after "
        f"{(utcnow() + SWEEP_AFTER).isoformat(timespec='seconds')} (with --stack, or a "
        "customer.erase on the bus, the sweep runs by itself)"
    )


def _ingest_queue_url(aws: Aws, stack: str) -> str:
    """Ingest's queue: the one the stack's ingest dead-letter queue serves."""
    from kizuna_tools.dlq import DLQ_OUTPUTS, DeadLetterQueue

    dlq = _outputs(aws, stack).get(DLQ_OUTPUTS["ingest"])
    if not dlq:
        raise ValueError(f"the stack has no output {DLQ_OUTPUTS['ingest']}")
    return DeadLetterQueue(aws.client("sqs"), dlq).source_url()


# --- points -----------------------------------------------------------------------------
def _day_start(value: str, hint: str) -> datetime:
    """``YYYY-MM-DD`` exactly (no other ISO form), as the start of that day in UTC."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a day YYYY-MM-DD", param_hint=hint) from None
    return datetime.combine(day, clock_time(0), UTC)


@points_app.command("backfill-lots")
@option_groups
def points_backfill_lots(
    stack: Stack = None,
    activity_table: ActivityTable = None,
    *,
    aws: Aws,
    segment: Annotated[
        int, typer.Option(min=0, help="this run's scan segment (0 .. --total-segments - 1)")
    ] = 0,
    total_segments: Annotated[
        int,
        typer.Option(min=1, max=1_000_000, help="parallel runs, one --segment each"),
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="scan and count only; write nothing")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="YYYY-MM-DD (UTC): leave rows earned before this day alone; today less "
            "points_expiry_days skips lots that have expired (the sweep never reads them)"
        ),
    ] = None,
) -> None:
    """After upgrading to a warning per points lot: give the orders and point adjustments
    ingested before it the lot index keys ingest now writes (so every lot of theirs is warned
    of, not only a customer's earliest). Scans the activity table (one read of each item);
    one conditional write per row updated, plus its index write. Safe to run again and
    while ingest runs; a row erased meanwhile is not re-created (counted as skipped)."""
    from kizuna.adapters.dynamodb import LotIndexTable
    from kizuna_tools.lots_backfill import BackfillReport, backfill_lots

    if segment >= total_segments:
        raise typer.BadParameter("must be less than --total-segments", param_hint="--segment")
    since_at = _day_start(since, "--since") if since is not None else None
    table_name = activity_table or _outputs(aws, stack).get("ActivityTableName")
    if not table_name:
        raise typer.BadParameter("give --stack or --activity-table (or ACTIVITY_TABLE)")
    table = LotIndexTable(aws.resource("dynamodb"), table_name)

    last = [time.monotonic()]

    def progress(report: BackfillReport) -> None:  # a line every 10 seconds at most
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            console.print(
                f"scanned {report.scanned}, updated {report.updated} so far",
                markup=False,
                highlight=False,
            )

    report = backfill_lots(
        table,
        segment=segment,
        total_segments=total_segments,
        dry_run=dry_run,
        since=since_at,
        progress=progress,
    )
    title = f"points lots backfill, segment {segment} of {total_segments}"
    result = Table(title=title + (" (dry run: nothing written)" if dry_run else ""))
    columns = ("scanned", "lot rows", "to update" if dry_run else "updated")
    for col in (*columns, "already had keys", "skipped", "before --since"):
        result.add_column(col, justify="right")
    result.add_row(
        str(report.scanned),
        str(report.lot_rows),
        str(report.updated),
        str(report.already_indexed),
        str(report.skipped),
        str(report.before_since),
    )
    out.print(result)


# --- dead-letter queues ---------------------------------------------------------------------
Queue = Annotated[
    str,
    typer.Argument(
        help="ingest, evaluate, feedback, sweep-schedules, feedback-schedules, "
        "scoring-schedule or campaign-schedules (with --stack), or a queue URL"
    ),
]


def _dlq(queue: str, stack: str | None, aws: Aws) -> Any:
    from kizuna_tools.dlq import DeadLetterQueue, resolve_dlq_url

    try:
        url = resolve_dlq_url(queue, _outputs(aws, stack))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUEUE") from exc
    return DeadLetterQueue(
        aws.client("sqs"),
        url,
        lambda_client=aws.client("lambda"),
        sfn_client=aws.client("stepfunctions"),
    )


@dlq_app.command("list")
@option_groups
def dlq_list(
    queue: Queue,
    stack: Stack = None,
    *,
    aws: Aws,
) -> None:
    """How many dead messages, by error type."""
    from collections import Counter

    dlq = _dlq(queue, stack, aws)
    messages = dlq.peek(limit=1000)
    counts = Counter((m.kind, m.error_type) for m in messages)
    table = Table(title=f"{queue}: {dlq.depth()} message(s)")
    table.add_column("kind")
    table.add_column("error type")
    table.add_column("messages", justify="right")
    for (kind, error_type), n in counts.most_common():
        table.add_row(kind, error_type, str(n))
    out.print(table)


@dlq_app.command("show")
@option_groups
def dlq_show(
    queue: Queue,
    limit: Annotated[int, typer.Option(min=1, help="messages to show")] = 20,
    stack: Stack = None,
    *,
    aws: Aws,
) -> None:
    """Each dead message: its error and its body."""
    dlq = _dlq(queue, stack, aws)
    for m in dlq.peek(limit=limit):
        out.rule(f"{m.message_id}  receives={m.receive_count}")
        out.print(f"{m.error_type}: {m.error}", markup=False, highlight=False)
        target = m.target or "the queue it serves"
        out.print(f"{m.kind} from {m.source}, replays to {target}", markup=False, highlight=False)
        out.print(m.body, markup=False, highlight=False)


@dlq_app.command("redrive")
@option_groups
def dlq_redrive(
    queue: Queue,
    to: Annotated[
        str | None, typer.Option(help="queue URL to send to (default: the queue it serves)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
    stack: Stack = None,
    *,
    aws: Aws,
) -> None:
    """Replay dead messages after the cause is fixed (consumers are idempotent): a queue's
    dead letters to the queue it serves (or --to), a rule's or schedule's to its target, a
    failed asynchronous invocation to its function."""
    dlq = _dlq(queue, stack, aws)
    report = dlq.redrive(to, limit=limit)
    out.print(f"moved {report.moved} message(s); {report.failed} failed")
    for error in report.errors:
        console.print(error, markup=False, highlight=False)
    if report.failed:
        raise typer.Exit(code=1)
