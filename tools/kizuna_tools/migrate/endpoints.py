"""Pinpoint endpoints -> Kizuna customers (``customers.jsonl`` for ``kizuna import customers``).

Pinpoint stores one *endpoint* per address (an email address, a phone number, a device
token) and groups them by ``User.UserId``; Kizuna stores one *customer* with one email, one
phone, its push devices and a consent per channel. So:

- one customer per ``User.UserId``; an endpoint without one becomes a customer of its own
  (its id is the endpoint's ``Id``), reported, unless that ``Id`` is a ``UserId``: then it is
  reported and left out, never merged into the user. An ``Id`` read twice (overlapping
  export parts) is reported and its most recent copy read. An id that does not match
  Kizuna's customer id grammar is reported and its endpoints are left out: it is never
  changed into another id.
- ``EMAIL`` -> ``email``, ``SMS`` -> ``phone`` (E.164, as Pinpoint required), ``APNS`` and
  ``GCM`` -> push devices (``device.registered``: APNS, FCM). Of several endpoints of one
  channel the active, not opted-out, most recently updated one wins; the others are reported.
  Other channels (voice, ADM, Baidu, custom, in-app, VoIP, sandbox tokens) are reported.
- Consent per channel: the chosen endpoint ``ACTIVE`` with ``OptOut`` ``NONE`` ->
  ``opted_in``; ``OptOut`` ``ALL`` -> ``opted_out``; ``INACTIVE`` -> no consent (not opted
  in), reported. An opt-out on any endpoint with the chosen address (or a device's token)
  wins over an opt-in, the address however written (:func:`address_key`: a space, a line
  feed, ``+81 90-1234-5678``); another address's opt-out does not count. An opt-out on an
  endpoint that is no customer's address (left out whole, or without a ``ChannelType``)
  opts the address out for every customer who keeps it (:class:`OutsideOptOuts`).
- The latest ``EffectiveDate`` -> ``updated_at`` in UTC; one that is not ISO 8601 with an
  offset is reported on its endpoint and not used.
- ``Demographic.Timezone`` -> ``time_zone`` when it is an IANA zone; ``Demographic.Locale``
  ``ja_JP`` -> ``ja`` (the language; normalisations are counted in the report);
  ``Location.Region`` -> ``prefecture`` (and ``region`` from it, for Japanese prefectures) or
  ``region`` elsewhere; ``Location.Country`` and ``Location.City`` -> attributes ``country``,
  ``city``.
- ``Attributes``, ``User.UserAttributes``, ``Metrics`` -> custom attributes, typed as
  :mod:`kizuna_tools.migrate.attributes` infers. A user's endpoints that disagree: the most
  recently updated endpoint's value wins (lists are joined), counted in the report.

Every row is finally validated with the configuration's own ``customer.upserted`` model, so
what is written imports; a customer over Kizuna's attribute budget (80,000 bytes, which
Kizuna would refuse the whole row for, consent included) has its largest attributes left
out until the rest fit, each named in the report (:func:`_within_budget`).
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ValidationError

from kizuna.domain import strict_json
from kizuna.domain.customer import (
    MAX_ATTRIBUTES_BYTES,
    MAX_DEVICE_TOKEN_CHARS,
    PHONE_PATTERN,
    attribute_values,
    attributes_size,
    within_attributes_budget,
)
from kizuna.events.custom import vocabulary
from kizuna.events.inbound import EMAIL_PATTERN, MAX_EMAIL_CHARS, is_customer_id
from kizuna.runtime.config import CustomAttribute, CustomConfig, ValueType
from kizuna_tools.migrate import shapes
from kizuna_tools.migrate.attributes import (
    LOCATION_ATTRIBUTES,
    MAX_LIST_ITEMS,
    SOURCES,
    AttributeMap,
    Target,
    is_text,
    json_number,
    number,
)
from kizuna_tools.migrate.report import Report, Status

# customer.upserted's own email and phone rules (an address it would refuse is reported on
# its endpoint, never dropped from the row later); fullmatch: `$` would take a trailing "\n"
EMAIL = re.compile(EMAIL_PATTERN)
E164 = re.compile(PHONE_PATTERN)
_LOCALE = re.compile(r"^([a-z]{2})(?:[_-]([A-Za-z]{2}))?\Z")
PUSH = {"APNS": "APNS", "GCM": "FCM"}  # Pinpoint channel -> Kizuna push platform
SKIPPED_CHANNELS = {
    "APNS_SANDBOX": "an APNs sandbox (development) token",
    "APNS_VOIP": "an APNs VoIP token",
    "APNS_VOIP_SANDBOX": "an APNs VoIP sandbox token",
    "ADM": "Amazon Device Messaging",
    "BAIDU": "Baidu Cloud Push",
    "VOICE": "the voice channel",
    "CUSTOM": "a custom channel",
    "IN_APP": "in-app messaging",
    "PUSH": "the generic PUSH channel type",
}
CONSENT = {"email": "email_consent", "sms": "sms_consent", "push": "push_consent"}
BUILT_IN_FIELDS = frozenset(
    {"birth_date", "gender", "occupation", "region", "prefecture", "locale", "time_zone"}
)

# Japanese prefectures -> Kizuna's regions (the demo's and the reports' regions)
JP_REGIONS: dict[str, tuple[str, ...]] = {
    "Hokkaido": ("Hokkaido",),
    "Tohoku": ("Aomori", "Iwate", "Miyagi", "Akita", "Yamagata", "Fukushima"),
    "Kanto": ("Ibaraki", "Tochigi", "Gunma", "Saitama", "Chiba", "Tokyo", "Kanagawa"),
    "Chubu": (
        "Niigata",
        "Toyama",
        "Ishikawa",
        "Fukui",
        "Yamanashi",
        "Nagano",
        "Gifu",
        "Shizuoka",
        "Aichi",
    ),
    "Kansai": ("Mie", "Shiga", "Kyoto", "Osaka", "Hyogo", "Nara", "Wakayama"),
    "Chugoku": ("Tottori", "Shimane", "Okayama", "Hiroshima", "Yamaguchi"),
    "Shikoku": ("Tokushima", "Kagawa", "Ehime", "Kochi"),
    "Kyushu": (
        "Fukuoka",
        "Saga",
        "Nagasaki",
        "Kumamoto",
        "Oita",
        "Miyazaki",
        "Kagoshima",
        "Okinawa",
    ),
}
PREFECTURE_REGION = {p: r for r, ps in JP_REGIONS.items() for p in ps}
_PREFECTURE_SUFFIX = re.compile(r"[- ](to|fu|ken|prefecture)\Z", re.IGNORECASE)
JAPAN = {"JP", "JPN"}
TIME_ZONES = frozenset(available_timezones())


# -- reading ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    file: str
    line: int
    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.data.get("Id") or f"{self.file}:{self.line}")

    @property
    def channel(self) -> str:
        return str(self.data.get("ChannelType") or "")

    @property
    def active(self) -> bool:
        return bool(self.data.get("EndpointStatus", "ACTIVE") == "ACTIVE")

    @property
    def opted_out(self) -> bool:
        return bool(self.data.get("OptOut", "NONE") != "NONE")

    @property
    def effective(self) -> str:
        return str(self.data.get("EffectiveDate") or self.data.get("CreationDate") or "")

    @property
    def effective_at(self) -> datetime | None:
        """When the endpoint was last updated, in UTC; None when :attr:`effective` is not an
        ISO 8601 time with a UTC offset (Pinpoint writes ``2026-01-01T00:00:00.000Z``)."""
        return utc_time(self.effective)

    @property
    def recency(self) -> datetime:
        """:attr:`effective_at` to sort by: a time that cannot be read is the oldest."""
        return self.effective_at or datetime.min.replace(tzinfo=UTC)

    @property
    def address_key(self) -> str:
        """The address as endpoints are compared (:func:`address_key`)."""
        return address_key(self.channel, self.data.get("Address"))

    @property
    def user(self) -> Mapping[str, Any]:
        user = self.data.get("User")
        return user if isinstance(user, Mapping) else {}

    def rank(self) -> tuple[int, int, datetime, str]:
        """Higher is better: active, not opted out, most recent, then the id (stable). This
        chooses an address; an opt-out of the chosen address still wins (see :func:`_row`)."""
        return (int(self.active), int(not self.opted_out), self.recency, self.id)


_PHONE_PUNCTUATION = str.maketrans("", "", "-().")


def address_key(channel: str, address: Any) -> str:
    """An address as endpoints are compared, never as it is written: NFKC, without white
    space or invisible (format) characters anywhere, an email in lower case, a phone number
    without ``- ( ) .``. So ``Hanako@Example.jp``, ``hanako@example.jp\\n`` and
    ``+81 90-1234-5678`` are the addresses ``hanako@example.jp`` and ``+819012345678``: an
    opt-out on any of these spellings opts the kept address out (one Kizuna cannot send to
    is left out, but its opt-out still counts)."""
    text = unicodedata.normalize("NFKC", str(address or ""))
    text = "".join(c for c in text if not c.isspace() and unicodedata.category(c) != "Cf")
    if channel == "EMAIL":
        return text.lower()
    if channel == "SMS":
        return text.translate(_PHONE_PUNCTUATION)
    return text


def utc_time(raw: str) -> datetime | None:
    """An ISO 8601 time with a UTC offset, in UTC; None for anything else (``yesterday``, a
    time without an offset), which the importer would refuse."""
    try:
        at = datetime.fromisoformat(raw.strip())
        return at.astimezone(UTC) if at.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


PART_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz")


def endpoint_files(directory: Path) -> list[Path]:
    """The export's files: ``*.json``, ``*.jsonl``, ``*.ndjson`` and their ``.gz`` (an
    export job writes gzipped parts), in name order."""
    found = [
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in PART_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(found)


def other_files(directory: Path) -> list[Path]:
    """The files under ``directory`` that are not export parts (not read), in name order."""
    parts = set(endpoint_files(directory))
    return sorted(p for p in directory.rglob("*") if p.is_file() and p not in parts)


def read_endpoints(directory: Path, report: Report) -> Iterator[Endpoint]:
    """Every endpoint line that is an ``EndpointResponse``; the others are reported, and so
    is every file of the folder that is not read (its endpoints would be lost unsaid)."""
    for path in other_files(directory):
        report.add(
            "input",
            f"endpoints/{path.relative_to(directory).as_posix()}",
            Status.NOT_MIGRATED,
            notes=[
                "not read: an export part is named *.json, *.jsonl, *.ndjson or *.gz (one "
                "EndpointResponse a line; a hidden file is not read); if this is one, rename "
                "it and migrate again"
            ],
        )
    for path in endpoint_files(directory):
        rel = f"endpoints/{path.relative_to(directory)}"
        try:
            endpoints, problems = _read_part(path, rel)
        except _CutShort as cut:
            # a part that ends early (a download that stopped) is read whole or not at all:
            # half-read, its later endpoints (and the opt-outs among them) would be missing
            # with nothing said of them
            report.add(
                "input",
                rel,
                Status.NOT_MIGRATED,
                notes=[
                    f"cannot be read to its end ({cut.why}, after {cut.lines:,} lines): none "
                    "of its endpoints is read, so that a part cut short is never half-read; "
                    "copy it again from the export and migrate again"
                    if cut.lines
                    else f"cannot be read ({cut.why})"
                ],
            )
            continue
        for source, note in problems:
            report.add("input", source, Status.NOT_MIGRATED, notes=[note])
        yield from endpoints


class _CutShort(Exception):
    """A part that cannot be read to its end: why, and the lines read before."""

    def __init__(self, why: str, lines: int) -> None:
        super().__init__(why)
        self.why = why
        self.lines = lines


def _why_unreadable(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        return "its gzip data ends early: the file is cut short"
    if isinstance(exc, gzip.BadGzipFile):
        return "not gzip data, or gzip data followed by something else"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return type(exc).__name__


def _read_part(path: Path, rel: str) -> tuple[list[Endpoint], list[tuple[str, str]]]:
    """The endpoints of one export part and its lines' problems ((source, note)); raises
    :class:`_CutShort` when the file cannot be read to its end."""
    endpoints: list[Endpoint] = []
    problems: list[tuple[str, str]] = []
    lines = 0
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number_, line in enumerate(fh, start=1):
                lines = number_
                if not line.strip():
                    continue
                try:
                    # numbers as written (Decimal): a float would round 18 digits; a key
                    # given twice (json kept the last: "OptOut": "ALL" then "NONE" read as
                    # opted in) or NaN is refused
                    data = strict_json.loads(line, parse_float=Decimal)
                except (
                    json.JSONDecodeError,
                    RecursionError,
                    strict_json.RepeatedKey,
                    strict_json.NotJsonNumber,
                ) as exc:
                    why = (
                        exc.msg
                        if isinstance(exc, json.JSONDecodeError)
                        else "nested too deep"
                        if isinstance(exc, RecursionError)
                        else str(exc)
                    )
                    problems.append((f"{rel}:{number_}", f"not JSON ({why}): the line is left out"))
                    continue
                shape_problems = shapes.check(data, "EndpointResponse", required=False)
                if shape_problems:
                    problems.append(
                        (
                            f"{rel}:{number_}",
                            "not a Pinpoint EndpointResponse, left out: "
                            + "; ".join(shape_problems[:5]),
                        )
                    )
                    continue
                endpoints.append(Endpoint(rel, number_, data))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise _CutShort(_why_unreadable(exc), lines) from exc
    return endpoints, problems


# -- the customer's own fields ------------------------------------------------------------
def normalise_locale(raw: str) -> str | None:
    """``ja_JP`` -> ``ja``, ``en-US`` -> ``en``, ``ja`` -> ``ja``; None if not a locale."""
    match = _LOCALE.match(raw.strip()) if raw else None
    return match.group(1) if match else None


def time_zone(raw: str) -> str | None:
    if raw not in TIME_ZONES:
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return raw


def prefecture_of(raw: str) -> str | None:
    """A Japanese prefecture's English name (``Tokyo-to``, ``tokyo`` -> ``Tokyo``)."""
    for name in (raw.strip().lower(), _PREFECTURE_SUFFIX.sub("", raw.strip()).strip().lower()):
        for prefecture in PREFECTURE_REGION:
            if prefecture.lower() == name:
                return prefecture
    return None


@dataclass
class Tally:
    """What was changed or left out, counted (the report's notes say it once, with counts)."""

    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, what: str, n: int = 1) -> None:
        self.counts[what] += n


@dataclass
class OutsideOptOuts:
    """The opt-outs of endpoints that are not a customer's address: those left out whole (no
    UserId, a UserId that is not a customer id) and those without a ChannelType. Their
    address was opted out in Pinpoint by its owner, so the opt-out counts for every migrated
    customer who keeps that address (compared by :func:`address_key`); an endpoint without a
    ChannelType, for the address on every Kizuna channel."""

    by_key: dict[tuple[str, str], list[Endpoint]] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)  # endpoint id -> why it is outside
    matched: set[str] = field(default_factory=set)  # endpoint ids whose opt-out counted

    def add(self, ep: Endpoint, why: str) -> None:
        if not ep.opted_out:
            return
        channels = [ep.channel] if ep.channel else ["EMAIL", "SMS", *PUSH]
        if ep.id in self.why:
            self.why[ep.id] = f"{self.why[ep.id]}; {why}"
            return
        self.why[ep.id] = why
        for channel in channels:
            key = address_key(channel, ep.data.get("Address"))
            if channel in ("EMAIL", "SMS", *PUSH) and key:
                self.by_key.setdefault((channel, key), []).append(ep)

    def find(self, channel: str, key: str) -> Endpoint | None:
        """The first (by id) outside endpoint that opted this address out, marked matched."""
        found = sorted(self.by_key.get((channel, key), ()), key=lambda e: e.id)
        self.matched.update(e.id for e in found)
        return found[0] if found else None

    def unmatched(self) -> list[Endpoint]:
        eps = {e.id: e for eps in self.by_key.values() for e in eps}
        return [eps[i] for i in sorted(eps) if i not in self.matched]


@dataclass
class CustomerDraft:
    customer_id: str
    endpoints: list[Endpoint] = field(default_factory=list)
    from_endpoint_id: bool = False


@dataclass
class CustomersResult:
    rows: list[dict[str, Any]]
    attributes: AttributeMap
    endpoint_customer: dict[str, str]  # endpoint id -> customer id
    user_customer: dict[str, str]  # Pinpoint UserId -> customer id
    locales: Counter[str]  # the customers' locales, counted

    def declarations(self) -> tuple[CustomAttribute, ...]:
        return self.attributes.declarations()


def migrate_endpoints(directory: Path | None, report: Report) -> CustomersResult:
    """Read the export under ``directory`` and build the customers (see the module)."""
    tally = Tally()
    drafts: dict[str, CustomerDraft] = {}
    endpoint_items: dict[str, Any] = {}
    read = list(read_endpoints(directory, report)) if directory is not None else []
    endpoints, copies = _one_per_id(read, tally)
    # an endpoint without a UserId never takes a user's customer id (it would merge into it)
    user_ids = {
        uid for ep in endpoints if isinstance(uid := ep.user.get("UserId"), str) and uid != ""
    }
    outside = OutsideOptOuts()
    for ep in endpoints:
        user_id = ep.user.get("UserId")
        item = report.add("endpoint", ep.id, pinpoint_id=ep.id)
        endpoint_items[ep.id] = item
        for text in copies.get(ep.id, ()):
            item.note(text)
        if isinstance(user_id, str) and user_id != "":
            if not is_customer_id(user_id):
                item.status = Status.NOT_MIGRATED
                item.note(
                    "its User.UserId is not a Kizuna customer id (an ASCII letter or digit, "
                    "then up to 127 letters, digits or . _ : @ -): left out, not renamed; "
                    f"{_why_not_id(user_id)}"
                )
                tally("endpoints whose UserId is not a customer id")
                outside.add(ep, "its UserId is not a customer id")
                continue
            drafts.setdefault(user_id, CustomerDraft(user_id)).endpoints.append(ep)
        elif ep.id in user_ids:
            item.status = Status.NOT_MIGRATED
            item.note(
                "no User.UserId, and its Id is the User.UserId of other endpoints: left out, "
                "so that it never merges into that user's customer"
            )
            tally("endpoints without a UserId whose Id is a UserId (left out)")
            outside.add(ep, "it has no UserId, and its Id is a UserId")
        elif is_customer_id(ep.id):
            draft = drafts.setdefault(ep.id, CustomerDraft(ep.id, from_endpoint_id=True))
            draft.endpoints.append(ep)
            item.note("no User.UserId: a customer of its own, whose id is the endpoint's Id")
            tally("endpoints without a UserId (a customer each)")
        else:
            item.status = Status.NOT_MIGRATED
            item.note("no User.UserId and its Id is not a customer id: left out")
            tally("endpoints without a UserId or a usable Id")
            outside.add(ep, "it has no UserId, and its Id is not a customer id")

    in_drafts = {e.id for d in drafts.values() for e in d.endpoints}
    for ep in endpoints:
        if not ep.channel:
            # no channel to keep its Address on: its opt-out counts for the address on
            # every channel (below); its attributes and profile are its customer's
            outside.add(ep, "it has no ChannelType")
            if ep.id in in_drafts:
                item = endpoint_items[ep.id]
                item.note(
                    "no ChannelType: its Address is not kept (no channel to keep it on); its "
                    "Attributes, Demographic and Location are its customer's"
                )
                tally("endpoints without a ChannelType (their Address not kept)")

    # attribute values per customer, then one plan per attribute
    merged = {cid: _merge_attributes(d, tally) for cid, d in drafts.items()}
    amap = AttributeMap()
    for source in SOURCES:
        names = sorted({n for m in merged.values() for (s, n) in m if s == source})
        for name in names:
            values = [m[(source, name)] for m in merged.values() if (source, name) in m]
            amap.plan(source, name, values)
    location_values: dict[str, list[list[str]]] = defaultdict(list)
    for draft in drafts.values():
        loc = _location(draft)
        for key, attr in LOCATION_ATTRIBUTES.items():
            if loc.get(key):
                location_values[attr].append([str(loc[key])])
    for key, attr in LOCATION_ATTRIBUTES.items():
        if location_values[attr]:
            amap.plan("Location", key, location_values[attr])

    rows: list[dict[str, Any]] = []
    endpoint_customer: dict[str, str] = {}
    locales: Counter[str] = Counter()
    upserted = vocabulary(CustomConfig(attributes=amap.declarations())).inbound_model(
        "customer.upserted"
    )
    assert upserted is not None
    custom_targets = {t.name: t for t in amap.items() if not t.profile}
    over_budget: dict[str, list[str]] = {}  # customer id -> what the report says of it
    for cid in sorted(drafts):
        draft = drafts[cid]
        row = _row(draft, merged[cid], amap, tally, endpoint_items, outside)
        row = _validated(row, upserted, tally)
        said = _within_budget(row, upserted, draft, custom_targets, tally, endpoint_items)
        if said:
            over_budget[cid] = said
        rows.append(row)
        for ep in draft.endpoints:
            endpoint_customer[ep.id] = cid
            item = endpoint_items[ep.id]
            item.became = [f"customer {cid}", *item.became]
        if isinstance(row.get("locale"), str):
            locales[row["locale"]] += 1

    user_customer = {
        str(ep.user.get("UserId")): endpoint_customer[ep.id]
        for ep in endpoints
        if ep.id in endpoint_customer and ep.user.get("UserId")
    }
    for ep in outside.unmatched():
        endpoint_items[ep.id].note(
            f"OptOut {ep.data.get('OptOut')}: no migrated customer keeps its Address (however "
            "written): nothing to opt out"
        )
    _report_customers(report, rows, read, tally, amap)
    for cid, said in over_budget.items():
        report.add(
            "customers", f"customer {cid}", Status.CHANGED, became=["customers.jsonl"], notes=said
        )
    return CustomersResult(rows, amap, endpoint_customer, user_customer, locales)


def _one_per_id(
    endpoints: list[Endpoint], tally: Tally
) -> tuple[list[Endpoint], dict[str, list[str]]]:
    """One endpoint per ``Id`` (overlapping export parts can hold one twice) and, per Id read
    more than once, the notes that say so. The most recently updated copy is read; an opt-out
    in any copy with the same channel and address is kept with it (an opt-out wins)."""
    by_id: dict[str, list[Endpoint]] = defaultdict(list)
    for ep in endpoints:
        by_id[ep.id].append(ep)
    kept: list[Endpoint] = []
    notes: dict[str, list[str]] = {}
    for eid, eps in by_id.items():
        if len(eps) == 1:
            kept.append(eps[0])
            continue
        # the most recent copy; of equally recent ones, the last read
        best = max(enumerate(eps), key=lambda pair: (pair[1].recency, pair[0]))[1]
        places = ", ".join(f"{e.file}:{e.line}" for e in eps)
        notes[eid] = [
            f"its Id appears {len(eps)} times in the export ({places}): the most recent copy "
            f"({best.file}:{best.line}) is read"
        ]
        same = [e for e in eps if (e.channel, e.address_key) == (best.channel, best.address_key)]
        opted_out = next((e for e in same if e.opted_out), None)
        if opted_out is not None and not best.opted_out:
            best = Endpoint(best.file, best.line, {**best.data, "OptOut": opted_out.data["OptOut"]})
            notes[eid].append(
                f"the copy at {opted_out.file}:{opted_out.line} has OptOut "
                f"{opted_out.data['OptOut']}: kept (an opt-out wins)"
            )
        if len(same) < len(eps) or len({str(e.user.get("UserId")) for e in eps}) > 1:
            notes[eid].append(
                "its copies differ in channel, address or UserId: the other copies are not read"
            )
        tally("endpoint Ids read more than once (the most recent copy kept)")
        kept.append(best)
    return kept, notes


def _why_not_id(value: str) -> str:
    if len(value) > 128:
        return "it is over 128 characters"
    if any(c.isspace() for c in value):
        return "it has a space"
    if not value[:1].isascii() or not value[:1].isalnum():
        return "it does not start with an ASCII letter or digit"
    return "it has a character outside A-Z a-z 0-9 . _ : @ -"


def _merge_attributes(draft: CustomerDraft, tally: Tally) -> dict[tuple[str, str], list[str]]:
    """(source, name) -> the customer's values; the most recent endpoint wins, except for
    endpoint attributes with several values, which are joined."""
    merged: dict[tuple[str, str], list[str]] = {}
    for ep in sorted(draft.endpoints, key=lambda e: (e.recency, e.id)):  # oldest first
        sources: list[tuple[str, Any]] = [
            ("UserAttributes", ep.user.get("UserAttributes")),
            ("Attributes", ep.data.get("Attributes")),
        ]
        for source, attrs in sources:
            for name, values in (attrs or {}).items():
                key = (source, name)
                values = [str(v) for v in values]
                if key in merged and merged[key] != values:
                    if source == "Attributes" and (len(values) > 1 or len(merged[key]) > 1):
                        joined = list(dict.fromkeys([*merged[key], *values]))
                        tally(f"customers whose endpoints' {source}.{name} lists were joined")
                        merged[key] = joined
                        continue
                    tally(f"customers whose endpoints disagree on {source}.{name} (latest kept)")
                merged[key] = values
        for name, value in (ep.data.get("Metrics") or {}).items():
            key = ("Metrics", name)
            if key in merged and merged[key] != [str(value)]:
                tally(f"customers whose endpoints disagree on Metrics.{name} (latest kept)")
            merged[key] = [str(value)]
    return merged


def _location(draft: CustomerDraft) -> dict[str, Any]:
    """The most recently updated endpoint's location fields (each from the latest that has
    it)."""
    out: dict[str, Any] = {}
    for ep in sorted(draft.endpoints, key=lambda e: (e.recency, e.id)):
        loc = ep.data.get("Location") or {}
        out.update({k: v for k, v in loc.items() if v not in (None, "")})
    return out


def _demographic(draft: CustomerDraft) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ep in sorted(draft.endpoints, key=lambda e: (e.recency, e.id)):
        dem = ep.data.get("Demographic") or {}
        out.update({k: v for k, v in dem.items() if v not in (None, "")})
    return out


def _row(
    draft: CustomerDraft,
    values: dict[tuple[str, str], list[str]],
    amap: AttributeMap,
    tally: Tally,
    items: dict[str, Any],
    outside: OutsideOptOuts,
) -> dict[str, Any]:
    cid = draft.customer_id
    row: dict[str, Any] = {"customer_id": cid}
    times: list[datetime] = []
    for ep in draft.endpoints:
        if ep.effective_at is not None:
            times.append(ep.effective_at)
        elif ep.effective:
            items[ep.id].note(
                f"its EffectiveDate {ep.effective[:40]!r} is not an ISO 8601 time with a UTC "
                "offset: the customer's updated_at is taken from its other endpoints (with "
                "none, the row has no updated_at: import it with --as-of, the export's time)"
            )
            tally("endpoints whose EffectiveDate is not an ISO 8601 time with an offset")
    if times:
        row["updated_at"] = max(times).isoformat()
    by_channel: dict[str, list[Endpoint]] = defaultdict(list)
    for ep in draft.endpoints:
        by_channel[ep.channel].append(ep)
    # email and phone: the best endpoint with a valid address
    for channel, column, pattern, kizuna in (
        ("EMAIL", "email", EMAIL, "email"),
        ("SMS", "phone", E164, "sms"),
    ):
        chosen = None
        same: list[Endpoint] = []  # the chosen endpoint and the others with its address
        for ep in sorted(by_channel.get(channel, []), key=Endpoint.rank, reverse=True):
            address = ep.data.get("Address")
            if (
                not isinstance(address, str)
                or not pattern.fullmatch(address)
                or len(address) > MAX_EMAIL_CHARS
            ):
                what = "an email address" if channel == "EMAIL" else "an E.164 phone number"
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note(f"its Address is not {what}: left out")
                tally(f"{channel} endpoints whose Address is not {what}")
                continue
            if chosen is None:
                chosen = ep
                same.append(ep)
                items[ep.id].became.append(column)
                continue
            if ep.address_key == chosen.address_key:
                same.append(ep)
                items[ep.id].became.append(column)
                items[ep.id].note(f"the same {column} as endpoint {chosen.id}, which was kept")
                tally(f"{channel} endpoints with the same address as the one kept")
                continue
            items[ep.id].status = Status.NOT_MIGRATED
            items[ep.id].note(
                f"another {channel} endpoint of the same user was kept (a customer has one "
                f"{column}: the active, not opted-out, most recently updated)"
            )
            tally(f"extra {channel} endpoints of one user (left out)")
        if chosen is None:
            continue
        row[column] = chosen.data["Address"]
        # an opt-out of the address, on any of its endpoints, wins over an opt-in: those
        # whose Address spells it another way (a space, a line feed, "+81 90-...") too,
        # though they were left out as addresses
        out = next((ep for ep in same if ep.opted_out), None) or next(
            (
                ep
                for ep in sorted(by_channel[channel], key=Endpoint.rank, reverse=True)
                if ep.opted_out and ep.address_key == chosen.address_key
            ),
            None,
        )
        # and so does one on an endpoint that is no customer's address (left out whole, or
        # without a ChannelType): its owner opted the address out
        other = outside.find(channel, chosen.address_key)
        if other is not None:
            items[other.id].note(
                f"OptOut {other.data.get('OptOut')}: its Address is customer {cid}'s {column}: "
                f"{kizuna} opted out there (an opt-out of an address counts for every customer "
                "who keeps it)"
            )
        if out is not None:
            row[CONSENT[kizuna]] = "opted_out"
            if out in same:
                items[out.id].note(f"OptOut {out.data.get('OptOut')}: {kizuna} opted out")
            else:
                items[out.id].note(
                    f"OptOut {out.data.get('OptOut')}: its Address is endpoint {chosen.id}'s "
                    f"{column} written another way: {kizuna} opted out (an opt-out wins)"
                )
            if out is not chosen:
                spelled = "" if out in same else " written another way"
                items[chosen.id].note(
                    f"endpoint {out.id} has the same {column}{spelled} and OptOut "
                    f"{out.data.get('OptOut')}: {kizuna} opted out (an opt-out wins)"
                )
            tally(f"{kizuna}: opted out (OptOut ALL)")
        elif other is not None:
            row[CONSENT[kizuna]] = "opted_out"
            items[chosen.id].note(
                f"endpoint {other.id} has the same {column} and OptOut "
                f"{other.data.get('OptOut')}, and is no customer's address "
                f"({outside.why[other.id]}): {kizuna} opted out (an opt-out of an address "
                "counts for every customer who keeps it)"
            )
            tally(f"{kizuna}: opted out by an endpoint that is no customer's address")
        elif chosen.active:
            row[CONSENT[kizuna]] = "opted_in"
        else:
            items[chosen.id].note(f"INACTIVE: the {column} is kept, {kizuna} is not opted in")
            tally(f"{kizuna}: INACTIVE endpoint, not opted in")
    # push devices
    tokens: list[dict[str, str]] = []
    push_out = False
    # a token opted out on any of its endpoints is not registered (an opt-out wins)
    tokens_out = {
        (ep.channel, ep.address_key) for c in PUSH for ep in by_channel.get(c, []) if ep.opted_out
    }
    for channel, platform in PUSH.items():
        for ep in sorted(by_channel.get(channel, []), key=lambda e: e.id):
            address = ep.data.get("Address")
            token = address if isinstance(address, str) else ""
            usable = (
                isinstance(address, str)
                and 8 <= len(token) <= MAX_DEVICE_TOKEN_CHARS
                and is_text(token, MAX_DEVICE_TOKEN_CHARS)
            )
            # the token opted out on an endpoint that is no customer's address
            other = outside.find(ep.channel, ep.address_key) if usable else None
            if other is not None:
                items[other.id].note(
                    f"OptOut {other.data.get('OptOut')}: its Address is a device token of "
                    f"customer {cid}: that device is not registered (an opt-out of an address "
                    "counts for every customer who keeps it)"
                )
            if not usable:
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note("its Address is not a device token: left out")
                tally("push endpoints without a usable token")
            elif ep.opted_out:
                push_out = True
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note("OptOut ALL: the device is not registered; push opted out")
                tally("push devices opted out (not registered)")
            elif not ep.active:
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note("INACTIVE: the device is not registered")
                tally("push devices INACTIVE (not registered)")
            elif other is not None:
                push_out = True
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note(
                    f"endpoint {other.id} has the same token and OptOut "
                    f"{other.data.get('OptOut')}, and is no customer's address "
                    f"({outside.why[other.id]}): the device is not registered; push opted out"
                )
                tally("push devices opted out by an endpoint that is no customer's address")
            elif (ep.channel, ep.address_key) in tokens_out:
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note(
                    "another endpoint with the same token has OptOut ALL: the device is not "
                    "registered"
                )
                tally("push devices opted out on another endpoint (not registered)")
            elif {"token": token, "platform": platform} in tokens:
                items[ep.id].became.append(f"push device ({platform})")
                items[ep.id].note("the same token as another endpoint: registered once")
                tally("push endpoints with a token already registered")
            else:
                tokens.append({"token": token, "platform": platform})
                items[ep.id].became.append(f"push device ({platform})")
    if tokens:
        row["push_tokens"] = tokens
        row["push_consent"] = "opted_in"
    elif push_out:
        row["push_consent"] = "opted_out"
    for channel, eps in by_channel.items():
        if channel in SKIPPED_CHANNELS:
            for ep in eps:
                items[ep.id].status = Status.NOT_MIGRATED
                items[ep.id].note(f"{SKIPPED_CHANNELS[channel]} is not a Kizuna channel")
            tally(f"{channel} endpoints (not a Kizuna channel)", len(eps))
    # demographic and location
    dem = _demographic(draft)
    if dem.get("Timezone"):
        zone = time_zone(str(dem["Timezone"]))
        if zone:
            row["time_zone"] = zone
        else:
            tally("time zones that are not IANA zones (left out)")
    if dem.get("Locale"):
        locale = normalise_locale(str(dem["Locale"]))
        if locale is None:
            tally("locales that are not language codes (left out)")
        else:
            row["locale"] = locale
            if locale != dem["Locale"]:
                tally(f"locale {dem['Locale']} -> {locale}")
    for key in ("Platform", "Make", "Model", "ModelVersion", "PlatformVersion", "AppVersion"):
        if dem.get(key):
            tally(f"Demographic.{key} (not kept: Kizuna keeps no device details)")
    loc = _location(draft)
    attributes: dict[str, Any] = {}
    if loc.get("Region"):
        region = str(loc["Region"])
        prefecture = prefecture_of(region) if str(loc.get("Country", "")).upper() in JAPAN else None
        if prefecture:
            row["prefecture"] = prefecture
            row["region"] = PREFECTURE_REGION[prefecture]
            if prefecture != region:
                tally(f"Location.Region {region} -> prefecture {prefecture}")
        else:
            row["region"] = region
    for key in LOCATION_ATTRIBUTES:
        target = amap.get("Location", key)
        if target is not None and loc.get(key):
            attributes[target.name] = str(loc[key])
    for key in ("PostalCode", "Latitude", "Longitude"):
        if loc.get(key) is not None:
            tally(f"Location.{key} (not kept)")
    # custom attributes and the profile fields they name
    for (source, name), vals in sorted(values.items()):
        target = amap.get(source, name)
        if target is None:
            continue
        value = _convert(target, vals, tally)
        if isinstance(value, Refused):
            # never cut, rounded or changed: left out for this customer, said on its endpoints
            tally(f"{target.label}: {value.reason} (not migrated)")
            for ep in draft.endpoints:
                if _holds(ep, source, name):
                    items[ep.id].note(
                        f"{target.label}: {value.reason}: not migrated for this customer "
                        "(the rest of the endpoint is)"
                    )
            continue
        if value is None:
            continue
        if target.profile:
            row[target.name] = value
        else:
            attributes[target.name] = value
    if attributes:
        row["attributes"] = dict(sorted(attributes.items()))
    return row


@dataclass(frozen=True)
class Refused:
    """A customer's value that Kizuna's declaration cannot hold as it is, and why (reported
    on the endpoints that hold it; the value is never cut or rounded to fit)."""

    reason: str


def _holds(ep: Endpoint, source: str, name: str) -> bool:
    """Whether the endpoint gives a value of the attribute ``source``.``name``."""
    where = ep.user.get("UserAttributes") if source == "UserAttributes" else ep.data.get(source)
    return isinstance(where, Mapping) and name in where


def _convert(target: Target, values: list[str], tally: Tally) -> Any:
    """A customer's Pinpoint values as the declared type's JSON (None: left out, counted;
    :class:`Refused`: a value the declaration cannot hold as it is)."""
    label = target.label
    if target.profile:
        if len(values) > 1:
            return Refused(f"{len(values)} values, and {target.name} holds one")
        value = values[0] if values else ""
        if not value:
            tally(f"{label}: empty (left out)")
            return None
        if not is_text(value, 100):
            return Refused("over 100 characters or with control characters")
        return value
    spec = target.spec
    assert spec is not None
    if not values:
        return None
    if spec.type == ValueType.STRING_LIST:
        # the whole list or nothing: a shorter list would mean something else
        if len(values) > spec.max_items:
            return Refused(
                f"{len(values)} values, over the {spec.max_items} its declaration holds "
                f"(max_items; Kizuna's most is {MAX_LIST_ITEMS})"
            )
        bad = sum(1 for v in values if not is_text(v, spec.max_length))
        if bad:
            return Refused(
                f"{bad} of its values over {spec.max_length} characters or with control characters"
            )
        return values
    if len(values) > 1:
        return Refused(f"{len(values)} values, and a {spec.type.value} holds one")
    value = values[0]
    if spec.type == ValueType.NUMBER:
        n = number(value)
        if n is None:
            return Refused("not a number within +-1e12 with at most 6 decimals")
        exact = json_number(n)
        if exact is None:
            return Refused(
                "a number with more significant digits than a Kizuna number carries exactly (15)"
            )
        return exact
    if spec.type == ValueType.BOOLEAN:
        if value not in ("true", "false"):
            tally(f"{label}: {value!r} read as {value.lower()}")
        return value.lower() == "true"
    if spec.type == ValueType.DATE:
        return value
    if not is_text(value, spec.max_length):
        return Refused(f"over {spec.max_length} characters or with control characters")
    return value


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    """The ``customer.upserted`` detail ``kizuna import`` makes of the row (consent,
    updated_at and push tokens are the importer's columns, other events)."""
    import_only = {"customer_id", "updated_at", "push_tokens", *CONSENT.values()}
    detail = {k: v for k, v in row.items() if k not in import_only}
    detail.update(customer_id=row["customer_id"], occurred_at=datetime(2000, 1, 1).astimezone())
    return detail


def _validated(row: dict[str, Any], model: type[Any], tally: Tally) -> dict[str, Any]:
    """The row as ``customer.upserted`` accepts it: a field it refuses is left out, counted.
    Consent, updated_at and push tokens are the importer's columns, checked there."""
    for _ in range(8):  # each pass drops what the previous refused
        detail = _detail(row)
        try:
            model.model_validate(detail)
            return row
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                loc = [str(p) for p in err["loc"]]
                if (
                    loc[0] == "attributes"
                    and len(loc) > 1
                    and isinstance(row.get("attributes"), dict)
                ):
                    row["attributes"].pop(loc[1], None)
                    tally(f"attributes.{loc[1]}: refused by its declaration ({err['msg']})")
                    if not row["attributes"]:
                        row.pop("attributes")
                elif loc[0] in row:
                    row.pop(loc[0])
                    tally(f"{loc[0]}: refused ({err['msg']})")
    return row


def _within_budget(
    row: dict[str, Any],
    model: type[Any],
    draft: CustomerDraft,
    targets: Mapping[str, Target],
    tally: Tally,
    items: dict[str, Any],
) -> list[str]:
    """Leave out of the (validated) row the attributes that take the customer over Kizuna's
    budget (:data:`MAX_ATTRIBUTES_BYTES`, by :func:`within_attributes_budget`, the rule
    ``kizuna import`` and the fold apply, on the values as they are stored): the largest
    first (then by name) until the rest fit. Each is never cut: it is left out whole, named
    on the endpoints that hold it and counted. Kizuna refuses a row over the budget whole,
    its email, consent and devices with it: those are kept. Returns the customer's report
    notes (none when it fits)."""
    stated = row.get("attributes")
    if not stated:
        return []
    values = attribute_values(model.model_validate(_detail(row)).attributes)
    total = attributes_size(values)
    left_out: list[tuple[str, int]] = []
    while values and not within_attributes_budget(values):
        sizes = {name: attributes_size({name: value}) for name, value in values.items()}
        name = min(sizes, key=lambda n: (-sizes[n], n))
        values.pop(name)
        stated.pop(name)
        left_out.append((name, sizes[name]))
    if not left_out:
        return []
    if not stated:
        row.pop("attributes")
    why = (
        f"the customer's custom attributes are {total:,} bytes, over Kizuna's "
        f"{MAX_ATTRIBUTES_BYTES:,} a customer (names and values as UTF-8 JSON), and Kizuna "
        "refuses such a row whole (its email, consent and devices too)"
    )
    tally(f"customers over Kizuna's {MAX_ATTRIBUTES_BYTES:,} bytes of custom attributes")
    labels = []
    for name, size in left_out:
        target = targets.get(name)
        label = target.label if target is not None else f"attributes.{name}"
        labels.append(f"{label} ({size:,} bytes)")
        tally(f"{label}: left out of customers over the attributes' budget (not migrated)")
        for ep in draft.endpoints:
            if target is not None and _holds(ep, target.source, target.pinpoint):
                items[ep.id].note(
                    f"{label} ({size:,} bytes): not migrated for this customer: {why}; the "
                    "largest are left out until the rest fit, never cut (the rest of the "
                    "endpoint is migrated)"
                )
    return [
        f"{why}: not migrated for this customer, each whole (never cut), the largest first "
        f"until the rest fit: {', '.join(labels)}; its addresses, consent, devices and other "
        "attributes are migrated"
    ]


def _report_customers(
    report: Report,
    rows: list[dict[str, Any]],
    endpoints: list[Endpoint],
    tally: Tally,
    amap: AttributeMap,
) -> None:
    report.counts["endpoints_read"] = len(endpoints)
    report.counts["customers"] = len(rows)
    for channel in ("email", "phone", "push_tokens"):
        report.counts[f"customers_with_{channel}"] = sum(1 for r in rows if r.get(channel))
    for column in CONSENT.values():
        report.counts[f"{column}_opted_in"] = sum(1 for r in rows if r.get(column) == "opted_in")
        report.counts[f"{column}_opted_out"] = sum(1 for r in rows if r.get(column) == "opted_out")
    item = report.add(
        "customers",
        "endpoint export",
        became=["customers.jsonl"],
        notes=[f"{len(endpoints):,} endpoints -> {len(rows):,} customers"],
    )
    for what, n in sorted(tally.counts.items()):
        item.note(f"{what}: {n:,}")
    for target in amap.items():
        if target.profile:
            report.add(
                "attribute",
                target.label,
                Status.CHANGED,
                became=[target.name],
                notes=[f"the built-in profile field {target.name}"],
            )
            continue
        spec = target.spec
        assert spec is not None
        notes = [target.how]
        if target.generated:
            notes.append(
                f"renamed {target.pinpoint} -> {target.name}: a generated name, as "
                f"{target.pinpoint} has no Latin letters to keep (the declaration's description "
                "names it too)"
            )
        elif target.name != target.pinpoint:
            notes.append(f"renamed {target.pinpoint} -> {target.name}")
        if spec.personal:
            notes.append("personal data by its name: masked, erased, never in conditions")
        if spec.name in BUILT_IN_FIELDS:
            notes.append(
                f"Kizuna has a built-in {spec.name} (conditions and reports read it, e.g. age "
                "from birth_date): kept as a custom attribute, as templates read it; move it "
                "there if you prefer"
            )
        report.add(
            "attribute",
            target.label,
            Status.CHANGED if len(notes) > 1 or spec.enum else Status.MIGRATED,
            became=[f"custom.attributes.{spec.name} ({spec.type.value})"],
            notes=notes,
        )
