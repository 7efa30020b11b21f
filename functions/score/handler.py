"""Score: the daily scoring state machine's tasks (quantile boundaries, one scan segment,
the run's finish)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import score_job
from kizuna.scoring.requests import ScoringRequest


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=ScoringRequest)
    result = score_job()(request)
    logger.info("scoring step done", extra={"action": request.root.action, "result": result})
    return result
