"""Coupon codes: deterministic, distinct, unguessable without the secret, typeable."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.delivery.coupons import (
    Coupon,
    coupon_code,
    coupon_expiry,
    is_coupon_code,
    issue_coupon,
    normalize_coupon_code,
)

SECRET = b"coupon-secret-0123456789abcdef"


def test_format_and_determinism() -> None:
    code = coupon_code(SECRET, "second-purchase", "cust-1", "exec-1", "coupon")
    assert re.fullmatch(
        r"KZ-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", code
    )
    assert is_coupon_code(code)
    # a retried send derives the same code
    assert coupon_code(SECRET, "second-purchase", "cust-1", "exec-1", "coupon") == code


def test_every_input_and_the_secret_change_the_code() -> None:
    base = coupon_code(SECRET, "p", "c", "e", "s")
    assert coupon_code(SECRET, "p2", "c", "e", "s") != base
    assert coupon_code(SECRET, "p", "c2", "e", "s") != base
    assert coupon_code(SECRET, "p", "c", "e2", "s") != base
    # two coupon steps of one execution: two coupons
    assert coupon_code(SECRET, "p", "c", "e", "s2") != base
    assert coupon_code(b"another-secret", "p", "c", "e", "s") != base
    # fields are separated: moving a character between fields is a different code
    assert coupon_code(SECRET, "ab", "c", "e", "s") != coupon_code(SECRET, "a", "bc", "e", "s")
    assert coupon_code(SECRET, "p", "c", "ef", "s") != coupon_code(SECRET, "p", "c", "e", "fs")


def test_codes_are_unique_over_many_customers() -> None:
    codes = {coupon_code(SECRET, "p", f"cust-{i}", "e", "s") for i in range(20_000)}
    assert len(codes) == 20_000


def test_shorter_and_longer_codes() -> None:
    assert re.fullmatch(r"KZ-\w{4}-\w{4}", coupon_code(SECRET, "p", "c", "e", "s", groups=2))
    assert is_coupon_code(coupon_code(SECRET, "p", "c", "e", "s", groups=4), groups=4)
    with pytest.raises(ValueError, match="groups"):
        coupon_code(SECRET, "p", "c", "e", "s", groups=1)
    with pytest.raises(ValueError, match="secret"):
        coupon_code(b"", "p", "c", "e", "s")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_normalize_undoes_typing_noise(customer_id: str, execution: str) -> None:
    code = coupon_code(SECRET, "p", customer_id, execution, "s")
    typed = code.lower().replace("-", " ").replace("1", "l").replace("0", "o")
    assert normalize_coupon_code(typed) == code


# what a Japanese keyboard gives: full-width letters, digits and hyphen (U+FF01-U+FF5E)
FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
DASHES = ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "ー", "ｰ", "－"]


@pytest.mark.parametrize(
    "typed",
    [
        "ＫＺ－１ＭＡＲ－Ｇ６ＸＮ－ＢＢ６３",  # full width
        "ｋｚ－１ｍａｒ－ｇ６ｘｎ－ｂｂ６３",  # full width, lower case
        "ＫＺ　１ＭＡＲ　Ｇ６ＸＮ　ＢＢ６３",  # ideographic spaces
        "ｋｚ－ｌｍａｒ－ｇ６ｘｎ－ｂｂ６３",  # full-width l for 1
        *(f"KZ{d}1MAR{d}G6XN{d}BB63" for d in DASHES),  # ー: the katakana long-vowel mark
        "1MAR－G6XN－BB63",  # no prefix
    ],
)
def test_normalize_folds_full_width_and_dashes(typed: str) -> None:
    assert normalize_coupon_code(typed) == "KZ-1MAR-G6XN-BB63"


@given(st.text(min_size=1, max_size=40), st.sampled_from(DASHES))
def test_normalize_undoes_japanese_keyboard_input(customer_id: str, dash: str) -> None:
    code = coupon_code(SECRET, "p", customer_id, "e", "s")
    assert normalize_coupon_code(code.translate(FULL_WIDTH).replace("－", dash)) == code


@pytest.mark.parametrize(
    "typed",
    [
        "KZ.1MAR.G6XN.BB63",  # a dot is not a dash
        "KZ_1MAR_G6XN_BB63",
        "KZ〜1MAR〜G6XN〜BB63",  # a wave dash neither
        "ＫＺ－１ＭＡＲ－Ｇ６ＸＮ－ＢＢ６３￥",  # a character too many
        "ＫＺ－１ＭＡＲ－Ｇ６ＸＮ－ＢＢ６Ｕ",  # U is not in the alphabet, full width or not
        "KZ-1MAR-G6XN-BB6あ",
    ],
)
def test_normalize_leaves_anything_else_and_the_result_is_no_code(typed: str) -> None:
    assert not is_coupon_code(normalize_coupon_code(typed))


@pytest.mark.parametrize(
    ("now", "zone", "end"),
    [
        # noon in Tokyo, 14 days: the end of the 19th there
        (datetime(2026, 1, 5, 3, tzinfo=UTC), "Asia/Tokyo", datetime(2026, 1, 19, 14, 59, 59)),
        # 23:30 on the 4th in Tokyo: the 18th, whatever the UTC date
        (datetime(2026, 1, 4, 14, 30, tzinfo=UTC), "Asia/Tokyo", datetime(2026, 1, 18, 14, 59, 59)),
        # the same instant in New York (09:30 on the 4th): the 18th there, 05:00 UTC the 19th
        (
            datetime(2026, 1, 4, 14, 30, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 1, 19, 4, 59, 59),
        ),
        # no zone, or a zone tzdata does not know: the default's
        (datetime(2026, 1, 5, 3, tzinfo=UTC), None, datetime(2026, 1, 19, 14, 59, 59)),
        (datetime(2026, 1, 5, 3, tzinfo=UTC), "Asia", datetime(2026, 1, 19, 14, 59, 59)),
        # across the change to summer time (New York, 8 March): still the day's end
        (
            datetime(2026, 3, 1, 17, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 3, 16, 3, 59, 59),
        ),
    ],
)
def test_a_coupon_expires_at_the_end_of_its_last_local_day(
    now: datetime, zone: str | None, end: datetime
) -> None:
    expires = coupon_expiry(now, 14, zone, "Asia/Tokyo")
    assert expires == end.replace(microsecond=999_999, tzinfo=UTC)


def test_issue_coupon_model() -> None:
    expires = datetime(2026, 2, 1, tzinfo=UTC)
    coupon = issue_coupon(SECRET, "p", "c", "e", "s", discount="500円", expires_at=expires)
    assert coupon == Coupon(
        code=coupon_code(SECRET, "p", "c", "e", "s"), discount="500円", expires_at=expires
    )
    with pytest.raises(ValueError):
        Coupon(code="X", discount="1%", expires_at=datetime(2026, 2, 1))  # naive datetime
