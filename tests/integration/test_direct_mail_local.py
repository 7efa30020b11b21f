"""Direct mail on the local runtime (real template, virtual clock): the win-back coupon goes
by postcard to a customer with an address and dm consent, by email to the others; the next
daily sweep writes the day's print file and manifest to the print-file bucket and puts
``dm.file_ready``; erasure removes the customer's collected rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest

from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna_tools.local.app import default_project_root
from kizuna_tools.local.cloud import LocalCloud

pytestmark = pytest.mark.integration

PROGRAM = {p.id: p for p in load_programs(default_project_root() / "programs")[0]}[
    "winback-before-dormancy"
]
ADDRESS = {
    "recipient_name": "山田 花子",
    "postal_code": "150-0001",
    "country": "JP",
    "region": "東京都",
    "locality": "渋谷区神宮前",
    "line1": "=1-2-3",  # a formula start: printed as text
}


def treated(prefix: str, n: int) -> list[str]:
    ids = (f"{prefix}{i}" for i in range(500) if not in_holdout(PROGRAM, f"{prefix}{i}"))
    return [next(ids) for _ in range(n)]


def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    cloud.put_events([{"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}])
    cloud.drain()


def customer(cloud: LocalCloud, cid: str, *, address: bool, dm: bool) -> None:
    profile: dict[str, Any] = {
        "customer_id": cid,
        "email": f"{cid}@example.jp",
        "first_name": "花子",
        "last_name": "山田",
        "locale": "ja",
        "time_zone": "Asia/Tokyo",
    }
    if address:
        profile["postal_address"] = ADDRESS
    put(cloud, "customer.upserted", profile)
    for channel in ("email", "dm") if dm else ("email",):
        put(
            cloud, "consent.changed", {"customer_id": cid, "channel": channel, "status": "opted_in"}
        )
    put(
        cloud,
        "order.placed",
        {
            "customer_id": cid,
            "order_id": f"o-{cid}",
            "total": "2000",
            "currency": "JPY",
            "channel": "web",
            "lines": [{"product_id": "tea-009", "quantity": 1, "unit_price": "2000"}],
        },
    )


def activity(cloud: LocalCloud) -> list[dict[str, Any]]:
    return cloud.scan(cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id)


def coupon_channels(cloud: LocalCloud, cid: str) -> list[str]:
    """The channels the win-back coupon went out on."""
    return [
        str(i["channel"])
        for i in activity(cloud)
        if i["pk"] == cid
        and i.get("kind") == "MSG"
        and (i.get("program"), i.get("step")) == (PROGRAM.id, "coupon")
        and i.get("status") == "sent"
    ]


def file_ready_queue(cloud: LocalCloud) -> str:
    """An SQS queue a rule on the Kizuna bus fills with ``dm.file_ready`` (as a vendor's
    integration would subscribe)."""
    sqs, events = cloud.client("sqs"), cloud.client("events")
    url = sqs.create_queue(QueueName="vendor-file-ready")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus = cloud.bus_names()[0]
    events.put_rule(
        Name="vendor-file-ready",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["kizuna"], "detail-type": ["dm.file_ready"]}),
    )
    events.put_targets(
        Rule="vendor-file-ready", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}]
    )
    return str(url)


def test_a_dm_step_collects_and_the_daily_sweep_prints(cloud: LocalCloud) -> None:
    queue = file_ready_queue(cloud)
    mailed, no_consent, no_address = treated("dm", 3)
    # given customers with address and consent, without consent, without an address
    customer(cloud, mailed, address=True, dm=True)
    customer(cloud, no_consent, address=True, dm=False)
    customer(cloud, no_address, address=False, dm=True)

    # when they reach dormancy risk (demo: 21 days) and the win-back coupon goes out, and the
    # next day's daily sweep runs
    cloud.advance(days=23)

    # then the first got a postcard, the others an email (dm passed over, with its reason)
    rows = [i for i in activity(cloud) if str(i["sk"]).startswith("DM#")]
    assert [r["pk"] for r in rows] == [mailed]
    assert coupon_channels(cloud, mailed) == ["dm"]
    assert coupon_channels(cloud, no_consent) == ["email"]
    assert coupon_channels(cloud, no_address) == ["email"]
    day = rows[0]["day"]

    # and the print file and its manifest are in the print-file bucket
    s3 = cloud.client("s3")
    [bucket] = [b.name for b in cloud.find("AWS::S3::Bucket", "PrintFiles")]
    key = f"dm/date={day}/winback-before-dormancy/winback.csv"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    [header, row] = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    record = dict(zip(header, row, strict=True))
    assert record["customer_id"] == mailed
    assert record["recipient_name"] == "山田 花子"
    assert record["line1"] == "'=1-2-3"
    assert record["line_1"] == "山田 花子様"
    assert "OFF" in record["line_3"]
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=key.removesuffix(".csv") + ".manifest.json")["Body"].read()
    )
    assert manifest["rows"] == 1
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()

    # and dm.file_ready was put on the bus, source kizuna, with the manifest
    messages = cloud.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    events = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert [(e["source"], e["detail-type"]) for e in events] == [("kizuna", "dm.file_ready")]
    assert events[0]["detail"]["sha256"] == manifest["sha256"]
    assert events[0]["detail"]["file"] == key
    assert cloud.summary()["errors"] == []

    # when the next daily sweeps run, nothing is written again for that day
    versions = s3.list_objects_v2(Bucket=bucket, Prefix="dm/")["KeyCount"]
    cloud.advance(days=1)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="dm/")["KeyCount"] == versions
    again = cloud.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    assert again.get("Messages", []) == []

    # when the mailed customer is erased, their collected row goes with them
    put(cloud, "customer.erase", {"customer_id": mailed, "request_id": "dsr-dm"})
    assert not [i for i in activity(cloud) if str(i["sk"]).startswith("DM#")]
