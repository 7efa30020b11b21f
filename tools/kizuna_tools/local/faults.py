"""Fault injection: the local runtime answers some of the app's AWS calls with a failure.

    kizuna local run --faults 'dynamodb=0.1,sesv2=0.1,dynamodb.TransactWriteItems=0.2'
    LocalCloud.from_template(..., faults=FaultPlan.parse("*=0.1,kinds=throttle+after", seed=7))

The spec is a comma-separated list of items::

    TARGET=RATE[:KINDS]    a rate in [0, 1] for a service, one operation, or everything
    kinds=KINDS            the kinds a TARGET without its own gets (default: all that apply)
    seed=INT               the seed of the draws (default: the run's seed)

    TARGET = *  |  service  |  service.Operation     (botocore names: dynamodb, sesv2,
                                                       sqs, events, lambda, stepfunctions...)
    KINDS  = kind[+kind...]

The most specific TARGET applies (``dynamodb.TransactWriteItems`` before ``dynamodb`` before
``*``). Each call (or delivery) of the target draws once: with probability RATE it gets one
fault, of a kind chosen evenly among the target's kinds that apply to it:

``throttle``   refused before anything happened, with the service's throttling error
               (``ProvisionedThroughputExceededException``, ``TooManyRequestsException``...).
``error``      a 5xx before anything happened (``InternalServerError``, ``ServiceException``).
``after``      the call is made and takes effect, then the caller gets a 5xx: the hard case.
``timeout``    the call is made and takes effect, then the caller gets ``ReadTimeoutError``
               (the answer was lost).
``duplicate``  a delivery made twice: an SQS message the queue delivers again after it was
               processed (``sqs``, drawn per message as ``sqs.ReceiveMessage``), or an
               EventBridge event delivered twice to a target (``events``, drawn per delivery
               as ``events.PutEvents``). At most one extra delivery per message or event.

Faults reach only the app: calls made by a handler and by the Step Functions interpreter (a
Lambda task's ``Invoke``: a fault there is retried by the state machine's ``Retry``, and with
``after`` the function ran); never the runtime's own calls nor a producer's
(``cloud.put_events``) or a test's. They are what the app sees after the SDK gave up: the
SDK's own retries are not in between. Draws are keyed by seed, target and the n-th call of
that operation, so a run is repeatable as far as its order of calls is.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

KINDS = ("throttle", "error", "after", "timeout", "duplicate")
CALL_KINDS = frozenset({"throttle", "error", "after", "timeout"})
# service -> the operation a duplicated delivery is drawn (and counted) as
DUPLICATES = {"sqs": "ReceiveMessage", "events": "PutEvents"}

# service -> (code, HTTP status) of its throttling error and of its 5xx
_THROTTLE: dict[str, tuple[str, int]] = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "sqs": ("RequestThrottled", 400),
    "lambda": ("TooManyRequestsException", 429),
    "sesv2": ("TooManyRequestsException", 429),
    "ses": ("Throttling", 400),
    "sns": ("Throttled", 400),
    "pinpoint": ("TooManyRequestsException", 429),
    "s3": ("SlowDown", 503),
}
_TRANSACT_THROTTLE = ("ThrottlingException", 400)  # DynamoDB transactions
_ERROR: dict[str, tuple[str, int]] = {
    "dynamodb": ("InternalServerError", 500),
    "sqs": ("InternalError", 500),
    "lambda": ("ServiceException", 500),
    "sesv2": ("InternalServiceErrorException", 500),
    "sns": ("InternalError", 500),
    "pinpoint": ("InternalServerErrorException", 500),
    "events": ("InternalException", 500),
    "s3": ("InternalError", 500),
    "ssm": ("InternalServerError", 500),
    "scheduler": ("InternalServerException", 500),
    "pinpoint-sms-voice-v2": ("InternalServerException", 500),
}
_CONTEXT_KEY = "kizuna_local_fault"


class FaultSpecError(ValueError):
    """A ``--faults`` spec that cannot be read; the message says where and why."""


@functools.lru_cache(maxsize=1)
def _services() -> frozenset[str]:
    from botocore.loaders import create_loader

    return frozenset(create_loader().list_available_services("service-2"))


@functools.lru_cache(maxsize=64)
def _operations(service: str) -> frozenset[str]:
    from botocore.loaders import create_loader

    model = create_loader().load_service_model(service, "service-2")
    return frozenset(model["operations"])


def _kinds(text: str, where: str) -> tuple[str, ...]:
    names = text.split("+")
    unknown = [n for n in names if n not in KINDS]
    if not text or unknown:
        raise FaultSpecError(
            f"{where}: unknown fault kind {(unknown or [text])[0]!r}; "
            f"kinds are {', '.join(KINDS)} joined with '+'"
        )
    if len(set(names)) != len(names):
        raise FaultSpecError(f"{where}: a kind is named twice in {text!r}")
    return tuple(names)


def _applicable(service: str, operation: str | None) -> frozenset[str]:
    """The kinds that can happen to a target: call faults anywhere, duplicates on deliveries."""
    kinds = set(CALL_KINDS)
    if service == "*" or (service in DUPLICATES and operation in (None, DUPLICATES[service])):
        kinds.add("duplicate")
    return frozenset(kinds)


@dataclass(frozen=True)
class FaultRule:
    service: str  # "*" for every service
    operation: str | None
    rate: float
    kinds: tuple[str, ...] | None  # None: the plan's default kinds

    @property
    def target(self) -> str:
        return self.service if self.operation is None else f"{self.service}.{self.operation}"


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, at which rate, with which seed (see the module's doc for the syntax)."""

    rules: tuple[FaultRule, ...]
    seed: int = 0
    default_kinds: tuple[str, ...] = KINDS

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> FaultPlan:
        """Read a spec; raise :class:`FaultSpecError` for anything malformed."""
        rules: list[FaultRule] = []
        default_kinds: tuple[str, ...] | None = None
        seen: set[str] = set()
        items = [item.strip() for item in spec.split(",")]
        if not spec.strip():
            raise FaultSpecError("empty fault spec; e.g. 'dynamodb=0.1,sesv2=0.1'")
        for item in items:
            where = f"fault spec item {item!r}"
            name, equals, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not equals or not name or not value:
                raise FaultSpecError(f"{where}: expected TARGET=RATE, kinds=KINDS or seed=INT")
            if name == "kinds":
                if default_kinds is not None:
                    raise FaultSpecError(f"{where}: kinds= is given twice")
                default_kinds = _kinds(value, where)
                continue
            if name == "seed":
                try:
                    seed = int(value)
                except ValueError:
                    raise FaultSpecError(f"{where}: the seed must be an integer") from None
                continue
            rate_text, colon, kinds_text = value.partition(":")
            try:
                rate = float(rate_text)
            except ValueError:
                raise FaultSpecError(f"{where}: the rate must be a number in [0, 1]") from None
            if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"{where}: the rate must be a number in [0, 1]")
            service, dot, operation = name.partition(".")
            if service != "*" and service not in _services():
                raise FaultSpecError(f"{where}: no AWS service {service!r} (botocore's names)")
            if dot and (service == "*" or not operation):
                raise FaultSpecError(f"{where}: expected service.Operation")
            if dot and operation not in _operations(service):
                raise FaultSpecError(f"{where}: {service} has no operation {operation!r}")
            kinds = _kinds(kinds_text, where) if colon else None
            rule = FaultRule(service, operation if dot else None, rate, kinds)
            if kinds is not None:
                wrong = [k for k in kinds if k not in _applicable(service, rule.operation)]
                if wrong:
                    raise FaultSpecError(
                        f"{where}: {wrong[0]!r} does not apply to {rule.target} (duplicates: "
                        + ", ".join(f"{s} or {s}.{o}" for s, o in DUPLICATES.items())
                        + ")"
                    )
            if rule.target in seen:
                raise FaultSpecError(f"{where}: {rule.target} is given twice")
            seen.add(rule.target)
            rules.append(rule)
        if not rules:
            raise FaultSpecError("the fault spec names no TARGET=RATE")
        return cls(tuple(rules), seed, default_kinds or KINDS)

    def rule_for(self, service: str, operation: str) -> FaultRule | None:
        by_target = {rule.target: rule for rule in self.rules}
        return (
            by_target.get(f"{service}.{operation}") or by_target.get(service) or by_target.get("*")
        )

    def describe(self) -> str:
        parts = [
            f"{r.target}={r.rate:g}" + (":" + "+".join(r.kinds) if r.kinds else "")
            for r in self.rules
        ]
        if self.default_kinds != KINDS:
            parts.append("kinds=" + "+".join(self.default_kinds))
        return ",".join([*parts, f"seed={self.seed}"])


def _uniform(seed: int, stream: str, n: int) -> float:
    """A number in [0, 1) fixed by the seed, the stream and the draw's index."""
    digest = hashlib.blake2b(f"{seed}|{stream}|{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Draws and applies the faults of a :class:`FaultPlan`; counts what it injected."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.counts: Counter[tuple[str, str]] = Counter()  # (service.Operation, kind)
        # every fault injected, in order: (service.Operation, kind, note), the note saying
        # where (the runtime passes the function and the virtual time)
        self.log: list[tuple[str, str, str]] = []
        self._draws: Counter[str] = Counter()
        self._lock = threading.Lock()

    def draw(
        self,
        service: str,
        operation: str,
        kinds: frozenset[str] = CALL_KINDS,
        note: str = "",
    ) -> str | None:
        """The fault this call (or delivery) gets, if any, among ``kinds``."""
        rule = self.plan.rule_for(service, operation)
        if rule is None or rule.rate <= 0.0:
            return None
        allowed = _applicable(service, operation) & kinds
        choices = [k for k in (rule.kinds or self.plan.default_kinds) if k in allowed]
        if not choices:
            return None
        target = f"{service}.{operation}"
        stream = target + ("#duplicate" if kinds == {"duplicate"} else "")
        with self._lock:
            n = self._draws[stream]
            self._draws[stream] += 1
        u = _uniform(self.plan.seed, stream, n)
        if u >= rule.rate:
            return None
        kind = choices[min(int(u / rule.rate * len(choices)), len(choices) - 1)]
        with self._lock:
            self.counts[(target, kind)] += 1
            self.log.append((target, kind, note))
        return kind

    def duplicate(self, service: str, note: str = "") -> bool:
        """Is this delivery (an SQS message processed, an event to a target) made twice?"""
        kinds = frozenset({"duplicate"})
        return self.draw(service, DUPLICATES[service], kinds, note) == "duplicate"

    # --- botocore's before-call and after-call ----------------------------------------------
    def before_call(
        self, service: str, operation: str, url: str, context: dict[str, Any], note: str = ""
    ) -> tuple[Any, dict[str, Any]] | None:
        """A response that refuses the call (throttle, error), or None to let it through
        (remembering in ``context`` a fault to apply after it: after, timeout)."""
        kind = self.draw(service, operation, note=note)
        if kind is None:
            return None
        if kind in ("after", "timeout"):
            context[_CONTEXT_KEY] = (kind, service)
            return None
        if kind == "throttle":
            code, status = _throttle(service, operation)
            message = "Rate exceeded (injected by kizuna_tools.local)"
        else:
            code, status = _ERROR.get(service, ("InternalFailure", 500))
            message = "Internal error before the call (injected by kizuna_tools.local)"
        return _error_response(url, status, code, message)

    def after_call(self, http: Any, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        """Turn a call that took effect into a 5xx or a lost answer, if drawn so."""
        drawn = context.pop(_CONTEXT_KEY, None)
        if drawn is None or http is None or getattr(http, "status_code", 500) >= 300:
            return  # nothing drawn, or the call failed by itself
        kind, service = drawn
        if kind == "timeout":
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=str(getattr(http, "url", "")))
        code, status = _ERROR.get(service, ("InternalFailure", 500))
        http.status_code = status
        parsed["Error"] = {
            "Code": code,
            "Message": "Internal error after the call took effect (injected by kizuna_tools.local)",
        }
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status

    def summary(self) -> dict[str, Any]:
        """Injected faults: per kind, and per target and kind (JSON-ready)."""
        by_kind: Counter[str] = Counter()
        by_target: dict[str, dict[str, int]] = {}
        for (target, kind), n in sorted(self.counts.items()):
            by_kind[kind] += n
            by_target.setdefault(target, {})[kind] = n
        return {
            "spec": self.plan.describe(),
            "total": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "by_target": by_target,
        }


def _throttle(service: str, operation: str) -> tuple[str, int]:
    if service == "dynamodb" and operation.startswith("Transact"):
        return _TRANSACT_THROTTLE
    return _THROTTLE.get(service, ("ThrottlingException", 400))


def _error_response(url: str, status: int, code: str, message: str) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse

    parsed: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "RequestId": "kizuna-local-fault",
            "HTTPStatusCode": status,
            "HTTPHeaders": {},
            "RetryAttempts": 0,
        },
    }
    return AWSResponse(url, status, {"x-amzn-requestid": "kizuna-local-fault"}, None), parsed
