"""Named segments: the list with their definitions, the live count, a sample of ids."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field

from kizuna.api.auth import Role
from kizuna.api.context import deps, require
from kizuna.api.deps import ApiDeps
from kizuna.api.params import DIGITS
from kizuna.events.custom import vocabulary
from kizuna.segments import NAME_PATTERN, SegmentDefinition, load_segments
from kizuna.services.campaign_admin import MAX_SAMPLE, segment_members

router = APIGatewayHttpRouter()
SegmentName = Annotated[str, Path(pattern=NAME_PATTERN, description="segment name")]


def segments_of(d: ApiDeps) -> dict[str, SegmentDefinition]:
    """The segments deployed with the function (``segments/*.yaml``); none without the
    folder."""
    if d.segments_dir is None:
        return {}
    return load_segments(d.segments_dir, vocabulary(d.config))


def segment_named(d: ApiDeps, name: str) -> SegmentDefinition:
    found = segments_of(d).get(name)
    if found is None:
        raise NotFoundError(f"no segment {name!r}")
    return found


class Segment(BaseModel):
    name: str
    description: str
    conditions: dict[str, Any] = Field(description="EventBridge content filter on the view")


class SegmentList(BaseModel):
    segments: list[Segment]


class SegmentCount(BaseModel):
    name: str
    count: int
    as_of: str = Field(description="the instant the members were counted (ISO 8601)")


class SegmentSample(BaseModel):
    name: str
    customer_ids: list[str] = Field(description="the first members found (ids only)")


def _segment(s: SegmentDefinition) -> Segment:
    return Segment(name=s.name, description=s.description, conditions=dict(s.conditions))


@router.get(
    "/api/segments",
    summary="Named segments and their definitions",
    tags=["segments"],
    response_description="every segment deployed with the function",
)
def list_segments() -> SegmentList:
    require(router, Role.VIEWER)
    found = segments_of(deps(router))
    return SegmentList(segments=[_segment(found[n]) for n in sorted(found)])


@router.get(
    "/api/segments/<name>/count",
    summary="How many customers are in a segment now (scans the customers table)",
    tags=["segments"],
)
def count_segment(name: SegmentName) -> SegmentCount:
    require(router, Role.VIEWER)
    d = deps(router)
    segment = segment_named(d, name)
    now = d.now()
    count = len(segment_members(segment, d.store, now, d.config))
    return SegmentCount(name=name, count=count, as_of=now.isoformat())


@router.get(
    "/api/segments/<name>/sample",
    summary="A sample of a segment's members (customer ids, no personal data)",
    tags=["segments"],
)
def sample_segment(
    name: SegmentName,
    n: Annotated[int, Field(ge=1, le=MAX_SAMPLE), DIGITS, Query(description="how many ids")] = 10,
) -> SegmentSample:
    require(router, Role.VIEWER)
    d = deps(router)
    segment = segment_named(d, name)
    return SegmentSample(
        name=name, customer_ids=segment_members(segment, d.store, d.now(), d.config, limit=n)
    )
