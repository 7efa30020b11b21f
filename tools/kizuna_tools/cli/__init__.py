"""The ``kizuna`` command."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kizuna_tools.cli.options import ActivityTable, Aws, Config, CustomersTable, option_groups

if TYPE_CHECKING:
    from kizuna_tools.importer import ImportReport


def setup_problem(exc: Exception) -> str | None:
    """One line saying what to set, for the errors a missing setup gives (no AWS region or
    credentials, an unknown profile, an unreachable endpoint, a broken configuration)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from kizuna_tools.project import ConfigError

    if isinstance(exc, NoRegionError):
        return "no AWS region: give --region or set AWS_REGION (or AWS_DEFAULT_REGION)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials: set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY; for `kizuna local serve` give --endpoint-url "
            "http://127.0.0.1:4566 and any credentials"
        )
    if isinstance(exc, ProfileNotFound):
        return f"{exc}: check AWS_PROFILE or --profile (aws configure list-profiles)"
    if isinstance(exc, EndpointConnectionError):
        return f"{exc}: is the endpoint running (kizuna local serve), or --endpoint-url right?"
    if isinstance(exc, ConfigError):
        return f"configuration: {exc}"
    if (
        isinstance(exc, ClientError)
        and exc.operation_name == "DescribeStacks"
        and exc.response.get("Error", {}).get("Code") == "ValidationError"
    ):
        # --stack names no stack CloudFormation has here (a typo, another region or account)
        return (
            f"{exc.response['Error'].get('Message', 'no such stack')}: check --stack, and "
            "--region and --profile (the stack's region and account); for `kizuna local "
            "serve`, give the table or queue names, or --outputs where the command takes it"
        )
    return None


class KizunaGroup(typer.core.TyperGroup):
    """The ``kizuna`` command: a missing setup is one line and exit code 2, not a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = setup_problem(exc)
            if problem is None:
                raise
            console.print(f"Error: {problem}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc


app = typer.Typer(
    cls=KizunaGroup,
    help="Kizuna: cross-channel campaign management on AWS.",
    no_args_is_help=True,
)
import_app = typer.Typer(help="Import existing CRM data (CSV or JSON Lines).", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _register_more() -> None:
    from kizuna_tools.cli.local import local_app, programs_app, render_preview
    from kizuna_tools.cli.ops import customers_app, dlq_app, points_app

    app.add_typer(local_app, name="local")
    app.add_typer(programs_app, name="programs")
    app.command("render")(render_preview)
    app.add_typer(customers_app, name="customers")
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(points_app, name="points")
    from kizuna_tools.cli.segments import segments_app

    app.add_typer(segments_app, name="segments")
    from kizuna_tools.cli.report import report_app

    app.add_typer(report_app, name="report")
    from kizuna_tools.cli.campaigns import campaigns_app

    app.add_typer(campaigns_app, name="campaigns")
    from kizuna_tools.cli.scoring import scoring_app

    app.add_typer(scoring_app, name="scoring")
    from kizuna_tools.cli.migrate import migrate_app

    app.add_typer(migrate_app, name="migrate")


console = Console(stderr=True)
out = Console()


@app.command()
def schemas(
    directory: Annotated[Path, typer.Option("--out", help="Where to write the schemas")] = Path(
        "schemas"
    ),
    api_docs: Annotated[
        Path, typer.Option("--api-docs", help="Where to write the API's reference (Markdown)")
    ] = Path("docs/API.md"),
    config: Config = None,
) -> None:
    """Write the JSON Schema of every inbound and derived event (the shop's own events and
    attributes, declared in the project's configuration, included), the HTTP API's OpenAPI
    document (``openapi.json``) and its reference (docs/API.md, after docs/api-intro.md)."""
    from kizuna.events.custom import vocabulary
    from kizuna_tools.apidocs import write_api_docs
    from kizuna_tools.project import project_config
    from kizuna_tools.schemas import write_schemas

    vocab = vocabulary(project_config(config).config)
    for path in write_schemas(directory, vocab) + write_api_docs(directory, api_docs):
        out.print(str(path))


class ImportKind(StrEnum):
    customers = "customers"
    orders = "orders"
    refunds = "refunds"


FileArg = Annotated[Path, typer.Argument(help=".csv, .tsv or .jsonl file")]
ProductsTable = Annotated[str | None, typer.Option(envvar="PRODUCTS_TABLE")]
DryRun = Annotated[bool, typer.Option(help="Validate and report only; write nothing")]
ErrorsCsv = Annotated[Path | None, typer.Option(help="Write every rejected row here")]


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="customers: when the file was exported (ISO 8601 with offset), the time of "
        "rows without updated_at; a change Kizuna saw later (an unsubscribe) then wins",
    ),
]
Partial = Annotated[
    bool,
    typer.Option(
        "--partial",
        help="Import the valid rows even if some are rejected (default: any rejected row "
        "means nothing is written)",
    ),
]


def _print_import_report(
    what: str,
    file: Path,
    report: ImportReport,
    dry_run: bool,
    errors_csv: Path | None,
    partial: bool,
) -> None:
    """The report's table, the first rejected rows, all of them in ``errors_csv``. Exit code
    2 when nothing could be imported, 1 when a row was rejected (nothing written, unless
    ``partial``) or a customer could not be written (the others were), 0 when every row was
    imported or ``partial`` imported the valid ones. A row Kizuna refused when written (the
    customer's other rows were) exits 1 too, and so does a row of a customer erased
    recently (kizuna.domain.privacy.ERASED_MARKER_DAYS: not written). Refunds whose order
    is not in Kizuna yet are a note, not an error: they wait for it, as the events do."""
    table = Table(title=f"import {what}: {file.name}")
    written = "products written" if what == "products" else "customers written"
    # an order's rows are one record: its count is of orders, the rows' of rows
    imported = "orders imported" if what == "orders" else "imported"
    for col in ("rows", imported, "rows rejected" if what == "orders" else "rejected", written):
        table.add_column(col, justify="right")
    rejected = bool(report.errors)
    failed = len(getattr(report, "customers_failed", ()))  # written rows, refused by AWS
    refused = getattr(report, "refused", 0)  # valid rows the customers' state refused
    erased = getattr(report, "erased", 0)  # valid rows of customers erased recently
    kept_back = rejected and not partial and not failed and not refused and not erased
    table.add_row(
        str(report.rows),
        str(report.imported),
        str(report.rejected),
        "dry run" if dry_run else ("none" if kept_back else str(report.customers_written)),
    )
    out.print(table)
    waiting = getattr(report, "refunds_waiting", 0)
    if waiting:
        console.print(
            f"{waiting} refunds are waiting for their order, not in Kizuna yet (as an "
            "order.refunded event waits): import the orders, then this file again "
            "(docs/IMPORT.md, Refunds).",
            markup=False,
        )
    if not rejected:
        return
    errs = Table(title="rejected rows")
    errs.add_column("row", justify="right")
    errs.add_column("error")
    for e in report.errors[:50]:
        errs.add_row(str(e.row), escape(e.error))
    out.print(errs)
    if len(report.errors) > 50:
        out.print(f"... and {len(report.errors) - 50} more")
    if errors_csv:
        import csv

        from kizuna.delivery.direct_mail import safe_cell

        with errors_csv.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "error"])
            writer.writerows((e.row, safe_cell(e.error)) for e in report.errors)
        out.print(f"all rejected rows: {errors_csv}")
    if failed:
        console.print(
            f"{failed} customers could not be written (their rows above); the others were. "
            "Re-run the import to retry them.",
            markup=False,
        )
        raise typer.Exit(code=1 if report.imported else 2)
    if refused:
        console.print(
            f"{refused} rows were refused by Kizuna when written (above): as the same events "
            "would be, and no part of them was written. The other rows were written.",
            markup=False,
        )
    if erased:
        from kizuna.domain.privacy import ERASED_MARKER_DAYS

        console.print(
            f"{erased} rows are of customers erased in the last {ERASED_MARKER_DAYS} days "
            "(above): not written, "
            "as their events are not. Remove these customers from the file's source: an "
            "import after that creates them again. The other rows were written.",
            markup=False,
        )
    if refused or erased:
        raise typer.Exit(code=1 if report.imported else 2)
    if report.imported == 0:
        raise typer.Exit(code=2)
    if kept_back:
        verb = "would be" if dry_run else "was"
        console.print(
            f"{report.rejected} rows rejected: nothing {verb} written. Fix them, or give "
            "--partial to import the valid rows.",
            markup=False,
        )
        raise typer.Exit(code=1)


def _export_time(kind: ImportKind, as_of: str | None) -> datetime | None:
    """``--as-of`` read: an ISO 8601 time with an offset, for a customers file only."""
    if as_of is None:
        return None
    if kind != ImportKind.customers:
        raise typer.BadParameter(
            "only for customers (orders carry ordered_at, refunds refunded_at)",
            param_hint="--as-of",
        )
    try:
        exported = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("an ISO 8601 time", param_hint="--as-of") from None
    if exported.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset (e.g. +09:00)", param_hint="--as-of")
    if exported > datetime.now(UTC):
        raise typer.BadParameter("later than now", param_hint="--as-of")
    return exported


def _import(
    kind: ImportKind,
    file: Path,
    customers_table: str | None,
    activity_table: str | None,
    aws: Aws,
    dry_run: bool,
    config: Path | None,
    errors_csv: Path | None,
    partial: bool,
    as_of: str | None = None,
) -> None:
    from kizuna_tools.importer import ImportFileError, import_file, read_rows
    from kizuna_tools.project import project_config

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    exported = _export_time(kind, as_of)
    project = project_config(config)
    console.print(f"configuration: {project.source}", markup=False, highlight=False)
    store = None
    if not dry_run:
        if not customers_table or not activity_table:
            raise typer.BadParameter(
                "give --customers-table and --activity-table (or CUSTOMERS_TABLE/ACTIVITY_TABLE),"
                " or --dry-run to validate only"
            )
        from kizuna.adapters.dynamodb import DynamoStore

        store = DynamoStore(aws.resource("dynamodb"), customers_table, activity_table)
    try:
        total = sum(1 for _ in read_rows(file))
    except ImportFileError as exc:  # the file as a whole: nothing is read, nothing written
        console.print(f"{file.name}: {exc}; nothing was imported", markup=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"import {kind}", total=total)
        report = import_file(
            kind.value,
            file,
            store,
            project.config,
            datetime.now(UTC),
            progress=lambda n: bar.advance(task, n),
            partial=partial,
            as_of=exported,
        )
        bar.update(task, completed=total)
    _print_import_report(kind.value, file, report, dry_run, errors_csv, partial)


def _register_import(kind: ImportKind, doc: str) -> None:
    def command(
        file: FileArg,
        customers_table: CustomersTable = None,
        activity_table: ActivityTable = None,
        *,
        aws: Aws,
        dry_run: DryRun = False,
        config: Config = None,
        errors_csv: ErrorsCsv = None,
        partial: Partial = False,
        as_of: AsOf = None,
    ) -> None:
        _import(
            kind,
            file,
            customers_table,
            activity_table,
            aws,
            dry_run,
            config,
            errors_csv,
            partial,
            as_of,
        )

    command.__doc__ = doc
    import_app.command(kind.value)(option_groups(command))


_register_import(ImportKind.customers, "Import customers: profile, attributes and consent.")
_register_import(
    ImportKind.orders, "Import order history: lifecycle, points and rank are computed from it."
)
_register_import(
    ImportKind.refunds,
    "Import refunds and returns of orders (order.refunded): orders count net of them.",
)


@import_app.command("products")
@option_groups
def import_products_command(
    file: FileArg,
    products_table: ProductsTable = None,
    *,
    aws: Aws,
    dry_run: DryRun = False,
    errors_csv: ErrorsCsv = None,
    partial: Partial = False,
) -> None:
    """Import the product catalogue (product_id, name, url, category) that recommendations
    show; what the daily job learned about each product is kept."""
    from kizuna.adapters.dynamodb import ProductStore
    from kizuna_tools.products import import_products

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    store = None
    if not dry_run:
        if not products_table:
            raise typer.BadParameter("give --products-table (or PRODUCTS_TABLE), or --dry-run")
        store = ProductStore(aws.resource("dynamodb"), products_table)
    report = import_products(file, store, partial=partial)
    _print_import_report("products", file, report, dry_run, errors_csv, partial)


_register_more()


def main() -> None:  # pragma: no cover
    app()
