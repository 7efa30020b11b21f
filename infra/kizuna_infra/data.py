"""Data: DynamoDB tables (customers, activity with the message ledger, products with their
learned recommendations, daily snapshot cells, campaigns) and the analytics bucket
(the scoring job's work files, the per-customer snapshot export, with a Glue table over
the export so Athena can query large bases, and the campaigns' frozen audiences)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from kizuna.delivery.ledger import SENDING_INDEX, SENDING_PK, SENDING_SK
from kizuna.domain.customer import LINE_USER_HASH_ATTRIBUTE, LINE_USER_INDEX
from kizuna.programs.sweeps import INDEXES, PHONE_HASH_ATTRIBUTE, PHONE_INDEX
from kizuna.runtime.settings import (
    CAMPAIGN_MANIFEST_EXPIRY_DAYS,
    CAMPAIGN_MANIFEST_TAG_KEY,
    CAMPAIGN_MANIFEST_TAG_VALUE,
    ENV_ACTIVITY_TABLE,
    ENV_CUSTOMERS_TABLE,
)
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
        print_files_expiry_days: int = names.DM_EXPIRY_DAYS,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 1 <= print_files_expiry_days <= 3650:
            raise ValueError(
                f"print_files_expiry_days: {print_files_expiry_days} is not 1 to 3650 days"
            )

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
        # LINE user id (hashed) -> customer, for the LINE webhook's follow and unfollow.
        self.customers.add_global_secondary_index(
            index_name=LINE_USER_INDEX,
            partition_key=_key(LINE_USER_HASH_ATTRIBUTE),
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
        # Sparse: only ledger entries at `sending` (kizuna.delivery.ledger), sharded, keys
        # only -- the reconciliation sweep finds the stale ones without a scan.
        self.activity.add_global_secondary_index(
            index_name=SENDING_INDEX,
            partition_key=_key(SENDING_PK),
            sort_key=_key(SENDING_SK),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )

        self.products = table(names.PRODUCTS_TABLE_ID, names.PRODUCTS_PK)
        self.snapshots = table(
            names.SNAPSHOTS_TABLE_ID, names.SNAPSHOTS_PK, sort_key=names.SNAPSHOTS_SK
        )
        # Campaign definitions applied as data, their occurrences, plans and counters; the
        # send batches' counted markers expire (TTL) once no retry of their batch can come.
        self.campaigns = table(
            names.CAMPAIGNS_TABLE_ID,
            names.CAMPAIGNS_PK,
            sort_key=names.CAMPAIGNS_SK,
            ttl_attribute=names.CAMPAIGNS_TTL,
        )

        self.analytics = s3.Bucket(
            self,
            names.ANALYTICS_BUCKET_ID,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="work-files",
                    prefix=names.ANALYTICS_WORK_PREFIX,
                    expiration=Duration.days(names.ANALYTICS_WORK_EXPIRY_DAYS),
                ),
                s3.LifecycleRule(
                    id="snapshot-export",
                    prefix=names.ANALYTICS_SNAPSHOTS_PREFIX,
                    expiration=Duration.days(names.ANALYTICS_SNAPSHOTS_EXPIRY_DAYS),
                ),
                # An occurrence's frozen audience (customer ids), if Complete never ran.
                s3.LifecycleRule(
                    id="campaign-manifests",
                    prefix=names.ANALYTICS_CAMPAIGNS_PREFIX,
                    tag_filters={CAMPAIGN_MANIFEST_TAG_KEY: CAMPAIGN_MANIFEST_TAG_VALUE},
                    expiration=Duration.days(CAMPAIGN_MANIFEST_EXPIRY_DAYS),
                ),
            ],
        )
        # Direct mail's print files hold postal addresses: a customer-managed key (the
        # vendor's role is granted kms:Decrypt on it), TLS only, expired after the retention.
        self.print_files_key = kms.Key(
            self,
            names.PRINT_FILES_KEY_ID,
            description="Kizuna direct-mail print files",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.print_files = s3.Bucket(
            self,
            names.PRINT_FILES_BUCKET_ID,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.print_files_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="dm-print-files",
                    prefix=names.DM_PREFIX,
                    expiration=Duration.days(print_files_expiry_days),
                )
            ],
        )
        self.glue_database = glue.CfnDatabase(
            self,
            names.GLUE_DATABASE_ID,
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                description="Kizuna analytics: the daily customer snapshot export"
            ),
        )
        self.glue_snapshots = snapshot_export_table(
            self, self.glue_database, self.analytics.bucket_name
        )

    @property
    def environment(self) -> dict[str, str]:
        """The two tables every function but unsubscribe reads, as its settings name them."""
        return {
            ENV_CUSTOMERS_TABLE: self.customers.table_name,
            ENV_ACTIVITY_TABLE: self.activity.table_name,
        }

    @property
    def all(self) -> list[dynamodb.Table]:
        return [self.customers, self.activity, self.products, self.snapshots, self.campaigns]


# Columns of kizuna.scoring.snapshot.SnapshotRow, as Athena reads the JSON Lines.
SNAPSHOT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("date", "date"),
    ("customer_id", "string"),
    ("rfm_segment", "string"),
    ("rank", "string"),
    ("region", "string"),
    ("prefecture", "string"),
    ("age_band", "string"),
    ("gender", "string"),
    ("occupation", "string"),
    ("attributes", "map<string,string>"),
    ("lifecycle", "string"),
    ("order_count", "int"),
    ("spend_12m", "double"),
    ("lifetime_value", "double"),
    ("first_order_at", "string"),
    ("last_order_at", "string"),
)


def snapshot_export_table(
    scope: Construct, database: glue.CfnDatabase, bucket_name: str
) -> glue.CfnTable:
    """An external JSON table over ``snapshots/date=YYYY-MM-DD/``, partitioned by
    ``snapshot_date`` with partition projection: no crawler, no MSCK REPAIR."""
    location = f"s3://{bucket_name}/{names.ANALYTICS_SNAPSHOTS_PREFIX}"
    table = glue.CfnTable(
        scope,
        names.GLUE_SNAPSHOTS_TABLE_ID,
        catalog_id=Aws.ACCOUNT_ID,
        database_name=database.ref,
        table_input=glue.CfnTable.TableInputProperty(
            name=names.GLUE_SNAPSHOTS_TABLE_NAME,
            description="One row per customer per day, by customer id, from daily scoring",
            table_type="EXTERNAL_TABLE",
            partition_keys=[glue.CfnTable.ColumnProperty(name="snapshot_date", type="string")],
            parameters={
                "classification": "json",
                "projection.enabled": "true",
                "projection.snapshot_date.type": "date",
                "projection.snapshot_date.format": "yyyy-MM-dd",
                "projection.snapshot_date.range": "2024-01-01,NOW",
                "projection.snapshot_date.interval": "1",
                "projection.snapshot_date.interval.unit": "DAYS",
                "storage.location.template": location + "date=${snapshot_date}/",
            },
            storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in SNAPSHOT_COLUMNS],
                location=location,
                input_format="org.apache.hadoop.mapred.TextInputFormat",
                output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                serde_info=glue.CfnTable.SerdeInfoProperty(
                    serialization_library="org.openx.data.jsonserde.JsonSerDe"
                ),
            ),
        ),
    )
    return table
