"""Derived events: what Kizuna itself puts on the bus (source ``kizuna``).

Each carries a deterministic ``event_id``: the same business fact always gets the same id,
so consumers (the evaluate function's execution names) can drop duplicates that
at-least-once delivery produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# A calendar date (``2027-02-28``): ``date`` is also a field name below.
LocalDate = date

# Amounts travel as JSON numbers so EventBridge numeric patterns can match them.
Amount = Annotated[Decimal, PlainSerializer(_number, return_type=int | float, when_used="json")]


class Configured(StrEnum):
    """A string whose values the shop's configuration names (a marker in a field's
    annotation; :meth:`kizuna.events.custom.Vocabulary.configured` has the names): a
    condition comparing the field with another value matches nobody, and is refused at load
    (:mod:`kizuna.programs.value_rules`)."""

    RANK = "loyalty.ranks"  # a rank's name (Bronze, Silver...)
    RFM_SEGMENT = "scoring.segments"  # an RFM segment's name (Champions, At risk...)


RankName = Annotated[str, Configured.RANK]
RfmSegmentName = Annotated[str, Configured.RFM_SEGMENT]


class DerivedDetail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic id of the fact; duplicates share it")
    customer_id: str
    occurred_at: AwareDatetime
    caused_by: str = Field(description="Id of the inbound event that produced this one")


class _Purchase(DerivedDetail):
    """An order, as the purchase it makes of the customer."""

    order_id: str
    total: Amount
    currency: str
    channel: str
    product_ids: tuple[str, ...]
    categories: tuple[str, ...]


class FirstPurchase(_Purchase):
    pass


class RepeatPurchase(_Purchase):
    order_count: int


class RankDirection(StrEnum):
    UP = "up"
    DOWN = "down"


class RankChanged(DerivedDetail):
    from_rank: RankName
    to_rank: RankName
    direction: RankDirection
    rank_points: int


class PointsNearNextRank(DerivedDetail):
    rank: RankName
    next_rank: RankName
    points_to_next_rank: int = Field(ge=0, description='The gap: "100 points to Gold"')
    rank_points: int
    points_balance: int


class DormancyRisk(DerivedDetail):
    """No order for ``days_since_last_order`` days: fired before the customer is dormant."""

    last_order_at: AwareDatetime
    days_since_last_order: int
    dormant_after_days: int
    order_count: int


class PointsExpiring(DerivedDetail):
    points: int = Field(ge=1)
    expires_at: AwareDatetime
    points_balance: int


class CartAbandoned(DerivedDetail):
    cart_id: str
    item_count: int
    value: Amount
    currency: str
    product_ids: tuple[str, ...]
    cart_updated_at: AwareDatetime


class Birthday(DerivedDetail):
    """The customer's birthday began in their time zone (the daily sweep; 29 February is
    celebrated on 28 February in a non-leap year)."""

    date: LocalDate = Field(description="The local date celebrated")
    age: int = Field(ge=1, description="Years old on that date")
    time_zone: str = Field(description="The time zone the date is local to")


class Anniversary(DerivedDetail):
    """The anniversary of the customer's membership start (``member_since``) began in their
    time zone (the daily sweep; a 29 February start is celebrated on 28 February in a
    non-leap year; nothing in the year they joined)."""

    date: LocalDate = Field(description="The local date celebrated")
    years: int = Field(ge=1, description="Years of membership completed on that date")
    member_since: LocalDate = Field(description="The membership start")
    time_zone: str = Field(description="The time zone the date is local to")


class CouponExpiring(DerivedDetail):
    """A coupon sent to the customer is still unused and expires in ``days_left`` days (the
    daily sweep, once per coupon and reminder day of ``lifecycle.coupon_reminder_days``)."""

    code: str = Field(description="The coupon's code, for the reminder to show")
    program: str = Field(description="The program (or campaign) whose message issued it")
    discount: str = Field(description='What it is worth, as shown: "10%"')
    expires_at: AwareDatetime
    days_left: int = Field(ge=1, description="The reminder day: expires this many days on")


class SegmentChanged(DerivedDetail):
    """The daily scoring moved a customer to another RFM segment."""

    from_segment: RfmSegmentName | None
    to_segment: RfmSegmentName
    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)


class ProgramConverted(DerivedDetail):
    """A customer who entered a program (or its holdout) reached the program's goal."""

    program: str
    holdout: bool
    execution: str | None
    goal_event: str
    entered_at: AwareDatetime
    value: Amount | None = None


DERIVED_MODELS: dict[str, type[DerivedDetail]] = {
    "customer.first_purchase": FirstPurchase,
    "customer.repeat_purchase": RepeatPurchase,
    "customer.rank_changed": RankChanged,
    "customer.points_near_next_rank": PointsNearNextRank,
    "customer.dormancy_risk": DormancyRisk,
    "customer.points_expiring": PointsExpiring,
    "cart.abandoned": CartAbandoned,
    "customer.birthday": Birthday,
    "customer.anniversary": Anniversary,
    "coupon.expiring": CouponExpiring,
    "customer.segment_changed": SegmentChanged,
    "program.converted": ProgramConverted,
}


class DerivedEvent(BaseModel):
    """A derived event ready for PutEvents."""

    model_config = ConfigDict(frozen=True)

    detail_type: str
    detail: DerivedDetail

    def to_entry(self, bus_name: str, source: str) -> dict[str, str]:
        return _entry(bus_name, source, self.detail_type, self.detail)


_DERIVED_TYPE_OF: dict[type[DerivedDetail], str] = {
    model: name for name, model in DERIVED_MODELS.items()
}


@dataclass(frozen=True)
class Cause:
    """What every derived fact carries: whom it is about, when, and what produced it."""

    customer_id: str
    at: datetime
    caused_by: str


def derived_event(
    model: type[DerivedDetail], key: str, cause: Cause, **fields: Any
) -> DerivedEvent:
    """The derived event of ``model`` (under its detail-type in :data:`DERIVED_MODELS`) whose
    id is ``<customer_id>:<key>``: ``key`` names the fact, so a repeated fact repeats it."""
    detail = model(
        event_id=f"{cause.customer_id}:{key}",
        customer_id=cause.customer_id,
        occurred_at=cause.at,
        caused_by=cause.caused_by,
        **fields,
    )
    return DerivedEvent(detail_type=_DERIVED_TYPE_OF[model], detail=detail)


# --- campaigns: facts about an occurrence, not about one customer --------------------------------
class CampaignCompleted(BaseModel):
    """An occurrence of a campaign finished (done, stopped or cancelled), with its counts by
    outcome. Not a per-customer fact: no ``customer_id``, not a program trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: str = Field(description="campaign:<id>:<occurrence>:completed")
    occurred_at: AwareDatetime
    campaign_id: str
    occurrence: str
    status: Literal["done", "stopped", "cancelled"]
    counts: dict[str, int] = Field(description="audience, holdout, sent, suppressed, ...")
    winner: str | None = None
    winner_reason: str | None = None
    winner_decided: bool | None = Field(
        default=None,
        description="did the A/B test choose winner? false: it found none and the rest of the "
        "audience got the first variant (winner); null without a winner",
    )
    stop_reason: str | None = None


CAMPAIGN_EVENT_MODELS: dict[str, type[BaseModel]] = {"campaign.completed": CampaignCompleted}


# --- direct mail: a day's print file is ready (docs/channels/DM.md) ------------------------------
class DmFileReady(BaseModel):
    """A direct-mail print file was written: its manifest. Not a per-customer fact (no
    ``customer_id``, no address: the addresses are in the file), not a program trigger; a
    rewritten file (a row collected late) is announced again with its new ``sha256``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    file: str = Field(min_length=1, description="The CSV's key in the print-file bucket")
    rows: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the CSV's bytes")
    program: str = Field(min_length=1, description="The program or campaign")
    template: str = Field(min_length=1)
    date: LocalDate
    columns: list[str] = Field(min_length=1)
    encoding: Literal["utf-8"] = "utf-8"


DM_EVENT_MODELS: dict[str, type[BaseModel]] = {"dm.file_ready": DmFileReady}


class CampaignEvent(BaseModel):
    """A campaign event ready for PutEvents."""

    model_config = ConfigDict(frozen=True)

    detail_type: Literal["campaign.completed"] = "campaign.completed"
    detail: CampaignCompleted

    def to_entry(self, bus_name: str, source: str) -> dict[str, str]:
        return _entry(bus_name, source, self.detail_type, self.detail)


def _entry(
    bus_name: str, source: str, detail_type: str, detail: DerivedDetail | CampaignCompleted
) -> dict[str, str]:
    """A PutEvents entry: the detail as JSON, timed when the fact occurred."""
    return {
        "EventBusName": bus_name,
        "Source": source,
        "DetailType": detail_type,
        "Detail": detail.model_dump_json(),
        "Time": detail.occurred_at.isoformat(),
    }
