"""``kizuna migrate pinpoint DIR --out OUT``: an Amazon Pinpoint project as a Kizuna project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

migrate_app = typer.Typer(
    help="Migrate from another system (Amazon Pinpoint) into a Kizuna project.",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()


@migrate_app.command("pinpoint")
def pinpoint(
    directory: Annotated[
        Path,
        typer.Argument(
            help="the Pinpoint export: endpoints/, segments.json, campaigns.json, journeys/, "
            "templates/{email,sms,push}/ (docs/MIGRATING-FROM-PINPOINT.md)"
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="the Kizuna project to write")],
    force: Annotated[
        bool, typer.Option("--force", help="replace a previous migration's files in --out")
    ] = False,
    base: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="a KizunaConfig JSON to start from (default: Kizuna's defaults); the "
            "migration adds custom attributes and events and sets the contact policy",
        ),
    ] = None,
) -> None:
    """Read a Pinpoint project's export and write kizuna-config.json, customers.jsonl,
    segments/, templates/, campaigns/, programs/ and MIGRATION-REPORT.md (every object, what
    it became, what needs a person's decision)."""
    from kizuna.runtime.config import KizunaConfig
    from kizuna_tools.migrate.project import MigrationError, migrate_pinpoint
    from kizuna_tools.project import project_config

    config = project_config(base).config if base is not None else KizunaConfig()
    try:
        result = migrate_pinpoint(directory, out_dir, base=config, force=force)
    except MigrationError as exc:
        console.print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from exc
    summary = result.report.summary()
    table = Table(title=f"Pinpoint -> {out_dir}")
    table.add_column("what")
    for status in ("migrated", "changed", "needs_decision", "not_migrated"):
        table.add_column(status.replace("_", " "), justify="right")
    for kind, statuses in summary.items():
        table.add_row(
            kind,
            *(
                str(statuses.get(s, 0))
                for s in ("migrated", "changed", "needs_decision", "not_migrated")
            ),
        )
    out.print(table)
    decisions = result.report.decisions()
    out.print(
        f"{len(result.files)} files written; {len(decisions)} decisions to make: "
        f"{out_dir / 'MIGRATION-REPORT.md'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"next: cd {out_dir}; read MIGRATION-REPORT.md; kizuna programs validate --config "
        "kizuna-config.json; kizuna campaigns validate --config kizuna-config.json; "
        "kizuna import customers "
        "customers.jsonl --config kizuna-config.json --dry-run",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
