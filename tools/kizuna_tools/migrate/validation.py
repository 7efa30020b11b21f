"""The migrated campaigns and programs checked by Kizuna's own validators, as ``kizuna
campaigns validate`` and ``kizuna programs validate`` check them, before anything is written.

The project is written to a scratch folder (segments, templates, campaigns, programs) and
every campaign is loaded by :class:`kizuna.services.campaign_admin.CampaignRules` (fields,
segments, template parts per channel and locale, the default locale, rendering), every
program by :func:`kizuna.programs.loader.load_programs` (schema, graph, conditions,
segments, templates), its templates rendered and its state machine compiled. What they
refuse is returned by the file it is about (``campaigns/<id>.yaml``), so the migration can
hold that object and say what is missing, instead of writing one that ``validate`` refuses.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.migrate.campaigns import CampaignsResult, write_campaigns
from kizuna_tools.migrate.library import Library
from kizuna_tools.migrate.segments import SegmentsResult, write_segments


def refusals(
    config: KizunaConfig,
    segments: SegmentsResult,
    library: Library,
    campaigns: CampaignsResult,
    now: datetime,
) -> dict[str, list[str]]:
    """``campaigns/<id>.yaml`` or ``programs/<id>.yaml`` -> what Kizuna's validators refuse
    in it (only the files with problems)."""
    with tempfile.TemporaryDirectory(prefix="kizuna-migrate-") as scratch:
        root = Path(scratch)
        (root / "kizuna-config.json").write_text(
            json.dumps(config.model_dump(mode="json")), encoding="utf-8"
        )
        write_segments(root, segments)
        library.write(root)
        write_campaigns(root, campaigns)
        for folder in ("segments", "templates", "campaigns", "programs"):
            (root / folder).mkdir(exist_ok=True)
        found: dict[str, list[str]] = {}
        names = _segment_names(root, config, found)
        for rel, problem in _campaign_problems(root, config, names, now):
            found.setdefault(rel, []).append(problem)
        for rel, problem in _program_problems(root, config, names, now):
            found.setdefault(rel, []).append(problem)
        return found


def _segment_names(root: Path, config: KizunaConfig, found: dict[str, list[str]]) -> set[str]:
    from kizuna.events.custom import vocabulary
    from kizuna.segments import SegmentError, load_segments

    try:
        return set(load_segments(root / "segments", vocabulary(config)))
    except SegmentError:  # each segment was checked when translated: none is named then
        return set()


def _campaign_problems(
    root: Path, config: KizunaConfig, segment_names: set[str], now: datetime
) -> list[tuple[str, str]]:
    from kizuna.campaigns.loader import CampaignError
    from kizuna.events.custom import vocabulary
    from kizuna.segments import load_segments
    from kizuna.services.campaign_admin import CampaignRules

    segments = dict(load_segments(root / "segments", vocabulary(config))) if segment_names else {}
    rules = CampaignRules(
        config,
        root / "templates",
        segments,
        frozenset(p.stem for p in (root / "programs").glob("*.yaml")),
    )
    problems: list[tuple[str, str]] = []
    for path in sorted((root / "campaigns").glob("*.yaml")):
        try:
            rules.load_file(path, now)
        except CampaignError as exc:
            for issue in exc.issues:
                where = f"[{issue.field}] " if issue.field else ""
                problems.append((f"campaigns/{path.name}", where + issue.message))
    return problems


def _program_problems(
    root: Path, config: KizunaConfig, segment_names: set[str], now: datetime
) -> list[tuple[str, str]]:
    from kizuna.delivery.templates import Renderer
    from kizuna.events.custom import vocabulary
    from kizuna.programs.loader import load_programs
    from kizuna_tools.aslcheck import check_programs
    from kizuna_tools.templatecheck import program_template_problems

    directory = root / "programs"
    renderer = Renderer(root / "templates", default_locale=config.contact.default_locale)
    programs, issues = load_programs(
        directory,
        templates=renderer,
        segment_names=segment_names,
        vocab=vocabulary(config),
        webhooks=tuple(config.webhooks),
    )
    issues += program_template_problems(programs, renderer, config, directory, now)
    problems = [
        (
            f"programs/{Path(issue.file).stem}.yaml",
            (f"[step {issue.step}] " if issue.step else "") + issue.message,
        )
        for issue in issues
    ]
    for program_id, found in check_programs(programs, npm=False).items():
        problems += [(f"programs/{program_id}.yaml", f"state machine: {p}") for p in found]
    return problems


__all__ = ["refusals"]
