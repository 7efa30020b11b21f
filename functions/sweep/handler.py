"""Sweep: scheduled triggers (dormancy risk, points expiry, abandoned carts, birthdays) onto
the bus."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import sweep_job
from kizuna.services.sweep import SweepRequest


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    request = parse(event=event, model=SweepRequest)
    counts = sweep_job()(request)
    logger.info("sweep done", extra={"events": counts})
    return counts
