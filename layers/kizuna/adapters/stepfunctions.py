"""Start journeys' cohort executions: one Step Functions Standard state machine per program."""

from __future__ import annotations

import json
from typing import Any


class StepFunctionsStarter:
    def __init__(self, client: Any, arn_prefix: str) -> None:
        """``arn_prefix`` + program id is the state machine ARN (names are deterministic)."""
        self._client = client
        self._prefix = arn_prefix

    def state_machine_arn(self, program_id: str) -> str:
        return f"{self._prefix}{program_id}"

    def start(self, program_id: str, name: str, payload: dict[str, Any]) -> bool:
        try:
            self._client.start_execution(
                stateMachineArn=self.state_machine_arn(program_id),
                name=name,
                input=json.dumps(payload, default=str),
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            return False
        return True
