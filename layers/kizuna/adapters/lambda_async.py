"""Asynchronous Lambda invocations (``InvocationType="Event"``): an at_once program's entry
segment, from evaluate to the send or journey function. Lambda queues the event, retries a
failed run twice, then sends it to the function's on-failure destination (the dead-letter
queue, with the error)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class AsyncInvoker:
    def __init__(self, client: Any, functions: Mapping[str, str]) -> None:
        self._client = client
        self._functions = dict(functions)  # "send" / "journey" -> function name

    def run(self, function: str, payload: dict[str, Any]) -> None:
        name = self._functions.get(function)
        if not name:
            raise RuntimeError(f"no {function!r} function is wired to invoke")
        self._client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps(payload, separators=(",", ":")).encode(),
        )


class JourneyLauncher:
    """How evaluate starts journeys: cohort executions (Step Functions) and at_once
    programs' entry segments (an asynchronous invocation)."""

    def __init__(self, starter: Any, invoker: AsyncInvoker) -> None:
        self._starter = starter
        self._invoker = invoker

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        return bool(self._starter.start(program_id, name, payload))

    def run(self, function: str, payload: dict[str, Any]) -> None:
        self._invoker.run(function, payload)
