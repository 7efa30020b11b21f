"""Who gets what in a campaign: holdout, test pool and variant, by a stable hash of the
campaign and the customer (the same customer is in the same arm in every occurrence)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kizuna.campaigns.model import Campaign
from kizuna.delivery.control import GLOBAL_CONTROL, in_global_control
from kizuna.programs.journeys import bucket
from kizuna.runtime.config import GlobalControlConfig

HOLDOUT = "holdout"
DEFAULT_VARIANT = "default"
# The rest of the audience of a campaign with winner selection: their variant is the winner,
# known only after the test pool's results are in.
WINNER = "winner"
TEST_POOL = "test"
MAIN_POOL = "main"
# how results name the rest of the audience sent the winner: "<variant> (winner)", apart
# from the test pool's "<variant>" (the console, the API and the report alike); when the
# test was undecided, the rest got the first variant, named "<variant> (no winner: first
# variant)": no variant was found better
WINNER_SUFFIX = " (winner)"
NO_WINNER_SUFFIX = " (no winner: first variant)"


def shown_arm(arm: str | None, variant: str | None, decided: bool = True) -> str | None:
    """The arm a result row is counted under: the rest of the audience's row as
    ``<variant> (winner)``, or ``<variant> (no winner: first variant)`` when the test did
    not decide (``decided`` False, :func:`winner_decided`)."""
    if arm != WINNER or not variant:
        return arm
    return f"{variant}{WINNER_SUFFIX if decided else NO_WINNER_SUFFIX}"


def sent_to_the_rest(shown: str | None) -> bool:
    """A shown arm of the rest of the audience of a campaign with winner selection (sent
    the winner, or the first variant when the test did not decide)."""
    return shown is not None and (
        shown == WINNER or shown.endswith(WINNER_SUFFIX) or shown.endswith(NO_WINNER_SUFFIX)
    )


def winner_decided(occurrence: Mapping[str, Any]) -> bool:
    """Did the occurrence's test choose the variant the rest of the audience got? False
    when it recorded no winner, or was undecided (the rest got the first variant:
    ``winner_decided`` false on the occurrence). An occurrence recorded before
    ``winner_decided`` was: a sequential test's looks say it (an undecided last look names
    no winner), else it reads as decided, as it did then."""
    if not occurrence.get("winner"):
        return False
    if "winner_decided" in occurrence:
        return bool(occurrence["winner_decided"])
    looks = occurrence.get("looks") or ()
    return not looks or any(look.get("winner") for look in looks)


def winner_decided_shown(occurrence: Mapping[str, Any]) -> bool | None:
    """:func:`winner_decided` as the API, the console and ``campaign.completed`` show it
    beside ``winner``: None while the occurrence records no winner (no test, or not chosen
    yet)."""
    return winner_decided(occurrence) if occurrence.get("winner") else None


@dataclass(frozen=True)
class Assignment:
    arm: str  # global_control, holdout, a variant's name, "default" (no variants) or "winner"
    pool: str  # "test" (sent first, decides the winner) or "main"

    @property
    def held_out(self) -> bool:
        return self.arm in (HOLDOUT, GLOBAL_CONTROL)


def variant_of(campaign: Campaign, customer_id: str) -> str:
    if not campaign.variants:
        return DEFAULT_VARIANT
    point = bucket("campaign-variant", campaign.id, customer_id)
    edge = 0.0
    for variant in campaign.variants:
        edge += variant.weight
        if point < edge:
            return variant.name
    return campaign.variants[-1].name


def holdout_bucket(campaign: Campaign, customer_id: str) -> float:
    """The customer's place in [0, 100) for the campaign's holdout (held out below
    ``holdout_percent``): the ledger records it with a holdout."""
    return bucket("campaign-holdout", campaign.id, customer_id)


def assign(campaign: Campaign, customer_id: str, control: GlobalControlConfig) -> Assignment:
    """The global control group first (never sent, whatever the campaign), then the
    campaign's own holdout, test pool and variant."""
    if in_global_control(control, customer_id):
        return Assignment(GLOBAL_CONTROL, MAIN_POOL)
    if holdout_bucket(campaign, customer_id) < campaign.holdout_percent:
        return Assignment(HOLDOUT, MAIN_POOL)
    if campaign.winner is None:
        return Assignment(variant_of(campaign, customer_id), MAIN_POOL)
    if bucket("campaign-test", campaign.id, customer_id) < campaign.winner.test_percent:
        return Assignment(variant_of(campaign, customer_id), TEST_POOL)
    return Assignment(WINNER, MAIN_POOL)
