import re
from decimal import Decimal

import pytest

from kizuna.events import INBOUND_EVENT_TYPES, OrderPlaced
from kizuna.events.envelope import EventRejected, parse_inbound
from tests.factories import envelope, fixture


def test_order_fixture_parses_into_the_versioned_model() -> None:
    # given an order as a shop would put it on the bus
    raw = fixture("order_placed")
    # when it is parsed
    ev = parse_inbound(raw)
    # then the detail is the typed model, times are aware, money is exact
    assert isinstance(ev.detail, OrderPlaced)
    assert ev.detail.schema_version == 1
    assert str(ev.detail.total) == "10000"
    assert ev.detail.occurred_at.utcoffset() is not None
    assert ev.customer_id == "cust-0001"


def test_catalogue_has_the_inbound_types() -> None:
    assert set(INBOUND_EVENT_TYPES) == {
        "customer.upserted",
        "consent.changed",
        "preferences.changed",
        "order.placed",
        "order.cancelled",
        "order.refunded",
        "points.adjusted",
        "device.registered",
        "line.linked",
        "product.viewed",
        "cart.updated",
        "app.opened",
        "push.opened",
        "channel.suppressed",
        "device.unregistered",
        "customer.erase",
    }


@pytest.mark.parametrize(
    ("mutate", "error_type", "fragment"),
    [
        (lambda d: d["detail"].update(total="-5"), "InvalidEvent", "detail.total"),
        (lambda d: d["detail"].update(lines=[]), "InvalidEvent", "detail.lines"),
        (lambda d: d["detail"].update(currency="yen"), "InvalidEvent", "detail.currency"),
        (lambda d: d["detail"].update(channel="fax"), "InvalidEvent", "detail.channel"),
        (lambda d: d["detail"].update(surprise=1), "InvalidEvent", "detail.surprise"),
        (
            lambda d: d["detail"].update(occurred_at="2026-01-05T10:00:00"),
            "InvalidEvent",
            "detail.occurred_at",
        ),
        (lambda d: d["detail"].pop("customer_id"), "InvalidEvent", "detail.customer_id"),
        (
            lambda d: d.update({"detail-type": "order.teleported"}),
            "UnknownEventType",
            "order.teleported",
        ),
        (lambda d: d.pop("id"), "InvalidEnvelope", "id"),
    ],
)
def test_bad_events_are_rejected_with_a_clear_reason(mutate, error_type, fragment) -> None:  # type: ignore[no-untyped-def]
    raw = fixture("order_placed")
    mutate(raw)
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert info.value.error_type == error_type
    assert fragment in info.value.reason


def test_rejection_reason_does_not_echo_personal_data() -> None:
    # given a profile update whose email and phone are malformed
    raw = fixture("customer_upserted")
    raw["detail"]["email"] = "hanako.yamada-at-example.jp"
    raw["detail"]["phone"] = "090-1234-5678"
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    # then the reason names the fields but never their values
    assert "detail.email" in info.value.reason and "detail.phone" in info.value.reason
    assert "hanako" not in info.value.reason and "1234" not in info.value.reason


@pytest.mark.parametrize(
    ("phone", "taken"),
    [
        pytest.param("+819012345678", True, id="jp-mobile"),
        pytest.param("+81312345678", True, id="jp-tokyo-landline"),
        pytest.param("+81120123456", True, id="jp-freephone"),
        pytest.param("+14155550100", True, id="us"),
        pytest.param("+390612345678", True, id="it-keeps-its-0"),
        pytest.param("+8613812345678", True, id="cn"),
        pytest.param("+8109012345678", False, id="jp-with-the-trunk-0"),
        pytest.param("+81012345678", False, id="jp-landline-with-the-trunk-0"),
        pytest.param("+8190123456789", False, id="jp-one-digit-too-many"),
        pytest.param("+8112345678", False, id="jp-one-digit-short"),
    ],
)
def test_a_japanese_number_is_taken_only_without_its_trunk_0(phone: str, taken: bool) -> None:
    # given a profile update whose phone is written "+81 090-..." without the punctuation
    raw = fixture("customer_upserted")
    raw["detail"]["phone"] = phone
    if taken:
        assert parse_inbound(raw).detail.phone == phone  # type: ignore[union-attr]
        return
    # then it is refused, never repaired into +8190...
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert "detail.phone" in info.value.reason and phone[3:] not in info.value.reason


PERSONAL = "Jane Doe, 1-2-3 Ginza"


@pytest.mark.parametrize(
    ("detail_type", "fields", "where"),
    [
        ("customer.upserted", {"time_zone": PERSONAL}, "detail.time_zone: "),
        (
            "preferences.changed",
            {"topics": {PERSONAL: {"email": "opted_out"}}},
            "detail.topics.<key>.[key]: ",
        ),
        (
            "preferences.changed",
            {"topics": {"news": {PERSONAL: "opted_out"}}},
            "detail.topics.<key>.<key>.[key]: ",
        ),
        (
            "preferences.changed",
            {"topics": {PERSONAL: {"email": "maybe"}}},
            "detail.topics.<key>.email: ",  # the channel, Kizuna's own word, is named
        ),
        ("customer.upserted", {PERSONAL: 1}, "detail.<extra>: "),
        (
            "customer.upserted",
            {
                "postal_address": {
                    "recipient_name": "J",
                    "postal_code": "1000001",
                    "region": "Tokyo",
                    "locality": "Chiyoda",
                    "line1": "1-1",
                    PERSONAL: 1,
                }
            },
            "detail.postal_address.<extra>: ",
        ),
    ],
)
def test_a_reason_names_kizunas_fields_never_the_producers_keys_or_values(
    detail_type: str, fields: dict[str, object], where: str
) -> None:
    detail = {"customer_id": "c1", "occurred_at": "2026-01-05T09:00:00Z", **fields}
    with pytest.raises(EventRejected) as info:
        parse_inbound(envelope(detail_type, detail, "e1"))
    assert where in info.value.reason
    assert "Jane" not in info.value.reason and "Ginza" not in info.value.reason


def test_a_field_of_another_kizuna_event_is_named_where_it_does_not_belong() -> None:
    raw = fixture("order_placed")
    raw["detail"]["token"] = "abcdefgh"
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert "detail.token: Extra inputs are not permitted" in info.value.reason


def test_a_reason_still_names_the_field_of_a_nested_error() -> None:
    raw = fixture("order_placed")
    raw["detail"]["lines"][0]["quantity"] = 0
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert "detail.lines.0.quantity: " in info.value.reason


def test_body_that_is_not_json_is_rejected() -> None:
    with pytest.raises(EventRejected) as info:
        parse_inbound("{not json")
    assert info.value.error_type == "InvalidEnvelope"


def test_each_inbound_type_accepts_a_minimal_valid_detail() -> None:
    base = {"customer_id": "c1", "occurred_at": "2026-01-01T00:00:00Z"}
    samples = {
        "customer.upserted": {},
        "consent.changed": {"channel": "email", "status": "opted_in"},
        "preferences.changed": {"topics": {"promotions": {"email": "opted_out"}}},
        "order.placed": {
            "order_id": "o1",
            "total": "1",
            "currency": "JPY",
            "channel": "store",
            "lines": [{"product_id": "p", "quantity": 1, "unit_price": "1"}],
        },
        "order.cancelled": {"order_id": "o1"},
        "order.refunded": {
            "order_id": "o1",
            "refund_id": "r1",
            "amount": "1",
            "currency": "JPY",
        },
        "points.adjusted": {"adjustment_id": "a1", "delta": -10, "reason": "redeem"},
        "device.registered": {"token": "a" * 64, "platform": "FCM"},
        "line.linked": {"line_user_id": "U" + "0" * 32},
        "product.viewed": {"product_id": "p1"},
        "cart.updated": {"cart_id": "k1", "items": []},
        "app.opened": {},
        "push.opened": {"message": "winback-0123456789abcdef/coupon"},
        "channel.suppressed": {"channel": "email", "reason": "bounce"},
        "device.unregistered": {"token": "a" * 64},
        "customer.erase": {"request_id": "dsr-1"},
    }
    assert set(samples) == set(INBOUND_EVENT_TYPES)
    for detail_type, extra in samples.items():
        ev = parse_inbound(envelope(detail_type, {**base, **extra}, f"id-{detail_type}"))
        assert ev.detail_type == detail_type


def test_kizunas_own_consent_words_are_refused_from_any_other_source() -> None:
    from kizuna.events.envelope import KIZUNA_DETAIL_SOURCES

    # a producer writing a change that would read as the customer's click on the hosted
    # page (or a LINE block) is refused, naming the field; Kizuna's own function is not
    detail = {
        "customer_id": "c1",
        "occurred_at": "2026-01-05T10:00:00+09:00",
        "channel": "email",
        "status": "opted_in",
    }
    for word, source in KIZUNA_DETAIL_SOURCES.items():
        raw = envelope("consent.changed", {**detail, "source": word}, f"e-{word}")
        with pytest.raises(EventRejected, match=f"detail.source '{word}' is reported only"):
            parse_inbound(raw)
        spoofed = envelope("consent.changed", {**detail, "source": word}, "e2", "kizuna.other")
        with pytest.raises(EventRejected, match="ReservedSource"):
            parse_inbound(spoofed)
        own = parse_inbound(envelope("consent.changed", {**detail, "source": word}, "e3", source))
        assert own.detail.source == word
    # the shop's own words stay the shop's
    assert parse_inbound(envelope("consent.changed", {**detail, "source": "app"}, "e4")).detail


@pytest.mark.parametrize(
    ("detail_type", "fields", "where"),
    [
        ("preferences.changed", {"resume": "yes"}, "detail.resume"),
        ("preferences.changed", {"resume": 1}, "detail.resume"),
        ("customer.upserted", {"birth_date": 0}, "detail.birth_date"),
        ("customer.upserted", {"birth_date": "9999-01-01"}, "detail.birth_date"),
        ("customer.upserted", {"member_since": "0001-01-01"}, "detail.member_since"),
        ("customer.upserted", {"occurred_at": 1767600000}, "detail.occurred_at"),
        # digits as text pydantic reads as epoch seconds, and forms a template's |date refuses
        ("customer.upserted", {"occurred_at": "1767600000"}, "detail.occurred_at"),
        ("customer.upserted", {"occurred_at": "2026-01-05 10:00:00+09:00"}, "detail.occurred_at"),
        ("customer.upserted", {"occurred_at": "2026-01-05T10:00:00+0900"}, "detail.occurred_at"),
        ("customer.upserted", {"occurred_at": "2026-01-05t01:00:00z"}, "detail.occurred_at"),
        ("customer.upserted", {"occurred_at": "2026-01-05T10:00:00"}, "detail.occurred_at"),
        ("customer.upserted", {"occurred_at": "２０２６-01-05T10:00Z"}, "detail.occurred_at"),
        ("customer.upserted", {"birth_date": "1990-01-05T00:00:00Z"}, "detail.birth_date"),
        ("customer.upserted", {"birth_date": "19900105"}, "detail.birth_date"),
        ("points.adjusted", {"delta": True}, "detail.delta"),
        ("points.adjusted", {"delta": 1.5}, "detail.delta"),
    ],
)
def test_a_value_of_another_type_is_refused_not_converted(
    detail_type: str, fields: dict[str, object], where: str
) -> None:
    # "yes" would end a pause, 0 would be a birthday on 1 January 1970, true one point
    base = {
        "customer.upserted": {},
        "preferences.changed": {"source": "app"},
        "points.adjusted": {"adjustment_id": "a1", "delta": 10, "reason": "gift"},
    }[detail_type]
    detail = {"customer_id": "c1", "occurred_at": "2026-01-05T10:00:00+09:00", **base, **fields}
    with pytest.raises(EventRejected, match=f"{where}: "):
        parse_inbound(envelope(detail_type, detail, "e1"))


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-01-05T10:00+09:00",
        "2026-01-05T01:00:00Z",
        "2026-01-05T01:00:00.5Z",
        "2026-01-05T01:00:00.123456789-05:00",
    ],
)
def test_a_time_in_iso_text_with_its_offset_is_taken(occurred_at: str) -> None:
    detail = {"customer_id": "c1", "occurred_at": occurred_at, "birth_date": "1990-01-05"}
    parsed = parse_inbound(envelope("customer.upserted", detail, "e1")).detail
    assert parsed.occurred_at.utcoffset() is not None


def test_an_order_line_quantity_is_a_whole_number() -> None:
    raw = fixture("order_placed")
    raw["detail"]["lines"][0]["quantity"] = True
    with pytest.raises(EventRejected, match=r"detail\.lines\.0\.quantity"):
        parse_inbound(raw)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("lines.0.quantity", "2"),  # a count is a JSON number: text is refused
        ("lines.0.quantity", "1_0"),
        ("lines.0.quantity", " 1"),
        ("lines.0.quantity", "１２"),
        ("lines.0.unit_price", "1_000"),  # an amount may be text, in plain ASCII digits only
        ("lines.0.unit_price", " 1000"),
        ("lines.0.unit_price", "1000 "),
        ("lines.0.unit_price", "１２００"),
        ("lines.0.unit_price", "1e3"),
        ("lines.0.unit_price", "+5"),
        ("lines.0.unit_price", "01"),
        ("lines.0.unit_price", ".5"),
        ("lines.0.unit_price", "1,000"),
        ("lines.0.unit_price", "١٢"),
        ("total", "3_000"),
        ("total", "3e3"),
    ],
)
def test_a_number_written_as_text_is_refused_unless_plain_ascii_digits(
    where: str, value: str
) -> None:
    # Given an order whose count or amount is loose text (pydantic and Python read "1_0" as
    # 10, " 1" as 1, "１２００" as 1200, "1e3" as 1000)
    raw = fixture("order_placed")
    detail = raw["detail"]
    target = detail["lines"][0] if where.startswith("lines") else detail
    target[where.rsplit(".", 1)[-1]] = value
    # When it is read / Then it is refused, naming the field
    with pytest.raises(EventRejected, match=re.escape(f"detail.{where}: ")):
        parse_inbound(raw)


def test_an_amount_as_plain_decimal_text_is_read_exactly() -> None:
    raw = fixture("order_placed")
    raw["detail"]["lines"][0]["unit_price"] = "1200.5"
    raw["detail"]["lines"][0]["quantity"] = 1
    raw["detail"]["total"] = "0"
    detail = parse_inbound(raw).detail
    assert isinstance(detail, OrderPlaced)
    assert (detail.lines[0].unit_price, detail.total) == (Decimal("1200.5"), Decimal("0"))


@pytest.mark.parametrize("delta", ["10", "-10", " 10"])
def test_a_points_delta_written_as_text_is_refused(delta: str) -> None:
    detail = {
        "customer_id": "c1",
        "occurred_at": "2026-01-05T10:00:00+09:00",
        "adjustment_id": "a1",
        "delta": delta,
        "reason": "gift",
    }
    with pytest.raises(EventRejected, match=r"detail\.delta: .*JSON number"):
        parse_inbound(envelope("points.adjusted", detail, "e1"))
