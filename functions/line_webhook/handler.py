"""LINE webhook: signed events from LINE (follow, unfollow, account link) (function URL)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import line_webhook_service


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return line_webhook_service().handle(event)
