"""Inline SVG charts for the HTML report, generated in Python.

Charts are static SVG so the report renders with JavaScript disabled, offline, in any
browser and in mail clients that show HTML attachments. Every string that reaches the
markup is escaped by :func:`el` (``Markup.format`` and ``Markup.join``), so customer-provided
names (segments, programs, arms) cannot inject markup.

Conventions the browser test and downstream tooling rely on: each chart is
``<svg data-chart="<kind>" role="img">`` with a ``<title>`` first child, and each data mark
has a class: ``cell`` (heatmap), ``series`` (trend), ``ci`` and ``point`` (lift).

Layout needs text widths before a browser exists; :func:`text_width` estimates them (CJK
characters are about one em wide, Latin ones about 0.6 em), with room to spare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup

from kizuna.analytics.stats import NONE_STATE, Lift, Migration

FONT_SIZE = 12
SVG_NS = "http://www.w3.org/2000/svg"

# ColorBrewer "Blues" (sequential, print- and colour-blind-friendly), light to dark.
BLUES = (
    "#f7fbff",
    "#deebf7",
    "#c6dbef",
    "#9ecae1",
    "#6baed6",
    "#4292c6",
    "#2171b5",
    "#08519c",
    "#08306b",
)
# Tableau 10: distinct categorical colours for series.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
POSITIVE = "#1a7f37"
NEGATIVE = "#cf222e"
NEUTRAL = "#57606a"
MINUS = "\u2212"  # typographic minus sign
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9:-]*")


# --- markup --------------------------------------------------------------------------------


def _attr(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: str | Markup) -> Markup:
    """An escaped element: attribute values and ``str`` children are escaped, ``Markup``
    children are kept. ``None`` attribute values are left out. Tag and attribute names come
    from this module, never from data; they are checked anyway."""
    names = [tag, *(attrs or {})]
    if any(not _NAME.fullmatch(name) for name in names):
        raise ValueError(f"bad tag or attribute name in {names}")
    start = Markup("<{}").format(tag) + Markup("").join(
        Markup(' {}="{}"').format(name, _attr(value))
        for name, value in (attrs or {}).items()
        if value is not None
    )
    if not children:
        return start + Markup("/>")
    return start + Markup(">") + Markup("").join(children) + Markup("</{}>").format(tag)


def svg(kind: str, title: str, width: float, height: float, *children: Markup) -> Markup:
    """The outer ``<svg>`` of a chart, with its stable ``data-chart`` kind and a title."""
    attrs = {
        "xmlns": SVG_NS,
        "class": "chart",
        "data-chart": kind,
        "role": "img",
        "width": math.ceil(width),
        "height": math.ceil(height),
        "viewBox": f"0 0 {math.ceil(width)} {math.ceil(height)}",
    }
    return el("svg", attrs, el("title", None, title), *children)


def text(
    x: float,
    y: float,
    content: str,
    *,
    cls: str | None = None,
    anchor: str = "start",
    size: float | None = None,
    fill: str | None = None,
    weight: str | None = None,
    transform: str | None = None,
) -> Markup:
    attrs: dict[str, object] = {
        "x": float(x),
        "y": float(y),
        "class": cls,
        "text-anchor": None if anchor == "start" else anchor,
        "font-size": size,
        "fill": fill,
        "font-weight": weight,
        "transform": transform,
    }
    return el("text", attrs, content)


def text_width(content: str, size: float = FONT_SIZE) -> float:
    """Estimated rendered width of ``content`` in px (generous, for layout only)."""
    return sum(size * (1.0 if ord(ch) >= 0x2E80 else 0.62) for ch in content)


def truncate(content: str, max_px: float, size: float = FONT_SIZE) -> str:
    if text_width(content, size) <= max_px:
        return content
    out = ""
    for ch in content:
        if text_width(out + ch + "…", size) > max_px:
            break
        out += ch
    return out + "…"


# --- numbers and scales --------------------------------------------------------------------


def fmt_int(value: int | float) -> str:
    return f"{round(value):,}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%".replace("-", MINUS)


def fmt_pt(value: float | None, digits: int = 1) -> str:
    """A difference of proportions in percentage points, signed: ``+3.2 pt``."""
    if value is None:
        return "—"
    return f"{value * 100:+.{digits}f} pt".replace("-", MINUS)


def fmt_p(value: float | None) -> str:
    if value is None:
        return "—"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering ``[low, high]``."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    count = math.ceil((high - start) / step - 1e-9)
    return [round(start + i * step, 12) for i in range(count + 1)]


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def share_colour(share: float) -> str:
    """Colour of a row share in [0, 1] on the sequential :data:`BLUES` scale."""
    position = min(1.0, max(0.0, share)) * (len(BLUES) - 1)
    i = min(int(position), len(BLUES) - 2)
    t = position - i
    a, b = _hex(BLUES[i]), _hex(BLUES[i + 1])
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def ink_on(share: float) -> str:
    """Text colour readable on :func:`share_colour` (white on the dark half)."""
    return "#ffffff" if share > 0.5 else "#1f2328"


# --- migration heatmap -----------------------------------------------------------------------


def migration_heatmap(
    data: Migration, *, label: str, before_label: str, after_label: str
) -> Markup:
    """From (rows) × to (columns) grid coloured by row share, counts written in the cells."""
    cell_w, cell_h = 54, 38
    states = data.states
    names = [truncate(s, 150) for s in states]
    label_w = max(text_width(n) for n in names) + 12
    axis = 20  # room for an axis title
    top = axis + max(text_width(n) for n in names) * 0.72 + 14  # labels rotated by -45°
    left = axis + label_w
    grid_w, grid_h = cell_w * len(states), cell_h * len(states)
    total_w = 64  # row totals column
    right_overhang = max(0.0, max(text_width(n) for n in names) * 0.72 - cell_w / 2)
    legend_h = 56
    width = left + grid_w + max(total_w, right_overhang) + 12
    height = top + grid_h + legend_h

    marks: list[Markup] = []
    marks.append(text(left + grid_w / 2, 14, f"{after_label} →", cls="axis-title", anchor="middle"))
    marks.append(
        text(
            14,
            top + grid_h / 2,
            f"{before_label} →",
            cls="axis-title",
            anchor="middle",
            transform=f"rotate(-90 14 {top + grid_h / 2:.1f})",
        )
    )
    for j, name in enumerate(names):
        x, y = left + cell_w * j + cell_w / 2, top - 6
        marks.append(
            text(
                x,
                y,
                name,
                cls="col-label none" if states[j] == NONE_STATE else "col-label",
                transform=f"rotate(-45 {x:.1f} {y:.1f})",
            )
        )
    for i, name in enumerate(names):
        y = top + cell_h * i + cell_h / 2 + 4
        marks.append(
            text(
                left - 8,
                y,
                name,
                cls="row-label none" if states[i] == NONE_STATE else "row-label",
                anchor="end",
            )
        )
        marks.append(
            text(left + grid_w + 8, y, f"n={fmt_int(data.row_totals[i])}", cls="row-total")
        )
        for j in range(len(states)):
            count, share = data.counts[i][j], data.row_shares[i][j]
            x, y0 = left + cell_w * j, top + cell_h * i
            tip = f"{states[i]} → {states[j]}: {fmt_int(count)} ({fmt_pct(share)} of row)"
            cell_attrs = {
                "class": "cell",
                "x": x,
                "y": y0,
                "width": cell_w,
                "height": cell_h,
                "fill": share_colour(share),
                "data-from": states[i],
                "data-to": states[j],
                "data-count": count,
                "data-share": f"{share:.6f}",
            }
            ink = ink_on(share)
            marks.append(
                el(
                    "g",
                    {"class": "cell-group"},
                    el("rect", cell_attrs, el("title", None, tip)),
                    text(
                        x + cell_w / 2,
                        y0 + 18,
                        fmt_int(count),
                        cls="count",
                        anchor="middle",
                        fill=ink,
                        weight="600",
                    ),
                    text(
                        x + cell_w / 2,
                        y0 + 32,
                        fmt_pct(share, 0),
                        cls="share",
                        anchor="middle",
                        fill=ink,
                        size=10,
                    ),
                )
            )
    # Diagonal (stayed) outline, so the eye finds "no change" at once.
    for k in range(len(states) - 1):
        marks.append(
            el(
                "rect",
                {
                    "class": "diagonal",
                    "x": left + cell_w * k + 1,
                    "y": top + cell_h * k + 1,
                    "width": cell_w - 2,
                    "height": cell_h - 2,
                },
            )
        )
    marks.append(_share_legend(left, top + grid_h + 18, min(grid_w, 240)))
    title = f"{label}: migration from {before_label} to {after_label}"
    return svg("migration-heatmap", title, width, height, *marks)


def _share_legend(x: float, y: float, width: float) -> Markup:
    steps = 20
    swatch_w = width / steps
    parts: list[Markup] = [text(x, y - 4, "row share", cls="legend-title", size=11)]
    for k in range(steps):
        parts.append(
            el(
                "rect",
                {
                    "class": "legend-swatch",
                    "x": x + swatch_w * k,
                    "y": y,
                    "width": swatch_w + 0.5,
                    "height": 10,
                    "fill": share_colour((k + 0.5) / steps),
                },
            )
        )
    for value, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        parts.append(
            text(x + width * value, y + 24, fmt_pct(value, 0), anchor=anchor, cls="tick", size=11)
        )
    return el("g", {"class": "legend"}, *parts)


# --- segment sizes over time -------------------------------------------------------------------


def segment_trend(
    dates: Sequence[date],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    stacked: bool,
    y_label: str,
) -> Markup:
    """Stacked areas (or lines) of series over dates; x is proportional to time."""
    names = [truncate(name, 160) for name, _ in series]
    legend_w = max(text_width(n) for n in names) + 36
    left, right, top, bottom = 64, legend_w + 16, 16, 44
    plot_w, plot_h = 620.0, 260.0
    width, height = left + plot_w + right, top + plot_h + bottom

    ordinals = [d.toordinal() for d in dates]
    span = ordinals[-1] - ordinals[0]

    def x_of(k: int) -> float:
        if span == 0:
            return left + plot_w / 2
        return left + plot_w * (ordinals[k] - ordinals[0]) / span

    if stacked:
        tops = [sum(values[k] for _, values in series) for k in range(len(dates))]
        y_max = max(tops)
    else:
        y_max = max(max(values) for _, values in series)
    ticks = nice_ticks(0.0, y_max if y_max > 0 else 1.0)
    y_top = ticks[-1]

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * value / y_top

    marks: list[Markup] = []
    for tick in ticks:
        y = y_of(tick)
        marks.append(
            el("line", {"class": "grid", "x1": left, "x2": left + plot_w, "y1": y, "y2": y})
        )
        marks.append(text(left - 8, y + 4, _fmt_number(tick), cls="tick", anchor="end"))
    marks.append(
        text(
            14,
            top + plot_h / 2,
            y_label,
            cls="axis-title",
            anchor="middle",
            transform=f"rotate(-90 14 {top + plot_h / 2:.1f})",
        )
    )
    for k in _thin(len(dates), max_labels=max(2, int(plot_w // 90))):
        x = x_of(k)
        marks.append(
            el(
                "line",
                {"class": "axis", "x1": x, "x2": x, "y1": top + plot_h, "y2": top + plot_h + 5},
            )
        )
        marks.append(text(x, top + plot_h + 20, dates[k].isoformat(), cls="tick", anchor="middle"))

    lower = [0.0] * len(dates)
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        tip = el("title", None, name)
        attrs: dict[str, object] = {"class": "series", "data-series": name}
        if stacked:
            upper = [lower[k] + values[k] for k in range(len(dates))]
            if len(dates) == 1:
                attrs |= {
                    "x": x_of(0) - 24,
                    "y": y_of(upper[0]),
                    "width": 48,
                    "height": y_of(lower[0]) - y_of(upper[0]),
                    "fill": colour,
                }
                marks.append(el("rect", attrs, tip))
            else:
                forward = [f"{x_of(k):.2f},{y_of(upper[k]):.2f}" for k in range(len(dates))]
                back = [f"{x_of(k):.2f},{y_of(lower[k]):.2f}" for k in reversed(range(len(dates)))]
                attrs |= {"d": "M" + " L".join(forward + back) + " Z", "fill": colour}
                marks.append(el("path", attrs, tip))
            lower = upper
        else:
            points = [f"{x_of(k):.2f},{y_of(values[k]):.2f}" for k in range(len(dates))]
            attrs |= {"d": "M" + " L".join(points), "fill": "none", "stroke": colour}
            marks.append(el("path", attrs, tip))
            for k in range(len(dates)):
                marks.append(
                    el(
                        "circle",
                        {
                            "class": "point",
                            "cx": x_of(k),
                            "cy": y_of(values[k]),
                            "r": 3,
                            "fill": colour,
                        },
                        el(
                            "title",
                            None,
                            f"{name} {dates[k].isoformat()}: {_fmt_number(values[k])}",
                        ),
                    )
                )
    marks.append(
        el(
            "line",
            {
                "class": "axis",
                "x1": left,
                "x2": left + plot_w,
                "y1": top + plot_h,
                "y2": top + plot_h,
            },
        )
    )

    # Legend, top to bottom in the order the stack is drawn from the top.
    legend_x = left + plot_w + 20
    order = list(reversed(range(len(series)))) if stacked else list(range(len(series)))
    for row, s in enumerate(order):
        y = top + 8 + row * 20
        marks.append(
            el(
                "g",
                {"class": "legend-item"},
                el(
                    "rect",
                    {
                        "class": "legend-swatch",
                        "x": legend_x,
                        "y": y - 9,
                        "width": 12,
                        "height": 12,
                        "rx": 2,
                        "fill": PALETTE[s % len(PALETTE)],
                    },
                ),
                text(legend_x + 18, y + 1, names[s], cls="legend-label"),
            )
        )
    height = max(height, top + 8 + len(series) * 20 + 8)
    return svg("segment-trend", title, width, height, *marks)


def _thin(count: int, max_labels: int) -> list[int]:
    """Indexes of at most ``max_labels`` labels at a regular step, starting with the first."""
    step = max(1, math.ceil((count - 1) / max(1, max_labels - 1)))
    return list(range(0, count, step))


def _fmt_number(value: float) -> str:
    if float(value).is_integer():
        return fmt_int(value)
    return f"{value:,.2f}".rstrip("0").rstrip(".")


# --- program lift -------------------------------------------------------------------------------


def lift_chart(rows: Sequence[tuple[str, Lift]], *, title: str, axis_title: str) -> Markup:
    """One row per program (or arm): the lift as a point, its interval as a bar, a zero line.

    Colours: green when the interval is above 0, red when below, grey otherwise. A row
    without an interval (an empty group) shows "no data" instead of marks.
    """
    labels = [truncate(label, 260) for label, _ in rows]
    row_h, top, bottom = 30, 12, 46
    left = max(text_width(label) for label in labels) + 24
    plot_w = 420.0
    value_w = 230
    width = left + plot_w + value_w
    height = top + row_h * len(rows) + bottom

    intervals = [lift.ci for _, lift in rows if lift.ci is not None]
    low = min([0.0, *(ci.low for ci in intervals)])
    high = max([0.0, *(ci.high for ci in intervals)])
    pad = (high - low) * 0.04 or 0.01
    ticks = nice_ticks(low - pad, high + pad, target=6)
    x_min, x_max = ticks[0], ticks[-1]

    def x_of(value: float) -> float:
        return left + plot_w * (value - x_min) / (x_max - x_min)

    plot_bottom = top + row_h * len(rows)
    marks: list[Markup] = []
    for r in range(len(rows)):
        if r % 2 == 0:
            marks.append(
                el(
                    "rect",
                    {
                        "class": "stripe",
                        "x": 0,
                        "y": top + r * row_h,
                        "width": width,
                        "height": row_h,
                    },
                )
            )
    for tick in ticks:
        x = x_of(tick)
        marks.append(el("line", {"class": "grid", "x1": x, "x2": x, "y1": top, "y2": plot_bottom}))
        marks.append(text(x, plot_bottom + 16, _fmt_pt_tick(tick), cls="tick", anchor="middle"))
    marks.append(
        text(left + plot_w / 2, plot_bottom + 36, axis_title, cls="axis-title", anchor="middle")
    )
    zero = x_of(0.0)
    marks.append(
        el("line", {"class": "zero", "x1": zero, "x2": zero, "y1": top, "y2": plot_bottom})
    )

    for r, ((full_label, lift), label) in enumerate(zip(rows, labels, strict=True)):
        y = top + r * row_h + row_h / 2
        parts: list[Markup] = [text(left - 12, y + 4, label, cls="row-label", anchor="end")]
        if lift.ci is None or lift.absolute_lift is None:
            parts.append(text(zero + 8, y + 4, "no data", cls="no-data-mark"))
            parts.append(text(left + plot_w + 12, y + 4, "—", cls="value"))
        else:
            colour = POSITIVE if lift.ci.low > 0 else NEGATIVE if lift.ci.high < 0 else NEUTRAL
            tip = el("title", None, _lift_tip(full_label, lift))
            parts.append(
                el(
                    "rect",
                    {
                        "class": "ci",
                        "x": x_of(lift.ci.low),
                        "y": y - 3,
                        "width": max(1.0, x_of(lift.ci.high) - x_of(lift.ci.low)),
                        "height": 6,
                        "rx": 3,
                        "fill": colour,
                        "fill-opacity": 0.35,
                        "data-low": f"{lift.ci.low:.6f}",
                        "data-high": f"{lift.ci.high:.6f}",
                    },
                    tip,
                )
            )
            parts.append(
                el(
                    "circle",
                    {
                        "class": "point",
                        "cx": x_of(lift.absolute_lift),
                        "cy": y,
                        "r": 5,
                        "fill": colour,
                        "data-lift": f"{lift.absolute_lift:.6f}",
                    },
                    tip,
                )
            )
            value = f"{fmt_pt(lift.absolute_lift)}  [{fmt_pt(lift.ci.low)}, {fmt_pt(lift.ci.high)}]"
            parts.append(
                text(
                    left + plot_w + 12,
                    y + 4,
                    value,
                    cls="value",
                    fill=colour,
                    weight="600" if lift.significant else None,
                )
            )
        marks.append(
            el(
                "g",
                {
                    "class": "lift-row",
                    "data-label": full_label,
                    "data-significant": str(lift.significant).lower(),
                },
                *parts,
            )
        )
    return svg("lift", title, width, height, *marks)


def _fmt_pt_tick(value: float) -> str:
    if abs(value) < 1e-12:
        return "0"
    return f"{round(value * 100, 6):+g}".replace("-", MINUS)


def _lift_tip(label: str, lift: Lift) -> str:
    return (
        f"{label}: treated {fmt_int(lift.treated_conversions)}/{fmt_int(lift.treated_n)} "
        f"({fmt_pct(lift.treated_rate)}), holdout {fmt_int(lift.holdout_conversions)}/"
        f"{fmt_int(lift.holdout_n)} ({fmt_pct(lift.holdout_rate)}); lift "
        f"{fmt_pt(lift.absolute_lift)}, relative {fmt_pct(lift.relative_lift)}, "
        f"{fmt_p(lift.p_value)}"
    )
