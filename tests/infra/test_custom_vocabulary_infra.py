"""The shop's declared events in the stack (issue 17): a program on a declared event puts it
in the evaluate rule like a built-in one, ingest's rule takes it, the archive keeps it unless
it carries personal data, and the functions get the declarations with the configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from moto.events.models import EventPattern

from kizuna.events.custom import vocabulary
from kizuna.runtime.config import MAX_CUSTOM_EVENTS, KizunaConfig, load_config
from kizuna.runtime.settings import ENV_KIZUNA_CONFIG
from kizuna_infra import Kizuna
from kizuna_infra.bus import EventBus, archived_event_types

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "custom_vocabulary_project"
CONFIG: dict[str, Any] = json.loads((FIXTURE / "kizuna-config.json").read_text(encoding="utf-8"))
SHOP = [{"anything-but": ["kizuna"]}]


@pytest.fixture(scope="module")
def kizuna(make_app: Callable[..., cdk.App]) -> Kizuna:
    stack = cdk.Stack(make_app(), "Vocabulary")
    return Kizuna(
        stack,
        "Kizuna",
        config=CONFIG,
        programs_dir=FIXTURE / "programs",
        templates_dir=FIXTURE / "templates",
        segments_dir=FIXTURE / "segments",
    )


@pytest.fixture(scope="module")
def resources(kizuna: Kizuna) -> dict[str, Any]:
    template: dict[str, Any] = cdk.assertions.Template.from_stack(cdk.Stack.of(kizuna)).to_json()
    return dict(template["Resources"])


def of_type(resources: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources.values() if r["Type"] == kind]


def test_a_declared_event_starts_and_ends_a_program_through_the_evaluate_rule(
    resources: dict[str, Any],
) -> None:
    # Given the fixture's program (trigger wishlist.added with price >= 3000, goal
    # store.checked_in at a tokyo- store), synthesized
    patterns = [
        r["Properties"]["EventPattern"]
        for r in of_type(resources, "AWS::Events::Rule")
        if "$or" in r["Properties"].get("EventPattern", {})
    ]
    [evaluate] = patterns
    # Then the evaluate rule has both, from producers, with their conditions
    assert {
        "source": SHOP,
        "detail-type": ["wishlist.added"],
        "detail": {"price": [{"numeric": [">=", 3000]}]},
    } in evaluate["$or"]
    assert {
        "source": SHOP,
        "detail-type": ["store.checked_in"],
        "detail": {"store_id": [{"prefix": "tokyo-"}]},
    } in evaluate["$or"]
    # and EventBridge's matcher (moto's) wakes evaluate for a matching event only
    pattern = EventPattern.load(json.dumps(evaluate))

    def event(detail_type: str, **detail: Any) -> dict[str, Any]:
        return {"source": "com.example.shop", "detail-type": detail_type, "detail": detail}

    assert pattern.matches_event(event("wishlist.added", product_id="p", price=5400))
    assert not pattern.matches_event(event("wishlist.added", product_id="p", price=800))
    assert pattern.matches_event(event("store.checked_in", store_id="tokyo-ginza"))
    assert not pattern.matches_event(event("store.checked_in", store_id="osaka-umeda"))


def test_ingest_takes_declared_events_and_the_functions_get_the_declarations(
    resources: dict[str, Any],
) -> None:
    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule")]
    # every event not from Kizuna goes to ingest, whatever its detail-type
    assert {"source": SHOP} in [r.get("EventPattern") for r in rules]
    # and every function reading the configuration reads the declarations
    configs = {
        f["Properties"]["Environment"]["Variables"].get(ENV_KIZUNA_CONFIG)
        for f in of_type(resources, "AWS::Lambda::Function")
        if ENV_KIZUNA_CONFIG in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert len(configs) == 1
    [config] = configs
    assert load_config(config).custom == KizunaConfig.model_validate(CONFIG).custom


def test_the_archive_keeps_declared_events_without_personal_data(
    resources: dict[str, Any],
) -> None:
    [archive] = of_type(resources, "AWS::Events::Archive")
    archived = archive["Properties"]["EventPattern"]["detail-type"]
    assert {"wishlist.added", "store.checked_in", "order.placed"} <= set(archived)
    assert "customer.upserted" not in archived
    # an event with a personal field, or a field named like a direct identifier, is not kept
    vocab = vocabulary(
        KizunaConfig.model_validate(
            {
                "custom": {
                    "events": [
                        {
                            "detail_type": "review.posted",
                            "fields": [{"name": "text", "type": "string", "personal": True}],
                        },
                        {
                            "detail_type": "gift.sent",
                            "fields": [{"name": "email", "type": "string"}],
                        },
                        {"detail_type": "coupon.scanned"},
                    ]
                }
            }
        )
    )
    found = archived_event_types(vocab)
    assert "coupon.scanned" in found
    assert not {"review.posted", "gift.sent"} & set(found)


def test_an_archive_pattern_over_eventbridge_s_limit_fails_synthesis(
    make_app: Callable[..., cdk.App],
) -> None:
    # the most a configuration may declare, each with the longest detail-type allowed
    long = "a" * 31
    events = [{"detail_type": f"{long}.{long}.{long}.e{i:02d}"} for i in range(MAX_CUSTOM_EVENTS)]
    vocab = vocabulary(KizunaConfig.model_validate({"custom": {"events": events}}))
    with pytest.raises(ValueError, match="over EventBridge's 2048"):
        EventBus(cdk.Stack(make_app(), "Big"), "Bus", vocab=vocab)
