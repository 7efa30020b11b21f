"""Winners chosen by the data for program splits: the rule's validation, the daily decision
(from the program's ledger rows, by the always-valid test), the assignment after it, and
that a second daily look changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.domain.customer import ConsentState, Customer, OrderFact
from kizuna.domain.timestamps import iso
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import JourneyState, assign_arms
from kizuna.programs.loader import check_split_winners
from kizuna.programs.model import Program
from kizuna.programs.winners import check_split, count_arms, winner_splits
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.sweep import check_winners
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter, MemoryStore
from tests.factories import T0


def program(
    winner: dict[str, Any] | None = None,
    *,
    channels: tuple[str, ...] = ("email",),
    b_next: str | None = "send_b",
    goal: bool = True,
) -> Program:
    split: dict[str, Any] = {
        "id": "offer",
        "type": "split",
        "arms": [
            {"name": "a", "weight": 50, "next": "send_a"},
            {"name": "b", "weight": 50, "next": b_next},
        ],
    }
    if winner is not None:
        split["winner"] = winner
    raw: dict[str, Any] = {
        "id": "ab-test",
        "name": "A/B",
        "trigger": {"event": "customer.first_purchase"},
        "steps": [
            split,
            {"id": "send_a", "type": "send", "channels": ["email"], "template": "t-a"},
            {"id": "send_b", "type": "send", "channels": list(channels), "template": "t-b"},
        ],
    }
    if goal:
        raw["goal"] = {"event": "order.placed", "within_days": 30}
    return Program.model_validate(raw)


# -- validation ----------------------------------------------------------------------------
def test_a_winner_rule_has_defaults_and_is_strict() -> None:
    rule = winner_splits(program({"metric": "opened"}))[0].winner
    assert rule is not None
    assert (rule.rule, rule.alpha, rule.min_per_arm) == ("sequential", 0.05, 100)
    for bad in (
        {"metric": "open"},  # the names are opened, clicked, goal
        {"metric": "opened", "rule": "best"},
        {"metric": "opened", "alpha": 0.5},
        {"metric": "opened", "alpha": 0},
        {"metric": "opened", "min_per_arm": 5},
        {"metric": "opened", "wait_hours": 24},
        {},
    ):
        with pytest.raises(ValidationError):
            program(bad)


def test_opens_and_clicks_need_an_email_send_after_every_arm() -> None:
    assert check_split_winners("f.yaml", program({"metric": "clicked"})) == []
    on_line = check_split_winners("f.yaml", program({"metric": "opened"}, channels=("line",)))
    assert len(on_line) == 1 and "email only" in on_line[0].message
    assert "arm 'b'" in on_line[0].message and on_line[0].step == "offer"
    fallback = check_split_winners(
        "f.yaml", program({"metric": "opened"}, channels=("email", "push"))
    )
    assert len(fallback) == 1 and "push" in fallback[0].message
    ends = check_split_winners("f.yaml", program({"metric": "opened"}, b_next=None))
    assert len(ends) == 1 and "ends the journey" in ends[0].message
    # the goal is measured whatever the arms send next, but needs the program's goal
    assert check_split_winners("f.yaml", program({"metric": "goal"}, b_next=None)) == []
    no_goal = check_split_winners("f.yaml", program({"metric": "goal"}, goal=False))
    assert len(no_goal) == 1 and "no goal" in no_goal[0].message


# -- the decision ------------------------------------------------------------------------------
def rows(per_arm: dict[str, tuple[int, int]], metric: str = "opened") -> list[dict[str, Any]]:
    """The program's ledger rows: ``n`` members per arm reached the split, their arm's email
    was sent, ``k`` of them opened (clicked, converted)."""
    out: list[dict[str, Any]] = []
    at = iso(T0)
    for arm, (n, k) in per_arm.items():
        for i in range(n):
            cid, entry = f"{arm}{i}", f"ab-test-{arm}{i}"
            out.append(
                {
                    "pk": cid,
                    "sk": f"STEP#{entry}#offer",
                    "kind": "STEP",
                    "program": "ab-test",
                    "step": "offer",
                    "execution": entry,
                    "decision": f"arm:{arm}",
                    "at": at,
                }
            )
            message: dict[str, Any] = {
                "pk": cid,
                "sk": f"MSG#{entry}#send_{arm}",
                "kind": "MSG",
                "program": "ab-test",
                "status": "sent",
                "at": at,
            }
            if i < k and metric == "opened":
                message["open_at"] = at
            if i < k and metric == "clicked":
                message["click_at"] = at
            out.append(message)
            if i < k and metric == "goal":
                out.append(
                    {
                        "pk": cid,
                        "sk": f"CONV#{i}",
                        "kind": "CONV",
                        "program": "ab-test",
                        "decision": "converted",
                        "execution": entry,
                        "at": at,
                    }
                )
    return out


@pytest.mark.parametrize("metric", ["opened", "clicked", "goal"])
def test_clear_data_decides_with_its_evidence(metric: str) -> None:
    p = program({"metric": metric})
    split = winner_splits(p)[0]
    outcome, decision = check_split(
        p, split, rows({"a": (2000, 200), "b": (2000, 320)}, metric), T0
    )
    assert outcome.winner == "b" and decision is not None
    assert decision.winner == "b" and decision.metric == metric
    assert decision.arms["a"].exposed == 2000 and decision.arms["a"].converted == 200
    assert decision.arms["b"].converted == 320
    item = decision.item()
    assert item["p_value"] <= 0.05 and item["alpha"] == 0.05 and item["decided_at"] == iso(T0)
    assert item["arms"]["b"] == {"reached": 2000, "exposed": 2000, "converted": 320}
    assert item["interval"][0] > 0  # the always-valid interval excludes no difference


def test_no_decision_below_the_minimum_nor_on_equal_arms() -> None:
    p = program({"metric": "opened", "min_per_arm": 100})
    split = winner_splits(p)[0]
    # a large difference, but one arm below its minimum
    outcome, decision = check_split(p, split, rows({"a": (99, 5), "b": (400, 200)}), T0)
    assert decision is None and outcome.winner is None and "fewer than 100" in outcome.reason
    # A/A-like data above the minimum
    outcome, decision = check_split(p, split, rows({"a": (1500, 150), "b": (1500, 156)}), T0)
    assert decision is None and outcome.winner is None


def test_only_sent_messages_are_exposed_and_other_programs_rows_do_not_count() -> None:
    p = program({"metric": "opened"})
    split = winner_splits(p)[0]
    data = rows({"a": (3, 1), "b": (2, 2)})
    data[1]["status"] = "suppressed"  # a0's message: never sent, so not exposed
    data.append({**data[0], "program": "other", "pk": "x"})
    counts = count_arms(p, split, data)
    assert (counts["a"].reached, counts["a"].exposed, counts["a"].converted) == (3, 2, 0)
    assert (counts["b"].reached, counts["b"].exposed, counts["b"].converted) == (2, 2, 2)


def test_a_message_whose_clicks_cannot_be_seen_is_not_exposed_for_clicks() -> None:
    """The campaigns' rule (kizuna.delivery.ledger.clicks_measurable): a message sent with its
    links untracked is left out of ``clicked``'s exposed, not counted a non-click; ``opened``
    still measures it."""
    data = rows({"a": (3, 1), "b": (2, 2)}, "clicked")
    # a1's and a2's messages (not clicked) went with their links untracked
    for message in (data[3], data[5]):
        message["links_untracked"] = True
    clicked = program({"metric": "clicked"})
    counts = count_arms(clicked, winner_splits(clicked)[0], data)
    assert (counts["a"].reached, counts["a"].exposed, counts["a"].converted) == (3, 1, 1)
    assert (counts["b"].reached, counts["b"].exposed, counts["b"].converted) == (2, 2, 2)
    opened = program({"metric": "opened"})
    counts = count_arms(opened, winner_splits(opened)[0], data)
    assert (counts["a"].reached, counts["a"].exposed) == (3, 3)


# -- the daily look and the assignment after it ------------------------------------------------
def seeded_store(p: Program, per_arm: dict[str, tuple[int, int]]) -> MemoryStore:
    store = MemoryStore()
    for row in rows(per_arm):
        if row["kind"] == "STEP":
            cid, entry = row["pk"], row["execution"]
            store.record_steps(
                "offer",
                [(cid, entry, {k: v for k, v in row.items() if k not in ("pk", "sk", "kind")})],
            )
        else:
            data = {k: v for k, v in row.items() if k not in ("pk", "sk", "kind")}
            _, entry, step = row["sk"].split("#")
            store.record_message(row["pk"], entry, step, data)
    return store


def test_the_daily_look_decides_once_and_a_second_look_changes_nothing() -> None:
    p = program({"metric": "opened"})
    store = seeded_store(p, {"a": (1500, 150), "b": (1500, 260)})
    assert check_winners([p], store, T0) == 1
    first = dict(store.winners[("ab-test", "offer")])
    assert first["winner"] == "b" and first["kind"] == "WINNER"
    # the decision is in the program's ledger (its index)
    assert [r["winner"] for r in store.program_ledger("ab-test") if r.get("kind") == "WINNER"] == [
        "b"
    ]
    # a day later, with more data that would now favour a: nothing changes
    more = seeded_store(p, {"a": (3000, 900), "b": (1500, 260)})
    more.winners = store.winners
    assert check_winners([p], more, T0 + timedelta(days=1)) == 0
    assert more.winners[("ab-test", "offer")] == first


def test_an_undecided_look_records_nothing() -> None:
    p = program({"metric": "opened"})
    store = seeded_store(p, {"a": (50, 5), "b": (50, 30)})
    assert check_winners([p], store, T0) == 0
    assert store.winners == {}


def customer(cid: str) -> Customer:
    return Customer(
        customer_id=cid,
        email=f"{cid}@example.com",
        orders={"o1": OrderFact(placed=True, at=T0)},
        order_count=1,
        first_order_at=T0,
        last_order_at=T0,
        consent={"email": ConsentState(status="opted_in", at=T0, source="t", stamp="x")},
    )


def first_purchase(cid: str) -> IncomingEvent:
    return IncomingEvent(
        event_id=f"{cid}:first_purchase",
        detail_type="customer.first_purchase",
        time=T0,
        detail={"customer_id": cid, "order_id": "o1", "total": 3000},
    )


def test_after_a_decision_new_entries_get_the_winner_and_members_keep_their_arm() -> None:
    p = program({"metric": "opened"})
    cids = [f"c{i}" for i in range(40)]
    on_a = [c for c in cids if assign_arms(p, c)["offer"] == "a"]
    assert on_a  # the hash puts some on the losing arm
    store = seeded_store(p, {"a": (1500, 150), "b": (1500, 260)})
    for cid in cids:
        store.customers[cid] = customer(cid)
    ev = Evaluator([p], store, MemoryStarter(), MemoryPublisher(), KizunaConfig(), FixedClock(T0))
    # given a member who entered (on arm a) before the decision
    early = on_a[0]
    ev.evaluate([first_purchase(early)])
    assert store.journeys[(early, "ab-test")].arms == {"offer": "a"}
    # when the daily look decides for b
    assert check_winners([p], store, T0 + timedelta(hours=1)) == 1
    # then new entries all get b, whatever their hash says
    ev.evaluate([first_purchase(c) for c in cids if c != early])
    arms = {c: store.journeys[(c, "ab-test")].arms["offer"] for c in cids if c != early}
    assert set(arms.values()) == {"b"}
    # and the member who entered before keeps a (journey state and cohort member alike)
    state: JourneyState = store.journeys[(early, "ab-test")]
    assert state.arms == {"offer": "a"}
    members = [m for found in store.members.values() for m in found.values()]
    assert {m.customer_id: m.arms["offer"] for m in members}[early] == "a"
    # the winner at a split that no longer has that arm is ignored
    assert assign_arms(p, "z", {"offer": "gone"})["offer"] in {"a", "b"}
