"""Request bodies of routes that read their body themselves (after the caller is known, so
a request without identity is a 401 before its body is looked at): the OpenAPI document
gets their schema from here instead of from the route's signature. And the documented
responses a route declares: a success with its model, a refusal with a refusal's body."""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

REF_TEMPLATE: Final = "#/components/schemas/{model}"

# The body of a refusal as the app writes it (Powertools' errors, kizuna.api.app's own), and
# of a 422 a route writes itself (kizuna.api.routes.messages.Invalid).
REFUSAL_SCHEMA: Final[dict[str, Any]] = {
    "title": "Refusal",
    "type": "object",
    "properties": {"statusCode": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["statusCode", "message"],
}
INVALID_SCHEMA: Final[dict[str, Any]] = {
    "title": "Invalid",
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer", "const": 422},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        },
    },
    "required": ["statusCode", "detail"],
}


REFUSAL: Final = REF_TEMPLATE.format(model=REFUSAL_SCHEMA["title"])
INVALID: Final = REF_TEMPLATE.format(model=INVALID_SCHEMA["title"])


def refusal(description: str, ref: str = REFUSAL) -> OpenAPIResponse:
    """A refusal's documented response, its body given (``REFUSAL`` or ``INVALID``):
    Powertools documents a response declared without content with the route's success
    model, which a refusal never is."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def answer(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    """A success's documented response with its model."""
    return {"description": description, "content": {"application/json": {"model": model}}}


# (METHOD, path) -> the body's model, and the route's documented headers
_BODIES: dict[tuple[str, str], type[BaseModel]] = {}
_HEADERS: dict[tuple[str, str], list[dict[str, Any]]] = {}


def document_body(
    method: str, path: str, model: type[BaseModel], *, headers: list[dict[str, Any]] | None = None
) -> None:
    _BODIES[(method.lower(), path)] = model
    if headers:
        _HEADERS[(method.lower(), path)] = headers


def add_documented_bodies(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for shared in (REFUSAL_SCHEMA, INVALID_SCHEMA):
        components.setdefault(shared["title"], shared)
    for (method, path), model in sorted(_BODIES.items()):
        op = document.get("paths", {}).get(path, {}).get(method)
        if op is None:
            continue
        schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, schema)
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
            },
        }
    for (method, path), headers in sorted(_HEADERS.items()):
        op = document.get("paths", {}).get(path, {}).get(method)
        if op is not None:
            op.setdefault("parameters", []).extend(headers)
    return document
