"""Console: the published report, front page first (customers, buyers, repeat rate,
revenue, structure change against the holdout), then the report's sections."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.analytics import published
from kizuna.analytics.document import (
    LiftSection,
    MigrationSection,
    ReportDocument,
    Section,
    SegmentTrendSection,
    TableSection,
)
from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.console import charts
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.api.params import iso_day

router = APIGatewayHttpRouter()
HEAT_LEVELS = 8


def _heat(share: float) -> str:
    return f"heat-{min(HEAT_LEVELS, round(share * HEAT_LEVELS))}"


def section_view(section: Section) -> dict[str, Any]:
    """What the template needs of one section (charts as inline SVG, heat as classes)."""
    view: dict[str, Any] = {"kind": section.kind, "section": section}
    if isinstance(section, MigrationSection):
        view["panels"] = [
            {
                "panel": p,
                "rows": [
                    [
                        (count, _heat(share))
                        for count, share in zip(
                            p.migration.counts[i], p.migration.row_shares[i], strict=True
                        )
                    ]
                    for i in range(len(p.migration.states))
                ],
            }
            for p in section.panels
        ]
    elif isinstance(section, SegmentTrendSection):
        view["svg"] = charts.trend(section.dates, [(s.name, s.values) for s in section.series])
    elif isinstance(section, LiftSection):
        low, high = charts.lift_scale([r.lift for r in section.rows])
        view["rows"] = [(r, charts.lift_bar(r.lift, low, high)) for r in section.rows]
    else:
        assert isinstance(section, TableSection)
        numeric = [
            all(isinstance(row[j], int | float) for row in section.rows if row[j] is not None)
            for j in range(len(section.columns))
        ]
        view["numeric"] = numeric
    return view


@router.get("/console/reports", include_in_schema=False)
def reports_page() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    objects = deps(router).reports
    t = Translator(console.lang_of(event))
    wanted = (event.query_string_parameters or {}).get("day")
    days = published.days(objects) if objects is not None else []
    doc: ReportDocument | None = None
    if objects is not None:
        if wanted:
            try:
                day = iso_day(wanted)
            except ValueError:
                return console.render(
                    event,
                    "error.html",
                    status=400,
                    principal=principal,
                    message=t("reports.bad_day"),
                )
            doc = published.of_day(objects, day)
        else:
            doc = published.latest(objects)
    return console.render(
        event,
        "reports.html",
        status=200 if doc is not None or not wanted else 404,
        principal=principal,
        doc=doc,
        days=days,
        sections=[section_view(s) for s in doc.sections] if doc else [],
    )
