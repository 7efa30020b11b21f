"""JSON objects whose keys are all different, and numbers that are JSON numbers.

Python's ``json`` (and pydantic's parser) keep the last of a repeated key:
``{"status": "opted_in", "status": "opted_out"}`` silently reads as one of them, and another
reader (EventBridge's rule matching, a producer's own log) may read the other. Everything
Kizuna takes from outside -- a bus event, an API body, an imported JSON line -- is refused
instead (:class:`RepeatedKey`, naming the key for whoever may see it: the importer's
report does, a dead letter's reason does not).

Python's ``json`` also reads ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON (no
other reader takes them) and which no Kizuna number can be: they are refused too
(:class:`NotJsonNumber`).

And a number read from JSON or YAML is one: :data:`WholeNumber` and :data:`Number` are the
pydantic types of a field that must be one, where pydantic's lax mode reads ``true`` as 1,
``"10"`` and ``" 10"`` as 10 and ``10.5`` as an int error but ``10.0`` as 10.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator


class RepeatedKey(ValueError):
    """A JSON object gives ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} given twice")
        self.key = key


class NotJsonNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's ``json`` reads them, JSON has none."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not a JSON number")
        self.name = name


def _refuse_constant(name: str) -> Any:
    raise NotJsonNumber(name)


def object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json``'s ``object_pairs_hook``: the object, or :class:`RepeatedKey`."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RepeatedKey(key)
        out[key] = value
    return out


def loads(text: str, **options: Any) -> Any:
    """``json.loads(text, **options)``, refusing an object with a repeated key
    (:class:`RepeatedKey`) and ``NaN``/``Infinity`` (:class:`NotJsonNumber`); a
    ``json.JSONDecodeError`` for what is not JSON."""
    return json.loads(
        text,
        object_pairs_hook=object_without_repeats,
        parse_constant=_refuse_constant,
        **options,
    )


def whole_number(value: object) -> object:
    """A count is a whole JSON number: ``true``, ``1.0``, ``1e3`` (a float on the bus, a
    decimal in an API body) or text (``"10"``, ``"1_0"``) is refused, not read as a number."""
    if isinstance(value, bool | float | str) or (
        isinstance(value, Decimal) and value.as_tuple().exponent != 0
    ):
        raise ValueError("a whole JSON number (not true/false, a decimal, or text)")
    return value


def json_number(value: object) -> object:
    """A number is a JSON number: ``true`` or text (``"0.05"``) is refused, not read as one."""
    if isinstance(value, bool | str):
        raise ValueError("a JSON number (not true/false or text)")
    return value


WholeNumber = Annotated[int, BeforeValidator(whole_number)]
"""A field that is a whole JSON (or YAML) number; bound it with ``= Field(ge=..., le=...)``."""
Number = Annotated[float, BeforeValidator(json_number)]
"""A field that is a JSON (or YAML) number, whole or not."""
# the optional forms wrap the union, so that ``Field`` bounds reach the JSON schema as
# minimum/maximum (``WholeNumber | None`` puts them after the validator: "ge"/"le")
OptionalWholeNumber = Annotated[int | None, BeforeValidator(whole_number)]
OptionalNumber = Annotated[float | None, BeforeValidator(json_number)]


__all__ = [
    "NotJsonNumber",
    "Number",
    "OptionalNumber",
    "OptionalWholeNumber",
    "RepeatedKey",
    "WholeNumber",
    "json_number",
    "loads",
    "object_without_repeats",
    "whole_number",
]
