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
"""

from __future__ import annotations

import json
from typing import Any


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


__all__ = ["NotJsonNumber", "RepeatedKey", "loads", "object_without_repeats"]
