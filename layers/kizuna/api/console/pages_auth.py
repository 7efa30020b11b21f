"""Sign-in, sign-out, the home page and the stylesheet."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from kizuna.api import console
from kizuna.api.auth import Role
from kizuna.api.context import deps

router = APIGatewayHttpRouter()


# The home page is /console: API Gateway's greedy `/console/{proxy+}` may not match an
# empty rest, so nothing links to /console/ (which redirects here when it is reached).
@router.get("/console/", include_in_schema=False)
def root() -> Response[str]:
    return console.redirect(f"/console?lang={console.lang_of(router.current_event)}")


@router.get("/console", include_in_schema=False)
def home() -> Response[str]:
    principal = console.page_user(router, Role.VIEWER)
    return console.render(router.current_event, "home.html", principal=principal)


def _sign_in_form(status: int = 200, failed: str | None = None) -> Response[str]:
    """The sign-in page with a fresh form token (its cookie set with it)."""
    nonce = console.new_sign_in_nonce()
    cookie = console.sign_in_cookie(nonce, secure=deps(router).secure_cookies)
    return console.render(
        router.current_event,
        "sign_in.html",
        status=status,
        cookies=[cookie],
        failed=failed,
        sign_in_token=console.sign_in_token(nonce),
    )


@router.get("/console/sign-in", include_in_schema=False)
def sign_in_page() -> Response[str]:
    return _sign_in_form()


@router.post("/console/sign-in", include_in_schema=False)
def sign_in() -> Response[str]:
    event = router.current_event
    fields = console.form(event)
    if not console.sign_in_form_holds(event, fields):
        # not the form this browser was given (login CSRF), or its hour has passed
        return _sign_in_form(403, "signin.expired")
    username = fields.get("username", "")
    password = fields.get("password", "")
    token = None
    if 0 < len(username) <= 128 and 0 < len(password) <= 256:
        token = deps(router).sign_in.id_token(username, password)
    if token is None:
        return _sign_in_form(401, "signin.failed")
    cookie = console.session_cookie(token, secure=deps(router).secure_cookies)
    lang = console.lang_of(event)
    return console.redirect(f"/console?lang={lang}", cookies=[cookie])


@router.post("/console/sign-out", include_in_schema=False)
def sign_out() -> Response[str]:
    event = router.current_event
    console.check_csrf(event, console.form(event))
    cookie = console.session_cookie("", secure=deps(router).secure_cookies, max_age=0)
    return console.redirect("/console/sign-in", cookies=[cookie])


@router.get("/console/static/console.css", include_in_schema=False)
def stylesheet() -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/css; charset=utf-8",
        body=(console.STATIC / "console.css").read_text(encoding="utf-8"),
        headers={"Cache-Control": "public, max-age=300"},
    )
