"""Reports: the JSON of what the HTML report shows, as published to the analytics bucket
by ``kizuna report html --publish`` (and the demo)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field

from kizuna.analytics import published
from kizuna.analytics.document import ReportDocument
from kizuna.api.auth import Role
from kizuna.api.context import deps, require
from kizuna.api.params import Day

router = APIGatewayHttpRouter()


class ReportIndex(BaseModel):
    latest: str | None = Field(description="the path of the last published report, if any")
    days: list[date] = Field(description="days with a published report, newest first")


@router.get("/api/reports", summary="The published reports", tags=["reports"])
def list_reports() -> ReportIndex:
    require(router, Role.VIEWER)
    objects = deps(router).reports
    days = published.days(objects) if objects is not None else []
    return ReportIndex(latest="/api/reports/latest" if days else None, days=days)


def _found(doc: ReportDocument | None, what: str) -> ReportDocument:
    if doc is None:
        raise NotFoundError(f"no report published {what} (kizuna report html --publish writes one)")
    return doc


@router.get(
    "/api/reports/latest",
    summary="The last published report (what the HTML report shows, as JSON)",
    tags=["reports"],
)
def latest_report() -> ReportDocument:
    require(router, Role.VIEWER)
    objects = deps(router).reports
    return _found(published.latest(objects) if objects else None, "yet")


@router.get("/api/reports/<day>", summary="The report published on a day", tags=["reports"])
def report_of_day(
    day: Annotated[Day, Path(description="the UTC day it was published, YYYY-MM-DD")],
) -> ReportDocument:
    require(router, Role.VIEWER)
    objects = deps(router).reports
    return _found(published.of_day(objects, day) if objects else None, f"on {day}")
