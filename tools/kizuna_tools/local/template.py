"""A synthesized CloudFormation template, with its intrinsic functions resolved locally.

Physical names are deterministic (``<stack>-<LogicalId>``, or the name the template sets),
so two runs of the same template see the same table and queue names.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ACCOUNT_ID: Final[str] = "123456789012"
REGION: Final[str] = "us-east-1"
PARTITION: Final[str] = "aws"
URL_SUFFIX: Final[str] = "amazonaws.com"


class TemplateError(Exception):
    """The template uses something the local runtime cannot resolve."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

# The property that names a resource, where the template may set it.
NAME_PROPERTY: Final[dict[str, str]] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Events::Archive": "ArchiveName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SSM::Parameter": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::SES::EmailIdentity": "EmailIdentity",
    "AWS::SES::Template": "TemplateName",
    "AWS::Pinpoint::App": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::Cognito::UserPoolClient": "ClientName",
    "AWS::Cognito::UserPoolGroup": "GroupName",
    "AWS::ApiGatewayV2::Api": "Name",
}

_NAME_LIMITS: Final[dict[str, int]] = {
    "AWS::SQS::Queue": 80,
    "AWS::Lambda::Function": 64,
    "AWS::StepFunctions::StateMachine": 80,
    "AWS::Events::Rule": 64,
    "AWS::Events::Archive": 48,
    "AWS::IAM::Role": 64,
    "AWS::S3::Bucket": 63,
    "AWS::Scheduler::Schedule": 64,
    "AWS::Scheduler::ScheduleGroup": 64,
    "AWS::Cognito::UserPool": 128,
    "AWS::Cognito::UserPoolClient": 128,
}

_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Physical:
    """What ``Ref`` and ``Fn::GetAtt`` return for one resource."""

    ref: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)


def arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT_ID}/{name}"


class Template:
    """Resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub`` and friends."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        stack_name: str = "kizuna",
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.raw = template
        self.stack_name = stack_name
        self.resources: dict[str, dict[str, Any]] = dict(template.get("Resources", {}))
        self._parameters = dict(parameters or {})
        self._physical: dict[str, Physical] = {}
        self._conditions: dict[str, bool] = {}

    # --- resources -----------------------------------------------------------------------
    def type_of(self, logical_id: str) -> str:
        return str(self.resources[logical_id].get("Type", ""))

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Properties") or {})

    def metadata(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Metadata") or {})

    def is_active(self, logical_id: str) -> bool:
        """False when the resource's ``Condition`` is false."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(str(condition))

    def physical(self, logical_id: str) -> Physical:
        if logical_id not in self.resources:
            raise TemplateError(f"no resource {logical_id!r} in the template")
        if logical_id not in self._physical:
            self._physical[logical_id] = self._default_physical(logical_id)
        return self._physical[logical_id]

    def set_physical(self, logical_id: str, physical: Physical) -> None:
        """Record what provisioning really created (e.g. a generated application id)."""
        self._physical[logical_id] = physical

    def name_of(self, logical_id: str) -> str:
        rtype = self.type_of(logical_id)
        prop = NAME_PROPERTY.get(rtype)
        props = self.properties(logical_id)
        if prop and props.get(prop) is not None:
            return str(self.resolve(props[prop]))
        name = f"{self.stack_name}-{logical_id}"
        fifo = rtype == "AWS::SQS::Queue" and str(self.resolve(props.get("FifoQueue"))) in (
            "True",
            "true",
        )
        limit = _NAME_LIMITS.get(rtype, 255) - (5 if fifo else 0)
        name = name[:limit]
        if rtype == "AWS::S3::Bucket":
            name = name.lower()
        return name + (".fifo" if fifo else "")

    def _default_physical(self, logical_id: str) -> Physical:
        rtype = self.type_of(logical_id)
        name = self.name_of(logical_id)
        props = self.properties(logical_id)
        service = rtype.split("::")[1].lower() if rtype.count("::") >= 2 else "unknown"
        if rtype in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            table_arn = arn("dynamodb", f"table/{name}")
            return Physical(
                name, name, {"Arn": table_arn, "StreamArn": f"{table_arn}/stream/local"}
            )
        if rtype == "AWS::SQS::Queue":
            url = queue_url(name)
            return Physical(
                url, name, {"Arn": arn("sqs", name), "QueueName": name, "QueueUrl": url}
            )
        if rtype == "AWS::SNS::Topic":
            topic_arn = arn("sns", name)
            return Physical(topic_arn, name, {"TopicArn": topic_arn, "TopicName": name})
        if rtype == "AWS::Events::EventBus":
            return Physical(name, name, {"Arn": arn("events", f"event-bus/{name}"), "Name": name})
        if rtype == "AWS::Events::Rule":
            bus = self.bus_name(props.get("EventBusName"))
            prefix = "" if bus == "default" else f"{bus}/"
            return Physical(name, name, {"Arn": arn("events", f"rule/{prefix}{name}")})
        if rtype == "AWS::Events::Archive":
            return Physical(name, name, {"Arn": arn("events", f"archive/{name}")})
        if rtype == "AWS::Lambda::Function":
            return Physical(name, name, {"Arn": arn("lambda", f"function:{name}")})
        if rtype == "AWS::Lambda::LayerVersion":
            layer_arn = arn("lambda", f"layer:{name}:1")
            return Physical(layer_arn, name, {"LayerVersionArn": layer_arn})
        if rtype == "AWS::StepFunctions::StateMachine":
            sm_arn = arn("states", f"stateMachine:{name}")
            return Physical(sm_arn, name, {"Arn": sm_arn, "Name": name})
        if rtype == "AWS::IAM::Role":
            role_arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}"
            return Physical(
                name, name, {"Arn": role_arn, "RoleId": f"AROA{logical_id.upper()}"[:21]}
            )
        if rtype in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            policy_arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:policy/{name}"
            return Physical(policy_arn if rtype.endswith("ManagedPolicy") else name, name, {})
        if rtype == "AWS::Logs::LogGroup":
            return Physical(name, name, {"Arn": arn("logs", f"log-group:{name}:*")})
        if rtype == "AWS::S3::Bucket":
            return Physical(
                name,
                name,
                {
                    "Arn": f"arn:{PARTITION}:s3:::{name}",
                    "DomainName": f"{name}.s3.{URL_SUFFIX}",
                    "RegionalDomainName": f"{name}.s3.{REGION}.{URL_SUFFIX}",
                    "WebsiteURL": f"http://{name}.s3-website-{REGION}.{URL_SUFFIX}",
                },
            )
        if rtype == "AWS::Scheduler::Schedule":
            group = str(self.resolve(props.get("GroupName") or "default"))
            return Physical(name, name, {"Arn": arn("scheduler", f"schedule/{group}/{name}")})
        if rtype == "AWS::Scheduler::ScheduleGroup":
            return Physical(name, name, {"Arn": arn("scheduler", f"schedule-group/{name}")})
        if rtype == "AWS::KMS::Key":
            key_id = f"local-{logical_id}".lower()
            return Physical(key_id, key_id, {"Arn": arn("kms", f"key/{key_id}"), "KeyId": key_id})
        if rtype == "AWS::SecretsManager::Secret":
            secret_arn = arn("secretsmanager", f"secret:{name}")
            return Physical(secret_arn, name, {"Id": secret_arn})
        if rtype == "AWS::Pinpoint::App":
            return Physical(name, name, {"Arn": arn("mobiletargeting", f"apps/{name}")})
        return Physical(name, name, {"Arn": arn(service, f"{logical_id.lower()}/{name}")})

    def bus_name(self, value: Any) -> str:
        """An ``EventBusName`` property (a name or an ARN, or absent) as a bus name."""
        if value is None:
            return "default"
        resolved = str(self.resolve(value))
        return resolved.rsplit("/", 1)[-1] if resolved.startswith("arn:") else resolved

    # --- parameters, conditions, intrinsics ----------------------------------------------
    def parameter(self, name: str) -> Any:
        if name in self._parameters:
            return self._parameters[name]
        spec = self.raw.get("Parameters", {}).get(name)
        if spec is None:
            raise TemplateError(f"Ref to unknown parameter or resource {name!r}")
        if "Default" not in spec:
            raise TemplateError(f"parameter {name!r} has no Default; pass parameters={{...}}")
        default = spec["Default"]
        if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
            raise TemplateError(f"parameter {name!r} reads SSM at deploy time; pass a value")
        return default

    def pseudo(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": arn("cloudformation", f"stack/{self.stack_name}/local"),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name!r}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.resources:
            return self.physical(name).ref
        return self.parameter(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        physical = self.physical(logical_id)
        if attribute in physical.attrs:
            return physical.attrs[attribute]
        if attribute in ("Name", "Id"):
            return physical.name
        raise TemplateError(
            f"Fn::GetAtt {logical_id}.{attribute} ({self.type_of(logical_id)}) is not known locally"
        )

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.raw.get("Conditions", {}).get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic function in ``value``."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(str(logical_id), str(self.resolve(attribute)))
            if key == "Fn::Join":
                separator, parts = arg
                return str(separator).join(_text(p) for p in self.resolve(parts))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(str(separator))
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::And":
                return all(bool(self.resolve(c)) for c in arg)
            if key == "Fn::Or":
                return any(bool(self.resolve(c)) for c in arg)
            if key == "Fn::Not":
                return not bool(self.resolve(arg[0]))
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg[:3])
                return self.raw["Mappings"][mapping][top][second]
            if key == "Fn::Base64":
                return base64.b64encode(str(self.resolve(arg)).encode()).decode()
            if key == "Fn::GetAZs":
                return [f"{REGION}{zone}" for zone in "abcdef"]
            if key == "Fn::Length":
                return len(self.resolve(arg))
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if key == "Fn::ImportValue":
                raise TemplateError("Fn::ImportValue needs another stack; not available locally")
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic function {key} is not supported locally")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return _text(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return self.get_att(logical_id, attribute)
            return _text(self.ref(expression))

        return _SUB_VAR.sub(replace, text)

    # --- dependencies ----------------------------------------------------------------------
    def dependencies(self, logical_id: str) -> set[str]:
        resource = self.resources[logical_id]
        found: set[str] = set()
        depends_on = resource.get("DependsOn") or []
        found.update([depends_on] if isinstance(depends_on, str) else depends_on)
        for ref in _references(resource.get("Properties") or {}):
            if ref in self.resources:
                found.add(ref)
        found.discard(logical_id)
        return found

    def creation_order(self) -> list[str]:
        """Logical ids, dependencies first, otherwise in template order."""
        order: list[str] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(logical_id: str) -> None:
            if logical_id in done or logical_id in visiting:
                return
            visiting.add(logical_id)
            for dependency in sorted(self.dependencies(logical_id), key=list(self.resources).index):
                visit(dependency)
            visiting.discard(logical_id)
            done.add(logical_id)
            order.append(logical_id)

        for logical_id in self.resources:
            visit(logical_id)
        return order


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                yield arg
                return
            if key == "Fn::GetAtt":
                yield (arg.split(".", 1)[0] if isinstance(arg, str) else str(arg[0]))
                return
            if key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for match in _SUB_VAR.finditer(str(text)):
                    expression = match.group(1)
                    if not expression.startswith("!"):
                        yield expression.split(".", 1)[0]
                if isinstance(arg, list):
                    yield from _references(arg[1])
                return
        for item in value.values():
            yield from _references(item)
