"""Request bodies of routes that read their body themselves (after the caller is known, so
a request without identity is a 401 before its body is looked at): the OpenAPI document
gets their schema from here instead of from the route's signature."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

REF_TEMPLATE: Final = "#/components/schemas/{model}"

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
