"""Templates checked against the context a send gives them, before anything is deployed.

``kizuna programs validate`` and ``kizuna campaigns validate`` render every send step's (and
campaign's) template, in every locale folder and on every channel, with the context the
send path builds (:func:`kizuna.services.send.message_context`,
:func:`kizuna.services.campaign.campaign_context`) for a sample customer of that locale with
every field filled in: an undefined name, an attribute the sandbox refuses (in a branch the
sample would not take too), a render bound crossed or a part rendered empty is a problem
with the program, step and channel, instead of a failed send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kizuna.delivery.samples import (
    CHECK_SECRET,
    SAMPLE_UNSUBSCRIBE_URL,
    sample_coupon,
    sample_recipient,
)
from kizuna.delivery.templates import Renderer
from kizuna.programs.loader import ProgramIssue
from kizuna.programs.model import Program, SendStep
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.copurchase import recommend


def _recommendations(cfg: KizunaConfig) -> list[dict[str, Any]]:
    best = [p.model_dump() for p in cfg.catalog.best_sellers]
    return recommend([], set(), {}, best, cfg.catalog.recommendations)


def program_template_problems(
    programs: Iterable[Program],
    renderer: Renderer,
    cfg: KizunaConfig,
    directory: Path,
    now: datetime | None = None,
) -> list[ProgramIssue]:
    """Every send step's template rendered for each of its channels and locales."""
    from kizuna.services.send import message_context

    at = now or datetime.now(UTC)
    issues: list[ProgramIssue] = []
    for program in programs:
        file = str(directory / f"{program.id}.yaml")
        for step in program.steps:
            if not isinstance(step, SendStep):
                continue
            for channel in step.channels:

                def context_for(
                    locale: str, p: Program = program, s: SendStep = step, ch: str = channel
                ) -> Mapping[str, Any]:
                    customer = sample_recipient(locale, at, cfg.custom)
                    coupon = sample_coupon(
                        s.coupon, CHECK_SECRET, p.id, customer.customer_id, "check", s.id, at
                    )
                    return message_context(
                        p,
                        s,
                        customer,
                        cfg,
                        coupon=coupon,
                        recommendations=_recommendations(cfg),
                        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if ch == "email" else None,
                    )

                for problem in renderer.check(program.id, step.template, channel, context_for):
                    issues.append(
                        ProgramIssue(
                            file, step.id, f"template {step.template!r} ({channel}) {problem}"
                        )
                    )
    return issues
