"""Sweep: scheduled triggers (dormancy risk, points expiry, abandoned carts) onto the bus."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.clock import CurrentClock
from kizuna.runtime.config import load_config
from kizuna.runtime.observability import logger
from kizuna.runtime.settings import sweep_settings
from kizuna.runtime.wiring import sweep_parts
from kizuna.services.sweep import SweepRequest, run_sweep


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    request = parse(event=event, model=SweepRequest)
    store, publisher = sweep_parts()
    counts = run_sweep(
        request, store, publisher, load_config(sweep_settings().KIZUNA_CONFIG), CurrentClock()
    )
    logger.info("sweep done", extra={"events": counts})
    return counts
