"""The local HTTP gateway: an API Gateway HTTP API of the template, on moto's Cognito.

A hand-written template (tests/integration/local/api_fixtures.py) like the infra's Api
construct: ``ANY /api/{proxy+}`` behind a JWT authorizer (issuer: the user pool, audience:
the app client), ``ANY /machine/{proxy+}`` behind AWS_IAM, ``/console`` open.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from typer.testing import CliRunner

from kizuna_tools.cli import app
from kizuna_tools.local import LocalCloud
from kizuna_tools.local.app import default_project_root
from kizuna_tools.local.gateway import Route, match_route
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.api_fixtures import gateway_template, write_gateway_project

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud(local_cloud_factory: CloudFactory, tmp_path: Path) -> LocalCloud:
    return local_cloud_factory(
        gateway_template(
            extra_routes={
                "RouteExact": {"RouteKey": "GET /api/health", "AuthorizationType": "NONE"},
                "RouteVar": {"RouteKey": "GET /open/{id}", "AuthorizationType": "NONE"},
            }
        ),
        project_root=write_gateway_project(tmp_path),
    )


def event_of(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.body
    data: dict[str, Any] = response.json()["event"]
    return data


def signed_in(cloud: LocalCloud, group: str = "marketer") -> str:
    username = f"{group}@example.com"
    return cloud.id_token(username, cloud.add_user(username, group))


def sigv4_headers(
    access_key: str, secret: str, method: str, url: str, body: bytes = b""
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "text/plain"})
    SigV4Auth(Credentials(access_key, secret), "execute-api", "us-east-1").add_auth(request)
    return {**dict(request.headers.items()), "Host": urllib.parse.urlsplit(url).netloc}


def machine_key(cloud: LocalCloud) -> tuple[str, str, str]:
    iam = boto3.client("iam", region_name="us-east-1")
    user = iam.create_user(UserName="shop-pos")["User"]
    key = iam.create_access_key(UserName="shop-pos")["AccessKey"]
    return user["Arn"], key["AccessKeyId"], key["SecretAccessKey"]


# --- provisioning ----------------------------------------------------------------------------
def test_cognito_and_the_api_are_provisioned_and_cdn_and_waf_are_ignored_with_a_reason(
    cloud: LocalCloud,
) -> None:
    # given the template, when it is provisioned
    spec = next(iter(cloud.functions.values()))
    # then the function's environment names moto's pool and client, and cookies go over HTTP
    assert spec.environment["USER_POOL_ID"] == cloud.user_pool_id()
    assert spec.environment["USER_POOL_CLIENT_ID"] == cloud.user_pool_client_id()
    assert spec.environment["SECURE_COOKIES"] == "false"
    assert cloud.user_groups() == ["admin", "marketer", "viewer"]
    assert cloud.unsupported == []
    ignored = {i.type: i.reason for i in cloud.ignored}
    assert "no CDN locally" in ignored["AWS::CloudFront::Distribution"]
    assert "no WAF locally" in ignored["AWS::WAFv2::WebACL"]
    routes = sorted(r.route_key for r in cloud.gateway().api.routes)
    assert "ANY /api/{proxy+}" in routes and "ANY /machine/{proxy+}" in routes
    api_id = cloud.gateway().api.api_id
    assert cloud.outputs["ApiUrl"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com"


def test_the_user_pools_jwks_is_served_from_moto_to_urllib(cloud: LocalCloud) -> None:
    from kizuna.adapters.cognito import HttpJwks, jwks_url

    # when the API function's own JWKS loader fetches the pool's well-known URL
    keys = HttpJwks(jwks_url("us-east-1", cloud.user_pool_id()))()
    # then it gets moto's public key (kid "dummy", what moto signs with)
    assert [k["kid"] for k in keys["keys"]] == ["dummy"]
    with pytest.raises(Exception, match="404"):
        HttpJwks(jwks_url("us-east-1", "us-east-1_nopool"))()


# --- routing ---------------------------------------------------------------------------------
def _routes(*keys: str) -> list[Route]:
    return [Route(route_key=k, logical_id=k, function=None) for k in keys]


def test_routes_match_as_api_gateway_chooses_them() -> None:
    routes = _routes(
        "GET /pets/dog/1",
        "GET /pets/dog/{id}",
        "GET /pets/{proxy+}",
        "ANY /pets/{proxy+}",
        "ANY /{proxy+}",
        "GET /console",
        "$default",
    )

    def key(method: str, path: str) -> str:
        found = match_route(routes, method, path)
        assert found is not None
        return found.route.route_key

    assert key("GET", "/pets/dog/1") == "GET /pets/dog/1"  # exact first
    assert key("GET", "/pets/dog/2") == "GET /pets/dog/{id}"  # then a variable
    assert match_route(routes, "GET", "/pets/dog/2").path_parameters == {"id": "2"}  # type: ignore[union-attr]
    assert key("GET", "/pets/cat/1") == "GET /pets/{proxy+}"  # then greedy, a method first
    assert key("POST", "/pets/cat/1") == "ANY /pets/{proxy+}"
    assert key("POST", "/pets/dog/1") == "ANY /pets/{proxy+}"  # the exact route is GET only
    assert key("GET", "/console") == "GET /console"
    assert key("DELETE", "/console") == "ANY /{proxy+}"
    assert match_route(routes, "GET", "/pets/a/b/c").path_parameters == {"proxy": "a/b/c"}  # type: ignore[union-attr]
    # a trailing slash is an empty greedy variable (GET /console/ reaches /console/{proxy+})
    assert match_route(routes, "GET", "/pets/").path_parameters == {"proxy": ""}  # type: ignore[union-attr]
    assert match_route(_routes("GET /a", "$default"), "GET", "/b").route.route_key == "$default"  # type: ignore[union-attr]
    assert match_route(_routes("GET /a", "GET /a/{id}"), "GET", "/a/") is None
    assert match_route(_routes("GET /a"), "GET", "/b") is None


def test_no_route_is_404_and_a_greedy_route_takes_the_trailing_slash(cloud: LocalCloud) -> None:
    assert cloud.http("GET", "/nowhere").status == 404
    assert cloud.http("GET", "/nowhere").json() == {"message": "Not Found"}
    assert event_of(cloud.http("GET", "/console"))["routeKey"] == "GET /console"
    home = event_of(cloud.http("GET", "/console/"))
    assert home["routeKey"] == "ANY /console/{proxy+}"
    assert home["rawPath"] == "/console/"
    exact = event_of(cloud.http("GET", "/api/health"))  # an exact route without authorizer
    assert exact["routeKey"] == "GET /api/health"
    assert "authorizer" not in exact["requestContext"]


# --- JWT routes ------------------------------------------------------------------------------
def test_jwt_routes_refuse_without_a_valid_token_and_never_run_the_function(
    cloud: LocalCloud,
) -> None:
    # given a signed-in marketer and tokens that must not pass
    token = signed_in(cloud)
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_claims = {**claims, "cognito:groups": ["admin"]}
    forged = ".".join(
        [
            head,
            base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("="),
            signature,
        ]
    )
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    other_client = cognito.create_user_pool_client(
        UserPoolId=cloud.user_pool_id(), ClientName="other"
    )["UserPoolClient"]["ClientId"]
    other = cognito.initiate_auth(
        ClientId=other_client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": "viewer@example.com",
            "PASSWORD": cloud.add_user("viewer@example.com", "viewer"),
        },
    )["AuthenticationResult"]["IdToken"]
    before = sum(cloud.invocations.values())
    refused = {
        "no header": {},
        "empty": {"Authorization": "Bearer "},
        "not a JWT": {"Authorization": "Bearer abc.def"},
        "forged claims": {"Authorization": f"Bearer {forged}"},
        "another client's token": {"Authorization": f"Bearer {other}"},
    }
    for why, headers in refused.items():
        # when the route is called with it
        response = cloud.http("POST", "/api/customers/c1", headers, '{"x":1}')
        # then API Gateway's 401, and the function never ran
        assert (response.status, response.json()) == (401, {"message": "Unauthorized"}), why
    assert sum(cloud.invocations.values()) == before
    # an expired token: the gateway's wall clock two hours later (id tokens last one hour)
    gateway = cloud.gateway()
    wall = gateway._wall
    gateway._wall = lambda: wall() + 7200
    try:
        expired = cloud.http("GET", "/api/customers/c1", {"Authorization": f"Bearer {token}"})
    finally:
        gateway._wall = wall
    assert expired.status == 401


def test_a_valid_token_reaches_the_function_with_its_claims(cloud: LocalCloud) -> None:
    token = signed_in(cloud, "admin")
    for value in (f"Bearer {token}", token):  # the Bearer prefix is optional, as on AWS
        event = event_of(cloud.http("GET", "/api/customers/c%201?x=1", {"Authorization": value}))
        jwt = event["requestContext"]["authorizer"]["jwt"]
        assert jwt["claims"]["cognito:groups"] == "[admin]"  # arrays as API Gateway writes them
        assert jwt["claims"]["aud"] == cloud.user_pool_client_id()
        assert jwt["claims"]["token_use"] == "id"
        assert event["pathParameters"] == {"proxy": "customers/c 1"}
        assert event["rawPath"] == "/api/customers/c%201"
        assert event["headers"]["authorization"] == value


# --- IAM routes ------------------------------------------------------------------------------
def test_iam_routes_verify_sigv4_and_name_the_caller(cloud: LocalCloud) -> None:
    arn, key, secret = machine_key(cloud)
    host = "127.0.0.1:8080"
    url = f"http://{host}/machine/events?batch=1"
    body = b'{"events":[]}'
    headers = sigv4_headers(key, secret, "POST", url, body)
    # a correctly signed request reaches the function with requestContext.authorizer.iam
    event = event_of(cloud.http("POST", "/machine/events?batch=1", headers, body))
    iam = event["requestContext"]["authorizer"]["iam"]
    assert iam["userArn"] == arn
    assert iam["accessKey"] == key
    assert iam["accountId"] == "123456789012"
    assert event["body"] == body.decode()
    before = sum(cloud.invocations.values())
    # unsigned, tampered body, wrong secret, unknown key, another service: 403, nothing ran
    assert cloud.http("POST", "/machine/events", {"Host": host}, body).json() == {
        "message": "Forbidden"
    }
    tampered = cloud.http("POST", "/machine/events?batch=1", headers, b'{"events":[1]}')
    assert tampered.status == 403
    assert "signature we calculated does not match" in tampered.json()["message"]
    wrong = sigv4_headers(key, "x" * 40, "POST", url, body)
    assert cloud.http("POST", "/machine/events?batch=1", wrong, body).status == 403
    unknown = sigv4_headers("AKIAUNKNOWN000000000", secret, "POST", url, body)
    assert "security token" in cloud.http("POST", "/machine/events?batch=1", unknown, body).text
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials(key, secret), "sqs", "us-east-1").add_auth(request)
    other = {**dict(request.headers), "Host": host}
    assert cloud.http("POST", "/machine/events?batch=1", other, body).status == 403
    assert sum(cloud.invocations.values()) == before


def test_an_assumed_roles_temporary_credentials_sign_too(cloud: LocalCloud) -> None:
    sts = boto3.client("sts", region_name="us-east-1")
    role = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/pos", RoleSessionName="till-7")[
        "Credentials"
    ]
    url = "http://127.0.0.1:8080/machine/ping"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(
        Credentials(role["AccessKeyId"], role["SecretAccessKey"], role["SessionToken"]),
        "execute-api",
        "us-east-1",
    ).add_auth(request)
    headers = {**dict(request.headers), "Host": "127.0.0.1:8080"}
    event = event_of(cloud.http("GET", "/machine/ping", headers))
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == (
        "arn:aws:sts::123456789012:assumed-role/pos/till-7"
    )


# --- the event and the answer ----------------------------------------------------------------
def test_the_payload_2_event_has_cookies_joined_headers_and_query_and_encoded_bodies(
    cloud: LocalCloud,
) -> None:
    headers = [
        ("Cookie", "kizuna_session=abc; lang=en"),
        ("X-Many", "a"),
        ("x-many", "b"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("User-Agent", "pytest"),
    ]
    event = event_of(cloud.http("POST", "/console/sign-in?a=1&a=2&b=", headers, "u=m&p=x"))
    assert event["version"] == "2.0"
    assert event["cookies"] == ["kizuna_session=abc", "lang=en"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-many"] == "a,b"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["rawQueryString"] == "a=1&a=2&b="
    # a form is not text to API Gateway: base64, as a deployed API sends it
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"u=m&p=x"
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/console/sign-in",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest",
    }
    assert context["stage"] == "$default"
    assert context["time"] == "01/Jan/2026:00:00:00 +0000"  # the virtual clock
    assert context["timeEpoch"] == 1767225600000
    json_event = event_of(
        cloud.http("POST", "/console/x", {"Content-Type": "application/json"}, '{"a":"é"}')
    )
    assert (json_event["isBase64Encoded"], json_event["body"]) == (False, '{"a":"é"}')


def test_the_functions_answer_becomes_the_http_response(cloud: LocalCloud) -> None:
    answer = cloud.http("GET", "/console/anything")
    assert answer.status == 200
    assert answer.header("x-probe") == "yes"
    assert [v for k, v in answer.headers if k == "Set-Cookie"] == [
        "a=1; Path=/; HttpOnly",
        "b=2; Path=/console",
    ]
    binary = cloud.http("GET", "/console/binary")
    assert (binary.header("content-type"), binary.body) == ("image/png", bytes(range(256)))
    plain = cloud.http("GET", "/console/plain")  # any other value: a 200 JSON body
    assert (plain.status, plain.json()) == (200, {"just": "a dict"})


def test_function_errors_and_malformed_answers_are_500_and_big_payloads_413(
    cloud: LocalCloud,
) -> None:
    for path in ("/console/crash", "/console/malformed"):
        response = cloud.http("GET", path)
        assert (response.status, response.json()) == (500, {"message": "Internal Server Error"})
    assert cloud.errors[-1].error["errorMessage"] == "the probe crashed"
    before = sum(cloud.invocations.values())
    big = cloud.http("POST", "/console/x", {"Content-Type": "text/plain"}, b"x" * (10 * 2**20 + 1))
    assert big.status == 413
    assert sum(cloud.invocations.values()) == before


# --- on a real socket, with the real API function ----------------------------------------------
@pytest.fixture
def api_cloud(local_cloud_factory: CloudFactory) -> LocalCloud:
    environment = {
        "CUSTOMERS_TABLE": {"Ref": "Customers"},
        "ACTIVITY_TABLE": {"Ref": "Activity"},
        "EVENT_BUS_NAME": {"Ref": "Bus"},
        # required by the API function's settings; the sign-in pages never reach them
        "CAMPAIGNS_TABLE": "campaigns",
        "CAMPAIGN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:c",
        "CAMPAIGN_SCHEDULE_GROUP": "campaigns",
        "CAMPAIGN_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
        "ANALYTICS_BUCKET": "analytics",
        "SNAPSHOTS_TABLE": "snapshots",
    }
    return local_cloud_factory(
        gateway_template("api", environment=environment, tables=True),
        project_root=default_project_root(),
    )


def _request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    response.read()  # type: ignore[attr-defined]
    return response


def test_the_console_signs_in_over_a_real_socket_and_the_servers_stop(
    api_cloud: LocalCloud,
) -> None:
    password = api_cloud.add_user("marketer@example.com", "marketer")
    threads_before = {t.name for t in threading.enumerate()}
    with api_cloud.serve(0, api_port=0, speed=0) as handle:
        assert handle.api_port is not None
        port = handle.api_port
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # the sign-in page, with the function's security headers
        connection.request("GET", "/console/sign-in?lang=en")
        page = connection.getresponse()
        html = page.read().decode()
        assert page.status == 200
        assert "<form" in html and 'name="password"' in html
        assert "default-src 'none'" in page.getheader("Content-Security-Policy", "")
        # the form's token and its cookie, sent back as a browser does
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
        assert token is not None
        form_type = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": page.headers.get_all("Set-Cookie")[0].split(";")[0],
        }

        def sign_in_form(username: str, secret: str) -> str:
            return urllib.parse.urlencode(
                {"username": username, "password": secret, "csrf": token.group(1)}
            )

        # a wrong password: the page again, 401
        form = sign_in_form("marketer@example.com", "nope")
        connection.request("POST", "/console/sign-in", body=form, headers=form_type)
        failed = connection.getresponse()
        failed.read()
        assert failed.status == 401
        # the right one: a session cookie (not Secure: the local server speaks HTTP)
        form = sign_in_form("marketer@example.com", password)
        connection.request("POST", "/console/sign-in", body=form, headers=form_type)
        signed = connection.getresponse()
        signed.read()
        assert signed.status == 303
        cookie = signed.headers.get_all("Set-Cookie")[0]
        assert cookie.startswith("kizuna_session=") and "HttpOnly" in cookie
        assert "Secure" not in cookie
        connection.request("GET", "/console", headers={"Cookie": cookie.split(";")[0]})
        home = connection.getresponse()
        assert home.status == 200, home.read()
        home.read()
        # the JSON API without a token: the authorizer's 401 before the function
        connection.request("GET", "/api/openapi.json")
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 401
        # a console user added from the CLI signs in too
        result = CliRunner().invoke(
            app,
            [
                "local",
                "user",
                "add",
                "anna@example.com",
                "--group",
                "viewer",
                "--url",
                f"http://127.0.0.1:{port}",
            ],
        )
        assert result.exit_code == 0, result.output
        anna = result.output.split("password ")[1].strip()
        form = sign_in_form("anna@example.com", anna)
        connection.request("POST", "/console/sign-in", body=form, headers=form_type)
        anna_signed = connection.getresponse()
        anna_signed.read()
        assert anna_signed.status == 303
        wrong_group = CliRunner().invoke(
            app,
            [
                "local",
                "user",
                "add",
                "bob@example.com",
                "--group",
                "root",
                "--url",
                f"http://127.0.0.1:{port}",
            ],
        )
        assert wrong_group.exit_code == 2 and "no group 'root'" in wrong_group.output
        connection.request("GET", "/_local/stack")
        stack = json.loads(connection.getresponse().read())
        assert stack["user_pools"][0]["id"] == api_cloud.user_pool_id()
        assert stack["console_url"] == f"http://127.0.0.1:{port}/console"
        connection.close()
    # then every server thread is gone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = {t.name for t in threading.enumerate()} - threads_before
        if not left:
            break
        time.sleep(0.05)
    assert not left
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/console")
