"""Customer lookup: find a customer by id (or, for those who see personal data, by phone
number), read their profile (masked for viewers) and their timeline with why each decision
was taken."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.console.i18n import Translator
from kizuna.api.context import deps
from kizuna.delivery.policy import ANY_E164
from kizuna.delivery.why import block_words, channel_words
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


def _search_page(
    principal: Any,
    *,
    error: str | None = None,
    status: int = 200,
    wanted_id: str = "",
    found: Sequence[str] = (),
) -> Response[str]:
    event = router.current_event
    lang = console.lang_of(event)
    return console.render(
        event,
        "customers.html",
        status=status,
        principal=principal,
        error=error,
        wanted_id=wanted_id,
        found=[(cid, _customer_url(cid, lang)) for cid in found],
        phone_search=principal.sees_personal_data,
    )


@router.get("/console/customers", include_in_schema=False)
def search() -> Response[str]:
    """By id (``?id=``): a customer id is pseudonymous, so it may travel in the URL."""
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    lang = console.lang_of(event)
    wanted_id = (event.query_string_parameters or {}).get("id")
    if wanted_id is None:
        return _search_page(principal)
    if _CUSTOMER_ID.fullmatch(wanted_id):
        return console.redirect(_customer_url(wanted_id, lang))
    return _search_page(
        principal, error=Translator(lang)("customers.invalid_id"), status=422, wanted_id=wanted_id
    )


@router.post("/console/customers", include_in_schema=False)
def search_by_phone() -> Response[str]:
    """By phone number, for those who see personal data: posted (with the CSRF field), so
    the number stays out of URLs, browser history and access logs."""
    principal = console.page_user(router, Role.VIEWER)
    event = router.current_event
    fields = console.form(event)
    console.check_csrf(event, fields)
    lang = console.lang_of(event)
    t = Translator(lang)
    phone = fields.get("phone", "")
    if not principal.sees_personal_data:
        return _search_page(principal, error=t("customers.phone_forbidden"), status=403)
    if not ANY_E164.match(phone):
        return _search_page(principal, error=t("customers.invalid_phone"), status=422)
    found = deps(router).store.customers_by_phone_hash(address_hash(phone))
    if len(found) == 1:
        return console.redirect(_customer_url(found[0], lang))
    if not found:
        return _search_page(principal, error=t("customers.not_found"), status=404)
    return _search_page(principal, found=sorted(found))


def _amount(value: object) -> str:
    """An order's or a refund's amount (a number, or its text as the timeline keeps it) as
    the headline figures write it: ``34,880`` (a whole amount without decimals), ``12.50``;
    ``-`` when there is none."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return str(value)
    try:
        number = Decimal(value) if isinstance(value, str) else value
        whole = int(number)
    except (ArithmeticError, ValueError, OverflowError):  # no finite number: as it is
        return str(value)
    value = number
    return f"{whole:,}" if value == whole else f"{value:,.2f}"


def _describe(item: TimelineItem, t: Translator) -> str:
    """One line of what happened (no personal data: the timeline holds none)."""
    d = item.data
    match item.type:
        case "order":
            return t(
                "timeline.order",
                order=d.get("order_id", "-"),
                total=_amount(d.get("total")),
                currency=d.get("currency", ""),
                lines=len(d.get("lines") or []),
            )
        case "cancellation":
            return t("timeline.cancellation", order=d.get("order_id", "-"))
        case "refund":
            return t(
                "timeline.refund",
                order=d.get("order_id", "-"),
                amount=_amount(d.get("amount")),
                currency=d.get("currency", ""),
            )
        case "points":
            delta = d.get("delta", d.get("points", 0))
            return t("timeline.points", delta=f"{delta:+}" if isinstance(delta, int) else delta)
        case "consent":
            return t("timeline.consent", channel=item.channel or "-")
        case "behaviour":
            fields = d.get("fields") or {}  # a declared event's own fields
            declared = [f"{k}={v}" for k, v in sorted(fields.items()) if v is not None]
            return " ".join(
                str(v)
                for v in (d.get("type"), d.get("product_id"), d.get("category"), *declared)
                if v
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
        return _search_page(principal, error=message, status=status)

    if not _CUSTOMER_ID.fullmatch(customer_id):
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
        channel_name=lambda channel: channel_words(channel, lang),
        block_text=lambda block: block_words(block, lang),
    )
