"""Transactional messages through the API: ``POST /machine/messages`` (IAM) and
``POST /api/messages`` (marketer and up): "template T to customer C now", exactly once per
``Idempotency-Key`` (the send function decides and sends:
:mod:`kizuna.services.transactional`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from decimal import Decimal
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import ServiceUnavailableError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from kizuna.api.auth import Principal, Role
from kizuna.api.body import header, json_body
from kizuna.api.context import deps, require, require_machine_or
from kizuna.api.openapi import INVALID, answer, document_body, refusal
from kizuna.events.inbound import TEXT_PATTERN, CustomerChannel, CustomerId
from kizuna.services.contracts import (
    SendUnavailable,
    TransactionalRequest,
    TransactionalResponse,
)

router = APIGatewayHttpRouter()

MAX_BODY_BYTES: Final = 16 * 1024
MAX_DATA_BYTES: Final = 8 * 1024  # the template variables, as JSON
MAX_DATA_DEPTH: Final = 4
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
IDEMPOTENCY_KEY: Final = re.compile(r"^[A-Za-z0-9_.:~-]{1,128}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_TEXT = re.compile(TEXT_PATTERN)
# Session names of an assumed role change with every credential refresh: a machine's keys
# belong to its role, not to one session.
_ASSUMED_ROLE = re.compile(r"^(arn:[a-z-]+:sts::\d{12}:assumed-role/[^/]+)/.+\Z")


def _check_data(value: Any, depth: int = 0) -> None:
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not _VARIABLE.match(key):
                raise ValueError("names are letters, digits and '_' (at most 64)")
            _check_data(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_data(item, depth + 1)
    elif isinstance(value, str):
        if not _TEXT.fullmatch(value):
            raise ValueError("text must not contain control characters")
    elif value is not None and not isinstance(value, bool | int | float | Decimal):
        raise ValueError("values are text, numbers, booleans, null, lists or objects")
    elif isinstance(value, float | Decimal) and (
        not math.isfinite(value) or not math.isfinite(float(value))
    ):
        # 1e400 reads as a Decimal a float cannot hold: it would render empty
        raise ValueError("a number within a 64-bit float's range (1e400 is not)")
    elif isinstance(value, Decimal) and Decimal(repr(float(value))) != value:
        # the send function gets the data as JSON numbers (64-bit floats): 0.1 and 1.10 are
        # carried exactly, 12345678901234567.89 would render 1.2345678901234568e+16
        raise ValueError(
            "a number a 64-bit float holds exactly (at most 15 significant digits with a "
            "fraction): send more digits as text"
        )


class MessageBody(BaseModel):
    """A transactional message: ``channel`` or ``channels`` (tried in order: the first the
    customer can be reached on and has not refused), ``data`` for the template."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    template: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    channel: CustomerChannel | None = None
    channels: list[CustomerChannel] | None = Field(default=None, min_length=1, max_length=4)
    data: dict[str, Any] = Field(default_factory=dict)
    locale: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None

    @field_validator("data")
    @classmethod
    def _bounded(cls, data: dict[str, Any]) -> dict[str, Any]:
        _check_data(data)
        if len(json.dumps(data, default=str, ensure_ascii=False).encode()) > MAX_DATA_BYTES:
            raise ValueError(f"at most {MAX_DATA_BYTES} bytes as JSON")
        return data

    @model_validator(mode="after")
    def _one_channel_list(self) -> MessageBody:
        if (self.channel is None) == (self.channels is None):
            raise ValueError("give channel or channels (one of them)")
        if self.channels is not None and len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: each channel once")
        return self

    def channel_order(self) -> tuple[str, ...]:
        if self.channels is not None:
            return tuple(str(c) for c in self.channels)
        return (str(self.channel),)

    def digest(self) -> str:
        """The request's hash: what it asks, whatever its spelling (key order, spaces,
        ``channel`` or a one-channel ``channels``)."""
        canonical = {
            "customer_id": self.customer_id,
            "template": self.template,
            "channels": list(self.channel_order()),
            "data": self.data,
            "locale": self.locale,
        }
        text = json.dumps(canonical, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


class MessageAnswer(BaseModel):
    status: str
    message_id: str | None = None
    channel: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    skipped: list[dict[str, str]] = Field(default_factory=list)
    at: str | None = None


RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    201: answer("The message's outcome: sent, suppressed or failed", MessageAnswer),
    200: answer(
        "A retry of a key already answered: the first answer (header Idempotent-Replayed: true)",
        MessageAnswer,
    ),
    400: refusal("The body is not JSON"),
    401: refusal("No valid identity"),
    403: refusal("Below marketer (on /api)"),
    409: answer(
        "The key was used with another body (status conflict), or its send is in flight "
        "(status in_progress)",
        MessageAnswer,
    ),
    413: refusal(f"Over {MAX_BODY_BYTES} bytes"),
    422: refusal("A field is invalid (named in detail[].loc)", INVALID),
    503: refusal("The send function did not answer: retry with the same key"),
}


def caller_scope(principal: Principal) -> str:
    """Whose keys: a person's Cognito ``sub``, a machine's IAM role (or user)."""
    if principal.kind == "iam":
        match = _ASSUMED_ROLE.match(principal.id)
        return f"iam:{match.group(1) if match else principal.id}"
    return f"user:{principal.id}"


def execution_of(principal: Principal, key: str) -> str:
    """The ledger's execution of a key: ``tx:`` and a hash of the caller and the key."""
    digest = hashlib.sha256(f"{caller_scope(principal)}\n{key}".encode()).hexdigest()
    return f"tx:{digest[:32]}"


class Invalid(Exception):
    """A request refused with 422, its fields named as Powertools names them."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.detail = detail

    @classmethod
    def at(cls, loc: list[str | int], msg: str) -> Invalid:
        return cls([{"loc": loc, "msg": msg, "type": "value_error"}])

    def response(self) -> Response[Any]:
        body = {"statusCode": 422, "detail": self.detail}
        return Response(422, "application/json", json.dumps(body))


def _request(principal: Principal) -> TransactionalRequest:
    """The request the send function gets, from the key and the body; or Invalid."""
    key = header(router, IDEMPOTENCY_HEADER)
    if key is None or not IDEMPOTENCY_KEY.fullmatch(key):
        raise Invalid.at(
            ["header", IDEMPOTENCY_HEADER], "required: 1-128 letters, digits or . _ : ~ -"
        )
    raw = json_body(router, MAX_BODY_BYTES)
    try:
        body = MessageBody.model_validate(raw)
    except ValidationError as error:
        raise Invalid(
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in error.errors(include_input=False, include_url=False)
            ]
        ) from error
    return TransactionalRequest(
        execution=execution_of(principal, key),
        request_hash=body.digest(),
        caller=caller_scope(principal),
        customer_id=body.customer_id,
        template=body.template,
        channels=body.channel_order(),
        data=json.loads(json.dumps(body.data, default=float)),
        locale=body.locale,
    )


# outcomes that are not a message's: the key's conflicts, a request the send refused
STATUS_CODES: Final = {"conflict": 409, "in_progress": 409, "rejected": 422}


def _send(principal: Principal) -> Response[Any]:
    d = deps(router)
    if d.messages is None:
        raise ServiceUnavailableError("transactional messages are not configured")
    try:
        request = _request(principal)
    except Invalid as invalid:
        return invalid.response()
    now = d.now()
    target = f"customer:{request.customer_id}"
    audit: dict[str, Any] = {"template": request.template, "message_id": request.execution}
    try:
        outcome = d.messages.transactional(request)
    except SendUnavailable as error:
        d.audit.record(principal, "message.send", target, now, {**audit, "status": "unavailable"})
        raise ServiceUnavailableError(
            f"{error}: the outcome is unknown; retry with the same {IDEMPOTENCY_HEADER}"
        ) from error
    said = outcome.model_dump(include={"status", "channel", "reason"}, exclude_none=True)
    d.audit.record(
        principal, "message.send", target, now, {**audit, **said, "replayed": outcome.replayed}
    )
    if outcome.status == "rejected":
        return Invalid.at(["body", outcome.field or "body"], outcome.reason or "").response()
    answer = MessageAnswer(**outcome.model_dump(exclude={"replayed", "field"}))
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    status = STATUS_CODES.get(outcome.status, 200 if outcome.replayed else 201)
    return Response(status, "application/json", answer.model_dump_json(), headers=headers)


_IDEMPOTENCY_PARAMETER: Final = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": True,
    "description": "1-128 of A-Z a-z 0-9 _ . : ~ -; the same key again answers the first "
    "outcome (200, Idempotent-Replayed: true), with another body 409",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
}
for _path in ("/machine/messages", "/api/messages"):
    document_body("POST", _path, MessageBody, headers=[_IDEMPOTENCY_PARAMETER])


@router.post(
    "/machine/messages",
    summary="Send a transactional message now (IAM)",
    description="Template T to customer C now, exactly once per Idempotency-Key "
    "(docs/API.md: the transactional policy).",
    tags=["messages"],
    responses=RESPONSES,
)
def machine_messages() -> Response[Any]:
    return _send(require_machine_or(router, Role.MARKETER))


@router.post(
    "/api/messages",
    summary="Send a transactional message now (marketer)",
    description="The same as POST /machine/messages, for a marketer's or admin's id token.",
    tags=["messages"],
    responses=RESPONSES,
)
def api_messages() -> Response[Any]:
    return _send(require(router, Role.MARKETER))


__all__ = ["MessageAnswer", "MessageBody", "TransactionalResponse", "router"]
