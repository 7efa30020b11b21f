"""Co-purchase recommendations, the daily snapshot and the run's finish step, without AWS."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kizuna.delivery.templates import Renderer
from kizuna.domain.customer import Customer, OrderFact
from kizuna.domain.ingest import apply_events
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.copurchase import (
    BEST_SELLERS_KEY,
    CoPurchase,
    best_sellers,
    count,
    last_order_products,
    purchased,
    recommend,
    related,
)
from kizuna.scoring.job import (
    FinishRequest,
    finish_run,
    snapshot_key,
    work_key,
    write_work_files,
)
from kizuna.scoring.snapshot import CellTotals, cells, merge_cells, row_for
from kizuna_tools.products import ProductRecord, import_products
from tests.factories import order, parsed

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def customer(cid: str, *baskets: list[str], cancelled: int | None = None) -> Customer:
    orders = {
        f"{cid}-{n}": OrderFact(
            placed=True,
            at=NOW - timedelta(days=30 - n),
            total=Decimal(1000),
            products=tuple(basket),
            cancelled_at=NOW if n == cancelled else None,
        )
        for n, basket in enumerate(baskets)
    }
    times = [o.at for o in orders.values() if o.at]
    return Customer(
        customer_id=cid,
        orders=orders,
        order_count=len(orders),
        first_order_at=min(times, default=None),
        last_order_at=max(times, default=None),
    )


def test_ingest_keeps_each_orders_distinct_product_ids() -> None:
    raw = order("c1", "o1", 3000, NOW, product_id="tea-001")
    raw["detail"]["lines"] += [
        {"product_id": "ware-002", "quantity": 1, "unit_price": "1000"},
        {"product_id": "tea-001", "quantity": 2, "unit_price": "1000"},
    ]
    applied = apply_events(Customer(customer_id="c1"), [parsed(raw)], KizunaConfig(), NOW)
    assert applied.customer.orders["o1"].products == ("tea-001", "ware-002")


def test_pairs_count_customers_not_orders_and_skip_cancelled_orders() -> None:
    counts = count(
        [
            customer("a", ["x", "y"], ["x", "y"]),  # twice together: one customer
            customer("b", ["x"], ["y"]),  # over two orders: still bought both
            customer("c", ["x", "z"], ["y"], cancelled=1),  # y cancelled: x-z only
            customer("d"),  # no orders
        ]
    )
    assert counts.buyers == {"x": 3, "y": 2, "z": 1}
    assert counts.together == {"x\ty": 2, "x\tz": 1}


def test_merge_adds_shards_up() -> None:
    one = CoPurchase(buyers={"x": 1, "y": 1}, together={"x\ty": 1})
    two = CoPurchase(buyers={"x": 2}, together={})
    assert CoPurchase.merge([one, two]) == CoPurchase(buyers={"x": 3, "y": 1}, together={"x\ty": 1})


def test_related_is_cosine_ranked_and_drops_rare_pairs() -> None:
    # x: 4 buyers, y: 2, z: 4; x-y 2 together, x-z 3, y-z 1 (dropped, min 2)
    counts = CoPurchase(buyers={"x": 4, "y": 2, "z": 4}, together={"x\ty": 2, "x\tz": 3, "y\tz": 1})
    out = related(counts, top_n=5, min_together=2)
    # x-y: 2/sqrt(8) = 0.7071 ; x-z: 3/sqrt(16) = 0.75 -> z first for x
    assert [(r.product_id, round(r.score, 4), r.together) for r in out["x"]] == [
        ("z", 0.75, 3),
        ("y", 0.7071, 2),
    ]
    assert [r.product_id for r in out["y"]] == ["x"]
    assert related(counts, top_n=1)["x"][0].product_id == "z"
    assert best_sellers(counts, 2) == ["x", "z"]  # tie at 4 broken by id


def test_recommend_never_repeats_a_purchase_and_falls_back_to_best_sellers() -> None:
    rel = {
        "tea": [
            {"product_id": "cup", "name": "Cup", "score": 0.9},
            {"product_id": "pot", "name": "Pot", "score": 0.5},
        ],
        "cake": [{"product_id": "pot", "name": "Pot", "score": 0.8}],
    }
    fallback = [{"product_id": p, "name": p.title()} for p in ("tea", "cup", "mochi", "yokan")]
    picks = recommend(["tea", "cake"], {"tea", "cake", "cup"}, rel, fallback, 3)
    # cup was bought; pot keeps its best score; then best sellers not bought
    assert [p["product_id"] for p in picks] == ["pot", "mochi", "yokan"]
    assert recommend([], set(), {}, [], 3) == []


def test_last_order_products_ignores_cancelled_orders() -> None:
    c = customer("a", ["x"], ["y", "z"], cancelled=1)
    assert last_order_products(c) == ["x"]
    assert purchased(c) == {"x"}


def test_snapshot_rows_carry_bands_not_personal_data() -> None:
    c = customer("a", ["x"], ["y"]).model_copy(
        update={
            "email": "a@example.jp",
            "first_name": "Hanako",
            "birth_date": datetime(1990, 6, 1).date(),
            "region": "Kanto",
            "rank": "Silver",
            "rfm_segment": "Loyal",
            "spend_12m": Decimal("2000"),
        }
    )
    row = row_for(c, NOW, KizunaConfig())
    dumped = row.model_dump_json()
    assert "a@example.jp" not in dumped and "Hanako" not in dumped and "1990" not in dumped
    assert (row.age_band, row.lifecycle, row.order_count) == ("30s", "repeat", 2)
    assert row.cell() == '["Loyal","Silver","Kanto","30s",null,null]'
    totals = cells([row, row_for(customer("b"), NOW, KizunaConfig())])
    # first order 30 days before: a new buyer, who ordered again
    assert totals[row.cell()] == CellTotals(
        customers=1,
        buyers=1,
        repeaters=1,
        new_buyers=1,
        new_repeaters=1,
        spend_12m=Decimal("2000.0"),
        lifetime_value=Decimal(0),
    )
    assert totals["[null,null,null,null,null,null]"].customers == 1
    merged = merge_cells([totals, totals])
    assert merged[row.cell()].customers == 2


class Objects:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.files[key] = body

    def get(self, key: str) -> bytes | None:
        return self.files.get(key)


class Catalog:
    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self.items = {i["product_id"]: dict(i) for i in items}
        self.writes: list[dict[str, Any]] = []

    def scan_products(self) -> Iterator[dict[str, Any]]:
        yield from (dict(i) for i in self.items.values())

    def set_related(self, product_id: str, related: list[dict[str, Any]], day: str) -> None:
        self.writes.append({"product_id": product_id, "related": related})
        self.items[product_id] |= {"related": related, "related_at": day}

    def put_product(self, item: dict[str, Any]) -> None:
        self.writes.append(item)
        self.items[item["product_id"]] = item

    def upsert_catalog(self, records: Iterable[ProductRecord]) -> int:
        n = 0
        for r in records:
            self.items.setdefault(r.product_id, {"product_id": r.product_id}).update(
                name=r.name, url=r.url
            )
            n += 1
        return n


class Cells:
    """The snapshots table as ``SnapshotStore`` keeps it: a put replaces the whole day
    (tests/integration/test_scoring_snapshots_moto.py checks the real store does)."""

    def __init__(self) -> None:
        self.days: dict[str, dict[str, dict[str, Any]]] = {}

    def put_cells(self, day: str, cells: dict[str, dict[str, Any]]) -> int:
        self.days[day] = cells
        return len(cells)


def catalog_of(*ids: str) -> Catalog:
    return Catalog(
        {"product_id": p, "name": p.upper(), "url": f"https://shop.example/p/{p}"} for p in ids
    )


def test_finish_adds_shards_up_and_writes_only_what_changed() -> None:
    objects, catalog, snapshots = Objects(), catalog_of("x", "y", "z"), Cells()
    cfg = KizunaConfig()
    shards = [
        [customer("a", ["x", "y"]), customer("b", ["x", "y", "q"])],  # q: not in catalogue
        [customer("c", ["x", "z"]), customer("d", ["x", "z"]), customer("e")],
    ]
    for segment, customers in enumerate(shards):
        rows = [row_for(c, NOW, cfg) for c in customers]
        write_work_files(objects, segment, NOW, rows, count(customers))
    request = FinishRequest(total_segments=2, as_of=NOW)

    result = finish_run(request, objects, catalog, snapshots)

    assert result.customers == 5 and result.date == "2026-03-01"
    assert sum(c["customers"] for c in snapshots.days["2026-03-01"].values()) == 5
    x = catalog.items["x"]["related"]
    assert [(r["product_id"], r["name"], r["together"]) for r in x] == [
        ("y", "Y", 2),
        ("z", "Z", 2),
    ]
    # q has no catalogue entry (no name): never recommended, not even as a best seller
    assert all(r["product_id"] != "q" for p in catalog.items.values() for r in p.get("related", []))
    assert [p["product_id"] for p in catalog.items[BEST_SELLERS_KEY]["products"]] == ["x", "y", "z"]
    assert result.products_written == 4  # x, y, z and the best sellers

    # a second finish over the same work files changes nothing: nothing is written
    catalog.writes.clear()
    again = finish_run(request, objects, catalog, snapshots)
    assert again.products_written == 0 and catalog.writes == []
    # the export is one JSON line per customer, per shard
    lines = objects.files[snapshot_key("2026-03-01", 1)].decode().splitlines()
    assert sorted(json.loads(line)["customer_id"] for line in lines) == ["c", "d", "e"]


def test_finish_fails_loudly_when_a_shard_file_is_missing() -> None:
    objects = Objects()
    write_work_files(objects, 0, NOW, [], CoPurchase())
    with pytest.raises(RuntimeError, match=r"missing for segments \[1\]"):
        finish_run(FinishRequest(total_segments=2, as_of=NOW), objects, catalog_of(), Cells())
    assert work_key("2026-03-01", "cells", 0) in objects.files


def test_catalogue_import_validates_rows(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text(
        "product_id,name,url,category\n"
        "tea-001,Sencha,https://shop.example/p/tea-001,tea\n"
        "bad id,Nope,https://shop.example/p/x,tea\n"
        "tea-002,,https://shop.example/p/tea-002,tea\n"
        "tea-003,Genmai,ftp://shop.example/p/tea-003,tea\n"
        "tea-004,Sencha Premium,https://shop.example/p/tea-004,tea\n",
        encoding="utf-8",
    )
    store = catalog_of()
    assert import_products(path, store).customers_written == 0  # a rejected row: none written
    report = import_products(path, store, partial=True)
    assert (report.rows, report.imported, report.rejected) == (5, 2, 3)
    assert [e.row for e in report.errors] == [3, 4, 5]
    assert "product_id" in report.errors[0].error and "name" in report.errors[1].error
    assert store.items["tea-004"]["name"] == "Sencha Premium"
    assert import_products(path, None).customers_written == 0  # dry run writes nothing


def test_renderer_knows_which_templates_read_recommendations(tmp_path: Path) -> None:
    base = tmp_path / "_base" / "en"
    base.mkdir(parents=True)
    (base / "layout.txt.j2").write_text("{% block content %}{% endblock %}{{ recommendations }}")
    for template, body in (
        ("plain", "Hello {{ customer.display_name }}"),
        ("direct", "{% for r in recommendations %}{{ r.name }}{% endfor %}"),
        ("inherited", '{% extends "_base/en/layout.txt.j2" %}{% block content %}x{% endblock %}'),
    ):
        folder = tmp_path / "p" / template / "en"
        folder.mkdir(parents=True)
        (folder / "sms.txt.j2").write_text(body)
    renderer = Renderer(tmp_path)
    assert not renderer.uses("p", "plain", "recommendations")
    assert renderer.uses("p", "direct", "recommendations")
    assert renderer.uses("p", "inherited", "recommendations")
    assert renderer.uses("p", "missing", "recommendations")  # let render() report it
    # the shipped post-purchase template does; the coupon does not
    shipped = Renderer()
    assert shipped.uses("post-purchase-recommendation", "recommendations", "recommendations")
    assert not shipped.uses("second-purchase-coupon", "coupon", "recommendations")


def test_s3_objects_answers_none_for_a_missing_key_and_lists_by_prefix() -> None:
    import boto3
    from moto import mock_aws

    from kizuna.adapters.s3 import S3Objects

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="analytics")
        objects = S3Objects(s3, "analytics")
        assert objects.get(work_key("2026-03-01", "cells", 0)) is None
        objects.put(work_key("2026-03-01", "cells", 1), b"{}")
        objects.put(snapshot_key("2026-03-01", 0), b"", "application/x-ndjson")
        assert objects.get(work_key("2026-03-01", "cells", 1)) == b"{}"
        assert objects.keys("work/") == ["work/date=2026-03-01/cells/part-0001.json"]


def test_finish_without_the_analytics_bucket_is_a_clear_error() -> None:
    from kizuna.runtime.clock import FixedClock
    from kizuna.scoring.job import ScoringRequest, run_scoring
    from kizuna_tools.fakes import MemoryPublisher, MemoryStore

    request = ScoringRequest.model_validate(
        {"action": "finish", "total_segments": 2, "as_of": NOW.isoformat()}
    )
    with pytest.raises(RuntimeError, match="analytics bucket"):
        run_scoring(request, MemoryStore(), MemoryPublisher(), KizunaConfig(), FixedClock(NOW))  # type: ignore[arg-type]


def test_the_snapshot_carries_declared_attributes_reports_break_down_by() -> None:
    # Given declarations of every kind, and a customer with a value for each
    cfg = KizunaConfig.model_validate(
        {
            "custom": {
                "attributes": [
                    {"name": "tier", "type": "string", "enum": ["standard", "vip"]},
                    {"name": "newsletter", "type": "boolean"},
                    {"name": "store", "type": "string"},
                    {"name": "shoe_size", "type": "number"},
                    {"name": "secret_tier", "type": "string", "enum": ["a", "b"], "personal": True},
                    {"name": "unset", "type": "boolean"},
                ]
            }
        }
    )
    c = customer("a", ["p1"]).model_copy(
        update={
            "attributes": {
                "tier": "vip",
                "newsletter": False,
                "store": "銀座本店",
                "shoe_size": Decimal("24.5"),
                "secret_tier": "b",
            }
        }
    )
    # When the snapshot row is taken
    row = row_for(c, NOW, cfg)
    # Then only the non-personal enums and booleans are kept, as text; the rest never leaves
    assert row.attributes == {"tier": "vip", "newsletter": "false"}
    assert "銀座本店" not in row.model_dump_json()
    # and without declarations the row has none
    assert row_for(c, NOW, KizunaConfig()).attributes == {}
