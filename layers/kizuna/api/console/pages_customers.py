"""Customer lookup: find a customer by id (or, for those who see personal data, by phone
number), read their profile (masked for viewers) and their timeline with why each decision
was taken."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.delivery.policy import E164
from kizuna.domain.loyalty import address_hash
from kizuna.events.inbound import CUSTOMER_ID_PATTERN
from kizuna.services.customers import (
    DEFAULT_LIMIT,
    MAX_TOKEN_CHARS,
    CustomerLookup,
    InvalidPageToken,
    TimelineItem,
)

router = APIGatewayHttpRouter()

_CUSTOMER_ID: Final = re.compile(CUSTOMER_ID_PATTERN)


def _lookup() -> CustomerLookup:
    d = deps(router)
    return CustomerLookup(d.store, d.config, d.now)


def _customer_url(customer_id: str, lang: str) -> str:
    return f"/console/customers/{quote(customer_id, safe=':@')}?lang={lang}"


@router.get("/console/customers", include_in_schema=False)
def search() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    lang = console.lang_of(event)
    t = Translator(lang)
    query = event.query_string_parameters or {}
    wanted_id = (query.get("id") or "").strip()
    phone = (query.get("phone") or "").strip()
    error: str | None = None
    found: list[str] = []
    if wanted_id:
        if _CUSTOMER_ID.match(wanted_id):
            return console.redirect(_customer_url(wanted_id, lang))
        error = t("customers.invalid_id")
    elif phone:
        if not principal.sees_personal_data:
            error = t("customers.phone_forbidden")
        elif not E164.match(phone):
            error = t("customers.invalid_phone")
        else:
            found = deps(router).store.customers_by_phone_hash(address_hash(phone))
            if len(found) == 1:
                return console.redirect(_customer_url(found[0], lang))
            if not found:
                error = t("customers.not_found")
    return console.render(
        event,
        "customers.html",
        status=422 if error and error != t("customers.not_found") else 200,
        principal=principal,
        error=error,
        wanted_id=wanted_id,
        phone=phone if principal.sees_personal_data else "",
        found=[(cid, _customer_url(cid, lang)) for cid in found],
        phone_search=principal.sees_personal_data,
    )


def _describe(item: TimelineItem, t: Translator) -> str:
    """One line of what happened (no personal data: the timeline holds none)."""
    d = item.data
    match item.type:
        case "order":
            return t(
                "timeline.order",
                order=d.get("order_id", "-"),
                total=d.get("total", "-"),
                currency=d.get("currency", ""),
                lines=len(d.get("lines") or []),
            )
        case "cancellation":
            return t("timeline.cancellation", order=d.get("order_id", "-"))
        case "points":
            delta = d.get("delta", d.get("points", 0))
            return t("timeline.points", delta=f"{delta:+}" if isinstance(delta, int) else delta)
        case "consent":
            return t("timeline.consent", channel=item.channel or "-")
        case "behaviour":
            return " ".join(
                str(v) for v in (d.get("type"), d.get("product_id"), d.get("category")) if v
            )
        case "decision" | "step":
            return " / ".join(str(v) for v in (item.program, item.step) if v)
        case "message" | "campaign_message":
            where = " / ".join(str(v) for v in (item.campaign or item.program, item.step) if v)
            return f"{where} · {item.channel}" if item.channel else where
    return ""


@router.get("/console/customers/<customer_id>", include_in_schema=False)
def customer_page(customer_id: str) -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    lang = console.lang_of(event)
    t = Translator(lang)
    query = event.query_string_parameters or {}
    token = query.get("next")

    def not_found(message: str, status: int) -> Response[str]:
        return console.render(
            event,
            "customers.html",
            status=status,
            principal=principal,
            error=message,
            wanted_id="",
            phone="",
            found=[],
            phone_search=principal.sees_personal_data,
        )

    if not _CUSTOMER_ID.match(customer_id):
        return not_found(t("customers.invalid_id"), 422)
    if token is not None and not 0 < len(token) <= MAX_TOKEN_CHARS:
        return not_found(t("customers.invalid_page"), 422)
    service = _lookup()
    profile = service.profile(customer_id, reveal=principal.sees_personal_data)
    if profile is None:
        return not_found(t("customers.not_found"), 404)
    try:
        page = service.timeline(customer_id, limit=DEFAULT_LIMIT, next_token=token, lang=lang)
    except InvalidPageToken:
        return not_found(t("customers.invalid_page"), 422)
    rows: list[dict[str, Any]] = []
    for item in page.items if page else []:
        rows.append({"item": item, "what": _describe(item, t)})
    base = _customer_url(customer_id, lang)
    next_url = f"{base}&next={quote(page.next_token)}" if page and page.next_token else None
    return console.render(
        event,
        "customer.html",
        principal=principal,
        profile=profile,
        rows=rows,
        next_url=next_url,
        first_url=base if token else None,
    )
