"""The published JSON Schemas are the ones the models generate (no drift), the checkout's
declared events and attributes (cdk.json's ``custom``) included."""

import json
from pathlib import Path

from kizuna.events.custom import vocabulary
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.demo import checkout_config
from kizuna_tools.schemas import CUSTOM, event_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = vocabulary(KizunaConfig.model_validate(checkout_config()))


def test_committed_schemas_match_the_models() -> None:
    generated = event_schemas(CHECKOUT)
    committed = {p.name for p in (ROOT / "schemas").glob("*.json")} - {"openapi.json"}
    assert committed == set(generated), "run `kizuna schemas --out schemas`"
    for name, schema in generated.items():
        assert json.loads((ROOT / "schemas" / name).read_text()) == schema, name


def test_every_event_schema_is_versioned() -> None:
    for name, schema in event_schemas().items():
        if name not in {"program.schema.json", "campaign.schema.json"}:
            assert name.endswith(".v1.json")
            assert "schema_version" in schema["properties"]


def test_committed_api_reference_matches_the_routes() -> None:
    from kizuna_tools.apidocs import INTRO, api_markdown, openapi, openapi_text

    assert (ROOT / "schemas" / "openapi.json").read_text(encoding="utf-8") == openapi_text(), (
        "run `kizuna schemas`"
    )
    intro = (ROOT / INTRO).read_text(encoding="utf-8")
    assert (ROOT / "docs" / "API.md").read_text(encoding="utf-8") == api_markdown(
        openapi(), intro
    ), "run `kizuna schemas`"


def test_declared_events_and_attributes_are_published_like_the_built_in_ones(
    tmp_path: Path,
) -> None:
    # Given a configuration declaring an attribute and an event
    vocab = vocabulary(
        KizunaConfig.model_validate(
            {
                "custom": {
                    "attributes": [{"name": "tier", "type": "string", "enum": ["a", "b"]}],
                    "events": [
                        {
                            "detail_type": "store.checked_in",
                            "fields": [{"name": "store_id", "type": "string", "required": True}],
                        }
                    ],
                }
            }
        )
    )
    # When the schemas are generated
    schemas = event_schemas(vocab)
    # Then the event has its own schema, strict like the built-in ones
    event = schemas["store.checked_in.v1.json"]
    assert event["x-kizuna-direction"] == "inbound" and event[CUSTOM] is True
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"customer_id", "occurred_at", "store_id"}
    # a field declared without a description has none (not an empty one)
    assert "description" not in event["properties"]["store_id"]
    # and customer.upserted carries the declared attributes (nothing else), described as before
    upserted = schemas["customer.upserted.v1.json"]
    attributes = upserted["$defs"]["CustomAttributes"]
    assert attributes["additionalProperties"] is False
    assert attributes["properties"]["tier"]["anyOf"][0]["enum"] == ["a", "b"]
    assert "description" not in attributes["properties"]["tier"]
    assert CUSTOM not in upserted
    assert upserted["description"] == event_schemas()["customer.upserted.v1.json"]["description"]
    # and an event no longer declared loses its file when the schemas are written again
    write_schemas(tmp_path, vocab)
    (tmp_path / "notes.v1.json").write_text("{}")  # not ours: left alone
    write_schemas(tmp_path)
    assert not (tmp_path / "store.checked_in.v1.json").exists()
    assert (tmp_path / "notes.v1.json").exists()
    assert (tmp_path / "order.placed.v1.json").exists()
