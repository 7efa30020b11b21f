"""The global control group: a stable random share of customers that receives no marketing
message from any program or campaign (transactional messages still go), so the reports can
compare the treated population with an untouched one (docs/PROGRAMS.md, "The global
control group"; docs/REPORTS.md, "Treated vs global control").

Membership is a stable hash of the configured salt and the customer id, the same helper
that draws program and campaign holdouts: the same customer is in or out on every run, every
re-entry and in any order of events. The salt fixes each customer's place in [0, 100);
``percent`` only moves the boundary (raising it adds the customers just above the old one,
nobody leaves). A new group is drawn only by a new salt, with a new ``since`` date.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kizuna.programs.journeys import bucket
from kizuna.runtime.config import GlobalControlConfig, KizunaConfig

OFF = GlobalControlConfig()

GLOBAL_CONTROL = "global_control"
"""The ledger's ``held_out`` (and ``reason``) of a decision the global control group made,
and a campaign recipient's arm."""


def control_bucket(control: GlobalControlConfig, customer_id: str) -> float:
    """The customer's place in [0, 100) for the global control group of ``control.salt``."""
    return bucket(GLOBAL_CONTROL, control.salt, customer_id)


def control_for(cfg: KizunaConfig, topics: Iterable[str]) -> GlobalControlConfig:
    """The global control group that applies to messages about ``topics``: none when every
    one is transactional (``service``: an order's confirmation is not marketing, and the
    group holds back marketing only, as it always did for the API's transactional
    messages), else the configured one."""
    names = list(topics)
    if names and all(cfg.preferences.is_transactional(t) for t in names):
        return OFF
    return cfg.measurement.global_control


def in_global_control(control: GlobalControlConfig, customer_id: str) -> bool:
    return control.enabled and control_bucket(control, customer_id) < control.percent


def control_detail(control: GlobalControlConfig, customer_id: str) -> dict[str, Any]:
    """What a held-out decision records (like a holdout's ``held_out``, percent and bucket),
    with the group's start date."""
    return {
        "held_out": GLOBAL_CONTROL,
        "global_control_percent": control.percent,
        "global_control_since": control.since.isoformat() if control.since else None,
        "bucket": control_bucket(control, customer_id),
    }
