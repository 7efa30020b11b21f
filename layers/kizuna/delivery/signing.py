"""The envelope of Kizuna's signed URL-safe tokens (unsubscribe links, tracked links, card
tokens): base64url without padding of ``payload | tag``, ``tag = mac(key, payload)``.

Each kind of token keeps its own payload layout, version byte, MAC domain string and expiry
(:mod:`kizuna.delivery.unsubscribe`, :mod:`kizuna.delivery.links`,
:mod:`kizuna.delivery.cards`); this module writes the envelope and opens it:

* only a string of URL-safe base64 characters, of a bounded length, in the canonical
  spelling of its bytes is read (no two strings verify as the same token, and any change to
  a single character is refused): otherwise ``malformed``;
* the tag is compared, in constant time, with the tag of every key given (current first, so
  a secret can be rotated without breaking tokens in flight), with no early exit on the
  first match: when none matches, ``forged``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Literal

TAG_BYTES = 16  # 128 bits: far beyond guessing
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+\Z")

Mac = Callable[[bytes, bytes], bytes]
"""``mac(key, payload)``: a token's tag."""

Reason = Literal["malformed", "forged"]


class SignedTokenError(Exception):
    """A token that is not one (``malformed``) or not signed with any of the keys
    (``forged``). Each kind of token raises its own exception with the same reason."""

    def __init__(self, reason: Reason) -> None:
        self.reason: Reason = reason
        super().__init__(reason)


def domain_mac(domain: bytes, tag_bytes: int = TAG_BYTES) -> Mac:
    """HMAC-SHA256 over ``domain | payload``, cut to ``tag_bytes``: the domain string
    separates the kinds of token made with one key (one never verifies as another)."""

    def mac(key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, domain + payload, hashlib.sha256).digest()[:tag_bytes]

    return mac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(payload: bytes, key: bytes, mac: Mac) -> str:
    """The token of ``payload`` signed with ``key``."""
    return _b64(payload + mac(key, payload))


def _accept_any(payload: bytes) -> bool:
    return True


def decode(
    token: object,
    keys: Sequence[bytes] | Callable[[], Sequence[bytes]],
    mac: Mac,
    *,
    max_chars: int,
    well_formed: Callable[[bytes], bool] = _accept_any,
    tag_bytes: int = TAG_BYTES,
) -> bytes:
    """The payload of a genuine ``token``; :class:`SignedTokenError` otherwise.

    ``malformed``: not a string of 1 to ``max_chars`` URL-safe base64 characters, not the
    canonical spelling of its bytes, no payload before the tag, or a payload
    ``well_formed`` refuses (checked before the tag: a token that could never be genuine is
    malformed, not forged). ``forged``: the tag is no key's. ``keys`` may be what reads
    them: it is called only for a token that is well formed."""
    if not isinstance(token, str) or not 0 < len(token) <= max_chars:
        raise SignedTokenError("malformed")
    if not _TOKEN_CHARS.match(token):
        raise SignedTokenError("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise SignedTokenError("malformed") from None
    if _b64(raw) != token:
        raise SignedTokenError("malformed")  # a non-canonical spelling of some bytes
    payload, tag = raw[:-tag_bytes], raw[-tag_bytes:]
    if len(raw) <= tag_bytes or not well_formed(payload):
        raise SignedTokenError("malformed")
    found = list(keys() if callable(keys) else keys)
    if not found:
        raise ValueError("at least one key")
    genuine = False
    for key in found:  # compare against every key: no early exit on the first match
        genuine |= hmac.compare_digest(mac(bytes(key), payload), tag)
    if not genuine:
        raise SignedTokenError("forged")
    return payload
