"""API Gateway HTTP APIs on the local runtime: routes, authorizers and payload 2.0 events.

What ``AWS::ApiGatewayV2::*`` resources provision (:mod:`kizuna_tools.local.provision`) is
kept here as plain data (:class:`HttpApi`, :class:`Route`, :class:`JwtAuthorizer`), and
:class:`Gateway` answers one HTTP request the way API Gateway does:

- **routing**: the stage (``$default``, or ``/<stage>/...``), then the best route: an exact
  path before one with path variables, fewer variables first, a greedy ``{name+}`` last, a
  method before ``ANY``; ``$default`` catches the rest; nothing: 404 ``{"message":"Not
  Found"}``;
- **authorization**: ``JWT`` routes verify the token of the identity source (signature with
  the issuer's JWKS, ``iss``, ``aud``/``client_id``, ``exp``, ``nbf``, ``iat``, scopes) and
  answer 401 ``{"message":"Unauthorized"}`` otherwise; ``AWS_IAM`` routes verify a SigV4
  signature (service ``execute-api``) with the credentials moto's IAM and STS issued and
  answer 403 otherwise; IAM policies are not evaluated (as elsewhere locally);
- **the event**: payload format 2.0 (``cookies``, headers joined with commas, query values
  joined with commas, ``pathParameters``, ``requestContext.authorizer.jwt.claims`` or
  ``.iam``, a body that is not text in base64) for the route's Lambda integration;
- **the answer**: the function's result (``statusCode``, ``headers``, ``cookies`` as
  ``Set-Cookie`` each, ``body``, ``isBase64Encoded``); a function error or a malformed result
  is 500 ``{"message":"Internal Server Error"}``; a request body over 10 MB is 413.

Tokens and signatures are checked against the real clock (they are wall-clock artefacts even
when the business clock is virtual).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kizuna_tools.local.functions import FunctionSpec
from kizuna_tools.local.template import ACCOUNT_ID, REGION

MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024  # API Gateway's limit on a request's payload
SIGV4_MAX_SKEW_SECONDS: Final = 300
JWT_LEEWAY_SECONDS: Final = 0
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|xml|javascript|ecmascript|x-javascript)|.*\+(json|xml))\Z"
)
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
Authorization = Literal["NONE", "JWT", "AWS_IAM", "CUSTOM"]


@dataclass(frozen=True)
class JwtAuthorizer:
    """An ``AWS::ApiGatewayV2::Authorizer`` of type JWT."""

    authorizer_id: str
    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class Route:
    """An ``AWS::ApiGatewayV2::Route``: ``ANY /api/{proxy+}``, ``GET /console``, ``$default``."""

    route_key: str
    logical_id: str
    function: FunctionSpec | None
    authorization: Authorization = "NONE"
    authorizer: JwtAuthorizer | None = None
    scopes: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return "ANY" if self.route_key == "$default" else self.route_key.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return "" if self.route_key == "$default" else self.route_key.split(" ", 1)[1]


@dataclass
class HttpApi:
    """An ``AWS::ApiGatewayV2::Api`` (HTTP) with its stages and routes."""

    api_id: str
    name: str
    logical_id: str
    routes: list[Route] = field(default_factory=list)
    stages: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> stage variables
    integrations: dict[str, FunctionSpec | None] = field(default_factory=dict)  # id -> function
    authorizers: dict[str, JwtAuthorizer] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return f"{self.api_id}.execute-api.{REGION}.amazonaws.com"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def _message(status: int, message: str, **headers: str) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("Content-Type", "application/json"), *headers.items()], body)


def not_found() -> HttpResponse:
    return _message(404, "Not Found")


# --- routing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


def _match_path(route_path: str, path: str) -> dict[str, str] | None:
    """The path parameters when ``path`` matches ``route_path``, else None."""
    pattern = route_path.split("/")[1:]
    parts = path.split("/")[1:]
    params: dict[str, str] = {}
    for index, segment in enumerate(pattern):
        variable = re.fullmatch(r"\{([A-Za-z0-9._-]+)(\+?)\}", segment)
        if variable and variable.group(2):  # greedy: the rest, one or more segments
            rest = "/".join(parts[index:])
            if index >= len(parts):
                return None
            params[variable.group(1)] = urllib.parse.unquote(rest)
            return params
        if index >= len(parts):
            return None
        if variable:
            if not parts[index]:
                return None
            params[variable.group(1)] = urllib.parse.unquote(parts[index])
        elif segment != parts[index]:
            return None
    return params if len(parts) == len(pattern) else None


def _specificity(route: Route) -> tuple[int, int, int, int]:
    """Lower sorts first: exact paths, then fewer variables, greedy last; longer literal
    prefixes first; a method before ``ANY``."""
    segments = route.path.split("/")[1:]
    greedy = any(s.endswith("+}") for s in segments)
    variables = sum(1 for s in segments if s.startswith("{"))
    literal = next((i for i, s in enumerate(segments) if s.startswith("{")), len(segments))
    return (1 if greedy else 0, variables, -literal, 1 if route.method == "ANY" else 0)


def match_route(routes: Sequence[Route], method: str, path: str) -> Match | None:
    """API Gateway's choice for ``method path``: the most specific route, then ``$default``."""
    candidates = []
    for route in routes:
        if route.route_key == "$default" or route.method not in (method, "ANY"):
            continue
        params = _match_path(route.path, path)
        if params is not None:
            candidates.append((_specificity(route), route.route_key, route, params))
    if candidates:
        _, _, route, params = min(candidates, key=lambda c: (c[0], c[1]))
        return Match(route, params)
    default = next((r for r in routes if r.route_key == "$default"), None)
    return Match(default, {}) if default is not None else None


# --- JWT authorizer --------------------------------------------------------------------------
class JwksCache:
    """Each issuer's keys from ``<issuer>/.well-known/jwks.json`` (as API Gateway reads them);
    a Cognito issuer's URL is answered by the local runtime from moto."""

    def __init__(self, fetch: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self._fetch = fetch or _https_json
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def keys(self, issuer: str, *, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            if refresh or issuer not in self._keys:
                url = issuer.rstrip("/") + "/.well-known/jwks.json"
                self._keys[issuer] = KeySet.import_key_set(dict(self._fetch(url)))  # type: ignore[arg-type]
            return self._keys[issuer]


def _https_json(url: str) -> Mapping[str, Any]:
    if not url.startswith("https://"):
        raise ValueError("an issuer must be an https URL")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - https only
        data: Mapping[str, Any] = json.loads(response.read(1_000_000))
    return data


class Unauthorized(Exception):
    """The JWT authorizer refuses the request (401); the message says why, for the log."""


def _claim_text(value: Any) -> str:
    """Claims as API Gateway passes them: strings; arrays as ``[a b]``."""
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def verify_jwt(
    authorizer: JwtAuthorizer,
    headers: Mapping[str, str],
    scopes: Sequence[str],
    jwks: JwksCache,
    now: float,
) -> tuple[dict[str, str], list[str] | None]:
    """The claims (as strings) and scopes of a valid token, or :class:`Unauthorized`."""
    from joserfc import jwt
    from joserfc.errors import JoseError

    source = authorizer.identity_source
    if not source.lower().startswith("$request.header."):
        raise Unauthorized(f"identity source {source} is not emulated locally")
    header = source.split(".", 2)[2].lower()
    value = headers.get(header, "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not value:
        raise Unauthorized("no token")
    if value.count(".") != 2 or len(value) > 16_384:
        raise Unauthorized("not a JWT")
    try:
        try:
            token = jwt.decode(value, jwks.keys(authorizer.issuer), algorithms=["RS256"])
        except JoseError:  # a key not seen yet: the issuer rotated its keys
            token = jwt.decode(
                value, jwks.keys(authorizer.issuer, refresh=True), algorithms=["RS256"]
            )
    except (JoseError, ValueError) as error:
        raise Unauthorized(f"signature: {error}") from error
    claims = token.claims
    if claims.get("iss") != authorizer.issuer:
        raise Unauthorized("issuer")
    audiences = claims.get("aud")
    audience_list = audiences if isinstance(audiences, list) else [audiences]
    if not set(authorizer.audience) & {*audience_list, claims.get("client_id")} - {None}:
        raise Unauthorized("audience")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not isinstance(claims[name], int | float):
            raise Unauthorized(f"{name} is not a number")
    if "exp" not in claims or claims["exp"] + JWT_LEEWAY_SECONDS <= now:
        raise Unauthorized("expired")
    if "nbf" in claims and claims["nbf"] - JWT_LEEWAY_SECONDS > now:
        raise Unauthorized("not yet valid")
    if "iat" in claims and claims["iat"] - JWT_LEEWAY_SECONDS > now:
        raise Unauthorized("issued in the future")
    granted = str(claims.get("scope") or claims.get("scp") or "").split()
    if scopes and not set(scopes) & set(granted):
        raise Unauthorized("scope")
    return {k: _claim_text(v) for k, v in claims.items()}, (granted or None)


# --- SigV4 (AWS_IAM routes) ------------------------------------------------------------------
class Forbidden(Exception):
    """The IAM check refuses the request (403), with API Gateway's message."""


@dataclass(frozen=True)
class Caller:
    access_key: str
    secret_key: str
    session_token: str | None
    arn: str
    user_id: str
    account_id: str = ACCOUNT_ID


def moto_caller(access_key: str) -> Caller | None:
    """Who holds ``access_key``: an IAM user's key or an assumed role's, as moto issued."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    iam = iam_backends[ACCOUNT_ID]["aws"]
    key = iam.access_keys.get(access_key)
    if key is not None and key.user_name and key.status == "Active":
        user = iam.get_user(key.user_name)
        return Caller(access_key, key.secret_access_key, None, user.arn, user.id)
    for role in sts_backends[ACCOUNT_ID]["global"].assumed_roles:
        if role.access_key_id == access_key:
            return Caller(
                access_key, role.secret_access_key, role.session_token, role.arn, role.user_id
            )
    return None


_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details."
)
_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;_.-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})\Z"
)


def verify_sigv4(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    lookup: Callable[[str], Caller | None] = moto_caller,
) -> Caller:
    """The caller of a correctly signed request (botocore's SigV4 signer recomputes the
    signature over the signed headers), or :class:`Forbidden`."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = headers.get("authorization", "")
    if not authorization:
        raise Forbidden("Forbidden")
    found = _AUTH_HEADER.match(authorization.strip())
    if not found:
        raise Forbidden("Authorization header requires 'Credential', 'Signature' parameters.")
    if found["service"] != "execute-api" or found["region"] != REGION:
        raise Forbidden(_SIGNATURE_MISMATCH)
    caller = lookup(found["key"])
    if caller is None:
        raise Forbidden("The security token included in the request is invalid.")
    if caller.session_token and headers.get("x-amz-security-token") != caller.session_token:
        raise Forbidden("The security token included in the request is invalid.")
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Forbidden(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        ) from None
    if abs(signed_at.timestamp() - now) > SIGV4_MAX_SKEW_SECONDS:
        raise Forbidden("Signature expired: " + stamp)
    if not stamp.startswith(found["date"]):
        raise Forbidden(_SIGNATURE_MISMATCH)
    signed = found["signed"].split(";")
    if "host" not in signed or any(h not in headers for h in signed):
        raise Forbidden(_SIGNATURE_MISMATCH)

    class _Signer(SigV4Auth):  # type: ignore[misc]
        def headers_to_sign(self, request: Any) -> Any:  # exactly what the client signed
            from botocore.awsrequest import HTTPHeaders

            chosen = HTTPHeaders()
            for name in signed:
                chosen[name] = headers[name]
            return chosen

        def payload(self, request: Any) -> str:
            sent = headers.get("x-amz-content-sha256")
            if sent == "UNSIGNED-PAYLOAD":
                return sent
            return hashlib.sha256(body).hexdigest()

    host = headers["host"]
    url = f"https://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    request.context["timestamp"] = stamp
    signer = _Signer(
        Credentials(caller.access_key, caller.secret_key, caller.session_token),
        "execute-api",
        REGION,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, found["signature"]):
        raise Forbidden(_SIGNATURE_MISMATCH)
    return caller


# --- events and answers ----------------------------------------------------------------------
def _is_text(content_type: str) -> bool:
    return bool(_TEXT_TYPES.match(content_type.split(";", 1)[0].strip().lower()))


def build_event(
    api: HttpApi,
    stage: str,
    match: Match,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    authorizer: dict[str, Any] | None,
    now: datetime,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway sends the route's integration."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    domain = joined.get("host") or api.domain
    route_key = match.route.route_key
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("="),
            "routeKey": route_key,
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    if api.stages.get(stage):
        event["stageVariables"] = dict(api.stages[stage])
    if body:
        if _is_text(joined.get("content-type", "")):
            try:
                event["body"] = body.decode()
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


INTERNAL_ERROR: Final = "Internal Server Error"


def to_response(result: Any) -> HttpResponse:
    """A payload 2.0 function result as API Gateway answers it.

    A dict with ``statusCode`` is a full answer; any other JSON value is a 200 JSON body
    (API Gateway's inference for format 2.0). A malformed answer is a 500."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(
            200, [("Content-Type", "application/json")], json.dumps(result).encode()
        )
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(str(name), str(v)) for v in values]
        headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
        payload = result.get("body")
        if payload is None:
            raw = b""
        elif result.get("isBase64Encoded"):
            raw = base64.b64decode(str(payload), validate=True)
        else:
            raw = str(payload).encode()
    except (TypeError, ValueError, AttributeError):
        return _message(500, INTERNAL_ERROR)
    if not any(k.lower() == "content-type" for k, _ in headers) and raw:
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, raw)


Invoke = Callable[[FunctionSpec, dict[str, Any]], tuple[bool, Any]]


class Gateway:
    """One HTTP API of the template, answering requests as API Gateway does."""

    def __init__(
        self,
        api: HttpApi,
        invoke: Invoke,
        *,
        now: Callable[[], datetime],
        wall_clock: Callable[[], float] = time.time,
        jwks: JwksCache | None = None,
        caller: Callable[[str], Caller | None] = moto_caller,
    ) -> None:
        self.api = api
        self._invoke = invoke
        self._now = now
        self._wall = wall_clock
        self.jwks = jwks or JwksCache()
        self._caller = caller
        self.last_event: dict[str, Any] | None = None  # for tests and debugging

    def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes | str | None = None,
        *,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        """Answer ``method target`` (``target`` is the raw path and query, as sent)."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        data = body.encode() if isinstance(body, str) else (body or b"")
        if len(data) > MAX_PAYLOAD_BYTES:
            return _message(413, "Request Entity Too Large")
        method = method.upper()
        raw_path, _, raw_query = target.partition("?")
        stage, path = self._stage(raw_path or "/")
        if stage is None:
            return not_found()
        match = match_route(self.api.routes, method, path)
        if match is None:
            return not_found()
        lowered: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
        try:
            authorizer = self._authorize(match.route, method, raw_path, raw_query, lowered, data)
        except Unauthorized:
            return _message(401, "Unauthorized")
        except Forbidden as refused:
            return _message(403, str(refused))
        function = match.route.function
        if function is None:
            return _message(500, INTERNAL_ERROR)
        event = build_event(
            self.api,
            stage,
            match,
            method,
            raw_path,
            raw_query,
            pairs,
            data,
            authorizer=authorizer,
            now=self._now(),
            source_ip=source_ip,
        )
        self.last_event = event
        ok, result = self._invoke(function, event)
        if not ok:
            return _message(500, INTERNAL_ERROR)
        response = to_response(result)
        if method == "HEAD":
            response.body = b""
        return response

    def _stage(self, raw_path: str) -> tuple[str | None, str]:
        if "$default" in self.api.stages:
            first = raw_path.split("/")[1] if raw_path.count("/") >= 1 else ""
            if first in self.api.stages and first != "$default":
                return first, raw_path[len(first) + 1 :] or "/"
            return "$default", raw_path
        first = raw_path.split("/")[1]
        if first in self.api.stages:
            return first, raw_path[len(first) + 1 :] or "/"
        return None, raw_path

    def _authorize(
        self,
        route: Route,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any] | None:
        if route.authorization == "JWT":
            if route.authorizer is None:
                raise Unauthorized("the route's authorizer was not created locally")
            claims, scopes = verify_jwt(
                route.authorizer, headers, route.scopes, self.jwks, self._wall()
            )
            return {"jwt": {"claims": claims, "scopes": scopes}}
        if route.authorization == "AWS_IAM":
            caller = verify_sigv4(
                method, raw_path, raw_query, headers, body, self._wall(), self._caller
            )
            return {
                "iam": {
                    "accessKey": caller.access_key,
                    "accountId": caller.account_id,
                    "callerId": caller.user_id,
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": caller.arn,
                    "userId": caller.user_id,
                }
            }
        if route.authorization != "NONE":
            raise Forbidden(f"{route.authorization} authorizers are not emulated locally")
        return None
