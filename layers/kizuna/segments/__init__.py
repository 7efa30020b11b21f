"""Named, reusable segments: ``segments/<name>.yaml``.

A segment is an EventBridge content-filter pattern over the customer view
(:func:`kizuna.programs.view.customer_view`: RFM segment, rank, region, prefecture, age
band, gender, occupation, consent, reachable channels, lifecycle, spend...), the same
language as program audiences and branches::

    name: gold-at-risk
    description: Gold and Platinum members the daily scoring sees slipping away
    conditions:
      rank: [Gold, Platinum]
      rfm_segment: ["At risk", "Can't lose"]
      consent: {email: [opted_in]}

Conditions may name the shop's declared attributes and behaviour counters
(``attributes: {membership_tier_pos: [gold]}``, ``behaviour: {wishlist.added: {count_14d:
[{numeric: [">=", 2]}]}}``): give the vocabulary of the configuration
(:func:`kizuna.events.custom.vocabulary`) to :func:`load_segments`, or to
``SegmentDefinition.model_validate(raw, context={VOCABULARY: vocab})``; without one only the
built-in fields are known (:mod:`kizuna.programs.view_rules`).

The file name (without ``.yaml``) must equal ``name``. :func:`load_segments` validates every
file and returns the problems of all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from kizuna.domain import strict_yaml
from kizuna.domain.customer import Customer
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.programs.model import Pattern
from kizuna.programs.patterns import matches
from kizuna.programs.view import customer_view
from kizuna.programs.view_rules import view_condition_problems
from kizuna.runtime.config import KizunaConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# The validation context's key for the vocabulary a segment's conditions may name.
VOCABULARY = "vocabulary"


class SegmentDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    conditions: Pattern = Field(min_length=1)

    @field_validator("conditions")
    @classmethod
    def _valid_pattern(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # a segment sees the view without the segments field: segments cannot name segments
        context = info.context if isinstance(info.context, Mapping) else {}
        vocab = context.get(VOCABULARY, BUILTIN)
        problems = view_condition_problems(value, "conditions", vocab, segments=False)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def matches(self, customer: Customer, now: datetime, cfg: KizunaConfig) -> bool:
        return matches(self.conditions, customer_view(customer, now, cfg))


class SegmentError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_segment(path: Path, vocab: Vocabulary = BUILTIN) -> SegmentDefinition:
    raw = strict_yaml.load(path.read_text(encoding="utf-8"))
    segment = SegmentDefinition.model_validate(raw, context={VOCABULARY: vocab})
    if segment.name != path.stem:
        raise ValueError(f"name {segment.name!r} differs from the file name {path.stem!r}")
    return segment


def load_segments(directory: Path, vocab: Vocabulary = BUILTIN) -> dict[str, SegmentDefinition]:
    """Every ``*.yaml`` and ``*.yml`` under ``directory`` (as programs and campaigns),
    validated against the shop's ``vocab``; raises :class:`SegmentError` with the problems
    of every file (two files of one name among them)."""
    found: dict[str, SegmentDefinition] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            segment = load_segment(path, vocab)
        except (ValidationError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        if segment.name in found:
            problems.append(f"{path.name}: another file defines the segment {segment.name!r}")
            continue
        found[segment.name] = segment
    if problems:
        raise SegmentError(problems)
    return found


def members(
    segment: SegmentDefinition, customers: Iterable[Customer], now: datetime, cfg: KizunaConfig
) -> Iterator[str]:
    """Ids of the customers in ``segment``, in the order given."""
    for customer in customers:
        if segment.matches(customer, now, cfg):
            yield customer.customer_id
