"""One-click unsubscribe (RFC 8058) behind a Lambda function URL.

- ``POST`` with a valid token (what a mail client's one-click sends, and what the
  confirmation page's button sends) opts the customer out of that channel at once: a
  ``consent.changed`` event goes on the bus and ingest applies it.
- ``GET`` never changes anything (mail scanners follow links): it shows a page with the
  button.
- A forged, expired or malformed token changes nothing and the page says why.
- A token never outlives a later consent change: if the customer's consent for the channel
  changed after the token was issued (they opted back in, say), the old link changes nothing
  and the page asks for a recent message's link. A change stamped within the token's second
  counts as before it (the unsubscribe wins a tie). Consent times are the producers'
  ``occurred_at``: a producer clock running ahead can make a fresh link look old.
- A token never creates a customer: for an id Kizuna does not hold (erased, say) nothing is
  put on the bus. An already opted-out customer is told so, and nothing is put either.

The customer is read once (a strongly consistent GetItem) and the decision is taken on it;
consent still changes only through ingest (a ``consent.changed`` event). A consent change
in flight while the link is clicked is not seen: the later of the two (by ``occurred_at``)
wins in ingest.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from kizuna.delivery.unsubscribe import Claims, InvalidToken, verify
from kizuna.domain.customer import Customer
from kizuna.events import ConsentChanged, ConsentChannel, ConsentStatus
from kizuna.ports import CustomerReader, Inbound
from kizuna.runtime.clock import Clock
from kizuna.runtime.observability import logger

PAGES = {
    "confirm": (
        "配信停止の確認 / Unsubscribe",
        "このチャネルでのお知らせの配信を停止しますか？<br>"
        "Stop receiving messages on this channel?",
    ),
    "done": (
        "配信を停止しました / Unsubscribed",
        "配信を停止しました。ご利用ありがとうございました。<br>"
        "You are unsubscribed. You will not receive these messages any more.",
    ),
    "malformed": (
        "リンクが正しくありません / Invalid link",
        "このリンクは正しくありません。<br>This link is not valid.",
    ),
    "forged": (
        "リンクが正しくありません / Invalid link",
        "このリンクは正しくありません。<br>This link is not valid.",
    ),
    "expired": (
        "リンクの有効期限が切れています / Link expired",
        "このリンクは有効期限切れです。最新のメールのリンクをお使いください。<br>"
        "This link has expired. Please use the link in a recent message.",
    ),
    "stale": (
        "リンクが古くなっています / Link out of date",
        "配信設定がこのリンクの発行後に変更されています。最新のメールのリンクをお使いください。<br>"
        "Your preferences changed after this link was sent. "
        "Please use the link in a recent message.",
    ),
    "unknown": (
        "登録が見つかりません / Not found",
        "このリンクの登録は見つかりませんでした。配信は行われません。<br>"
        "We hold no subscription for this link. You will not receive messages.",
    ),
}
STATUS = {
    "confirm": 200,
    "done": 200,
    "malformed": 400,
    "forged": 403,
    "unknown": 404,
    "stale": 409,
    "expired": 410,
}
# The token's issue time has whole seconds: a change within that second is not "after" it.
_TOKEN_RESOLUTION = timedelta(seconds=1)


def decide(claims: Claims, customer: Customer | None) -> str:
    """What a valid token may do for the customer as stored: ``unsubscribe``, or the page
    that says why not (``unknown``, ``done`` when already opted out, ``stale``)."""
    if customer is None:
        return "unknown"
    consent = customer.consent.get(claims.channel)
    if consent is not None and consent.status == ConsentStatus.OPTED_OUT:
        return "done"
    if consent is not None and consent.at >= claims.issued_at + _TOKEN_RESOLUTION:
        return "stale"
    return "unsubscribe"


def page(kind: str, token: str | None = None) -> str:
    title, text = PAGES[kind]
    form = ""
    if kind == "confirm" and token:
        form = (
            f'<form method="post"><input type="hidden" name="t" value="{html.escape(token)}">'
            '<button type="submit">配信を停止する / Unsubscribe</button></form>'
        )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width"><title>{title}</title></head>'
        f'<body style="font-family:sans-serif;max-width:480px;margin:48px auto;">'
        f"<h1>{title}</h1><p>{text}</p>{form}</body></html>"
    )


def _response(kind: str, token: str | None = None) -> dict[str, Any]:
    return {
        "statusCode": STATUS[kind],
        "headers": {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        "body": page(kind, token),
    }


class UnsubscribeService:
    def __init__(
        self,
        secrets: Sequence[bytes],
        inbound: Inbound,
        clock: Clock,
        customers: CustomerReader,
    ) -> None:
        self.secrets = list(secrets)
        self.inbound = inbound
        self.clock = clock
        self.customers = customers

    @staticmethod
    def token_of(event: dict[str, Any]) -> str | None:
        query = event.get("queryStringParameters") or {}
        token = query.get("t")
        body = event.get("body") or ""
        if event.get("isBase64Encoded") and body:
            body = base64.b64decode(body).decode(errors="replace")
        form = parse_qs(body)
        return (form.get("t") or [token])[0] if form.get("t") else token

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        method = (event.get("requestContext", {}).get("http", {}).get("method") or "GET").upper()
        token = self.token_of(event)
        now = self.clock.now()
        try:
            claims = verify(self.secrets, token or "", now)
        except InvalidToken as exc:
            logger.warning("unsubscribe refused", reason=exc.reason)
            return _response(exc.reason)
        found = self.customers.get_customers([claims.customer_id]).get(claims.customer_id)
        outcome = decide(claims, found)
        if outcome != "unsubscribe":
            logger.info("unsubscribe not applied", reason=outcome, channel=claims.channel)
            return _response(outcome)
        if method != "POST":
            return _response("confirm", token)
        self.inbound.put_inbound(
            ConsentChanged(
                customer_id=claims.customer_id,
                occurred_at=now,
                channel=ConsentChannel(claims.channel),
                status=ConsentStatus.OPTED_OUT,
                source="unsubscribe_link",
            )
        )
        logger.info("unsubscribed", channel=claims.channel, customer_id=claims.customer_id)
        return _response("done")
