"""Coupon codes: deterministic per (program, customer, execution, step), unguessable without
the secret, easy to read aloud and type.

The code is an HMAC-SHA256 of the four ids under a secret key, in Crockford base32 (no I,
L, O or U), grouped by four: ``KZ-7Q4M-X2KD-9BNR``. Three groups carry 60 bits, so among a
million issued codes the chance that any two collide is about 4 in 10 million, and a guess
hits one of them with probability about 1 in 10^12. A retried send re-derives the same code
(no second coupon); another coupon step of the same journey execution, or a new execution,
gets a new one. (Codes issued before the step was part of the input were derived from the
first three ids alone; they stay valid: redemption looks a code up in the customer's
``COUPON#`` rows, never derives it again.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import UTC, datetime, time, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kizuna.domain.zones import zone_or

PREFIX = "KZ"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
GROUP = 4
_DOMAIN = b"kizuna/coupon/v1"
_TYPO = str.maketrans({"I": "1", "L": "1", "O": "0"})
# Separators a customer types: spaces, the hyphen, and what else a keyboard or an IME gives
# for it (the Unicode hyphens and dashes U+2010-U+2015, the minus sign, the katakana
# long-vowel mark ー); full-width forms are NFKC-folded to these first (－ to -, ｰ to ー).
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc]")


class Coupon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1)
    discount: str = Field(min_length=1, description='What it is worth, as shown: "10%", "500円"')
    expires_at: AwareDatetime


def _base32(digest: bytes, chars: int) -> str:
    number = int.from_bytes(digest, "big")
    out = []
    for _ in range(chars):
        out.append(ALPHABET[number & 31])
        number >>= 5
    return "".join(out)


def coupon_code(
    secret: bytes,
    program: str,
    customer_id: str,
    execution: str,
    step: str,
    *,
    groups: int = 3,
) -> str:
    """The coupon code of one send step (a campaign's: its send step) in one journey
    execution of one customer in one program."""
    if not secret:
        raise ValueError("a coupon secret is required")
    if not 2 <= groups <= 12:
        raise ValueError("groups must be between 2 and 12")
    ids = (program, customer_id, execution, step)
    message = b"\x00".join([_DOMAIN, *(i.encode() for i in ids)])
    body = _base32(hmac.new(secret, message, hashlib.sha256).digest(), groups * GROUP)
    return "-".join([PREFIX, *(body[i : i + GROUP] for i in range(0, len(body), GROUP))])


def issue_coupon(
    secret: bytes,
    program: str,
    customer_id: str,
    execution: str,
    step: str,
    *,
    discount: str,
    expires_at: datetime,
) -> Coupon:
    return Coupon(
        code=coupon_code(secret, program, customer_id, execution, step),
        discount=discount,
        expires_at=expires_at,
    )


def coupon_expiry(
    now: datetime, valid_days: int, time_zone: str | None, default_time_zone: str
) -> datetime:
    """When a coupon sent at ``now``, valid ``valid_days`` days, expires: the end of that
    last day in the customer's zone (theirs, else the default, as quiet hours and the
    templates resolve it), the date its message shows ("valid until 19 January" holds all
    of the 19th, not until the send's clock time)."""
    zone = zone_or(time_zone, default_time_zone)
    last_day = (now.astimezone(zone) + timedelta(days=valid_days)).date()
    return datetime.combine(last_day, time.max, tzinfo=zone).astimezone(UTC)


def normalize_coupon_code(typed: str) -> str:
    """A code as a customer typed it (any case, spaces, I/L for 1, O for 0, full-width
    characters of a Japanese keyboard, any dash or ー for the hyphen) in canonical form, for
    lookup at redemption. Nothing else is dropped or replaced: anything else stays, and the
    result is then not a code (:func:`is_coupon_code`)."""
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", typed).upper())
    if compact.startswith(PREFIX):
        compact = compact[len(PREFIX) :]
    compact = compact.translate(_TYPO)
    return "-".join([PREFIX, *(compact[i : i + GROUP] for i in range(0, len(compact), GROUP))])


def is_coupon_code(code: str, *, groups: int = 3) -> bool:
    pattern = rf"^{PREFIX}(-[{ALPHABET}]{{{GROUP}}}){{{groups}}}$"
    return re.match(pattern, code) is not None


# --- Issued coupons: one activity row per coupon a customer was sent ------------------------
# pk = the customer, sk = ``COUPON#<code>`` (erased with the customer's partition). While
# ``issued`` it is in the activity table's ``gsi1`` under ``COUPONS#<shard>`` by expiry (the
# daily sweep's reminders, :mod:`kizuna.programs.sweeps`); redeemed, it leaves the index.
COUPON_SK = "COUPON#"
ISSUED = "issued"
REDEEMED = "redeemed"
COUPON_SHARDS = 16
COUPON_INDEX_PREFIX = "COUPONS#"
KEEP_AFTER_EXPIRY_DAYS = 30  # the row's TTL: this long after the coupon expired
MAX_CODES_PER_ORDER = 5
CODE_PATTERN = rf"^{PREFIX}(-[{ALPHABET}]{{{GROUP}}}){{3}}$"


class IssuedCoupon(BaseModel):
    """A coupon sent to a customer: who, which code, from which program (or campaign) send,
    worth what, valid until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(min_length=1)
    code: str = Field(pattern=CODE_PATTERN)
    program: str = Field(min_length=1)
    execution: str = Field(min_length=1)
    step: str = Field(min_length=1)
    discount: str = Field(min_length=1)
    issued_at: AwareDatetime
    expires_at: AwareDatetime


def coupon_shard(customer_id: str) -> str:
    """The index partition of a customer's coupons (spread so one day's expiries of a large
    campaign do not all land on one partition)."""
    digest = hashlib.sha256(customer_id.encode()).digest()
    return f"{COUPON_INDEX_PREFIX}{digest[0] % COUPON_SHARDS}"


def code_ref(code: str) -> str:
    """A short stand-in for a code where the code itself must not go (event ids, which
    become execution names; logs): not reversible without the list of codes."""
    return hashlib.sha256(f"kizuna-coupon\x1f{code}".encode()).hexdigest()[:16]


class Redemption(BaseModel):
    """An order that names one of the customer's coupons (``order.placed``'s
    ``coupon_codes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(min_length=1)
    code: str = Field(pattern=CODE_PATTERN)
    order_id: str = Field(min_length=1)
    at: AwareDatetime  # when the order was placed: a coupon expired by then is not redeemed
