"""Tracked LINE links (issue 19, item 2): links rewritten at send, a genuine click stamps
``click_at`` once and redirects, anything else records nothing and redirects nowhere."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.delivery.channels import HttpResponse, LinePush, OutboundMessage
from kizuna.delivery.content import LineContent
from kizuna.delivery.links import InvalidLink, TrackedLinks, sign, verify
from kizuna.delivery.unsubscribe import sign as sign_unsubscribe
from kizuna.domain.timestamps import iso
from kizuna.runtime.clock import FixedClock
from kizuna.services.links import LinkClickService
from kizuna_tools.fakes import MemoryStore

SECRET = b"k" * 32
BASE = "https://abc123.lambda-url.us-east-1.on.aws/"
NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
CID, EXECUTION, STEP = "cust_0001", "points-nudge-cust_0001-20260105", "send-1"
TARGET = "https://shop.example/sale?utm=line&x=1"


def links(now: datetime = NOW) -> TrackedLinks:
    return TrackedLinks(BASE, SECRET, now=lambda: now)


def line_message(text: str) -> OutboundMessage:
    return OutboundMessage(
        customer_id=CID,
        program="points-nudge",
        step=STEP,
        execution=EXECUTION,
        channel="line",
        address="U" + "0" * 32,
        content=LineContent(text=text),
    )


class Http:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def post(self, url: str, headers: Any, body: bytes, timeout: float) -> HttpResponse:
        self.bodies.append(json.loads(body))
        sent = {"sentMessages": [{"id": "461230966842064897", "quoteToken": "q"}]}
        return HttpResponse(200, {}, json.dumps(sent).encode())


def request(path: str, method: str = "GET") -> dict[str, Any]:
    return {"rawPath": path, "requestContext": {"http": {"method": method, "path": path}}}


def token_of(url: str) -> str:
    assert url.startswith(BASE.rstrip("/") + "/l/")
    return url.rsplit("/", 1)[1]


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    memory.messages[(CID, f"MSG#{EXECUTION}#{STEP}")] = {
        "status": "sent",
        "channel": "line",
        "sent_at": "2026-01-05T02:00:00Z",
    }
    return memory


def service(store: MemoryStore, at: datetime = NOW) -> LinkClickService:
    return LinkClickService([SECRET], store, FixedClock(at))


# --- rewriting -------------------------------------------------------------------------------


def test_the_sent_line_body_carries_tracked_links_and_the_rest_untouched() -> None:
    http = Http()
    text = f"セール開始！{TARGET} をチェック。\nhttp://shop.example/a.\n会員番号 12345"
    LinePush(lambda: "t", http, links=links()).send(line_message(text))
    (sent,) = http.bodies[0]["messages"]
    parts = sent["text"].split("\n")
    assert parts[0].startswith("セール開始！https://abc123.lambda-url.us-east-1.on.aws/l/")
    assert parts[0].endswith(" をチェック。")
    assert parts[1].startswith("https://abc123.lambda-url.us-east-1.on.aws/l/")
    assert parts[1].endswith(".")  # the sentence's full stop is not part of the link
    assert parts[2] == "会員番号 12345"
    first = verify(SECRET, token_of(parts[0][len("セール開始！") :].split(" ")[0]), NOW)
    assert (first.customer_id, first.execution, first.step, first.target) == (
        CID,
        EXECUTION,
        STEP,
        TARGET,
    )
    second = verify(SECRET, token_of(parts[1][:-1]), NOW)
    assert second.target == "http://shop.example/a"


def test_text_without_links_and_the_functions_own_links_are_untouched() -> None:
    tracked = links()
    assert (
        tracked.rewrite("ありがとうございました", CID, EXECUTION, STEP) == "ありがとうございました"
    )
    own = f"{BASE}?t=abc"
    assert tracked.rewrite(f"停止: {own}", CID, EXECUTION, STEP) == f"停止: {own}"
    http = Http()
    LinePush(lambda: "t", http).send(line_message(f"no tracking {TARGET}"))
    assert http.bodies[0]["messages"][0]["text"] == f"no tracking {TARGET}"


def test_a_batch_with_tracked_links_is_pushed_per_customer_not_multicast() -> None:
    """Each customer's links are signed for them: identical text with a link cannot be one
    multicast; identical text without one still is."""
    http = Http()
    push = LinePush(lambda: "t", http, links=links())
    with_link = [
        line_message(f"sale {TARGET}").model_copy(
            update={"customer_id": f"c{i}", "address": f"U{i:032d}"}
        )
        for i in range(3)
    ]
    plain = [m.model_copy(update={"content": LineContent(text="thank you")}) for m in with_link]
    outcomes = push.send_many([*with_link, *plain])
    assert all(not isinstance(o, Exception) for o in outcomes)
    single = [b for b in http.bodies if isinstance(b["to"], str)]
    multi = [b for b in http.bodies if isinstance(b["to"], list)]
    assert len(single) == 3 and len(multi) == 1 and len(multi[0]["to"]) == 3
    owners = {
        verify(SECRET, token_of(b["messages"][0]["text"].split(" ")[1]), NOW).customer_id
        for b in single
    }
    assert owners == {"c0", "c1", "c2"}


# --- clicks ----------------------------------------------------------------------------------


def test_a_genuine_click_stamps_once_and_redirects(store: MemoryStore) -> None:
    url = links().url(CID, EXECUTION, STEP, TARGET)
    path = "/l/" + token_of(url)
    answer = service(store).handle(request(path))
    assert answer["statusCode"] == 302
    assert answer["headers"]["Location"] == TARGET
    entry = store.messages[(CID, f"MSG#{EXECUTION}#{STEP}")]
    assert entry["click_at"] == iso(NOW)
    # a repeated click, later, redirects again and changes nothing
    again = service(store, NOW + timedelta(hours=5)).handle(request(path))
    assert again["statusCode"] == 302
    assert entry["click_at"] == iso(NOW)


def test_head_redirects_without_stamping(store: MemoryStore) -> None:
    path = "/l/" + token_of(links().url(CID, EXECUTION, STEP, TARGET))
    assert service(store).handle(request(path, "HEAD"))["statusCode"] == 302
    assert "click_at" not in store.messages[(CID, f"MSG#{EXECUTION}#{STEP}")]
    assert service(store).handle(request(path, "POST"))["statusCode"] == 405


def tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-20] ^= 0x01  # a byte of the target
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def refused_tokens() -> list[str]:
    genuine = token_of(links().url(CID, EXECUTION, STEP, TARGET))
    forged = sign(b"x" * 32, CID, EXECUTION, STEP, "https://evil.example/", NOW + timedelta(1))
    expired = sign(SECRET, CID, EXECUTION, STEP, TARGET, NOW - timedelta(seconds=1))
    unsubscribe = sign_unsubscribe(SECRET, CID, "line", NOW + timedelta(days=1))
    return [
        forged,
        tampered(genuine),
        expired,
        unsubscribe,  # another kind of token, same key: never a link
        genuine + "A",
        genuine[:-3],
        "",
        "not a token!",
        "%2F%2Fevil.example",
    ]


@pytest.mark.parametrize("token", refused_tokens())
def test_anything_but_a_genuine_unexpired_token_records_nothing_and_never_redirects(
    store: MemoryStore, token: str
) -> None:
    answer = service(store).handle(request("/l/" + token))
    assert answer["statusCode"] == 400
    assert "Location" not in answer["headers"]
    assert "click_at" not in store.messages[(CID, f"MSG#{EXECUTION}#{STEP}")]


def test_verify_names_the_reason() -> None:
    expired = sign(SECRET, CID, EXECUTION, STEP, TARGET, NOW)
    with pytest.raises(InvalidLink) as info:
        verify(SECRET, expired, NOW)
    assert info.value.reason == "expired"
    with pytest.raises(InvalidLink) as info:
        verify(b"y" * 32, expired, NOW - timedelta(1))
    assert info.value.reason == "forged"


@pytest.mark.parametrize(
    "target", ["javascript:alert(1)", "ftp://shop.example/", "//evil.example", "https://"]
)
def test_only_http_targets_are_signed(target: str) -> None:
    with pytest.raises(ValueError, match="target"):
        sign(SECRET, CID, EXECUTION, STEP, target, NOW + timedelta(1))


def test_a_click_on_an_email_entry_is_not_stamped(store: MemoryStore) -> None:
    store.messages[(CID, f"MSG#{EXECUTION}#{STEP}")]["channel"] = "email"
    path = "/l/" + token_of(links().url(CID, EXECUTION, STEP, TARGET))
    assert service(store).handle(request(path))["statusCode"] == 302
    assert "click_at" not in store.messages[(CID, f"MSG#{EXECUTION}#{STEP}")]
