"""Create a template's resources on moto through boto3, and say what cannot run.

Every resource ends up in exactly one of: created (``resources``), ``ignored`` (not needed
locally: IAM, log groups, layers, permissions, metadata...) or ``unsupported`` (something
that would behave differently on AWS: reported by name with the reason, never skipped
silently). Properties are checked the same way: each creator lists what it emulates and
what is harmless to leave out; anything else is reported.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kizuna.domain.schedule_expressions import parse_schedule
from kizuna.programs.asl import InvalidDefinition, check_definition
from kizuna_tools.local.functions import FunctionRunner, FunctionSpec
from kizuna_tools.local.gateway import HttpApi, JwtAuthorizer, Route
from kizuna_tools.local.schedules import SFN_START_EXECUTION_TARGET
from kizuna_tools.local.template import REGION, Physical, Template, TemplateError

LOG = logging.getLogger(__name__)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # any anchor: expressions are only validated

FUNCTION_METADATA_KEY = "kizuna:function"
LOCAL_ROLE_NAME = "kizuna-local-execution-role"
Client = Any


class Unsupported(NamedTuple):
    """Something in the template the local runtime cannot run as AWS would."""

    logical_id: str
    what: str  # a resource type, or "Type.Property"
    reason: str


class Ignored(NamedTuple):
    """A resource that has no local behaviour to emulate."""

    logical_id: str
    type: str
    reason: str


@dataclass(frozen=True)
class ResourceInfo:
    logical_id: str
    type: str
    name: str
    ref: str
    arn: str | None = None
    url: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class QueuePump:
    """An SQS event source mapping, polled by the runtime."""

    logical_id: str
    queue_name: str
    queue_url: str
    queue_arn: str
    function: FunctionSpec
    batch_size: int = 10
    report_failures: bool = False
    enabled: bool = True
    filters: list[Any] = field(default_factory=list)
    redrive: bool = False
    visibility_timeout: int = 30


@dataclass
class Provisioned:
    resources: dict[str, ResourceInfo] = field(default_factory=dict)
    ignored: list[Ignored] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by physical name
    pumps: list[QueuePump] = field(default_factory=list)
    dead_letter_queues: dict[str, str] = field(default_factory=dict)  # queue name -> logical id
    function_urls: dict[str, FunctionSpec] = field(default_factory=dict)  # URL host -> function
    http_apis: dict[str, HttpApi] = field(default_factory=dict)  # API id -> routes (gateway.py)
    user_pools: dict[str, str] = field(default_factory=dict)  # pool id -> logical id
    outputs: dict[str, str] = field(default_factory=dict)  # the template's Outputs, resolved
    seconds: float = 0.0


IGNORED_TYPES: dict[str, str] = {
    "AWS::CDK::Metadata": "CDK bookkeeping",
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::IAM::InstanceProfile": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    "AWS::Lambda::LayerVersion": "handlers import layer code from the project locally",
    "AWS::Lambda::LayerVersionPermission": "resource policies are not enforced locally",
    "AWS::SQS::QueuePolicy": "resource policies are not enforced locally",
    "AWS::SNS::TopicPolicy": "resource policies are not enforced locally",
    "AWS::S3::BucketPolicy": "resource policies are not enforced locally",
    "AWS::Events::EventBusPolicy": "not created: its Deny statements are enforced on PutEvents "
    "(kizuna_tools.local.bus_policy)",
    "AWS::Logs::LogGroup": "handlers log to stdout locally",
    "AWS::Logs::MetricFilter": "no CloudWatch metrics locally",
    "AWS::Logs::SubscriptionFilter": "handlers log to stdout locally",
    "AWS::KMS::Key": "encryption at rest is not emulated",
    "AWS::KMS::Alias": "encryption at rest is not emulated",
    "AWS::CloudWatch::Alarm": "no CloudWatch metrics locally",
    "AWS::CloudWatch::CompositeAlarm": "no CloudWatch metrics locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch metrics locally",
    "Custom::LogRetention": "handlers log to stdout locally",
    "AWS::Pinpoint::APNSChannel": "the push fake accepts every address",
    "AWS::Pinpoint::APNSSandboxChannel": "the push fake accepts every address",
    "AWS::Pinpoint::GCMChannel": "the push fake accepts every address",
    "AWS::Pinpoint::BaiduChannel": "the push fake accepts every address",
    "AWS::Pinpoint::ADMChannel": "the push fake accepts every address",
    "AWS::CloudFront::Distribution": "no CDN locally: the local server answers on 127.0.0.1 "
    "directly (the function sets the same security headers)",
    "AWS::CloudFront::ResponseHeadersPolicy": "no CDN locally (the function sets the same "
    "security headers)",
    "AWS::CloudFront::CachePolicy": "no CDN locally",
    "AWS::CloudFront::OriginRequestPolicy": "no CDN locally",
    "AWS::CloudFront::OriginAccessControl": "no CDN locally",
    "AWS::CloudFront::Function": "no CDN locally",
    "AWS::WAFv2::WebACL": "no WAF locally: rate limits and managed rules are not applied",
    "AWS::WAFv2::WebACLAssociation": "no WAF locally",
    "AWS::WAFv2::IPSet": "no WAF locally",
    "AWS::WAFv2::LoggingConfiguration": "no WAF locally",
    "AWS::ApiGatewayV2::Deployment": "routes are live as soon as they are created locally",
    "AWS::Cognito::UserPoolDomain": "no hosted UI locally (the console signs in with "
    "USER_PASSWORD_AUTH)",
    "AWS::Cognito::UserPoolRiskConfigurationAttachment": "no threat protection locally",
}

UNSUPPORTED_REASONS: dict[str, str] = {
    "AWS::SES::ConfigurationSetEventDestination": "moto emits no SES events (with an "
    "engagement model, kizuna_tools.local.engagement puts them on the default bus)",
    "AWS::ApiGateway::RestApi": "no API Gateway locally",
    "AWS::DynamoDB::Stream": "DynamoDB streams are not pumped locally",
    "AWS::CloudFormation::CustomResource": "custom resources do not run locally",
    "AWS::Glue::Database": "no Athena locally (the snapshot export is in the local bucket)",
    "AWS::Glue::Table": "no Athena locally (the snapshot export is in the local bucket)",
}

HARMLESS = frozenset({"Tags", "Description"})
NATIVE_TARGET_SERVICES = frozenset({"sqs", "lambda", "states", "sns", "events", "logs"})
UNSUPPORTED_TARGET_KEYS = frozenset(
    {
        "EcsParameters",
        "KinesisParameters",
        "HttpParameters",
        "BatchParameters",
        "RedshiftDataParameters",
        "SageMakerPipelineParameters",
        "RunCommandParameters",
        "AppSyncParameters",
    }
)
UNSUPPORTED_ASL = (
    ('"QueryLanguage":"JSONata"', "JSONata is not evaluated by moto"),
    ('"Assign":', "Assign variables are not evaluated by moto"),
    ("arn:aws:states:::states:startExecution", "nested executions fail in moto"),
    ("arn:aws:states:::aws-sdk:pinpoint", "aws-sdk:pinpoint tasks are not implemented by moto"),
)


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "handler.py", "# kizuna_tools.local runs the project's handler in-process\n"
        )
    return buffer.getvalue()


def _service_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


class Provisioner:
    """Creates one template's resources, in dependency order."""

    def __init__(
        self,
        template: Template,
        client: Callable[[str], Client],
        runner: FunctionRunner,
    ) -> None:
        self.t = template
        self.client = client
        self.runner = runner
        self.out = Provisioned()
        self._role_arn = ""
        self._zip = _dummy_zip()
        self._queue_by_arn: dict[str, tuple[str, str]] = {}  # arn -> (logical id, name)
        self._redrive_queues: set[str] = set()
        self._visibility: dict[str, int] = {}
        self._esms: list[str] = []
        self._invoke_configs: list[str] = []

    # --- bookkeeping ---------------------------------------------------------------------
    def unsupported(self, logical_id: str, what: str, reason: str) -> None:
        self.out.unsupported.append(Unsupported(logical_id, what, reason))

    def ignore(self, logical_id: str, rtype: str, reason: str) -> None:
        self.out.ignored.append(Ignored(logical_id, rtype, reason))

    def check(
        self,
        logical_id: str,
        props: dict[str, Any],
        handled: set[str],
        harmless: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        rtype = self.t.type_of(logical_id)
        for key in props:
            if key not in handled and key not in harmless and key not in HARMLESS:
                self.unsupported(logical_id, f"{rtype}.{key}", "property not emulated locally")

    def record(
        self,
        logical_id: str,
        *,
        arn: str | None = None,
        url: str | None = None,
        physical: Physical | None = None,
    ) -> None:
        if physical is not None:
            self.t.set_physical(logical_id, physical)
        p = self.t.physical(logical_id)
        self.out.resources[logical_id] = ResourceInfo(
            logical_id=logical_id,
            type=self.t.type_of(logical_id),
            name=p.name,
            ref=p.ref,
            arn=arn or p.attrs.get("Arn") or (p.ref if p.ref.startswith("arn:") else None),
            url=url,
            attrs=dict(p.attrs),
        )

    # --- the run -------------------------------------------------------------------------
    def run(self) -> Provisioned:
        started = time.perf_counter()
        self._role_arn = self.client("iam").create_role(
            RoleName=LOCAL_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        creators: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "AWS::DynamoDB::Table": self.table,
            "AWS::DynamoDB::GlobalTable": self.table,
            "AWS::SQS::Queue": self.queue,
            "AWS::SNS::Topic": self.topic,
            "AWS::SNS::Subscription": self.subscription,
            "AWS::Events::EventBus": self.bus,
            "AWS::Events::Rule": self.rule,
            "AWS::Events::Archive": self.archive,
            "AWS::Lambda::Function": self.function,
            "AWS::Lambda::EventSourceMapping": self.event_source_mapping,
            "AWS::Lambda::EventInvokeConfig": self.event_invoke_config,
            "AWS::Lambda::Url": self.function_url,
            "AWS::StepFunctions::StateMachine": self.state_machine,
            "AWS::Scheduler::ScheduleGroup": self.schedule_group,
            "AWS::Scheduler::Schedule": self.schedule,
            "AWS::SES::EmailIdentity": self.email_identity,
            "AWS::SES::ConfigurationSet": self.configuration_set,
            "AWS::Pinpoint::App": self.pinpoint_app,
            "AWS::S3::Bucket": self.bucket,
            "AWS::SSM::Parameter": self.parameter,
            "AWS::SecretsManager::Secret": self.secret,
            "AWS::Cognito::UserPool": self.user_pool,
            "AWS::Cognito::UserPoolGroup": self.user_pool_group,
            "AWS::Cognito::UserPoolClient": self.user_pool_client,
            "AWS::ApiGatewayV2::Api": self.http_api,
            "AWS::ApiGatewayV2::Stage": self.http_stage,
            "AWS::ApiGatewayV2::Integration": self.http_integration,
            "AWS::ApiGatewayV2::Authorizer": self.http_authorizer,
            "AWS::ApiGatewayV2::Route": self.http_route,
        }
        # Functions and queues first so mappings and configs can find them.
        order = self.t.creation_order()
        late = {"AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"}
        order = [i for i in order if self.t.type_of(i) not in late] + [
            i for i in order if self.t.type_of(i) in late
        ]
        for logical_id in order:
            rtype = self.t.type_of(logical_id)
            if not self.t.is_active(logical_id):
                self.ignore(logical_id, rtype, "its Condition is false")
                continue
            if rtype in IGNORED_TYPES:
                self.ignore(logical_id, rtype, IGNORED_TYPES[rtype])
                continue
            creator = creators.get(rtype)
            if creator is None:
                reason = UNSUPPORTED_REASONS.get(rtype) or (
                    "custom resources do not run locally"
                    if rtype.startswith("Custom::")
                    else "resource type not emulated locally"
                )
                self.unsupported(logical_id, rtype, reason)
                continue
            try:
                creator(logical_id, self.t.properties(logical_id))
            except InvalidDefinition:
                raise  # AWS would refuse the whole stack: not a local limitation
            except (TemplateError, ValueError, KeyError) as exc:
                self.unsupported(logical_id, rtype, f"cannot resolve: {exc}")
            except Exception as exc:  # a moto/botocore error: report, keep provisioning
                LOG.warning("creating %s (%s) failed: %s", logical_id, rtype, exc)
                self.unsupported(logical_id, rtype, f"creation failed: {exc}")
        for key, output in dict(self.t.raw.get("Outputs") or {}).items():
            try:
                self.out.outputs[key] = str(self.t.resolve(output.get("Value")))
            except (TemplateError, ValueError, KeyError) as exc:
                LOG.info("output %s not resolved locally: %s", key, exc)
        for pump in self.out.pumps:
            pump.redrive = pump.queue_name in self._redrive_queues
            pump.visibility_timeout = self._visibility.get(pump.queue_name, 30)
        self.out.seconds = time.perf_counter() - started
        return self.out

    # --- DynamoDB ------------------------------------------------------------------------
    def table(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "TableName",
                "KeySchema",
                "AttributeDefinitions",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "BillingMode",
                "ProvisionedThroughput",
                "TimeToLiveSpecification",
                "StreamSpecification",
                "Replicas",
            },
            {
                "SSESpecification",
                "PointInTimeRecoverySpecification",
                "DeletionProtectionEnabled",
                "ContributorInsightsSpecification",
                "TableClass",
                "OnDemandThroughput",
                "WarmThroughput",
                "ResourcePolicy",
                "WriteProvisionedThroughputSettings",
                "WriteOnDemandThroughputSettings",
                "GlobalTableWitnesses",
                "MultiRegionConsistency",
            },
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        provisioned = r.get("BillingMode") == "PROVISIONED" or (
            "ProvisionedThroughput" in r and "BillingMode" not in r
        )
        throughput = r.get("ProvisionedThroughput") or {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": r["KeySchema"],
            "AttributeDefinitions": r["AttributeDefinitions"],
        }
        if provisioned:
            args["BillingMode"] = "PROVISIONED"
            args["ProvisionedThroughput"] = throughput
        else:
            args["BillingMode"] = "PAY_PER_REQUEST"
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = []
            for index in r.get(key) or []:
                clean = {
                    k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index
                }
                if provisioned and key == "GlobalSecondaryIndexes":
                    clean["ProvisionedThroughput"] = index.get("ProvisionedThroughput", throughput)
                indexes.append(clean)
            if indexes:
                args[key] = indexes
        stream = r.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            args["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        ddb = self.client("dynamodb")
        description = ddb.create_table(**args)["TableDescription"]
        ttl = r.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        attrs = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attrs["StreamArn"] = description["LatestStreamArn"]
        attrs["TableId"] = description.get("TableId", name)
        self.record(logical_id, physical=Physical(name, name, attrs))

    # --- SQS / SNS -----------------------------------------------------------------------
    def queue(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "QueueName",
                "FifoQueue",
                "ContentBasedDeduplication",
                "VisibilityTimeout",
                "RedrivePolicy",
                "DelaySeconds",
            },
            {
                "MessageRetentionPeriod",
                "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds",
                "RedriveAllowPolicy",
                "DeduplicationScope",
                "FifoThroughputLimit",
                "KmsMasterKeyId",
                "KmsDataKeyReusePeriodSeconds",
                "SqsManagedSseEnabled",
            },
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        attributes: dict[str, str] = {}
        for key in ("FifoQueue", "ContentBasedDeduplication"):
            if key in r:
                attributes[key] = str(r[key]).lower()
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize"):
            if key in r:
                attributes[key] = str(r[key])
        if int(r.get("DelaySeconds", 0) or 0) > 0:
            self.unsupported(
                logical_id,
                "AWS::SQS::Queue.DelaySeconds",
                "queue delays would be real time in moto; messages are delivered at once",
            )
        redrive = r.get("RedrivePolicy")
        if redrive:
            if isinstance(redrive, str):
                redrive = json.loads(redrive)
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": int(redrive.get("maxReceiveCount", 10)),
                }
            )
            self._redrive_queues.add(name)
            target = self._queue_by_arn.get(redrive["deadLetterTargetArn"])
            if target:
                self.out.dead_letter_queues[target[1]] = target[0]
        self._visibility[name] = int(r.get("VisibilityTimeout", 30))
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        physical = self.t.physical(logical_id)
        physical.attrs["QueueUrl"] = url
        self.record(logical_id, url=url, physical=Physical(url, name, physical.attrs))
        self._queue_by_arn[physical.attrs["Arn"]] = (logical_id, name)

    def mark_dead_letter_target(self, arn: str | None) -> None:
        if arn and arn in self._queue_by_arn:
            logical_id, name = self._queue_by_arn[arn]
            self.out.dead_letter_queues[name] = logical_id

    def topic(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"TopicName", "FifoTopic", "ContentBasedDeduplication", "Subscription"},
            {
                "DisplayName",
                "KmsMasterKeyId",
                "TracingConfig",
                "DeliveryStatusLogging",
                "ArchivePolicy",
                "DataProtectionPolicy",
                "SignatureVersion",
                "FifoThroughputScope",
            },
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        attributes = {
            k: str(r[k]).lower() for k in ("FifoTopic", "ContentBasedDeduplication") if k in r
        }
        sns = self.client("sns")
        topic_arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in r.get("Subscription") or []:
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol=subscription["Protocol"],
                Endpoint=subscription["Endpoint"],
            )
        self.record(
            logical_id,
            physical=Physical(topic_arn, name, {"TopicArn": topic_arn, "TopicName": name}),
        )

    def subscription(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "TopicArn",
                "Protocol",
                "Endpoint",
                "RawMessageDelivery",
                "FilterPolicy",
                "FilterPolicyScope",
            },
            {"Region", "RedrivePolicy", "DeliveryPolicy", "SubscriptionRoleArn", "ReplayPolicy"},
        )
        r = self.t.resolve(props)
        attributes: dict[str, str] = {}
        if "RawMessageDelivery" in r:
            attributes["RawMessageDelivery"] = str(r["RawMessageDelivery"]).lower()
        if "FilterPolicy" in r:
            policy = r["FilterPolicy"]
            attributes["FilterPolicy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if "FilterPolicyScope" in r:
            attributes["FilterPolicyScope"] = r["FilterPolicyScope"]
        arn = self.client("sns").subscribe(
            TopicArn=r["TopicArn"],
            Protocol=r["Protocol"],
            Endpoint=r["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        self.record(logical_id, arn=arn, physical=Physical(arn, arn, {"Arn": arn}))

    # --- EventBridge -----------------------------------------------------------------------
    def bus(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(logical_id, props, {"Name"}, {"KmsKeyIdentifier", "Policy", "LogConfig"})
        name = self.t.name_of(logical_id)
        if name != "default":
            self.client("events").create_event_bus(Name=name)
        self.record(logical_id)

    def rule(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"Name", "EventBusName", "EventPattern", "ScheduleExpression", "State", "Targets"},
            {"RoleArn"},
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        bus = self.t.bus_name(props.get("EventBusName"))
        args: dict[str, Any] = {"Name": name, "EventBusName": bus}
        if "EventPattern" in r:
            pattern = r["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in r:
            try:
                parse_schedule(r["ScheduleExpression"], anchor=_EPOCH)
            except ValueError as exc:
                self.unsupported(logical_id, "AWS::Events::Rule.ScheduleExpression", str(exc))
            args["ScheduleExpression"] = r["ScheduleExpression"]
        state = str(r.get("State", "ENABLED"))
        args["State"] = "DISABLED" if state == "DISABLED" else "ENABLED"
        events = self.client("events")
        rule_arn = events.put_rule(**args)["RuleArn"]
        targets = []
        for target in r.get("Targets") or []:
            service = _service_of(str(target.get("Arn", "")))
            if service not in NATIVE_TARGET_SERVICES:
                self.unsupported(
                    logical_id,
                    f"target {target.get('Id')} ({service})",
                    "target service not delivered locally",
                )
                continue
            for key in sorted(set(target) & UNSUPPORTED_TARGET_KEYS):
                self.unsupported(
                    logical_id,
                    f"target {target.get('Id')}.{key}",
                    "target parameter not emulated locally",
                )
            self.mark_dead_letter_target(target.get("DeadLetterConfig", {}).get("Arn"))
            targets.append({k: v for k, v in target.items() if k not in UNSUPPORTED_TARGET_KEYS})
        if targets:
            for start in range(0, len(targets), 10):
                events.put_targets(Rule=name, EventBusName=bus, Targets=targets[start : start + 10])
        self.record(logical_id, arn=rule_arn, physical=Physical(name, name, {"Arn": rule_arn}))

    def archive(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"ArchiveName", "SourceArn", "EventPattern", "RetentionDays"},
            {"KmsKeyIdentifier"},
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        args: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": r["SourceArn"]}
        if "EventPattern" in r:
            pattern = r["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "RetentionDays" in r:
            args["RetentionDays"] = int(r["RetentionDays"])
        archive_arn = self.client("events").create_archive(**args)["ArchiveArn"]
        self.record(
            logical_id, arn=archive_arn, physical=Physical(name, name, {"Arn": archive_arn})
        )
        self.unsupported(
            logical_id,
            "AWS::Events::Archive",
            "harmless: events are archived, but replays are not emulated",
        )

    # --- Lambda ----------------------------------------------------------------------------
    def function(self, logical_id: str, props: dict[str, Any]) -> None:
        code_name = self.t.metadata(logical_id).get(FUNCTION_METADATA_KEY)
        if code_name is None:
            if logical_id.startswith("LogRetention"):
                self.ignore(logical_id, "AWS::Lambda::Function", "CDK's log retention helper")
            else:
                self.unsupported(
                    logical_id,
                    "AWS::Lambda::Function",
                    f"no {FUNCTION_METADATA_KEY} metadata: no local handler to run",
                )
            return
        self.check(
            logical_id,
            props,
            {
                "FunctionName",
                "Environment",
                "MemorySize",
                "Timeout",
                "DeadLetterConfig",
                "Handler",
                "Runtime",
                "Code",
                "Role",
                "PackageType",
            },
            {
                "Architectures",
                "Layers",
                "TracingConfig",
                "LoggingConfig",
                "EphemeralStorage",
                "VpcConfig",
                "KmsKeyArn",
                "RecursiveLoop",
                "RuntimeManagementConfig",
                "SnapStart",
                "CodeSigningConfigArn",
                "ReservedConcurrentExecutions",
            },
        )
        if props.get("PackageType") == "Image":
            self.unsupported(
                logical_id,
                "AWS::Lambda::Function.PackageType",
                "container images do not run locally",
            )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        environment = {
            k: str(v) for k, v in (r.get("Environment", {}).get("Variables") or {}).items()
        }
        path = self.runner.handler_path(str(code_name))
        if not path.is_file():
            self.unsupported(
                logical_id,
                "AWS::Lambda::Function",
                f"{path} does not exist (kizuna:function {code_name!r})",
            )
        dead_letter = (r.get("DeadLetterConfig") or {}).get("TargetArn")
        self.mark_dead_letter_target(dead_letter)
        response = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=self._role_arn,
            Handler=str(r.get("Handler", "handler.handler")),
            Code={"ZipFile": self._zip},
            Environment={"Variables": environment},
            MemorySize=int(r.get("MemorySize", 128)),
            Timeout=int(r.get("Timeout", 3)),
        )
        spec = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=response["FunctionArn"],
            code_name=str(code_name),
            handler_path=path,
            environment=environment,
            memory_mb=int(r.get("MemorySize", 128)),
            timeout_seconds=int(r.get("Timeout", 3)),
            dead_letter_arn=dead_letter,
        )
        self.out.functions[name] = spec
        self.record(logical_id, arn=spec.arn, physical=Physical(name, name, {"Arn": spec.arn}))

    def _function_for(self, reference: str) -> FunctionSpec | None:
        name = reference.rsplit(":function:", maxsplit=1)[-1].split(":", maxsplit=1)[0]
        return self.out.functions.get(name)

    def event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "EventSourceArn",
                "FunctionName",
                "BatchSize",
                "FunctionResponseTypes",
                "Enabled",
                "FilterCriteria",
            },
            {
                "MaximumBatchingWindowInSeconds",
                "ScalingConfig",
                "MetricsConfig",
                "ProvisionedPollerConfig",
                "KmsKeyArn",
            },
        )
        r = self.t.resolve(props)
        source = str(r.get("EventSourceArn", ""))
        if _service_of(source) != "sqs":
            self.unsupported(
                logical_id,
                "AWS::Lambda::EventSourceMapping",
                f"only SQS sources are polled locally, not {source}",
            )
            return
        spec = self._function_for(str(r["FunctionName"]))
        queue = self._queue_by_arn.get(source)
        if spec is None or queue is None:
            self.unsupported(
                logical_id,
                "AWS::Lambda::EventSourceMapping",
                "its function or queue was not created locally",
            )
            return
        from moto.events.models import EventPattern

        filters = [
            EventPattern.load(
                f["Pattern"] if isinstance(f["Pattern"], str) else json.dumps(f["Pattern"])
            )
            for f in (r.get("FilterCriteria") or {}).get("Filters", [])
        ]
        queue_logical_id, queue_name = queue
        self.out.pumps.append(
            QueuePump(
                logical_id=logical_id,
                queue_name=queue_name,
                queue_url=self.t.physical(queue_logical_id).ref,
                queue_arn=source,
                function=spec,
                batch_size=int(r.get("BatchSize", 10)),
                report_failures="ReportBatchItemFailures" in (r.get("FunctionResponseTypes") or []),
                enabled=str(r.get("Enabled", True)).lower() != "false",
                filters=filters,
            )
        )
        self.record(logical_id, physical=Physical(logical_id, logical_id, {}))

    def event_invoke_config(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"FunctionName", "Qualifier", "MaximumRetryAttempts", "DestinationConfig"},
            {"MaximumEventAgeInSeconds"},
        )
        r = self.t.resolve(props)
        spec = self._function_for(str(r["FunctionName"]))
        if spec is None:
            self.unsupported(
                logical_id, "AWS::Lambda::EventInvokeConfig", "its function was not created locally"
            )
            return
        if "MaximumRetryAttempts" in r:
            spec.max_retry_attempts = int(r["MaximumRetryAttempts"])
        destinations = r.get("DestinationConfig") or {}
        spec.on_failure_arn = (destinations.get("OnFailure") or {}).get("Destination")
        self.mark_dead_letter_target(spec.on_failure_arn)
        if destinations.get("OnSuccess"):
            self.unsupported(
                logical_id,
                "AWS::Lambda::EventInvokeConfig.OnSuccess",
                "success destinations are not emulated locally",
            )
        self.record(logical_id, physical=Physical(logical_id, logical_id, {}))

    def function_url(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"TargetFunctionArn", "AuthType", "Qualifier"},
            {"Cors", "InvokeMode"},
        )
        r = self.t.resolve(props)
        spec = self._function_for(str(r["TargetFunctionArn"]))
        if spec is None:
            self.unsupported(logical_id, "AWS::Lambda::Url", "its function was not created locally")
        url_id = hashlib.sha256(f"{self.t.stack_name}/{logical_id}".encode()).hexdigest()[:32]
        host = f"{url_id}.lambda-url.{REGION}.on.aws"
        url = f"https://{host}/"
        if spec is not None:
            self.out.function_urls[host] = spec
        if r.get("AuthType") == "AWS_IAM":
            self.unsupported(
                logical_id,
                "AWS::Lambda::Url.AuthType",
                "harmless: IAM auth of function URLs is not checked locally",
            )
        function_arn = spec.arn if spec else str(r["TargetFunctionArn"])
        self.record(
            logical_id,
            url=url,
            physical=Physical(function_arn, url, {"FunctionUrl": url, "FunctionArn": function_arn}),
        )

    # --- Step Functions ------------------------------------------------------------------
    def state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "StateMachineName",
                "DefinitionString",
                "Definition",
                "DefinitionSubstitutions",
                "RoleArn",
                "StateMachineType",
            },
            {"LoggingConfiguration", "TracingConfiguration", "EncryptionConfiguration"},
        )
        r = self.t.resolve(props)
        if "DefinitionString" in r:
            definition = str(r["DefinitionString"])
        elif "Definition" in r:
            definition = json.dumps(r["Definition"])
        else:
            raise ValueError("no DefinitionString or Definition (S3 definitions are not read)")
        for key, value in (r.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        parsed = json.loads(definition)
        name = self.t.name_of(logical_id)
        # moto accepts any definition; CreateStateMachine on AWS refuses these: so do we.
        check_definition(parsed, name=f"state machine {logical_id} ({name})")
        compact = json.dumps(parsed, separators=(",", ":"))
        for needle, reason in UNSUPPORTED_ASL:
            if needle in compact:
                self.unsupported(logical_id, "AWS::StepFunctions::StateMachine", reason)
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=str(r.get("RoleArn") or self._role_arn),
            type=str(r.get("StateMachineType", "STANDARD")),
        )["stateMachineArn"]
        self.record(logical_id, arn=arn, physical=Physical(arn, name, {"Arn": arn, "Name": name}))

    # --- Scheduler -----------------------------------------------------------------------
    def schedule_group(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(logical_id, props, {"Name"})
        name = self.t.name_of(logical_id)
        arn = self.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        self.record(logical_id, arn=arn, physical=Physical(name, name, {"Arn": arn}))

    def schedule(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "Name",
                "GroupName",
                "ScheduleExpression",
                "ScheduleExpressionTimezone",
                "FlexibleTimeWindow",
                "Target",
                "State",
                "StartDate",
                "EndDate",
            },
            {"KmsKeyArn"},
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        parse_schedule(
            r["ScheduleExpression"],
            anchor=_EPOCH,
            timezone=r.get("ScheduleExpressionTimezone", "UTC"),
        )
        target = dict(r["Target"])
        target.setdefault("RoleArn", self._role_arn)
        if target["Arn"] != SFN_START_EXECUTION_TARGET and _service_of(target["Arn"]) not in (
            "lambda",
            "states",
            "sqs",
            "sns",
            "events",
        ):
            self.unsupported(
                logical_id,
                "AWS::Scheduler::Schedule.Target",
                f"target {target['Arn']} is not delivered locally",
            )
        args: dict[str, Any] = {
            "Name": name,
            "ScheduleExpression": r["ScheduleExpression"],
            "FlexibleTimeWindow": r.get("FlexibleTimeWindow") or {"Mode": "OFF"},
            "Target": target,
            "State": r.get("State", "ENABLED"),
        }
        for key in (
            "GroupName",
            "ScheduleExpressionTimezone",
            "StartDate",
            "EndDate",
            "Description",
        ):
            if key in r:
                args[key] = r[key]
        arn = self.client("scheduler").create_schedule(**args)["ScheduleArn"]
        self.record(logical_id, arn=arn, physical=Physical(name, name, {"Arn": arn}))

    # --- channels --------------------------------------------------------------------------
    def email_identity(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"EmailIdentity"},
            {
                "DkimAttributes",
                "DkimSigningAttributes",
                "FeedbackAttributes",
                "MailFromAttributes",
                "ConfigurationSetAttributes",
            },
        )
        identity = str(self.t.resolve(props["EmailIdentity"]))
        ses = self.client("ses")
        if "@" in identity:
            ses.verify_email_identity(EmailAddress=identity)
        else:
            ses.verify_domain_identity(Domain=identity)
        self.record(logical_id, physical=Physical(identity, identity, {}))

    def configuration_set(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"Name"},
            {
                "DeliveryOptions",
                "ReputationOptions",
                "SendingOptions",
                "SuppressionOptions",
                "TrackingOptions",
                "VdmOptions",
            },
        )
        name = self.t.name_of(logical_id)
        self.client("ses").create_configuration_set(ConfigurationSet={"Name": name})
        self.record(logical_id)

    def pinpoint_app(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(logical_id, props, {"Name"})
        name = self.t.name_of(logical_id)
        app = self.client("pinpoint").create_app(CreateApplicationRequest={"Name": name})
        app_id = app["ApplicationResponse"]["Id"]
        self.record(
            logical_id, physical=Physical(app_id, name, {"Arn": app["ApplicationResponse"]["Arn"]})
        )

    # --- storage and configuration -------------------------------------------------------
    def bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"BucketName"},
            {
                "BucketEncryption",
                "PublicAccessBlockConfiguration",
                "VersioningConfiguration",
                "LifecycleConfiguration",
                "OwnershipControls",
                "CorsConfiguration",
                "LoggingConfiguration",
                "ObjectLockEnabled",
                "ObjectLockConfiguration",
                "AccessControl",
                "IntelligentTieringConfigurations",
                "MetricsConfigurations",
                "AnalyticsConfigurations",
                "InventoryConfigurations",
            },
        )
        self.client("s3").create_bucket(Bucket=self.t.name_of(logical_id))
        self.record(logical_id)

    def parameter(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"Name", "Type", "Value"},
            {"Tier", "AllowedPattern", "DataType", "Policies"},
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        self.client("ssm").put_parameter(
            Name=name, Type=r.get("Type", "String"), Value=str(r["Value"]), Overwrite=True
        )
        physical = self.t.physical(logical_id)
        physical.attrs.update({"Type": r.get("Type", "String"), "Value": str(r["Value"])})
        self.record(logical_id)

    def secret(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"Name", "SecretString", "GenerateSecretString"},
            {"KmsKeyId", "ReplicaRegions"},
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        value = r.get("SecretString")
        if value is None:
            generate = r.get("GenerateSecretString") or {}
            secret = f"local-secret-{logical_id}"
            key = generate.get("GenerateStringKey")
            value = (
                json.dumps({**json.loads(generate.get("SecretStringTemplate", "{}")), key: secret})
                if key
                else secret
            )
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        self.record(logical_id, arn=arn, physical=Physical(arn, name, {"Id": arn}))

    # --- Cognito -------------------------------------------------------------------------
    def user_pool(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "UserPoolName",
                "Policies",
                "UsernameAttributes",
                "AliasAttributes",
                "AutoVerifiedAttributes",
                "Schema",
                "AdminCreateUserConfig",
                "MfaConfiguration",
                "UsernameConfiguration",
            },
            {
                "AccountRecoverySetting",
                "DeletionProtection",
                "UserPoolAddOns",
                "EmailConfiguration",
                "EmailVerificationMessage",
                "EmailVerificationSubject",
                "VerificationMessageTemplate",
                "SmsVerificationMessage",
                "SmsAuthenticationMessage",
                "SmsConfiguration",
                "UserPoolTags",
                "UserPoolTier",
                "DeviceConfiguration",
                "EnabledMfas",
                "UserAttributeUpdateSettings",
            },
        )
        r = self.t.resolve(props)
        name = self.t.name_of(logical_id)
        args: dict[str, Any] = {"PoolName": name}
        for key in (
            "Policies",
            "UsernameAttributes",
            "AliasAttributes",
            "AutoVerifiedAttributes",
            "Schema",
            "AdminCreateUserConfig",
            "UsernameConfiguration",
        ):
            if key in r:
                args[key] = r[key]
        mfa = str(r.get("MfaConfiguration", "OFF"))
        if mfa != "OFF":
            self.unsupported(
                logical_id, "AWS::Cognito::UserPool.MfaConfiguration", "MFA is not emulated locally"
            )
        pool = self.client("cognito-idp").create_user_pool(**args)["UserPool"]
        pool_id = str(pool["Id"])
        provider = f"cognito-idp.{REGION}.amazonaws.com/{pool_id}"
        self.out.user_pools[pool_id] = logical_id
        self.record(
            logical_id,
            arn=pool["Arn"],
            physical=Physical(
                pool_id,
                name,
                {
                    "Arn": pool["Arn"],
                    "UserPoolId": pool_id,
                    "ProviderName": provider,
                    "ProviderURL": f"https://{provider}",
                },
            ),
        )

    def user_pool_group(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id, props, {"UserPoolId", "GroupName", "Precedence", "Description"}, {"RoleArn"}
        )
        r = self.t.resolve(props)
        name = str(r.get("GroupName") or self.t.name_of(logical_id))
        args: dict[str, Any] = {"UserPoolId": str(r["UserPoolId"]), "GroupName": name}
        if "Precedence" in r:
            args["Precedence"] = int(r["Precedence"])
        if "Description" in r:
            args["Description"] = str(r["Description"])
        self.client("cognito-idp").create_group(**args)
        self.record(logical_id, physical=Physical(name, name, {}))

    def user_pool_client(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "UserPoolId",
                "ClientName",
                "ExplicitAuthFlows",
                "GenerateSecret",
                "IdTokenValidity",
                "AccessTokenValidity",
                "RefreshTokenValidity",
                "TokenValidityUnits",
                "ReadAttributes",
                "WriteAttributes",
            },
            {
                "PreventUserExistenceErrors",
                "EnableTokenRevocation",
                "AuthSessionValidity",
                "SupportedIdentityProviders",
                "AllowedOAuthFlows",
                "AllowedOAuthScopes",
                "AllowedOAuthFlowsUserPoolClient",
                "CallbackURLs",
                "LogoutURLs",
                "DefaultRedirectURI",
                "EnablePropagateAdditionalUserContextData",
                "AnalyticsConfiguration",
                "RefreshTokenRotation",
            },
        )
        r = self.t.resolve(props)
        name = str(r.get("ClientName") or self.t.name_of(logical_id))
        args: dict[str, Any] = {"UserPoolId": str(r["UserPoolId"]), "ClientName": name}
        for key in (
            "ExplicitAuthFlows",
            "GenerateSecret",
            "IdTokenValidity",
            "AccessTokenValidity",
            "RefreshTokenValidity",
            "TokenValidityUnits",
            "ReadAttributes",
            "WriteAttributes",
        ):
            if key in r:
                args[key] = r[key]
        if "GenerateSecret" in args:
            args["GenerateSecret"] = str(args["GenerateSecret"]).lower() == "true"
        client = self.client("cognito-idp").create_user_pool_client(**args)["UserPoolClient"]
        client_id = str(client["ClientId"])
        self.record(
            logical_id,
            physical=Physical(
                client_id,
                name,
                {
                    "ClientId": client_id,
                    "Name": name,
                    "ClientSecret": str(client.get("ClientSecret", "")),
                },
            ),
        )

    # --- API Gateway HTTP APIs (served by kizuna_tools.local.gateway) ----------------------
    def _api(self, logical_id: str, reference: Any) -> HttpApi:
        api = self.out.http_apis.get(str(reference))
        if api is None:
            raise ValueError(f"{logical_id}: its API {reference} was not created locally")
        return api

    def http_api(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"Name", "ProtocolType"},
            {
                "CorsConfiguration",
                "DisableExecuteApiEndpoint",
                "RouteSelectionExpression",
                "IpAddressType",
                "DisableSchemaValidation",
                "FailOnWarnings",
                "Version",
                "ApiKeySelectionExpression",
            },
        )
        r = self.t.resolve(props)
        if r.get("ProtocolType") != "HTTP":
            self.unsupported(
                logical_id,
                "AWS::ApiGatewayV2::Api.ProtocolType",
                f"only HTTP APIs are served locally, not {r.get('ProtocolType')}",
            )
            return
        name = str(r.get("Name") or self.t.name_of(logical_id))
        api_id = str(
            self.client("apigatewayv2").create_api(Name=name, ProtocolType="HTTP")["ApiId"]
        )
        api = HttpApi(api_id=api_id, name=name, logical_id=logical_id)
        self.out.http_apis[api_id] = api
        endpoint = f"https://{api.domain}"
        self.record(
            logical_id,
            url=endpoint,
            physical=Physical(api_id, name, {"ApiId": api_id, "ApiEndpoint": endpoint}),
        )

    def http_stage(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"ApiId", "StageName", "AutoDeploy", "StageVariables"},
            {
                "AccessLogSettings",
                "DefaultRouteSettings",
                "RouteSettings",
                "DeploymentId",
                "ClientCertificateId",
                "AccessPolicyId",
            },
        )
        r = self.t.resolve(props)
        api = self._api(logical_id, r["ApiId"])
        stage = str(r["StageName"])
        api.stages[stage] = {str(k): str(v) for k, v in (r.get("StageVariables") or {}).items()}
        self.client("apigatewayv2").create_stage(ApiId=api.api_id, StageName=stage)
        self.record(logical_id, physical=Physical(stage, stage, {}))

    def http_integration(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"ApiId", "IntegrationType", "IntegrationUri", "PayloadFormatVersion"},
            {"IntegrationMethod", "TimeoutInMillis", "Description", "CredentialsArn"},
        )
        r = self.t.resolve(props)
        api = self._api(logical_id, r["ApiId"])
        uri = str(r.get("IntegrationUri", ""))
        kind = str(r.get("IntegrationType", ""))
        version = str(r.get("PayloadFormatVersion", ""))
        spec = self._function_for(
            uri.rsplit("/functions/", maxsplit=1)[-1].removesuffix("/invocations")
        )
        if kind != "AWS_PROXY" or spec is None:
            self.unsupported(
                logical_id,
                "AWS::ApiGatewayV2::Integration",
                f"only Lambda proxy integrations of the template's functions are served "
                f"locally, not {kind} {uri}",
            )
        elif version != "2.0":
            self.unsupported(
                logical_id,
                "AWS::ApiGatewayV2::Integration.PayloadFormatVersion",
                f"only payload format 2.0 is emulated locally, not {version or '1.0'}",
            )
            spec = None
        integration_id = str(
            self.client("apigatewayv2").create_integration(
                ApiId=api.api_id,
                IntegrationType=kind or "AWS_PROXY",
                IntegrationUri=uri,
                PayloadFormatVersion=version or "1.0",
            )["IntegrationId"]
        )
        api.integrations[integration_id] = spec
        if spec is not None:
            # The local server speaks plain HTTP on 127.0.0.1: a Secure cookie would never
            # come back, so functions behind an HTTP API set theirs without it.
            spec.environment["SECURE_COOKIES"] = "false"
        self.record(logical_id, physical=Physical(integration_id, integration_id, {}))

    def http_authorizer(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {"ApiId", "AuthorizerType", "IdentitySource", "JwtConfiguration", "Name"},
        )
        r = self.t.resolve(props)
        api = self._api(logical_id, r["ApiId"])
        if r.get("AuthorizerType") != "JWT":
            raise ValueError(f"{r.get('AuthorizerType')} authorizers are not emulated locally")
        sources = r.get("IdentitySource") or ["$request.header.Authorization"]
        jwt = r.get("JwtConfiguration") or {}
        name = str(r.get("Name") or logical_id)
        authorizer_id = str(
            self.client("apigatewayv2").create_authorizer(
                ApiId=api.api_id,
                AuthorizerType="JWT",
                IdentitySource=[str(s) for s in sources],
                JwtConfiguration=jwt,
                Name=name,
            )["AuthorizerId"]
        )
        api.authorizers[authorizer_id] = JwtAuthorizer(
            authorizer_id=authorizer_id,
            name=name,
            issuer=str(jwt.get("Issuer", "")),
            audience=tuple(str(a) for a in jwt.get("Audience") or []),
            identity_source=str(sources[0]),
        )
        self.record(logical_id, physical=Physical(authorizer_id, name, {}))

    def http_route(self, logical_id: str, props: dict[str, Any]) -> None:
        self.check(
            logical_id,
            props,
            {
                "ApiId",
                "RouteKey",
                "Target",
                "AuthorizationType",
                "AuthorizerId",
                "AuthorizationScopes",
            },
            {"OperationName", "ApiKeyRequired"},
        )
        r = self.t.resolve(props)
        api = self._api(logical_id, r["ApiId"])
        key = str(r["RouteKey"])
        if key != "$default":
            method, _, path = key.partition(" ")
            if method not in {"ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
                raise ValueError(f"route key {key!r}: unknown method")
            if not path.startswith("/"):
                raise ValueError(f"route key {key!r}: the path must start with /")
        target = str(r.get("Target", ""))
        spec = api.integrations.get(target.removeprefix("integrations/"))
        if spec is None:
            self.unsupported(
                logical_id, "AWS::ApiGatewayV2::Route", f"{key}: its integration is not served"
            )
        authorization = str(r.get("AuthorizationType", "NONE"))
        authorizer = None
        if authorization == "JWT":
            authorizer = api.authorizers.get(str(r.get("AuthorizerId", "")))
            if authorizer is None:
                raise ValueError(f"{key}: its JWT authorizer was not created locally")
        elif authorization not in ("NONE", "AWS_IAM"):
            self.unsupported(
                logical_id,
                "AWS::ApiGatewayV2::Route.AuthorizationType",
                f"{authorization} authorizers are not emulated locally (the route answers 403)",
            )
        if str(r.get("ApiKeyRequired", "false")).lower() == "true":
            self.unsupported(
                logical_id, "AWS::ApiGatewayV2::Route.ApiKeyRequired", "HTTP APIs have no keys"
            )
        route_id = str(
            self.client("apigatewayv2").create_route(
                ApiId=api.api_id, RouteKey=key, Target=target, AuthorizationType=authorization
            )["RouteId"]
        )
        api.routes.append(
            Route(
                route_key=key,
                logical_id=logical_id,
                function=spec,
                authorization=authorization,  # type: ignore[arg-type]
                authorizer=authorizer,
                scopes=tuple(str(s) for s in r.get("AuthorizationScopes") or []),
            )
        )
        self.record(logical_id, physical=Physical(route_id, key, {}))
