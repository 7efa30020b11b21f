"""Transient AWS failures retried in place, for the adapters' idempotent calls.

botocore already retries a throttled or failed call a few times; what reaches an adapter
after that (a 5xx, throttling, a read timeout or a dropped connection) is still most often
transient. An adapter call that is idempotent (a read; a put or update whose repetition is
harmless; a conditional write whose caller recognises its own earlier attempt) goes through
:func:`retrying`, which tries it again with backoff before giving up. A call that is not
idempotent must not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

ATTEMPTS = 5  # in all, after botocore's own retries
# Throttling and server-side codes that mean "try again" whatever the HTTP status says.
RETRYABLE_CODES = frozenset(
    {
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "InternalException",
        "ServiceUnavailable",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "SlowDown",
    }
)


def transient(err: BaseException) -> bool:
    """Is ``err`` worth trying again: throttling, a 5xx, a timeout or a lost connection
    (the call may or may not have taken effect)?"""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError

    if isinstance(err, HTTPClientError | BotocoreConnectionError):
        return True  # ReadTimeoutError, ConnectTimeoutError, ConnectionClosedError...
    if not isinstance(err, ClientError):
        return False
    code = str(err.response.get("Error", {}).get("Code", ""))
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code in RETRYABLE_CODES or status >= 500


def retrying(
    call: Callable[..., T],
    *args: Any,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = ATTEMPTS,
    **params: Any,
) -> T:
    """``call(*args, **params)``, again after a :func:`transient` failure, with backoff
    (0.2 s doubling, at most 2 s), up to ``attempts`` times in all; any other error, or the
    last attempt's, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return call(*args, **params)
        except Exception as err:
            if not transient(err) or attempt == attempts:
                raise
            sleep(min(0.1 * 2**attempt, 2.0))
    raise AssertionError("unreachable")  # pragma: no cover
