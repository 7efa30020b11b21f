"""The webhook channel: signed, idempotent, retried on 5xx/429/timeouts only, JSON bodies
rendered value by value, https endpoints declared in the configuration, and a program step
delivering through the send service exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.delivery.channels import (
    HttpResponse,
    OutboundMessage,
    OutOfTime,
    PermanentFailure,
    TemporaryFailure,
    send_all,
    send_with_retry,
)
from kizuna.delivery.content import WEBHOOK_MAX_BODY_BYTES, WebhookContent
from kizuna.delivery.templates import Renderer, RenderError
from kizuna.delivery.webhook import RetriesExhausted, WebhookPost, idempotency_key
from kizuna.events import Channel, ChannelSuppressed, ConsentChanged, ConsentChannel
from kizuna.programs.loader import load_programs
from kizuna.programs.model import SendStep
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig, WebhookEndpoint
from kizuna.services.send import SendRequest, SendService
from kizuna_tools.fakes import MemoryInbound, MemoryStore
from tests import factories

KEY = b"whsec-0123456789abcdef"
URL = "https://crm.example.com/kizuna/hook"
NOW = 1_767_600_000  # unix seconds
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


# --- the receiver's recipe (docs/channels/WEBHOOK.md, verbatim) ---------------------------
def verify(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    parts = dict(p.split("=", 1) for p in headers["X-Kizuna-Signature"].split(","))
    timestamp = int(parts["t"])
    if abs(now - timestamp) > 300:  # older or newer than 5 minutes: a replay
        return False
    key = headers.get("Idempotency-Key", "")
    signed = f"{timestamp}.{key}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v2", ""))


def verify_v1(secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """The first recipe (timestamp and body only), which receivers may still run."""
    parts = dict(p.split("=", 1) for p in headers["X-Kizuna-Signature"].split(","))
    signed = f"{parts['t']}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class FakeHttp:
    """An endpoint answering from a script: a status, or an exception to raise."""

    def __init__(self, *answers: int | BaseException | HttpResponse) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], bytes, float]] = []

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HttpResponse:
        self.requests.append((url, dict(headers), body, timeout))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, HttpResponse):
            return answer
        return HttpResponse(answer, {}, b"")


def endpoint(**extra: Any) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate(
        {"url": URL, "secret": "kizuna/webhooks/crm", "max_attempts": 3, **extra}
    )


def post(http: FakeHttp, sleeps: list[float] | None = None, **extra: Any) -> WebhookPost:
    return WebhookPost(
        {"crm": endpoint(**extra)},
        lambda _e: KEY,
        http,
        now=lambda: NOW,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
        jitter=lambda: 0.0,
    )


def message(body: dict[str, Any] | None = None, customer: str = "c1") -> OutboundMessage:
    return OutboundMessage(
        customer_id=customer,
        program="vip-sync",
        step="notify",
        execution="ex-1",
        channel="webhook",
        address="crm",
        content=WebhookContent(body=json.dumps(body or {"customer": customer, "rank": "Gold"})),
    )


# --- the channel -----------------------------------------------------------------------------
def test_a_receiver_verifies_the_signature_and_rejects_a_tampered_or_replayed_request() -> None:
    http = FakeHttp(200)
    result = post(http).send(message())
    url, headers, body, timeout = http.requests[0]
    assert (url, timeout, headers["Content-Type"]) == (URL, 10, "application/json")
    assert verify(KEY, headers, body, now=NOW + 10)
    assert not verify(KEY, headers, body.replace(b"Gold", b"Plat"), now=NOW)
    assert not verify(b"another key 0123456", headers, body, now=NOW)
    assert not verify(KEY, headers, body, now=NOW + 3600)  # replayed an hour later
    assert result.provider_message_id == headers["Idempotency-Key"]


def test_a_request_replayed_under_a_fresh_idempotency_key_fails_verification() -> None:
    """A request captured in transit and sent again within the tolerance with another
    ``Idempotency-Key`` (so the receiver's de-duplication lets it through) fails ``v2``;
    ``v1`` is still sent and verifies for receivers on the first recipe."""
    http = FakeHttp(200)
    post(http).send(message())
    _url, headers, body, _t = http.requests[0]
    replayed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    assert verify(KEY, headers, body, now=NOW) and not verify(KEY, replayed, body, now=NOW)
    assert verify_v1(KEY, headers, body)


def test_503_is_retried_then_delivered_with_the_same_idempotency_key() -> None:
    http, sleeps = FakeHttp(503, 200), []  # type: ignore[var-annotated]
    result = post(http, sleeps).send(message())
    assert result.attempts == 2 and len(http.requests) == 2 and len(sleeps) == 1
    keys = {r[1]["Idempotency-Key"] for r in http.requests}
    assert keys == {idempotency_key("ex-1", "notify", "c1")}


def test_a_reinvoked_send_after_a_5xx_that_succeeded_carries_the_same_key() -> None:
    """The receiver stored the first request and answered 500; the attempts run out and the
    task is invoked again: every request names the same ledger entry, so the receiver can
    drop the repeats."""
    http = FakeHttp(500, 500, 500, 200)
    with pytest.raises(RetriesExhausted):
        post(http).send(message())
    post(http).send(message())
    keys = [r[1]["Idempotency-Key"] for r in http.requests]
    assert len(keys) == 4 and len(set(keys)) == 1
    # another customer of the same execution and step is another message
    assert idempotency_key("ex-1", "notify", "c2") != keys[0]


def test_400_is_a_permanent_failure_with_the_status_and_no_retry() -> None:
    http = FakeHttp(HttpResponse(400, {}, b'{"error": "bad field email=hanako@example.jp"}'))
    with pytest.raises(PermanentFailure) as failure:
        send_with_retry(post(http), message(), sleep=lambda _s: None)
    assert failure.value.reason == "webhook crm: HTTP 400"  # no body, no personal data
    assert len(http.requests) == 1


def test_a_timeout_is_retried() -> None:
    http = FakeHttp(TimeoutError("timed out"), 200)
    assert post(http).send(message()).attempts == 2
    assert len(http.requests) == 2


def test_429_waits_for_its_retry_after() -> None:
    http, sleeps = FakeHttp(HttpResponse(429, {"Retry-After": "7"}, b""), 200), []  # type: ignore[var-annotated]
    post(http, sleeps).send(message())
    assert sleeps == [7.0]


def test_a_retry_that_cannot_finish_inside_the_send_budget_is_not_started() -> None:
    """The send function stops at 60 s: two Retry-After: 30 answers would outlast it, so the
    second wait is not taken and the message fails as out of time (no half-done attempt)."""
    clock = [0.0]
    http = FakeHttp(*[HttpResponse(429, {"Retry-After": "30"}, b"")] * 3)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    sender = WebhookPost(
        {"crm": endpoint()},
        lambda _e: KEY,
        http,
        now=lambda: NOW,
        sleep=sleep,
        monotonic=lambda: clock[0],
        jitter=lambda: 0.0,
    )
    with pytest.raises(RetriesExhausted) as failure:
        sender.send(message())
    assert failure.value.reason == "webhook crm: HTTP 429; out of time after 2 attempts"
    assert sleeps == [30.0] and len(http.requests) == 2


def test_spent_attempts_are_not_multiplied_by_the_callers_retry() -> None:
    http = FakeHttp(503, 503, 503, 503, 503, 503)
    with pytest.raises(TemporaryFailure) as failure:
        send_with_retry(post(http, max_attempts=2), message(), sleep=lambda _s: None)
    assert isinstance(failure.value, RetriesExhausted)
    assert failure.value.reason == "webhook crm: HTTP 503 after 2 attempts"
    assert len(http.requests) == 2


def test_an_unknown_endpoint_is_a_permanent_failure() -> None:
    msg = message().model_copy(update={"address": "pos"})
    with pytest.raises(PermanentFailure, match="webhook pos: endpoint not configured"):
        post(FakeHttp()).send(msg)


# --- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com/hook",
        "ftp://crm.example.com/hook",
        "https://user:pw@crm.example.com/hook",
        "https:///hook",
        "https://crm.example.com/hook#frag",
        "https://crm.example.com/ho ok",
        # an internal address: it failed only at send (the docs: reachable publicly)
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hook",
        "https://127.0.0.1:9001/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
    ],
)
def test_only_plain_https_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValidationError, match="url"):
        KizunaConfig.model_validate({"webhooks": {"crm": {"url": url, "secret": "crm-key"}}})


def test_endpoints_are_declared_by_name_with_bounded_timeouts() -> None:
    cfg = KizunaConfig.model_validate(
        {"webhooks": {"crm": {"url": URL, "secret": "crm-key", "timeout_seconds": 5}}}
    )
    assert cfg.webhooks["crm"].max_attempts == 3
    for bad in ({"timeout_seconds": 0}, {"max_attempts": 0}, {"secret": "no spaces allowed"}):
        with pytest.raises(ValidationError):
            KizunaConfig.model_validate(
                {"webhooks": {"crm": {"url": URL, "secret": "crm-key", **bad}}}
            )
    with pytest.raises(ValidationError):
        KizunaConfig.model_validate({"webhooks": {"Bad Name": {"url": URL, "secret": "k"}}})


def test_a_webhook_step_names_its_endpoint_and_only_a_webhook_step_does() -> None:
    base = {"id": "notify", "type": "send", "template": "vip"}
    SendStep.model_validate({**base, "channel": "webhook", "webhook": "crm"})
    with pytest.raises(ValidationError, match="webhook"):
        SendStep.model_validate({**base, "channel": "webhook"})
    with pytest.raises(ValidationError, match="webhook"):
        SendStep.model_validate({**base, "channel": "email", "webhook": "crm"})


# --- templates -------------------------------------------------------------------------------
def write(root: Path, source: str, program: str = "vip-sync", template: str = "vip") -> None:
    folder = root / program / template / "ja"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "webhook.json.j2").write_text(source)


def test_values_are_rendered_one_by_one_so_data_cannot_break_the_json(tmp_path: Path) -> None:
    write(tmp_path, '{"name": "{{ name }}", "points": 120, "tags": ["vip", "{{ rank }}"]}')
    name = 'Hana", "admin": true, "x": "'
    content = Renderer(tmp_path).render(
        "vip-sync", "vip", "webhook", "ja", {"name": name, "rank": "Gold"}
    )
    assert isinstance(content, WebhookContent)
    assert json.loads(content.body) == {"name": name, "points": 120, "tags": ["vip", "Gold"]}


def test_invalid_or_oversized_body_templates_are_rejected_at_load(tmp_path: Path) -> None:
    renderer = Renderer(tmp_path)
    write(tmp_path, '{"name": "{{ name }}",}')
    (problem,) = renderer.parts_missing("vip-sync", "vip", "webhook")
    assert problem.startswith("valid ja/webhook.json.j2 (not a JSON document")
    write(tmp_path, json.dumps({"pad": "x" * WEBHOOK_MAX_BODY_BYTES}))
    (problem,) = renderer.parts_missing("vip-sync", "vip", "webhook")
    assert "over 262144 bytes" in problem
    write(tmp_path, '"just a string"')
    assert renderer.parts_missing("vip-sync", "vip", "webhook")


def test_a_body_rendered_over_the_limit_fails_the_render(tmp_path: Path) -> None:
    write(tmp_path, '{"a": "{{ big }}", "b": "{{ big }}", "c": "{{ big }}"}')
    with pytest.raises(RenderError, match="over 262144 bytes"):
        Renderer(tmp_path).render("vip-sync", "vip", "webhook", "ja", {"big": "x" * 90_000})


@pytest.mark.parametrize(
    ("source", "kind", "detail"),
    [
        ("{{ name ", "syntax error", "unexpected end of template"),
        ("{{ nope.attr }}", "undefined", "'nope' is undefined"),
        ("{{ ''.__class__ }}", "sandbox refused", "access to attribute '__class__'"),
        ("{{ 1 / 0 }}", "ZeroDivisionError", "division by zero"),
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}xxxxxxxxxx{% endfor %}"
            "{% endfor %}",
            "over a render bound",
            "output over 1,000,000 characters",
        ),
    ],
)
def test_a_json_template_string_that_fails_names_what_went_wrong_and_where(
    tmp_path: Path, source: str, kind: str, detail: str
) -> None:
    write(tmp_path, json.dumps({"tags": ["vip", source]}))
    (tmp_path / "vip-sync" / "vip" / "ja" / "line.json").write_text(
        json.dumps([{"type": "text", "text": source}])
    )
    renderer = Renderer(tmp_path)
    with pytest.raises(RenderError) as webhook:
        renderer.render("vip-sync", "vip", "webhook", "ja", {"name": "Hana"})
    assert f": {kind} in webhook.json at $.tags[1]: {detail}" in str(webhook.value)
    with pytest.raises(RenderError) as line:
        renderer.render("vip-sync", "vip", "line", "ja", {"name": "Hana"})
    assert f": line.json messages[0].text: {kind}: {detail}" in str(line.value)


# --- a program step, end to end --------------------------------------------------------------
PROGRAM = """
id: vip-sync
name: VIP sync
priority: 50
trigger:
  event: customer.rank_changed
reentry:
  mode: always
steps:
  - id: notify
    type: send
    channel: webhook
    webhook: crm
    template: vip
"""


def service(tmp_path: Path, http: FakeHttp) -> tuple[SendService, MemoryStore]:
    (tmp_path / "programs").mkdir()
    (tmp_path / "programs" / "vip-sync.yaml").write_text(PROGRAM)
    write(tmp_path / "templates", '{"customer_id": "{{ customer.customer_id }}", "event": "vip"}')
    renderer = Renderer(tmp_path / "templates")
    programs, issues = load_programs(tmp_path / "programs", renderer)
    assert issues == []
    store = MemoryStore()
    store.customers["c1"] = factories.customer(email="hanako@example.jp")  # no consent at all
    cfg = KizunaConfig.model_validate({"webhooks": {"crm": {"url": URL, "secret": "crm-key"}}})
    channel = WebhookPost(cfg.webhooks, lambda _e: KEY, http, now=time.time, sleep=lambda _s: None)
    svc = SendService(
        programs,
        store,
        renderer,
        {"webhook": channel},
        MemoryInbound(),
        cfg,
        FixedClock(NOON),
        coupon_secret=b"k" * 32,
        sleep=lambda _s: None,
    )
    return svc, store


def test_a_program_step_delivers_once_through_the_claim(tmp_path: Path) -> None:
    http = FakeHttp(503, 200)
    svc, store = service(tmp_path, http)
    request = SendRequest(
        program="vip-sync",
        step="notify",
        customer_id="c1",
        execution="ex-1",
        entered_at=NOON - timedelta(minutes=1),
    )
    first = svc.send(request)
    assert (first.status, first.channel) == ("sent", "webhook")
    assert svc.send(request).status == "sent"  # the re-invoked task: the claim answers
    assert len(http.requests) == 2  # the 503 and the delivery, nothing after
    entry = store.messages[("c1", "MSG#ex-1#notify")]
    assert (entry["status"], entry["channel"], entry["attempts"]) == ("sent", "webhook", 2)
    _url, headers, body, _t = http.requests[-1]
    assert json.loads(body) == {"customer_id": "c1", "event": "vip"}
    assert verify(KEY, headers, body, now=time.time())
    assert "hanako" not in str(entry)


def test_a_program_step_records_a_permanent_failure_with_its_status(tmp_path: Path) -> None:
    http = FakeHttp(422)
    svc, store = service(tmp_path, http)
    request = SendRequest(
        program="vip-sync",
        step="notify",
        customer_id="c1",
        execution="ex-2",
        entered_at=NOON - timedelta(minutes=1),
    )
    assert svc.send(request).status == "failed"
    entry = store.messages[("c1", "MSG#ex-2#notify")]
    assert (entry["status"], entry["reason"]) == ("failed", "webhook crm: HTTP 422")
    assert svc.send(request).status == "failed" and len(http.requests) == 1


# --- endpoints named at load -----------------------------------------------------------------
def test_a_program_naming_an_undeclared_endpoint_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "programs").mkdir()
    (tmp_path / "programs" / "vip-sync.yaml").write_text(PROGRAM.replace("crm", "pos"))
    _programs, issues = load_programs(tmp_path / "programs", webhooks=("crm",))
    assert [(i.step, i.message) for i in issues] == [
        ("notify", "webhook 'pos' is not a configured endpoint (crm)")
    ]
    assert load_programs(tmp_path / "programs", webhooks=("crm", "pos"))[1] == []


def test_a_campaign_naming_an_undeclared_endpoint_is_refused() -> None:
    from kizuna.campaigns.loader import CampaignError, check_campaign, parse_campaign
    from tests.unit.test_campaign_model import raw

    campaign = parse_campaign(raw(channels=["webhook"], webhook="pos"))
    (issue,) = check_campaign("c.yaml", campaign, webhooks=())
    assert (issue.field, issue.message) == (
        "webhook",
        "'pos' is not a configured endpoint (none declared)",
    )
    assert check_campaign("c.yaml", campaign, webhooks=("pos",)) == []
    with pytest.raises(CampaignError, match="webhook"):
        parse_campaign(raw(channels=["webhook"]))


@pytest.mark.parametrize("event", [ConsentChanged, ChannelSuppressed])
def test_a_webhook_is_refused_as_a_channel_a_customer_consents_to(event: type) -> None:
    extra = {"status": "opted_in"} if event is ConsentChanged else {"reason": "bounce"}
    base = {"customer_id": "c-1", "occurred_at": "2026-01-05T03:00:00Z", **extra}
    with pytest.raises(ValidationError, match="webhook is a delivery channel"):
        event.model_validate({**base, "channel": "webhook"})
    with pytest.raises(ValidationError, match="channel"):
        event.model_validate({**base, "channel": "fax"})
    assert event.model_validate({**base, "channel": "email"}).channel == ConsentChannel.EMAIL
    schema = event.model_json_schema()["$defs"]["ConsentChannel"]["enum"]
    assert "webhook" not in schema and "email" in schema
    assert set(ConsentChannel) < {str(c) for c in Channel}  # every consent channel is deliverable


def test_every_delivery_channel_is_named_in_both_languages_by_why() -> None:
    from kizuna.delivery.why import CHANNELS

    assert {str(c) for c in Channel} <= set(CHANNELS)
    assert CHANNELS["webhook"] == ("webhook", "Webhook")


def test_a_webhook_step_enters_a_customer_with_no_address_or_consent() -> None:
    from kizuna.domain.customer import Customer, OrderFact
    from kizuna.programs.evaluate import Evaluator, IncomingEvent
    from kizuna.programs.journeys import in_holdout
    from kizuna_tools.fakes import MemoryPublisher, MemoryStarter

    # given: the fixture's first-purchase-to-the-CRM program, and a customer with no email,
    # phone, device or LINE id, and no consent at all
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "webhook_project"
    programs, issues = load_programs(fixture / "programs", webhooks={"crm"})
    assert issues == []
    [program] = programs
    cid = next(f"c{i}" for i in range(1000) if not in_holdout(program, f"c{i}"))
    store, starter = MemoryStore(), MemoryStarter()
    store.customers[cid] = Customer(
        customer_id=cid,
        orders={"o1": OrderFact(placed=True, at=NOON)},
        order_count=1,
        first_order_at=NOON,
        last_order_at=NOON,
    )
    evaluator = Evaluator(
        programs, store, starter, MemoryPublisher(), KizunaConfig(), FixedClock(NOON)
    )
    # when: the first purchase arrives
    result = evaluator.evaluate(
        [
            IncomingEvent(
                event_id=f"{cid}:first_purchase",
                detail_type="customer.first_purchase",
                time=NOON,
                detail={"customer_id": cid, "order_id": "o1", "total": 3000},
            )
        ]
    )
    # then: the customer enters (the endpoint is the shop's own: no_channel does not apply)
    assert [(d.decision, d.reason) for d in result.decisions] == [("entered", None)]
    assert len(starter.started) == 1


def test_a_transactional_message_cannot_name_the_webhook_channel() -> None:
    from kizuna.api.routes.messages import MessageBody

    base = {"customer_id": "c-1", "template": "order_shipped"}
    for field, value in (("channel", "webhook"), ("channels", ["email", "webhook"])):
        with pytest.raises(ValidationError, match="webhook is a delivery channel"):
            MessageBody.model_validate({**base, field: value})
    assert MessageBody.model_validate({**base, "channel": "email"}).channel_order() == ("email",)


@pytest.mark.parametrize("channel", [[], {}, ["email"], None, 3])
def test_a_consent_channel_that_is_not_a_string_is_refused_not_raised(channel: Any) -> None:
    """A hostile ``channel`` (a list is unhashable) is a validation error, so the event is
    dead-lettered with the reason, never an exception that SQS retries forever."""
    with pytest.raises(ValidationError):
        ConsentChanged.model_validate(
            {
                "customer_id": "c1",
                "occurred_at": "2026-01-05T03:00:00Z",
                "channel": channel,
                "status": "opted_in",
            }
        )


# --- the invocation's delivery budget --------------------------------------------------------
class SlowHttp(FakeHttp):
    """An endpoint taking ``seconds`` of a shared clock to answer each request."""

    def __init__(self, clock: list[float], seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HttpResponse:
        self.clock[0] += self.seconds
        return super().post(url, headers, body, timeout)


def test_a_large_group_stops_starting_posts_when_the_invocations_time_is_spent(
    tmp_path: Path,
) -> None:
    """Five members, an endpoint taking 15 s a POST (timeout 10 s per attempt), 40 s to
    deliver: three POSTs start in time; the other two are not started (they were marked
    dispatched: the function's timeout would have left them outcome_unknown, never sent
    and never said) and are recorded deferred a minute, "out_of_time". The group's step at
    that minute sends them, once each."""
    clock = [0.0]
    http = SlowHttp(clock, 15.0)
    svc, store = service(tmp_path, http)
    channel = svc.channels["webhook"]
    assert isinstance(channel, WebhookPost)
    channel._monotonic = lambda: clock[0]
    svc.monotonic = lambda: clock[0]
    svc.delivery_budget = 40.0
    members = [f"c{n}" for n in range(1, 6)]
    for cid in members[1:]:
        store.customers[cid] = factories.customer(customer_id=cid)
    requests = [
        SendRequest(
            program="vip-sync",
            step="notify",
            customer_id=cid,
            execution="ex-9",
            entered_at=NOON - timedelta(minutes=1),
        )
        for cid in members
    ]
    answers = svc.send_many(requests)
    assert [a.status for a in answers] == ["sent", "sent", "sent", "deferred", "deferred"]
    assert {(a.reason, a.until) for a in answers[3:]} == {
        ("out_of_time", "2026-01-05T03:01:00.000000Z")
    }
    assert len(http.requests) == 3 and clock[0] == 45.0
    for cid in members[3:]:
        entry = store.messages[(cid, "MSG#ex-9#notify")]
        assert (entry["status"], entry["reason"]) == ("deferred", "out_of_time")
    # the step again (its deferred child group, or a retry of the group): the sent ones are
    # answered from the ledger, the deferred ones claimed again and posted, once each
    again = svc.send_many(requests)
    assert [a.status for a in again] == ["sent"] * 5
    keys = [r[1]["Idempotency-Key"] for r in http.requests]
    assert len(keys) == 5 == len(set(keys))
    assert {store.messages[(cid, "MSG#ex-9#notify")]["status"] for cid in members} == {"sent"}


def test_a_post_that_may_not_be_answered_before_the_deadline_is_not_started() -> None:
    http = FakeHttp(200)
    sender = WebhookPost(
        {"crm": endpoint(timeout_seconds=10)},
        lambda _e: KEY,
        http,
        now=lambda: NOW,
        monotonic=lambda: 100.0,
        jitter=lambda: 0.0,
    )
    with pytest.raises(OutOfTime):
        send_with_retry(sender, message(), deadline=109.0, monotonic=lambda: 100.0)
    assert http.requests == []
    assert send_with_retry(sender, message(), deadline=110.0, monotonic=lambda: 100.0)
    assert len(http.requests) == 1


def test_a_retry_wait_ends_by_the_invocations_deadline_not_the_webhooks_own_budget() -> None:
    clock = [0.0]
    http = FakeHttp(503, 503, 200)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    sender = WebhookPost(
        {"crm": endpoint(timeout_seconds=10)},
        lambda _e: KEY,
        http,
        now=lambda: NOW,
        sleep=sleep,
        monotonic=lambda: clock[0],
        jitter=lambda: 1.0,
    )
    # 10.4 s left: the first attempt starts, its retry (0.5 s wait + 10 s) could not finish
    with pytest.raises(RetriesExhausted) as failure:
        sender.send_before(message(), 10.4)
    assert "out of time after 1 attempts" in failure.value.reason
    assert sleeps == [] and len(http.requests) == 1


# --- one message's odd failure is that message's ----------------------------------------------
LATIN1_TWO = "\u00b2"  # '²' (0xB2, as http.client decodes headers): str.isdigit() says True


def test_a_retry_after_of_a_latin1_digit_is_no_hint_not_a_crash() -> None:
    http = FakeHttp(HttpResponse(429, {"retry-after": LATIN1_TWO}, b""), 200)
    sender = WebhookPost(
        {"crm": endpoint()}, lambda _e: KEY, http, sleep=lambda _s: None, jitter=lambda: 0.0
    )
    assert sender.send(message()).attempts == 2  # it raised ValueError from float('²')


def test_lines_retry_after_reads_ascii_digits_only() -> None:
    from kizuna.delivery.channels import retry_after_seconds

    assert retry_after_seconds(" 30 ") == 30.0
    for odd in (LATIN1_TWO, "٣", "1e3", "-1", "", "Wed, 21 Oct 2026 07:28:00 GMT", None):
        assert retry_after_seconds(odd) is None


def test_a_signing_key_not_read_fails_that_message_alone() -> None:
    reads: list[int] = []

    def key_for(_endpoint: WebhookEndpoint) -> bytes:  # the cache ran out mid-group and
        reads.append(1)  # Secrets Manager was throttled, for every try of c2's
        if 2 <= len(reads) <= 5:
            raise RuntimeError("GetParameterError: ThrottlingException")
        return KEY

    http = FakeHttp(200, 200)
    sender = WebhookPost({"crm": endpoint()}, key_for, http, sleep=lambda _s: None)
    messages = [message(customer=c) for c in ("c1", "c2", "c3")]
    outcomes = send_all({"webhook": sender}, messages, attempts=4, sleep=lambda _s: None)
    assert len(http.requests) == 2  # c1 and c3 posted (c2 tried 4 times, its key not read)
    assert isinstance(outcomes[1], TemporaryFailure) and "key not read" in outcomes[1].reason
    assert [type(o).__name__ for o in (outcomes[0], outcomes[2])] == ["SendResult"] * 2


def test_an_error_no_channel_expected_fails_that_message_and_the_group_is_recorded(
    tmp_path: Path,
) -> None:
    """It raised out of the group: every claim stayed dispatched and unrecorded (c1 posted
    and answered 200 was never recorded sent; c3 never posted), and the retried step
    answered them all outcome_unknown."""
    http = FakeHttp(200, 200, 200)
    svc, store = service(tmp_path, http)
    for cid in ("c2", "c3"):
        store.customers[cid] = factories.customer(customer_id=cid)
    original = http.post
    posted: list[int] = []

    def post(*args: Any, **kwargs: Any) -> Any:
        posted.append(1)
        if len(posted) == 2:
            raise LookupError("a bug in a channel")
        return original(*args, **kwargs)

    http.post = post  # type: ignore[method-assign]
    reqs = [
        SendRequest(
            program="vip-sync",
            step="notify",
            customer_id=cid,
            execution="ex-7",
            entered_at=NOON - timedelta(minutes=1),
        )
        for cid in ("c1", "c2", "c3")
    ]
    answers = svc.send_many(reqs)
    assert [a.status for a in answers] == ["sent", "failed", "sent"]
    statuses = {
        cid: store.messages[(cid, "MSG#ex-7#notify")]["status"] for cid in ("c1", "c2", "c3")
    }
    assert statuses == {"c1": "sent", "c2": "failed", "c3": "sent"}
    assert "unexpected LookupError" in str(store.messages[("c2", "MSG#ex-7#notify")]["reason"])
