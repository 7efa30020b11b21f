"""Small inline SVG charts for console pages, made on the server.

The console's CSP allows no script and no inline style (``style-src 'self'``), so a chart
is SVG markup whose geometry is in attributes (coordinates are data, not style) and whose
colours come from classes in ``console.css`` (``series-0`` … ``series-9``). Every text
reaching the markup is escaped by Markup's formatting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup

from kizuna.analytics.stats import Lift

SERIES_CLASSES = 10


def _n(value: float) -> str:
    return f"{value:.1f}"


def trend(dates: Sequence[date], series: Sequence[tuple[str, Sequence[float]]]) -> Markup:
    """Lines over time, one per series, on a shared y scale from 0."""
    width, height, left, bottom, top, right = 640.0, 220.0, 48.0, 24.0, 10.0, 10.0
    if not dates or not series:
        return Markup("")
    peak = max((v for _, values in series for v in values), default=0.0) or 1.0
    span = max(len(dates) - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / span

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / peak)

    parts = [
        Markup('<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(
            _n(left), _n(y(0)), _n(width - right), _n(y(0))
        ),
        Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
            _n(left - 4), _n(y(peak) + 4), f"{peak:,.0f}"
        ),
        Markup('<text class="tick" x="{}" y="{}" text-anchor="end">0</text>').format(
            _n(left - 4), _n(y(0) + 4)
        ),
        Markup('<text class="tick" x="{}" y="{}">{}</text>').format(
            _n(left), _n(height - 6), dates[0].isoformat()
        ),
        Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
            _n(width - right), _n(height - 6), dates[-1].isoformat()
        ),
    ]
    for k, (name, values) in enumerate(series):
        points = " ".join(f"{_n(x(i))},{_n(y(v))}" for i, v in enumerate(values))
        parts.append(
            Markup(
                '<polyline class="series series-{}" points="{}"><title>{}</title></polyline>'
            ).format(k % SERIES_CLASSES, points, name)
        )
    return Markup(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" data-chart="trend">{}</svg>'
    ).format(_n(width), _n(height), Markup("").join(parts))


def lift_bar(lift: Lift, low: float, high: float) -> Markup:
    """One lift's interval (bar) and point on a shared scale [low, high] (as proportions),
    with 0 marked."""
    width, height, pad = 220.0, 18.0, 6.0
    if lift.ci is None or lift.absolute_lift is None or high <= low:
        return Markup("")

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * (v - low) / (high - low)

    side = "positive" if lift.ci.low > 0 else "negative" if lift.ci.high < 0 else "neutral"
    return Markup(
        '<svg class="chart lift-bar" viewBox="0 0 {w} {h}" role="img" data-chart="lift">'
        '<line class="zero" x1="{z}" y1="0" x2="{z}" y2="{h}"/>'
        '<line class="ci {side}" x1="{a}" y1="{m}" x2="{b}" y2="{m}"/>'
        '<circle class="point {side}" cx="{p}" cy="{m}" r="4"/></svg>'
    ).format(
        w=_n(width),
        h=_n(height),
        z=_n(x(0.0)),
        side=side,
        a=_n(x(lift.ci.low)),
        b=_n(x(lift.ci.high)),
        m=_n(height / 2),
        p=_n(x(lift.absolute_lift)),
    )


def lift_scale(lifts: Sequence[Lift]) -> tuple[float, float]:
    """A scale holding every interval and 0, with a little room."""
    bounds = [0.0] + [b for lf in lifts if lf.ci for b in (lf.ci.low, lf.ci.high)]
    low, high = min(bounds), max(bounds)
    room = (high - low) * 0.05 or 0.01
    return low - room, high + room
