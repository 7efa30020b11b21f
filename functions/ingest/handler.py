"""Ingest: inbound events from the SQS queue become customer state in DynamoDB."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, metrics, private_errors
from kizuna.runtime.wiring import ingest_service


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = ingest_service()
    response = service.process_batch(event)
    metrics.add_metric(name="RecordsFailed", unit="Count", value=len(response["batchItemFailures"]))
    return response
