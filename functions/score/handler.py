"""Score: the daily scoring state machine's tasks (quantile boundaries, one scan segment,
the run's finish)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.clock import CurrentClock
from kizuna.runtime.config import load_config
from kizuna.runtime.observability import logger
from kizuna.runtime.settings import score_settings
from kizuna.runtime.wiring import score_parts
from kizuna.scoring.job import ScoringRequest, run_scoring


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=ScoringRequest)
    store, publisher, analytics = score_parts()
    cfg = load_config(score_settings().KIZUNA_CONFIG)
    result = run_scoring(request, store, publisher, cfg, CurrentClock(), analytics)
    logger.info("scoring step done", extra={"action": request.root.action, "result": result})
    return result
