"""The cards the shop's site or app shows (``GET /cards``, ``POST /cards/{id}/seen`` and
``/clicked``: :mod:`kizuna.api.routes.cards`), for the customer a card token names.

Every answer is about the token's customer only: a card id is looked up in that customer's
partition, so another customer's id is "not found", never theirs. A mark stamps the card's
ledger entry (``open_at`` / ``click_at``, the earliest wins: reports count them) and the card
row (``seen_at`` / ``clicked_at``, what ``GET /cards`` shows).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from kizuna.delivery.cards import CARD_ID, MARK_FIELDS, CardTokens, Mark
from kizuna.domain.timestamps import iso, parse_time
from kizuna.runtime.observability import logger


class CardRows(Protocol):
    """:class:`kizuna.adapters.dynamodb.DynamoStore`, as the cards routes use it."""

    def cards_of(self, customer_id: str) -> list[dict[str, Any]]: ...

    def stamp_card(self, customer_id: str, sk: str, field: str, value: str) -> bool: ...

    def stamp_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        field: str,
        value: str,
        message_id: str | None = None,
        channel: str | None = None,
    ) -> bool: ...


class CardView(BaseModel):
    """A card as the shop's site gets it."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    body: str
    image_url: str | None = None
    link_url: str | None = None
    created_at: str
    expires_at: str
    seen_at: str | None = None
    clicked_at: str | None = None


class CardNotFound(Exception):
    pass


class CardService:
    def __init__(self, store: CardRows, tokens: CardTokens, now: Callable[[], datetime]) -> None:
        self.store = store
        self.tokens = tokens
        self.now = now

    def customer_of(self, token: str) -> str:
        """The token's customer (raises :class:`kizuna.delivery.cards.InvalidCardToken`)."""
        return self.tokens.verify(token)

    def _live(self, customer_id: str) -> list[dict[str, Any]]:
        now = self.now()
        return [
            row
            for row in self.store.cards_of(customer_id)
            if parse_time(str(row["valid_until"])) > now  # TTL deletes lazily
        ]

    def cards(self, customer_id: str) -> list[CardView]:
        """The customer's unexpired cards, newest first."""
        rows = sorted(self._live(customer_id), key=lambda r: str(r["sk"]), reverse=True)
        return [
            CardView(
                id=str(r["card_id"]),
                title=str(r["title"]),
                body=str(r["body"]),
                image_url=r.get("image_url"),
                link_url=r.get("link_url"),
                created_at=str(r["created_at"]),
                expires_at=str(r["valid_until"]),
                seen_at=r.get("seen_at"),
                clicked_at=r.get("clicked_at"),
            )
            for r in rows
        ]

    def mark(self, customer_id: str, card: str, mark: Mark) -> bool:
        """Stamp ``mark`` on the customer's unexpired card ``card``: True if this was the
        first such mark. :class:`CardNotFound` if the customer has no such card (malformed
        id, another customer's, expired)."""
        if not CARD_ID.match(card):
            raise CardNotFound(card)
        row = next((r for r in self._live(customer_id) if r.get("card_id") == card), None)
        if row is None:
            raise CardNotFound(card)
        at = iso(self.now())
        first = self.store.stamp_message(
            customer_id,
            str(row["execution"]),
            str(row["step"]),
            MARK_FIELDS[mark],
            at,
            channel="card",
        )
        self.store.stamp_card(customer_id, str(row["sk"]), f"{mark}_at", at)
        logger.info("card marked", mark=mark, program=row.get("program"), first=first)
        return first
