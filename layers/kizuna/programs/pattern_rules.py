"""EventBridge's own rules for event patterns, checked before anything reaches AWS.

moto's matcher (and :func:`kizuna.programs.patterns.matches`) accept more than AWS does: an
array of objects, a bare string where an array belongs, an empty array, an unknown operator,
``["<", 10, ">=", 2]``. :func:`validate_pattern` follows what EventBridge documents (content
filtering, comparison operators, quotas) and what its matching engine (aws/event-ruler,
``JsonRuleCompiler``) refuses, and returns every problem with its JSON path:

* A pattern is a non-empty JSON object; a field holds a nested non-empty object or a
  non-empty array. Keys are strings.
* Array elements are strings, numbers, booleans, null, or objects with exactly one
  operator: ``prefix`` / ``suffix`` (a string, or ``{"equals-ignore-case": string}``),
  ``equals-ignore-case`` (a string), ``wildcard`` (a string; no ``**``, ``\\`` escapes only
  ``*`` and ``\\``), ``cidr`` (``address/bits``, IPv4 bits < 32, IPv6 < 128), ``exists``
  (true or false), ``numeric`` and ``anything-but``.
* ``numeric``: ``["=", n]``, ``["<" | "<=", n]``, ``[">" | ">=", n]`` or a range, lower bound
  first: ``[">" | ">=", low, "<" | "<=", high]`` with low < high. Numbers within ±5.0e9 with
  at most six decimals.
* ``anything-but``: a string, a number, a non-empty list of only strings or only numbers, or
  ``{"prefix" | "suffix" | "equals-ignore-case" | "wildcard": string or list of strings}``
  (prefix and suffix not empty).
* ``$or``: an array of at least two non-empty objects; inside it, operator names
  (``prefix``, ``numeric``...) cannot be field names.
* A rule's pattern is at most 2,048 characters (the default quota, adjustable to 4,096).

Kizuna conditions (trigger, goal, audience, branch, segment) are fragments of this language:
:func:`validate_condition` applies the same rules to them (an empty condition means "no
filter"), and :func:`evaluator_gaps` lists what EventBridge accepts but Kizuna's Python
evaluator would not evaluate the way EventBridge does; every condition is evaluated there
(triggers and goals again in the evaluate function).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

# The fields a condition may name: each maps to None (a value, or an array of values) or to
# the fields of an object (arrays of objects too: EventBridge matches into their elements).
Fields: TypeAlias = Mapping[str, "Fields | None"]
# Explains a name the data does not have: (the keys of the object it was looked up in, from
# the data's root; the name; the fields there) -> what to do, or None for "did you mean".
Hint: TypeAlias = Callable[[tuple[str, ...], str, Fields], "str | None"]

MAX_PATTERN_CHARS = 2048  # EventBridge's default "event pattern size" quota (up to 4,096)
# A condition Kizuna evaluates itself (a segment, a campaign audience, a branch): at most
# this long as compact JSON, and at most this many objects and arrays deep (a definition
# nested ~100 levels was stored and then could not be read back: JSON parsers stop at ~200)
MAX_CONDITION_CHARS = 32_768
MAX_CONDITION_DEPTH = 16
MAX_NUMBER = Decimal("5e9")
MAX_DECIMALS = 6
OR = "$or"
OPERATORS = frozenset(
    {
        "prefix",
        "suffix",
        "equals-ignore-case",
        "wildcard",
        "cidr",
        "exists",
        "numeric",
        "anything-but",
    }
)
_ANYTHING_BUT_FORMS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_LOWER = (">", ">=")
_UPPER = ("<", "<=")
# Names the engine keeps for itself inside $or (operators, comparisons, reserved words).
_RESERVED_IN_OR = OPERATORS | {
    "exactly",
    "html",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
}


def validate_pattern(pattern: Any, *, max_chars: int | None = MAX_PATTERN_CHARS) -> list[str]:
    """Every reason EventBridge would refuse ``pattern`` as a rule's event pattern, each
    prefixed with its JSON path (``$.detail.rank[0]: ...``); empty if it is valid."""
    problems: list[str] = []
    if not isinstance(pattern, Mapping):
        return ["$: an event pattern is a JSON object"]
    if too_deep := _too_deep(pattern, "$"):
        return [too_deep]
    _object(pattern, "$", problems, in_or=False)
    if max_chars is not None:
        problems += _size(pattern, "$", max_chars)
    return problems


def validate_condition(
    condition: Any, *, path: str = "$", max_chars: int | None = None
) -> list[str]:
    """The same rules for a Kizuna condition (the content of a pattern, or of its
    ``detail``): ``{}`` is allowed and means no filter. ``max_chars`` for conditions that go
    to EventBridge."""
    if not isinstance(condition, Mapping):
        return [f"{path}: a condition is an object of fields"]
    if not condition:
        return []
    if too_deep := _too_deep(condition, path):
        return [too_deep]
    problems: list[str] = []
    _object(condition, path, problems, in_or=False)
    if max_chars is not None:
        problems += _size(condition, path, max_chars)
    return problems


def evaluator_gaps(condition: Any, path: str = "$") -> list[str]:
    """Valid EventBridge syntax that :mod:`kizuna.programs.patterns` does not evaluate like
    EventBridge (so a condition using it would misbehave in the evaluate function, the journey
    helper or a segment): ``cidr``, ``suffix`` and ``anything-but`` with ``equals-ignore-case``,
    ``anything-but`` with ``wildcard`` or a list of prefixes/suffixes, ``wildcard`` with ``?``,
    ``[`` or a ``\\`` escape."""
    gaps: list[str] = []
    if isinstance(condition, Mapping):
        for key, value in condition.items():
            where = _join(path, key)
            if key == OR and isinstance(value, list):
                for i, sub in enumerate(value):
                    gaps += evaluator_gaps(sub, f"{where}[{i}]")
            elif isinstance(value, Mapping):
                gaps += evaluator_gaps(value, where)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    gap = _evaluator_gap(item)
                    if gap:
                        gaps.append(f"{where}[{i}]: {gap} (Kizuna's evaluator does not support it)")
    return gaps


def unknown_fields(
    condition: Any,
    fields: Fields,
    path: str = "$",
    *,
    hint: Hint | None = None,
    above: tuple[str, ...] = (),
) -> list[str]:
    """Field names in ``condition`` that its data never has (``rnak`` for ``rank``): such a
    condition is valid syntax, but silently matches nobody. Also a value condition on an
    object field and fields named inside a plain value. ``hint`` may explain a missing name
    better than "did you mean" (a declaration to add, say); ``above`` is the object the
    condition is in (the keys from the data's root)."""
    problems: list[str] = []
    if not isinstance(condition, Mapping):
        return problems
    for key, value in condition.items():
        where = _join(path, key)
        if key == OR and isinstance(value, list):
            for i, sub in enumerate(value):
                problems += unknown_fields(sub, fields, f"{where}[{i}]", hint=hint, above=above)
            continue
        if key not in fields:
            explained = hint(above, str(key), fields) if hint else None
            problems.append(
                f"{where}: no field {key!r} here; {explained or known(str(key), fields)}"
            )
            continue
        inner = fields[key]
        if isinstance(value, Mapping):
            if inner is None:
                problems.append(f"{where}: {key!r} is a value, not an object of fields")
            else:
                problems += unknown_fields(value, inner, where, hint=hint, above=(*above, key))
        elif (
            inner is not None
            and isinstance(value, list)
            and not all(isinstance(v, Mapping) and set(v) == {"exists"} for v in value)
        ):
            fields_of = ", ".join(sorted(inner))
            problems.append(f"{where}: {key!r} is an object; name its fields ({fields_of})")
    return problems


def known(name: str, fields: Fields) -> str:
    """``did you mean 'rank'?``, else the fields there are."""
    close = difflib.get_close_matches(name, list(fields), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    if not fields:
        return "there are none"
    return f"the fields are {', '.join(sorted(fields))}"


def condition_problems(
    condition: Any,
    path: str,
    *,
    to_eventbridge: bool,
    fields: Fields | None = None,
    hint: Hint | None = None,
) -> list[str]:
    """What to refuse in a Kizuna condition at load: EventBridge's rules (and its size limit
    when the condition goes into a rule's pattern), then what Kizuna's evaluator lacks, then
    (given the ``fields`` of the data it matches) names of fields the data never has
    (explained by ``hint`` where it can)."""
    max_chars = MAX_PATTERN_CHARS if to_eventbridge else MAX_CONDITION_CHARS
    problems = validate_condition(condition, path=path, max_chars=max_chars)
    problems = problems or evaluator_gaps(condition, path)
    if not problems and fields is not None:
        problems = unknown_fields(condition, fields, path, hint=hint)
    return problems


# --- Structure -----------------------------------------------------------------------------


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}"


def _size(pattern: Mapping[str, Any], path: str, max_chars: int) -> list[str]:
    try:
        size = len(json.dumps(pattern, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError):
        return []  # reported by the structural checks
    if size > max_chars:
        whose = "EventBridge's" if max_chars == MAX_PATTERN_CHARS else "the"
        return [f"{path}: {size} characters, over {whose} {max_chars}-character limit"]
    return []


def _too_deep(value: Any, path: str) -> str | None:
    """The refusal of a condition nested deeper than :data:`MAX_CONDITION_DEPTH` objects and
    arrays (measured without recursion: the input may be nested a thousand deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONDITION_DEPTH:
            return f"{path}: nested deeper than {MAX_CONDITION_DEPTH} objects and arrays"
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, Mapping | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, Mapping | list))
    return None


def _object(obj: Mapping[Any, Any], path: str, problems: list[str], *, in_or: bool) -> None:
    if not obj:
        problems.append(f"{path}: empty objects are not allowed")
        return
    for key, value in obj.items():
        if not isinstance(key, str):
            problems.append(f"{path}: field names are strings, got {key!r}")
            continue
        where = _join(path, key)
        if key == OR:
            _or(value, where, problems)
            continue
        if in_or and key in _RESERVED_IN_OR:
            problems.append(f"{where}: {key!r} is reserved and cannot be a field name in $or")
        if isinstance(value, Mapping):
            _object(value, where, problems, in_or=in_or)
        elif isinstance(value, list):
            _values(value, where, problems)
        else:
            problems.append(f"{where}: must be an object or an array, e.g. [{value!r}]")


def _or(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{where}: must be an array of objects")
        return
    if len(value) < 2:
        problems.append(f"{where}: needs at least two objects")
    for i, sub in enumerate(value):
        if isinstance(sub, Mapping):
            _object(sub, f"{where}[{i}]", problems, in_or=True)
        else:
            problems.append(f"{where}[{i}]: only objects are allowed in $or")


def _values(values: list[Any], where: str, problems: list[str]) -> None:
    if not values:
        problems.append(f"{where}: empty arrays are not allowed")
    for i, item in enumerate(values):
        at = f"{where}[{i}]"
        if isinstance(item, Mapping):
            problems += [f"{at}: {p}" for p in _matcher(item)]
        elif isinstance(item, list):
            problems.append(f"{at}: arrays cannot be nested")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{at}: {item!r} is not a JSON number")
        elif not (item is None or isinstance(item, str | bool | int | float | Decimal)):
            problems.append(f"{at}: must be a string, number, true, false or null, got {item!r}")


# --- Operators -----------------------------------------------------------------------------


def _matcher(item: Mapping[Any, Any]) -> list[str]:
    if len(item) != 1:
        names = ", ".join(sorted(map(str, item))) or "none"
        return [f"one operator per object ({names})"]
    op, arg = next(iter(item.items()))
    if op == "exactly":
        return ["'exactly' is not a documented EventBridge operator; write the value itself"]
    if op not in OPERATORS:
        return [f"unknown operator {op!r}; use one of {', '.join(sorted(OPERATORS))}"]
    if op in ("prefix", "suffix"):
        if isinstance(arg, Mapping):
            if set(arg) != {"equals-ignore-case"} or not isinstance(arg["equals-ignore-case"], str):
                return [f'{op} takes a string or {{"equals-ignore-case": "..."}}']
            return []
        return [] if isinstance(arg, str) else [f"{op} takes a string"]
    if op == "equals-ignore-case":
        return [] if isinstance(arg, str) else ["equals-ignore-case takes a string"]
    if op == "wildcard":
        return _wildcard(arg)
    if op == "cidr":
        return _cidr(arg)
    if op == "exists":
        return [] if isinstance(arg, bool) else ["exists takes true or false"]
    if op == "numeric":
        return _numeric(arg)
    return _anything_but(arg)


def _wildcard(arg: Any) -> list[str]:
    if not isinstance(arg, str):
        return ["wildcard takes a string"]
    i = 0
    while i < len(arg):
        char = arg[i]
        if char == "*" and arg[i + 1 : i + 2] == "*":
            return [f"wildcard {arg!r}: consecutive '*' at {i}"]
        if char == "\\":
            if arg[i + 1 : i + 2] not in ("*", "\\"):
                return [f"wildcard {arg!r}: '\\' escapes only '*' and '\\' (at {i})"]
            i += 1
        i += 1
    return []


def _cidr(arg: Any) -> list[str]:
    if not isinstance(arg, str) or arg.count("/") != 1:
        return ["cidr takes 'address/bits', e.g. '10.0.0.0/24'"]
    address, bits = arg.split("/")
    try:
        ip = ipaddress.ip_address(address)
        mask = int(bits)
    except ValueError:
        return [f"cidr {arg!r}: not an IP address and mask"]
    limit = 32 if ip.version == 4 else 128
    if not 0 <= mask < limit:
        return [f"cidr {arg!r}: IPv{ip.version} mask bits must be 0 to {limit - 1}"]
    return []


def _number_problem(value: Any) -> str | None:
    """None if ``value`` is a number EventBridge compares (±5.0e9, six decimals)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return f"{value!r} is not a number"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return f"{value!r} is not a number"
    if not number.is_finite():
        return f"{value!r} is not a number"
    if abs(number) > MAX_NUMBER:
        return f"{value!r} is outside -5.0e9..5.0e9"
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        return f"{value!r} has more than {MAX_DECIMALS} decimals"
    return None


def _numeric(arg: Any) -> list[str]:
    usage = 'numeric takes ["=", n], ["<"|"<="|">"|">=", n] or [">"|">=", low, "<"|"<=", high]'
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        return [usage]
    problems = [p for p in map(_number_problem, arg[1::2]) if p]
    if problems:
        return [f"numeric: {p}" for p in problems]
    ops = arg[0::2]
    if len(arg) == 2:
        return [] if ops[0] in ("=", *_LOWER, *_UPPER) else [usage]
    if ops[0] not in _LOWER or ops[1] not in _UPPER:
        hint = ""
        if ops[0] in _UPPER and ops[1] in _LOWER:
            hint = (
                f" (lower bound first: {json.dumps([ops[1], arg[3], ops[0], arg[1]], default=str)})"
            )
        return [usage + hint]
    if Decimal(str(arg[1])) >= Decimal(str(arg[3])):
        return [f"numeric: the lower bound {arg[1]!r} must be below the upper {arg[3]!r}"]
    return []


def _anything_but(arg: Any) -> list[str]:
    if isinstance(arg, Mapping):
        if len(arg) != 1 or next(iter(arg)) not in _ANYTHING_BUT_FORMS:
            forms = ", ".join(_ANYTHING_BUT_FORMS)
            return [f"anything-but takes a value, a list, or an object with one of {forms}"]
        form, inner = next(iter(arg.items()))
        texts = inner if isinstance(inner, list) else [inner]
        if not texts or not all(isinstance(t, str) for t in texts):
            return [f"anything-but {form} takes a string or a non-empty list of strings"]
        if form in ("prefix", "suffix") and "" in texts:
            return [f"anything-but {form} cannot be empty"]
        if form == "wildcard":
            return [p for t in texts for p in _wildcard(t)]
        return []
    if isinstance(arg, list):
        if not arg:
            return ["anything-but takes a non-empty list"]
        if all(isinstance(v, str) for v in arg):
            return []
        if any(isinstance(v, str) for v in arg):
            return ["anything-but takes a list of only strings or only numbers"]
        return [f"anything-but: {p}" for p in map(_number_problem, arg) if p]
    if isinstance(arg, str):
        return []
    problem = _number_problem(arg)
    return [f"anything-but takes a string, a number or a list: {problem}"] if problem else []


def _evaluator_gap(item: Any) -> str | None:
    if not isinstance(item, Mapping) or len(item) != 1:
        return None
    op, arg = next(iter(item.items()))
    if op == "cidr":
        return "cidr"
    if op == "suffix" and isinstance(arg, Mapping):
        return "suffix with equals-ignore-case"
    if op == "wildcard" and isinstance(arg, str) and any(c in arg for c in "?[\\"):
        return "wildcard with '?', '[' or '\\'"
    if op == "anything-but" and isinstance(arg, Mapping) and len(arg) == 1:
        form, inner = next(iter(arg.items()))
        if form in ("equals-ignore-case", "wildcard"):
            return f"anything-but {form}"
        if isinstance(inner, list):
            return f"anything-but {form} with a list"
    return None
