"""Feedback: SES bounce/complaint/delivery/open/click events -> suppressions and ledger."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.observability import logger, metrics
from kizuna.wiring import feedback_service


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return feedback_service().process_batch(event)
