"""DynamoDB tables: customers, activity (with the message ledger) and idempotency records."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from kizuna.programs.sweeps import INDEXES, PHONE_HASH_ATTRIBUTE, PHONE_INDEX
from kizuna_infra import names

_S = dynamodb.AttributeType.STRING


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=_S)


class DataTables(Construct):
    """On-demand, encrypted tables with point-in-time recovery, retained by default."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)

        def table(
            table_id: str,
            partition_key: str,
            *,
            sort_key: str | None = None,
            ttl_attribute: str | None = None,
        ) -> dynamodb.Table:
            return dynamodb.Table(
                self,
                table_id,
                partition_key=_key(partition_key),
                sort_key=_key(sort_key) if sort_key else None,
                time_to_live_attribute=ttl_attribute,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                removal_policy=removal_policy,
            )

        self.customers = table(names.CUSTOMERS_TABLE_ID, names.CUSTOMERS_PK)
        # Sparse indexes for the scheduled sweeps: only customers with the sort attribute set
        # are in an index, spread over `gsi_shard` partitions. Keys only: a sweep re-reads
        # each candidate's fresh state anyway.
        for index_name, sort_key in INDEXES.values():
            self.customers.add_global_secondary_index(
                index_name=index_name,
                partition_key=_key(names.CUSTOMERS_GSI_SHARD),
                sort_key=_key(sort_key),
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )
        # Phone number (hashed: no personal data in a key) -> customer, for the daily sweep
        # of numbers that replied STOP to an SMS.
        self.customers.add_global_secondary_index(
            index_name=PHONE_INDEX,
            partition_key=_key(PHONE_HASH_ATTRIBUTE),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )

        self.activity = table(
            names.ACTIVITY_TABLE_ID,
            names.ACTIVITY_PK,
            sort_key=names.ACTIVITY_SK,
            ttl_attribute=names.ACTIVITY_TTL,
        )
        self.activity.add_global_secondary_index(
            index_name=names.ACTIVITY_GSI1,
            partition_key=_key(names.ACTIVITY_GSI1_PK),
            sort_key=_key(names.ACTIVITY_GSI1_SK),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        self.idempotency = table(
            names.IDEMPOTENCY_TABLE_ID,
            names.IDEMPOTENCY_PK,
            ttl_attribute=names.IDEMPOTENCY_TTL,
        )

    @property
    def all(self) -> list[dynamodb.Table]:
        return [self.customers, self.activity, self.idempotency]
