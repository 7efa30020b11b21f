"""An N-recipient campaign on the local runtime, beside the same kind of recipients sent
through the per-customer journey path, in the same run (issue #14).

The real synthesized app (the demo's context), as tests/integration/test_campaigns_local.py
drives it: N repeat buyers seeded in the customers table (version 1, email consented, Tokyo),
a one-off email campaign applied with ``kizuna campaigns apply`` (``apply_files``), fired by
its Scheduler schedule on virtual time, run by the campaign state machine (Distributed Maps)
and the campaign function. Then a sample of the same recipients enters ``champions-care`` (a
``customer.segment_changed`` to Champions each, as the daily scoring announces it): evaluate
starts one journey execution per customer, the journey's send step sends one email.

Prints wall time; AWS API calls per delivered message (every call the campaign function
makes, the provider's SendEmail included), by operation; Step Functions states entered per
delivered message (the campaign execution's history, Distributed Map children included); the
cost model's platform cost per 1M delivered emails on top of SES; and each figure's ratio to
the journey path's.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import boto3

from bench import cost_model
from bench.common import print_table
from bench.pipeline_bench import function_sizes, metered_items
from kizuna_tools.local.bus_policy import acting_as
from kizuna_tools.local.bus_policy import role_of as execution_role

CAMPAIGN_ID = "month-end-sale"  # its templates: templates/month-end-sale/
JOURNEY_PROGRAM = "champions-care"  # one send step: one email per entry
START = datetime(2026, 1, 29, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
SEND_AT = START + timedelta(hours=3)  # 12:00 in Tokyo: no quiet hours
CAMPAIGN = f"""\
id: {CAMPAIGN_ID}
name: Month-end sale (bench)
status: scheduled
audience:
  segments: [repeat-buyers]
schedule: {{type: once, at: "{SEND_AT.strftime("%Y-%m-%dT%H:%M:%SZ")}"}}
channels: [email]
template: sale
coupon: {{discount: "10%", valid_days: 3}}
priority: 60
"""
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
GOALS = {"calls_per_message": 1.3, "transitions_per_message": 0.02, "usd_per_million": 5.0}
JOURNEY_ROLES = ("evaluate", "journey", "send")


# --- pure helpers (tests/bench/test_campaign_bench.py) -------------------------------------
def per_message(counts: Mapping[str, float], delivered: int) -> dict[str, float]:
    """Counts divided by delivered messages, largest first (0 when nothing was delivered)."""
    return {
        k: (v / delivered if delivered else 0.0)
        for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    }


def ratio(campaign: float, journey: float) -> float | None:
    """campaign / journey (None when the journey figure is 0)."""
    return campaign / journey if journey else None


def state_entered(events: Iterable[Mapping[str, Any]]) -> int:
    """Billed transitions in one execution history: every ``...StateEntered`` event."""
    return sum(1 for e in events if str(e.get("type", "")).endswith("StateEntered"))


def entered_types(types: Mapping[str, int]) -> int:
    """Billed transitions in a count of history event types."""
    return sum(n for t, n in types.items() if t.endswith("StateEntered"))


def operation_key(service: str, operation: str) -> str:
    return f"{service}:{operation}"


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """``after - before`` per key, zeros dropped."""
    out = {k: float(v) - float(before.get(k, 0)) for k, v in after.items()}
    return {k: v for k, v in out.items() if v}


# --- the run ---------------------------------------------------------------------------------
def _customers(n: int, prefix: str) -> list[Any]:
    """``n`` repeat buyers in Tokyo, email consented: one built from inbound events, cloned."""
    from kizuna.domain.customer import Customer
    from kizuna.domain.ingest import apply_events
    from kizuna.events.envelope import parse_inbound
    from kizuna.runtime.config import KizunaConfig

    def event(detail_type: str, detail: dict[str, Any], event_id: str) -> Any:
        return parse_inbound(
            {
                "version": "0",
                "id": event_id,
                "detail-type": detail_type,
                "source": "com.example.shop",
                "account": "123456789012",
                "time": START.isoformat(),
                "region": "us-east-1",
                "resources": [],
                "detail": {"customer_id": "t", **detail},
            }
        )

    def at(days: int) -> str:
        return (START - timedelta(days=days)).isoformat()

    def order(oid: str, days: int) -> Any:
        line = {"product_id": "tea-009", "category": "tea", "quantity": 1, "unit_price": "3000"}
        return event(
            "order.placed",
            {
                "occurred_at": at(days),
                "order_id": oid,
                "lines": [line],
                "total": "3000",
                "currency": "JPY",
                "channel": "web",
            },
            f"ev-{oid}",
        )

    events = [
        event(
            "customer.upserted",
            {
                "occurred_at": at(60),
                "email": "t@example.jp",
                "first_name": "Hanako",
                "locale": "ja",
                "time_zone": "Asia/Tokyo",
            },
            "up",
        ),
        order("o1", 40),
        order("o2", 20),
        event(
            "consent.changed",
            {"occurred_at": at(58), "channel": "email", "status": "opted_in"},
            "consent",
        ),
    ]
    one = apply_events(Customer(customer_id="t"), events, KizunaConfig(), START).customer
    return [
        one.model_copy(
            update={"customer_id": f"{prefix}{i:06d}", "email": f"{prefix}{i:06d}@example.jp"}
        )
        for i in range(n)
    ]


def _seed(cloud: Any, population: list[Any]) -> None:
    from kizuna.adapters.dynamodb import customer_to_item

    table = boto3.resource("dynamodb", region_name="us-east-1").Table(
        cloud.outputs["CustomersTableName"]
    )
    with table.batch_writer() as batch:
        for c in population:
            batch.put_item(Item=customer_to_item(c.model_copy(update={"version": 1})))


def _function(cloud: Any, code_name: str) -> str:
    return str(next(name for name, spec in cloud.functions.items() if spec.code_name == code_name))


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(
            executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def _executions(sfn: Any, machine_arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
        out += page["executions"]
    return out


def _machine(sfn: Any, contains: str) -> str:
    return str(
        next(
            m["stateMachineArn"]
            for m in sfn.list_state_machines()["stateMachines"]
            if contains in m["name"]
        )
    )


@contextmanager
def map_children_events() -> Iterator[dict[str, Counter[str]]]:
    """History event types of Distributed Map children, by the parent execution's ARN.

    moto runs a Distributed Map's children inline, each map run with a fresh
    ``EventManager`` whose events nobody can read (``list_executions`` by map run is not
    implemented): this records them as they are added, under the execution whose map run
    made the manager (a wrapper on the map run's body, in the parent's thread)."""
    dic: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration."
        "distributed_iteration_component"
    )

    seen: dict[str, Counter[str]] = defaultdict(Counter)
    lock = threading.Lock()
    local = threading.local()
    base = dic.EventManager
    body = dic.DistributedIterationComponent._eval_body

    class Recording(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kizuna_execution = getattr(local, "execution", "?")

        def add_event(self, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                seen[self.kizuna_execution][str(getattr(event_type, "value", event_type))] += 1
            return super().add_event(context, event_type, *args, **kwargs)

    def eval_body(self: Any, env: Any) -> Any:
        local.execution = env.states.context_object.context_object_data["Execution"]["Id"]
        return body(self, env)

    dic.EventManager = Recording
    dic.DistributedIterationComponent._eval_body = eval_body
    try:
        yield seen
    finally:
        dic.EventManager = base
        dic.DistributedIterationComponent._eval_body = body


def _campaign_transitions(cloud: Any, children: Mapping[str, Counter[str]]) -> dict[str, Any]:
    """States entered by the campaign's execution(s): the parent's history, and the events
    of its Distributed Map children (:func:`map_children_events`)."""
    sfn = cloud.client("stepfunctions")
    machine = _machine(sfn, "Campaign")
    parent: Counter[str] = Counter()
    child: Counter[str] = Counter()
    executions = _executions(sfn, machine)
    map_runs = 0
    for execution in executions:
        arn = execution["executionArn"]
        parent.update(str(e["type"]) for e in _history(sfn, arn))
        child.update(children.get(arn, Counter()))
        map_runs += len(sfn.list_map_runs(executionArn=arn)["mapRuns"])
    entered_parent = entered_types(parent)
    entered_children = entered_types(child)
    return {
        "executions": len(executions),
        "statuses": dict(Counter(e["status"] for e in executions)),
        "map_runs": map_runs,
        "states_entered_parent": entered_parent,
        "states_entered_children": entered_children,
        "states_entered": entered_parent + entered_children,
        "parent_event_types": dict(parent.most_common()),
        "children_event_types": dict(child.most_common()),
    }


def _journey_transitions(cloud: Any) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    machine = _machine(sfn, JOURNEY_PROGRAM)
    executions = _executions(sfn, machine)
    entered = sum(state_entered(_history(sfn, e["executionArn"])) for e in executions)
    return {
        "executions": len(executions),
        "statuses": dict(Counter(e["status"] for e in executions)),
        "states_entered": entered,
    }


def _snapshot(cloud: Any, live: Mapping[str, Any]) -> dict[str, Any]:
    """Calls, invocations, handler seconds by function and metered items by role, now."""
    return {
        "calls": {
            fn: {operation_key(*k): float(v) for k, v in c.items()}
            for fn, c in cloud.calls_by_function.items()
        },
        "invocations": dict(cloud.runner.invocations_by_function),
        "seconds": dict(cloud.runner.seconds_by_function),
        "items": {
            role: {op: dict(c) for op, c in ops.items()} for role, ops in live["items"].items()
        },
    }


def _usage(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    functions: Mapping[str, str],
    sizes: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """What ``functions`` (name -> role) did between two snapshots."""
    from bench.pipeline_bench import role_of

    calls: Counter[str] = Counter()
    by_function: dict[str, dict[str, float]] = {}
    invocations: dict[str, float] = {}
    seconds: dict[str, float] = {}
    items: dict[str, dict[str, float]] = {}
    for name, role in functions.items():
        d = delta(after["calls"].get(name, {}), before["calls"].get(name, {}))
        by_function[role] = d
        calls.update(d)
        invocations[role] = float(after["invocations"].get(name, 0)) - float(
            before["invocations"].get(name, 0)
        )
        seconds[role] = float(after["seconds"].get(name, 0.0)) - float(
            before["seconds"].get(name, 0.0)
        )
        metered = role_of(name)
        for op, c in after["items"].get(metered, {}).items():
            prev = before["items"].get(metered, {}).get(op, {})
            row = items.setdefault(op, {})
            for k in ("calls", "items", "strong", "wru_table", "wru_index"):
                row[k] = row.get(k, 0.0) + float(c.get(k, 0)) - float(prev.get(k, 0))
    return {
        "calls": dict(calls),
        "calls_by_function": by_function,
        "invocations": invocations,
        "handler_seconds": seconds,
        "memory_mb": {r: int(sizes[r]["memory_mb"]) for r in functions.values()},
        "architecture": {r: str(sizes[r]["architecture"]) for r in functions.values()},
        "items": items,
    }


def run(recipients: int, journey_sample: int = 200) -> dict[str, Any]:
    from kizuna_tools.cli.campaigns import Target, apply_files
    from kizuna_tools.demo import DEMO_CONTEXT, prepare_channels
    from kizuna_tools.local.app import default_project_root, kizuna_template
    from kizuna_tools.local.cloud import LocalCloud

    # before kizuna's Logger and Metrics are first imported in this process (the handlers
    # share them): quiet, as the demo's functions are
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from kizuna.runtime.observability import logger

    logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])  # already imported by run.py
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = time.perf_counter()
    template = kizuna_template(DEMO_CONTEXT)
    sizes = function_sizes(template)
    population = _customers(recipients, "c")
    sample = population[: min(journey_sample, recipients)]
    with (
        metered_items() as live,
        map_children_events() as children,
        LocalCloud.from_template(
            template,
            project_root=default_project_root(),
            start=START,
            environment_overrides=QUIET,
        ) as cloud,
        TemporaryDirectory() as tmp,
    ):
        prepare_channels(cloud)
        _seed(cloud, population)
        campaign_fn = _function(cloud, "campaign")
        setup_s = time.perf_counter() - started

        # when: the campaign is applied and its schedule fires on virtual time
        t0 = time.perf_counter()
        before = _snapshot(cloud, live)
        path = Path(tmp) / f"{CAMPAIGN_ID}.yaml"
        path.write_text(CAMPAIGN, encoding="utf-8")
        problems, _ = apply_files(Target.local(cloud.outputs), [path], "bench")
        if problems:
            raise RuntimeError(f"campaign not applied: {problems}")
        cloud.advance_to(SEND_AT + timedelta(hours=2))
        cloud.drain()
        campaign_s = time.perf_counter() - t0
        delivered = len(cloud.outbox("email"))
        mid = _snapshot(cloud, live)
        campaign = _usage(before, mid, {campaign_fn: "campaign"}, sizes)
        campaign["transitions"] = _campaign_transitions(cloud, children)
        campaign["delivered"] = delivered
        campaign["wall_seconds"] = campaign_s

        # when: a sample of the same recipients is sent through the journey path
        t1 = time.perf_counter()
        journey_fns = {_function(cloud, code): code for code in JOURNEY_ROLES}
        # as the daily scoring does: save the segment, then announce it as the score function
        # (the bus refuses source "kizuna" from anyone else; evaluate checks the claim)
        _seed(cloud, [c.model_copy(update={"rfm_segment": "Champions"}) for c in sample])
        for customer in sample:
            with acting_as(execution_role(cloud.template, "score")):
                cloud.put_events(
                    [
                        {
                            "Source": "kizuna",
                            "DetailType": "customer.segment_changed",
                            "Detail": {
                                "event_id": f"{customer.customer_id}:segment:Champions",
                                "customer_id": customer.customer_id,
                                "occurred_at": cloud.clock.now().isoformat(),
                                "caused_by": "scoring",
                                "from_segment": "Loyal",
                                "to_segment": "Champions",
                                "recency": 5,
                                "frequency": 5,
                                "monetary": 5,
                            },
                        }
                    ]
                )
        cloud.drain()
        cloud.advance(hours=1)
        cloud.drain()
        journey_s = time.perf_counter() - t1
        journey_delivered = len(cloud.outbox("email")) - delivered
        end = _snapshot(cloud, live)
        journey = _usage(mid, end, journey_fns, sizes)
        journey["transitions"] = _journey_transitions(cloud)
        journey["delivered"] = journey_delivered
        journey["trigger_events"] = len(sample)
        journey["wall_seconds"] = journey_s
        errors = [str(e) for e in cloud.errors][:5]
    result = summarize(recipients, len(sample), campaign, journey, setup_s, errors)
    print_result(result)
    return result


def summarize(
    recipients: int,
    sample: int,
    campaign: dict[str, Any],
    journey: dict[str, Any],
    setup_seconds: float,
    errors: list[str],
) -> dict[str, Any]:
    prices = cost_model.load_prices()
    c_n, j_n = int(campaign["delivered"]), int(journey["delivered"])
    c_cost = cost_model.campaign_costs(campaign, prices)
    j_cost = cost_model.campaign_costs(journey, prices)
    figures = {
        "calls_per_message": (
            sum(campaign["calls"].values()) / c_n if c_n else 0.0,
            sum(journey["calls"].values()) / j_n if j_n else 0.0,
        ),
        "transitions_per_message": (
            campaign["transitions"]["states_entered"] / c_n if c_n else 0.0,
            journey["transitions"]["states_entered"] / j_n if j_n else 0.0,
        ),
        "usd_per_million": (
            c_cost["per_million_messages"]["total"],
            j_cost["per_million_messages"]["total"],
        ),
    }
    return {
        "recipients": recipients,
        "journey_sample": sample,
        "setup_seconds": setup_seconds,
        "campaign": {**campaign, "cost": c_cost},
        "journey": {**journey, "cost": j_cost},
        "figures": {
            k: {"campaign": c, "journey": j, "ratio": ratio(c, j), "goal": GOALS[k]}
            for k, (c, j) in figures.items()
        },
        "errors": errors,
    }


def print_result(r: dict[str, Any]) -> None:
    c, j = r["campaign"], r["journey"]
    print_table(
        f"Campaign on the local runtime: {r['recipients']:,} recipients "
        f"(journey path: {r['journey_sample']} of them through {JOURNEY_PROGRAM})",
        ["path", "wall s", "delivered", "invocations", "executions", "states entered"],
        [
            [
                path,
                f"{p['wall_seconds']:.1f}",
                p["delivered"],
                int(sum(p["invocations"].values())),
                p["transitions"]["executions"],
                p["transitions"]["states_entered"],
            ]
            for path, p in (("campaign", c), ("journey", j))
        ],
    )
    print(f"set-up (synthesis, provisioning, seeding): {r['setup_seconds']:.1f} s")
    rows = []
    for name, f in r["figures"].items():
        rows.append(
            [
                name,
                _num(f["campaign"]),
                _num(f["journey"]),
                "-" if f["ratio"] is None else f"{f['ratio']:.3f}",
                f"<= {f['goal']}",
            ]
        )
    print_table(
        "Per delivered message: campaign vs journey path",
        ["figure", "campaign", "journey", "campaign/journey", "goal (campaign)"],
        rows,
    )
    for label, side in (("campaign", c), ("journey", j)):
        ops = per_message(side["calls"], int(side["delivered"]))
        print_table(
            f"AWS API calls per delivered message, {label} path, by operation",
            ["operation", "per message"],
            [[op, f"{v:.4f}"] for op, v in ops.items()],
        )
    services = list(c["cost"]["per_million_messages"])
    print_table(
        "Platform cost per 1M delivered emails on top of SES (USD, bench/cost_model.py)",
        ["service", "campaign", "journey"],
        [
            [
                s,
                _usd(c["cost"]["per_million_messages"].get(s)),
                _usd(j["cost"]["per_million_messages"].get(s)),
            ]
            for s in services
        ],
    )
    if r["errors"]:
        print("function errors:", *r["errors"], sep="\n  ")


def _num(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:,.2f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.3f}"


if __name__ == "__main__":
    run(1_000)
