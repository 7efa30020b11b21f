"""EventBridge content-filter patterns, evaluated in Python.

One condition language for the whole product: a program's trigger compiles into the
EventBridge rule pattern as it is, and the same syntax decides audience and branch
conditions against customer state here. Supported: exact values (strings, numbers,
booleans, null), ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (a value,
a list, or ``{"prefix": ...}``), ``numeric`` (``[">=", 2, "<", 10]``: the lower bound
first, as EventBridge requires), ``exists``, ``wildcard`` (``*``), nested objects, and
``$or``. Arrays in the data match if any element does, as in EventBridge. What AWS accepts
is checked by :mod:`kizuna.programs.pattern_rules` at load.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

Pattern = dict[str, Any]
_MISSING = object()
_NUMERIC_OPS = {"<", "<=", "=", ">", ">="}
_OPERATORS = {
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "wildcard",
    "cidr",
}


class PatternError(ValueError):
    """A pattern that EventBridge would reject."""


def validate_pattern(pattern: Any, path: str = "") -> None:
    """Raise PatternError with the path of the first problem."""
    if not isinstance(pattern, Mapping):
        raise PatternError(f"{path or 'pattern'}: must be an object")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise PatternError(f"{where}: needs a list of at least two patterns")
            for i, sub in enumerate(value):
                validate_pattern(sub, f"{where}[{i}]")
        elif isinstance(value, Mapping):
            validate_pattern(value, where)
        elif isinstance(value, list):
            if not value:
                raise PatternError(f"{where}: an empty list matches nothing")
            for item in value:
                _validate_matcher(item, where)
        else:
            raise PatternError(f"{where}: values must be lists, e.g. [{value!r}]")


def _validate_matcher(item: Any, where: str) -> None:
    if isinstance(item, Mapping):
        if len(item) != 1:
            raise PatternError(f"{where}: one operator per object")
        op, arg = next(iter(item.items()))
        if op not in _OPERATORS:
            raise PatternError(f"{where}: unknown operator {op!r}")
        if op == "numeric":
            if not isinstance(arg, list) or len(arg) not in (2, 4):
                raise PatternError(f"{where}: numeric takes [op, n] or [op, n, op, n]")
            for j in range(0, len(arg), 2):
                if (
                    arg[j] not in _NUMERIC_OPS
                    or isinstance(arg[j + 1], bool)
                    or not isinstance(arg[j + 1], int | float | Decimal)
                ):
                    raise PatternError(f"{where}: bad numeric comparison {arg!r}")
        elif op == "exists" and not isinstance(arg, bool):
            raise PatternError(f"{where}: exists takes true or false")
    elif not (item is None or isinstance(item, str | int | float | bool | Decimal)):
        raise PatternError(f"{where}: unsupported value {item!r}")


def matches(pattern: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """True if ``data`` (an event detail or a customer view) matches ``pattern``."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(sub, data) for sub in expected):
                return False
            continue
        value = data.get(key, _MISSING) if isinstance(data, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if isinstance(value, list):
                if not any(isinstance(v, Mapping) and matches(expected, v) for v in value):
                    return False
            elif not isinstance(value, Mapping) or not matches(expected, value):
                return False
            continue
        if not _field_matches(expected, value):
            return False
    return True


def _field_matches(matchers: list[Any], value: Any) -> bool:
    exists_rules = [m for m in matchers if isinstance(m, Mapping) and "exists" in m]
    for rule in exists_rules:
        present = value is not _MISSING and value != []
        if rule["exists"] != present:
            return False
    others = [m for m in matchers if m not in exists_rules]
    if not others:
        return True
    if value is _MISSING:
        # anything-but matches a missing field? In EventBridge, no.
        return False
    values = value if isinstance(value, list) else [value]
    return any(_one(m, v) for m in others for v in values)


def _num(v: Any) -> Decimal | None:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        return None
    return Decimal(str(v))


def _one(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        if _num(matcher) is not None and _num(value) is not None:
            return _num(matcher) == _num(value)
        return bool(matcher == value and type(matcher) is type(value)) or (
            matcher is None and value is None
        )
    op, arg = next(iter(matcher.items()))
    if op == "prefix":
        if isinstance(arg, Mapping):  # {"prefix": {"equals-ignore-case": "x"}}
            return isinstance(value, str) and value.lower().startswith(
                str(arg["equals-ignore-case"]).lower()
            )
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "wildcard":
        return isinstance(value, str) and re.fullmatch(fnmatch.translate(arg), value) is not None
    if op == "anything-but":
        if isinstance(arg, Mapping):
            if "prefix" in arg:
                return isinstance(value, str) and not value.startswith(arg["prefix"])
            if "suffix" in arg:
                return isinstance(value, str) and not value.endswith(arg["suffix"])
            return False
        banned = arg if isinstance(arg, list) else [arg]
        return not any(_one(b, value) for b in banned)
    if op == "numeric":
        n = _num(value)
        if n is None:
            return False
        for i in range(0, len(arg), 2):
            limit = Decimal(str(arg[i + 1]))
            ok = {
                "<": n < limit,
                "<=": n <= limit,
                "=": n == limit,
                ">": n > limit,
                ">=": n >= limit,
            }[arg[i]]
            if not ok:
                return False
        return True
    raise PatternError(f"unsupported operator {op!r}")
