"""LINE rich templates: JSON rendered safely, LINE's message rules checked with their path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_channels import LINE_TOKEN, FakeHttp, line_ok, message

from kizuna.delivery.channels import HttpResponse, LinePush, PermanentFailure, SendResult, send_all
from kizuna.delivery.content import LineContent
from kizuna.delivery.line_messages import (
    MAX_BUBBLE_BYTES,
    message_problems,
    template_problems,
)
from kizuna.delivery.templates import Renderer, RenderError


def bubble(text: str = "Hello") -> dict[str, Any]:
    return {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": text}]},
    }


def flex(contents: dict[str, Any], alt: str | None = "Hello") -> dict[str, Any]:
    found: dict[str, Any] = {"type": "flex", "contents": contents}
    if alt is not None:
        found["altText"] = alt
    return found


def one_problem(messages: list[Any]) -> str:
    problems = message_problems(messages)
    assert len(problems) == 1, problems
    return problems[0]


# --- the rules -----------------------------------------------------------------------------
def test_a_good_flex_bubble_and_carousel_pass() -> None:
    carousel = {"type": "carousel", "contents": [bubble(), bubble("two")]}
    assert message_problems([flex(bubble()), flex(carousel)]) == []


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([flex(bubble(), alt=None)], "messages[0].altText: required"),
        ([flex(bubble(), alt=" ")], "messages[0].altText: must not be empty"),
        (
            [flex(bubble(), alt="a" * 1501)],
            "messages[0].altText: 1,501 characters, over LINE's 1,500",
        ),
        (
            [flex({"type": "carousel", "contents": [bubble()] * 13})],
            "messages[0].contents.contents: 13 bubbles, LINE takes 1 to 12",
        ),
        (
            [{"type": "text", "text": "x" * 5001}],
            "messages[0].text: 5,001 characters, over LINE's 5,000",
        ),
        ([{"type": "text", "text": "x"}] * 6, "messages: 6 messages, LINE takes 1 to 5"),
        (
            [
                {
                    "type": "image",
                    "originalContentUrl": "http://x.jp/a.png",
                    "previewImageUrl": "https://x.jp/b.png",
                }
            ],
            "messages[0].originalContentUrl: an image URL must be https",
        ),
        ([{"type": "video"}], "messages[0].type: one of flex, image, imagemap, template, text"),
    ],
)
def test_broken_messages_fail_with_the_path_and_reason(messages: list[Any], expected: str) -> None:
    assert one_problem(messages) == expected


def test_a_bad_uri_scheme_is_refused_where_it_is() -> None:
    b = bubble()
    b["footer"] = {
        "type": "box",
        "layout": "vertical",
        "contents": [
            {
                "type": "button",
                "action": {"type": "uri", "label": "Go", "uri": "javascript:alert(1)"},
            }
        ],
    }
    assert one_problem([flex(b)]) == (
        "messages[0].contents.footer.contents[0].action.uri: a URI must be https, http, tel or line"
    )
    for ok in ("https://a.jp", "http://a.jp", "tel:0312345678", "line://nv/chat"):
        b["footer"]["contents"][0]["action"]["uri"] = ok
        assert message_problems([flex(b)]) == []


def test_bubble_and_carousel_json_sizes() -> None:
    big = bubble("あ" * 5000)  # 15,000 bytes of text per component
    big["body"]["contents"] *= 3
    assert "bubble JSON" in one_problem([flex(big)])
    assert "over LINE's 30,720" in one_problem([flex(big)])
    # bubbles each under 30 KB, carousel over 50 KB
    under = bubble("あ" * 4000)
    under["body"]["contents"] *= 2
    problem = one_problem([flex({"type": "carousel", "contents": [under] * 3})])
    assert problem.startswith("messages[0].contents: carousel JSON") and "51,200" in problem
    assert MAX_BUBBLE_BYTES == 30 * 1024


def test_quick_reply_limits() -> None:
    item = {"type": "action", "action": {"type": "message", "label": "Yes", "text": "Yes"}}
    good = {"type": "text", "text": "Hi", "quickReply": {"items": [item] * 13}}
    assert message_problems([good]) == []
    assert one_problem([{**good, "quickReply": {"items": [item] * 14}}]) == (
        "messages[0].quickReply.items: 14 items, LINE takes 1 to 13"
    )
    long = {"type": "action", "action": {"type": "message", "label": "x" * 21, "text": "x"}}
    assert one_problem([{**good, "quickReply": {"items": [long]}}]) == (
        "messages[0].quickReply.items[0].action.label: 21 characters, over LINE's 20"
    )


def test_lengths_are_counted_in_utf16_code_units_as_line_counts_them() -> None:
    # LINE counts UTF-16 code units ("Character counting in a text"): 🎉 is 2 characters
    assert message_problems([{"type": "text", "text": "🎉" * 2500}]) == []  # 5,000 units
    assert one_problem([{"type": "text", "text": "🎉" * 2501}]) == (
        "messages[0].text: 5,002 characters (UTF-16 code units: an emoji counts 2), "
        "over LINE's 5,000"
    )
    assert one_problem([flex(bubble(), alt="🎁" * 751)]).startswith(
        "messages[0].altText: 1,502 characters"
    )
    assert one_problem([flex(bubble("あ" + "𠀋" * 2500))]).startswith(
        "messages[0].contents.body.contents[0].text: 5,001 characters"
    )
    # a property LINE counts in grapheme clusters (an action's label) is not counted in UTF-16
    label = {"type": "action", "action": {"type": "message", "label": "👍" * 20, "text": "👍"}}
    reply = {"type": "text", "text": "Hi", "quickReply": {"items": [label]}}
    assert message_problems([reply]) == []


def test_a_line_text_is_counted_in_utf16_code_units() -> None:
    assert LineContent(text="🎉" * 2500).text == "🎉" * 2500
    with pytest.raises(ValueError, match="at most 5,000 characters as LINE counts them"):
        LineContent(text="🎉" * 2501)  # 2,501 characters, 5,002 UTF-16 code units


def test_a_line_text_template_over_the_limit_in_utf16_fails_to_render(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "t" / "ja"
    folder.mkdir(parents=True)
    (folder / "line.txt.j2").write_text("{{ '🎉' * 2600 }}", encoding="utf-8")
    with pytest.raises(RenderError, match="at most 5,000 characters as LINE counts them"):
        Renderer(tmp_path).render("p", "t", "line", "ja", {})


def test_template_messages() -> None:
    uri = {"type": "uri", "label": "Open", "uri": "https://a.jp"}
    confirm = {
        "type": "template",
        "altText": "?",
        "template": {"type": "confirm", "text": "Sure?", "actions": [uri]},
    }
    assert one_problem([confirm]) == "messages[0].template.actions: 1 actions, LINE takes 2 to 2"
    buttons = {
        "type": "template",
        "altText": "b",
        "template": {"type": "buttons", "title": "T", "text": "x" * 61, "actions": [uri] * 5},
    }
    assert message_problems([buttons]) == [
        "messages[0].template.text: 61 characters, over LINE's 60",
        "messages[0].template.actions: 5 actions, LINE takes 1 to 4",
    ]


def test_imagemap() -> None:
    imagemap = {
        "type": "imagemap",
        "baseUrl": "https://a.jp/map",
        "altText": "map",
        "baseSize": {"width": 1040, "height": 1040},
        "actions": [
            {
                "type": "uri",
                "linkUri": "ftp://a.jp",
                "area": {"x": 0, "y": 0, "width": 1, "height": 1},
            }
        ],
    }
    assert (
        one_problem([imagemap])
        == "messages[0].actions[0].linkUri: a URI must be https, http, tel or line"
    )


def test_template_as_written_skips_values_with_placeholders_but_not_shape() -> None:
    b = bubble("{{ customer.display_name }}")
    b["hero"] = {"type": "image", "url": "{{ image_url }}"}
    assert template_problems([flex(b, alt="{{ 'x' * 2000 }}")]) == []
    assert template_problems([flex({"type": "carousel", "contents": [b] * 13})]) == [
        "messages[0].contents.contents: 13 bubbles, LINE takes 1 to 12",
    ]


# --- templates -----------------------------------------------------------------------------
def write(root: Path, body: Any, locale: str = "en") -> Renderer:
    folder = root / "p" / "t" / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "line.json").write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return Renderer(root)


CONTEXT = {"customer": {"display_name": 'Taro", "type": "evil'}, "url": "https://a.jp/x"}


def test_placeholders_render_into_string_values_only(tmp_path: Path) -> None:
    b = bubble("Hi {{ customer.display_name }}")
    b["hero"] = {"type": "image", "url": "{{ url }}"}
    renderer = write(tmp_path, flex(b, alt="For {{ customer.display_name }}"))
    assert renderer.parts_missing("p", "t", "line") == []
    content = renderer.render("p", "t", "line", "en", CONTEXT)
    assert isinstance(content, LineContent)
    (sent,) = content.messages
    # the quote in the name stays text: the structure is the template's
    assert sent["altText"] == 'For Taro", "type": "evil'
    assert sent["contents"]["body"]["contents"][0] == {
        "type": "text",
        "text": 'Hi Taro", "type": "evil',
    }
    assert sent["contents"]["hero"]["url"] == "https://a.jp/x"


def test_a_template_that_breaks_the_rules_as_written_fails_to_render(tmp_path: Path) -> None:
    renderer = write(tmp_path, flex({"type": "carousel", "contents": [bubble()] * 13}))
    with pytest.raises(RenderError, match=r"contents.contents: 13 bubbles, LINE takes 1 to 12"):
        renderer.render("p", "t", "line", "en", CONTEXT)
    problems = renderer.check("p", "t", "line", lambda _loc: CONTEXT)
    assert problems and "13 bubbles" in problems[0]


def test_a_template_that_breaks_the_rules_once_rendered_fails(tmp_path: Path) -> None:
    b = bubble()
    b["hero"] = {"type": "image", "url": "{{ url }}"}
    renderer = write(tmp_path, flex(b, alt="{{ customer.display_name * 100 }}"))
    with pytest.raises(RenderError) as err:
        renderer.render("p", "t", "line", "en", {**CONTEXT, "url": "http://a.jp/x"})
    assert "rendered" in err.value.reason
    assert "messages[0].altText: 2,000 characters, over LINE's 1,500" in err.value.reason
    assert "messages[0].contents.hero.url: an image URL must be https" in err.value.reason


def test_not_json_and_undefined_names(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "t" / "en"
    folder.mkdir(parents=True)
    (folder / "line.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RenderError, match=r"line\.json is not JSON"):
        Renderer(tmp_path).render("p", "t", "line", "en", CONTEXT)
    renderer = write(tmp_path, flex(bubble("{{ nobody.name }}")))
    with pytest.raises(
        RenderError, match=r"messages\[0\].contents.body.contents\[0\].text: undefined"
    ):
        renderer.render("p", "t", "line", "en", CONTEXT)


def test_the_shipped_rank_up_card_renders_in_both_locales() -> None:
    renderer = Renderer()
    context = {
        "trigger": {"to_rank": "Gold"},
        "customer": {"display_name": "山田 太郎様"},
        "loyalty": {"rank": "Silver", "benefits": {"Gold": ["送料無料", "ポイント2倍"]}},
    }
    for locale in ("ja", "en"):
        content = renderer.render(
            "rank-up-congratulations", "congratulations", "line", locale, context
        )
        assert isinstance(content, LineContent)
        (card,) = content.messages
        assert card["type"] == "flex" and card["contents"]["type"] == "bubble"
        assert "Gold" in card["altText"] and message_problems([card]) == []
        body = json.dumps(card, ensure_ascii=False)
        assert "送料無料\\nポイント2倍" in body


# --- the send ------------------------------------------------------------------------------
def test_a_flex_message_is_sent_with_its_objects() -> None:
    card = flex(bubble("Gold!"))
    card["quickReply"] = {
        "items": [
            {"type": "action", "action": {"type": "uri", "label": "Go", "uri": "https://a.jp"}}
        ]
    }
    http = FakeHttp(line_ok())
    LinePush(lambda: LINE_TOKEN, http).send(message("line", content=LineContent(messages=(card,))))
    (request,) = http.requests
    assert request["body"] == {"to": "U" + "0" * 32, "messages": [card]}


def test_an_invalid_message_is_never_sent() -> None:
    http = FakeHttp(line_ok())
    bad = LineContent(messages=(flex(bubble(), alt=None),))
    with pytest.raises(PermanentFailure, match="altText: required"):
        LinePush(lambda: LINE_TOKEN, http).send(message("line", content=bad))
    assert http.requests == []


def test_line_content_is_text_or_objects() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LineContent()
    with pytest.raises(ValueError, match="exactly one"):
        LineContent(text="x", messages=({"type": "text", "text": "x"},))


# --- multicast -----------------------------------------------------------------------------
def batch_message(i: int, content: LineContent, batch: str | None = None) -> Any:
    return message(
        "line",
        customer_id=f"c{i:04d}",
        address=f"U{i:032x}",
        content=content,
        execution="campaign-occurrence-1",
        step="send",
        batch=batch,
    )


def multicast_ok(n: int) -> list[Any]:
    return [HttpResponse(200, {"x-line-request-id": f"req-{i}"}, b"{}") for i in range(n)]


def test_identical_content_goes_in_multicasts_of_at_most_500() -> None:
    same = LineContent(messages=(flex(bubble("Sale!")),))
    messages = [batch_message(i, same) for i in range(1001)]
    messages.append(batch_message(2000, LineContent(text="only for you")))  # its own content
    http = FakeHttp(*multicast_ok(2), line_ok(), line_ok())
    outcomes = send_all({"line": LinePush(lambda: LINE_TOKEN, http)}, messages)
    # two multicasts of 500, then the last two alone (one recipient each: a push each):
    # 4 calls, not 1,002
    calls = [(r["url"].rsplit("/", 1)[-1], r["body"]["to"]) for r in http.requests]
    assert [(kind, len(to)) for kind, to in calls[:2]] == [("multicast", 500)] * 2
    assert calls[2:] == [("push", f"U{1000:032x}"), ("push", f"U{2000:032x}")]
    # each customer's outcome is its own (one ledger row each), every user id sent once
    assert len(outcomes) == len(messages) and all(isinstance(o, SendResult) for o in outcomes)
    users = [u for r in http.requests if r["url"].endswith("multicast") for u in r["body"]["to"]]
    assert sorted(users) == sorted(f"U{i:032x}" for i in range(1000))
    # one retry key per call
    keys = [r["headers"]["X-Line-Retry-Key"] for r in http.requests]
    assert len(set(keys)) == 4
    first = next(r for r in http.requests if r["url"].endswith("multicast"))
    assert first["body"]["messages"] == [flex(bubble("Sale!"))]


def test_a_retried_multicast_reuses_its_retry_key() -> None:
    same = LineContent(text="Sale!")
    messages = [batch_message(i, same) for i in range(3)]
    conflict = HttpResponse(409, {"x-line-accepted-request-id": "accepted-1"}, b"{}")
    http = FakeHttp(HttpResponse(503, {}, b"{}"), conflict)
    outcomes = send_all(
        {"line": LinePush(lambda: LINE_TOKEN, http)}, messages, sleep=lambda _: None
    )
    first, again = http.requests
    assert first["headers"]["X-Line-Retry-Key"] == again["headers"]["X-Line-Retry-Key"]
    assert [o.provider_message_id for o in outcomes] == ["accepted-1"] * 3  # type: ignore[union-attr]


def test_a_failed_multicast_fails_each_of_its_messages() -> None:
    same = LineContent(text="Sale!")
    messages = [batch_message(i, same) for i in range(2)]
    http = FakeHttp(HttpResponse(400, {}, b'{"message": "bad"}'))
    outcomes = send_all({"line": LinePush(lambda: LINE_TOKEN, http)}, messages)
    assert len(http.requests) == 1
    assert all(isinstance(o, PermanentFailure) for o in outcomes)


def test_personalised_content_is_pushed_one_by_one() -> None:
    messages = [batch_message(i, LineContent(text=f"Hi customer {i}")) for i in range(3)]
    http = FakeHttp(line_ok(), line_ok(), line_ok())
    send_all({"line": LinePush(lambda: LINE_TOKEN, http)}, messages)
    assert [r["url"].rsplit("/", 1)[-1] for r in http.requests] == ["push"] * 3
