"""Cognito: the user pool's signing keys (JWKS) and the console's password sign-in."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from kizuna.api.auth import ISSUER_FORMAT


def jwks_url(region: str, user_pool_id: str) -> str:
    return ISSUER_FORMAT.format(region=region, user_pool_id=user_pool_id) + "/.well-known/jwks.json"


class HttpJwks:
    """The pool's public keys from its well-known URL (fetched on a cold start, and again
    when a token names a key not seen yet: Cognito rotates keys)."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        if not url.startswith("https://"):
            raise ValueError("the JWKS URL must be https")
        self.url = url
        self.timeout = timeout

    def __call__(self) -> Mapping[str, Any]:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:  # noqa: S310 - https only
            data: Mapping[str, Any] = json.loads(resp.read(1_000_000))
        return data


class CognitoSignIn:
    """USER_PASSWORD_AUTH against the console's app client (no client secret)."""

    def __init__(self, cognito: Any, client_id: str) -> None:
        self._cognito = cognito
        self.client_id = client_id

    def id_token(self, username: str, password: str) -> str | None:
        try:
            resp = self._cognito.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        except (
            self._cognito.exceptions.NotAuthorizedException,
            self._cognito.exceptions.UserNotFoundException,
            self._cognito.exceptions.UserNotConfirmedException,
            self._cognito.exceptions.PasswordResetRequiredException,
        ):
            return None
        result = resp.get("AuthenticationResult") or {}
        token = result.get("IdToken")
        return str(token) if token else None
