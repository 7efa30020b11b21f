"""Transient failures retried in place by the adapters (kizuna.adapters.retry)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from kizuna.adapters.retry import ATTEMPTS, retrying, transient


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


@pytest.mark.parametrize(
    "err",
    [
        client_error("ProvisionedThroughputExceededException", 400),
        client_error("ThrottlingException", 400),
        client_error("TooManyRequestsException", 429),
        client_error("SlowDown", 503),
        client_error("InternalServerError", 500),
        client_error("ServiceException", 500),
        ReadTimeoutError(endpoint_url="https://dynamodb"),
        ConnectionClosedError(endpoint_url="https://dynamodb"),
        EndpointConnectionError(endpoint_url="https://dynamodb"),
    ],
)
def test_throttling_5xx_timeouts_and_lost_connections_are_transient(err: Exception) -> None:
    assert transient(err)


@pytest.mark.parametrize(
    "err",
    [
        client_error("ConditionalCheckFailedException", 400),
        client_error("TransactionCanceledException", 400),
        client_error("ValidationException", 400),
        client_error("NoSuchKey", 404),
        ValueError("a bug"),
    ],
)
def test_refusals_and_bugs_are_not(err: Exception) -> None:
    assert not transient(err)


def test_retrying_tries_again_with_backoff_then_gives_up() -> None:
    calls: list[dict[str, Any]] = []
    waits: list[float] = []

    def flaky(**params: Any) -> str:
        calls.append(params)
        if len(calls) < 3:
            raise ReadTimeoutError(endpoint_url="https://x")
        return "done"

    assert retrying(flaky, sleep=waits.append, Key="k") == "done"
    assert calls == [{"Key": "k"}] * 3 and waits == [0.2, 0.4]

    def down() -> None:
        calls.append({})
        raise client_error("InternalServerError", 500)

    calls.clear()
    with pytest.raises(ClientError):
        retrying(down, sleep=waits.append)
    assert len(calls) == ATTEMPTS


def test_retrying_raises_a_refusal_at_once() -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise client_error("ConditionalCheckFailedException", 400)

    with pytest.raises(ClientError):
        retrying(refused, sleep=lambda _: None)
    assert calls == [1]
