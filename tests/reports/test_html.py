"""Structure of the self-contained HTML report (parsed with the standard library)."""

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import pytest
from pydantic import ValidationError

from kizuna.analytics.document import (
    LiftRow,
    LiftSection,
    MigrationPanel,
    MigrationSection,
    Period,
    ReportDocument,
    SegmentTrendSection,
    Series,
    TableSection,
)
from kizuna.analytics.stats import NONE_STATE, lift, migration
from kizuna_tools.reports import svg
from kizuna_tools.reports.html import NO_DATA, render_html
from tests.reports.samples import PROGRAMS, SEGMENTS, sample_document

NOW = datetime(2025, 4, 1, 9, 30, tzinfo=UTC)


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None") -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def iter(self) -> "list[Node]":
        out = [self]
        for child in self.children:
            out.extend(child.iter())
        return out

    def find_all(
        self, tag: str | None = None, cls: str | None = None, **attrs: str
    ) -> "list[Node]":
        return [
            n
            for n in self.iter()[1:]
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


VOID = {"meta", "link", "br", "img", "input", "hr"}


class Tree(HTMLParser):
    """A tolerant DOM-ish tree (HTML void elements and self-closed SVG elements handled)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"unbalanced </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.text += data


def parse(doc: ReportDocument) -> tuple[str, Node]:
    markup = render_html(doc)
    return markup, Tree(markup).root


def section(root: Node, kind: str) -> Node:
    (found,) = root.find_all("section", data_section=kind)
    return found


def small_migration_doc() -> ReportDocument:
    before = {"c1": "A", "c2": "A", "c3": "B", "c4": "B", "c5": "C", "c6": "C", "c7": "A"}
    after = {"c1": "A", "c2": "B", "c3": "A", "c4": "B", "c5": "C", "c6": "B", "c8": "C"}
    m = migration(before, after, order=["A", "B", "C"])
    return ReportDocument(
        title="t",
        generated_at=NOW,
        sections=(
            MigrationSection(title="m", panels=(MigrationPanel(label="Treated", migration=m),)),
        ),
    )


# --- document --------------------------------------------------------------------------------


def test_page_is_self_contained_utf8_html() -> None:
    markup, root = parse(sample_document())
    assert markup.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in markup
    (html,) = root.find_all("html")
    assert html.attrs["lang"] == "ja"
    csp = root.find_all("meta", http_equiv="Content-Security-Policy")[0].attrs["content"]
    assert "default-src 'none'" in csp
    # No script, no external stylesheet, image, font or frame; the only URL is the SVG
    # namespace (an identifier, never fetched).
    assert not root.find_all("script") and not root.find_all("link")
    assert not root.find_all("img") and not root.find_all("iframe")
    assert "@import" not in markup and "url(" not in markup and " src=" not in markup
    assert set(re.findall(r"https?://[^\s\"'<>]+", markup)) == {svg.SVG_NS}
    # Japanese font stack, Japanese text written as text (not as entities).
    assert '"Hiragino Sans"' in markup and '"Noto Sans JP"' in markup and "sans-serif" in markup
    assert "月次キャンペーンレポート" in markup and "優良顧客" in markup


def test_header_shows_title_period_and_generation_time() -> None:
    _, root = parse(sample_document())
    header = root.find_all("header")[0]
    assert "月次キャンペーンレポート" in header.find_all("h1")[0].all_text()
    assert header.find_all("dd", cls="period")[0].all_text().split() == [
        "2025-01-05", "–", "2025-03-23"]  # fmt: skip
    generated = header.find_all("time")[0]
    assert generated.attrs["datetime"] == "2025-04-01T09:30:00+00:00"
    assert generated.all_text() == "2025-04-01 09:30+00:00"


def test_every_chart_is_an_accessible_svg_with_a_kind() -> None:
    _, root = parse(sample_document())
    charts = root.find_all("svg")
    assert [c.attrs["data-chart"] for c in charts] == [
        "migration-heatmap", "migration-heatmap", "segment-trend", "lift"]  # fmt: skip
    for chart in charts:
        assert chart.attrs["role"] == "img"
        assert chart.children[0].tag == "title" and chart.children[0].all_text()
        assert re.fullmatch(r"0 0 \d+ \d+", chart.attrs["viewbox"])  # parser lowercases names
        assert int(chart.attrs["width"]) > 0 and int(chart.attrs["height"]) > 0


def test_sections_render_in_order() -> None:
    _, root = parse(sample_document())
    kinds = [s.attrs["data-section"] for s in root.find_all("section")]
    assert kinds == ["migration", "segment_trend", "lift", "table"]


def test_document_round_trips_as_json() -> None:
    doc = sample_document()
    again = ReportDocument.model_validate_json(doc.model_dump_json())
    assert again == doc
    assert render_html(again) == render_html(doc)


# --- migration heatmap -------------------------------------------------------------------------


def test_heatmap_cells_carry_the_counts() -> None:
    _, root = parse(small_migration_doc())
    (heatmap,) = root.find_all("svg", data_chart="migration-heatmap")
    cells = heatmap.find_all("rect", cls="cell")
    assert len(cells) == 16  # A, B, C, (none) squared
    counts = {(c.attrs["data-from"], c.attrs["data-to"]): int(c.attrs["data-count"]) for c in cells}
    assert counts[("A", "A")] == 1 and counts[("A", NONE_STATE)] == 1
    assert counts[("C", "B")] == 1 and counts[(NONE_STATE, "C")] == 1
    assert counts[(NONE_STATE, NONE_STATE)] == 0
    # The count is written in each cell, next to its rect, with its row share.
    groups = heatmap.find_all("g", cls="cell-group")
    written = [g.find_all("text", cls="count")[0].all_text() for g in groups]
    assert written == [c.attrs["data-count"] for c in cells]
    a_row = [g.find_all("text", cls="share")[0].all_text() for g in groups[:4]]
    assert a_row == ["33%", "33%", "0%", "33%"]
    # Colour follows the row share: empty cells are the lightest colour.
    fills = {c.attrs["data-share"]: c.attrs["fill"] for c in cells}
    assert fills["0.000000"] == svg.BLUES[0]
    assert fills["1.000000"] == svg.BLUES[-1]  # the (none) row: its one customer went to C
    assert heatmap.find_all("g", cls="legend")


def test_heatmap_summary_and_labels() -> None:
    _, root = parse(small_migration_doc())
    labels = [t.all_text() for t in root.find_all("text", cls="row-label")]
    assert labels == ["A", "B", "C", NONE_STATE]
    summary = root.find_all("figcaption")[0].all_text()
    assert "up 2 (33.3%)" in summary and "down 1 (16.7%)" in summary
    assert "of 6 customers on both dates" in summary and "entered 1, left 1" in summary


def test_treated_and_holdout_side_by_side() -> None:
    _, root = parse(sample_document())
    panels = section(root, "migration").find_all("figure", cls="panel")
    assert [p.attrs["data-panel"] for p in panels] == ["Treated", "Holdout"]
    for p in panels:
        assert len(p.find_all("rect", cls="cell")) == (len(SEGMENTS) + 1) ** 2


# --- segment trend -------------------------------------------------------------------------------


def test_trend_has_a_band_and_legend_entry_per_series() -> None:
    _, root = parse(sample_document())
    (chart,) = root.find_all("svg", data_chart="segment-trend")
    bands = chart.find_all("path", cls="series")
    assert [b.attrs["data-series"] for b in bands] == list(SEGMENTS)
    assert all(b.attrs["d"].startswith("M") and b.attrs["d"].endswith("Z") for b in bands)
    legend = [t.all_text() for t in chart.find_all("text", cls="legend-label")]
    assert legend == list(reversed(SEGMENTS))  # top of the stack first
    ticks = [t.all_text() for t in chart.find_all("text", cls="tick")]
    assert "2025-01-05" in ticks


def test_trend_lines_and_single_date() -> None:
    dates = (date(2025, 1, 1), date(2025, 1, 8), date(2025, 2, 1))
    lines = SegmentTrendSection(
        title="lines",
        dates=dates,
        stacked=False,
        series=(Series(name="a", values=(1, 2, 3)), Series(name="b", values=(0, 0, 0))),
    )
    one = SegmentTrendSection(title="one", dates=dates[:1], series=(Series(name="a", values=(5,)),))
    _, root = parse(ReportDocument(title="t", generated_at=NOW, sections=(lines, one)))
    first, second = root.find_all("svg", data_chart="segment-trend")
    assert [p.attrs["fill"] for p in first.find_all("path", cls="series")] == ["none", "none"]
    assert len(first.find_all("circle", cls="point")) == 6
    (bar,) = second.find_all("rect", cls="series")
    assert float(bar.attrs["height"]) > 0


# --- lift -------------------------------------------------------------------------------------------


def test_lift_chart_has_one_interval_and_point_per_row() -> None:
    _, root = parse(sample_document())
    (chart,) = root.find_all("svg", data_chart="lift")
    rows = chart.find_all("g", cls="lift-row")
    assert len(rows) == len(PROGRAMS)
    assert len(chart.find_all("rect", cls="ci")) == len(PROGRAMS)
    assert len(chart.find_all("circle", cls="point")) == len(PROGRAMS)
    assert len(chart.find_all("line", cls="zero")) == 1
    assert rows[0].attrs["data-label"] == "welcome-series · email"
    for row, (_, _, counts) in zip(rows, PROGRAMS, strict=True):
        expected = lift(*counts)
        assert expected.ci is not None
        (ci,) = row.find_all("rect", cls="ci")
        assert float(ci.attrs["data-low"]) == pytest.approx(expected.ci.low, abs=1e-6)
        assert float(ci.attrs["data-high"]) == pytest.approx(expected.ci.high, abs=1e-6)
        assert row.attrs["data-significant"] == str(expected.significant).lower()
    # The zero line sits inside the plot, left of the positive welcome-series point.
    zero = float(chart.find_all("line", cls="zero")[0].attrs["x1"])
    assert zero < float(rows[0].find_all("circle", cls="point")[0].attrs["cx"])
    axis = [t.all_text() for t in chart.find_all("text", cls="axis-title")]
    assert axis == ["absolute lift (percentage points), 95% confidence interval"]


def test_lift_table_lists_counts_and_interval() -> None:
    _, root = parse(sample_document())
    table = section(root, "lift").find_all("table")[0]
    first = [td.all_text() for td in table.find_all("tr")[1].find_all("td")]
    assert first[0] == "welcome-series · email"
    assert first[1] == "412 / 3,120 (13.2%)"
    assert first[3].startswith("+") and first[3].endswith(" pt")
    vip = [td.all_text() for td in table.find_all("tr")[-1].find_all("td")]
    assert vip[5] == "—"  # holdout rate 0: relative lift undefined


def test_lift_row_without_data_shows_a_note() -> None:
    rows = (
        LiftRow(program="ok", lift=lift(30, 100, 10, 100)),
        LiftRow(program="no-holdout", arm="sms", lift=lift(3, 10, 0, 0)),
    )
    _, root = parse(
        ReportDocument(title="t", generated_at=NOW, sections=(LiftSection(title="l", rows=rows),))
    )
    (chart,) = root.find_all("svg", data_chart="lift")
    assert len(chart.find_all("rect", cls="ci")) == 1
    empty = chart.find_all("g", data_label="no-holdout · sms")[0]
    assert empty.find_all("text", cls="no-data-mark")[0].all_text() == "no data"


# --- tables -----------------------------------------------------------------------------------------


def test_table_formats_and_aligns_cells() -> None:
    table = TableSection(
        title="t",
        columns=("name", "count", "share"),
        rows=(("a", 12345, 0.5), ("b", 7, None), ("c", -3, -0.25)),
        float_digits=2,
    )
    _, root = parse(ReportDocument(title="t", generated_at=NOW, sections=(table,)))
    header = root.find_all("th")
    assert [h.all_text() for h in header] == ["name", "count", "share"]
    assert [h.attrs.get("class") for h in header] == [None, "num", "num"]
    cells = [
        [(td.all_text(), td.attrs["class"]) for td in tr.find_all("td")]
        for tr in root.find_all("tr")[1:]
    ]
    assert cells[0] == [("a", "text"), ("12,345", "num"), ("0.50", "num")]
    assert cells[1][2] == ("—", "num empty")
    assert cells[2][2] == ("−0.25", "num")


# --- escaping ---------------------------------------------------------------------------------------

EVIL = '<script>alert("x")</script>&"\''


def test_all_text_is_escaped() -> None:
    m = migration({"c1": EVIL}, {"c1": "ok"}, order=[EVIL, "ok"])
    doc = ReportDocument(
        title=EVIL,
        subtitle=EVIL,
        generated_at=NOW,
        sections=(
            MigrationSection(
                title=EVIL,
                description=EVIL,
                panels=(
                    MigrationPanel(label=EVIL, migration=m, before_label=EVIL, after_label=EVIL),
                ),
            ),
            SegmentTrendSection(
                title=EVIL,
                y_label=EVIL,
                dates=(date(2025, 1, 1),),
                series=(Series(name=EVIL, values=(1,)),),
            ),
            LiftSection(title=EVIL, rows=(LiftRow(program=EVIL, arm=EVIL, lift=lift(1, 2, 1, 2)),)),
            TableSection(title=EVIL, columns=(EVIL,), rows=((EVIL,),)),
        ),
    )
    markup, root = parse(doc)
    assert "<script" not in markup and not root.find_all("script")
    assert "&lt;script&gt;" in markup
    # Attributes too (data-from, data-series, data-label): the parser sees the original text.
    assert root.find_all("rect", cls="cell")[0].attrs["data-from"] == EVIL
    assert root.find_all(cls="series")[0].attrs["data-series"] == EVIL
    assert root.find_all("g", cls="lift-row")[0].attrs["data-label"] == f"{EVIL} · {EVIL}"
    assert root.find_all("td")[0].all_text() == f"{EVIL} · {EVIL}"  # lift table
    assert root.find_all("td")[-1].all_text() == EVIL  # generic table
    assert root.find_all("h1")[0].all_text() == EVIL


def test_svg_element_names_are_checked() -> None:
    with pytest.raises(ValueError, match="bad tag"):
        svg.el("rect onload=x", {})
    with pytest.raises(ValueError, match="bad tag"):
        svg.el("rect", {'x" onload="alert(1)': 1})


# --- empty data -------------------------------------------------------------------------------------


def test_empty_sections_show_a_no_data_note_instead_of_a_chart() -> None:
    nobody = migration({}, {}, order=["A", "B"])
    doc = ReportDocument(
        title="empty",
        generated_at=NOW,
        sections=(
            MigrationSection(title="no panels"),
            MigrationSection(
                title="empty panel", panels=(MigrationPanel(label="Treated", migration=nobody),)
            ),
            SegmentTrendSection(title="no dates"),
            SegmentTrendSection(title="no series", dates=(date(2025, 1, 1),)),
            LiftSection(title="no rows"),
            LiftSection(title="empty groups", rows=(LiftRow(program="p", lift=lift(0, 0, 0, 0)),)),
            TableSection(title="no rows", columns=("a",)),
        ),
    )
    _, root = parse(doc)
    assert not root.find_all("svg")
    sections = root.find_all("section")
    assert len(sections) == 7
    for s in sections:
        notes = s.find_all("p", cls="no-data")
        assert len(notes) == 1, s.find_all("h2")[0].all_text()
    assert sections[0].find_all("p", cls="no-data")[0].all_text() == NO_DATA
    assert "no program has customers in both" in sections[5].all_text()
    assert sections[6].find_all("p", cls="no-data")[0].all_text() == "No rows."
    # A lift section whose only row has no data still lists it in its table.
    assert sections[5].find_all("td")[0].all_text() == "p"


def test_all_zero_values_still_draw_a_chart() -> None:
    trend = SegmentTrendSection(title="z", dates=(date(2025, 1, 1), date(2025, 1, 2)),
                                series=(Series(name="a", values=(0, 0)),))  # fmt: skip
    _, root = parse(ReportDocument(title="t", generated_at=NOW, sections=(trend,)))
    assert root.find_all("svg", data_chart="segment-trend")


# --- validation -------------------------------------------------------------------------------------


def test_models_reject_inconsistent_data() -> None:
    with pytest.raises(ValidationError, match="3 dates"):
        SegmentTrendSection(title="t", dates=(date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)),
                            series=(Series(name="a", values=(1, 2)),))  # fmt: skip
    with pytest.raises(ValidationError, match="strictly increasing"):
        SegmentTrendSection(title="t", dates=(date(2025, 1, 2), date(2025, 1, 1)))
    with pytest.raises(ValidationError, match="finite"):
        Series(name="a", values=(float("nan"),))
    with pytest.raises(ValidationError, match="finite"):
        Series(name="a", values=(-1,))
    with pytest.raises(ValidationError, match="2 cells for 1 columns"):
        TableSection(title="t", columns=("a",), rows=(("x", "y"),))
    with pytest.raises(ValidationError, match="before it starts"):
        Period(start=date(2025, 2, 1), end=date(2025, 1, 1))
    with pytest.raises(ValidationError):
        ReportDocument.model_validate(
            {"title": "t", "generated_at": NOW, "sections": [{"kind": "pie"}]}
        )


# --- helpers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 3560, [0, 1000, 2000, 3000, 4000]), (-0.107, 0.245, [-0.2, -0.1, 0, 0.1, 0.2, 0.3]),
     (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0])],
)  # fmt: skip
def test_nice_ticks(low: float, high: float, expected: list[float]) -> None:
    assert svg.nice_ticks(low, high) == pytest.approx(expected)


def test_formatting_helpers() -> None:
    assert svg.fmt_pt(0.0432) == "+4.3 pt"
    assert svg.fmt_pt(-0.0432) == "−4.3 pt"
    assert svg.fmt_pct(None) == "—"
    assert svg.fmt_p(0.0001) == "p < 0.001"
    assert svg.share_colour(0.0) == svg.BLUES[0] and svg.share_colour(1.0) == svg.BLUES[-1]
    assert svg.truncate("あ" * 50, 120).endswith("…")
