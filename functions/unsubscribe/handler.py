"""Unsubscribe: one-click (RFC 8058) POST and a confirmation page on GET (function URL)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger
from kizuna.runtime.wiring import unsubscribe_service


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return unsubscribe_service().handle(event)
