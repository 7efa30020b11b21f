"""The template's event bus policies, enforced on PutEvents (moto stores none and checks none).

AWS evaluates a bus's resource policy for every PutEvents entry; an explicit Deny refuses
the entry even to a caller of the same account. The local runtime mirrors the Deny
statements of the template's ``AWS::Events::EventBusPolicy`` resources for
``events:PutEvents``, so "AWS refuses it" holds on a laptop too:

- the caller is the role of the function whose handler is running on this thread
  (``functions.current_function``; the ``Role`` of its ``AWS::Lambda::Function``), or
  :data:`PRODUCER_ARN` outside any function (``cloud.put_events``: a producer, a test),
  unless :func:`acting_as` says otherwise;
- a refused entry comes back in its place in ``Entries`` with ``ErrorCode``
  ``AccessDeniedException`` (counted in ``FailedEntryCount``); the others go through.

Only what Kizuna's policy uses is understood: ``Deny`` statements, ``Principal`` ``*``, the
condition operators in :data:`OPERATORS` on ``events:source``, ``events:detail-type`` and
``aws:PrincipalArn``. A policy with anything else fails the cloud's start (``TemplateError``):
a policy the runtime cannot evaluate is never silently ignored. Allow statements grant other
accounts access and change nothing for callers of the account itself.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kizuna_tools.local.functions import current_function
from kizuna_tools.local.provision import FUNCTION_METADATA_KEY
from kizuna_tools.local.template import ACCOUNT_ID, Template, TemplateError

Undo = Callable[[], None]

PRODUCER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/producer"
ACTION = "events:putevents"

OPERATORS: dict[str, tuple[bool, Callable[[str, str], bool]]] = {
    # operator -> (negated, match(value in the request, value in the policy))
    "StringEquals": (False, lambda actual, wanted: actual == wanted),
    "StringNotEquals": (True, lambda actual, wanted: actual == wanted),
    "StringLike": (False, fnmatch.fnmatchcase),
    "StringNotLike": (True, fnmatch.fnmatchcase),
    "ArnEquals": (False, lambda actual, wanted: actual == wanted),
    "ArnNotEquals": (True, lambda actual, wanted: actual == wanted),
    "ArnLike": (False, fnmatch.fnmatchcase),
    "ArnNotLike": (True, fnmatch.fnmatchcase),
}
KEYS = frozenset({"events:source", "events:detail-type", "aws:principalarn"})


@dataclass(frozen=True)
class Deny:
    """One Deny statement of a bus policy: its conditions as (operator, key, values)."""

    sid: str
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]

    def refuses(self, request: Mapping[str, str]) -> bool:
        """True if every condition holds for ``request`` (condition keys in lower case)."""
        for operator, key, values in self.conditions:
            negated, match = OPERATORS[operator]
            actual = request.get(key)
            hit = actual is not None and any(match(actual, v) for v in values)
            if hit == negated:  # a positive operator missed, or a negated one matched
                return False
        return True


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _deny(statement: Mapping[str, Any], where: str) -> Deny | None:
    if statement.get("Effect") != "Deny":
        return None
    actions = [str(a).lower() for a in _listed(statement.get("Action", []))]
    if not any(a in (ACTION, "events:*", "*") for a in actions):
        return None
    principal = statement.get("Principal")
    if principal not in ("*", {"AWS": "*"}):
        raise TemplateError(f"{where}: only Principal '*' is enforced locally, not {principal!r}")
    conditions: list[tuple[str, str, tuple[str, ...]]] = []
    for operator, pairs in dict(statement.get("Condition") or {}).items():
        if operator not in OPERATORS:
            raise TemplateError(f"{where}: condition operator {operator!r} is not enforced locally")
        for key, values in dict(pairs).items():
            if key.lower() not in KEYS:
                raise TemplateError(f"{where}: condition key {key!r} is not enforced locally")
            conditions.append((operator, key.lower(), tuple(str(v) for v in _listed(values))))
    return Deny(str(statement.get("Sid", "")), tuple(conditions))


def bus_denials(template: Template) -> dict[str, list[Deny]]:
    """Bus name -> the Deny statements on PutEvents of its ``AWS::Events::EventBusPolicy``."""
    out: dict[str, list[Deny]] = {}
    for logical_id in template.resources:
        if template.type_of(logical_id) != "AWS::Events::EventBusPolicy":
            continue
        if not template.is_active(logical_id):
            continue
        props = template.resolve(template.properties(logical_id))
        bus = template.bus_name(props.get("EventBusName"))
        statements = _listed(props.get("Statement") or [])
        policy = props.get("Policy")
        if policy is not None:
            statements += _listed(dict(policy).get("Statement") or [])
        for statement in statements:
            deny = _deny(dict(statement), logical_id)
            if deny is not None:
                out.setdefault(bus, []).append(deny)
    return out


def function_roles(template: Template) -> dict[str, str]:
    """Function name (as the runtime names it) -> the ARN of its execution role."""
    roles: dict[str, str] = {}
    for logical_id in template.resources:
        if template.type_of(logical_id) != "AWS::Lambda::Function":
            continue
        role = template.properties(logical_id).get("Role")
        if role is not None:
            roles[template.name_of(logical_id)] = str(template.resolve(role))
    return roles


def role_of(template: Template, code_name: str) -> str:
    """The execution role of the function whose handler is ``functions/<code_name>``."""
    for logical_id in template.resources:
        if template.type_of(logical_id) != "AWS::Lambda::Function":
            continue
        if template.metadata(logical_id).get(FUNCTION_METADATA_KEY) == code_name:
            return function_roles(template)[template.name_of(logical_id)]
    raise TemplateError(f"no function runs functions/{code_name} in this template")


_ACTING = threading.local()


@contextmanager
def acting_as(principal_arn: str) -> Iterator[None]:
    """Put events (on this thread) as ``principal_arn``: a test standing in for one of
    Kizuna's functions: ``with acting_as(role_of(cloud.template, "score")): ...``."""
    previous = getattr(_ACTING, "arn", None)
    _ACTING.arn = principal_arn
    try:
        yield
    finally:
        _ACTING.arn = previous


def caller(roles: Mapping[str, str]) -> str:
    """The principal of a PutEvents made now, on this thread."""
    function = current_function()
    if function is not None:  # a handler running (even inside ``acting_as``) is itself
        return roles.get(function, PRODUCER_ARN)
    acting: str | None = getattr(_ACTING, "arn", None)
    return acting if acting is not None else PRODUCER_ARN


def refused(
    denials: Mapping[str, Sequence[Deny]], bus: str, entry: Mapping[str, Any], principal: str
) -> str | None:
    """The Sid of the statement that refuses ``entry`` on ``bus`` to ``principal``, or None."""
    request = {
        "events:source": str(entry.get("Source", "")),
        "events:detail-type": str(entry.get("DetailType", "")),
        "aws:principalarn": principal,
    }
    for deny in denials.get(bus, ()):
        if deny.refuses(request):
            return deny.sid or "(no sid)"
    return None


def enforce_bus_policies(template: Template) -> Undo:
    """Wrap moto's ``EventsBackend.put_events`` (as it is now: other patches may have wrapped
    it already) to refuse the entries the template's bus policies deny; return the undo."""
    from moto.events.models import EventsBackend

    denials = bus_denials(template)
    roles = function_roles(template)
    inner = EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        principal = caller(roles)
        verdicts = []
        for event in events:
            bus = str(event.get("EventBusName") or "default").rsplit("/", 1)[-1]
            verdicts.append(refused(denials, bus, event, principal))
        allowed = [e for e, sid in zip(events, verdicts, strict=True) if sid is None]
        passed = iter(inner(self, allowed) if allowed else [])
        out: list[dict[str, Any]] = []
        for sid in verdicts:
            if sid is None:
                out.append(next(passed))
            else:
                out.append(
                    {
                        "ErrorCode": "AccessDeniedException",
                        "ErrorMessage": (
                            f"User: {principal} is not authorized to perform: events:PutEvents "
                            f"with an explicit deny in a resource-based policy ({sid})"
                        ),
                    }
                )
        return out

    EventsBackend.put_events = put_events  # type: ignore[method-assign]

    def undo() -> None:
        EventsBackend.put_events = inner  # type: ignore[method-assign]

    return undo
