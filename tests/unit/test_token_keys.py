"""The console's and API's token verifier and Cognito's key set: keys rotate, so a token
naming a key the set lacks downloads it again — at most every few minutes, and never for a
token that names no key, so a stream of forged tokens costs no outbound call each."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from kizuna.api.auth import REFRESH_AFTER_SECONDS, RETRY_AFTER_SECONDS, AuthError, TokenVerifier

POOL, CLIENT = "us-east-1_Pool", "client"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}"
K1 = RSAKey.generate_key(2048, parameters={"kid": "k1"})
K2 = RSAKey.generate_key(2048, parameters={"kid": "k2"})


class Jwks:
    def __init__(self, *keys: RSAKey) -> None:
        self.keys, self.calls, self.down = list(keys), 0, False

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise OSError("cognito-idp unreachable")
        return KeySet(self.keys).as_dict(private=False)


def token(key: RSAKey, now: float) -> str:
    claims = {"iss": ISSUER, "aud": CLIENT, "token_use": "id", "sub": "s1", "exp": now + 600}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def verifier(jwks: Jwks, clock: list[float]) -> TokenVerifier:
    return TokenVerifier(
        region="us-east-1", user_pool_id=POOL, client_id=CLIENT, jwks=jwks, now=lambda: clock[0]
    )


def test_forged_tokens_cost_no_download_each() -> None:
    jwks, clock = Jwks(K1), [1_000_000.0]
    v = verifier(jwks, clock)
    assert v.verify(token(K1, clock[0])).id == "s1"  # the first load
    # garbage, a token naming no key, and tokens naming keys the set lacks
    for bad in ["a.b.c", "e30.e30.x", token(K2, clock[0]), token(K2, clock[0] + 1)]:
        for _ in range(20):
            with pytest.raises(AuthError):
                v.verify(bad)
    assert jwks.calls == 1
    # past the interval, one download more for an unknown key, then none again
    clock[0] += REFRESH_AFTER_SECONDS + 1
    for _ in range(20):
        with pytest.raises(AuthError):
            v.verify(token(K2, clock[0]))
    assert jwks.calls == 2


def test_a_rotated_key_is_found_and_an_unreachable_set_is_a_refusal() -> None:
    jwks, clock = Jwks(K1), [1_000_000.0]
    v = verifier(jwks, clock)
    v.verify(token(K1, clock[0]))
    clock[0] += REFRESH_AFTER_SECONDS + 1
    jwks.keys = [K1, K2]  # Cognito rotated
    assert v.verify(token(K2, clock[0])).id == "s1"
    assert jwks.calls == 2
    # the key set's host down: a token for a key not held is refused (401), not a crash
    clock[0] += REFRESH_AFTER_SECONDS + 1
    jwks.down = True
    k3 = RSAKey.generate_key(2048, parameters={"kid": "k3"})
    with pytest.raises(AuthError):
        v.verify(token(k3, clock[0]))
    assert v.verify(token(K1, clock[0])).id == "s1"  # the keys held still verify


def test_a_cold_start_without_the_key_set_refuses_and_tries_again_shortly() -> None:
    jwks, clock = Jwks(K1), [1_000_000.0]
    jwks.down = True
    v = verifier(jwks, clock)
    for _ in range(5):  # 401s, one download tried
        with pytest.raises(AuthError, match="unavailable"):
            v.verify(token(K1, clock[0]))
    assert jwks.calls == 1
    clock[0] += RETRY_AFTER_SECONDS
    jwks.down = False
    assert v.verify(token(K1, clock[0])).id == "s1"
    assert jwks.calls == 2
