"""Every resource name, construct id and source path of the Kizuna CDK app, in one place.

Construct ids become CloudFormation logical ids (with a hash suffix), so renaming one here
replaces the resource on the next deploy: treat these strings as a contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic_settings import BaseSettings

from kizuna.runtime import settings

# --- Repository layout -----------------------------------------------------------------
# infra/kizuna_infra/names.py -> repository root. Constructs accept a `source_root`
# override for apps that vendor Kizuna elsewhere.
PROJECT_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
LAYERS_DIR: Final[str] = "layers"
KIZUNA_PACKAGE_DIR: Final[str] = "layers/kizuna"
LAYER_REQUIREMENTS_FILE: Final[str] = "requirements.txt"  # inside LAYERS_DIR
SCORING_REQUIREMENTS_FILE: Final[str] = "requirements-scoring.txt"  # inside LAYERS_DIR
FUNCTIONS_DIR: Final[str] = "functions"
PROGRAMS_DIR: Final[str] = "programs"  # program YAML, bundled next to some handlers
TEMPLATES_DIR: Final[str] = "templates"  # message templates, bundled next to send's handler
SEGMENTS_DIR: Final[str] = "segments"  # named segments, bundled with evaluate, journey, send

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
CONTEXT_EMAIL_FROM_KEY: Final[str] = "kizuna:emailFrom"
CONTEXT_SES_IDENTITY_KEY: Final[str] = "kizuna:sesIdentity"  # empty: EMAIL_FROM's domain
CONTEXT_PUSH_APPLICATION_ID_KEY: Final[str] = "kizuna:pushApplicationId"
CONTEXT_LINE_TOKEN_SECRET_ARN_KEY: Final[str] = "kizuna:lineTokenSecretArn"  # noqa: S105 - a key
CONTEXT_LINE_TOKEN_PARAMETER_KEY: Final[str] = "kizuna:lineTokenParameter"  # noqa: S105 - a key
# the LINE channel secret (webhook signatures): the webhook is deployed when one is given
CONTEXT_LINE_CHANNEL_SECRET_ARN_KEY: Final[str] = "kizuna:lineChannelSecretArn"  # noqa: S105 - a key
CONTEXT_LINE_CHANNEL_SECRET_PARAMETER_KEY: Final[str] = "kizuna:lineChannelSecretParameter"  # noqa: S105 - a key
CONTEXT_SMS_SENDER_ID_KEY: Final[str] = "kizuna:smsSenderId"
DEFAULT_EMAIL_FROM: Final[str] = "no-reply@example.com"

# --- Event bus ---------------------------------------------------------------------------
DEFAULT_BUS_NAME: Final[str] = "kizuna"
BUS_CONSTRUCT_ID: Final[str] = "Bus"
BUS_ID: Final[str] = "EventBus"
ARCHIVE_ID: Final[str] = "Archive"
# No longer than kizuna.domain.privacy.ERASED_MARKER_DAYS: a replay never re-creates an
# erased customer (tests/infra/test_bus_security.py).
ARCHIVE_RETENTION_DAYS: Final[int] = 30
# The bus policy statement that keeps source "kizuna" to Kizuna's own functions.
BUS_POLICY_SID: Final[str] = "OnlyKizunaPutsDerivedEvents"
BUS_INBOUND_POLICY_SID: Final[str] = "OnlyKizunaReportsItsInboundFacts"

# --- Data --------------------------------------------------------------------------------
DATA_CONSTRUCT_ID: Final[str] = "Data"
CUSTOMERS_TABLE_ID: Final[str] = "Customers"
ACTIVITY_TABLE_ID: Final[str] = "Activity"
PRODUCTS_TABLE_ID: Final[str] = "Products"
SNAPSHOTS_TABLE_ID: Final[str] = "Snapshots"
ANALYTICS_BUCKET_ID: Final[str] = "AnalyticsBucket"
GLUE_DATABASE_ID: Final[str] = "AnalyticsDatabase"
GLUE_SNAPSHOTS_TABLE_ID: Final[str] = "SnapshotsExport"
GLUE_SNAPSHOTS_TABLE_NAME: Final[str] = "customer_snapshots"
# The scoring job's per-run work files expire; the snapshot export is kept this long.
ANALYTICS_WORK_PREFIX: Final[str] = "work/"
ANALYTICS_WORK_EXPIRY_DAYS: Final[int] = 7
ANALYTICS_SNAPSHOTS_PREFIX: Final[str] = "snapshots/"
ANALYTICS_SNAPSHOTS_EXPIRY_DAYS: Final[int] = 730
# Direct mail's print files (addresses): a KMS-encrypted bucket of their own, expired.
PRINT_FILES_BUCKET_ID: Final[str] = "PrintFilesBucket"
PRINT_FILES_KEY_ID: Final[str] = "PrintFilesKey"
DM_PREFIX: Final[str] = "dm/"
DM_EXPIRY_DAYS: Final[int] = 90
# Reports the API and console read (JSON of what the HTML report shows).
ANALYTICS_REPORTS_PREFIX: Final[str] = "reports/"
PRODUCTS_PK: Final[str] = "product_id"
SNAPSHOTS_PK: Final[str] = "date"
SNAPSHOTS_SK: Final[str] = "cell"

CUSTOMERS_PK: Final[str] = "customer_id"
# Partition key of the customers table's sparse sweep indexes (kizuna.programs.sweeps.INDEXES).
CUSTOMERS_GSI_SHARD: Final[str] = "gsi_shard"
ACTIVITY_PK: Final[str] = "pk"
ACTIVITY_SK: Final[str] = "sk"
ACTIVITY_TTL: Final[str] = "expires_at"
ACTIVITY_GSI1: Final[str] = "gsi1"
ACTIVITY_GSI1_PK: Final[str] = "gsi1pk"
ACTIVITY_GSI1_SK: Final[str] = "gsi1sk"

# --- Layers ------------------------------------------------------------------------------
LAYERS_CONSTRUCT_ID: Final[str] = "Layers"
DEPENDENCIES_LAYER_ID: Final[str] = "Dependencies"
KIZUNA_LAYER_ID: Final[str] = "KizunaPackage"
SCORING_LAYER_ID: Final[str] = "ScoringDependencies"  # numpy: the score function only
LOCAL_BUNDLING_IMAGE: Final[str] = "local-bundling-only"
LAYER_PIP_PLATFORM: Final[str] = "manylinux2014_aarch64"
LAYER_PIP_EXTRA_PLATFORMS: Final[tuple[str, ...]] = ("manylinux_2_28_aarch64",)
LAYER_PYTHON_VERSION: Final[str] = "3.13"

# --- Ingest ------------------------------------------------------------------------------
INGEST_CONSTRUCT_ID: Final[str] = "Ingest"
INGEST_RULE_ID: Final[str] = "InboundRule"
INGEST_FUNCTION_NAME: Final[str] = "ingest"  # functions/<name>/handler.py

# --- Programs: evaluate, journeys (one state machine per program), journey helper, sweeps --
PROGRAMS_CONSTRUCT_ID: Final[str] = "Programs"
EVALUATE_CONSTRUCT_ID: Final[str] = "Evaluate"
EVALUATE_RULE_ID: Final[str] = "TriggerRule"
EVALUATE_FUNCTION_NAME: Final[str] = "evaluate"
JOURNEYS_CONSTRUCT_ID: Final[str] = "Journeys"  # holds one construct per program id
STATE_MACHINE_ID: Final[str] = "StateMachine"
JOURNEY_CONSTRUCT_ID: Final[str] = "JourneyHelper"
JOURNEY_FUNCTION_NAME: Final[str] = "journey"
SWEEP_CONSTRUCT_ID: Final[str] = "Sweep"
SWEEP_FUNCTION_NAME: Final[str] = "sweep"
SWEEP_DAILY_SCHEDULE_ID: Final[str] = "DailySchedule"
SWEEP_HOURLY_SCHEDULE_ID: Final[str] = "HourlySchedule"
SWEEP_DAILY_SCHEDULE_NAME: Final[str] = "sweep-daily"
SWEEP_HOURLY_SCHEDULE_NAME: Final[str] = "sweep-hourly"
# Journey timers: evaluate, the journey helper and send start a cohort execution due later
# with a one-time Scheduler schedule in this group, run as its role (dead letters to
# evaluate's DLQ).
JOURNEY_TIMERS_CONSTRUCT_ID: Final[str] = "JourneyTimers"
ERASURE_SWEEPS_CONSTRUCT_ID: Final[str] = "ErasureSweeps"
JOURNEY_SCHEDULE_GROUP_ID: Final[str] = "ScheduleGroup"
JOURNEY_SCHEDULE_GROUP_SUFFIX: Final[str] = "-journeys"  # "<stack name>-journeys"
JOURNEY_SCHEDULE_GROUP_MAX_LENGTH: Final[int] = 64  # Scheduler's limit on a group name
# State machine names are "<prefix><program id>"; the prefix comes from the stack name so the
# evaluate function can compute every journey's ARN without a lookup.
STATE_MACHINE_PREFIX_STACK_CHARS: Final[int] = 32
# Step Functions log groups under /aws/vendedlogs/ keep clear of the 5,120-character
# CloudWatch Logs resource policy limit.
STATE_MACHINE_LOG_GROUP_PREFIX: Final[str] = "/aws/vendedlogs/states/"
# CloudFormation Metadata keys for the local runtime (see FUNCTION_METADATA_KEY).
PROGRAM_METADATA_KEY: Final[str] = "kizuna:program"
SCHEDULE_METADATA_KEY: Final[str] = "kizuna:schedule"
# Scheduler time zone of the daily jobs (Kizuna's seed programs are for a Japanese shop).
SCHEDULE_TIME_ZONE: Final[str] = "Asia/Tokyo"

# --- Scoring: daily RFM scores, segments and time-dependent ranks -------------------------
SCORING_CONSTRUCT_ID: Final[str] = "Scoring"
SCORE_FUNCTION_ID: Final[str] = "Score"
SCORE_FUNCTION_NAME: Final[str] = "score"
SCORE_SERVICE_NAME: Final[str] = "kizuna-score"
SCORING_STATE_MACHINE_ID: Final[str] = "StateMachine"
SCORING_LOG_GROUP_ID: Final[str] = "StateMachineLogs"
SCORING_LOG_GROUP_SUFFIX: Final[str] = "-daily-scoring"
SCORING_BOUNDARIES_STATE: Final[str] = "Boundaries"
SCORING_MAP_STATE: Final[str] = "ScoreSegments"
SCORING_SEGMENT_STATE: Final[str] = "ScoreSegment"
SCORING_FINISH_STATE: Final[str] = "Finish"
SCORING_SCHEDULE_ID: Final[str] = "DailySchedule"
SCORING_SCHEDULE_NAME: Final[str] = "scoring-daily"

# --- Campaigns: one generic state machine runs every campaign occurrence ------------------
CAMPAIGNS_CONSTRUCT_ID: Final[str] = "Campaigns"
CAMPAIGNS_TABLE_ID: Final[str] = "Campaigns"  # under Data, beside the other tables
CAMPAIGNS_PK: Final[str] = "campaign_id"
CAMPAIGNS_SK: Final[str] = "sk"
# a send batch's counted marker expires (kizuna.adapters.campaigns.MARKER_TTL); nothing else
# in the table carries it
CAMPAIGNS_TTL: Final[str] = "expires_at"
CAMPAIGN_FUNCTION_ID: Final[str] = "Campaign"
CAMPAIGN_FUNCTION_NAME: Final[str] = "campaign"
CAMPAIGN_SMS_POLICY_ID: Final[str] = "SmsPublishPolicy"
CAMPAIGN_STATE_MACHINE_ID: Final[str] = "StateMachine"
CAMPAIGN_LOG_GROUP_ID: Final[str] = "StateMachineLogs"
CAMPAIGN_LOG_GROUP_SUFFIX: Final[str] = "-campaigns"
# Scheduler: `kizuna campaigns apply` creates one schedule per campaign in this group.
CAMPAIGN_SCHEDULE_GROUP_ID: Final[str] = "ScheduleGroup"
CAMPAIGN_SCHEDULE_GROUP_SUFFIX: Final[str] = "-campaigns"  # "<stack name>-campaigns"
CAMPAIGN_SCHEDULE_GROUP_MAX_LENGTH: Final[int] = 64
# Frozen audiences (manifests) and chunk files of every occurrence, in the analytics bucket.
ANALYTICS_CAMPAIGNS_PREFIX: Final[str] = "campaigns/"
# A static audience: campaigns/<campaign id>/list.csv (kizuna.campaigns.engine.list_key).
CAMPAIGN_LIST_OBJECT: Final[str] = "list.csv"
# States of the campaign state machine (unique across the machine, Map item processors included).
CAMPAIGN_PREPARE_STATE: Final[str] = "Prepare"
CAMPAIGN_RUN_CHOICE: Final[str] = "ShouldRun"
CAMPAIGN_SKIPPED_STATE: Final[str] = "Skipped"
CAMPAIGN_FREEZE_MAP: Final[str] = "Freeze"
CAMPAIGN_FREEZE_SEGMENT_STATE: Final[str] = "FreezeSegment"
CAMPAIGN_NO_PLAN_STATE: Final[str] = "NoPlanYet"
CAMPAIGN_PLAN_STATE: Final[str] = "Plan"
CAMPAIGN_ROUTE_CHOICE: Final[str] = "Route"
CAMPAIGN_COMPLETE_STATE: Final[str] = "Complete"
CAMPAIGN_COMPLETED_STATE: Final[str] = "Completed"
CAMPAIGN_WAIT_RESULTS_STATE: Final[str] = "WaitForResults"
CAMPAIGN_CHOOSE_WINNER_STATE: Final[str] = "ChooseWinner"
CAMPAIGN_SEND_MAP: Final[str] = "Send"
CAMPAIGN_PACE_STATE: Final[str] = "Pace"
CAMPAIGN_SEND_BATCH_STATE: Final[str] = "SendBatch"

# --- Delivery: signing secret, SES configuration set, send, unsubscribe, feedback ----------
DELIVERY_CONSTRUCT_ID: Final[str] = "Delivery"
SIGNING_SECRET_ID: Final[str] = "Signing"  # noqa: S105 - a construct id
SIGNING_SECRET_LENGTH: Final[int] = 64
CONFIGURATION_SET_ID: Final[str] = "ConfigurationSet"
CONFIGURATION_SET_DESTINATION_ID: Final[str] = "EventBridge"
DEFAULT_BUS_ID: Final[str] = "DefaultBus"
DEFAULT_EVENT_BUS: Final[str] = "default"  # SES publishes to the account's default bus only
SEND_CONSTRUCT_ID: Final[str] = "Send"
SEND_FUNCTION_NAME: Final[str] = "send"
SMS_POLICY_ID: Final[str] = "SmsPublishPolicy"
UNSUBSCRIBE_CONSTRUCT_ID: Final[str] = "Unsubscribe"
UNSUBSCRIBE_FUNCTION_NAME: Final[str] = "unsubscribe"
FUNCTION_URL_ID: Final[str] = "Url"
LINE_WEBHOOK_CONSTRUCT_ID: Final[str] = "LineWebhook"
LINE_WEBHOOK_FUNCTION_NAME: Final[str] = "line_webhook"
FEEDBACK_CONSTRUCT_ID: Final[str] = "Feedback"
FEEDBACK_RULE_ID: Final[str] = "SesEventsRule"
FEEDBACK_FUNCTION_NAME: Final[str] = "feedback"
FEEDBACK_SCHEDULE_ID: Final[str] = "SmsOptOutSchedule"
FEEDBACK_SCHEDULE_NAME: Final[str] = "sms-opt-outs"
RECONCILE_SCHEDULE_ID: Final[str] = "ReconcileSendsSchedule"
RECONCILE_SCHEDULE_NAME: Final[str] = "reconcile-sends"
STALE_SENDING_ALARM_ID: Final[str] = "StaleSending"
SMS_OPT_OUT_POLICY_ID: Final[str] = "SmsOptOutPolicy"

# --- Queues (shared): every QueuedFunction holds these two, beside its function ------------
QUEUE_ID: Final[str] = "Queue"
DLQ_ID: Final[str] = "DeadLetterQueue"

# --- Schedules (shared) ----------------------------------------------------------------------
SCHEDULER_ROLE_ID: Final[str] = "SchedulerRole"
SCHEDULE_DLQ_ID: Final[str] = "ScheduleDeadLetterQueue"

# --- Lambda functions (shared) -------------------------------------------------------------
# Children of every KizunaFunction (<construct id>/Function, .../Role, .../LogGroup).
FUNCTION_ID: Final[str] = "Function"
ROLE_ID: Final[str] = "Role"
LOG_GROUP_ID: Final[str] = "LogGroup"
FUNCTION_HANDLER: Final[str] = "handler.handler"
# POWERTOOLS_SERVICE_NAME of a function: this prefix and its functions/<name>.
SERVICE_NAME_PREFIX: Final[str] = "kizuna-"
# CloudFormation Metadata key that tells the local runtime which functions/<name> a
# synthesized AWS::Lambda::Function runs.
FUNCTION_METADATA_KEY: Final[str] = "kizuna:function"
METRICS_NAMESPACE: Final[str] = "Kizuna"
ENV_POWERTOOLS_SERVICE_NAME: Final[str] = "POWERTOOLS_SERVICE_NAME"
ENV_POWERTOOLS_METRICS_NAMESPACE: Final[str] = "POWERTOOLS_METRICS_NAMESPACE"
ENV_POWERTOOLS_LOG_LEVEL: Final[str] = "POWERTOOLS_LOG_LEVEL"
ENV_MAX_RECEIVE_COUNT: Final[str] = settings.ENV_MAX_RECEIVE_COUNT


def _setting(model: type[BaseSettings], name: str) -> str:
    """An environment variable ``kizuna.runtime.settings`` has a field for but no ``ENV_*``
    constant: checked against the model at import, so a rename there fails here, not in Lambda."""
    if name not in model.model_fields:
        raise LookupError(f"{model.__name__} has no field {name!r}")
    return name


ENV_SIGNING_SECRET_ARN: Final[str] = _setting(settings.SendSettings, "SIGNING_SECRET_ARN")
ENV_EMAIL_FROM: Final[str] = _setting(settings.SendSettings, "EMAIL_FROM")
ENV_SES_CONFIGURATION_SET: Final[str] = _setting(settings.SendSettings, "SES_CONFIGURATION_SET")
ENV_UNSUBSCRIBE_URL: Final[str] = _setting(settings.SendSettings, "UNSUBSCRIBE_URL")
ENV_PUSH_APPLICATION_ID: Final[str] = _setting(settings.SendSettings, "PUSH_APPLICATION_ID")
ENV_LINE_TOKEN_SECRET_ARN: Final[str] = _setting(settings.SendSettings, "LINE_TOKEN_SECRET_ARN")
ENV_LINE_TOKEN_PARAMETER: Final[str] = _setting(settings.SendSettings, "LINE_TOKEN_PARAMETER")
ENV_SMS_SENDER_ID: Final[str] = _setting(settings.SendSettings, "SMS_SENDER_ID")

# --- Outputs -------------------------------------------------------------------------------
OUTPUT_BUS_NAME: Final[str] = "EventBusName"
OUTPUT_BUS_ARN: Final[str] = "EventBusArn"
OUTPUT_CUSTOMERS_TABLE: Final[str] = "CustomersTableName"
OUTPUT_ACTIVITY_TABLE: Final[str] = "ActivityTableName"
OUTPUT_ANALYTICS_BUCKET: Final[str] = "AnalyticsBucketName"
OUTPUT_INGEST_DLQ_URL: Final[str] = "IngestDeadLetterQueueUrl"
OUTPUT_UNSUBSCRIBE_URL: Final[str] = "UnsubscribeUrl"
OUTPUT_LINE_WEBHOOK_URL: Final[str] = "LineWebhookUrl"
OUTPUT_CONFIGURATION_SET: Final[str] = "SesConfigurationSetName"
OUTPUT_SIGNING_SECRET_ARN: Final[str] = "SigningSecretArn"  # noqa: S105 - an output id
OUTPUT_EVALUATE_DLQ_URL: Final[str] = "EvaluateDeadLetterQueueUrl"
OUTPUT_FEEDBACK_DLQ_URL: Final[str] = "FeedbackDeadLetterQueueUrl"
# the schedules' DLQs (Scheduler's dead-letter events and the functions' on-failure records)
OUTPUT_SWEEP_SCHEDULE_DLQ_URL: Final[str] = "SweepScheduleDeadLetterQueueUrl"
OUTPUT_FEEDBACK_SCHEDULE_DLQ_URL: Final[str] = "FeedbackScheduleDeadLetterQueueUrl"
OUTPUT_SCORING_SCHEDULE_DLQ_URL: Final[str] = "ScoringScheduleDeadLetterQueueUrl"
OUTPUT_CAMPAIGN_SCHEDULE_DLQ_URL: Final[str] = "CampaignScheduleDeadLetterQueueUrl"
OUTPUT_CAMPAIGNS_TABLE: Final[str] = "CampaignsTableName"
OUTPUT_CAMPAIGN_STATE_MACHINE_ARN: Final[str] = "CampaignStateMachineArn"
OUTPUT_CAMPAIGN_SCHEDULER_ROLE_ARN: Final[str] = "CampaignSchedulerRoleArn"
OUTPUT_CAMPAIGN_SCHEDULE_GROUP: Final[str] = "CampaignScheduleGroupName"
OUTPUT_CAMPAIGN_SCHEDULE_DLQ_ARN: Final[str] = "CampaignScheduleDlqArn"
OUTPUT_DEPLOYED_CHANNELS: Final[str] = "DeployedChannels"
OUTPUT_JOURNEY_SCHEDULE_GROUP: Final[str] = "JourneyScheduleGroupName"
OUTPUT_API_URL: Final[str] = "ApiUrl"
OUTPUT_CONSOLE_URL: Final[str] = "ConsoleUrl"
OUTPUT_USER_POOL_ID: Final[str] = "UserPoolId"
OUTPUT_USER_POOL_CLIENT_ID: Final[str] = "UserPoolClientId"
# One output per program: "Journey" + the program id in CamelCase + "Arn".
OUTPUT_JOURNEY_PREFIX: Final[str] = "Journey"
OUTPUT_JOURNEY_SUFFIX: Final[str] = "Arn"

# --- API: HTTP API + console (one function), Cognito, CloudFront, WAF -----------------------
API_CONSTRUCT_ID: Final[str] = "Api"
API_FUNCTION_ID: Final[str] = "Function"  # a KizunaFunction: Api/Function/{Function,Role,...}
API_FUNCTION_NAME: Final[str] = "api"
USER_POOL_ID: Final[str] = "UserPool"
USER_POOL_CLIENT_ID: Final[str] = "ConsoleClient"
USER_POOL_GROUP_PREFIX: Final[str] = "Group"  # + the role, capitalised (kizuna.api.auth.Role)
HTTP_API_ID: Final[str] = "HttpApi"
HTTP_STAGE_ID: Final[str] = "DefaultStage"
HTTP_INTEGRATION_ID: Final[str] = "LambdaIntegration"
JWT_AUTHORIZER_ID: Final[str] = "JwtAuthorizer"
IAM_AUTHORIZER_ID: Final[str] = "IamAuthorizer"
API_ACCESS_LOG_GROUP_ID: Final[str] = "AccessLogs"
# Route paths (API Gateway HTTP API route keys; the function dispatches below them).
API_ROUTE_PREFIX: Final[str] = "/api"  # people and scripts: Cognito id token (JWT)
MACHINE_ROUTE_PREFIX: Final[str] = "/machine"  # machines: SigV4 (AWS_IAM)
CONSOLE_ROUTE_PREFIX: Final[str] = "/console"  # pages: the function checks its cookie
CARDS_ROUTE_PREFIX: Final[str] = "/cards"  # the shop's site: the function checks a card token
DISTRIBUTION_ID: Final[str] = "Distribution"
RESPONSE_HEADERS_POLICY_ID: Final[str] = "SecurityHeaders"
API_CACHE_POLICY_ID: Final[str] = "ApiCachePolicy"
WEB_ACL_ID: Final[str] = "WebAcl"
WEB_ACL_RATE_RULE: Final[str] = "RateLimitPerClientIp"
WEB_ACL_COMMON_RULE: Final[str] = "AwsCommonRuleSet"
# A CLOUDFRONT-scope WebACL exists only in us-east-1 (a CloudFormation Rule asserts it when
# the stack's region is only known at deploy time).
WEB_ACL_REGION: Final[str] = "us-east-1"
WEB_ACL_REGION_RULE_ID: Final[str] = "WebAclNeedsUsEast1"
CONTEXT_WEB_ACL_ARN_KEY: Final[str] = "kizuna:webAclArn"
# the folder holding the shop's programs/, templates/, segments/ (default: the checkout)
CONTEXT_CONTENT_DIR_KEY: Final[str] = "kizuna:contentDir"

# --- Monitoring: alarms on one SNS topic, one dashboard ----------------------------------------
MONITORING_CONSTRUCT_ID: Final[str] = "Monitoring"
