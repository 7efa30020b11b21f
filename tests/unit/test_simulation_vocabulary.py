"""The simulated shop speaks the configuration's declared vocabulary (custom attributes and
events) from a random stream of its own: the built-in events of a seed stay as they were,
and every event it emits is valid under the configuration (nothing for the DLQ)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from kizuna.events.custom import vocabulary
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.demo import DEMO_CONFIG
from kizuna_tools.simulation import PRODUCTS, STORES, Shop

CUSTOM = {e["detail_type"] for e in DEMO_CONFIG["custom"]["events"]}


def events(shop: Shop) -> list[dict[str, Any]]:
    return [e for _, day in shop.days_of_events() for e in day]


def built_in(entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    detail = json.loads(entry["Detail"])
    detail.pop("attributes", None)
    return entry["DetailType"], detail


def test_the_declared_vocabulary_leaves_the_built_in_events_as_they_were() -> None:
    plain = events(Shop(customers=80, days=12, seed=5))
    spoken = events(Shop(customers=80, days=12, seed=5, config=DEMO_CONFIG))
    assert [built_in(e) for e in spoken if e["DetailType"] not in CUSTOM] == [
        built_in(e) for e in plain
    ]
    # the added volume stays modest
    assert len(plain) < len(spoken) < 1.25 * len(plain)


def test_every_event_is_valid_under_the_configuration_and_uses_the_vocabulary() -> None:
    vocab = vocabulary(KizunaConfig.model_validate(DEMO_CONFIG))
    spoken = events(Shop(customers=80, days=12, seed=5, config=DEMO_CONFIG))
    details: dict[str, list[Any]] = {}
    for n, e in enumerate(spoken):
        detail = json.loads(e["Detail"])
        parsed = parse_inbound(
            {
                "id": f"e{n}",
                "detail-type": e["DetailType"],
                "source": e["Source"],
                "time": detail["occurred_at"],
                "detail": detail,
            },
            vocab=vocab,
        )
        details.setdefault(e["DetailType"], []).append(parsed.detail)
    attributes = [u.attributes for u in details["customer.upserted"] if u.attributes]
    assert 0.5 < len(attributes) / len(details["customer.upserted"]) < 0.9
    declared = Counter(name for a in attributes for name in a.model_fields_set)
    assert set(declared) == {a["name"] for a in DEMO_CONFIG["custom"]["attributes"]}
    assert declared["nickname"] < declared["newsletter"]  # personal: given by fewer
    stores = {s for s, _ in STORES}
    assert {a.favourite_store for a in attributes if a.favourite_store} <= stores
    assert {a.membership_tier_pos for a in attributes} - {None} == {"standard", "premium", "vip"}
    wished = details["wishlist.added"]
    assert {w.product_id for w in wished} <= {p for p, _ in PRODUCTS}
    assert any(w.price for w in wished)
    assert {c.store_id for c in details["store.checked_in"]} <= stores
    # some customers wish for more than one product (what a wishlist condition counts)
    assert max(Counter(w.customer_id for w in wished).values()) >= 2


def test_a_configuration_without_declarations_gets_nothing_new() -> None:
    bare = {k: v for k, v in DEMO_CONFIG.items() if k != "custom"}
    for config in (None, bare):
        spoken = events(Shop(customers=40, days=6, seed=9, config=config))
        assert not {e["DetailType"] for e in spoken} & CUSTOM
        assert not any("attributes" in json.loads(e["Detail"]) for e in spoken)


def test_every_event_is_named_by_the_shop_so_a_run_repeats_its_ids() -> None:
    """The bus gives every put a random id; the shop's ``idempotency_key`` makes the id
    Kizuna records each event under (and so the derived events, journey entries and the
    simulated recipients' draws) the same for every run of a seed."""
    vocab = vocabulary(KizunaConfig.model_validate(DEMO_CONFIG))

    def ids() -> list[str]:
        out = []
        for e in events(Shop(customers=60, days=8, seed=5, config=DEMO_CONFIG)):
            detail = json.loads(e["Detail"])
            envelope = {
                "id": str(uuid.uuid4()),  # as random as EventBridge's
                "detail-type": e["DetailType"],
                "source": e["Source"],
                "time": detail["occurred_at"],
                "detail": detail,
            }
            out.append(parse_inbound(envelope, vocab=vocab).event_id)
        return out

    first = ids()
    assert first == ids()
    assert len(set(first)) == len(first)  # one key per event, never two events under one
    assert all(i.startswith("key-") for i in first)
