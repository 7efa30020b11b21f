"""Engagement branches (issue 19, item 3): "opened / clicked / converted after step S within N
hours", checked at load (the step, the channels, the paths, the wait), compiled like any
branch, decided per member on the ledger as it is when the branch runs, and explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.delivery.channels import HttpResponse, LinePush
from kizuna.delivery.links import TrackedLinks
from kizuna.delivery.templates import Renderer
from kizuna.delivery.why import explain
from kizuna.domain.timestamps import iso
from kizuna.programs.cohorts import cohort_id, run_name
from kizuna.programs.compiler import compile_program
from kizuna.programs.diagram import mermaid
from kizuna.programs.journeys import JourneyState
from kizuna.programs.loader import ProgramError, load_program
from kizuna.programs.members import ROOT, Member
from kizuna.programs.model import Program
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig, TrackedLinksConfig
from kizuna.services.cohort import CohortService
from kizuna.services.contracts import GroupRequest
from kizuna.services.send import SendRequest
from kizuna_tools.fakes import MemoryStarter, MemoryStore
from tests import factories
from tests.factories import LINE_USER, opted_in

HEAD = """
id: engaged
name: Engaged
trigger: {event: customer.first_purchase}
goal: {event: order.placed, within_days: 30, exit_journey: false}
steps:
"""
GOOD = (
    HEAD
    + """
  - {id: coupon, type: send, channels: [email], template: coupon}
  - {id: wait_open, type: wait, days: 2}
  - id: opened
    type: branch
    engagement: {step: coupon, event: opened, within_hours: 48}
    then: done
    else: line_coupon
  - {id: line_coupon, type: send, channels: [line], template: coupon, next: done}
  - {id: done, type: exit}
"""
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engaged.yaml"
    path.write_text(text)
    return path


def issues(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProgramError) as info:
        load_program(write(tmp_path, text))
    return [str(i) for i in info.value.issues]


# --- the model and the loader ---------------------------------------------------------------
def test_an_engagement_branch_loads_compiles_and_reads_in_the_diagram(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, GOOD))
    states = compile_program(program)["States"]
    # a branch like any other: one invocation of the journey function over the group
    assert states["opened"]["Parameters"]["Payload"]["action"] == "check"
    assert states["opened"]["Parameters"]["FunctionName"] == "${JourneyFunctionArn}"
    assert states["opened"]["End"] is True  # then: the exit
    assert states["wait_open"] == {"Type": "Wait", "Seconds": 172800, "Next": "opened"}
    diagram = mermaid(program)
    assert 'opened{"opened coupon within 48 h?"}' in diagram
    assert "opened -- no --> line_coupon" in diagram


def test_a_branch_needs_exactly_one_of_condition_and_engagement(tmp_path: Path) -> None:
    both = GOOD.replace(
        "    engagement: {step: coupon, event: opened, within_hours: 48}\n",
        "    engagement: {step: coupon, event: opened, within_hours: 48}\n"
        "    condition: {rank: [Gold]}\n",
    )
    neither = GOOD.replace("    engagement: {step: coupon, event: opened, within_hours: 48}\n", "")
    for text in (both, neither):
        (problem,) = issues(tmp_path, text)
        assert "[step opened]" in problem
        assert "a branch needs exactly one of condition or engagement" in problem


@pytest.mark.parametrize(
    ("engagement", "message"),
    [
        ("{step: coupon, event: read, within_hours: 48}", "engagement.event: Input should be"),
        ("{step: coupon, event: opened, within_hours: 0}", "engagement.within_hours:"),
        ("{step: coupon, event: opened, within_hours: 721}", "engagement.within_hours:"),
        ("{step: coupon, event: opened}", "engagement.within_hours: Field required"),
        ("{step: coupon, event: opened, within_hours: 4, at: x}", "engagement.at: unknown field"),
        ("{step: nope, event: opened, within_hours: 48}", "engagement.step: no step 'nope'"),
        (
            "{step: wait_open, event: opened, within_hours: 48}",
            "engagement.step: 'wait_open' is a wait step; name a send step",
        ),
    ],
)
def test_what_an_engagement_says_is_checked(tmp_path: Path, engagement: str, message: str) -> None:
    text = GOOD.replace("{step: coupon, event: opened, within_hours: 48}", engagement)
    found = issues(tmp_path, text)
    assert any(message in i and "[step opened]" in i for i in found), found


def test_the_send_must_come_before_the_branch_on_every_path(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
  - id: gold
    type: branch
    condition: {rank: [Gold]}
    then: coupon
    else: wait_open
  - {id: coupon, type: send, channels: [email], template: coupon}
  - {id: wait_open, type: wait, days: 2}
  - id: opened
    type: branch
    engagement: {step: coupon, event: opened, within_hours: 48}
    then: done
    else: line_coupon
  - {id: line_coupon, type: send, channels: [line], template: coupon, next: done}
  - {id: done, type: exit}
"""
    )
    (problem,) = issues(tmp_path, text)
    assert problem.endswith(
        "[step opened]: engagement.step: 'coupon' must come before the branch on every path "
        "to it; this one does not pass it: gold -> wait_open -> opened"
    )


def test_opens_and_clicks_are_refused_on_channels_that_report_neither(tmp_path: Path) -> None:
    text = GOOD.replace(
        "channels: [email], template: coupon}",
        "channels: [email, line, push], template: coupon}",
        1,
    )
    (problem,) = issues(tmp_path, text)
    # push reports opens (the app's push.opened), LINE reports clicks of its tracked links only
    assert "engagement.event: 'opened' is measured for card, email or push only" in problem
    assert "step 'coupon' may send on line, whose" in problem
    clicked = text.replace("event: opened", "event: clicked")
    (problem,) = issues(tmp_path, clicked)
    assert "'clicked' is measured for card, email or line only" in problem
    assert "step 'coupon' may send on push, whose" in problem
    # a conversion is measured whatever the channel
    converted = text.replace("event: opened", "event: converted")
    assert load_program(write(tmp_path, converted)).step("opened")


def test_a_push_open_may_be_tested_but_not_a_push_click(tmp_path: Path) -> None:
    text = GOOD.replace(
        "channels: [email], template: coupon}", "channels: [push], template: coupon}", 1
    )
    assert load_program(write(tmp_path, text)).step("opened")
    clicked = text.replace("event: opened", "event: clicked")
    (problem,) = issues(tmp_path, clicked)
    assert "'clicked' is measured for card, email or line only" in problem


def test_a_line_click_may_be_tested_but_not_a_line_open(tmp_path: Path) -> None:
    text = GOOD.replace(
        "channels: [email], template: coupon}", "channels: [line], template: coupon}", 1
    )
    clicked = text.replace("event: opened", "event: clicked")
    assert load_program(write(tmp_path, clicked)).step("opened")
    (problem,) = issues(tmp_path, text)
    assert "'opened' is measured for card, email or push only" in problem


def test_a_card_seen_or_clicked_may_be_tested(tmp_path: Path) -> None:
    text = GOOD.replace(
        "channels: [email], template: coupon}", "channels: [card], template: coupon}", 1
    )
    assert load_program(write(tmp_path, text)).step("opened")
    clicked = text.replace("event: opened", "event: clicked")
    assert load_program(write(tmp_path, clicked)).step("opened")


def test_converted_needs_a_goal(tmp_path: Path) -> None:
    text = GOOD.replace("goal: {event: order.placed, within_days: 30, exit_journey: false}\n", "")
    text = text.replace("event: opened", "event: converted")
    (problem,) = issues(tmp_path, text)
    assert "'converted' means the program's goal was reached; this program has no goal" in problem


def test_the_branch_may_not_decide_while_the_window_is_open(tmp_path: Path) -> None:
    text = GOOD.replace(
        "{id: wait_open, type: wait, days: 2}",
        "{id: wait_open, type: wait, days: 1, hours: 12, until_local_time: '10:00'}",
    )
    (problem,) = issues(tmp_path, text)
    assert problem.endswith(
        "engagement.within_hours: the branch can run 36 h after 'coupon' "
        "(coupon -> wait_open -> opened), while its 48 h window is still open; wait at least "
        "48 h between them"
    )
    # a window the wait covers is fine
    assert load_program(write(tmp_path, GOOD.replace("within_hours: 48", "within_hours: 12")))


def test_a_shortcut_around_the_wait_is_refused(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
  - {id: coupon, type: send, channels: [email], template: coupon}
  - id: gold
    type: branch
    condition: {rank: [Gold]}
    then: opened
    else: wait_open
  - {id: wait_open, type: wait, days: 3, next: opened}
  - id: opened
    type: branch
    engagement: {step: coupon, event: clicked, within_hours: 24}
    then: done
    else: line_coupon
  - {id: line_coupon, type: send, channels: [line], template: coupon, next: done}
  - {id: done, type: exit}
"""
    )
    (problem,) = issues(tmp_path, text)
    assert "the branch can run 0 h after 'coupon' (coupon -> gold -> opened)" in problem


# --- deciding on the ledger -------------------------------------------------------------------
CFG = KizunaConfig()
NOW = datetime(2026, 1, 7, 1, 0, tzinfo=UTC)  # the branch runs two days after the send
SENT = NOW - timedelta(hours=48)


@pytest.fixture
def program(tmp_path: Path) -> Program:
    return load_program(write(tmp_path, GOOD))


def world(
    program: Program, entries: dict[str, dict[str, Any] | None]
) -> tuple[CohortService, MemoryStore, MemoryStarter, str]:
    """Members ``entries`` (customer -> their ledger entry of ``coupon``, None: none)."""
    store, starter = MemoryStore(), MemoryStarter()
    cohort = cohort_id(program.id, SENT.replace(minute=0))
    for cid, entry in entries.items():
        store.customers[cid] = factories.customer(
            cid, email=f"{cid}@example.jp", consent=opted_in("email")
        )
        member = Member(cid, f"{program.id}-{cid}", SENT - timedelta(hours=1), {})
        store.members.setdefault(cohort, {})[member.sk] = member
        if entry is not None:
            store.messages[(cid, f"MSG#{member.entry}#coupon")] = entry
    service = CohortService([program], store, starter, CFG, FixedClock(NOW))
    return service, store, starter, cohort


def check(service: CohortService, cohort: str, step: str = "opened") -> dict[str, Any]:
    req = GroupRequest(
        action="check",
        program=next(iter(service.programs)),
        cohort=cohort,
        group=ROOT,
        run=run_name(cohort, ROOT),
        step=step,
    )
    return service.handle(req)


def sent(**stamps: datetime) -> dict[str, Any]:
    return {
        "status": "sent",
        "channel": "email",
        "at": iso(SENT - timedelta(seconds=2)),
        "sent_at": iso(SENT),
        **{k: iso(v) for k, v in stamps.items()},
    }


def row(store: MemoryStore, cid: str) -> dict[str, Any]:
    return store.steps[(cid, f"STEP#engaged-{cid}#opened")]


def test_opened_in_time_stays_and_everyone_else_goes_to_the_line_follow_up(
    program: Program,
) -> None:
    # given: a opened 5 h after the send, b 50 h after (too late), c never, d clicked
    # without an open event (images blocked), e was suppressed, f has no entry at all
    service, store, starter, cohort = world(
        program,
        {
            "a": sent(open_at=SENT + timedelta(hours=5)),
            "b": sent(open_at=SENT + timedelta(hours=50)),
            "c": sent(delivery_at=SENT + timedelta(seconds=1)),
            "d": sent(click_at=SENT + timedelta(hours=1)),
            "e": {"status": "suppressed", "reason": "frequency_cap_day", "at": iso(SENT)},
            "f": None,
        },
    )
    # when: the branch runs
    check(service, cohort)
    # then: the openers stay on `then` (the exit: the execution ends), the others go on to
    # the LINE send in a child group
    assert {m.customer_id for m in store.cohort_members(cohort, ROOT)} == {"a", "d"}
    (child,) = store.cohort_children(cohort, ROOT, "opened")
    assert child.step == "line_coupon"
    moved = {m.customer_id for m in store.cohort_members(cohort, child.group)}
    assert moved == {"b", "c", "e", "f"}
    assert [p["step"] for _, p in starter.started.values()] == ["line_coupon"]
    # and each decision says why, in the ledger
    assert row(store, "a")["decision"] == "then"
    assert row(store, "a")["engagement"] == {
        "step": "coupon",
        "event": "opened",
        "within_hours": 48,
        "sent_at": iso(SENT),
        "found": iso(SENT + timedelta(hours=5)),
        "hours": 5.0,
    }
    assert row(store, "b")["decision"] == "else" and row(store, "b")["reason"] == "not_engaged"
    assert row(store, "b")["engagement"]["hours"] == 50.0
    assert (
        row(store, "c")["reason"] == "not_engaged" and "found" not in row(store, "c")["engagement"]
    )
    assert row(store, "e")["reason"] == "not_sent"
    assert row(store, "e")["engagement"]["status"] == "suppressed"
    assert row(store, "f")["reason"] == "not_sent" and "status" not in row(store, "f")["engagement"]
    assert row(store, "f")["next_run"] == run_name(cohort, child.group)
    assert store.engagement_reads == 1  # one batch for the group


def test_a_retried_branch_decides_the_same_and_moves_nobody_twice(program: Program) -> None:
    service, store, starter, cohort = world(
        program,
        {"a": sent(open_at=SENT + timedelta(hours=1)), "b": sent(), "c": None},
    )
    check(service, cohort)
    first = {k: dict(v) for k, v in store.steps.items()}
    check(service, cohort)  # Step Functions retried the task
    assert store.steps == first
    assert len(store.cohort_children(cohort, ROOT, "opened")) == 1
    assert len(starter.started) == 1
    assert len({m.sk for group in store.members.values() for m in group.values()}) == 3


def test_clicked_and_converted_read_their_own_stamps(tmp_path: Path) -> None:
    clicked = load_program(write(tmp_path, GOOD.replace("event: opened", "event: clicked")))
    service, store, _, cohort = world(
        clicked,
        {
            "a": sent(open_at=SENT + timedelta(hours=1)),
            "b": sent(click_at=SENT + timedelta(hours=2)),
        },
    )
    check(service, cohort)
    assert row(store, "a")["decision"] == "else" and row(store, "b")["decision"] == "then"

    converted = load_program(write(tmp_path, GOOD.replace("event: opened", "event: converted")))
    service, store, _, cohort = world(
        converted,
        {"a": sent(open_at=SENT + timedelta(hours=1)), "b": sent(), "c": sent(), "d": sent()},
    )

    def goal(cid: str, at: datetime, execution: str | None = None) -> None:
        store.journeys[(cid, "engaged")] = JourneyState(
            customer_id=cid,
            program="engaged",
            execution=f"engaged-{cid}",
            goal_reached_at=at,
            converted_execution=execution or f"engaged-{cid}",
        )

    goal("b", SENT + timedelta(hours=30))  # this entry converted in time
    goal("c", SENT + timedelta(hours=30), execution="engaged-older")  # an earlier entry's
    goal("d", SENT - timedelta(hours=2))  # before the message
    check(service, cohort)
    assert [row(store, c)["decision"] for c in "abcd"] == ["else", "then", "else", "else"]
    assert row(store, "d")["engagement"]["hours"] == -2.0


def test_a_click_branch_does_not_read_untracked_links_as_not_clicked(tmp_path: Path) -> None:
    """A LINE coupon sent with its links untracked (tracked, its text was over LINE's
    limit): no click of it can be stamped, so its silence is no "did not click". The member
    goes to ``else`` as one sent nothing does (nothing is known to have happened), recorded
    ``not_measured``, never ``not_engaged``."""
    clicked = load_program(write(tmp_path, GOOD.replace("event: opened", "event: clicked")))
    line = {"channel": "line"}
    # given: a's links went untracked, b's were tracked and not clicked, c's untracked but a
    # click stamped all the same (read as any click)
    service, store, _, cohort = world(
        clicked,
        {
            "a": {**sent(), **line, "links_untracked": True},
            "b": {**sent(), **line},
            "c": {**sent(click_at=SENT + timedelta(hours=3)), **line, "links_untracked": True},
        },
    )
    # when: the branch runs
    check(service, cohort)
    # then
    a, b, c = (row(store, cid) for cid in "abc")
    assert (a["decision"], a["reason"]) == ("else", "not_measured")
    assert a["engagement"] == {
        "step": "coupon",
        "event": "clicked",
        "within_hours": 48,
        "sent_at": iso(SENT),
        "links_untracked": True,
    }
    why = explain({"kind": "STEP", **a}, "en").text
    assert why.endswith("whether a link was clicked could not be seen.")
    assert (b["decision"], b["reason"]) == ("else", "not_engaged")
    assert c["decision"] == "then" and c["engagement"]["hours"] == 3.0


class LineApi:
    """LINE's push endpoint, answering as LINE does."""

    def post(self, url: str, headers: Any, body: bytes, timeout: float) -> HttpResponse:
        return HttpResponse(200, {}, json.dumps({"sentMessages": [{"id": "4612309"}]}).encode())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # its only link is to a host tracked_links.hosts does not declare: sent as written,
        # a click of it could never show
        ("Sale: https://elsewhere.example/sale", "not_measured"),
        # its link tracked and not clicked
        ("Sale: https://shop.example/sale", "not_engaged"),
        # no link: nothing could be clicked, a fact (as for an email without a link)
        ("Sale today", "not_engaged"),
    ],
)
def test_a_click_branch_on_a_line_message_without_a_tracked_link_is_not_measured(
    tmp_path: Path, text: str, reason: str
) -> None:
    """The send step's LINE message goes through the LINE adapter as deployed (links to the
    declared hosts tracked); the clicked branch two days later reads its ledger entry. A
    message whose links all went untracked sends the member to ``else`` as ``not_measured``,
    never ``not_engaged`` (its silence is no "did not click")."""
    clicked = GOOD.replace(
        "channels: [email], template: coupon}", "channels: [line], template: coupon}"
    )
    program = load_program(write(tmp_path, clicked.replace("event: opened", "event: clicked")))
    folder = tmp_path / "templates" / "engaged" / "coupon" / "ja"
    folder.mkdir(parents=True)
    (folder / "line.txt.j2").write_text(text)
    store, starter = MemoryStore(), MemoryStarter()
    cohort = cohort_id(program.id, SENT.replace(minute=0))
    store.customers["a"] = factories.customer("a", line_user_id=LINE_USER, consent=opted_in("line"))
    member = Member("a", f"{program.id}-a", SENT - timedelta(hours=1), {})
    store.members.setdefault(cohort, {})[member.sk] = member
    tracked = TrackedLinks(
        "https://links.example/",
        b"k" * 32,
        hosts=TrackedLinksConfig(hosts=("shop.example",)),
        now=lambda: SENT,
    )
    # given: the coupon step sent on LINE
    sender = factories.send_service(
        store,
        {"line": LinePush(lambda: "token", LineApi(), links=tracked)},
        FixedClock(SENT),
        programs=[program],
    )
    sender.renderer = Renderer(tmp_path / "templates")
    request = SendRequest(
        program=program.id,
        step="coupon",
        customer_id="a",
        execution=member.entry,
        entered_at=member.entered_at,
    )
    assert (
        sender.send(request).status,
        store.messages[("a", f"MSG#{member.entry}#coupon")]["channel"],
    ) == ("sent", "line")
    # when: the clicked branch runs, nobody having clicked
    service = CohortService([program], store, starter, CFG, FixedClock(NOW))
    check(service, cohort)
    # then
    assert (row(store, "a")["decision"], row(store, "a")["reason"]) == ("else", reason)


# --- the feedback stamps keep the first open ---------------------------------------------------
def test_a_later_open_never_moves_open_at() -> None:
    store = MemoryStore()
    store.messages[("a", "MSG#ex#coupon")] = sent()
    first, second = iso(SENT + timedelta(hours=2)), iso(SENT + timedelta(hours=60))
    assert store.stamp_message("a", "ex", "coupon", "open_at", second)
    assert store.stamp_message("a", "ex", "coupon", "open_at", first)  # redelivered late
    assert not store.stamp_message("a", "ex", "coupon", "open_at", second)
    assert store.messages[("a", "MSG#ex#coupon")]["open_at"] == first


# --- why ---------------------------------------------------------------------------------------
STEP = {"kind": "STEP", "program": "engaged", "step": "opened", "at": iso(NOW)}
ENG = {"step": "coupon", "event": "opened", "within_hours": 48, "sent_at": iso(SENT)}


@pytest.mark.parametrize(
    ("row_", "en", "ja"),
    [
        (
            {**STEP, "decision": "then", "engagement": {**ENG, "found": "x", "hours": 5.5}},
            "Branch opened: the message of step coupon was opened 5.5 h after it was sent, "
            "within 48 h (then).",
            "分岐 opened: ステップ coupon のメッセージは送信から 5.5 時間後に開封されました "
            "(48 時間以内、then)。",
        ),
        (
            {**STEP, "decision": "else", "reason": "not_engaged", "engagement": ENG},
            "Branch opened: the other side (else): the message of step coupon (sent 2026-01-05 "
            "01:00 UTC) was not opened within 48 h.",
            "分岐 opened: else 側へ: ステップ coupon のメッセージ (2026-01-05 01:00 UTC 送信)は "
            "48 時間以内に開封されませんでした。",
        ),
        (
            {
                **STEP,
                "decision": "else",
                "reason": "not_engaged",
                "engagement": {**ENG, "found": "x", "hours": 52},
            },
            "Branch opened: the other side (else): the message of step coupon was opened 52 h "
            "after it was sent, later than 48 h.",
            "分岐 opened: else 側へ: ステップ coupon のメッセージは送信から 52 時間後に開封され"
            "ました (48 時間を過ぎていました)。",
        ),
        (
            {
                **STEP,
                "decision": "else",
                "reason": "not_engaged",
                "engagement": {**ENG, "event": "converted", "found": "x", "hours": -2},
            },
            "Branch opened: the other side (else): the goal was reached before the message of "
            "step coupon was sent.",
            "分岐 opened: else 側へ: ステップ coupon のメッセージ送信前にゴールに到達していました。",
        ),
        (
            {
                **STEP,
                "decision": "else",
                "reason": "not_sent",
                "engagement": {
                    "step": "coupon",
                    "event": "opened",
                    "within_hours": 48,
                    "status": "suppressed",
                },
            },
            "Branch opened: the other side (else): step coupon sent this customer no message "
            "(its ledger entry: suppressed).",
            "分岐 opened: else 側へ: ステップ coupon ではこの顧客にメッセージを送っていません "
            "(記録: suppressed)。",
        ),
    ],
)
def test_engagement_decisions_read_in_both_languages(
    row_: dict[str, Any], en: str, ja: str
) -> None:
    assert explain(row_, "en").text == en
    assert explain(row_, "ja").text == ja
    assert explain(row_, "en").outcome == row_["decision"]
