"""Send: the journeys' Send task — contact policy, render, deliver once, record."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import count_send_failure, logger, metrics
from kizuna.runtime.wiring import send_service
from kizuna.services.contracts import SendRequest


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event=event, model=SendRequest)
    response = send_service().send(request)
    metrics.add_metric(name=f"Messages_{response.status}", unit="Count", value=1)
    if response.status == "failed":
        count_send_failure(response.channel)
    return response.model_dump()
