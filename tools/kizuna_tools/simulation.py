"""A synthetic shop for the local demo: customers with attributes and consent, and their
behaviour day by day (one-timers, repeaters, churners; app and web browsing; carts that are
abandoned; cancellations; point redemptions). Deterministic for a seed.

It produces the inbound events a real shop would put on the bus, nothing else: what happens
next is the real pipeline's doing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

# (prefecture, region, weight ~ population in millions)
PREFECTURES: tuple[tuple[str, str, float], ...] = (
    ("Tokyo", "Kanto", 14.0),
    ("Kanagawa", "Kanto", 9.2),
    ("Saitama", "Kanto", 7.3),
    ("Chiba", "Kanto", 6.3),
    ("Osaka", "Kansai", 8.8),
    ("Hyogo", "Kansai", 5.4),
    ("Kyoto", "Kansai", 2.6),
    ("Aichi", "Chubu", 7.5),
    ("Shizuoka", "Chubu", 3.6),
    ("Hokkaido", "Hokkaido", 5.1),
    ("Miyagi", "Tohoku", 2.3),
    ("Hiroshima", "Chugoku", 2.8),
    ("Fukuoka", "Kyushu", 5.1),
    ("Okinawa", "Kyushu", 1.5),
    ("Ehime", "Shikoku", 1.3),
)
OCCUPATIONS = (
    "office_worker",
    "engineer",
    "student",
    "homemaker",
    "self_employed",
    "public_servant",
    "healthcare",
    "retired",
    "part_time",
)
JA_FIRST = ("Hanako", "Yui", "Aoi", "Sakura", "Haruto", "Sota", "Ren", "Yuto", "Mei", "Riku")
JA_LAST = ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura")
EN_FIRST = ("Emma", "Olivia", "Liam", "Noah", "Ava", "Mia", "Lucas", "Ethan")
EN_LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies")
EN_ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Australia/Sydney")
CATEGORIES = {
    "tea": (980, 1800, 2400, 3600),
    "ware": (2800, 6400, 12000),
    "sweets": (640, 1200, 2200),
    "gift": (5400, 10800, 21600),
}
PRODUCTS = [(f"{cat}-{i:03d}", cat) for cat in CATEGORIES for i in range(40)]
PRODUCT_NAMES = {"tea": "Tea", "ware": "Teaware", "sweets": "Sweets", "gift": "Gift set"}
# Lines after an order's first go to the same "collection" (same number, other category)
# this often: what the co-purchase model should find.
COLLECTION_AFFINITY = 0.6


def catalog() -> list[dict[str, str]]:
    """The synthetic shop's product feed (what ``kizuna import products`` would read)."""
    return [
        {
            "product_id": pid,
            "name": f"{PRODUCT_NAMES[cat]} No. {int(pid.rsplit('-', 1)[1]) + 1}",
            "url": f"https://shop.example.com/p/{pid}",
            "category": cat,
        }
        for pid, cat in PRODUCTS
    ]


SHOP_SOURCE = "com.example.shop"


@dataclass
class SimCustomer:
    customer_id: str
    persona: str  # one_timer | repeater | churner | browser
    joined: int  # day index
    order_every: float  # mean days between orders
    churn_day: int
    platform: str | None
    opens_app: bool
    orders: list[str] = field(default_factory=list)


@dataclass
class Shop:
    customers: int
    days: int
    seed: int = 42
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.population: list[SimCustomer] = []
        self.order_seq = 0
        self.event_seq = 0

    # -- events ---------------------------------------------------------------------------
    def _event(self, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        self.event_seq += 1
        return {
            "Source": SHOP_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
        }

    def _customer_event(
        self, detail_type: str, customer_id: str, at: datetime, **detail: Any
    ) -> dict[str, Any]:
        """An event about one customer at ``at`` (the fields every shop event starts with)."""
        return self._event(
            detail_type, {"customer_id": customer_id, "occurred_at": at.isoformat(), **detail}
        )

    def _at(self, day: int, hour_lo: int = 7, hour_hi: int = 23) -> datetime:
        return self.start + timedelta(days=day, hours=self.rng.uniform(hour_lo, hour_hi) - 9)

    def _new_customer(self, n: int, day: int) -> tuple[SimCustomer, list[dict[str, Any]]]:
        rng = self.rng
        cid = f"cust-{n:06d}"
        ja = rng.random() < 0.9
        pref, region, _ = rng.choices(PREFECTURES, weights=[p[2] for p in PREFECTURES])[0]
        age = int(min(80, max(16, rng.gauss(40, 13))))
        birth = date(2026 - age, rng.randint(1, 12), rng.randint(1, 28))
        persona = rng.choices(
            ["one_timer", "repeater", "churner", "browser"], weights=[40, 25, 15, 20]
        )[0]
        platform = rng.choice(["APNS", "FCM"]) if rng.random() < 0.45 else None
        sim = SimCustomer(
            customer_id=cid,
            persona=persona,
            joined=day,
            order_every={
                "one_timer": 1e9,
                "repeater": rng.uniform(12, 35),
                "churner": rng.uniform(8, 20),
                "browser": 1e9,
            }[persona],
            churn_day=day + rng.randint(15, 50),
            platform=platform,
            opens_app=platform is not None and rng.random() < 0.8,
        )
        at = self._at(day)
        first = rng.choice(JA_FIRST if ja else EN_FIRST)
        last = rng.choice(JA_LAST if ja else EN_LAST)
        profile = {
            "customer_id": cid,
            "occurred_at": at.isoformat(),
            "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
            "first_name": first,
            "last_name": last,
            "region": region if ja else "Overseas",
            "prefecture": pref if ja else None,
            "birth_date": birth.isoformat(),
            "gender": rng.choices(["female", "male", "other", "unknown"], [52, 44, 2, 2])[0],
            "occupation": rng.choice(OCCUPATIONS),
            "locale": "ja" if ja else "en",
            "time_zone": "Asia/Tokyo" if ja else rng.choice(EN_ZONES),
        }
        if rng.random() < 0.6:
            profile["phone"] = f"+8190{rng.randrange(10**8):08d}"
        events = [self._event("customer.upserted", {k: v for k, v in profile.items() if v})]
        consents = {"email": 0.75, "sms": 0.3, "push": 0.9 if platform else 0.0, "line": 0.35}
        for channel, p in consents.items():  # the signup form sends the opt-ins
            if rng.random() < p:
                events.append(
                    self._customer_event(
                        "consent.changed",
                        cid,
                        at,
                        channel=channel,
                        status="opted_in",
                        source="signup",
                    )
                )
        if platform:
            events.append(
                self._customer_event(
                    "device.registered",
                    cid,
                    at,
                    platform=platform,
                    token=f"{platform.lower()}-{rng.getrandbits(128):032x}",
                )
            )
        if rng.random() < 0.35:
            events.append(
                self._customer_event(
                    "line.linked",
                    cid,
                    at,
                    line_user_id=f"U{rng.getrandbits(128):032x}",
                )
            )
        # a first order soon after joining, for most
        if persona != "browser" and rng.random() < 0.85:
            sim.order_every = sim.order_every if persona != "one_timer" else 1e9
            self._order(sim, day + rng.choice([0, 0, 1, 2, 3]))
        return sim, events

    def _order(self, c: SimCustomer, day: int) -> None:
        """Schedule an order (with its day's events)."""
        if day >= self.days:
            return
        rng = self.rng
        self.order_seq += 1
        oid = f"ord-{self.order_seq:07d}"
        lines: list[dict[str, Any]] = []
        first: str | None = None
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            pid, cat = rng.choice(PRODUCTS)
            if first is None:
                first = pid
            elif rng.random() < COLLECTION_AFFINITY:
                cat = rng.choice([c for c in CATEGORIES if c != first.split("-")[0]])
                pid = f"{cat}-{first.rsplit('-', 1)[1]}"
            lines.append(
                {
                    "product_id": pid,
                    "category": cat,
                    "quantity": rng.choice([1, 1, 2]),
                    "unit_price": str(rng.choice(CATEGORIES[cat])),
                }
            )
        total = sum(int(li["unit_price"]) * li["quantity"] for li in lines)
        at = self._at(day)
        c.orders.append(oid)
        self._pending_day.setdefault(day, []).append(
            self._customer_event(
                "order.placed",
                c.customer_id,
                at,
                order_id=oid,
                lines=lines,
                total=str(total),
                currency="JPY",
                channel="app"
                if c.opens_app and rng.random() < 0.5
                else rng.choice(["web", "web", "store"]),
            )
        )

    # -- the simulation -------------------------------------------------------------------
    def days_of_events(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Yield (day, PutEvents entries) for each simulated day, in time order."""
        rng = self.rng
        self._pending_day: dict[int, list[dict[str, Any]]] = {}
        # 60% of the base exists on day 0, the rest joins over the period
        joins = [
            0 if rng.random() < 0.6 else rng.randrange(self.days) for _ in range(self.customers)
        ]
        for day in range(self.days):
            entries: list[dict[str, Any]] = []
            for n, joined in enumerate(joins):
                if joined == day:
                    sim, events = self._new_customer(n, day)
                    self.population.append(sim)
                    entries += events
            for c in self.population:
                if c.joined == day:
                    continue
                active = day < c.churn_day or c.persona == "repeater"
                if active and c.orders and rng.random() < 1 / c.order_every:
                    self._order(c, day)
                if c.opens_app and active and rng.random() < 0.05:
                    entries.append(
                        self._customer_event(
                            "app.opened",
                            c.customer_id,
                            self._at(day),
                            platform=c.platform,
                        )
                    )
                if active and rng.random() < 0.025:
                    pid, cat = rng.choice(PRODUCTS)
                    entries.append(
                        self._customer_event(
                            "product.viewed",
                            c.customer_id,
                            self._at(day),
                            product_id=pid,
                            category=cat,
                            channel="app" if c.opens_app else "web",
                        )
                    )
                    if rng.random() < 0.3:
                        price = CATEGORIES[cat][0]
                        entries.append(
                            self._customer_event(
                                "cart.updated",
                                c.customer_id,
                                self._at(day, 20, 23),
                                cart_id=f"cart-{c.customer_id}",
                                items=[
                                    {"product_id": pid, "quantity": 1, "unit_price": str(price)}
                                ],
                            )
                        )
                if c.orders and rng.random() < 0.0015:
                    entries.append(
                        self._customer_event(
                            "order.cancelled",
                            c.customer_id,
                            self._at(day),
                            order_id=c.orders[-1],
                            reason="customer_request",
                        )
                    )
                if c.orders and rng.random() < 0.002:
                    entries.append(
                        self._customer_event(
                            "points.adjusted",
                            c.customer_id,
                            self._at(day),
                            adjustment_id=f"redeem-{self.event_seq}",
                            delta=-100,
                            reason="redeemed at checkout",
                        )
                    )
            entries += self._pending_day.pop(day, [])
            entries.sort(key=lambda e: json.loads(e["Detail"])["occurred_at"])
            yield day, entries
