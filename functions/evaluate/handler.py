"""Evaluate: derived and behavioural events start (or convert) programs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, metrics, private_errors
from kizuna.runtime.wiring import evaluate_service


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return evaluate_service().process_batch(event)
