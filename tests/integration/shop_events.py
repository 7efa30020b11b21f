"""Driving a fixture project's local cloud as a shop does, and reading back a program's rows:
shared by the local tests of one program each (engagement branches, LINE clicks, webhooks)."""

from __future__ import annotations

from typing import Any

from kizuna_tools.local.cloud import LocalCloud


def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    """Put one of the shop's events on the bus, occurring now (not drained)."""
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    cloud.put_events([{"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}])


def place_first_order(cloud: LocalCloud, cid: str) -> None:
    """``cid``'s first order (one tea, 3000 JPY, on the web), drained."""
    line = {"product_id": "tea-009", "category": "tea", "quantity": 1, "unit_price": "3000"}
    put(
        cloud,
        "order.placed",
        {
            "customer_id": cid,
            "order_id": f"{cid}-1",
            "total": "3000",
            "currency": "JPY",
            "channel": "web",
            "lines": [line],
        },
    )
    cloud.drain()


def first_order(cloud: LocalCloud, cid: str) -> None:
    """A customer in Tokyo reading English, with email and a linked LINE account (both
    opted in), places their first order."""
    put(
        cloud,
        "customer.upserted",
        {
            "customer_id": cid,
            "email": f"{cid}@example.jp",
            "first_name": "Hana",
            "locale": "en",
            "time_zone": "Asia/Tokyo",
        },
    )
    put(cloud, "line.linked", {"customer_id": cid, "line_user_id": "U" + cid.ljust(32, "0")})
    for channel in ("email", "line"):
        put(
            cloud, "consent.changed", {"customer_id": cid, "channel": channel, "status": "opted_in"}
        )
    cloud.drain()
    place_first_order(cloud, cid)


def program_rows(
    cloud: LocalCloud, program: str, kind: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """``program``'s ``kind`` rows (MSG, STEP) by (customer, step)."""
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    return {
        (str(i["pk"]), str(i["step"])): i
        for i in cloud.scan(table)
        if i.get("kind") == kind and i.get("program") == program
    }
