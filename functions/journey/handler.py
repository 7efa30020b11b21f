"""Journey: a cohort's seal, branch, split and local-time steps, for Step Functions."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import journey_service
from kizuna.services.contracts import GroupRequest


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=GroupRequest)
    return journey_service().handle(request)
