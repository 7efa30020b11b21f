"""Tracked LINE links (issue 19, item 2): links to the shop's declared hosts rewritten at
send, a genuine click stamps ``click_at`` once and redirects, anything else (a link to
another host among them) records nothing and redirects nowhere."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kizuna.delivery.channels import HttpResponse, LinePush, OutboundMessage
from kizuna.delivery.content import LineContent
from kizuna.delivery.line_messages import MAX_TEXT, line_length
from kizuna.delivery.links import (
    InvalidLink,
    TrackedLinks,
    bare_links,
    link_host,
    scheme_links,
    sign,
    verify,
)
from kizuna.delivery.templates import Renderer, build_context
from kizuna.delivery.unsubscribe import sign as sign_unsubscribe
from kizuna.domain.customer import Customer
from kizuna.domain.timestamps import iso
from kizuna.events import CustomerUpserted
from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import DEFAULT_BEST_SELLERS, KizunaConfig, TrackedLinksConfig
from kizuna.services.links import LinkClickService
from kizuna_tools.demo import DEMO_CONFIG
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.simulation import catalog

SECRET = b"k" * 32
BASE = "https://abc123.lambda-url.us-east-1.on.aws/"
NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
CID, EXECUTION, STEP = "cust_0001", "points-nudge-cust_0001-20260105", "send-1"
TARGET = "https://shop.example/sale?utm=line&x=1"
# the shop's declared host (tracked_links.hosts): only links to it are tracked
HOSTS = TrackedLinksConfig(hosts=("shop.example",))
EVIL = "https://evil.example/login"


def links(now: datetime = NOW, hosts: TrackedLinksConfig = HOSTS) -> TrackedLinks:
    return TrackedLinks(BASE, SECRET, hosts=hosts, now=lambda: now)


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


def service(
    store: MemoryStore, at: datetime = NOW, hosts: TrackedLinksConfig = HOSTS
) -> LinkClickService:
    return LinkClickService([SECRET], store, FixedClock(at), hosts)


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


@pytest.mark.parametrize(
    ("text", "target", "after"),
    [
        ("詳細はhttps://shop.example/sale本日まで", "https://shop.example/sale", "本日まで"),
        ("「https://shop.example/a」をご覧ください", "https://shop.example/a", "」をご覧ください"),
        ("https://shop.example/aをタップ", "https://shop.example/a", "をタップ"),
        ("https://shop.example/a。", "https://shop.example/a", "。"),
        ("https://shop.example/a（期間限定）", "https://shop.example/a", "（期間限定）"),
        ("https://shop.example/ａｂ", "https://shop.example/", "ａｂ"),
        ("https://shop.example/café", "https://shop.example/caf", "é"),
        ("https://shop.example/ask?k=s\u3000です", "https://shop.example/ask?k=s", "\u3000です"),
        ("https://shop.example/%E6%9C%AC日", "https://shop.example/%E6%9C%AC", "日"),
        ("https://shop.example/a\x01b", "https://shop.example/a", "\x01b"),
    ],
)
def test_a_link_ends_at_the_first_character_outside_ascii(
    text: str, target: str, after: str
) -> None:
    """A URI has only ASCII unescaped (RFC 3986): a kanji, kana, full-width or accented
    letter right after a link is the sentence's, not the link's."""
    rewritten = links().rewrite(text, CID, EXECUTION, STEP)
    start = rewritten.index(BASE)
    tracked = rewritten[start:].removesuffix(after)
    assert rewritten == text[: text.index("http")] + tracked + after
    assert verify(SECRET, token_of(tracked), NOW).target == target


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


def test_a_url_from_customer_data_is_sent_as_written_never_signed() -> None:
    """A first name that is a URL (customer.upserted takes it) renders into a LINE text:
    its host is not declared, so it goes out as written, and no token leads to it."""
    # given: the customer's first name is a phishing URL, and the cart template renders it
    event = CustomerUpserted(customer_id=CID, occurred_at=NOW, first_name=EVIL)
    customer = Customer(customer_id=CID, first_name=event.first_name, line_user_id="U" + "0" * 32)
    context = build_context(
        customer,
        program="cart-abandonment",
        step="cart",
        loyalty_config=KizunaConfig().loyalty,
        locale="en",
        extra={"cart": None},
    )
    content = Renderer(REPO_ROOT / "templates").render(
        "cart-abandonment", "cart", "line", "en", context
    )
    assert isinstance(content, LineContent) and EVIL in content.text
    # when: it is sent, with the shop's host declared
    http = Http()
    LinePush(lambda: "t", http, links=links()).send(line_message(content.text))
    # then: the text is as rendered: no link on the function's URL at all
    assert http.bodies[0]["messages"][0]["text"] == content.text
    assert BASE not in http.bodies[0]["messages"][0]["text"]


def test_only_links_to_a_declared_host_are_tracked() -> None:
    text = f"Hi {EVIL}, your sale: {TARGET}"
    rewritten = links().rewrite(text, CID, EXECUTION, STEP)
    assert rewritten.startswith(f"Hi {EVIL}, your sale: {BASE}l/")
    assert verify(SECRET, token_of(rewritten.rsplit(" ", 1)[1]), NOW).target == TARGET
    # none declared (the default): nothing is tracked
    assert KizunaConfig().tracked_links.hosts == ()
    assert links(hosts=TrackedLinksConfig()).rewrite(text, CID, EXECUTION, STEP) == text


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.evil.example/",
        "https://evilshop.example/",
        "https://shop.example@evil.example/",  # credentials: the host is evil.example
        "https://evil.example\\@shop.example/",  # a browser's host: evil.example
        "https://user:pw@shop.example/",
        "https://shop.example./",
        "https://shop%2Eexample/",
        "https://[::1]/",
        "https://www.shop.example/",  # a subdomain: only with *.shop.example
    ],
)
def test_a_link_that_only_looks_like_the_declared_host_is_not_tracked(url: str) -> None:
    assert links().rewrite(f"see {url} now", CID, EXECUTION, STEP) == f"see {url} now"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("HTTPS://SHOP.EXAMPLE/Sale", "shop.example"),
        ("https://shop.example:8443/a", "shop.example"),
        ("https://www.shop.example/a", "*.shop.example"),
        ("https://a.b.shop.example/a", "*.shop.example"),
    ],
)
def test_a_link_to_a_declared_host_is_tracked(url: str, host: str) -> None:
    rewritten = links(hosts=TrackedLinksConfig(hosts=(host,))).rewrite(
        f"see {url} now", CID, EXECUTION, STEP
    )
    assert rewritten.startswith(f"see {BASE}l/") and rewritten.endswith(" now")
    assert verify(SECRET, token_of(rewritten.split(" ")[1]), NOW).target == url


def test_a_wildcard_covers_subdomains_only() -> None:
    wildcard = TrackedLinksConfig(hosts=("*.shop.example",))
    assert wildcard.declares("www.shop.example") and wildcard.declares("a.b.shop.example")
    assert not wildcard.declares("shop.example")
    assert not wildcard.declares("evilshop.example")


def test_the_demo_declares_the_hosts_of_its_product_links() -> None:
    """``make demo`` still tracks its LINE links (the recommendations' product URLs)."""
    hosts = KizunaConfig.model_validate(DEMO_CONFIG).tracked_links
    urls = [p.url for p in DEFAULT_BEST_SELLERS] + [p["url"] for p in catalog()]
    undeclared = {u for u in urls if not hosts.declares(link_host(u) or "")}
    assert not undeclared


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


def test_identical_texts_are_multicast_exactly_when_the_rewrite_leaves_them_alone() -> None:
    """The multicast decision reads links as the rewrite does: an upper-case scheme is a
    link (pushed per customer, tracked), a link to an undeclared host is not (one
    multicast, as written)."""
    http = Http()
    push = LinePush(lambda: "t", http, links=links())
    customers = [
        line_message("x").model_copy(update={"customer_id": f"c{i}", "address": f"U{i:032d}"})
        for i in range(3)
    ]
    upper = "SALE HTTPS://SHOP.EXAMPLE/SALE"
    elsewhere = f"see {EVIL}"
    batch = [m.model_copy(update={"content": LineContent(text=upper)}) for m in customers]
    batch += [m.model_copy(update={"content": LineContent(text=elsewhere)}) for m in customers]
    assert all(not isinstance(o, Exception) for o in push.send_many(batch))
    single = [b for b in http.bodies if isinstance(b["to"], str)]
    (multi,) = [b for b in http.bodies if isinstance(b["to"], list)]
    assert len(single) == 3 and multi["messages"][0]["text"] == elsewhere
    for body in single:
        tracked = body["messages"][0]["text"].split(" ")[1]
        assert verify(SECRET, token_of(tracked), NOW).target == "HTTPS://SHOP.EXAMPLE/SALE"


NEWSLETTER_LINK = "https://shop.example/sale?utm=line"  # 34 characters; 191 once tracked


@pytest.mark.parametrize(
    "text",
    [
        # a newsletter with 20 links: 4,700 characters rendered, 7,840 tracked
        "お知らせ" * 1000 + "\n" + "\n".join([NEWSLETTER_LINK] * 20),
        # 4,875 UTF-16 code units rendered, 5,032 tracked (2,612 code points: LINE refuses)
        "🎉" * 2420 + "\n" + NEWSLETTER_LINK,
    ],
)
def test_a_text_that_tracked_links_would_take_over_lines_limit_goes_with_its_links_as_written(
    text: str,
) -> None:
    """A tracked link is longer than the one it replaces: a text within LINE's 5,000
    characters (UTF-16 code units) as rendered, over them tracked, is sent as rendered, its
    links untracked (rather than refused by LINE, and nothing sent), and the result says so."""
    assert line_length(text) <= MAX_TEXT
    http = Http()
    result = LinePush(lambda: "t", http, links=links()).send(line_message(text))
    (sent,) = http.bodies[0]["messages"]
    assert sent["text"] == text and line_length(sent["text"]) <= MAX_TEXT
    assert result.links_untracked


def test_a_text_that_fits_with_its_tracked_links_is_tracked() -> None:
    text = "🎉" * 2400 + "\n" + NEWSLETTER_LINK  # 4,992 UTF-16 code units tracked
    http = Http()
    result = LinePush(lambda: "t", http, links=links()).send(line_message(text))
    (sent,) = http.bodies[0]["messages"]
    assert line_length(sent["text"]) == MAX_TEXT - 8 and "/l/" in sent["text"]
    assert not result.links_untracked and not result.links_over_limit


BUTTON = {
    "type": "flex",
    "altText": "sale",
    "contents": {
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [{"type": "text", "text": f"see {TARGET}"}],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "button", "action": {"type": "uri", "label": "Shop", "uri": TARGET}}
            ],
        },
    },
}
IMAGE = {
    "type": "image",
    "originalContentUrl": "https://shop.example/a.jpg",
    "previewImageUrl": "https://shop.example/a-small.jpg",
}


@pytest.mark.parametrize(
    ("content", "untracked"),
    [
        # links, none to a declared host: a click of them cannot be seen
        (LineContent(text=f"see {EVIL}"), True),
        # a link in a button: sent as written, never tracked
        (LineContent(messages=(BUTTON,)), True),
        # one tracked link is enough: its clicks are what is counted
        (LineContent(text=f"see {TARGET} or {EVIL}"), False),
        # no link at all: nothing to click, its "no click" is a fact (an email without a link
        # is measured alike), so it is not marked
        (LineContent(text="thank you"), False),
        (LineContent(messages=(IMAGE,)), False),
    ],
)
def test_a_line_message_none_of_whose_links_is_tracked_says_so(
    content: LineContent, untracked: bool
) -> None:
    """``links_untracked``: the message has links and none went tracked, so no click of it
    can be seen (what the senders keep on the ledger entry, and what a winner or a branch
    on clicks does not read as "not clicked"); not for being over LINE's limit."""
    http = Http()
    message = line_message("x").model_copy(update={"content": content})
    result = LinePush(lambda: "t", http, links=links()).send(message)
    assert (result.links_untracked, result.links_over_limit) == (untracked, False)


def test_without_tracked_links_any_link_is_untracked() -> None:
    """A LINE adapter given no tracked links (nothing to sign with) tracks nothing."""
    push = LinePush(lambda: "t", Http())
    assert push.send(line_message(f"see {TARGET}")).links_untracked
    assert not push.send(line_message("thank you")).links_untracked


def test_a_multicast_with_untracked_links_says_so_for_each_message() -> None:
    """Identical texts whose links are all untracked go in one multicast, as written: each
    message's outcome says its links went untracked; a text without a link does not."""
    http = Http()
    push = LinePush(lambda: "t", http, links=links())
    customers = [
        line_message("x").model_copy(update={"customer_id": f"c{i}", "address": f"U{i:032d}"})
        for i in range(3)
    ]
    elsewhere = [
        m.model_copy(update={"content": LineContent(text=f"see {EVIL}")}) for m in customers
    ]
    plain = [m.model_copy(update={"content": LineContent(text="thank you")}) for m in customers]
    outcomes = push.send_many([*elsewhere, *plain])
    assert len([b for b in http.bodies if isinstance(b["to"], list)]) == 2
    assert [getattr(o, "links_untracked", None) for o in outcomes] == [True] * 3 + [False] * 3


def uri_action(uri: str) -> dict[str, Any]:
    return {"type": "uri", "label": "Open", "uri": uri}


CALL_BUTTON = {
    "type": "template",
    "altText": "call us",
    "template": {
        "type": "buttons",
        "text": "Questions?",
        "actions": [uri_action("tel:0312345678")],
    },
}
LINE_IMAGEMAP = {
    "type": "imagemap",
    "baseUrl": "https://shop.example/map",
    "altText": "our account",
    "baseSize": {"width": 1040, "height": 1040},
    "actions": [
        {
            "type": "uri",
            "linkUri": "line://ti/p/@shop",
            "area": {"x": 0, "y": 0, "width": 1040, "height": 1040},
        }
    ],
}
FOLLOW_REPLY = {
    "type": "text",
    "text": "thank you",
    "quickReply": {"items": [{"type": "action", "action": uri_action("line://ti/p/@shop")}]},
}


@pytest.mark.parametrize(
    ("content", "untracked"),
    [
        # a link LINE opens that is not a web link is as unseen as an untracked one: a
        # customer who tapped the phone button was recorded as not engaged
        (LineContent(messages=(CALL_BUTTON,)), True),
        (LineContent(messages=(LINE_IMAGEMAP,)), True),
        (LineContent(messages=(FOLLOW_REPLY,)), True),
        # written with its scheme in a text: a link a tap opens
        (LineContent(text="お電話は tel:0312345678 まで"), True),
        (LineContent(text="お問い合わせ TEL:+81-3-1234-5678。"), True),
        (LineContent(text="mailto:info@shop.example まで"), True),
        (LineContent(text="友だち追加 line://ti/p/@shop"), True),
        # one tracked link is still enough
        (LineContent(messages=({"type": "text", "text": f"see {TARGET}"}, CALL_BUTTON)), False),
        # nothing written as a link: measured (no click is a fact)
        (LineContent(text="hotel:3F, 受付 10:00-18:00, ご注文番号 0312345678"), False),
        (LineContent(text="tel: はこちら、mailto: なし、line: も"), False),
        (LineContent(text="アプリで myapp://open を"), False),
    ],
)
def test_a_line_message_whose_only_links_are_not_web_links_is_untracked(
    content: LineContent, untracked: bool
) -> None:
    """Any URI a message offers to open counts as a link (an action's ``uri`` or
    ``linkUri`` whatever its scheme; a text's ``tel:``, ``mailto:`` and ``line://`` links):
    untracked unless a tracked http(s) link is in the message. A text with nothing written as
    a link (a run of digits, a colon after a word, another app's scheme) is still
    measured."""
    http = Http()
    message = line_message("x").model_copy(update={"content": content})
    result = LinePush(lambda: "t", http, links=links()).send(message)
    assert (result.links_untracked, result.links_over_limit) == (untracked, False)


def test_a_multicast_whose_only_link_is_a_phone_number_says_so() -> None:
    """Identical texts with a ``tel:`` link go in one multicast: each outcome is untracked."""
    http = Http()
    push = LinePush(lambda: "t", http, links=links())
    calls = [
        line_message("電話 tel:0312345678").model_copy(
            update={"customer_id": f"c{i}", "address": f"U{i:032d}"}
        )
        for i in range(2)
    ]
    outcomes = push.send_many(calls)
    assert len(http.bodies) == 1 and isinstance(http.bodies[0]["to"], list)
    assert [getattr(o, "links_untracked", None) for o in outcomes] == [True, True]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("tel:0312345678.", ["tel:0312345678"]),
        ("TEL:(03)1234-5678、", ["TEL:(03)1234-5678"]),
        ("mailto:info@shop.example, or", ["mailto:info@shop.example"]),
        ("詳細はline://ti/p/@shop本日", ["line://ti/p/@shop"]),
        ("hotel:3F motel:0312 mailto:nobody tel:abc line:/x", []),
        (f"see {TARGET}", []),
    ],
)
def test_scheme_links_are_the_texts_links_a_phone_opens_other_than_the_web(
    text: str, found: list[str]
) -> None:
    assert scheme_links(text) == found


@pytest.mark.parametrize(
    ("text", "untracked"),
    [
        # written bare, LINE's app makes them tappable: a customer who called the shop was
        # recorded as not engaged
        ("お問い合わせは 03-1234-5678 まで", True),
        ("携帯 090-1234-5678、フリーダイヤル 0120-123-456", True),
        ("Call +81 90 1234 5678.", True),
        ("ご質問は info@shop.example へ", True),
        ("詳しくは www.shop.example/sale で", True),
        # a web link LINE links too: tracked to a declared host, untracked elsewhere
        (f"詳しくは {TARGET} で", False),
        (f"詳しくは {EVIL} で", True),
        # one tracked link is still enough
        (f"{TARGET} / TEL 03-1234-5678", False),
        # prices, dates, times, postal codes, order and coupon numbers, an account name:
        # nothing to tap, measured
        ("1,000円 (税込 ¥1,100) 2026-12-07 10:00-18:00 〒150-0002", False),
        ("ご注文番号 0312345678 / 1234-5678-9012 / 0123-4567-890 / #0312-345-678", False),
        ("クーポン KZ-7F3A-1234、+100ポイント、+10% OFF、LINE ID @shop", False),
    ],
)
def test_a_line_text_whose_only_links_are_bare_phone_numbers_or_addresses_is_untracked(
    text: str, untracked: bool
) -> None:
    """A phone number, an email address or a ``www.`` address written bare in a text is a
    link a customer can tap and Kizuna cannot track (:func:`bare_links`): a text with no
    other link is ``links_untracked``; a price, a date or an order number is no link."""
    result = LinePush(lambda: "t", Http(), links=links()).send(line_message(text))
    assert (result.links_untracked, result.links_over_limit) == (untracked, False)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # Japanese numbers: ten digits ending in four, 0120/0570 3-3, eleven as 0X0 or 0800
        (
            "03-1234-5678 011-123-4567 0123-45-6789",
            ["03-1234-5678", "011-123-4567", "0123-45-6789"],
        ),
        (
            "0120-123-456 0120-12-3456 0570-123-456",
            ["0120-123-456", "0120-12-3456", "0570-123-456"],
        ),
        (
            "(090-1234-5678) 050-1234-5678。0800-123-4567.",
            ["090-1234-5678", "050-1234-5678", "0800-123-4567"],
        ),
        ("電話：03-1234-5678、FAX 03-1234-5679", ["03-1234-5678", "03-1234-5679"]),
        # international: '+', a country code, 10 to 15 digits in all
        (
            "+81 90 1234 5678 / +81-3-1234-5678 / +819012345678",
            ["+81 90 1234 5678", "+81-3-1234-5678", "+819012345678"],
        ),
        ("+1 212 555 1234", ["+1 212 555 1234"]),
        # email and www. addresses
        ("メールinfo@shop.example。", ["info@shop.example"]),
        (
            "WWW.Shop.Example. www.shop.example/a?b=1",
            ["WWW.Shop.Example", "www.shop.example/a?b=1"],
        ),
        # written with a scheme: scheme_links' and text_links', not read twice
        (f"tel:03-1234-5678 mailto:a@shop.example line://ti/p/@shop {TARGET}", []),
        ("https://www.shop.example/?u=info@shop.example&tel=03-1234-5678", []),
        # prices, dates, times
        ("1,000円 ¥12,800 2026-12-07 07-12-2026 10:00-18:00 10:00〜18:00 v1.2.3", []),
        # order numbers, postal codes, coupons: a run of digits, groups of other shapes, or
        # inside a word or a number
        ("0312345678 1234-5678-9012 0123-4567-890 012-3456-7890 0120-123-4567", []),
        ("No.0001-2345-6789 #0312-345-678 ORD-03-1234-5678 KZ-7F3A-1234 〒150-0002", []),
        ("03-1234-5678-9 03-1234-56789 1.03-1234-5678 1,03-1234-5678 A03-1234-5678", []),
        # a '+' before too few or too many digits
        ("+10% OFF +100ポイント +1,000pt +81 3 1234 +81 90 1234 5678 9012 3456", []),
        # full-width digits are not read
        ("０３－１２３４－５６７８", []),
        # no address: an account name, no host, no letters to end the host
        ("@shop foo@bar a@shop.example1 shop.example", []),
    ],
)
def test_bare_links_are_the_phone_numbers_and_addresses_a_text_writes_without_a_scheme(
    text: str, found: list[str]
) -> None:
    assert bare_links(text) == found


@given(
    day=st.dates(),
    price=st.integers(0, 10**9),
    order=st.integers(0, 10**12),
    hour=st.integers(0, 23),
)
def test_no_price_date_time_or_run_of_digits_is_a_bare_link(
    day: date, price: int, order: int, hour: int
) -> None:
    """Whatever the figures: a date, a price, a time range and an order number (a run of
    digits, zero-padded or not, or after '#' or 'No.') are never read as a phone number."""
    text = (
        f"{day.isoformat()} {day:%Y/%m/%d} {day:%m-%d-%Y} {price:,}円 ¥{price:,} +{price:,}pt "
        f"{hour:02d}:00-{(hour + 1) % 24:02d}:00 ご注文番号 {order} {order:012d} #{order:010d} "
        f"No.{order}"
    )
    assert bare_links(text) == []


def test_a_text_over_the_limit_tracked_says_why_its_links_went_untracked() -> None:
    """Only a text over LINE's limit with tracked links says ``links_over_limit`` (the
    senders' warning: shorten it), beside ``links_untracked``."""
    text = "🎉" * 2420 + "\n" + NEWSLETTER_LINK
    result = LinePush(lambda: "t", Http(), links=links()).send(line_message(text))
    assert result.links_untracked and result.links_over_limit


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


def test_a_genuine_token_to_an_undeclared_host_records_nothing_and_never_redirects(
    store: MemoryStore,
) -> None:
    """Signed before the shop declared its hosts (or for a host since removed): the link
    function follows a token to a declared host only."""
    evil = sign(SECRET, CID, EXECUTION, STEP, EVIL, NOW + timedelta(days=1))
    declared = token_of(links().url(CID, EXECUTION, STEP, TARGET))
    for token, hosts in ((evil, HOSTS), (declared, TrackedLinksConfig())):
        answer = service(store, hosts=hosts).handle(request("/l/" + token))
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


# --- declaring hosts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("https://shop.example.com", "no scheme, port, path or credentials"),
        ("shop.example.com/sale", "no scheme, port, path or credentials"),
        ("shop.example.com:443", "no scheme, port, path or credentials"),
        ("user@shop.example.com", "no scheme, port, path or credentials"),
        (" shop.example.com", "no scheme, port, path or credentials"),
        ("Shop.Example.com", "lower case"),
        ("shop.*.com", "a wildcard is only a leading"),
        ("*", "a wildcard is only a leading"),
        ("localhost", "not a DNS name"),
        ("*.com", "not a DNS name"),
        ("shop.example.com.", "not a DNS name"),
        ("-shop.example.com", "not a DNS name"),
        ("shop_1.example.com", "not a DNS name"),
        ("ショップ.example", "not a DNS name"),
        ("", "not a DNS name"),
        ("192.168.0.1", "not an IP address"),
    ],
)
def test_a_host_that_is_not_a_lower_case_dns_name_is_refused_as_written(
    host: str, problem: str
) -> None:
    with pytest.raises(ValidationError, match=r"tracked_links\.hosts: .*" + re.escape(problem)):
        KizunaConfig.model_validate({"tracked_links": {"hosts": [host]}})


def test_hosts_are_declared_once_and_kept_as_written() -> None:
    with pytest.raises(ValidationError, match="declared twice"):
        TrackedLinksConfig(hosts=("shop.example.com", "shop.example.com"))
    hosts = ("shop.example.com", "*.shop.example.com", "xn--eckwd4c7c.xn--zckzah")
    assert KizunaConfig.model_validate({"tracked_links": {"hosts": hosts}}).tracked_links == (
        TrackedLinksConfig(hosts=hosts)
    )
