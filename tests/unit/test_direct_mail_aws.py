"""Direct mail's AWS adapters on moto: the collected rows in the activity table (one Query of
gsi1 per day, a retried put writes the same item, other days and other items not read), the
``dm.file_ready`` event (source ``kizuna``, refused entries raise), and the daily sweep's
direct-mail task writing yesterday's files into a bucket."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.dynamodb import DM_ROW_DAYS, DynamoStore
from kizuna.adapters.eventbridge import EventBridgePublisher
from kizuna.adapters.s3 import S3Objects
from kizuna.delivery.direct_mail import DmRow
from kizuna.domain.customer import PostalAddress
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.direct_mail import write_previous_day
from kizuna.services.sweep import SweepFailed, SweepRequest, run_sweep
from tests import factories
from tests.factories import opted_in
from tests.moto_setup import create_activity_table, create_table

REGION = "us-east-1"
DAY = date(2026, 1, 5)
ADDRESS = PostalAddress(
    recipient_name="山田 花子",
    postal_code="150-0001",
    region="東京都",
    locality="渋谷区神宮前",
    line1="1-2-3",
)


def row(cid: str, day: date = DAY, execution: str = "ex1", template: str = "postcard") -> DmRow:
    return DmRow(
        day=day,
        program="winback",
        template=template,
        customer_id=cid,
        execution=execution,
        step="mail",
        address=ADDRESS,
        lines=(f"{cid} 様", "15% OFF"),
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "customers", "customer_id")
        create_activity_table(client)
        yield DynamoStore(boto3.resource("dynamodb", region_name=REGION), "customers", "activity")


def test_rows_are_put_once_per_send_and_read_by_day(aws: DynamoStore) -> None:
    store = aws
    store.put_dm_row(row("c2"))
    store.put_dm_row(row("c1"))
    store.put_dm_row(row("c1"))  # a retried send: the same item
    store.put_dm_row(row("c3", day=DAY + timedelta(days=1)))
    # the day's rows, whole (address and lines), and no other day's
    found = sorted(store.dm_rows(DAY), key=lambda r: r.customer_id)
    assert found == [row("c1"), row("c2")]
    assert [r.customer_id for r in store.dm_rows(DAY + timedelta(days=1))] == ["c3"]
    assert store.dm_rows(DAY - timedelta(days=1)) == []
    # in the customer's partition (erased with it), expiring a month after its day
    table = boto3.resource("dynamodb", region_name=REGION).Table("activity")
    item = table.get_item(Key={"pk": "c1", "sk": "DM#ex1#mail"})["Item"]
    assert item["gsi1pk"] == "DMDAY#2026-01-05"
    day_start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    assert int(item["expires_at"]) == day_start + DM_ROW_DAYS * 86_400
    assert len(table.scan()["Items"]) == 3


def test_a_customers_rows_go_with_the_activity_partition(aws: DynamoStore) -> None:
    store = aws
    store.put_dm_row(row("c1"))
    store.put_dm_row(row("c2"))
    store.delete_activity("c1", ["DM#ex1#mail"])
    assert [r.customer_id for r in store.dm_rows(DAY)] == ["c2"]


def test_a_row_a_later_version_wrote_with_a_new_key_is_still_read(aws: DynamoStore) -> None:
    # given a row whose item a later version wrote with keys this one does not know, at the
    # top and in the address (a deploy rolling out, a rollback)
    store = aws
    store.put_dm_row(row("c1"))
    table = boto3.resource("dynamodb", region_name=REGION).Table("activity")
    table.update_item(
        Key={"pk": "c1", "sk": "DM#ex1#mail"},
        UpdateExpression="SET address.building_code = :v, print_priority = :v",
        ExpressionAttributeValues={":v": "later"},
    )
    # then the print job still reads it, without them
    assert store.dm_rows(DAY) == [row("c1")]


def bus_with_queue() -> tuple[Any, str]:
    events, sqs = (
        boto3.client("events", region_name=REGION),
        boto3.client("sqs", region_name=REGION),
    )
    events.create_event_bus(Name="kizuna")
    url = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="kizuna", EventPattern=json.dumps({"source": ["kizuna"]})
    )
    events.put_targets(Rule="all", EventBusName="kizuna", Targets=[{"Id": "q", "Arn": arn}])
    return events, url


def manifest(**over: Any) -> dict[str, Any]:
    return {
        "file": "dm/date=2026-01-05/winback/postcard.csv",
        "rows": 2,
        "sha256": "a" * 64,
        "program": "winback",
        "template": "postcard",
        "date": "2026-01-05",
        "columns": ["customer_id"],
        "encoding": "utf-8",
        **over,
    }


def test_file_ready_is_put_as_kizuna_with_the_manifest(aws: DynamoStore) -> None:
    events, url = bus_with_queue()
    EventBridgePublisher(events, "kizuna").put_file_ready(manifest())
    [message] = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=url)["Messages"]
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("kizuna", "dm.file_ready")
    assert event["detail"] == {**manifest(), "schema_version": 1}
    # a malformed manifest is never announced
    with pytest.raises(ValueError, match="sha256"):
        EventBridgePublisher(events, "kizuna").put_file_ready(manifest(sha256="nope"))


def test_a_refused_entry_raises() -> None:
    class Refusing:
        def put_events(self, **_: Any) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException"}]}

    with pytest.raises(RuntimeError, match="AccessDeniedException"):
        EventBridgePublisher(Refusing(), "kizuna").put_file_ready(manifest())


def test_the_daily_sweep_writes_yesterdays_files(aws: DynamoStore) -> None:
    store = aws
    events, url = bus_with_queue()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="print")
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    s3.put_bucket_encryption(
        Bucket="print",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    }
                }
            ]
        },
    )
    store.put_dm_row(row("c1"))
    store.put_dm_row(row("c2", template="card"))
    store.put_dm_row(row("c3", day=DAY + timedelta(days=1)))  # today's: not yet
    for cid in ("c1", "c2", "c3"):  # read again at print time: still opted in
        store.save_customer(
            factories.customer(cid, consent=opted_in("dm"), postal_address=ADDRESS), 0
        )
    publisher = EventBridgePublisher(events, "kizuna")

    files = S3Objects(s3, "print", server_side_encryption=None)  # the bucket's KMS key

    def job(now: datetime) -> int:
        return write_previous_day(
            now,
            "Asia/Tokyo",
            store,
            files,
            publisher,
            customers=store,
            preferences=KizunaConfig().preferences,
            ledger=store,
        )

    class Watermarks:
        def sweep_watermark(self, kind: Any) -> None:
            return None

        def save_sweep_watermark(self, kind: Any, mark: Any) -> None:
            raise AssertionError("no kind swept")

    # 01:00 in Tokyo on the 6th: the 5th is printed
    now = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    request = SweepRequest.model_validate({"lookback_minutes": 1440, "direct_mail": True})
    counts = run_sweep(
        request,
        store,  # type: ignore[arg-type]
        Watermarks(),  # type: ignore[arg-type]
        publisher,
        KizunaConfig(),
        FixedClock(now),
        direct_mail=job,
    )
    assert counts == {"dm_files": 2}
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="print")["Contents"])
    assert keys == [
        "dm/date=2026-01-05/winback/card.csv",
        "dm/date=2026-01-05/winback/card.manifest.json",
        "dm/date=2026-01-05/winback/postcard.csv",
        "dm/date=2026-01-05/winback/postcard.manifest.json",
    ]
    # encrypted with the bucket's own key, not S3's (no AES256 header overrides it)
    head = s3.head_object(Bucket="print", Key=keys[2])
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["detail"]["template"] for m in got) == ["card", "postcard"]
    # a retry of the same run writes nothing more
    assert job(now) == 0
    # a request that names nothing to do is refused
    with pytest.raises(ValueError, match="kinds"):
        SweepRequest.model_validate({"lookback_minutes": 60})

    # a failing task fails the sweep (Lambda retries it), after the other work
    def broken(now: datetime) -> int:
        raise OSError("s3 down")

    with pytest.raises(SweepFailed, match="direct_mail: OSError"):
        run_sweep(
            request,
            store,  # type: ignore[arg-type]
            Watermarks(),  # type: ignore[arg-type]
            publisher,
            KizunaConfig(),
            FixedClock(now),
            direct_mail=broken,
        )
