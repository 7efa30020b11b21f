"""Business configuration: loyalty rules (earn rate, ranks, multipliers, expiry) and retention.

Deployed through the CDK app (context ``kizuna:config``) into each function's
``KIZUNA_CONFIG`` environment variable as JSON; every field has a sensible default.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kizuna.runtime.names import WEBHOOK_NAME_PATTERN

# A language code as a locale folder starts (``en`` of ``en-GB``)
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]


class RankRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32)
    min_points: int = Field(ge=0, description="Rank points (rolling window) needed for this rank")
    multiplier: Decimal = Field(default=Decimal(1), gt=0, description="Points earn multiplier")
    benefits: tuple[str, ...] = Field(
        default=(),
        description="The rank's benefits in the default locale's language (contact.default_locale)",
    )
    benefits_by_language: dict[Language, tuple[str, ...]] = Field(
        default_factory=dict,
        description="The benefits in other languages, by language (en): a message to a "
        "customer reading one of them lists these; any other customer is told `benefits`",
    )

    def benefits_in(self, language: str) -> tuple[str, ...]:
        """The benefits as a message in ``language`` (``en``, ``ja``) lists them."""
        return self.benefits_by_language.get(language, self.benefits)


_EN: Final = "en"
DEFAULT_RANKS: tuple[RankRule, ...] = (
    RankRule(
        name="Bronze",
        min_points=0,
        multiplier=Decimal("1"),
        benefits=("誕生日クーポン",),
        benefits_by_language={_EN: ("Birthday coupon",)},
    ),
    RankRule(
        name="Silver",
        min_points=500,
        multiplier=Decimal("1.5"),
        benefits=("誕生日クーポン", "3,000円以上のご注文で送料無料"),
        benefits_by_language={_EN: ("Birthday coupon", "Free shipping over 3,000 yen")},
    ),
    RankRule(
        name="Gold",
        min_points=2000,
        multiplier=Decimal("2"),
        benefits=("誕生日クーポン", "送料無料", "会員限定セール"),
        benefits_by_language={_EN: ("Birthday coupon", "Free shipping", "Members-only sales")},
    ),
    RankRule(
        name="Platinum",
        min_points=5000,
        multiplier=Decimal("3"),
        benefits=("誕生日クーポン", "送料無料", "会員限定セール", "専任コンシェルジュ"),
        benefits_by_language={
            _EN: ("Birthday coupon", "Free shipping", "Members-only sales", "Concierge")
        },
    ),
)


# Default points per unit of the order currency: about one point per US dollar's worth,
# rounded to a plain figure, so the default rank thresholds (500 / 2,000 points) mean about
# the same spend in every currency. JPY keeps the original 1 point per 100 yen.
DEFAULT_EARN_RATES: dict[str, Decimal] = {
    "JPY": Decimal("0.01"),
    "KRW": Decimal("0.001"),
    "USD": Decimal("1"),
    "EUR": Decimal("1"),
    "GBP": Decimal("1"),
    "CHF": Decimal("1"),
    "CAD": Decimal("1"),
    "AUD": Decimal("1"),
    "NZD": Decimal("1"),
    "SGD": Decimal("1"),
    "HKD": Decimal("0.1"),
    "CNY": Decimal("0.1"),
    "SEK": Decimal("0.1"),
    "NOK": Decimal("0.1"),
    "DKK": Decimal("0.1"),
    "TWD": Decimal("0.03"),
    "THB": Decimal("0.03"),
}


class LoyaltyConfig(BaseModel):
    """Points and member rank, computed from purchase history.

    Rank is decided by *rank points*: ``floor(total * earn_rate)`` summed over the
    non-cancelled orders of the last ``rank_window_days``. Spendable points per order are
    the rank points times the multiplier of the rank the customer held when ordering;
    they expire ``points_expiry_days`` after they were earned.

    ``earn_rate`` is per unit of ``currency``, the shop's order currency: left out, it is
    the currency's default (:data:`DEFAULT_EARN_RATES`); a currency without a default needs
    an explicit ``earn_rate`` (refused otherwise: yen rates on dollar totals would keep
    every customer at the first rank).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(
        default="JPY",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the order totals the earn rate applies to",
    )
    earn_rate: Decimal = Field(
        default=Decimal("0.01"),
        gt=0,
        description="Points per currency unit (default: the currency's, see DEFAULT_EARN_RATES)",
    )
    ranks: tuple[RankRule, ...] = DEFAULT_RANKS
    rank_window_days: int = Field(default=365, ge=1)
    points_expiry_days: int = Field(default=365, ge=1)
    near_next_rank_points: int = Field(
        default=100, ge=1, description="Emit points_near_next_rank when the gap is at most this"
    )

    @model_validator(mode="before")
    @classmethod
    def _earn_rate_of_currency(cls, data: object) -> object:
        if not isinstance(data, dict) or "earn_rate" in data:
            return data
        currency = data.get("currency", "JPY")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            return data  # the field's own validation names the error
        if currency not in DEFAULT_EARN_RATES:
            return _no_rate(currency)
        return {**data, "earn_rate": DEFAULT_EARN_RATES[currency]}

    @model_validator(mode="after")
    def _ranks_ascending(self) -> LoyaltyConfig:
        if not self.ranks:
            raise ValueError("at least one rank is needed")
        if self.ranks[0].min_points != 0:
            raise ValueError("the first rank must start at 0 points")
        mins = [r.min_points for r in self.ranks]
        if mins != sorted(set(mins)):
            raise ValueError("rank thresholds must be strictly ascending")
        names = [r.name for r in self.ranks]
        if len(set(names)) != len(names):
            raise ValueError("rank names must be unique")
        return self

    def rank_for(self, rank_points: int) -> RankRule:
        chosen = self.ranks[0]
        for rule in self.ranks:
            if rank_points >= rule.min_points:
                chosen = rule
        return chosen

    def next_rank(self, rank_points: int) -> RankRule | None:
        for rule in self.ranks:
            if rule.min_points > rank_points:
                return rule
        return None

    def rank_index(self, name: str) -> int:
        for i, rule in enumerate(self.ranks):
            if rule.name == name:
                return i
        raise KeyError(name)


def _no_rate(currency: str) -> object:
    known = ", ".join(sorted(DEFAULT_EARN_RATES))
    raise ValueError(
        f"loyalty.earn_rate: currency {currency!r} has no default earn rate ({known}); "
        "set loyalty.earn_rate (points per unit of the currency)"
    )


class LifecycleConfig(BaseModel):
    """When a customer counts as dormant, and when the scheduled triggers fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dormant_after_days: int = Field(default=120, ge=2, description="no order for this long")
    dormancy_risk_days: int = Field(
        default=60, ge=1, description="fire customer.dormancy_risk after this many days"
    )
    cart_abandoned_hours: int = Field(default=3, ge=1, le=24 * 14)
    points_expiry_warning_days: int = Field(default=30, ge=1, le=365)
    coupon_reminder_days: tuple[Annotated[int, Field(ge=1, le=90)], ...] = Field(
        default=(3,),
        max_length=5,
        description="fire coupon.expiring this many days before an unused coupon expires",
    )

    @model_validator(mode="after")
    def _before_dormancy(self) -> LifecycleConfig:
        if self.dormancy_risk_days >= self.dormant_after_days:
            raise ValueError("dormancy_risk_days must come before dormant_after_days")
        if len(set(self.coupon_reminder_days)) != len(self.coupon_reminder_days):
            raise ValueError("coupon_reminder_days: a day is named twice")
        return self


class ContactPolicyConfig(BaseModel):
    """One contact policy for all programs (checked at send time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_day: int = Field(default=2, ge=1)
    max_per_week: int = Field(default=5, ge=1)
    bypass_caps_priority: int = Field(
        default=90, ge=0, le=101, description="programs at or above this priority skip the caps"
    )
    quiet_start: str = Field(default="21:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    quiet_end: str = Field(default="08:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    default_time_zone: str = "Asia/Tokyo"
    default_locale: str = "ja"


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str
    name: str
    url: str = ""


DEFAULT_BEST_SELLERS: tuple[Product, ...] = (
    Product(product_id="tea-001", name="Sencha Asatsuyu", url="https://shop.example.com/p/tea-001"),
    Product(product_id="tea-002", name="Houjicha Kaga", url="https://shop.example.com/p/tea-002"),
    Product(
        product_id="ware-001", name="Tokoname Kyusu", url="https://shop.example.com/p/ware-001"
    ),
    Product(
        product_id="sweets-001",
        name="Yokan Assortment",
        url="https://shop.example.com/p/sweets-001",
    ),
)


class CatalogConfig(BaseModel):
    """What recommendations fall back to before the daily co-purchase model exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    best_sellers: tuple[Product, ...] = DEFAULT_BEST_SELLERS
    recommendations: int = Field(default=3, ge=1, le=10)


class SegmentRule(BaseModel):
    """Cells of the R (recency score) x FM (mean of frequency and monetary scores, rounded
    up) grid that make a named segment; both ranges are inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: str = Field(min_length=1, max_length=40)
    recency: tuple[int, int]
    fm: tuple[int, int]

    @model_validator(mode="after")
    def _ranges(self) -> SegmentRule:
        for low, high in (self.recency, self.fm):
            if not 1 <= low <= high <= 5:
                raise ValueError("score ranges are [low, high] within 1..5")
        return self


# The R x FM grid of RFM practice (11 segments); every one of the 25 cells is named:
#            FM=1            FM=2            FM=3              FM=4        FM=5
#   R=5      New             Potential l.    Potential l.      Champions   Champions
#   R=4      Promising       Potential l.    Potential l.      Loyal       Loyal
#   R=3      About to sleep  About to sleep  Need attention    Loyal       Loyal
#   R=2      Hibernating     Hibernating     At risk           At risk     Can't lose
#   R=1      Lost            Hibernating     At risk           At risk     Can't lose
DEFAULT_SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule(segment="Champions", recency=(5, 5), fm=(4, 5)),
    SegmentRule(segment="Loyal", recency=(3, 4), fm=(4, 5)),
    SegmentRule(segment="Potential loyalist", recency=(4, 5), fm=(2, 3)),
    SegmentRule(segment="New", recency=(5, 5), fm=(1, 1)),
    SegmentRule(segment="Promising", recency=(4, 4), fm=(1, 1)),
    SegmentRule(segment="Need attention", recency=(3, 3), fm=(3, 3)),
    SegmentRule(segment="About to sleep", recency=(3, 3), fm=(1, 2)),
    SegmentRule(segment="Can't lose", recency=(1, 2), fm=(5, 5)),
    SegmentRule(segment="At risk", recency=(1, 2), fm=(3, 4)),
    SegmentRule(segment="Lost", recency=(1, 1), fm=(1, 1)),
    SegmentRule(segment="Hibernating", recency=(1, 2), fm=(1, 2)),
)


class FixedThresholds(BaseModel):
    """Four ascending boundaries per measure (used when ``method`` is ``fixed``, and when a
    run finds no customer with an order to take quantiles from)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recency_days: tuple[float, float, float, float] = (30, 60, 120, 240)
    frequency: tuple[float, float, float, float] = (1, 2, 3, 5)
    monetary: tuple[float, float, float, float] = (3000, 8000, 20000, 50000)

    @model_validator(mode="after")
    def _ascending(self) -> FixedThresholds:
        for cuts in (self.recency_days, self.frequency, self.monetary):
            if list(cuts) != sorted(cuts):
                raise ValueError("thresholds must be ascending")
        return self


class ScoringConfig(BaseModel):
    """Daily RFM scoring (:mod:`kizuna.scoring.rfm`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(default=365, ge=1, description="frequency and monetary window")
    method: Literal["quantiles", "fixed"] = "quantiles"
    sample_size: int = Field(
        default=20_000, ge=100, description="customers sampled for the quantile boundaries"
    )
    scan_segments: int = Field(
        default=16, ge=1, le=1000, description="parallel-scan segments (one shard each)"
    )
    fixed: FixedThresholds = FixedThresholds()
    segments: tuple[SegmentRule, ...] = DEFAULT_SEGMENT_RULES

    @model_validator(mode="after")
    def _every_cell_named(self) -> ScoringConfig:
        cells = {
            (r, fm)
            for rule in self.segments
            for r in range(rule.recency[0], rule.recency[1] + 1)
            for fm in range(rule.fm[0], rule.fm[1] + 1)
        }
        missing = sorted({(r, fm) for r in range(1, 6) for fm in range(1, 6)} - cells)
        if missing:
            raise ValueError(f"segment rules leave (R, FM) cells unnamed: {missing}")
        return self


class EventTimeConfig(BaseModel):
    """Which ``occurred_at`` an inbound event may carry, measured against the clock of the
    function that receives it (ingest, evaluate, the importer). An event outside the window is
    dead-lettered with a reason naming ``detail.occurred_at``: a time far in the future would
    otherwise win every last-writer-wins comparison and move the customer's ``as_of`` (the
    end of the rolling rank and spend windows) past every real order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="how far ahead of the receiver's clock occurred_at may be (producer skew)",
    )
    max_age_days: int = Field(
        default=3653,
        ge=1,
        le=36_525,
        description="how far behind the receiver's clock occurred_at may be "
        "(about 10 years by default: raise it to import older history)",
    )

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.max_future_skew_seconds)

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_age_days)


class GlobalControlConfig(BaseModel):
    """The global control group: a stable random share of customers that no program and no
    campaign sends a marketing message to (transactional messages still go), so reports can
    compare the treated population with an untouched one (docs/PROGRAMS.md).

    A customer's place is ``bucket("global-control", salt, customer_id)`` in [0, 100); they
    are in the control group below ``percent``. The place is fixed by the salt: raising the
    percent adds the customers just above the old boundary (nobody leaves), lowering it
    releases those just below. To draw a new group, change the salt and record the new
    ``since`` (reports compare from that date)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(
        default=0, ge=0, le=20, description="share of customers in the control group (0 = off)"
    )
    salt: str = Field(default="", max_length=64, description="draws the group; change to redraw")
    since: date | None = Field(default=None, description="when this group (this salt) started")

    @model_validator(mode="after")
    def _drawn(self) -> GlobalControlConfig:
        if self.percent > 0 and not self.salt.strip():
            raise ValueError("measurement.global_control.salt is required when percent > 0")
        if self.percent > 0 and self.since is None:
            raise ValueError("measurement.global_control.since is required when percent > 0")
        return self

    @property
    def enabled(self) -> bool:
        return self.percent > 0


class MeasurementConfig(BaseModel):
    """How marketing is measured: the global control group (per-program and per-campaign
    holdouts are set on each program and campaign)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    global_control: GlobalControlConfig = GlobalControlConfig()


# A preference topic's name: lower snake case (the event and the hosted page carry it).
TOPIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
MAX_TOPICS = 20
DEFAULT_TOPIC = "promotions"
"""The topic of a program or campaign file that names none (docs/PREFERENCES.md)."""


class TopicLabels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    en: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f<>&]+$")
    ja: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f<>&]+$")


class Topic(BaseModel):
    """What a message is about, as a customer may choose it: ``promotions``, ``newsletter``.
    A **transactional** topic (``service``: orders, account) is not optional: a customer
    cannot opt out of it nor pause it, only refuse the channel itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TOPIC_NAME_PATTERN)
    labels: TopicLabels
    transactional: bool = False


DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic(
        name="promotions", labels=TopicLabels(en="Promotions and sales", ja="キャンペーン・セール")
    ),
    Topic(name="loyalty", labels=TopicLabels(en="Points and rank", ja="ポイント・会員ランク")),
    Topic(name="newsletter", labels=TopicLabels(en="Newsletter", ja="ニュースレター")),
    Topic(
        name="service",
        labels=TopicLabels(en="Orders and account", ja="ご注文・アカウント"),
        transactional=True,
    ),
)


class PreferencesConfig(BaseModel):
    """The preference topics (docs/PREFERENCES.md): declared once, named by every program
    step and campaign that sends; exactly one is transactional (what API sends use)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: tuple[Topic, ...] = Field(default=DEFAULT_TOPICS, min_length=1, max_length=MAX_TOPICS)
    default_topic: str = Field(
        default=DEFAULT_TOPIC,
        pattern=TOPIC_NAME_PATTERN,
        description="the topic of a program or campaign that names none",
    )

    @model_validator(mode="after")
    def _valid(self) -> PreferencesConfig:
        names = [t.name for t in self.topics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"preferences.topics: topic declared twice: {twice}")
        transactional = [t.name for t in self.topics if t.transactional]
        if len(transactional) != 1:
            raise ValueError(
                "preferences.topics: exactly one topic must be transactional "
                f"(found {transactional or 'none'})"
            )
        if self.default_topic not in names:
            raise ValueError(
                f"preferences.default_topic: {self.default_topic!r} is not a declared topic "
                f"(declared: {', '.join(names)})"
            )
        if self.default_topic in transactional:
            raise ValueError("preferences.default_topic: must not be the transactional topic")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.topics)

    @property
    def transactional_topic(self) -> str:
        return next(t.name for t in self.topics if t.transactional)

    def topic(self, name: str) -> Topic | None:
        return next((t for t in self.topics if t.name == name), None)

    def is_transactional(self, name: str | None) -> bool:
        found = self.topic(name) if name else None
        return found is not None and found.transactional

    def choice_problem(self, topics: Mapping[str, Mapping[Any, Any]]) -> tuple[str, str] | None:
        """Why a customer's choice (topic -> channel -> opted_in | opted_out) cannot be
        taken, as (the topic, the reason), or None: a topic not declared, or an opt-out of
        the transactional topic (not optional)."""
        for name, channels in topics.items():
            topic = self.topic(name)
            if topic is None:
                return name, f"not a declared topic (declared: {', '.join(self.names)})"
            if topic.transactional and "opted_out" in {str(v) for v in channels.values()}:
                return name, (
                    "a transactional topic cannot be opted out of (opt out of the channel instead)"
                )
        return None


# Names a shop may give its own attributes and event fields: lower snake case. Event types
# are dotted lower snake case (``wishlist.added``), like the built-in ones.
CUSTOM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
CUSTOM_EVENT_PATTERN = r"^[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}$"
MAX_CUSTOM_ATTRIBUTES = 250  # Pinpoint's limit on custom endpoint + user attributes
MAX_CUSTOM_EVENTS = 50
MAX_EVENT_FIELDS = 50
MAX_WINDOW_DAYS = 400
# Names a template could not read: ``customer.attributes.items`` (and ``trigger.items``) is
# the dict's method in Jinja, not the value, so these names are refused.
RESERVED_VALUE_NAMES = frozenset(name for name in dir(dict) if not name.startswith("_"))


class ValueType(StrEnum):
    """The type of a custom attribute or event field (and its JSON shape)."""

    STRING = "string"  # a JSON string, at most ``max_length`` characters, no control characters
    NUMBER = "number"  # a JSON number within +-1e12, at most 6 decimals
    BOOLEAN = "boolean"  # true or false (not "true", not 1)
    DATE = "date"  # "YYYY-MM-DD"
    DATETIME = "datetime"  # ISO 8601 with an offset (event fields only)
    STRING_LIST = "string_list"  # a JSON array of strings, at most ``max_items``


class CustomValueSpec(BaseModel):
    """What a custom attribute or event field may hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=CUSTOM_NAME_PATTERN)
    type: ValueType
    personal: bool = Field(
        default=False,
        description="personal data: masked in logs and exports, erased with the customer, "
        "never in the customer view that conditions see",
    )
    enum: tuple[str, ...] | None = Field(
        default=None, min_length=1, max_length=200, description="allowed values (strings)"
    )
    max_length: int = Field(default=256, ge=1, le=2048, description="characters of a string")
    max_items: int = Field(default=50, ge=1, le=200, description="items of a string list")
    description: str = ""

    @model_validator(mode="after")
    def _enum_for_strings(self) -> CustomValueSpec:
        if self.name in RESERVED_VALUE_NAMES:
            raise ValueError(
                f"{self.name}: a template reading it would get the dict method of that name; "
                f"choose another name (reserved: {', '.join(sorted(RESERVED_VALUE_NAMES))})"
            )
        if self.enum is not None:
            if self.type not in (ValueType.STRING, ValueType.STRING_LIST):
                raise ValueError(f"{self.name}: enum is for string and string_list values")
            if len(set(self.enum)) != len(self.enum):
                raise ValueError(f"{self.name}: an enum value is listed twice")
            if any(len(v) > self.max_length for v in self.enum):
                raise ValueError(f"{self.name}: an enum value is longer than max_length")
        return self


class CustomAttribute(CustomValueSpec):
    """A shop's own customer attribute, carried by ``customer.upserted`` under
    ``attributes`` and stored on the customer (last writer wins per attribute)."""

    @model_validator(mode="after")
    def _no_datetime(self) -> CustomAttribute:
        if self.type == ValueType.DATETIME:
            raise ValueError(f"{self.name}: attributes are dates, not datetimes")
        return self


class CustomEventField(CustomValueSpec):
    required: bool = False


class CustomEvent(BaseModel):
    """A shop's own event type (``wishlist.added``): validated like the built-in ones, kept
    as activity for ``retention_days``, counted per customer over ``windows_days`` (for
    behavioural conditions), usable as a program trigger and goal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detail_type: str = Field(pattern=CUSTOM_EVENT_PATTERN)
    description: str = ""
    fields: tuple[CustomEventField, ...] = Field(default=(), max_length=MAX_EVENT_FIELDS)
    retention_days: int = Field(default=90, ge=1, le=3650)
    windows_days: tuple[int, ...] = Field(
        default=(7, 30),
        max_length=6,
        description="the windows behavioural conditions count over (count_<N>d)",
    )

    @model_validator(mode="after")
    def _checks(self) -> CustomEvent:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.detail_type}: a field is declared twice")
        reserved = {"schema_version", "customer_id", "occurred_at", "idempotency_key"} & set(names)
        if reserved:
            raise ValueError(f"{self.detail_type}: {sorted(reserved)} are common fields")
        _check_windows(self.detail_type, self.windows_days)
        return self


def _check_windows(detail_type: str, windows: tuple[int, ...]) -> None:
    """Counting windows ascend without repeats, each 1..MAX_WINDOW_DAYS days."""
    if list(windows) != sorted(set(windows)) or any(not 1 <= w <= MAX_WINDOW_DAYS for w in windows):
        raise ValueError(f"{detail_type}: windows_days ascend, each 1..{MAX_WINDOW_DAYS}")


class TrackedEvent(BaseModel):
    """Behavioural counters for a built-in event (``app.opened``, ``product.viewed``,
    ``cart.updated``, ``order.placed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detail_type: Literal["app.opened", "product.viewed", "cart.updated", "order.placed"]
    windows_days: tuple[int, ...] = Field(default=(7, 30), min_length=1, max_length=6)

    @model_validator(mode="after")
    def _windows(self) -> TrackedEvent:
        _check_windows(self.detail_type, self.windows_days)
        return self


class CustomConfig(BaseModel):
    """The shop's own vocabulary (see :mod:`kizuna.events.custom`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attributes: tuple[CustomAttribute, ...] = Field(default=(), max_length=MAX_CUSTOM_ATTRIBUTES)
    events: tuple[CustomEvent, ...] = Field(default=(), max_length=MAX_CUSTOM_EVENTS)
    tracked: tuple[TrackedEvent, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> CustomConfig:
        for what, names in (
            ("attribute", [a.name for a in self.attributes]),
            ("event", [e.detail_type for e in self.events]),
            ("tracked event", [str(t.detail_type) for t in self.tracked]),
        ):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"custom {what} declared twice: {twice}")
        return self


_SECRET_REF = re.compile(
    r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"
    r"|[A-Za-z0-9/_+=.@-]{1,512})\Z"
)
_HOST = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)


class WebhookEndpoint(BaseModel):
    """One of the shop's HTTPS endpoints a ``webhook`` step or campaign delivers to
    (docs/channels/WEBHOOK.md): the body is signed with HMAC-SHA256 under the key held in
    Secrets Manager (``secret``: its name or ARN; never the key itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2048, description="https://host[:port]/path[?query]")
    secret: str = Field(description="Secrets Manager name or ARN of the HMAC key")
    timeout_seconds: float = Field(default=10, gt=0, le=30, description="per attempt")
    max_attempts: int = Field(
        default=3, ge=1, le=8, description="attempts on 5xx, 429 and timeouts"
    )

    @model_validator(mode="after")
    def _https(self) -> WebhookEndpoint:
        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError:
            raise ValueError(f"url: not a URL: {self.url!r}") from None
        if parts.scheme != "https":
            raise ValueError("url: only https:// endpoints (the body carries customer data)")
        if (
            not parts.hostname
            or not _HOST.match(parts.hostname)
            or parts.username
            or parts.password
        ):
            raise ValueError("url: a host name, without credentials in the URL")
        labels = parts.hostname.split(".")
        if len(labels) < 2 or labels[-1].isdigit():
            # an IP literal (10.0.0.5, 169.254.169.254) or a single label (localhost): an
            # internal address, which fails only at send; the endpoint is reached publicly
            raise ValueError(
                "url: a public DNS name of two labels or more (crm.example.com), not an IP "
                "address or a single-label host"
            )
        if parts.fragment or any(c.isspace() or ord(c) < 32 for c in self.url):
            raise ValueError("url: no fragment, whitespace or control characters")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("url: port out of range")
        if not _SECRET_REF.match(self.secret):
            raise ValueError("secret: a Secrets Manager secret name or ARN")
        return self


# A host whose links a LINE text tracks: a lower-case DNS name of two labels or more
# (``shop.example.com``), or ``*.`` and such a name for its subdomains.
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TRACKED_HOST = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})+")
MAX_TRACKED_HOSTS = 20


def tracked_host_problem(host: str) -> str | None:
    """Why ``host`` cannot be declared in ``tracked_links.hosts``, or None. Nothing is
    normalised: a host is declared exactly as links are compared (lower case, no port)."""
    if any(c in host for c in ":/?#@[]\\") or any(c.isspace() for c in host):
        return "a host name only: no scheme, port, path or credentials (shop.example.com)"
    if host != host.lower():
        return "must be written in lower case (shop.example.com)"
    name = host.removeprefix("*.")
    if "*" in name:
        return "a wildcard is only a leading '*.' (*.shop.example.com)"
    if len(name) > 253 or not _TRACKED_HOST.fullmatch(host):
        return (
            "not a DNS name: two labels or more of a-z, 0-9 and '-', each 1-63 characters, "
            "neither starting nor ending with '-', no trailing dot (an internationalised "
            "name in its xn-- form)"
        )
    if name.rsplit(".", 1)[1].isdigit():
        return "a DNS name, not an IP address"
    return None


class TrackedLinksConfig(BaseModel):
    """The hosts whose links a LINE text tracks (docs/channels/LINE.md, "Clicks"): a link to
    any other host is sent as written, never signed, so a URL that reached a message from
    customer data (a name, an attribute) never becomes a redirect on the shop's link
    domain. ``shop.example.com`` is that host exactly; ``*.shop.example.com`` its
    subdomains (not itself). None declared (the default): no link is tracked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: tuple[str, ...] = Field(
        default=(),
        max_length=MAX_TRACKED_HOSTS,
        description="lower-case host names (shop.example.com, *.shop.example.com)",
    )

    @model_validator(mode="after")
    def _valid(self) -> TrackedLinksConfig:
        for host in self.hosts:
            problem = tracked_host_problem(host)
            if problem:
                raise ValueError(f"tracked_links.hosts: {host!r}: {problem}")
        twice = sorted({h for h in self.hosts if self.hosts.count(h) > 1})
        if twice:
            raise ValueError(f"tracked_links.hosts: declared twice: {twice}")
        return self

    def declares(self, host: str) -> bool:
        """Whether links to ``host`` (a lower-case host name, without port) are tracked."""
        return any(
            (host.endswith(declared[1:]) and len(host) > len(declared) - 1)
            if declared.startswith("*.")
            else host == declared
            for declared in self.hosts
        )


class KizunaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loyalty: LoyaltyConfig = LoyaltyConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    contact: ContactPolicyConfig = ContactPolicyConfig()
    catalog: CatalogConfig = CatalogConfig()
    scoring: ScoringConfig = ScoringConfig()
    behaviour_ttl_days: int = Field(default=90, ge=1, description="TTL of behaviour events")
    idempotency_days: int = Field(
        default=7, ge=1, description="How long processed-event records stay in a customer item"
    )
    event_time: EventTimeConfig = EventTimeConfig()
    custom: CustomConfig = CustomConfig()
    measurement: MeasurementConfig = MeasurementConfig()
    webhooks: dict[
        Annotated[str, StringConstraints(pattern=WEBHOOK_NAME_PATTERN)], WebhookEndpoint
    ] = Field(
        default_factory=dict,
        max_length=20,
        description="the shop's HTTPS endpoints, by name (a step's or campaign's webhook)",
    )
    preferences: PreferencesConfig = PreferencesConfig()
    tracked_links: TrackedLinksConfig = TrackedLinksConfig()

    @model_validator(mode="after")
    def _scoring_window_kept(self) -> KizunaConfig:
        # a settled customer item keeps per-day order totals for the longer of the rank
        # window and a year (kizuna.domain.loyalty.settle): a longer RFM window would count
        # a heavy buyer's settled orders only partly (lower F and M scores)
        kept = max(self.loyalty.rank_window_days, 365)
        if self.scoring.window_days > kept:
            raise ValueError(
                f"scoring.window_days ({self.scoring.window_days}) is longer than the order "
                f"history a customer item keeps ({kept} days: the longer of "
                "loyalty.rank_window_days and 365)"
            )
        return self


# A configuration reaches each function in its ``KIZUNA_CONFIG`` environment variable, and
# AWS caps a function's whole environment at 4 KB: a large one (a migrated project's declared
# attributes) travels zlib-compressed and base64-encoded behind this prefix.
COMPRESSED_PREFIX = "zlib:"
PLAIN_CONFIG_BYTES = 1024  # a configuration up to this size travels as readable JSON


def encode_config(raw_json: str) -> str:
    """The value of ``KIZUNA_CONFIG`` for a configuration's JSON: the JSON itself when it is
    small, else ``zlib:`` and the base64 of its zlib compression (:func:`load_config` reads
    both)."""
    if len(raw_json.encode()) <= PLAIN_CONFIG_BYTES:
        return raw_json
    packed = base64.b64encode(zlib.compress(raw_json.encode(), 9)).decode("ascii")
    return COMPRESSED_PREFIX + packed


def decode_config(value: str) -> str:
    """The configuration's JSON from a ``KIZUNA_CONFIG`` value (plain or compressed)."""
    if not value.startswith(COMPRESSED_PREFIX):
        return value
    try:
        packed = base64.b64decode(value[len(COMPRESSED_PREFIX) :], validate=True)
        return zlib.decompress(packed).decode()
    except (ValueError, zlib.error) as exc:
        raise ValueError("KIZUNA_CONFIG: a zlib: value that does not decompress") from exc


@lru_cache(maxsize=8)
def load_config(raw_json: str) -> KizunaConfig:
    """The configuration from its JSON, or from a ``KIZUNA_CONFIG`` value (see
    :func:`encode_config`)."""
    return KizunaConfig.model_validate_json(decode_config(raw_json or "{}") or "{}")
