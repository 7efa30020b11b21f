"""Bulk import is strict: a rejected row means nothing is written and a non-zero exit
(unless ``--partial``), an unknown column rejects its row in every kind of file, and an
error says what is wrong with the row, not what follows from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.cli import app
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import import_file
from kizuna_tools.products import import_products
from tests.factories import T0

CFG = KizunaConfig()
HEADER = "order_id,customer_id,ordered_at,product_id,quantity,unit_price,total,currency,channel\n"
GOOD = "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web\n"
TOO_PRECISE = "o2,c2,2026-01-05T10:00:00+09:00,p1,1,1000.12345,1000.12345,JPY,web\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_rejected_row_means_nothing_is_written_unless_partial(tmp_path: Path) -> None:
    # Given an orders file with one good row and one the event schema refuses
    path = write(tmp_path, "orders.csv", HEADER + GOOD + TOO_PRECISE)
    # When it is imported / Then nothing is written, and the rejected row is reported
    store = MemoryStore()
    report = import_file("orders", path, store, CFG, T0)
    assert (report.imported, report.rejected, report.customers_written) == (1, 1, 0)
    assert store.customers == {}
    # When it is imported with partial / Then the good row is written
    report = import_file("orders", path, store, CFG, T0, partial=True)
    assert report.customers_written == 1 and set(store.customers) == {"c1"}


@pytest.mark.parametrize(
    ("args", "code"),
    [([], 1), (["--partial"], 0)],
)
def test_the_import_command_exits_non_zero_when_a_row_is_rejected(
    tmp_path: Path, args: list[str], code: int
) -> None:
    path = write(tmp_path, "orders.csv", HEADER + GOOD + TOO_PRECISE)
    result = CliRunner().invoke(app, ["import", "orders", str(path), "--dry-run", *args])
    assert result.exit_code == code, result.output
    if code:
        assert "nothing would be written" in " ".join(result.output.split())
    # a clean file exits 0
    clean = write(tmp_path, "clean.csv", HEADER + GOOD)
    assert CliRunner().invoke(app, ["import", "orders", str(clean), "--dry-run"]).exit_code == 0


def test_nothing_importable_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "orders.csv", HEADER + TOO_PRECISE)
    result = CliRunner().invoke(app, ["import", "orders", str(path), "--dry-run", "--partial"])
    assert result.exit_code == 2


def test_misspelled_order_columns_reject_the_row(tmp_path: Path) -> None:
    # Given an orders CSV whose total and currency columns are misspelled
    path = write(
        tmp_path,
        "orders.csv",
        "order_id,customer_id,ordered_at,product_id,quantity,unit_price,totl,curency\n"
        "o1,c1,2026-01-05T10:00:00+09:00,p1,1,10,10,USD\n",
    )
    # When it is imported / Then the row is rejected naming them (no silent JPY order)
    report = import_file("orders", path, None, CFG, T0)
    assert report.imported == 0
    assert report.errors[0].error.startswith("unknown columns: curency, totl (known: ")


def test_unknown_keys_in_json_lines_orders_and_their_lines_are_rejected(tmp_path: Path) -> None:
    order = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00+09:00",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": "10"}],
    }
    lines = [
        {**order, "curency": "USD"},
        {**order, "order_id": "o2", "lines": [{**order["lines"][0], "qty": 2}]},
        {**order, "order_id": "o3", "lines": "p1"},
        {**order, "order_id": "o4"},
    ]
    path = write(tmp_path, "orders.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    report = import_file("orders", path, None, CFG, T0)
    errors = [e.error for e in report.errors]
    assert errors[0].startswith("unknown keys: curency")
    assert errors[1].startswith("unknown keys in lines.0: qty")
    assert errors[2] == "lines: a list of order lines"
    assert report.imported == 1


def test_csv_rows_of_one_order_must_agree_on_the_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.csv",
        HEADER + GOOD + "o1,c9,2026-01-05T10:00:00+09:00,p2,1,500,1000,JPY,web\n",
    )
    report = import_file("orders", path, None, CFG, T0)
    assert [(e.row, e.error) for e in report.errors] == [
        (2, "rows of order o1 differ in customer_id"),
        (3, "rows of order o1 differ in customer_id"),
    ]


def test_a_line_without_product_id_says_so_and_only_so(tmp_path: Path) -> None:
    path = write(
        tmp_path, "orders.csv", HEADER + "o1,c1,2026-01-05T10:00:00+09:00,,1,10,10,JPY,web\n"
    )
    report = import_file("orders", path, None, CFG, T0)
    assert [e.error for e in report.errors] == ["lines.0.product_id: Field required"]


def test_unknown_product_columns_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "products.csv",
        "product_id,name,url,categroy\np1,Tea,https://shop.example/p1,tea\n",
    )
    report = import_products(path, None)
    assert report.imported == 0
    assert report.errors[0].error.startswith("unknown columns: categroy")


def test_a_customer_that_could_not_be_written_exits_1_and_says_the_others_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from kizuna_tools.cli import _print_import_report
    from kizuna_tools.importer import ImportReport, RowError

    # given an import whose rows were all valid, but one customer's write was refused
    reason = "customer not written (ClientError: ValidationException); re-run the import"
    report = ImportReport(
        kind="orders",
        rows=3,
        imported=2,
        customers_written=2,
        errors=[RowError(3, reason)],
        customers_failed=["bad"],
    )
    # then the command fails (1), and does not claim that nothing was written
    with pytest.raises(typer.Exit) as exited:
        _print_import_report("orders", tmp_path / "o.csv", report, False, None, False)
    assert exited.value.exit_code == 1
    captured = capsys.readouterr()
    printed = " ".join((captured.out + captured.err).split())
    assert "1 customers could not be written" in printed and "nothing" not in printed
