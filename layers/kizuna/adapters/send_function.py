"""The send function, invoked synchronously by the API function for a transactional message:
one send path (the send function's channels, ledger and policy) for journeys, cohorts and
"template T to customer C now"."""

from __future__ import annotations

import json
from typing import Any

from kizuna.services.contracts import (
    SendUnavailable,
    TransactionalRequest,
    TransactionalResponse,
)


class SendFunction:
    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._name = function_name

    def transactional(self, request: TransactionalRequest) -> TransactionalResponse:
        # no retry here: the client's retry with its key is the retry, and the API's answer
        # must come within API Gateway's 30 seconds
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self._client.invoke(
                FunctionName=self._name,
                InvocationType="RequestResponse",
                Payload=request.model_dump_json().encode(),
            )
        except (BotoCoreError, ClientError) as error:  # throttled, timed out, refused
            raise SendUnavailable(type(error).__name__) from error
        payload = resp["Payload"].read()
        if resp.get("FunctionError"):
            error_type = json.loads(payload or b"{}").get("errorType", "error")
            raise SendUnavailable(f"the send function failed ({error_type})")
        return TransactionalResponse.model_validate_json(payload)
