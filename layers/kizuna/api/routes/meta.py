"""Who am I, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from kizuna.api.auth import Role
from kizuna.api.context import caller, require

router = APIGatewayHttpRouter()


class Me(BaseModel):
    id: str
    name: str
    kind: str
    roles: list[str]


@router.get("/api/me", summary="The signed-in caller and their groups", tags=["meta"])
def me() -> Me:
    p = require(router, Role.VIEWER)
    return Me(id=p.id, name=p.name, kind=p.kind, roles=sorted(r.value for r in p.roles))


@router.get("/machine/me", summary="The IAM caller", tags=["meta"])
def machine_me() -> Me:
    p = caller(router)
    return Me(id=p.id, name=p.name, kind=p.kind, roles=[])


@router.get("/api/openapi.json", summary="This API's OpenAPI document", tags=["meta"])
def openapi() -> dict[str, Any]:
    from kizuna.api.app import build_app, openapi_document
    from kizuna.api.context import deps

    require(router, Role.VIEWER)
    return openapi_document(build_app(deps(router)))
