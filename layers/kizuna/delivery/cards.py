"""Web / in-app cards: the ``card`` channel keeps a message for the customer in Kizuna,
and the shop's site or app shows it (``GET /cards``: docs/channels/CARDS.md).

* A sent card is an activity row ``CARD#<created>#<id>`` in the customer's partition,
  removed by the table's TTL when it expires (TTL deletes lazily: reads filter by expiry
  too). The card's record is its ledger entry (``MSG#<execution>#<step>``): the row names
  it, and ``seen`` / ``clicked`` stamp ``open_at`` / ``click_at`` there (earliest wins),
  where reports count them as for every channel.
* The card id is derived from the message (its execution and step): the same message is
  the same card. Sending it once is the ledger claim's business, as for every channel.
* The shop's site calls with a **card token**: an HMAC over the customer id and an expiry
  with a key only Kizuna holds (derived from the signing secret for this one purpose), which
  the shop's backend gets for its signed-in customer from ``POST /machine/cards/tokens``.
  One customer's token never names another's cards.

Token = base64url without padding of::

    version (1 byte, =1) | expires_at (uint32, Unix seconds) | customer_id (UTF-8) |
    HMAC-SHA256(key, "kizuna/cards\\0" | all of the above)[:16]
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

from kizuna.delivery import signing
from kizuna.delivery.channels import OutboundMessage, PermanentFailure, SendResult
from kizuna.delivery.content import CardContent
from kizuna.delivery.ledger import CARD_SK
from kizuna.domain.timestamps import iso

CARD_ID = re.compile(r"^[0-9a-f]{32}\Z")
# Card token bounds: a token lives at most a day (the shop's backend mints a new one per
# session); ids are at most 128 characters, so a token is at most ~200 characters.
TOKEN_MAX_TTL: Final = timedelta(hours=24)
TOKEN_VERSION: Final = 1
_HEADER = struct.Struct(">BI")  # version, expires_at
_MAX_TOKEN_CHARS = 256
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")  # kizuna.events.inbound

Mark = Literal["seen", "clicked"]
# where a mark is stamped: the ledger entry's field (reports count open_at / click_at)
MARK_FIELDS: Final[dict[str, str]] = {"seen": "open_at", "clicked": "click_at"}
# every attribute a mark's UpdateItems name (the keys, the stamps, the ledger entry's
# channel in its condition): the API function's IAM grant allows these only
CARD_STAMPS: Final = ("pk", "sk", "channel", "open_at", "click_at", "seen_at", "clicked_at")


def card_id(execution: str, step: str) -> str:
    """A message's card id: 32 hex digits, the same for the same message, revealing
    nothing of the execution or program."""
    return hashlib.sha256(f"card/{execution}/{step}".encode()).hexdigest()[:32]


def card_sk(created: str, cid: str) -> str:
    return f"{CARD_SK}{created}#{cid}"


# --- tokens ----------------------------------------------------------------------------------
class InvalidCardToken(Exception):
    def __init__(self, reason: Literal["malformed", "forged", "expired"]) -> None:
        self.reason = reason
        super().__init__(reason)


_mac = signing.domain_mac(b"kizuna/cards\x00")


class CardTokens:
    """Mints and verifies card tokens with ``keys`` (current first: a rotated secret's
    previous key still verifies)."""

    def __init__(
        self,
        keys: Sequence[bytes] | Callable[[], Sequence[bytes]],
        now: Callable[[], datetime],
    ) -> None:
        """``keys``: the keys, or what reads them when a token is first minted or checked
        (the API function then reads the secret only when a card route is called, not at
        every cold start)."""
        if not callable(keys) and not keys:
            raise ValueError("at least one key")
        self._keys = keys
        self.now = now

    @property
    def keys(self) -> list[bytes]:
        found = list(self._keys() if callable(self._keys) else self._keys)
        if not found:
            raise ValueError("at least one key")
        return found

    def mint(self, customer_id: str, ttl: timedelta = timedelta(hours=1)) -> tuple[str, datetime]:
        """A token for ``customer_id`` valid ``ttl`` (at most :data:`TOKEN_MAX_TTL`), and its
        expiry."""
        if not _CUSTOMER_ID.match(customer_id):
            raise ValueError("customer_id: not a customer id")
        if not timedelta(seconds=1) <= ttl <= TOKEN_MAX_TTL:
            raise ValueError(f"ttl: between 1 second and {TOKEN_MAX_TTL}")
        expires = int((self.now() + ttl).timestamp())
        payload = _HEADER.pack(TOKEN_VERSION, expires) + customer_id.encode()
        token = signing.encode(payload, self.keys[0], _mac)
        return token, datetime.fromtimestamp(expires, self.now().tzinfo)

    def verify(self, token: str) -> str:
        """The customer id ``token`` was minted for; :class:`InvalidCardToken` if it is
        malformed, not minted with one of the keys, or expired."""
        try:
            payload = signing.decode(
                token,
                lambda: self.keys,
                _mac,
                max_chars=_MAX_TOKEN_CHARS,
                well_formed=lambda body: len(body) > _HEADER.size,
            )
        except signing.SignedTokenError as err:
            raise InvalidCardToken(err.reason) from None
        version, expires = _HEADER.unpack_from(payload)
        try:
            customer_id = payload[_HEADER.size :].decode()
        except UnicodeDecodeError:
            raise InvalidCardToken("malformed") from None
        if version != TOKEN_VERSION or not _CUSTOMER_ID.match(customer_id):
            raise InvalidCardToken("malformed")
        if expires <= self.now().timestamp():
            raise InvalidCardToken("expired")
        return customer_id


# --- the channel -----------------------------------------------------------------------------
class CardStore(Protocol):
    """Where cards are kept (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def put_card(self, customer_id: str, sk: str, card: dict[str, Any], expires_at: int) -> bool:
        """Store a card; False if that row exists already (nothing written)."""
        ...


class CardChannel:
    """The ``card`` channel: "delivering" a card is storing it for the customer."""

    def __init__(self, store: CardStore, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now

    def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, CardContent):
            raise PermanentFailure("not card content")
        created = self.now()
        expires = created + timedelta(hours=content.expires_after_hours)
        cid = card_id(message.execution, message.step)
        card = {
            "card_id": cid,
            "title": content.title,
            "body": content.body,
            "image_url": content.image_url,
            "link_url": content.link_url,
            "created_at": iso(created),
            "valid_until": iso(expires),
            "program": message.program,
            "execution": message.execution,
            "step": message.step,
        }
        self.store.put_card(
            message.customer_id,
            card_sk(iso(created), cid),
            {k: v for k, v in card.items() if v is not None},
            int(expires.timestamp()),
        )
        return SendResult(provider_message_id=cid)


__all__ = [
    "CARD_ID",
    "CARD_SK",
    "CARD_STAMPS",
    "MARK_FIELDS",
    "CardChannel",
    "CardStore",
    "CardTokens",
    "InvalidCardToken",
    "Mark",
    "card_id",
    "card_sk",
]
