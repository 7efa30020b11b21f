"""Self-contained HTML report: a :class:`kizuna.analytics.document.ReportDocument` in, one
HTML string out.

Self-contained means one file with no external resource at all: no script, no web font, no
CDN stylesheet, no image URL. Charts are inline SVG built in Python (:mod:`.svg`), so the
report renders offline, with JavaScript disabled, in any browser, and can be stored in S3
or attached to a mail as is. A Content-Security-Policy ``<meta>`` forbids every fetch and
every script, so a mistake that adds one shows up as a blocked request instead of a leak.

All text goes through Jinja2 autoescaping (and :func:`.svg.el` inside charts): segment,
program and arm names come from configuration and data, not from us.

The document is a list of typed sections (a discriminated union on ``kind``) rendered in
order, so a caller composes the report it needs: migration heatmaps, segment sizes over
time, program lift, and generic tables for the rest. Empty data renders a visible
"no data" note instead of an empty or broken chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2
from markupsafe import Markup

from kizuna.analytics.document import (
    Cell,
    LiftRow,
    LiftSection,
    MigrationPanel,
    MigrationSection,
    ReportDocument,
    Section,
    SegmentTrendSection,
)
from kizuna_tools.reports import svg

# --- rendering ----------------------------------------------------------------------------------

NO_DATA = "No data for this section."

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_PAGE = """\
<!DOCTYPE html>
<html lang="{{ doc.lang }}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Kizuna">
<title>{{ doc.title }}</title>
<style>
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--ink); line-height: 1.55;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "Hiragino Sans",
    "Hiragino Kaku Gothic ProN", "Noto Sans JP", "Noto Sans CJK JP", "Yu Gothic", Meiryo,
    "IPAexGothic", "IPAGothic", sans-serif;
  font-size: 14px; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 24px 48px; }
header.report { border-bottom: 3px solid #0969da; padding-bottom: 12px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; font-weight: 700; }
.subtitle { margin: 0 0 6px; color: var(--muted); font-size: 15px; }
dl.meta { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 6px 0 0; color: var(--muted); }
dl.meta div { display: flex; gap: 6px; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
section.section { background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
  padding: 18px 22px 20px; margin-top: 20px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.description { color: var(--muted); margin: 0 0 12px; max-width: 80ch; }
.panels { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; min-width: 0; }
figure.panel { flex: 0 1 auto; display: table; }
/* the caption wraps at the width of the chart, not the other way round */
figure.panel > figcaption { display: table-caption; caption-side: bottom; }
figcaption.summary { color: var(--muted); font-size: 13px; margin-top: 4px;
  font-variant-numeric: tabular-nums; }
figcaption.summary .up { color: #1a7f37; } figcaption.summary .down { color: #cf222e; }
svg.chart { display: block; max-width: 100%; height: auto; font-family: inherit;
  font-size: 12px; }
svg.chart text { fill: var(--ink); }
svg.chart text.tick, svg.chart text.row-total, svg.chart text.axis-title,
svg.chart text.legend-title, svg.chart text.no-data-mark { fill: var(--muted); }
svg.chart text.none { font-style: italic; fill: var(--muted); }
svg.chart text.count { font-variant-numeric: tabular-nums; }
svg.chart text.value { font-variant-numeric: tabular-nums; }
svg.chart rect.cell { stroke: #ffffff; stroke-width: 1; }
svg.chart rect.diagonal { fill: none; stroke: #24292f; stroke-opacity: .55; stroke-width: 1.2;
  stroke-dasharray: 3 2; pointer-events: none; }
svg.chart line.grid { stroke: #eaeef2; stroke-width: 1; }
svg.chart line.axis { stroke: #8c959f; stroke-width: 1; }
svg.chart line.zero { stroke: #24292f; stroke-width: 1.5; }
svg.chart rect.stripe { fill: #f6f8fa; }
svg.chart path.series { stroke-width: 2; }
svg.chart path.series[fill="none"] { stroke-linejoin: round; }
svg.chart circle.point { stroke: #ffffff; stroke-width: 1.5; }
svg.chart rect.legend-swatch { stroke: none; }
.no-data { margin: 8px 0 0; padding: 14px 16px; border: 1px dashed #afb8c1;
  border-radius: 6px; color: var(--muted); background: var(--soft); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin-top: 4px;
  min-width: 50%; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left;
  white-space: nowrap; }
th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line); }
td.num, th.num { text-align: right; }
/* long labels (a figure's name) wrap, so the numbers and their intervals stay in view */
td:not(.num) { white-space: normal; min-width: 12ch; }
td.empty { color: var(--muted); }
tr.significant td { font-weight: 600; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
@media print { body { background: #ffffff; } section.section { break-inside: avoid; } }
</style>
</head>
<body>
<main>
<header class="report">
<h1>{{ doc.title }}</h1>
{% if doc.subtitle %}<p class="subtitle">{{ doc.subtitle }}</p>{% endif %}
<dl class="meta">
{% if doc.period %}<div><dt>Period</dt><dd class="period">{{ doc.period.start.isoformat() }}
 – {{ doc.period.end.isoformat() }}</dd></div>{% endif %}
<div><dt>Generated</dt><dd class="generated-at"><time datetime="{{ doc.generated_at.isoformat() }}">
{{- generated }}</time></dd></div>
</dl>
</header>
{% for s in sections %}
<section class="section section-{{ s.kind }}" id="section-{{ loop.index }}"
 data-section="{{ s.kind }}">
<h2>{{ s.title }}</h2>
{% if s.description %}<p class="description">{{ s.description }}</p>{% endif %}
{% if s.kind == "migration" %}
{% if not s.panels %}<p class="no-data">{{ no_data }}</p>{% endif %}
<div class="panels">
{% for p in s.panels %}
<figure class="panel" data-panel="{{ p.label }}">
<h3>{{ p.label }}</h3>
{% if p.svg %}{{ p.svg }}
<figcaption class="summary">
{% if p.retained %}
<span class="up">↑ up {{ p.up }}</span> · <span class="stayed">→ stayed {{ p.stayed }}</span>
 · <span class="down">↓ down {{ p.down }}</span> of {{ p.retained }} customers on both dates;
{% else %}no customer on both dates;{% endif %}
 entered {{ p.entered }}, left {{ p.left }}.
</figcaption>
{% else %}<p class="no-data">{{ no_data }}</p>{% endif %}
</figure>
{% endfor %}
</div>
{% elif s.kind == "table" %}
{% if s.rows %}
<div class="table-wrap"><table class="data">
<thead><tr>{% for c in s.columns %}<th scope="col"{% if c.num %} class="num"{% endif %}>
{{- c.name }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in s.rows %}<tr{% if row.cls %} class="{{ row.cls }}"{% endif %}>
{%- for c in row.cells %}<td class="{{ c.cls }}">{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table></div>
{% else %}<p class="no-data">No rows.</p>{% endif %}
{% else %}
{% if s.svg %}<figure class="chart-figure">{{ s.svg }}</figure>
{% else %}<p class="no-data">{{ s.no_data or no_data }}</p>{% endif %}
{% if s.table %}
<div class="table-wrap"><table class="data lift-table">
<thead><tr>{% for c in s.table.columns %}<th scope="col"{% if c.num %} class="num"{% endif %}>
{{- c.name }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in s.table.rows %}<tr{% if row.cls %} class="{{ row.cls }}"{% endif %}>
{%- for c in row.cells %}<td class="{{ c.cls }}">{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table></div>
{% endif %}
{% endif %}
</section>
{% endfor %}
<footer>Generated by Kizuna · self-contained report (no external resources)</footer>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATE = _ENV.from_string(_PAGE)


def render_html(doc: ReportDocument) -> str:
    """The report as one self-contained HTML document (UTF-8 text)."""
    return _TEMPLATE.render(
        doc=doc,
        csp=_CSP,
        no_data=NO_DATA,
        generated=doc.generated_at.isoformat(sep=" ", timespec="minutes"),
        sections=[_view(section) for section in doc.sections],
    )


def _view(section: Section) -> dict[str, Any]:
    view: dict[str, Any] = {
        "kind": section.kind,
        "title": section.title,
        "description": section.description,
    }
    if isinstance(section, MigrationSection):
        view["panels"] = [_panel_view(p) for p in section.panels]
    elif isinstance(section, SegmentTrendSection):
        view["svg"] = _trend_svg(section)
        view["no_data"] = None
        view["table"] = None
    elif isinstance(section, LiftSection):
        view |= _lift_view(section)
    else:
        view["columns"] = [
            {"name": name, "num": _numeric_column(section.rows, j)}
            for j, name in enumerate(section.columns)
        ]
        numeric = [c["num"] for c in view["columns"]]
        view["rows"] = [
            {
                "cls": None,
                "cells": [
                    _cell(v, section.float_digits, num) for v, num in zip(row, numeric, strict=True)
                ],
            }
            for row in section.rows
        ]
    return view


def _panel_view(panel: MigrationPanel) -> dict[str, Any]:
    m = panel.migration
    chart: Markup | None = None
    if m.total:
        chart = svg.migration_heatmap(
            m, label=panel.label, before_label=panel.before_label, after_label=panel.after_label
        )
    return {
        "label": panel.label,
        "svg": chart,
        "retained": svg.fmt_int(m.retained) if m.retained else None,
        "up": f"{svg.fmt_int(m.up)} ({svg.fmt_pct(m.up_share)})",
        "stayed": f"{svg.fmt_int(m.stayed)} ({svg.fmt_pct(m.stayed_share)})",
        "down": f"{svg.fmt_int(m.down)} ({svg.fmt_pct(m.down_share)})",
        "entered": svg.fmt_int(m.entered),
        "left": svg.fmt_int(m.left),
    }


def _trend_svg(section: SegmentTrendSection) -> Markup | None:
    if not section.dates or not section.series:
        return None
    return svg.segment_trend(
        section.dates,
        [(s.name, s.values) for s in section.series],
        title=section.title,
        stacked=section.stacked,
        y_label=section.y_label,
    )


def _lift_view(section: LiftSection) -> dict[str, Any]:
    rows = section.rows
    chart: Markup | None = None
    if any(r.lift.ci is not None for r in rows):
        levels = {r.lift.confidence for r in rows}
        level = f"{levels.pop() * 100:g}% " if len(levels) == 1 else ""
        chart = svg.lift_chart(
            [(r.label, r.lift) for r in rows],
            title=section.title,
            axis_title=f"absolute lift (percentage points), {level}confidence interval",
        )
    table = None
    if section.show_table and rows:
        columns = [
            ("program", False),
            ("treated", True),
            ("holdout", True),
            ("lift", True),
            ("interval", True),
            ("relative", True),
            ("p-value", True),
        ]
        table = {
            "columns": [{"name": n, "num": num} for n, num in columns],
            "rows": [_lift_table_row(r) for r in rows],
        }
    no_data = None if rows else NO_DATA
    if rows and chart is None:
        no_data = "No data: no program has customers in both the treated and holdout groups."
    return {"svg": chart, "no_data": no_data, "table": table}


def _lift_table_row(row: LiftRow) -> dict[str, Any]:
    lift = row.lift
    ci = "—" if lift.ci is None else f"{svg.fmt_pt(lift.ci.low)} to {svg.fmt_pt(lift.ci.high)}"

    def arm(k: int, n: int, p: float | None) -> str:
        return f"{svg.fmt_int(k)} / {svg.fmt_int(n)} ({svg.fmt_pct(p)})"

    texts = [
        (row.label, "text"),
        (arm(lift.treated_conversions, lift.treated_n, lift.treated_rate), "num"),
        (arm(lift.holdout_conversions, lift.holdout_n, lift.holdout_rate), "num"),
        (svg.fmt_pt(lift.absolute_lift), "num"),
        (ci, "num"),
        (svg.fmt_pct(lift.relative_lift), "num"),
        (svg.fmt_p(lift.p_value).removeprefix("p = "), "num"),
    ]
    return {
        "cls": "significant" if lift.significant else None,
        "cells": [{"text": t, "cls": cls} for t, cls in texts],
    }


def _numeric_column(rows: Sequence[Sequence[Cell]], j: int) -> bool:
    values = [row[j] for row in rows if row[j] is not None]
    return bool(values) and all(isinstance(v, int | float) for v in values)


def _cell(value: Cell, float_digits: int, numeric_column: bool) -> dict[str, str]:
    if value is None:
        return {"text": "—", "cls": "num empty" if numeric_column else "empty"}
    if isinstance(value, bool):
        return {"text": str(value).lower(), "cls": "text"}
    if isinstance(value, int):
        return {"text": f"{value:,}", "cls": "num"}
    if isinstance(value, float):
        return {"text": f"{value:,.{float_digits}f}".replace("-", svg.MINUS), "cls": "num"}
    return {"text": value, "cls": "text"}
