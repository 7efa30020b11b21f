"""Campaign: every task of the campaign state machine (prepare, freeze, plan, send_batch,
choose_winner, complete), by the request's ``action``."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, metrics, private_errors
from kizuna.runtime.wiring import campaign_service
from kizuna.services.contracts import CampaignRequest


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=CampaignRequest)
    result = campaign_service().handle(request)
    for outcome in ("sent", "failed", "suppressed", "deferred"):
        if result.get(outcome):
            metrics.add_metric(name=f"Campaign_{outcome}", unit="Count", value=result[outcome])
    return result
