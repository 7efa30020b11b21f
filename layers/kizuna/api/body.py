"""A JSON request body read under a size bound, before anything parses it: routes that take
a body read it here, after authentication (a caller without an identity is refused before
its body is looked at), and answer 413 past the bound, 400 for what is not JSON.

Routes whose body Powertools validates against a model (``body: CampaignWrite``) have it
parsed by :func:`strict_loads` (the resolver's ``json_body_deserializer``): the same
refusals, a repeated key or ``NaN`` being a 400 (:class:`BodyRefused`), not the last value
or a number no JSON reader takes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    RequestEntityTooLargeError,
)

from kizuna.domain import strict_json


def json_body(router: Any, limit: int) -> Any:
    """The request's JSON body (numbers with a fraction as Decimal, exactly as sent), or
    400/413. ``limit``: bytes of the decoded body."""
    event = router.current_event
    raw: str | None = event.body
    if raw is None or not raw.strip():
        raise BadRequestError("the request needs a JSON body")
    if len(raw) > limit * 4 // 3 + 4:  # past the bound even base64-encoded: not decoded
        raise RequestEntityTooLargeError(f"the body is over {limit} bytes")
    try:
        text: str = event.decoded_body or ""
    except ValueError as error:  # bad base64, or not UTF-8
        raise BadRequestError("the body is not UTF-8 text") from error
    size = len(text.encode())
    if size > limit:
        raise RequestEntityTooLargeError(f"the body is {size} bytes; at most {limit}")
    try:
        return strict_json.loads(text, parse_float=Decimal)  # NaN: not JSON
    except strict_json.RepeatedKey as error:  # which of the two values was meant?
        raise BadRequestError(f"the body is not valid: {error} in one object") from error
    except (ValueError, RecursionError) as error:
        raise BadRequestError("the body is not valid JSON") from error


class BodyRefused(Exception):
    """A body :func:`strict_loads` refuses (400, saying why as :func:`json_body` does)."""


def strict_loads(text: str) -> Any:
    """``json.loads`` for Powertools' body validation, refusing what :func:`json_body`
    refuses: a key given twice in one object, ``NaN`` and ``Infinity`` (:class:`BodyRefused`).
    What is not JSON at all stays Powertools' 422 (``json_invalid``)."""
    try:
        return strict_json.loads(text)
    except strict_json.RepeatedKey as error:
        raise BodyRefused(f"the body is not valid: {error} in one object") from error
    except strict_json.NotJsonNumber as error:
        raise BodyRefused("the body is not valid JSON") from error


def header(router: Any, name: str) -> str | None:
    headers = router.current_event.headers or {}
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == wanted), None)
