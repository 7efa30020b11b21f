"""The API function's app: every route family, authentication, security headers.

Authentication happens once, before any route, by path prefix: ``/api`` reads the bearer
id token, ``/machine`` the IAM identity API Gateway verified, ``/console`` the session
cookie. The result (a principal, or why there is none) is in the request context; routes
then ask for what they need with :func:`kizuna.api.context.require`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from kizuna.api import console
from kizuna.api.auth import AuthError, Principal, bearer_token, iam_principal
from kizuna.api.body import BodyRefused, strict_loads
from kizuna.api.console.i18n import Translator
from kizuna.api.context import AUTH_ERROR_KEY, DEPS_KEY, PRINCIPAL_KEY
from kizuna.api.deps import ApiDeps
from kizuna.domain.customer import UnreadableCustomer
from kizuna.runtime.headers import FRAME_ANCESTORS, NO_FRAMING

API_TITLE: Final = "Kizuna API"
API_VERSION: Final = "1.0.0"
JSON_MEDIA_TYPE: Final = "application/json"

# Every answer: a restrictive CSP (the console needs no script), no sniffing, no framing,
# HTTPS only, nothing cached (answers carry customer data).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        f"{FRAME_ANCESTORS}; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": NO_FRAMING["X-Frame-Options"],
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Cache-Control": "no-store",
}


# Powertools' event handler logs a route's uncaught exception (``logger.exception``: its
# message and traceback) before the function's ``private_errors`` sees it; that text may quote
# an input (a pydantic error prints the value it refused, an address included).
POWERTOOLS_ROUTE_LOGGER: Final = "aws_lambda_powertools.event_handler.api_gateway"


class _NoExceptionText(logging.Filter):
    """Drops a record carrying an exception: the function's ``private_errors`` logs the same
    failure with its type and where it was raised, never its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None and record.levelno < logging.ERROR


def _keep_exception_text_out_of_logs() -> None:
    route_logger = logging.getLogger(POWERTOOLS_ROUTE_LOGGER)
    if not any(isinstance(f, _NoExceptionText) for f in route_logger.filters):
        route_logger.addFilter(_NoExceptionText())


def _identify(event: APIGatewayProxyEventV2, deps: ApiDeps) -> Principal | None:
    path = event.path
    if path.startswith("/machine/"):
        principal = iam_principal(event.raw_event.get("requestContext") or {})
        if principal is None:
            raise AuthError("this route needs a SigV4-signed request (IAM)")
        return principal
    if path.startswith("/api/"):
        token = bearer_token(event.headers or {})
        if token is None:
            raise AuthError("sign-in required: send 'Authorization: Bearer <id token>'")
        return deps.verifier.verify(token)
    if path.startswith("/console"):
        token = console.session_token(event)
        return deps.verifier.verify(token) if token else None
    return None


def _body_refusal(event: APIGatewayProxyEventV2) -> tuple[int, str] | None:
    """Why a JSON route's body is refused before any route reads it, if it is: a body is
    JSON (``Content-Type: application/json``, or none), UTF-8 text. Powertools parsed a
    form or a multipart body into the model's fields as if they were JSON, and raised on a
    body that is not UTF-8 or not base64 (a 500)."""
    if not event.body:
        return None
    ctype = (event.headers or {}).get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media not in ("", JSON_MEDIA_TYPE):
        return 415, f"the body must be {JSON_MEDIA_TYPE}"
    try:
        event.decoded_body  # noqa: B018 - decoding is the check
    except ValueError:  # bad base64, or not UTF-8
        return 400, "the body is not UTF-8 text"
    return None


def _refusal(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"statusCode": status, "message": message}),
        "isBase64Encoded": False,
    }


def _error_of(error: Mapping[str, Any]) -> dict[str, Any]:
    """One 422 error as answered: where (``loc``), what kind (``type``) and what the field
    takes (``msg``); never the value sent, not even quoted inside a message."""
    msg = str(error.get("msg", ""))
    sent = error.get("input")
    if isinstance(sent, str) and len(sent) >= 3 and sent in msg:
        msg = ""  # a message that repeats the value: left out, as Powertools leaves all out
    return {"loc": list(error.get("loc", ())), "type": error.get("type", ""), "msg": msg}


class KizunaResolver(APIGatewayHttpResolver):
    """Powertools' resolver: the caller identified first — a JSON route refuses a caller
    without an identity (401) or a person in no group (403) before Powertools validates the
    request, so such a caller learns nothing of a route's rules (no 422 before the 401) —,
    and the security headers on every answer (errors included). An uncaught exception leaves
    it as it came (the function's ``private_errors`` logs it without its text): never as a
    traceback in the answer, nor in a log line of Powertools'."""

    def __init__(self, deps: ApiDeps | None, **kwargs: Any) -> None:
        # never Powertools' debug mode (POWERTOOLS_DEV): it prints each event (tokens,
        # passwords, personal data) and answers an uncaught exception with its traceback
        # a body validated against a model is parsed as json_body parses the others: a
        # repeated key or NaN is refused (400), not read as one of its values
        super().__init__(**kwargs, debug=False, json_body_deserializer=strict_loads)
        _keep_exception_text_out_of_logs()
        self.deps = deps
        self.identity: tuple[Principal | None, AuthError | None] = (None, None)

    def _gate(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.deps is None:
            raise RuntimeError("this app was built without dependencies (documentation only)")
        parsed = APIGatewayProxyEventV2(dict(event))
        try:
            self.identity = (_identify(parsed, self.deps), None)
        except AuthError as failure:
            self.identity = (None, failure)
        principal, why = self.identity
        if parsed.path.startswith(("/api/", "/machine/")):
            if principal is None:
                return _refusal(401, str(why) if why else "sign-in required")
            if principal.kind == "user" and principal.highest is None:
                return _refusal(403, "this needs the viewer group or higher")
            body_refused = _body_refusal(parsed)
            if body_refused is not None:
                return _refusal(*body_refused)
        return None

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        refused = self._gate(event)
        result: dict[str, Any] = refused or super().resolve(event, context)
        headers = result.setdefault("headers", {})
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        return result


def build_app(deps: ApiDeps | None) -> KizunaResolver:
    """The app; ``deps`` is ``None`` only to read its routes (the OpenAPI document)."""
    from kizuna.api.console import (
        pages_auth,
        pages_campaigns,
        pages_customers,
        pages_programs,
        pages_reports,
        pages_segments,
    )
    from kizuna.api.routes import (
        audit,
        campaigns,
        cards,
        customers,
        events,
        messages,
        meta,
        programs,
        report_documents,
        segments,
    )

    app = resolver = KizunaResolver(deps, enable_validation=True)

    def authenticate(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        principal, error = resolver.identity
        app.append_context(**{DEPS_KEY: deps, PRINCIPAL_KEY: principal, AUTH_ERROR_KEY: error})
        return next_middleware(app)

    def known_query(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        # a JSON route refuses a query parameter it does not declare (422 naming it): a
        # misspelt one (`lmit`, `form`) is not left unread while the answer reads as if it
        # had been (the console's pages read their own, and links may carry more)
        event = app.current_event
        route = app.context.get("_route")
        if route is not None and not event.path.startswith(console.CONSOLE_PATH):
            declared = {field.alias for field in route.dependant.query_params}
            unknown = sorted(set(event.query_string_parameters or {}) - declared)
            if unknown:
                takes = ", ".join(sorted(declared)) or "none"
                raise RequestValidationError(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ("query", name),
                            "msg": f"unknown query parameter (this route takes: {takes})",
                        }
                        for name in unknown
                    ]
                )
        return next_middleware(app)

    app.use(middlewares=[authenticate, known_query])

    @app.exception_handler(console.SignInRequired)
    def _sign_in(_: console.SignInRequired) -> Response[str]:
        lang = console.lang_of(app.current_event)
        return console.redirect(f"/console/sign-in?lang={lang}")

    @app.exception_handler(console.PageForbidden)
    def _forbidden(error: console.PageForbidden) -> Response[str]:
        event = app.current_event
        t = Translator(console.lang_of(event))
        return console.render(
            event,
            "error.html",
            status=403,
            principal=app.context.get(PRINCIPAL_KEY),
            message=t("error.forbidden", role=error.role),
        )

    @app.exception_handler(UnreadableCustomer)
    def _unreadable(error: UnreadableCustomer) -> Response[Any]:
        # a customer item this version cannot read (a hand edit, a later version's value):
        # say so, naming the refused fields (never their values), not a bare 500
        fields = ", ".join(error.fields) or "?"
        event = app.current_event
        if event.path.startswith("/console"):
            t = Translator(console.lang_of(event))
            return console.render(
                event,
                "error.html",
                status=500,
                principal=app.context.get(PRINCIPAL_KEY),
                message=t("error.unreadable_customer", fields=fields),
            )
        return Response(
            status_code=500,
            content_type=content_types.APPLICATION_JSON,
            body={
                "statusCode": 500,
                "message": "this version of Kizuna cannot read the customer's stored record",
                "code": "unreadable_customer",
                "fields": list(error.fields),
            },
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[dict[str, Any]]:
        # Powertools' own 422 keeps each error's loc and type and drops its msg, so a caller
        # read `string_pattern_mismatch` but never what the field takes ("a whole number
        # written in digits 0-9", "pass the next_token of a previous page as it was"). The
        # msg is Kizuna's or pydantic's text about the field; the value sent (`input`) and
        # pydantic's `ctx` and `url` are never answered (docs/api-intro.md).
        return Response(
            status_code=422,
            content_type=content_types.APPLICATION_JSON,
            body={"statusCode": 422, "detail": [_error_of(e) for e in error.errors()]},
        )

    @app.exception_handler(BodyRefused)
    def _refused_body(error: BodyRefused) -> Response[dict[str, Any]]:
        return Response(
            status_code=400,
            content_type=content_types.APPLICATION_JSON,
            body={"statusCode": 400, "message": str(error)},
        )

    @app.exception_handler(RecursionError)
    def _too_deep(_: RecursionError) -> Response[dict[str, Any]]:
        # a JSON body nested thousands deep, parsed before any route (schema validation)
        return Response(
            status_code=400,
            content_type=content_types.APPLICATION_JSON,
            body={"statusCode": 400, "message": "the request is nested too deeply"},
        )

    # one entry per route family (routes/ for JSON, console/ for pages)
    routers: list[Any] = [meta.router, pages_auth.router]
    routers += [customers.router, pages_customers.router]
    routers += [
        programs.router,
        report_documents.router,
        pages_programs.router,
        pages_reports.router,
    ]
    routers += [segments.router, campaigns.router, pages_segments.router, pages_campaigns.router]
    routers += [events.router, messages.router, audit.router]
    routers += [cards.router]
    for router in routers:
        app.include_router(router)
    return app


def openapi_document(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The OpenAPI document of the JSON routes (console pages are not in it)."""

    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description=(
                "Kizuna's HTTP API. `/api/...` routes take a Cognito id token "
                "(`Authorization: Bearer`); `/machine/...` routes take a SigV4-signed request; "
                "`/cards...` routes take a card token (`Authorization: Bearer`, "
                "docs/channels/CARDS.md)."
            ),
        )
    )
    from kizuna.api.openapi import add_documented_bodies

    return add_documented_bodies(schema)
