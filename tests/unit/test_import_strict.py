"""Bulk import is strict: a rejected row means nothing is written and a non-zero exit
(unless ``--partial``), an unknown column rejects its row in every kind of file, and an
error says what is wrong with the row, not what follows from it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.cli import app
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import ImportFileError, import_file
from kizuna_tools.products import ProductRecord, import_products
from tests.factories import T0

CFG = KizunaConfig()
HEADER = "order_id,customer_id,ordered_at,product_id,quantity,unit_price,total,currency,channel\n"
GOOD = "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web\n"
TOO_PRECISE = "o2,c2,2026-01-05T10:00:00+09:00,p1,1,1000.12345,1000.12345,JPY,web\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class Catalogue:
    """The products table: the records it was given."""

    def __init__(self) -> None:
        self.records: list[ProductRecord] = []

    def upsert_catalog(self, records: Iterable[ProductRecord]) -> int:
        self.records.extend(records)
        return len(self.records)


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


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("o1,c1,2026-01-05T10:00:00+09:00,p2,1\n", "fewer values than header columns"),
        ("o1,c1,2026-01-05T10:00:00+09:00,p2,1,500,1000,JPY,web,x\n", "more values than"),
        ("o1,c1,2026-01-05T10:00:00+09:00,p2,1,500,1000,JPY,web\n", ""),  # (a good row)
    ],
)
def test_an_order_with_a_rejected_row_is_not_imported_short_of_a_line(
    tmp_path: Path, bad: str, why: str
) -> None:
    # Given an order of two rows, the second cut short (or with a value too many), and
    # another order
    other = "o2,c2,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web\n"
    path = write(tmp_path, "orders.csv", HEADER + GOOD + bad + other)
    # When it is imported with partial
    store = MemoryStore()
    report = import_file("orders", path, store, CFG, T0, partial=True)
    if not why:
        assert report.rejected == 0 and store.customers["c1"].order_count == 1
        return
    # Then the whole order is refused (imported from its first row alone, a re-run with the
    # row fixed would change nothing: the order would already be folded), the other goes on
    assert [(e.row, e.error.startswith(why)) for e in report.errors] == [(2, False), (3, True)]
    assert report.errors[0].error == (
        "row 3 of order o1 is rejected: an order is imported whole or not"
    )
    assert set(store.customers) == {"c2"}


NUMBERS = {  # column -> (good texts, bad texts)
    "quantity": (["1", "10", "250"], ["1_0", " 1", "1 ", "1.0", "+1", "01", "１", "1e1", "0x10"]),
    "unit_price": (
        ["1200", "0", "12.5", "0.0001"],
        ["1_200", "１２００", "1e3", " 1200", "1200 ", "1,200", "-0", "+5", "01", "1.", ".5"],
    ),
    "total": (["1200", "12.5"], ["1_200", "1e3", "１２００", " 1200", "1,200", "-1", "0x10"]),
}


@pytest.mark.parametrize(
    ("column", "text", "good"),
    [(c, t, True) for c, (good, _) in NUMBERS.items() for t in good]
    + [(c, t, False) for c, (_, bad) in NUMBERS.items() for t in bad],
)
def test_an_orders_numbers_are_written_in_plain_ascii_digits(
    tmp_path: Path, column: str, text: str, good: bool
) -> None:
    # Given an order whose quantity, unit price or total is written as Python's int() or
    # Decimal() would read it, but as no number is written ("1_0" read as 10, "１２００" as 1200)
    cells = {"quantity": "1", "unit_price": "1200", "total": "1200", column: text}
    quoted = ",".join(f'"{cells[c]}"' for c in ("quantity", "unit_price", "total"))
    path = write(
        tmp_path, "o.csv", f"{HEADER}o1,c1,2026-01-05T10:00:00+09:00,p1,{quoted},JPY,web\n"
    )
    as_json = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00+09:00",
        "total": cells["total"],
        "lines": [
            {"product_id": "p1", "quantity": cells["quantity"], "unit_price": cells["unit_price"]}
        ],
    }
    lines = write(tmp_path, "o.jsonl", json.dumps(as_json) + "\n")
    for file in (path, lines):
        # When it is imported / Then a number not in plain ASCII digits rejects the order,
        # naming the field (a JSON string too: it is text)
        report = import_file("orders", file, None, CFG, T0)
        if good:
            assert report.errors == [], file.name
        else:
            where = column if column == "total" else f"lines.0.{column}"
            assert [e.error.split(" (")[0] for e in report.errors] == [
                f"{where}: {'a whole number' if column == 'quantity' else 'an amount'}"
            ], file.name


def test_an_order_cancelled_before_it_was_placed_is_rejected(tmp_path: Path) -> None:
    header = HEADER.rstrip("\n") + ",cancelled_at\n"
    rows = [
        "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web,2026-01-05T00:59:59Z\n",
        "o2,c1,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web,2026-01-05T01:00:00Z\n",
        "o3,c1,2026-01-05T10:00:00+09:00,p1,1,1000,1000,JPY,web,2026-01-05T18:00:00+09:00\n",
    ]
    report = import_file("orders", write(tmp_path, "o.csv", header + "".join(rows)), None, CFG, T0)
    # (the same instant as the order, in another offset, is not before it)
    assert [(e.row, e.error) for e in report.errors] == [(2, "cancelled_at: before ordered_at")]
    assert report.imported == 2


def test_a_json_null_is_refused_not_dropped(tmp_path: Path) -> None:
    # Given a customer whose email Kizuna has, then a line that gives "email": null
    at = "2026-01-01T00:00:00+00:00"
    store = MemoryStore()
    first = {"customer_id": "c1", "updated_at": at, "email": "a@example.jp"}
    assert import_file("customers", write(tmp_path, "a.jsonl", json.dumps(first)), store, CFG, T0)
    later = {"customer_id": "c1", "updated_at": "2026-01-02T00:00:00+00:00"}
    rows = [
        {**later, "email": None},
        # (was read as "no updated_at": the --as-of time)
        {**later, "customer_id": "c2", "updated_at": None},
        {
            **later,
            "customer_id": "c3",
            "first_name": "Ai",
            "push_tokens": None,
            "sms_consent": None,
        },
    ]
    path = write(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # When it is imported / Then each line is refused, naming the keys (it was reported
    # imported while the null was dropped, and the email kept)
    report = import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "email: null is not a value (leave the key out)"),
        (2, "updated_at: null is not a value (leave the key out)"),
        (3, "push_tokens, sms_consent: null is not a value (leave the key out)"),
    ]
    assert store.customers["c1"].email == "a@example.jp" and set(store.customers) == {"c1"}
    # and an order's null is no default either ("currency": null was a JPY order)
    order = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00+09:00",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 100}],
    }
    orders = [
        {**order, "currency": None},
        {**order, "order_id": "o2", "lines": [{**order["lines"][0], "category": None}]},
        {**order, "order_id": "o3"},
    ]
    path = write(tmp_path, "o.jsonl", "".join(json.dumps(r) + "\n" for r in orders))
    report = import_file("orders", path, None, CFG, T0)
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "currency: null is not a value (leave the key out)"),
        (2, "lines.0.category: null is not a value (leave the key out)"),
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


def test_a_customers_row_without_a_time_needs_the_export_time_and_a_rerun_undoes_nothing(
    tmp_path: Path,
) -> None:
    from kizuna.events.envelope import ParsedEvent
    from kizuna.services.ingest import apply_to_customers
    from tests.factories import days, unsubscribed

    # Given a CRM export without updated_at
    path = write(tmp_path, "customers.csv", "customer_id,email,email_consent\nc1,a@x.jp,yes\n")
    store = MemoryStore()
    # When it is imported without --as-of / Then the row is refused, saying why
    report = import_file("customers", path, store, CFG, T0 + days(2))
    assert [e.error.split(",")[0] for e in report.errors] == ["updated_at: required"]
    assert store.customers == {}
    # When it is imported as of its export (T0), then the customer unsubscribes (T0 + 1 day)
    assert import_file("customers", path, store, CFG, T0 + days(2), as_of=T0).imported == 1
    out = unsubscribed("c1", T0 + days(1))
    event = ParsedEvent(
        event_id="u1",
        detail_type="consent.changed",
        source="kizuna.unsubscribe",
        time=out.occurred_at,
        detail=out,
    )
    apply_to_customers(store, {"c1": [event]}, CFG, T0 + days(2))
    assert store.customers["c1"].consent["email"].status == "opted_out"
    # When the import is re-run (the tool's advice after a failure) / Then it stays so
    report = import_file("customers", path, store, CFG, T0 + days(3), as_of=T0)
    assert report.rejected == 0
    assert store.customers["c1"].consent["email"].status == "opted_out"
    # and an export time in the future is refused
    with pytest.raises(ImportFileError, match="later than now"):
        import_file("customers", path, store, CFG, T0, as_of=T0 + days(1))


def test_rows_are_never_merged_padded_truncated_or_read_twice(tmp_path: Path) -> None:
    cases = {
        # a row cut short (a file truncated mid-row): its missing columns are not "empty"
        "short.csv": (
            "customer_id,first_name,email_consent\nc1,Ai,yes\nc2,Bo\n",
            [(3, "fewer values than header columns")],
        ),
        # one customer on two rows: which one wins would be an accident
        "twice.csv": (
            "customer_id,first_name\nc1,Ai\nc2,Bo\nc1,Aiko\n",
            [
                (2, "customer_id c1 is also on row 4: one row per customer"),
                (4, "customer_id c1 is also on row 2: one row per customer"),
            ],
        ),
        # a JSON key given twice: json keeps the last one, silently
        "keys.jsonl": (
            '{"customer_id": "c1", "email": "a@x.jp", "email": "b@x.jp"}\n',
            [(1, "key 'email' given twice")],
        ),
    }
    for name, (text, errors) in cases.items():
        report = import_file("customers", write(tmp_path, name, text), None, CFG, T0, as_of=T0)
        assert [(e.row, e.error) for e in report.errors] == errors, name
    order = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00Z",
        "lines": [{"product_id": "p", "quantity": 1, "unit_price": "500"}],
    }
    again = {**order, "lines": [{"product_id": "p", "quantity": 1, "unit_price": "100"}]}
    path = write(tmp_path, "o.jsonl", f"{json.dumps(order)}\n{json.dumps(again)}\n")
    report = import_file("orders", path, None, CFG, T0)
    # (which line is the order? neither: a re-run with the right one must not find the
    # wrong one already folded)
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "order_id o1 is also on row 2: one line per order"),
        (2, "order_id o1 is also on row 1: one line per order"),
    ]


def test_a_json_lines_order_is_one_line_never_grouped_with_another(tmp_path: Path) -> None:
    at = {"customer_id": "c1", "ordered_at": "2026-01-05T10:00:00Z"}
    line = {"product_id": "p1", "quantity": 1, "unit_price": 100}
    flat = {"order_id": "o1", **at, "product_id": "p2", "quantity": 2, "unit_price": 5000}
    cases = {
        # a whole order, then an order line written flat with the same id: the flat line
        # was dropped while both were counted as imported
        "whole-then-flat.jsonl": (
            [{"order_id": "o1", **at, "lines": [line]}, flat],
            [
                (1, "order_id o1 is also on row 2: one line per order"),
                (2, "order_id o1 is also on row 1: one line per order"),
            ],
        ),
        # two flat lines of one id were merged into one order of two lines
        "flat-twice.jsonl": (
            [{**flat, "product_id": "p1"}, flat, {"order_id": "o2", **at, "lines": [line]}, flat],
            [
                (1, "order_id o1 is also on rows 2, 4: one line per order"),
                (2, "order_id o1 is also on rows 1, 4: one line per order"),
                (4, "order_id o1 is also on rows 1, 2: one line per order"),
            ],
        ),
        # a single flat line is not an order either
        "flat.jsonl": (
            [flat, {"order_id": "o2", **at, "lines": [line]}],
            [(1, "lines: required (a JSON line is one whole order, with its lines array)")],
        ),
    }
    for name, (rows, errors) in cases.items():
        path = write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))
        store = MemoryStore()
        report = import_file("orders", path, store, CFG, T0, partial=True)
        assert [(e.row, e.error) for e in report.errors] == errors, name
        assert report.rows == len(rows) and report.imported == len(rows) - len(errors), name
        orders = store.customers["c1"].order_count if "c1" in store.customers else 0
        assert orders == report.imported, name


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            "customer_id,email\nc1,a@x.jp\n".encode("shift_jis")
            + "c2,山田@x.jp\n".encode("shift_jis"),
            "not UTF-8",
        ),
        (b"customer_id,email,email\nc1,a@x.jp,b@x.jp\n", "'email' given twice"),
        (b"customer_id, email\nc1,a@x.jp\n", "the column 'email' has spaces around it"),
        (b"customer_id,email,\nc1,a@x.jp,\n", "column 3 has no name"),
        (b"customer_id,first_name\nc1," + b"x" * 200_000 + b"\n", "unreadable CSV"),
    ],
)
def test_a_file_that_cannot_be_read_as_a_whole_imports_nothing(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(content)
    store = MemoryStore()
    with pytest.raises(ImportFileError, match=reason):
        import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    assert store.customers == {}
    result = CliRunner().invoke(
        app, ["import", "customers", str(path), "--dry-run", "--as-of", "2026-01-01T00:00:00Z"]
    )
    assert result.exit_code == 2 and "nothing was imported" in " ".join(result.output.split())


def test_an_address_or_devices_no_customer_item_could_hold_are_refused(tmp_path: Path) -> None:
    long_email = "a" * 250 + "@x.jp"
    rows = [
        {"customer_id": "c1", "email": long_email},
        {"customer_id": "c2", "email": "\u202ea@x.jp"},
        {
            "customer_id": "c3",
            "push_tokens": [{"token": f"{i:08d}" * 500, "platform": "FCM"} for i in range(21)],
        },
    ]
    path = write(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    report = import_file("customers", path, None, CFG, T0, as_of=T0)
    assert [e.row for e in report.errors] == [1, 2, 3]
    assert [e.error.split(":")[0] for e in report.errors] == ["email", "email", "push_tokens"]


@pytest.mark.parametrize(
    ("as_of", "reason"),
    [
        ("yesterday", "an ISO 8601 time"),
        ("2026-01-01T00:00:00", "needs a UTC offset"),
        ("2999-01-01T00:00:00Z", "later than now"),
    ],
)
def test_the_export_time_is_checked_before_anything_is_read(
    tmp_path: Path, as_of: str, reason: str
) -> None:
    path = write(tmp_path, "customers.csv", "customer_id\nc1\n")
    result = CliRunner().invoke(
        app, ["import", "customers", str(path), "--dry-run", "--as-of", as_of]
    )
    assert result.exit_code == 2 and reason in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("opted_in", "opted_in"),
        ("TRUE", "opted_in"),  # a spreadsheet's boolean
        ("Yes", "opted_in"),
        ("1", "opted_in"),
        ("opted_out", "opted_out"),
        ("FALSE", "opted_out"),
        ("n", "opted_out"),
        ("opted-in", None),
        (" yes", None),
        ("2", None),
        ("oui", None),
    ],
)
def test_consent_columns_take_the_documented_words_only(
    tmp_path: Path, word: str, status: str | None
) -> None:
    # docs/IMPORT.md: opted_in/opted_out, yes/no, y/n, true/false, 1/0 in any letter case
    text = f'customer_id,dm_consent,email_consent\nc1,"{word}",opted_in\n'
    store = MemoryStore()
    report = import_file("customers", write(tmp_path, "c.csv", text), store, CFG, T0, as_of=T0)
    if status is None:
        assert [e.error for e in report.errors] == [
            "dm_consent: use opted_in/opted_out (or yes/no, true/false, 1/0)"
        ]
        assert store.customers == {}
    else:
        assert report.rejected == 0
        assert store.customers["c1"].consent["dm"].status == status


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_customer_on_two_rows_rejects_every_row_that_gives_it(
    tmp_path: Path, suffix: str
) -> None:
    # Given a customers file giving c1 on three rows (one of them bad on its own), and c2
    rows = [
        {"customer_id": "c1", "first_name": "Ai"},
        {"customer_id": "c2", "first_name": "Bo"},
        {"customer_id": "c1", "first_name": "Aiko"},
        {"customer_id": "c1", "first_name": "Aiko", "gender": "x"},
    ]
    if suffix == ".csv":
        text = "customer_id,first_name,gender\n" + "".join(
            f"{r['customer_id']},{r['first_name']},{r.get('gender', '')}\n" for r in rows
        )
        first = 2
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        first = 1
    path = write(tmp_path, f"customers{suffix}", text)
    # When it is imported with partial
    store = MemoryStore()
    report = import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    # Then each row of c1 is rejected naming the others (the first was imported), c2 goes on
    a, b, c = first, first + 2, first + 3
    assert [(e.row, e.error) for e in report.errors] == [
        (a, f"customer_id c1 is also on rows {b}, {c}: one row per customer"),
        (b, f"customer_id c1 is also on rows {a}, {c}: one row per customer"),
        (c, f"customer_id c1 is also on rows {a}, {b}: one row per customer"),
    ]
    assert (report.rows, report.imported) == (4, 1)
    assert set(store.customers) == {"c2"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_product_on_two_rows_rejects_every_row_that_gives_it(tmp_path: Path, suffix: str) -> None:
    # Given a catalogue giving p1 on three rows (one of them bad on its own), and p2
    url = "https://shop.example/p"
    rows = [
        {"product_id": "p1", "name": "Sencha", "url": url},
        {"product_id": "p2", "name": "Hojicha", "url": url},
        {"product_id": "p1", "name": "Sencha Premium", "url": url},
        {"product_id": "p1", "name": "Sencha", "url": "ftp://shop.example/p"},
    ]

    def text(rows: list[dict[str, str]]) -> str:
        if suffix == ".csv":
            return "product_id,name,url\n" + "".join(",".join(r.values()) + "\n" for r in rows)
        return "".join(json.dumps(r) + "\n" for r in rows)

    first = 2 if suffix == ".csv" else 1
    path = write(tmp_path, f"products{suffix}", text(rows))
    # When it is imported with partial
    store = Catalogue()
    report = import_products(path, store, partial=True)
    # Then each row of p1 is rejected naming the others (the last was imported), p2 goes on
    a, b, c = first, first + 2, first + 3
    assert [(e.row, e.error) for e in report.errors] == [
        (a, f"product_id p1 is also on rows {b}, {c}: one row per product"),
        (b, f"product_id p1 is also on rows {a}, {c}: one row per product"),
        (c, f"product_id p1 is also on rows {a}, {b}: one row per product"),
    ]
    assert (report.rows, report.imported, report.customers_written) == (4, 1, 1)
    assert [r.product_id for r in store.records] == ["p2"]
    # and of two rows, each names the other
    two = write(tmp_path, f"two{suffix}", text(rows[:3]))
    assert [(e.row, e.error) for e in import_products(two, None).errors] == [
        (a, f"product_id p1 is also on row {b}: one row per product"),
        (b, f"product_id p1 is also on row {a}: one row per product"),
    ]


def test_a_products_values_are_taken_as_written(tmp_path: Path) -> None:
    # Given a catalogue whose values are padded, null or JSON numbers
    good = {"product_id": "p1", "name": "Sencha", "url": "https://shop.example/p1"}
    rows = [
        good,
        {**good, "product_id": "p2", "name": " Sencha"},
        {**good, "product_id": "p3", "name": "Sencha\u3000"},
        {**good, "product_id": "p4", "category": "tea "},
        {**good, "product_id": "p5", "category": None},
        {**good, "product_id": "p6", "name": None},
        {**good, "product_id": 7},
        {**good, "product_id": "p8", "name": 1200},
        {**good, "product_id": " p9"},
        {**good, "product_id": "p10", "url": "https://shop.example/p10 "},
    ]
    path = write(tmp_path, "products.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # When it is imported / Then each is refused, naming the field (it was trimmed, or a
    # null category read as none)
    report = import_products(path, None)
    assert [(e.row, e.error.split(":")[0]) for e in report.errors] == [
        (2, "name"),
        (3, "name"),
        (4, "category"),
        (5, "category"),
        (6, "name"),
        (7, "product_id"),
        (8, "name"),
        (9, "product_id"),
        (10, "url"),
    ]
    assert report.errors[0].error == "name: Value error, spaces around the value"
    assert report.errors[3].error == "category: null is not a value (leave the key out)"
    # and a CSV cell too: " Sencha" is not trimmed into "Sencha"
    csv_path = write(
        tmp_path, "products.csv", "product_id,name,url\np1, Sencha,https://shop.example/p1\n"
    )
    assert [e.row for e in import_products(csv_path, None).errors] == [2]


def test_an_empty_string_in_json_lines_is_no_key_left_out(tmp_path: Path) -> None:
    # Given a customer Kizuna knows, then JSON lines giving "" for fields
    at = "2026-01-01T00:00:00+00:00"
    store = MemoryStore()
    first = {"customer_id": "c1", "updated_at": at, "email": "a@x.jp", "first_name": "Ai"}
    assert import_file("customers", write(tmp_path, "a.jsonl", json.dumps(first)), store, CFG, T0)
    later = {"customer_id": "c1", "updated_at": "2026-01-02T00:00:00+00:00"}
    rows = [
        {**later, "customer_id": "c5", "email": ""},
        {**later, "customer_id": "c2", "updated_at": ""},  # (was read as --as-of)
        {**later, "customer_id": "c3", "email_consent": "", "push_tokens": "", "gender": ""},
        {**later, "customer_id": "c4", "phone": "", "birth_date": "", "time_zone": ""},
        {**later, "customer_id": ""},
        # free text: "" is the text
        {**later, "customer_id": "c1", "first_name": "", "occupation": ""},
    ]
    path = write(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # When it is imported / Then each line but the free text's is refused, naming the keys
    report = import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    why = ': "" is not a value (give one or leave the key out)'
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "email" + why),
        (2, "updated_at" + why),
        (3, "email_consent, push_tokens, gender" + why),
        (4, "phone, birth_date, time_zone" + why),
        (5, "customer_id" + why),
    ]
    c1 = store.customers["c1"]
    assert (c1.email, c1.first_name, c1.occupation) == ("a@x.jp", "", "")
    assert set(store.customers) == {"c1"}
    # and an order's "" is no default: "total": "" was the sum of the lines, "currency": ""
    # JPY, "channel": "" store, "cancelled_at": "" an order not cancelled
    order = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00+09:00",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 100}],
    }
    line = order["lines"][0]
    orders = [
        {**order, "total": "", "currency": ""},
        {**order, "order_id": "o2", "channel": "", "cancelled_at": ""},
        {**order, "order_id": "o3", "lines": [{**line, "quantity": "", "product_id": ""}]},
        {**order, "order_id": ""},
        {**order, "order_id": "o5", "lines": [{**line, "category": ""}]},  # free text
    ]
    path = write(tmp_path, "o.jsonl", "".join(json.dumps(r) + "\n" for r in orders))
    report = import_file("orders", path, None, CFG, T0)
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "total, currency" + why),
        (2, "channel, cancelled_at" + why),
        (3, "lines.0.product_id, lines.0.quantity" + why),
        (4, "order_id" + why),
    ]
    # while in CSV an empty cell is a column left out (the documented convention)
    csv_path = write(tmp_path, "o.csv", HEADER + "o1,c1,2026-01-05T10:00:00+09:00,p1,1,1000,,,\n")
    assert import_file("orders", csv_path, None, CFG, T0).errors == []


def test_a_products_name_and_category_are_text_as_an_orders_category_is(tmp_path: Path) -> None:
    # Given catalogue lines whose name or category holds a control, line or format character
    good = {"product_id": "p1", "name": "Sencha", "url": "https://shop.example/p1"}
    bad = ["Sen\ncha", "Sen\x00cha", "Sen\u200bcha", "Sen\u202echa", "Sen\x85cha"]
    rows = [good]
    for i, text in enumerate(bad):
        rows.append({**good, "product_id": f"n{i}", "name": text})
        rows.append({**good, "product_id": f"c{i}", "category": text})
    path = write(tmp_path, "products.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # When it is imported
    report = import_products(path, None)
    # Then each line is refused naming the field, as an order line's category is
    assert [(e.row, e.error.split(":")[0]) for e in report.errors] == [
        (2 + 2 * i + j, field)
        for i in range(len(bad))
        for j, field in enumerate(["name", "category"])
    ]
    order = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00+09:00",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 100, "category": bad[0]}],
    }
    orders = write(tmp_path, "o.jsonl", json.dumps(order) + "\n")
    assert [e.row for e in import_file("orders", orders, None, CFG, T0).errors] == [1]
    # while Japanese text, emoji with a zero-width joiner and inner spaces are text
    fine = {**good, "name": "玄米茶 👩\u200d🍳", "category": "お茶 ギフト"}
    path = write(tmp_path, "fine.jsonl", json.dumps(fine) + "\n")
    assert import_products(path, None).errors == []


def test_an_empty_string_is_no_products_value_in_json_lines(tmp_path: Path) -> None:
    # Given a catalogue line whose category is "" (it was read as none: the category removed)
    good = {"product_id": "p1", "name": "Sencha", "url": "https://shop.example/p1"}
    rows = [
        good,
        {**good, "product_id": "p2", "category": ""},
        {**good, "product_id": "p3", "name": ""},
    ]
    path = write(tmp_path, "products.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # When it is imported / Then the line is refused, naming the key
    report = import_products(path, None)
    why = ': "" is not a value (give one or leave the key out)'
    assert [(e.row, e.error) for e in report.errors] == [(2, "category" + why), (3, "name" + why)]
    # while a CSV empty cell is a column left out
    csv_path = write(
        tmp_path, "products.csv", "product_id,name,url,category\np1,Tea,https://shop.example/p1,\n"
    )
    assert import_products(csv_path, None).errors == []
