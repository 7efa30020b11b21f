"""One customer: the profile (personal data masked below PERSONAL_DATA_ROLE) and the timeline."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field

from kizuna.api.auth import Role
from kizuna.api.context import deps, require
from kizuna.api.openapi import answer, refusal
from kizuna.api.params import DIGITS
from kizuna.events.inbound import CUSTOMER_ID_PATTERN
from kizuna.services.customers import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_TOKEN_CHARS,
    CustomerLookup,
    CustomerProfile,
    InvalidPageToken,
    TimelinePage,
)

router = APIGatewayHttpRouter()

CustomerIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=CUSTOMER_ID_PATTERN,
        description="The customer id, by the inbound events' grammar (docs/EVENTS.md)",
    ),
]
NOT_FOUND = "no such customer"  # never created, or erased: the same answer, without data


def lookup() -> CustomerLookup:
    d = deps(router)
    return CustomerLookup(d.store, d.config, d.now)


@router.get(
    "/api/customers/<customer_id>",
    summary="A customer's profile, loyalty, RFM, lifecycle and channels",
    description=(
        "Personal data (email, phone, names, birth date, LINE id) is in clear for the "
        "marketer and admin groups and masked for viewer (`h***@example.jp`, `***78`, "
        "`Y***`). An unknown or erased customer is 404."
    ),
    tags=["customers"],
    responses={
        200: answer("The customer's profile", CustomerProfile),
        404: refusal("No such customer (or erased)"),
    },
)
def get_customer(customer_id: CustomerIdPath) -> CustomerProfile:
    principal = require(router, Role.VIEWER)
    found = lookup().profile(customer_id, reveal=principal.sees_personal_data)
    if found is None:
        raise NotFoundError(NOT_FOUND)
    return found


@router.get(
    "/api/customers/<customer_id>/timeline",
    summary="A customer's activity, newest first, each decision with its reason and why",
    description=(
        "Orders, cancellations, refunds, points, consent changes, behaviour, program decisions "
        "(entered, held out, skipped, converted), journey steps, and messages (sent, "
        "suppressed, deferred, failed; campaign messages too). No personal data. Page with "
        "`limit` and the answer's `next_token`; `lang` sets the language of `why`."
    ),
    tags=["customers"],
    responses={
        200: answer("A page of the customer's activity, newest first", TimelinePage),
        404: refusal("No such customer (or erased)"),
    },
)
def get_timeline(
    customer_id: CustomerIdPath,
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT), DIGITS, Query()] = DEFAULT_LIMIT,
    next_token: Annotated[str | None, Query(min_length=1, max_length=MAX_TOKEN_CHARS)] = None,
    lang: Annotated[Literal["ja", "en"], Query()] = "ja",
) -> TimelinePage:
    require(router, Role.VIEWER)
    try:
        page = lookup().timeline(customer_id, limit=limit, next_token=next_token, lang=lang)
    except InvalidPageToken as error:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "next_token"),
                    "msg": f"{error}: pass the next_token of a previous page as it was",
                    "input": next_token,
                }
            ]
        ) from error
    if page is None:
        raise NotFoundError(NOT_FOUND)
    return page
