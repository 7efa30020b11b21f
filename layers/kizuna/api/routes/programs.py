"""Programs: the deployed bundle (list, definition, diagram) and each program's figures."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from kizuna.api.auth import Role
from kizuna.api.context import deps, require
from kizuna.api.params import Time
from kizuna.programs.diagram import mermaid
from kizuna.programs.model import Program
from kizuna.services import programs as service

router = APIGatewayHttpRouter()

ProgramName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="program id")]


def find(name: str) -> Program:
    d = deps(router)
    program = service.deployed(d.programs_dir, d.config, d.segments_dir).get(name)
    if program is None:
        raise NotFoundError(f"no deployed program named {name!r}")
    return program


class Diagram(BaseModel):
    program: str
    mermaid: str


@router.get(
    "/api/programs",
    summary="The deployed programs",
    tags=["programs"],
    response_description="name, trigger, steps, channels, holdout and status of each",
)
def list_programs() -> list[service.ProgramSummary]:
    require(router, Role.VIEWER)
    d = deps(router)
    programs = service.deployed(d.programs_dir, d.config, d.segments_dir)
    return [service.summary(p) for p in sorted(programs.values(), key=lambda p: p.id)]


@router.get("/api/programs/<name>", summary="A program's definition", tags=["programs"])
def get_program(name: ProgramName) -> Program:
    require(router, Role.VIEWER)
    return find(name)


@router.get(
    "/api/programs/<name>/diagram",
    summary="A program's journey as a Mermaid flowchart",
    tags=["programs"],
)
def get_diagram(name: ProgramName) -> Diagram:
    require(router, Role.VIEWER)
    return Diagram(program=name, mermaid=mermaid(find(name)))


@router.get(
    "/api/programs/<name>/stats",
    summary="A program's entries, sends, suppressions, conversions and lift over a range",
    description=(
        "From the ledger's program/time index over [from, to) (default: the last 30 days; at "
        "most 366 days), as of the request; plus the lift of the last published report "
        "(as of its generation), when there is one."
    ),
    tags=["programs"],
)
def get_stats(
    name: ProgramName,
    start: Annotated[
        Time | None, Query(alias="from", description="ISO time with zone (inclusive)")
    ] = None,
    end: Annotated[
        Time | None, Query(alias="to", description="ISO time with zone (exclusive)")
    ] = None,
) -> service.ProgramStats:
    require(router, Role.VIEWER)
    program = find(name)
    d = deps(router)
    try:
        start, end = service.stats_range(start, end, d.now())
    except service.RangeError as error:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", error.field), "msg": str(error)}]
        ) from error
    return service.program_stats(d.store, d.reports, program.id, start, end, d.now())
