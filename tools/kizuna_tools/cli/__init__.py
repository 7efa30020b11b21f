"""The ``kizuna`` command."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kizuna.runtime.config import load_config

app = typer.Typer(help="Kizuna: cross-channel campaign management on AWS.", no_args_is_help=True)
import_app = typer.Typer(help="Import existing CRM data (CSV or JSON Lines).", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _register_more() -> None:
    from kizuna_tools.cli.local import local_app, programs_app, render_preview
    from kizuna_tools.cli.ops import customers_app, dlq_app

    app.add_typer(local_app, name="local")
    app.add_typer(programs_app, name="programs")
    app.command("render")(render_preview)
    app.add_typer(customers_app, name="customers")
    app.add_typer(dlq_app, name="dlq")
    from kizuna_tools.cli.segments import segments_app

    app.add_typer(segments_app, name="segments")
    from kizuna_tools.cli.report import report_app

    app.add_typer(report_app, name="report")


console = Console(stderr=True)
out = Console()


@app.command()
def schemas(
    directory: Annotated[Path, typer.Option("--out", help="Where to write the schemas")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schema of every inbound and derived event."""
    from kizuna_tools.schemas import write_schemas

    for path in write_schemas(directory):
        out.print(str(path))


class ImportKind(StrEnum):
    customers = "customers"
    orders = "orders"


def _import(
    kind: ImportKind,
    file: Path,
    customers_table: str | None,
    activity_table: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    dry_run: bool,
    config_json: str,
    errors_csv: Path | None,
) -> None:
    from kizuna_tools.importer import import_file, read_rows

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    store = None
    if not dry_run:
        if not customers_table or not activity_table:
            raise typer.BadParameter(
                "give --customers-table and --activity-table (or CUSTOMERS_TABLE/ACTIVITY_TABLE),"
                " or --dry-run to validate only"
            )
        import boto3

        from kizuna.adapters.dynamodb import DynamoStore

        session = boto3.Session(profile_name=profile, region_name=region)
        store = DynamoStore(
            session.resource("dynamodb", endpoint_url=endpoint_url), customers_table, activity_table
        )
    total = sum(1 for _ in read_rows(file))
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
            load_config(config_json),
            datetime.now(UTC),
            progress=lambda n: bar.advance(task, n),
        )
        bar.update(task, completed=total)
    table = Table(title=f"import {kind}: {file.name}")
    for col in ("rows", "imported", "rejected", "customers written"):
        table.add_column(col, justify="right")
    table.add_row(
        str(report.rows),
        str(report.imported),
        str(report.rejected),
        str(report.customers_written) if not dry_run else "dry run",
    )
    out.print(table)
    if report.errors:
        errs = Table(title="rejected rows")
        errs.add_column("row", justify="right")
        errs.add_column("error")
        for e in report.errors[:50]:
            errs.add_row(str(e.row), e.error)
        out.print(errs)
        if len(report.errors) > 50:
            out.print(f"... and {len(report.errors) - 50} more")
        if errors_csv:
            import csv

            with errors_csv.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["row", "error"])
                writer.writerows((e.row, e.error) for e in report.errors)
            out.print(f"all rejected rows: {errors_csv}")
        raise typer.Exit(code=2 if report.imported == 0 else 0)


FileArg = Annotated[Path, typer.Argument(help=".csv, .tsv or .jsonl file")]
CustomersTable = Annotated[str | None, typer.Option(envvar="CUSTOMERS_TABLE")]
ActivityTable = Annotated[str | None, typer.Option(envvar="ACTIVITY_TABLE")]
Endpoint = Annotated[str | None, typer.Option(help="e.g. the endpoint of `kizuna local serve`")]
Region = Annotated[str | None, typer.Option(envvar="AWS_REGION")]
Profile = Annotated[str | None, typer.Option(envvar="AWS_PROFILE")]
DryRun = Annotated[bool, typer.Option(help="Validate and report only; write nothing")]
ConfigJson = Annotated[
    str, typer.Option("--config", envvar="KIZUNA_CONFIG", help="Loyalty configuration as JSON")
]
ErrorsCsv = Annotated[Path | None, typer.Option(help="Write every rejected row here")]


@import_app.command("customers")
def import_customers(
    file: FileArg,
    customers_table: CustomersTable = None,
    activity_table: ActivityTable = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
    dry_run: DryRun = False,
    config: ConfigJson = "{}",
    errors_csv: ErrorsCsv = None,
) -> None:
    """Import customers: profile, attributes and consent."""
    _import(
        ImportKind.customers,
        file,
        customers_table,
        activity_table,
        endpoint_url,
        region,
        profile,
        dry_run,
        config,
        errors_csv,
    )


@import_app.command("orders")
def import_orders(
    file: FileArg,
    customers_table: CustomersTable = None,
    activity_table: ActivityTable = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
    dry_run: DryRun = False,
    config: ConfigJson = "{}",
    errors_csv: ErrorsCsv = None,
) -> None:
    """Import order history: lifecycle, points and rank are computed from it."""
    _import(
        ImportKind.orders,
        file,
        customers_table,
        activity_table,
        endpoint_url,
        region,
        profile,
        dry_run,
        config,
        errors_csv,
    )


ProductsTable = Annotated[str | None, typer.Option(envvar="PRODUCTS_TABLE")]


@import_app.command("products")
def import_products_command(
    file: FileArg,
    products_table: ProductsTable = None,
    endpoint_url: Endpoint = None,
    region: Region = None,
    profile: Profile = None,
    dry_run: DryRun = False,
    errors_csv: ErrorsCsv = None,
) -> None:
    """Import the product catalogue (product_id, name, url, category) that recommendations
    show; what the daily job learned about each product is kept."""
    from kizuna_tools.products import import_products

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    store = None
    if not dry_run:
        if not products_table:
            raise typer.BadParameter("give --products-table (or PRODUCTS_TABLE), or --dry-run")
        import boto3

        from kizuna.adapters.dynamodb import ProductStore

        session = boto3.Session(profile_name=profile, region_name=region)
        store = ProductStore(
            session.resource("dynamodb", endpoint_url=endpoint_url), products_table
        )
    report = import_products(file, store)
    table = Table(title=f"import products: {file.name}")
    for col in ("rows", "imported", "rejected", "products written"):
        table.add_column(col, justify="right")
    written = "dry run" if dry_run else str(report.customers_written)
    table.add_row(str(report.rows), str(report.imported), str(report.rejected), written)
    out.print(table)
    for e in report.errors[:50]:
        out.print(f"row {e.row}: {e.error}")
    if errors_csv and report.errors:
        import csv

        with errors_csv.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "error"])
            writer.writerows((e.row, e.error) for e in report.errors)
    if report.errors and report.imported == 0:
        raise typer.Exit(code=2)


_register_more()


def main() -> None:  # pragma: no cover
    app()
