"""The report's program splits with a winner rule: a decided split shows the evidence its
``WINNER`` row keeps; an undecided one, today's counts from the program's ledger; one read
of the ledger index per program with such a split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kizuna.programs.model import Program
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.reports.document import build_reports, report_document, split_table
from kizuna_tools.reports.html import render_html
from kizuna_tools.reports.sources import load


def program(pid: str, winner: bool = True) -> Program:
    split: dict[str, Any] = {
        "id": "offer",
        "type": "split",
        "arms": [
            {"name": "a", "weight": 50, "next": "send_a"},
            {"name": "b", "weight": 50, "next": "send_b"},
        ],
    }
    if winner:
        split["winner"] = {"metric": "opened", "min_per_arm": 10}
    return Program.model_validate(
        {
            "id": pid,
            "name": pid,
            "trigger": {"event": "customer.first_purchase"},
            "steps": [
                split,
                {"id": "send_a", "type": "send", "channels": ["email"], "template": "t-a"},
                {"id": "send_b", "type": "send", "channels": ["email"], "template": "t-b"},
            ],
        }
    )


# the row the daily sweep wrote (WinnerDecision.item() with its keys), as read back
WINNER_ROW = {
    "pk": "PROGRAM#decided",
    "sk": "WINNER#offer",
    "gsi1pk": "PROGRAM#decided",
    "gsi1sk": "2026-03-02T03:00:00+00:00#PROGRAM#offer",
    "kind": "WINNER",
    "program": "decided",
    "step": "offer",
    "winner": "b",
    "metric": "opened",
    "rule": "sequential",
    "alpha": 0.05,
    "min_per_arm": 10,
    "arms": {
        "a": {"reached": 240, "exposed": 230, "converted": 23},
        "b": {"reached": 250, "exposed": 240, "converted": 72},
    },
    "p_value": 0.0012,
    "difference": 0.2,
    "lift": 2.0,
    "interval": [0.08, 0.32],
    "reason": "opened rate: ...",
    "decided_at": "2026-03-02T03:00:00+00:00",
    "at": "2026-03-02T03:00:00+00:00",
}


def undecided_rows() -> list[dict[str, Any]]:
    """c1 and c2 reached arm a (c1 was sent the email and opened it, c2's was suppressed);
    c3 reached b and was sent it, unopened."""
    rows: list[dict[str, Any]] = []
    for cid, arm, status, opened in (
        ("c1", "a", "sent", True),
        ("c2", "a", "suppressed", False),
        ("c3", "b", "sent", False),
    ):
        base = {"pk": cid, "program": "open", "execution": f"e-{cid}"}
        rows.append({**base, "kind": "STEP", "step": "offer", "decision": f"arm:{arm}"})
        msg = {**base, "kind": "MSG", "sk": f"MSG#e-{cid}#send_{arm}", "status": status}
        rows.append({**msg, "open_at": "2026-03-01T10:00:00+00:00"} if opened else msg)
    return rows


class Activity:
    """The activity table as the report reads it: the scan, and each program's ledger."""

    def __init__(self, ledgers: dict[str, list[dict[str, Any]]]) -> None:
        self.ledgers = ledgers
        self.queried: list[str] = []

    def scan_activity(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        return []

    def program_ledger(self, program: str) -> list[dict[str, Any]]:
        self.queried.append(program)
        return self.ledgers.get(program, [])


class NoSnapshots:
    def dates(self) -> list[str]:
        return []

    def cells(self, day: str) -> dict[str, dict[str, Any]]:
        return {}


def test_decided_and_undecided_splits_become_table_rows() -> None:
    # given a program whose split was decided (its WINNER row, plus a later STEP row the
    # decision did not see), one still undecided, and one without a winner rule
    activity = Activity(
        {
            "decided": [
                WINNER_ROW,
                {
                    "pk": "z",
                    "program": "decided",
                    "kind": "STEP",
                    "step": "offer",
                    "execution": "e-z",
                    "decision": "arm:a",
                },
            ],
            "open": undecided_rows(),
        }
    )
    programs = [program("decided"), program("open"), program("plain", winner=False)]

    # when the report loads its data and tabulates the splits
    data = load(activity, NoSnapshots(), None, {}, programs=programs)
    table = split_table(data.splits)

    # then each program with a winner split was read once (the plain one not at all)
    assert activity.queried == ["decided", "open"]
    rows = {(r[0], r[3]): r for r in table.rows}
    assert set(rows) == {
        ("decided", "a"),
        ("decided", "b (winner)"),
        ("open", "a"),
        ("open", "b"),
    }
    # the decided split: the counts and evidence its decision kept
    assert rows[("decided", "b (winner)")] == (
        "decided", "offer", "opened", "b (winner)", 250, 240, 72, 30.0,
        "winner: b", 0.0012, 20.0, 8.0, 32.0, "2026-03-02T03:00:00+00:00",
    )  # fmt: skip
    assert rows[("decided", "a")][4:9] == (240, 230, 23, 10.0, "winner: b")
    # the undecided split: today's counts (a suppressed email is not an exposure)
    assert rows[("open", "a")] == (
        "open", "offer", "opened", "a", 2, 1, 1, 100.0,
        "undecided", None, None, None, None, None,
    )  # fmt: skip
    assert rows[("open", "b")][4:9] == (1, 1, 0, 0.0, "undecided")
    # and the HTML report carries the table
    cfg = KizunaConfig()
    html = render_html(report_document(build_reports(data, cfg), cfg))
    assert "Program splits with a winner rule" in html and "winner: b" in html
