"""Send: the journeys' Send task — contact policy, render, deliver once, record.

A cohort's step (``cohort`` in the event) sends to every member of its group; an event
naming one ``customer_id`` sends to that customer alone."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import count_send_failure, logger, metrics
from kizuna.runtime.wiring import cohort_sends, send_service
from kizuna.services.contracts import GroupRequest, SendRequest


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "cohort" in event:
        answer = cohort_sends().handle(parse(event=event, model=GroupRequest))
        counts: dict[str, int] = answer.get("counts", {})
        failed: list[str] = answer.get("failed_channels", [])
    else:
        response = send_service().send(parse(event=event, model=SendRequest))
        counts = {response.status: 1}
        failed = [response.channel or ""] if response.status == "failed" else []
        answer = response.model_dump()
    for status, n in counts.items():
        metrics.add_metric(name=f"Messages_{status}", unit="Count", value=n)
    for channel in failed:
        count_send_failure(channel or None)
    return answer
