"""A cohort's items as data (:mod:`kizuna.programs.cohorts` decides; the adapter stores):
members, child groups and their keys in the activity table."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kizuna.programs.journeys import JourneyState

COHORT_PK = "COHORT#"  # the cohort's partition in the activity table ('#' is in no customer id)
MEMBER_SK = "M#"  # a member: M#<customer>#<entry>
CHILD_SK = "G#"  # a child group's header: G#<parent>#<origin step>#<key>
ROOT = "root"  # the cohort's first group
GONE = "-"  # the group of a member who left (goal reached, erased, journey over)
GROUP_LIMIT = 500  # members per group (one Lambda invocation per step)
TRIGGER_KEYS = 20  # what a member keeps of its trigger's detail: a few scalars, small
TRIGGER_VALUE_CHARS = 200


def trigger_of(
    detail_type: str, detail: Mapping[str, Any], personal: Collection[str]
) -> dict[str, Any]:
    """What a member keeps of the event that made it enter (the template context's
    ``trigger``): its type and the detail's top-level scalar fields (``to_rank``,
    ``from_rank``, ``points_to_next_rank``...), at most :data:`TRIGGER_KEYS` of them,
    strings of at most :data:`TRIGGER_VALUE_CHARS` characters; nested values and longer
    strings are left out (the member item stays small), and so are the fields in
    ``personal`` (:meth:`kizuna.events.custom.Vocabulary.personal_fields`: an address, a
    name, a field the shop declares personal), which are not journey state."""
    kept: dict[str, Any] = {"type": detail_type}
    for key, value in detail.items():
        if len(kept) > TRIGGER_KEYS:
            break
        if key == "idempotency_key":  # the producer's retry key: nothing about the event
            continue
        if key in personal:
            continue
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) <= TRIGGER_VALUE_CHARS
        ):
            kept[str(key)] = value
    return kept


@dataclass(frozen=True)
class Member:
    """One entry in a cohort: who, which entry (the ledger's execution key), since when."""

    customer_id: str
    entry: str
    entered_at: datetime
    arms: Mapping[str, str] = field(default_factory=dict)
    group: str = ROOT
    # what the entry's trigger said (:func:`trigger_of`): a message about *this* entry
    trigger: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sk(self) -> str:
        return f"{MEMBER_SK}{self.customer_id}#{self.entry}"


@dataclass(frozen=True)
class Child:
    """A child group: the members that went elsewhere, where and from when."""

    group: str
    parent: str
    origin: str  # the parent's step that made it
    step: str  # the step the child execution starts at
    key: str  # why: a branch side, an arm, a due instant, a chunk
    at: datetime

    @property
    def sk(self) -> str:
        return f"{CHILD_SK}{self.parent}#{self.origin}#{self.key}"


@dataclass(frozen=True)
class Join:
    """An entry joining its cohort: the journey state to write (conditionally on
    ``previous``) and the member item, in one transaction. A held-out entry joins no cohort:
    its journey state alone (``cohort`` and ``member`` None)."""

    state: JourneyState
    previous: JourneyState | None
    cohort: str | None
    member: Member | None
    expires_at: int
