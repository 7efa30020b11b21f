"""Timeline rows as the customer lookup shows them: typed, reduced to an allow-list, each
decision with the ledger's reason and detail and a why; pages by a checked position."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from kizuna.services.customers import (
    InvalidPageToken,
    decode_token,
    encode_token,
    timeline_item,
    timeline_page,
)

AT = "2026-01-05T03:00:00.000000Z"


def test_a_deferred_message_says_until_when_and_keeps_no_internals() -> None:
    row = {
        "pk": "c1",
        "sk": "MSG#welcome-abc#push",
        "kind": "MSG",
        "program": "welcome",
        "step": "push",
        "status": "deferred",
        "channel": "push",
        "reason": "quiet_hours",
        "until": "2026-01-05T23:00:00.000000Z",
        "at": AT,
        "claim_token": "t",
        "claimed_by": "x",
        "sending_pk": "SENDING#1",
        "provider_message_id": "p",
        "attempts": Decimal(1),
    }
    item = timeline_item(row, "en")
    assert item is not None and item.type == "message" and item.outcome == "deferred"
    assert item.until == datetime(2026, 1, 5, 23, tzinfo=UTC)
    assert item.why is not None and "2026-01-05 23:00" in item.why.text
    dumped = item.model_dump_json()
    for internal in ("claim_token", "claimed_by", "SENDING#", "provider_message_id"):
        assert internal not in dumped
    assert item.data == {"attempts": 1}


def test_a_message_ses_rejected_says_it_was_not_delivered() -> None:
    row = {
        "pk": "c1",
        "sk": "MSG#welcome-abc#email",
        "kind": "MSG",
        "program": "welcome",
        "step": "email",
        "status": "sent",
        "channel": "email",
        "at": AT,
        "sent_at": AT,
        "provider_message_id": "p",
        "reject_at": "2026-01-05T03:00:01.000000Z",
        "not_delivered_reason": "rejected: Bad content",
    }
    item = timeline_item(row, "en")
    assert item is not None and item.outcome == "sent"  # SES took it
    assert item.data["reject_at"] == "2026-01-05T03:00:01.000000Z"
    assert item.data["not_delivered_reason"] == "rejected: Bad content"
    assert item.why is not None
    assert item.why.text == "Accepted by email but never delivered: rejected: Bad content."
    ja = timeline_item(row, "ja")
    assert ja is not None and ja.why is not None
    assert (
        ja.why.text == "メールで受け付けられましたが、配信されませんでした: rejected: Bad content。"
    )


def test_a_skipped_entry_keeps_the_ledger_detail_whatever_its_shape() -> None:
    detail = {"field": "lifecycle", "expected": ["new"], "found": "repeat", "n": Decimal(2)}
    row: dict[str, object] = {
        "sk": f"ENTRY#{AT}#second-purchase-coupon#e1",
        "kind": "ENTRY",
        "program": "second-purchase-coupon",
        "decision": "skipped",
        "reason": "audience",
        "detail": detail,
        "at": AT,
    }
    item = timeline_item(row, "ja")
    assert item is not None and item.type == "decision"
    assert (item.outcome, item.reason) == ("skipped", "audience")
    assert item.detail == {**detail, "n": 2}
    assert item.why is not None and item.why.reason == "audience"
    # the row as evaluate writes it: the failed condition, named in the why
    del row["detail"]
    row["failed"] = [{"field": "lifecycle", "expected": ["new"], "found": "repeat"}]
    item = timeline_item(row, "en")
    assert item is not None and item.detail == {"failed": row["failed"]}
    assert item.why is not None and "new" in item.why.text and "repeat" in item.why.text


def test_a_declared_event_shows_its_stored_fields() -> None:
    # the row ingest keeps of a declared event: its type and its (non-personal) fields
    row = {
        "sk": f"EVENT#{AT}#wishlist.added#e1",
        "kind": "EVENT",
        "type": "wishlist.added",
        "fields": {"product_id": "tea-1", "price": Decimal("5400"), "weight": Decimal("0.5")},
        "at": AT,
        "expires_at": Decimal(1),
    }
    item = timeline_item(row, "en")
    assert item is not None and item.type == "behaviour"
    assert item.data == {
        "type": "wishlist.added",
        "fields": {"product_id": "tea-1", "price": 5400, "weight": "0.5"},
    }


def test_state_and_unknown_rows_are_not_events() -> None:
    for sk in ("JOURNEY#welcome", "CONTACT", "SOMETHING#new"):
        assert timeline_item({"sk": sk, "at": AT}, "en") is None
    assert timeline_item({"sk": "ORDER#x#o1"}, "en") is None  # no time: not placed in time


def test_pages_are_strictly_older_than_the_token() -> None:
    rows = [
        {"sk": f"POINTS#{AT}#adjust#a{i}", "at": AT, "delta": Decimal(i), "reason": "r"}
        for i in range(5)
    ]
    first = timeline_page(rows, "c1", limit=3, after=None, lang="en")
    assert first.next_token is not None
    second = timeline_page(rows, "c1", limit=3, after=decode_token(first.next_token), lang="en")
    assert second.next_token is None
    ids = [i.id for i in first.items + second.items]
    assert ids == sorted((str(r["sk"]) for r in rows), reverse=True)


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "e30", "x" * 2000, encode_token(datetime(2026, 11, 30, 12, tzinfo=UTC), "")],
    ids=["empty", "not-base64", "empty-object", "oversize", "sort-key-empty"],
)
def test_tokens_not_issued_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        decode_token(token)
