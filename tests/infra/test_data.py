"""DynamoDB tables: keys, TTL, GSI, billing, encryption, recovery and retention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kizuna.adapters.campaigns import MARKER_TTL
from kizuna.domain.customer import LINE_USER_INDEX
from kizuna.programs.sweeps import INDEXES, PHONE_INDEX
from kizuna_infra import campaigns
from kizuna_infra.data import DataTables
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def tables(
    template_json: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> Any:
    resources = template_json["Resources"]
    data = stack.kizuna.tables
    return {
        name: resources[logical_id(table)]
        for name, table in (
            ("customers", data.customers),
            ("activity", data.activity),
            ("products", data.products),
            ("snapshots", data.snapshots),
            ("campaigns", data.campaigns),
        )
    }


def key_schema(table_or_index: dict[str, Any]) -> dict[str, str]:
    schema = table_or_index.get("Properties", table_or_index)["KeySchema"]
    return {k["KeyType"]: k["AttributeName"] for k in schema}


def test_exactly_the_five_tables(template: Template) -> None:
    assert len(template.find_resources("AWS::DynamoDB::Table")) == 5


@pytest.mark.parametrize("name", ["customers", "activity", "products", "snapshots", "campaigns"])
def test_every_table_is_on_demand_encrypted_recoverable_and_retained(
    tables: dict[str, Any], name: str
) -> None:
    table = tables[name]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    # Keys are strings, never numbers: ids come from users' systems.
    assert {a["AttributeType"] for a in props["AttributeDefinitions"]} == {"S"}


def test_customers_table_is_keyed_by_customer_id(tables: dict[str, Any]) -> None:
    assert key_schema(tables["customers"]) == {"HASH": "customer_id"}
    assert "TimeToLiveSpecification" not in tables["customers"]["Properties"]


def test_customers_table_has_the_sparse_sweep_indexes(tables: dict[str, Any]) -> None:
    # Given the indexes the sweeps query (kizuna.programs.sweeps.INDEXES)
    props = tables["customers"]["Properties"]
    indexes = {gsi["IndexName"]: gsi for gsi in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {index for index, _ in INDEXES.values()} | {PHONE_INDEX, LINE_USER_INDEX}
    for index, sort_key in INDEXES.values():
        # Then each is sharded by gsi_shard, sorted by its timestamp, and holds keys only
        assert key_schema(indexes[index]) == {"HASH": "gsi_shard", "RANGE": sort_key}
        assert indexes[index]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert {"AttributeName": "gsi_shard", "AttributeType": "S"} in props["AttributeDefinitions"]
    # and the SMS opt-out sweep finds customers by a hash of the number, never the number
    assert key_schema(indexes[PHONE_INDEX]) == {"HASH": "phone_hash"}
    assert indexes[PHONE_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # and the LINE webhook finds customers by a hash of the LINE user id
    assert key_schema(indexes[LINE_USER_INDEX]) == {"HASH": "line_user_hash"}
    assert indexes[LINE_USER_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_campaigns_table_expires_the_batches_counted_markers(tables: dict[str, Any]) -> None:
    props = tables["campaigns"]["Properties"]
    assert key_schema(tables["campaigns"]) == {"HASH": "campaign_id", "RANGE": "sk"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": MARKER_TTL, "Enabled": True}


def test_activity_table_has_sort_key_ttl_gsi1_and_the_sending_index(
    tables: dict[str, Any],
) -> None:
    props = tables["activity"]["Properties"]
    assert key_schema(tables["activity"]) == {"HASH": "pk", "RANGE": "sk"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    gsi1, sending = props["GlobalSecondaryIndexes"]
    assert gsi1["IndexName"] == "gsi1"
    assert key_schema(gsi1) == {"HASH": "gsi1pk", "RANGE": "gsi1sk"}
    assert gsi1["Projection"] == {"ProjectionType": "ALL"}
    # sparse: only ledger entries at `sending`, keys only (the reconciliation sweep)
    assert sending["IndexName"] == "sending"
    assert key_schema(sending) == {"HASH": "sending_pk", "RANGE": "sending_at"}
    assert sending["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_removal_policy_is_configurable(make_app: Callable[..., cdk.App]) -> None:
    # Given a throwaway environment that wants its tables deleted with the stack
    stack = cdk.Stack(make_app(), "Throwaway")
    DataTables(stack, "Data", removal_policy=cdk.RemovalPolicy.DESTROY)

    # When synthesized, then every table is deleted with the stack
    tables = Template.from_stack(stack).find_resources("AWS::DynamoDB::Table")
    assert {t["DeletionPolicy"] for t in tables.values()} == {"Delete"}


def test_products_and_snapshots_keys(tables: dict[str, Any]) -> None:
    assert key_schema(tables["products"]) == {"HASH": "product_id"}
    assert key_schema(tables["snapshots"]) == {"HASH": "date", "RANGE": "cell"}


def test_analytics_bucket_is_private_encrypted_tls_only_and_expires_work_files(
    template_json: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    resources = template_json["Resources"]
    bucket_id = logical_id(stack.kizuna.tables.analytics)
    props = resources[bucket_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = props["LifecycleConfiguration"]["Rules"]
    expiry = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "TagFilters" not in r}
    assert expiry == {"work/": 7, "snapshots/": 730}
    # campaign manifests (tagged; a user's list.csv under campaigns/ is not) expire once the
    # longest occurrence is over
    [manifests] = [r for r in rules if "TagFilters" in r]
    assert manifests["Prefix"] == "campaigns/" and manifests["Status"] == "Enabled"
    assert manifests["TagFilters"] == [{"Key": "kizuna-object", "Value": "campaign-manifest"}]
    assert manifests["ExpirationInDays"] > campaigns.RUN_TIMEOUT.to_days()
    policies = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_print_file_bucket_is_private_kms_encrypted_tls_only_and_expires_dm_files(
    template_json: dict[str, Any], stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    resources = template_json["Resources"]
    tables = stack.kizuna.tables
    bucket_id, key_id = logical_id(tables.print_files), logical_id(tables.print_files_key)
    props = resources[bucket_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # a customer-managed key (rotated), not S3's own: the vendor's role is granted Decrypt
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert resources[key_id]["Properties"]["EnableKeyRotation"] is True
    assert "VersioningConfiguration" not in props
    assert props["LifecycleConfiguration"]["Rules"] == [
        {"ExpirationInDays": 90, "Id": "dm-print-files", "Prefix": "dm/", "Status": "Enabled"}
    ]
    assert resources[bucket_id]["DeletionPolicy"] == "Retain"
    [policy] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_print_file_retention_is_configurable_and_bounded(make_app: Callable[..., cdk.App]) -> None:
    stack = cdk.Stack(make_app(), "Retention")
    data = DataTables(stack, "Data", print_files_expiry_days=30)
    bucket = Template.from_stack(stack).to_json()["Resources"][
        stack.get_logical_id(data.print_files.node.default_child)  # type: ignore[arg-type]
    ]
    [rule] = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 30
    with pytest.raises(ValueError, match="print_files_expiry_days: 0"):
        DataTables(cdk.Stack(make_app(), "Never"), "Data", print_files_expiry_days=0)


def test_snapshot_export_has_an_athena_table_with_partition_projection(
    template_json: dict[str, Any],
) -> None:
    from kizuna.scoring.snapshot import SnapshotRow

    tables = [r for r in template_json["Resources"].values() if r["Type"] == "AWS::Glue::Table"]
    assert len(tables) == 1
    table_input = tables[0]["Properties"]["TableInput"]
    columns = [c["Name"] for c in table_input["StorageDescriptor"]["Columns"]]
    # every field of the exported row is a column, in order: the two cannot drift apart
    assert columns == list(SnapshotRow.model_fields)
    assert table_input["PartitionKeys"] == [{"Name": "snapshot_date", "Type": "string"}]
    params = table_input["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["storage.location.template"]["Fn::Join"][1][-1] == (
        "/snapshots/date=${snapshot_date}/"
    )
    serde = table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde == "org.openx.data.jsonserde.JsonSerDe"
