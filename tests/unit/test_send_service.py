"""The send task: policy outcomes in the ledger, exactly-once under duplicates and
throttling, loud render failures, goal exit, fallback, invalid push tokens."""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.delivery.channels import (
    HttpResponse,
    InvalidAddressInfo,
    LinePush,
    OutboundMessage,
    SendResult,
    SesEmail,
    Throttled,
)
from kizuna.delivery.links import TrackedLinks
from kizuna.delivery.templates import Renderer
from kizuna.delivery.unsubscribe import UnsubscribeLinks
from kizuna.domain.customer import Customer, Device
from kizuna.domain.loyalty import address_hash
from kizuna.events import Channel, ChannelSuppressed, DeviceUnregistered
from kizuna.programs.journeys import JourneyState
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import TrackedLinksConfig
from kizuna.services.send import SendRequest, SendService
from kizuna_tools.fakes import MemoryInbound, MemoryStore
from tests import factories
from tests.factories import LINE_USER, PHONE, opted_in, send_service

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS, _ = load_programs(ROOT / "programs")
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


class FakeChannel:
    def __init__(
        self, fail: list[Exception] | None = None, invalid: tuple[InvalidAddressInfo, ...] = ()
    ) -> None:
        self.sent: list[OutboundMessage] = []
        self.fail = list(fail or [])
        self.invalid = invalid
        self.calls = 0

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(message)
        return SendResult(provider_message_id=f"m-{len(self.sent)}", invalid_addresses=self.invalid)


def customer(**extra: Any) -> Customer:
    """c1, a first-time buyer (Bronze, 80 points short of Silver) whose name is markup, on
    email, push (one device) and LINE."""
    base: dict[str, Any] = {
        "first_name": "<b>Hanako</b>",
        "last_name": "Yamada",
        "email": "hanako@example.jp",
        "order_count": 1,
        "rank": "Bronze",
        "next_rank": "Silver",
        "points_to_next_rank": 80,
        "consent": opted_in("email", "push", "line"),
        "devices": {"d1": Device(token="tok-" + "x" * 40, platform="FCM", at=NOON)},
        "line_user_id": LINE_USER,
    }
    return factories.customer(**{**base, **extra})


def build(
    channels: dict[str, FakeChannel] | None = None, **extra: Any
) -> tuple[SendService, MemoryStore, dict[str, FakeChannel], MemoryInbound]:
    store = MemoryStore()
    store.customers["c1"] = customer(**extra)
    chans = channels or {c: FakeChannel() for c in ("email", "sms", "push", "line")}
    inbound = MemoryInbound()
    svc = send_service(
        store, chans, FixedClock(NOON), inbound=inbound, programs=PROGRAMS, attempts=3
    )
    return svc, store, chans, inbound


def req(
    step: str = "coupon",
    execution: str = "ex-1",
    program: str = "second-purchase-coupon",
    entered: datetime = NOON - timedelta(days=1),
) -> SendRequest:
    return SendRequest(
        program=program, step=step, customer_id="c1", execution=execution, entered_at=entered
    )


def test_sends_a_coupon_email_in_japanese_with_escaped_name_and_records_it() -> None:
    svc, store, chans, _ = build()
    resp = svc.send(req())
    assert (resp.status, resp.channel) == ("sent", "email")
    (msg,) = chans["email"].sent
    assert "&lt;b&gt;Hanako&lt;/b&gt;" in msg.content.html  # type: ignore[union-attr]
    assert "<b>Hanako</b>" not in msg.content.html  # type: ignore[union-attr]
    assert "OFF" in msg.content.subject  # type: ignore[union-attr]
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert entry["status"] == "sent" and entry["coupon"].startswith("KZ-")
    assert "hanako@example.jp" not in str(entry)  # no personal data in the ledger


def test_duplicate_invocation_never_sends_twice() -> None:
    svc, _store, chans, _ = build()
    first, second = svc.send(req()), svc.send(req())
    assert first.status == second.status == "sent"
    assert len(chans["email"].sent) == 1


def test_throttling_is_retried_with_backoff_then_sent_once() -> None:
    email = FakeChannel(fail=[Throttled(), Throttled()])
    svc, store, _chans, _ = build(channels={"email": email})
    assert svc.send(req()).status == "sent"
    assert email.calls == 3 and len(email.sent) == 1
    assert store.messages[("c1", "MSG#ex-1#coupon")]["attempts"] == 3


def test_persistent_throttling_is_recorded_as_failed_not_lost() -> None:
    email = FakeChannel(fail=[Throttled()] * 5)
    svc, store, _, _ = build(channels={"email": email})
    resp = svc.send(req())
    assert resp.status == "failed"
    assert store.messages[("c1", "MSG#ex-1#coupon")]["status"] == "failed"
    # the retry of the Step Functions task does not send either
    assert svc.send(req()).status == "failed" and email.sent == []


def test_template_that_cannot_render_fails_loudly(tmp_path: Path) -> None:
    svc, store, chans, _ = build()
    bad = tmp_path / "second-purchase-coupon" / "coupon" / "ja"
    bad.mkdir(parents=True)
    for part in ("email.subject", "email.html", "email.txt"):
        (bad / f"{part}.j2").write_text("{{ customer.nickname }}")
    svc.renderer = Renderer(tmp_path)
    resp = svc.send(req())
    assert resp.status == "failed" and "render_error" in (resp.reason or "")
    assert chans["email"].sent == []
    assert store.messages[("c1", "MSG#ex-1#coupon")]["status"] == "failed"


def test_no_reachable_channel_is_suppressed() -> None:
    svc, store, _, _ = build(consent={})
    resp = svc.send(req())
    assert (resp.status, resp.reason) == ("suppressed", "no_channel")
    assert store.messages[("c1", "MSG#ex-1#coupon")]["reason"] == "no_channel"


def test_quiet_hours_defer_push_and_the_retry_after_sends() -> None:
    svc, _store, chans, _ = build()
    svc.clock = FixedClock(datetime(2026, 1, 5, 13, 30, tzinfo=UTC))  # 22:30 Tokyo
    resp = svc.send(req("nudge", program="points-to-next-rank"))
    assert resp.status == "deferred" and resp.until == "2026-01-05T23:00:00.000000Z"
    # the ledger says until when, and which quiet hours in which zone
    entry = _store.messages[("c1", "MSG#ex-1#nudge")]
    assert entry["until"] == resp.until
    assert entry["quiet"] == {"start": "21:00", "end": "08:00", "time_zone": "Asia/Tokyo"}
    svc.clock = FixedClock(datetime(2026, 1, 5, 23, 0, tzinfo=UTC))
    assert svc.send(req("nudge", program="points-to-next-rank")).status == "sent"
    assert len(chans["push"].sent) == 1


def test_goal_reached_ends_the_journey() -> None:
    svc, store, chans, _ = build()
    store.journeys[("c1", "second-purchase-coupon")] = JourneyState(
        customer_id="c1",
        program="second-purchase-coupon",
        entries=1,
        last_entry_at=NOON - timedelta(days=1),
        goal_reached_at=NOON - timedelta(hours=2),
    )
    assert svc.send(req("reminder")).status == "exit"
    assert all(not c.sent for c in chans.values())
    entry = store.messages[("c1", "MSG#ex-1#reminder")]
    assert (entry["reason"], entry["goal_reached_at"]) == (
        "goal_reached",
        "2026-01-05T01:00:00.000000Z",
    )


def test_frequency_cap_counts_the_contact_item_journeys_and_campaigns_alike() -> None:
    # given a CONTACT item with another program's message and a campaign's today
    svc, store, chans, _ = build()
    store.contacts["c1"] = {
        "other-1#s": "2026-01-05T01:00:00.000000Z",
        "campaign:sale:20260105T0300Z": "2026-01-05T02:00:00.000000Z",
    }
    # when the step runs
    resp = svc.send(req())
    # then the daily cap (2) holds it back, and the suppression notes no send
    assert (resp.status, resp.reason) == ("suppressed", "frequency_cap_day")
    assert not chans["email"].sent and len(store.contacts["c1"]) == 2
    # the ledger names the cap, its window and what it counted
    cap = store.messages[("c1", "MSG#ex-1#coupon")]["cap"]
    assert cap == {"limit": 2, "days": 1, "count": 2, "priority": 70}


def test_a_send_is_noted_in_the_contact_item_by_its_claim() -> None:
    # given a CONTACT item with one send older than the weekly window
    svc, store, _, _ = build()
    store.contacts["c1"] = {"campaign:old:1": "2025-12-20T00:00:00.000000Z"}
    # when the step sends, and a duplicated invocation runs it again
    first, again = svc.send(req()), svc.send(req())
    # then the send is noted once, under its execution and step, and the stale key is gone
    assert (first.status, again.status) == ("sent", "sent")
    assert store.contacts["c1"] == {"ex-1#coupon": "2026-01-05T03:00:00.000000Z"}


def test_decisions_that_send_nothing_note_nothing() -> None:
    # given a customer no channel reaches (when the step runs)
    svc, store, _, _ = build(consent={})
    assert svc.send(req()).status == "suppressed"
    # then the ledger has the decision and CONTACT has no send
    assert store.messages[("c1", "MSG#ex-1#coupon")]["status"] == "suppressed"
    assert "c1" not in store.contacts


def test_invalid_push_token_is_reported_to_ingest() -> None:
    push = FakeChannel(invalid=(InvalidAddressInfo(key="d1", reason="410"),))
    svc, _, _, inbound = build(channels={"push": push})
    assert svc.send(req("nudge", program="points-to-next-rank")).status == "sent"
    ((kind, detail),) = inbound.events
    assert kind == "device.unregistered" and isinstance(detail, DeviceUnregistered)
    assert (detail.customer_id, detail.occurred_at) == ("c1", NOON)
    assert detail.token.startswith("tok-")


def sms_first(program_id: str = "second-purchase-coupon", step_id: str = "coupon") -> Any:
    """The program with its send step trying SMS before email."""
    program = next(p for p in PROGRAMS if p.id == program_id)
    steps = [
        s.model_copy(update={"channels": ["sms", "email"]}) if s.id == step_id else s
        for s in program.steps
    ]
    return program.model_copy(update={"steps": steps})


def test_carrier_opt_out_falls_back_with_one_contact_decision(monkeypatch: Any) -> None:
    # given a step trying SMS then email, and a number that replied STOP to the carrier
    from kizuna.delivery import policy
    from kizuna.services import send as send_module

    svc, store, chans, inbound = build(phone=PHONE, consent=opted_in("email", "sms"))
    svc.programs["second-purchase-coupon"] = sms_first()
    svc.sms_opted_out = lambda phone: phone == "+819012345678"
    calls: list[tuple[Any, ...]] = []

    def counting_decide(*args: Any, **kwargs: Any) -> policy.PolicyDecision:
        calls.append(args)
        return policy.decide(*args, **kwargs)

    monkeypatch.setattr(send_module, "decide", counting_decide)
    # when the step runs
    resp = svc.send(req())
    # then the contact decision is made once, and it already passed SMS over for email
    assert len(calls) == 1
    assert (resp.status, resp.channel) == ("sent", "email") and not chans["sms"].sent
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert entry["skipped"] == ["sms:suppressed_opt_out"]
    ((kind, detail),) = inbound.events
    assert kind == "channel.suppressed" and isinstance(detail, ChannelSuppressed)
    assert (detail.channel, detail.reason) == (Channel.SMS, "opt_out")
    assert detail.address_hash == address_hash("+819012345678")


def test_deferred_send_is_claimed_like_every_other_decision() -> None:
    # given a nudge at 22:30 in Tokyo to a customer with no usable push device
    svc, store, _, _ = build(devices={})
    svc.clock = FixedClock(datetime(2026, 1, 5, 13, 30, tzinfo=UTC))
    # when the step runs
    resp = svc.send(req("nudge", program="points-to-next-rank"))
    # then LINE is deferred, and the ledger says which channel was passed over, as it does
    # for every decision that sends nothing now
    assert (resp.status, resp.channel, resp.reason) == ("deferred", "line", "quiet_hours")
    entry = store.messages[("c1", "MSG#ex-1#nudge")]
    assert entry["status"] == "deferred" and entry["until"] == resp.until
    assert entry["skipped"] == ["push:no_address"]


def test_ledger_entries_hold_domain_values_not_storage_keys() -> None:
    # given a send (when it is recorded)
    svc, store, _, _ = build()
    svc.send(req())
    # then the service hands the store the decision only: index keys are the store's
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert entry["program"] == "second-purchase-coupon" and entry["at"]
    assert not {"gsi1pk", "gsi1sk", "pk", "sk"} & set(entry)


def test_push_without_a_usable_device_falls_back_to_the_next_channel() -> None:
    # given a customer whose only device is on a platform push cannot reach
    svc, _, chans, _ = build(
        devices={"d1": Device(token="tok-" + "x" * 40, platform="WNS", at=NOON)}
    )
    # when a step tries push, then LINE
    resp = svc.send(req("nudge", program="points-to-next-rank"))
    # then push is passed over (no address) and LINE sends, instead of ending no_channel
    assert (resp.status, resp.channel) == ("sent", "line")
    assert len(chans["line"].sent) == 1 and not chans["push"].sent


class UntrackedLine(FakeChannel):
    """LINE sending a text with its links as written (tracked, over LINE's limit)."""

    def send(self, message: OutboundMessage) -> SendResult:
        return super().send(message).model_copy(update={"links_untracked": True})


def test_a_line_text_sent_with_its_links_untracked_says_so_in_the_ledger() -> None:
    line = UntrackedLine()
    chans = {c: FakeChannel() for c in ("email", "sms", "push")} | {"line": line}
    svc, store, _, _ = build(channels=chans, consent=opted_in("line"))
    assert (svc.send(req()).channel, len(line.sent)) == ("line", 1)
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert entry["status"] == "sent" and entry["links_untracked"] is True


class LineApi:
    """LINE's push endpoint, answering as LINE does; keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def post(self, url: str, headers: Any, body: bytes, timeout: float) -> HttpResponse:
        self.bodies.append(json.loads(body))
        return HttpResponse(200, {}, json.dumps({"sentMessages": [{"id": "4612309"}]}).encode())


@pytest.mark.parametrize(
    ("text", "untracked"),
    [
        # a link to a host tracked_links.hosts does not declare: sent as written
        ("Coupon {{ coupon.code }}: https://elsewhere.example/sale", True),
        # a link to a declared host: tracked, its clicks seen
        ("Coupon {{ coupon.code }}: https://shop.example/sale", False),
        # no link: nothing to click (an email without a link is measured alike)
        ("Coupon {{ coupon.code }}", False),
    ],
)
def test_a_line_message_without_a_tracked_link_is_marked_in_the_ledger(
    tmp_path: Path, text: str, untracked: bool
) -> None:
    """The LINE adapter as deployed (links to the declared hosts tracked): a message whose
    links all go untracked is marked ``links_untracked`` on its ledger entry, so that no
    report, winner or branch reads its silence as "not clicked"."""
    folder = tmp_path / "second-purchase-coupon" / "coupon" / "ja"
    folder.mkdir(parents=True)
    (folder / "line.txt.j2").write_text(text)
    api = LineApi()
    tracked = TrackedLinks(
        "https://links.example/",
        b"k" * 32,
        hosts=TrackedLinksConfig(hosts=("shop.example",)),
        now=lambda: NOON,
    )
    line = LinePush(lambda: "token", api, links=tracked)
    svc, store, _, _ = build(channels={"line": line}, consent=opted_in("line"))  # type: ignore[dict-item]
    svc.renderer = Renderer(tmp_path)
    assert (svc.send(req()).status, len(api.bodies)) == ("sent", 1)
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert (entry["status"], entry["channel"]) == ("sent", "line")
    assert entry.get("links_untracked", False) is untracked


class SesApi:
    """SES v2's ``SendEmail``, answering as SES does; keeps the HTML parts."""

    def __init__(self) -> None:
        self.html: list[str] = []

    def send_email(self, **params: Any) -> dict[str, Any]:
        self.html.append(params["Content"]["Simple"]["Body"]["Html"]["Data"])
        return {"MessageId": f"ses-{len(self.html)}"}


@pytest.mark.parametrize(
    ("content", "untracked"),
    [
        # the shop's phone number and address as links: a tap on them is seen by nothing
        ('<a href="tel:0312345678">お電話</a> <a href="mailto:info@shop.example">メール</a>', True),
        # a web link: SES tracks it
        ('<a href="tel:0312345678">お電話</a> <a href="https://shop.example/">店舗</a>', False),
        # no link but the footer's unsubscribe link (ses:no-track): nothing to click
        ("<p>ご来店ありがとうございました。</p>", False),
    ],
)
def test_an_email_without_a_link_ses_tracks_is_marked_in_the_ledger(
    tmp_path: Path, content: str, untracked: bool
) -> None:
    """The email adapter as deployed, the shared layout's footer and its signed unsubscribe
    link included: an email whose links are none SES tracks is marked ``links_untracked``
    on its ledger entry, as a LINE message is, so that no winner or branch on clicks reads
    a customer who called the shop as one who did not click."""
    shutil.copytree(ROOT / "templates" / "_base", tmp_path / "_base")
    folder = tmp_path / "second-purchase-coupon" / "coupon" / "ja"
    folder.mkdir(parents=True)
    (folder / "email.subject.j2").write_text("クーポン {{ coupon.code }}")
    (folder / "email.txt.j2").write_text("クーポン {{ coupon.code }}")
    (folder / "email.html.j2").write_text(
        '{% extends "_base/email.html.j2" %}{% block content %}'
        f"<p>{{{{ coupon.code }}}}</p>{content}{{% endblock %}}"
    )
    ses = SesApi()
    unsubscribe = UnsubscribeLinks("https://links.example/", b"u" * 32, now=lambda: NOON)
    email = SesEmail(ses, "news@shop.example", "kizuna-email", unsubscribe)
    svc, store, _, _ = build(channels={"email": email})  # type: ignore[dict-item]
    svc.renderer, svc.unsubscribe = Renderer(tmp_path), unsubscribe
    assert (svc.send(req()).status, len(ses.html)) == ("sent", 1)
    assert "https://links.example/?t=" in ses.html[0] and "ses:no-track" in ses.html[0]
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert (entry["status"], entry["channel"]) == ("sent", "email")
    assert entry.get("links_untracked", False) is untracked


def _topics(**per: dict[str, str]) -> dict[str, Any]:
    from kizuna.domain.customer import ConsentState

    return {
        topic: {
            ch: ConsentState(status=s, at=NOON, source="page", stamp="x") for ch, s in chs.items()
        }
        for topic, chs in per.items()
    }


def test_a_topic_opt_out_falls_back_and_the_ledger_names_the_topic() -> None:
    # given: the customer opted out of promotions (the seed program's topic) by email only
    svc, store, chans, _ = build(topics=_topics(promotions={"email": "opted_out"}))
    # when
    resp = svc.send(req())
    # then: the next channel of the step is used; the row says why email was passed over
    assert (resp.status, resp.channel) == ("sent", "line")
    entry = store.messages[("c1", "MSG#ex-1#coupon")]
    assert entry["topic"] == "promotions" and entry["skipped"] == ["email:topic_opted_out"]
    assert chans["line"].sent[0].topic == "promotions"


def test_a_topic_opt_out_on_every_channel_stops_that_topic_only() -> None:
    everywhere = {"email": "opted_out", "line": "opted_out", "push": "opted_out"}
    svc, store, chans, _ = build(topics=_topics(promotions=everywhere))
    resp = svc.send(req())
    assert (resp.status, resp.reason) == ("suppressed", "topic_opted_out")
    assert all(not c.sent for c in chans.values())
    # the same customer still gets a program about another topic
    other = svc.programs["second-purchase-coupon"].model_copy(update={"topic": "newsletter"})
    svc.programs["second-purchase-coupon"] = other
    assert svc.send(req(execution="ex-2")).status == "sent"
    assert store.messages[("c1", "MSG#ex-2#coupon")]["topic"] == "newsletter"


def test_a_pause_stops_the_message_until_its_end() -> None:
    from kizuna.domain.customer import PauseState

    pause = PauseState(until=NOON + timedelta(days=1), at=NOON, source="page", stamp="x")
    svc, store, _chans, _ = build(pause=pause)
    resp = svc.send(req())
    assert (resp.status, resp.reason) == ("suppressed", "paused")
    assert store.messages[("c1", "MSG#ex-1#coupon")]["paused_until"].startswith("2026-01-06")
    svc.clock = FixedClock(NOON + timedelta(days=1, seconds=1))
    assert svc.send(req(execution="ex-2")).status == "sent"
