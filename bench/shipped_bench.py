"""What each Lambda function ships, before and after the runtime/tooling split, in one run.

Per function: its code asset (``functions/<name>`` plus the data folders the CDK app bundles
next to the handler: programs, templates, segments), the ``kizuna`` layer (``layers/kizuna``)
and the dependency layer(s) it gets — what ``pip install --platform manylinux2014_aarch64
--only-binary=:all:`` puts in the layer for Lambda, the same command as
``kizuna_infra.layers.PipInstallBundler``, cached under ``out/layer-cache/<requirements
hash>`` so a rerun does not download again.

*After* is this working tree; *before* is commit ``BEFORE_COMMIT`` (the last one before the
split, when ``layers/kizuna`` also held the CLI, local runtime, reports, demo and simulation
and every function got numpy), exported with ``git archive`` into a temporary directory in
the same run. Without that commit (a shallow clone) the before column is skipped, loudly;
without a package index the dependency bytes are skipped, loudly.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "63fce5f"
LAYER_CACHE = ROOT / "out" / "layer-cache"
# Data folders bundled next to a handler (kizuna_infra.programs: evaluate and journey get
# programs and, when the folder exists, segments; kizuna_infra.delivery: send gets programs
# and templates). The same at BEFORE_COMMIT.
EXTRAS: dict[str, tuple[str, ...]] = {
    "evaluate": ("programs", "segments"),
    "journey": ("programs", "segments"),
    "send": ("programs", "templates"),
    "campaign": ("templates", "segments"),
    "api": ("programs", "segments", "templates"),
}
COMMON_REQUIREMENTS = "layers/requirements.txt"
# The score function's own layer (kizuna_infra.layers.Layers.scoring), where it exists.
SCORING_REQUIREMENTS = "layers/requirements-scoring.txt"
SCORING_FUNCTION = "score"


@dataclass(frozen=True)
class Size:
    files: int = 0
    bytes: int = 0
    lines: int = 0

    def __add__(self, other: Size) -> Size:
        return Size(self.files + other.files, self.bytes + other.bytes, self.lines + other.lines)


def files_under(root: Path) -> Iterator[Path]:
    """Files that go into an asset built from ``root`` (none if it does not exist): all but
    ``kizuna_infra.names.ASSET_EXCLUDES``, matched as the layers' bundling matches them."""
    from kizuna_infra import names

    excluded = shutil.ignore_patterns(*names.ASSET_EXCLUDES)
    for directory, subdirs, files in os.walk(root):
        left_out = excluded(directory, [*subdirs, *files])
        subdirs[:] = sorted(set(subdirs) - left_out)
        yield from (Path(directory) / file for file in sorted(files) if file not in left_out)


def measure(roots: Iterable[Path], *, lines: bool = True) -> Size:
    """Files, bytes and text lines (files that decode as UTF-8) under ``roots``."""
    total = Size()
    for root in roots:
        for path in files_under(root):
            data = path.read_bytes()
            count = 0
            if lines:
                try:
                    count = data.decode().count("\n")
                except UnicodeDecodeError:
                    count = 0
            total += Size(1, len(data), count)
    return total


def code_roots(tree: Path, function: str) -> list[Path]:
    """The function's own asset and the ``kizuna`` layer, as folders of ``tree``."""
    extras = [tree / name for name in EXTRAS.get(function, ()) if (tree / name).is_dir()]
    return [tree / "functions" / function, *extras, tree / "layers" / "kizuna"]


def requirement_files(tree: Path, function: str) -> list[Path]:
    """The requirements of every dependency layer ``function`` gets in ``tree``."""
    files = [tree / COMMON_REQUIREMENTS]
    scoring = tree / SCORING_REQUIREMENTS
    if function == SCORING_FUNCTION and scoring.is_file():
        files.append(scoring)
    return files


def functions_of(tree: Path) -> list[str]:
    return sorted(p.parent.name for p in (tree / "functions").glob("*/handler.py"))


# --- The "before" tree ------------------------------------------------------------------------


def commit_exists(commit: str, repo: Path = ROOT) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@lru_cache(maxsize=4)
def exported_tree(commit: str = BEFORE_COMMIT) -> Path | None:
    """``git archive <commit>`` extracted into a temporary directory (removed at exit), or
    None, said loudly, when this clone does not have the commit."""
    if not commit_exists(commit):
        print(
            f"\n*** BEFORE SKIPPED: commit {commit} is not in this clone (shallow clone?). "
            "Fetch the full history to measure the before column. ***"
        )
        return None
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    target = Path(tempfile.mkdtemp(prefix=f"kizuna-{commit}-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


# --- Dependency layers --------------------------------------------------------------------------


def pip_command(requirements: Path, target: Path) -> list[str]:
    """PipInstallBundler's own command (imported lazily: it starts the jsii runtime)."""
    from kizuna_infra.layers import PipInstallBundler

    return PipInstallBundler(requirements).command(str(target))


def cache_key(requirements: Path) -> str:
    from kizuna_infra import names
    from kizuna_infra.layers import requirements_hash

    return requirements_hash(
        requirements,
        platform=names.LAYER_PIP_PLATFORM,
        python_version=names.LAYER_PYTHON_VERSION,
    )[:16]


def installed_layer(requirements: Path, cache: Path = LAYER_CACHE) -> Path | None:
    """The layer pip builds from ``requirements`` (cached per requirements hash), or None
    when pip fails (no index reachable): said, and the bytes skipped."""
    folder = cache / cache_key(requirements)
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result = subprocess.run(
        pip_command(requirements, folder), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
        print(f"\n*** pip could not build {requirements.name}: {tail[0]} — bytes skipped ***")
        return None
    (folder / "requirements.txt").write_bytes(requirements.read_bytes())
    done.touch()
    return folder


def dependency_size(requirements: Sequence[Path]) -> Size | None:
    total = Size()
    for file in requirements:
        layer = installed_layer(file)
        if layer is None:
            return None
        total += measure([layer / "python"], lines=False)
    return total


# --- The bench ------------------------------------------------------------------------------------


def tree_sizes(tree: Path) -> dict[str, dict[str, Any]]:
    """Per function of ``tree``: own code (function + data + kizuna layer) and dependencies."""
    out: dict[str, dict[str, Any]] = {}
    for function in functions_of(tree):
        code = measure(code_roots(tree, function))
        deps = dependency_size(requirement_files(tree, function))
        out[function] = {
            "code_files": code.files,
            "code_bytes": code.bytes,
            "code_lines": code.lines,
            "layer_lines": measure([tree / "layers" / "kizuna"]).lines,
            "dependency_bytes": None if deps is None else deps.bytes,
            "total_bytes": None if deps is None else code.bytes + deps.bytes,
            "requirements": [str(p.relative_to(tree)) for p in requirement_files(tree, function)],
        }
    return out


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _ratio(after: float | None, before: float | None) -> str:
    return "-" if not after or not before else f"{after / before:.2f}x"


def run(before_commit: str = BEFORE_COMMIT) -> dict[str, Any]:
    from bench.common import print_table

    after = tree_sizes(ROOT)
    before_tree = exported_tree(before_commit)
    before = tree_sizes(before_tree) if before_tree else {}
    rows = []
    for function, a in after.items():
        b = before.get(function, {})
        rows.append(
            [
                function,
                b.get("code_lines", "-"),
                a["code_lines"],
                _ratio(a["code_lines"], b.get("code_lines")),
                _mb(b.get("code_bytes")),
                _mb(a["code_bytes"]),
                _mb(b.get("dependency_bytes")),
                _mb(a["dependency_bytes"]),
                _mb(b.get("total_bytes")),
                _mb(a["total_bytes"]),
                _ratio(a["total_bytes"], b.get("total_bytes")),
            ]
        )
    print_table(
        f"Shipped per function: before = {before_commit}"
        f"{'' if before_tree else ' (SKIPPED)'}, after = this working tree; code = function "
        "folder + bundled data + kizuna layer; deps = pip-installed layer(s), MB",
        [
            "function",
            "lines before",
            "lines after",
            "lines a/b",
            "code MB before",
            "code MB after",
            "deps MB before",
            "deps MB after",
            "total MB before",
            "total MB after",
            "total a/b",
        ],
        rows,
    )
    return {
        "before_commit": before_commit if before_tree else None,
        "after": after,
        "before": before,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    run()
