"""A minimal check of a document against a shape of botocore's Pinpoint service model, so a
fixture field Pinpoint never had fails its test. (mdata's ``kizuna_tools.migrate.shapes`` is
the full checker the migration uses; the lead keeps one of the two.)"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _shapes() -> dict[str, Any]:
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model("pinpoint", "service-2")
    return model["shapes"]  # type: ignore[no-any-return]


def problems(value: Any, shape_name: str, path: str = "$") -> list[str]:
    """Member names (wire names: ``locationName`` when the model gives one), types, enums
    and required members of ``value`` against ``shape_name``."""
    shape = _shapes()[shape_name]
    kind = shape["type"]
    found: list[str] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: {shape_name} is an object"]
        members = {
            m.get("locationName", name): (name, m)
            for name, m in shape["members"].items()
            if m.get("location") not in ("uri", "querystring", "header", "headers")
        }
        for key, item in value.items():
            if key not in members:
                found.append(f"{path}: {shape_name} has no member {key!r}")
            else:
                found += problems(item, members[key][1]["shape"], f"{path}.{key}")
        wire = {name: key for key, (name, _) in members.items()}
        found += [
            f"{path}: {shape_name} requires {wire[r]!r}"
            for r in shape.get("required", ())
            if r in wire and wire[r] not in value
        ]
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{path}: a list"]
        for i, item in enumerate(value):
            found += problems(item, shape["member"]["shape"], f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: a map"]
        keys = _shapes()[shape["key"]["shape"]]
        for key, item in value.items():
            if "enum" in keys and key not in keys["enum"]:
                found.append(f"{path}: key {key!r} is not one of {', '.join(keys['enum'])}")
            found += problems(item, shape["value"]["shape"], f"{path}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            found.append(f"{path}: a string")
        elif "enum" in shape and value not in shape["enum"]:
            found.append(f"{path}: {value!r} is not one of {', '.join(shape['enum'])}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            found.append(f"{path}: an integer")
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append(f"{path}: a number")
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"{path}: a boolean")
    elif kind == "timestamp" and not isinstance(value, str):
        found.append(f"{path}: an ISO 8601 timestamp string")
    return found
