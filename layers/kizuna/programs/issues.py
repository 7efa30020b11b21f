"""What the program and campaign loaders share: an error carrying every issue found, a YAML
file read as a mapping, pydantic's errors in the loaders' words, and a folder loaded file
by file with every file's issues kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import ValidationError

from kizuna.domain import strict_yaml

IssueT = TypeVar("IssueT")
LoadedT = TypeVar("LoadedT")


class IssuesError(Exception, Generic[IssueT]):
    """Every issue found, one per line in the message."""

    def __init__(self, issues: list[IssueT]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def read_yaml(path: Path, fail: Callable[[str], Exception]) -> Any:
    """The parsed document; ``fail(message)`` is raised when it is not valid YAML."""
    try:
        return strict_yaml.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML: {exc}") from exc


def pydantic_errors(
    exc: ValidationError, *, union: str, choices: str
) -> Iterator[tuple[list[Any], str]]:
    """Each error's location and message: ``unknown field`` for an extra one, and ``unknown
    <union> type; use one of <choices>`` for a wrong discriminator."""
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "union_tag_invalid":
            message = f"unknown {union} type; use one of {choices}"
        yield list(err["loc"]), message


def load_folder(
    directory: Path,
    load: Callable[[Path], LoadedT],
    error: type[IssuesError[IssueT]],
) -> tuple[list[LoadedT], list[IssueT]]:
    """``load`` on every YAML file of ``directory`` (sorted); what loaded, and the issues of
    every file that did not."""
    loaded: list[LoadedT] = []
    issues: list[IssueT] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            loaded.append(load(path))
        except error as exc:
            issues.extend(exc.issues)
    return loaded, issues
