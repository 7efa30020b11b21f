"""The same order gives the same rank sent as an event to the local stack (as ``kizuna local
serve`` runs it) and imported into it with ``kizuna import``: one configuration, found the
same way by both."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from kizuna.adapters.dynamodb import DynamoStore
from kizuna_tools.cli import app
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.template import REGION
from kizuna_tools.project import project_config
from tests.integration.conftest import START

pytestmark = pytest.mark.integration


def test_an_order_gets_the_same_rank_as_an_event_and_as_an_import(
    cloud: LocalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local stack with the project's configuration, and no other configuration set
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = project_config().config
    silver = next(r for r in cfg.loyalty.ranks if r.name == "Silver")
    total = int(silver.min_points / cfg.loyalty.earn_rate)  # just enough for Silver
    at = (START + timedelta(hours=1)).isoformat()
    detail = {
        "customer_id": "by-event",
        "occurred_at": at,
        "order_id": "o-event",
        "lines": [{"product_id": "tea-001", "quantity": 1, "unit_price": str(total)}],
        "total": str(total),
        "currency": "JPY",
        "channel": "web",
    }
    # When the order arrives as an event
    cloud.put_events(
        [{"Source": "shop", "DetailType": "order.placed", "Detail": json.dumps(detail)}]
    )
    cloud.drain()
    # and the same order (another customer) is imported with `kizuna import orders`
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,product_id,quantity,unit_price,total,currency,channel\n"
        f"o-import,by-import,{at},tea-001,1,{total},{total},JPY,web\n"
    )
    customers, activity = cloud.outputs["CustomersTableName"], cloud.outputs["ActivityTableName"]
    result = CliRunner().invoke(
        app,
        [
            "import",
            "orders",
            str(orders),
            "--customers-table",
            customers,
            "--activity-table",
            activity,
            "--region",
            REGION,
        ],
    )
    assert result.exit_code == 0, result.output
    # Then both customers have the same rank: Silver
    store = DynamoStore(boto3.resource("dynamodb", region_name=REGION), customers, activity)
    by_event, by_import = store.get_customer("by-event"), store.get_customer("by-import")
    assert by_event is not None and by_import is not None
    assert (by_event.rank, by_import.rank) == ("Silver", "Silver")
