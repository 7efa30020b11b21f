"""Hypothesis strategies from the JSON Schemas in ``schemas/`` (the subset pydantic writes).

Enough of JSON Schema for the inbound contract: ``$ref``/``$defs``, ``anyOf``, ``enum``,
``const``, objects (``properties``, ``required``, ``additionalProperties``), arrays (``items``,
``minItems``, ``maxItems``), maps (``patternProperties`` or ``propertyNames``), strings (``minLength``, ``maxLength``, ``pattern``, ``format``
``date`` and ``date-time``), integers and numbers (``minimum``, ``exclusiveMinimum``,
``maximum``), booleans and null, and ``not`` over ``type``, ``anyOf`` and ``pattern`` (what
a value must not be: filtered out). Anything else raises, so a new keyword in a schema is noticed rather than ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
KNOWN = {
    "$defs",
    "$id",
    "$ref",
    "$schema",
    "additionalProperties",
    "anyOf",
    "const",
    "default",
    "description",
    "enum",
    "format",
    "items",
    "maxItems",
    "maxLength",
    "maxProperties",
    "minProperties",
    "patternProperties",
    "propertyNames",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "exclusiveMinimum",
    "not",
    "pattern",
    "properties",
    "required",
    "title",
    "type",
}
MAX_TEXT = 40  # longer strings add time, not coverage
ZONES = [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))]


def load_schema(detail_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{detail_type}.v1.json").read_text())
    return data


def _is(schema: Mapping[str, Any], value: Any) -> bool:
    """Is ``value`` valid against ``schema`` (a ``not``'s: ``type`` string, ``anyOf``,
    ``pattern``, searched as JSON Schema does)?"""
    unknown = set(schema) - {"type", "anyOf", "pattern"}
    if unknown or schema.get("type", "string") != "string":
        raise ValueError(f"'not' keywords not handled: {sorted(unknown)}")
    if "type" in schema and not isinstance(value, str):
        return False
    pattern = schema.get("pattern")
    if pattern is not None and isinstance(value, str) and not re.search(str(pattern), value):
        return False
    return "anyOf" not in schema or any(_is(s, value) for s in schema["anyOf"])


def from_schema(
    schema: Mapping[str, Any],
    root: Mapping[str, Any] | None = None,
    overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[Any]:
    """Values valid against ``schema``; ``overrides`` replace top-level properties'
    strategies (e.g. customer ids from a small pool, so customers collide)."""
    root = root if root is not None else schema
    unknown = set(schema) - KNOWN - {k for k in schema if k.startswith("x-")}
    if unknown:
        raise ValueError(f"schema keywords not handled: {sorted(unknown)}")
    if "not" in schema:
        refused = schema["not"]
        rest = {k: v for k, v in schema.items() if k != "not"}
        return from_schema(rest, root).filter(lambda value: not _is(refused, value))
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return from_schema(root["$defs"][name], root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    if "anyOf" in schema:
        return st.one_of([from_schema(s, root) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object" and ("patternProperties" in schema or "propertyNames" in schema):
        # a map (``dict[Key, Value]``): keys by their pattern or names schema
        patterned = dict(schema.get("patternProperties", {}))
        if patterned:
            pattern, value = next(iter(patterned.items()))
            keys: st.SearchStrategy[Any] = st.from_regex(pattern, fullmatch=True)
        else:
            keys = from_schema(schema["propertyNames"], root)
            value = schema.get("additionalProperties", {})
        return st.dictionaries(
            keys,
            from_schema(value, root),
            min_size=int(schema.get("minProperties", 0)),
            max_size=min(int(schema.get("maxProperties", 3)), 3),
        )
    if kind == "object":
        properties = dict(schema.get("properties", {}))
        required = set(schema.get("required", []))
        replaced = overrides or {}
        strategies = {
            name: replaced[name] if name in replaced else from_schema(spec, root)
            for name, spec in properties.items()
        }
        return st.fixed_dictionaries(
            {k: v for k, v in strategies.items() if k in required},
            optional={k: v for k, v in strategies.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), root),
            min_size=int(schema.get("minItems", 0)),
            max_size=min(int(schema.get("maxItems", 4)), 4),
        )
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**9)), schema.get("maximum", 10**9))
    if kind == "number":  # amounts mostly (whole or cents), and any float now and then
        low, high = schema.get("minimum", -1e9), schema.get("maximum", 1e9)
        if "exclusiveMinimum" in schema:
            above = schema["exclusiveMinimum"]
            return st.one_of(
                st.integers(int(above) + 1, int(high)),
                st.integers(int(above * 100) + 1, int(high * 100)).map(lambda c: c / 100),
                st.floats(above, high, exclude_min=True, allow_nan=False, allow_infinity=False),
            )
        return st.one_of(
            st.integers(int(low), int(high)),
            st.integers(int(low * 100), int(high * 100)).map(lambda cents: cents / 100),
            st.floats(low, high, allow_nan=False, allow_infinity=False),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise ValueError(f"schema type not handled: {kind!r}")


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = min(int(schema.get("maxLength", MAX_TEXT)), MAX_TEXT)
    fmt = schema.get("format")
    if fmt == "date-time":
        return st.builds(
            lambda d, z: d.replace(tzinfo=z).isoformat(),
            st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
            st.sampled_from(ZONES),
        )
    if fmt == "date":
        return st.dates(date(1920, 1, 1), date(2025, 12, 31)).map(date.isoformat)
    if fmt is not None:
        raise ValueError(f"string format not handled: {fmt!r}")
    if "pattern" in schema:
        return st.from_regex(str(schema["pattern"]), fullmatch=True).filter(
            lambda s: low <= len(s) <= high
        )
    return st.text(min_size=low, max_size=max(low, high))
