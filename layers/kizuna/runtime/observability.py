"""The one place that builds Logger and Metrics (X-Ray tracing is off: it costs cold start).

Service name and namespace come from each function's environment
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``, set by the CDK app).
Log with keys, never f-strings, and never personal data: customer ids are pseudonymous,
emails, phone numbers, names and tokens never appear in a log line.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

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


SEND_FAILED_METRIC = "SendFailed"
CHANNEL_DIMENSION = "channel"
LEDGER_WRITE_FAILED_METRIC = "LedgerWriteFailed"  # outcomes not recorded after delivery
STALE_SENDING_METRIC = "StaleSending"  # ledger entries the reconciliation sweep settled
OUTCOME_DIMENSION = "outcome"
STALE_OUTCOMES = ("sent", "not_dispatched", "outcome_unknown")


def count_send_failure(channel: str | None) -> None:
    """One ``SendFailed`` metric per failed send with a ``channel`` dimension (alarmed on per
    channel by the monitoring construct)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(
        name=SEND_FAILED_METRIC,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
    ) as metric:
        metric.add_dimension(name=CHANNEL_DIMENSION, value=channel or "none")


def _count(name: str, value: int, dimension: str, dimension_value: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(
        name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace
    ) as metric:
        metric.add_dimension(name=dimension, value=dimension_value)


def count_ledger_write_failure(entries: int) -> None:
    """``LedgerWriteFailed``: outcomes delivered but not written (the entries stay
    ``sending`` until the reconciliation sweep settles them)."""
    _count(LEDGER_WRITE_FAILED_METRIC, entries, OUTCOME_DIMENSION, "not_recorded")


def count_stale_sending(outcome: str, entries: int) -> None:
    """``StaleSending`` by ``outcome`` (:data:`STALE_OUTCOMES`): entries found ``sending``
    long after their claim, as the reconciliation sweep settled them (alarmed on)."""
    _count(STALE_SENDING_METRIC, entries, OUTCOME_DIMENSION, outcome)
