"""Campaigns as data: an audience, a schedule, channels, a template, variants and a holdout.

A campaign is a YAML file in ``campaigns/`` (or applied as data with ``kizuna campaigns
apply``, stored in the campaigns table): it sends the right message to everyone who matches
a prepared pattern, once, once at each customer's local time, or on a recurring schedule.
Nothing is sent unless ``status`` is ``scheduled``. The field names are a public contract
(the JSON Schema is published as ``schemas/campaign.schema.json``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from kizuna.domain.schedule_expressions import check_expression, parse_schedule
from kizuna.domain.strict_json import Number, OptionalNumber, OptionalWholeNumber, WholeNumber
from kizuna.domain.zones import is_zone, zone_or
from kizuna.programs.model import (
    Channels,
    CouponSpec,
    Goal,
    Pattern,
    SmsType,
    TopicName,
    WebhookName,
    check_webhook,
)

CampaignId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")]
TemplateName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
VariantName = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,20}$")]
# The earliest time zone on Earth (UTC+14): a local-time campaign starts when the first
# customers' local time comes, and each customer is sent at their own.
EARLIEST_OFFSET = timedelta(hours=14)
LATEST_OFFSET = timedelta(hours=12)  # UTC-12: the last customers' local time
# The instants a schedule may name: within them a time, its UTC and a local time's window
# (the date at UTC+14 to UTC-12) stay within the years datetime holds (9999-12-31T23:59-14:00
# or a local_time date of 0001-01-01 raised OverflowError when the schedule was written)
EARLIEST_AT = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_AT = datetime(9000, 1, 1, tzinfo=UTC)
_OUT_OF_RANGE = "a time from 1970-01-02 and before 9000-01-01"
_Day = date  # the type, under a name a schedule's `date` field does not hide


def _in_range(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST_AT <= value < LATEST_AT:
        raise ValueError(_OUT_OF_RANGE)
    return value


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
# EventBridge Scheduler expressions: cron(6 fields) or rate(N unit)
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)\Z")
_RATE = re.compile(r"^rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class Audience(_Strict):
    """Who: customers in any of ``segments`` that match ``conditions`` (both optional), or
    the customers of a static list; ``everyone: true`` says "the whole base" on purpose."""

    segments: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, description="named segments (segments/*.yaml); any of them"
    )
    conditions: Pattern = Field(
        default_factory=dict,
        description="EventBridge content filter on the customer view (as program audiences)",
    )
    customer_list: str | None = Field(
        default=None,
        description="CSV of customer ids (a customer_id column), relative to the campaign file",
    )
    everyone: bool = False

    @model_validator(mode="after")
    def _something(self) -> Audience:
        chosen = bool(self.segments or self.conditions)
        if self.customer_list and chosen:
            raise ValueError("a static customer_list cannot be combined with segments/conditions")
        if not (chosen or self.customer_list or self.everyone):
            raise ValueError(
                "name segments, conditions or a customer_list (or everyone: true for all)"
            )
        if self.everyone and (chosen or self.customer_list):
            raise ValueError("everyone: true takes no segments, conditions or customer_list")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("a segment is named twice")
        return self


class OnceSchedule(_Strict):
    type: Literal["once"]
    at: AwareDatetime = Field(description="the instant, with its offset: 2026-12-25T10:00+09:00")

    @field_validator("at")
    @classmethod
    def _at_in_range(cls, v: datetime) -> datetime:
        _in_range(v)
        return v


class LocalTimeSchedule(_Strict):
    type: Literal["local_time"]
    date: date
    time: str = Field(description='"HH:MM" in each customer\'s own time zone')

    @field_validator("time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError('use "HH:MM", 24-hour')
        return v

    @field_validator("date")
    @classmethod
    def _date_in_range(cls, v: _Day) -> _Day:
        if not EARLIEST_AT.date() <= v < LATEST_AT.date():
            raise ValueError("a date from 1970-01-02 and before 9000-01-01")
        return v

    @property
    def local_time(self) -> time_of_day:
        hh, mm = self.time.split(":")
        return time_of_day(int(hh), int(mm))


class RecurringSchedule(_Strict):
    type: Literal["recurring"]
    cron: str | None = Field(
        default=None, description='EventBridge Scheduler: "cron(0 10 ? * FRI *)"'
    )
    rate: str | None = Field(default=None, description='"rate(7 days)"')
    time_zone: str = "UTC"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _start_end_in_range(cls, v: datetime | None) -> datetime | None:
        return _in_range(v)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if not is_zone(v):
            raise ValueError(f"unknown time zone {v!r}")
        return v

    @model_validator(mode="after")
    def _one(self) -> RecurringSchedule:
        if (self.cron is None) == (self.rate is None):
            raise ValueError("give exactly one of cron and rate")
        if self.cron is not None:
            if not _CRON.match(self.cron):
                raise ValueError(
                    "cron: use cron(minutes hours day-of-month month day-of-week year)"
                )
            try:  # what EventBridge Scheduler refuses: a field out of range, '?' missing...
                check_expression(self.cron, self.time_zone)
            except ValueError as exc:
                raise ValueError(f"cron: {exc}") from None
        if self.rate is not None:
            if not _RATE.match(self.rate):
                raise ValueError('rate: use rate(N minutes|hours|days), e.g. "rate(7 days)"')
            try:  # what AWS refuses: rate(1 days), rate(7 day)
                check_expression(self.rate, self.time_zone)
            except ValueError as exc:
                raise ValueError(f"rate: {exc}") from None
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


Schedule = Annotated[
    OnceSchedule | LocalTimeSchedule | RecurringSchedule, Field(discriminator="type")
]


# Arms a campaign's ledger and reports already name (kizuna.campaigns.assign): a variant of
# one of these names would be counted as held out, or as the winner's rest, or mixed with
# the arm of a campaign without variants. Refused when a definition is written
# (kizuna.campaigns.loader.check_campaign), not when a stored one is read: one stored before
# the rule stays readable (the campaign list, its running occurrence).
RESERVED_VARIANT_NAMES = frozenset({"holdout", "global_control", "winner", "default"})


class Variant(_Strict):
    name: VariantName = Field(
        description="a-z, 0-9, _ and -; not holdout, global_control, winner or default "
        "(arms the ledger and reports already name)",
        json_schema_extra={"not": {"enum": [*sorted(RESERVED_VARIANT_NAMES)]}},
    )
    weight: WholeNumber = Field(ge=1, le=100)
    template: TemplateName | None = Field(
        default=None, description="the variant's template (default: the campaign's)"
    )


# The longest a sequential winner keeps looking (winner.max_wait_hours): 14 days; and the
# interval between its looks after the first, at wait_hours.
MAX_WAIT_HOURS = 14 * 24
RECHECK_HOURS = 24


class WinnerSelection(_Strict):
    """Send the variants to a test pool first, wait, then send the winner to the rest."""

    test_percent: WholeNumber = Field(ge=1, le=50, description="share of the audience in the test")
    metric: Literal["open", "click", "goal"]
    wait_hours: WholeNumber = Field(ge=1, le=168)
    rule: Literal["best", "sequential"] = Field(
        default="best",
        description="best: the best observed rate wins; sequential: an always-valid test "
        "(mSPRT) must find the difference, else the first variant stays",
    )
    alpha: OptionalNumber = Field(
        default=None, gt=0, le=0.2, description="sequential: the false-positive rate (0.05)"
    )
    min_per_arm: OptionalWholeNumber = Field(
        default=None, ge=10, le=10_000_000, description="sequential: no decision below (100)"
    )
    max_wait_hours: OptionalWholeNumber = Field(
        default=None,
        strict=True,
        ge=2,
        le=MAX_WAIT_HOURS,
        description="sequential: undecided at wait_hours, look again every 24 hours until "
        "the test decides or this many hours after the test pool's send (at most 14 days)",
    )

    @model_validator(mode="after")
    def _rule(self) -> WinnerSelection:
        if self.rule != "sequential" and (
            self.alpha is not None
            or self.min_per_arm is not None
            or self.max_wait_hours is not None
        ):
            raise ValueError("winner: alpha, min_per_arm and max_wait_hours need rule: sequential")
        if self.max_wait_hours is not None and self.max_wait_hours <= self.wait_hours:
            raise ValueError(
                f"winner.max_wait_hours ({self.max_wait_hours}) must be more than "
                f"winner.wait_hours ({self.wait_hours})"
            )
        return self


class FailureBreaker(_Strict):
    """Stop the occurrence when this share of the first ``after`` attempts failed."""

    percent: Number = Field(default=5.0, gt=0, le=100)
    after: WholeNumber = Field(default=1000, ge=10)


class Campaign(_Strict):
    id: CampaignId
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    status: CampaignStatus = CampaignStatus.DRAFT
    audience: Audience
    schedule: Schedule
    channels: Channels = Field(
        min_length=1, max_length=4, description="ordered fallback: first reachable wins"
    )
    template: TemplateName
    sms_type: SmsType = SmsType.PROMOTIONAL
    coupon: CouponSpec | None = None
    webhook: WebhookName | None = Field(
        default=None, description="the configured endpoint (config webhooks) of channel webhook"
    )
    topic: TopicName | None = Field(
        default=None,
        description="preference topic (docs/PREFERENCES.md); none: the configuration's "
        "preferences.default_topic (promotions)",
    )
    variants: list[Variant] = Field(default_factory=list, max_length=8)
    holdout_percent: WholeNumber = Field(default=0, ge=0, le=50)
    winner: WinnerSelection | None = None
    goal: Goal | None = None
    priority: WholeNumber = Field(
        default=50, ge=0, le=100, description="contact policy: >= 90 bypasses frequency caps"
    )
    rate_limit_per_minute: OptionalWholeNumber = Field(default=None, ge=1, le=1_000_000)
    stop_on_failures: FailureBreaker = FailureBreaker()

    @model_validator(mode="after")
    def _webhook_named(self) -> Campaign:
        check_webhook(self.channels, self.webhook)
        return self

    @model_validator(mode="after")
    def _variants(self) -> Campaign:
        if len(self.variants) == 1:
            raise ValueError("variants: give none, or 2 to 8")
        if self.variants:
            if len({v.name for v in self.variants}) != len(self.variants):
                raise ValueError("variants: names must be unique")
            if sum(v.weight for v in self.variants) != 100:
                raise ValueError("variants: weights must add up to 100")
        if self.winner is not None and not self.variants:
            raise ValueError("winner: needs at least two variants to choose from")
        if self.winner is not None and self.winner.metric == "goal" and self.goal is None:
            raise ValueError("winner: metric goal needs a goal")
        return self

    # -- what the engine asks ----------------------------------------------------------
    def templates(self) -> list[str]:
        """Every template the campaign may send (the campaign's and its variants')."""
        names = [self.template, *(v.template for v in self.variants if v.template)]
        return list(dict.fromkeys(names))

    def template_of(self, variant: str | None) -> str:
        for v in self.variants:
            if v.name == variant and v.template:
                return v.template
        return self.template


def occurrence_id(scheduled: datetime) -> str:
    """The occurrence of a schedule: its scheduled instant, UTC, to the minute."""
    return scheduled.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def local_time_window(schedule: LocalTimeSchedule) -> tuple[datetime, datetime]:
    """When the occurrence starts (the local time in UTC+14) and its last due instant
    (the local time in UTC-12)."""
    naive = datetime.combine(schedule.date, schedule.local_time, tzinfo=UTC)
    return naive - EARLIEST_OFFSET, naive + LATEST_OFFSET


# How long EventBridge Scheduler retries starting a campaign's occurrence (its target's
# MaximumEventAgeInSeconds, kizuna.adapters.scheduler): past it with no occurrence, the start
# was given up (dead-lettered).
SCHEDULER_RETRY_SECONDS = 6 * 3600


def deadline_of(schedule: OnceSchedule | LocalTimeSchedule | RecurringSchedule) -> datetime | None:
    """The instant a campaign may be scheduled only before: a one-off campaign's start
    (``at``; a local-time one's date and time where it comes first, UTC+14: its occurrence
    starts then) or a recurring campaign's ``end`` (None: it has none)."""
    if isinstance(schedule, OnceSchedule):
        return schedule.at
    if isinstance(schedule, LocalTimeSchedule):
        return local_time_window(schedule)[0]
    return schedule.end


def has_passed(
    schedule: OnceSchedule | LocalTimeSchedule | RecurringSchedule, now: datetime
) -> bool:
    """Whether the schedule's :func:`deadline_of` has passed at ``now`` (no grace): the
    campaign is no longer written, scheduled or resumed as ``scheduled``
    (:mod:`kizuna.services.campaign_admin`), and ``kizuna migrate pinpoint`` writes it as a
    draft."""
    deadline = deadline_of(schedule)
    return deadline is not None and deadline <= now


def scheduler_expression(campaign: Campaign) -> tuple[str, str]:
    """The EventBridge Scheduler expression and its time zone for this campaign."""
    schedule = campaign.schedule
    if isinstance(schedule, OnceSchedule):
        at = schedule.at.astimezone(UTC)
        return f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})", "UTC"
    if isinstance(schedule, LocalTimeSchedule):
        start, _ = local_time_window(schedule)
        return f"at({start.strftime('%Y-%m-%dT%H:%M:%S')})", "UTC"
    return str(schedule.cron or schedule.rate), schedule.time_zone


# Scheduler refuses a StartDate more than 5 minutes past; a start less than this far past is
# still sent as it is (a campaign created a minute after its start keeps its first run).
START_STILL_SENT = timedelta(minutes=4)


def scheduler_start(schedule: RecurringSchedule, now: datetime) -> datetime | None:
    """The StartDate a recurring campaign's schedule is given at ``now``: its start while
    Scheduler still takes it. Once it is further past (a pause, resume or edit long after
    the campaign began), Scheduler refuses it: a cron's own fields say when it runs, so
    none; a rate counts its runs from its start, so the first of those runs still ahead,
    which keeps the campaign's rhythm; none either when that run is after the end."""
    start = schedule.start
    if start is None or start > now - START_STILL_SENT:
        return start
    if schedule.rate is None:
        return None
    after = parse_schedule(schedule.rate, anchor=start).next_after(now)
    if after is None or (schedule.end is not None and after > schedule.end):
        return None
    return after


def due_at(
    campaign: Campaign, scheduled: datetime, time_zone: str | None, default_zone: str
) -> datetime:
    """When one customer's message of this occurrence is due: the occurrence's instant, or
    for a local-time campaign, the local time of the date in the customer's own zone."""
    schedule = campaign.schedule
    if not isinstance(schedule, LocalTimeSchedule):
        return scheduled.astimezone(UTC)
    tz = zone_or(time_zone, default_zone)
    local = datetime.combine(schedule.date, schedule.local_time, tzinfo=tz)
    return max(local.astimezone(UTC), scheduled.astimezone(UTC))
