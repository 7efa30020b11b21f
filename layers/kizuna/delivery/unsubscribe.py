"""Signed one-click unsubscribe tokens (RFC 8058 links), stateless and URL-safe.

Token = base64url without padding of::

    version (1 byte, =3) | channel (1 byte) | issued_at (uint32, Unix seconds) |
    expires_at (uint32, Unix seconds) | topic length (1 byte, 0: none) | topic (ASCII) |
    customer_id (UTF-8) | HMAC-SHA256(secret, domain | all of the above)[:16]

The **topic** is the preference topic of the message the link came with
(docs/PREFERENCES.md): the one-click POST opts the customer out of that topic on the
channel, not of the channel. Version 2 tokens (no topic) are still accepted and opt out of
the channel, as they always did.

``issued_at`` lets the unsubscribe function refuse a token older than the customer's latest
consent change for the channel (an old link replayed after the customer opted back in must
not opt them out again: kizuna.services.unsubscribe). Version 1 tokens (no ``issued_at``,
made before it existed, always with the 90-day :data:`LINK_TTL`) are still accepted, as
issued ``LINK_TTL`` before they expire.

A 128-bit tag is far beyond guessing; the whole token for a 36-character customer id and a
10-letter topic is 98 characters. Only the canonical base64url spelling is accepted, so no
two strings verify as the same token and any change to a single character is rejected.
``verify`` accepts several secrets (current first) so the secret can be rotated without
breaking links in flight.

The preference page's save form also carries **what the page showed** (each selector's value
and the pause), signed with the same secret and bound to the token of that form
(:func:`sign_page_state`): a save is diffed against what the customer saw, not against the
stored state, which lags a save by ingest's latency (kizuna.services.unsubscribe).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from kizuna.delivery import signing
from kizuna.delivery.links import on_origin

VERSION = 3
V2 = 2  # no topic
LEGACY_VERSION = 1
# How long a link lives (mail is read late, and mailbox providers call List-Unsubscribe long
# after delivery); every version 1 token was made with it.
LINK_TTL = timedelta(days=90)
# The byte each channel is written as: a public contract, never renumber.
CHANNEL_CODES: dict[str, int] = {"email": 1, "sms": 2, "push": 3, "line": 4}
_CHANNELS_BY_CODE = {code: name for name, code in CHANNEL_CODES.items()}
_HEADER = struct.Struct(">BBII")  # version, channel, issued_at, expires_at
_LEGACY_HEADER = struct.Struct(">BBI")  # version 1: version, channel, expires_at
_V2_HEADER = _HEADER  # version 2: the same header, no topic after it
_TOPIC = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
_HEADERS = {VERSION: _HEADER, V2: _V2_HEADER, LEGACY_VERSION: _LEGACY_HEADER}
_MAX_TOKEN_CHARS = 512

Reason = Literal["malformed", "forged", "expired"]


class InvalidToken(Exception):
    def __init__(self, reason: Reason) -> None:
        self.reason: Reason = reason
        super().__init__(reason)


class Claims(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    channel: str
    topic: str | None = None
    issued_at: datetime
    expires_at: datetime
    version: int = VERSION


_mac = signing.domain_mac(b"kizuna/unsubscribe\x00")
_page_mac = signing.domain_mac(b"kizuna/preference-page\x00")
# a page's state: topics x channels selectors (at most 20 x 6) and the pause, as JSON
MAX_PAGE_STATE_CHARS = 16 * 1024


def _well_formed(payload: bytes) -> bool:
    """A known version, with more than its header (read before the signature is checked)."""
    header = _HEADERS.get(payload[0])
    return header is not None and len(payload) > header.size


def sign(
    secret: bytes,
    customer_id: str,
    channel: str,
    expires_at: datetime,
    *,
    issued_at: datetime | None = None,
    topic: str | None = None,
) -> str:
    """A token that unsubscribes ``customer_id`` from ``channel`` until ``expires_at``,
    unless their consent for it changes after ``issued_at`` (default: ``expires_at`` less
    :data:`LINK_TTL`, a link's life)."""
    if not secret:
        raise ValueError("an unsubscribe secret is required")
    code = CHANNEL_CODES.get(str(channel))
    if code is None:
        raise ValueError(f"unknown channel {channel!r}")
    if not customer_id:
        raise ValueError("customer_id is required")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    issued = issued_at if issued_at is not None else expires_at - LINK_TTL
    if issued.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    seconds, issued_seconds = int(expires_at.timestamp()), int(issued.timestamp())
    if not 0 < seconds < 2**32:
        raise ValueError("expires_at is out of range")
    if not 0 < issued_seconds <= seconds:
        raise ValueError("issued_at must be before expires_at")
    if topic is not None and not _TOPIC.match(topic):
        raise ValueError(f"not a topic name: {topic!r}")
    named = (topic or "").encode()
    payload = (
        _HEADER.pack(VERSION, code, issued_seconds, seconds)
        + bytes([len(named)])
        + named
        + customer_id.encode()
    )
    return signing.encode(payload, secret, _mac)


def verify(secret: bytes | Sequence[bytes], token: str, now: datetime) -> Claims:
    """The claims of a genuine, unexpired token; :class:`InvalidToken` otherwise, with
    ``reason`` ``malformed`` (not a token), ``forged`` (wrong signature) or ``expired``."""
    secrets = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("an unsubscribe secret is required")
    try:
        payload = signing.decode(
            token, secrets, _mac, max_chars=_MAX_TOKEN_CHARS, well_formed=_well_formed
        )
    except signing.SignedTokenError as err:
        raise InvalidToken(err.reason) from None
    header = _HEADERS[payload[0]]

    if header is _LEGACY_HEADER:
        _, code, seconds = _LEGACY_HEADER.unpack_from(payload)
        issued_seconds = seconds - int(LINK_TTL.total_seconds())
    else:
        _, code, issued_seconds, seconds = _HEADER.unpack_from(payload)
    channel = _CHANNELS_BY_CODE.get(code)
    rest, topic = payload[header.size :], None
    if payload[0] == VERSION:
        size = rest[0] if rest else 0
        try:
            topic = rest[1 : 1 + size].decode("ascii") if size else None
        except UnicodeDecodeError:
            raise InvalidToken("malformed") from None
        if topic is not None and not _TOPIC.match(topic):
            raise InvalidToken("malformed")
        rest = rest[1 + size :]
    try:
        customer_id = rest.decode()
    except UnicodeDecodeError:
        raise InvalidToken("malformed") from None
    if channel is None or not customer_id:
        raise InvalidToken("malformed")
    expires_at = datetime.fromtimestamp(seconds, UTC)
    if now >= expires_at:
        raise InvalidToken("expired")
    return Claims(
        customer_id=customer_id,
        channel=channel,
        topic=topic,
        issued_at=datetime.fromtimestamp(issued_seconds, UTC),
        expires_at=expires_at,
        version=payload[0],
    )


def _bound_to(token: str) -> signing.Mac:
    """The tag of a page state shown with ``token`` (a token never holds a NUL byte)."""
    bound = token.encode() + b"\x00"
    return lambda key, payload: _page_mac(key, bound + payload)


def sign_page_state(secret: bytes, token: str, state: bytes) -> str:
    """``state`` (what a preference page shows) signed for the form that carries ``token``:
    it verifies with that token only."""
    if not secret:
        raise ValueError("an unsubscribe secret is required")
    return signing.encode(state, secret, _bound_to(token))


def verify_page_state(secret: bytes | Sequence[bytes], token: str, signed: str) -> bytes:
    """The state a page showed with ``token``; :class:`InvalidToken` (``malformed`` or
    ``forged``) unless ``signed`` is :func:`sign_page_state`'s for that very token."""
    secrets = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("an unsubscribe secret is required")
    try:
        return signing.decode(signed, secrets, _bound_to(token), max_chars=MAX_PAGE_STATE_CHARS)
    except signing.SignedTokenError as err:
        raise InvalidToken(err.reason) from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UnsubscribeLinks:
    """Builds one-click unsubscribe URLs: ``<base_url>?t=<token>``.

    ``base_url`` is the unsubscribe function's URL (a Lambda function URL or a custom
    domain in front of it). Links live ``ttl`` (default :data:`LINK_TTL`: mail is read
    late, and mailbox providers call List-Unsubscribe long after delivery) and carry the
    instant they were made.
    """

    def __init__(
        self,
        base_url: str,
        secret: bytes,
        *,
        ttl: timedelta = LINK_TTL,
        now: Callable[[], datetime] = _utcnow,
        param: str = "t",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("the unsubscribe base URL must be an absolute https URL")
        if not secret:
            raise ValueError("an unsubscribe secret is required")
        self._parts = parts
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._secret = secret
        self._ttl = ttl
        self._now = now
        self._param = param

    def is_own(self, url: str) -> bool:
        """A link to the unsubscribe function itself (an unsubscribe or a tracked link): the
        footer of a message, not one of its links."""
        return on_origin(url, self._origin)

    def token(self, customer_id: str, channel: str, *, topic: str | None = None) -> str:
        now = self._now()
        return sign(self._secret, customer_id, channel, now + self._ttl, issued_at=now, topic=topic)

    def url(self, customer_id: str, channel: str, *, topic: str | None = None) -> str:
        query = urlencode({self._param: self.token(customer_id, channel, topic=topic)})
        if self._parts.query:
            query = f"{self._parts.query}&{query}"
        return urlunsplit(self._parts._replace(query=query, fragment=""))
