"""JSON Schemas of the bus contract, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kizuna.events import DERIVED_MODELS, INBOUND_MODELS
from kizuna.events.derived import CAMPAIGN_EVENT_MODELS


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of the event's ``detail`` (one file per type and version)."""
    out: dict[str, dict[str, Any]] = {}
    for direction, models in (
        ("inbound", INBOUND_MODELS),
        ("derived", DERIVED_MODELS),
        ("derived", CAMPAIGN_EVENT_MODELS),
    ):
        for detail_type, model in models.items():
            schema = model.model_json_schema(mode="validation")
            schema["$id"] = f"https://kizuna.dev/schemas/{detail_type}.v1.json"
            schema["title"] = detail_type
            schema["x-kizuna-direction"] = direction
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


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(event_schemas().items()):
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
