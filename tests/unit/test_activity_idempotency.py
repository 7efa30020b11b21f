"""Activity is as idempotent as state: a redelivered record writes no row again and never
rewrites one with fewer fields (issue #20, item 5)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from kizuna.domain.activity import ActivityItem
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from tests.factories import T0, adjust, cancel, days, envelope, order
from tests.sqs_events import sqs_event, sqs_record


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[str] = Counter()

    def put_activity(self, items: Iterable[ActivityItem]) -> None:
        items = list(items)
        self.writes.update(i.sk for i in items)
        super().put_activity(items)


def events() -> list[dict[str, Any]]:
    out = []
    for i in range(20):
        at = T0 + days(i)
        out.append(order("c1", f"o{i}", 5000 * (i % 5 + 1), at))
        status = "opted_in" if i % 2 else "opted_out"
        out.append(
            envelope(
                "consent.changed",
                {
                    "customer_id": "c1",
                    "occurred_at": at.isoformat(),
                    "channel": "email",
                    "status": status,
                    "source": "web",
                },
                f"ev-consent-{i}",
            )
        )
        out.append(
            envelope(
                "app.opened",
                {"customer_id": "c1", "occurred_at": at.isoformat(), "platform": "APNS"},
                f"ev-app-{i}",
            )
        )
    out.append(cancel("c1", "o3", T0 + days(21)))
    out.append(adjust("c1", "a1", -100, T0 + days(22)))
    return out


def deliver(raws: list[dict[str, Any]]) -> CountingStore:
    store = CountingStore()
    svc = IngestService(
        store,
        MemoryPublisher(),
        MemoryDeadLetters(),
        KizunaConfig(),
        FixedClock(T0 + days(30)),
        max_receive_count=3,
    )
    for k in range(0, len(raws), 10):
        records = [sqs_record(r, f"m{k + j}") for j, r in enumerate(raws[k : k + 10])]
        assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    return store


def with_duplicates(raws: list[dict[str, Any]], copies: int, seed: int) -> list[dict[str, Any]]:
    """Every event ``copies`` times: the first copies in the original order, the others
    anywhere after their first copy."""
    rng = random.Random(seed)
    out = list(raws)
    for _ in range(copies - 1):
        for i, raw in enumerate(raws):
            first = out.index(raw)
            out.insert(rng.randint(first + 1, len(out)), raw)
            del i
    return out


def test_three_deliveries_give_the_same_rows_as_one() -> None:
    once = deliver(events())
    thrice = deliver(with_duplicates(events(), 3, seed=4))
    # the same rows, field for field
    assert thrice.activity == once.activity
    orders = [i for i in thrice.activity.values() if i.kind == "ORDER"]
    assert len(orders) == 20
    assert all("points_balance_after" in i.data and "rank_after" in i.data for i in orders)
    # and the rows of facts folded into state were written once, not once per delivery
    assert thrice.writes == once.writes
    assert set(thrice.writes.values()) == {1}
    assert thrice.customers["c1"].derived_view() == once.customers["c1"].derived_view()
