"""Templates checked against the context a send gives them, before anything is deployed.

``kizuna programs validate`` and ``kizuna campaigns validate`` render every send step's (and
campaign's) template, in every locale folder and on every channel, with the context the
send path builds (:func:`kizuna.services.send.message_context`,
:func:`kizuna.services.campaign.campaign_context`) for a sample customer of that locale with
every field filled in: an undefined name, an attribute the sandbox refuses (in a branch the
sample would not take too), a render bound crossed or a part rendered empty is a problem
with the program, step and channel, instead of a failed send.

A program's templates get the ``trigger`` its members carry to every send
(:func:`kizuna.delivery.samples.sample_trigger`: what ``trigger_of`` keeps of a sample of
the program's trigger event), never None: a cohort's send always passes the member's
trigger, which holds its ``type`` at least. So ``{{ trigger.to_rank }}`` renders, a
misspelt ``trigger.to_rnk`` is refused even behind ``{% if trigger %}``, and so is
``trigger.get("to_rnk")``, which would send "None". The templates are rendered a second
time without the fields an event may lack (a producer's optional field, a derived one that
may be null), which a send's ``trigger`` then lacks too. Campaign templates have no trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kizuna.delivery.samples import (
    CHECK_SECRET,
    SAMPLE_UNSUBSCRIBE_URL,
    rank_names,
    sample_coupon,
    sample_recipient,
    sample_trigger,
)
from kizuna.delivery.templates import Renderer
from kizuna.events.custom import vocabulary
from kizuna.programs.loader import ProgramIssue
from kizuna.programs.model import Program, SendStep
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.copurchase import recommend


def _recommendations(cfg: KizunaConfig) -> list[dict[str, Any]]:
    best = [p.model_dump() for p in cfg.catalog.best_sellers]
    return recommend([], set(), {}, best, cfg.catalog.recommendations)


class TriggerSample(dict[str, Any]):
    """A sample ``trigger`` that notes every key a template asks ``get`` for that no
    trigger of its event holds (``(trigger or {}).get("to_rnk")``: None at every send)."""

    def __init__(self, fields: Mapping[str, Any], holds: Collection[str], asked: set[str]) -> None:
        super().__init__(fields)
        self.holds = holds
        self.asked = asked

    def get(self, key: Any, default: Any = None) -> Any:
        if key not in self.holds:
            self.asked.add(str(key))
        return super().get(key, default)


def _send_context(
    program: Program,
    step: SendStep,
    channel: str,
    cfg: KizunaConfig,
    at: datetime,
    trigger: TriggerSample,
) -> Callable[[str], Mapping[str, Any]]:
    """The context a send of ``step`` on ``channel`` gives a sample customer of a locale."""
    from kizuna.services.send import message_context

    def context_for(locale: str) -> Mapping[str, Any]:
        customer = sample_recipient(locale, at, cfg.custom, rank_names(cfg))
        coupon = sample_coupon(
            step.coupon, CHECK_SECRET, program.id, customer.customer_id, "check", step.id, at
        )
        context = message_context(
            program,
            step,
            customer,
            cfg,
            coupon=coupon,
            recommendations=_recommendations(cfg),
            unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if channel == "email" else None,
            trigger=trigger,
        )
        if context["trigger"] is not None:  # the same fields, noting what is asked of them
            context["trigger"] = trigger
        return context

    return context_for


def program_template_problems(
    programs: Iterable[Program],
    renderer: Renderer,
    cfg: KizunaConfig,
    directory: Path,
    now: datetime | None = None,
) -> list[ProgramIssue]:
    """Every send step's template rendered for each of its channels and locales, with the
    program's sample trigger, whole and without the fields its event may lack."""
    at = now or datetime.now(UTC)
    vocab = vocabulary(cfg)
    issues: list[ProgramIssue] = []
    for program in programs:
        file = str(directory / f"{program.id}.yaml")
        event = program.trigger.event
        whole = sample_trigger(event, vocab, cfg, at, program=program.id)
        least = sample_trigger(event, vocab, cfg, at, program=program.id, optional=False)
        lacking = [k for k in whole if k not in least]
        triggers = [(whole, "")]
        if lacking:
            triggers.append((least, f", a {event} trigger without {', '.join(lacking)}"))
        for step in program.steps:
            if not isinstance(step, SendStep):
                continue
            for channel in step.channels:
                asked: set[str] = set()
                found: list[str] = []
                for fields, note in triggers:
                    trigger = TriggerSample(fields, whole, asked)
                    context_for = _send_context(program, step, channel, cfg, at, trigger)
                    for problem in renderer.check(program.id, step.template, channel, context_for):
                        if problem in found:  # a problem of the source, found in both
                            continue
                        found.append(problem)
                        message = f"template {step.template!r} ({channel}{note}) {problem}"
                        issues.append(ProgramIssue(file, step.id, message))
                issues += [
                    ProgramIssue(
                        file,
                        step.id,
                        f"template {step.template!r} ({channel}) trigger.get({key!r}) is "
                        f"always None: a {event} trigger holds {', '.join(whole)}",
                    )
                    for key in sorted(asked)
                ]
    return issues
