"""The envelope shared by Kizuna's signed tokens (kizuna.delivery.signing): only the
canonical spelling is read, every key of a rotation verifies, a changed tag or payload is
forged, and an over-long or not-a-token string is malformed."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence

import pytest

from kizuna.delivery import signing

OLD, NEW = b"o" * 32, b"n" * 32
MAC = signing.domain_mac(b"test/signing\x00")
PAYLOAD = b"\x01payload of a token"


def reason(
    token: object,
    keys: Sequence[bytes] | Callable[[], Sequence[bytes]],
    *,
    max_chars: int = 256,
    well_formed: Callable[[bytes], bool] = lambda _: True,
) -> str:
    with pytest.raises(signing.SignedTokenError) as caught:
        signing.decode(token, keys, MAC, max_chars=max_chars, well_formed=well_formed)
    return caught.value.reason


def test_a_token_decodes_to_its_payload_with_its_key() -> None:
    token = signing.encode(PAYLOAD, NEW, MAC)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert signing.decode(token, [NEW], MAC, max_chars=256) == PAYLOAD
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert raw == PAYLOAD + MAC(NEW, PAYLOAD) and len(MAC(NEW, PAYLOAD)) == signing.TAG_BYTES


def test_every_key_of_a_rotation_verifies_and_no_other_does() -> None:
    by_old, by_new = signing.encode(PAYLOAD, OLD, MAC), signing.encode(PAYLOAD, NEW, MAC)
    assert signing.decode(by_old, [NEW, OLD], MAC, max_chars=256) == PAYLOAD
    assert signing.decode(by_new, [NEW, OLD], MAC, max_chars=256) == PAYLOAD
    assert reason(by_old, [NEW]) == "forged"
    assert reason(by_new, [b"x" * 32, OLD]) == "forged"


def test_another_domain_or_a_changed_byte_is_forged() -> None:
    other = signing.domain_mac(b"test/other\x00")
    assert reason(signing.encode(PAYLOAD, NEW, other), [NEW]) == "forged"
    raw = bytearray(PAYLOAD + MAC(NEW, PAYLOAD))
    for at in (0, len(PAYLOAD) - 1, len(raw) - 1):  # payload or tag
        changed = bytearray(raw)
        changed[at] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        assert reason(token, [NEW]) == "forged"


def test_only_the_canonical_spelling_is_read() -> None:
    token = signing.encode(PAYLOAD, NEW, MAC)
    assert len(token) % 4 != 0  # the last character carries unused bits
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 0x01]  # same bytes, a different spelling
    respelled = token[:-1] + sibling
    assert base64.urlsafe_b64decode(respelled + "=" * (-len(respelled) % 4)) == (
        base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    )
    assert reason(respelled, [NEW]) == "malformed"
    assert reason(token + "=" * (-len(token) % 4), [NEW]) == "malformed"  # padding
    assert reason(base64.b64encode(b"\xfb\xff" * 20).decode(), [NEW]) == "malformed"  # + and /


def test_an_over_long_empty_or_foreign_token_is_malformed() -> None:
    token = signing.encode(PAYLOAD, NEW, MAC)
    assert signing.decode(token, [NEW], MAC, max_chars=len(token)) == PAYLOAD
    assert reason(token, [NEW], max_chars=len(token) - 1) == "malformed"
    for bad in ("", None, b"abc", 42, "has space", "a.b", "A"):
        assert reason(bad, [NEW]) == "malformed"
    tag_only = base64.urlsafe_b64encode(MAC(NEW, b"")).rstrip(b"=").decode()
    assert reason(tag_only, [NEW]) == "malformed"  # no payload before the tag


def test_a_payload_the_caller_refuses_is_malformed_before_the_keys_are_read() -> None:
    read: list[int] = []

    def keys() -> list[bytes]:
        read.append(1)
        return [NEW]

    forged = signing.encode(b"\x02other version", OLD, MAC)
    assert reason(forged, keys, well_formed=lambda p: p[0] == 1) == "malformed"
    assert read == []
    assert reason(forged, keys) == "forged"
    assert read == [1]
    with pytest.raises(ValueError, match="at least one key"):
        signing.decode(signing.encode(PAYLOAD, NEW, MAC), [], MAC, max_chars=256)
