"""Console pages of the named segments: the list, and one segment's definition, live count
and a sample of member ids."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.api.routes.segments import segments_of
from kizuna.segments import NAME_PATTERN
from kizuna.services.campaign_admin import segment_members

router = APIGatewayHttpRouter()
SAMPLE_SIZE = 20
_NAME = re.compile(NAME_PATTERN)


def condition_lines(conditions: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """A segment's conditions as lines a marketer reads: ``rank: Gold, Platinum``,
    ``consent.email: opted_in``; anything else (numeric tests...) as its JSON."""
    for key, value in conditions.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from condition_lines(value, f"{name}.")
        elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            yield f"{name}: {', '.join(str(v) for v in value)}"
        else:
            yield f"{name}: {json.dumps(value, ensure_ascii=False)}"


@router.get("/console/segments", include_in_schema=False)
def segments_page() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    found = segments_of(deps(router))
    rows = [
        {
            "name": s.name,
            "description": s.description,
            "conditions": list(condition_lines(s.conditions)),
        }
        for s in (found[n] for n in sorted(found))
    ]
    return console.render(router.current_event, "segments.html", principal=principal, rows=rows)


@router.get("/console/segments/<name>", include_in_schema=False)
def segment_page(name: str) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    d = deps(router)
    segment = segments_of(d).get(name) if _NAME.fullmatch(name) else None
    event = router.current_event
    if segment is None:
        return console.render(
            event,
            "error.html",
            status=404,
            principal=principal,
            message=Translator(console.lang_of(event))("segments.not_found", name=name),
        )
    now = d.now()
    found = segment_members(segment, d.store, now, d.config)
    return console.render(
        event,
        "segment.html",
        principal=principal,
        segment=segment,
        conditions=list(condition_lines(segment.conditions)),
        count=len(found),
        sample=found[:SAMPLE_SIZE],
        as_of=now.strftime("%Y-%m-%d %H:%M UTC"),
    )
