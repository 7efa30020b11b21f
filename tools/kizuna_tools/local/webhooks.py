"""The shop's webhook endpoints, received in-process (docs/channels/WEBHOOK.md).

Every endpoint of the configuration the template's functions carry (``KIZUNA_CONFIG``'s
``webhooks``) is answered by a :class:`WebhookReceiver` instead of the network: it reads the
endpoint's key from (moto's) Secrets Manager as the send function does, verifies each
request's signature with the documented recipe (:func:`verify`), de-duplicates on
``Idempotency-Key`` as a receiver should, and records what it accepted
(``cloud.webhooks.accepted``) and every attempt (``cloud.webhooks.attempts``).
``cloud.webhooks.fail_next(name, status=503)`` makes the next request to an endpoint fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from kizuna.runtime.config import WebhookEndpoint, load_config

Response = tuple[int, dict[str, str], bytes]


def verify(secret: bytes, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """True if the request was signed by Kizuna with ``secret`` within ``tolerance`` seconds
    (the recipe of docs/channels/WEBHOOK.md, "Verifying a request", as written there)."""
    try:
        parts = dict(p.split("=", 1) for p in headers["X-Kizuna-Signature"].split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:  # older or newer than 5 minutes: a replay
        return False
    key = headers.get("Idempotency-Key", "")
    signed = f"{timestamp}.{key}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v2", ""))


def endpoints_of(environments: Mapping[str, Mapping[str, str]]) -> dict[str, WebhookEndpoint]:
    """The webhook endpoints of the configuration the functions carry (one configuration for
    the whole app; the first function that has one)."""
    for environment in environments.values():
        if environment.get("KIZUNA_CONFIG"):
            return dict(load_config(environment["KIZUNA_CONFIG"]).webhooks)
    return {}


def _key(value: str) -> bytes:
    """The HMAC key of a secret string, read as the send function reads it."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    return (parsed["key"] if isinstance(parsed, dict) else value).encode()


def _where(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or 443, parts.path or "/"


class WebhookReceiver:
    """The shop's endpoints, answering in-process (see the module's docstring)."""

    def __init__(
        self, endpoints: Mapping[str, WebhookEndpoint], secret_value: Callable[[str], str]
    ) -> None:
        self.endpoints = dict(endpoints)
        self._secret_value = secret_value
        self._by_place = {_where(e.url): name for name, e in self.endpoints.items()}
        self._lock = threading.Lock()
        self._failures: dict[str, list[int]] = {}
        self._seen: set[str] = set()
        self.accepted: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []

    def handles(self, host: str) -> bool:
        return any(place[0] == host.lower() for place in self._by_place)

    def fail_next(self, name: str, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests to endpoint ``name`` with ``status``."""
        if name not in self.endpoints:
            raise ValueError(f"no webhook endpoint {name!r}; one of {sorted(self.endpoints)}")
        with self._lock:
            self._failures.setdefault(name, []).extend([status] * times)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        name = self._by_place.get(_where(url))
        json_headers = {"Content-Type": "application/json"}
        if name is None or method != "POST":
            return 404, json_headers, b'{"error":"not found"}'
        # header names as a receiver's framework gives them (urllib capitalizes them)
        given = {k.lower(): v for k, v in headers.items()}
        named = {
            "X-Kizuna-Signature": given.get("x-kizuna-signature", ""),
            "Idempotency-Key": given.get("idempotency-key", ""),
        }
        raw = body or b""
        key = _key(self._secret_value(self.endpoints[name].secret))
        valid = verify(key, named, raw)
        with self._lock:
            failures = self._failures.get(name) or []
            status = failures.pop(0) if failures else (200 if valid else 401)
            self.attempts.append(
                {"endpoint": name, "status": status, "verified": valid, "headers": named}
            )
            if status != 200:
                return status, json_headers, b'{"error":"refused"}'
            idempotency_key = named["Idempotency-Key"]
            if idempotency_key in self._seen:  # a repeat: 2xx, not acted on again
                return 200, {**json_headers, "X-Request-Id": idempotency_key}, b"{}"
            self._seen.add(idempotency_key)
            self.accepted.append(
                {
                    "endpoint": name,
                    "idempotency_key": idempotency_key,
                    "program": given.get("x-kizuna-program"),
                    "step": given.get("x-kizuna-step"),
                    "body": json.loads(raw),
                }
            )
        return 200, {**json_headers, "X-Request-Id": idempotency_key}, b"{}"
