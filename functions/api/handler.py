"""The HTTP API and the console (API Gateway HTTP API, payload 2.0)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import api_app


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api_app().resolve(event, context)
