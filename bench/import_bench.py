"""Bulk import of order history: rows/s and DynamoDB API calls and writes per order.

Baseline in the same run: the naive path, one order at a time as the bus would deliver it
(read customer, conditional write, one activity write per order).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import moto_tables, print_table
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import ingest_one
from kizuna_tools.importer import import_file
from kizuna_tools.metering import ApiCallCounter

START = datetime(2024, 1, 1, tzinfo=UTC)


def synthetic_orders(n_orders: int, n_customers: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    orders = []
    for i in range(n_orders):
        cid = f"c{rng.randrange(n_customers):07d}"
        at = START + timedelta(minutes=rng.randrange(60 * 24 * 700))
        price = rng.choice([980, 1800, 2400, 3600, 6400, 12000])
        qty = rng.randint(1, 3)
        orders.append(
            {
                "order_id": f"o{i:08d}",
                "customer_id": cid,
                "ordered_at": at.isoformat(),
                "lines": [
                    {
                        "product_id": f"p{rng.randrange(300)}",
                        "category": "tea",
                        "quantity": qty,
                        "unit_price": str(price),
                    }
                ],
                "total": str(price * qty),
                "currency": "JPY",
                "channel": rng.choice(["web", "app", "store"]),
            }
        )
    return orders


def per_order(counter: ApiCallCounter, orders: int) -> dict[str, float]:
    writes = counter.calls[("dynamodb", "PutItem")]
    return {
        "calls_per_order": counter.total("dynamodb") / orders,
        "put_item_per_order": writes / orders,
        "batch_write_per_order": counter.calls[("dynamodb", "BatchWriteItem")] / orders,
    }


def run(n_orders: int, baseline_orders: int) -> dict[str, Any]:
    n_customers = max(1, n_orders // 5)
    orders = synthetic_orders(n_orders, n_customers)
    cfg = KizunaConfig()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.jsonl"
        path.write_text("".join(json.dumps(o) + "\n" for o in orders))
        with moto_tables() as session:
            counter = ApiCallCounter().attach(session.events)
            store = DynamoStore(session.resource("dynamodb"), "customers", "activity")
            t0 = time.perf_counter()
            report = import_file("orders", path, store, cfg, now)
            wall = time.perf_counter() - t0
            assert report.rejected == 0, report.errors[:3]
            # activity items written (each order's ORDER item) + customer items
            item_writes = n_orders + report.customers_written
            results["import"] = {
                "orders": n_orders,
                "customers": report.customers_written,
                "seconds": wall,
                "rows_per_s": n_orders / wall,
                "item_writes_per_order": item_writes / n_orders,
                **per_order(counter, n_orders),
                "calls": {f"{s}.{o}": n for (s, o), n in sorted(counter.calls.items())},
            }
        # baseline: one order at a time (what sending history through the bus would cost)
        with moto_tables() as session:
            counter = ApiCallCounter().attach(session.events)
            store = DynamoStore(session.resource("dynamodb"), "customers", "activity")
            sample = orders[:baseline_orders]
            t0 = time.perf_counter()
            clock = FixedClock(now)
            for i, o in enumerate(sample):
                detail = {k: v for k, v in o.items() if k != "ordered_at"}
                detail["occurred_at"] = o["ordered_at"]
                ev = parse_inbound(
                    {
                        "id": f"e{i}",
                        "detail-type": "order.placed",
                        "source": "bench",
                        "time": o["ordered_at"],
                        "detail": detail,
                    }
                )
                store.put_activity(ingest_one(store, ev, cfg, clock).activity)
            wall = time.perf_counter() - t0
            results["one_by_one"] = {
                "orders": len(sample),
                "seconds": wall,
                "rows_per_s": len(sample) / wall,
                "item_writes_per_order": 2.0,
                **per_order(counter, len(sample)),
            }
    rows = [
        [
            name,
            r["orders"],
            f"{r['rows_per_s']:.0f}",
            f"{r['calls_per_order']:.3f}",
            f"{r['put_item_per_order']:.3f}",
            f"{r['batch_write_per_order']:.3f}",
            f"{r['item_writes_per_order']:.2f}",
        ]
        for name, r in results.items()
    ]
    print_table(
        "Bulk import of order history (moto, in-process)",
        [
            "path",
            "orders",
            "rows/s",
            "DynamoDB calls/order",
            "PutItem/order",
            "BatchWriteItem/order",
            "item writes/order",
        ],
        rows,
    )
    return results


if __name__ == "__main__":
    run(100_000, 5_000)
