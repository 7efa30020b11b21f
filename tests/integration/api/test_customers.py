"""Customer lookup: the profile (personal data masked for viewers), the timeline (every
decision with its reason and why, newest first, paged) and the console's customer page.

Customers and their rows come from the real services on moto: ingest folds their events,
evaluate decides their program entries, the Send task sends (or caps) the coupon, a campaign
batch's claim notes a send."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import boto3
import pytest

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import PHONE_HASH_ATTRIBUTE, PHONE_INDEX, BehaviourCounter, Customer
from kizuna.domain.loyalty import address_hash
from kizuna.domain.privacy import erase
from kizuna.domain.timestamps import iso
from kizuna.ports import Claim, Claimed
from kizuna.programs.evaluate import Evaluator, IncomingEvent
from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.customers import decode_token, encode_token
from kizuna.services.ingest import IngestService
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStarter
from tests.factories import (
    NOON,
    Email,
    adjust,
    envelope,
    journey_send,
    order,
    send_service,
    upsert,
)
from tests.factories import (
    customer as customer_of,
)
from tests.integration.api.harness import REGION, Api
from tests.sqs_events import sqs_event, sqs_record

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROGRAMS, _ = load_programs(ROOT / "programs")
COUPON = {p.id: p for p in PROGRAMS}["second-purchase-coupon"]
ENTERED = NOON - timedelta(days=1)  # journey_send's entry time
ORDERED = ENTERED - timedelta(hours=1)  # the first order, just before the entry


def ids(holdout: bool, n: int) -> list[str]:
    found = (f"cust-{i}" for i in range(2000) if in_holdout(COUPON, f"cust-{i}") == holdout)
    return [next(found) for _ in range(n)]


HELD, (SENT, CAPPED) = ids(True, 1)[0], ids(False, 2)


def ingest(store: DynamoStore, *events: dict[str, Any]) -> MemoryPublisher:
    publisher = MemoryPublisher()
    service = IngestService(
        store, publisher, MemoryDeadLetters(), KizunaConfig(), FixedClock(NOON), max_receive_count=3
    )
    records = [sqs_record(e, f"m-{e['id']}") for e in events]
    assert service.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    return publisher


def first_purchase(store: DynamoStore, cid: str) -> None:
    """A customer with a profile, email consent, an order and points, whose first purchase
    evaluate decides (entered, or held out) a day before NOON."""
    t = ORDERED - timedelta(days=2)
    published = ingest(
        store,
        upsert(
            cid,
            t,
            f"up-{cid}",
            email=f"hanako.{cid}@example.jp",
            phone="+819012345678",
            first_name="Hanako",
            last_name="Yamada",
            birth_date="1985-04-12",
            time_zone="Asia/Tokyo",
            locale="ja",
        ),
        envelope(
            "consent.changed",
            {
                "customer_id": cid,
                "occurred_at": t.isoformat(),
                "channel": "email",
                "status": "opted_in",
                "source": "signup",
            },
            f"consent-{cid}",
        ),
        order(cid, f"o-{cid}", 3000, ORDERED),
        adjust(cid, f"a-{cid}", 50, ORDERED + timedelta(minutes=1)),
    )
    events = [e for e in published.events if e.detail_type == "customer.first_purchase"]
    incoming = [
        IncomingEvent(
            event_id=e.detail.event_id,
            detail_type=e.detail_type,
            time=e.detail.occurred_at,
            detail=json.loads(e.detail.model_dump_json()),
        )
        for e in events
    ]
    evaluator = Evaluator(
        PROGRAMS, store, MemoryStarter(), MemoryPublisher(), KizunaConfig(), FixedClock(ENTERED)
    )
    assert len(evaluator.evaluate(incoming).decisions) == 1


def campaign_claim(store: DynamoStore, cid: str, occurrence: str, at: Any) -> None:
    """A campaign batch's claim of a send to ``cid`` (noted in CONTACT, as the engine does)."""
    execution = f"campaign:sale:{occurrence}"
    data = {
        "program": "sale",
        "source": "campaign",
        "campaign": "sale",
        "occurrence": occurrence,
        "execution": execution,
        "step": "send",
        "status": "sending",
        "channel": "email",
        "at": iso(at),
    }
    contact = store.read_recipients([cid])[1].get(cid)
    claim = Claim(
        cid,
        data,
        sent_at=iso(at),
        contact_exists=contact is not None,
        contact_version=contact.version if contact else 0,
    )
    assert store.claim_messages(execution, "send", [claim]) == Claimed()


def add_phone_index() -> None:
    """The customers table's phone-hash index, as the stack declares it (kizuna_infra.data);
    the tables of ``create_kizuna_tables`` have no index."""
    boto3.client("dynamodb", region_name=REGION).update_table(
        TableName="customers",
        AttributeDefinitions=[{"AttributeName": PHONE_HASH_ATTRIBUTE, "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": PHONE_INDEX,
                    "KeySchema": [{"AttributeName": PHONE_HASH_ATTRIBUTE, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )


@pytest.fixture
def seeded(api: Api) -> Api:
    add_phone_index()
    api.deps.now = lambda: NOON  # the business clock of the seeded history
    store = api.deps.store
    for cid in (HELD, SENT, CAPPED):
        first_purchase(store, cid)
    # the capped customer got two campaign emails this morning: the daily cap (2) is full
    campaign_claim(store, CAPPED, "o1", NOON - timedelta(hours=3))
    campaign_claim(store, CAPPED, "o2", NOON - timedelta(hours=2))
    send = send_service(store, {"email": Email()}, FixedClock(NOON))
    assert send.send(journey_send(SENT, f"second-purchase-coupon-{SENT}")).status == "sent"
    capped = send.send(journey_send(CAPPED, f"second-purchase-coupon-{CAPPED}"))
    assert (capped.status, capped.reason) == ("suppressed", "frequency_cap_day")
    return api


ROUTES = ("/api/customers/{}", "/api/customers/{}/timeline")


# -- who may call --------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
def test_no_token_is_401_and_no_group_or_a_machine_is_refused(seeded: Api, route: str) -> None:
    path = route.format(SENT)
    assert seeded.call("GET", path).status == 401
    assert seeded.call("GET", path, as_="none").status == 403
    assert seeded.call("GET", path, as_="machine").status == 401  # no id token on /api


@pytest.mark.parametrize("route", ROUTES)
def test_an_invalid_id_is_422_naming_the_field(seeded: Api, route: str) -> None:
    # as a client sends them: '#' and ' ' percent-encoded (the grammar has no '%')
    for bad in ("-starts-with-dash", "has%20space", "x" * 129, "a%23b", "%C3%A9"):
        answer = seeded.call("GET", route.format(bad), as_="viewer")
        assert answer.status == 422, (bad, answer.body)
        assert answer.json()["detail"][0]["loc"] == ["path", "customer_id"]


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_and_erased_customers_are_404_without_data(seeded: Api, route: str) -> None:
    assert seeded.call("GET", route.format("nobody-here"), as_="admin").status == 404
    store = seeded.deps.store

    class NoCohorts:
        def leave_cohort(self, cohort: str, customer_id: str) -> int:
            return 0

    erase(HELD, store, NoCohorts(), NOON)
    answer = seeded.call("GET", route.format(HELD), as_="admin")
    assert answer.status == 404
    assert "Yamada" not in answer.body and "example.jp" not in answer.body


# -- the profile ---------------------------------------------------------------------------
def test_a_viewer_sees_personal_data_masked(seeded: Api) -> None:
    answer = seeded.call("GET", f"/api/customers/{SENT}", as_="viewer")
    assert answer.status == 200, answer.body
    personal = answer.json()["personal"]
    assert personal == {
        "masked": True,
        "email": "h***@example.jp",
        "phone": "***78",
        "first_name": "H***",
        "last_name": "Y***",
        "birth_date": "1985-**-**",
        "line_user_id": None,
        "push_devices": 0,
        "postal_address": None,  # none given (direct mail: masked like the others when set)
    }
    for secret in ("hanako.", "Yamada", "Hanako", "12345678", "04-12"):
        assert secret not in answer.body


@pytest.mark.parametrize("role", ["marketer", "admin"])
def test_marketers_and_admins_see_personal_data_in_clear(seeded: Api, role: str) -> None:
    body = seeded.call("GET", f"/api/customers/{SENT}", as_=role).json()
    assert body["personal"]["masked"] is False
    assert body["personal"]["email"] == f"hanako.{SENT}@example.jp"
    assert body["personal"]["phone"] == "+819012345678"
    assert (body["personal"]["last_name"], body["personal"]["birth_date"]) == (
        "Yamada",
        "1985-04-12",
    )


def test_the_profile_has_loyalty_lifecycle_and_channels(seeded: Api) -> None:
    body = seeded.call("GET", f"/api/customers/{SENT}", as_="viewer").json()
    loyalty = body["loyalty"]
    assert loyalty["order_count"] == 1
    assert float(loyalty["lifetime_value"]) == 3000
    assert loyalty["points_balance"] > 50  # earned on the order, plus the adjustment
    assert loyalty["first_order_at"].startswith(ORDERED.date().isoformat())
    assert body["lifecycle"] == "new"
    channels = {c["channel"]: c for c in body["channels"]}
    assert channels["email"]["consent"] == "opted_in" and channels["email"]["reachable"]
    assert channels["sms"]["blocked_by"] == "no_consent"
    assert channels["line"]["blocked_by"] == "no_address"
    assert body["reachable"] == ["email", "card"]  # a card needs no opt-in (CARDS.md)
    assert set(body["rfm"]) == {"recency", "frequency", "monetary", "segment"}


# -- the timeline --------------------------------------------------------------------------
def timeline(api: Api, cid: str, role: str = "viewer", **query: str) -> dict[str, Any]:
    answer = api.call("GET", f"/api/customers/{cid}/timeline", as_=role, query=query)
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.json()
    return body


def test_the_timeline_is_newest_first_and_typed(seeded: Api) -> None:
    items = timeline(seeded, SENT, lang="en")["items"]
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    types = [i["type"] for i in items]
    assert types[0] == "message"  # the coupon, at NOON
    assert {"message", "decision", "points", "order", "consent"} <= set(types)
    order_item = next(i for i in items if i["type"] == "order")
    assert order_item["data"]["order_id"] == f"o-{SENT}"
    assert order_item["data"]["total"] == "3000" and order_item["data"]["currency"] == "JPY"
    assert order_item["data"]["lines"] == [
        {"product_id": "p-1", "category": "tea", "quantity": 1, "unit_price": "3000"}
    ]
    points = next(i for i in items if i["type"] == "points")
    assert (points["data"], points["reason"]) == ({"delta": 50}, "manual")
    # no personal data, no claim internals, no journey or contact state
    text = json.dumps(items)
    for absent in ("example.jp", "Yamada", "+8190", "claim_token", "claimed_by"):
        assert absent not in text
    assert not any(i["id"].startswith(("JOURNEY#", "CONTACT")) for i in items)


def test_sent_held_out_and_capped_decisions_are_explained(seeded: Api) -> None:
    sent = timeline(seeded, SENT, lang="en")["items"]
    message = next(i for i in sent if i["type"] == "message")
    assert (message["outcome"], message["channel"]) == ("sent", "email")
    assert message["program"] == "second-purchase-coupon" and message["step"] == "coupon"
    assert message["why"]["outcome"] == "sent" and "email" in message["why"]["text"]
    entered = next(i for i in sent if i["type"] == "decision")
    assert entered["outcome"] == "entered" and entered["why"]["text"]

    held = timeline(seeded, HELD, lang="en")["items"]
    decision = next(i for i in held if i["type"] == "decision")
    assert (decision["outcome"], decision["reason"]) == ("holdout", "holdout")
    assert decision["why"]["outcome"] == "holdout"
    assert not any(i["type"] == "message" for i in held)

    capped = timeline(seeded, CAPPED, lang="en")["items"]
    coupon = next(i for i in capped if i["type"] == "message")
    assert (coupon["outcome"], coupon["reason"]) == ("suppressed", "frequency_cap_day")
    assert coupon["why"]["kind"] == "message" and coupon["why"]["text"]
    campaigns = [i for i in capped if i["type"] == "campaign_message"]
    assert [c["campaign"] for c in campaigns] == ["sale", "sale"]
    # the why speaks the request's language
    ja = timeline(seeded, CAPPED, lang="ja")["items"]
    ja_coupon = next(i for i in ja if i["type"] == "message")
    assert ja_coupon["why"]["text"] != coupon["why"]["text"]
    assert ja_coupon["reason"] == "frequency_cap_day"


def test_pages_follow_each_other_without_gaps_or_repeats(seeded: Api) -> None:
    everything = timeline(seeded, CAPPED, limit="100")["items"]
    assert len(everything) >= 6
    seen: list[str] = []
    token: str | None = None
    while True:
        query = {"limit": "2", **({"next_token": token} if token else {})}
        page = timeline(seeded, CAPPED, **query)
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    assert seen == [i["id"] for i in everything]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        # pydantic's lax int reads each of these as a number: refused, not guessed
        ({"limit": "1_0"}, "limit"),
        ({"limit": " 10"}, "limit"),
        ({"limit": "+10"}, "limit"),
        ({"limit": "10.0"}, "limit"),
        ({"limit": "010"}, "limit"),
        ({"limit": "１０"}, "limit"),
        ({"lang": "fr"}, "lang"),
        ({"next_token": "not-a-token"}, "next_token"),
        ({"next_token": "x" * 2000}, "next_token"),
    ],
)
def test_bad_paging_is_422_naming_the_field(seeded: Api, query: dict[str, str], field: str) -> None:
    answer = seeded.call("GET", f"/api/customers/{SENT}/timeline", as_="viewer", query=query)
    assert answer.status == 422, answer.body
    assert answer.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"limit": "010"}, "a whole number written in digits 0-9, e.g. 20"),
        ({"limit": "500"}, "Input should be less than or equal to 100"),
        ({"next_token": "bm90LWEtdG9rZW4"}, "pass the next_token of a previous page as it was"),
        ({"lang": "fr"}, "Input should be 'ja' or 'en'"),
    ],
)
def test_a_422_says_what_the_field_takes_never_the_value_sent(
    seeded: Api, query: dict[str, str], says: str
) -> None:
    # docs/api-intro.md: each error names its field (loc), its kind (type) and what the field
    # takes (msg); Powertools' own answer dropped the msg, leaving `value_error` alone
    answer = seeded.call("GET", f"/api/customers/{SENT}/timeline", as_="viewer", query=query)
    assert answer.status == 422, answer.body
    [error] = answer.json()["detail"]
    assert says in error["msg"], error
    assert set(error) == {"loc", "type", "msg"}
    assert next(iter(query.values())) not in answer.body


def test_a_422_message_that_repeats_the_value_sent_is_left_out() -> None:
    from kizuna.api.app import _error_of

    sent = {"loc": ("query", "x"), "type": "t", "msg": "bad: h@example.jp", "input": "h@example.jp"}
    assert _error_of(sent) == {"loc": ["query", "x"], "type": "t", "msg": ""}
    kept = {"loc": ("query", "x"), "type": "t", "msg": "a date as YYYY-MM-DD", "input": "h@ex"}
    assert _error_of(kept)["msg"] == "a date as YYYY-MM-DD"


def test_page_tokens_are_checked() -> None:
    at = NOON
    assert decode_token(encode_token(at, "ORDER#x")) == (at, "ORDER#x")
    import base64

    for forged in ({"v": 2, "at": iso(at), "sk": "x"}, {"v": 1, "at": "soon", "sk": "x"}, [1]):
        token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        with pytest.raises(ValueError):
            decode_token(token)


# -- the console ---------------------------------------------------------------------------
def page_text(body: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", body))


def test_the_console_page_in_japanese_and_english_masked_for_a_viewer(seeded: Api) -> None:
    cookies = seeded.session("viewer")
    # the search form finds the customer by id
    found = seeded.call("GET", "/console/customers", cookies=cookies, query={"id": CAPPED})
    assert found.status == 303
    location = found.headers["Location"]
    assert location == f"/console/customers/{CAPPED}?lang=ja"
    ja = seeded.call("GET", f"/console/customers/{CAPPED}", cookies=cookies)
    assert ja.status == 200, ja.body
    text = page_text(ja.body)
    assert "タイムライン" in text, text
    assert "配信上限に達しました" in text, text
    assert "h***@example.jp" in text
    assert "Yamada" not in text and "hanako." not in text
    assert "<script" not in ja.body and "style=" not in ja.body
    en = seeded.call("GET", f"/console/customers/{CAPPED}", cookies=cookies, query={"lang": "en"})
    text = page_text(en.body)
    assert (
        "Timeline" in text
        and "frequency cap 2 per day reached" in text
        and "frequency_cap_day" in text
    )
    assert 'class="badge suppressed"' in en.body


def test_the_console_page_writes_amounts_with_separators_and_no_decimals(seeded: Api) -> None:
    """The customer's spend read "3000" (the report's revenue "12,000.00" yen)."""
    page = seeded.call("GET", f"/console/customers/{SENT}", cookies=seeded.session("viewer"))
    assert page.status == 200, page.body
    kpis = re.findall(r'<div class="value">([^<]*)</div>', page.body)
    assert "3,000" in kpis, kpis  # lifetime value and the last 12 months' spend
    assert not any(k.replace(",", "").isdigit() and len(k) > 3 and "," not in k for k in kpis)
    # and the timeline's order as well ("3000 JPY" before)
    text = page_text(page.body)
    assert re.search(r"3,000 JPY", text) and "3000" not in text, text


def test_the_console_page_in_clear_for_a_marketer_and_paged(seeded: Api) -> None:
    cookies = seeded.session("marketer")
    page = seeded.call("GET", f"/console/customers/{HELD}", cookies=cookies, query={"lang": "en"})
    assert page.status == 200
    assert "Yamada" in page.body and f"hanako.{HELD}@example.jp" in page.body
    assert "Held out (program holdout" in page_text(page.body)
    assert "second-purchase-coupon" in page_text(page.body)
    # by phone number (posted, with the CSRF field): marketers may, viewers may not
    by_phone = seeded.call("GET", "/console/customers", cookies=cookies)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', by_phone.body)
    assert csrf is not None
    form = {"phone": "+819012345678", "csrf": csrf.group(1)}
    found = seeded.call("POST", "/console/customers", cookies=cookies, form=form)
    assert found.status == 200 and f"/console/customers/{HELD}" in found.body  # three share it
    assert "+819012345678" not in found.headers.get("Location", "")
    forged = seeded.call(
        "POST", "/console/customers", cookies=cookies, form={**form, "csrf": "0" * 32}
    )
    assert forged.status == 403
    viewer = seeded.session("viewer")
    viewer_page = seeded.call("GET", "/console/customers", cookies=viewer)
    assert 'name="phone"' not in viewer_page.body
    viewer_csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', viewer_page.body)
    assert viewer_csrf is not None
    refused = seeded.call(
        "POST",
        "/console/customers",
        cookies=viewer,
        form={"phone": "+819012345678", "csrf": viewer_csrf.group(1)},
    )
    assert refused.status == 403 and HELD not in refused.body


def test_console_lookup_errors(seeded: Api) -> None:
    cookies = seeded.session("viewer")
    assert seeded.call("GET", f"/console/customers/{SENT}").status == 303  # sign in first
    bad = seeded.call("GET", "/console/customers", cookies=cookies, query={"id": "a b"})
    assert bad.status == 422 and "顧客IDの形式" in bad.body
    missing = seeded.call("GET", "/console/customers/nobody", cookies=cookies)
    assert missing.status == 404
    token = seeded.call(
        "GET", f"/console/customers/{SENT}", cookies=cookies, query={"next": "garbage"}
    )
    assert token.status == 422


def test_the_routes_are_in_the_openapi_document(api: Api) -> None:
    doc = api.call("GET", "/api/openapi.json", as_="viewer").json()
    for path in ("/api/customers/{customer_id}", "/api/customers/{customer_id}/timeline"):
        operation = doc["paths"][path]["get"]
        assert operation["tags"] == ["customers"] and operation["summary"]
        assert "404" in operation["responses"]
    assert "CustomerProfile" in doc["components"]["schemas"]
    assert not any(p.startswith("/console") for p in doc["paths"])


# -- the shop's declared attributes and behaviour counters -----------------------------------------
DECLARED = KizunaConfig.model_validate(
    {
        "custom": {
            "attributes": [
                {"name": "favourite_store", "type": "string"},
                {"name": "newsletter", "type": "boolean"},
                {"name": "shoe_size", "type": "number"},
                {"name": "interests", "type": "string_list"},
                {"name": "nickname", "type": "string", "personal": True},
                {"name": "anniversary", "type": "date", "personal": True},
                {"name": "membership_tier_pos", "type": "string", "enum": ["standard", "vip"]},
            ],
            "events": [{"detail_type": "wishlist.added", "windows_days": [14, 30]}],
            "tracked": [{"detail_type": "app.opened", "windows_days": [30]}],
        }
    }
)
SHOPPER = "shopper-1"


@pytest.fixture
def shopper(api: Api) -> Api:
    """A customer with declared attributes (two of them personal data) and three wishes:
    20 days, 10 days and one day before NOON."""
    api.deps.config = DECLARED
    api.deps.now = lambda: NOON
    wishes = [NOON - timedelta(days=d) for d in (20, 10, 1)]
    customer = Customer(
        customer_id=SHOPPER,
        attributes={
            "favourite_store": "銀座本店",
            "newsletter": True,
            "shoe_size": Decimal("24.5"),
            "interests": ["sencha", "matcha"],
            "nickname": "ハナ",
            "anniversary": "2019-06-01",
        },
        behaviour={
            "wishlist.added": BehaviourCounter(
                recent=[int(t.timestamp()) for t in wishes], total=3, last_at=wishes[-1]
            )
        },
    )
    api.deps.store.save_customer(customer, 0)
    return api


def test_the_profile_shows_declared_attributes_personal_ones_masked_for_a_viewer(
    shopper: Api,
) -> None:
    answer = shopper.call("GET", f"/api/customers/{SHOPPER}", as_="viewer")
    assert answer.status == 200, answer.body
    body = answer.json()
    attributes = {a["name"]: a for a in body["custom_attributes"]}
    # every declaration, in order, the unset one as null
    assert list(attributes) == [a.name for a in DECLARED.custom.attributes]
    assert attributes["membership_tier_pos"]["value"] is None
    # what is not personal data in clear, as stored
    assert attributes["favourite_store"]["value"] == "銀座本店"
    assert attributes["newsletter"]["value"] is True
    assert float(attributes["shoe_size"]["value"]) == 24.5
    assert attributes["interests"]["value"] == ["sencha", "matcha"]
    # personal data masked like the built-in fields
    assert attributes["nickname"] == {
        "name": "nickname",
        "type": "string",
        "personal": True,
        "value": "ハ***",
    }
    assert attributes["anniversary"]["value"] == "2019-**-**"
    assert "ハナ" not in answer.body and "06-01" not in answer.body
    # and the counters, as behavioural conditions read them at NOON
    assert body["behaviour"] == {
        "app.opened": {"count_30d": 0, "total": 0},
        "wishlist.added": {"count_14d": 2, "count_30d": 3, "total": 3, "days_since_last": 1},
    }


def test_a_marketer_sees_declared_personal_attributes_in_clear(shopper: Api) -> None:
    body = shopper.call("GET", f"/api/customers/{SHOPPER}", as_="marketer").json()
    attributes = {a["name"]: a["value"] for a in body["custom_attributes"]}
    assert (attributes["nickname"], attributes["anniversary"]) == ("ハナ", "2019-06-01")


def test_the_console_page_shows_declared_attributes_and_counters(shopper: Api) -> None:
    viewer = shopper.call("GET", f"/console/customers/{SHOPPER}", cookies=shopper.session("viewer"))
    assert viewer.status == 200, viewer.body
    text = page_text(viewer.body)
    assert "独自の属性" in text and "favourite_store" in text and "銀座本店" in text
    assert "ハ***" in text and "ハナ" not in text and "2019-**-**" in text
    assert "wishlist.added" in text and "14日間: 2 · 30日間: 3" in text
    english = shopper.call(
        "GET",
        f"/console/customers/{SHOPPER}",
        cookies=shopper.session("marketer"),
        query={"lang": "en"},
    )
    text = page_text(english.body)
    assert "The shop's attributes" in text and "ハナ" in text and "14 days: 2 · 30 days: 3" in text


def test_an_unreadable_customer_item_is_said_so_naming_the_fields_never_the_values(
    seeded: Api,
) -> None:
    # given: SENT's item edited by hand to a value this version refuses
    seeded.deps.store._customers.update_item(
        Key={"customer_id": SENT},
        UpdateExpression="SET order_count = :x",
        ExpressionAttributeValues={":x": "secret-value"},
    )
    answer = seeded.call("GET", f"/api/customers/{SENT}", as_="admin")
    assert answer.status == 500, answer.body
    body = answer.json()
    assert (body["code"], body["fields"]) == ("unreadable_customer", ["order_count"])
    assert "secret-value" not in answer.body
    # the timeline still reads: what happened to them is in their rows, not the item
    rows = timeline(seeded, SENT, role="admin")["items"]
    assert rows[0]["type"] == "message" and "secret-value" not in str(rows)
    cookies = seeded.session("viewer")
    for lang, words in (("ja", "読み取れません"), ("en", "cannot read")):
        page = seeded.call(
            "GET", f"/console/customers/{SENT}", cookies=cookies, query={"lang": lang}
        )
        assert page.status == 500 and words in page_text(page.body), page.body
        assert "order_count" in page_text(page.body) and "secret-value" not in page.body
    # the other customers' pages are as ever
    assert seeded.call("GET", f"/api/customers/{HELD}", as_="admin").status == 200


def test_a_customer_stored_with_the_japanese_trunk_0_is_found_by_phone(seeded: Api) -> None:
    # stored before ingest refused "+8109...": no SMS address now, and it needs correcting,
    # so the search by phone must still find it (the lookup reads any E.164 number)
    legacy = "+8109012345678"
    seeded.deps.store.save_customer(
        customer_of("legacy", phone=legacy, phone_hash=address_hash(legacy)), 0
    )
    cookies = seeded.session("marketer")
    page = seeded.call("GET", "/console/customers", cookies=cookies)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert csrf is not None
    form = {"phone": legacy, "csrf": csrf.group(1)}
    found = seeded.call("POST", "/console/customers", cookies=cookies, form=form)
    assert found.status == 303 and "/console/customers/legacy" in found.headers["Location"]
    # a number that is no E.164 at all is still refused
    bad = seeded.call("POST", "/console/customers", cookies=cookies, form={**form, "phone": "090"})
    assert bad.status == 422
