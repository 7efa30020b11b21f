"""``kizuna segments list|count|export``: named segments (``segments/*.yaml``) over a
customers table (a deployed one, or the local runtime's with ``--endpoint-url``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from kizuna_tools.cli.options import Config, Endpoint, Region, option_groups, session

segments_app = typer.Typer(help="Named segments: list, count, export.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

Name = Annotated[str, typer.Argument(help="segment name (segments/<name>.yaml)")]
Directory = Annotated[Path | None, typer.Option("--dir", help="segments folder")]
CustomersTable = Annotated[str, typer.Option(envvar="CUSTOMERS_TABLE", help="customers table")]


def _segments(directory: Path | None, config: Path | None) -> dict[str, Any]:
    """The named segments, validated against the project's configuration (the attributes and
    counters it declares); every problem printed and exit 1 when invalid."""
    from kizuna.events.custom import vocabulary
    from kizuna.programs.bundle import resolve_dir
    from kizuna.segments import SegmentError, load_segments
    from kizuna_tools.project import project_config

    folder = resolve_dir("segments", str(directory) if directory else None)
    try:
        return load_segments(folder, vocabulary(project_config(config).config))
    except SegmentError as exc:
        for problem in exc.problems:
            console.print(Text(problem, style="red"))  # the file's text: no markup
        raise typer.Exit(1) from exc


def _segment(name: str, directory: Path | None, config: Path | None) -> Any:
    found = _segments(directory, config)
    if name not in found:
        known = ", ".join(sorted(found))
        console.print(Text.assemble((f"no segment {name!r}", "red"), f" (known: {known})"))
        raise typer.Exit(1)
    return found[name]


@dataclass(frozen=True)
class Members:
    """Where a segment's members are read from (the options ``count`` and ``export`` share)."""

    customers_table: CustomersTable
    directory: Directory = None
    endpoint_url: Endpoint = None
    region: Region = None
    config: Config = None

    def of(self, name: str) -> list[str]:
        from kizuna.adapters.dynamodb import DynamoStore
        from kizuna.segments import members
        from kizuna_tools.project import project_config

        segment = _segment(name, self.directory, self.config)
        cfg = project_config(self.config).config
        resource = session(self.region).resource("dynamodb", endpoint_url=self.endpoint_url)
        store = DynamoStore(resource, self.customers_table, self.customers_table)
        return list(members(segment, store.scan_customers(), datetime.now(UTC), cfg))


@segments_app.command("list")
def segments_list(directory: Directory = None, config: Config = None) -> None:
    """Every segment and its conditions (validated)."""
    import json

    for name, segment in sorted(_segments(directory, config).items()):
        conditions = json.dumps(segment.conditions, ensure_ascii=False)
        out.print(Text(f"{name}: {conditions}"), highlight=False)  # values print as written


@segments_app.command("count")
@option_groups
def segments_count(name: Name, source: Members) -> None:
    """How many customers are in the segment now (scans the customers table)."""
    out.print(len(source.of(name)))


@segments_app.command("export")
@option_groups
def segments_export(
    name: Name,
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write")],
    source: Members,
) -> None:
    """Write the segment's customer ids to a CSV file (one column, ``customer_id``: a
    campaign's ``customer_list``). An id stored before today's id grammar (one starting
    ``=``, ``+``, ``-`` or ``@`` a spreadsheet would run as a formula) is left out and
    counted: no campaign list takes it either."""
    from kizuna.events.inbound import is_customer_id

    found = source.of(name)
    kept = [cid for cid in found if is_customer_id(cid)]
    with out_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id"])
        writer.writerows([cid] for cid in kept)
    console.print(f"{len(kept)} customers written to {out_file}")
    if len(kept) < len(found):
        console.print(
            f"{len(found) - len(kept)} left out: their ids predate the customer id grammar "
            "(kizuna customers export|erase --legacy-id reach them)"
        )
