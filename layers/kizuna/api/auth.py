"""Who is calling: a Cognito user (id token, groups as roles) or a machine (IAM SigV4).

People carry a Cognito **id token**: in ``Authorization: Bearer`` on ``/api`` routes (API
Gateway's JWT authorizer checked it already on AWS; the function checks again, so a route
reached any other way is no weaker), or in the console's session cookie. Machines call
``/machine`` routes signed with SigV4; API Gateway verified the signature and IAM allowed the
route, and the function reads who it was from ``requestContext.authorizer.iam``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ISSUER_FORMAT: Final = "https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
LEEWAY_SECONDS: Final = 30
# A token naming a key id the key set lacks downloads the set again (keys rotate), at most
# this often: a stream of forged tokens costs no download each.
REFRESH_AFTER_SECONDS: Final = 300
# With no key set yet, a failed download is tried again after this long (not per request).
RETRY_AFTER_SECONDS: Final = 10


class Role(StrEnum):
    """Cognito groups, lowest first: each role may do what the ones before it may."""

    VIEWER = "viewer"
    MARKETER = "marketer"
    ADMIN = "admin"


ROLE_ORDER: Final = (Role.VIEWER, Role.MARKETER, Role.ADMIN)
# The lowest group that sees customers' personal data (email, phone, names, birth date, LINE
# id) in clear; lower groups see it masked by kizuna.domain.privacy.mask. Marketers preview
# messages with a customer's data and answer customers, so they see it; a viewer does not.
PERSONAL_DATA_ROLE: Final = Role.MARKETER


class AuthError(Exception):
    """No valid identity (401). The message says why, without echoing the token."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``id`` is the Cognito ``sub`` or the IAM user/role ARN."""

    id: str
    name: str
    kind: Literal["user", "iam"]
    roles: frozenset[Role] = frozenset()

    @property
    def highest(self) -> Role | None:
        ranked = [r for r in ROLE_ORDER if r in self.roles]
        return ranked[-1] if ranked else None

    def allows(self, role: Role) -> bool:
        """A user in ``role`` or a higher group. Machines hold no group: their routes are
        allowed by IAM, and a people's route never allows them."""
        highest = self.highest
        return highest is not None and ROLE_ORDER.index(highest) >= ROLE_ORDER.index(role)

    @property
    def sees_personal_data(self) -> bool:
        """Whether answers to this caller may carry personal data in clear."""
        return self.kind == "user" and self.allows(PERSONAL_DATA_ROLE)

    def audit_name(self) -> str:
        return f"{self.kind}:{self.id}"


JwksLoader = Callable[[], Mapping[str, Any]]


class TokenVerifier:
    """Verifies Cognito id tokens of one user pool and app client (RS256, issuer,
    audience, ``token_use: id``, expiry against the real clock: tokens are wall-clock
    artefacts even when the business clock is virtual)."""

    def __init__(
        self,
        *,
        region: str,
        user_pool_id: str,
        client_id: str,
        jwks: JwksLoader,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = ISSUER_FORMAT.format(region=region, user_pool_id=user_pool_id)
        self.client_id = client_id
        self._jwks = jwks
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._failed_at = float("-inf")
        self._now = now

    def _keyset(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = dict(self._jwks())
            self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            self._kids = frozenset(
                str(k.get("kid")) for k in document.get("keys", []) if isinstance(k, Mapping)
            )
            self._loaded_at = self._now()
        return self._keys

    def _keys_for(self, kid: str) -> KeySet:
        """The key set, downloaded again for a key id it lacks (keys rotate), at most every
        :data:`REFRESH_AFTER_SECONDS`; a failed download keeps the set it has. With none yet
        (a cold start) a failed download refuses the token (401) and is not tried again
        for :data:`RETRY_AFTER_SECONDS`."""
        now = self._now()
        if self._keys is None:
            if now - self._failed_at < RETRY_AFTER_SECONDS:
                raise AuthError("the user pool's keys are unavailable; try again shortly")
            try:
                return self._keyset()
            except Exception as error:  # the key set's host unreachable
                self._failed_at = now
                raise AuthError("the user pool's keys are unavailable") from error
        keys = self._keys
        if kid in self._kids or now - self._loaded_at < REFRESH_AFTER_SECONDS:
            return keys
        try:
            return self._keyset(refresh=True)
        except Exception:  # the key set's host unreachable: the token is not verified
            self._loaded_at = now
            return keys

    def verify(self, token: str) -> Principal:
        if not token or len(token) > 8192 or token.count(".") != 2:
            raise AuthError("the token is not a JWT")
        kid = _key_id(token)
        try:
            decoded = jwt.decode(token, self._keys_for(kid), algorithms=["RS256"])
        except JoseError as error:
            raise AuthError("the token's signature does not verify") from error
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            # a header joserfc reads unguarded (``"crit": 1`` raised TypeError): a forged
            # token, before any signature is checked, was a 500
            raise AuthError("the token is malformed") from error
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(self._now()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            token_use={"essential": True, "value": "id"},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise AuthError(
                f"the token is not valid here ({error.description or error.error})"
            ) from error
        groups = claims.get("cognito:groups") or []
        if not isinstance(groups, list):
            raise AuthError("the token's groups are malformed")
        roles = frozenset(Role(g) for g in groups if g in {r.value for r in Role})
        name = claims.get("cognito:username") or claims.get("email") or claims["sub"]
        return Principal(id=str(claims["sub"]), name=str(name), kind="user", roles=roles)


def _key_id(token: str) -> str:
    """The ``kid`` of a compact JWT's header, read before any key is fetched."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as error:  # "[[[[..." was a 500
        raise AuthError("the token is malformed") from error
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise AuthError("the token names no key")
    return kid


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <id token>'")
    return token.strip()


def iam_principal(request_context: Mapping[str, Any]) -> Principal | None:
    """The machine API Gateway authenticated with SigV4 (``authorizer.iam``), if any."""
    authorizer = request_context.get("authorizer") or {}
    iam = authorizer.get("iam") if isinstance(authorizer, Mapping) else None
    if not isinstance(iam, Mapping):
        return None
    arn = iam.get("userArn") or iam.get("callerId")
    if not arn:
        return None
    return Principal(id=str(arn), name=str(arn), kind="iam")
