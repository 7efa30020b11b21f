"""What every Kizuna Lambda function shares, and how its code asset is built.

Every function runs python3.13 on arm64 with the dependency and kizuna layers (score also
with the scoring layer), logs to its own log group through an explicit role (no
account-wide managed policy), and carries ``kizuna:function`` Metadata naming its
``functions/<name>`` folder, which the local runtime reads.

A function whose handler needs data files (evaluate and journey read ``programs/``, send
also ``templates/``) gets them copied next to ``handler.py`` by local bundling, where
``kizuna.programs.bundle.resolve_dir`` finds them (cwd is /var/task). Its asset hash is
computed from every file that goes into the bundle, so editing a program or a template
changes the hash and redeploys the function.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict, Unpack, cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, Duration, ILocalBundling
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from kizuna.events.custom import Vocabulary, vocabulary
from kizuna.runtime.config import load_config
from kizuna.runtime.settings import ENV_EVENT_BUS_NAME, ENV_KIZUNA_CONFIG
from kizuna_infra import names
from kizuna_infra.data import DataTables
from kizuna_infra.layers import local_only

DEFAULT_TIMEOUT = Duration.seconds(30)
DEFAULT_MEMORY_MB = 512
DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in names.ASSET_EXCLUDES)


def _files(root: Path) -> Iterator[Path]:
    """Files under ``root`` that go into an asset, in a stable order."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _excluded(d))
        for file in sorted(files):
            if not _excluded(file):
                yield Path(directory) / file


def bundle_hash(function_dir: Path, extras: Mapping[str, Path]) -> str:
    """Asset hash of a bundled function: every file's path in the bundle and its bytes."""
    digest = hashlib.sha256()
    for prefix, root in (("", function_dir), *sorted(extras.items())):
        for path in _files(root):
            relative = (Path(prefix) / path.relative_to(root)).as_posix()
            digest.update(relative.encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class FunctionBundler:
    """Copies ``functions/<name>/*`` and each extra folder (as ``<output>/<key>``)."""

    def __init__(self, function_dir: Path, extras: Mapping[str, Path]) -> None:
        self.function_dir = function_dir
        self.extras = dict(extras)

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        ignore = shutil.ignore_patterns(*names.ASSET_EXCLUDES)
        output = Path(output_dir)
        shutil.copytree(self.function_dir, output, ignore=ignore, dirs_exist_ok=True)
        for folder, source in self.extras.items():
            shutil.copytree(source, output / folder, ignore=ignore, dirs_exist_ok=True)
        return True


def function_code(
    source_root: Path, folder: str, extras: Mapping[str, Path] | None = None
) -> lambda_.Code:
    """``functions/<folder>`` as is, or bundled with ``extras`` (name in the bundle -> path)."""
    function_dir = source_root / names.FUNCTIONS_DIR / folder
    if not function_dir.is_dir():
        raise FileNotFoundError(f"no function folder {function_dir}")
    if not extras:
        return lambda_.Code.from_asset(str(function_dir), exclude=list(names.ASSET_EXCLUDES))
    for source in extras.values():
        if not source.is_dir():
            raise FileNotFoundError(f"no folder {source} to bundle with functions/{folder}")
    return lambda_.Code.from_asset(
        str(function_dir),
        exclude=list(names.ASSET_EXCLUDES),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle_hash(function_dir, extras),
        bundling=local_only(FunctionBundler(function_dir, extras)),
    )


class SharedProps(TypedDict):
    """What every function of one Kizuna app shares; a construct making several functions
    builds it once and passes it on as ``**shared``."""

    layers: list[lambda_.ILayerVersion]
    source_root: Path  # holds functions/
    tracing: NotRequired[bool]
    log_retention: NotRequired[logs.RetentionDays]


class FunctionProps(SharedProps):
    """What a caller says about one function (:class:`KizunaFunction`'s keyword arguments)."""

    folder: str  # functions/<folder>/handler.py
    description: str
    environment: Mapping[str, str]
    service_name: NotRequired[str]  # POWERTOOLS_SERVICE_NAME; kizuna-<folder> by default
    extras: NotRequired[Mapping[str, Path] | None]  # bundled next to handler.py
    timeout: NotRequired[Duration]
    memory_size: NotRequired[int]


@dataclass(frozen=True)
class Wiring:
    """What every construct of one Kizuna app is built with: the bus, the tables, what its
    functions share, and the Kizuna configuration as the ``KIZUNA_CONFIG`` JSON string."""

    bus: events.IEventBus
    tables: DataTables
    shared: SharedProps
    config_json: str = "{}"

    def environment(self, more: Mapping[str, str] | None = None) -> dict[str, str]:
        """What most functions read: the customers and activity tables, the bus, the
        configuration, and ``more``."""
        return {
            **self.tables.environment,
            ENV_EVENT_BUS_NAME: self.bus.event_bus_name,
            ENV_KIZUNA_CONFIG: self.config_json,
            **(more or {}),
        }

    def vocabulary(self) -> Vocabulary:
        """The attributes and events the configuration declares (what programs and segments
        may name, which events the bus archives)."""
        return vocabulary(load_config(self.config_json))


class KizunaFunction(Construct):
    """The one way to make a Kizuna function: ``<id>/Function``, its ``Role`` and its
    ``LogGroup``, named by the caller's ``construct_id`` (keyword arguments:
    :class:`FunctionProps`)."""

    def __init__(self, scope: Construct, construct_id: str, **props: Unpack[FunctionProps]) -> None:
        super().__init__(scope, construct_id)
        folder = props["folder"]
        self.folder = folder
        self.tracing = props.get("tracing", False)
        self.log_group = logs.LogGroup(
            self, names.LOG_GROUP_ID, retention=props.get("log_retention", DEFAULT_LOG_RETENTION)
        )
        # An explicit role: logs are granted on this function's own log group instead of the
        # account-wide AWSLambdaBasicExecutionRole managed policy.
        self.role = iam.Role(
            self,
            names.ROLE_ID,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Kizuna {folder} function",
        )
        self.log_group.grant_write(self.role)

        self.function = lambda_.Function(
            self,
            names.FUNCTION_ID,
            description=props["description"],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=names.FUNCTION_HANDLER,
            code=function_code(props["source_root"], folder, props.get("extras")),
            layers=props["layers"],
            memory_size=props.get("memory_size", DEFAULT_MEMORY_MB),
            timeout=props.get("timeout", DEFAULT_TIMEOUT),
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE if self.tracing else lambda_.Tracing.DISABLED,
            environment={
                **props["environment"],
                names.ENV_POWERTOOLS_SERVICE_NAME: props.get(
                    "service_name", f"{names.SERVICE_NAME_PREFIX}{folder}"
                ),
                names.ENV_POWERTOOLS_METRICS_NAMESPACE: names.METRICS_NAMESPACE,
                names.ENV_POWERTOOLS_LOG_LEVEL: "INFO",
            },
        )
        # Tells the local runtime which functions/<name>/handler.py this resource runs.
        cfn_function = cast(lambda_.CfnFunction, self.function.node.default_child)
        cfn_function.add_metadata(names.FUNCTION_METADATA_KEY, folder)
