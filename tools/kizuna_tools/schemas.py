"""JSON Schemas of the bus contract, generated from the pydantic models: the built-in events
and the shop's own (``custom.events`` of the configuration; ``customer.upserted`` with its
declared ``attributes``), so producers validate against what ingest accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kizuna.events import DERIVED_MODELS, INBOUND_MODELS
from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.derived import CAMPAIGN_EVENT_MODELS, DM_EVENT_MODELS

DIRECTION = "x-kizuna-direction"
CUSTOM = "x-kizuna-custom"  # true on a shop's own event (declared in the configuration)


def event_schemas(vocab: Vocabulary = BUILTIN) -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of the event's ``detail`` (one file per type and version),
    with ``vocab``'s declarations (:func:`kizuna.events.custom.vocabulary`)."""
    out: dict[str, dict[str, Any]] = {}
    for direction, models in (
        ("inbound", vocab.inbound_models),
        ("derived", DERIVED_MODELS),
        ("derived", CAMPAIGN_EVENT_MODELS),
        ("derived", DM_EVENT_MODELS),
    ):
        for detail_type, model in models.items():
            schema = model.model_json_schema(mode="validation")
            schema["$id"] = f"https://kizuna.dev/schemas/{detail_type}.v1.json"
            schema["title"] = detail_type
            if detail_type in vocab.events and vocab.events[detail_type].description:
                schema["description"] = vocab.events[detail_type].description
            builtin = INBOUND_MODELS.get(detail_type)
            if builtin is not None and builtin is not model and "description" not in schema:
                # customer.upserted with declared attributes: a subclass, described as its base
                described = builtin.model_json_schema(mode="validation").get("description")
                if described:
                    schema["description"] = described
            schema[DIRECTION] = direction
            if detail_type not in INBOUND_MODELS and direction == "inbound":
                schema[CUSTOM] = True
            out[f"{detail_type}.v1.json"] = schema
    from kizuna.programs.model import Program

    program = Program.model_json_schema(mode="validation")
    program["$id"] = "https://kizuna.dev/schemas/program.schema.json"
    program["title"] = "Kizuna program"
    out["program.schema.json"] = program
    from kizuna.campaigns.model import Campaign

    campaign = Campaign.model_json_schema(mode="validation")
    campaign["$id"] = "https://kizuna.dev/schemas/campaign.schema.json"
    campaign["title"] = "Kizuna campaign"
    out["campaign.schema.json"] = campaign
    return out


def write_schemas(directory: Path, vocab: Vocabulary = BUILTIN) -> list[Path]:
    """Write :func:`event_schemas`; an event schema written before for an event no longer
    declared (a custom event taken out of the configuration) is removed."""
    directory.mkdir(parents=True, exist_ok=True)
    schemas = event_schemas(vocab)
    for stale in sorted(directory.glob("*.v1.json")):
        if stale.name not in schemas and _generated(stale):
            stale.unlink()
    written = []
    for name, schema in sorted(schemas.items()):
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _generated(path: Path) -> bool:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and DIRECTION in found
