"""The demo's summary of LINE sends: message objects by type, a multicast counted once per
recipient, and one Flex alt text to show."""

from __future__ import annotations

from kizuna_tools.demo import line_message_types


def test_line_messages_are_counted_by_type_and_a_flex_alt_text_is_kept() -> None:
    sent = [
        {"to": "U1", "messages": [{"type": "text", "text": "hello"}]},
        {
            "to": ["U2", "U3", "U4"],
            "messages": [{"type": "flex", "altText": "Gold おめでとう", "contents": {}}],
        },
        {"to": "U5", "messages": [{"type": "flex", "altText": "second"}, {"type": "image"}]},
    ]
    types, sample = line_message_types(sent)
    assert types == {"flex": 4, "text": 1, "image": 1}
    assert sample == "Gold おめでとう"
    assert line_message_types([]) == ({}, None)
