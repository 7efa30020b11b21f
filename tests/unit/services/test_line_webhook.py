"""The LINE webhook: signature, follow/unfollow as consent, account link, redelivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.delivery.policy import channel_block
from kizuna.domain.customer import Customer, Customers, UnreadableCustomer
from kizuna.domain.ingest import apply_events
from kizuna.domain.loyalty import address_hash
from kizuna.events import ConsentChanged, InboundDetail, LineLinked, inbound_type
from kizuna.events.envelope import parse_inbound
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.line_webhook import LineWebhookService, link_nonce, nonce_customer
from tests.factories import envelope

SECRET = "line-channel-secret-0123456789ab"
NONCE_KEY = b"nonce-key-for-tests-000000000000"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
USER = "U" + "a" * 32
OTHER = "U" + "b" * 32
CFG = KizunaConfig()


class Store:
    def __init__(self, customers: Sequence[Customer]) -> None:
        self.customers = {c.customer_id: c for c in customers}
        self.claims: set[str] = set()
        self.unreadable: set[str] = set()  # items this version cannot read (as the adapter)

    def customers_by_line_user(self, line_user_hash: str) -> list[str]:
        return [
            c.customer_id
            for c in self.customers.values()
            if c.line_user_id and address_hash(c.line_user_id) == line_user_hash
        ]

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]:
        refused = {i: ("order_count",) for i in customer_ids if i in self.unreadable}
        if refused and not unreadable_ok:
            raise UnreadableCustomer(next(iter(refused)), ("order_count",))
        found = {
            i: self.customers[i]
            for i in customer_ids
            if i in self.customers and i not in self.unreadable
        }
        return Customers(found, refused)

    def claim_webhook_event(self, event_id: str, expires_at: datetime) -> bool:
        if event_id in self.claims:
            return False
        self.claims.add(event_id)
        return True

    def release_webhook_event(self, event_id: str) -> None:
        self.claims.discard(event_id)


class Bus:
    def __init__(self) -> None:
        self.details: list[InboundDetail] = []

    def put_inbound(self, detail: InboundDetail) -> None:
        self.details.append(detail)


def world(*customers: Customer) -> tuple[LineWebhookService, Bus, Store]:
    bus, store = Bus(), Store(customers or [Customer(customer_id="c1", line_user_id=USER)])
    service = LineWebhookService(lambda: SECRET, [NONCE_KEY], bus, store, FixedClock(NOW))
    return service, bus, store


def webhook_event(
    kind: str, user: str = USER, event_id: str = "01EVT1", **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "mode": "active",
        "timestamp": int((NOW - timedelta(seconds=5)).timestamp() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        **extra,
    }


def request(
    events: list[dict[str, Any]], signature: str | None = "sign", **over: Any
) -> dict[str, Any]:
    body = json.dumps({"destination": "U" + "f" * 32, "events": events}).encode()
    headers: dict[str, str] = {}
    if signature == "sign":
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
        headers["x-line-signature"] = base64.b64encode(digest).decode()
    elif signature is not None:
        headers["x-line-signature"] = signature
    return {
        "requestContext": {"http": {"method": "POST"}},
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
        **over,
    }


def fold(customer: Customer, details: Sequence[InboundDetail]) -> Customer:
    for d in details:
        event_id = hashlib.sha256(d.model_dump_json().encode()).hexdigest()[:16]
        raw = envelope(inbound_type(d), json.loads(d.model_dump_json()), event_id, "kizuna.line")
        customer = apply_events(
            customer, [parse_inbound(raw, NOW, CFG.event_time)], CFG, NOW
        ).customer
    return customer


def test_a_bad_or_missing_signature_is_401_and_changes_nothing() -> None:
    service, bus, store = world()
    for signature in (None, "", base64.b64encode(b"x" * 32).decode(), "not base64!"):
        answer = service.handle(request([webhook_event("unfollow")], signature=signature))
        assert answer["statusCode"] == 401
    # a body changed after signing
    signed = request([webhook_event("follow")])
    signed["body"] = base64.b64encode(
        json.dumps({"events": [webhook_event("unfollow")]}).encode()
    ).decode()
    assert service.handle(signed)["statusCode"] == 401
    assert bus.details == [] and store.claims == set()


def test_unfollow_opts_out_and_stops_line_follow_opts_in() -> None:
    service, bus, _ = world()
    assert service.handle(request([webhook_event("unfollow")]))["statusCode"] == 200
    (detail,) = bus.details
    assert isinstance(detail, ConsentChanged)
    assert (detail.customer_id, str(detail.channel), str(detail.status), detail.source) == (
        "c1",
        "line",
        "opted_out",
        "line_webhook",
    )
    assert detail.occurred_at == NOW - timedelta(seconds=5)  # the webhook event's timestamp
    customer = fold(Customer(customer_id="c1", line_user_id=USER), bus.details)
    assert str(customer.consent["line"].status) == "opted_out"
    assert channel_block(customer, "line", USER) == "no_consent"  # marketing
    assert channel_block(customer, "line", USER, transactional=True) == "opted_out"

    service.handle(
        request([webhook_event("follow", event_id="01EVT2", timestamp=int(NOW.timestamp() * 1000))])
    )
    customer = fold(customer, bus.details[1:])
    assert str(bus.details[1].status) == "opted_in"  # type: ignore[attr-defined]
    assert channel_block(customer, "line", USER) is None


def test_an_unknown_line_user_changes_nothing() -> None:
    service, bus, _ = world(Customer(customer_id="c1", line_user_id=USER))
    answer = service.handle(
        request([webhook_event("unfollow", user=OTHER), webhook_event("follow", user="x")])
    )
    assert answer["statusCode"] == 200 and bus.details == []


def test_a_block_opts_out_every_customer_holding_the_line_user() -> None:
    """One person, two shop accounts linked to one LINE account: a block reaches both (it
    was dropped for both while two held the id), and so does a follow after it."""
    old, new = (Customer(customer_id=c, line_user_id=USER) for c in ("c-old", "c-new"))
    service, bus, _ = world(old, new, Customer(customer_id="c3", line_user_id=OTHER))
    assert service.handle(request([webhook_event("unfollow")]))["statusCode"] == 200
    assert [(d.customer_id, str(d.status)) for d in bus.details] == [  # type: ignore[attr-defined]
        ("c-new", "opted_out"),
        ("c-old", "opted_out"),
    ]
    for before in (old, new):
        after = fold(before, [d for d in bus.details if d.customer_id == before.customer_id])
        assert channel_block(after, "line", USER) == "no_consent"
    bus.details.clear()
    service.handle(request([webhook_event("follow", event_id="01EVT2")]))
    assert sorted(d.customer_id for d in bus.details) == ["c-new", "c-old"]


def test_a_holder_whose_item_cannot_be_read_stops_nothing_else_in_the_body() -> None:
    """One holder's item this version cannot read: the body's events all apply (the
    unreadable holder's change goes to ingest, which holds it until the item is fixed),
    and an account link for such a customer is passed on too, never taken as unknown."""
    old, new = (Customer(customer_id=c, line_user_id=USER) for c in ("c-old", "c-new"))
    other = Customer(customer_id="c3", line_user_id=OTHER)
    service, bus, store = world(old, new, other)
    store.unreadable.add("c-old")
    events = [webhook_event("unfollow"), webhook_event("unfollow", OTHER, "01EVT2")]
    assert service.handle(request(events))["statusCode"] == 200
    assert sorted(d.customer_id for d in bus.details) == ["c-new", "c-old", "c3"]
    bus.details.clear()
    store.unreadable.add("c9")
    store.customers["c9"] = Customer(customer_id="c9")
    nonce = link_nonce(NONCE_KEY, "c9", NOW - timedelta(minutes=2))
    link = webhook_event("accountLink", event_id="01EVT3", link={"result": "ok", "nonce": nonce})
    assert service.handle(request([link]))["statusCode"] == 200
    assert [d.customer_id for d in bus.details] == ["c9"]


def test_a_put_failing_for_one_holder_is_redelivered_for_all() -> None:
    service, bus, store = world(*(Customer(customer_id=c, line_user_id=USER) for c in "ab"))
    calls = []

    def flaky(detail: InboundDetail) -> None:
        calls.append(detail.customer_id)
        if len(calls) == 2:
            raise RuntimeError("bus down")
        bus.details.append(detail)

    service.inbound.put_inbound = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        service.handle(request([webhook_event("unfollow")]))
    assert store.claims == set()  # released: LINE's redelivery is applied
    service.handle(request([webhook_event("unfollow")]))
    assert calls == ["a", "b", "a", "b"] and [d.customer_id for d in bus.details] == ["a", "a", "b"]


@pytest.mark.parametrize("stamp", [10**20, -1, 0, True, 1.5e12, "1767225600000", None])
def test_an_event_whose_timestamp_is_not_lines_is_ignored_not_a_crash(stamp: object) -> None:
    service, bus, store = world()
    answer = service.handle(request([webhook_event("unfollow", timestamp=stamp)]))
    assert answer["statusCode"] == 200 and bus.details == [] and store.claims == set()


def test_a_redelivered_event_is_applied_once() -> None:
    service, bus, _ = world()
    first = webhook_event("unfollow", event_id="01SAME")
    again = {**first, "deliveryContext": {"isRedelivery": True}}
    service.handle(request([first]))
    service.handle(request([again]))
    service.handle(request([first, again]))
    assert len(bus.details) == 1


def test_a_failed_put_releases_the_claim() -> None:
    service, bus, store = world()

    class Failing(Bus):
        def put_inbound(self, detail: InboundDetail) -> None:
            raise RuntimeError("bus down")

    service.inbound = Failing()
    with pytest.raises(RuntimeError):
        service.handle(request([webhook_event("unfollow")]))
    assert store.claims == set()
    service.inbound = bus
    service.handle(request([webhook_event("unfollow")]))  # LINE's redelivery
    assert len(bus.details) == 1


def test_account_link_with_a_good_nonce_links_the_customer() -> None:
    service, bus, _ = world(Customer(customer_id="c9"))
    nonce = link_nonce(NONCE_KEY, "c9", NOW - timedelta(minutes=2))
    link = {"result": "ok", "nonce": nonce}
    service.handle(request([webhook_event("accountLink", user=OTHER, link=link)]))
    (detail,) = bus.details
    assert isinstance(detail, LineLinked)
    assert (detail.customer_id, detail.line_user_id) == ("c9", OTHER)
    assert fold(Customer(customer_id="c9"), bus.details).line_user_id == OTHER


def test_account_link_refusals() -> None:
    service, bus, _ = world(Customer(customer_id="c9"))
    good = link_nonce(NONCE_KEY, "c9", NOW)
    cases = [
        {"result": "failed", "nonce": good},
        {"result": "ok", "nonce": link_nonce(b"another-key-0000000000000000000", "c9", NOW)},
        {"result": "ok", "nonce": link_nonce(NONCE_KEY, "c9", NOW - timedelta(hours=3))},  # old
        {"result": "ok", "nonce": link_nonce(NONCE_KEY, "nobody", NOW)},  # no such customer
        {"result": "ok", "nonce": "garbage"},
    ]
    events = [webhook_event("accountLink", event_id=f"e{i}", link=c) for i, c in enumerate(cases)]
    assert service.handle(request(events))["statusCode"] == 200
    assert bus.details == []
    assert nonce_customer([NONCE_KEY], good, NOW) == "c9"


def test_not_post_and_not_json() -> None:
    service, _, _ = world()
    assert service.handle({"requestContext": {"http": {"method": "GET"}}})["statusCode"] == 405
    body = b"not json"
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    event = {
        "requestContext": {"http": {"method": "POST"}},
        "headers": {"X-Line-Signature": digest},
        "body": "not json",
    }
    assert service.handle(event)["statusCode"] == 400
    # LINE's "verify" button: an empty list of events
    assert service.handle(request([]))["statusCode"] == 200


def test_a_signature_header_with_non_ascii_characters_is_401_not_a_crash() -> None:
    service, bus, store = world()
    for signature in ("\u00e9" * 44, "\udc80", "署名"):
        answer = service.handle(request([webhook_event("unfollow")], signature=signature))
        assert answer["statusCode"] == 401
    assert bus.details == [] and store.claims == set()


def test_a_body_that_is_not_base64_is_400_not_a_crash() -> None:
    service, bus, store = world()
    for body in ("abc", "not base64!", "=="):
        event = request([webhook_event("unfollow")], body=body)
        assert service.handle(event)["statusCode"] == 400
    assert bus.details == [] and store.claims == set()


def test_an_account_link_nonce_links_once() -> None:
    # given the customer linked their LINE account with a nonce
    victim_line = "U" + "c" * 32
    service, bus, store = world(Customer(customer_id="victim"))
    ok = {"result": "ok", "nonce": link_nonce(NONCE_KEY, "victim", NOW - timedelta(minutes=1))}
    service.handle(
        request([webhook_event("accountLink", user=victim_line, event_id="E1", link=ok)])
    )
    # when the same nonce comes again in another accountLink, from another LINE user
    answer = service.handle(
        request([webhook_event("accountLink", user=OTHER, event_id="E2", link=ok)])
    )
    # then it links nothing: the customer stays linked to their own LINE account
    assert answer["statusCode"] == 200
    (linked,) = bus.details
    assert isinstance(linked, LineLinked)
    assert (linked.customer_id, linked.line_user_id) == ("victim", victim_line)
    assert store.claims >= {"E1", "E2"}


def test_an_account_link_nonce_is_valid_for_ten_minutes() -> None:
    issued = NOW - timedelta(seconds=5)  # the webhook event's time
    nonce = link_nonce(NONCE_KEY, "c9", issued - timedelta(minutes=10))
    assert nonce_customer([NONCE_KEY], nonce, issued) == "c9"
    late = link_nonce(NONCE_KEY, "c9", issued - timedelta(minutes=11))
    assert nonce_customer([NONCE_KEY], late, issued) is None


def test_a_failed_put_releases_the_nonce_too() -> None:
    service, bus, store = world(Customer(customer_id="c9"))

    class Failing(Bus):
        def put_inbound(self, detail: InboundDetail) -> None:
            raise RuntimeError("bus down")

    ok = {"result": "ok", "nonce": link_nonce(NONCE_KEY, "c9", NOW)}
    service.inbound = Failing()
    with pytest.raises(RuntimeError):
        service.handle(request([webhook_event("accountLink", user=OTHER, link=ok)]))
    assert store.claims == set()
    service.inbound = bus
    service.handle(request([webhook_event("accountLink", user=OTHER, link=ok)]))  # redelivery
    assert [d.customer_id for d in bus.details] == ["c9"]
