"""The published JSON Schemas are the ones the models generate (no drift)."""

import json
from pathlib import Path

from kizuna_tools.schemas import event_schemas

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_models() -> None:
    generated = event_schemas()
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
