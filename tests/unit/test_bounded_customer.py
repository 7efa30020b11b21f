"""The customer item stays bounded whatever the number of orders, and its state is the
state of the whole history (issue #20, items 4 and 16)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kizuna.adapters.dynamodb import customer_to_item
from kizuna.domain.behaviour import count_occurrence
from kizuna.domain.customer import (
    MAX_DEVICE_TOKEN_CHARS,
    MAX_DEVICES,
    MAX_REFUNDS,
    MAX_SUPPRESSED_ADDRESSES,
    AdjustmentFact,
    Customer,
    OrderFact,
)
from kizuna.domain.loyalty import recompute
from kizuna.events import ConsentChannel
from kizuna.events.custom import MAX_OCCURRENCES, vocabulary
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from kizuna_tools.importer import import_file
from tests.factories import T0, adjust, cancel, envelope, order, refund
from tests.sqs_events import sqs_event, sqs_record

# Decades of history: older than event_time.max_age_days' default (about 10 years), which an
# import of such a history raises, as docs/IMPORT.md says
CFG = KizunaConfig.model_validate({"event_time": {"max_age_days": 36_525}})
LOYALTY_FIELDS = (
    "order_count",
    "first_order_at",
    "first_order_id",
    "last_order_at",
    "lifetime_value",
    "spend_12m",
    "rank",
    "rank_points",
    "next_rank",
    "points_to_next_rank",
    "points_balance",
    "points_next_expiry_at",
    "points_next_expiry_amount",
)
START = T0 - timedelta(days=20 * 365)  # 20 years of history, orders at 10:00 UTC


def item_size(customer: Customer) -> int:
    """Bytes of the item as JSON: more than DynamoDB counts (quotes, digits as text)."""
    return len(json.dumps(customer_to_item(customer), default=str).encode())


def loyalty(c: Customer) -> dict[str, object]:
    return {f: getattr(c, f) for f in LOYALTY_FIELDS}


@dataclass
class Facts:
    """What was sent, folded the simple way (every fact kept): the reference."""

    orders: dict[str, OrderFact] = field(default_factory=dict)
    adjustments: dict[str, AdjustmentFact] = field(default_factory=dict)
    last: datetime = START

    def placed(self, oid: str, at: datetime, total: Decimal) -> None:
        current = self.orders.get(oid, OrderFact())
        self.orders[oid] = current.model_copy(update={"placed": True, "at": at, "total": total})
        self.last = max(self.last, at)

    def cancelled(self, oid: str, at: datetime) -> None:
        current = self.orders.get(oid, OrderFact())
        if current.cancelled_at is None or at < current.cancelled_at:
            self.orders[oid] = current.model_copy(update={"cancelled_at": at})
        self.last = max(self.last, at)

    def adjusted(self, aid: str, at: datetime, delta: int) -> None:
        self.adjustments.setdefault(aid, AdjustmentFact(at=at, delta=delta, reason="manual"))
        self.last = max(self.last, at)

    def state(self, cid: str) -> Customer:
        c = Customer(
            customer_id=cid,
            orders=self.orders,
            adjustments=self.adjustments,
            last_event_at=self.last,
        )
        return recompute(c, CFG.loyalty)


def history(n: int, facts: Facts, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` orders over 20 years (0-6 a day, all at 10:00 UTC; one in 500 has 500 lines),
    2% cancelled a few days later: JSON Lines rows for the importer."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    per_day = max(1, n // (20 * 365) * 2 + 1)
    day = 0
    while len(rows) < n:
        for _ in range(rng.randint(0, per_day)):
            if len(rows) == n:
                break
            i = len(rows)
            at = START + timedelta(days=day)
            width = 500 if i % 500 == 7 else rng.randint(1, 3)
            lines = [
                {"product_id": f"p-{(i * 7 + k) % 900}", "quantity": 1, "unit_price": "100"}
                for k in range(width)
            ]
            total = Decimal(100 * width + 100 * rng.randint(0, 400))
            row: dict[str, Any] = {
                "order_id": f"o-{i}",
                "customer_id": "heavy",
                "ordered_at": at.isoformat(),
                "lines": lines,
                "total": str(total),
                "channel": "web",
            }
            facts.placed(f"o-{i}", at, total)
            if rng.random() < 0.02:
                cancelled_at = at + timedelta(days=rng.randint(1, 5))
                row["cancelled_at"] = cancelled_at.isoformat()
                facts.cancelled(f"o-{i}", cancelled_at)
            rows.append(row)
        day += 1
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def deliver(
    store: MemoryStore, raws: list[dict[str, Any]], now: datetime, cfg: KizunaConfig = CFG
) -> list[str]:
    """Deliver ``raws`` 10 a batch; the reasons of the events dead-lettered."""
    dead = MemoryDeadLetters()
    svc = IngestService(store, MemoryPublisher(), dead, cfg, FixedClock(now), max_receive_count=3)
    for k in range(0, len(raws), 10):
        records = [sqs_record(r, f"m{k + j}") for j, r in enumerate(raws[k : k + 10])]
        assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    return [letter.reason for letter in dead.letters]


@pytest.mark.parametrize("n", [3_000, 20_000])
def test_a_customer_with_thousands_of_orders_stays_bounded_and_exact(
    tmp_path: Path, n: int
) -> None:
    # given n orders (some of 500 lines, some cancelled) imported as a new user would
    facts = Facts()
    rows = history(n, facts)
    # (the clock of the import and of the live deliveries: after the last of them)
    now = max(o.at for o in facts.orders.values() if o.at) + timedelta(days=60)
    store = MemoryStore()
    report = import_file("orders", write_jsonl(tmp_path / "o.jsonl", rows), store, CFG, now)
    assert (report.rejected, report.customers_written) == (0, 1)
    imported = store.customers["heavy"]
    # then the item is small and its state is that of the whole history
    assert item_size(imported) < 100_000
    assert loyalty(imported) == loyalty(facts.state("heavy"))
    assert imported.order_count > 0.95 * n and imported.processed == {}

    # when the customer keeps buying live, redeems points, cancels an order the item has
    # settled, and an old order arrives late, each delivered twice
    last = max(o.at for o in facts.orders.values() if o.at)
    live: list[dict[str, Any]] = []
    for i in range(40):
        at = last + timedelta(days=1 + i)
        live.append(order("heavy", f"live-{i}", 5000 + 100 * i, at))
        facts.placed(f"live-{i}", at, Decimal(5000 + 100 * i))
    live.append(adjust("heavy", "redeem-1", -700, last + timedelta(days=3)))
    facts.adjusted("redeem-1", last + timedelta(days=3), -700)
    live.append(adjust("heavy", "bonus-1", 300, last + timedelta(days=4)))
    facts.adjusted("bonus-1", last + timedelta(days=4), 300)
    settled = max(  # the most recent order the item holds no more
        (o.at, oid)
        for oid, o in facts.orders.items()
        if o.counts and o.at and oid not in imported.orders
    )[1]
    live.append(cancel("heavy", settled, last + timedelta(days=5)))
    facts.cancelled(settled, last + timedelta(days=5))
    old_at = last - timedelta(days=400)
    live.append(order("heavy", "late-old", 12000, old_at))
    facts.placed("late-old", old_at, Decimal(12000))
    deliver(store, live + live, now)

    # then the state is still exact and the item still bounded
    after = store.customers["heavy"]
    assert loyalty(after) == loyalty(facts.state("heavy"))
    assert item_size(after) < 100_000
    assert len(after.orders) <= 150

    # and importing the same file again changes nothing
    report = import_file("orders", write_jsonl(tmp_path / "o.jsonl", rows), store, CFG, now)
    assert report.rejected == 0
    assert loyalty(store.customers["heavy"]) == loyalty(after)


def dynamodb_size(value: Any) -> int:
    """Bytes DynamoDB counts for a value (its item-size rules: UTF-8 strings, numbers by
    significant digits, 3 bytes per map or list plus 1 per element, names of map keys)."""
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode()) + 1 + dynamodb_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + dynamodb_size(v) for v in value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, Decimal):
        return (len(value.normalize().as_tuple().digits) + 1) // 2 + 1
    return len(str(value).encode())


# The custom vocabulary at its largest: 250 attributes (40-character names) and 50 events with
# the longest detail-types, each counted over a window, and the 4 tracked built-ins
LONGEST_EVENT = ".".join(["e" * 31] * 3)  # + ".<2 letters>": 127 characters, the pattern's max
WORST_CFG = CFG.model_validate(
    {
        **CFG.model_dump(mode="json"),
        "custom": {
            "attributes": [{"name": f"a{n:039d}", "type": "string"} for n in range(250)],
            "events": [
                {"detail_type": f"{LONGEST_EVENT}.{chr(97 + n // 26)}{chr(97 + n % 26)}"}
                for n in range(50)
            ],
            "tracked": [
                {"detail_type": t}
                for t in ("app.opened", "product.viewed", "cart.updated", "order.placed")
            ],
        },
    }
)


def test_the_worst_case_item_fits_in_dynamodb() -> None:
    """Every identifier at its longest (128 characters), every order of 500 lines, a cart of
    500 items, MAX_REFUNDS refunds, the largest derived records, 250 custom attributes of 256 characters, 54
    full behaviour counters, 25 push devices registered with the longest tokens (the
    MAX_DEVICES newest kept) and 25 unregistered before them (bounded with the devices):
    the item stays under 400 KB."""
    long = "x" * 120
    # cancellations waiting for their order, first (later, a cancellation of an order the item
    # does not hold needs the fact log: slow, and not what this test measures)
    raws: list[dict[str, Any]] = [
        cancel("c1", f"{long[:117]}pending{j:04d}", T0 + timedelta(hours=400 + j))
        for j in range(20)
    ]
    for i in range(400):
        at = T0 + timedelta(hours=i)
        raw = order("c1", f"{long}{i:08d}", 1000, at)
        raw["detail"]["lines"] = [
            {"product_id": f"{long}{i:04d}{k:04d}", "quantity": 1, "unit_price": "2"}
            for k in range(500)
        ]
        raws.append(raw)
        if i % 2 == 0:
            a = adjust("c1", f"{long}{i:08d}", 5 if i % 4 else -3, at)
            a["detail"]["reason"] = "r" * 128
            raws.append(a)
    # and as many refunds of the orders kept as the item holds, the longest ids
    raws += [
        refund(
            "c1",
            f"{long}{399 - k:08d}",
            f"{long}{k:08d}",
            1,
            T0 + timedelta(hours=420 + k),
            reason="r" * 128,
        )
        for k in range(MAX_REFUNDS)
    ]
    cart_items = [
        {"product_id": f"{long}{k:08d}", "quantity": 1, "unit_price": "1"} for k in range(500)
    ]
    raws.append(
        envelope(
            "cart.updated",
            {
                "customer_id": "c1",
                "occurred_at": (T0 + timedelta(days=30)).isoformat(),
                "cart_id": long,
                "items": cart_items,
                "currency": "JPY",
            },
            "ev-cart",
        )
    )
    raws.append(
        envelope(
            "customer.upserted",
            {
                "customer_id": "c1",
                "occurred_at": (T0 + timedelta(days=30)).isoformat(),
                "attributes": {f"a{n:039d}": "v" * 256 for n in range(250)},
            },
            "ev-attributes",
        )
    )
    raws += [
        envelope(
            "device.registered",
            {
                "customer_id": "c1",
                "occurred_at": (T0 + timedelta(days=30, seconds=n)).isoformat(),
                "token": f"{n:08d}" + "T" * (MAX_DEVICE_TOKEN_CHARS - 8),
                "platform": "FCM",
            },
            f"ev-device-{n}",
        )
        for n in range(MAX_DEVICES + 5)
    ]
    # and as many unregistrations of other tokens as are remembered, and more
    raws += [
        envelope(
            "device.unregistered",
            {
                "customer_id": "c1",
                "occurred_at": (T0 + timedelta(days=29, seconds=n)).isoformat(),
                "token": f"gone{n:08d}" + "T" * (MAX_DEVICE_TOKEN_CHARS - 12),
            },
            f"ev-unregistered-{n}",
        )
        for n in range(MAX_DEVICES + 5)
    ]
    # and more suppressed addresses than are kept on every channel, the longest reason
    raws += [
        envelope(
            "channel.suppressed",
            {
                "customer_id": "c1",
                "occurred_at": (T0 + timedelta(days=29, seconds=n)).isoformat(),
                "channel": channel.value,
                "reason": "r" * 32,
                "address_hash": f"{n:032x}",
            },
            f"ev-suppressed-{channel.value}-{n}",
        )
        for channel in ConsentChannel
        for n in range(MAX_SUPPRESSED_ADDRESSES + 5)
    ]
    store = MemoryStore()
    dead = deliver(store, raws, T0 + timedelta(days=31), WORST_CFG)
    assert not dead  # every event above is valid: the item holds them all
    customer = store.customers["c1"]
    assert (
        len(customer.attributes) == 250 and customer.cart and len(customer.cart.product_ids) == 500
    )
    assert len([o for o in customer.orders.values() if not o.placed]) == 20
    assert sum(len(o.refunds) for o in customer.orders.values()) == MAX_REFUNDS
    assert len(customer.devices) == MAX_DEVICES  # the newest 20 of 25
    assert customer.unregistered_devices == {}  # older than every device kept
    assert [len(customer.suppressed_addresses[c]) for c in ConsentChannel] == [
        MAX_SUPPRESSED_ADDRESSES
    ] * len(ConsentChannel)
    # and every counted event at its 100 occurrences (as the fold counts them)
    for event, windows in vocabulary(WORST_CFG).windows.items():
        for n in range(MAX_OCCURRENCES):
            at = T0 + timedelta(days=30, seconds=n)
            customer.behaviour[event] = count_occurrence(
                customer.behaviour.get(event), at, windows, T0 + timedelta(days=31)
            )
    # and a time zone that changed (the yearly sweeps' stamp, kizuna.domain.yearly)
    customer.time_zone_changed_at = T0 + timedelta(days=31)
    item = customer_to_item(customer)
    assert "time_zone_changed_at" in item
    size = dynamodb_size(item)
    # 380,000 before refunds were kept (MAX_REFUNDS of them: ~3 KB), DynamoDB's is 409,600
    assert size < 385_000, {k: dynamodb_size(v) for k, v in item.items()}


def test_a_large_order_is_re_emitted_whole_though_its_record_is_small() -> None:
    # given a 500-line order whose derived event could not be put the first time
    raw = order("c1", "big", 50_000, T0)
    raw["detail"]["lines"] = [
        {"product_id": f"p-{k}", "category": f"c-{k % 7}", "quantity": 1, "unit_price": "100"}
        for k in range(500)
    ]
    store, publisher = MemoryStore(), MemoryPublisher(fail_first=1)
    svc = IngestService(
        store, publisher, MemoryDeadLetters(), CFG, FixedClock(T0), max_receive_count=3
    )
    first = svc.process_batch(sqs_event(sqs_record(raw, "m1")))
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    # then the record in the item does not hold the 500 product ids
    assert item_size(store.customers["c1"]) < 5_000
    # and the redelivery re-emits the event whole
    svc.process_batch(sqs_event(sqs_record(raw, "m1", receive_count=2)))
    # (with the Bronze -> Silver its 500 rank points made)
    (emitted,) = [e for e in publisher.events if e.detail_type == "customer.first_purchase"]
    assert len(emitted.detail.product_ids) == 500 and len(emitted.detail.categories) == 7


def test_an_attribute_a_later_version_wrote_does_not_fail_the_read() -> None:
    # a deploy rolling out (or a rollback): this version reads a customer item a later
    # version stamped with an attribute it does not know, and drops it
    from kizuna.adapters.dynamodb import customer_from_item

    item = customer_to_item(Customer(customer_id="c1", email="c1@example.jp"))
    item["stamped_by_a_later_version"] = "2027-01-01T00:00:00+00:00"
    customer = customer_from_item(item)
    assert customer.email == "c1@example.jp"
    assert "stamped_by_a_later_version" not in customer_to_item(customer)
