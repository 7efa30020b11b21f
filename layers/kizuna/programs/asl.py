"""Check an Amazon States Language definition as Step Functions does at CreateStateMachine.

moto accepts any definition, so a journey that AWS would refuse (an unreachable state, a
dangling ``Next``, a bad JSONPath) would only be found by ``cdk deploy``. These checks run
where definitions are made or used: the compiler on its own output, ``kizuna programs
validate``, synth (through the compiler) and the local runtime before CreateStateMachine.

* every state is reachable from ``StartAt``; every ``Next``/``Default``/``Choices[].Next``/
  ``Catch[].Next`` names a state of the same (sub-)machine; at least one terminal state;
* ``Next`` and ``End`` exclusive (exactly one on Task, Pass, Wait, Parallel and Map);
  Choice has ``Choices`` and neither; Succeed and Fail have neither;
* Wait has exactly one of ``Seconds``/``Timestamp``/``SecondsPath``/``TimestampPath``;
* Retry/Catch: ``ErrorEquals`` non-empty, ``States.ALL`` alone and last;
* JSONPath syntax of every path field and of every ``"<key>.$"`` value, which may also be an
  intrinsic function (a name AWS knows, balanced parentheses and quotes, its arity); JSONata
  fields (``Condition``, ``Arguments``, ``Output``) are left alone;
* Map (``ItemProcessor``/``Iterator``) and Parallel (``Branches``) recursively; state names
  at most 80 characters and unique across the whole machine.

:func:`validate_definition` lists the problems; :func:`check_definition` raises
:class:`InvalidDefinition` with all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["INTRINSIC_FUNCTIONS", "InvalidDefinition", "check_definition", "validate_definition"]

MAX_STATE_NAME = 80
STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})
WAIT_FIELDS = ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")
# name -> (min, max) arguments; None: any number
INTRINSIC_FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "States.Format": (1, None),
    "States.StringToJson": (1, 1),
    "States.JsonToString": (1, 1),
    "States.Array": (0, None),
    "States.ArrayPartition": (2, 2),
    "States.ArrayContains": (2, 2),
    "States.ArrayRange": (3, 3),
    "States.ArrayGetItem": (2, 2),
    "States.ArrayLength": (1, 1),
    "States.ArrayUnique": (1, 1),
    "States.Base64Encode": (1, 1),
    "States.Base64Decode": (1, 1),
    "States.Hash": (2, 2),
    "States.JsonMerge": (3, 3),
    "States.MathRandom": (2, 3),
    "States.MathAdd": (2, 2),
    "States.StringSplit": (2, 2),
    "States.UUID": (0, 0),
}
_COMPARED = ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
COMPARATORS = frozenset(
    [f"{kind}{op}" for kind in ("String", "Numeric", "Timestamp") for op in _COMPARED]
    + ["StringMatches", "BooleanEquals"]
)
PATH_COMPARATORS = frozenset(f"{c}Path" for c in COMPARATORS if c != "StringMatches")
TYPE_TESTS = frozenset({"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"})
# Payload templates: keys ending in ".$" take a path or an intrinsic function.
PAYLOAD_FIELDS = ("Parameters", "ResultSelector", "ItemSelector")
_NAME = re.compile(r"[^.\[\]\s'\"()@$,:*?]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?\d+")
_SLICE = re.compile(r"(-?\d+)?:(-?\d+)?(:(-?\d+)?)?")


class InvalidDefinition(ValueError):
    """A definition Step Functions would refuse; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str], *, name: str = "state machine") -> None:
        self.name = name
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{name}: invalid Amazon States Language definition "
            f"({len(self.problems)} problem(s)):\n{listed}"
        )


def check_definition(definition: Mapping[str, Any], *, name: str = "state machine") -> None:
    """Raise :class:`InvalidDefinition` listing every problem, if there is any."""
    problems = validate_definition(definition)
    if problems:
        raise InvalidDefinition(problems, name=name)


def validate_definition(definition: Mapping[str, Any]) -> list[str]:
    """Every reason Step Functions would refuse ``definition`` (empty when it is valid)."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    if not isinstance(definition, Mapping):
        return ["the definition is not a JSON object"]
    _machine(definition, "", problems, seen)
    return problems


# --- machines and states ----------------------------------------------------------------
def _machine(
    machine: Mapping[str, Any], where: str, problems: list[str], seen: dict[str, str]
) -> None:
    scope = where or "top level"
    states = machine.get("States")
    if not isinstance(states, Mapping) or not states:
        problems.append(f"{scope}: States must be a non-empty object")
        return
    start = machine.get("StartAt")
    if not isinstance(start, str):
        problems.append(f"{scope}: StartAt must be a state name")
    elif start not in states:
        problems.append(f"{scope}: StartAt {start!r} is not a state")
    terminal = False
    for name, state in states.items():
        label = f"{where}State {name!r}"
        if len(name) > MAX_STATE_NAME:
            problems.append(f"{label}: name longer than {MAX_STATE_NAME} characters")
        if name in seen:
            problems.append(f"{label}: name already used in {seen[name]} (must be unique)")
        else:
            seen[name] = scope.rstrip(" >")
        if not isinstance(state, Mapping):
            problems.append(f"{label}: not a JSON object")
            continue
        terminal |= _is_terminal(state)
        _state(str(name), state, label, where, states, problems, seen)
    if not terminal:
        problems.append(f"{scope}: no terminal state (End: true, Succeed or Fail)")
    if isinstance(start, str) and start in states:
        reachable = _reachable(start, states)
        for name in states:
            if name not in reachable:
                problems.append(f"{where}State {name!r} is not reachable from StartAt {start!r}")


def _is_terminal(state: Mapping[str, Any]) -> bool:
    return state.get("Type") in ("Succeed", "Fail") or state.get("End") is True


def _targets(state: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(field, target) for every transition out of ``state``."""
    if "Next" in state:
        yield "Next", state["Next"]
    if "Default" in state:
        yield "Default", state["Default"]
    for i, rule in enumerate(_list(state.get("Choices"))):
        if isinstance(rule, Mapping) and "Next" in rule:
            yield f"Choices[{i}].Next", rule["Next"]
    for i, catcher in enumerate(_list(state.get("Catch"))):
        if isinstance(catcher, Mapping) and "Next" in catcher:
            yield f"Catch[{i}].Next", catcher["Next"]


def _reachable(start: str, states: Mapping[str, Any]) -> set[str]:
    found = {start}
    todo = [start]
    while todo:
        state = states[todo.pop()]
        if not isinstance(state, Mapping):
            continue
        for _, target in _targets(state):
            if isinstance(target, str) and target in states and target not in found:
                found.add(target)
                todo.append(target)
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _state(
    name: str,
    state: Mapping[str, Any],
    label: str,
    where: str,
    states: Mapping[str, Any],
    problems: list[str],
    seen: dict[str, str],
) -> None:
    kind = state.get("Type")
    if kind not in STATE_TYPES:
        problems.append(f"{label}: unknown Type {kind!r}")
        return
    for field, target in _targets(state):
        if not isinstance(target, str) or target not in states:
            problems.append(f"{label}: {field} {target!r} is not a state")
    has_next, has_end = "Next" in state, "End" in state
    if has_end and not isinstance(state["End"], bool):
        problems.append(f"{label}: End must be true or false")
    if kind in ("Choice", "Succeed", "Fail"):
        if has_next or has_end:
            problems.append(f"{label}: a {kind} state has neither Next nor End")
    elif has_next and has_end:
        problems.append(f"{label}: Next and End are exclusive")
    elif not has_next and state.get("End") is not True:
        problems.append(f"{label}: needs Next or End: true")

    for field in ("InputPath", "OutputPath"):
        if field in state and state[field] is not None:
            _path(state[field], f"{label}: {field}", problems)
    if "ResultPath" in state and state["ResultPath"] is not None:
        _path(state["ResultPath"], f"{label}: ResultPath", problems, reference=True, context=False)
    for field in PAYLOAD_FIELDS:
        if field in state:
            _payload(state[field], f"{label}: {field}", problems)

    if kind == "Task" and not isinstance(state.get("Resource"), str):
        problems.append(f"{label}: a Task needs a Resource")
    if kind in ("Task", "Parallel", "Map"):
        _errors(state, label, problems)
    elif "Retry" in state or "Catch" in state:
        problems.append(f"{label}: a {kind} state has no Retry or Catch")
    if kind == "Choice":
        _choice(state, label, problems)
    elif kind == "Wait":
        given = [f for f in WAIT_FIELDS if f in state]
        if len(given) != 1:
            problems.append(
                f"{label}: a Wait needs exactly one of {', '.join(WAIT_FIELDS)} "
                f"(has {', '.join(given) or 'none'})"
            )
        for field in ("SecondsPath", "TimestampPath"):
            if field in state:
                _path(state[field], f"{label}: {field}", problems, reference=True)
    elif kind == "Fail":
        for field in ("CausePath", "ErrorPath"):
            if field in state:
                _path_or_intrinsic(state[field], f"{label}: {field}", problems)
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            problems.append(f"{label}: a Parallel needs a non-empty Branches list")
        for i, branch in enumerate(_list(branches)):
            inner = f"{where}Parallel {name!r} branch {i} > "
            if isinstance(branch, Mapping):
                _machine(branch, inner, problems, seen)
            else:
                problems.append(f"{inner.rstrip(' >')}: not a JSON object")
    elif kind == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if "ItemProcessor" in state and "Iterator" in state:
            problems.append(f"{label}: ItemProcessor and Iterator are exclusive")
        if isinstance(processor, Mapping):
            _machine(processor, f"{where}Map {name!r} > ", problems, seen)
        else:
            problems.append(f"{label}: a Map needs an ItemProcessor (or Iterator)")
        if "ItemsPath" in state:
            _path(state["ItemsPath"], f"{label}: ItemsPath", problems, reference=True)


def _errors(state: Mapping[str, Any], label: str, problems: list[str]) -> None:
    for field in ("Retry", "Catch"):
        if field not in state:
            continue
        entries = state[field]
        if not isinstance(entries, list):
            problems.append(f"{label}: {field} must be a list")
            continue
        for i, where, entry in _objects(entries, f"{label}: {field}", problems):
            errors = entry.get("ErrorEquals")
            if not isinstance(errors, list) or not errors:
                problems.append(f"{where}: ErrorEquals must be a non-empty list")
            elif not all(isinstance(e, str) and e for e in errors):
                problems.append(f"{where}: ErrorEquals must list error names")
            elif "States.ALL" in errors and (len(errors) > 1 or i != len(entries) - 1):
                problems.append(f"{where}: States.ALL must appear alone, in the last entry")
            if field == "Catch":
                if "Next" not in entry:
                    problems.append(f"{where}: a catcher needs Next")
                if entry.get("ResultPath") is not None:
                    _path(
                        entry["ResultPath"],
                        f"{where}: ResultPath",
                        problems,
                        reference=True,
                        context=False,
                    )


def _objects(
    entries: list[Any], label: str, problems: list[str]
) -> Iterator[tuple[int, str, Mapping[str, Any]]]:
    """The entries of a list that are JSON objects, each with its index and its place
    (``label[i]``); every other entry is a problem."""
    for i, entry in enumerate(entries):
        where = f"{label}[{i}]"
        if isinstance(entry, Mapping):
            yield i, where, entry
        else:
            problems.append(f"{where}: not a JSON object")


def _choice(state: Mapping[str, Any], label: str, problems: list[str]) -> None:
    rules = state.get("Choices")
    if not isinstance(rules, list) or not rules:
        problems.append(f"{label}: a Choice needs a non-empty Choices list")
        return
    for _, where, rule in _objects(rules, f"{label}: Choices", problems):
        if "Next" not in rule:
            problems.append(f"{where}: a choice rule needs Next")
        if "Condition" not in rule:  # a JSONata condition is not JSONPath: not checked here
            _rule(rule, where, problems, top=True)


def _rule(rule: Mapping[str, Any], where: str, problems: list[str], *, top: bool) -> None:
    if not top and "Next" in rule:
        problems.append(f"{where}: Next only on a top-level choice rule")
    keys = set(rule) - {"Next", "Comment"}
    boolean = keys & {"And", "Or", "Not"}
    if boolean:
        if len(keys) != 1:
            problems.append(f"{where}: {'/'.join(sorted(boolean))} must stand alone in a rule")
        for op in sorted(boolean):
            inner = rule[op]
            if op == "Not":
                if isinstance(inner, Mapping):
                    _rule(inner, f"{where}.Not", problems, top=False)
                else:
                    problems.append(f"{where}: Not takes one rule")
            elif not isinstance(inner, list) or not inner:
                problems.append(f"{where}: {op} takes a non-empty list of rules")
            else:
                for _, sub_where, sub in _objects(inner, f"{where}.{op}", problems):
                    _rule(sub, sub_where, problems, top=False)
        return
    if "Variable" not in rule:
        problems.append(f"{where}: a comparison needs Variable")
    else:
        _path(rule["Variable"], f"{where}: Variable", problems)
    tests = keys - {"Variable"}
    known = COMPARATORS | PATH_COMPARATORS | TYPE_TESTS
    unknown = sorted(tests - known)
    if unknown:
        problems.append(f"{where}: unknown comparison {', '.join(unknown)}")
    elif len(tests) != 1:
        problems.append(f"{where}: exactly one comparison per rule (has {len(tests)})")
    for op in sorted(tests & PATH_COMPARATORS):
        _path(rule[op], f"{where}: {op}", problems)


# --- payload templates, paths and intrinsic functions -------------------------------------
def _payload(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if isinstance(key, str) and key.endswith(".$"):
                _path_or_intrinsic(inner, f"{where}.{key}", problems)
            else:
                _payload(inner, f"{where}.{key}", problems)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _payload(inner, f"{where}[{i}]", problems)


def _path_or_intrinsic(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, str) and value.startswith("States."):
        problem = intrinsic_problem(value)
        if problem:
            problems.append(f"{where}: {problem}")
    else:
        _path(value, where, problems)


def _path(
    value: Any,
    where: str,
    problems: list[str],
    *,
    reference: bool = False,
    context: bool = True,
) -> None:
    if not isinstance(value, str):
        problems.append(f"{where}: {value!r} is not a path")
        return
    problem = path_problem(value, reference=reference, context=context)
    if problem:
        problems.append(f"{where}: {problem}")


def path_problem(path: str, *, reference: bool = False, context: bool = True) -> str | None:
    """Why ``path`` is not a JSONPath Step Functions accepts (a reference path: only names
    and indexes), or None."""
    kind = "reference path" if reference else "path"
    if not path.startswith("$"):
        return f"{path!r} is not a {kind} (must start with $)"
    i = 1
    if path.startswith("$$"):
        if not context:
            return f"{path!r}: the context object ($$) cannot be written to"
        i = 2
    while i < len(path):
        if path.startswith("..", i):
            if reference:
                return f"{path!r}: a {kind} cannot use '..'"
            match = _NAME.match(path, i + 2) or re.compile(r"\*").match(path, i + 2)
            if match is None:
                return f"{path!r}: a name must follow '..' at {i}"
            i = match.end()
        elif path[i] == ".":
            if path.startswith(".*", i) and not reference:
                i += 2
                continue
            match = _NAME.match(path, i + 1)
            if match is None:
                return f"{path!r}: a name must follow '.' at {i}"
            i = match.end()
        elif path[i] == "[":
            end = _closing(path, i, "[", "]")
            if end is None:
                return f"{path!r}: unbalanced '[' at {i}"
            problem = _bracket(path[i + 1 : end].strip(), reference)
            if problem:
                return f"{path!r}: {problem}"
            i = end + 1
        else:
            return f"{path!r}: unexpected {path[i]!r} at {i}"
    return None


def _bracket(inside: str, reference: bool) -> str | None:
    if not inside:
        return "empty []"
    if _quoted(inside) or _INTEGER.fullmatch(inside):
        return None
    if reference:
        return f"[{inside}]: a reference path takes only a name or an index in []"
    if inside == "*" or _SLICE.fullmatch(inside):
        return None
    if inside.startswith("?(") or inside.startswith("("):
        start = inside.index("(")
        if _closing(inside, start, "(", ")") != len(inside) - 1:
            return f"[{inside}]: unbalanced parentheses"
        return None
    parts = _split_top(inside)
    if len(parts) > 1 and all(_quoted(p) or _INTEGER.fullmatch(p) for p in parts):
        return None
    return f"[{inside}] is not a name, index, slice, wildcard, union or filter"


def _quoted(text: str) -> bool:
    if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0]:
        return False
    return _closing_quote(text, 0) == len(text) - 1


def _closing_quote(text: str, start: int) -> int | None:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return None


def _closing(text: str, start: int, opening: str, closing: str) -> int | None:
    """Index of the bracket closing the one at ``start`` (quotes respected), or None."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = _closing_quote(text, i)
            if end is None:
                return None
            i = end + 1
            continue
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _split_top(text: str) -> list[str]:
    """``text`` split at commas outside quotes and parentheses, each part stripped."""
    parts: list[str] = []
    depth = 0
    current = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = _closing_quote(text, i)
            i = len(text) if end is None else end + 1
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[current:i].strip())
            current = i + 1
        i += 1
    parts.append(text[current:].strip())
    return parts


def intrinsic_problem(text: str) -> str | None:
    """Why ``text`` is not a well-formed intrinsic function call, or None."""
    match = re.match(r"(States\.[A-Za-z0-9]+)\s*\(", text)
    if match is None:
        return f"{text!r} is not an intrinsic function call"
    function = match.group(1)
    if function not in INTRINSIC_FUNCTIONS:
        return f"{text!r}: unknown intrinsic function {function}"
    opening = match.end() - 1
    end = _closing(text, opening, "(", ")")
    if end is None:
        return f"{text!r}: unbalanced parentheses or quotes"
    if text[end + 1 :].strip():
        return f"{text!r}: unexpected text after {function}(...)"
    inside = text[opening + 1 : end].strip()
    arguments = _split_top(inside) if inside else []
    low, high = INTRINSIC_FUNCTIONS[function]
    if len(arguments) < low or (high is not None and len(arguments) > high):
        wanted = str(low) if low == high else f"{low}+" if high is None else f"{low}-{high}"
        return f"{text!r}: {function} takes {wanted} argument(s), not {len(arguments)}"
    for argument in arguments:
        problem = _argument_problem(argument)
        if problem:
            return f"{text!r}: {problem}"
    return None


def _argument_problem(argument: str) -> str | None:
    if not argument:
        return "an empty argument"
    if argument[0] == "'":
        return None if _quoted(argument) else f"unterminated string {argument!r}"
    if argument.startswith("$"):
        return path_problem(argument)
    if argument.startswith("States."):
        return intrinsic_problem(argument)
    if _NUMBER.fullmatch(argument) or argument in ("true", "false", "null"):
        return None
    return f"argument {argument!r} is not a string, number, boolean, null, path or function"
