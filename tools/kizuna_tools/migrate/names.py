"""Kizuna names for Pinpoint names: attribute names in snake case, ids and file names in
kebab case, each unique in its namespace. Every conversion is reported by the caller (the
migration maps names, and says so)."""

from __future__ import annotations

import re
import unicodedata

from kizuna.events.derived import DERIVED_MODELS
from kizuna.events.inbound import INBOUND_MODELS
from kizuna.runtime.config import CUSTOM_EVENT_PATTERN, CUSTOM_NAME_PATTERN

_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
ATTRIBUTE_NAME = re.compile(CUSTOM_NAME_PATTERN)
EVENT_NAME = re.compile(CUSTOM_EVENT_PATTERN)
MAX_ATTRIBUTE = 40
MAX_ID = 40  # program and campaign ids: ^[a-z][a-z0-9-]{1,39}$
# Pinpoint's standard events that are Kizuna's built-in ones (the other ``_x.y`` have none)
BUILTIN_EVENTS = {"_session.start": "app.opened", "_monetization.purchase": "order.placed"}
# Kizuna's own detail-types: a custom event may not take one (``ProductViewed`` would)
KIZUNA_EVENTS = frozenset(INBOUND_MODELS) | frozenset(DERIVED_MODELS)
RENAMED_PREFIX = "pinpoint"


def words(name: str) -> list[str]:
    """``FavoriteStore`` / ``favorite-store`` / ``Favorite Store`` -> ``[favorite, store]``
    (accents dropped; other scripts give no words)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = _CAMEL_2.sub(r"\1 \2", _CAMEL_1.sub(r"\1 \2", ascii_name))
    return [w for w in _NOT_WORD.split(spaced.lower()) if w]


def snake(name: str, *, fallback: str = "a") -> str:
    """A custom attribute or field name (``^[a-z][a-z0-9_]{0,39}$``) for a Pinpoint name."""
    out = "_".join(words(name)) or fallback
    if not out[0].isalpha():
        out = f"{fallback}_{out}"
    return out[:MAX_ATTRIBUTE].rstrip("_")


def kebab(name: str, *, fallback: str, max_length: int = MAX_ID) -> str:
    """An id or a file name (``^[a-z][a-z0-9-]*$``) for a Pinpoint name."""
    out = "-".join(words(name)) or fallback
    if not out[0].isalpha():
        out = f"{fallback}-{out}"
    return out[:max_length].rstrip("-")


def object_id(name: str, *, fallback: str, taken: set[str]) -> str:
    """A program or campaign id (``^[a-z][a-z0-9-]{1,39}$``) for a Pinpoint name (``fallback``
    when it gives fewer than two characters), not in ``taken`` (then added to it)."""
    slug = kebab(name, fallback=fallback)
    return unique(slug if len(slug) >= 2 else fallback, taken, MAX_ID, "-")


def unique(name: str, taken: set[str], max_length: int, sep: str) -> str:
    """``name``, or ``name<sep>2``, ``name<sep>3``... (within ``max_length``) not in
    ``taken``; the result is added to ``taken``."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"{sep}{n}"
        candidate = name[: max_length - len(suffix)].rstrip(sep) + suffix
    taken.add(candidate)
    return candidate


def event_type(name: str) -> str:
    """A custom detail-type for a Pinpoint custom event name: ``wishlist.added`` stays;
    ``WishlistAdded`` / ``wishlist_added`` -> ``wishlist.added`` (the first word, a dot, the
    rest); a one-word ``Checkin`` -> ``app.checkin``. A name that would be one of Kizuna's own
    detail-types (``ProductViewed`` -> ``product.viewed``, ``customer.rank_changed``) is
    declared under ``pinpoint.`` (``pinpoint.product_viewed``): a custom event may not take a
    built-in or derived type."""
    candidate = _event_type(name)
    if candidate in KIZUNA_EVENTS:
        return f"{RENAMED_PREFIX}.{candidate.replace('.', '_')}"
    return candidate


def _event_type(name: str) -> str:
    if EVENT_NAME.fullmatch(name):
        return name
    parts = [snake(p, fallback="event") for p in name.split(".") if words(p)]
    if len(parts) >= 2:
        candidate = ".".join(p[:31] for p in parts[:4])
        if EVENT_NAME.fullmatch(candidate):
            return candidate
    flat = words(name) or ["event"]
    if len(flat) == 1:
        head, rest = "app", flat
    else:
        head, rest = flat[0], flat[1:]
    if not head[0].isalpha():
        head = f"app_{head}"
    tail = "_".join(rest)
    if not tail[0].isalpha():
        tail = f"e_{tail}"
    return f"{head[:31]}.{tail[:31].rstrip('_')}"
