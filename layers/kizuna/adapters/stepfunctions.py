"""Start journeys: one Step Functions Standard state machine per program."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


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


GONE = frozenset({"ExecutionDoesNotExist", "StateMachineDoesNotExist", "AccessDeniedException"})


class StepFunctionsStopper:
    """Stop a customer's running journeys (erasure)."""

    def __init__(self, client: Any, arn_prefix: str) -> None:
        """``arn_prefix`` is the state machines' (``...:stateMachine:<prefix>``)."""
        self._client = client
        self._prefix = arn_prefix.replace(":stateMachine:", ":execution:", 1)

    def execution_arn(self, program_id: str, execution: str) -> str:
        return f"{self._prefix}{program_id}:{execution}"

    def stop(self, program_id: str, execution: str) -> bool:
        if not self._prefix:
            return False
        arn = self.execution_arn(program_id, execution)
        try:
            status = self._client.describe_execution(executionArn=arn)["status"]
            if status != "RUNNING":  # finished ones keep their (id-free) history
                return False
            self._client.stop_execution(executionArn=arn, cause="customer erased")
        except ClientError as exc:
            # unknown, or of a program no longer deployed (deleting a state machine stops
            # its executions, and its grant is gone with it): nothing left to stop
            if exc.response["Error"]["Code"] in GONE:
                return False
            raise
        return True
