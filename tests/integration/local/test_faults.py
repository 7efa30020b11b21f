"""The pipeline under injected faults: exactly-once in, exactly-once out, nothing stuck.

A small synthetic shop runs twice on the real app with the same seed: once without faults
(the reference) and once with 10% of every app call faulted — throttling, a 5xx before the
call, a 5xx or a lost answer after the call took effect — and 10% of SQS messages and
EventBridge deliveries made twice (:mod:`kizuna_tools.local.faults`). Then:

- every inbound fact is applied exactly once (each customer's facts equal the reference's);
- every message due is delivered exactly once or recorded failed with a reason (never two
  copies, never a ``sent`` without its message; the reference's sends are all accounted for);
- no ledger row is left at ``sending``;
- every dead letter carries its reason and can be redriven (``kizuna dlq redrive``).

Each check is its own test, so a failure names what broke, with its evidence (the ledger
rows and the faults injected at that virtual instant). The two runs take about 100 s
together on 2 idle cores (about 200 s on a loaded machine).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.delivery.channels import line_retry_key
from kizuna.delivery.tags import decode_tag_value
from kizuna_tools.demo import DEMO_CONTEXT, QUIET, load_catalog, prepare_channels
from kizuna_tools.dlq import DeadLetterQueue, dead_message
from kizuna_tools.local import LocalCloud
from kizuna_tools.local.app import default_project_root, kizuna_template
from kizuna_tools.local.faults import FaultPlan
from kizuna_tools.simulation import Shop

CUSTOMERS, DAYS, SEED = 100, 3, 5
SPEC = "*=0.1"  # every app call, every kind; SQS and EventBridge deliveries duplicated too
SETTLE = timedelta(days=1)  # retries and redeliveries finish within a day of virtual time
# what a customer's inbound facts made of them (not when they were applied)
FACTS = (
    "orders",
    "adjustments",
    "order_count",
    "lifetime_value",
    "points_balance",
    "rank",
    "rank_points",
    "consent",
    "devices",
    "line_user_id",
    "email",
    "phone",
)


@dataclass
class Run:
    customers: dict[str, dict[str, Any]]
    ledger: list[dict[str, Any]]  # MSG items
    outbox: dict[str, list[dict[str, Any]]]
    dlq: dict[str, list[dict[str, Any]]]
    faults: dict[str, Any] | None
    fault_log: list[tuple[str, str, str]]
    executions: dict[str, int]  # "machine status" -> executions
    redriven: dict[str, int] = field(default_factory=dict)
    redrive_errors: dict[str, str] = field(default_factory=dict)
    dlq_after_redrive: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def run_shop(template: dict[str, Any], faults: FaultPlan | None) -> Run:
    shop = Shop(customers=CUSTOMERS, days=DAYS, seed=SEED)
    with LocalCloud.from_template(
        template,
        project_root=default_project_root(),
        start=shop.start,
        environment_overrides=QUIET,
        ttl_sweep_interval=timedelta(days=1),
        faults=faults,
    ) as cloud:
        prepare_channels(cloud)
        load_catalog(cloud)
        for day, entries in shop.days_of_events():  # hour by hour, as `kizuna local run`
            by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for entry in entries:
                at = datetime.fromisoformat(json.loads(entry["Detail"])["occurred_at"])
                hours = (at - shop.start).total_seconds() // 3600
                by_hour[max(int(hours), day * 24)].append(entry)
            for hour in sorted(by_hour):
                cloud.advance_to(shop.start + timedelta(hours=hour), wake="batch")
                cloud.put_events(by_hour[hour])
                cloud.drain()
            cloud.advance_to(shop.start + timedelta(days=day + 1), wake="batch")
        cloud.advance_to(shop.start + timedelta(days=DAYS) + SETTLE, wake="batch")
        run = Run(
            customers={c["customer_id"]: c for c in cloud.scan(_table(cloud, "Customers"))},
            ledger=[i for i in cloud.scan(_table(cloud, "Activity")) if i.get("kind") == "MSG"],
            outbox={ch: cloud.outbox(ch) for ch in ("email", "sms", "push", "line")},
            dlq={name: msgs for name, msgs in cloud.dlq_messages().items() if msgs},
            faults=cloud.summary()["faults"],
            fault_log=list(cloud.faults.log) if cloud.faults else [],
            executions={f"{m} {s}": n for (m, s), n in sorted(cloud.execution_counts().items())},
        )
        _redrive(cloud, run)
    return run


def _table(cloud: LocalCloud, contains: str) -> str:
    return cloud.find("AWS::DynamoDB::Table", contains)[0].logical_id


def _redrive(cloud: LocalCloud, run: Run) -> None:
    """``kizuna dlq redrive`` every DLQ that holds something, then let the app take them."""
    sqs = cloud.client("sqs")
    for logical_id in run.dlq:
        url = cloud.resources[logical_id].url or ""
        queue = DeadLetterQueue(
            sqs,
            url,
            lambda_client=cloud.client("lambda"),
            sfn_client=cloud.client("stepfunctions"),
        )
        try:  # what `kizuna dlq redrive QUEUE` does: each letter back to where it failed
            report = queue.redrive()
        except Exception as exc:  # not redrivable: kept as evidence
            run.redrive_errors[logical_id] = f"{type(exc).__name__}: {exc}"
            continue
        run.redriven[logical_id] = report.moved
        if report.failed:
            run.redrive_errors[logical_id] = "; ".join(report.errors)
    cloud.advance(days=1)
    run.dlq_after_redrive = {n: m for n, m in cloud.dlq_messages().items() if m}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return kizuna_template(DEMO_CONTEXT)


@pytest.fixture(scope="module")
def runs(template: dict[str, Any]) -> Iterator[tuple[Run, Run]]:
    reference = run_shop(template, None)
    faulted = run_shop(template, FaultPlan.parse(SPEC, seed=SEED))
    yield reference, faulted


# --- what the checks read --------------------------------------------------------------
def facts(customer: dict[str, Any]) -> dict[str, Any]:
    # event ids are EventBridge's (new each run): how many were kept is what compares
    return {name: customer.get(name) for name in FACTS} | {
        "processed": len(customer.get("processed") or {})
    }


def _attribute(message: dict[str, Any], name: str) -> str:
    spec = (message.get("message_attributes") or {}).get(name) or {}
    return str(spec.get("StringValue") or spec.get("string_value") or "")


def reason(message: dict[str, Any]) -> str:
    """Why a message is dead, as `kizuna dlq show` tells an operator (kizuna_tools.dlq):
    Kizuna's attributes, EventBridge's and Scheduler's (ERROR_CODE, ERROR_MESSAGE), a Lambda
    on-failure record's response, or that SQS moved it itself after its last receive."""
    dead = dead_message(
        {
            "MessageId": "-",
            "ReceiptHandle": "-",
            "Body": message["body"],
            "MessageAttributes": {
                name: {"StringValue": _attribute(message, name)}
                for name in message.get("message_attributes") or {}
            },
        }
    )
    return f"{dead.error_type}: {dead.error}" if dead.error_type != "-" else ""


def faults_near(run: Run, at: str, minutes: int = 15) -> list[tuple[str, str, str]]:
    """The faults injected within ``minutes`` of virtual time ``at`` (evidence)."""
    when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    found = []
    for target, kind, note in run.fault_log:
        _, _, stamp = note.rpartition(" at ")
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if abs((moment - when).total_seconds()) <= minutes * 60:
            found.append((target, kind, note))
    return found


def delivered(run: Run) -> Counter[tuple[str, str, str, str, str]]:
    """(customer, program, step, channel, address) of every message a provider took."""
    keys: Counter[tuple[str, str, str, str, str]] = Counter()
    for email in run.outbox["email"]:
        tags = {t["Name"]: decode_tag_value(t["Value"]) for t in email["request"]["EmailTags"]}
        to = ",".join(email["request"]["Destination"]["ToAddresses"])
        keys[(tags["customer"], tags["program"], tags["step"], "email", to)] += 1
    for push in run.outbox["push"]:
        context = push["context"] or {}
        keys[
            (context["customer"], context["program"], context["step"], "push", push["address"])
        ] += 1
    line_keys = {
        line_retry_key(str(m["execution"]), str(m["step"]), str(m["pk"])): m
        for m in run.ledger
        if m.get("channel") == "line" and m.get("execution")
    }
    for line in run.outbox["line"]:
        retry_key = {k.lower(): v for k, v in line["headers"].items()}.get("x-line-retry-key")
        item = line_keys.get(str(retry_key), {})
        who = (str(item.get("pk", "?")), str(item.get("program", "?")), str(item.get("step", "?")))
        keys[(*who, "line", str(line.get("to")))] += 1
    for sms in run.outbox["sms"]:
        keys[("?", "?", "?", "sms", str(sms.get("phone_number")))] += 1
    return keys


def sends(run: Run, status: str) -> set[tuple[str, str, str]]:
    return {
        (str(m["pk"]), str(m["program"]), str(m["step"]))
        for m in run.ledger
        if m.get("status") == status
    }


# --- the checks ---------------------------------------------------------------------------
def test_faults_were_injected_of_every_kind(runs: tuple[Run, Run]) -> None:
    reference, faulted = runs
    assert reference.faults is None and faulted.faults is not None
    assert set(faulted.faults["by_kind"]) == {"throttle", "error", "after", "timeout", "duplicate"}
    assert faulted.faults["total"] > 100
    assert reference.ledger and reference.outbox["email"]  # the shop sent something


def test_every_inbound_fact_is_applied_exactly_once(runs: tuple[Run, Run]) -> None:
    reference, faulted = runs
    assert set(faulted.customers) == set(reference.customers)
    differ = {
        cid: {
            k: (v, facts(faulted.customers[cid])[k])
            for k, v in facts(c).items()
            if facts(faulted.customers[cid])[k] != v
        }
        for cid, c in reference.customers.items()
        if facts(faulted.customers[cid]) != facts(c)
    }
    assert differ == {}, f"{len(differ)} customers' facts differ (reference, faulted)"


def test_no_customer_gets_a_message_twice(runs: tuple[Run, Run]) -> None:
    for run in runs:
        twice = {key: n for key, n in delivered(run).items() if n > 1}
        evidence = [
            (m["sk"], m["status"], m.get("at"), faults_near(run, str(m.get("at")), 1))
            for m in run.ledger
            if (m["pk"], m["program"], m["step"]) in {k[:3] for k in twice}
        ]
        assert twice == {}, f"{sum(twice.values())} copies for {len(twice)} messages: {evidence}"


def test_every_sent_row_has_its_message_and_every_message_its_row(runs: tuple[Run, Run]) -> None:
    _, faulted = runs
    by_send = {key[:3] for key in delivered(faulted)}
    sent = sends(faulted, "sent")
    assert sent - by_send == set(), "recorded sent, never delivered"
    unrecorded = by_send - sent - sends(faulted, "failed")
    assert unrecorded == set(), "delivered, recorded neither sent nor failed"


def test_no_row_is_left_sending(runs: tuple[Run, Run]) -> None:
    for run in runs:
        stuck = [
            (m["pk"], m["sk"], m.get("channel"), m.get("at"), faults_near(run, str(m["at"]), 1))
            for m in run.ledger
            if m["status"] == "sending"
        ]
        assert stuck == []


def test_every_failed_send_has_a_reason(runs: tuple[Run, Run]) -> None:
    _, faulted = runs
    assert [
        m["sk"] for m in faulted.ledger if m["status"] == "failed" and not m.get("reason")
    ] == []


def test_the_messages_due_are_those_of_the_fault_free_run(runs: tuple[Run, Run]) -> None:
    """The strongest check: same seed, same sends, except those recorded failed (with a
    reason) after the faults."""
    reference, faulted = runs
    expected = sends(reference, "sent")
    got = sends(faulted, "sent") | {s for s in sends(faulted, "failed") if s in expected}
    only_faulted = sends(faulted, "sent") - expected
    # Retries delay a step by seconds to minutes, and the frequency caps are rolling windows
    # (24 hours, 7 days): a delayed send can find yesterday's message still inside the window,
    # and two programs' messages competing for the cap can change places. That is the cap at
    # work, not a lost message: it is suppressed with the cap as its reason, and no customer
    # gets more messages than without faults.
    capped = {
        s
        for s in expected - got
        if any(
            (m["pk"], m["program"], m["step"]) == s
            and m["status"] == "suppressed"
            and str(m.get("reason", "")).startswith("frequency_cap")
            for m in faulted.ledger
        )
    }
    swapped = {s for s in only_faulted if s[0] in {c[0] for c in capped}}
    per_customer = Counter(s[0] for s in capped)
    assert all(n <= per_customer[c] for c, n in Counter(s[0] for s in swapped).items()), (
        capped,
        swapped,
    )
    missing = {
        s: [
            (m["status"], m.get("reason"))
            for m in faulted.ledger
            if (m["pk"], m["program"], m["step"]) == s
        ]
        for s in sorted(expected - got - capped)
    }
    assert missing == {}, (
        "sent without faults, neither sent nor failed with them (their ledger rows with "
        f"faults; executions with faults: {faulted.executions}, without: {reference.executions})"
    )
    assert sorted(only_faulted - swapped) == [], "sent only with faults"


def test_every_dead_letter_has_its_reason(runs: tuple[Run, Run]) -> None:
    _, faulted = runs
    without = {
        name: [m["body"][:120] for m in messages if not reason(m)]
        for name, messages in faulted.dlq.items()
    }
    assert {k: v for k, v in without.items() if v} == {}


def test_every_dead_letter_can_be_redriven(runs: tuple[Run, Run]) -> None:
    _, faulted = runs
    reasons = {n: sorted({reason(m)[:100] for m in ms}) for n, ms in faulted.dlq.items()}
    assert faulted.redrive_errors == {}, f"dead letters: {reasons}"
    assert faulted.redriven == {name: len(messages) for name, messages in faulted.dlq.items()}


# --- the harness reaches the app, and only the app ----------------------------------------
def test_faults_reach_handlers_not_the_runtime_nor_producers(
    template: dict[str, Any], tmp_path: Path
) -> None:
    plan = FaultPlan.parse("dynamodb=1:throttle,events=1:throttle", seed=1)
    shop = Shop(customers=3, days=1, seed=1)
    with LocalCloud.from_template(
        template,
        project_root=default_project_root(),
        start=shop.start,
        environment_overrides=QUIET,
        faults=plan,
    ) as cloud:
        prepare_channels(cloud)  # a test's own calls: not faulted
        _, entries = next(iter(shop.days_of_events()))
        results = cloud.put_events(entries[:5])  # a producer's PutEvents: not faulted
        cloud.drain()
        customers = cloud.scan(_table(cloud, "Customers"))  # the runtime's: not faulted
        errors = cloud.summary()["faults"]
    assert all("EventId" in r for r in results)
    assert customers == []  # ingest could not write one
    assert errors["by_target"]["dynamodb.BatchGetItem"]["throttle"] >= 1
    assert "events.PutEvents" not in errors["by_target"]
