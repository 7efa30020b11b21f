"""Where a function finds the program definitions and templates it was deployed with.

CDK bundles ``programs/`` and ``templates/`` next to each function's handler; on the local
runtime and in tests the repository's own folders are used.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import kizuna

REPO_ROOT = Path(kizuna.__file__).resolve().parents[2]


def resolve_dir(name: str, explicit: str | None = None, near: Path | None = None) -> Path:
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if near is not None:
        candidates.append(near / name)
    candidates += [Path.cwd() / name, REPO_ROOT / name]
    for path in candidates:
        if path.is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"no {name}/ folder found (tried {tried})")


@lru_cache(maxsize=4)
def load_deployed_segments(explicit_dir: str | None = None) -> dict[str, dict[str, Any]]:
    """Named segments bundled with the function (name -> conditions); none when the
    deployment has no ``segments/`` folder."""
    from kizuna.segments import load_segments

    try:
        directory = resolve_dir("segments", explicit_dir)
    except FileNotFoundError:
        return {}
    return {name: dict(s.conditions) for name, s in load_segments(directory).items()}


@lru_cache(maxsize=4)
def load_deployed_programs(directory: str) -> tuple[object, ...]:
    from kizuna.programs.loader import ProgramError, load_programs

    programs, issues = load_programs(Path(directory), segment_names=load_deployed_segments())
    if issues:
        raise ProgramError(issues)
    return tuple(programs)
