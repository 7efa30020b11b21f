"""Signed one-click unsubscribe tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
import struct
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.delivery.unsubscribe import (
    LINK_TTL,
    Claims,
    InvalidToken,
    UnsubscribeLinks,
    sign,
    verify,
)

SECRET = b"unsubscribe-secret-0123456789abcdef"
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)
URLSAFE = string.ascii_letters + string.digits + "-_"

customer_ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=128)
channels = st.sampled_from(["email", "sms", "push", "line"])


def reason(token: str, now: datetime = NOW, secret: bytes = SECRET) -> str:
    with pytest.raises(InvalidToken) as caught:
        verify(secret, token, now)
    return caught.value.reason


@given(customer_ids, channels, st.integers(min_value=1, max_value=10**7))
def test_round_trip(customer_id: str, channel: str, seconds_ahead: int) -> None:
    expires = NOW + timedelta(seconds=seconds_ahead)
    token = sign(SECRET, customer_id, channel, expires)
    assert set(token) <= set(URLSAFE)
    claims = verify(SECRET, token, NOW)
    assert claims == Claims(
        customer_id=customer_id,
        channel=channel,
        issued_at=(expires - LINK_TTL).replace(microsecond=0),
        expires_at=expires.replace(microsecond=0),
    )


@settings(max_examples=300)
@given(customer_ids, channels, st.data())
def test_any_single_character_change_is_rejected(
    customer_id: str, channel: str, data: st.DataObject
) -> None:
    token = sign(SECRET, customer_id, channel, LATER)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    replacement = data.draw(
        st.characters(codec="utf-8").filter(lambda c: c != token[position]),
        label="replacement",
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    assert reason(tampered) in {"malformed", "forged"}


def test_every_position_with_every_urlsafe_character_is_rejected() -> None:
    # exhaustive over one token: includes the last character's unused low bits
    token = sign(SECRET, "cust-0001", "email", LATER)
    for position in range(len(token)):
        for char in URLSAFE:
            if char != token[position]:
                tampered = token[:position] + char + token[position + 1 :]
                with pytest.raises(InvalidToken):
                    verify(SECRET, tampered, NOW)


def test_reasons() -> None:
    token = sign(SECRET, "cust-0001", "email", LATER)
    assert reason(token, now=LATER) == "expired"
    assert reason(token, now=LATER + timedelta(seconds=1)) == "expired"
    assert reason(token, secret=b"another-secret") == "forged"
    assert reason("") == "malformed"
    assert reason("not a token!") == "malformed"
    assert reason(token[:-5]) in {"malformed", "forged"}
    assert reason(token + "A") in {"malformed", "forged"}
    assert reason("A" * 600) == "malformed"
    assert (
        reason(base64.urlsafe_b64encode(b"\x07" + bytes(40)).rstrip(b"=").decode()) == "malformed"
    )
    # forged payload with a wrong MAC: valid shape, wrong signature
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1
    assert reason(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()) == "forged"


def test_a_token_carries_its_issue_time_and_version_1_tokens_still_verify() -> None:
    issued = NOW - timedelta(days=2)
    token = sign(SECRET, "cust-1", "email", issued + LINK_TTL, issued_at=issued)
    claims = verify(SECRET, token, NOW)
    assert (claims.version, claims.issued_at) == (3, issued.replace(microsecond=0))
    assert claims.topic is None
    # a version 2 token (no topic, mailed before topics): still verifies, names no topic
    v2 = struct.pack(">BBII", 2, 1, int(issued.timestamp()), int(LATER.timestamp())) + b"cust-1"
    v2mac = hmac.new(SECRET, b"kizuna/unsubscribe\x00" + v2, hashlib.sha256).digest()[:16]
    two = verify(SECRET, base64.urlsafe_b64encode(v2 + v2mac).rstrip(b"=").decode(), NOW)
    assert (two.version, two.customer_id, two.topic) == (2, "cust-1", None)
    # a link mailed before tokens had an issue time: always made LINK_TTL before it expires
    expires = int((NOW + timedelta(days=10)).timestamp())
    payload = struct.pack(">BBI", 1, 1, expires) + b"cust-1"
    mac = hmac.new(SECRET, b"kizuna/unsubscribe\x00" + payload, hashlib.sha256).digest()[:16]
    legacy = base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()
    old = verify(SECRET, legacy, NOW)
    assert (old.version, old.customer_id, old.channel) == (1, "cust-1", "email")
    assert old.issued_at == datetime.fromtimestamp(expires, UTC) - LINK_TTL
    with pytest.raises(ValueError, match="before"):
        sign(SECRET, "c", "email", LATER, issued_at=LATER + timedelta(seconds=1))


def test_a_token_carries_the_message_topic() -> None:
    token = sign(SECRET, "cust-1", "email", LATER, topic="newsletter")
    claims = verify(SECRET, token, NOW)
    assert (claims.customer_id, claims.channel, claims.topic) == ("cust-1", "email", "newsletter")
    with pytest.raises(ValueError, match="topic"):
        sign(SECRET, "cust-1", "email", LATER, topic="News Letter")
    # a valid signature over a topic that is not a topic name is still refused
    issued = int((LATER - LINK_TTL).timestamp())
    payload = struct.pack(">BBII", 3, 1, issued, int(LATER.timestamp())) + b"\x02A#cust-1"
    mac = hmac.new(SECRET, b"kizuna/unsubscribe\x00" + payload, hashlib.sha256).digest()[:16]
    assert reason(base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()) == "malformed"


def test_expired_only_after_signature_checks() -> None:
    # an expired token with a wrong signature says "forged", not "expired"
    token = sign(b"another-secret", "c", "sms", NOW - timedelta(days=1))
    assert reason(token) == "forged"


def test_rotated_secrets() -> None:
    old = sign(b"old-secret", "cust-1", "line", LATER)
    assert verify([b"new-secret", b"old-secret"], old, NOW).customer_id == "cust-1"
    assert reason(old, secret=b"new-secret") == "forged"


def test_sign_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="channel"):
        sign(SECRET, "c", "fax", LATER)
    with pytest.raises(ValueError, match="timezone"):
        sign(SECRET, "c", "email", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="secret"):
        sign(b"", "c", "email", LATER)
    with pytest.raises(ValueError, match="customer_id"):
        sign(SECRET, "", "email", LATER)


def test_links() -> None:
    links = UnsubscribeLinks(
        "https://u.example.com/u?src=mail", SECRET, ttl=timedelta(days=30), now=lambda: NOW
    )
    url = links.url("cust-9", "email")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "u.example.com", "/u")
    query = parse_qs(parts.query)
    assert query["src"] == ["mail"]
    claims = verify(SECRET, query["t"][0], NOW)
    assert (claims.customer_id, claims.channel) == ("cust-9", "email")
    assert claims.expires_at == NOW + timedelta(days=30)
    with pytest.raises(ValueError, match="https"):
        UnsubscribeLinks("http://u.example.com/u", SECRET)
