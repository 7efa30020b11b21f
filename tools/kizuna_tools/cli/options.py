"""Option types shared by the ``kizuna`` commands (one definition each, reused everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

CustomersTable = Annotated[str | None, typer.Option(envvar="CUSTOMERS_TABLE")]
ActivityTable = Annotated[str | None, typer.Option(envvar="ACTIVITY_TABLE", help="activity table")]
Endpoint = Annotated[str | None, typer.Option(help="e.g. the endpoint of `kizuna local serve`")]
Region = Annotated[str | None, typer.Option(envvar="AWS_REGION")]
Profile = Annotated[str | None, typer.Option(envvar="AWS_PROFILE")]
Config = Annotated[Path | None, typer.Option(help="KizunaConfig JSON (default: defaults)")]


def session(region: str | None, profile: str | None = None) -> Any:
    """A boto3 session for ``--region`` and ``--profile``."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)
