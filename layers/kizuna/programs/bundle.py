"""Where a function finds the program definitions and templates it was deployed with.

CDK bundles ``programs/`` and ``templates/`` next to each function's handler; on the local
runtime and in tests the repository's own folders are used.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kizuna

if TYPE_CHECKING:
    from kizuna.events.custom import Vocabulary

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
def load_deployed_segments(
    explicit_dir: str | None = None, vocab: Vocabulary | None = None
) -> dict[str, dict[str, Any]]:
    """Named segments bundled with the function (name -> conditions); none when the
    deployment has no ``segments/`` folder. ``vocab``: the deployed configuration's
    (``vocabulary(load_config(KIZUNA_CONFIG))``), which their conditions may name."""
    from kizuna.events.custom import BUILTIN
    from kizuna.segments import load_segments

    try:
        directory = resolve_dir("segments", explicit_dir)
    except FileNotFoundError:
        return {}
    found = load_segments(directory, vocab or BUILTIN)
    return {name: dict(s.conditions) for name, s in found.items()}


@lru_cache(maxsize=4)
def load_deployed_programs(
    directory: str, vocab: Vocabulary | None = None, segments_dir: str | None = None
) -> tuple[object, ...]:
    """The programs bundled with the function, validated against the deployed
    configuration's ``vocab`` (as at synth) and the named segments beside them
    (``segments_dir``, as :func:`load_deployed_segments` finds them)."""
    from kizuna.events.custom import BUILTIN
    from kizuna.programs.loader import ProgramError, load_programs

    programs, issues = load_programs(
        Path(directory),
        segment_names=load_deployed_segments(segments_dir, vocab),
        vocab=vocab or BUILTIN,
    )
    if issues:
        raise ProgramError(issues)
    return tuple(programs)
