"""What a condition on the customer view may say (program audiences and branches, segments,
campaign audiences), with the shop's own vocabulary (:mod:`kizuna.events.custom`).

On top of :func:`kizuna.programs.pattern_rules.condition_problems` (EventBridge's rules, the
evaluator's gaps, fields the view never has), a condition naming the shop's declarations is
refused when it would silently match nobody, with the declaration to add:

* ``attributes.<name>``: a declared attribute that is not personal (a personal one is never
  in the view; templates may still use it). ``attributes.tierr`` names no declaration;
* ``behaviour.<event>.count_<N>d``: ``<event>`` is counted (a custom event, or a built-in one
  under ``custom.tracked``) over a window of ``N`` days (its ``windows_days``);
  ``behaviour.<event>.total`` and ``days_since_last`` always exist for a counted event;
* a value compared with an attribute has the attribute's type (``[true]`` for a boolean, a
  number for a number), an enum attribute's value is one of its values (``goldd`` is not),
  ``numeric`` is for numbers, ``prefix``/``suffix``/``wildcard``/``equals-ignore-case`` for
  strings, and ``null`` is refused (an unset attribute is absent from the view: write
  ``[{"exists": false}]``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from kizuna.events.custom import ATTRIBUTES_FIELD, BEHAVIOUR_FIELD, Vocabulary
from kizuna.programs.pattern_rules import OR, Fields, Hint, condition_problems, known
from kizuna.programs.view import SEGMENTS_FIELD, view_fields
from kizuna.runtime.config import CustomAttribute, ValueType

_COUNT = re.compile(r"^count_(\d+)d\Z")
_TEXT_OPERATORS = frozenset({"prefix", "suffix", "wildcard", "equals-ignore-case"})
_STRINGS = (ValueType.STRING, ValueType.STRING_LIST)


def declaration_hint(vocab: Vocabulary) -> Hint:
    """Explains an ``attributes`` or ``behaviour`` name the view does not have: the
    declaration (or the window) to add to the configuration's ``custom`` section."""

    def hint(above: tuple[str, ...], name: str, fields: Fields) -> str | None:
        if above == (ATTRIBUTES_FIELD,):
            if name in vocab.personal_attributes():
                return (
                    f"attribute {name!r} is declared personal: conditions never see personal "
                    "data (templates may use it)"
                )
            close = known(name, fields) if fields else "no attribute is declared"
            return (
                f"{close} (an attribute a condition names is declared in the configuration's "
                "custom.attributes, not personal)"
            )
        if above == (BEHAVIOUR_FIELD,):
            close = f"{known(name, fields)} " if fields else ""
            return (
                f"{close}(no counters are kept for {name!r}: declare a shop's own event in "
                "custom.events, a built-in one (app.opened, product.viewed, cart.updated, "
                "order.placed) in custom.tracked)"
            )
        if len(above) == 2 and above[0] == BEHAVIOUR_FIELD and above[1] in vocab.windows:
            event = above[1]
            windows = ", ".join(str(d) for d in vocab.windows[event])
            where = "custom.events" if event in vocab.events else "custom.tracked"
            counted = f"{event!r} is counted over {windows} days"
            wanted = _COUNT.match(name)
            if wanted:
                return f"{counted}; add {wanted[1]} to its windows_days in {where}"
            return f"{known(name, fields)} ({counted}: count_<N>d, total, days_since_last)"
        return None

    return hint


def _value_problem(spec: CustomAttribute, item: Any) -> str | None:
    """Why comparing ``spec``'s values with ``item`` (an array element) matches nobody."""
    if isinstance(item, Mapping):
        if len(item) != 1:
            return None  # reported by the syntax rules
        op, arg = next(iter(item.items()))
        if op == "numeric" and spec.type != ValueType.NUMBER:
            return f"numeric compares numbers; {spec.name!r} is a {spec.type}"
        if op == "prefix" and spec.type == ValueType.DATE and isinstance(arg, str):
            # a date is its "YYYY-MM-DD" text in the view: "2025-07" is every day of July
            return (
                None
                if arg and all(c.isdigit() or c == "-" for c in arg)
                else (f"prefix {arg!r} cannot begin a YYYY-MM-DD date")
            )
        if op in _TEXT_OPERATORS and spec.type not in _STRINGS:
            return f"{op} compares strings; {spec.name!r} is a {spec.type}"
        if op == "anything-but":
            values = arg if isinstance(arg, list) else [arg]
            for value in values:
                if not isinstance(value, Mapping):
                    problem = _value_problem(spec, value)
                    if problem:
                        return f"anything-but: {problem}"
        return None
    if item is None:
        return (
            f"null never matches: an unset {spec.name!r} is absent from the view "
            '(write [{"exists": false}])'
        )
    match spec.type:
        case ValueType.BOOLEAN:
            ok = isinstance(item, bool)
        case ValueType.NUMBER:
            ok = isinstance(item, int | float) and not isinstance(item, bool)
        case ValueType.DATE:
            ok = isinstance(item, str) and _is_date(item)
        case _:
            ok = isinstance(item, str)
    if not ok:
        return f"{item!r} is not a {spec.type} value ({spec.name!r} is a {spec.type})"
    if spec.enum and item not in spec.enum:
        return f"{item!r} is not one of {spec.name!r}'s values ({', '.join(spec.enum)})"
    return None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def attribute_value_problems(condition: Any, path: str, vocab: Vocabulary) -> list[str]:
    """Values compared with declared attributes that no customer can have (see the module)."""
    problems: list[str] = []
    if not isinstance(condition, Mapping):
        return problems
    for key, value in condition.items():
        where = f"{path}.{key}"
        if key == OR and isinstance(value, list):
            for i, sub in enumerate(value):
                problems += attribute_value_problems(sub, f"{where}[{i}]", vocab)
        elif key == ATTRIBUTES_FIELD and isinstance(value, Mapping):
            for name, values in value.items():
                spec = vocab.attributes.get(name)
                if spec is None or not isinstance(values, list):
                    continue
                for i, item in enumerate(values):
                    problem = _value_problem(spec, item)
                    if problem:
                        problems.append(f"{where}.{name}[{i}]: {problem}")
    return problems


def view_condition_problems(
    condition: Any, path: str, vocab: Vocabulary, *, segments: bool = True
) -> list[str]:
    """Every reason to refuse a condition on the customer view (audience, branch, campaign
    audience; with ``segments=False`` a segment's own conditions, which cannot name
    segments)."""
    fields = dict(view_fields(vocab))
    if not segments:
        del fields[SEGMENTS_FIELD]
    problems = condition_problems(
        condition, path, to_eventbridge=False, fields=fields, hint=declaration_hint(vocab)
    )
    return problems or attribute_value_problems(condition, path, vocab)
