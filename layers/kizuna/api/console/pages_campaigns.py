"""Console pages of the campaigns: the list; create from a form or from pasted YAML; one
campaign with its status, schedule, actions and results per variant; the preview of each
variant per locale and channel; the estimate and the dry run.

The pages call what the JSON routes call (:mod:`kizuna.api.routes.campaigns`, then
:mod:`kizuna.services.campaign_admin`); they only turn forms into requests and answers into
HTML. Writes need ``marketer`` and the form's CSRF field, and are audited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import ValidationError

from kizuna.api import console
from kizuna.api.auth import Principal, Role
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.api.routes.campaigns import (
    CampaignWrite,
    admin_of,
    audit,
    parse_yaml_text,
    prepare,
)
from kizuna.api.routes.segments import segments_of
from kizuna.campaigns.loader import CampaignError, CampaignIssue
from kizuna.delivery.deployed import split_deployed
from kizuna.delivery.templates import PARTS
from kizuna.domain.zones import is_zone
from kizuna.events.inbound import CUSTOMER_ID_PATTERN, Channel
from kizuna.ports import DefinitionConflict, StoredCampaign
from kizuna.services.campaign_admin import (
    TRANSITIONS,
    CampaignAdmin,
    NotFound,
    StatusConflict,
    library_templates,
)

router = APIGatewayHttpRouter()

# The channels the form can make a campaign on; it offers those of them the stack sends on
# (the API function's DEPLOYED_CHANNELS, read once into ApiDeps.deployed_channels). Not
# webhook: it names its endpoint (``webhook: <endpoint>``), which the form has no field for.
CHANNELS: Final = tuple(c for c in PARTS if c != Channel.WEBHOOK)
VARIANTS: Final = ("a", "b", "c")
LOCALES: Final = ("ja", "en")
_ID: Final = re.compile(r"^[a-z][a-z0-9-]{1,39}\Z")
_CUSTOMER: Final = re.compile(CUSTOMER_ID_PATTERN)
_DATE: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")  # ASCII digits (\d takes "２")
_TIME: Final = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
_WEIGHTS: Final = {1: [100], 2: [50, 50], 3: [34, 33, 33]}


def _t() -> Translator:
    return Translator(console.lang_of(router.current_event))


def _page(
    template: str, principal: Principal, *, status: int = 200, **context: Any
) -> Response[str]:
    return console.render(
        router.current_event, template, status=status, principal=principal, **context
    )


def _missing(principal: Principal, campaign_id: str) -> Response[str]:
    message = _t()("campaigns.not_found", id=campaign_id)
    return _page("error.html", principal, status=404, message=message)


def _stored(admin: CampaignAdmin, campaign_id: str) -> StoredCampaign | None:
    if not _ID.match(campaign_id):
        return None
    try:
        return admin.get(campaign_id)
    except NotFound:
        return None


def _lang() -> str:
    return console.lang_of(router.current_event)


# --- the list ------------------------------------------------------------------------------------
@router.get("/console/campaigns", include_in_schema=False)
def campaigns_page() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    stored = admin_of(deps(router)).list_all()
    return _page(
        "campaigns.html",
        principal,
        campaigns=stored,
        can_write=principal.allows(Role.MARKETER),
    )


# --- create --------------------------------------------------------------------------------------
def _form_context(fields: dict[str, str], errors: list[str]) -> dict[str, Any]:
    d = deps(router)
    offered, not_deployed = split_deployed(CHANNELS, d.deployed_channels)
    return {
        "fields": fields,
        "errors": errors,
        "segments": sorted(segments_of(d)),
        "library": library_templates(d.templates_dir) if d.templates_dir else [],
        "channels": offered,
        "not_deployed": not_deployed,
        "variants": VARIANTS,
        "locales": LOCALES,
        "default_zone": d.config.contact.default_time_zone,
    }


@router.get("/console/campaigns/new", include_in_schema=False)
def new_campaign_page() -> Response[str]:
    principal = console.page_user(router, Role.MARKETER)
    offered, _ = split_deployed(CHANNELS, deps(router).deployed_channels)
    first = offered[0] if offered else ""
    fields = {"locale_ja": "on", "locale_en": "on", "channel_1": first, "schedule_type": "once"}
    return _page("campaign_new.html", principal, **_form_context(fields, []))


def definition_from_form(
    fields: dict[str, str], default_zone: str, deployed: Collection[str] | None = None
) -> tuple[dict[str, Any], dict[str, str], list[str], list[CampaignIssue]]:
    """The campaign a form describes: (definition, template sources, locales, problems the
    form itself has). Fields: id, name, segment ("" = everyone), channel_1..3 (fallback
    order; each one the form offers: of the stack's ``deployed`` channels, None: not known),
    template_a..c (library templates; two or more make variants), holdout_percent,
    locale_ja / locale_en, schedule_type (once | local_time), date, time, time_zone,
    coupon_discount, coupon_days."""
    issues: list[CampaignIssue] = []

    def issue(field: str, message: str) -> None:
        issues.append(CampaignIssue("<form>", field, message))

    offered, not_deployed = split_deployed(CHANNELS, deployed)
    channels = [fields.get(f"channel_{i}", "") for i in (1, 2, 3)]
    choose = f"choose one of {', '.join(offered)}"
    for n, channel in enumerate(channels, start=1):
        if channel in not_deployed:
            issue(f"channel_{n}", f"{channel} is not deployed in this stack: {choose}")
        elif channel == Channel.WEBHOOK:
            issue(
                f"channel_{n}",
                "the webhook channel names its endpoint: create the campaign from YAML "
                "(webhook: <endpoint>)",
            )
        elif channel and channel not in offered:
            issue(f"channel_{n}", f"unknown channel {channel!r}: {choose}")
    channels = list(dict.fromkeys(c for c in channels if c))
    chosen = [(v, fields.get(f"template_{v}", "")) for v in VARIANTS]
    chosen = [(v, source) for v, source in chosen if source]
    if not chosen:
        issue("template_a", "choose a template")
    names: dict[str, str] = {}  # the campaign's template name -> library source
    variants: list[dict[str, Any]] = []
    for (variant, source), weight in zip(chosen, _WEIGHTS.get(len(chosen), []), strict=False):
        name = source.rsplit("/", 1)[-1]
        if names.get(name, source) != source:
            issue(f"template_{variant}", f"two templates named {name!r}: choose one of them")
        names[name] = source
        variants.append({"name": variant, "weight": weight, "template": name})
    locales = [loc for loc in LOCALES if fields.get(f"locale_{loc}")]
    if not locales:
        issue("locales", "choose at least one language")
    schedule: dict[str, Any] = {"type": fields.get("schedule_type", "once")}
    day, at = fields.get("date", ""), fields.get("time", "")
    if not _DATE.match(day):
        issue("schedule.date", "give the date as YYYY-MM-DD")
    elif not _TIME.match(at):
        issue("schedule.time", 'give the time as "HH:MM"')
    elif schedule["type"] == "local_time":
        schedule.update({"date": day, "time": at})
    else:
        zone = fields.get("time_zone") or default_zone
        if not is_zone(zone):
            issue("schedule.time_zone", f"unknown time zone {zone!r}")
        else:
            try:
                day_at = datetime.combine(date.fromisoformat(day), time.fromisoformat(at))
                schedule["at"] = day_at.replace(tzinfo=ZoneInfo(zone)).isoformat()
            except ValueError:
                issue("schedule.date", f"no such date and time: {day} {at}")
    segment = fields.get("segment", "")
    definition: dict[str, Any] = {
        "id": fields.get("id", ""),
        "name": fields.get("name", ""),
        "audience": {"segments": [segment]} if segment else {"everyone": True},
        "schedule": schedule,
        "channels": channels,
        "template": variants[0]["template"] if variants else "",
        "holdout_percent": _int(fields.get("holdout_percent", "0"), "holdout_percent", issue),
    }
    if len(variants) >= 2:
        definition["variants"] = variants
    discount = fields.get("coupon_discount", "").strip()
    if discount:
        definition["coupon"] = {
            "discount": discount,
            "valid_days": _int(fields.get("coupon_days", "7"), "coupon.valid_days", issue),
        }
    return definition, names, locales, issues


_WHOLE: Final = re.compile(r"[0-9]{1,6}")


def _int(value: str, field: str, issue: Any) -> int:
    """A whole number in ASCII digits (``int`` would also take "４５", " 1_4 ")."""
    if not _WHOLE.fullmatch(value or "0"):
        issue(field, "a whole number (digits 0-9)")
        return 0
    return int(value or "0")


def _save_new(principal: Principal, body: CampaignWrite) -> tuple[str | None, list[str]]:
    """Create the campaign; (its id, no errors) or (None, the errors as 'field: message')."""
    d = deps(router)
    admin = admin_of(d)
    now = d.now()
    try:
        campaign, files = prepare(admin, body, now)
        version = admin.save(campaign, files, principal.name, now, expected_version=0)
    except CampaignError as exc:
        return None, [f"{i.field or 'definition'}: {i.message}" for i in exc.issues]
    except DefinitionConflict:
        return None, [_t()("campaigns.exists")]
    except StatusConflict as exc:  # pasted YAML: `done`, or scheduled for a time past
        return None, [f"status: {exc}"]
    audit(d, principal, "campaign.create", campaign.id, version=version, via="console")
    return campaign.id, []


@router.post("/console/campaigns/new", include_in_schema=False)
def create_from_form() -> Response[str]:
    principal = console.page_user(router, Role.MARKETER)
    event = router.current_event
    fields = console.form(event)
    console.check_csrf(event, fields)
    d = deps(router)
    definition, sources, locales, issues = definition_from_form(
        fields, d.config.contact.default_time_zone, d.deployed_channels
    )
    errors = [f"{i.field}: {i.message}" for i in issues]
    if not errors:
        body = CampaignWrite(definition=definition, template_sources=sources, locales=locales)
        campaign_id, errors = _save_new(principal, body)
        if campaign_id:
            return console.redirect(f"/console/campaigns/{campaign_id}?lang={_lang()}")
    context = _form_context({k: v for k, v in fields.items() if k != "csrf"}, errors)
    return _page("campaign_new.html", principal, status=422, **context)


@router.post("/console/campaigns/new-yaml", include_in_schema=False)
def create_from_yaml() -> Response[str]:
    principal = console.page_user(router, Role.MARKETER)
    event = router.current_event
    fields = console.form(event)
    console.check_csrf(event, fields)
    text = fields.get("yaml", "")
    errors: list[str] = []
    try:
        parse_yaml_text(text)  # the request's own checks first (size, aliases)
        body = CampaignWrite(yaml=text)
    except CampaignError as exc:
        errors = [f"{i.field}: {i.message}" for i in exc.issues]
    except ValidationError as exc:
        errors = [f"yaml: {e['msg']}" for e in exc.errors(include_url=False)]
    if not errors:
        campaign_id, errors = _save_new(principal, body)
        if campaign_id:
            return console.redirect(f"/console/campaigns/{campaign_id}?lang={_lang()}")
    context = _form_context({"yaml": text}, errors)
    return _page("campaign_new.html", principal, status=422, **context)


# --- one campaign --------------------------------------------------------------------------------
def _campaign_page(
    principal: Principal, stored: StoredCampaign, *, status: int = 200, error: str | None = None
) -> Response[str]:
    admin = admin_of(deps(router))
    campaign = stored.campaign
    done = (router.current_event.query_string_parameters or {}).get("done")
    return _page(
        "campaign.html",
        principal,
        status=status,
        stored=stored,
        campaign=campaign,
        definition=yaml.safe_dump(
            campaign.model_dump(mode="json", exclude_none=True, exclude={"status"}),
            allow_unicode=True,
            sort_keys=False,
        ),
        schedule=admin.schedule_of(campaign.id),
        results=admin.results(stored),
        actions=[a for a, (_, allowed) in TRANSITIONS.items() if stored.status in allowed],
        can_write=principal.allows(Role.MARKETER),
        error=error,
        done=done if done in TRANSITIONS else None,
    )


@router.get("/console/campaigns/<campaign_id>", include_in_schema=False)
def campaign_page(campaign_id: str) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    stored = _stored(admin_of(deps(router)), campaign_id)
    if stored is None:
        return _missing(principal, campaign_id)
    return _campaign_page(principal, stored)


@router.post("/console/campaigns/<campaign_id>/<action>", include_in_schema=False)
def campaign_action(campaign_id: str, action: str) -> Response[str]:
    principal = console.page_user(router, Role.MARKETER)
    event = router.current_event
    console.check_csrf(event, console.form(event))
    d = deps(router)
    admin = admin_of(d)
    stored = _stored(admin, campaign_id)
    if stored is None or action not in TRANSITIONS:
        return _missing(principal, campaign_id)
    try:
        previous, status = admin.transition(campaign_id, action, d.now())
    except StatusConflict as exc:
        return _campaign_page(principal, admin.get(campaign_id), status=409, error=str(exc))
    audit(d, principal, f"campaign.{action}", campaign_id, previous=previous, status=status)
    return console.redirect(f"/console/campaigns/{campaign_id}?lang={_lang()}&done={action}")


# --- preview, estimate, dry run ------------------------------------------------------------------
@router.get("/console/campaigns/<campaign_id>/preview", include_in_schema=False)
def preview_page(campaign_id: str) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    d = deps(router)
    admin = admin_of(d)
    stored = _stored(admin, campaign_id)
    if stored is None:
        return _missing(principal, campaign_id)
    wanted = ((router.current_event.query_string_parameters or {}).get("customer") or "").strip()
    customer = None
    error = None
    if wanted:
        if not principal.allows(Role.MARKETER):
            raise console.PageForbidden(Role.MARKETER.value)
        customer = d.store.get_customer(wanted) if _CUSTOMER.fullmatch(wanted) else None
        if customer is None:
            error = _t()("preview.no_customer", id=wanted)
    previews = admin.preview(stored, d.now(), customer=customer, locales=LOCALES)
    return _page(
        "campaign_preview.html",
        principal,
        stored=stored,
        campaign=stored.campaign,
        previews=[dataclasses.asdict(p) for p in previews],
        customer_id=wanted if customer else "",
        asked=wanted,
        error=error,
        can_choose=principal.allows(Role.MARKETER),
    )


def _estimate_page(campaign_id: str, *, dry: bool) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    d = deps(router)
    admin = admin_of(d)
    stored = _stored(admin, campaign_id)
    if stored is None:
        return _missing(principal, campaign_id)
    personal = dry and principal.allows(Role.MARKETER)
    result = admin.dry_run(stored, d.now(), samples=personal)
    return _page(
        "campaign_estimate.html",
        principal,
        stored=stored,
        campaign=stored.campaign,
        result=result,
        dry=dry,
        locales=LOCALES,
        samples=sorted(result.samples.items()) if personal else None,
    )


@router.get("/console/campaigns/<campaign_id>/estimate", include_in_schema=False)
def estimate_page(campaign_id: str) -> Response[str]:
    return _estimate_page(campaign_id, dry=False)


@router.get("/console/campaigns/<campaign_id>/dry-run", include_in_schema=False)
def dry_run_page(campaign_id: str) -> Response[str]:
    return _estimate_page(campaign_id, dry=True)
