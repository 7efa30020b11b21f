"""Cards in the program report: a channel row of their own, with what was sent and what the
site marked seen or clicked (the ledger's open_at / click_at)."""

from __future__ import annotations

from typing import Any

from kizuna_tools.reports.build import Ledger, program_report


def entry(cid: str) -> dict[str, Any]:
    return {
        "pk": cid,
        "kind": "ENTRY",
        "program": "welcome",
        "decision": "entered",
        "at": "2026-03-01T00:00:00.000000Z",
    }


def message(cid: str, channel: str, **stamps: str) -> dict[str, Any]:
    return {
        "pk": cid,
        "kind": "MSG",
        "program": "welcome",
        "status": "sent",
        "channel": channel,
        "at": "2026-03-01T01:00:00.000000Z",
        **stamps,
    }


def test_cards_have_a_channel_row_with_seen_and_clicked_counted() -> None:
    # given: three cards (one seen, one seen and clicked, one neither) and one email
    items = [entry(c) for c in ("a", "b", "c", "d")] + [
        message("a", "card", open_at="2026-03-01T02:00:00.000000Z"),
        message(
            "b",
            "card",
            open_at="2026-03-01T02:00:00.000000Z",
            click_at="2026-03-01T02:01:00.000000Z",
        ),
        message("c", "card"),
        message("d", "email"),
    ]
    # when the report is built
    rows = program_report(Ledger.from_items(items), {})
    # then: cards are a channel of the program, their views counted as engagement
    overall = next(r for r in rows if r.channel is None and r.arm is None)
    assert overall.sent_by_channel == {"card": 3, "email": 1}
    card = next(r for r in rows if r.channel == "card")
    assert (card.sent, card.engaged) == (3, 2)
