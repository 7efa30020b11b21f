"""Send: the journeys' Send task — contact policy, render, deliver once, record.

A cohort's step (``cohort`` in the event) sends to every member of its group; an event
naming one ``customer_id`` sends to that customer alone; a ``transactional`` action (the
API's "template T to customer C now", invoked synchronously) sends one transactional message
over the same path."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import count_send_failure, logger, metrics, private_errors
from kizuna.runtime.wiring import cohort_sends, send_service, transactional_service
from kizuna.services.contracts import GroupRequest, SendRequest, TransactionalRequest


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    counts: dict[str, int]
    failed: list[str]
    if event.get("action") == "transactional":
        message = transactional_service().send(parse(event=event, model=TransactionalRequest))
        counts = {f"transactional_{message.status}": 1}
        failed = [message.channel or ""] if message.status == "failed" else []
        answer = message.model_dump()
    elif "cohort" in event:
        answer = cohort_sends().handle(parse(event=event, model=GroupRequest))
        counts = answer.get("counts", {})
        failed = answer.get("failed_channels", [])
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
