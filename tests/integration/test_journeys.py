"""The seven seed programs on the local runtime (real template, virtual clock): who got
what, on which channel and when — and who did not, and why.

Entries travel in cohorts (kizuna.programs.cohorts): a program whose first step is a send
sends at the end of the cohort window its entry fell in (``cohort_minutes``, 60 by
default), unless it starts at once (``start: at_once``: rank-up and cart-abandonment), so
these tests let that hour pass (``settle``) before they look."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.delivery.why import explain
from kizuna.programs.journeys import assign_arms, in_holdout
from kizuna.programs.loader import load_programs
from kizuna_tools.local.bus_policy import acting_as, role_of
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.conftest import START

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = {p.id: p for p in load_programs(ROOT / "programs")[0]}


def treated(program: str, prefix: str) -> str:
    return next(
        f"{prefix}{i}" for i in range(500) if not in_holdout(PROGRAMS[program], f"{prefix}{i}")
    )


def held_out(program: str, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(500) if in_holdout(PROGRAMS[program], f"{prefix}{i}"))


def put(
    cloud: LocalCloud, detail_type: str, detail: dict[str, Any], source: str = "com.example.shop"
) -> None:
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    cloud.put_events([{"Source": source, "DetailType": detail_type, "Detail": detail}])
    cloud.drain()


def signup(
    cloud: LocalCloud,
    cid: str,
    *,
    locale: str = "ja",
    channels: tuple[str, ...] = ("email",),
    name: str = "花子",
) -> None:
    put(
        cloud,
        "customer.upserted",
        {
            "customer_id": cid,
            "email": f"{cid}@example.jp",
            "phone": "+819012345678",
            "first_name": name,
            "last_name": "山田",
            "locale": locale,
            "time_zone": "Asia/Tokyo" if locale == "ja" else "America/New_York",
        },
    )
    if "push" in channels:
        put(
            cloud,
            "device.registered",
            {"customer_id": cid, "platform": "FCM", "token": f"fcm-token-{cid}-0123456789"},
        )
    if "line" in channels:
        put(cloud, "line.linked", {"customer_id": cid, "line_user_id": "U" + "a" * 32})
    for channel in channels:
        put(
            cloud, "consent.changed", {"customer_id": cid, "channel": channel, "status": "opted_in"}
        )


def order(cloud: LocalCloud, cid: str, oid: str, total: int) -> None:
    put(
        cloud,
        "order.placed",
        {
            "customer_id": cid,
            "order_id": oid,
            "total": str(total),
            "currency": "JPY",
            "channel": "web",
            "lines": [
                {
                    "product_id": "tea-009",
                    "category": "tea",
                    "quantity": 1,
                    "unit_price": str(total),
                }
            ],
        },
    )


def ledger(cloud: LocalCloud, cid: str, kind: str) -> list[dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    items = [i for i in cloud.scan(table) if i["pk"] == cid and i.get("kind") == kind]
    return sorted(items, key=lambda i: str(i.get("at", i["sk"])))


def sent(cloud: LocalCloud, cid: str) -> list[tuple[str, str, str]]:
    return [
        (m["program"], m["step"], m["channel"])
        for m in ledger(cloud, cid, "MSG")
        if m["status"] == "sent"
    ]


def emails_to(cloud: LocalCloud, cid: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cloud.outbox("email")
        if f"{cid}@example.jp"
        in json.dumps(e.get("destinations", e.get("request", "")), default=str)
    ]


def scoring_names_a_champion(cloud: LocalCloud, cid: str, event: dict[str, Any]) -> None:
    """What the daily scoring does for a new Champion: save the scores and segment, and
    announce it as the score function (the bus refuses source ``kizuna`` from anyone else,
    and evaluate checks the claim against the saved segment)."""
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].name
    scores = {":r": event["recency"], ":f": event["frequency"], ":m": event["monetary"]}
    cloud.client("dynamodb").update_item(
        TableName=table,
        Key={"customer_id": {"S": cid}},
        UpdateExpression=(
            "SET rfm_segment = :s, rfm_recency = :r, rfm_frequency = :f, rfm_monetary = :m "
            "ADD version :one"
        ),
        ExpressionAttributeValues={
            ":s": {"S": event["to_segment"]},
            ":one": {"N": "1"},
            **{k: {"N": str(v)} for k, v in scores.items()},
        },
    )
    detail = {"occurred_at": cloud.clock.now().isoformat(), **event}
    with acting_as(role_of(cloud.template, "score")):
        [result] = cloud.put_events(
            [{"Source": "kizuna", "DetailType": "customer.segment_changed", "Detail": detail}]
        )
    assert "ErrorCode" not in result, result
    cloud.drain()


def settle(cloud: LocalCloud) -> None:
    """Let the cohort window pass (a step runs at most ``cohort_minutes`` late)."""
    cloud.advance(minutes=max(p.cohort_minutes for p in PROGRAMS.values()))


def test_second_purchase_coupon_then_reminder_and_exit_on_goal(cloud: LocalCloud) -> None:
    a = treated("second-purchase-coupon", "a")
    b = treated("second-purchase-coupon", "b")
    h = held_out("second-purchase-coupon", "h")
    # given three new customers with email and LINE
    for cid in (a, b, h):
        signup(cloud, cid, channels=("email", "line"))
        order(cloud, cid, f"o-{cid}-1", 3000)
    # when a day passes (the coupon waits for 10:00 local the next day)
    cloud.advance(days=1, hours=2)
    # then the treated customers got the coupon by email, the holdout nothing
    assert sent(cloud, a) == [("second-purchase-coupon", "coupon", "email")]
    assert sent(cloud, b) == [("second-purchase-coupon", "coupon", "email")]
    assert sent(cloud, h) == []
    coupon_mail = ledger(cloud, a, "MSG")[0]
    assert coupon_mail["coupon"].startswith("KZ-")
    assert coupon_mail["at"].startswith("2026-01-06T01:00")  # 10:00 in Tokyo
    assert [e["decision"] for e in ledger(cloud, h, "ENTRY")] == ["holdout"]
    # b orders again: the goal; a does not
    order(cloud, b, f"o-{b}-2", 2000)
    cloud.advance(days=8)
    # a gets the reminder on LINE (first of line, push, email); b's journey ended
    assert sent(cloud, a)[-1] == ("second-purchase-coupon", "reminder", "line")
    assert [s for s in sent(cloud, b) if s[0] == "second-purchase-coupon"] == [
        ("second-purchase-coupon", "coupon", "email")
    ]
    assert "second-purchase-coupon" in [c["program"] for c in ledger(cloud, b, "CONV")]
    # (b's second order started other programs: the post-purchase recommendation...)
    assert ("post-purchase-recommendation", "recommend", "email") in sent(cloud, b)
    line = [m for m in cloud.outbox("line") if m["to"] == "U" + "a" * 32]
    assert "クーポン" in line[-1]["messages"][0]["text"]


def test_rank_up_congratulation_lists_the_new_benefits(cloud: LocalCloud) -> None:
    cid = treated("rank-up-congratulations", "r")
    signup(cloud, cid, locale="en", name="<script>alert(1)</script>")
    order(cloud, cid, "o-r1", 12000)  # 120 points: Silver (demo thresholds)
    settle(cloud)
    assert ("rank-up-congratulations", "congratulate", "email") in sent(cloud, cid)
    mail = emails_to(cloud, cid)[-1]
    body = json.dumps(mail, ensure_ascii=False, default=str)
    assert "Silver" in body and "Free shipping over 3,000 yen" in body
    assert "<script>alert(1)</script>" not in str(mail.get("body", ""))  # escaped in HTML


def test_rank_up_congratulates_at_once_and_the_week_after_goes_on_in_its_cohort(
    cloud: LocalCloud,
) -> None:
    # start: at_once — a customer on the split's "benefits" arm (stable hash)
    program = PROGRAMS["rank-up-congratulations"]
    assert program.start == "at_once"
    cid = next(
        f"ra{i}"
        for i in range(500)
        if not in_holdout(program, f"ra{i}")
        and assign_arms(program, f"ra{i}")["split_followup"] == "benefits"
    )
    signup(cloud, cid, locale="en")
    order(cloud, cid, "o-ra1", 12000)  # Silver
    # sent while the order's events were processed: no cohort window to wait for
    assert ("rank-up-congratulations", "congratulate", "email") in sent(cloud, cid)
    (entry,) = [e for e in ledger(cloud, cid, "ENTRY") if e["program"] == program.id]
    (msg,) = [m for m in ledger(cloud, cid, "MSG") if m["program"] == program.id]
    cohort = entry["cohort"]
    assert msg["run"].startswith(f"{cohort}-e") and msg["sent_at"][:16] == entry["at"][:16]
    # the split was decided in the same invocation; the member goes on in the cohort due
    # when the week's wait ends (its root execution: the ledger names it)
    (split,) = [s for s in ledger(cloud, cid, "STEP") if s["step"] == "split_followup"]
    assert (split["decision"], split["next_run"]) == ("arm:benefits", cohort)
    machine = next(
        m["stateMachineArn"]
        for m in cloud.client("stepfunctions").list_state_machines()["stateMachines"]
        if m["name"].endswith(program.id)
    )

    def executions() -> list[str]:
        found = cloud.client("stepfunctions").list_executions(stateMachineArn=machine)
        return [e["name"] for e in found["executions"]]

    # no execution waits the week: a journey timer (a one-time Scheduler schedule) starts
    # the root at its instant, under the cohort's name
    assert executions() == []
    scheduler = cloud.client("scheduler")
    timers = [
        scheduler.get_schedule(GroupName=s["GroupName"], Name=s["Name"])
        for group in scheduler.list_schedule_groups()["ScheduleGroups"]
        for s in scheduler.list_schedules(GroupName=group["Name"])["Schedules"]
        if s["Name"].startswith(program.id)
    ]
    (timer,) = [t for t in timers if json.loads(t["Target"]["Input"])["Name"] == cohort]
    due = json.loads(json.loads(timer["Target"]["Input"])["Input"])["at"]
    assert timer["ScheduleExpression"] == f"at({due[:19]})"
    cloud.advance(days=8)
    assert executions() == [cohort]
    # the root decided the week-later branch for them (Silver: no benefits reminder)
    (branch,) = [s for s in ledger(cloud, cid, "STEP") if s["step"] == "gold_or_better"]
    assert branch["run"] == cohort


def test_points_near_next_rank_nudge_by_push_at_noon(cloud: LocalCloud) -> None:
    cid = treated("points-to-next-rank", "p")
    signup(cloud, cid, channels=("push", "email"))
    order(cloud, cid, "o-p1", 6000)  # 60 points, 40 to Silver
    cloud.advance(hours=4)
    assert sent(cloud, cid)[-1] == ("points-to-next-rank", "nudge", "push")
    push = cloud.outbox("push")[-1]
    assert "あと40ポイントでSilver" in json.dumps(push, ensure_ascii=False, default=str)
    assert ledger(cloud, cid, "MSG")[-1]["at"].startswith("2026-01-05T03:00")  # 12:00 JST


def test_cart_abandonment_defers_through_quiet_hours(cloud: LocalCloud) -> None:
    cid = treated("cart-abandonment", "k")
    signup(cloud, cid, channels=("push", "email"))
    order(cloud, cid, "o-k0", 1000)
    cloud.advance_to(START + timedelta(hours=11))  # 20:00 in Tokyo
    put(
        cloud,
        "cart.updated",
        {
            "customer_id": cid,
            "cart_id": "k1",
            "items": [{"product_id": "tea-002", "quantity": 2, "unit_price": "1800"}],
        },
    )
    # the hourly sweep finds it abandoned after 3 hours: 23:00 is quiet, push waits to 08:00
    cloud.advance(hours=5)
    deferred = [m for m in ledger(cloud, cid, "MSG") if m["program"] == "cart-abandonment"]
    assert [(m["status"], m["reason"]) for m in deferred] == [("deferred", "quiet_hours")]
    # the row says until when and which quiet hours, in the customer's zone
    assert deferred[0]["quiet"]["time_zone"] == "Asia/Tokyo"
    assert explain(deferred[0], "en").text.startswith("Deferred until 2026-01-06 08:00 JST")
    assert explain(deferred[0], "ja").text.startswith("2026-01-06 08:00 JST まで延期")
    cloud.advance(hours=8)
    assert ("cart-abandonment", "remind", "push") in sent(cloud, cid)
    reminder = next(m for m in ledger(cloud, cid, "MSG") if m["step"] == "remind")
    assert reminder["sent_at"].startswith("2026-01-05T23:00")  # 08:00 JST
    # the cart is still open the next evening: the email follows
    cloud.advance(days=1, hours=12)
    assert ("cart-abandonment", "email", "email") in sent(cloud, cid)


def test_winback_before_dormancy_then_sms(cloud: LocalCloud) -> None:
    cid = treated("winback-before-dormancy", "w")
    signup(cloud, cid, channels=("email", "sms"))
    order(cloud, cid, "o-w1", 2000)
    cloud.advance(days=32)  # demo: risk after 21 days; the daily sweep at 01:00 JST
    assert ("winback-before-dormancy", "coupon", "email") in sent(cloud, cid)
    cloud.advance(days=8)
    assert ("winback-before-dormancy", "nudge", "sms") in sent(cloud, cid)
    sms = cloud.outbox("sms")[-1]
    assert "クーポン" in json.dumps(sms, ensure_ascii=False)


def test_post_purchase_recommendation_and_champions_care(cloud: LocalCloud) -> None:
    cid = treated("post-purchase-recommendation", "q")
    if in_holdout(PROGRAMS["champions-care"], cid):
        cid = next(
            f"q{i}"
            for i in range(500)
            if not in_holdout(PROGRAMS["post-purchase-recommendation"], f"q{i}")
            and not in_holdout(PROGRAMS["champions-care"], f"q{i}")
        )
    signup(cloud, cid, locale="en")
    order(cloud, cid, "o-q1", 1500)
    order(cloud, cid, "o-q2", 1500)
    cloud.advance(days=3)
    assert ("post-purchase-recommendation", "recommend", "email") in sent(cloud, cid)
    assert "Sencha Asatsuyu" in json.dumps(emails_to(cloud, cid)[-1], default=str)
    # the daily scoring (issue 6) announces a Champion: the care program thanks them
    scoring_names_a_champion(
        cloud,
        cid,
        {
            "event_id": f"{cid}:segment:Champions",
            "customer_id": cid,
            "caused_by": "scoring",
            "from_segment": "Loyal",
            "to_segment": "Champions",
            "recency": 5,
            "frequency": 5,
            "monetary": 5,
        },
    )
    settle(cloud)
    assert ("champions-care", "thanks", "email") in sent(cloud, cid)


def test_a_duplicated_trigger_starts_one_journey(cloud: LocalCloud) -> None:
    cid = treated("champions-care", "d")
    signup(cloud, cid)
    event = {
        "event_id": f"{cid}:segment:Champions",
        "customer_id": cid,
        "caused_by": "scoring",
        "from_segment": None,
        "to_segment": "Champions",
        "recency": 5,
        "frequency": 5,
        "monetary": 5,
    }
    for _ in range(3):
        scoring_names_a_champion(cloud, cid, event)
    settle(cloud)
    assert sent(cloud, cid) == [("champions-care", "thanks", "email")]
    assert len(ledger(cloud, cid, "ENTRY")) == 1


def test_two_rank_ups_in_one_batch_get_one_message_each_with_its_rank(cloud: LocalCloud) -> None:
    cid = treated("rank-up-congratulations", "w")
    signup(cloud, cid, locale="en")
    # given: two orders in one put, ingested in one batch: Bronze -> Silver -> Gold
    cloud.put_events(
        [
            {
                "Source": "com.example.shop",
                "DetailType": "order.placed",
                "Detail": {
                    "occurred_at": cloud.clock.now().isoformat(),
                    "customer_id": cid,
                    "order_id": oid,
                    "total": str(total),
                    "currency": "JPY",
                    "channel": "web",
                    "lines": [
                        {
                            "product_id": "tea-009",
                            "category": "tea",
                            "quantity": 1,
                            "unit_price": str(total),
                        }
                    ],
                },
            }
            for oid, total in (("o-w1", 12000), ("o-w2", 30000))
        ]
    )
    cloud.drain()
    settle(cloud)
    # then: one congratulation per rank change, each naming its own rank
    congratulations = [
        m for m in ledger(cloud, cid, "MSG") if m["program"] == "rank-up-congratulations"
    ]
    assert [m["status"] for m in congratulations] == ["sent", "sent"]
    subjects = sorted(
        m["request"]["Content"]["Simple"]["Subject"]["Data"] for m in emails_to(cloud, cid)
    )
    assert subjects == ["Congratulations! You are now Gold", "Congratulations! You are now Silver"]
    # and the reconciliation sweep (every 30 minutes) finds nothing left at `sending`
    cloud.advance(minutes=30)
    assert [k for k in cloud.invocations if "Feedback" in k] and not cloud.errors
    assert not [m for m in ledger(cloud, cid, "MSG") if m["status"] == "sending"]


def test_one_click_unsubscribe_from_the_email_header(cloud: LocalCloud) -> None:
    cid = treated("rank-up-congratulations", "u")
    signup(cloud, cid, locale="en")
    order(cloud, cid, "o-u1", 12000)
    settle(cloud)
    mail = emails_to(cloud, cid)[-1]
    headers = {h["Name"]: h["Value"] for h in mail["request"]["Content"]["Simple"]["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].strip("<>")
    # the mail client's one-click POST
    req = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    cloud.drain()
    # a forged token changes nothing and says why
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(forged, data=b"", method="POST"))
    assert info.value.code in (400, 403)
    # the one-click opts out of the message's topic (loyalty) on email, not of email: the
    # next congratulation enters and its email is suppressed, naming the topic
    order(cloud, cid, "o-u2", 30000)  # Gold
    settle(cloud)
    congratulations = [
        m for m in ledger(cloud, cid, "MSG") if m["program"] == "rank-up-congratulations"
    ]
    assert [(m["status"], m.get("reason")) for m in congratulations] == [
        ("sent", None),
        ("suppressed", "topic_opted_out"),
    ]
    # stopping email altogether (the preference page's "stop this channel": consent.changed):
    # the next congratulation does not even start, no channel is left to reach them on
    put(
        cloud,
        "consent.changed",
        {"customer_id": cid, "channel": "email", "status": "opted_out", "source": "page"},
    )
    order(cloud, cid, "o-u3", 50000)  # Platinum
    entries = [e for e in ledger(cloud, cid, "ENTRY") if e["program"] == "rank-up-congratulations"]
    assert [(e["decision"], e.get("reason")) for e in entries] == [
        ("entered", None),
        ("entered", None),
        ("skipped", "no_channel"),
    ]
    # the repeat order's recommendation names the audience condition that failed (as
    # data, from the view evaluate read anyway), and the timeline's sentence says it
    (skipped,) = [
        e
        for e in ledger(cloud, cid, "ENTRY")
        if e["program"] == "post-purchase-recommendation" and e["decision"] == "skipped"
    ]
    assert skipped["reason"] == "audience"
    assert skipped["failed"] == [
        {"field": "reachable", "expected": ["email", "push", "line"], "found": []}
    ]
    assert explain(skipped, "en").text == (
        "Not entered: the audience needs reachable channels email or push or LINE; "
        "this customer has none."
    )
    assert explain(skipped, "ja").text == (
        "対象外: 届けられるチャネルが メール または プッシュ通知 または LINE の顧客が対象ですが、"
        "この顧客には届けられるチャネルがありません。"
    )
    # (signup and unsubscribe happen at the same virtual instant: the ledger's order by
    # time is a tie, so look for the opt-out rather than at the last entry)
    rows = ledger(cloud, cid, "CONSENT")
    consents = {(c.get("channel"), c["status"]) for c in rows}
    assert ("email", "opted_out") in consents
    # the one-click's proof: the topic, the channel and where it came from
    (proof,) = [c for c in rows if c["status"] == "preferences"]
    assert proof["topics"] == {"loyalty": {"email": "opted_out"}}
    assert urllib.parse.urlsplit(url).query.startswith("t=")


def test_duplicated_send_invocations_and_throttling_send_once(cloud: LocalCloud) -> None:
    """The journey's Send task invoked twice (a Step Functions retry after a timeout) and a
    throttled provider: one email."""
    cid = treated("champions-care", "t")
    signup(cloud, cid)
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    payload = {
        "action": "send",
        "program": "champions-care",
        "step": "thanks",
        "customer_id": cid,
        "execution": "champions-care-manual-1",
        "entered_at": cloud.clock.now().isoformat(),
        "arms": {},
    }
    throttled = {"n": 0}

    def throttle_twice(**_: Any) -> None:
        if throttled["n"] < 2:
            throttled["n"] += 1
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail"
            )

    before = len(emails_to(cloud, cid))
    import boto3

    # handlers' clients come from boto3's default session: hook there
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register_first("before-call.sesv2.SendEmail", throttle_twice)
    try:
        first = cloud.invoke(send.logical_id, payload)
    finally:
        events.unregister("before-call.sesv2.SendEmail", throttle_twice)
    second = cloud.invoke(send.logical_id, payload)
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result["status"] == "sent" and second.result["status"] == "sent"
    assert len(emails_to(cloud, cid)) == before + 1
    assert throttled["n"] == 2  # the provider did throttle, and the send backed off
