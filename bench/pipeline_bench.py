"""The whole pipeline on the local runtime: a synthetic shop for N customers x D days.

Prints wall time and simulated days per second; AWS API calls per inbound event, per
journey entry and per delivered message, by function, service and operation (counted with
a botocore hook); Lambda invocations and mean handler time per function; Step Functions
state transitions per journey entry per program, measured from execution histories beside
the compiler's estimate.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bench.common import print_table
from bench.write_units import Units, metered_write_units
from kizuna_tools.demo import DemoSummary, collect, run_demo

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


# Where EventBridge rules put messages (queue logical id marker -> the function it feeds).
QUEUES = {"IngestQueue": "ingest", "EvaluateQueue": "evaluate", "FeedbackQueue": "feedback"}
READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")


def queue_role(queue_name: str) -> str:
    if "DeadLetter" in queue_name:
        return "dead-letter"
    for marker, role in QUEUES.items():
        if marker in queue_name:
            return role
    return queue_name


def _items(operation: str, params: dict[str, Any], response: Any) -> tuple[int, int]:
    """(items, items read with ConsistentRead) of one DynamoDB or PutEvents call."""
    if operation == "BatchWriteItem":
        return sum(len(v) for v in params.get("RequestItems", {}).values()), 0
    if operation == "BatchGetItem":
        n = strong = 0
        for spec in params.get("RequestItems", {}).values():
            n += len(spec.get("Keys", []))
            strong += len(spec.get("Keys", [])) if spec.get("ConsistentRead") else 0
        return n, strong
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return len(params.get("TransactItems", [])), 0
    if operation in ("Query", "Scan"):
        n = int((response or {}).get("ScannedCount", (response or {}).get("Count", 0)))
        return n, n if params.get("ConsistentRead") else 0
    if operation == "PutEvents":
        return len(params.get("Entries", [])), 0
    return 1, 1 if params.get("ConsistentRead") else 0


@contextmanager
def metered_items() -> Iterator[dict[str, Any]]:
    """Count items per DynamoDB call and entries per PutEvents, by function (a wrapper on
    botocore's ``_make_api_call``); the write units of each DynamoDB write, the table's
    (``wru_table``) and its indexes' (``wru_index``), as AWS bills them
    (:mod:`bench.write_units`); messages EventBridge puts on each queue; and the detail
    types the producer puts on the bus. Yields the live counters."""
    from botocore.client import BaseClient

    from kizuna_tools.local import ACCOUNT_ID, backends
    from kizuna_tools.local.cloud import LocalCloud
    from kizuna_tools.local.functions import current_function

    items: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    queues: Counter[str] = Counter()
    detail_types: Counter[str] = Counter()
    lock = threading.Lock()
    original_call = BaseClient._make_api_call
    original_send = backends.send_to_queue
    original_put = LocalCloud.put_events

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = original_call(self, operation, params)
        service = self.meta.service_model.service_name
        if service == "dynamodb" or (service == "events" and operation == "PutEvents"):
            n, strong = _items(operation, params, response)
            owner = current_function()
            role = role_of(owner) if owner else "runtime"
            with lock:
                counter = items[role][f"{service}:{operation}"]
                counter["calls"] += 1
                counter["items"] += n
                counter["strong"] += strong
        return response

    def send(queue_name: str, body: str, group_id: str | None = None) -> None:
        with lock:
            queues[queue_role(queue_name)] += 1
        original_send(queue_name, body, group_id)

    def put_events(self: Any, entries: Any, bus: str | None = None) -> Any:
        entries = list(entries)
        with lock:
            detail_types.update(str(e.get("DetailType")) for e in entries)
        return original_put(self, entries, bus)

    def priced(operation: str, units: Units) -> None:
        owner = current_function()
        role = role_of(owner) if owner else "runtime"
        with lock:
            counter = items[role][f"dynamodb:{operation}"]
            counter["wru_table"] += int(units.table)  # whole units: 1 KB each
            counter["wru_index"] += int(units.index)

    live: dict[str, Any] = {"items": items, "queues": queues, "detail_types": detail_types}
    BaseClient._make_api_call = call
    backends.send_to_queue = send
    LocalCloud.put_events = put_events  # type: ignore[method-assign]
    try:
        with metered_write_units(priced, ACCOUNT_ID):
            yield live
    finally:
        BaseClient._make_api_call = original_call
        backends.send_to_queue = original_send
        LocalCloud.put_events = original_put  # type: ignore[method-assign]


def function_sizes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Memory (MB) and architecture of each function, by its ``functions/<name>`` folder,
    from the synthesized template (what CDK deploys)."""
    from kizuna_infra import names

    out: dict[str, dict[str, Any]] = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        folder = (resource.get("Metadata") or {}).get(names.FUNCTION_METADATA_KEY)
        if folder:
            props = resource.get("Properties", {})
            out[str(folder)] = {
                "memory_mb": int(props.get("MemorySize", 128)),
                "architecture": (props.get("Architectures") or ["x86_64"])[0],
            }
    return out


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

    def measure(cloud: Any, summary: DemoSummary, config: Mapping[str, Any]) -> DemoSummary:
        out = collect(cloud, summary, config)
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

    import kizuna_tools.demo as demo
    from kizuna_tools.local.app import kizuna_template

    original = demo.collect
    demo.collect = measure
    try:
        with metered_items() as live:
            summary = run_demo(customers, days)
    finally:
        demo.collect = original
    sizes = function_sizes(kizuna_template(demo.DEMO_CONTEXT))
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
        "items": {
            role: {op: dict(c) for op, c in sorted(ops.items())}
            for role, ops in sorted(live["items"].items())
        },
        "queue_messages": dict(live["queues"]),
        "event_types": dict(live["detail_types"].most_common()),
        "functions": sizes,
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
