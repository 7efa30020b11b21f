"""JSON objects whose keys are all different.

Python's ``json`` (and pydantic's parser) keep the last of a repeated key:
``{"status": "opted_in", "status": "opted_out"}`` silently reads as one of them, and another
reader (EventBridge's rule matching, a producer's own log) may read the other. Everything
Kizuna takes from outside -- a bus event, an API body, an imported JSON line -- is refused
instead (:class:`RepeatedKey`, naming the key for whoever may see it: the importer's
report does, a dead letter's reason does not).
"""

from __future__ import annotations

import json
from typing import Any


class RepeatedKey(ValueError):
    """A JSON object gives ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} given twice")
        self.key = key


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
    (:class:`RepeatedKey`; a ``json.JSONDecodeError`` for what is not JSON)."""
    return json.loads(text, object_pairs_hook=object_without_repeats, **options)


__all__ = ["RepeatedKey", "loads", "object_without_repeats"]
