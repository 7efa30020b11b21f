"""The report document: everything a report shows, as typed data.

``kizuna report html --publish`` (and the demo) write it as JSON to the analytics bucket
(:mod:`kizuna.analytics.published`); the HTML report (``kizuna_tools.reports.html``) and the
console's reports page render it; ``GET /api/reports/latest`` serves it as is. The sections
are a discriminated union on ``kind``, rendered in order; :class:`Headline` holds the
front page's key figures.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kizuna.analytics.control import ControlComparison
from kizuna.analytics.stats import Lift, Migration, Rate

Cell = str | int | float | None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Frozen):
    """The period a report covers (both dates included)."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")
        return self


class _Section(_Frozen):
    title: str = Field(min_length=1, description="section heading")
    key: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$",
        description="what the section is, for readers of the JSON (e.g. 'program_lift')",
    )
    description: str | None = Field(
        default=None, description="a paragraph under the heading (plain text, escaped)"
    )


class MigrationPanel(_Frozen):
    """One heatmap: a group's migration, e.g. the treated or the holdout customers."""

    label: str = Field(min_length=1, description='heading of the panel, e.g. "Treated"')
    migration: Migration
    before_label: str = Field(default="before", description='the first date, e.g. "2025-04-01"')
    after_label: str = Field(default="after", description='the second date, e.g. "2025-06-30"')


class MigrationSection(_Section):
    """Migration heatmaps side by side (typically treated and holdout, same states)."""

    kind: Literal["migration"] = "migration"
    panels: tuple[MigrationPanel, ...] = Field(
        default=(), description="rendered left to right, wrapping on narrow screens"
    )


class Series(_Frozen):
    """One line or band of a trend chart: a value per date of the section."""

    name: str = Field(min_length=1, description="legend label, e.g. a segment name")
    values: tuple[float, ...] = Field(description="one finite value >= 0 per date")

    @field_validator("values")
    @classmethod
    def _finite(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (v >= 0.0 and v != float("inf")) for v in values):
            raise ValueError("values must be finite and >= 0")
        return values


class SegmentTrendSection(_Section):
    """Segment sizes over time: stacked areas (shares of the base) or lines."""

    kind: Literal["segment_trend"] = "segment_trend"
    dates: tuple[date, ...] = Field(default=(), description="strictly increasing x values")
    series: tuple[Series, ...] = Field(
        default=(), description="first series at the bottom of the stack"
    )
    stacked: bool = Field(default=True, description="stacked areas (True) or lines (False)")
    y_label: str = Field(default="customers", description="y axis title")

    @model_validator(mode="after")
    def _aligned(self) -> SegmentTrendSection:
        if any(b <= a for a, b in zip(self.dates, self.dates[1:], strict=False)):
            raise ValueError("dates must be strictly increasing")
        for s in self.series:
            if len(s.values) != len(self.dates):
                raise ValueError(
                    f"series {s.name!r} has {len(s.values)} values for {len(self.dates)} dates"
                )
        return self


class LiftRow(_Frozen):
    """One row of the lift chart: a program, optionally one arm or channel of it."""

    program: str = Field(min_length=1, description="program id or name")
    arm: str | None = Field(default=None, description="arm / channel, shown after the program")
    lift: Lift

    @property
    def label(self) -> str:
        return self.program if self.arm is None else f"{self.program} · {self.arm}"


class LiftSection(_Section):
    """Program lift over holdout: point = absolute lift, bar = its confidence interval."""

    kind: Literal["lift"] = "lift"
    rows: tuple[LiftRow, ...] = Field(default=(), description="top to bottom")
    show_table: bool = Field(
        default=True, description="add a table of the counts, rates, lift, interval and p-value"
    )


class TableSection(_Section):
    """A generic table: numbers are right-aligned, ints get thousands separators."""

    kind: Literal["table"] = "table"
    columns: tuple[str, ...] = Field(min_length=1, description="column headings")
    rows: tuple[tuple[Cell, ...], ...] = Field(
        default=(), description="one value per column; None renders as an em dash"
    )
    float_digits: int = Field(default=3, ge=0, le=10, description="decimals shown for floats")

    @model_validator(mode="after")
    def _widths(self) -> TableSection:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells for {len(self.columns)} columns")
        return self


Section = Annotated[
    MigrationSection | SegmentTrendSection | LiftSection | TableSection,
    Field(discriminator="kind"),
]


class Shift(_Frozen):
    """How a group's customers moved between two dates (from a :class:`Migration`)."""

    customers: int = Field(ge=0, description="customers present on both dates")
    up: int = Field(ge=0)
    stayed: int = Field(ge=0)
    down: int = Field(ge=0)
    up_share: float | None = Field(description="up / customers; None when there are none")
    down_share: float | None = Field(description="down / customers; None when there are none")

    @classmethod
    def of(cls, m: Migration) -> Shift:
        return cls(
            customers=m.retained,
            up=m.up,
            stayed=m.stayed,
            down=m.down,
            up_share=m.up_share,
            down_share=m.down_share,
        )


class StructureShift(_Frozen):
    """The RFM segment or rank structure change of treated customers against the holdout."""

    attribute: Literal["rfm_segment", "rank"]
    program: str | None = Field(default=None, description="None: every program")
    against: Literal["holdout", "global_control"] = Field(
        default="holdout",
        description="holdout: treated vs held out; global_control: everyone else (treated "
        "population) vs the global control group, in ``holdout``",
    )
    before: date
    after: date
    treated: Shift
    holdout: Shift

    @property
    def net_up_gap(self) -> float | None:
        """(up − down share of treated) − (up − down share of the holdout); None without
        customers on both dates in either group."""
        t, h = self.treated, self.holdout
        if t.up_share is None or t.down_share is None:
            return None
        if h.up_share is None or h.down_share is None:
            return None
        return (t.up_share - t.down_share) - (h.up_share - h.down_share)


class Headline(_Frozen):
    """The front page: the base on the last snapshot date and its structure change."""

    as_of: date = Field(description="the snapshot date the figures are from")
    customers: int = Field(ge=0)
    buyers: int = Field(ge=0, description="customers with at least one order")
    repeat_rate: Rate = Field(description="buyers with two or more orders / buyers")
    revenue_12m: float = Field(ge=0, description="the customers' spend over the last 12 months")
    structure: tuple[StructureShift, ...] = Field(default=())
    control: ControlComparison | None = Field(
        default=None,
        description="treated population vs global control (None: the group is off)",
    )


class ReportDocument(_Frozen):
    """Everything a report shows (``kizuna_tools.reports.html.render_html`` turns it into
    one HTML file)."""

    title: str = Field(min_length=1)
    generated_at: datetime = Field(description="shown as is (keep its time zone)")
    period: Period | None = Field(default=None, description="the period the data covers")
    subtitle: str | None = Field(default=None, description="a line under the title")
    lang: str = Field(default="ja", pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
    headline: Headline | None = Field(default=None, description="the front page's figures")
    sections: tuple[Section, ...] = Field(default=(), description="rendered in order")


def section_of(doc: ReportDocument, key: str) -> Section | None:
    """The first section with this key, if any."""
    return next((s for s in doc.sections if s.key == key), None)
