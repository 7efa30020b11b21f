"""The console: server-rendered pages (Jinja2, no JavaScript) behind a session cookie.

Sign-in posts a username and password to the function, which asks Cognito
(``InitiateAuth``) for an id token and keeps it in an ``HttpOnly; Secure; SameSite=Strict``
cookie scoped to ``/console``; every page verifies it like a bearer token. Forms carry a
CSRF field derived from the session (a cross-site page can neither read the cookie nor
compute the field, and ``SameSite=Strict`` keeps the cookie off cross-site posts anyway).
The sign-in form, before any session, carries one too (against login CSRF: a cross-site page
signing the browser in to the attacker's account): the page sets a random ``kizuna_signin``
cookie (``HttpOnly; SameSite=Strict``, path ``/console/sign-in``, one hour) and the form's
field derived from it; a post without both, matching, is refused and the form given again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ForbiddenError
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kizuna.api.console.i18n import LANGS, Translator

SESSION_COOKIE: Final = "kizuna_session"
SIGN_IN_COOKIE: Final = "kizuna_signin"
SIGN_IN_PATH: Final = "/console/sign-in"
LANG_COOKIE: Final = "kizuna_lang"
CONSOLE_PATH: Final = "/console"
TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"
MAX_FORM_BYTES: Final = 256 * 1024


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _cookies(event: Any) -> dict[str, str]:
    jar: dict[str, str] = {}
    for raw in getattr(event, "cookies", None) or []:
        try:
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(raw)
        except CookieError:
            continue
        for name, morsel in parsed.items():
            jar.setdefault(name, morsel.value)
    return jar


def session_token(event: Any) -> str | None:
    return _cookies(event).get(SESSION_COOKIE) or None


def lang_of(event: Any) -> str:
    """``?lang=`` first, then the cookie, then Japanese."""
    query = getattr(event, "query_string_parameters", None) or {}
    for value in (query.get("lang"), _cookies(event).get(LANG_COOKIE)):
        if value in LANGS:
            return str(value)
    return "ja"


def csrf_token(session: str) -> str:
    return hmac.new(b"kizuna-console-csrf", session.encode(), hashlib.sha256).hexdigest()[:32]


def sign_in_token(nonce: str) -> str:
    """The sign-in form's field for the ``kizuna_signin`` cookie's ``nonce``."""
    return hmac.new(b"kizuna-console-sign-in", nonce.encode(), hashlib.sha256).hexdigest()[:32]


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_in_cookie(nonce: str, *, secure: bool, max_age: int = 3600) -> Cookie:
    return _strict_cookie(SIGN_IN_COOKIE, nonce, SIGN_IN_PATH, secure=secure, max_age=max_age)


def sign_in_form_holds(event: Any, fields: Mapping[str, str]) -> bool:
    """The posted sign-in form came from the page this browser was given: its field matches
    the browser's ``kizuna_signin`` cookie."""
    nonce = _cookies(event).get(SIGN_IN_COOKIE, "")
    sent = fields.get("csrf", "")
    return bool(nonce) and hmac.compare_digest(sent, sign_in_token(nonce))


def form(event: Any) -> dict[str, str]:
    """The posted form (``application/x-www-form-urlencoded``), each field once, after the
    CSRF check. A repeated field, a wrong content type or text that is not UTF-8 (its bytes
    or a %-escape) is a 400, not a guess."""
    ctype = (event.headers or {}).get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise BadRequestError("a form post must be application/x-www-form-urlencoded")
    try:  # a body that is not UTF-8 (or not base64) raised out of here (a 500)
        body = event.decoded_body or ""
    except ValueError as error:
        raise BadRequestError("the form is not UTF-8 text") from error
    if len(body.encode()) > MAX_FORM_BYTES:
        raise BadRequestError("the form is too large")
    try:  # a %-escape that is not UTF-8 was read as U+FFFD, a name or a number with it
        fields: dict[str, list[str]] = parse_qs(
            body, keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except UnicodeDecodeError as error:
        raise BadRequestError("the form is not UTF-8 text") from error
    result: dict[str, str] = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise BadRequestError(f"the field {name!r} was sent more than once")
        result[name] = values[0]
    return result


def check_csrf(event: Any, fields: Mapping[str, str]) -> None:
    session = session_token(event)
    sent = fields.get("csrf", "")
    if not session or not hmac.compare_digest(sent, csrf_token(session)):
        raise ForbiddenError("the form's CSRF field is missing or wrong; reload the page")


def render(
    event: Any,
    template: str,
    *,
    status: int = 200,
    principal: Any = None,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Response[str]:
    lang = lang_of(event)
    session = session_token(event)
    html = (
        environment()
        .get_template(template)
        .render(
            t=Translator(lang),
            lang=lang,
            path=event.path,
            principal=principal,
            csrf=csrf_token(session) if session else "",
            status=status,
            **context,
        )
    )
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=html,
        cookies=cookies or [],
    )


def redirect(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    if not location.startswith(CONSOLE_PATH) or "//" in location or "\\" in location:
        location = CONSOLE_PATH  # never an open redirect
    return Response(status_code=303, headers={"Location": location}, body="", cookies=cookies or [])


def session_cookie(token: str, *, secure: bool, max_age: int | None = 3600) -> Cookie:
    return _strict_cookie(SESSION_COOKIE, token, CONSOLE_PATH, secure=secure, max_age=max_age)


def _strict_cookie(
    name: str, value: str, path: str, *, secure: bool, max_age: int | None
) -> Cookie:
    """An ``HttpOnly; SameSite=Strict`` cookie (``Secure`` unless the local runtime's HTTP)."""
    return Cookie(
        name=name,
        value=value,
        path=path,
        secure=secure,
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=max_age,
    )


class SignInRequired(Exception):
    """No valid session on a console page: the app answers with a redirect to sign-in."""


class PageForbidden(Exception):
    """A console page the caller's group may not use: the app answers with a 403 page."""

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.role = role


def page_user(router: Any, role: Any) -> Any:
    """The signed-in person on a console page, in ``role`` or higher (a
    :class:`kizuna.api.auth.Principal`); else sign-in (no session) or a 403 page."""
    principal = router.context.get("principal")
    if principal is None:
        raise SignInRequired
    if principal.kind != "user" or not principal.allows(role):
        raise PageForbidden(role.value)
    return principal
