"""The project's Kizuna configuration, found the same way by every ``kizuna`` command.

One configuration decides ranks, points and lifecycle everywhere: the functions of a
deployed stack get it from ``cdk deploy`` (context ``kizuna:config`` in ``cdk.json``, as the
``KIZUNA_CONFIG`` environment variable), and every command that computes or shows customer
state (``kizuna import``, ``kizuna local run|serve``, ``kizuna render``, ``kizuna campaigns
estimate|send --dry-run``, ``kizuna report``, ``kizuna segments``, ``kizuna programs
validate``) resolves it in this order:

1. ``--config FILE`` (a JSON file of :class:`~kizuna.runtime.config.KizunaConfig`);
2. the ``KIZUNA_CONFIG`` environment variable (the JSON itself, as the functions read it);
3. ``context["kizuna:config"]`` of the project's ``cdk.json``: the nearest one from
   ``$KIZUNA_PROJECT_ROOT`` or the working directory upwards, else this checkout's;
4. the defaults.

So an order imported with ``kizuna import`` gets the rank the same order gets as an event
on ``kizuna local serve`` or on the deployed stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.settings import ENV_KIZUNA_CONFIG

CONTEXT_KEY = "kizuna:config"  # the CDK context key (kizuna_infra.names.CONTEXT_CONFIG_KEY)
PROJECT_ROOT_ENV = "KIZUNA_PROJECT_ROOT"


class ConfigError(ValueError):
    """A configuration that cannot be read or is not valid; the message names its source."""


@dataclass(frozen=True)
class ProjectConfig:
    """The configuration as written (``raw``, what a stack is synthesized with), validated
    (``config``), and where it was found (``source``)."""

    raw: dict[str, Any]
    source: str

    @cached_property
    def config(self) -> KizunaConfig:
        try:
            return KizunaConfig.model_validate(self.raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{self.source}: not a valid Kizuna configuration ({where}: {first['msg']})"
            ) from exc


def project_config(path: Path | None = None) -> ProjectConfig:
    """The configuration every command uses (see the module's docstring for the order)."""
    if path is not None:
        return _checked(_json(_read(path), f"--config {path}"), f"--config {path}")
    from_env = os.environ.get(ENV_KIZUNA_CONFIG)
    if from_env is not None and from_env.strip():
        return _checked(_json(from_env, ENV_KIZUNA_CONFIG), ENV_KIZUNA_CONFIG)
    cdk_json = find_cdk_json()
    if cdk_json is not None:
        data = _json(_read(cdk_json), str(cdk_json))
        context = data.get("context", {}) if isinstance(data, dict) else {}
        if isinstance(context, dict) and CONTEXT_KEY in context:
            return _checked(context[CONTEXT_KEY], f"{cdk_json} ({CONTEXT_KEY})")
    return ProjectConfig({}, "defaults")


def find_cdk_json() -> Path | None:
    """The project's ``cdk.json``: under ``$KIZUNA_PROJECT_ROOT``, else the nearest from the
    working directory upwards, else this checkout's."""
    roots: list[Path] = []
    if os.environ.get(PROJECT_ROOT_ENV):
        roots.append(Path(os.environ[PROJECT_ROOT_ENV]))
    cwd = Path.cwd()
    roots += [cwd, *cwd.parents, REPO_ROOT]
    for root in roots:
        if (root / "cdk.json").is_file():
            return root / "cdk.json"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc


def _json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not JSON ({exc.msg}, line {exc.lineno})") from exc


def _checked(raw: Any, source: str) -> ProjectConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a Kizuna configuration is a JSON object")
    found = ProjectConfig(raw, source)
    _ = found.config  # validated now: a wrong setting fails before anything runs
    return found
