"""Evaluate's asynchronous invocation of an at_once program's entry segment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kizuna.adapters.lambda_async import AsyncInvoker, JourneyLauncher


class Client:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"StatusCode": 202}


class Starter:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        self.started.append(name)
        return True


def test_a_segment_is_an_event_invocation_of_its_function() -> None:
    client = Client()
    launcher = JourneyLauncher(Starter(), AsyncInvoker(client, {"send": "kizuna-send"}))
    launcher.run("send", {"action": "send", "entry": True})
    ((call,),) = [client.calls]
    assert call["FunctionName"] == "kizuna-send" and call["InvocationType"] == "Event"
    assert json.loads(call["Payload"]) == {"action": "send", "entry": True}


def test_a_function_not_wired_is_an_error_not_a_silent_skip() -> None:
    # evaluate's batch fails (and is delivered again) rather than lose the entries' first step
    launcher = JourneyLauncher(Starter(), AsyncInvoker(Client(), {"send": "kizuna-send"}))
    with pytest.raises(RuntimeError, match="journey"):
        launcher.run("journey", {"action": "check"})
