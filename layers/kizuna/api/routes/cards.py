"""Cards for the shop's own site or app (docs/channels/CARDS.md): ``GET /cards``,
``POST /cards/{card_id}/seen`` and ``/clicked`` with a card token
(``Authorization: Bearer <card token>``, not a Cognito token), and
``POST /machine/cards/tokens`` (IAM) where the shop's backend gets a token for its signed-in
customer. Every card route answers about the token's customer only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import (
    NotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kizuna.api.auth import AuthError, Role, bearer_token
from kizuna.api.body import json_body
from kizuna.api.context import deps, require_machine_or
from kizuna.api.openapi import INVALID, answer, document_body, refusal
from kizuna.api.routes.messages import Invalid
from kizuna.delivery.cards import TOKEN_MAX_TTL, InvalidCardToken, Mark
from kizuna.events.inbound import Count, CustomerId
from kizuna.services.cards import CardNotFound, CardService, CardView

router = APIGatewayHttpRouter()

MAX_BODY_BYTES: Final = 1024


class CardList(BaseModel):
    cards: list[CardView]


class MarkAnswer(BaseModel):
    first: bool = Field(description="True if this was the card's first such mark")


class TokenBody(BaseModel):
    """A token for one signed-in customer, valid ``ttl_seconds`` (at most a day)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    # a whole JSON number: "3600", "3_600" or 3600.0 is refused, not read as 3600
    ttl_seconds: Count = Field(default=3600, ge=60, le=int(TOKEN_MAX_TTL.total_seconds()))


class TokenAnswer(BaseModel):
    token: str
    expires_at: str


_CARD_RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    401: refusal("No card token, or a forged, expired or malformed one"),
    503: refusal("Cards are not configured"),
}


def _service() -> CardService:
    service = deps(router).cards
    if service is None:
        raise ServiceUnavailableError("cards are not configured")
    return service


def _customer(service: CardService) -> str:
    """The card token's customer, or 401 (the reason names no customer)."""
    try:
        token = bearer_token(router.current_event.headers or {})
    except AuthError as error:
        raise UnauthorizedError("send 'Authorization: Bearer <card token>'") from error
    if token is None:
        raise UnauthorizedError("send 'Authorization: Bearer <card token>'")
    try:
        return service.customer_of(token)
    except InvalidCardToken as error:
        raise UnauthorizedError(f"card token {error.reason}") from None


@router.get(
    "/cards",
    summary="The signed-in customer's cards (card token)",
    description="Unexpired cards of the customer the card token names, newest first.",
    tags=["cards"],
    responses={
        200: answer("The cards", CardList),
        **_CARD_RESPONSES,
    },
)
def list_cards() -> Response[Any]:
    service = _service()
    answer = CardList(cards=service.cards(_customer(service)))
    return Response(200, "application/json", answer.model_dump_json())


def _mark(card_id: str, mark: Mark) -> Response[Any]:
    service = _service()
    customer = _customer(service)
    try:
        first = service.mark(customer, card_id, mark)
    except CardNotFound:
        raise NotFoundError("no such card") from None
    return Response(200, "application/json", MarkAnswer(first=first).model_dump_json())


_MARK_RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    200: answer("Stamped", MarkAnswer),
    404: refusal("The customer has no such unexpired card"),
    **_CARD_RESPONSES,
}


@router.post(
    "/cards/<card_id>/seen",
    summary="The customer saw a card (card token)",
    description="Stamps the card's ledger entry (open_at; the first time wins).",
    tags=["cards"],
    responses=_MARK_RESPONSES,
)
def card_seen(card_id: str) -> Response[Any]:
    return _mark(card_id, "seen")


@router.post(
    "/cards/<card_id>/clicked",
    summary="The customer clicked a card (card token)",
    description="Stamps the card's ledger entry (click_at; the first time wins).",
    tags=["cards"],
    responses=_MARK_RESPONSES,
)
def card_clicked(card_id: str) -> Response[Any]:
    return _mark(card_id, "clicked")


document_body("POST", "/machine/cards/tokens", TokenBody)


@router.post(
    "/machine/cards/tokens",
    summary="A card token for a signed-in customer (IAM)",
    description="The shop's backend asks for one when its customer signs in and gives it to "
    "its site or app (docs/channels/CARDS.md).",
    tags=["cards"],
    responses={
        201: answer("The token", TokenAnswer),
        401: refusal("No valid identity"),
        403: refusal("Not a machine or an admin"),
        422: refusal("A field is invalid (named in detail[].loc)", INVALID),
        503: refusal("Cards are not configured"),
    },
)
def mint_token() -> Response[Any]:
    require_machine_or(router, Role.ADMIN)
    service = _service()
    try:
        body = TokenBody.model_validate(json_body(router, MAX_BODY_BYTES))
    except ValidationError as error:
        return Invalid(
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in error.errors(include_input=False, include_url=False)
            ]
        ).response()
    token, expires = service.tokens.mint(body.customer_id, timedelta(seconds=body.ttl_seconds))
    answer = TokenAnswer(token=token, expires_at=expires.isoformat())
    return Response(201, "application/json", answer.model_dump_json())


__all__ = ["CardList", "TokenBody", "router"]
