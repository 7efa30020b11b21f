"""SMS encoding and segment counting (GSM-7 vs UCS-2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.delivery.content import GSM7_BASIC, GSM7_EXTENSION, SmsContent, sms_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 0)),
        ("Hello", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        # the euro sign is in the extension table: two septets
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 159 + "€", ("GSM-7", 2)),
        # an escape sequence is never split: 152 septets then a 2-septet char -> new part
        ("a" * 152 + "€" + "a" * 10, ("GSM-7", 2)),
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("Ünïcödé? no: ü, é, à are GSM", ("UCS-2", 1)),  # ï is not in GSM 03.38
        ("ü é à Ä Ö Ñ £ ¥ §", ("GSM-7", 1)),
        # Japanese is UCS-2: 70 per single message, 67 per part
        ("あ" * 70, ("UCS-2", 1)),
        ("あ" * 71, ("UCS-2", 2)),
        ("あ" * 134, ("UCS-2", 2)),
        ("あ" * 135, ("UCS-2", 3)),
        # one Japanese character turns a whole English text into UCS-2
        ("a" * 69 + "円", ("UCS-2", 1)),
        ("a" * 70 + "円", ("UCS-2", 2)),
        # emoji are two UTF-16 code units; a pair is never split
        ("😀" * 35, ("UCS-2", 1)),
        ("😀" * 36, ("UCS-2", 2)),
        ("a" * 66 + "😀" + "a" * 10, ("UCS-2", 2)),
        ("a" * 66 + "😀" + "a" * 66, ("UCS-2", 3)),
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert sms_segments(text) == expected


def test_sms_content_counts_on_construction() -> None:
    content = SmsContent.of("山田様、ポイントが貯まりました")
    assert (content.encoding, content.segments) == ("UCS-2", 1)


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), min_size=1, max_size=600))
def test_gsm7_segments_bound_the_septets(text: str) -> None:
    encoding, segments = sms_segments(text)
    septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    assert encoding == "GSM-7"
    if septets <= 160:
        assert segments == 1
    else:
        # enough room for every septet, and never more than one wasted slot per part
        assert segments * 153 >= septets
        assert (segments - 1) * 152 < septets


@given(st.text(min_size=1, max_size=400).filter(lambda t: any(ord(c) > 0x2000 for c in t)))
def test_anything_beyond_gsm_is_ucs2(text: str) -> None:
    encoding, segments = sms_segments(text)
    units = len(text.encode("utf-16-le")) // 2
    assert encoding == "UCS-2"
    assert segments == 1 if units <= 70 else segments * 67 >= units
