"""The whole pipeline on the local runtime: a synthetic shop for N customers x D days.

Prints wall time and simulated days per second; AWS API calls per inbound event, per
journey entry and per delivered message, by function, service and operation (counted with
a botocore hook); Lambda invocations and mean handler time per function; Step Functions
state transitions per journey entry per program, measured from execution histories beside
the compiler's estimate.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from bench.common import print_table
from kizuna.demo import DemoSummary, collect, run_demo

ROLES = {
    "Ingest": "ingest",
    "Evaluate": "evaluate",
    "JourneyHelper": "journey",
    "Send": "send",
    "Sweep": "sweep",
    "Feedback": "feedback",
    "Unsubscribe": "unsubscribe",
    "ScoringScore": "score",
}


def role_of(function_name: str) -> str:
    for marker, role in ROLES.items():
        if marker in function_name:
            return role
    return "runtime" if function_name.startswith("(") else function_name


def transitions(cloud: Any) -> dict[str, dict[str, float]]:
    """StateEntered events per finished execution, per program (from execution history)."""
    sfn = cloud.client("stepfunctions")
    per: dict[str, list[int]] = defaultdict(list)
    for machine in sfn.list_state_machines()["stateMachines"]:
        program = machine["name"].split("-", 1)[1]
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"], statusFilter="SUCCEEDED"
        )
        for page in pages:
            for execution in page["executions"][:200]:
                events = sfn.get_execution_history(
                    executionArn=execution["executionArn"], maxResults=1000
                )["events"]
                per[program].append(sum(1 for e in events if e["type"].endswith("StateEntered")))
    return {
        p: {"executions": len(v), "mean": sum(v) / len(v), "max": max(v)}
        for p, v in sorted(per.items())
        if v
    }


def run(customers: int, days: int) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    def measure(cloud: Any, summary: DemoSummary) -> DemoSummary:
        out = collect(cloud, summary)
        captured["calls"] = {role: Counter() for role in (*ROLES.values(), "runtime")}
        for fn, calls in cloud.calls_by_function.items():
            captured["calls"].setdefault(role_of(fn), Counter()).update(calls)
        captured["invocations"] = Counter()
        captured["seconds"] = Counter()
        for fn, n in cloud.runner.invocations_by_function.items():
            captured["invocations"][role_of(fn)] += n
            captured["seconds"][role_of(fn)] += cloud.runner.seconds_by_function[fn]
        t0 = time.perf_counter()
        captured["transitions"] = transitions(cloud)
        captured["transitions_seconds"] = time.perf_counter() - t0
        return out

    import kizuna.demo as demo

    original = demo.collect
    demo.collect = measure
    try:
        summary = run_demo(customers, days)
    finally:
        demo.collect = original
    sent = sum(n for per in summary.messages.values() for n in per.values())
    calls = captured["calls"]
    result = {
        "customers": customers,
        "days": days,
        "events": summary.events,
        "journeys_started": summary.journeys_started,
        "messages_sent": sent,
        "wall_seconds": summary.wall_seconds,
        "simulated_days_per_second": days / summary.wall_seconds,
        "events_per_second": summary.events / summary.wall_seconds,
        "calls_per_inbound_event": sum(calls["ingest"].values()) / max(summary.events, 1),
        "calls_per_journey_entry": sum(calls["evaluate"].values())
        / max(summary.journeys_started, 1),
        "calls_per_message": sum(calls["send"].values()) / max(sent, 1),
        "calls": {
            role: {f"{svc}:{op}": n for (svc, op), n in c.items()} for role, c in calls.items()
        },
        "invocations": dict(captured["invocations"]),
        "mean_handler_ms": {
            r: 1000 * captured["seconds"][r] / n for r, n in captured["invocations"].items() if n
        },
        "transitions": captured["transitions"],
        "summary": summary.as_dict(),
    }
    print_table(
        f"Pipeline on the local runtime: {customers} customers x {days} days",
        ["wall s", "sim days/s", "events", "events/s", "journeys", "messages"],
        [
            [
                f"{summary.wall_seconds:.0f}",
                f"{result['simulated_days_per_second']:.2f}",
                summary.events,
                f"{result['events_per_second']:.0f}",
                summary.journeys_started,
                sent,
            ]
        ],
    )
    print_table(
        "AWS API calls (handlers only; the runtime's own polling excluded)",
        ["per", "calls", "by operation"],
        [
            [
                "inbound event (ingest)",
                f"{result['calls_per_inbound_event']:.2f}",
                _ops(calls["ingest"], summary.events),
            ],
            [
                "journey entry (evaluate)",
                f"{result['calls_per_journey_entry']:.2f}",
                _ops(calls["evaluate"], summary.journeys_started),
            ],
            [
                "delivered message (send)",
                f"{result['calls_per_message']:.2f}",
                _ops(calls["send"], sent),
            ],
        ],
    )
    print_table(
        "Lambda invocations",
        ["function", "invocations", "mean handler ms (moto)"],
        [
            [r, n, f"{result['mean_handler_ms'].get(r, 0):.1f}"]
            for r, n in sorted(captured["invocations"].items())
        ],
    )
    print_table(
        "Step Functions state transitions per journey entry (measured)",
        ["program", "executions", "mean", "max"],
        [
            [p, t["executions"], f"{t['mean']:.1f}", t["max"]]
            for p, t in result["transitions"].items()
        ],
    )
    return result


def _ops(counter: Counter[tuple[str, str]], per: int) -> str:
    return ", ".join(f"{op} {n / max(per, 1):.2f}" for (_, op), n in counter.most_common(5))


if __name__ == "__main__":
    run(1000, 30)
