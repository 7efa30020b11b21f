"""Pinpoint's custom attributes as Kizuna declarations: names, inferred types, personal data.

Pinpoint keeps three kinds of custom data on an endpoint, all free-form: ``Attributes``
(endpoint attributes, lists of strings), ``User.UserAttributes`` (the user's, lists of
strings) and ``Metrics`` (numbers). Kizuna declares each attribute once
(``custom.attributes`` in the configuration) with a type, so the migration infers one from
the values it saw and says how (the report):

- ``Metrics`` -> ``number``;
- more than one value on some customer -> ``string_list``;
- every value ``true``/``false`` -> ``boolean``; every value a ``YYYY-MM-DD`` date ->
  ``date``; every value a plain decimal number without leading zeros (``24``, ``3.5``, not
  ``0123``) that a Kizuna number holds exactly (:func:`json_number`) -> ``number``;
- else ``string``, with an ``enum`` when a few values (at most :data:`ENUM_MAX`) cover many
  customers (at least :data:`ENUM_MIN_CUSTOMERS`): a new value is then refused at ingest
  until it is added, which the report says.

Names become snake case (``FavoriteStore`` -> ``favorite_store``); a name with no Latin
letters (``メールアドレス``) gets a generated one (``attr_1``), which the report maps. Names
that look like personal data (an email, a phone number, an address, a birth date, a name,
in English or Japanese) are declared ``personal`` (masked in logs, erased with the customer,
never in conditions), and a first or last name goes to the built-in
``first_name``/``last_name`` profile fields.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from kizuna.events.inbound import TEXT_PATTERN
from kizuna.runtime.config import RESERVED_VALUE_NAMES, CustomAttribute, ValueType
from kizuna_tools.migrate.names import MAX_ATTRIBUTE, snake, unique, words

SOURCES = ("UserAttributes", "Attributes", "Metrics")  # the order names are given out
# an endpoint's Location fields kept as custom attributes (source "Location"), by name
LOCATION_ATTRIBUTES = {"Country": "country", "City": "city"}
ENUM_MAX = 10
GENERATED_PREFIX = "attr_"  # the name of an attribute whose Pinpoint name has no Latin letters
ENUM_MIN_CUSTOMERS = 30
DEFAULT_MAX_LENGTH = 256
DEFAULT_MAX_ITEMS = 50
MAX_LIST_ITEMS = 200  # the most items a declared string_list may hold (CustomValueSpec)
MAX_TEXT = 2048  # the longest a declared string may be (CustomValueSpec.max_length)
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?\Z")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TEXT = re.compile(TEXT_PATTERN)
_LETTERS = re.compile(r"[a-z]+")
# words that make a name personal data (matched against the name's words)
_PERSONAL_WORDS = frozenset(
    {
        "email",
        "mail",
        "phone",
        "tel",
        "telephone",
        "mobile",
        "cell",
        "address",
        "street",
        "zip",
        "zipcode",
        "postal",
        "postcode",
        "birth",
        "birthday",
        "birthdate",
        "dob",
        "passport",
        "ssn",
        "surname",
        "firstname",
        "lastname",
        "fullname",
        "ip",
        "addr",
        "kana",
        "furigana",
    }
)
# Japanese words that make a name personal data wherever they are in it (the name NFKC
# normalised: half-width ｶﾅ too). カナ not before ダ (カナダ is Canada). A lone 名 is too broad
# (商品名, 店舗名, 件名 are a product's, a store's, a subject): see _JA_GIVEN_NAME.
_PERSONAL_JA = re.compile(
    "メール|アドレス|電話|携帯|住所|氏名|名前|姓|苗字|名字|フリガナ|ふりがな|カナ(?!ダ)"
    "|生年月日|誕生日|郵便番号"
)
# 名 (a given name) is personal when it is the whole name, but for its digits, signs and
# reading qualifiers: 名, 名2, 名（漢字）, 名_ローマ字
_JA_QUALIFIERS = re.compile("漢字|ローマ字|かな|よみ|読み")
_JA_GIVEN_NAME = "名"
# words that make a name personal only before one of these (``LineUserId``, not ``ProductLine``)
_PERSONAL_BEFORE = {"line": frozenset({"user", "id", "uid"})}
_NAME_QUALIFIERS = frozenset({"first", "last", "given", "family", "full", "middle", "sur", "nick"})
# Pinpoint names that are Kizuna's own profile fields (letters and digits of the name, lower
# case), here and in templates (``{{User.UserAttributes.FirstName}}``): :func:`profile_field`
PROFILE_NAMES = {
    "firstname": "first_name",
    "givenname": "first_name",
    "lastname": "last_name",
    "familyname": "last_name",
    "surname": "last_name",
}


def is_personal(name: str) -> bool:
    """Whether a Pinpoint attribute's name says it holds personal data. Digits do not count:
    ``Address2``, ``Tel1`` and ``Email2`` are an address, a phone and an email. Japanese
    names too: ``メールアドレス``, ``電話番号``, ``お名前``, ``名`` (but not ``商品名``)."""
    if _is_personal_ja(unicodedata.normalize("NFKC", name)):
        return True
    ws = [part for w in words(name) for part in _LETTERS.findall(w)]
    if set(ws) & _PERSONAL_WORDS:
        return True
    if any(ws[i + 1] in _PERSONAL_BEFORE.get(w, ()) for i, w in enumerate(ws[:-1])):
        return True
    if ws == ["name"]:
        return True
    return any(w == "name" and i > 0 and ws[i - 1] in _NAME_QUALIFIERS for i, w in enumerate(ws))


def _is_personal_ja(name: str) -> bool:
    if _PERSONAL_JA.search(name):
        return True
    letters = "".join(c for c in name if not c.isascii() and unicodedata.category(c)[0] == "L")
    return _JA_QUALIFIERS.sub("", letters) == _JA_GIVEN_NAME


def has_latin_words(name: str) -> bool:
    """Whether a name keeps a meaning in snake case: an ASCII name always does (its naming is
    unchanged, ``3DSecure`` -> ``a_3_d_secure``); another keeps one when it has Latin letters
    (``Prénom`` -> ``prenom``, ``VIPランク`` -> ``vip``). ``メールアドレス`` or ``電話番号2``
    would be ``a`` and ``a_2``: they get a generated name instead, and the report maps it."""
    return name.isascii() or any(_LETTERS.search(w) for w in words(name))


def profile_field(name: str) -> str | None:
    """The built-in profile field a Pinpoint attribute is (``FirstName`` -> ``first_name``)."""
    return PROFILE_NAMES.get(re.sub(r"[^a-z0-9]", "", name.lower()))


@dataclass
class Inferred:
    type: ValueType
    enum: tuple[str, ...] | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    max_items: int = DEFAULT_MAX_ITEMS
    how: str = ""


def infer(values: Sequence[Sequence[str]]) -> Inferred:
    """The type of an attribute whose customers hold ``values`` (each customer's list)."""
    flat = [v for vs in values for v in vs]
    longest = max((len(v) for v in flat), default=0)
    most = max((len(vs) for vs in values), default=0)
    # raised to the values seen, up to Kizuna's most: a value beyond it is reported on its
    # endpoint and not migrated (never cut)
    max_length = max(DEFAULT_MAX_LENGTH, min(longest, MAX_TEXT))
    max_items = max(DEFAULT_MAX_ITEMS, min(most, MAX_LIST_ITEMS))
    if not flat:
        return Inferred(ValueType.STRING, how="no values seen: string")
    if most <= 1:
        if all(v.lower() in ("true", "false") for v in flat):
            return Inferred(ValueType.BOOLEAN, how="every value true or false: boolean")
        if all(_is_date(v) for v in flat):
            return Inferred(ValueType.DATE, how="every value a YYYY-MM-DD date: date")
        if all(_NUMBER.match(v) for v in flat):
            if all(json_number(Decimal(v)) is not None for v in flat):
                return Inferred(ValueType.NUMBER, how="every value a number: number")
            return Inferred(
                ValueType.STRING,
                max_length=max_length,
                how="every value a number, but some with more significant digits than a "
                "Kizuna number carries exactly (15): string, the text kept as written",
            )
    kind = ValueType.STRING_LIST if most > 1 else ValueType.STRING
    counts = Counter(flat)
    if len(counts) <= ENUM_MAX and len(values) >= ENUM_MIN_CUSTOMERS:
        enum = tuple(sorted(counts))
        return Inferred(
            kind,
            enum,
            max_length,
            max_items,
            how=f"{len(values)} customers share {len(counts)} values: {kind.value} with an enum "
            "(a new value is refused at ingest until it is added to the enum)",
        )
    what = "more than one value on some customers" if most > 1 else "text"
    return Inferred(kind, None, max_length, max_items, how=f"{what}: {kind.value}")


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_text(value: str, max_length: int) -> bool:
    return len(value) <= max_length and _TEXT.fullmatch(value) is not None


def number(value: str | float | Decimal) -> Decimal | None:
    """A value as a Kizuna number (within +-1e12, at most 6 decimals), or None."""
    try:
        n = Decimal(str(value))
    except InvalidOperation:
        return None
    if not n.is_finite() or not Decimal("-1e12") <= n <= Decimal("1e12"):
        return None
    exponent = n.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        return None
    return n


def json_number(n: Decimal) -> int | float | None:
    """``n`` as the JSON number that carries it exactly, or None. Kizuna reads a JSON number
    as a float (``kizuna import``, the bus), and a float keeps 15 to 17 significant digits:
    ``999999999999.999999`` would arrive as ``1000000000000.0``. An integer (within +-1e12)
    is exact; a fraction only when the float's shortest text is ``n`` itself."""
    if n == n.to_integral_value():
        return int(n)
    as_float = float(n)
    return as_float if Decimal(repr(as_float)) == n else None


@dataclass
class Target:
    """Where one Pinpoint attribute goes: a profile field, or a declared custom attribute."""

    source: str  # Attributes | UserAttributes | Metrics
    pinpoint: str
    name: str  # the profile field, or the custom attribute's name
    profile: bool = False
    spec: CustomAttribute | None = None
    how: str = ""
    seen: bool = True  # False: declared because a segment or campaign names it
    generated: bool = False  # the name is attr_<n>: the Pinpoint name has no Latin letters

    @property
    def label(self) -> str:
        where = "User.UserAttributes" if self.source == "UserAttributes" else self.source
        return f"{where}.{self.pinpoint}"

    @property
    def view_path(self) -> list[str] | None:
        """The customer view's path a condition names, or None (personal, profile name)."""
        if self.profile or self.spec is None or self.spec.personal:
            return None
        return ["attributes", self.name]


@dataclass
class AttributeMap:
    """Every Pinpoint attribute the migration met, and what it became."""

    targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    # names taken, and those no attribute may have (``items``: a template reads a dict method)
    _names: set[str] = field(default_factory=lambda: set(RESERVED_VALUE_NAMES))
    # Pinpoint name -> the generated name an event filter's field took before any attribute
    _event_fields: dict[str, str] = field(default_factory=dict)

    def get(self, source: str, name: str) -> Target | None:
        return self.targets.get((source, name))

    def declarations(self) -> tuple[CustomAttribute, ...]:
        specs = [t.spec for t in self.targets.values() if t.spec is not None]
        return tuple(sorted(specs, key=lambda s: s.name))

    def plan(self, source: str, name: str, values: Sequence[Sequence[str]] | None) -> Target:
        """Name, type and personal flag for one attribute, from the values customers hold
        (``None``: no endpoint had it; a segment names it)."""
        profile = profile_field(name) if source != "Metrics" else None
        if profile is not None and profile not in self._names:
            self._names.add(profile)
            target = Target(source, name, profile, profile=True, how="a built-in profile field")
            self.targets[(source, name)] = target
            return target
        personal = is_personal(name)
        if source == "Metrics":
            inferred = Inferred(ValueType.NUMBER, how="a Pinpoint metric: number")
        elif values is None:
            inferred = Inferred(ValueType.STRING, how="no endpoint has it: string")
        else:
            inferred = infer(values)
        if personal and inferred.enum is not None:
            inferred.enum = None
        generated = not has_latin_words(name)
        if generated:  # an event filter's field of the same name named it already: that name
            kizuna = self._event_fields.pop(name, None) or self._generated()
        else:
            kizuna = unique(snake(name), self._names, MAX_ATTRIBUTE, "_")
        spec = CustomAttribute(
            name=kizuna,
            type=inferred.type,
            personal=personal,
            enum=inferred.enum,
            max_length=inferred.max_length,
            max_items=inferred.max_items,
            description=f"Pinpoint {Target(source, name, '').label}"[:200],
        )
        target = Target(
            source,
            name,
            kizuna,
            spec=spec,
            how=inferred.how,
            seen=values is not None,
            generated=generated,
        )
        self.targets[(source, name)] = target
        return target

    def _generated(self) -> str:
        """``attr_1``, ``attr_2``...: the first not taken (names are given out in a stable
        order, :data:`SOURCES` then the names sorted, so one export gives the same names)."""
        n = 1
        while f"{GENERATED_PREFIX}{n}" in self._names:
            n += 1
        self._names.add(f"{GENERATED_PREFIX}{n}")
        return f"{GENERATED_PREFIX}{n}"

    def event_field(self, name: str) -> tuple[str, bool]:
        """The field name of a custom event's attribute or metric ``name`` (a campaign's or a
        journey's event filter), and whether it is generated. A name with Latin letters is in
        snake case, as before (``StoreType`` -> ``store_type``); one without (``店舗``) is
        the ``attr_<n>`` of the attribute of the same Pinpoint name, else a generated one of
        its own, the same for every filter that names it (``snake`` gave ``a`` for each, and
        a second filter on ``a`` was dropped)."""
        if has_latin_words(name):
            return snake(name), False
        for target in self.targets.values():  # in SOURCES order, as planned
            if target.pinpoint == name and target.generated:
                return target.name, True
        if name not in self._event_fields:
            self._event_fields[name] = self._generated()
        return self._event_fields[name], True

    def ensure(self, source: str, name: str) -> Target:
        """The target of an attribute a segment or a campaign names (declared if new)."""
        return self.get(source, name) or self.plan(source, name, None)

    def items(self) -> Iterable[Target]:
        return self.targets.values()
