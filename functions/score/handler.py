"""Score: the daily scoring state machine's tasks (quantile boundaries, one scan segment,
the run's finish)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.clock import CurrentClock
from kizuna.config import load_config
from kizuna.observability import logger
from kizuna.scoring.job import ScoringRequest, run_scoring
from kizuna.settings import score_settings
from kizuna.wiring import score_parts


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=ScoringRequest)
    store, publisher, analytics = score_parts()
    cfg = load_config(score_settings().KIZUNA_CONFIG)
    result = run_scoring(request, store, publisher, cfg, CurrentClock(), analytics)
    logger.info("scoring step done", extra={"action": request.root.action, "result": result})
    return result
