"""Message rendering: Jinja2, sandboxed, strict, one file per channel part and locale.

Layout under the templates root (the repository's ``templates/`` unless told otherwise)::

    <program>/<template>/<locale>/email.subject.j2
                                  email.html.j2     (HTML autoescape on: *.html.j2 only)
                                  email.txt.j2
                                  sms.txt.j2
                                  push.title.j2     (may render empty)
                                  push.body.j2
                                  line.txt.j2
    _base/...                     shared layouts ({% extends "_base/email.html.j2" %})

A message renders completely or not at all: an undefined variable, a missing part, a
syntax error, a sandbox violation or an empty required part raises :class:`RenderError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from kizuna.delivery.content import (
    EmailContent,
    LineContent,
    PushContent,
    RenderedMessage,
    SmsContent,
    sms_segments,
)
from kizuna.delivery.coupons import Coupon
from kizuna.domain.customer import Customer
from kizuna.runtime.config import LoyaltyConfig

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "templates"
DEFAULT_LOCALE = "ja"
DEFAULT_TIME_ZONE = "Asia/Tokyo"

# Parts each channel needs, in render order.
PARTS: dict[str, tuple[str, ...]] = {
    "email": ("email.subject", "email.html", "email.txt"),
    "sms": ("sms.txt",),
    "push": ("push.title", "push.body"),
    "line": ("line.txt",),
}
# Parts that may render to nothing (the app's name shows as a push title).
MAY_BE_EMPTY = frozenset({"push.title"})
SUFFIX = ".j2"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_REASON_MAX = 300

# How a customer without a name is addressed; the Japanese form carries its honorific.
ANONYMOUS = {"ja": "お客様", "en": "Customer"}

__all__ = [
    "PARTS",
    "FilesRenderer",
    "RenderError",
    "RenderedMessage",
    "Renderer",
    "build_context",
    "format_date",
    "format_number",
    "sms_segments",
]


class RenderError(Exception):
    """A message that cannot be rendered completely. ``reason`` never holds personal data
    from the context, only the template's own words (names, line numbers)."""

    def __init__(self, program: str, template: str, channel: str, locale: str, reason: str):
        self.program = program
        self.template = template
        self.channel = channel
        self.locale = locale
        self.reason = reason[:_REASON_MAX]
        super().__init__(f"{program}/{template} [{channel}, {locale}]: {self.reason}")


# --- filters ---------------------------------------------------------------------------------
def format_number(value: int | float | Decimal | None) -> str:
    """``1234567`` -> ``1,234,567`` (integers keep no decimals)."""
    if value is None:
        return ""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


_EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def format_date(value: date | datetime | None, locale: str = DEFAULT_LOCALE) -> str:
    """A date as a reader of ``locale`` writes it: ``2026年1月5日`` / ``January 5, 2026``."""
    if value is None:
        return ""
    if locale.split("-", maxsplit=1)[0] == "ja":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{_EN_MONTHS[value.month - 1]} {value.day}, {value.year}"


def _single_line(text: str) -> str:
    return " ".join(text.split())


# --- renderer --------------------------------------------------------------------------------
class Renderer:
    """Renders a program's template for one channel. Compiled templates are cached for the
    life of the instance (build one per Lambda container)."""

    def __init__(
        self, root: Path | str | None = None, *, default_locale: str = DEFAULT_LOCALE
    ) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.default_locale = default_locale
        self._env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.root)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2", "htm.j2"),
                disabled_extensions=(),
                default_for_string=False,
                default=False,
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._env.filters["number"] = format_number
        self._env.filters["date"] = format_date
        self._uses: dict[tuple[str, str, str], bool] = {}

    # -- queries for the validator and the preview ----------------------------------------
    def locales(self, program: str, template: str) -> list[str]:
        """Locale folders of a template, sorted; empty when the template does not exist."""
        folder = self.root / program / template
        if not (_NAME.match(program) and _NAME.match(template)) or not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and _LOCALE.match(p.name))

    def parts_missing(
        self, program: str, template: str, channel: str, locale: str | None = None
    ) -> list[str]:
        """Part files the channel needs but a locale lacks, as ``<locale>/<part>.j2``.
        Checks every locale folder unless one is given; no locale folder at all counts as
        every part missing in the default locale."""
        parts = PARTS.get(str(channel))
        if parts is None:
            raise ValueError(f"unknown channel {channel!r}")
        locales = [locale] if locale else self.locales(program, template)
        if not locales:
            locales = [self.default_locale]
        return [
            f"{loc}/{part}{SUFFIX}"
            for loc in locales
            for part in parts
            if not (self.root / program / template / loc / f"{part}{SUFFIX}").is_file()
        ]

    def resolve_locale(self, program: str, template: str, locale: str | None) -> str:
        """The locale folder used for a customer's locale: exact (``en-GB``), then the
        language (``en``), then the default locale."""
        return self._first_locale(
            program, template, locale, lambda loc: (self.root / program / template / loc).is_dir()
        )

    def _first_locale(
        self, program: str, template: str, locale: str | None, exists: Callable[[str], bool]
    ) -> str:
        candidates: list[str] = []
        if locale and _LOCALE.match(locale):
            candidates += [locale, locale.split("-")[0]]
        candidates.append(self.default_locale)
        for candidate in candidates:
            if exists(candidate):
                return candidate
        raise RenderError(
            program,
            template,
            "*",
            locale or self.default_locale,
            f"no locale folder among {', '.join(dict.fromkeys(candidates))}",
        )

    def uses(self, program: str, template: str, variable: str) -> bool:
        """Whether any part of the template (any locale, with what it extends or includes)
        reads ``variable``: lets the send skip work (a recommendation lookup) no template
        needs. Unknown or broken templates answer True, so rendering reports the problem."""
        key = (program, template, variable)
        if key not in self._uses:
            self._uses[key] = self._reads(program, template, variable)
        return self._uses[key]

    def _reads(self, program: str, template: str, variable: str) -> bool:
        from jinja2 import meta

        locales = self.locales(program, template)
        if not locales:
            return True
        pending = [
            f"{program}/{template}/{loc}/{path.name}"
            for loc in locales
            for path in (self.root / program / template / loc).glob(f"*{SUFFIX}")
        ]
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                source = self._env.loader.get_source(self._env, name)[0]  # type: ignore[union-attr]
                ast = self._env.parse(source)
            except Exception:
                return True
            if variable in meta.find_undeclared_variables(ast):
                return True
            pending += [t for t in meta.find_referenced_templates(ast) if t is not None]
        return False

    # -- rendering ------------------------------------------------------------------------
    def render(
        self,
        program: str,
        template: str,
        channel: str,
        locale: str | None,
        context: Mapping[str, Any],
    ) -> RenderedMessage:
        channel = str(channel)
        asked = locale or self.default_locale

        def fail(reason: str, loc: str = asked) -> RenderError:
            return RenderError(program, template, channel, loc, reason)

        if not (_NAME.match(program) and _NAME.match(template)):
            raise fail("program and template names are letters, digits, '.', '_' and '-'")
        parts = PARTS.get(channel)
        if parts is None:
            raise fail("unknown channel")
        try:
            loc = self.resolve_locale(program, template, locale)
        except RenderError as err:
            raise fail(err.reason) from None

        texts: dict[str, str] = {}
        for part in parts:
            name = f"{program}/{template}/{loc}/{part}{SUFFIX}"
            try:
                texts[part] = self._env.get_template(name).render(context)
            except TemplateNotFound as err:
                raise fail(f"missing template {err.name}", loc) from None
            except TemplateSyntaxError as err:
                where = f"{err.name or name}:{err.lineno}"
                raise fail(f"syntax error at {where}: {err.message}", loc) from None
            except SecurityError as err:
                raise fail(f"sandbox refused in {part}: {err}", loc) from None
            except UndefinedError as err:
                raise fail(f"undefined in {part}: {err.message}", loc) from None
            except Exception as err:  # anything a template can raise: never half-render
                raise fail(f"{type(err).__name__} in {part}: {err}", loc) from None
            if not texts[part].strip() and part not in MAY_BE_EMPTY:
                raise fail(f"{part} rendered empty", loc)

        try:
            return _content(channel, texts)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            raise fail(problems, loc) from None


class FilesRenderer(Renderer):
    """A :class:`Renderer` that also reads templates from ``files`` (name -> source, names
    as under the root: ``<program>/<template>/<locale>/<part>.j2``), before the templates
    root: a campaign's own templates, stored with it, still extend the bundled ``_base``
    layouts."""

    def __init__(
        self,
        files: Mapping[str, str],
        root: Path | str | None = None,
        *,
        default_locale: str = DEFAULT_LOCALE,
    ) -> None:
        super().__init__(root, default_locale=default_locale)
        self.files = dict(files)
        self._env.loader = ChoiceLoader([DictLoader(self.files), FileSystemLoader(str(self.root))])

    def _file_locales(self, program: str, template: str) -> set[str]:
        prefix = f"{program}/{template}/"
        return {
            name[len(prefix) :].split("/", 1)[0]
            for name in self.files
            if name.startswith(prefix) and name.count("/") == 3
        }

    def locales(self, program: str, template: str) -> list[str]:
        found = self._file_locales(program, template)
        return sorted(found) if found else super().locales(program, template)

    def resolve_locale(self, program: str, template: str, locale: str | None) -> str:
        found = self._file_locales(program, template)
        if not found:
            return super().resolve_locale(program, template, locale)
        return self._first_locale(program, template, locale, lambda loc: loc in found)


def _content(channel: str, texts: Mapping[str, str]) -> RenderedMessage:
    if channel == "email":
        return EmailContent(
            subject=_single_line(texts["email.subject"]),
            html=texts["email.html"].strip(),
            text=texts["email.txt"].strip(),
        )
    if channel == "sms":
        return SmsContent.of(texts["sms.txt"].strip())
    if channel == "push":
        return PushContent(title=_single_line(texts["push.title"]), body=texts["push.body"].strip())
    return LineContent(text=texts["line.txt"].strip())


# --- context ---------------------------------------------------------------------------------
def _zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _local(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)


def _display_name(customer: Customer, language: str) -> str:
    first, last = (customer.first_name or "").strip(), (customer.last_name or "").strip()
    if language == "ja":
        name = " ".join(p for p in (last, first) if p)
        return f"{name}様" if name else ANONYMOUS["ja"]
    return first or last or ANONYMOUS.get(language, ANONYMOUS["en"])


def _benefits(config: LoyaltyConfig, rank: str | None) -> list[str]:
    for rule in config.ranks:
        if rule.name == rank:
            return list(rule.benefits)
    return []


def build_context(
    customer: Customer,
    *,
    program: str,
    step: str,
    loyalty_config: LoyaltyConfig,
    coupon: Coupon | None = None,
    recommendations: Iterable[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
    locale: str | None = None,
    unsubscribe_url: str | None = None,
    default_locale: str = DEFAULT_LOCALE,
    default_time_zone: str = DEFAULT_TIME_ZONE,
) -> dict[str, Any]:
    """What a template may read. No email address or phone number: a template has no
    business printing them, and a preview must be safe to share.

    ``customer.display_name`` is how the message addresses the customer: ``山田 太郎様`` /
    ``お客様`` in Japanese (honorific included), ``Taro`` / ``Customer`` in English.
    Datetimes are in the customer's time zone; format them with ``|date(locale)``.
    ``unsubscribe_url`` is None until the sender fills it in (``UnsubscribeLinks.url``).
    ``extra`` adds keys (the event's detail, say) but cannot replace the ones above.
    ``trigger`` is what the journey entry's trigger said (``trigger.to_rank`` of a rank
    change), None when the message has no trigger (a campaign, a preview): a rank-up
    message names the rank of *its* change, not the customer's latest rank.
    """
    loc = locale or customer.locale or default_locale
    language = loc.split("-")[0]
    zone = _zone(customer.time_zone, default_time_zone)
    context: dict[str, Any] = {"trigger": None, **dict(extra or {})}
    context.update(
        {
            "program": program,
            "step": step,
            "locale": loc,
            "customer": {
                "customer_id": customer.customer_id,
                "first_name": customer.first_name,
                "last_name": customer.last_name,
                "display_name": _display_name(customer, language),
                "rank": customer.rank,
                "locale": loc,
                "time_zone": zone.key,
                "order_count": customer.order_count,
                "first_order_at": _local(customer.first_order_at, zone),
                "last_order_at": _local(customer.last_order_at, zone),
            },
            "loyalty": {
                "points_balance": customer.points_balance,
                "rank": customer.rank,
                "next_rank": customer.next_rank,
                "points_to_next_rank": customer.points_to_next_rank,
                "rank_benefits": _benefits(loyalty_config, customer.rank),
                "benefits": {r.name: list(r.benefits) for r in loyalty_config.ranks},
                "next_rank_benefits": _benefits(loyalty_config, customer.next_rank),
                "points_next_expiry_at": _local(customer.points_next_expiry_at, zone),
                "points_next_expiry_amount": customer.points_next_expiry_amount,
            },
            "recommendations": [dict(r) for r in recommendations],
            "coupon": None
            if coupon is None
            else {
                "code": coupon.code,
                "discount": coupon.discount,
                "expires_at": _local(coupon.expires_at, zone),
            },
            "unsubscribe_url": unsubscribe_url,
        }
    )
    return context
