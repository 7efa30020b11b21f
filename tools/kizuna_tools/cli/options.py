"""Option types shared by the ``kizuna`` commands (one definition each, reused everywhere),
and option groups: a dataclass of options that a command takes as one parameter."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from typer.models import ParameterInfo

CustomersTable = Annotated[str | None, typer.Option(envvar="CUSTOMERS_TABLE")]
ActivityTable = Annotated[str | None, typer.Option(envvar="ACTIVITY_TABLE", help="activity table")]
Endpoint = Annotated[str | None, typer.Option(help="e.g. the endpoint of `kizuna local serve`")]
Region = Annotated[str | None, typer.Option(envvar="AWS_REGION")]
Profile = Annotated[str | None, typer.Option(envvar="AWS_PROFILE")]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="KizunaConfig JSON file (default: $KIZUNA_CONFIG, else cdk.json's kizuna:config, "
        "else defaults)",
    ),
]

R = TypeVar("R")


def session(region: str | None, profile: str | None = None) -> Any:
    """A boto3 session for ``--region`` and ``--profile``."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


@dataclass(frozen=True)
class Aws:
    """Where the AWS clients go: ``--endpoint-url``, ``--region``, ``--profile``."""

    endpoint_url: Endpoint = None
    region: Region = None
    profile: Profile = None

    @cached_property
    def boto3_session(self) -> Any:
        return session(self.region, self.profile)

    def client(self, service: str) -> Any:
        return self.boto3_session.client(service, endpoint_url=self.endpoint_url)

    def resource(self, service: str) -> Any:
        return self.boto3_session.resource(service, endpoint_url=self.endpoint_url)


def option_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let ``command`` take a group of options as one dataclass parameter.

    On the command line, each parameter typed by a dataclass stands for its fields' options
    (in its place, so ``--help`` lists them where they were); the command receives the
    dataclass. Only fields annotated with a ``typer.Option``/``typer.Argument`` become options.
    """
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        group = param.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = get_type_hints(group, include_extras=True)
        names = [f.name for f in dataclasses.fields(group) if _is_option(hints[f.name])]
        groups[param.name] = (group, names)
        for f in dataclasses.fields(group):
            if f.name in names:
                default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
                params.append(
                    inspect.Parameter(
                        f.name,
                        inspect.Parameter.KEYWORD_ONLY,
                        default=default,
                        annotation=hints[f.name],
                    )
                )

    @functools.wraps(command)
    def grouped(**kwargs: Any) -> R:
        for name, (group, names) in groups.items():
            kwargs[name] = group(**{field: kwargs.pop(field) for field in names})
        return command(**kwargs)

    grouped.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return grouped


def _is_option(hint: Any) -> bool:
    metadata = getattr(hint, "__metadata__", ())
    return any(isinstance(m, ParameterInfo) for m in metadata)
