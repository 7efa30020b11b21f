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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kizuna.campaigns.model import Campaign
from kizuna.delivery.templates import Renderer
from kizuna.domain.customer import CartState, Customer
from kizuna.programs.loader import ProgramIssue
from kizuna.programs.model import Program, SendStep
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.copurchase import recommend
from kizuna_tools.demo import sample_coupon, sample_customer

# Coupons in a check are made with this, so none of them is a real code.
CHECK_SECRET = b"kizuna template check: not a real coupon"
SAMPLE_UNSUBSCRIBE_URL = "https://example.com/unsubscribe?t=check"


def sample_recipient(locale: str, now: datetime) -> Customer:
    """A customer reading ``locale`` with every field a template may read filled in: names,
    rank and next rank, orders, points about to expire, an open cart."""
    base = sample_customer(locale)
    return base.model_copy(
        update={
            "time_zone": "Asia/Tokyo" if locale.startswith("ja") else "Europe/London",
            "order_count": 2,
            "first_order_at": now - timedelta(days=90),
            "first_order_id": "sample-order-1",
            "last_order_at": now - timedelta(days=7),
            "points_next_expiry_at": now + timedelta(days=30),
            "points_next_expiry_amount": 200,
            "cart": CartState(
                cart_id="sample-cart",
                item_count=2,
                value=Decimal(3600),
                currency="JPY",
                product_ids=("tea-001", "ware-001"),
                at=now - timedelta(hours=3),
                stamp="sample",
            ),
        }
    )


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
                    customer = sample_recipient(locale, at)
                    coupon = sample_coupon(
                        s.coupon, CHECK_SECRET, p.id, customer.customer_id, "check", at
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


def campaign_template_problems(
    campaign: Campaign, renderer: Renderer, cfg: KizunaConfig, now: datetime | None = None
) -> list[str]:
    """Each of the campaign's templates (variants included) for each channel and locale."""
    from kizuna.services.campaign import campaign_context

    at = now or datetime.now(UTC)
    problems: list[str] = []
    for template in campaign.templates():
        for channel in campaign.channels:

            def context_for(locale: str, ch: str = channel) -> Mapping[str, Any]:
                customer = sample_recipient(locale, at)
                coupon = sample_coupon(
                    campaign.coupon, CHECK_SECRET, campaign.id, customer.customer_id, "check", at
                )
                return campaign_context(
                    campaign,
                    customer,
                    cfg,
                    coupon=coupon,
                    unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL if ch == "email" else None,
                )

            problems += [
                f"template {template!r} ({channel}) {problem}"
                for problem in renderer.check(campaign.id, template, channel, context_for)
            ]
    return problems
