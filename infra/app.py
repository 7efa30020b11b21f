#!/usr/bin/env python3
"""CDK app entry point.

``cdk synth`` runs it as ``.venv/bin/python infra/app.py`` (see cdk.json). Run directly, it
reads cdk.json's context itself and writes the assembly to ./cdk.out.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Runs from a checkout before `pip install -e .` has made kizuna_infra importable.
for _path in (ROOT / "infra", ROOT / "layers"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws_cdk as cdk  # noqa: E402
from aws_cdk import cx_api  # noqa: E402

from kizuna_infra.limits import check_environments  # noqa: E402
from kizuna_infra.nag import apply_nag_checks  # noqa: E402
from kizuna_infra.stack import KizunaStack  # noqa: E402


def _cdk_json_context() -> dict[str, Any]:
    cdk_json = ROOT / "cdk.json"
    if not cdk_json.exists():
        return {}
    context: dict[str, Any] = json.loads(cdk_json.read_text()).get("context", {})
    return context


def _environment() -> cdk.Environment | None:
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    if account and region:
        return cdk.Environment(account=account, region=region)
    return None  # environment-agnostic: synthesizes anywhere, deploys to the CLI's profile


def build_app(
    *, context: Mapping[str, Any] | None = None, outdir: str | None = None
) -> tuple[cdk.App, KizunaStack]:
    """The Kizuna app with AwsSolutions checks applied (a finding fails synthesis)."""
    under_cli = "CDK_OUTDIR" in os.environ or "CDK_CONTEXT_JSON" in os.environ
    app_context = dict(context or {}) if under_cli else {**_cdk_json_context(), **(context or {})}
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        outdir = str(ROOT / "cdk.out")
    app = cdk.App(context=app_context, outdir=outdir)
    stack = KizunaStack(app, env=_environment())
    apply_nag_checks(app)
    return app, stack


def check_deployable(assembly: cx_api.CloudAssembly) -> None:
    """Refuse, at synth, what AWS would refuse at deploy and the template alone does not
    show: a function environment over Lambda's 4 KB (the configuration is in each)."""
    for artifact in assembly.stacks:
        check_environments(artifact.template)


def main() -> None:
    app, _ = build_app()
    check_deployable(app.synth())


if __name__ == "__main__":
    main()
