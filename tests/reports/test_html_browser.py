"""The rendered report in a real browser: headless Chromium, JavaScript disabled.

Uses Debian's Chromium (``apt-get install chromium``) through the Python ``playwright``
package, without ``playwright install``: no browser download. Skipped only when
/usr/bin/chromium is absent.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kizuna.analytics.document import LiftSection, ReportDocument, SegmentTrendSection
from kizuna_tools.reports.html import render_html
from tests.reports.samples import PROGRAMS, SEGMENTS, sample_document

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Opened:
    page: "Page"
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


OpenReport = Callable[..., Opened]


@pytest.fixture
def open_report(browser: "Browser", tmp_path: Path) -> Iterator["OpenReport"]:
    """Writes a document to tmp_path and opens it in a fresh context (JavaScript off)."""
    contexts: list[BrowserContext] = []

    def _open(doc: ReportDocument, name: str = "report") -> Opened:
        path = tmp_path / f"{name}.html"
        path.write_text(render_html(doc), encoding="utf-8")
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        opened = Opened(context.new_page())
        page = opened.page

        def on_console(message: "ConsoleMessage") -> None:
            if message.type in {"error", "warning"}:  # CSP violations are console errors
                opened.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: opened.errors.append(str(e)))
        page.on("requestfailed", lambda r: opened.errors.append(f"failed: {r.url}"))
        page.on("request", lambda r: opened.requests.append(r.url))
        page.goto(path.as_uri(), wait_until="load")
        return opened

    yield _open
    for context in contexts:
        context.close()


def _box(locator: "Locator") -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def test_report_charts_render_in_chromium(open_report: OpenReport, tmp_path: Path) -> None:
    opened = open_report(sample_document())
    page = opened.page

    charts = page.locator("svg[data-chart]")
    kinds = [charts.nth(i).get_attribute("data-chart") for i in range(charts.count())]
    assert kinds == ["migration-heatmap", "migration-heatmap", "segment-trend", "lift"]
    viewport = page.viewport_size
    assert viewport is not None
    page_width = viewport["width"]
    for i in range(charts.count()):
        box = _box(charts.nth(i))
        assert box["width"] > 100 and box["height"] > 100, (kinds[i], box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= page_width, (kinds[i], box)

    # Migration: a full grid per heatmap, every cell drawn; treated and holdout side by side.
    heatmaps = page.locator('svg[data-chart="migration-heatmap"]')
    for i in range(2):
        cells = heatmaps.nth(i).locator("rect.cell")
        assert cells.count() == (len(SEGMENTS) + 1) ** 2
        for j in range(cells.count()):
            box = _box(cells.nth(j))
            assert box["width"] > 20 and box["height"] > 20
        assert heatmaps.nth(i).locator("text.count").count() == cells.count()
    treated, holdout = _box(heatmaps.nth(0)), _box(heatmaps.nth(1))
    assert treated["y"] == holdout["y"] and holdout["x"] > treated["x"] + treated["width"]

    # Segment trend: one visible band per segment, and its legend.
    bands = page.locator('svg[data-chart="segment-trend"] .series')
    assert bands.count() == len(SEGMENTS)
    for j in range(bands.count()):
        assert _box(bands.nth(j))["height"] > 0
    assert page.locator('svg[data-chart="segment-trend"] .legend-item').count() == len(SEGMENTS)

    # Lift: one interval bar and one point per program row, plus the zero line.
    lift_chart = page.locator('svg[data-chart="lift"]')
    bars = lift_chart.locator("rect.ci")
    assert bars.count() == len(PROGRAMS)
    for j in range(bars.count()):
        assert _box(bars.nth(j))["width"] > 1
    assert lift_chart.locator("circle.point").count() == len(PROGRAMS)
    zero = _box(lift_chart.locator("line.zero"))
    assert zero["height"] > 20

    # Text is there (the accessible name of each chart, the Japanese title).
    assert page.locator("h1").inner_text().startswith("月次キャンペーンレポート")
    assert page.title() == sample_document().title

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    # Self-contained: the only request is the file itself, and nothing went wrong.
    assert opened.requests == [(tmp_path / "report.html").as_uri()]
    assert opened.errors == []


def test_empty_report_shows_notes_in_chromium(open_report: OpenReport, tmp_path: Path) -> None:
    doc = ReportDocument(
        title="空のレポート",
        generated_at=sample_document().generated_at,
        sections=(SegmentTrendSection(title="trend"), LiftSection(title="lift")),
    )
    opened = open_report(doc, name="empty")
    page = opened.page
    assert page.locator("svg").count() == 0
    notes = page.locator("p.no-data")
    assert notes.count() == 2
    for i in range(2):
        assert notes.nth(i).is_visible()
        assert "No data" in notes.nth(i).inner_text()
    page.screenshot(path=str(tmp_path / "empty.png"), full_page=True)
    assert opened.errors == []
