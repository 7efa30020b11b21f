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
import functools
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """A wildcard matcher compiled once (re's own cache holds 512: a condition with more
    wildcards compiled each of them again for every customer)."""
    return re.compile(fnmatch.translate(pattern))


def wildcard_matches(pattern: str, value: str) -> bool:
    """Does ``value`` match the ``wildcard`` ``pattern`` as a whole (``*``: any run of
    characters, none too; the ``?``, ``[`` and ``\\`` a shell's glob reads are refused in
    conditions, :func:`kizuna.programs.pattern_rules.evaluator_gaps`)."""
    return _wildcard(pattern).fullmatch(value) is not None


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
        return isinstance(value, str) and wildcard_matches(arg, value)
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


# -- why a pattern did not match (the ledger's ``failed``) ----------------------------------
MAX_FAILED = 5  # conditions named per decision
MAX_VALUES = 10  # values kept per list (expected or found)
MAX_CHARS = 64  # characters kept per string value


def failures(
    pattern: Mapping[str, Any], data: Mapping[str, Any], limit: int = MAX_FAILED
) -> list[dict[str, Any]]:
    """The conditions of ``pattern`` that ``data`` fails, as data (empty exactly when
    :func:`matches` is True), the first ``limit`` of them, each bounded:

    - ``{"field": "lifecycle", "expected": ["new"], "found": "repeat"}``: ``field`` a dotted
      path (``consent.email``); ``expected`` the condition's matchers in its own terms
      (values; ``{">=": 3}`` for ``numeric``; ``{"exists": true}``; ``{"prefix": "x"}``,
      ``{"anything-but": [...]}``...); ``found`` the value in ``data``, absent when the
      field is missing;
    - ``{"any_of": [[...], [...]]}`` for an ``$or`` none of whose patterns matched: each
      pattern's own failures (at most 3 each).

    Values are cut to :data:`MAX_VALUES` items and :data:`MAX_CHARS` characters. Only what
    is in ``data`` is copied: given the customer view, no personal data."""
    out: list[dict[str, Any]] = []
    _failures(pattern, data, "", out, limit)
    return out


def _failures(
    pattern: Mapping[str, Any],
    data: Any,
    prefix: str,
    out: list[dict[str, Any]],
    limit: int,
) -> None:
    for key, expected in pattern.items():
        if len(out) >= limit:
            return
        if matches({key: expected}, data if isinstance(data, Mapping) else {}):
            continue
        if key == "$or":
            alternatives = [failures(sub, data, 3) for sub in expected[:MAX_FAILED]]
            out.append({"any_of": alternatives})
            continue
        path = f"{prefix}{key}"
        value = data.get(key, _MISSING) if isinstance(data, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if isinstance(value, list):  # arrays of objects: the first one's failures
                value = next((v for v in value if isinstance(v, Mapping)), {})
            _failures(expected, value if isinstance(value, Mapping) else {}, f"{path}.", out, limit)
            continue
        failed: dict[str, Any] = {"field": path, "expected": _expected(expected)}
        if value is not _MISSING and value is not None:
            failed["found"] = _capped(value)
        out.append(failed)


def _expected(matchers: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in matchers[:MAX_VALUES]:
        if isinstance(m, Mapping):
            op, arg = next(iter(m.items()))
            if op == "numeric":
                out.append({str(arg[i]): arg[i + 1] for i in range(0, len(arg) - 1, 2)})
            else:
                out.append({str(op): _capped(arg)})
        else:
            out.append(_capped(m))
    return out


def _capped(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_CHARS else value[: MAX_CHARS - 1] + "…"
    if isinstance(value, list | tuple):
        return [_capped(v) for v in list(value)[:MAX_VALUES]]
    if isinstance(value, Mapping):
        return {str(k)[:MAX_CHARS]: _capped(v) for k, v in list(value.items())[:MAX_VALUES]}
    return value
