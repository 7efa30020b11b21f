"""Setting up moto: the environment boto3 finds, and DynamoDB tables keyed by strings."""

from __future__ import annotations

from typing import Any

import pytest


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, region: str, **env: str) -> None:
    """A region, dummy credentials (boto3 signs, moto does not check), and ``env``."""
    variables = {
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **env,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def key_schema(hash_key: str, range_key: str | None = None) -> list[dict[str, str]]:
    keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return keys


def create_table(
    dynamodb: Any,
    name: str,
    hash_key: str,
    range_key: str | None = None,
    *,
    indexed: tuple[str, ...] = (),
    **options: Any,
) -> Any:
    """An on-demand table on a boto3 DynamoDB client or resource (what it returns, returned);
    ``indexed`` names further string attributes that ``options``' indexes use."""
    keys = key_schema(hash_key, range_key)
    names = [key["AttributeName"] for key in keys] + list(indexed)
    return dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=keys,
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names],
        **options,
    )


def create_activity_table(dynamodb: Any, name: str = "activity") -> Any:
    """The activity table with its ``gsi1`` (keys gsi1pk/gsi1sk, projection ALL), as
    infra/kizuna_infra/data.py defines them."""
    return create_table(
        dynamodb,
        name,
        "pk",
        "sk",
        indexed=("gsi1pk", "gsi1sk"),
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": key_schema("gsi1pk", "gsi1sk"),
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
