"""Custom attribute declarations from Pinpoint's values: types inferred, names in snake case,
personal data marked, first and last names as profile fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kizuna.events.custom import vocabulary
from kizuna.runtime.config import CustomConfig, CustomEvent, ValueType
from kizuna_tools.migrate.attributes import (
    ENUM_MIN_CUSTOMERS,
    AttributeMap,
    infer,
    is_personal,
    json_number,
)
from kizuna_tools.migrate.names import event_type, kebab, object_id, snake


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([["tea", "sweets"], ["tea"]], ValueType.STRING_LIST),  # several values on a customer
        ([["true"], ["false"], ["True"]], ValueType.BOOLEAN),
        ([["2024-01-05"], ["1999-12-31"]], ValueType.DATE),
        ([["24"], ["3.5"], ["-2"]], ValueType.NUMBER),
        ([["0123"], ["42"]], ValueType.STRING),  # a leading zero: a code, not a number
        ([["2024-02-30"]], ValueType.STRING),  # not a date
        ([["2024-01-05T10:00:00Z"]], ValueType.STRING),  # a time is kept as text
        ([["Ginza"], ["Umeda"]], ValueType.STRING),
        ([], ValueType.STRING),
    ],
)
def test_types_are_inferred_from_the_values(values: list[list[str]], kind: ValueType) -> None:
    assert infer(values).type == kind


def test_a_number_is_a_json_number_only_when_it_is_carried_exactly() -> None:
    assert json_number(Decimal("12")) == 12 and isinstance(json_number(Decimal("12.0")), int)
    assert json_number(Decimal("123456789012.125")) == 123456789012.125
    assert json_number(Decimal("0.1")) == 0.1
    # 18 significant digits: a float would be 1000000000000.0 and 123456789012.12346
    assert json_number(Decimal("999999999999.999999")) is None
    assert json_number(Decimal("123456789012.123456")) is None
    # a value a float cannot carry makes the attribute a string, kept as written
    inferred = infer([["999999999999.999999"], ["3"]])
    assert inferred.type == ValueType.STRING
    assert "more significant digits than a Kizuna number carries exactly" in inferred.how


def test_a_few_values_over_many_customers_are_an_enum_and_it_is_said() -> None:
    tiers = [["Gold"], ["Silver"], ["Bronze"]] * (ENUM_MIN_CUSTOMERS // 3 + 1)
    inferred = infer(tiers)
    assert inferred.enum == ("Bronze", "Gold", "Silver")
    assert "refused at ingest until it is added" in inferred.how
    assert infer([["Gold"], ["Silver"]]).enum is None  # too few customers to tell


def test_long_values_raise_the_declared_bounds() -> None:
    inferred = infer([["x" * 300], ["a", "b", "c"]])
    assert (inferred.max_length, inferred.max_items) == (300, 50)


@pytest.mark.parametrize(
    ("name", "personal"),
    [
        ("Email", True),
        ("PhoneNumber", True),
        ("HomeAddress", True),
        ("ZipCode", True),
        ("BirthDate", True),
        ("Name", True),
        ("NickName", True),
        ("FavoriteStore", False),
        ("StoreName", False),
        ("MembershipTier", False),
        # a digit does not hide a personal word
        ("Address1", True),
        ("Address2", True),
        ("Email2", True),
        ("Phone1", True),
        ("Tel2", True),
        ("Mail2", True),
        ("HomeAddr", True),
        ("NameKana", True),
        # LINE's user id is personal; a "line" elsewhere is not
        ("LineUserId", True),
        ("LINE_ID", True),
        ("PipelineStage", False),
        ("OnlineShopper", False),
        ("ProductLine", False),
        ("LineItemCount", False),
        ("Top10Store", False),
        ("Tier2", False),
        # Japanese names (NFKC: half-width katakana too)
        ("メールアドレス", True),
        ("PCメール", True),
        ("電話番号", True),
        ("携帯番号", True),
        ("ご住所", True),
        ("氏名", True),
        ("お名前", True),
        ("姓", True),
        ("姓（カナ）", True),
        ("名", True),
        ("名2", True),
        ("名（漢字）", True),
        ("フリガナ", True),
        ("ﾌﾘｶﾞﾅ", True),
        ("セイ_カナ", True),
        ("生年月日", True),
        ("誕生日", True),
        ("郵便番号", True),
        ("苗字", True),
        # a lone 名 only as the whole name: a product's, a store's name, a subject are not
        ("商品名", False),
        ("店舗名", False),
        ("件名", False),
        ("会員ランク", False),
        ("お気に入り店舗", False),
        ("カナダ在住", False),  # カナダ is Canada, not a kana reading
    ],
)
def test_personal_data_by_name(name: str, personal: bool) -> None:
    assert is_personal(name) is personal


def test_names_profile_fields_collisions_and_metrics() -> None:
    m = AttributeMap()
    first = m.plan("UserAttributes", "FirstName", [["Hanako"]])
    tier = m.plan("UserAttributes", "Tier", [["Gold"]])
    tier_too = m.plan("Attributes", "tier", [["x"]])
    spend = m.plan("Metrics", "LifetimeSpend", [["1.0"]])
    assert (first.profile, first.name, first.view_path) == (True, "first_name", None)
    assert (tier.name, tier_too.name) == ("tier", "tier_2")  # one namespace, reported
    assert spend.spec is not None and spend.spec.type == ValueType.NUMBER
    assert spend.view_path == ["attributes", "lifetime_spend"]
    assert [a.name for a in m.declarations()] == ["lifetime_spend", "tier", "tier_2"]


def test_a_name_without_latin_letters_gets_a_generated_name() -> None:
    # Given Japanese names (snake case would give a, a_2, a_3), and ASCII and Latin ones
    m = AttributeMap()
    mail = m.plan("UserAttributes", "メールアドレス", [["a@example.jp"]])
    phone = m.plan("UserAttributes", "電話番号2", [["09012345678"]])
    rank = m.plan("Attributes", "会員ランク", [["Gold"]])
    vip = m.plan("Attributes", "VIPランク", [["1"]])
    secure = m.plan("Attributes", "3DSecure", [["true"]])
    taken = m.plan("Attributes", "Attr_1", [["x"]])  # an ASCII name keeps its naming
    # Then each gets the next attr_<n>, said in the report's mapping (generated) and in its
    # declaration's description; names with Latin letters are named as before
    assert [t.name for t in (mail, phone, rank)] == ["attr_1", "attr_2", "attr_3"]
    assert all(t.generated for t in (mail, phone, rank))
    assert (
        mail.spec is not None
        and mail.spec.description == "Pinpoint User.UserAttributes.メールアドレス"
    )
    assert mail.spec.personal and phone.spec is not None and phone.spec.personal
    assert (vip.name, secure.name, taken.name) == ("vip", "a_3_d_secure", "attr_1_2")
    assert not any(t.generated for t in (vip, secure, taken))
    # and one export always gives the same names
    again = AttributeMap()
    assert again.plan("UserAttributes", "メールアドレス", [["b@example.jp"]]).name == "attr_1"


def test_name_helpers() -> None:
    assert [
        snake(x) for x in ("FavoriteStore", "favorite-store", "SMSOptIn", "3DSecure", "お気に入り")
    ] == [
        "favorite_store",
        "favorite_store",
        "sms_opt_in",
        "a_3_d_secure",
        "a",
    ]
    assert kebab("Winter tea sale!", fallback="c") == "winter-tea-sale"
    # program and campaign ids: two characters at least, unique among both
    taken = {"winter-tea-sale"}
    assert object_id("Winter tea sale", fallback="campaign", taken=taken) == "winter-tea-sale-2"
    assert object_id("A", fallback="campaign", taken=taken) == "campaign"
    assert taken == {"winter-tea-sale", "winter-tea-sale-2", "campaign"}
    assert [
        event_type(x) for x in ("wishlist.added", "WishlistAdded", "wishlist_added", "Checkin")
    ] == [
        "wishlist.added",
        "wishlist.added",
        "wishlist.added",
        "app.checkin",
    ]


@pytest.mark.parametrize(
    ("pinpoint", "kizuna"),
    [
        ("ProductViewed", "pinpoint.product_viewed"),  # would be the built-in product.viewed
        ("Opened", "pinpoint.app_opened"),  # one word: app.opened
        ("order.placed", "pinpoint.order_placed"),
        ("customer.rank_changed", "pinpoint.customer_rank_changed"),  # Kizuna derives it
        ("CartAbandoned", "pinpoint.cart_abandoned"),
    ],
)
def test_an_event_named_like_one_of_kizunas_own_is_renamed(pinpoint: str, kizuna: str) -> None:
    # Given a Pinpoint custom event whose name would become a Kizuna detail-type
    # When it is named for Kizuna
    detail_type = event_type(pinpoint)

    # Then it is a custom event the vocabulary accepts (never a built-in or derived type)
    assert detail_type == kizuna
    config = CustomConfig(events=(CustomEvent(detail_type=detail_type),))
    assert detail_type in vocabulary(config).events


def test_an_attribute_named_like_a_dict_method_is_renamed() -> None:
    # Given Pinpoint attributes ``Items`` and ``Values`` (a template would read
    # ``customer.attributes.items`` as the dict's method)
    attributes = AttributeMap()

    # When they are planned
    items = attributes.plan("Attributes", "Items", [["3"]])
    values = attributes.plan("User", "Values", [["a"]])

    # Then they get names the configuration accepts
    assert (items.name, values.name) == ("items_2", "values_2")
    assert [a.name for a in attributes.declarations()] == ["items_2", "values_2"]
