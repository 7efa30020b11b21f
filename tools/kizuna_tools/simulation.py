"""A synthetic shop for the local demo: customers with attributes and consent, and their
behaviour day by day (one-timers, repeaters, churners; app and web browsing; carts that are
abandoned; cancellations; point redemptions). Deterministic for a seed.

It produces the inbound events a real shop would put on the bus, nothing else: what happens
next is the real pipeline's doing.

Given the configuration (``Shop(..., config=...)``), the shop also speaks the vocabulary it
declares (``custom``): ``customer.upserted`` carries declared ``attributes`` for a share of
customers, product-related custom events (``wishlist.added``) follow some product views, and
store-related ones (``store.checked_in``) come with store orders and store visits. Those draws
come from a stream of their own (:attr:`Shop.vocabulary_rng`): every other draw, and so every
customer, order and program outcome of a seed, is the same with or without them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from kizuna.runtime.config import CustomConfig, CustomEvent, CustomValueSpec

# (prefecture, region, weight ~ population in millions)
# Share of Japanese customers with a postal address and direct-mail consent.
DM_SHARE = 0.2
# Share of customers who take email but untick "promotions" on it at signup (topics:
# docs/PREFERENCES.md): they still get loyalty news and service messages by email.
PROMOTIONS_EMAIL_OPT_OUT = 0.1
LOCALITIES = ("Chuo-ku", "Minato-ku", "Kita-ku", "Naka-ku", "Midori-ku", "Higashi-ku")
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

# The shop's stores (store_id, region): where store customers shop and check in.
STORES: tuple[tuple[str, str], ...] = (
    ("store-ginza", "Kanto"),
    ("store-yokohama", "Kanto"),
    ("store-omiya", "Kanto"),
    ("store-umeda", "Kansai"),
    ("store-kyoto", "Kansai"),
    ("store-sakae", "Chubu"),
    ("store-sapporo", "Hokkaido"),
    ("store-sendai", "Tohoku"),
    ("store-hiroshima", "Chugoku"),
    ("store-tenjin", "Kyushu"),
    ("store-matsuyama", "Shikoku"),
)
NICKNAMES = ("Hana", "Yuichan", "Aochan", "Saku", "Haru", "Sotchi", "Em", "Liv", "Nono")
# How much of the declared vocabulary the shop uses: customers whose profile carries
# attributes; of those, each attribute's share; product views followed by a product event
# (for customers who use a wishlist, and for the others); store orders with a check-in;
# store customers' daily visits without buying.
ATTRIBUTES_SHARE = 0.7
ATTRIBUTE_FILL = 0.85
PERSONAL_FILL = 0.3  # personal attributes (a nickname): fewer customers give one
WISHLISTERS = 0.3
AFTER_VIEW = {True: 0.6, False: 0.1}
WISHLIST_DAILY = 0.05  # a wishlister adds something while browsing the app, now and then
CHECK_IN_AT_ORDER = 0.7
STORE_VISIT_DAILY = 0.01


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
    store: str | None = None  # the store they shop at (the vocabulary's store events)
    wishlister: bool = False  # uses the wishlist (the vocabulary's product events)


@dataclass
class Shop:
    customers: int
    days: int
    seed: int = 42
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    # the configuration (``kizuna:config``): its ``custom`` vocabulary is spoken; without
    # one (or without ``custom``) only the built-in events are emitted
    config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        # the vocabulary's draws: a stream of their own, so self.rng's stay as they are
        self.vocabulary_rng = random.Random(f"{self.seed}:vocabulary")
        self.custom = _custom(self.config)
        self.population: list[SimCustomer] = []
        self._by_id: dict[str, SimCustomer] = {}
        self.order_seq = 0
        self.event_seq = 0
        self.key_seq = {"": 0, "custom-": 0}  # the built-in events' keys, the custom ones'

    # -- events ---------------------------------------------------------------------------
    def _keyed(self, detail: dict[str, Any], stream: str = "") -> dict[str, Any]:
        """``detail`` with the shop's own id for the event (``idempotency_key``), as a careful
        producer sends it: Kizuna then identifies the event by it, not by the bus's random
        id, so a run with the same seed names every event, derived event and journey entry
        alike, and the simulated recipients (keyed by customer, entry and step) draw the
        same outcomes. Custom events count their own keys (``stream``), so declaring a
        vocabulary leaves the built-in events as they were."""
        self.key_seq[stream] += 1
        return {**detail, "idempotency_key": f"shop-{self.seed}-{stream}{self.key_seq[stream]}"}

    def _event(self, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        self.event_seq += 1
        return {
            "Source": SHOP_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(self._keyed(detail), default=str),
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
        profile: dict[str, Any] = {
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
        # the membership starts at signup, on the customer's local date (anniversaries)
        profile["member_since"] = at.astimezone(ZoneInfo(profile["time_zone"])).date().isoformat()
        if rng.random() < 0.6:
            profile["phone"] = f"+8190{rng.randrange(10**8):08d}"
        profile["attributes"] = self._join_vocabulary(sim, region if ja else None)
        # some Japanese customers give a postal address and accept postcards (direct mail);
        # a random stream of its own, so the rest of the shop is what it was without it
        postal = random.Random(f"{self.seed}:dm:{cid}")
        mails = ja and postal.random() < DM_SHARE
        if mails:
            profile["postal_address"] = {
                "recipient_name": f"{last} {first}",
                "postal_code": f"{postal.randrange(100, 1000)}-{postal.randrange(10**4):04d}",
                "country": "JP",
                "region": pref,
                "locality": postal.choice(LOCALITIES),
                "line1": f"{postal.randint(1, 5)}-{postal.randint(1, 30)}-{postal.randint(1, 20)}",
            }
        events = [self._event("customer.upserted", {k: v for k, v in profile.items() if v})]
        if mails:
            events.append(
                self._customer_event(
                    "consent.changed", cid, at, channel="dm", status="opted_in", source="signup"
                )
            )
        consents = {"email": 0.75, "sms": 0.3, "push": 0.9 if platform else 0.0, "line": 0.35}
        opted: set[str] = set()
        for channel, p in consents.items():  # the signup form sends the opt-ins
            if rng.random() < p:
                opted.add(channel)
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
        # a random stream of its own, so the rest of the shop is what it was without it
        if "email" in opted and random.Random(f"{self.seed}:topics:{cid}").random() < (
            PROMOTIONS_EMAIL_OPT_OUT
        ):
            events.append(
                self._customer_event(
                    "preferences.changed",
                    cid,
                    at,
                    topics={"promotions": {"email": "opted_out"}},
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
            orders = self._pending_day.pop(day, [])
            entries += orders
            entries += self._vocabulary_events(day, entries, orders)
            entries.sort(key=lambda e: json.loads(e["Detail"])["occurred_at"])
            yield day, entries

    # -- the declared vocabulary (custom attributes and events) ---------------------------
    def _join_vocabulary(self, sim: SimCustomer, region: str | None) -> dict[str, Any]:
        """Decide ``sim``'s store and wishlist habit; the declared attributes their profile
        carries (empty for some customers, and without declarations)."""
        self._by_id[sim.customer_id] = sim
        if self.custom is None:
            return {}
        vr = self.vocabulary_rng
        local = [s for s, r in STORES if r == region] or [s for s, _ in STORES]
        sim.store = vr.choice(local) if region is not None and vr.random() < 0.6 else None
        sim.wishlister = vr.random() < WISHLISTERS
        if not self.custom.attributes or vr.random() >= ATTRIBUTES_SHARE:
            return {}
        store = sim.store or vr.choice(local)
        attributes: dict[str, Any] = {}
        for spec in self.custom.attributes:
            if vr.random() < (PERSONAL_FILL if spec.personal else ATTRIBUTE_FILL):
                attributes[spec.name] = self._value(spec, {"store": store})
        return attributes

    def _vocabulary_events(
        self, day: int, entries: list[dict[str, Any]], orders: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The day's declared custom events: a product event after some product views (and
        now and then from a wishlister browsing), a store event with most store orders and
        on some store customers' visits."""
        if self.custom is None or not self.custom.events:
            return []
        vr = self.vocabulary_rng
        product_events = [e for e in self.custom.events if not _is_store_event(e)]
        store_events = [e for e in self.custom.events if _is_store_event(e)]
        out: list[dict[str, Any]] = []
        if product_events:
            for entry in entries:
                if entry["DetailType"] != "product.viewed":
                    continue
                detail = json.loads(entry["Detail"])
                c = self._by_id[detail["customer_id"]]
                if vr.random() < AFTER_VIEW[c.wishlister]:
                    at = datetime.fromisoformat(detail["occurred_at"])
                    at += timedelta(minutes=vr.randint(1, 15))
                    viewed = {"product_id": detail["product_id"], "category": detail["category"]}
                    out.append(self._custom_event(vr.choice(product_events), c, at, viewed))
            for c in self.population:
                if c.wishlister and _active(c, day) and vr.random() < WISHLIST_DAILY:
                    at = self._vocabulary_at(day)
                    out.append(self._custom_event(vr.choice(product_events), c, at, {}))
        if store_events:
            for entry in orders:
                detail = json.loads(entry["Detail"])
                c = self._by_id[detail["customer_id"]]
                if detail["channel"] == "store" and vr.random() < CHECK_IN_AT_ORDER:
                    at = datetime.fromisoformat(detail["occurred_at"])
                    at -= timedelta(minutes=vr.randint(2, 20))
                    visit = {"store": c.store} if c.store else {}
                    out.append(self._custom_event(vr.choice(store_events), c, at, visit))
            for c in self.population:
                if c.store and _active(c, day) and vr.random() < STORE_VISIT_DAILY:
                    at = self._vocabulary_at(day, 10, 20)
                    out.append(
                        self._custom_event(vr.choice(store_events), c, at, {"store": c.store})
                    )
        return out

    def _vocabulary_at(self, day: int, hour_lo: int = 7, hour_hi: int = 23) -> datetime:
        """As :meth:`_at`, from the vocabulary's stream."""
        hours = self.vocabulary_rng.uniform(hour_lo, hour_hi) - 9
        return self.start + timedelta(days=day, hours=hours)

    def _custom_event(
        self, event: CustomEvent, c: SimCustomer, at: datetime, known: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``event`` by ``c`` at ``at``: its required fields, and most optional ones (the
        ``known`` store, product or category where fields name them, else the shop's)."""
        vr = self.vocabulary_rng
        pid, cat = vr.choice(PRODUCTS)
        context: dict[str, Any] = {
            "store": vr.choice(STORES)[0],
            "product_id": pid,
            "category": cat,
            "at": at,
            **known,
        }
        context["price"] = vr.choice(CATEGORIES[context["category"]])
        fields = {
            f.name: self._value(f, context) for f in event.fields if f.required or vr.random() < 0.9
        }
        # not through _event: event_seq numbers the built-in events (adjustment ids)
        detail = {"customer_id": c.customer_id, "occurred_at": at.isoformat(), **fields}
        return {
            "Source": SHOP_SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(self._keyed(detail, "custom-"), default=str),
        }

    def _value(self, spec: CustomValueSpec, context: Mapping[str, Any]) -> Any:
        """A plausible value for a declared attribute or event field, valid as declared: a
        store, product, category or price of the shop where the name says so."""
        vr = self.vocabulary_rng
        name, kind = spec.name, str(spec.type)
        if spec.enum:
            if kind == "string_list":
                return vr.sample(spec.enum, vr.randint(1, min(len(spec.enum), spec.max_items)))
            return vr.choice(spec.enum)
        if kind == "boolean":
            return vr.random() < 0.4
        if kind == "number":
            if any(w in name for w in ("price", "amount", "total", "value")):
                return int(context.get("price", vr.choice(CATEGORIES["tea"])))
            return vr.randint(1, 5)
        if kind == "date":
            return (self.start.date() - timedelta(days=vr.randint(0, 3650))).isoformat()
        if kind == "datetime":
            return context.get("at", self.start).isoformat()
        if kind == "string_list":
            items = vr.sample(list(CATEGORIES), vr.randint(1, 2))
            return [i[: spec.max_length] for i in items][: spec.max_items]
        if "store" in name:
            text = str(context.get("store") or vr.choice(STORES)[0])
        elif "product" in name:
            text = str(context.get("product_id") or vr.choice(PRODUCTS)[0])
        elif "category" in name:
            text = str(context.get("category") or vr.choice(list(CATEGORIES)))
        elif "nick" in name:
            text = vr.choice(NICKNAMES)
        else:
            text = f"{name}-{vr.randint(1, 9)}"
        return text[: spec.max_length]


def _custom(config: Mapping[str, Any] | None) -> CustomConfig | None:
    """The configuration's declared vocabulary, or None when it declares nothing."""
    if not config or not config.get("custom"):
        return None
    from kizuna.runtime.config import CustomConfig

    return CustomConfig.model_validate(config["custom"])


def _active(c: SimCustomer, day: int) -> bool:
    """``c`` has joined and still comes by on ``day`` (as the built-in behaviour decides)."""
    return c.joined < day and (day < c.churn_day or c.persona == "repeater")


def _is_store_event(event: CustomEvent) -> bool:
    """A custom event about a store visit (a field names a store): it comes with store orders
    and visits; the others follow product views."""
    return any("store" in f.name for f in event.fields)
