"""The demo's report: a short simulated run on the local runtime ends with the HTML report
(treated vs holdout structure change, segment trends, program lift) and its CSVs; the
``kizuna report`` commands read the same tables and bucket."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from kizuna.adapters.s3 import S3Objects
from kizuna.analytics import published
from kizuna.analytics.document import ReportDocument
from kizuna_tools.cli import app
from kizuna_tools.demo import DemoSummary, run_demo
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.simulation import Shop

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSummary, Path]]:
    out = tmp_path_factory.mktemp("demo-report")
    summary = run_demo(60, 5, seed=7, report_dir=out)
    yield summary, out


def test_the_demo_writes_the_report_with_treated_and_holdout_structure(
    demo: tuple[DemoSummary, Path],
) -> None:
    summary, out = demo
    assert summary.report == str(out / "report.html")
    assert (out / "report.json").is_file()  # also published to the local bucket's reports/
    html = (out / "report.html").read_text(encoding="utf-8")
    # structure change: a treated and a holdout heatmap per scope and attribute
    assert html.count('data-chart="migration-heatmap"') >= 4
    assert "RFM segment migration, all programs: treated vs holdout" in html
    assert re.search(r"Treated \(up \d+, stayed \d+, down \d+\)", html)
    assert re.search(r"Holdout \(up \d+, stayed \d+, down \d+\)", html)
    # segment sizes and ranks over time, the rates, and program lift with intervals
    assert html.count('data-chart="segment-trend"') == 3
    assert 'data-chart="lift"' in html
    # every table as CSV; the programs table has the programs that ran
    with (out / "programs.csv").open(encoding="utf-8") as fh:
        programs = list(csv.DictReader(fh))
    assert len({r["program"] for r in programs if r["group"] == "all"}) >= 3
    # distinct treated customers per program; journeys_started counts re-entries too
    treated = sum(int(r["treated"]) for r in programs if r["group"] == "all")
    assert 0 < treated <= summary.journeys_started
    assert all(int(r["treated"]) + int(r["holdout"]) > 0 for r in programs if r["group"] == "all")
    with (out / "trend.csv").open(encoding="utf-8") as fh:
        trend = list(csv.DictReader(fh))
    assert len(trend) >= 3  # one row per daily scoring run
    assert int(trend[-1]["customers"]) == summary.customers
    assert (out / "segments.csv").read_text(encoding="utf-8").count("\n") > 5
    # engagement: the demo's simulated recipients, folded by the feedback function, and
    # labelled as simulated behaviour
    assert summary.engagement and summary.engagement["Delivery"] > 0
    assert sum(int(r["opened or clicked"]) for r in programs if r["group"] == "all") > 0
    assert "simulated behaviour" in html


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_demo_report_renders_in_chromium(demo: tuple[DemoSummary, Path]) -> None:
    from playwright.sync_api import sync_playwright

    _, out = demo
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_context(java_script_enabled=False).new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((out / "report.html").as_uri())
        charts = page.locator("svg[data-chart]")
        assert charts.count() >= 8
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
        assert page.locator('svg[data-chart="migration-heatmap"] .cell').count() > 100
        page.screenshot(path=str(out / "report.png"), full_page=True)
        browser.close()
    assert errors == []


def test_report_commands_read_a_stack(
    tmp_path: Path, shop_cloud: Callable[..., LocalCloud]
) -> None:
    """`kizuna report` against the local runtime's tables (in-process, so no endpoint)."""
    cloud = shop_cloud(Shop(customers=30, days=3, seed=3))
    names = {
        "--activity-table": cloud.find("AWS::DynamoDB::Table", "Activity")[0].name,
        "--snapshots-table": cloud.find("AWS::DynamoDB::Table", "Snapshots")[0].name,
        "--analytics-bucket": cloud.find("AWS::S3::Bucket", "Analytics")[0].name,
    }
    args = [a for pair in names.items() for a in pair] + ["--region", "us-east-1"]
    bucket = S3Objects(boto3.client("s3", region_name="us-east-1"), names["--analytics-bucket"])
    runner = CliRunner()
    programs = runner.invoke(app, ["report", *args, "programs", "--json"])
    assert programs.exit_code == 0, programs.output
    rows = json.loads(programs.output)
    assert rows and {"program", "treated", "holdout", "lift"} <= set(rows[0])
    html = runner.invoke(app, ["report", *args, "html", "--out", str(tmp_path / "r")])
    assert html.exit_code == 0, html.output
    assert (tmp_path / "r" / "report.html").is_file()
    assert not published.days(bucket), "published without --publish"
    # --publish: the JSON the API serves (the same document as report.json) and the HTML
    run = runner.invoke(app, ["report", *args, "html", "--out", str(tmp_path / "p"), "--publish"])
    assert run.exit_code == 0, run.output
    doc = published.latest(bucket)
    assert doc is not None and doc.headline is not None
    local = ReportDocument.model_validate_json((tmp_path / "p" / "report.json").read_text())
    assert doc == local and published.days(bucket) == [doc.generated_at.date()]
    assert bucket.get(f"reports/{doc.generated_at.date().isoformat()}.html") is not None
    segments = runner.invoke(app, ["report", *args, "segments", "--csv", str(tmp_path / "csv")])
    # without the tables: a clear error, before anything is read
    missing = runner.invoke(app, ["report", "programs"], env={"ACTIVITY_TABLE": ""})
    assert missing.exit_code == 2 and "--activity-table" in missing.output
    assert segments.exit_code == 0, segments.output
    assert "prefecture" in (tmp_path / "csv" / "segments.csv").read_text(encoding="utf-8")
