"""The audit log of the API's writes: ``GET /api/audit?day=YYYY-MM-DD`` (admin)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field

from kizuna.api.auth import Role
from kizuna.api.context import deps, require
from kizuna.api.params import iso_day

router = APIGatewayHttpRouter()


class AuditRow(BaseModel):
    at: str
    actor_id: str
    actor_name: str
    actor_kind: str
    action: str
    target: str
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditDay(BaseModel):
    day: str
    rows: list[AuditRow]


def _day(value: str | None, today: date) -> str:
    if value is None:
        return today.isoformat()
    try:
        return iso_day(value).isoformat()
    except ValueError as error:
        raise BadRequestError("day: a date as YYYY-MM-DD") from error


def _plain(value: Any) -> Any:
    """DynamoDB's numbers back to ints (the audit's details hold counts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@router.get(
    "/api/audit",
    summary="The audit log of one day (UTC), oldest first (admin)",
    tags=["audit"],
)
def audit_day(
    day: Annotated[
        str | None, Query(description="the UTC day, YYYY-MM-DD (400 otherwise); default today")
    ] = None,
) -> AuditDay:
    require(router, Role.ADMIN)
    d = deps(router)
    day = _day(day, d.now().date())
    items = sorted(d.audit.day(day), key=lambda i: str(i["sk"]))
    return AuditDay(
        day=day,
        rows=[
            AuditRow(
                at=str(i["at"]),
                actor_id=str(i["actor_id"]),
                actor_name=str(i["actor_name"]),
                actor_kind=str(i["actor_kind"]),
                action=str(i["action"]),
                target=str(i["target"]),
                detail=_plain(i.get("detail") or {}),
            )
            for i in items
        ],
    )
