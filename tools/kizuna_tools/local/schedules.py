"""EventBridge Scheduler as the local runtime runs it: the universal StartExecution target
and the dead-letter event's attributes. The expressions themselves (``rate``, ``cron``,
``at``) are :mod:`kizuna.domain.schedule_expressions`, shared with the campaign model,
which refuses what AWS refuses before a schedule is made.
"""

from __future__ import annotations

import json
from typing import Any

# Scheduler's universal target for Step Functions' StartExecution: the target's Input is
# the request itself (StateMachineArn, Name, Input, as the API names them).
SFN_START_EXECUTION_TARGET = "arn:aws:scheduler:::aws-sdk:sfn:startExecution"


def start_execution_parameters(target_arn: str, payload: str) -> dict[str, Any]:
    """The StartExecution call a state machine target makes: a state machine ARN starts
    that machine with ``payload`` as input (an unnamed execution); the universal target
    :data:`SFN_START_EXECUTION_TARGET` makes the request its input holds, the name included.
    Raises ValueError (or KeyError) on a request that is not one."""
    if target_arn != SFN_START_EXECUTION_TARGET:
        return {"stateMachineArn": target_arn, "input": payload}
    request = json.loads(payload)
    if not isinstance(request, dict):
        raise ValueError("the StartExecution request is not a JSON object")
    parameters: dict[str, Any] = {"stateMachineArn": request["StateMachineArn"]}
    for key, parameter in (("Name", "name"), ("Input", "input"), ("TraceHeader", "traceHeader")):
        if key in request:
            parameters[parameter] = request[key]
    return parameters


# EventBridge Scheduler's dead-letter event: the input it could not deliver as the body, and
# why in these message attributes ("Configuring a dead-letter queue", Scheduler User Guide).
SCHEDULER_DEAD_LETTER_ATTRIBUTES = (
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "EXECUTION_ID",
    "SCHEDULE_ARN",
    "TARGET_ARN",
)


def scheduler_dead_letter_attributes(
    *, schedule_arn: str, target_arn: str, execution_id: str, code: str, message: str
) -> dict[str, str]:
    """The message attributes of a dead-letter event for one failed invocation."""
    values = (code, message[:1000], execution_id, schedule_arn, target_arn)
    return dict(zip(SCHEDULER_DEAD_LETTER_ATTRIBUTES, values, strict=True))
