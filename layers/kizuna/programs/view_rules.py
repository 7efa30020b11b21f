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
* a value compared with a field has the field's type, and is one of its values when they
  are closed (:mod:`kizuna.programs.value_rules`): a built-in field's
  (:data:`kizuna.programs.view.VIEW_VALUES`: ``lifecycle: [at-risk]``, ``order_count:
  ["2"]``, ``rank: [gold]`` with ranks named ``Gold`` are refused), a declared attribute's
  (``[true]`` for a boolean, an enum's values: ``goldd`` is not one), a counter's (a
  number); ``null`` is refused (an unset field is absent from the view: write
  ``[{"exists": false}]``).
"""

from __future__ import annotations

import re
from typing import Any

from kizuna.events.custom import ATTRIBUTES_FIELD, BEHAVIOUR_FIELD, Vocabulary
from kizuna.events.derived import Configured
from kizuna.programs.pattern_rules import Fields, Hint, condition_problems, known
from kizuna.programs.value_rules import Rules, ValueRule, value_problems
from kizuna.programs.view import (
    CONSENT_CHANNELS,
    CONSENT_STATUSES,
    SEGMENTS_FIELD,
    VIEW_VALUES,
    view_fields,
)
from kizuna.runtime.config import ValueType

_COUNT = re.compile(r"^count_(\d+)d\Z")


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


def view_value_rules(vocab: Vocabulary) -> Rules:
    """What each field of the view holds (:data:`kizuna.programs.view.VIEW_VALUES`, the
    configured ranks and RFM segments from ``vocab``), the declared attributes' values and
    the counters' numbers included. ``segments`` has none: its names are checked against
    the segments defined."""
    rules: dict[str, ValueRule | Rules] = {}
    for name, (kind, values) in VIEW_VALUES.items():
        if isinstance(values, Configured):
            rules[name] = ValueRule(name, kind, vocab.configured(values), source=values.value)
        else:
            rules[name] = ValueRule(name, kind, values)
    rules["consent"] = {
        channel: ValueRule(f"consent.{channel}", ValueType.STRING, CONSENT_STATUSES)
        for channel in CONSENT_CHANNELS
    }
    rules[ATTRIBUTES_FIELD] = {
        name: ValueRule(name, spec.type, spec.enum)
        for name, spec in vocab.attributes.items()
        if not spec.personal
    }
    rules[BEHAVIOUR_FIELD] = {
        event: {name: ValueRule(f"{event}.{name}", ValueType.NUMBER) for name in counters}
        for event, counters in vocab.behaviour_fields().items()
    }
    return rules


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
    return problems or value_problems(condition, path, view_value_rules(vocab))
