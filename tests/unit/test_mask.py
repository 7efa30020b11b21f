"""The one masking function: what a caller who may not see personal data sees."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.domain.privacy import mask


@pytest.mark.parametrize(
    ("field", "value", "masked"),
    [
        ("email", "hanako.yamada@example.jp", "h***@example.jp"),
        ("email", "not-an-address", "***"),
        ("email", "@example.jp", "***"),
        ("phone", "+819012345678", "***78"),
        ("phone", "123", "***"),
        ("first_name", "Hanako", "H***"),
        ("last_name", "山田", "山***"),
        ("birth_date", "1985-04-12", "1985-**-**"),
        ("line_user_id", "U" + "0" * 32, "U***"),
        ("email", "", "***"),
        ("email", None, None),
    ],
)
def test_mask(field: str, value: str | None, masked: str | None) -> None:
    assert mask(field, value) == masked


@given(st.sampled_from(["email", "phone", "first_name", "birth_date"]), st.text(min_size=6))
def test_a_masked_value_keeps_at_most_a_few_characters(field: str, value: str) -> None:
    shown = mask(field, value)
    assert shown is not None and "**" in shown
    kept = shown.replace("*", "").replace("-", "")
    if field == "email":
        kept = kept.split("@", 1)[0]  # the domain is shown
    assert len(kept) <= 4  # a first character, two digits, or a year
