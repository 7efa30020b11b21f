"""A direct-mail recipient as collected for a day's print batch, and its keys in the
activity table: what the DynamoDB adapter stores and reads, apart from the channel
(:mod:`kizuna.delivery.direct_mail`), which would load the contact policy with it."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from kizuna.domain.customer import PostalAddress

DM_ROW_PREFIX = "DM#"  # sk of a collected row: DM#<execution>#<step>
DM_DAY_PREFIX = "DMDAY#"  # gsi1pk of a day's rows

__all__ = ["DM_DAY_PREFIX", "DM_ROW_PREFIX", "DmRow"]


class DmRow(BaseModel):
    """One recipient of one print batch (personal data: the address)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: date
    program: str = Field(min_length=1, description="The program or campaign")
    template: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    execution: str = Field(min_length=1)
    step: str = Field(min_length=1)
    address: PostalAddress
    lines: tuple[str, ...]
    # what the print-time check asks again (a row collected before they were kept: none)
    topic: str | None = Field(default=None, description="The message's preference topic")
    transactional: bool = Field(
        default=False, description="Sent through the transactional API (opt-out consent)"
    )
