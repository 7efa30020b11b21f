"""The Lambda layers of the Kizuna functions, built by local bundling (no Docker).

Every function gets two:

* dependencies: ``layers/requirements.txt`` installed for python3.13 / arm64 with
  ``pip install --platform manylinux2014_aarch64 --only-binary=:all:`` (wheels only, so the
  host's Python and CPU do not matter);
* kizuna: the shared ``layers/kizuna`` package, copied as is.

The score function alone gets a third, scoring: ``layers/requirements-scoring.txt`` (numpy,
most of the dependency bytes) installed the same way, so no other function ships it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import cast

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    ILocalBundling,
)
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from kizuna_infra import names

LAYER_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAYER_ARCHITECTURE = lambda_.Architecture.ARM_64


class LocalBundlingError(RuntimeError):
    """A layer could not be built on this machine."""


@jsii.implements(ILocalBundling)
class PipInstallBundler:
    """Installs a requirements file into ``<output>/python`` for the Lambda platform."""

    def __init__(
        self,
        requirements: Path,
        *,
        platform: str = names.LAYER_PIP_PLATFORM,
        python_version: str = names.LAYER_PYTHON_VERSION,
    ) -> None:
        self.requirements = requirements
        self.platform = platform
        self.python_version = python_version

    def command(self, output_dir: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--platform",
            self.platform,
            # newer wheels (numpy >= 2.3) are manylinux_2_28 only; Lambda's AL2023 has glibc 2.34
            *[arg for extra in names.LAYER_PIP_EXTRA_PLATFORMS for arg in ("--platform", extra)],
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
            "--no-compile",  # the host's .pyc files would be for the wrong Python
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(Path(output_dir) / "python"),
            "-r",
            str(self.requirements),
        ]

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            self.command(output_dir), check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise LocalBundlingError(
                f"pip install -r {self.requirements.name} failed (rc={result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return True


@jsii.implements(ILocalBundling)
class CopyPackageBundler:
    """Copies a Python package directory into ``<output>/python/<package>``."""

    def __init__(self, package_dir: Path) -> None:
        self.package_dir = package_dir

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        target = Path(output_dir) / "python" / self.package_dir.name
        shutil.copytree(
            self.package_dir,
            target,
            ignore=shutil.ignore_patterns(*names.ASSET_EXCLUDES),
            dirs_exist_ok=True,
        )
        return True


def local_only(local: object) -> BundlingOptions:
    """Bundling options that only ever bundle on this machine (``local`` is an ILocalBundling)."""
    # The image is never pulled: local bundling always succeeds or raises.
    return BundlingOptions(
        image=DockerImage.from_registry(names.LOCAL_BUNDLING_IMAGE),
        # jsii calls try_bundle(output_dir, options) with the options struct positionally,
        # which the generated keyword-only Protocol stub cannot express.
        local=cast(ILocalBundling, local),
    )


def requirements_hash(requirements: Path, *, platform: str, python_version: str) -> str:
    """Asset hash of the dependency layer: changes only when what pip installs changes."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    digest.update(f"|{platform}|{python_version}".encode())
    return digest.hexdigest()


def pip_layer(
    scope: Construct, construct_id: str, *, layers_dir: Path, requirements_file: str
) -> lambda_.LayerVersion:
    """A layer of what pip installs from ``layers_dir/requirements_file`` for Lambda."""
    requirements = layers_dir / requirements_file
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description=f"Kizuna third-party dependencies ({names.LAYERS_DIR}/{requirements_file})",
        compatible_runtimes=[LAYER_RUNTIME],
        compatible_architectures=[LAYER_ARCHITECTURE],
        code=lambda_.Code.from_asset(
            str(layers_dir),
            # Only the requirements file matters, and it is fingerprinted by the custom hash.
            exclude=["*", f"!{requirements_file}"],
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=requirements_hash(
                requirements,
                platform=names.LAYER_PIP_PLATFORM,
                python_version=names.LAYER_PYTHON_VERSION,
            ),
            bundling=local_only(PipInstallBundler(requirements)),
        ),
    )


class Layers(Construct):
    """The dependency layer and the ``kizuna`` package layer (every function), and the
    scoring layer (the score function only)."""

    def __init__(self, scope: Construct, construct_id: str, *, source_root: Path) -> None:
        super().__init__(scope, construct_id)
        layers_dir = source_root / names.LAYERS_DIR
        package_dir = source_root / names.KIZUNA_PACKAGE_DIR

        self.dependencies = pip_layer(
            self,
            names.DEPENDENCIES_LAYER_ID,
            layers_dir=layers_dir,
            requirements_file=names.LAYER_REQUIREMENTS_FILE,
        )
        self.scoring_dependencies = pip_layer(
            self,
            names.SCORING_LAYER_ID,
            layers_dir=layers_dir,
            requirements_file=names.SCORING_REQUIREMENTS_FILE,
        )

        self.kizuna = lambda_.LayerVersion(
            self,
            names.KIZUNA_LAYER_ID,
            description="Kizuna shared package (layers/kizuna)",
            compatible_runtimes=[LAYER_RUNTIME],
            compatible_architectures=[LAYER_ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(package_dir),
                exclude=list(names.ASSET_EXCLUDES),
                bundling=local_only(CopyPackageBundler(package_dir)),
            ),
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        """What every function gets: third-party dependencies and the ``kizuna`` package."""
        return [self.dependencies, self.kizuna]

    @property
    def scoring(self) -> list[lambda_.ILayerVersion]:
        """The score function's layers: :attr:`all` and numpy."""
        return [self.dependencies, self.scoring_dependencies, self.kizuna]
