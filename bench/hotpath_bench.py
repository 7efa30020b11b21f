"""Hot-path throughput of the ingest and evaluate functions' work, in memory.

The demo shop's events (``kizuna_tools.simulation.Shop``) as SQS batches of 10 (the deployed
batch size), on ``kizuna_tools.fakes.MemoryStore``: the figures are compute — parsing,
validation, state folding, matching, decisions — with no AWS latency. Store round trips
per event are counted beside them: on DynamoDB each is a network call of a few ms, which is
what batching saves. Each optimised path runs beside a naive baseline in the same run:

* ingest: ``IngestService.process_batch`` (one read of the batch's customers, each customer
  saved once, one activity write and one publish per batch) against the same events one at
  a time: parse, read the customer, fold, save, write activity, publish — per event.
* evaluate: ``EvaluateService.process_batch`` with the programs loaded once per container
  (``load_deployed_programs`` is cached) and one read of customers and journeys and one
  ledger write per batch, against reloading and validating ``programs/*.yaml`` and
  evaluating each event on its own.

The events evaluated are those the evaluate rule delivers (some program's trigger or goal
matches): the shop's behavioural events and the derived events ingest published.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import print_table
from kizuna.domain.customer import Customer
from kizuna.events import DerivedEvent
from kizuna.programs.evaluate import Evaluator
from kizuna.programs.loader import load_programs
from kizuna.programs.model import Program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE
from kizuna.services.evaluate import EvaluateService, incoming
from kizuna.services.ingest import IngestService, ingest_one
from kizuna_tools.demo import DEMO_CONFIG
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStarter, MemoryStore
from kizuna_tools.simulation import Shop

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "programs"
BATCH = 10  # infra/kizuna_infra/queues.py BATCH_SIZE
BASELINES = {
    "ingest": "each event on its own: parse, read the customer, fold, save, write its "
    "activity, publish its derived events",
    "evaluate": "programs/*.yaml reloaded and validated for every event, and each event "
    "evaluated on its own (its own customer, journey and ledger round trips)",
}


class CountingStore(MemoryStore):
    """MemoryStore that counts the round trips a DynamoDB store would make."""

    def __init__(self) -> None:
        super().__init__()
        self.round_trips = 0

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]:
        self.round_trips += 1
        return super().get_customers(customer_ids, unreadable_ok=unreadable_ok)

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        self.round_trips += 1
        return super().save_customer(customer, expected_version)

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        self.round_trips += 1 if customer_ids else 0
        return super().erased(customer_ids, now)

    def put_activity(self, items: Any) -> None:
        items = list(items)
        self.round_trips += (len(items) + 24) // 25  # BatchWriteItem, 25 a call
        super().put_activity(items)

    def get_journeys(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        self.round_trips += 1 if keys else 0
        return super().get_journeys(keys)

    def save_journey(self, state: Any, previous: Any) -> bool:
        self.round_trips += 1
        return super().save_journey(state, previous)


def _envelope(i: int, source: str, detail_type: str, detail: dict[str, Any]) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": f"bench-{i:08d}",
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": detail.get("occurred_at") or "2026-01-01T00:00:00+00:00",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def _record(i: int, body: str) -> dict[str, Any]:
    return {
        "messageId": f"m-{i:08d}",
        "receiptHandle": f"rh-{i}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1",
    }


def _batches(bodies: Sequence[str]) -> list[dict[str, Any]]:
    records = [_record(i, b) for i, b in enumerate(bodies)]
    return [{"Records": records[i : i + BATCH]} for i in range(0, len(records), BATCH)]


def shop_events(customers: int, days: int) -> tuple[list[str], datetime]:
    shop = Shop(customers=customers, days=days, seed=11)
    bodies: list[str] = []
    for _, entries in shop.days_of_events():
        for entry in entries:
            detail = json.loads(entry["Detail"])
            bodies.append(_envelope(len(bodies), entry["Source"], entry["DetailType"], detail))
    return bodies, shop.start + timedelta(days=days)


@contextmanager
def quiet() -> Iterator[None]:
    """Handlers log decisions at INFO; the bench measures the work, not stdout."""
    from kizuna.runtime.observability import logger

    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else 0.0


def bench_ingest(bodies: Sequence[str], cfg: KizunaConfig, clock: FixedClock) -> dict[str, Any]:
    store = CountingStore()
    publisher = MemoryPublisher()
    service = IngestService(store, publisher, MemoryDeadLetters(), cfg, clock, 5)
    batches = _batches(bodies)
    t0 = time.perf_counter()
    for batch in batches:
        service.process_batch(batch)
    fast = time.perf_counter() - t0
    assert service.stats.processed == len(bodies), service.stats

    naive_store = CountingStore()
    naive_publisher = MemoryPublisher()
    from kizuna.events.envelope import parse_inbound

    t0 = time.perf_counter()
    for body in bodies:
        event = parse_inbound(body)
        applied = ingest_one(naive_store, event, cfg, clock)
        naive_store.put_activity(applied.activity)
        derived = applied.derived_by_event.get(event.event_id, [])
        if derived:
            naive_publisher.publish(derived)
    slow = time.perf_counter() - t0
    return {
        "events": len(bodies),
        "per_s": _rate(len(bodies), fast),
        "naive_per_s": _rate(len(bodies), slow),
        "round_trips_per_event": store.round_trips / len(bodies),
        "naive_round_trips_per_event": naive_store.round_trips / len(bodies),
        "derived": len(publisher.events),
        "_store": store,
        "_derived": publisher.events,
    }


def evaluate_bodies(
    inbound: Sequence[str], derived: Sequence[DerivedEvent], programs: Sequence[Program]
) -> list[str]:
    """The events the evaluate rule would deliver: inbound and derived, some trigger or goal
    matching (the same matching the rule's ``$or`` does)."""
    bodies = list(inbound)
    for i, derived_event in enumerate(derived):
        entry = derived_event.to_entry("kizuna", KIZUNA_EVENT_SOURCE)
        bodies.append(
            _envelope(10**7 + i, entry["Source"], entry["DetailType"], json.loads(entry["Detail"]))
        )
    probe = Evaluator(
        programs,
        MemoryStore(),
        MemoryStarter(),
        MemoryPublisher(),
        KizunaConfig(),
        FixedClock(datetime.now(UTC)),
    )
    wanted = []
    for body in bodies:
        try:
            ev = incoming(body)
        except Exception:  # inbound types evaluate does not take (never routed to it)
            continue
        if probe.triggered(ev) or probe.goals(ev):
            wanted.append(body)
    wanted.sort(key=lambda b: json.loads(b)["time"])
    return wanted


def _copy(store: MemoryStore) -> CountingStore:
    out = CountingStore()
    out.customers = dict(store.customers)  # saved customers are replaced, never mutated
    return out


def bench_evaluate(
    bodies: Sequence[str],
    customers: MemoryStore,
    cfg: KizunaConfig,
    clock: FixedClock,
    naive_sample: int,
) -> dict[str, Any]:
    programs, issues = load_programs(PROGRAMS)
    assert not issues, issues
    store = _copy(customers)
    starter = MemoryStarter()
    evaluator = Evaluator(programs, store, starter, MemoryPublisher(), cfg, clock)
    service = EvaluateService(evaluator, MemoryDeadLetters(), 5)
    batches = _batches(bodies)
    t0 = time.perf_counter()
    for batch in batches:
        service.process_batch(batch)
    fast = time.perf_counter() - t0

    sample = list(bodies[:naive_sample])
    naive_store = _copy(customers)
    naive_starter = MemoryStarter()
    t0 = time.perf_counter()
    for body in sample:
        loaded, _ = load_programs(PROGRAMS)
        naive = Evaluator(loaded, naive_store, naive_starter, MemoryPublisher(), cfg, clock)
        naive.evaluate([incoming(body)])
    slow = time.perf_counter() - t0

    # between the two: programs loaded once, but each event evaluated on its own
    single_store = _copy(customers)
    single = Evaluator(programs, single_store, MemoryStarter(), MemoryPublisher(), cfg, clock)
    t0 = time.perf_counter()
    for body in bodies:
        single.evaluate([incoming(body)])
    unbatched = time.perf_counter() - t0
    return {
        "events": len(bodies),
        "per_s": _rate(len(bodies), fast),
        "naive_events": len(sample),
        "naive_per_s": _rate(len(sample), slow),
        "unbatched_per_s": _rate(len(bodies), unbatched),
        "unbatched_round_trips_per_event": single_store.round_trips / max(len(bodies), 1),
        "journeys_started": len(starter.started),
        "round_trips_per_event": store.round_trips / max(len(bodies), 1),
        "naive_round_trips_per_event": naive_store.round_trips / max(len(sample), 1),
        "programs": len(programs),
    }


def run(
    customers: int,
    days: int,
    naive_evaluate: int,
    render: dict[str, float] | None = None,
    scoring: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest and evaluate measured here; rendering and scoring taken from the results of
    render_bench and scoring_bench (same run), not measured again."""
    cfg = KizunaConfig.model_validate(DEMO_CONFIG)
    bodies, end = shop_events(customers, days)
    clock = FixedClock(end)
    with quiet():
        ingest = bench_ingest(bodies, cfg, clock)
        programs, _ = load_programs(PROGRAMS)
        to_evaluate = evaluate_bodies(bodies, ingest.pop("_derived"), programs)
        evaluate = bench_evaluate(to_evaluate, ingest.pop("_store"), cfg, clock, naive_evaluate)
    out: dict[str, Any] = {
        "customers": customers,
        "days": days,
        "ingest": ingest,
        "evaluate": evaluate,
        "baselines": BASELINES,
    }
    rows = [
        [
            "ingest (events)",
            f"{ingest['per_s']:,.0f}",
            f"{ingest['naive_per_s']:,.0f}",
            f"{ingest['round_trips_per_event']:.2f} / {ingest['naive_round_trips_per_event']:.2f}",
        ],
        [
            "evaluate (events)",
            f"{evaluate['per_s']:,.0f}",
            f"{evaluate['naive_per_s']:,.0f}",
            f"{evaluate['round_trips_per_event']:.2f} / "
            f"{evaluate['naive_round_trips_per_event']:.2f}",
        ],
    ]
    rows.append(
        [
            "evaluate, one event at a time (programs loaded once)",
            f"{evaluate['unbatched_per_s']:,.0f}",
            "-",
            f"{evaluate['unbatched_round_trips_per_event']:.2f}",
        ]
    )
    if render:
        for channel in ("email", "line"):
            rows.append(
                [
                    f"render {channel} (messages)",
                    f"{render[channel]:,.0f}",
                    f"{render[channel + '_naive']:,.0f}",
                    "-",
                ]
            )
    if scoring:
        pandas_rate = scoring.get("pandas_per_s")
        rows.append(
            [
                "RFM score (customers)",
                f"{scoring['numpy_per_s']:,.0f}",
                "-" if pandas_rate is None else f"{pandas_rate:,.0f}",
                "-",
            ]
        )
    print_table(
        f"Hot paths per second, one core, in memory ({len(bodies):,} shop events: "
        f"{customers:,} customers x {days} days; {evaluate['events']:,} evaluated)",
        ["path", "optimised/s", "naive/s", "store round trips/event (opt / naive)"],
        rows,
    )
    for name, text in BASELINES.items():
        print(f"naive {name}: {text}")
    return out


if __name__ == "__main__":
    run(1000, 14, 200)
