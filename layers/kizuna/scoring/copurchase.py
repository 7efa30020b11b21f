"""Item-to-item co-purchase recommendations, learned by the daily scoring job.

"Customers who bought X also bought Y": for every pair of products, the number of customers
who bought both (each customer counts once per pair, however many orders). Every scoring
shard counts its own customers (:func:`count`) and writes the partial counts; the run's last
step merges the shards (:meth:`CoPurchase.merge`) and keeps, per product, the top related
products by cosine similarity (``together / sqrt(buyers(X) * buyers(Y))``), which keeps a
best seller from being "related" to everything merely because everyone buys it. Pairs seen
fewer than ``min_together`` times are noise and dropped.

Cancelled orders do not count. The same pass counts buyers per product, from which the
best-seller fallback is taken.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict

from kizuna.domain.customer import Customer

PAIR_SEPARATOR = "\t"
# The products-table item holding the run's best sellers (not a valid product id: ids
# cannot contain '#').
BEST_SELLERS_KEY = "#best-sellers"


def purchased(customer: Customer) -> set[str]:
    """Products in the customer's counted (placed, not cancelled) orders, the settled ones
    included (their most recent distinct products, kizuna.domain.customer.SettledHistory)."""
    recent = {p for order in customer.orders.values() if order.counts for p in order.products}
    return recent | set(customer.history.products)


def last_order_products(customer: Customer) -> list[str]:
    """Products of the customer's latest counted order."""
    counted = [o for o in customer.orders.values() if o.counts and o.at is not None]
    if not counted:
        return []
    return list(max(counted, key=lambda o: o.at or datetime.min).products)


class CoPurchase(BaseModel):
    """Partial or merged counts: buyers per product and per unordered product pair."""

    model_config = ConfigDict(frozen=True)

    buyers: dict[str, int] = {}
    # "a<TAB>b" with a < b -> customers who bought both
    together: dict[str, int] = {}

    @staticmethod
    def merge(parts: Iterable[CoPurchase]) -> CoPurchase:
        buyers: Counter[str] = Counter()
        together: Counter[str] = Counter()
        for part in parts:
            buyers.update(part.buyers)
            together.update(part.together)
        return CoPurchase(buyers=dict(buyers), together=dict(together))


def count(customers: Iterable[Customer]) -> CoPurchase:
    buyers: Counter[str] = Counter()
    together: Counter[str] = Counter()
    for customer in customers:
        bought = sorted(purchased(customer))
        buyers.update(bought)
        together.update(f"{a}{PAIR_SEPARATOR}{b}" for a, b in combinations(bought, 2))
    return CoPurchase(buyers=dict(buyers), together=dict(together))


class Related(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str
    score: float
    together: int


def related(counts: CoPurchase, top_n: int, min_together: int = 2) -> dict[str, list[Related]]:
    """Per product, up to ``top_n`` related products, best first (score, then together,
    then id, so the order is deterministic)."""
    candidates: dict[str, list[Related]] = {}
    for pair, n in counts.together.items():
        if n < min_together:
            continue
        a, b = pair.split(PAIR_SEPARATOR)
        score = n / math.sqrt(counts.buyers[a] * counts.buyers[b])
        candidates.setdefault(a, []).append(Related(product_id=b, score=score, together=n))
        candidates.setdefault(b, []).append(Related(product_id=a, score=score, together=n))
    out: dict[str, list[Related]] = {}
    for product, rel in candidates.items():
        rel.sort(key=lambda r: (-r.score, -r.together, r.product_id))
        out[product] = rel[:top_n]
    return out


def best_sellers(counts: CoPurchase, top_n: int) -> list[str]:
    """Products with the most buyers, most first (ties by id)."""
    ranked = sorted(counts.buyers.items(), key=lambda kv: (-kv[1], kv[0]))
    return [product for product, _ in ranked[:top_n]]


def recommend(
    bought_last: Sequence[str],
    already_bought: set[str],
    related_by_product: Mapping[str, Sequence[Mapping[str, Any]]],
    fallback: Sequence[Mapping[str, Any]],
    n: int,
) -> list[dict[str, Any]]:
    """Up to ``n`` products for a customer: the products related to what they bought last
    (best score across those products first), never one they have bought, then best
    sellers they have not bought. Entries are product dicts (``product_id``, ``name``,
    ``url``...); each product appears once."""
    scored: dict[str, tuple[float, dict[str, Any]]] = {}
    for source in bought_last:
        for entry in related_by_product.get(source, ()):
            pid = str(entry["product_id"])
            if pid in already_bought:
                continue
            score = float(entry.get("score", 0))
            if pid not in scored or score > scored[pid][0]:
                scored[pid] = (score, dict(entry))
    picks = [e for _, e in sorted(scored.values(), key=lambda se: (-se[0], se[1]["product_id"]))]
    seen = set(scored)
    for entry in fallback:
        pid = str(entry["product_id"])
        if pid not in already_bought and pid not in seen:
            picks.append(dict(entry))
            seen.add(pid)
    return picks[:n]
