"""Pinpoint template fixtures: checked against botocore's Pinpoint model, translated to
Kizuna's layout and rendered in both locales by Kizuna's renderer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from migrate_helpers import FIXTURES, context, fixture

from kizuna.delivery.templates import FilesRenderer, RenderError
from kizuna_tools.migrate.shapes import check
from kizuna_tools.migrate.templates import (
    Kind,
    TemplateResult,
    group_templates,
    split_locale,
    template_files,
    template_name,
    translate_template,
    write_templates,
)

SHAPES = {
    "email": "EmailTemplateResponse",
    "sms": "SMSTemplateResponse",
    "push": "PushNotificationTemplateResponse",
}
TEMPLATE_FILES = sorted((FIXTURES / "templates").glob("*/*.json"))
DOC_EXAMPLES = sorted((FIXTURES / "docs-examples" / "templates").glob("*/*.json"))
# what the migration declares for the fixture project's custom data (mdata's inference)
ATTRIBUTES: dict[str, Any] = {
    "membership_tier": "Gold",
    "favorite_store": "Ginza",
    "interests": ["tea", "teaware"],
    "newsletter_opt_in": False,
    "lifetime_spend": 62000,
    "orders_last90_days": 3,
    "promo_banner": "<b>Free shipping</b>",
    "city": "新宿",
}


def declared() -> set[str]:
    """Every attribute the fixture templates read: what the migration declares."""
    return {name for r in translated() for name in r.attributes}


def load(path: Path) -> tuple[Kind, Mapping[str, Any]]:
    kind = path.parent.name
    assert kind in SHAPES
    return kind, json.loads(path.read_text(encoding="utf-8"))  # type: ignore[return-value]


def translated(paths: list[Path] = TEMPLATE_FILES) -> list[TemplateResult]:
    results = []
    for path in paths:
        kind, doc = load(path)
        results.append(translate_template(kind, path.stem, doc))
    return results


# --- the fixtures are Pinpoint's shapes --------------------------------------------------------
@pytest.mark.parametrize("path", TEMPLATE_FILES + DOC_EXAMPLES, ids=lambda p: p.stem)
def test_template_fixture_is_pinpoints_shape(path: Path) -> None:
    kind, doc = load(path)
    (key,) = doc
    assert key == SHAPES[kind]
    assert check(doc[key], SHAPES[kind]) == []


def test_the_shape_check_refuses_a_field_pinpoint_never_had() -> None:
    doc = fixture("templates/email/Welcome_ja.json")["EmailTemplateResponse"]
    (problem,) = check({**doc, "HTMLPart": "<p>x</p>"}, "EmailTemplateResponse")
    assert problem.startswith("$: EmailTemplateResponse has no member 'HTMLPart' (it has: ")
    assert "HtmlPart" in problem  # the member it meant
    push = fixture("templates/push/WishlistReminder.json")["PushNotificationTemplateResponse"]
    bad = {**push, "Default": {**push["Default"], "Action": "OPEN"}}
    assert check(bad, "PushNotificationTemplateResponse") == [
        "$.Default.Action: 'OPEN' is not one of OPEN_APP, DEEP_LINK, URL"
    ]


def test_fixtures_hold_six_templates_in_two_locales() -> None:
    groups, notes = group_templates(translated())
    paired = {t: sorted({r.locale for r in rs}) for t, rs in groups.items()}
    assert paired == {
        "app_comeback": ["ja"],
        "points_reminder": ["en", "ja"],
        "welcome": ["en", "ja"],
        "winter_sale": ["en", "ja"],
        "winter_sale_urgent": ["en", "ja"],
        "wishlist_reminder": ["en", "ja"],
    }
    unpaired = [n for n in notes if "no pair" in n.message]
    assert [(n.subject, n.level) for n in unpaired] == [
        ("push template 'AppComeback_ja'", "decision")
    ]


# --- locales -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "tags", "expected"),
    [
        ("welcome_ja", {}, ("welcome", "ja", "name")),
        ("Welcome-en", {}, ("Welcome", "en", "name")),
        ("welcome_en_US", {}, ("welcome", "en", "name")),
        ("WinterSale", {"locale": "ja"}, ("WinterSale", "ja", "tag")),
        ("WinterSale_ja", {"Locale": "ja_JP"}, ("WinterSale", "ja", "tag")),
        ("Sale_en", {"locale": "ja"}, ("Sale_en", "ja", "tag")),  # the tag wins
        ("promo_ja", {"language": "ja"}, ("promo", "ja", "tag")),
        ("points_xx", {}, ("points_xx", "ja", "default")),  # xx is no language
        ("Newsletter", {}, ("Newsletter", "ja", "default")),
    ],
)
def test_locale_convention(name: str, tags: dict[str, str], expected: tuple[str, str, str]) -> None:
    assert split_locale(name, tags) == expected


def test_template_names_are_kizuna_names() -> None:
    assert template_name("WinterSaleUrgent") == "winter_sale_urgent"
    assert template_name("2024 Sale!") == "a_2024_sale"
    assert template_name("x" * 60) == "x" * 40


def test_two_templates_for_the_same_files_is_an_error() -> None:
    a = translate_template("sms", "promo_ja", {"Body": "a", "TemplateType": "SMS"})
    b = translate_template("sms", "promo-ja", {"Body": "b", "TemplateType": "SMS"})
    groups, notes = group_templates([a, b])
    assert groups == {"promo": [a]}
    assert [n.level for n in notes] == ["error"] and "'promo_ja'" in notes[0].message


def test_a_template_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="SMSTemplateResponse is not a email template"):
        translate_template("email", "x", {"SMSTemplateResponse": {"TemplateType": "SMS"}})


# --- files -------------------------------------------------------------------------------------
def test_files_follow_kizunas_layout(tmp_path: Path) -> None:
    results = [r for r in translated() if r.template == "welcome"]
    written = write_templates(tmp_path, "welcome-series", results)
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert rel == [
        f"templates/welcome-series/welcome/{loc}/email.{part}.j2"
        for loc in ("en", "ja")
        for part in ("html", "subject", "txt")
    ]
    renderer = FilesRenderer({}, root=tmp_path / "templates")
    assert renderer.locales("welcome-series", "welcome") == ["en", "ja"]
    assert renderer.parts_missing("welcome-series", "welcome", "email") == []


# --- rendering in both locales -----------------------------------------------------------------
@pytest.fixture(scope="module")
def renderer() -> FilesRenderer:
    return FilesRenderer(template_files("p", translated()))


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize(
    ("template", "channel"),
    [
        ("welcome", "email"),
        ("winter_sale", "email"),
        ("winter_sale_urgent", "email"),
        ("points_reminder", "sms"),
        ("wishlist_reminder", "push"),
        ("app_comeback", "push"),
    ],
)
def test_every_fixture_renders_in_both_locales(
    renderer: FilesRenderer, template: str, channel: str, locale: str
) -> None:
    # with every attribute, and with none (a customer Pinpoint had no data for)
    for attrs in (ATTRIBUTES, {}):
        message = renderer.render(
            "p", template, channel, locale, context(locale, attrs, declared())
        )
        assert message.channel == channel


def test_welcome_renders_the_customers_data_in_each_locale(renderer: FilesRenderer) -> None:
    ja = renderer.render("p", "welcome", "email", "ja", context("ja", ATTRIBUTES, declared()))
    en = renderer.render("p", "welcome", "email", "en", context("en", ATTRIBUTES, declared()))
    assert ja.subject == "花子さん、ようこそ"  # type: ignore[union-attr]
    assert "<p>山田 花子様</p>" in ja.html  # type: ignore[union-attr]
    assert "<li>tea</li>" in ja.html and "会員ランク: Gold" in ja.text  # type: ignore[union-attr]
    assert en.subject == "Welcome, Hanako!"  # type: ignore[union-attr]
    assert "<li>0. tea</li>" in en.html and "<li>1. teaware</li>" in en.html  # type: ignore[union-attr]
    assert "<b>Free shipping</b>" in en.html  # the raw {{{ }}} banner  # type: ignore[union-attr]
    # no TextPart in Pinpoint: made from the HTML, without its tags
    assert "<" not in en.text and "Your tier: Gold" in en.text  # type: ignore[union-attr]
    assert "Free shipping" in en.text  # type: ignore[union-attr]
    assert "0. tea" in en.text  # type: ignore[union-attr]


def test_defaults_apply_for_a_customer_without_data(renderer: FilesRenderer) -> None:
    ctx = context("en", {}, declared(), first_name=None)
    en = renderer.render("p", "welcome", "email", "en", ctx)
    assert en.subject == "Welcome, there!"  # type: ignore[union-attr]
    assert "Your first order starts your membership." in en.html  # type: ignore[union-attr]
    assert "Your store: our online store" in en.html  # type: ignore[union-attr]
    sms = renderer.render("p", "points_reminder", "sms", "en", ctx)
    assert sms.text == "Hi there,  orders in 90 days."  # type: ignore[union-attr]


def test_helpers_in_fixtures(renderer: FilesRenderer) -> None:
    gold = renderer.render("p", "winter_sale", "email", "ja", context("ja", ATTRIBUTES, declared()))
    assert gold.subject == "冬のお茶セール (ゴールド会員先行)"  # type: ignore[union-attr]
    assert "累計 62000 円" in gold.html and "ニュースレターの登録" in gold.html  # type: ignore[union-attr]
    assert "<p>新宿 のお客様へ</p>" in gold.html  # type: ignore[union-attr]
    other = renderer.render(
        "p", "winter_sale", "email", "ja", context("ja", {"membership_tier": "Silver"}, declared())
    )
    assert other.subject == "冬のお茶セール"  # type: ignore[union-attr]
    sms = renderer.render(
        "p", "points_reminder", "sms", "ja", context("ja", ATTRIBUTES, declared())
    )
    assert sms.text == "花子様 直近90日のご注文は3件です。次回ご注文でポイント2倍!"  # type: ignore[union-attr]


def test_push_takes_default_and_reports_what_kizuna_push_lacks() -> None:
    (result,) = translated([FIXTURES / "templates/push/WishlistReminder.json"])
    assert result.locale == "ja" and result.locale_source == "tag"
    assert set(result.files) == {"ja/push.title.j2", "ja/push.body.j2"}
    dropped = " ".join(n.message for n in result.notes if n.level == "dropped")
    assert "Default.Action" in dropped and "Default.Url" in dropped
    assert "GCM.ImageUrl" in dropped and "GCM.Sound" in dropped
    (apns,) = translated([FIXTURES / "templates/push/AppComeback_ja.json"])
    assert any("taken from APNS" in n.message for n in apns.notes)
    assert any("APNS.MediaUrl" in n.message for n in apns.notes)


def test_the_location_city_is_the_declared_city_attribute() -> None:
    # WinterSale prints {{Location.City}}: the attribute the migration declares, no TODO
    (result,) = translated([FIXTURES / "templates/email/WinterSale_en.json"])
    assert result.todos == []
    assert result.attributes["city"] == "Location.City"
    html = result.files["en/email.html.j2"]
    assert "For our customers in {{ customer.attributes.city if " in html
    assert not [n for n in result.notes if n.level == "decision"]


def test_untranslatable_variables_are_listed_with_their_part_and_line() -> None:
    source = "<p>Hi</p>\n<p>{{Location.PostalCode}}</p>"
    email = {"TemplateType": "EMAIL", "Subject": "s", "HtmlPart": source, "TextPart": "Hi"}
    doc = {"EmailTemplateResponse": email}
    result = translate_template("email", "zip_en", doc)
    assert [(t.part, t.line, t.source) for t in result.todos] == [
        ("email.html", 2, "{{Location.PostalCode}}")
    ]
    assert "{# TODO(migrate): location data" in result.files["en/email.html.j2"]
    decisions = [n for n in result.notes if n.level == "decision"]
    assert any("{{Location.PostalCode}}" in n.message for n in decisions)


def test_raw_html_is_a_decision_a_person_makes() -> None:
    # customer data printed as HTML: a campaign using it is held as a draft until decided
    (result,) = translated([FIXTURES / "templates/email/Welcome_en.json"])
    decisions = [n for n in result.notes if n.level == "decision" and "| safe" in n.message]
    assert len(decisions) == 1 and "{{{Attributes.PromoBanner}}}" in decisions[0].message
    assert result.attributes["promo_banner"] == "Attributes.PromoBanner"


def test_user_guide_examples_translate_and_render() -> None:
    results = translated(DOC_EXAMPLES)
    files = template_files("p", results)
    renderer = FilesRenderer(files)
    ctx = context(
        "en", {"activity": "half marathon", "personal_record": "1:42:17"}, first_name="Sofia"
    )
    msg = renderer.render("p", "user_guide_personalizing", "email", "en", ctx)
    assert msg.text == "Hi Sofia, congratulations on your new half marathon record of 1:42:17!"  # type: ignore[union-attr]
    msg = renderer.render(
        "p", "user_guide_helpers", "email", "en", context("en", {"favorite_colors": ["red"]})
    )
    assert msg.html == "<ul><li>red</li></ul>\nDear Yamada"  # type: ignore[union-attr]
    empty = renderer.render(
        "p", "user_guide_helpers", "email", "en", context("en", {}, declared(), last_name=None)
    )
    assert empty.html == "<ul>You have no favorite colors.</ul>\nDear customer"  # type: ignore[union-attr]


def test_a_missing_subject_is_reported_and_kizuna_refuses_to_send_it() -> None:
    result = translate_template(
        "email", "nosubject_en", {"TemplateType": "EMAIL", "HtmlPart": "<p>x</p>"}
    )
    assert any(n.level == "error" and "Subject" in n.message for n in result.notes)
    with pytest.raises(RenderError, match=r"email\.subject rendered empty"):
        FilesRenderer(template_files("p", [result])).render(
            "p", "nosubject", "email", "en", context()
        )


def test_a_brace_before_a_value_stays_literal_in_the_text_made_from_html() -> None:
    # the text part made from this HTML was "{{{ customer.first_name }}}": a Jinja error
    html_part = "<p>{<b>{{User.UserAttributes.FirstName}}</b>}</p>"
    result = translate_template(
        "email", "brace_en", {"TemplateType": "EMAIL", "Subject": "s", "HtmlPart": html_part}
    )
    msg = FilesRenderer(template_files("p", [result])).render(
        "p", "brace", "email", "en", context(first_name="Ai")
    )
    assert msg.text == "{Ai}"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "defaults",
    [
        '{"User.UserAttributes.FirstName": "there", "User.UserAttributes.FirstName": "you"}',
        '{"User.UserAttributes.FirstName": NaN}',
    ],
)
def test_default_substitutions_with_a_repeated_key_or_nan_are_ignored_and_said(
    defaults: str,
) -> None:
    # json kept the last of a repeated key and read NaN: a default nobody chose
    result = translate_template(
        "email",
        "welcome_en",
        {
            "TemplateType": "EMAIL",
            "Subject": "Hi {{User.UserAttributes.FirstName}}",
            "HtmlPart": "<p>x</p>",
            "DefaultSubstitutions": defaults,
        },
    )
    errors = [n.message for n in result.notes if n.level == "error"]
    assert any("DefaultSubstitutions is not JSON Kizuna reads" in m for m in errors), errors
    assert "you" not in result.files.get("en/email.subject.j2", "")
