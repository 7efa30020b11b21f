"""What the campaign and segment API tests share: the campaigns table, the activity table's
ledger index, the campaigns' Scheduler group, and customers (repeat buyers and others) on
moto, with the app's clock fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from kizuna.adapters.campaigns import CampaignStore
from kizuna.adapters.dynamodb import customer_to_item
from kizuna.adapters.scheduler import CampaignSchedules
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.config import KizunaConfig
from tests.factories import envelope, order, parsed, upsert
from tests.integration.api.harness import REGION, Api

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
GROUP = "kizuna-campaigns"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:campaign"
ROLE = "arn:aws:iam::123456789012:role/campaign-scheduler"
CFG = KizunaConfig()


def shopper(i: int, *, repeat: bool = True, locale: str = "ja") -> Customer:
    """Customer ``s0i``: opted in to email; two orders (a repeat buyer) or none."""
    cid = f"s{i:02d}"
    start = NOW - timedelta(days=60)
    events = [
        upsert(
            cid,
            start,
            f"{cid}-up",
            email=f"{cid}@example.jp",
            first_name="花子" if locale == "ja" else "Hanako",
            locale=locale,
            time_zone="Asia/Tokyo",
        ),
        envelope(
            "consent.changed",
            {
                "customer_id": cid,
                "occurred_at": (start + timedelta(hours=1)).isoformat(),
                "channel": "email",
                "status": "opted_in",
            },
            f"{cid}-consent",
        ),
    ]
    if repeat:
        events += [
            order(cid, f"{cid}-o1", 3000, NOW - timedelta(days=30)),
            order(cid, f"{cid}-o2", 2000, NOW - timedelta(days=10)),
        ]
    return apply_events(Customer(customer_id=cid), [parsed(e) for e in events], CFG, NOW).customer


SHOPPERS = [shopper(i, repeat=i < 6, locale="en" if i % 2 else "ja") for i in range(10)]
REPEAT_BUYERS = sorted(c.customer_id for c in SHOPPERS[:6])


def prepare_campaigns(api: Api) -> Api:
    """The campaigns table, the ledger index, the schedule group and the shoppers; the
    app's deps get the campaign store, the schedules, the repository's folders, a fixed
    clock."""
    client = boto3.client("dynamodb", region_name=REGION)
    client.update_table(
        TableName="activity",
        AttributeDefinitions=[
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    )
    client.create_table(
        TableName="campaigns",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "campaign_id", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "campaign_id", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    scheduler = boto3.client("scheduler", region_name=REGION)
    scheduler.create_schedule_group(Name=GROUP)
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    customers = dynamodb.Table("customers")
    for c in SHOPPERS:
        customers.put_item(Item=customer_to_item(c.model_copy(update={"version": 1})))
    d = api.deps
    d.campaigns = CampaignStore(dynamodb, "campaigns", sleep=lambda _: None)
    d.campaign_schedules = CampaignSchedules(scheduler, GROUP, STATE_MACHINE, ROLE)
    d.segments_dir = REPO_ROOT / "segments"
    d.templates_dir = REPO_ROOT / "templates"
    d.programs_dir = REPO_ROOT / "programs"
    d.now = lambda: NOW
    return api


def winter_sale(**fields: Any) -> dict[str, Any]:
    """A draft campaign to the repeat buyers, two days from now, by email else LINE, with
    two variants on the month-end sale's templates."""
    definition: dict[str, Any] = {
        "id": "winter-sale",
        "name": "Winter sale",
        "audience": {"segments": ["repeat-buyers"]},
        "schedule": {"type": "once", "at": (NOW + timedelta(days=2)).isoformat()},
        "channels": ["email", "line"],
        "template": "sale",
        "coupon": {"discount": "10%", "valid_days": 3},
        "variants": [
            {"name": "a", "weight": 50},
            {"name": "b", "weight": 50, "template": "sale_urgent"},
        ],
        "holdout_percent": 10,
    }
    return {**definition, **fields}


SOURCES = {"sale": "month-end-sale/sale", "sale_urgent": "month-end-sale/sale_urgent"}
