"""The API function's app on moto: a Cognito pool with one user per group (tokens as Cognito
issues them), Kizuna's tables, and API Gateway (payload 2.0) events to call it with."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import boto3
from joserfc import jwt
from joserfc.jwk import RSAKey
from moto.utilities.utils import load_resource

from kizuna.adapters.audit import AuditLog
from kizuna.adapters.cognito import CognitoSignIn
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.api.app import build_app
from kizuna.api.auth import TokenVerifier
from kizuna.api.deps import ApiDeps
from kizuna.delivery.cards import CardTokens
from kizuna.runtime.config import KizunaConfig
from kizuna.services.cards import CardService

REGION = "us-east-1"
PASSWORD = "Correct-Horse-9"
MACHINE_ARN = "arn:aws:iam::123456789012:role/shop-backend"
GROUPS = ("viewer", "marketer", "admin")
CARD_KEY = b"card-token-test-key-0123456789abcdef"


def moto_jwks() -> dict[str, Any]:
    data: dict[str, Any] = load_resource("cognitoidp/resources/jwks-public.json")
    return data


def moto_signing_key() -> RSAKey:
    return RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))


@dataclass
class Pool:
    user_pool_id: str
    client_id: str
    cognito: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self.tokens:
            resp = self.cognito.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
            )
            self.tokens[username] = resp["AuthenticationResult"]["IdToken"]
        return self.tokens[username]

    def forged(self, **claims: Any) -> str:
        """An id token signed with the pool's key (like Cognito), with ``claims`` changed:
        e.g. ``exp`` in the past, or another ``aud``."""
        now = int(time.time())
        payload = {
            "iss": f"https://cognito-idp.{REGION}.amazonaws.com/{self.user_pool_id}",
            "sub": "forged-sub",
            "aud": self.client_id,
            "token_use": "id",
            "iat": now,
            "exp": now + 3600,
            "cognito:username": "forged",
            "cognito:groups": ["admin"],
            **claims,
        }
        return jwt.encode({"kid": "dummy", "alg": "RS256"}, payload, moto_signing_key())


def create_pool(cognito: Any) -> Pool:
    pool = cognito.create_user_pool(PoolName="kizuna-console")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool,
        ClientName="console",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    for group in GROUPS:
        cognito.create_group(GroupName=group, UserPoolId=pool)
    members: tuple[tuple[str, str | None], ...] = (
        ("vera", "viewer"),
        ("mari", "marketer"),
        ("ada", "admin"),
        ("nobody", None),
    )
    for username, role in members:
        cognito.admin_create_user(UserPoolId=pool, Username=username, MessageAction="SUPPRESS")
        cognito.admin_set_user_password(
            UserPoolId=pool, Username=username, Password=PASSWORD, Permanent=True
        )
        if role:
            cognito.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=role)
    return Pool(pool, client, cognito)


USERS = {"viewer": "vera", "marketer": "mari", "admin": "ada", "none": "nobody"}


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    iam: str | None = None,
    cookies: list[str] | None = None,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event as API Gateway sends it."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    raw_body: str | None = None
    if form is not None:
        raw_body = urlencode(dict(form))
        hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
    elif body is not None:
        raw_body = body if isinstance(body, str) else json.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    authorizer: dict[str, Any] = {}
    if iam is not None:
        authorizer = {
            "iam": {
                "accessKey": "AKIA",
                "accountId": "123456789012",
                "callerId": "AROA",
                "userArn": iam,
                "userId": "AROA:session",
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(dict(query or {})),
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    if query:
        event["queryStringParameters"] = dict(query)
    if cookies:
        event["cookies"] = cookies
    if raw_body is not None:
        event["body"] = raw_body
    return event


def http_event_identity(
    event: dict[str, Any], *, token: str | None = None, iam: str | None = None
) -> dict[str, Any]:
    """``event`` with a bearer token or an IAM identity, as :func:`http_event` gives them."""
    signed = http_event("GET", "/", token=token, iam=iam)
    out = {**event, "headers": {**event["headers"], **signed["headers"]}}
    if "authorizer" in signed["requestContext"]:
        out["requestContext"] = {**event["requestContext"], **signed["requestContext"]}
        out["requestContext"]["http"] = event["requestContext"]["http"]
    return out


class Context:
    function_name = "api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "req"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    cookies: list[str]

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie_pairs(self) -> list[str]:
        """``name=value`` of each cookie the answer sets (what a browser sends back)."""
        return [c.split(";", 1)[0] for c in self.cookies]


@dataclass
class Api:
    pool: Pool
    deps: ApiDeps
    app: Any

    def call(self, method: str, path: str, *, as_: str | None = None, **kwargs: Any) -> Answer:
        if as_ is not None and "token" not in kwargs and "iam" not in kwargs:
            if as_ == "machine":
                kwargs["iam"] = MACHINE_ARN
            else:
                kwargs["token"] = self.pool.token(USERS[as_])
        return self.call_event(http_event(method, path, **kwargs))

    def call_event(self, event: dict[str, Any], *, as_: str | None = None) -> Answer:
        """Resolve an event built (and perhaps changed) by the test; ``as_`` signs it as
        ``call`` does."""
        if as_ == "machine":
            event = http_event_identity(event, iam=MACHINE_ARN)
        elif as_ is not None:
            event = http_event_identity(event, token=self.pool.token(USERS[as_]))
        raw = self.app.resolve(event, Context())
        body = raw.get("body") or ""
        if raw.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return Answer(raw["statusCode"], raw.get("headers") or {}, body, raw.get("cookies") or [])

    def sign_in(self, username: str, password: str) -> Answer:
        """Post the sign-in form as a browser does: from the page it was given (the form's
        token and its cookie)."""
        page = self.call("GET", "/console/sign-in")
        assert page.status == 200, page.body
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
        assert found, page.body
        form = {"username": username, "password": password, "csrf": found.group(1)}
        return self.call("POST", "/console/sign-in", form=form, cookies=page.cookie_pairs())

    def session(self, role: str) -> list[str]:
        """The console's session cookie after signing in as ``role``'s user."""
        answer = self.sign_in(USERS[role], PASSWORD)
        assert answer.status == 303, answer.body
        return [c for c in answer.cookie_pairs() if c.startswith("kizuna_session=")]


def build_api(config: KizunaConfig | None = None, **extra: Any) -> Api:
    """The app on the current moto account (tables must exist: ``create_kizuna_tables``)."""
    cognito = boto3.client("cognito-idp", region_name=REGION)
    pool = create_pool(cognito)
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    store = DynamoStore(dynamodb, "customers", "activity", sleep=lambda _: None)
    if "cards" not in extra:  # the card routes, with a test key
        extra["cards"] = CardService(
            store, CardTokens([CARD_KEY], lambda: datetime.now(UTC)), lambda: datetime.now(UTC)
        )
    deps = ApiDeps(
        config=config or KizunaConfig(),
        store=store,
        audit=AuditLog(dynamodb, "activity"),
        verifier=TokenVerifier(
            region=REGION, user_pool_id=pool.user_pool_id, client_id=pool.client_id, jwks=moto_jwks
        ),
        sign_in=CognitoSignIn(cognito, pool.client_id),
        now=lambda: datetime.now(UTC),
        secure_cookies=True,
        **extra,
    )
    return Api(pool, deps, build_app(deps))
