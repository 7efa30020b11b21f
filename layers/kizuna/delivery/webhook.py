"""The webhook channel: a rendered JSON body POSTed to one of the shop's HTTPS endpoints
(``webhooks`` in the configuration), signed, idempotent, retried (docs/channels/WEBHOOK.md).

Each request carries:

- ``Content-Type: application/json``;
- ``X-Kizuna-Signature: t=<unix seconds>,v1=<hex>,v2=<hex>``: HMAC-SHA256s under the
  endpoint's key; ``v2`` of ``f"{t}.{idempotency_key}.".encode() + body``, ``v1`` (kept for
  receivers written to the first recipe) of ``f"{t}.".encode() + body``. The receiver
  recomputes ``v2``, compares in constant time, and rejects a ``t`` too far from its clock (a
  replayed request is refused) and, because ``v2`` covers the ``Idempotency-Key``, a captured
  request replayed under a fresh key too;
- ``Idempotency-Key``: fixed by the ledger entry (``MSG#<execution>#<step>``) and the
  customer, so a retry after a timeout, or a re-invoked send, carries the same key and the
  receiver can drop the repeat;
- ``X-Kizuna-Program``, ``X-Kizuna-Step``: which step sent it (no personal data).

Retries: a 5xx, a 429 (after its ``Retry-After``, capped) and a timeout or a network failure
are tried again up to the endpoint's ``max_attempts`` with exponential backoff and jitter; any
other status is a permanent failure with the status in the reason. Bodies are never logged
and never put in a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kizuna.delivery.channels import (
    DeliveryError,
    HttpClient,
    HttpResponse,
    OutboundMessage,
    OutOfTime,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
    Throttled,
    UrllibHttp,
    retry_after_seconds,
)
from kizuna.delivery.content import WebhookContent
from kizuna.runtime.config import WebhookEndpoint

SIGNATURE_HEADER = "X-Kizuna-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_NAMESPACE = uuid.UUID("0d7f6b1e-2c44-5a0e-8f4b-6b697a756e77")
MAX_RETRY_AFTER = 30.0  # seconds one Retry-After may hold a send (the Lambda's time is finite)
# Seconds one message may spend on its attempts and waits: the send function stops at 120 s
# (infra SEND_TIMEOUT), and what is left after this budget records the outcome. A retry that
# could not finish inside it is not started: the message fails as "out of time".
SEND_BUDGET = 45.0

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "RetriesExhausted",
    "WebhookPost",
    "idempotency_key",
    "sign",
    "webhook_key_from",
]


class RetriesExhausted(TemporaryFailure):
    """The endpoint's attempts are spent: recorded as failed, not retried again by the
    caller (:func:`~kizuna.delivery.channels.send_with_retry`), which would multiply them."""

    retryable = False


def idempotency_key(execution: str, step: str, customer_id: str) -> str:
    """The ``Idempotency-Key`` of a message: a UUID fixed by its ledger entry
    (``MSG#<execution>#<step>``) and its customer (a cohort execution or a campaign
    occurrence sends one step to many customers)."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"MSG#{execution}#{step}\x00{customer_id}"))


def sign(key: bytes, timestamp: int, body: bytes, idempotency: str) -> str:
    """The ``X-Kizuna-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds) with
    the ``Idempotency-Key`` ``idempotency``: ``v2`` covers all three, ``v1`` (the first
    scheme, kept so receivers verifying it go on working) the timestamp and body only."""
    v1 = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    signed = f"{timestamp}.{idempotency}.".encode() + body
    v2 = hmac.new(key, signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={v1},v2={v2}"


class WebhookPost:
    """Delivers webhook messages; ``message.address`` names the endpoint.

    ``key_for(name)``: the endpoint's HMAC key (read from Secrets Manager and cached by
    :func:`webhook_key_from`); never logged or put in an error."""

    def __init__(
        self,
        endpoints: Mapping[str, WebhookEndpoint],
        key_for: Callable[[WebhookEndpoint], bytes],
        http: HttpClient | None = None,
        *,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        budget: float = SEND_BUDGET,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._key_for = key_for
        self._http: HttpClient = http if http is not None else UrllibHttp()
        self._now = now
        self._sleep = sleep
        self._monotonic = monotonic
        self._budget = budget
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._jitter = jitter

    def send(self, message: OutboundMessage) -> SendResult:
        return self._post(message, self._budget)

    def send_before(self, message: OutboundMessage, deadline: float) -> SendResult:
        """:meth:`send` with its attempts and waits ending by ``deadline`` (a ``monotonic``
        instant: the invocation's delivery budget) if that comes before its own budget."""
        return self._post(message, min(self._budget, deadline - self._monotonic()))

    def _post(self, message: OutboundMessage, budget: float) -> SendResult:
        content = message.content
        if not isinstance(content, WebhookContent) or not isinstance(message.address, str):
            raise PermanentFailure("WebhookPost sends a webhook body to one endpoint")
        name = message.address
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise PermanentFailure(f"webhook {name}: endpoint not configured")
        body = content.body.encode()
        key = idempotency_key(message.execution, message.step, message.customer_id)
        try:
            secret = self._key_for(endpoint)
        except Exception as err:  # Secrets Manager throttled or down: this message, not sent
            raise TemporaryFailure(
                f"webhook {name}: signing key not read ({type(err).__name__})"
            ) from err
        error: DeliveryError = TemporaryFailure(f"webhook {name}: not sent")
        if budget < endpoint.timeout_seconds:
            # a request that may not be answered in time is not started: it would be left
            # outcome_unknown by the function's timeout
            raise OutOfTime(f"webhook {name}: not attempted: out of time")
        started = self._monotonic()
        for attempt in range(1, endpoint.max_attempts + 1):
            timestamp = int(self._now())  # signed per attempt: a late retry is not stale
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Kizuna-Webhook/1",
                SIGNATURE_HEADER: sign(secret, timestamp, body, key),
                IDEMPOTENCY_HEADER: key,
                "X-Kizuna-Program": message.program,
                "X-Kizuna-Step": message.step,
            }
            try:
                response = self._http.post(endpoint.url, headers, body, endpoint.timeout_seconds)
            except (OSError, TimeoutError) as err:
                # no answer: maybe taken, and safe to send again (the receiver dedupes by key)
                error = TemporaryFailure(f"webhook {name}: no answer ({type(err).__name__})")
            else:
                result = _outcome(name, response, key)
                if isinstance(result, SendResult):
                    if attempt == 1:
                        return result
                    return result.model_copy(update={"attempts": attempt})
                error = result
            if not error.retryable:
                raise error
            if attempt < endpoint.max_attempts:
                delay = self._delay(attempt, error)
                spent = self._monotonic() - started
                if spent + delay + endpoint.timeout_seconds > budget:
                    raise RetriesExhausted(
                        f"{error.reason}; out of time after {attempt} attempts",
                        maybe_sent=error.maybe_sent,
                    )
                self._sleep(delay)
        raise RetriesExhausted(
            f"{error.reason} after {endpoint.max_attempts} attempts", maybe_sent=error.maybe_sent
        )

    def _delay(self, attempt: int, error: DeliveryError) -> float:
        delay: float = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        delay *= 0.5 + 0.5 * self._jitter()
        if isinstance(error, Throttled) and error.retry_after:
            delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
        return delay


def _outcome(name: str, response: HttpResponse, key: str) -> SendResult | DeliveryError:
    """A 2xx is delivered (the provider id: the receiver's ``X-Request-Id`` or the
    idempotency key); 429 throttled; 5xx temporary; anything else permanent."""
    status = response.status
    headers = {k.lower(): v for k, v in response.headers.items()}
    if 200 <= status < 300:
        return SendResult(provider_message_id=headers.get("x-request-id", "")[:128] or key)
    if status == 429:
        return Throttled(
            f"webhook {name}: HTTP 429", retry_after=retry_after_seconds(headers.get("retry-after"))
        )
    if status >= 500:
        return TemporaryFailure(f"webhook {name}: HTTP {status}")
    return PermanentFailure(f"webhook {name}: HTTP {status}")


def webhook_key_from(*, max_age: int = 300) -> Callable[[WebhookEndpoint], bytes]:
    """Reads an endpoint's HMAC key from Secrets Manager (its ``secret``, a name or ARN)
    through Powertools parameters, cached for ``max_age`` seconds. A JSON secret
    ``{"key": "..."}`` gives its ``key``; any other secret string is the key itself."""

    def key_for(endpoint: WebhookEndpoint) -> bytes:
        from aws_lambda_powertools.utilities import parameters

        value: Any = parameters.get_secret(endpoint.secret, max_age=max_age)
        if isinstance(value, bytes):
            value = value.decode()
        text = str(value).strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["key"]).strip()
            except (ValueError, KeyError, TypeError):
                raise PermanentFailure("webhook key secret: a JSON secret needs 'key'") from None
        if len(text) < 16:
            raise PermanentFailure("webhook key secret: at least 16 characters")
        return text.encode()

    return key_for
