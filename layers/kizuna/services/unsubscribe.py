"""One-click unsubscribe (RFC 8058) behind a Lambda function URL.

- ``POST`` with a valid token (what a mail client's one-click sends, and what the
  confirmation page's button sends) opts the customer out of that channel at once: a
  ``consent.changed`` event goes on the bus and ingest applies it.
- ``GET`` never changes anything (mail scanners follow links): it shows a page with the
  button.
- A forged, expired or malformed token changes nothing and the page says why.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from kizuna.delivery.unsubscribe import InvalidToken, verify
from kizuna.events import Channel, ConsentChanged, ConsentStatus
from kizuna.ports import Inbound
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
}
STATUS = {"confirm": 200, "done": 200, "malformed": 400, "forged": 403, "expired": 410}


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
    def __init__(self, secrets: Sequence[bytes], inbound: Inbound, clock: Clock) -> None:
        self.secrets = list(secrets)
        self.inbound = inbound
        self.clock = clock

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
        if method != "POST":
            return _response("confirm", token)
        self.inbound.put_inbound(
            ConsentChanged(
                customer_id=claims.customer_id,
                occurred_at=now,
                channel=Channel(claims.channel),
                status=ConsentStatus.OPTED_OUT,
                source="unsubscribe_link",
            )
        )
        logger.info("unsubscribed", channel=claims.channel, customer_id=claims.customer_id)
        return _response("done")
