"""Programs as code: a trigger, an audience, a journey of steps, a goal.

A program is a YAML file in ``programs/``. Step types form a discriminated union on
``type``; the type strings (``send``, ``wait``, ``branch``, ``split``, ``exit``) are a
public contract. Conditions use EventBridge content-filter syntax (see
:mod:`kizuna.programs.patterns`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from kizuna.domain.strict_json import Number, OptionalWholeNumber, WholeNumber
from kizuna.events import Channel
from kizuna.programs.patterns import PatternError, validate_pattern
from kizuna.runtime.names import WEBHOOK_NAME_PATTERN

StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ProgramId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")]


def _pattern(value: dict[str, Any]) -> dict[str, Any]:
    try:
        validate_pattern(value)
    except PatternError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _unique(channels: list[Channel]) -> list[Channel]:
    if len(set(channels)) != len(channels):
        raise ValueError("a channel is listed twice")
    return channels


# An EventBridge content filter, checked as one (programs, campaigns, segments).
Pattern = Annotated[dict[str, Any], AfterValidator(_pattern)]
# Channels in order of preference, each at most once.
Channels = Annotated[list[Channel], AfterValidator(_unique)]
WebhookName = Annotated[str, Field(pattern=WEBHOOK_NAME_PATTERN)]


def check_webhook(channels: Sequence[Channel], webhook: str | None) -> None:
    """A ``webhook`` channel names its endpoint (``webhook``), and only it does. Whether the
    endpoint is configured is checked where the configuration is known (the loader with a
    configuration, the send)."""
    if (Channel.WEBHOOK in channels) != (webhook is not None):
        raise ValueError("webhook: name the endpoint exactly when the webhook channel is used")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Trigger(_Strict):
    event: str = Field(
        description="detail-type that starts the program, e.g. customer.first_purchase"
    )
    conditions: Pattern = Field(
        default_factory=dict, description="EventBridge content filter on the event detail"
    )


class ReentryMode(StrEnum):
    ONCE = "once"
    EVERY = "every"
    ALWAYS = "always"


class Reentry(_Strict):
    mode: ReentryMode = ReentryMode.ONCE
    days: OptionalWholeNumber = Field(default=None, ge=1, le=3650, description="for mode: every")

    @model_validator(mode="after")
    def _days(self) -> Reentry:
        if (self.mode == ReentryMode.EVERY) != (self.days is not None):
            raise ValueError("days is required for mode 'every' and only for it")
        return self


class Goal(_Strict):
    event: str = Field(description="detail-type that counts as conversion, e.g. order.placed")
    conditions: Pattern = Field(default_factory=dict)
    within_days: WholeNumber = Field(default=30, ge=1, le=365, description="attribution window")
    exit_journey: bool = Field(default=True, description="stop sending once the goal is reached")


# A preference topic's name (declared in the configuration's preferences.topics)
TopicName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class SmsType(StrEnum):
    TRANSACTIONAL = "transactional"
    PROMOTIONAL = "promotional"


class CouponSpec(_Strict):
    discount: str = Field(min_length=1, max_length=32, description='e.g. "10%" or "500円"')
    valid_days: WholeNumber = Field(default=14, ge=1, le=365)


class SendStep(_Strict):
    id: StepId
    type: Literal["send"]
    channels: Channels = Field(
        min_length=1, max_length=4, description="ordered fallback: first reachable wins"
    )
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
    sms_type: SmsType = SmsType.PROMOTIONAL
    coupon: CouponSpec | None = None
    webhook: WebhookName | None = Field(
        default=None, description="the configured endpoint (config webhooks) of channel webhook"
    )
    topic: TopicName | None = Field(
        default=None, description="preference topic of this step (default: the program's)"
    )
    next: StepId | None = None

    @model_validator(mode="after")
    def _webhook_named(self) -> SendStep:
        check_webhook(self.channels, self.webhook)
        return self

    @model_validator(mode="before")
    @classmethod
    def _one_channel(cls, data: Any) -> Any:
        # `channel: email` is `channels: [email]`; both given is refused, not one kept
        if isinstance(data, dict) and "channel" in data and "channels" in data:
            raise ValueError("give channel or channels, not both")
        if isinstance(data, dict) and "channel" in data:
            data = {**data, "channels": [data["channel"]]}
            del data["channel"]
        return data


_LOCAL = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")


class WaitStep(_Strict):
    id: StepId
    type: Literal["wait"]
    days: WholeNumber = Field(default=0, ge=0, le=365)
    hours: WholeNumber = Field(default=0, ge=0, le=24 * 365)
    minutes: WholeNumber = Field(default=0, ge=0, le=60 * 24)
    until_local_time: str | None = Field(
        default=None, description='"HH:MM" in the customer\'s time zone, after the duration'
    )
    next: StepId | None = None

    @field_validator("until_local_time")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v is not None and not _LOCAL.match(v):
            raise ValueError('use "HH:MM", 24-hour')
        return v

    @model_validator(mode="after")
    def _something(self) -> WaitStep:
        if not (self.days or self.hours or self.minutes or self.until_local_time):
            raise ValueError("a wait needs a duration or until_local_time")
        return self

    @property
    def duration(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)

    @property
    def local_time(self) -> time | None:
        if self.until_local_time is None:
            return None
        hh, mm = self.until_local_time.split(":")
        return time(int(hh), int(mm))


class EngagementEvent(StrEnum):
    """What an engagement branch asks of a send step's message: ``opened`` and ``clicked``
    are the email's SES open and click events, or a push's ``push.opened`` from the app (the
    ledger entry's ``open_at``, ``click_at``);
    ``converted`` is the program's goal reached after the send."""

    OPENED = "opened"
    CLICKED = "clicked"
    CONVERTED = "converted"


class Engagement(_Strict):
    """``then`` when the member's message of send step ``step`` was ``event`` within
    ``within_hours`` of its send; ``else`` otherwise, including when that step sent them
    nothing, and for ``clicked`` when its links went untracked (no click could be seen:
    recorded ``not_measured``, not ``not_engaged``)."""

    step: StepId = Field(description="a send step before the branch on every path to it")
    event: EngagementEvent
    within_hours: WholeNumber = Field(ge=1, le=720, description="counted from the step's send")


class BranchStep(_Strict):
    id: StepId
    type: Literal["branch"]
    condition: Pattern | None = Field(
        default=None, description="EventBridge content filter on fresh customer state"
    )
    engagement: Engagement | None = Field(
        default=None,
        description="instead of a condition: did the member open, click or convert after a "
        "send step's message, within N hours (read from the ledger when the branch is reached)",
    )
    then: StepId | None = Field(
        default=None, description="next step when the condition (or engagement) holds"
    )
    otherwise: StepId | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _one_test(self) -> BranchStep:
        if (self.condition is None) == (self.engagement is None):
            raise ValueError("a branch needs exactly one of condition or engagement")
        return self


class SplitArm(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,20}$")]
    weight: WholeNumber = Field(ge=1, le=100)
    next: StepId | None = None


class SplitWinner(_Strict):
    """Let the data choose the arm: checked daily by the sweep, the always-valid sequential
    test (:mod:`kizuna.analytics.sequential`) compares the arms' rates of ``metric``; once it
    names a winner, new entries get the winner (members already in the journey keep their
    arm)."""

    metric: Literal["opened", "clicked", "goal"] = Field(
        description="opened, clicked: the email each arm sends next (email only); goal: the "
        "program's goal reached by the entry"
    )
    rule: Literal["sequential"] = Field(
        default="sequential", description="sequential: the mSPRT, valid when checked daily"
    )
    alpha: Number = Field(default=0.05, gt=0, le=0.2, description="the false-positive rate")
    min_per_arm: WholeNumber = Field(
        default=100, ge=10, le=10_000_000, description="no decision while an arm has fewer"
    )


class SplitStep(_Strict):
    id: StepId
    type: Literal["split"]
    arms: list[SplitArm] = Field(min_length=2, max_length=5)
    winner: SplitWinner | None = Field(
        default=None, description="choose the winning arm from the data (daily re-check)"
    )

    @field_validator("arms")
    @classmethod
    def _names(cls, v: list[SplitArm]) -> list[SplitArm]:
        if len({a.name for a in v}) != len(v):
            raise ValueError("arm names must be unique")
        return v


class ExitStep(_Strict):
    id: StepId
    type: Literal["exit"]


Step = Annotated[
    SendStep | WaitStep | BranchStep | SplitStep | ExitStep, Field(discriminator="type")
]
STEP_TYPES = ("send", "wait", "branch", "split", "exit")


class Program(_Strict):
    id: ProgramId
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    enabled: bool = True
    priority: WholeNumber = Field(
        default=50,
        ge=0,
        le=100,
        description="contact policy: higher wins; >= 90 bypasses frequency caps",
    )
    trigger: Trigger
    audience: dict[str, Any] = Field(
        default_factory=dict, description="EventBridge content filter on customer state"
    )
    reentry: Reentry = Reentry()
    holdout_percent: WholeNumber = Field(default=0, ge=0, le=50)
    cohort_minutes: WholeNumber = Field(
        default=60,
        ge=1,
        le=1440,
        description="entries due within this many minutes share one execution (a cohort): "
        "a step runs at most this long after its exact instant (until_local_time: exact)",
    )
    start: Literal["window", "at_once"] = Field(
        default="window",
        description="window: an entry's first step runs with the cohort of its window, up to "
        "cohort_minutes late; at_once: the steps before the first wait run when the entry is "
        "evaluated (one invocation per evaluate batch), and the group hands off at that wait "
        "to the cohort due when it ends (a program that starts with a wait is due then anyway)",
    )
    goal: Goal | None = None
    topic: TopicName | None = Field(
        default=None,
        description="preference topic of every send step (docs/PREFERENCES.md); none: the "
        "configuration's preferences.default_topic (promotions)",
    )
    steps: list[Step] = Field(min_length=1, max_length=40)

    _check = field_validator("audience")(_pattern)

    @model_validator(mode="after")
    def _at_once(self) -> Program:
        if self.start == "at_once" and isinstance(self.steps[0], WaitStep | ExitStep):
            raise ValueError(
                f"start: at_once runs the steps before the first wait at entry, but step "
                f"{self.steps[0].id!r} is a {self.steps[0].type}: use start: window"
            )
        return self

    def topic_of(self, step: SendStep, default: str) -> str:
        """The preference topic a send step's messages are about: the step's, else the
        program's, else ``default`` (the configuration's ``preferences.default_topic``)."""
        return step.topic or self.topic or default

    def step(self, step_id: str) -> SendStep | WaitStep | BranchStep | SplitStep | ExitStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


def successors(step: SendStep | WaitStep | BranchStep | SplitStep | ExitStep) -> list[str]:
    """Step ids reachable in one move (None means: end of journey)."""
    if isinstance(step, SendStep | WaitStep):
        return [step.next] if step.next else []
    if isinstance(step, BranchStep):
        return [s for s in (step.then, step.otherwise) if s]
    if isinstance(step, SplitStep):
        return [a.next for a in step.arms if a.next]
    return []
