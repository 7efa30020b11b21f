"""Rendering: Japanese and English, escaping, strictness, locale fallback, context."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from delivery_helpers import TEMPLATES, make_customer

from kizuna.delivery.content import EmailContent, LineContent, PushContent, SmsContent
from kizuna.delivery.coupons import Coupon
from kizuna.delivery.templates import (
    DEFAULT_ROOT,
    FilesRenderer,
    Renderer,
    RenderError,
    build_context,
    format_date,
    format_date_in,
    format_number,
    parse_date_text,
)
from kizuna.runtime.config import CustomConfig, LoyaltyConfig

COUPON = Coupon(
    code="KZ-ABCD-EFGH-JKMN", discount="10%", expires_at=datetime(2026, 1, 31, 15, 30, tzinfo=UTC)
)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def context(loyalty: LoyaltyConfig, **customer_fields: Any) -> dict[str, Any]:
    customer = make_customer(**customer_fields)
    return build_context(
        customer,
        program="welcome",
        step="s1",
        loyalty_config=loyalty,
        coupon=COUPON,
        recommendations=[{"name": "抹茶 <特選>", "url": "https://shop.example/p/1?a=1&b=2"}],
        unsubscribe_url="https://u.example/u?t=TOKEN",
    )


# --- Japanese and English, every channel ---------------------------------------------------
def test_japanese_email_renders_every_part(renderer: Renderer, loyalty: LoyaltyConfig) -> None:
    # given a Japanese customer with a coupon and a recommendation
    ctx = context(loyalty)
    # when the email is rendered
    msg = renderer.render("welcome", "greeting", "email", "ja", ctx)
    # then every part is there, in Japanese, with names in Japanese order and honorific
    assert isinstance(msg, EmailContent)
    assert msg.subject == "山田 花子様、Silver会員のご案内"
    assert "<p>山田 花子様</p>" in msg.html
    assert "ポイント残高: 12,345ポイント" in msg.html
    assert "あと80ポイントでGold会員です。" in msg.html
    assert "<li>3,000円以上のご注文で送料無料</li>" in msg.html  # the benefits in Japanese too
    # the coupon expiry is in the customer's time zone (15:30 UTC on the 31st is Feb 1 JST)
    assert "クーポン KZ-ABCD-EFGH-JKMN(10%引き)は2026年2月1日まで" in msg.html
    # HTML special characters in data are escaped in the HTML part, kept in the text part
    assert "抹茶 &lt;特選&gt;" in msg.html
    assert "https://shop.example/p/1?a=1&amp;b=2" in msg.html
    assert "- 抹茶 <特選> https://shop.example/p/1?a=1&b=2" in msg.text
    assert '<a href="https://u.example/u?t=TOKEN">unsubscribe</a>' in msg.html
    assert msg.text.startswith("山田 花子様")
    assert not msg.text.endswith("\n")


def test_english_email_renders(renderer: Renderer, loyalty: LoyaltyConfig) -> None:
    ctx = context(loyalty, locale="en", first_name="Taro", last_name="Yamada")
    msg = renderer.render("welcome", "greeting", "email", "en", ctx)
    assert isinstance(msg, EmailContent)
    assert msg.subject == "Taro, your Silver membership"
    assert "<p>Dear Taro,</p>" in msg.html
    assert "Use KZ-ABCD-EFGH-JKMN for 10% off until February 1, 2026." in msg.text


@pytest.mark.parametrize(
    ("locale", "sms", "push", "line"),
    [
        (
            "ja",
            "山田 花子様、あと80ポイントでGold会員です。",
            ("あと80ポイント", "Gold会員まであと少しです"),
            "山田 花子様\n\nGold会員まであと80ポイントです。",
        ),
        (
            "en",
            "Hi 花子, 80 points to Gold!",
            ("80 points to go", "Gold is within reach"),
            "Hi 花子, 80 points to Gold.",
        ),
    ],
)
def test_sms_push_line_render_in_both_languages(
    renderer: Renderer,
    loyalty: LoyaltyConfig,
    locale: str,
    sms: str,
    push: tuple[str, str],
    line: str,
) -> None:
    ctx = context(loyalty, locale=locale)
    sms_msg = renderer.render("welcome", "greeting", "sms", locale, ctx)
    push_msg = renderer.render("welcome", "greeting", "push", locale, ctx)
    line_msg = renderer.render("welcome", "greeting", "line", locale, ctx)
    assert sms_msg == SmsContent.of(sms)
    assert sms_msg.encoding == "UCS-2"  # both carry Japanese characters
    assert push_msg == PushContent(title=push[0], body=push[1])
    assert line_msg == LineContent(text=line)


def greeting_in_english(
    renderer: Renderer, loyalty: LoyaltyConfig, first_name: str, channel: str = "email"
) -> Any:
    """The welcome greeting, in English, to a customer called ``first_name``."""
    ctx = context(loyalty, locale="en", first_name=first_name)
    return renderer.render("welcome", "greeting", channel, "en", ctx)


def test_english_sms_without_japanese_is_gsm7(renderer: Renderer, loyalty: LoyaltyConfig) -> None:
    msg = greeting_in_english(renderer, loyalty, "Taro", "sms")
    assert isinstance(msg, SmsContent)
    assert (msg.text, msg.encoding, msg.segments) == ("Hi Taro, 80 points to Gold!", "GSM-7", 1)


# --- escaping and single-line parts --------------------------------------------------------
def test_customer_supplied_name_is_escaped_in_html_only(
    renderer: Renderer, loyalty: LoyaltyConfig
) -> None:
    # given a customer whose name is a script / when greeted
    msg = greeting_in_english(renderer, loyalty, "<script>alert(1)</script>")
    # then the HTML part carries it escaped, never as markup
    assert isinstance(msg, EmailContent)
    assert "<script>" not in msg.html
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt;," in msg.html
    # and the text parts carry it verbatim (text is not HTML)
    assert msg.text.startswith("Dear <script>alert(1)</script>,")
    assert msg.subject.startswith("<script>alert(1)</script>, your")


def test_newlines_in_data_never_break_a_subject_or_title(
    renderer: Renderer, loyalty: LoyaltyConfig
) -> None:
    # given a name carrying a header injection / when greeted by email and push
    name = "Taro\r\nBcc: evil@example.com"
    msg = greeting_in_english(renderer, loyalty, name)
    push = greeting_in_english(renderer, loyalty, name, "push")
    # then neither subject nor title breaks a line
    assert isinstance(msg, EmailContent)
    assert "\n" not in msg.subject and "\r" not in msg.subject
    assert msg.subject == "Taro Bcc: evil@example.com, your Silver membership"
    assert isinstance(push, PushContent)
    assert push.title == push.title.strip() and "\n" not in push.title


def test_empty_push_title_is_allowed(renderer: Renderer, loyalty: LoyaltyConfig) -> None:
    msg = renderer.render("broken", "notitle", "push", "ja", context(loyalty))
    assert msg == PushContent(title="", body="body only")


# --- failures are loud, never half-rendered ------------------------------------------------
@pytest.mark.parametrize(
    ("template", "channel", "reason"),
    [
        ("undefined", "sms", "undefined in sms.txt: 'dict object' has no attribute 'nickname'"),
        ("syntax", "sms", "syntax error at broken/syntax/ja/sms.txt.j2:"),
        ("sandbox", "sms", "sandbox refused in sms.txt"),
        ("mutate", "sms", "sandbox refused in sms.txt"),
        ("crash", "sms", "ZeroDivisionError in sms.txt"),
        ("missing", "email", "missing template broken/missing/ja/email.html.j2"),
        ("empty", "email", "email.subject rendered empty"),
        ("nowhere", "email", "no locale folder among ja"),
    ],
)
def test_broken_templates_raise_render_error(
    renderer: Renderer, loyalty: LoyaltyConfig, template: str, channel: str, reason: str
) -> None:
    with pytest.raises(RenderError) as caught:
        renderer.render("broken", template, channel, "ja", context(loyalty))
    err = caught.value
    assert (err.program, err.template, err.channel, err.locale) == (
        "broken",
        template,
        channel,
        "ja",
    )
    assert err.reason.startswith(reason), err.reason
    # the reason names the template, never the customer's data
    assert "花子" not in str(err) and "example.jp" not in str(err)


def test_unknown_channel_and_bad_names_are_render_errors(
    renderer: Renderer, loyalty: LoyaltyConfig
) -> None:
    with pytest.raises(RenderError, match="unknown channel"):
        renderer.render("welcome", "greeting", "fax", "ja", context(loyalty))
    with pytest.raises(RenderError, match="names are"):
        renderer.render("../etc", "greeting", "sms", "ja", context(loyalty))


# --- locales -------------------------------------------------------------------------------
def test_locale_falls_back_to_language_then_default(renderer: Renderer) -> None:
    assert renderer.resolve_locale("welcome", "greeting", "en-GB") == "en"
    assert renderer.resolve_locale("welcome", "greeting", "fr") == "ja"
    assert renderer.resolve_locale("welcome", "greeting", None) == "ja"
    assert renderer.resolve_locale("welcome", "greeting", "../../x") == "ja"


def test_missing_locale_renders_the_default(renderer: Renderer, loyalty: LoyaltyConfig) -> None:
    # given a French-speaking customer and templates in ja and en only
    ctx = context(loyalty, locale="fr")
    msg = renderer.render("welcome", "greeting", "sms", "fr", ctx)
    # then the default locale (ja) is rendered
    assert isinstance(msg, SmsContent) and "ポイントで" in msg.text


@pytest.mark.parametrize(("locale", "default"), [("ko", "ja"), ("fr-FR", "ja"), ("ja", "en")])
def test_a_message_in_the_default_locale_is_written_wholly_in_its_language(
    loyalty: LoyaltyConfig, tmp_path: Path, locale: str, default: str
) -> None:
    """A Korean customer of the shipped Japanese coupon email read "花子", "有効期限:
    December 21, 2026" and an English footer in Japanese sentences."""
    # given a customer whose language no folder of the shipped coupon template has (an
    # English-only copy of it for the English shop)
    shutil.copytree(DEFAULT_ROOT / "_base", tmp_path / "_base")
    coupon = "second-purchase-coupon/coupon"
    shutil.copytree(DEFAULT_ROOT / coupon / default, tmp_path / coupon / default)
    ctx = build_context(
        make_customer(locale=locale),
        program="second-purchase-coupon",
        step="coupon",
        loyalty_config=loyalty,
        coupon=COUPON,
        unsubscribe_url="https://u.example/u?t=TOKEN",
    )
    # when it is rendered from the default locale's folder
    msg = Renderer(tmp_path, default_locale=default).render(
        "second-purchase-coupon", "coupon", "email", locale, ctx
    )
    assert isinstance(msg, EmailContent)
    # then names, dates, footer and lang are that folder's language throughout
    if default == "ja":
        assert msg.text.startswith("山田 花子様\n")
        assert "有効期限: 2026年2月1日" in msg.text
        assert "配信停止: https://u.example/u?t=TOKEN" in msg.text
        assert '<html lang="ja">' in msg.html and "January" not in msg.html + msg.text
    else:
        assert msg.text.startswith("Hi 花子,\n") and "様" not in msg.subject + msg.text
        assert "Valid until February 1, 2026" in msg.text
        assert "Unsubscribe: https://u.example/u?t=TOKEN" in msg.text
        assert '<html lang="en">' in msg.html and "配信停止" not in msg.html


def test_default_locale_is_configurable(loyalty: LoyaltyConfig) -> None:
    renderer = Renderer(TEMPLATES, default_locale="en")
    msg = renderer.render("welcome", "greeting", "push", "fr", context(loyalty, locale="fr"))
    assert msg == PushContent(title="80 points to go", body="Gold is within reach")


def test_validator_queries(renderer: Renderer) -> None:
    assert renderer.locales("welcome", "greeting") == ["en", "ja"]
    assert renderer.locales("welcome", "nope") == []
    assert renderer.parts_missing("welcome", "greeting", "email") == []
    assert renderer.parts_missing("broken", "missing", "email") == [
        "ja/email.html.j2",
        "ja/email.txt.j2",
    ]
    assert renderer.parts_missing("broken", "nowhere", "line") == ["ja/line.txt.j2"]
    with pytest.raises(ValueError, match="unknown channel"):
        renderer.parts_missing("welcome", "greeting", "fax")


def test_a_template_without_the_default_locale_is_a_problem(tmp_path: Path) -> None:
    # given a template written in English only, in a shop whose default locale is ja
    folder = tmp_path / "p" / "hello" / "en"
    folder.mkdir(parents=True)
    (folder / "sms.txt.j2").write_text("Hello")
    files = FilesRenderer({"q/hello/en/sms.txt.j2": "Hello"}, tmp_path)
    for r, program in ((Renderer(tmp_path), "p"), (files, "q")):
        # then validation says so: a ja customer (and any other but en) falls back to ja,
        # which would fail at send time ("no locale folder among ja")
        assert r.default_locale_problem(program, "hello") == (
            "template 'hello' needs the default locale 'ja' (has en)"
        )
        with pytest.raises(RenderError, match="no locale folder among ja"):
            r.resolve_locale(program, "hello", "ja")
    # and with en as the default locale, or with no folder at all (every part missing), none
    assert Renderer(tmp_path, default_locale="en").default_locale_problem("p", "hello") is None
    files_en = FilesRenderer({"q/hello/en/sms.txt.j2": "Hello"}, tmp_path, default_locale="en")
    assert files_en.default_locale_problem("q", "hello") is None
    assert Renderer(tmp_path).default_locale_problem("p", "nowhere") is None


def test_an_sms_or_push_over_what_the_provider_takes_fails_to_render(tmp_path: Path) -> None:
    # given an SMS of 1,601 characters (SNS sends at most 1,600) and a push whose body is
    # 3,001 bytes (APNs and FCM take 4 KB with the push's data)
    folder = tmp_path / "p" / "long" / "ja"
    folder.mkdir(parents=True)
    (folder / "sms.txt.j2").write_text("{{ 'a' * n }}")
    (folder / "push.title.j2").write_text("")
    (folder / "push.body.j2").write_text("{{ 'あ' * n }}")
    renderer = Renderer(tmp_path)
    # then each fails to render, saying why (validation renders with a sample, and a send
    # records render_error instead of a provider refusal for every customer)
    with pytest.raises(RenderError, match="an SMS holds at most 1,600 characters"):
        renderer.render("p", "long", "sms", "ja", {"n": 1601})
    with pytest.raises(RenderError, match="title and body hold at most 3,000 bytes"):
        renderer.render("p", "long", "push", "ja", {"n": 1001})  # 3,003 bytes
    # and at the limits they render
    sms = renderer.render("p", "long", "sms", "ja", {"n": 1600})
    assert isinstance(sms, SmsContent) and len(sms.text) == 1600
    push = renderer.render("p", "long", "push", "ja", {"n": 1000})
    assert isinstance(push, PushContent) and len(push.body.encode()) == 3000


# --- the shared layouts in the repository's templates/_base ----------------------------------
def test_repository_base_layouts_render_with_footer(tmp_path: Path, loyalty: LoyaltyConfig) -> None:
    # given a program whose email extends the repository's shared layouts
    shutil.copytree(DEFAULT_ROOT / "_base", tmp_path / "_base")
    folder = tmp_path / "demo" / "hello" / "ja"
    folder.mkdir(parents=True)
    (folder / "email.subject.j2").write_text("こんにちは {{ customer.display_name }}\n")
    (folder / "email.html.j2").write_text(
        '{% extends "_base/email.html.j2" %}{% block content %}'
        "<p>{{ customer.display_name }}</p>{% endblock %}"
    )
    (folder / "email.txt.j2").write_text(
        '{% extends "_base/email.txt.j2" %}{% block content %}{{ customer.display_name }}{% endblock %}'
    )
    ctx = context(loyalty, first_name="<b>花子</b>")
    # when rendered
    msg = Renderer(tmp_path).render("demo", "hello", "email", "ja", ctx)
    # then the layout wraps the content, escapes it, and carries the unsubscribe link
    assert isinstance(msg, EmailContent)
    assert msg.html.startswith("<!DOCTYPE html>")
    assert '<html lang="ja">' in msg.html
    assert "<p>山田 &lt;b&gt;花子&lt;/b&gt;様</p>" in msg.html
    assert 'href="https://u.example/u?t=TOKEN"' in msg.html and "配信停止はこちら" in msg.html
    assert "配信停止: https://u.example/u?t=TOKEN" in msg.text


@pytest.mark.parametrize(
    ("locale", "listed"),
    [("ja", "送料無料"), ("ja-JP", "送料無料"), ("en", "Free shipping"), ("en-GB", "Free shipping"),
     ("ko", "送料無料")],
)  # fmt: skip
def test_the_rank_benefits_are_listed_in_the_messages_language(
    loyalty: LoyaltyConfig, locale: str, listed: str
) -> None:
    """The Japanese rank mails and LINE cards listed "Birthday coupon", "Free shipping"."""
    # given a Gold customer reading ``locale`` (ko: no folder, the default locale's text)
    ctx = build_context(
        make_customer(locale=locale, rank="Gold", next_rank="Platinum"),
        program="points-to-next-rank",
        step="nudge",
        loyalty_config=loyalty,
    )
    # then every list of benefits is in the message's language
    assert listed in ctx["loyalty"]["rank_benefits"]
    assert listed in ctx["loyalty"]["benefits"]["Gold"]
    other = "Free shipping" if listed == "送料無料" else "送料無料"
    assert other not in repr(ctx["loyalty"])
    # and the shipped nudge writes them so
    msg = Renderer(DEFAULT_ROOT).render("points-to-next-rank", "nudge", "email", locale, ctx)
    assert isinstance(msg, EmailContent) and f"- {listed}" in msg.text


# --- context ---------------------------------------------------------------------------------
def test_context_has_no_contact_details_and_falls_back_on_names(loyalty: LoyaltyConfig) -> None:
    customer = make_customer(first_name=None, last_name=None, rank="Gold", next_rank="Platinum")
    ctx = build_context(customer, program="p", step="s", loyalty_config=loyalty)
    flat = repr(ctx)
    assert "hanako@example.jp" not in flat and "+819012345678" not in flat
    assert "email" not in ctx["customer"] and "phone" not in ctx["customer"]
    assert ctx["customer"]["display_name"] == "お客様"
    assert ctx["loyalty"]["rank_benefits"] == ["誕生日クーポン", "送料無料", "会員限定セール"]
    assert ctx["loyalty"]["next_rank_benefits"][-1] == "専任コンシェルジュ"
    assert ctx["coupon"] is None and ctx["recommendations"] == [] and ctx["unsubscribe_url"] is None
    assert (ctx["program"], ctx["step"], ctx["locale"]) == ("p", "s", "ja")

    english = build_context(
        make_customer(first_name=None, last_name=None, locale="en"),
        program="p",
        step="s",
        loyalty_config=loyalty,
    )
    assert english["customer"]["display_name"] == "Customer"


def test_context_has_every_declared_attribute_personal_ones_included(
    loyalty: LoyaltyConfig,
) -> None:
    # Given declarations, one of them personal data, and a customer with two of them set
    # (and a value of an attribute no longer declared)
    custom = CustomConfig.model_validate(
        {
            "attributes": [
                {"name": "nickname", "type": "string", "personal": True},
                {"name": "shoe_size", "type": "number"},
                {"name": "newsletter", "type": "boolean"},
            ]
        }
    )
    customer = make_customer().model_copy(
        update={"attributes": {"nickname": "ハナ", "shoe_size": Decimal("24.5"), "old": "x"}}
    )
    # When the context is built with them
    ctx = build_context(customer, program="p", step="s", loyalty_config=loyalty, custom=custom)
    # Then the template reads each declared attribute (unset: None), undeclared ones not
    assert ctx["customer"]["attributes"] == {
        "nickname": "ハナ",
        "shoe_size": Decimal("24.5"),
        "newsletter": None,
    }
    # and a template addresses the customer with it
    source = "{{ customer.attributes.nickname }}さん{% if not customer.attributes.newsletter %}、"
    source += "ニュースレターはいかがですか{% endif %}"
    renderer = FilesRenderer({"p/t/ja/line.txt.j2": source}, TEMPLATES)
    message = renderer.render("p", "t", "line", "ja", ctx)
    assert isinstance(message, LineContent)
    assert message.text == "ハナさん、ニュースレターはいかがですか"
    # without declarations there is nothing to read
    plain = build_context(customer, program="p", step="s", loyalty_config=loyalty)
    assert plain["customer"]["attributes"] == {}


def test_context_extra_cannot_override_core_keys(loyalty: LoyaltyConfig) -> None:
    ctx = build_context(
        make_customer(),
        program="p",
        step="s",
        loyalty_config=loyalty,
        extra={"order_id": "o-1", "customer": {"email": "leak@example.com"}},
    )
    assert ctx["order_id"] == "o-1"
    assert "email" not in ctx["customer"]


def test_filters() -> None:
    assert format_number(1234567) == "1,234,567"
    assert format_number(None) == ""
    assert format_date(datetime(2026, 3, 9, tzinfo=UTC), "ja") == "2026年3月9日"
    assert format_date(datetime(2026, 3, 9, tzinfo=UTC), "en-US") == "March 9, 2026"


@pytest.mark.parametrize(
    ("text", "locale", "zone", "expected"),
    [
        # a trigger's time as Kizuna writes it (UTC): its date in the customer's zone
        ("2026-12-31T10:00:00Z", "ja", "Asia/Tokyo", "2026年12月31日"),
        ("2026-12-31T15:30:00.123456Z", "ja", "Asia/Tokyo", "2027年1月1日"),
        ("2026-12-31T15:30:00Z", "en", "Europe/London", "December 31, 2026"),
        ("2027-01-01T02:00:00+09:00", "en-US", "America/New_York", "December 31, 2026"),
        ("2026-12-31T23:30-05:00", "ja", "Asia/Tokyo", "2027年1月1日"),
        ("2026-12-31T15:30:00.123456789Z", "en", "Asia/Tokyo", "January 1, 2027"),
        # no zone known: the date its offset gives
        ("2026-12-31T23:30:00+09:00", "en", None, "December 31, 2026"),
        # a calendar date (a birthday's trigger.date) is the date written, in any zone
        ("2026-12-31", "ja", "America/Los_Angeles", "2026年12月31日"),
        ("2026-12-31", "en", "Pacific/Kiritimati", "December 31, 2026"),
    ],
)
def test_date_takes_iso_text_in_the_customers_zone(
    text: str, locale: str, zone: str | None, expected: str
) -> None:
    assert format_date_in(text, locale, zone) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-13-01", "no calendar date"),
        ("2026-02-30", "no calendar date"),
        ("2026-12-31T25:00:00Z", "no calendar date or time"),
        ("2026-12-31T10:00:00+24:00", "no calendar date or time"),
        ("2026-12-31T10:00", "without a UTC offset"),
        ("2026-12-31T10:00:00", "without a UTC offset"),
        ("2026-12-31T10:00:00+0900", "without a UTC offset"),
        ("2026-12-31T10:00:00z", "without a UTC offset"),
        ("2026-12-31T10:00:00Z ", "without a UTC offset"),
        ("2026-12-31 10:00:00+09:00", "no ISO 8601 date or time"),
        ("20261231", "no ISO 8601 date or time"),
        ("1798675200", "no ISO 8601 date or time"),
        ("２０２６-１２-３１", "no ISO 8601 date or time"),
        ("Gold", "no ISO 8601 date or time"),
        ("", "no ISO 8601 date or time"),
    ],
)
def test_date_refuses_text_that_is_no_iso_date_or_time_quoting_none_of_it(
    value: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        format_date_in(value, "ja", "Asia/Tokyo")
    assert value.strip() == "" or value.strip() not in str(caught.value)
    with pytest.raises(ValueError):
        parse_date_text(value)


@pytest.mark.parametrize("value", [1798675200, 1.5, True, ["2026-12-31"]])
def test_date_refuses_a_number_or_a_list_naming_its_type_only(value: object) -> None:
    with pytest.raises(TypeError, match=f"not {type(value).__name__}$"):
        format_date_in(value, "en", "Asia/Tokyo")  # type: ignore[arg-type]


def test_a_templates_date_filter_takes_a_triggers_time_in_the_messages_locale_and_zone(
    tmp_path: Path, loyalty: LoyaltyConfig
) -> None:
    # given a template showing a trigger's expiry, and customers in Tokyo and in New York
    for loc, copy in (
        ("ja", "{{ trigger.expires_at|date }}に失効"),
        ("en", "expire on {{ trigger.expires_at|date }}"),
    ):
        folder = tmp_path / "p" / "t" / loc
        folder.mkdir(parents=True)
        (folder / "sms.txt.j2").write_text(copy, encoding="utf-8")
    renderer = Renderer(tmp_path)
    trigger = {"type": "customer.points_expiring", "expires_at": "2026-12-31T15:00:00Z"}

    def render(**customer: Any) -> str:
        ctx = build_context(
            make_customer(**customer),
            program="p",
            step="s",
            loyalty_config=loyalty,
            extra={"trigger": trigger},
        )
        msg = renderer.render("p", "t", "sms", ctx["locale"], ctx)
        assert isinstance(msg, SmsContent)
        return msg.text

    # then each reads the date in their own zone, written as their locale writes a date
    assert render(locale="ja", time_zone="Asia/Tokyo") == "2027年1月1日に失効"
    assert render(locale="en", time_zone="America/New_York") == "expire on December 31, 2026"
    # and a locale given to the filter still wins
    (tmp_path / "p" / "t" / "en" / "sms.txt.j2").write_text(
        "{{ trigger.expires_at|date('ja') }}", encoding="utf-8"
    )
    renderer = Renderer(tmp_path)
    assert render(locale="en", time_zone="America/New_York") == "2026年12月31日"


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        ("2026-12-31T10:00", "ValueError in sms.txt: |date: a time without a UTC offset"),
        ("not a date 鈴木", "ValueError in sms.txt: |date: text that is no ISO 8601 date"),
        (1798675200, "TypeError in sms.txt: |date takes a date, a datetime or ISO 8601 text"),
    ],
)
def test_a_trigger_value_date_cannot_read_fails_the_render_naming_none_of_it(
    tmp_path: Path, loyalty: LoyaltyConfig, expires_at: object, reason: str
) -> None:
    folder = tmp_path / "p" / "t" / "ja"
    folder.mkdir(parents=True)
    (folder / "sms.txt.j2").write_text("{{ trigger.expires_at|date }}", encoding="utf-8")
    ctx = build_context(
        make_customer(),
        program="p",
        step="s",
        loyalty_config=loyalty,
        extra={"trigger": {"type": "x", "expires_at": expires_at}},
    )
    with pytest.raises(RenderError) as caught:
        Renderer(tmp_path).render("p", "t", "sms", "ja", ctx)
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert str(expires_at) not in caught.value.reason


def test_date_on_a_name_the_context_lacks_is_still_undefined(
    tmp_path: Path, loyalty: LoyaltyConfig
) -> None:
    folder = tmp_path / "p" / "t" / "ja"
    folder.mkdir(parents=True)
    (folder / "sms.txt.j2").write_text("{{ trigger.expires_ta|date }}", encoding="utf-8")
    ctx = build_context(
        make_customer(), program="p", step="s", loyalty_config=loyalty, extra={"trigger": {}}
    )
    with pytest.raises(RenderError, match=r"undefined in sms\.txt: 'dict object' has no attribute"):
        Renderer(tmp_path).render("p", "t", "sms", "ja", ctx)


def test_a_failure_quoting_the_customers_data_names_none_of_it(
    tmp_path: Path, loyalty: LoyaltyConfig
) -> None:
    # given a template that looks a customer's value up (it passes with the sample 山田)
    folder = tmp_path / "p" / "t" / "ja"
    folder.mkdir(parents=True)
    (folder / "sms.txt.j2").write_text(
        '{% set title = {"山田": "山田様"} %}{{ title[customer.last_name] }}'
        "{{ customer.nickname }} 森林公園へようこそ"
    )
    renderer = Renderer(tmp_path)
    # when it is rendered for 鈴木, and for 森 (a character of the copy: 森林公園)
    for name in ("鈴木", "森"):
        with pytest.raises(RenderError) as caught:
            renderer.render("p", "t", "sms", "ja", context(loyalty, last_name=name))
        # then the reason says what failed and where, quoting nothing of the customer's data
        reason = caught.value.reason
        assert reason.startswith("undefined in sms.txt:") and name not in reason, reason
        assert "not shown" in reason
    # a name the template itself wrote is still told
    (folder / "sms.txt.j2").write_text("{{ customer.nickname }}")
    with pytest.raises(RenderError) as caught:
        Renderer(tmp_path).render("p", "t", "sms", "ja", context(loyalty, last_name="鈴木"))
    assert caught.value.reason == "undefined in sms.txt: 'dict object' has no attribute 'nickname'"


@pytest.mark.parametrize(
    ("short", "said"), [(1, "1 point"), (80, "80 points"), (1000, "1,000 points")]
)
def test_the_english_rank_nudge_says_point_for_one(
    loyalty: LoyaltyConfig, short: int, said: str
) -> None:
    """The shipped nudge read "only 1 points to Gold" one point short."""
    ctx = context(loyalty, points_to_next_rank=short, locale="en")
    renderer = Renderer(DEFAULT_ROOT)
    parts: list[str] = []
    for channel in ("email", "sms", "push", "line"):
        msg = renderer.render("points-to-next-rank", "nudge", channel, "en", ctx)
        parts += [str(v) for v in msg.model_dump().values() if isinstance(v, str)]
    text = "\n".join(parts)
    assert said in text
    assert "1 points" not in text.replace("1,000 points", "")


@pytest.mark.parametrize(("currency", "total"), [("JPY", "12,800円"), ("USD", "12,800 USD")])
def test_the_japanese_order_confirmation_writes_yen_as_japanese_does(
    loyalty: LoyaltyConfig, currency: str, total: str
) -> None:
    """It read "合計 12,800 JPY" in every Japanese order confirmation."""
    ctx = build_context(
        make_customer(),
        program="transactional",
        step="order_confirmation",
        loyalty_config=loyalty,
        extra={"data": {"order_id": "A-10023", "total": 12800, "currency": currency}},
    )
    renderer = Renderer(DEFAULT_ROOT)
    for channel in ("email", "sms", "card"):
        msg = renderer.render("transactional", "order_confirmation", channel, "ja", ctx)
        text = " ".join(str(v) for v in msg.model_dump().values())
        assert f"合計 {total}" in text, (channel, text)
        if currency == "JPY":
            assert "JPY" not in text


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_cart_email_text_part_lists_the_recommendations_its_html_shows(
    loyalty: LoyaltyConfig, locale: str
) -> None:
    """A client showing the text part (or a reader who prefers it) lost the recommendations."""
    ctx = build_context(
        make_customer(locale=locale),
        program="cart-abandonment",
        step="email",
        loyalty_config=loyalty,
        recommendations=[
            {"product_id": "t1", "name": "煎茶 朝露", "url": "https://s.example/p/t1"}
        ],
        unsubscribe_url="https://u.example/u?t=TOKEN",
    )
    msg = Renderer(DEFAULT_ROOT).render("cart-abandonment", "cart_email", "email", locale, ctx)
    assert isinstance(msg, EmailContent)
    assert 'href="https://s.example/p/t1"' in msg.html
    assert "- 煎茶 朝露 https://s.example/p/t1" in msg.text
