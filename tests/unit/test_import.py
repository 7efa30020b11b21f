"""Bulk import: validation report, good rows imported, same state as events."""

import json
from pathlib import Path

from kizuna.domain.customer import Customer
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import import_file
from tests.factories import T0, cancel, days, order, parsed

CFG = KizunaConfig()
LOYALTY_FIELDS = (
    "order_count",
    "first_order_at",
    "first_order_id",
    "last_order_at",
    "lifetime_value",
    "spend_12m",
    "rank",
    "rank_points",
    "next_rank",
    "points_to_next_rank",
    "points_balance",
    "points_next_expiry_at",
    "points_next_expiry_amount",
)


def loyalty(c: Customer) -> dict[str, object]:
    return {f: getattr(c, f) for f in LOYALTY_FIELDS}


ORDERS_CSV = """order_id,customer_id,ordered_at,product_id,category,quantity,unit_price,total,currency,channel,cancelled_at
o1,c1,2026-01-05T10:00:00+00:00,p1,tea,2,10000,,JPY,web,
o1,c1,2026-01-05T10:00:00+00:00,p2,ware,1,10000,,JPY,web,
o2,c1,2026-01-06T10:00:00+00:00,p1,tea,1,40000,40000,JPY,store,
o3,c1,2026-01-07T10:00:00+00:00,p3,tea,1,50000,50000,JPY,app,2026-01-08T10:00:00+00:00
o4,c2,2026-01-05T10:00:00,p1,tea,1,1000,1000,JPY,web,
o5,c2,2026-01-05T10:00:00+09:00,p1,tea,0,1000,1000,JPY,web,
o6,,2026-01-05T10:00:00+09:00,p1,tea,1,1000,1000,JPY,web,
o7,c3,2026-01-05T10:00:00+09:00,p1,tea,1,abc,,JPY,web,
"""


def test_orders_csv_imports_good_rows_and_reports_every_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_CSV)
    store = MemoryStore()
    report = import_file("orders", path, store, CFG, T0 + days(3), partial=True)
    assert (report.rows, report.imported, report.rejected) == (8, 3, 4)
    errors = {e.row: e.error for e in report.errors}
    assert "UTC offset" in errors[6]
    assert "lines.0.quantity" in errors[7]
    assert "customer_id: required" in errors[8]
    assert errors[9].startswith("lines.0.unit_price: an amount (ASCII digits")
    c1 = store.customers["c1"]
    assert (c1.order_count, c1.lifetime_value, c1.points_balance) == (2, 70000, 300 + 400)
    assert report.customers_written == 1


IMPORTED_AT = T0.replace(day=31)  # after the history imported (a later time is rejected)


def test_imported_orders_give_the_same_state_as_the_same_orders_as_events(tmp_path: Path) -> None:
    raws = [order("c1", f"o{i}", 10000 * (i + 1), T0.replace(day=1 + i)) for i in range(6)]
    raws.append(cancel("c1", "o2", T0.replace(day=20)))
    # as events, one by one through the ingest path
    via_bus = MemoryStore()
    for raw in raws:
        applied = ingest_one(via_bus, parsed(raw), CFG, FixedClock(IMPORTED_AT))
        via_bus.put_activity(applied.activity)
    # as a JSON Lines import
    path = tmp_path / "orders.jsonl"
    with path.open("w") as fh:
        for raw in raws[:-1]:
            d = raw["detail"]
            row = {
                "order_id": d["order_id"],
                "customer_id": "c1",
                "ordered_at": d["occurred_at"],
                "lines": d["lines"],
                "total": d["total"],
                "channel": d["channel"],
            }
            if d["order_id"] == "o2":
                row["cancelled_at"] = raws[-1]["detail"]["occurred_at"]
            fh.write(json.dumps(row) + "\n")
    imported = MemoryStore()
    report = import_file("orders", path, imported, CFG, IMPORTED_AT)
    assert report.rejected == 0
    assert loyalty(imported.customers["c1"]) == loyalty(via_bus.customers["c1"])
    assert imported.customers["c1"].rank == "Silver"


def test_customers_import_with_consent_and_a_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,email,phone,prefecture,birth_date,gender,locale,time_zone,email_consent,sms_consent\n"
        "c1,a@example.jp,+819012345678,Tokyo,1990-01-02,female,ja,Asia/Tokyo,yes,opted_out\n"
        "c2,not-an-email,,Osaka,,male,en,,,\n"
        "c3,c@example.jp,,Kyoto,,robot,ja,,,\n"
        "c4,d@example.jp,,Kyoto,,,ja,,maybe,\n"
    )
    dry = import_file("customers", path, None, CFG, T0, as_of=T0)
    assert (dry.imported, dry.rejected) == (1, 3)
    store = MemoryStore()
    report = import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    assert [e.row for e in report.errors] == [3, 4, 5]
    assert "email" in report.errors[0].error and "gender" in report.errors[1].error
    c1 = store.customers["c1"]
    assert (c1.prefecture, c1.time_zone, c1.rank) == ("Tokyo", "Asia/Tokyo", "Bronze")
    assert c1.consent["email"].status == "opted_in" and c1.consent["sms"].status == "opted_out"


def test_malformed_jsonl_line_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    good = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00Z",
        "lines": [{"product_id": "p", "quantity": 1, "unit_price": "500"}],
    }
    path.write_text(json.dumps(good) + "\n{oops\n[1,2]\n")
    report = import_file("orders", path, MemoryStore(), CFG, T0, partial=True)
    assert report.imported == 1
    assert [(e.row, e.error.split(":")[0]) for e in report.errors] == [
        (2, "invalid JSON"),
        (3, "not an object"),
    ]


def test_customers_import_member_since_indexes_the_anniversary(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,member_since\nm1,2019-02-29\nm2,2018-04-01\nm3,2018-02-29\n")
    store = MemoryStore()
    report = import_file("customers", path, store, CFG, T0, partial=True, as_of=T0)
    # a 29 February that never was is refused, naming the column
    assert [(e.row, "member_since" in e.error) for e in report.errors] == [(2, True), (4, True)]
    assert str(store.customers["m2"].member_since) == "2018-04-01"
    assert store.members_since_on("04-01") == ["m2"]


def test_an_order_s_currency_is_the_shop_s_by_default_and_another_is_rejected(
    tmp_path: Path,
) -> None:
    # given a shop that counts in US dollars, and an orders file: one order without a
    # currency, one in yen
    usd = KizunaConfig.model_validate({"loyalty": {"currency": "USD"}})
    line = {"product_id": "p1", "quantity": 1, "unit_price": "25"}
    rows = [
        {"order_id": "o1", "customer_id": "c1", "ordered_at": "2026-01-05T10:00:00+00:00"},
        {
            "order_id": "o2",
            "customer_id": "c1",
            "ordered_at": "2026-01-06T10:00:00+00:00",
            "currency": "JPY",
        },
    ]
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(r | {"lines": [line]}) + "\n" for r in rows))
    store = MemoryStore()
    # when it is imported
    report = import_file("orders", path, store, usd, T0 + days(3), partial=True)
    # then the first is the shop's currency, the second rejected at validation, saying why
    assert (report.imported, report.rejected) == (1, 1)
    (error,) = report.errors
    assert error.row == 2
    assert error.error.startswith("currency: JPY is not the shop's order currency (USD,")
    c1 = store.customers["c1"]
    assert (c1.order_count, c1.lifetime_value) == (1, 25)
