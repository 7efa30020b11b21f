"""The real Kizuna app for the local runtime: its project root and synthesized template."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT_ENV = "KIZUNA_PROJECT_ROOT"
SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


def _is_project_root(path: Path) -> bool:
    return (path / "functions").is_dir() and (path / "infra").is_dir()


def default_project_root() -> Path:
    """``$KIZUNA_PROJECT_ROOT``, else the checkout around the working directory or this file."""
    if os.environ.get(PROJECT_ROOT_ENV):
        return Path(os.environ[PROJECT_ROOT_ENV]).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if _is_project_root(candidate):
                return candidate
    raise FileNotFoundError(
        f"no Kizuna checkout found (functions/ and infra/); set {PROJECT_ROOT_ENV}"
    )


@lru_cache(maxsize=4)
def _synth(context_json: str) -> str:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from kizuna_infra.limits import check_template
    from kizuna_infra.stack import KizunaStack

    app = cdk.App(context={**SKIP_BUNDLING, **json.loads(context_json)})
    stack = KizunaStack(app)
    template = Template.from_stack(stack).to_json()
    check_template(template)  # the local runtime refuses what AWS would refuse
    return json.dumps(template)


def kizuna_template(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The synthesized ``KizunaStack`` (asset bundling skipped), cached per context.

    Synthesis goes through jsii and takes a couple of seconds; the result is cached for the
    process. Returns a fresh copy each call.
    """
    template: dict[str, Any] = json.loads(_synth(json.dumps(dict(context or {}), sort_keys=True)))
    return copy.deepcopy(template)


def load_template(path: Path) -> dict[str, Any]:
    """A template written by ``cdk synth`` (``cdk.out/<Stack>.template.json``)."""
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded
