"""The LINE webhook (a public Lambda function URL LINE posts to).

- The ``X-Line-Signature`` header must be the base64 HMAC-SHA256 of the raw body under the
  channel secret (compared in constant time); a missing or bad signature is answered 401
  and nothing changes. (https://developers.line.biz/en/reference/messaging-api/#signature-validation)
- ``follow`` opts the customers holding that LINE user id in to LINE, ``unfollow`` (a
  block) opts them out (every holder: one person's shop accounts linked to one LINE account
  are all unreachable on it once they block it): ``consent.changed`` with source
  ``line_webhook``, ``occurred_at`` the webhook event's own timestamp (so a late
  redelivery never beats a newer change in ingest; a timestamp that is not a whole number
  of milliseconds between 2001 and 3000 is not LINE's: the event is ignored). The contact
  policy then sees LINE opted out and sends nothing on it.
- ``accountLink`` with result ``ok`` and a nonce this shop issued (:func:`link_nonce`,
  signed, naming the customer, :data:`NONCE_VALID` old at most) becomes ``line.linked``:
  ingest sets the customer's ``line_user_id``. A nonce links once: it is claimed as a
  webhook event is (under its own key), so the same nonce in another ``accountLink``, from
  any LINE user, links nothing.
- A LINE user no customer holds changes nothing. Each ``webhookEventId`` is claimed once
  (redeliveries, ``deliveryContext.isRedelivery``, carry the same id): the second delivery
  changes nothing. A put that fails releases its claim, and the answer is 500 so LINE
  redelivers (when redelivery is on).

The customer item is only read here; changes go through ingest as events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kizuna.domain.customer import Customer, unreadable_of
from kizuna.domain.loyalty import address_hash
from kizuna.events import Channel, ConsentChanged, ConsentStatus, LineLinked
from kizuna.ports import Inbound
from kizuna.runtime.clock import Clock
from kizuna.runtime.observability import logger

SOURCE = "line_webhook"
CLAIM_DAYS = 7  # LINE redelivers for up to a day; keep the claim longer
NONCE_VALID = timedelta(minutes=10)  # as LINE's link token, which the nonce goes with
NONCE_CLAIM = "nonce:"  # the claim key prefix of a used nonce (webhook event ids: no ":")
_LINE_USER = "U"


class LineWebhookStore(Protocol):
    def customers_by_line_user(self, line_user_hash: str) -> list[str]: ...

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def claim_webhook_event(self, event_id: str, expires_at: datetime) -> bool: ...

    def release_webhook_event(self, event_id: str) -> None: ...


# --- signatures and nonces ------------------------------------------------------------------
def line_signature(channel_secret: str, body: bytes) -> str:
    """What LINE puts in ``X-Line-Signature``."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(channel_secret: str, body: bytes, signature: Any) -> bool:
    """Whether ``signature`` (the header, as sent: anything) is LINE's for ``body``, compared
    as bytes in constant time (a header with non-ASCII characters is simply wrong)."""
    if not signature or not isinstance(signature, str) or not channel_secret:
        return False
    expected = line_signature(channel_secret, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", errors="replace"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_nonce(key: bytes, customer_id: str, now: datetime) -> str:
    """The ``nonce`` of LINE's account-link redirect for ``customer_id``: random, signed,
    naming the customer and when it was issued (no storage needed)."""
    claims = _b64(
        json.dumps(
            {"c": customer_id, "t": int(now.timestamp()), "r": secrets.token_hex(8)},
            separators=(",", ":"),
        ).encode()
    )
    mac = _b64(hmac.new(key, claims.encode(), hashlib.sha256).digest()[:16])
    return f"{claims}.{mac}"


def nonce_customer(keys: Sequence[bytes], nonce: str, at: datetime) -> str | None:
    """The customer a nonce was issued for, None when forged, malformed or too old at
    ``at``."""
    try:
        claims, mac = nonce.split(".")
        if not any(
            hmac.compare_digest(
                _b64(hmac.new(k, claims.encode(), hashlib.sha256).digest()[:16]), mac
            )
            for k in keys
        ):
            return None
        data = json.loads(_unb64(claims))
        issued = datetime.fromtimestamp(int(data["t"]), UTC)
        customer_id = str(data["c"])
    except (ValueError, KeyError, TypeError):
        return None
    if not issued - timedelta(minutes=5) <= at <= issued + NONCE_VALID:
        return None
    return customer_id


def nonce_claim(nonce: str) -> str:
    """The claim key of an account-link nonce (a hash: fixed length, nothing to read)."""
    return NONCE_CLAIM + hashlib.sha256(nonce.encode()).hexdigest()[:32]


# --- the service ---------------------------------------------------------------------------
def _answer(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }


class BadBody(ValueError):
    """A request body that cannot be read (not base64 when it says it is, not text)."""


def raw_body(event: dict[str, Any]) -> bytes:
    """The bytes LINE signed; :class:`BadBody` when the request's body cannot be read."""
    body = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            return base64.b64decode(body, validate=True)
        return body.encode() if isinstance(body, str) else bytes(body)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        raise BadBody("unreadable body") from None


class LineWebhookService:
    def __init__(
        self,
        channel_secret: Callable[[], str],
        nonce_keys: Sequence[bytes],
        inbound: Inbound,
        store: LineWebhookStore,
        clock: Clock,
    ) -> None:
        self.channel_secret = channel_secret
        self.nonce_keys = list(nonce_keys)
        self.inbound = inbound
        self.store = store
        self.clock = clock

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        method = (event.get("requestContext", {}).get("http", {}).get("method") or "").upper()
        if method != "POST":
            return _answer(405, "POST only")
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            body = raw_body(event)
        except BadBody:
            logger.warning("line webhook refused", reason="body")
            return _answer(400, "unreadable body")
        if not signature_ok(self.channel_secret(), body, headers.get("x-line-signature")):
            logger.warning("line webhook refused", reason="signature")
            return _answer(401, "bad signature")
        try:
            payload = json.loads(body)
            events = payload["events"]
            if not isinstance(events, list):
                raise TypeError("events")
        except (ValueError, KeyError, TypeError):
            return _answer(400, "not a LINE webhook body")
        counts = {"applied": 0, "ignored": 0, "repeated": 0}
        for item in events:
            outcome = self.apply(item)
            counts[outcome] += 1
        logger.info(
            "line webhook",
            applied=counts["applied"],
            ignored=counts["ignored"],
            repeated=counts["repeated"],
        )
        return _answer(200, "ok")

    def apply(self, item: Any) -> str:
        """One webhook event: ``applied``, ``repeated`` (its id was claimed before) or
        ``ignored`` (a type Kizuna does not act on, an unknown user, a bad nonce)."""
        if not isinstance(item, dict):
            return "ignored"
        details = self.details(item)
        if not details:
            return "ignored"
        event_id = str(item.get("webhookEventId") or "")
        if not event_id:
            return "ignored"
        expires = self.clock.now() + timedelta(days=CLAIM_DAYS)
        if not self.store.claim_webhook_event(event_id, expires):
            return "repeated"
        claims = [event_id]
        if any(isinstance(d, LineLinked) for d in details):
            nonce = nonce_claim(str(item["link"]["nonce"]))
            if not self.store.claim_webhook_event(nonce, expires):
                logger.warning("line account link refused", reason="nonce_used")
                return "ignored"  # this event is done: a redelivery is "repeated"
            claims.append(nonce)
        try:
            for detail in details:  # a redelivery after a partial failure puts all again:
                self.inbound.put_inbound(detail)  # ingest keeps the same change once
        except Exception:
            for claim in claims:
                self.store.release_webhook_event(claim)
            raise
        return "applied"

    def details(self, item: dict[str, Any]) -> list[ConsentChanged | LineLinked]:
        """What one webhook event changes: none, a link, or the LINE consent of every
        customer holding the LINE user (a person with two shop accounts linked to one LINE
        account blocks both at once: no customer of theirs can be reached on it)."""
        kind = item.get("type")
        source = item.get("source") or {}
        user = source.get("userId") if isinstance(source, dict) else None
        if kind not in ("follow", "unfollow", "accountLink") or not isinstance(user, str):
            return []
        if not user.startswith(_LINE_USER):
            return []
        at = event_time(item.get("timestamp"))
        if at is None:
            logger.warning("line webhook event ignored", reason="timestamp", type=kind)
            return []
        if kind == "accountLink":
            link = item.get("link") or {}
            if not isinstance(link, dict) or link.get("result") != "ok":
                return []
            customer_id = nonce_customer(self.nonce_keys, str(link.get("nonce") or ""), at)
            if customer_id is None:
                logger.warning("line account link refused", reason="nonce")
                return []
            found = self.store.get_customers([customer_id], unreadable_ok=True)
            if not found and customer_id not in unreadable_of(found):
                return []  # a nonce never creates a customer (an unreadable one: ingest
                # holds the link, retried then dead-lettered, until the item is fixed)
            try:
                return [LineLinked(customer_id=customer_id, occurred_at=at, line_user_id=user)]
            except ValueError:
                return []
        status = ConsentStatus.OPTED_IN if kind == "follow" else ConsentStatus.OPTED_OUT
        return [
            ConsentChanged(
                customer_id=customer_id,
                occurred_at=at,
                channel=Channel.LINE,
                status=status,
                source=SOURCE,
            )
            for customer_id in self.holders_of(user)
        ]

    def holders_of(self, line_user_id: str) -> list[str]:
        """The customers holding ``line_user_id`` now, in id order (read consistently: the
        index is eventually consistent, the item is the truth)."""
        found = self.store.customers_by_line_user(address_hash(line_user_id))
        customers = self.store.get_customers(found, unreadable_ok=True)
        holders = {c.customer_id for c in customers.values() if c.line_user_id == line_user_id}
        # one whose item this version cannot read, as the index names them: their change
        # goes to ingest, which holds it (retried, then dead-lettered) until the item is
        # fixed; the other holders' and the body's other events are applied
        return sorted(holders | unreadable_of(customers))


# LINE's webhook timestamps are milliseconds since the epoch; one outside these bounds is
# not LINE's (ingest's event-time bounds then decide whether the instant is acceptable)
_MIN_STAMP_MS = 1_000_000_000_000  # 2001-09-09
_MAX_STAMP_MS = 32_503_680_000_000  # 3000-01-01


def event_time(stamp: Any) -> datetime | None:
    """A webhook event's ``timestamp`` as an instant; None unless it is an integer number of
    milliseconds within sane bounds (a bool is not a number here)."""
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        return None
    if not _MIN_STAMP_MS <= stamp < _MAX_STAMP_MS:
        return None
    return datetime.fromtimestamp(stamp / 1000, UTC)


__all__ = [
    "LineWebhookService",
    "LineWebhookStore",
    "line_signature",
    "link_nonce",
    "nonce_claim",
    "nonce_customer",
    "signature_ok",
]
