"""Load and validate campaigns: every problem with its file and field, before anything is
applied or sent."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kizuna.campaigns.engine import CONVERSION_EVENT, METRIC_CHANNELS
from kizuna.campaigns.model import (
    RESERVED_VARIANT_NAMES,
    Campaign,
    LocalTimeSchedule,
    OnceSchedule,
)
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.programs.issues import IssuesError, load_folder, pydantic_errors, read_yaml
from kizuna.programs.loader import GOAL_EVENTS, TemplateCatalog, unknown_topic
from kizuna.programs.pattern_rules import condition_problems
from kizuna.programs.value_rules import value_problems
from kizuna.programs.view_rules import view_condition_problems


@dataclass(frozen=True)
class CampaignIssue:
    file: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}" + (f" [{self.field}]" if self.field else "") + f": {self.message}"


class CampaignError(IssuesError[CampaignIssue]):
    """A campaign that cannot be applied, with every issue."""


def _pydantic_issues(file: str, exc: ValidationError) -> list[CampaignIssue]:
    issues = []
    errors = pydantic_errors(exc, union="schedule", choices="once, local_time, recurring")
    for loc, message in errors:
        field = ".".join(str(p) for p in loc if p not in ("once", "local_time", "recurring"))
        issues.append(CampaignIssue(file, field or None, message.removeprefix("Value error, ")))
    return issues


def check_campaign(
    file: str,
    campaign: Campaign,
    *,
    templates: TemplateCatalog | None = None,
    segment_names: Collection[str] | None = None,
    program_ids: Collection[str] = (),
    base_dir: Path | None = None,
    vocab: Vocabulary = BUILTIN,
    webhooks: Collection[str] | None = None,
) -> list[CampaignIssue]:
    """What the model alone cannot know: names that must exist elsewhere (the audience's
    conditions may name the shop's declared attributes and counters, ``vocab``; its
    ``webhook``, one of the configuration's endpoints, ``webhooks``)."""
    issues: list[CampaignIssue] = []
    if webhooks is not None and campaign.webhook is not None and campaign.webhook not in webhooks:
        known = ", ".join(sorted(webhooks)) or "none declared"
        issues.append(
            CampaignIssue(
                file, "webhook", f"{campaign.webhook!r} is not a configured endpoint ({known})"
            )
        )
    if campaign.topic is not None and (problem := unknown_topic("topic", campaign.topic, vocab)):
        issues.append(CampaignIssue(file, "topic", problem))
    for problem in view_condition_problems(campaign.audience.conditions, "conditions", vocab):
        issues.append(CampaignIssue(file, "audience", problem))
    if campaign.goal is not None:
        if campaign.goal.event not in GOAL_EVENTS:
            issues.append(
                CampaignIssue(file, "goal.event", f"unknown event type {campaign.goal.event!r}")
            )
        elif campaign.goal.event != CONVERSION_EVENT:
            # the console, the winner test and the report count orders: another event was
            # accepted and measured as orders all the same
            issues.append(
                CampaignIssue(
                    file,
                    "goal.event",
                    f"a campaign's conversions are orders ({CONVERSION_EVENT}); "
                    f"{campaign.goal.event!r} is not measured (a program's goal may be any event)",
                )
            )
        from kizuna.campaigns.engine import CONVERSION_FIELDS, CONVERSION_VALUES

        goal = campaign.goal.conditions
        problems = condition_problems(
            goal, "conditions", to_eventbridge=False, fields=CONVERSION_FIELDS
        )
        problems = problems or value_problems(goal, "conditions", CONVERSION_VALUES)
        issues += [CampaignIssue(file, "goal", problem) for problem in problems]
    for variant in campaign.variants:
        if variant.name in RESERVED_VARIANT_NAMES:
            issues.append(
                CampaignIssue(
                    file,
                    "variants",
                    f"{variant.name!r} is the name of an arm the ledger and reports already "
                    f"use ({', '.join(sorted(RESERVED_VARIANT_NAMES))}); choose another",
                )
            )
    if campaign.winner is not None and campaign.winner.metric in METRIC_CHANNELS:
        metric = campaign.winner.metric
        reporting = METRIC_CHANNELS[metric]
        if not any(str(c) in reporting for c in campaign.channels):
            issues.append(
                CampaignIssue(
                    file,
                    "winner.metric",
                    f"{metric!r} is reported on {', '.join(sorted(reporting))} only; this "
                    f"campaign sends on {', '.join(map(str, campaign.channels))}: add one of "
                    f"them, or choose 'goal'",
                )
            )
    if campaign.id in program_ids:
        issues.append(
            CampaignIssue(file, "id", f"{campaign.id!r} is a program's id; choose another")
        )
    if segment_names is not None:
        known = ", ".join(sorted(segment_names)) or "none defined"
        for name in campaign.audience.segments:
            if name not in segment_names:
                issues.append(
                    CampaignIssue(file, "audience.segments", f"no segment {name!r} ({known})")
                )
    if templates is not None:
        for template in campaign.templates():
            for channel in campaign.channels:
                for part in templates.parts_missing(campaign.id, template, channel):
                    issues.append(
                        CampaignIssue(
                            file, "template", f"template {template!r} has no {part} for {channel}"
                        )
                    )
    if campaign.audience.customer_list and base_dir is not None:
        path = base_dir / campaign.audience.customer_list
        if not path.is_file():
            issues.append(CampaignIssue(file, "audience.customer_list", f"no file {path}"))
    return issues


def parse_campaign(raw: Any, file: str = "<campaign>") -> Campaign:
    """A campaign from data (a parsed YAML or JSON document)."""
    if not isinstance(raw, dict):
        raise CampaignError([CampaignIssue(file, None, "a campaign is a mapping")])
    try:
        return Campaign.model_validate(raw)
    except ValidationError as exc:
        raise CampaignError(_pydantic_issues(file, exc)) from exc


def load_campaign(
    path: Path,
    *,
    templates: TemplateCatalog | None = None,
    segment_names: Collection[str] | None = None,
    program_ids: Collection[str] = (),
    vocab: Vocabulary = BUILTIN,
) -> Campaign:
    """Parse and validate one campaign file; raise CampaignError with every issue found."""
    file = str(path)
    raw = read_yaml(path, lambda message: CampaignError([CampaignIssue(file, None, message)]))
    campaign = parse_campaign(raw, file)
    issues = []
    if path.stem != campaign.id:
        issues.append(CampaignIssue(file, "id", f"{campaign.id!r} must match the file name"))
    issues += check_campaign(
        file,
        campaign,
        templates=templates,
        segment_names=segment_names,
        program_ids=program_ids,
        base_dir=path.parent,
        vocab=vocab,
    )
    if issues:
        raise CampaignError(issues)
    return campaign


def load_campaigns(
    directory: Path,
    *,
    templates: TemplateCatalog | None = None,
    segment_names: Collection[str] | None = None,
    program_ids: Collection[str] = (),
    vocab: Vocabulary = BUILTIN,
) -> tuple[list[Campaign], list[CampaignIssue]]:
    """Every campaign in a folder and every issue across them."""

    def load(path: Path) -> Campaign:
        return load_campaign(
            path,
            templates=templates,
            segment_names=segment_names,
            program_ids=program_ids,
            vocab=vocab,
        )

    return load_folder(directory, load, CampaignError)


def one_off(campaign: Campaign) -> bool:
    """A campaign that runs once (done after its occurrence)."""
    return isinstance(campaign.schedule, OnceSchedule | LocalTimeSchedule)
