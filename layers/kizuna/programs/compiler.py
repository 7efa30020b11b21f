"""Compile a program into Amazon States Language (a Step Functions Standard workflow).

- ``send`` → a Lambda task (the send function: contact policy, render, deliver, ledger) with
  Retry and Catch, then a Choice on its answer: ``deferred`` waits until the time it gives
  and tries again (quiet hours: never dropped), ``exit`` ends the journey (goal reached).
- ``wait`` → a Wait state; "until a local time" asks the journey function for the instant.
- ``branch`` → DynamoDB ``getItem`` and a Choice when the condition only tests stored text
  attributes; otherwise the journey function evaluates it against fresh state.
- ``split`` → a Choice on the arm assigned at entry (stable hash).
- ``exit`` → Succeed.

ARNs and table names are ``${...}`` placeholders, filled by CloudFormation
``DefinitionSubstitutions`` (see :data:`SUBSTITUTIONS`).

Only reachable states are emitted: ``__end`` exists when some step falls off the end of the
journey, ``__goal_reached`` when some send can answer ``exit``. Step Functions refuses a
definition with an unreachable state (``MISSING_TRANSITION_TARGET``), so every compiled
definition goes through :func:`kizuna.programs.asl.check_definition` before it is returned:
a compiler bug fails here, at synth, not at ``cdk deploy``.
"""

from __future__ import annotations

from typing import Any

from kizuna.programs.asl import check_definition
from kizuna.programs.loader import next_of
from kizuna.programs.model import BranchStep, ExitStep, Program, SendStep, SplitStep, WaitStep

SUBSTITUTIONS = ("SendFunctionArn", "JourneyFunctionArn", "CustomersTable")
END = "__end"
GOAL_REACHED = "__goal_reached"
# Stored as plain strings on the customer item, so a Choice can test them directly.
CHOICE_FIELDS = frozenset(
    {"rank", "next_rank", "region", "prefecture", "gender", "occupation", "locale", "time_zone"}
)
LAMBDA_RETRY = [
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
    },
    {
        "ErrorEquals": ["States.TaskFailed"],
        "IntervalSeconds": 10,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    },
]
COMMON_INPUT = {
    "program.$": "$.program",
    "customer_id.$": "$.customer_id",
    "execution.$": "$.execution",
    "entered_at.$": "$.entered_at",
    "arms.$": "$.arms",
}


def _invoke(function: str, payload: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    """A Lambda task with retries; ``rest`` (ResultSelector, ResultPath, Next, ...) completes
    it."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "${" + function + "}", "Payload": payload},
        "Retry": LAMBDA_RETRY,
        **rest,
    }


def choice_rule(condition: dict[str, Any]) -> dict[str, Any] | None:
    """A Choice rule over a getItem result, or None if the condition needs the Lambda."""
    rules: list[dict[str, Any]] = []
    for key, values in condition.items():
        if key not in CHOICE_FIELDS or not isinstance(values, list):
            return None
        if not values or not all(isinstance(v, str) for v in values):
            return None
        var = f"$.fresh.Item.{key}.S"
        alternatives = [
            {"And": [{"Variable": var, "IsPresent": True}, {"Variable": var, "StringEquals": v}]}
            for v in values
        ]
        rules.append(alternatives[0] if len(alternatives) == 1 else {"Or": alternatives})
    if not rules:
        return None
    return rules[0] if len(rules) == 1 else {"And": rules}


def compile_program(program: Program) -> dict[str, Any]:
    """The program's ASL definition; raises :class:`kizuna.programs.asl.InvalidDefinition`
    if Step Functions would refuse it."""
    definition = {
        "Comment": f"Kizuna program {program.id}: {program.name}",
        "StartAt": program.steps[0].id,
        "States": _states(program),
    }
    check_definition(definition, name=f"program {program.id}")
    return definition


def _states(program: Program) -> dict[str, Any]:
    """Every step's states, then ``__end``/``__goal_reached`` if something leads there."""
    states: dict[str, Any] = {}
    index = {s.id: i for i, s in enumerate(program.steps)}

    def after(i: int) -> str:
        found = next_of(program, i)
        return found[0] if found else END

    for i, step in enumerate(program.steps):
        sid = step.id
        if isinstance(step, SendStep):
            states[sid] = _invoke(
                "SendFunctionArn",
                {**COMMON_INPUT, "action": "send", "step": sid},
                {
                    "ResultSelector": {
                        "status.$": "$.Payload.status",
                        "until.$": "$.Payload.until",
                    },
                    "ResultPath": "$.last",
                    "Catch": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "ResultPath": "$.error",
                            "Next": f"{sid}__failed",
                        }
                    ],
                    "Next": f"{sid}__route",
                },
            )
            states[f"{sid}__route"] = {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.last.status",
                        "StringEquals": "deferred",
                        "Next": f"{sid}__deferred",
                    },
                    {"Variable": "$.last.status", "StringEquals": "exit", "Next": GOAL_REACHED},
                ],
                "Default": after(i),
            }
            states[f"{sid}__deferred"] = {
                "Type": "Wait",
                "TimestampPath": "$.last.until",
                "Next": sid,
            }
            # the send function records its own failures in the ledger; a crash after all
            # retries is kept in $.error and the journey goes on
            states[f"{sid}__failed"] = {"Type": "Pass", "Next": after(i)}
        elif isinstance(step, WaitStep):
            seconds = int(step.duration.total_seconds())
            if step.until_local_time is None:
                states[sid] = {"Type": "Wait", "Seconds": seconds, "Next": after(i)}
            else:
                states[sid] = _invoke(
                    "JourneyFunctionArn",
                    {
                        **COMMON_INPUT,
                        "action": "local_time",
                        "step": sid,
                        "after_seconds": seconds,
                        "local_time": step.until_local_time,
                    },
                    {
                        "ResultSelector": {"at.$": "$.Payload.at"},
                        "ResultPath": "$.wait",
                        "Next": f"{sid}__wait",
                    },
                )
                states[f"{sid}__wait"] = {
                    "Type": "Wait",
                    "TimestampPath": "$.wait.at",
                    "Next": after(i),
                }
        elif isinstance(step, BranchStep):
            yes = step.then or END
            no = step.otherwise or END
            rule = choice_rule(step.condition)
            if rule is not None:
                fields = sorted(step.condition)
                states[sid] = {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:getItem",
                    "Parameters": {
                        "TableName": "${CustomersTable}",
                        "Key": {"customer_id": {"S.$": "$.customer_id"}},
                        "ConsistentRead": True,
                        "ProjectionExpression": ", ".join(f"#f{n}" for n in range(len(fields))),
                        "ExpressionAttributeNames": {f"#f{n}": f for n, f in enumerate(fields)},
                    },
                    "ResultPath": "$.fresh",
                    "Retry": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "IntervalSeconds": 2,
                            "MaxAttempts": 5,
                            "BackoffRate": 2.0,
                        }
                    ],
                    "Next": f"{sid}__choice",
                }
                states[f"{sid}__choice"] = {
                    "Type": "Choice",
                    "Choices": [{**rule, "Next": yes}],
                    "Default": no,
                }
            else:
                states[sid] = _invoke(
                    "JourneyFunctionArn",
                    {**COMMON_INPUT, "action": "check", "step": sid},
                    {
                        "ResultSelector": {"match.$": "$.Payload.match"},
                        "ResultPath": "$.check",
                        "Next": f"{sid}__choice",
                    },
                )
                states[f"{sid}__choice"] = {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.check.match", "BooleanEquals": True, "Next": yes}],
                    "Default": no,
                }
        elif isinstance(step, SplitStep):
            states[sid] = {
                "Type": "Choice",
                "Choices": [
                    {"Variable": f"$.arms.{sid}", "StringEquals": arm.name, "Next": arm.next or END}
                    for arm in step.arms
                ],
                "Default": step.arms[0].next or END,
            }
        elif isinstance(step, ExitStep):
            states[sid] = {"Type": "Succeed"}
    assert program.steps[0].id in index
    targets = {target for state in states.values() for target in _transitions(state)}
    if END in targets:
        states[END] = {"Type": "Succeed"}
    if GOAL_REACHED in targets:
        states[GOAL_REACHED] = {"Type": "Succeed", "Comment": "goal reached: journey ends"}
    return states


def _transitions(state: dict[str, Any]) -> list[str]:
    """The states ``state`` can go to (Next, Default, Choices and Catch)."""
    found = [state[key] for key in ("Next", "Default") if key in state]
    for entry in state.get("Choices", []) + state.get("Catch", []):
        found.append(entry["Next"])
    return found


def estimated_transitions(program: Program) -> dict[str, int]:
    """States entered on the shortest and the longest path through the journey when the goal
    is not reached (no retries, no deferrals): what an entry costs in transitions."""
    asl = compile_program(program)
    states = asl["States"]
    memo: dict[str, tuple[int, int]] = {}

    def walk(name: str) -> tuple[int, int]:
        if name in memo:
            return memo[name]
        state = states[name]
        nexts: list[str] = []
        if state["Type"] == "Choice":
            nexts = [c["Next"] for c in state["Choices"]] + [state["Default"]]
            if name.endswith("__route"):  # a send's normal path: no deferral, goal not reached
                nexts = [state["Default"]]
        elif "Next" in state:
            nexts = [state["Next"]]
        if not nexts:
            memo[name] = (1, 1)
        else:
            paths = [walk(n) for n in dict.fromkeys(nexts)]
            memo[name] = (1 + min(p[0] for p in paths), 1 + max(p[1] for p in paths))
        return memo[name]

    lo, hi = walk(asl["StartAt"])
    return {"min": lo, "max": hi}
