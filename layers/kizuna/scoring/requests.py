"""What the scoring state machine sends the score function, and the RFM boundaries a run
shares: plain pydantic models, so the handler parses its request without loading numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, RootModel


def _utc(value: datetime) -> datetime:
    """The run's date (event ids, work-file and snapshot keys, the snapshots table's date) is
    the UTC date of its ``as_of``: another offset would name another day for the same
    instant, so it is refused rather than converted."""
    if value.utcoffset() != timedelta(0):
        raise ValueError(
            f"as_of must be in UTC (Z or +00:00), not {value.isoformat()}: "
            f"give {value.astimezone(UTC).isoformat()}"
        )
    return value.astimezone(UTC)


UtcInstant = Annotated[AwareDatetime, AfterValidator(_utc)]


class Boundaries(BaseModel):
    """Four ascending cut points per measure (what every shard of a run shares)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recency_days: tuple[float, float, float, float]
    frequency: tuple[float, float, float, float]
    monetary: tuple[float, float, float, float]
    sample_size: int = Field(default=0, ge=0, description="customers the quantiles came from")
    window_buyers: int = Field(
        default=0,
        ge=0,
        description="of them, those with an order in the window (the F and M quantiles' base)",
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoringRun(_Request):
    """The execution's input: ``{}`` from the daily schedule; ``kizuna scoring run --as-of``
    starts one ``as_of`` an earlier instant (a replay of history), in UTC."""

    as_of: UtcInstant | None = None


class BoundariesRequest(_Request):
    action: Literal["boundaries"] = "boundaries"
    total_segments: int = Field(ge=1, le=1000)
    run: ScoringRun = ScoringRun()


class ScoreRequest(_Request):
    action: Literal["score"] = "score"
    segment: int = Field(ge=0)
    total_segments: int = Field(ge=1, le=1000)
    boundaries: Boundaries
    as_of: UtcInstant


class FinishRequest(_Request):
    action: Literal["finish"] = "finish"
    total_segments: int = Field(ge=1, le=1000)
    as_of: UtcInstant


class ScoringRequest(
    RootModel[
        Annotated[BoundariesRequest | ScoreRequest | FinishRequest, Field(discriminator="action")]
    ]
):
    """What the state machine sends the score function."""
