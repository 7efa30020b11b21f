"""The one place that builds Logger and Metrics (X-Ray tracing is off: it costs cold start).

Service name and namespace come from each function's environment
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``, set by the CDK app).
Log with keys, never f-strings, and never personal data: customer ids are pseudonymous,
emails, phone numbers, names and tokens never appear in a log line.
"""

from __future__ import annotations

import functools
import json
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Kizuna"))

FAILURE_FRAMES = 5  # the innermost frames a failure's log line names


def failure(exc: BaseException) -> dict[str, Any]:
    """What a log line says of an exception it caught, in place of ``logger.exception``: its
    type, AWS's error code for a botocore ``ClientError``, and where it was raised (the
    innermost :data:`FAILURE_FRAMES` frames, ``file:line function``) — never its message or
    a traceback's text, which may quote an input (a pydantic error prints the value it
    refused, an address included)."""
    fields: dict[str, Any] = {"error": type(exc).__name__}
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str):
            fields["error_code"] = code
    frames = traceback.extract_tb(exc.__traceback__)[-FAILURE_FRAMES:]
    fields["where"] = [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in frames]
    return fields


_F = TypeVar("_F", bound=Callable[..., Any])
_STAND_INS: dict[str, type[Exception]] = {}
OWN_MODULES = ("kizuna.",)  # exceptions raised in Kizuna's words: their messages are kept


def _stand_in(exc: Exception) -> Exception:
    """An exception of the same class name (what Lambda reports as ``errorType`` and Step
    Functions matches retries on) whose message says what the original was without its
    text: AWS's code and operation for a ``ClientError``, else only the type."""
    name = type(exc).__name__
    cls = _STAND_INS.get(name)
    if cls is None:
        cls = type(name, (Exception,), {"__module__": __name__})
        _STAND_INS[name] = cls
    code = failure(exc).get("error_code")
    operation = getattr(exc, "operation_name", None)
    said = f"{code} in {operation}" if code and isinstance(operation, str) else name
    return cls(f"{said} (the message is in no log: it may quote an input; see the log line)")


def private_errors(handler: _F) -> _F:
    """A function's handler whose uncaught exceptions carry no input: Lambda writes an
    uncaught exception's message and traceback to the log, Step Functions keeps it in the
    execution's history (90 days, not erasable per customer) and an async invocation's
    failure destination in its record. An exception of Kizuna's own (a class in a ``kizuna.``
    module: its message is Kizuna's words, as ``CampaignPaused`` or ``SweepFailed``) goes on
    as it is; any other is logged with :func:`failure` and replaced by a stand-in of the same
    class name (retries and catches match names), its message without the original text."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(OWN_MODULES):
                raise
            logger.error("handler failed", **failure(exc))
            raise _stand_in(exc) from None

    wrapper.private_errors = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


SEND_FAILED_METRIC = "SendFailed"
CHANNEL_DIMENSION = "channel"
NO_CHANNEL = "none"  # its value for a message that failed before a channel was chosen
LEDGER_WRITE_FAILED_METRIC = "LedgerWriteFailed"  # outcomes not recorded after delivery
STALE_SENDING_METRIC = "StaleSending"  # ledger entries the reconciliation sweep settled
OUTCOME_DIMENSION = "outcome"
STALE_OUTCOMES = ("sent", "not_dispatched", "outcome_unknown")
# A mailbox provider's report about an email (not a complaint), by ``reason``: its
# Feedback-Type (``auth-failure``, ``virus``; kizuna.delivery.feedback.PROVIDER_REPORTS).
PROVIDER_REPORT_METRIC = "EmailProviderReport"
REASON_DIMENSION = "reason"


def count(name: str, value: int, dimension: str, dimension_value: str) -> None:
    """One EMF metric ``name`` in Kizuna's namespace with exactly one dimension,
    ``dimension``. Powertools adds a ``service`` dimension (``POWERTOOLS_SERVICE_NAME``, set
    on every function) to what it emits, and CloudWatch keys a metric by its whole dimension
    set: ``SendFailed{channel, service}`` is not the ``SendFailed{channel}`` the monitoring
    construct alarms on, and that alarm would never fire. So no ``service`` here."""
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.base import SingleMetric

    metric = SingleMetric(namespace=metrics.namespace, service="")
    metric.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metric.add_dimension(name=dimension, value=dimension_value)
    print(json.dumps(metric.serialize_metric_set(), separators=(",", ":")))


def count_send_failure(channel: str | None) -> None:
    """One ``SendFailed`` metric per failed send with a ``channel`` dimension (alarmed on per
    channel by the monitoring construct)."""
    count(SEND_FAILED_METRIC, 1, CHANNEL_DIMENSION, channel or NO_CHANNEL)


def count_ledger_write_failure(entries: int) -> None:
    """``LedgerWriteFailed``: outcomes delivered but not written (the entries stay
    ``sending`` until the reconciliation sweep settles them)."""
    count(LEDGER_WRITE_FAILED_METRIC, entries, OUTCOME_DIMENSION, "not_recorded")


def count_stale_sending(outcome: str, entries: int) -> None:
    """``StaleSending`` by ``outcome`` (:data:`STALE_OUTCOMES`): entries found ``sending``
    long after their claim, as the reconciliation sweep settled them (alarmed on)."""
    count(STALE_SENDING_METRIC, entries, OUTCOME_DIMENSION, outcome)
