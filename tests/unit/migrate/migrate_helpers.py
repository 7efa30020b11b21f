"""Rendering translated templates the way a send does: Kizuna's own renderer (sandboxed,
StrictUndefined, autoescape on ``*.html.j2``) and the context a program's send step gives."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kizuna.delivery.samples import sample_recipient
from kizuna.delivery.templates import FilesRenderer, build_context
from kizuna.runtime.config import KizunaConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
NOW = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


def fixture(rel: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / rel).read_text(encoding="utf-8"))
    return loaded


def with_attributes(
    context: dict[str, Any], attributes: Mapping[str, Any], declared: Iterable[str] = ()
) -> dict[str, Any]:
    """The context with ``customer.attributes`` as a send gives it: every declared attribute
    (``declared`` and the keys of ``attributes``), None when the customer has no value."""
    customer = dict(context["customer"])
    values = {name: None for name in declared}
    customer["attributes"] = {**customer.get("attributes", {}), **values, **attributes}
    return {**context, "customer": customer}


def context(
    locale: str = "en",
    attributes: Mapping[str, Any] | None = None,
    declared: Iterable[str] = (),
    **customer: Any,
) -> dict[str, Any]:
    """The context a send gives a sample customer of ``locale`` (names overridable)."""
    recipient = sample_recipient(locale, NOW)
    if customer:
        recipient = recipient.model_copy(update=customer)
    built = build_context(
        recipient, program="p", step="s", loyalty_config=KizunaConfig().loyalty, locale=locale
    )
    return with_attributes(built, attributes or {}, declared)


def render_text(source: str, ctx: Mapping[str, Any]) -> str:
    """A text part (``sms.txt.j2``) rendered by Kizuna's renderer."""
    renderer = FilesRenderer({"p/t/en/sms.txt.j2": source})
    message = renderer.render("p", "t", "sms", "en", ctx)
    return str(message.text)  # type: ignore[union-attr]


def render_html(source: str, ctx: Mapping[str, Any]) -> str:
    """An HTML part (``email.html.j2``, autoescaped) rendered by Kizuna's renderer."""
    renderer = FilesRenderer(
        {
            "p/t/en/email.html.j2": source,
            "p/t/en/email.subject.j2": "s",
            "p/t/en/email.txt.j2": "t",
        }
    )
    message = renderer.render("p", "t", "email", "en", ctx)
    return str(message.html)  # type: ignore[union-attr]
