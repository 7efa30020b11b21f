"""The one place that builds Logger and Metrics (X-Ray tracing is off: it costs cold start)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="kizuna")
metrics = Metrics(namespace="Kizuna")
