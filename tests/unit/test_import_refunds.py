"""Bulk import of refunds and returns (``kizuna import refunds``): each row is the
``order.refunded`` event ingest folds, validated as strictly as orders' rows."""

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kizuna.domain.customer import Customer
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna_tools.cli import _print_import_report, app
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import import_file
from tests.factories import T0, days, order, parsed, refund
from tests.unit.test_import import loyalty

CFG = KizunaConfig()
NOW = T0 + days(40)
HEADER = "order_id,refund_id,customer_id,refunded_at,amount,currency,reason\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *rows: dict[str, Any], name: str = "refunds.jsonl") -> Path:
    return write(tmp_path, name, "".join(json.dumps(row) + "\n" for row in rows))


def orders_jsonl(tmp_path: Path, raws: list[dict[str, Any]]) -> Path:
    """The orders of ``raws`` (order.placed events) as an orders import file."""
    rows = []
    for raw in raws:
        d = raw["detail"]
        rows.append(
            {
                "order_id": d["order_id"],
                "customer_id": d["customer_id"],
                "ordered_at": d["occurred_at"],
                "lines": d["lines"],
                "total": d["total"],
                "channel": d["channel"],
            }
        )
    return jsonl(tmp_path, *rows, name="orders.jsonl")


def refund_row(raw: dict[str, Any]) -> dict[str, Any]:
    """An order.refunded event as a JSON Lines refunds row."""
    d = raw["detail"]
    row = {
        "order_id": d["order_id"],
        "refund_id": d["refund_id"],
        "customer_id": d["customer_id"],
        "refunded_at": d["occurred_at"],
        "amount": str(d["amount"]),
    }
    row.update({k: d[k] for k in ("currency", "reason", "lines") if k in d})
    return row


def via_events(raws: list[dict[str, Any]], now: Any = NOW) -> MemoryStore:
    store = MemoryStore()
    for raw in raws:
        applied = ingest_one(store, parsed(raw), CFG, FixedClock(now))
        assert not applied.refused
        store.put_activity(applied.activity)
    return store


def refund_rows(store: MemoryStore) -> dict[str, dict[str, Any]]:
    """The REFUND activity rows, but their ``rank_after``: a row folded live says the rank as
    known then, one imported the rank with every refund of the file known (a whole refund
    of a later row takes its order's rank points back at the order's own time), as an
    imported order's ORDER row does with a cancellation of the file."""
    return {
        sk: {k: v for k, v in item.data.items() if k != "rank_after"}
        for (_, sk), item in store.activity.items()
        if item.kind == "REFUND"
    }


def same_customer(imported: MemoryStore, events: MemoryStore, cid: str = "c1") -> Customer:
    mine, theirs = imported.customers[cid], events.customers[cid]
    assert loyalty(mine) == loyalty(theirs)
    assert mine.orders == theirs.orders  # the refunds each order holds, at their times
    assert mine.history == theirs.history
    assert refund_rows(imported) == refund_rows(events)  # the REFUND rows, as the events write
    return mine


ORDERS = [order("c1", f"o{i}", 10000 * (i + 1), T0 + days(i)) for i in range(6)]
REFUNDS = [
    refund("c1", "o1", "r1", "5000", T0 + days(10), reason="damaged"),
    refund("c1", "o3", "r1", "1000", T0 + days(11)),
    refund(
        "c1",
        "o3",
        "r2",
        "2500.5",
        T0 + days(12),
        lines=[{"product_id": "p-1", "category": "tea", "quantity": 1, "unit_price": "2500.5"}],
    ),
    refund("c1", "o5", "all", "60000", T0 + days(13), reason="returned whole"),
]


def test_imported_refunds_give_the_customer_the_same_refunds_as_events_give(
    tmp_path: Path,
) -> None:
    # Given the orders and their refunds sent as events, one by one through ingest
    events = via_events(ORDERS + REFUNDS)
    # When the same orders are imported, then the refunds (JSON Lines, returned lines too)
    imported = MemoryStore()
    assert import_file("orders", orders_jsonl(tmp_path, ORDERS), imported, CFG, NOW).rejected == 0
    path = jsonl(tmp_path, *(refund_row(raw) for raw in REFUNDS))
    report = import_file("refunds", path, imported, CFG, NOW)
    # Then the customer is the one the events give: spend, ranks and points net of refunds
    assert (report.rows, report.imported, report.rejected, report.customers_written) == (4, 4, 0, 1)
    c = same_customer(imported, events)
    assert c.lifetime_value == sum(10000 * (i + 1) for i in range(6)) - 5000 - 3500.5 - 60000
    assert report.refunds_waiting == 0


def test_a_refunds_csv_gives_the_same_customer(tmp_path: Path) -> None:
    plain = [raw for raw in REFUNDS if "lines" not in raw["detail"]]
    events = via_events(ORDERS + plain)
    imported = MemoryStore()
    import_file("orders", orders_jsonl(tmp_path, ORDERS), imported, CFG, NOW)
    body = "".join(
        f"{d['order_id']},{d['refund_id']},c1,{d['occurred_at']},{d['amount']},"
        f"{'JPY' if n else ''},{d.get('reason', '')}\n"
        for n, d in enumerate(raw["detail"] for raw in plain)
    )
    report = import_file(
        "refunds", write(tmp_path, "refunds.csv", HEADER + body), imported, CFG, NOW
    )
    assert (report.imported, report.rejected) == (3, 0)
    same_customer(imported, events)


def test_a_refund_of_a_settled_order_is_folded_from_the_fact_log_as_its_event_is(
    tmp_path: Path,
) -> None:
    # Given years of history: the first orders are settled in the customer item
    history = [order("c1", f"o{i}", 10000, T0 + days(200 * i)) for i in range(6)]
    late = [
        refund("c1", "o0", "r1", "4000", T0 + days(3)),
        refund("c1", "o4", "r1", "2000", T0 + days(801)),
    ]
    now = T0 + days(1001)
    events = via_events(history + late, now)
    imported = MemoryStore()
    import_file("orders", orders_jsonl(tmp_path, history), imported, CFG, now)
    assert "o0" not in imported.customers["c1"].orders  # settled
    # When their refunds are imported / Then the customer is the one the events give
    path = jsonl(tmp_path, *(refund_row(raw) for raw in late))
    assert import_file("refunds", path, imported, CFG, now).rejected == 0
    assert same_customer(imported, events).lifetime_value == 60000 - 6000


def test_re_running_a_refunds_import_changes_nothing(tmp_path: Path) -> None:
    imported = MemoryStore()
    import_file("orders", orders_jsonl(tmp_path, ORDERS), imported, CFG, NOW)
    path = jsonl(tmp_path, *(refund_row(raw) for raw in REFUNDS))
    import_file("refunds", path, imported, CFG, NOW)
    before, rows, saves = imported.customers["c1"], dict(imported.activity), imported.saves
    # When the same file is imported again (a day later, after a failure, say)
    again = import_file("refunds", path, imported, CFG, NOW + days(1))
    # Then nothing is written: the refunds are the same (order_id, refund_id)
    assert (again.imported, again.rejected, again.customers_written) == (4, 0, 0)
    assert imported.customers["c1"] == before and imported.activity == rows
    assert imported.saves == saves


def test_a_refund_before_its_order_waits_for_it_as_its_event_does(tmp_path: Path) -> None:
    # Given refunds imported before their orders are in Kizuna
    imported = MemoryStore()
    path = jsonl(tmp_path, *(refund_row(raw) for raw in REFUNDS))
    first = import_file("refunds", path, imported, CFG, NOW)
    # Then they are imported and wait for their orders (the report says how many)
    assert (first.imported, first.rejected, first.refunds_waiting) == (4, 0, 4)
    assert imported.customers["c1"].lifetime_value == 0
    # and once the orders are imported the customer is the one the events give
    import_file("orders", orders_jsonl(tmp_path, ORDERS), imported, CFG, NOW)
    same_customer(imported, via_events(REFUNDS + ORDERS))
    # and a re-run of the refunds finds them all with their orders
    assert import_file("refunds", path, imported, CFG, NOW).refunds_waiting == 0


GOOD = {
    "order_id": "o1",
    "refund_id": "r1",
    "customer_id": "c1",
    "refunded_at": "2026-01-20T10:00:00+09:00",
    "amount": "500",
}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"order_id": None}, "order_id: null is not a value"),
        ({"refund_id": ""}, 'refund_id: "" is not a value'),
        ({"currency": ""}, 'currency: "" is not a value'),
        ({"refunded_at": "2026-01-20T10:00:00"}, "refunded_at: needs a UTC offset"),
        ({"refunded_at": "20 Jan 2026"}, "refunded_at: not an ISO 8601 time"),
        ({"amount": "1,200"}, "amount: an amount (ASCII digits"),
        ({"amount": "1e3"}, "amount: an amount (ASCII digits"),
        ({"amount": " 500"}, "amount: an amount (ASCII digits"),
        ({"amount": "0"}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": "12.12345"}, "amount: Decimal input should have no more than 4 decimal"),
        ({"currency": "USD"}, "currency: USD is not the shop's order currency (JPY"),
        ({"currency": "jpy"}, "currency"),
        ({"amout": "500"}, "unknown columns: amout"),
        ({"refund_id": "r 1"}, "refund_id"),
        ({"reason": "x" * 129}, "reason"),
        (
            {"lines": [{"product_id": "p", "quantity": "1.0", "unit_price": "5"}]},
            "lines.0.quantity",
        ),
        ({"lines": [{"product_id": "p", "quantity": 1, "price": "5"}]}, "keys in lines.0: price"),
        ({"lines": {"product_id": "p"}}, "lines: a list"),
    ],
)
def test_each_bad_refund_row_is_rejected_naming_the_field(
    tmp_path: Path, change: dict[str, Any], error: str
) -> None:
    row = {**GOOD, **change}
    report = import_file("refunds", jsonl(tmp_path, GOOD | {"order_id": "o2"}, row), None, CFG, NOW)
    assert (report.imported, [e.row for e in report.errors]) == (1, [2])
    assert report.errors[0].error.startswith(error) or error in report.errors[0].error


@pytest.mark.parametrize(
    "missing", ["order_id", "refund_id", "customer_id", "amount", "refunded_at"]
)
def test_a_refund_row_without_a_required_column_is_rejected(tmp_path: Path, missing: str) -> None:
    row = {k: v for k, v in GOOD.items() if k != missing}
    report = import_file("refunds", jsonl(tmp_path, row), None, CFG, NOW)
    assert [e.error for e in report.errors] == [f"{missing}: required"]


def test_a_json_line_that_is_not_json_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "refunds.jsonl",
        json.dumps(GOOD)
        + '\n{"order_id": "o2", "refund_id": "r1", "refund_id": "r2"}\n'
        + '{"order_id": "o3", "amount": NaN}\n',
    )
    errors = {e.row: e.error for e in import_file("refunds", path, None, CFG, NOW).errors}
    assert "refund_id" in errors[2] and "invalid JSON" in errors[3]


def test_a_refund_given_twice_rejects_every_row_naming_the_others(tmp_path: Path) -> None:
    rows = [
        GOOD,
        GOOD | {"order_id": "o2"},  # another order's r1: another refund
        GOOD | {"amount": "700"},
        GOOD | {"refund_id": "r2"},
        GOOD | {"refunded_at": "2026-01-21T10:00:00+09:00"},
        GOOD | {"customer_id": "c2"},  # another customer's order o1: another refund
    ]
    report = import_file("refunds", jsonl(tmp_path, *rows), MemoryStore(), CFG, NOW, partial=True)
    errors = {e.row: e.error for e in report.errors}
    named = "customer_id c1 order_id o1 refund_id r1"
    assert errors == {
        1: f"{named} is also on rows 3, 5: one row per refund",
        3: f"{named} is also on rows 1, 5: one row per refund",
        5: f"{named} is also on rows 1, 3: one row per refund",
    }
    assert report.imported == 3


def test_a_csv_refunds_file_reads_empty_cells_as_left_out_and_refuses_lines(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "refunds.csv",
        HEADER
        + "o1,r1,c1,2026-01-20T10:00:00+09:00,500,,\n"  # currency: the shop's; no reason
        + "o1,r2,c1,2026-01-20T10:00:00+09:00,,JPY,\n"  # no amount
        + "o1,r3,c1,2026-01-20T10:00:00+09:00,500\n",  # cut short
    )
    errors = {e.row: e.error for e in import_file("refunds", path, None, CFG, NOW).errors}
    assert errors == {3: "amount: required", 4: "fewer values than header columns"}
    lines = write(
        tmp_path,
        "lines.csv",
        "order_id,refund_id,customer_id,refunded_at,amount,lines\n"
        'o1,r1,c1,2026-01-20T10:00:00+09:00,500,"[]"\n',
    )
    report = import_file("refunds", lines, None, CFG, NOW)
    assert report.errors[0].error.startswith("lines: the returned lines are imported from JSON")


def test_the_default_currency_is_the_shops(tmp_path: Path) -> None:
    usd = KizunaConfig.model_validate({"loyalty": {"currency": "USD"}})
    store = MemoryStore()
    report = import_file("refunds", jsonl(tmp_path, GOOD), store, usd, NOW)
    assert report.rejected == 0
    (row,) = refund_rows(store).values()
    assert row["currency"] == "USD"


def test_nothing_is_written_when_a_row_is_rejected_unless_partial(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GOOD, GOOD | {"refund_id": "r2", "amount": "0"})
    store = MemoryStore()
    report = import_file("refunds", path, store, CFG, NOW)
    assert (report.imported, report.rejected, store.customers) == (1, 1, {})
    report = import_file("refunds", path, store, CFG, NOW, partial=True)
    assert report.customers_written == 1 and len(refund_rows(store)) == 1


def test_a_refund_kizuna_holds_with_another_amount_is_refused_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    import_file("orders", orders_jsonl(tmp_path, ORDERS), store, CFG, NOW)
    import_file("refunds", jsonl(tmp_path, GOOD), store, CFG, NOW)
    # When a file gives the same refund with another amount, beside a new refund
    path = jsonl(tmp_path, GOOD | {"amount": "700"}, GOOD | {"refund_id": "r2"})
    report = import_file("refunds", path, store, CFG, NOW)
    # Then that row is refused, as its event is; the other is imported
    assert (report.imported, report.refused, [e.row for e in report.errors]) == (1, 1, [1])
    assert report.errors[0].error.startswith("refused by Kizuna: order.refunded: detail.amount")
    assert report.customers_failed == []
    refunds = store.customers["c1"].orders["o1"].refunds
    assert sorted(r.amount for r in refunds.values()) == [500, 500]
    # and the command says so and exits 1, without claiming nothing was written
    with pytest.raises(typer.Exit) as exited:
        _print_import_report("refunds", path, report, False, None, False)
    assert exited.value.exit_code == 1
    captured = capsys.readouterr()
    printed = " ".join((captured.out + captured.err).split())
    assert "1 rows were refused by Kizuna" in printed and "nothing" not in printed


def test_the_refunds_command_exits_as_the_orders_command_does(tmp_path: Path) -> None:
    bad = jsonl(tmp_path, GOOD, GOOD | {"refund_id": "r2", "amount": "0"}, name="bad.jsonl")
    result = CliRunner().invoke(app, ["import", "refunds", str(bad), "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "nothing would be written" in " ".join(result.output.split())
    partial = CliRunner().invoke(app, ["import", "refunds", str(bad), "--dry-run", "--partial"])
    assert partial.exit_code == 0, partial.output
    none = jsonl(tmp_path, GOOD | {"amount": "0"}, name="none.jsonl")
    assert CliRunner().invoke(app, ["import", "refunds", str(none), "--dry-run"]).exit_code == 2
    clean = jsonl(tmp_path, GOOD, name="clean.jsonl")
    assert CliRunner().invoke(app, ["import", "refunds", str(clean), "--dry-run"]).exit_code == 0
    as_of = ["import", "refunds", str(clean), "--dry-run", "--as-of", "2026-01-01T00:00:00Z"]
    assert CliRunner().invoke(app, as_of).exit_code == 2


def test_ids_with_colons_name_two_refunds_and_a_reason_may_be_empty(tmp_path: Path) -> None:
    # order a:b's refund c and order a's refund b:c are two refunds (their event ids differ)
    rows = [
        GOOD | {"order_id": "a:b", "refund_id": "c", "reason": ""},
        GOOD | {"order_id": "a", "refund_id": "b:c"},
    ]
    store = MemoryStore()
    report = import_file("refunds", jsonl(tmp_path, *rows), store, CFG, NOW)
    assert (report.imported, report.rejected) == (2, 0)
    orders = store.customers["c1"].orders
    assert len(orders["a:b"].refunds) == len(orders["a"].refunds) == 1
    reasons = sorted(str(row["reason"]) for row in refund_rows(store).values())
    assert reasons == ["", "None"]
