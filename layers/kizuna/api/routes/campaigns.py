"""Campaigns: list, read, create and update (JSON or YAML, validated as ``kizuna campaigns
validate`` does), cancel; estimate, dry run, preview; schedule, pause, resume.

Reads need the ``viewer`` group, writes ``marketer``; every write is audited. A preview
with a chosen customer's data, and a dry run's rendered samples (a real member's message),
need ``marketer`` too: they show personal data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Final

import yaml
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError, NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kizuna.analytics.stats import Lift
from kizuna.api.auth import Principal, Role
from kizuna.api.context import deps, require
from kizuna.api.deps import ApiDeps
from kizuna.api.routes.segments import segments_of
from kizuna.campaigns.loader import CampaignError, CampaignIssue
from kizuna.campaigns.model import Campaign
from kizuna.delivery.templates import DEFAULT_ROOT
from kizuna.domain import strict_yaml
from kizuna.events.inbound import CUSTOMER_ID_PATTERN, Count
from kizuna.ports import DefinitionConflict, StoredCampaign
from kizuna.services.campaign_admin import (
    CampaignAdmin,
    CampaignRules,
    NotFound,
    StatusConflict,
)

router = APIGatewayHttpRouter()

CampaignIdPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="campaign id")]
MAX_YAML_CHARS: Final = 200_000
LOCALE_PATTERN: Final = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"


# --- building the service -------------------------------------------------------------------------
def admin_of(d: ApiDeps) -> CampaignAdmin:
    """The campaign administration over this function's tables, schedules and folders."""
    if d.campaigns is None:
        raise NotFoundError("campaigns are not configured on this stack")
    program_ids = (
        frozenset(p.stem for p in d.programs_dir.glob("*.y*ml")) if d.programs_dir else frozenset()
    )
    rules = CampaignRules(
        d.config,
        d.templates_dir or DEFAULT_ROOT,
        segments_of(d),
        program_ids,
        deployed_channels=d.deployed_channels,
    )
    return CampaignAdmin(
        rules, d.campaigns, d.store, d.campaign_schedules, executions=d.campaign_executions
    )


def audit(d: ApiDeps, who: Principal, action: str, target: str, **detail: Any) -> None:
    d.audit.record(who, action, target, d.now(), {k: v for k, v in detail.items() if v is not None})


# --- errors as answers ---------------------------------------------------------------------------
def invalid(issues: list[CampaignIssue]) -> Response[dict[str, Any]]:
    """422 with each problem's field (``loc``: ``["body", <field>]``) and message."""
    detail = [
        {
            "loc": ["body", issue.field or "definition"],
            "field": issue.field or "definition",
            "msg": issue.message,
            "type": "value_error",
        }
        for issue in issues
    ]
    return Response(
        status_code=422,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": 422, "detail": detail},
    )


def _conflict(message: str) -> Response[dict[str, Any]]:
    return Response(
        status_code=409,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": 409, "message": message},
    )


@router.exception_handler(CampaignError)
def _invalid_campaign(error: CampaignError) -> Response[dict[str, Any]]:
    return invalid(list(error.issues))


@router.exception_handler(StatusConflict)
def _status_conflict(error: StatusConflict) -> Response[dict[str, Any]]:
    return _conflict(str(error))


@router.exception_handler(DefinitionConflict)
def _stale(error: DefinitionConflict) -> Response[dict[str, Any]]:
    return _conflict(
        f"campaign {error} was changed (or created) by someone else: read it again, then write"
    )


@router.exception_handler(NotFound)
def _not_found(error: NotFound) -> Response[dict[str, Any]]:
    return Response(
        status_code=404,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": 404, "message": str(error)},
    )


# --- requests ------------------------------------------------------------------------------------
class CampaignWrite(BaseModel):
    """A definition as JSON (``definition``) or as YAML text (``yaml``), and where its
    templates come from: ``templates`` (files, ``<template>/<locale>/<part>.j2`` -> source),
    ``template_sources`` (a template name -> a library template ``<folder>/<template>`` of the
    templates folder, copied; ``locales`` limits the copy), or neither (the templates folder's
    ``<campaign id>/<template>``; on an update, the stored files)."""

    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=MAX_YAML_CHARS)
    templates: dict[str, str] | None = None
    template_sources: dict[str, str] | None = None
    locales: list[Annotated[str, Field(pattern=LOCALE_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=10
    )

    @model_validator(mode="after")
    def _one_source(self) -> CampaignWrite:
        if (self.definition is None) == (self.yaml is None):
            raise ValueError("give exactly one of definition and yaml")
        if self.templates is not None and self.template_sources is not None:
            raise ValueError("give templates or template_sources, not both")
        if self.locales is not None and self.template_sources is None:
            raise ValueError("locales choose what template_sources copy: give template_sources")
        return self


# a version Kizuna could have written (each write adds one); a larger one (10**38 and up) has
# more digits than a DynamoDB number holds: the conditional write raised decimal.Rounded
MAX_VERSION: Final = 2**53 - 1


class CampaignUpdate(CampaignWrite):
    version: Count = Field(
        ge=1,
        le=MAX_VERSION,
        description="the version read (a JSON number): the update fails if it changed",
    )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(
        default=None,
        pattern=CUSTOMER_ID_PATTERN,
        description="render with this customer's data (marketer and above)",
    )
    locales: list[Annotated[str, Field(pattern=LOCALE_PATTERN)]] = Field(
        default_factory=lambda: ["ja", "en"], min_length=1, max_length=10
    )
    channels: list[str] | None = Field(default=None, min_length=1, max_length=4)


# --- answers -------------------------------------------------------------------------------------
class CampaignSummary(BaseModel):
    id: str
    name: str
    status: str
    schedule: str = Field(description="once, local_time or recurring")
    channels: list[str]
    version: int
    updated_at: str | None
    updated_by: str | None


class CampaignList(BaseModel):
    campaigns: list[CampaignSummary]


class ScheduleState(BaseModel):
    expression: str
    time_zone: str | None
    state: str


class VariantResultOut(BaseModel):
    variant: str
    sent: int
    suppressed: int
    deferred: int
    failed: int
    holdout: int
    converted: int = Field(description="among the sent (the holdout: among the held out)")
    assigned: int = Field(
        description="every member of the variant whatever was decided: sent, suppressed, "
        "deferred, failed (the holdout: held out)"
    )
    assigned_converted: int = Field(description="conversions among the assigned")
    lift: Lift | None = Field(
        description="intent to treat: the assigned and their conversions against the "
        "holdout's (a difference of conversion rates, its 95% interval); null without a "
        "holdout and for the holdout itself"
    )


class OccurrenceOut(BaseModel):
    occurrence: str
    status: str
    counts: dict[str, int]
    winner: str | None = None
    winner_reason: str | None = None
    winner_decided: bool | None = Field(
        default=None,
        description="did the A/B test choose winner? false: it found none and the rest of the "
        "audience got the first variant (winner); null without a winner",
    )
    stop_reason: str | None = None
    variants: list[VariantResultOut]
    looks: list[str] = Field(
        default_factory=list,
        description="a sequential winner test's daily looks: counts per variant, p-value, choice",
    )
    decision: str | None = Field(default=None, description="the test's decision so far")
    next_look_at: str | None = Field(default=None, description="an undecided test's next look")
    execution_status: str | None = Field(
        default=None,
        description="an unfinished occurrence whose execution ended without finishing it: "
        "FAILED, TIMED_OUT or ABORTED (nothing more is sent until the execution is redriven "
        "or the occurrence closed)",
    )
    execution_ended_at: str | None = Field(default=None, description="... and when it ended")


class CampaignDetail(BaseModel):
    id: str
    status: str
    version: int
    updated_at: str | None
    updated_by: str | None
    definition: dict[str, Any]
    template_files: list[str]
    schedule: ScheduleState | None
    occurrences: list[OccurrenceOut] = Field(description="each occurrence and its results")


class CampaignSaved(BaseModel):
    id: str
    version: int
    status: str


class StatusChange(BaseModel):
    id: str
    previous: str
    status: str


class Estimate(BaseModel):
    campaign_id: str
    audience: int
    by_status: dict[str, int]
    by_channel: dict[str, int]
    by_reason: dict[str, int]


class Sample(BaseModel):
    locale: str
    channel: str
    parts: dict[str, str]


class DryRunOut(Estimate):
    samples: list[Sample] | None = Field(
        description="one rendered message per locale and channel (marketer and above)"
    )


class PreviewItem(BaseModel):
    variant: str
    template: str
    locale: str
    channel: str
    rendered_locale: str | None
    parts: dict[str, str]
    error: str | None


class PreviewOut(BaseModel):
    campaign_id: str
    customer_id: str | None
    previews: list[PreviewItem]


def summary(s: StoredCampaign) -> CampaignSummary:
    c = s.campaign
    return CampaignSummary(
        id=c.id,
        name=c.name,
        status=s.status,
        schedule=c.schedule.type,
        channels=[str(ch) for ch in c.channels],
        version=s.version,
        updated_at=s.updated_at,
        updated_by=s.updated_by,
    )


def detail(admin: CampaignAdmin, s: StoredCampaign) -> CampaignDetail:
    schedule = admin.schedule_of(s.campaign.id)
    return CampaignDetail(
        id=s.campaign.id,
        status=s.status,
        version=s.version,
        updated_at=s.updated_at,
        updated_by=s.updated_by,
        definition=s.campaign.model_dump(mode="json"),
        template_files=sorted(s.templates),
        schedule=ScheduleState(
            expression=str(schedule["ScheduleExpression"]),
            time_zone=schedule.get("ScheduleExpressionTimezone"),
            state=str(schedule["State"]),
        )
        if schedule
        else None,
        occurrences=[OccurrenceOut.model_validate(dataclasses.asdict(r)) for r in admin.results(s)],
    )


# --- parsing a write -----------------------------------------------------------------------------
def parse_yaml_text(text: str) -> Any:
    """A YAML document from a request: no anchors or aliases (no expansion bombs)."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise CampaignError(
                    [CampaignIssue("<campaign>", "yaml", "anchors and aliases are not accepted")]
                )
        return strict_yaml.load(text)
    except yaml.YAMLError as exc:
        raise CampaignError(
            [CampaignIssue("<campaign>", "yaml", f"not valid YAML: {exc}")]
        ) from exc
    except RecursionError as exc:  # "- - - - ..." thousands deep
        raise CampaignError(
            [CampaignIssue("<campaign>", "yaml", "nested too deeply to be a campaign")]
        ) from exc


def prepare(
    admin: CampaignAdmin,
    body: CampaignWrite,
    now: Any,
    stored: Mapping[str, str] | None = None,
) -> tuple[Campaign, dict[str, str]]:
    """The validated campaign and its template files, or CampaignError (422)."""
    from kizuna.campaigns.loader import parse_campaign

    raw = body.definition if body.definition is not None else parse_yaml_text(body.yaml or "")
    campaign = parse_campaign(raw)
    if campaign.audience.customer_list:
        raise CampaignError(
            [
                CampaignIssue(
                    "<campaign>",
                    "audience.customer_list",
                    "a static list is applied with `kizuna campaigns apply` (it uploads the file)",
                )
            ]
        )
    if body.templates is not None:
        files = dict(body.templates)
    elif body.template_sources is not None:
        files = admin.rules.library_files(body.template_sources, body.locales)
    elif stored is not None:
        files = dict(stored)
    else:
        files = admin.rules.folder_files(campaign)
    issues = admin.rules.issues(campaign, files, now)
    if issues:
        raise CampaignError(issues)
    return campaign, files


# --- routes --------------------------------------------------------------------------------------
@router.get("/api/campaigns", summary="Every stored campaign", tags=["campaigns"])
def list_campaigns() -> CampaignList:
    require(router, Role.VIEWER)
    admin = admin_of(deps(router))
    return CampaignList(campaigns=[summary(s) for s in admin.list_all()])


@router.get(
    "/api/campaigns/<campaign_id>",
    summary="A campaign: definition, status, schedule, occurrences and results per variant",
    tags=["campaigns"],
)
def get_campaign(campaign_id: CampaignIdPath) -> CampaignDetail:
    require(router, Role.VIEWER)
    admin = admin_of(deps(router))
    return detail(admin, admin.get(campaign_id))


@router.post(
    "/api/campaigns",
    summary="Create a campaign from JSON or YAML (validated as `kizuna campaigns validate`)",
    tags=["campaigns"],
)
def create_campaign(body: CampaignWrite) -> CampaignSaved:
    who = require(router, Role.MARKETER)
    d = deps(router)
    admin = admin_of(d)
    now = d.now()
    campaign, files = prepare(admin, body, now)
    version = admin.save(campaign, files, who.name, now, expected_version=0)
    audit(d, who, "campaign.create", campaign.id, version=version, status=str(campaign.status))
    return CampaignSaved(id=campaign.id, version=version, status=str(campaign.status))


@router.put(
    "/api/campaigns/<campaign_id>",
    summary="Replace a campaign's definition (only over the version read)",
    tags=["campaigns"],
)
def update_campaign(campaign_id: CampaignIdPath, body: CampaignUpdate) -> CampaignSaved:
    who = require(router, Role.MARKETER)
    d = deps(router)
    admin = admin_of(d)
    now = d.now()
    stored = admin.get(campaign_id)
    campaign, files = prepare(admin, body, now, stored.templates)
    if campaign.id != campaign_id:
        raise CampaignError(
            [CampaignIssue("<campaign>", "id", f"the id must stay {campaign_id!r}")]
        )
    version = admin.save(campaign, files, who.name, now, expected_version=body.version)
    audit(d, who, "campaign.update", campaign_id, version=version, status=str(campaign.status))
    return CampaignSaved(id=campaign_id, version=version, status=str(campaign.status))


@router.delete(
    "/api/campaigns/<campaign_id>",
    summary="Cancel a campaign (kept, with its results; its schedule is disabled)",
    tags=["campaigns"],
)
def delete_campaign(campaign_id: CampaignIdPath) -> StatusChange:
    return _transition(campaign_id, "cancel")


def _transition(campaign_id: str, action: str) -> StatusChange:
    who = require(router, Role.MARKETER)
    d = deps(router)
    previous, status = admin_of(d).transition(campaign_id, action, d.now())
    audit(d, who, f"campaign.{action}", campaign_id, previous=previous, status=status)
    return StatusChange(id=campaign_id, previous=previous, status=status)


@router.post(
    "/api/campaigns/<campaign_id>/schedule",
    summary="Schedule a draft campaign (its schedule is enabled)",
    tags=["campaigns"],
)
def schedule_campaign(campaign_id: CampaignIdPath) -> StatusChange:
    return _transition(campaign_id, "schedule")


@router.post(
    "/api/campaigns/<campaign_id>/pause",
    summary="Pause a scheduled campaign (the next batch waits)",
    tags=["campaigns"],
)
def pause_campaign(campaign_id: CampaignIdPath) -> StatusChange:
    return _transition(campaign_id, "pause")


@router.post(
    "/api/campaigns/<campaign_id>/resume",
    summary="Resume a paused campaign",
    tags=["campaigns"],
)
def resume_campaign(campaign_id: CampaignIdPath) -> StatusChange:
    return _transition(campaign_id, "resume")


def _estimate(campaign_id: str, result: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "audience": result.audience,
        "by_status": dict(result.by_status),
        "by_channel": dict(result.by_channel),
        "by_reason": dict(result.by_reason),
    }


@router.post(
    "/api/campaigns/<campaign_id>/estimate",
    summary="The audience now, and each member's decision and channel (nothing is sent)",
    tags=["campaigns"],
)
def estimate_campaign(campaign_id: CampaignIdPath) -> Estimate:
    require(router, Role.VIEWER)
    d = deps(router)
    admin = admin_of(d)
    result = admin.dry_run(admin.get(campaign_id), d.now(), samples=False)
    return Estimate.model_validate(_estimate(campaign_id, result))


@router.post(
    "/api/campaigns/<campaign_id>/dry-run",
    summary="What an occurrence would send now, with a rendered sample per locale and channel",
    tags=["campaigns"],
)
def dry_run_campaign(campaign_id: CampaignIdPath) -> DryRunOut:
    who = require(router, Role.VIEWER)
    d = deps(router)
    admin = admin_of(d)
    personal = who.allows(Role.MARKETER)
    result = admin.dry_run(admin.get(campaign_id), d.now(), samples=personal)
    samples = (
        [
            Sample(locale=loc, channel=ch, parts=parts)
            for (loc, ch), parts in sorted(result.samples.items())
        ]
        if personal
        else None
    )
    return DryRunOut.model_validate({**_estimate(campaign_id, result), "samples": samples})


@router.post(
    "/api/campaigns/<campaign_id>/preview",
    summary="Each variant rendered per locale and channel (a sample customer, or a chosen one)",
    tags=["campaigns"],
)
def preview_campaign(campaign_id: CampaignIdPath, body: PreviewRequest) -> PreviewOut:
    who = require(router, Role.VIEWER)
    d = deps(router)
    admin = admin_of(d)
    stored = admin.get(campaign_id)
    customer = None
    if body.customer_id is not None:
        if not who.allows(Role.MARKETER):
            raise ForbiddenError("a preview with a customer's data needs the marketer group")
        customer = d.store.get_customer(body.customer_id)
        if customer is None:
            raise NotFoundError(f"no customer {body.customer_id!r}")
    unknown = [
        c for c in body.channels or () if c not in {str(x) for x in stored.campaign.channels}
    ]
    if unknown:
        raise CampaignError(
            [
                CampaignIssue(
                    "<preview>", "channels", f"the campaign does not use {', '.join(unknown)}"
                )
            ]
        )
    previews = admin.preview(
        stored, d.now(), customer=customer, locales=body.locales, channels=body.channels
    )
    return PreviewOut(
        campaign_id=campaign_id,
        customer_id=body.customer_id,
        previews=[PreviewItem.model_validate(dataclasses.asdict(p)) for p in previews],
    )
