"""Pinpoint's own shapes, from botocore's service model: what a Pinpoint document may hold.

botocore ships the model Amazon Pinpoint's API is generated from
(``botocore/data/pinpoint/2016-12-01/service-2.json``). :func:`check` walks a JSON document
against one of its shapes (``EndpointResponse``, ``GetSegmentsResponse``...) and returns
every problem with its JSON path: a member name the shape does not have (``$.Item[0].Dimen
sions.Atributes: SegmentDimensions has no member 'Atributes'``), a value of the wrong type,
a value outside an enum, a required member missing. The migration checks its input with it
(a hand-edited or truncated export is reported, not half-read), and the tests check the
fixtures with it, so a field name that Pinpoint never had fails.

Wire names: a rest-json body uses a member's ``locationName`` when it has one (Pinpoint's
``SimpleCondition`` carries its dimensions as ``segmentDimensions``); members bound to the
URI, the query string or a header are not in the body. An output shape with a ``payload``
(``GetSegmentsResponse`` -> ``SegmentsResponse``) is what the AWS CLI and boto3 print: the
payload under its member name; :func:`unwrap` accepts that and the bare REST body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

SERVICE = "pinpoint"
_NOT_IN_BODY = {"uri", "querystring", "header", "headers", "statusCode"}
MAX_PROBLEMS = 50  # per document: a wholly wrong file says so without a thousand lines


@lru_cache(maxsize=1)
def service_model() -> dict[str, Any]:
    """Pinpoint's service model as botocore ships it (``service-2.json``, gzipped or not)."""
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model(SERVICE, "service-2")
    return model


def shapes() -> dict[str, Any]:
    found: dict[str, Any] = service_model()["shapes"]
    return found


def output_shape(operation: str) -> str:
    """The output shape of an operation (``GetSegments`` -> ``GetSegmentsResponse``)."""
    op = service_model()["operations"][operation]
    name: str = op["output"]["shape"]
    return name


def body_members(shape_name: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """wire name -> (member name, member) for the members a JSON body carries."""
    shape = shapes()[shape_name]
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, member in shape.get("members", {}).items():
        if member.get("location") in _NOT_IN_BODY:
            continue
        out[member.get("locationName", name)] = (name, member)
    return out


def check(document: Any, shape_name: str, path: str = "$", *, required: bool = True) -> list[str]:
    """Every way ``document`` differs from Pinpoint's shape ``shape_name`` (empty: it fits).

    ``required``: a structure's required members must be there (responses name the members
    Pinpoint always returns as required; a document saved from the API has them)."""
    if shape_name not in shapes():
        raise KeyError(f"Pinpoint has no shape {shape_name!r}")
    problems: list[str] = []
    _walk(document, shape_name, path, problems, required)
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return problems


def unwrap(document: Any, shape_name: str) -> tuple[Any, str]:
    """A response as the CLI prints it (``{"SegmentsResponse": {...}}``) or as the REST body
    (``{"Item": [...]}``) -> (the payload, its shape). Shapes without a payload: unchanged."""
    shape = shapes()[shape_name]
    payload = shape.get("payload")
    if payload is None:
        return document, shape_name
    member = shape["members"][payload]
    wire = member.get("locationName", payload)
    if isinstance(document, Mapping) and set(document) == {wire}:
        return document[wire], member["shape"]
    return document, member["shape"]


def _walk(value: Any, shape_name: str, path: str, problems: list[str], required: bool) -> None:
    shape = shapes()[shape_name]
    kind = shape["type"]
    label = shape_name.lstrip("_")
    if value is None:
        problems.append(f"{path}: null where Pinpoint has a {label}")
        return
    if kind == "structure":
        if not isinstance(value, Mapping):
            problems.append(f"{path}: {label} is an object, got {_json_type(value)}")
            return
        members = body_members(shape_name)
        for key, item in value.items():
            if key not in members:
                known = ", ".join(sorted(members))
                problems.append(f"{path}: {label} has no member {key!r} (it has: {known})")
                continue
            _walk(item, members[key][1]["shape"], f"{path}.{key}", problems, required)
        if required:
            wires = {name: wire for wire, (name, _m) in members.items()}
            for name in shape.get("required", ()):
                wire = wires.get(name)
                if wire is not None and wire not in value:
                    problems.append(f"{path}: {label} requires {wire!r}")
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: a list ({label}), got {_json_type(value)}")
            return
        for i, item in enumerate(value):
            _walk(item, shape["member"]["shape"], f"{path}[{i}]", problems, required)
    elif kind == "map":
        if not isinstance(value, Mapping):
            problems.append(f"{path}: a map ({label}), got {_json_type(value)}")
            return
        key_shape = shapes()[shape["key"]["shape"]]
        for key, item in value.items():
            if "enum" in key_shape and key not in key_shape["enum"]:
                problems.append(f"{path}: key {key!r} is not one of {', '.join(key_shape['enum'])}")
            _walk(item, shape["value"]["shape"], f"{path}.{key}", problems, required)
    else:
        problem = _scalar_problem(value, shape)
        if problem:
            problems.append(f"{path}: {problem}")


def _scalar_problem(value: Any, shape: Mapping[str, Any]) -> str | None:
    kind = shape["type"]
    if kind == "string":
        if not isinstance(value, str):
            return f"a string, got {_json_type(value)}"
        if "enum" in shape and value not in shape["enum"]:
            return f"{value!r} is not one of {', '.join(shape['enum'])}"
        return None
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"an integer, got {_json_type(value)}"
        return None
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return f"a number, got {_json_type(value)}"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"true or false, got {_json_type(value)}"
    if kind == "timestamp":
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return f"an ISO 8601 timestamp, got {value!r}"
            return None
        return f"a timestamp, got {_json_type(value)}"
    if kind == "blob":
        return None if isinstance(value, str) else f"base64 text, got {_json_type(value)}"
    return f"unknown shape type {kind!r}"  # pragma: no cover - the model's types are closed


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
