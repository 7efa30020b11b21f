"""Every resource name, construct id and source path of the Kizuna CDK app, in one place.

Construct ids become CloudFormation logical ids (with a hash suffix), so renaming one here
replaces the resource on the next deploy: treat these strings as a contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from kizuna import settings

# --- Repository layout -----------------------------------------------------------------
# infra/kizuna_infra/names.py -> repository root. Constructs accept a `source_root`
# override for apps that vendor Kizuna elsewhere.
PROJECT_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
LAYERS_DIR: Final[str] = "layers"
KIZUNA_PACKAGE_DIR: Final[str] = "layers/kizuna"
LAYER_REQUIREMENTS_FILE: Final[str] = "requirements.txt"  # inside LAYERS_DIR
FUNCTIONS_DIR: Final[str] = "functions"

# Never shipped in an asset.
ASSET_EXCLUDES: Final[tuple[str, ...]] = (
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    "*.egg-info",
)

# --- Stack -------------------------------------------------------------------------------
STACK_ID: Final[str] = "Kizuna"
KIZUNA_CONSTRUCT_ID: Final[str] = "Kizuna"
CONTEXT_CONFIG_KEY: Final[str] = "kizuna:config"
CONTEXT_BUS_NAME_KEY: Final[str] = "kizuna:busName"

# --- Event bus ---------------------------------------------------------------------------
DEFAULT_BUS_NAME: Final[str] = "kizuna"
BUS_CONSTRUCT_ID: Final[str] = "Bus"
BUS_ID: Final[str] = "EventBus"
ARCHIVE_ID: Final[str] = "Archive"
ARCHIVE_RETENTION_DAYS: Final[int] = 30

# --- Data --------------------------------------------------------------------------------
DATA_CONSTRUCT_ID: Final[str] = "Data"
CUSTOMERS_TABLE_ID: Final[str] = "Customers"
ACTIVITY_TABLE_ID: Final[str] = "Activity"
IDEMPOTENCY_TABLE_ID: Final[str] = "Idempotency"

CUSTOMERS_PK: Final[str] = "customer_id"
ACTIVITY_PK: Final[str] = "pk"
ACTIVITY_SK: Final[str] = "sk"
ACTIVITY_TTL: Final[str] = "expires_at"
ACTIVITY_GSI1: Final[str] = "gsi1"
ACTIVITY_GSI1_PK: Final[str] = "gsi1pk"
ACTIVITY_GSI1_SK: Final[str] = "gsi1sk"
# Powertools idempotency layout (DynamoDBPersistenceLayer defaults).
IDEMPOTENCY_PK: Final[str] = "id"
IDEMPOTENCY_TTL: Final[str] = "expiration"

# --- Layers ------------------------------------------------------------------------------
LAYERS_CONSTRUCT_ID: Final[str] = "Layers"
DEPENDENCIES_LAYER_ID: Final[str] = "Dependencies"
KIZUNA_LAYER_ID: Final[str] = "KizunaPackage"
LOCAL_BUNDLING_IMAGE: Final[str] = "local-bundling-only"
LAYER_PIP_PLATFORM: Final[str] = "manylinux2014_aarch64"
LAYER_PYTHON_VERSION: Final[str] = "3.13"

# --- Ingest ------------------------------------------------------------------------------
INGEST_CONSTRUCT_ID: Final[str] = "Ingest"
INGEST_QUEUE_ID: Final[str] = "Queue"
INGEST_DLQ_ID: Final[str] = "DeadLetterQueue"
INGEST_RULE_ID: Final[str] = "InboundRule"
INGEST_FUNCTION_ID: Final[str] = "Function"
INGEST_LOG_GROUP_ID: Final[str] = "LogGroup"
INGEST_ROLE_ID: Final[str] = "Role"
INGEST_FUNCTION_NAME: Final[str] = "ingest"  # functions/<name>/handler.py
INGEST_SERVICE_NAME: Final[str] = "kizuna-ingest"

# --- Lambda functions (shared) -------------------------------------------------------------
FUNCTION_HANDLER: Final[str] = "handler.handler"
# CloudFormation Metadata key that tells the local runtime which functions/<name> a
# synthesized AWS::Lambda::Function runs.
FUNCTION_METADATA_KEY: Final[str] = "kizuna:function"
METRICS_NAMESPACE: Final[str] = "Kizuna"
ENV_POWERTOOLS_SERVICE_NAME: Final[str] = "POWERTOOLS_SERVICE_NAME"
ENV_POWERTOOLS_METRICS_NAMESPACE: Final[str] = "POWERTOOLS_METRICS_NAMESPACE"
ENV_POWERTOOLS_LOG_LEVEL: Final[str] = "POWERTOOLS_LOG_LEVEL"
ENV_MAX_RECEIVE_COUNT: Final[str] = settings.ENV_MAX_RECEIVE_COUNT

# --- Outputs -------------------------------------------------------------------------------
OUTPUT_BUS_NAME: Final[str] = "EventBusName"
OUTPUT_BUS_ARN: Final[str] = "EventBusArn"
OUTPUT_CUSTOMERS_TABLE: Final[str] = "CustomersTableName"
OUTPUT_ACTIVITY_TABLE: Final[str] = "ActivityTableName"
OUTPUT_IDEMPOTENCY_TABLE: Final[str] = "IdempotencyTableName"
OUTPUT_INGEST_DLQ_URL: Final[str] = "IngestDeadLetterQueueUrl"
