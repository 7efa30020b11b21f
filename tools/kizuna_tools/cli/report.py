"""``kizuna report [--activity-table ...] structure|programs|segments|html``: the reports
over a deployed stack's tables and analytics bucket (or the local runtime's, with
``--endpoint-url``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from kizuna_tools.cli.options import ActivityTable, Config, Endpoint, Region, option_groups, session

report_app = typer.Typer(
    help="Reports: customer structure, programs, segments (terminal, CSV, HTML).",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()

SnapshotsTable = Annotated[
    str | None, typer.Option(envvar="SNAPSHOTS_TABLE", help="snapshots table")
]
Bucket = Annotated[
    str | None, typer.Option(envvar="ANALYTICS_BUCKET", help="analytics bucket (the export)")
]
Programs = Annotated[Path | None, typer.Option(help="programs folder (attribution windows)")]
Csv = Annotated[Path | None, typer.Option("--csv", help="also write the tables as CSV here")]
From = Annotated[str | None, typer.Option("--from", help="first snapshot date (YYYY-MM-DD)")]
To = Annotated[str | None, typer.Option("--to", help="last snapshot date (YYYY-MM-DD)")]


@dataclass(frozen=True)
class Source:
    """Where the reports read from (the options every report command shares)."""

    activity_table: ActivityTable = None
    snapshots_table: SnapshotsTable = None
    analytics_bucket: Bucket = None
    endpoint_url: Endpoint = None
    region: Region = None
    config: Config = None
    programs_dir: Programs = None

    def published(self) -> Any:
        """The analytics bucket, where ``--publish`` stores reports."""
        from kizuna.adapters.s3 import S3Objects

        if not self.analytics_bucket:
            raise typer.BadParameter(
                "--publish needs --analytics-bucket (or ANALYTICS_BUCKET) before the report's name"
            )
        client = session(self.region).client("s3", endpoint_url=self.endpoint_url)
        return S3Objects(client, self.analytics_bucket)

    def reports(self, start: str | None = None, end: str | None = None) -> tuple[Any, Any]:
        from kizuna.adapters.dynamodb import DynamoStore, SnapshotStore
        from kizuna.adapters.s3 import S3Objects
        from kizuna.events.custom import vocabulary
        from kizuna.programs.bundle import resolve_dir
        from kizuna.programs.loader import load_programs
        from kizuna_tools.project import project_config
        from kizuna_tools.reports.document import build_reports
        from kizuna_tools.reports.sources import load

        if not self.activity_table or not self.snapshots_table:
            raise typer.BadParameter(
                "give --activity-table and --snapshots-table (or ACTIVITY_TABLE and "
                "SNAPSHOTS_TABLE) before the report's name"
            )
        cfg = project_config(self.config).config
        aws = session(self.region)
        dynamodb = aws.resource("dynamodb", endpoint_url=self.endpoint_url)
        activity = DynamoStore(dynamodb, self.activity_table, self.activity_table)
        snapshots = SnapshotStore(dynamodb, self.snapshots_table)
        export = (
            S3Objects(aws.client("s3", endpoint_url=self.endpoint_url), self.analytics_bucket)
            if self.analytics_bucket
            else None
        )
        programs_dir = str(self.programs_dir) if self.programs_dir else None
        programs, _ = load_programs(resolve_dir("programs", programs_dir), vocab=vocabulary(cfg))
        windows = {p.id: p.goal.within_days for p in programs if p.goal}
        data = load(activity, snapshots, export, windows, programs=programs)
        before = date.fromisoformat(start) if start else None
        after = date.fromisoformat(end) if end else None
        return build_reports(data, cfg, before, after), cfg


@report_app.callback()
@option_groups
def report_source(ctx: typer.Context, source: Source) -> None:
    """Where to read: the stack's activity and snapshots tables and analytics bucket (give
    these before the report's name, or set ACTIVITY_TABLE, SNAPSHOTS_TABLE, ANALYTICS_BUCKET)."""
    ctx.obj = source


def _print(table: Any) -> None:
    shown = RichTable(title=table.title)
    # cells are data (a producer's occupation): text, never Rich markup
    for column in table.columns:
        shown.add_column(Text(str(column)), overflow="fold")
    for row in table.rows:
        shown.add_row(*(Text("" if v is None else str(v)) for v in row))
    out.print(shown)


def _emit(tables: dict[str, Any], csv_dir: Path | None) -> None:
    for name, table in tables.items():
        _print(table)
        if csv_dir:
            table.write_csv(csv_dir / f"{name}.csv")
    if csv_dir:
        out.print(f"CSV: {csv_dir}")


@report_app.command("structure")
def report_structure(
    ctx: typer.Context, csv_dir: Csv = None, start: From = None, end: To = None
) -> None:
    """Segment and rank migration (treated vs holdout) and rates over time."""
    reports, _ = ctx.obj.reports(start, end)
    tables = reports.tables()
    _emit({k: v for k, v in tables.items() if "migration" in k or k == "trend"}, csv_dir)


@report_app.command("programs")
def report_programs(
    ctx: typer.Context,
    csv_dir: Csv = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead")] = False,
) -> None:
    """Entries, sends, suppressions, conversions, holdout lift (95% CI), revenue."""
    reports, _ = ctx.obj.reports()
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in reports.programs]))
        return
    _emit({"programs": reports.tables()["programs"]}, csv_dir)


@report_app.command("segments")
def report_segments(ctx: typer.Context, csv_dir: Csv = None, end: To = None) -> None:
    """Customers, revenue, response, conversion and second purchases by region,
    prefecture, age band, gender and occupation (on the last snapshot date, from the export)."""
    reports, _ = ctx.obj.reports(None, end)
    _emit({"segments": reports.tables()["segments"]}, csv_dir)


@report_app.command("html")
def report_html(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for report.html and CSVs")] = Path(
        "out/report"
    ),
    start: From = None,
    end: To = None,
    title: Annotated[str, typer.Option(help="the report's title")] = "Kizuna report",
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="also publish the report (JSON and HTML) to the analytics bucket's reports/ "
            "for the API and the console",
        ),
    ] = False,
) -> None:
    """The HTML report (charts: migration heatmaps, segment sizes over time, lift with
    confidence bars), its JSON and every table as CSV; ``--publish`` also stores them in the
    analytics bucket (``reports/<date>.json``, ``reports/latest.json``)."""
    from kizuna_tools.reports.document import write_report

    source: Source = ctx.obj
    objects = source.published() if publish else None
    reports, cfg = source.reports(start, end)
    path = write_report(reports, cfg, out_dir, title, publish_to=objects)
    out.print(f"report: {path}")
    if objects is not None:
        out.print(f"published: s3://{objects.bucket}/reports/latest.json")
