"""The values a condition may compare a field with: one of the field's type, and of its
values when they are closed. Anything else is valid syntax that silently matches nobody
(``order_count: ["2"]``: a string never equals the number 2; ``lifecycle: [at-risk]``:
the stage is ``at_risk``), so the loaders refuse it, naming the field, the value and the
values there are.

A field's :class:`ValueRule` says what it holds in the data matched: the customer view
(:mod:`kizuna.programs.view_rules`) or an event's detail (:func:`event_value_rules`, from the
bus contract's models). For every value compared with it:

* a plain value has the field's type (``[true]`` for a boolean, a number for a number, a
  ``YYYY-MM-DD`` string for a date) and, when the field's values are closed (an enum, the
  configured ranks), is one of them (``did you mean`` the closest);
* ``numeric`` is for numbers; ``prefix``, ``suffix``, ``wildcard`` and
  ``equals-ignore-case`` for strings and an event's times (a date takes only a ``prefix``,
  and a date's or a time's prefix begins its ISO text), and on a closed field begin, end,
  equal or (a wildcard) match one of its values;
* ``anything-but``'s values follow the same rules (``anything-but: [at-risk]`` would let
  everyone through); ``exists`` goes with every field;
* ``null`` only where the data holds null (a field unset in the view is absent: write
  ``[{"exists": false}]``).

A field no rule describes (the view's ``segments``, an event's free-form object) is left as
it is.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel

from kizuna.events.custom import BUILTIN, Vocabulary
from kizuna.events.derived import Configured, DerivedDetail
from kizuna.events.inbound import AMOUNT_TEXT
from kizuna.programs.pattern_rules import OR
from kizuna.programs.patterns import wildcard_matches
from kizuna.runtime.config import ValueType

_TEXT_OPERATORS = frozenset({"prefix", "suffix", "wildcard", "equals-ignore-case"})
# what the text operators compare (an event's time is ISO text too; a date takes a prefix)
_TEXTS = (ValueType.STRING, ValueType.STRING_LIST, ValueType.DATETIME)
_TIMES = (ValueType.DATE, ValueType.DATETIME)
_ISO_CHARACTERS = frozenset("0123456789-T:.+Z")


@dataclass(frozen=True)
class ValueRule:
    """What one field holds: its ``type`` (a ``string_list`` is matched element by element),
    its closed set of values if any (``enum``, and the configuration's section that sets
    them, ``source``), whether the data may hold ``null`` (``nullable``), and whether an
    amount may come as its decimal text (``amount_text``: an inbound event's amount, sent as
    ``1200`` or ``"1200"``)."""

    name: str
    type: ValueType
    enum: tuple[str, ...] | None = None
    source: str | None = None
    nullable: bool = False
    amount_text: bool = False
    # where an unset field goes: "the view" (absent from it), an event's detail...
    unset_in: str = "the view"


# A field's rule, or the rules of an object's fields (an array of objects' too).
Rules: TypeAlias = Mapping[str, "ValueRule | Rules"]


def closest(value: str, values: typing.Iterable[str]) -> str | None:
    """The value most like ``value`` (``Gold`` for ``gold``, ``at_risk`` for ``at-risk``)."""
    options = list(values)
    folded = [v for v in options if v.casefold() == value.casefold()]
    if folded:
        return folded[0]
    close = difflib.get_close_matches(value, options, n=1)
    return close[0] if close else None


def value_problem(rule: ValueRule, item: Any) -> str | None:
    """Why comparing ``rule``'s field with ``item`` (an array element) matches nobody."""
    if isinstance(item, Mapping):
        return _operator_problem(rule, item)
    if item is None:
        if rule.nullable:
            return None
        return (
            f"null never matches: an unset {rule.name!r} is absent from {rule.unset_in} "
            '(write [{"exists": false}])'
        )
    match rule.type:
        case ValueType.BOOLEAN:
            ok = isinstance(item, bool)
        case ValueType.NUMBER:
            ok = _is_number(item) or (
                rule.amount_text and isinstance(item, str) and bool(AMOUNT_TEXT.fullmatch(item))
            )
        case ValueType.DATE:
            ok = isinstance(item, str) and _is_date(item)
        case _:
            ok = isinstance(item, str)
    if not ok:
        unquote = ""
        if rule.type == ValueType.NUMBER and isinstance(item, str) and _is_number_text(item):
            unquote = f": write {item} without quotes"
        return f"{item!r} is not a {rule.type} value ({rule.name!r} is a {_kind(rule)}{unquote})"
    if rule.enum and item not in rule.enum:
        close = closest(item, rule.enum)
        mean = f"; did you mean {close!r}?" if close else ""
        return f"{item!r} is not one of {rule.name!r}'s values ({_values(rule)}){mean}"
    return None


def _operator_problem(rule: ValueRule, item: Mapping[str, Any]) -> str | None:
    if len(item) != 1:
        return None  # reported by the syntax rules
    op, arg = next(iter(item.items()))
    kind = _kind(rule)
    if op == "numeric" and rule.type != ValueType.NUMBER:
        return f"numeric compares numbers; {rule.name!r} is a {kind}"
    if op == "prefix" and rule.type in _TIMES and isinstance(arg, str):
        # a date or a time is its ISO text: "2025-07" is every day of July
        allowed = _ISO_CHARACTERS if rule.type == ValueType.DATETIME else frozenset("0123456789-")
        if arg and all(c in allowed for c in arg):
            return None
        shape = "a YYYY-MM-DD date" if rule.type == ValueType.DATE else "an ISO 8601 time"
        return f"prefix {arg!r} cannot begin {shape}"
    if op in _TEXT_OPERATORS:
        if rule.type not in _TEXTS and not rule.amount_text:
            return f"{op} compares strings; {rule.name!r} is a {kind}"
        if rule.enum and isinstance(arg, str) and not _any_value(op, arg, rule.enum):
            return f"{op} {arg!r} matches none of {rule.name!r}'s values ({_values(rule)})"
        return None
    if op == "anything-but":
        values = arg if isinstance(arg, list) else [arg]
        for value in values:
            if not isinstance(value, Mapping):
                problem = value_problem(rule, value)
                if problem:
                    return f"anything-but: {problem}"
    return None


def _any_value(op: str, arg: str, values: tuple[str, ...]) -> bool:
    if op == "prefix":
        return any(v.startswith(arg) for v in values)
    if op == "suffix":
        return any(v.endswith(arg) for v in values)
    if op == "equals-ignore-case":
        return any(v.casefold() == arg.casefold() for v in values)
    return any(wildcard_matches(arg, v) for v in values)


def _kind(rule: ValueRule) -> str:
    return f"{rule.type} (or its decimal text)" if rule.amount_text else str(rule.type)


def _values(rule: ValueRule) -> str:
    listed = ", ".join(rule.enum or ())
    return f"{listed}: the configuration's {rule.source}" if rule.source else listed


def _is_number(item: Any) -> bool:
    return isinstance(item, int | float | Decimal) and not isinstance(item, bool)


def _is_number_text(text: str) -> bool:
    try:
        return Decimal(text.strip()).is_finite()
    except ArithmeticError:
        return False


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def value_problems(condition: Any, path: str, rules: Rules) -> list[str]:
    """Every value in ``condition`` that its field (``rules``) can never hold, each with its
    JSON path (``audience.rank[0]: 'gold' is not one of ...``). Run after the syntax and
    field checks (:func:`kizuna.programs.pattern_rules.condition_problems`)."""
    problems: list[str] = []
    if not isinstance(condition, Mapping):
        return problems
    for key, value in condition.items():
        where = f"{path}.{key}"
        if key == OR and isinstance(value, list):
            for i, sub in enumerate(value):
                problems += value_problems(sub, f"{where}[{i}]", rules)
            continue
        rule = rules.get(key)
        if isinstance(rule, ValueRule) and isinstance(value, list):
            for i, item in enumerate(value):
                problem = value_problem(rule, item)
                if problem:
                    problems.append(f"{where}[{i}]: {problem}")
        elif isinstance(rule, Mapping) and isinstance(value, Mapping):
            problems += value_problems(value, where, rule)
    return problems


# --- An event's detail ---------------------------------------------------------------------


def event_value_rules(detail_type: str, vocab: Vocabulary = BUILTIN) -> Rules:
    """The rules of an event's detail fields, from the bus contract's model (a declared
    event's too): what :func:`kizuna.events.detail_fields` names, typed as the event carries
    them. An inbound event's amounts may be decimal text (``"1200"``: docs/EVENTS.md), a
    derived event's are numbers; ranks and RFM segments are the configuration's."""
    model = vocab.model_of(detail_type)
    if model is None:
        return {}
    rules = _model_rules(model, vocab, amount_text=not issubclass(model, DerivedDetail))
    return {k: v for k, v in rules.items() if k != "idempotency_key"}


def _model_rules(model: type[BaseModel], vocab: Vocabulary, *, amount_text: bool) -> Rules:
    rules: dict[str, ValueRule | Rules] = {}
    for name, info in model.model_fields.items():
        found = _rule(name, info.annotation, tuple(info.metadata), vocab, amount_text)
        if found is not None:
            rules[name] = found
    return rules


def _rule(
    name: str,
    annotation: Any,
    metadata: tuple[Any, ...],
    vocab: Vocabulary,
    amount_text: bool,
    *,
    nullable: bool = False,
    listed: bool = False,
) -> ValueRule | Rules | None:
    """The rule of a field annotated ``annotation`` (None: not worked out, not checked)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        metadata = (*metadata, *args[1:])
        return _rule(name, args[0], metadata, vocab, amount_text, nullable=nullable, listed=listed)
    if origin in (typing.Union, types.UnionType):
        return _union(name, args, metadata, vocab, amount_text, nullable=nullable, listed=listed)
    if origin in (tuple, list):
        item = args[0] if args else None
        return _rule(name, item, (), vocab, amount_text, nullable=nullable, listed=True)
    string = ValueType.STRING_LIST if listed else ValueType.STRING
    plain = ValueRule(name, string, nullable=nullable, unset_in="the event")
    if origin is Literal:
        if all(isinstance(a, str) for a in args):
            return replace(plain, enum=tuple(args))
        if all(isinstance(a, bool) for a in args):
            return replace(plain, type=ValueType.BOOLEAN)
        return replace(plain, type=ValueType.NUMBER) if all(map(_is_number, args)) else None
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, BaseModel):
        return _model_rules(annotation, vocab, amount_text=amount_text)
    if issubclass(annotation, Enum):
        return replace(plain, enum=tuple(str(member.value) for member in annotation))
    if issubclass(annotation, bool):
        return replace(plain, type=ValueType.BOOLEAN)
    if issubclass(annotation, Decimal):
        return replace(plain, type=ValueType.NUMBER, amount_text=amount_text)
    if issubclass(annotation, int | float):
        return replace(plain, type=ValueType.NUMBER)
    if issubclass(annotation, datetime) or annotation is AwareDatetime:
        return replace(plain, type=ValueType.DATETIME)
    if issubclass(annotation, date):
        return replace(plain, type=ValueType.DATE)
    if issubclass(annotation, str):
        marks = [m for m in metadata if isinstance(m, Configured)]
        if marks:
            return replace(plain, enum=vocab.configured(marks[0]), source=marks[0].value)
        return plain
    return None


def _union(
    name: str,
    args: tuple[Any, ...],
    metadata: tuple[Any, ...],
    vocab: Vocabulary,
    amount_text: bool,
    *,
    nullable: bool,
    listed: bool,
) -> ValueRule | Rules | None:
    """``X | None`` is X's rule, nullable; ``int | float`` a number; other unions unchecked."""
    kept = [a for a in args if a is not type(None)]
    nullable = nullable or len(kept) < len(args)
    found = [
        _rule(name, a, metadata, vocab, amount_text, nullable=nullable, listed=listed) for a in kept
    ]
    if len(found) == 1:
        return found[0]
    numbers = [r for r in found if isinstance(r, ValueRule) and r.type == ValueType.NUMBER]
    return numbers[0] if found and len(numbers) == len(found) else None
