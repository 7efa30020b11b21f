"""Who may call what: id tokens verified like Cognito's, groups as roles, IAM for machines,
the console's session cookie and CSRF field; and the security headers on every answer."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from tests.integration.api.harness import Api, http_event

pytestmark = pytest.mark.integration


def test_me_with_each_group(api: Api) -> None:
    for role in ("viewer", "marketer", "admin"):
        answer = api.call("GET", "/api/me", as_=role)
        assert answer.status == 200, answer.body
        assert answer.json()["roles"] == [role]


def test_no_token_is_401_and_a_user_without_a_group_is_403(api: Api) -> None:
    assert api.call("GET", "/api/me").status == 401
    assert api.call("GET", "/api/me", as_="none").status == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},  # expired
        {"aud": "another-client"},
        {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"},
        {"token_use": "access"},
    ],
)
def test_tokens_not_for_this_pool_and_client_are_401(api: Api, claims: dict[str, object]) -> None:
    answer = api.call("GET", "/api/me", token=api.pool.forged(**claims))
    assert answer.status == 401, answer.body


def test_a_tampered_token_is_401(api: Api) -> None:
    token = api.pool.token("vera")
    header, payload, signature = token.split(".")
    assert api.call("GET", "/api/me", token=f"{header}.{payload}x.{signature}").status == 401
    assert api.call("GET", "/api/me", headers={"Authorization": "Basic dmVyYQ=="}).status == 401


def test_machine_routes_need_iam_and_people_routes_refuse_machines(api: Api) -> None:
    assert api.call("GET", "/machine/me").status == 401
    assert api.call("GET", "/machine/me", as_="machine").json()["kind"] == "iam"
    # a machine's identity on a people's route is no identity there
    assert api.call("GET", "/api/me", as_="machine").status == 401


def test_security_headers_on_every_answer(api: Api) -> None:
    for answer in (api.call("GET", "/api/me"), api.call("GET", "/console/sign-in")):
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"


def test_console_sign_in_sets_a_strict_http_only_cookie(api: Api) -> None:
    bad = api.sign_in("mari", "wrong")
    assert bad.status == 401 and not any(c.startswith("kizuna_session=") for c in bad.cookies)
    answer = api.sign_in("mari", "Correct-Horse-9")
    assert answer.status == 303
    (cookie,) = [c for c in answer.cookies if c.startswith("kizuna_session=")]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    cookies = api.session("marketer")
    home = api.call("GET", "/console", cookies=cookies)
    assert home.status == 200 and "mari" in home.body


def test_the_sign_in_form_is_refused_without_its_own_token_and_cookie(api: Api) -> None:
    # login CSRF: a cross-site page posting the attacker's credentials has neither the
    # browser's kizuna_signin cookie (SameSite=Strict) nor the field derived from it
    good = {"username": "mari", "password": "Correct-Horse-9"}
    page = api.call("GET", "/console/sign-in")
    (cookie,) = page.cookies
    assert cookie.startswith("kizuna_signin=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/console/sign-in" in cookie
    field = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert field is not None
    other = api.call("GET", "/console/sign-in")  # another browser's form
    other_field = re.search(r'name="csrf" value="([0-9a-f]+)"', other.body)
    assert other_field is not None and other_field.group(1) != field.group(1)
    for form, cookies in (
        (good, []),  # no token, no cookie
        ({**good, "csrf": field.group(1)}, []),  # the token without its cookie
        (good, page.cookie_pairs()),  # the cookie without the token
        ({**good, "csrf": other_field.group(1)}, page.cookie_pairs()),  # another's token
    ):
        refused = api.call("POST", "/console/sign-in", form=form, cookies=cookies)
        assert refused.status == 403, refused.body
        assert not any(c.startswith("kizuna_session=") for c in refused.cookies)
        assert "expired" in refused.body or "有効期限" in refused.body
    signed = api.call(
        "POST",
        "/console/sign-in",
        form={**good, "csrf": field.group(1)},
        cookies=page.cookie_pairs(),
    )
    assert signed.status == 303


def test_console_without_session_redirects_and_sign_out_needs_csrf(api: Api) -> None:
    answer = api.call("GET", "/console")
    assert answer.status == 303 and answer.headers["Location"].startswith("/console/sign-in")
    cookies = api.session("viewer")
    refused = api.call("POST", "/console/sign-out", cookies=cookies, form={"csrf": "nope"})
    assert refused.status == 403


def test_console_speaks_japanese_and_english(api: Api) -> None:
    cookies = api.session("viewer")
    ja = api.call("GET", "/console", cookies=cookies)
    en = api.call("GET", "/console", cookies=cookies, query={"lang": "en"})
    assert "ようこそ" in ja.body and "Welcome" in en.body


def test_ui_text_has_both_languages() -> None:
    from kizuna.api.console.i18n import TEXT

    assert set(TEXT["ja"]) == set(TEXT["en"])


@pytest.mark.parametrize(
    "path",
    ["/console/sign-in", "/console/sign-out", "/console/customers", "/console/campaigns/new"],
)
def test_a_console_form_that_is_not_utf8_text_is_400_saying_so(api: Api, path: str) -> None:
    # given a signed-in admin's form and its CSRF field
    cookies = api.session("admin")
    page = api.call("GET", "/console/customers", cookies=cookies)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert found, page.body
    fields = f"csrf={found.group(1)}&phone=%2B819012345678&name=x".encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    for body, encoded in (
        # bytes that are not UTF-8 (API Gateway gives them in base64): a 500 before
        (base64.b64encode(fields + b"\xff").decode(), True),
        ("e30", True),  # not base64: a 500 before
        # a %-escape that is not UTF-8: read as U+FFFD before
        (fields.decode() + "%FF", False),
    ):
        event = http_event("POST", path, headers=form, cookies=cookies)
        event["body"], event["isBase64Encoded"] = body, encoded
        # when it is posted
        answer = api.call_event(event)
        # then it is refused saying why, never a 500 nor read with a replacement character
        assert answer.status == 400, answer.body
        assert answer.json()["message"] == "the form is not UTF-8 text"


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_token_whose_header_is_nested_deep_or_malformed_is_401_not_a_crash(api: Api) -> None:
    # given a real token's payload and signature under headers no JWT has
    header, payload, signature = api.pool.token("ada").split(".")
    real = json.loads(base64.urlsafe_b64decode(header + "=="))
    forged = [
        # JSON nested thousands deep (RecursionError, before any key is looked up)
        f"{_segment(b'[' * 3000)}.{payload}.{signature}",
        # `crit` that is not a list (joserfc read it unguarded: TypeError)
        f"{_segment(json.dumps({**real, 'crit': 1}).encode())}.{payload}.{signature}",
    ]
    for token in forged:
        # when it is sent as a bearer token and as the console's session
        answer = api.call("GET", "/api/me", token=token)
        page = api.call("GET", "/console", cookies=[f"kizuna_session={token}"])
        # then it is no identity (401; the console asks to sign in), never a 500
        assert answer.status == 401, answer.body
        assert answer.json()["message"] == "the token is malformed"
        assert page.status == 303 and page.headers["Location"].startswith("/console/sign-in")
