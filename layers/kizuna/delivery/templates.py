"""Message rendering: Jinja2, sandboxed, strict, one file per channel part and locale.

Layout under the templates root (the repository's ``templates/`` unless told otherwise)::

    <program>/<template>/<locale>/email.subject.j2
                                  email.html.j2     (HTML autoescape on: *.html.j2 only)
                                  email.txt.j2
                                  sms.txt.j2
                                  push.title.j2     (may render empty)
                                  push.body.j2
                                  line.txt.j2
                                  webhook.json.j2   (a JSON document: its string values
                                                     are templates, see below)
                                  line.json         (instead of line.txt.j2: LINE message
                                                     objects, Jinja2 in string values only;
                                                     see kizuna.delivery.line_messages)
    _base/...                     shared layouts ({% extends "_base/email.html.j2" %})

A webhook body is JSON, never Jinja output pasted into JSON text: ``webhook.json.j2`` is
a JSON document (at most :data:`WEBHOOK_MAX_BODY_BYTES`), and each string value in it (keys
are not) is rendered as a template on its own; numbers, booleans and null stay as written.
A value like ``"{{ customer.first_name }}"`` is always a JSON string, whatever the name
holds (quotes, braces): the customer's data cannot change the document's structure.

A message renders completely or not at all: an undefined variable, a missing part, a
syntax error, a sandbox violation, an empty required part or a part over its bounds raises
:class:`RenderError`.

Bounds: a template is code, and code can be slow or huge (``{{ 'a' * 10**9 }}``). Operators
and methods that make big values in one C-level step (``*``, ``**``, ``%``, ``+``,
``str.center``/``replace``/``join``/``format``..., the filters that pad, repeat or join) are
refused beyond :data:`MAX_ITEMS` characters or items (integers beyond :data:`MAX_INT_BITS`
bits); rendering a part stops at :data:`MAX_PART_CHARS` characters of output and after
:data:`MAX_RENDER_SECONDS` of the rendering thread's user-mode CPU time (checked on every
Python line the render runs; CPU time, not wall-clock time, so a render that waits for the
GIL behind other threads — the local runtime runs many — is not cut short: only its own work
counts; the garbage collector's pauses in that thread are not counted either, since a
collection of a large heap that happens to start during a render is not the template's work,
nor is kernel time, such as memory reclaim on a host short of memory). A render that overran
is tried once more before it is refused: a template that loops overruns again.
"""

from __future__ import annotations

import gc
import json
import re
import resource
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    Undefined,
    meta,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
)
from jinja2.utils import Namespace
from pydantic import ValidationError

from kizuna.delivery.content import (
    WEBHOOK_MAX_BODY_BYTES,
    CardContent,
    DmContent,
    EmailContent,
    LineContent,
    PushContent,
    RenderedMessage,
    SmsContent,
    WebhookContent,
    sms_segments,
)
from kizuna.delivery.coupons import Coupon
from kizuna.delivery.line_messages import (
    LineMessageError,
    message_problems,
    parse_template,
    render_strings,
    template_problems,
)
from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import ISO_DAY_TEXT, ISO_LOCAL_TIME_TEXT, ISO_OFFSET_TEXT
from kizuna.domain.zones import is_zone, zone_or
from kizuna.runtime.config import CustomConfig, LoyaltyConfig

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "templates"
DEFAULT_LOCALE = "ja"
DEFAULT_TIME_ZONE = "Asia/Tokyo"

# Parts each channel needs, in render order.
PARTS: dict[str, tuple[str, ...]] = {
    "email": ("email.subject", "email.html", "email.txt"),
    "sms": ("sms.txt",),
    "push": ("push.title", "push.body"),
    "line": ("line.txt",),
    "webhook": ("webhook.json",),
    # a card: its title and body; an https image and link, and its lifetime in hours
    # (empty: none / the default; kizuna.delivery.content.CardContent bounds them)
    "card": ("card.title", "card.body", "card.image", "card.link", "card.expires"),
    "dm": ("dm.txt",),
}
# Parts that may render to nothing (the app's name shows as a push title).
MAY_BE_EMPTY = frozenset({"push.title", "card.image", "card.link", "card.expires"})
SUFFIX = ".j2"
# A LINE template may instead be JSON message objects (Flex, image, imagemap, template).
LINE_JSON = "line.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")
_REASON_MAX = 300

# Bounds of one render (see the module's docstring).
MAX_ITEMS = 100_000  # characters of a string, items of a list, made by one operation
MAX_INT_BITS = 4096  # integers a template computes
MAX_PART_CHARS = 1_000_000  # output of one part
MAX_RENDER_SECONDS = 2.0  # CPU time of the rendering thread, one part
_UNSAFE_NAMES = (
    UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)

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
    "format_date_in",
    "format_number",
    "parse_date_text",
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


# The ISO 8601 forms |date reads, as ingest takes an event's times and dates
# (kizuna.domain.timestamps), named in its errors
_DATE_FORMS = "YYYY-MM-DD, or a time with its UTC offset: YYYY-MM-DDTHH:MM:SSZ, +09:00"


def parse_date_text(text: str) -> date | datetime:
    """``YYYY-MM-DD`` as a date, ``YYYY-MM-DDTHH:MM[:SS[.fff]]`` followed by ``Z`` or
    ``±HH:MM`` as an aware datetime; ValueError for any other text (a time without its
    offset, a month 13, a space for the ``T``, epoch seconds), whose message never quotes
    the text (it may be a customer's data)."""
    if ISO_DAY_TEXT.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"|date: text that is no calendar date ({_DATE_FORMS})") from None
    local = ISO_LOCAL_TIME_TEXT.match(text)
    if local is None:
        raise ValueError(f"|date: text that is no ISO 8601 date or time ({_DATE_FORMS})")
    if not ISO_OFFSET_TEXT.fullmatch(text, local.end()):
        raise ValueError(f"|date: a time without a UTC offset written Z or ±HH:MM ({_DATE_FORMS})")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"|date: text that is no calendar date or time ({_DATE_FORMS})") from None


def format_date_in(
    value: date | datetime | str | None, locale: str, time_zone: str | None = None
) -> str:
    """:func:`format_date` that also takes ISO 8601 text (:func:`parse_date_text`): a time's
    date is the one in ``time_zone`` (the customer's), else the one its offset gives; a
    calendar date is the date written. A date or datetime is formatted as it is (the
    context's are in the customer's zone already); None is empty. Anything else is a
    TypeError naming its type only."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # StrictUndefined: the name the template lacks
    if isinstance(value, str):
        parsed = parse_date_text(value)
        if isinstance(parsed, datetime) and is_zone(time_zone):
            try:
                parsed = parsed.astimezone(zone_or(time_zone))
            except OverflowError:
                raise ValueError(f"|date: a time out of range ({_DATE_FORMS})") from None
        return format_date(parsed, locale)
    if value is None or isinstance(value, date):
        return format_date(value, locale)
    raise TypeError(
        f"|date takes a date, a datetime or ISO 8601 text ({_DATE_FORMS}), "
        f"not {type(value).__name__}"
    )


@pass_context
def _date_filter(context: Context, value: Any, locale: str | None = None) -> str:
    """The templates' ``|date``: :func:`format_date_in` in ``locale``, else the message's
    (the context's ``locale``), a time's date in the customer's time zone."""
    customer = context.get("customer")
    zone = customer.get("time_zone") if isinstance(customer, Mapping) else None
    message_locale = context.get("locale")
    if locale is None:
        locale = message_locale if isinstance(message_locale, str) else DEFAULT_LOCALE
    return format_date_in(value, locale, zone if isinstance(zone, str) else None)


def _single_line(text: str) -> str:
    return " ".join(text.split())


# --- bounds ----------------------------------------------------------------------------------
class RenderLimit(SecurityError):
    """A template that would take too long or make something too big."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _need(size: int, what: str) -> None:
    if size > MAX_ITEMS:
        raise RenderLimit(f"{what} would make {size:,} characters or items (limit {MAX_ITEMS:,})")


def _check_int(value: Any, what: str) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"{what}: an integer over {MAX_INT_BITS} bits")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")


def _check_percent(fmt: str) -> None:
    """``%`` formatting with a width or precision that pads beyond the limit."""
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*":
                raise RenderLimit("'%*' widths are not allowed")
            if number:
                _need(int(number), "a % format width")


def _check_format(fmt: str) -> None:
    """``str.format`` specs with a width or precision beyond the limit (nested ones refused)."""
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:
            raise RenderLimit("nested format specs are not allowed")
        for number in re.findall(r"\d+", spec):
            _need(int(number), "a format width")


def _product(left: Any, right: Any) -> None:
    _need(_size(left) * _count(right) + _size(right) * _count(left), "'*'")
    both_ints = isinstance(left, int) and isinstance(right, int)
    if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"'*': an integer over {MAX_INT_BITS} bits")


def _power(left: Any, right: Any) -> None:
    both_ints = isinstance(left, int) and isinstance(right, int)
    if both_ints and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
        raise RenderLimit(f"'**': an integer over {MAX_INT_BITS} bits")


def _replaced(text: str, old: str, new: str, count: int = -1) -> int:
    times = text.count(old) if old else len(text) + 1
    if count >= 0:
        times = min(times, count)
    return len(text) + times * (len(new) - len(old))


def _joined(separator: str, items: Any) -> tuple[int, list[Any]]:
    listed = list(items)
    _need(len(listed), "join")
    return len(separator) * len(listed) + sum(len(str(i)) for i in listed), listed


_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _bounded_str_method(text: str, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``text.<name>`` that refuses to make a string beyond the limit."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in _STR_WIDTH_METHODS and args:
            _need(_count(args[0]), f"str.{name}")
        elif name == "expandtabs":
            _need(
                len(text) * max(_count(args[0] if args else kwargs.get("tabsize", 8)), 1),
                "str.expandtabs",
            )
        elif name == "replace" and len(args) >= 2:
            _need(_replaced(text, str(args[0]), str(args[1]), *args[2:3]), "str.replace")
        elif name == "join" and args:
            size, listed = _joined(text, args[0])
            _need(size, "str.join")
            return method(listed)
        return method(*args, **kwargs)

    return bounded


class _BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow beyond the limit (``ns.s = ns.s ~ ns.s``
    in a loop doubles a string each time)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _need(_size(value), f"namespace attribute {name}")
        super().__setitem__(name, value)


def _bounded_filters() -> dict[str, Callable[..., Any]]:
    """Jinja's filters that pad, repeat or join, refusing results beyond the limit."""

    def center(value: Any, width: int = 80) -> Any:
        _need(_count(width), "center")
        return FILTERS["center"](value, width)

    def indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        text = str(value)
        pad = _count(width) if not isinstance(width, str) else len(width)
        _need(len(text) + pad * (text.count("\n") + 1), "indent")
        return FILTERS["indent"](value, width, *args, **kwargs)

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_percent(str(value))
        return FILTERS["format"](value, *args, **kwargs)

    def replace(ctx: Any, value: Any, old: str, new: str, count: int | None = None) -> Any:
        _need(_replaced(str(value), str(old), str(new), -1 if count is None else count), "replace")
        return FILTERS["replace"](ctx, value, old, new, count)

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        _need(_count(linecount), "batch")
        return FILTERS["batch"](value, linecount, fill_with)

    def wordwrap(value: Any, width: int = 79, *args: Any, **kwargs: Any) -> Any:
        _need(len(str(value)) * 2 + _count(width), "wordwrap")
        return FILTERS["wordwrap"](value, width, *args, **kwargs)

    replace.jinja_pass_arg = FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]
    return {
        "center": center,
        "indent": indent,
        "format": format_,
        "replace": replace,
        "batch": batch,
        "wordwrap": wordwrap,
    }


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the render bounds of this module."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(_bounded_filters())
        self.globals["namespace"] = _BoundedNamespace
        self.globals.pop("lipsum", None)  # placeholder text, up to any length

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _product(left, right)
        elif operator == "**":
            _power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        elif operator == "+":
            _need(_size(left) + _size(right), "'+'")
        result = super().call_binop(context, operator, left, right)
        _check_int(result, f"'{operator}'")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if isinstance(obj, str) and callable(value):
            if attribute in ("format", "format_map"):
                _check_format(obj)
            elif attribute in (*_STR_WIDTH_METHODS, "expandtabs", "replace", "join"):
                return _bounded_str_method(obj, attribute, value)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if isinstance(obj, str) and callable(value) and isinstance(argument, str):
            return self.getattr(obj, argument)
        return value

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for arg in (*args, *kwargs.values()):
            _need(_size(arg), "an argument")  # a macro calling itself with s ~ s
        return super().call(__context, __obj, *args, **kwargs)


def _work_seconds() -> float:
    """This thread's CPU time in user mode: the render's own work. Kernel time charged to the
    thread (page faults, memory reclaim when the host is short of memory) is not the
    template's; where the platform cannot tell them apart, all of the thread's CPU time."""
    if _RUSAGE_THREAD is None:
        return time.thread_time()
    return float(resource.getrusage(_RUSAGE_THREAD).ru_utime)


_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)


class _Overrun(SecurityError):
    """One attempt of a render ran past its CPU bound."""


def render_bounded(
    template: Template,
    context: Mapping[str, Any],
    *,
    max_chars: int = MAX_PART_CHARS,
    max_seconds: float = MAX_RENDER_SECONDS,
) -> str:
    """``template`` rendered, refused (:class:`RenderLimit`) past ``max_chars`` of output or
    ``max_seconds`` of this thread's user-mode CPU time, garbage collection excepted
    (checked on each line of Python the render runs, so a loop that outputs nothing is
    stopped too). A render that overran once is tried once more before it is refused: a
    template that loops overruns again, a one-off charge to the thread does not."""
    for attempt in (1, 2):
        try:
            return _render_once(template, context, max_chars, max_seconds)
        except _Overrun:
            if attempt == 2:
                raise RenderLimit(f"rendering took over {max_seconds:g} s") from None
    raise AssertionError("unreachable")


def _render_once(
    template: Template, context: Mapping[str, Any], max_chars: int, max_seconds: float
) -> str:
    rendering = threading.get_ident()
    collecting: list[float] = []  # the thread time a collection in this thread started at
    collected = [0.0]  # CPU seconds the collector took in this thread during the render

    def count_gc(phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != rendering:
            return
        if phase == "start":
            collecting[:] = [_work_seconds()]
        elif collecting:
            collected[0] += _work_seconds() - collecting.pop()

    deadline = _work_seconds() + max_seconds
    environment = template.environment

    def tick(frame: Any, event: str, arg: Any) -> Any:
        if _work_seconds() - collected[0] > deadline:
            raise _Overrun
        return tick

    def enter(frame: Any, event: str, arg: Any) -> Any:
        # Trace the template's own code (its loops), not the filters it calls: they run on
        # values the bounds above keep small, so each call ends quickly.
        if frame.f_globals.get("environment") is environment:
            return tick(frame, event, arg)
        return None

    chunks: list[str] = []
    size = 0
    previous = sys.gettrace()
    gc.callbacks.append(count_gc)
    sys.settrace(enter)
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_chars:
                raise RenderLimit(f"output over {max_chars:,} characters")
            chunks.append(chunk)
    finally:
        sys.settrace(previous)
        gc.callbacks.remove(count_gc)
    return "".join(chunks)


# --- renderer --------------------------------------------------------------------------------
class Renderer:
    """Renders a program's template for one channel. Compiled templates are cached for the
    life of the instance (build one per Lambda container)."""

    def __init__(
        self, root: Path | str | None = None, *, default_locale: str = DEFAULT_LOCALE
    ) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.default_locale = default_locale
        self._env = BoundedSandbox(
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
        self._env.filters["date"] = _date_filter
        self._uses: dict[tuple[str, str, str], bool] = {}
        self._line_strings: dict[tuple[str, str], Template] = {}

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
        every part missing in the default locale (a template with folders but not the
        default locale's: :meth:`default_locale_problem`)."""
        parts = PARTS.get(str(channel))
        if parts is None:
            raise ValueError(f"unknown channel {channel!r}")
        locales = [locale] if locale else self.locales(program, template)
        if not locales:
            locales = [self.default_locale]
        missing = [
            f"{loc}/{part}{SUFFIX}"
            for loc in locales
            for part in parts
            if not (self.root / program / template / loc / f"{part}{SUFFIX}").is_file()
            and not (
                channel == "line" and (self.root / program / template / loc / LINE_JSON).is_file()
            )
        ]
        return missing + self._json_problems(program, template, str(channel), locales, missing)

    def default_locale_problem(self, program: str, template: str) -> str | None:
        """Why a template with locale folders cannot be sent to everyone: it has no folder
        for the default locale, where every customer whose own locale has none falls back
        (:meth:`resolve_locale`: they would fail at send time). None when it has one, or no
        folder at all (:meth:`parts_missing` reports that)."""
        locales = self.locales(program, template)
        if not locales or self.default_locale in locales:
            return None
        return (
            f"template {template!r} needs the default locale {self.default_locale!r} "
            f"(has {', '.join(locales)})"
        )

    def _json_problems(
        self, program: str, template: str, channel: str, locales: list[str], missing: list[str]
    ) -> list[str]:
        """A webhook body template that is there but is no JSON document within the size
        limit, as ``valid <locale>/webhook.json.j2 (why)``."""
        if channel != "webhook":
            return []
        problems = []
        for loc in locales:
            name = f"{loc}/webhook.json{SUFFIX}"
            if name in missing:
                continue
            try:
                source = self._source(f"{program}/{template}/{name}")
                _json_template(source)
            except (TemplateNotFound, ValueError) as err:
                problems.append(f"valid {name} ({err})")
        return problems

    def _source(self, name: str) -> str:
        return self._env.loader.get_source(self._env, name)[0]  # type: ignore[union-attr]

    def _source_or_nothing(self, name: str) -> str:
        try:
            return self._source(name)
        except Exception:  # a failure's reason is being written: nothing quoted is kept
            return ""

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
        locales = self.locales(program, template)
        if not locales:
            return True
        pending = [
            f"{program}/{template}/{loc}/{path.name}"
            for loc in locales
            for path in (self.root / program / template / loc).glob(f"*{SUFFIX}")
        ] + [
            f"{program}/{template}/{loc}/{LINE_JSON}"
            for loc in locales
            if (self.root / program / template / loc / LINE_JSON).is_file()
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

    def check(
        self,
        program: str,
        template: str,
        channel: str,
        context_for: Callable[[str], Mapping[str, Any]],
    ) -> list[str]:
        """Every problem a send of ``template`` on ``channel`` would meet, per locale folder
        (``<locale>/<part>: ...``): names the context lacks and attributes the sandbox refuses,
        found in the source (branches a sample would not take included; what it extends,
        includes or imports too), then the render itself with ``context_for(locale)`` (the
        context a send gives a customer of that locale): undefined attributes, sandbox and
        bound violations, empty or invalid parts."""
        problems: list[str] = []
        parts = PARTS.get(str(channel), ())
        for loc in self.locales(program, template) or [self.default_locale]:
            context = context_for(loc)
            found = [
                f"{loc}/{part}: {problem}"
                for part in parts
                for problem in self._source_problems(
                    f"{program}/{template}/{loc}/{part}{SUFFIX}", set(context)
                )
            ]
            if not found:
                try:
                    self.render(program, template, channel, loc, context)
                except RenderError as err:
                    found.append(f"{err.locale}: {err.reason}")
            problems += found
        return problems

    def _source_problems(self, name: str, known: set[str]) -> list[str]:
        problems: list[str] = []
        pending, seen = [name], set()
        allowed = known | set(self._env.globals)
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source = self._env.loader.get_source(self._env, current)[0]  # type: ignore[union-attr]
                ast = self._env.parse(source, current)
            except TemplateNotFound:
                if current != name:
                    problems.append(f"missing template {current}")
                continue  # a missing part is reported by parts_missing / the render
            except TemplateSyntaxError as err:
                problems.append(
                    f"syntax error at {err.name or current}:{err.lineno}: {err.message}"
                )
                continue
            where = "" if current == name else f" (in {current})"
            # a top-level ``{% set %}`` (outside blocks) is in the context of the blocks too,
            # though jinja2.meta counts a block's use of it as undeclared
            top_level = {
                target.name
                for node in ast.body
                if isinstance(node, nodes.Assign)
                for target in node.find_all(nodes.Name)
                if target.ctx == "store"
            }
            for undefined in sorted(meta.find_undeclared_variables(ast) - allowed - top_level):
                problems.append(f"undefined name {undefined!r}{where}")
            for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
                attr = node.attr if isinstance(node, nodes.Getattr) else None
                if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                    attr = node.arg.value if isinstance(node.arg.value, str) else None
                if attr is not None and (attr.startswith("_") or attr in _UNSAFE_NAMES):
                    problems.append(
                        f"the sandbox refuses attribute {attr!r} (line {node.lineno}){where}"
                    )
            pending += [t for t in meta.find_referenced_templates(ast) if t is not None]
        return problems

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
        context = in_language_of(context, loc)

        if channel == "webhook":
            return self._render_webhook(program, template, loc, context, fail)
        if channel == "line":
            source = self._line_json(program, template, loc)
            if source is not None:
                return self._render_line_json(f"{program}/{template}/{loc}", source, context, fail)

        texts: dict[str, str] = {}
        for part in parts:
            name = f"{program}/{template}/{loc}/{part}{SUFFIX}"
            try:
                texts[part] = render_bounded(self._env.get_template(name), context)
            except TemplateNotFound as err:
                raise fail(f"missing template {err.name}", loc) from None
            except TemplateSyntaxError as err:
                where = f"{err.name or name}:{err.lineno}"
                raise fail(f"syntax error at {where}: {err.message}", loc) from None
            except Exception as err:  # anything a template can raise: never half-render
                kind, detail = _failure(err, self._source_or_nothing(name))
                raise fail(f"{kind} in {part}: {detail}", loc) from None
            if not texts[part].strip() and part not in MAY_BE_EMPTY:
                raise fail(f"{part} rendered empty", loc)

        try:
            return _content(channel, texts)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            raise fail(problems, loc) from None

    def _render_webhook(
        self,
        program: str,
        template: str,
        loc: str,
        context: Mapping[str, Any],
        fail: Callable[[str, str], RenderError],
    ) -> WebhookContent:
        """The JSON document with each string value rendered on its own (module docstring)."""
        name = f"{program}/{template}/{loc}/webhook.json{SUFFIX}"
        try:
            document = _json_template(self._source(name))
        except TemplateNotFound as err:
            raise fail(f"missing template {err.name}", loc) from None
        except ValueError as err:
            raise fail(f"webhook.json: {err}", loc) from None

        def render_value(value: str, where: str) -> str:
            try:
                return render_bounded(self._env.from_string(value), context)
            except Exception as err:  # anything a template can raise: never half-render
                kind, detail = _failure(err, value)
                raise fail(f"{kind} in webhook.json at {where}: {detail}", loc) from None

        rendered = render_strings(document, render_value, "$", renders=_may_have_markup)
        body = json.dumps(rendered, ensure_ascii=False, separators=(",", ":"))
        if len(body.encode()) > WEBHOOK_MAX_BODY_BYTES:
            raise fail(f"webhook.json rendered over {WEBHOOK_MAX_BODY_BYTES} bytes", loc)
        return WebhookContent(body=body)

    def _line_json(self, program: str, template: str, loc: str) -> str | None:
        """The ``line.json`` of a locale folder, None when it has none."""
        name = f"{program}/{template}/{loc}/{LINE_JSON}"
        try:
            return self._env.loader.get_source(self._env, name)[0]  # type: ignore[union-attr]
        except TemplateNotFound:
            return None

    def _render_line_json(
        self,
        folder: str,
        source: str,
        context: Mapping[str, Any],
        fail: Callable[..., RenderError],
    ) -> RenderedMessage:
        """LINE message objects from a ``line.json``: parsed as JSON first, each string value
        rendered on its own (never text pasted into JSON), checked against LINE's rules as
        written and again once rendered."""
        loc = folder.rsplit("/", 1)[-1]
        try:
            messages = parse_template(source)
        except LineMessageError as err:
            raise fail(str(err), loc) from None
        problems = template_problems(messages)
        if problems:
            raise fail(f"{LINE_JSON}: {'; '.join(problems)}", loc)

        def render_one(text: str, path: str) -> str:
            key = (folder, text)
            compiled = self._line_strings.get(key)
            try:
                if compiled is None:
                    compiled = self._line_strings[key] = self._env.from_string(text)
                return render_bounded(compiled, context)
            except Exception as err:  # anything a template can raise: never half-render
                kind, detail = _failure(err, text)
                raise fail(f"{LINE_JSON} {path}: {kind}: {detail}", loc) from None

        rendered = render_strings(messages, render_one)
        problems = message_problems(rendered)
        if problems:
            raise fail(f"{LINE_JSON} rendered: {'; '.join(problems)}", loc)
        return LineContent(messages=tuple(rendered))


def _failure(err: Exception, source: str) -> tuple[str, str]:
    """What went wrong rendering a template, for a :class:`RenderError`'s reason: a kind
    (``syntax error``, ``over a render bound``, ``sandbox refused``, ``undefined``, or the
    exception's name) and the detail. A failure while rendering is told in the template's
    own words only (:func:`_own_words`: the reason goes to logs, the ledger and the
    timeline); one of the template's form (syntax, bounds, the sandbox) holds no data."""
    if isinstance(err, TemplateSyntaxError):
        return "syntax error", f"{err.message}"
    if isinstance(err, RenderLimit):  # before SecurityError, which it is
        return "over a render bound", str(err)
    if isinstance(err, SecurityError):
        return "sandbox refused", str(err)
    if isinstance(err, UndefinedError):
        return "undefined", _own_words(f"{err.message}", source)
    return type(err).__name__, _own_words(str(err), source)


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
# a type's name in Jinja's and Python's messages: "'dict object' has no attribute", "'None'"
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]* object|None")
_WORD = re.compile(r"\w+")


def _own_words(detail: str, source: str) -> str:
    """``detail`` if every quoted word in it is a whole word of the template's ``source`` (a
    name, a key it wrote) or a type's name; else a message naming none: an error may quote a
    value of the context (``title[customer.last_name]``: "'dict object' has no attribute
    '鈴木'"), which is personal data. Whole words: a one-kanji name (森) inside the copy
    (森林公園) is no word of the template."""
    words = set(_WORD.findall(source))
    for match in _QUOTED.finditer(detail):
        word = match.group(1) if match.group(1) is not None else match.group(2)
        if word and word not in words and not _TYPE_NAME.fullmatch(word):
            return "it names a value of the customer's data (not shown); render a preview"
    return detail


def _may_have_markup(value: str) -> bool:
    """A webhook.json string rendered by Jinja2 (any other is copied as it is)."""
    return "{" in value or "%" in value


def _json_template(source: str) -> Any:
    """A webhook body template's JSON document (an object or an array), or ValueError."""
    if len(source.encode()) > WEBHOOK_MAX_BODY_BYTES:
        raise ValueError(f"over {WEBHOOK_MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(source)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a JSON document: {err.msg} at line {err.lineno}") from None
    if not isinstance(document, dict | list):
        raise ValueError("the document is a JSON object or array")
    return document


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

    def parts_missing(
        self, program: str, template: str, channel: str, locale: str | None = None
    ) -> list[str]:
        """As :meth:`Renderer.parts_missing`, in ``files`` when they hold the template."""
        if not self._file_locales(program, template):
            return super().parts_missing(program, template, channel, locale)
        parts = PARTS.get(str(channel))
        if parts is None:
            raise ValueError(f"unknown channel {channel!r}")
        locales = [locale] if locale else self.locales(program, template)
        missing = [
            f"{loc}/{part}{SUFFIX}"
            for loc in locales
            for part in parts
            if f"{program}/{template}/{loc}/{part}{SUFFIX}" not in self.files
            and not (channel == "line" and f"{program}/{template}/{loc}/{LINE_JSON}" in self.files)
        ]
        return missing + self._json_problems(program, template, str(channel), locales, missing)


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
    if channel == "card":
        return _card(texts)
    if channel == "dm":
        return DmContent(
            lines=tuple(_single_line(t) for t in texts["dm.txt"].splitlines() if t.strip())
        )
    return LineContent(text=texts["line.txt"].strip())


def _card(texts: Mapping[str, str]) -> CardContent:
    """A card's parts as its content: the optional ones empty -> absent, the lifetime a
    whole number of hours (anything else fails validation, naming the field)."""
    expires = texts["card.expires"].strip()
    fields: dict[str, Any] = {
        "title": _single_line(texts["card.title"]),
        "body": texts["card.body"].strip(),
        "image_url": texts["card.image"].strip() or None,
        "link_url": texts["card.link"].strip() or None,
    }
    if expires:
        fields["expires_after_hours"] = expires  # pydantic: digits only, else an error
    return CardContent.model_validate(fields)


# --- context ---------------------------------------------------------------------------------
def _zone(name: str | None, default: str) -> ZoneInfo:
    return zone_or(name, default)


def _local(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)


def in_language_of(context: Mapping[str, Any], folder: str) -> Mapping[str, Any]:
    """The context as the locale folder a message is rendered from writes it. A customer
    whose language has no folder gets the default locale's text (:meth:`Renderer.
    resolve_locale`); the message's ``locale`` (``|date``, the layout's footer and
    ``lang``) and ``customer.display_name`` are then that folder's language, not the
    customer's: a Korean reader of a Japanese-only template gets ``2026年12月21日`` and
    ``山田 花子様`` in Japanese sentences, not ``December 21, 2026`` and ``花子``. The same
    language (an ``en-GB`` reader of the ``en`` folder) keeps the customer's locale."""
    asked = context.get("locale")
    language = folder.split("-", maxsplit=1)[0]
    if not isinstance(asked, str) or asked.split("-", maxsplit=1)[0] == language:
        return context
    changed = {**context, "locale": folder}
    customer = context.get("customer")
    if isinstance(customer, Mapping) and "display_name" in customer:
        first, last = customer.get("first_name"), customer.get("last_name")
        changed["customer"] = {
            **customer,
            "display_name": _addressed(
                first if isinstance(first, str) else None,
                last if isinstance(last, str) else None,
                language,
            ),
        }
    return changed


def _display_name(customer: Customer, language: str) -> str:
    return _addressed(customer.first_name, customer.last_name, language)


def _addressed(first_name: str | None, last_name: str | None, language: str) -> str:
    first, last = (first_name or "").strip(), (last_name or "").strip()
    if language == "ja":
        name = " ".join(p for p in (last, first) if p)
        return f"{name}様" if name else ANONYMOUS["ja"]
    return first or last or ANONYMOUS.get(language, ANONYMOUS["en"])


def _benefits(config: LoyaltyConfig, rank: str | None, language: str) -> list[str]:
    for rule in config.ranks:
        if rule.name == rank:
            return list(rule.benefits_in(language))
    return []


def declared_attributes(customer: Customer, custom: CustomConfig | None) -> dict[str, Any]:
    """The customer's value of every declared attribute (None if unset)."""
    declared = custom.attributes if custom is not None else ()
    return {a.name: customer.attributes.get(a.name) for a in declared}


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
    custom: CustomConfig | None = None,
) -> dict[str, Any]:
    """What a template may read. No email address or phone number: a template has no
    business printing them, and a preview must be safe to share.

    ``customer.attributes`` holds every attribute ``custom`` declares (personal ones too: a
    message may address the customer by the nickname they gave), None when the customer
    has none, so ``customer.attributes.favourite_store`` is always defined and a misspelled
    name fails the template check.

    ``customer.display_name`` is how the message addresses the customer: ``山田 太郎様`` /
    ``お客様`` in Japanese (honorific included), ``Taro`` / ``Customer`` in English.
    Datetimes are in the customer's time zone; format them with ``|date`` (the message's
    locale; ``|date(locale)`` is the same), which also reads a trigger's ISO text, its date
    in the customer's zone (:func:`format_date_in`).
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
                "attributes": declared_attributes(customer, custom),
            },
            "loyalty": {
                "points_balance": customer.points_balance,
                "rank": customer.rank,
                "next_rank": customer.next_rank,
                "points_to_next_rank": customer.points_to_next_rank,
                "rank_benefits": _benefits(loyalty_config, customer.rank, language),
                "benefits": {r.name: list(r.benefits_in(language)) for r in loyalty_config.ranks},
                "next_rank_benefits": _benefits(loyalty_config, customer.next_rank, language),
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
