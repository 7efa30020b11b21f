"""CloudFormation, Step Functions and Lambda limits the Kizuna stack must stay within, and
how many programs one stack holds.

Every enabled program costs a few resources (its state machine, its log group, its failure
alarm) and some template bytes (its definition, its alarm on the dashboard, its ARN in the
policies). :func:`check_program_capacity` refuses, at synth, more programs than one stack
holds, with a clear message, before CloudFormation would refuse the deploy.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# CloudFormation quotas (per stack / template)
MAX_TEMPLATE_BYTES = 1_000_000  # template body in S3 (cdk deploy uploads it there)
MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200
MAX_MAPPINGS = 200
MAX_LOGICAL_ID = 255
# Step Functions: a state machine definition is at most 1 MB; Lambda: the environment
# variables of a function at most 4 KB (keys and values together).
MAX_DEFINITION_BYTES = 1_048_576
MAX_ENVIRONMENT_BYTES = 4096
# An intrinsic (Ref, GetAtt, ...) resolves at deploy time; counted as this many bytes.
RESOLVED_TOKEN_BYTES = 256
# In a function's environment an intrinsic is one of this stack's names, ARNs or queue URLs:
# at most about 60 bytes of partition, service, region and account, and a generated name of
# at most 80 (queues, state machines) or the stack's name, a logical id part and a 13-character
# suffix (tables), which MAX_STACK_NAME keeps under 100.
RESOLVED_ENV_TOKEN_BYTES = 160
MAX_STACK_NAME = 40  # KizunaStack refuses a longer stack name (see RESOLVED_ENV_TOKEN_BYTES)

# Measured on the seed programs by tests/infra/test_conformance.py, rounded up: the stack
# without programs, and what each enabled program adds. The test fails if they drift below
# what synthesis measures.
# 152 before issue 16, +28 the HTTP API, console and WAF; 188 after issue 18; 193 with the
# journey timers (a Scheduler group, the role its schedules run as and that role's policy);
# 196 with the erasure sweeps' role and its policy; 198 with the email provider-report alarms;
# 201 with the SendFailed alarms of webhook, direct mail and no channel
BASE_RESOURCES = 201
RESOURCES_PER_PROGRAM = 3
# 202.6 KB measured after issue 16 (the API: Cognito, HTTP API, CloudFront, WAF, its grants);
# 212.0 KB after issue 18 (the LINE webhook function, the print-file bucket, the card routes);
# 220.0 KB with the journey timers (their group, role and grants on three functions);
# 223.0 KB with the erasure sweeps (their role, its grants, ingest's environment);
# 224.4 KB with the API's DescribeExecution on the campaign executions;
# 225.8 KB with the second bus-policy statement (sources kizuna.*) and the SES rule's set;
# 228.6 KB with the email provider-report alarms (auth-failure, virus) and their dashboard graph;
# 231.4 KB with the SendFailed alarms of webhook, direct mail and no channel
BASE_TEMPLATE_BYTES = 232_000
TEMPLATE_BYTES_PER_PROGRAM = 8_000
# Headroom kept under each quota for what is not a program (a new function, a new table).
MARGIN = 0.1

_LOGICAL_ID = re.compile(r"^[A-Za-z0-9]+\Z")
_PROGRAM_METADATA_KEY = "kizuna:program"


class TooManyProgramsError(ValueError):
    """More enabled programs than one stack can hold."""


@dataclass(frozen=True)
class ProgramCost:
    resources: float
    template_bytes: float


@dataclass(frozen=True)
class Capacity:
    """How many programs fit under each quota, headroom (:data:`MARGIN`) kept."""

    by_resources: int
    by_template_bytes: int

    @property
    def programs(self) -> int:
        return min(self.by_resources, self.by_template_bytes)


def template_body_bytes(template: Mapping[str, Any]) -> int:
    """Size of the template file ``cdk synth`` writes and ``cdk deploy`` uploads
    (``JSON.stringify(template, undefined, 1)``, UTF-8)."""
    return len(json.dumps(template, indent=1, ensure_ascii=False).encode("utf-8"))


def _resolved_bytes(value: Any, token: int = RESOLVED_TOKEN_BYTES) -> int:
    """Bytes of a property once deployed: literal text as is, each intrinsic as ``token``
    bytes, joins as the sum of their parts."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, Mapping) and len(value) == 1:
        (name, arg), *_ = value.items()
        if name == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            parts = arg[1] if isinstance(arg[1], list) else [arg[1]]
            separator = len(str(arg[0]).encode("utf-8")) * max(len(parts) - 1, 0)
            return separator + sum(_resolved_bytes(p, token) for p in parts)
        if name == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) else arg
            tokens = len(re.findall(r"\$\{[^}]+\}", str(text)))
            return len(str(text).encode("utf-8")) + tokens * token
        if name.startswith("Fn::") or name == "Ref":
            return token
    return len(json.dumps(value).encode("utf-8"))


def _of_type(template: Mapping[str, Any], resource_type: str) -> Iterator[tuple[str, Any]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == resource_type:
            yield logical_id, resource


def template_problems(template: Mapping[str, Any]) -> list[str]:
    """Every quota the synthesized template breaks (empty if none)."""
    problems: list[str] = []
    body = template_body_bytes(template)
    if body > MAX_TEMPLATE_BYTES:
        problems.append(f"template body: {body:,} bytes, over {MAX_TEMPLATE_BYTES:,}")
    for section, limit in (
        ("Resources", MAX_RESOURCES),
        ("Outputs", MAX_OUTPUTS),
        ("Parameters", MAX_PARAMETERS),
        ("Mappings", MAX_MAPPINGS),
    ):
        count = len(template.get(section, {}))
        if count > limit:
            problems.append(f"{section}: {count}, over {limit}")
        for logical_id in template.get(section, {}):
            if len(logical_id) > MAX_LOGICAL_ID or not _LOGICAL_ID.match(logical_id):
                problems.append(
                    f"{section}.{logical_id}: logical ids are alphanumeric, at most "
                    f"{MAX_LOGICAL_ID} characters"
                )
    for logical_id, machine in _of_type(template, "AWS::StepFunctions::StateMachine"):
        definition = _resolved_bytes(machine["Properties"].get("DefinitionString", ""))
        if definition > MAX_DEFINITION_BYTES:
            problems.append(
                f"{logical_id}: definition of {definition:,} bytes, over {MAX_DEFINITION_BYTES:,}"
            )
    for logical_id, function in _of_type(template, "AWS::Lambda::Function"):
        size = environment_bytes(function)
        if size > MAX_ENVIRONMENT_BYTES:
            problems.append(
                f"{logical_id}: environment of about {size:,} bytes, over {MAX_ENVIRONMENT_BYTES:,}"
            )
    return problems


class TemplateLimitError(ValueError):
    """A synthesized template that CloudFormation, Lambda or Step Functions would refuse."""


def check_template(template: Mapping[str, Any], name: str = "Kizuna") -> None:
    """Raise :class:`TemplateLimitError` with every quota ``template`` breaks: synthesis (the
    CDK app, the local runtime's stack) fails here instead of the deploy."""
    problems = template_problems(template)
    if problems:
        hint = (
            " (a function's environment carries the configuration, KIZUNA_CONFIG: declare "
            "fewer custom attributes and events, or shorter descriptions and enums)"
            if any("environment" in p for p in problems)
            else ""
        )
        listed = "".join(f"\n  - {p}" for p in problems)
        raise TemplateLimitError(f"{name}: AWS would refuse this template{hint}:{listed}")


def environment_bytes(function: Mapping[str, Any]) -> int:
    """Keys and values of a function's environment, each intrinsic counted as the longest
    name, ARN or URL it can resolve to (:data:`RESOLVED_ENV_TOKEN_BYTES`)."""
    variables = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return sum(
        len(k.encode("utf-8")) + _resolved_bytes(v, RESOLVED_ENV_TOKEN_BYTES)
        for k, v in variables.items()
    )


def definition_bytes(machine: Mapping[str, Any]) -> int:
    return _resolved_bytes(machine.get("Properties", {}).get("DefinitionString", ""))


def program_ids(template: Mapping[str, Any]) -> list[str]:
    """Programs with a state machine in the template (from its ``kizuna:program`` metadata)."""
    return [
        str(resource["Metadata"][_PROGRAM_METADATA_KEY])
        for _, resource in _of_type(template, "AWS::StepFunctions::StateMachine")
        if _PROGRAM_METADATA_KEY in resource.get("Metadata", {})
    ]


def program_resources(template: Mapping[str, Any], program_id: str) -> list[str]:
    """Logical ids of the resources one program adds: those of its construct
    (``.../Journeys/<program id>/...``) and those named after it elsewhere (its alarm)."""
    token = "Journeys" + re.sub(r"[^A-Za-z0-9]", "", program_id)
    return [logical_id for logical_id in template.get("Resources", {}) if token in logical_id]


def marginal_cost(
    smaller: Mapping[str, Any],
    smaller_programs: int,
    larger: Mapping[str, Any],
    larger_programs: int,
) -> ProgramCost:
    """What one program costs, from two syntheses of the same stack with different numbers
    of programs (policies, dashboard and rule patterns included)."""
    extra = larger_programs - smaller_programs
    if extra <= 0:
        raise ValueError("the larger synthesis needs more programs")
    resources = len(larger.get("Resources", {})) - len(smaller.get("Resources", {}))
    body = template_body_bytes(larger) - template_body_bytes(smaller)
    return ProgramCost(resources=resources / extra, template_bytes=body / extra)


def capacity(resources: int, template_bytes: int, programs: int, cost: ProgramCost) -> Capacity:
    """How many programs fit, given a template with ``programs`` programs and what each costs."""
    base_resources = resources - programs * cost.resources
    base_bytes = template_bytes - programs * cost.template_bytes
    return Capacity(
        by_resources=math.floor(
            (MAX_RESOURCES * (1 - MARGIN) - base_resources) / max(cost.resources, 1e-9)
        ),
        by_template_bytes=math.floor(
            (MAX_TEMPLATE_BYTES * (1 - MARGIN) - base_bytes) / max(cost.template_bytes, 1e-9)
        ),
    )


def planned_capacity() -> Capacity:
    """:func:`capacity` from the measured constants above (no synthesis needed)."""
    cost = ProgramCost(RESOURCES_PER_PROGRAM, TEMPLATE_BYTES_PER_PROGRAM)
    return capacity(BASE_RESOURCES, BASE_TEMPLATE_BYTES, 0, cost)


def capacity_report(cost: ProgramCost, fit: Capacity, programs: int) -> str:
    return (
        f"one program costs {cost.resources:g} resources and {cost.template_bytes:,.0f} "
        f"template bytes; with {MARGIN:.0%} headroom one stack holds {fit.by_resources} "
        f"programs under {MAX_RESOURCES} resources and {fit.by_template_bytes} under "
        f"{MAX_TEMPLATE_BYTES:,} bytes: {fit.programs} programs (now {programs})"
    )


def check_program_capacity(program_count: int) -> None:
    """Raise :class:`TooManyProgramsError` if ``program_count`` enabled programs would not fit
    in one stack (call at synth, once the enabled programs are known)."""
    fit = planned_capacity()
    if program_count > fit.programs:
        binding = (
            f"{MAX_RESOURCES} resources"
            if fit.by_resources <= fit.by_template_bytes
            else f"a {MAX_TEMPLATE_BYTES:,}-byte template"
        )
        raise TooManyProgramsError(
            f"{program_count} enabled programs, but one Kizuna stack holds at most "
            f"{fit.programs} (CloudFormation's limit of {binding}, {MARGIN:.0%} headroom kept): "
            f"disable programs (enabled: false) or deploy them in a second stack"
        )
