"""Tracked link clicks (``GET /l/<token>`` on the signed-link function URL).

- A genuine, unexpired token stamps ``click_at`` on the message's ledger entry
  (``MSG#<execution>#<step>``) through the same store method as the email feedback path
  (:meth:`kizuna.services.feedback.FeedbackStore.stamp_message`): the earliest stamp wins,
  so a repeated click changes nothing. Only an entry sent on LINE is stamped. The answer is a
  302 to the token's target, stamped or not (the customer came for the page).
- A forged, tampered, expired or malformed token records nothing and redirects nowhere: a
  400 page (no open redirect). Only http(s) targets exist in a genuine token.
- So does a genuine token whose target's host the configuration does not declare
  (``tracked_links.hosts``): one signed before hosts were declared, or for a host since
  removed, leads nowhere.
- Only ``GET`` (stamps) and ``HEAD`` (redirects, stamps nothing) are served; the log keeps
  the outcome, never the customer or the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kizuna.delivery.links import PATH_PREFIX, InvalidLink, declared_target, verify
from kizuna.domain.timestamps import iso
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import TrackedLinksConfig
from kizuna.runtime.headers import NO_FRAMING
from kizuna.runtime.observability import logger

TRACKED_CHANNEL = "line"
INVALID_LINK_PAGE = (
    '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" '
    'content="width=device-width"><title>リンクが正しくありません / Invalid link</title></head>'
    '<body style="font-family:sans-serif;max-width:480px;margin:48px auto;">'
    "<h1>リンクが正しくありません / Invalid link</h1>"
    "<p>このリンクは正しくないか、有効期限が切れています。<br>"
    "This link is not valid or has expired.</p></body></html>"
)


class ClickStore(Protocol):
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


def is_link_path(path: str | None) -> bool:
    """Whether a function URL request's path is a tracked link's (``/l/<token>``)."""
    return bool(path) and str(path).startswith(PATH_PREFIX)


def _refused(status: int = 400) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            **NO_FRAMING,
        },
        "body": INVALID_LINK_PAGE,
    }


class LinkClickService:
    def __init__(
        self,
        secrets: Sequence[bytes],
        store: ClickStore,
        clock: Clock,
        hosts: TrackedLinksConfig,
    ) -> None:
        self.secrets = list(secrets)
        self.store = store
        self.clock = clock
        self.hosts = hosts

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        http = event.get("requestContext", {}).get("http", {})
        method = str(http.get("method") or "GET").upper()
        path = str(event.get("rawPath") or http.get("path") or "")
        if method not in ("GET", "HEAD"):
            logger.warning("link click refused", reason="method")
            return _refused(405)
        token = path[len(PATH_PREFIX) :] if is_link_path(path) else ""
        now = self.clock.now()
        try:
            claims = verify(self.secrets, token, now)
        except InvalidLink as exc:
            logger.warning("link click refused", reason=exc.reason)
            return _refused()
        if not declared_target(claims.target, self.hosts):
            logger.warning("link click refused", reason="undeclared_host")
            return _refused()
        stamped = method == "GET" and self.store.stamp_message(
            claims.customer_id,
            claims.execution,
            claims.step,
            "click_at",
            iso(now),
            channel=TRACKED_CHANNEL,
        )
        logger.info("link clicked", first=stamped, step=claims.step)
        return {
            "statusCode": 302,
            "headers": {"Location": claims.target, "Cache-Control": "no-store"},
            "body": "",
        }
