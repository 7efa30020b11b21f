"""The analytics bucket's adapter on moto: campaign manifest objects carry the lifecycle tag;
an occurrence's prefix is deleted a thousand keys a call, its neighbours untouched, and a key
S3 refuses to delete is an error, not a silent leftover."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.s3 import DELETE_BATCH, S3Objects
from kizuna.campaigns.engine import occurrence_prefix
from kizuna.ports import ManifestNotDeleted
from kizuna.runtime.settings import CAMPAIGN_MANIFEST_TAG_KEY, CAMPAIGN_MANIFEST_TAG_VALUE

REGION = "us-east-1"
BUCKET = "analytics"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_a_manifest_object_carries_the_lifecycle_tag_and_a_plain_put_none(s3: Any) -> None:
    objects = S3Objects(s3, BUCKET)
    objects.put_lines("campaigns/sale/o1/pass-0/main/a.jsonl", [{"c": "c001"}])
    objects.put("reports/r.json", b"{}")
    tags = s3.get_object_tagging(Bucket=BUCKET, Key="campaigns/sale/o1/pass-0/main/a.jsonl")
    assert tags["TagSet"] == [
        {"Key": CAMPAIGN_MANIFEST_TAG_KEY, "Value": CAMPAIGN_MANIFEST_TAG_VALUE}
    ]
    assert s3.get_object_tagging(Bucket=BUCKET, Key="reports/r.json")["TagSet"] == []
    assert objects.get_lines("campaigns/sale/o1/pass-0/main/a.jsonl") == [{"c": "c001"}]
    assert objects.get_lines("campaigns/sale/o1/pass-0/main/b.jsonl") is None  # no such object


def test_an_occurrence_is_deleted_in_batches_and_its_neighbours_are_kept(s3: Any) -> None:
    # given more objects than one DeleteObjects call takes, and neighbours sharing a stem
    objects = S3Objects(s3, BUCKET)
    prefix = occurrence_prefix("sale", "o1")
    for n in range(DELETE_BATCH + 1):
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}pass-0/main/{n:05d}.jsonl", Body=b"{}\n")
    kept = ["campaigns/sale/list.csv", "campaigns/sale/o10/pass-0/main/a.jsonl"]
    for key in kept:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    calls: list[int] = []
    real = s3.delete_objects

    def counted(**params: Any) -> Any:
        calls.append(len(params["Delete"]["Objects"]))
        return real(**params)

    s3.delete_objects = counted
    # when
    deleted = objects.delete_prefix(prefix)
    # then: two calls, everything under the occurrence gone, nothing else
    assert deleted == DELETE_BATCH + 1 and calls == [DELETE_BATCH, 1]
    assert objects.keys("campaigns/") == sorted(kept)
    # and a retry finds nothing to delete
    assert objects.delete_prefix(prefix) == 0 and calls == [DELETE_BATCH, 1]


def test_a_key_s3_refuses_to_delete_raises(s3: Any) -> None:
    objects = S3Objects(s3, BUCKET, sleep=lambda _: None)
    s3.put_object(Bucket=BUCKET, Key="campaigns/sale/o1/a.jsonl", Body=b"{}\n")
    calls: list[list[str]] = []

    def refused(**params: Any) -> Any:
        calls.append([o["Key"] for o in params["Delete"]["Objects"]])
        return {"Errors": [{"Key": "campaigns/sale/o1/a.jsonl", "Code": "AccessDenied"}]}

    s3.delete_objects = refused
    with pytest.raises(
        ManifestNotDeleted, match="1 of 1 objects not deleted: \\['AccessDenied'\\]"
    ):
        objects.delete_prefix("campaigns/sale/o1/")
    assert len(calls) == 1  # refused is not tried again


def test_keys_failing_inside_a_200_answer_are_tried_again_alone(s3: Any) -> None:
    # given DeleteObjects answering InternalError for one key, twice, then deleting it
    objects = S3Objects(s3, BUCKET, sleep=lambda _: None)
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=BUCKET, Key=f"campaigns/sale/o1/{name}.jsonl", Body=b"{}\n")
    real, calls = s3.delete_objects, []

    def flaky(**params: Any) -> Any:
        keys = [o["Key"] for o in params["Delete"]["Objects"]]
        calls.append(keys)
        if len(calls) <= 2:
            others = [{"Key": k} for k in keys if "/b." not in k]
            if others:
                real(Bucket=BUCKET, Delete={"Objects": others})
            return {"Errors": [{"Key": "campaigns/sale/o1/b.jsonl", "Code": "InternalError"}]}
        return real(**params)

    s3.delete_objects = flaky
    # when
    assert objects.delete_prefix("campaigns/sale/o1/") == 3
    # then: the failed key alone was tried again until it went
    assert calls[1:] == [["campaigns/sale/o1/b.jsonl"], ["campaigns/sale/o1/b.jsonl"]]
    assert objects.keys("campaigns/") == []


def test_a_refused_batch_stops_no_other_and_all_refusals_are_reported(s3: Any) -> None:
    objects = S3Objects(s3, BUCKET, sleep=lambda _: None)
    for n in range(DELETE_BATCH + 2):
        s3.put_object(Bucket=BUCKET, Key=f"campaigns/sale/o1/{n:05d}.jsonl", Body=b"{}\n")
    real = s3.delete_objects

    def first_refused(**params: Any) -> Any:
        keys = [o["Key"] for o in params["Delete"]["Objects"]]
        if "campaigns/sale/o1/00000.jsonl" in keys:
            return {"Errors": [{"Key": k, "Code": "AccessDenied"} for k in keys]}
        return real(**params)

    s3.delete_objects = first_refused
    with pytest.raises(ManifestNotDeleted, match="1000 of 1002 objects not deleted"):
        objects.delete_prefix("campaigns/sale/o1/")
    assert len(objects.keys("campaigns/sale/o1/")) == DELETE_BATCH  # the second batch went


def test_a_failed_call_stops_no_other_batch(s3: Any) -> None:
    from botocore.exceptions import ClientError

    objects = S3Objects(s3, BUCKET, sleep=lambda _: None)
    for n in range(DELETE_BATCH + 2):
        s3.put_object(Bucket=BUCKET, Key=f"campaigns/sale/o1/{n:05d}.jsonl", Body=b"{}\n")
    real = s3.delete_objects

    def first_fails(**params: Any) -> Any:
        keys = [o["Key"] for o in params["Delete"]["Objects"]]
        if "campaigns/sale/o1/00000.jsonl" in keys:
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "DeleteObjects")
        return real(**params)

    s3.delete_objects = first_fails
    with pytest.raises(ManifestNotDeleted, match=r"1000 of 1002 .*DeleteObjects: AccessDenied"):
        objects.delete_prefix("campaigns/sale/o1/")
    assert len(objects.keys("campaigns/sale/o1/")) == DELETE_BATCH


def test_a_refused_listing_is_a_manifest_not_deleted(s3: Any) -> None:
    objects = S3Objects(s3, "no-such-bucket")
    with pytest.raises(ManifestNotDeleted, match="ListObjectsV2: NoSuchBucket"):
        objects.delete_prefix("campaigns/sale/o1/")


@pytest.mark.parametrize("campaign_id,occurrence", [("sale", ""), ("", "o1"), ("sale", "o1/..")])
def test_an_occurrence_prefix_never_reaches_past_its_occurrence(
    campaign_id: str, occurrence: str
) -> None:
    with pytest.raises(ValueError, match="not a campaign id or occurrence"):
        occurrence_prefix(campaign_id, occurrence)


def test_only_a_folder_prefix_is_deleted(s3: Any) -> None:
    with pytest.raises(ValueError, match="not a folder prefix"):
        S3Objects(s3, BUCKET).delete_prefix("campaigns/sale/o1")
