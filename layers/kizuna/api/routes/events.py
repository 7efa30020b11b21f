"""The shop's events through the API: ``POST /machine/events`` (IAM) and ``POST /api/events``
(admin), one handler: a batch of up to 100 inbound events, each answered by its index
(:mod:`kizuna.services.intake`)."""

from __future__ import annotations

from typing import Any, Final, Literal

from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    RequestEntityTooLargeError,
    ServiceUnavailableError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from kizuna.api.auth import Principal, Role
from kizuna.api.body import json_body
from kizuna.api.context import deps, require, require_machine_or
from kizuna.api.openapi import document_body, refusal
from kizuna.events import INBOUND_MODELS
from kizuna.events.custom import vocabulary
from kizuna.services.intake import MAX_EVENTS, EventIntake

router = APIGatewayHttpRouter()

INBOUND_EVENT_TYPES: Final = tuple(INBOUND_MODELS)

# A request's body: 100 events of ~10 KB (an order of 500 lines is ~50 KB: send such orders
# in smaller batches). Each event is also bounded by EventBridge's 256 KB.
MAX_BODY_BYTES: Final = 1024 * 1024


class EventAnswer(BaseModel):
    index: int
    status: Literal["accepted", "rejected", "failed"]
    event_id: str | None = Field(
        default=None,
        description="the id Kizuna records an accepted event under (the ledger, activity, "
        "execution names): the bus's id, or key-<32 hex> for an event with an idempotency_key "
        "(the same for every put of it)",
    )
    bus_event_id: str | None = Field(
        default=None, description="EventBridge's id of this put of an accepted event"
    )
    detail_type: str | None = None
    field: str | None = None
    reason: str | None = None


class EventsAnswer(BaseModel):
    source: str
    accepted: int
    rejected: int
    failed: int
    results: list[EventAnswer]


RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    200: {
        "description": "Each event's outcome, by index",
        "content": {"application/json": {"model": EventsAnswer}},
    },
    400: refusal("The body is not JSON, or not a list of events"),
    401: refusal("No valid identity"),
    403: refusal("Not an admin (on /api)"),
    413: refusal(f"Over {MAX_EVENTS} events or {MAX_BODY_BYTES} bytes"),
    503: refusal("The bus is not configured"),
}


class InboundEvent(BaseModel):
    """One inbound event: its detail-type and its detail (docs/EVENTS.md; each detail's JSON
    Schema is in schemas/<detail-type>.v1.json)."""

    model_config = ConfigDict(populate_by_name=True)

    detail_type: str = Field(
        alias="detail-type",
        description="a built-in inbound type (" + ", ".join(INBOUND_EVENT_TYPES) + ") or one "
        "the configuration declares (custom.events, e.g. wishlist.added)",
        examples=["order.placed"],
    )
    detail: dict[str, Any]


class EventsBody(BaseModel):
    """Up to 100 events (a bare JSON array of them is accepted too)."""

    events: list[InboundEvent] = Field(min_length=1, max_length=MAX_EVENTS)


document_body("POST", "/machine/events", EventsBody)
document_body("POST", "/api/events", EventsBody)


def _events_of(body: Any) -> list[Any]:
    events = body.get("events") if isinstance(body, dict) and set(body) == {"events"} else body
    if not isinstance(events, list):
        raise BadRequestError('the body is {"events": [...]} or a JSON array of events')
    if not events:
        raise BadRequestError("events: at least one event")
    if len(events) > MAX_EVENTS:
        raise RequestEntityTooLargeError(f"{len(events)} events; at most {MAX_EVENTS} a request")
    return events


def _put(principal: Principal) -> EventsAnswer:
    d = deps(router)
    if d.events is None:
        raise ServiceUnavailableError("the event bus is not configured")
    events = _events_of(json_body(router, MAX_BODY_BYTES))
    now = d.now()
    intake = EventIntake(d.events, d.config.event_time, lambda: now, vocabulary(d.config))
    result = intake.accept(events)
    answer = EventsAnswer(
        source=d.events.source,
        accepted=result.count("accepted"),
        rejected=result.count("rejected"),
        failed=result.count("failed"),
        results=[EventAnswer(**r.__dict__) for r in result.results],
    )
    types = sorted(
        {r.detail_type for r in result.results if r.status == "accepted" and r.detail_type}
    )
    d.audit.record(
        principal,
        "events.put",
        f"bus:{d.events.source}",
        now,
        {
            "received": len(events),
            "accepted": answer.accepted,
            "rejected": answer.rejected,
            "failed": answer.failed,
            "types": types,
        },
    )
    return answer


@router.post(
    "/machine/events",
    summary="Put the shop's events on the bus (IAM)",
    description='Up to 100 inbound events ({"detail-type", "detail"} as in docs/EVENTS.md), '
    "each validated as ingest validates it and answered by its index.",
    tags=["events"],
    responses=RESPONSES,
)
def machine_events() -> EventsAnswer:
    return _put(require_machine_or(router, Role.ADMIN))


@router.post(
    "/api/events",
    summary="Put the shop's events on the bus (admin)",
    description="The same as POST /machine/events, for an admin's id token.",
    tags=["events"],
    responses=RESPONSES,
)
def api_events() -> EventsAnswer:
    return _put(require(router, Role.ADMIN))
