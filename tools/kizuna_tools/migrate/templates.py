"""Pinpoint message templates (Handlebars) to Kizuna templates (Jinja2).

:func:`translate_template` reads one GetEmailTemplate / GetSmsTemplate / GetPushTemplate
response and returns the Kizuna part files of that template in its locale
(``<locale>/email.subject.j2``...), what it could not translate (left in the file as a
``{# TODO(migrate): ... #}`` comment and listed), the custom attributes it reads and the notes
for the migration report. :func:`write_templates` writes a program's (or campaign's) templates
to ``OUT/templates/<program>/<template>/<locale>/<part>.j2``, the layout of ``templates/``.

**Locales.** A Pinpoint template has one locale; Kizuna keeps a template's locales side by side.
The convention: a ``locale`` (or ``language``) tag on the template wins; else a name ending in
``_<lang>``, ``-<lang>``, ``_<lang>_<REGION>`` (``welcome_ja``, ``welcome-en``,
``welcome_en_US``: a two-letter ISO 639-1 code Pinpoint users write) gives the locale and the
base name (``welcome``); else the template is in the default locale. The locale folder is
the language (``ja_JP`` -> ``ja``): Kizuna serves a ``ja-JP`` customer from ``ja``.
Templates with the same base name are one Kizuna template (email, SMS and push parts side by side);
:func:`group_templates` reports a template that has no counterpart in the project's other
locales.

**Variables.** ``{{User.UserAttributes.FirstName}}`` / ``{{Attributes.FirstName}}`` become
``customer.first_name`` (likewise ``LastName``); other ``User.UserAttributes.X``,
``Attributes.X`` and ``Metrics.X`` become ``customer.attributes.<snake_case x>`` (the custom
attributes the migration declares), and so do ``Location.City`` / ``Location.Country``
(``customer.attributes.city`` / ``country``: the migration declares them from the endpoints'
location); ``User.UserId`` is ``customer.customer_id``; ``Demographic.Locale`` /
``Timezone`` are ``customer.locale`` / ``time_zone``. Addresses, the endpoint id and status,
device data and the other location fields are not in Kizuna's template context (a template
has no business printing an address): TODO. Pinpoint prints nothing for a value a
recipient lacks: a custom attribute prints ``customer.attributes.x if customer.attributes.x
is not none else "<default>"`` (Kizuna's context holds every declared attribute, None when
unset; an undeclared one fails the template check, loudly), a name ``| default("<default>",
true)``; the default is the DefaultSubstitutions value, else ``""``.

**Escaping.** ``{{x}}`` in the HTML part is autoescaped by Kizuna as Handlebars escaped it;
``{{{x}}}`` (and ``{{&x}}``) becomes ``{{ x | safe }}`` there only, listed as a decision
(raw customer data in HTML: a campaign sending it is held until a person confirms). Text
parts (subject, text, SMS, push) are not HTML: both print as is.

**Blocks.** ``#if``/``else if``/``else``, ``#unless``, ``#each`` (``this``, ``@index``,
``@first``, ``@last``, ``../x``) and the comparison helpers ``eq ne gt gte lt lte and or not``
(block or sub-expression) translate; ``upper``/``lower``/``capitalize`` become filters.
A block it cannot translate keeps its content in ``{% if false %}...{% else %}...{% endif %}``
after a TODO: the message renders the ``else`` side (as if the condition were false) and the
content stays in the file for a person to finish.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Literal

from kizuna.domain import strict_json
from kizuna_tools.migrate.attributes import LOCATION_ATTRIBUTES, profile_field
from kizuna_tools.migrate.handlebars import (
    Block,
    Call,
    Comment,
    Expr,
    HandlebarsError,
    Literal_,
    Mustache,
    Node,
    Partial,
    Path,
    SubExpr,
    Text,
    parse,
)
from kizuna_tools.migrate.names import ATTRIBUTE_NAME, snake
from kizuna_tools.migrate.notes import Note

Kind = Literal["email", "sms", "push"]
LocaleSource = Literal["tag", "name", "default"]

__all__ = [
    "Kind",
    "TemplateResult",
    "Todo",
    "group_templates",
    "split_locale",
    "template_files",
    "template_name",
    "translate_handlebars",
    "translate_template",
    "write_templates",
]

RESPONSE_KEYS: dict[str, str] = {
    "email": "EmailTemplateResponse",
    "sms": "SMSTemplateResponse",
    "push": "PushNotificationTemplateResponse",
}
TEMPLATE_TYPES = {"email": "EMAIL", "sms": "SMS", "push": "PUSH"}
DEFAULT_LOCALE = "ja"
TODO = "TODO(migrate)"

# Two-letter language codes a template name may end in (ISO 639-1, the ones a shop writes).
LANGUAGES = frozenset(
    [
        "ar",
        "bn",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "fa",
        "fi",
        "fr",
        "he",
        "hi",
        "hr",
        "hu",
        "id",
        "it",
        "ja",
        "ka",
        "kk",
        "km",
        "ko",
        "lo",
        "lt",
        "lv",
        "mn",
        "ms",
        "my",
        "nb",
        "ne",
        "nl",
        "no",
        "pl",
        "pt",
        "ro",
        "ru",
        "si",
        "sk",
        "sl",
        "sr",
        "sv",
        "sw",
        "ta",
        "te",
        "th",
        "tl",
        "tr",
        "uk",
        "ur",
        "uz",
        "vi",
        "zh",
    ]
)
_SUFFIX = re.compile(r"^(?P<base>.+?)[_.-](?P<lang>[A-Za-z]{2})(?:[_-](?P<region>[A-Za-z]{2}))?\Z")
_KIZUNA_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")
_NULLABLE = {"first_name", "last_name"}
# Pinpoint paths whose values are arrays of strings (a metric is a number)
_LISTS = ("Attributes.", "User.UserAttributes.")
_ENDPOINT_ONLY = {
    "Address": "an endpoint's address (Kizuna gives templates no email address or phone number)",
    "Id": "the Pinpoint endpoint id (no Kizuna counterpart)",
    "EndpointStatus": "the endpoint status (Kizuna sends only to reachable, consenting customers)",
    "OptOut": "the endpoint opt-out (Kizuna sends only to consenting customers)",
    "EffectiveDate": "the endpoint's update date (not in Kizuna's template context)",
    "CreationDate": "the endpoint's creation date (not in Kizuna's template context)",
    "RequestId": "the endpoint's request id (no Kizuna counterpart)",
    "CohortId": "the endpoint's cohort id (no Kizuna counterpart)",
    "Location": "location data other than the city and the country (Kizuna keeps a region "
    "for conditions, not in templates)",
    "Recommendations": "Pinpoint recommender output (Kizuna offers `recommendations`: "
    "product_id, name, url)",
}
_COMPARE = {"eq": "==", "ne": "!=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_LOGIC = {"and", "or", "not"}
_FILTERS = {
    "upper": "upper",
    "uppercase": "upper",
    "lower": "lower",
    "lowercase": "lower",
    "capitalize": "capitalize",
}
_JINJA_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
        "elif",
        "endif",
        "for",
        "endfor",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    ]
)


# --- names -----------------------------------------------------------------------------------
def template_name(base: str) -> str:
    """A Kizuna template name (``^[a-z][a-z0-9_-]{0,39}$``) for a Pinpoint base name, in
    snake case like the repository's templates: ``WinterSale`` -> ``winter_sale``."""
    return snake(base)


def _locale_tag(value: str) -> str | None:
    loc = value.strip().replace("_", "-")
    if not _KIZUNA_LOCALE.match(loc):
        return None
    return loc.partition("-")[0].lower()


def split_locale(
    name: str, tags: Mapping[str, str] | None = None, default_locale: str = DEFAULT_LOCALE
) -> tuple[str, str, LocaleSource]:
    """``(base name, locale, where the locale came from)`` by the convention above. The
    locale is the language (``ja_JP`` -> ``ja``): Kizuna gives a ``ja-JP`` customer the
    ``ja`` folder, and a ``ja`` customer would never get a ``ja-JP`` one."""
    m = _SUFFIX.match(name)
    suffix: str | None = None
    if m and m.group("lang").lower() in LANGUAGES:
        suffix = m.group("lang").lower()
    for key, value in (tags or {}).items():
        if key.lower() in ("locale", "language") and isinstance(value, str):
            tagged = _locale_tag(value)
            if tagged is not None:
                base = m.group("base") if m and suffix == tagged else name
                return base, tagged, "tag"
    if m and suffix is not None:
        return m.group("base"), suffix, "name"
    return name, default_locale, "default"


# --- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Todo:
    part: str  # email.html, sms.txt...
    line: int  # in the Pinpoint part
    source: str  # the Handlebars as written
    reason: str

    def __str__(self) -> str:
        return f"{self.part}:{self.line}: {self.reason}: {self.source}"


@dataclass
class TemplateResult:
    """One Pinpoint template translated: ``files`` are relative to the Kizuna template's
    folder (``<locale>/<part>.j2``)."""

    name: str  # the Pinpoint TemplateName
    kind: Kind
    template: str  # the Kizuna template name (the locale group)
    locale: str
    locale_source: LocaleSource
    files: dict[str, str] = field(default_factory=dict)
    todos: list[Todo] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)  # Kizuna name -> Pinpoint path
    raw_html: list[str] = field(default_factory=list)  # {{{x}}} kept raw in the HTML part
    notes: list[Note] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"{self.kind} template {self.name!r}"


# --- translation -----------------------------------------------------------------------------
class _Untranslatable(Exception):
    pass


@dataclass(frozen=True)
class _Value:
    expr: str
    kind: Literal["nullable", "builtin", "attribute", "loop", "literal"]
    key: str = ""  # the Pinpoint path, for default substitutions
    literal: str = ""


@dataclass
class _Tag:
    body: str
    standalone: bool
    comment: bool = False


Mode = Literal["html", "text", "html_to_text", "text_to_html"]


def _q(value: Any) -> str:
    """A Jinja string literal."""
    return json.dumps("" if value is None else str(value), ensure_ascii=False)


def _jinja_text(text: str) -> str:
    """Literal text that Jinja prints as is (``{{``, ``{%``, ``{#`` escaped, and a ``{`` at
    the end: the next piece may open a tag, ``{`` + ``{{ x }}`` would be ``{{{ x }}}``)."""
    return re.sub(r"\{(?=[{%#]|$)", "{{ '{' }}", text)


def _comment_safe(text: str) -> str:
    return text.replace("#}", "# }")


class _HtmlToText:
    """Literal HTML to plain text, across text nodes (a tag may hold a mustache)."""

    BLOCK = re.compile(r"^/?(p|br|div|tr|li|h[1-6]|table|ul|ol|hr)\b", re.I)

    def __init__(self) -> None:
        self.in_tag = False
        self.quote = ""
        self.tag = ""
        self.skip: str | None = None  # inside <style> / <script>
        self.space = False  # whitespace seen since the last content
        self.newlines = 2  # newlines just written (the start counts as a fresh paragraph)

    def content(self) -> str:
        """What to write before content (a word or a value): the space it had before."""
        lead = " " if self.space and self.newlines == 0 else ""
        self.space, self.newlines = False, 0
        return lead

    def feed(self, text: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            c = text[i]
            if self.in_tag:
                if self.quote:
                    if c == self.quote:
                        self.quote = ""
                elif c in "\"'":
                    self.quote = c
                elif c == ">":
                    self.in_tag = False
                    name = self.tag.strip().lower()
                    if name.startswith(("style", "script")):
                        self.skip = "</" + name.split()[0]
                    elif self.BLOCK.match(name) and self.newlines < 2:
                        out.append("\n")
                        self.newlines += 1
                        self.space = False
                else:
                    self.tag += c
                i += 1
                continue
            if self.skip is not None:
                end = text.lower().find(self.skip, i)
                if end < 0:
                    return "".join(out)
                self.skip = None
                i = end
                continue
            if c == "<":
                self.in_tag, self.tag = True, ""
                i += 1
                continue
            j = text.find("<", i)
            j = len(text) if j < 0 else j
            for word in re.split(r"(\s+)", html.unescape(text[i:j])):
                if not word:
                    continue
                if word.isspace():
                    self.space = True
                else:
                    out.append(self.content() + word)
            i = j
        return "".join(out)


def _pinpoint_text(x: str, *, keep: bool = False) -> str:
    """A Jinja expression of a one-value attribute ``x`` as the text Pinpoint stored: a
    boolean ``true``/``false`` (Python would print ``True``), anything else its text (``keep``:
    the value itself, for printing, where Jinja makes the text)."""
    rest = x if keep else f"{x} | string"
    return f'("true" if {x} is sameas true else "false" if {x} is sameas false else {rest})'


class _Translator:
    def __init__(
        self,
        part: str,
        mode: Mode,
        kind: Kind,
        defaults: Mapping[str, str],
        naming: Callable[[str], str],
        result: TemplateResult,
    ) -> None:
        self.part = part
        self.mode = mode
        self.kind = kind
        self.defaults = defaults
        self.naming = naming
        self.result = result
        self.pieces: list[str | _Tag] = []
        self.loops: list[str] = []  # loop variables, innermost last
        self.html_text = _HtmlToText() if mode == "html_to_text" else None

    # -- output -----------------------------------------------------------------------
    def text(self, value: str) -> None:
        if self.html_text is not None:
            value = self.html_text.feed(value)
        elif self.mode == "text_to_html":
            value = html.escape(value, quote=False).replace("\n", "<br>\n")
        self.pieces.append(_jinja_text(value))

    def out(self, expr: str) -> None:
        if self.html_text is not None:
            if self.html_text.in_tag or self.html_text.skip is not None:
                return  # a value inside an HTML tag (an href): no text to show
            self.pieces.append(self.html_text.content())
        self.pieces.append("{{ " + expr + " }}")

    def tag(self, body: str, standalone: bool) -> None:
        self.pieces.append(_Tag(body, standalone))

    def todo(self, source: str, line: int, reason: str, standalone: bool = False) -> None:
        self.result.todos.append(Todo(self.part, line, source, reason))
        body = f"{TODO}: {reason}: {source}"
        self.pieces.append(_Tag(_comment_safe(body), standalone, comment=True))

    def finish(self) -> str:
        merged: list[str | _Tag] = []
        for piece in self.pieces:
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] += piece
            elif piece != "":
                merged.append(piece)
        out: list[str] = []
        for i, piece in enumerate(merged):
            if isinstance(piece, str):
                out.append(piece)
                continue
            open_, close = ("{#", "#}") if piece.comment else ("{%", "%}")
            if piece.standalone:
                out.append(f"{open_} {piece.body} {close}\n")
                continue
            # Jinja strips a tag's indentation (lstrip_blocks) and the newline after it
            # (trim_blocks); Handlebars keeps both for a tag that is not alone on its line.
            line = "".join(out).rsplit("\n", 1)[-1]
            if line and line.strip(" \t") == "":
                open_ += "+"
            nxt = merged[i + 1] if i + 1 < len(merged) else None
            if isinstance(nxt, str) and nxt.startswith(("\n", "\r\n")):
                close = "+" + close
            out.append(f"{open_} {piece.body} {close}")
        return "".join(out)

    # -- values -----------------------------------------------------------------------
    def resolve(self, path: Path) -> _Value:
        if path.data:
            name = path.parts[0] if path.parts else ""
            if name == "root" and path.depth == 0:
                return self._root(path.parts[1:], path.original)
            loop = {"index": "loop.index0", "first": "loop.first", "last": "loop.last"}
            if name in loop and path.parts == (name,) and self.loops and not path.depth:
                return _Value(loop[name], "loop")
            raise _Untranslatable(f"data variable {path.original} is not supported here")
        level = len(self.loops) - path.depth
        if level < 0:
            raise _Untranslatable(f"{path.original} goes above the template's context")
        if level == 0:
            return self._root(path.parts, path.original)
        if not path.parts:
            return _Value(self.loops[level - 1], "loop")
        raise _Untranslatable("a field of a list item (Pinpoint attribute lists hold strings)")

    def _root(self, parts: tuple[str, ...], original: str) -> _Value:
        if not parts:
            raise _Untranslatable("the whole endpoint ({{this}}) has no Kizuna counterpart")
        key = ".".join(parts)
        head = parts[0]
        if head == "User" and parts[1:] == ("UserId",):
            return _Value("customer.customer_id", "builtin", key)
        if head == "User" and len(parts) == 3 and parts[1] == "UserAttributes":
            return self._attribute(parts[2], key)
        if head in ("Attributes", "Metrics") and len(parts) == 2:
            return self._attribute(parts[1], key)
        if head == "Location" and len(parts) == 2 and parts[1] in LOCATION_ATTRIBUTES:
            return self._attribute(parts[1], key)  # declared from the endpoints' location
        if head == "Demographic" and len(parts) == 2:
            field_ = {"Locale": "customer.locale", "Timezone": "customer.time_zone"}.get(parts[1])
            if field_ is None:
                raise _Untranslatable(f"{key}: device data Kizuna does not keep")
            return _Value(field_, "builtin", key)
        if head == "ChannelType" and len(parts) == 1 and self.kind in ("email", "sms"):
            return _Value("", "literal", key, TEMPLATE_TYPES[self.kind])
        if head in _ENDPOINT_ONLY or head == "ChannelType":
            raise _Untranslatable(_ENDPOINT_ONLY.get(head, "the endpoint's channel type"))
        if head in ("User", "Attributes", "Metrics", "Demographic"):
            raise _Untranslatable(f"{key}: a path Pinpoint does not define")
        if len(parts) == 1 and key in self.defaults:
            # a message variable only a send's Substitutions gave: its default is the text
            return _Value("", "literal", key, self.defaults[key])
        raise _Untranslatable(f"unknown variable {original or key}")

    def _attribute(self, raw: str, key: str) -> _Value:
        known = profile_field(raw)
        if known is not None:
            return _Value(f"customer.{known}", "nullable" if known in _NULLABLE else "builtin", key)
        name = self.naming(raw)
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise _Untranslatable(f"{key}: {name!r} is not a Kizuna attribute name")
        self.result.attributes.setdefault(name, key)
        expr = (
            f'customer.attributes["{name}"]'
            if name in _JINJA_KEYWORDS
            else f"customer.attributes.{name}"
        )
        return _Value(expr, "attribute", key)

    def value(self, v: _Value, use: Literal["output", "test", "iter"]) -> str:
        default = self.defaults.get(v.key) if v.key else None
        if v.kind == "literal":
            return _q(v.literal)
        if use == "iter":
            if v.kind != "attribute" or not v.key.startswith(_LISTS):
                raise _Untranslatable(f"{v.key or v.expr} is not a list")
            # Pinpoint's attributes are arrays of strings; the migration keeps a one-item array
            # as a string (a boolean, a number...): it is one item, never its letters
            x = f"({v.expr} | default(none))"
            listed = f"{x} is sequence and {x} is not string"
            return f"({x} if {listed} else ([{_pinpoint_text(x)}] if {x} is not none else []))"
        if v.kind == "nullable":
            if use == "output" or default is not None:
                return f"{v.expr} | default({_q(default)}, true)"
            return v.expr
        if v.kind == "attribute":
            # the context holds every declared attribute, None when the customer has none
            present = f"{v.expr} if {v.expr} is not none else {_q(default)}"
            if use == "output" and v.key.startswith(_LISTS):
                # Pinpoint's (user) attributes are arrays, and Handlebars.js prints an array as
                # its items joined by commas ("sweets,tea"): a string_list attribute prints
                # the same, never Python's ['sweets', 'tea']; a boolean prints as Pinpoint
                # stored it, "true", never Python's "True"
                listed = f"{v.expr} is sequence and {v.expr} is not string"
                shown = _pinpoint_text(v.expr, keep=True)
                present = f"{shown} if {v.expr} is not none else {_q(default)}"
                return f'{v.expr} | join(",") if {listed} else ({present})'
            if use == "output" or default is not None:
                return present
            return f"{v.expr} | default(none)"
        if use == "output" and default is not None:
            return f"{v.expr} | default({_q(default)}, true)"
        return v.expr

    def operand(self, expr: Expr, wrap: bool = True) -> str:
        if isinstance(expr, Literal_):
            if expr.value is None:
                return "none"
            if isinstance(expr.value, bool):
                return "true" if expr.value else "false"
            if isinstance(expr.value, int | float):
                return repr(expr.value)
            return _q(expr.value)
        if isinstance(expr, SubExpr):
            inner = self.condition(expr.call)
            return f"({inner})" if wrap else inner
        text = self.value(self.resolve(expr), "test")
        return f"({text})" if wrap and " " in text else text

    def condition(self, call: Call) -> str:
        helper = call.helper
        if call.hash:
            raise _Untranslatable("hash arguments")
        if helper in _COMPARE and len(call.params) == 2:
            first, second = call.params
            a, b = self._compared(first, second), self._compared(second, first)
            op = _COMPARE[helper]
            if op in ("==", "!="):
                return f"{a} {op} {b}"
            # JavaScript compares a missing value as false; Python refuses None > 1
            guards = [
                f"{x} is not none"
                for x, p in ((a, call.params[0]), (b, call.params[1]))
                if not isinstance(p, Literal_)
            ]
            return " and ".join([*guards, f"{a} {op} {b}"])
        if helper in ("and", "or") and len(call.params) >= 2:
            return f" {helper} ".join(self.operand(p) for p in call.params)
        if helper == "not" and len(call.params) == 1:
            return f"not {self.operand(call.params[0])}"
        if not call.params:
            return self.operand(call.head, wrap=False)
        raise _Untranslatable(f"helper {helper or '?'!r} is not supported")

    def _compared(self, param: Expr, other: Expr) -> str:
        """An operand of a comparison. Pinpoint stored an attribute as strings and compared
        it with a string as a string: an attribute the migration typed (``true`` a boolean,
        ``10`` a number) is compared in the text Pinpoint had (``"true"``, ``"10"``), so
        ``(eq Attributes.Vip "true")`` holds for a VIP and ``(gte Attributes.Level "5")``
        compares text, as Pinpoint did."""
        if isinstance(param, Path) and isinstance(other, Literal_) and isinstance(other.value, str):
            v = self.resolve(param)
            if v.kind == "attribute" and v.key.startswith(_LISTS):
                x = f"({self.value(v, 'test')})"
                text = _pinpoint_text(x)
                listed = f"{x} is sequence and {x} is not string"
                return f'(none if {x} is none else {x} | join(",") if {listed} else {text})'
        return self.operand(param)

    # -- nodes ------------------------------------------------------------------------
    def nodes(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.text(node.value)
            elif isinstance(node, Comment):
                pass  # Handlebars comments print nothing; Kizuna's files keep none
            elif isinstance(node, Partial):
                self.todo(
                    node.source, node.line, "partials are not supported", standalone=node.standalone
                )
            elif isinstance(node, Mustache):
                self.mustache(node)
            else:
                self.block(node)

    def mustache(self, node: Mustache) -> None:
        call = node.call
        try:
            if call.params or call.hash:
                helper = call.helper
                if helper in _FILTERS and len(call.params) == 1 and not call.hash:
                    param = call.params[0]
                    if isinstance(param, Path):
                        inner = self.value(self.resolve(param), "output")
                        inner = f"({inner})" if " if " in inner else inner
                    else:
                        inner = self.operand(param)
                    expr = f"{inner} | {_FILTERS[helper]}"
                else:
                    raise _Untranslatable(f"helper {helper or '?'!r} is not supported")
            elif isinstance(call.head, Literal_):
                expr = _q(call.head.value)
            elif isinstance(call.head, SubExpr):
                raise _Untranslatable("a sub-expression printed as a value")
            else:
                expr = self.value(self.resolve(call.head), "output")
        except _Untranslatable as why:
            self.todo(node.source, node.line, str(why))
            return
        if not node.escaped and self.mode in ("html", "html_to_text") and " if " in expr:
            expr = f"({expr})"
        if not node.escaped and self.mode == "html":
            expr += " | safe"
            self.result.raw_html.append(node.source)
        elif not node.escaped and self.mode == "html_to_text":
            expr += " | striptags"  # raw markup in the HTML: its text in the text part
        self.out(expr)

    def block(self, node: Block, chained: bool = False) -> None:
        open_standalone = node.open_standalone
        helper = node.call.helper
        try:
            if node.inverted:
                cond = f"not {self.operand(node.call.head)}"
                self._if(node, cond, chained, open_standalone)
                return
            if helper in ("if", "unless") and len(node.call.params) == 1 and not node.call.hash:
                param = node.call.params[0]
                cond = self.operand(param, wrap=helper == "unless")
                cond = f"not {cond}" if helper == "unless" else cond
                self._if(node, cond, chained, open_standalone)
                return
            if (helper in _COMPARE or helper in _LOGIC) and node.call.params:
                self._if(node, self.condition(node.call), chained, open_standalone)
                return
            if helper == "each" and len(node.call.params) == 1 and not chained:
                param = node.call.params[0]
                if not isinstance(param, Path):
                    raise _Untranslatable("#each over a literal")
                iterable = self.value(self.resolve(param), "iter")
                self._each(node, iterable)
                return
            raise _Untranslatable(f"block helper {helper or node.source!r} is not supported")
        except _Untranslatable as why:
            if chained:
                # inside an if-chain: this branch never holds, as the TODO says
                self.todo(node.source, node.line, str(why), standalone=open_standalone)
                self._if(node, "false", True, False)
                return
            self.todo(node.source, node.line, str(why), standalone=open_standalone)
            self._if(node, "false", False, False)

    def _if(self, node: Block, cond: str, chained: bool, open_standalone: bool) -> None:
        self.tag(f"{'elif' if chained else 'if'} {cond}", open_standalone)
        self.nodes(node.program)
        if node.inverse is not None:
            inner = node.inverse[0] if len(node.inverse) == 1 else None
            if isinstance(inner, Block) and inner.chained:
                self.block(inner, chained=True)
            else:
                self.tag("else", node.else_standalone)
                self.nodes(node.inverse)
        if not chained:
            self.tag("endif", node.close_standalone)

    def _each(self, node: Block, iterable: str) -> None:
        var = "item" if not self.loops else f"item{len(self.loops) + 1}"
        self.tag(f"for {var} in {iterable}", node.open_standalone)
        self.loops.append(var)
        self.nodes(node.program)
        self.loops.pop()
        if node.inverse is not None:
            self.tag("else", node.else_standalone)
            self.nodes(node.inverse)
        self.tag("endfor", node.close_standalone)


def translate_handlebars(
    source: str,
    *,
    part: str,
    kind: Kind,
    mode: Mode,
    result: TemplateResult,
    defaults: Mapping[str, str] | None = None,
    naming: Callable[[str], str] = snake,
) -> str:
    """One Handlebars part as Jinja2 source; TODOs and attributes go to ``result``. A
    template Handlebars itself would refuse becomes a single TODO comment (the part then
    renders empty, which Kizuna refuses for every part but a push title)."""
    translator = _Translator(part, mode, kind, defaults or {}, naming, result)
    try:
        tree = parse(source)
    except HandlebarsError as err:
        result.todos.append(Todo(part, err.line, source[:200], f"not valid Handlebars: {err}"))
        return "{# " + _comment_safe(f"{TODO}: not valid Handlebars ({err}):\n{source}") + " #}\n"
    translator.nodes(tree)
    return translator.finish()


# --- one template ----------------------------------------------------------------------------
def _defaults(raw: Any, result: TemplateResult) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    try:
        parsed = strict_json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as err:
        parsed = None
        reason = f"DefaultSubstitutions is not JSON ({err.msg}); defaults ignored"
    except (strict_json.RepeatedKey, strict_json.NotJsonNumber, RecursionError) as err:
        parsed = None  # json kept the last of a repeated key: which default was meant?
        reason = f"DefaultSubstitutions is not JSON Kizuna reads ({err}); defaults ignored"
    else:
        reason = "DefaultSubstitutions is not a JSON object; defaults ignored"
    if not isinstance(parsed, dict):
        result.notes.append(Note("error", result.subject, reason))
        return {}
    return {str(k): "" if v is None else str(v) for k, v in parsed.items()}


def _unwrap(kind: Kind, response: Mapping[str, Any]) -> Mapping[str, Any]:
    key = RESPONSE_KEYS[kind]
    others = [k for k in RESPONSE_KEYS.values() if k != key and k in response]
    if others:
        raise ValueError(f"a {others[0]} is not a {kind} template")
    inner = response.get(key, response)
    if not isinstance(inner, Mapping):
        raise ValueError(f"{key} is not an object")
    declared = inner.get("TemplateType")
    if declared is not None and declared != TEMPLATE_TYPES[kind]:
        raise ValueError(f"TemplateType {declared!r} is not a {kind} template")
    return inner


_PUSH_PLATFORMS = ("Default", "GCM", "APNS", "ADM", "Baidu")
_PUSH_DROPPED = ("Action", "Url", "ImageUrl", "ImageIconUrl", "SmallImageIconUrl", "MediaUrl")


def translate_template(
    kind: Kind,
    name: str,
    response: Mapping[str, Any],
    *,
    default_locale: str = DEFAULT_LOCALE,
    naming: Callable[[str], str] = snake,
) -> TemplateResult:
    """One Pinpoint template (a Get*Template response, wrapped or not) as Kizuna part files
    in its locale. Raises ValueError for a response of another kind."""
    body = _unwrap(kind, response)
    tags = body.get("tags") or {}
    base, locale, source = split_locale(name, tags, default_locale)
    result = TemplateResult(name, kind, template_name(base), locale, source)
    if source == "default":
        result.notes.append(
            Note(
                "decision",
                result.subject,
                f"no locale in its name or tags: taken as {locale!r} "
                "(name it <base>_<lang> or tag it locale=<lang>)",
            )
        )
    defaults = _defaults(body.get("DefaultSubstitutions"), result)

    def part(source_text: str, part_name: str, mode: Mode) -> None:
        result.files[f"{locale}/{part_name}.j2"] = translate_handlebars(
            source_text,
            part=part_name,
            kind=kind,
            mode=mode,
            result=result,
            defaults=defaults,
            naming=naming,
        )

    if kind == "email":
        _email(body, result, part)
    elif kind == "sms":
        if not body.get("Body"):
            result.notes.append(Note("error", result.subject, "no Body: sms.txt is empty"))
        part(str(body.get("Body") or ""), "sms.txt", "text")
    else:
        _push(body, result, part)
    if body.get("RecommenderId"):
        result.notes.append(
            Note(
                "dropped", result.subject, "RecommenderId: Pinpoint recommenders do not carry over"
            )
        )
    for todo in result.todos:
        result.notes.append(Note("decision", result.subject, f"not translated: {todo}"))
    if result.raw_html:
        result.notes.append(
            Note(
                "decision",  # customer data as HTML: a campaign using it waits for a person
                result.subject,
                "raw (unescaped) values kept raw in email.html with '| safe': "
                + ", ".join(result.raw_html)
                + " — customer data printed as HTML; keep only if the value is trusted markup",
            )
        )
    return result


PartWriter = Callable[[str, str, Mode], None]


def _email(body: Mapping[str, Any], result: TemplateResult, part: PartWriter) -> None:
    subject, html_part, text_part = body.get("Subject"), body.get("HtmlPart"), body.get("TextPart")
    if subject:
        part(str(subject), "email.subject", "text")
    else:
        result.notes.append(Note("error", result.subject, "no Subject: email.subject is empty"))
        part("", "email.subject", "text")
    if html_part:
        part(str(html_part), "email.html", "html")
    elif text_part:
        part(str(text_part), "email.html", "text_to_html")
        result.notes.append(Note("info", result.subject, "no HtmlPart: made from TextPart"))
    if text_part:
        part(str(text_part), "email.txt", "text")
    elif html_part:
        part(str(html_part), "email.txt", "html_to_text")
        result.notes.append(
            Note("decision", result.subject, "no TextPart: email.txt made from HtmlPart; review")
        )
    if not (html_part or text_part):
        result.notes.append(Note("error", result.subject, "neither HtmlPart nor TextPart"))
        part("", "email.html", "html")
        part("", "email.txt", "text")
    if body.get("Headers"):
        result.notes.append(Note("dropped", result.subject, "Headers: not carried over"))


def _push(body: Mapping[str, Any], result: TemplateResult, part: PartWriter) -> None:
    platforms = {p: body.get(p) for p in _PUSH_PLATFORMS if isinstance(body.get(p), Mapping)}
    chosen = next((p for p, v in platforms.items() if v and v.get("Body")), None)
    if chosen is None:
        result.notes.append(Note("error", result.subject, "no push Body on any platform"))
        part("", "push.title", "text")
        part("", "push.body", "text")
        return
    content = platforms[chosen]
    assert content is not None
    part(str(content.get("Title") or ""), "push.title", "text")
    part(str(content.get("Body")), "push.body", "text")
    if chosen != "Default":
        result.notes.append(Note("info", result.subject, f"title and body taken from {chosen}"))
    for platform, value in platforms.items():
        if value is None or platform == chosen:
            continue
        own = (value.get("Title"), value.get("Body"))
        if own != (content.get("Title"), content.get("Body")) and any(own):
            result.notes.append(
                Note(
                    "dropped",
                    result.subject,
                    f"{platform}'s own title/body: Kizuna sends one push to every platform",
                )
            )
    dropped = sorted(
        {
            f"{platform}.{key}"
            for platform, value in platforms.items()
            if value
            for key in (*_PUSH_DROPPED, "Sound", "RawContent")
            if value.get(key) and not (key == "Action" and value.get(key) == "OPEN_APP")
        }
    )
    if dropped:
        result.notes.append(
            Note(
                "dropped",
                result.subject,
                f"{', '.join(dropped)}: Kizuna's push has a title and a body only",
            )
        )


# --- groups and files ------------------------------------------------------------------------
def group_templates(
    results: Iterable[TemplateResult],
) -> tuple[dict[str, list[TemplateResult]], list[Note]]:
    """Templates by Kizuna template name, and notes: two Pinpoint templates translating to
    the same files (an error: the second is not used), and templates without a counterpart
    in the project's other locales."""
    groups: dict[str, list[TemplateResult]] = {}
    notes: list[Note] = []
    seen: dict[tuple[str, str, str], str] = {}
    for result in results:
        key = (result.template, result.kind, result.locale)
        if key in seen:
            notes.append(
                Note(
                    "error",
                    result.subject,
                    f"same Kizuna template {result.template!r} ({result.kind}, {result.locale}) "
                    f"as {seen[key]!r}: not used",
                )
            )
            continue
        seen[key] = result.name
        groups.setdefault(result.template, []).append(result)
    locales = sorted({r.locale for rs in groups.values() for r in rs})
    for template, members in sorted(groups.items()):
        for kind in sorted({r.kind for r in members}):
            have = sorted({r.locale for r in members if r.kind == kind})
            missing = [loc for loc in locales if loc not in have]
            if missing:
                names = ", ".join(repr(r.name) for r in members if r.kind == kind)
                notes.append(
                    Note(
                        "decision",
                        f"{kind} template {names}",
                        f"no pair: Kizuna template {template!r} has {', '.join(have)} but not "
                        f"{', '.join(missing)}; customers reading {', '.join(missing)} get "
                        "the default locale's folder (or none)",
                    )
                )
    return groups, notes


def template_files(program: str, results: Iterable[TemplateResult]) -> dict[str, str]:
    """``<program>/<template>/<locale>/<part>.j2`` -> source, as
    :class:`kizuna.delivery.templates.FilesRenderer` and ``templates/`` name them."""
    files: dict[str, str] = {}
    for result in results:
        for rel, text in result.files.items():
            key = f"{program}/{result.template}/{rel}"
            if key in files and files[key] != text:
                raise ValueError(f"two templates write {key}")
            files[key] = text
    return files


def write_templates(
    out: FilePath, program: str, results: Iterable[TemplateResult]
) -> list[FilePath]:
    """Write a program's (or campaign's) templates under ``out/templates/``; the paths."""
    written: list[FilePath] = []
    for key, text in sorted(template_files(program, results).items()):
        path = out / "templates" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
