"""Signed links behind the function URL: one-click unsubscribe (RFC 8058) POST and its
confirmation page on GET, and tracked link clicks (``GET /l/<token>``)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kizuna.runtime.observability import logger, private_errors
from kizuna.runtime.wiring import link_click_service, unsubscribe_service
from kizuna.services.links import is_link_path


@logger.inject_lambda_context(clear_state=True)
@private_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_link_path(event.get("rawPath")):
        return link_click_service().handle(event)
    return unsubscribe_service().handle(event)
