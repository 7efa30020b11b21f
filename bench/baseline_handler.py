"""A naive Lambda handler module, the cold-start baseline of bench/coldstart_bench.py.

What a handler written from the Powertools README looks like: Logger, Tracer and Metrics
built at module level, the parser, batch processing and boto3 imported at the top. It
creates no AWS client (neither do Kizuna's handlers at import: they build their clients on
the first invocation), so the comparison is imports against imports.
"""

from typing import Any

import boto3  # noqa: F401 - imported at module level, as naive handlers do
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import (  # noqa: F401
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.parser import BaseModel, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="Baseline")


class Request(BaseModel):
    customer_id: str


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=Request)
    return {"customer_id": request.customer_id}
