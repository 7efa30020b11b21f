"""Feedback: SES bounce/complaint/delivery/open/click events -> suppressions and ledger;
on its schedules, numbers that replied STOP to an SMS, and the reconciliation of ledger
entries left at ``sending``."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, metrics, private_errors
from kizuna.runtime.wiring import feedback_service, reconcile_service, sms_opted_out_numbers


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("sweep") == "sms_opt_outs":
        return {"suppressed": feedback_service().sweep_sms_opt_outs(sms_opted_out_numbers())}
    if event.get("sweep") == "reconcile_sends":
        settled = reconcile_service().run()
        metrics.add_metric(name="ReconcileSettled", unit="Count", value=sum(settled.values()))
        return {"settled": settled}
    return feedback_service().process_batch(event)
