"""The shop's own vocabulary on the local runtime (issue 17), end to end through the real
stack: a declared attribute and declared events used in a trigger (filtered on the event's
field), a segment (an attribute and a behavioural counter), a branch (an attribute), a goal
(another declared event, filtered on its field) and the templates (a personal attribute).

The project is ``tests/fixtures/custom_vocabulary_project`` (its configuration declares the
vocabulary): ``wishlist-nudge`` starts on ``wishlist.added`` with ``price >= 3000`` for
customers in ``wishlist-fans`` (``attributes.newsletter`` true and ``wishlist.added`` at least
twice in 14 days); VIP members (``attributes.membership_tier_pos``) get the ``vip`` email
addressed by their nickname, the others the ``note``; a ``store.checked_in`` at a store whose
id starts with ``tokyo-`` is the goal.

Needs the ingest fold of attributes and counters and the evaluate function's validation of
declared events (issue 17, the "core" part): with only the loaders' part, the declared
events are dead-lettered and nobody enters.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.demo import DEMO_CONTEXT
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.conftest import DEMO_CHANNELS, ProjectCloud, project_template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "custom_vocabulary_project"
CONFIG: dict[str, Any] = json.loads((FIXTURE / "kizuna-config.json").read_text(encoding="utf-8"))
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # Monday 09:00 in Tokyo
PROGRAM = "wishlist-nudge"


@pytest.fixture(scope="module")
def vocabulary_template() -> dict[str, Any]:
    """The Kizuna stack with the fixture's configuration, programs, segments and templates
    (every channel configured as the demo does)."""
    from kizuna_infra import names

    return project_template(
        FIXTURE,
        CONFIG,
        {**DEMO_CONTEXT, names.CONTEXT_CONFIG_KEY: CONFIG},
        segments_dir=FIXTURE / "segments",
        **DEMO_CHANNELS,
    )


@pytest.fixture
def cloud(
    vocabulary_template: dict[str, Any],
    project_cloud: ProjectCloud,
    monkeypatch: pytest.MonkeyPatch,
) -> LocalCloud:
    """The fixture's app at START. The functions find the bundle they were deployed with
    (programs/, segments/, templates/) next to them; here, in the fixture's folder."""
    monkeypatch.chdir(FIXTURE)
    return project_cloud(vocabulary_template, FIXTURE, project_root=ROOT, start=START)


# --- driving and reading the cloud ---------------------------------------------------------------
def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    detail = {"occurred_at": cloud.clock.now().isoformat(), **detail}
    [result] = cloud.put_events(
        [{"Source": "com.example.shop", "DetailType": detail_type, "Detail": detail}]
    )
    assert "ErrorCode" not in result, result
    cloud.drain()


def member(cloud: LocalCloud, cid: str, **attributes: Any) -> None:
    """A customer reachable by email, with the declared attributes given."""
    put(
        cloud,
        "customer.upserted",
        {
            "customer_id": cid,
            "email": f"{cid}@example.jp",
            "first_name": "花子",
            "last_name": "山田",
            "locale": "ja",
            "time_zone": "Asia/Tokyo",
            "attributes": attributes,
        },
    )
    put(cloud, "consent.changed", {"customer_id": cid, "channel": "email", "status": "opted_in"})


def wish(cloud: LocalCloud, cid: str, product: str, price: int) -> None:
    put(cloud, "wishlist.added", {"customer_id": cid, "product_id": product, "price": price})


def rows(cloud: LocalCloud, cid: str, kind: str) -> list[dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    items = [i for i in cloud.scan(table) if i["pk"] == cid and i.get("kind") == kind]
    return sorted(items, key=lambda i: str(i.get("at", i["sk"])))


def decisions(cloud: LocalCloud, cid: str) -> list[tuple[str, str | None]]:
    return [
        (str(r["decision"]), r.get("reason"))
        for r in rows(cloud, cid, "ENTRY")
        if r.get("program") == PROGRAM
    ]


def sent(cloud: LocalCloud, cid: str) -> list[tuple[str, str]]:
    return [
        (str(m["step"]), str(m["channel"]))
        for m in rows(cloud, cid, "MSG")
        if m.get("program") == PROGRAM and m.get("status") == "sent"
    ]


def email_text(request: dict[str, Any]) -> str:
    """Subject and plain text of an SES v2 SendEmail request (simple or raw MIME)."""
    content = request.get("Content", {})
    if "Simple" in content:
        simple = content["Simple"]
        return "\n".join(
            [
                str(simple.get("Subject", {}).get("Data", "")),
                str(simple.get("Body", {}).get("Text", {}).get("Data", "")),
            ]
        )
    data = content.get("Raw", {}).get("Data", "")
    message = email.message_from_bytes(base64.b64decode(data), policy=email.policy.default)
    parts = [str(message.get("Subject", ""))]
    parts += [
        str(part.get_content())
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    ]
    return "\n".join(parts)


def mails_to(cloud: LocalCloud, cid: str) -> list[str]:
    address = f"{cid}@example.jp"
    return [
        email_text(e["request"])
        for e in cloud.outbox("email")
        if isinstance(e.get("request"), dict)
        and address in e["request"].get("Destination", {}).get("ToAddresses", [])
    ]


def settle(cloud: LocalCloud) -> None:
    """Let the program's cohort window pass (10 minutes) and its steps run."""
    cloud.advance(minutes=30)


# --- the scenario ---------------------------------------------------------------------------------
def test_declared_attributes_and_events_drive_a_program_end_to_end(cloud: LocalCloud) -> None:
    # Given four newsletter readers and one who is not, with the POS's attributes (the VIP
    # gave a nickname, personal data, and a favourite store)
    vip = {"nickname": "ハナ", "favourite_store": "銀座本店"}
    member(cloud, "vip", newsletter=True, membership_tier_pos="vip", **vip)
    member(cloud, "regular", newsletter=True, membership_tier_pos="standard")
    member(cloud, "cheap", newsletter=True, membership_tier_pos="vip")
    member(cloud, "no-news", newsletter=False, membership_tier_pos="vip")
    member(cloud, "slow", newsletter=True, membership_tier_pos="vip")

    # When each adds a first product to their wishlist (one of them a cheap one)
    for cid in ("vip", "regular", "no-news", "slow"):
        wish(cloud, cid, "tea-gyokuro", 5400)
    wish(cloud, "cheap", "tea-bancha", 800)
    settle(cloud)
    # Then nobody is in the segment yet (one wish in 14 days): skipped on the audience,
    # and the cheap wish did not even match the trigger's filter on the event's price
    for cid in ("vip", "regular", "no-news", "slow"):
        assert decisions(cloud, cid) == [("skipped", "audience")], cid
    assert decisions(cloud, "cheap") == []

    # When, three days later, four of them wish again (the slow one 15 days later: its
    # first wish has left the 14-day window by then)
    cloud.advance(days=3)
    for cid in ("vip", "regular", "no-news"):
        wish(cloud, cid, "tea-sencha", 3200)
    wish(cloud, "cheap", "tea-hojicha", 900)
    settle(cloud)
    cloud.advance(days=12)
    wish(cloud, "slow", "tea-sencha", 3200)
    settle(cloud)

    # Then the two newsletter readers with two wishes in 14 days entered, and each branch on
    # the POS tier sent its own email; the others were skipped on the audience
    assert decisions(cloud, "vip") == [("skipped", "audience"), ("entered", None)]
    assert decisions(cloud, "regular") == [("skipped", "audience"), ("entered", None)]
    assert decisions(cloud, "no-news") == [("skipped", "audience")] * 2
    assert decisions(cloud, "slow") == [("skipped", "audience")] * 2
    assert decisions(cloud, "cheap") == []
    assert sent(cloud, "vip") == [("vip", "email")]
    assert sent(cloud, "regular") == [("note", "email")]
    for cid in ("no-news", "slow", "cheap"):
        assert sent(cloud, cid) == [] and mails_to(cloud, cid) == [], cid

    # and the templates read the declared attributes: the VIP is addressed by the nickname
    # (personal data a template may use), the store is the customer's favourite
    [vip_mail] = mails_to(cloud, "vip")
    assert vip_mail.startswith("ハナさま、VIP会員さま限定のご案内")
    assert "銀座本店でご試飲いただけます" in vip_mail
    [regular_mail] = mails_to(cloud, "regular")
    assert "山田 花子様、ほしい物リストの商品のご案内" in regular_mail
    assert "オンラインストアでお求めいただけます" in regular_mail  # no favourite store

    # When the VIP checks in at an Osaka store, then at a Tokyo one
    put(cloud, "store.checked_in", {"customer_id": "vip", "store_id": "osaka-umeda"})
    assert rows(cloud, "vip", "CONV") == []
    cloud.advance(hours=2)
    put(cloud, "store.checked_in", {"customer_id": "vip", "store_id": "tokyo-ginza"})
    # Then only the Tokyo check-in is the program's goal (the goal's filter on store_id)
    [conversion] = rows(cloud, "vip", "CONV")
    assert conversion["program"] == PROGRAM and conversion["decision"] == "converted"
    assert rows(cloud, "regular", "CONV") == []
    # and the stored customer carries the attributes and the counters the conditions read
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    [vip] = [c for c in cloud.scan(table) if c["customer_id"] == "vip"]
    assert vip["attributes"]["membership_tier_pos"] == "vip"
    assert vip["behaviour"]["wishlist.added"]["total"] == 2
    assert vip["behaviour"]["store.checked_in"]["total"] == 2
    # and nothing was dead-lettered: every declared event was accepted as declared
    assert all(not messages for messages in cloud.dlq_messages().values())


def test_an_undeclared_attribute_or_event_is_dead_lettered_with_its_name(
    cloud: LocalCloud,
) -> None:
    # Given a customer
    member(cloud, "typo", newsletter=True)
    # When a producer sends an attribute and an event nobody declared
    put(
        cloud,
        "customer.upserted",
        {"customer_id": "typo", "attributes": {"newsleter": False}},
    )
    put(cloud, "wishlist.removed", {"customer_id": "typo", "product_id": "tea-gyokuro"})
    # Then both are dead-lettered, the reason naming what was not declared
    letters = json.dumps(cloud.dlq_messages(), ensure_ascii=False, default=str)
    assert "attributes.newsleter" in letters
    assert "wishlist.removed" in letters
    # and the customer keeps what was declared
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    [typo] = [c for c in cloud.scan(table) if c["customer_id"] == "typo"]
    assert typo["attributes"] == {"newsletter": True}


def test_the_window_boundary_is_exact_on_the_local_runtime(cloud: LocalCloud) -> None:
    # Given a newsletter reader's first wish
    member(cloud, "edge", newsletter=True, membership_tier_pos="standard")
    wish(cloud, "edge", "tea-gyokuro", 5400)
    settle(cloud)
    # When the second comes 14 days minus a minute after the first, it is inside the window
    cloud.advance_to(START + timedelta(days=14) - timedelta(minutes=1))
    wish(cloud, "edge", "tea-sencha", 3200)
    settle(cloud)
    assert decisions(cloud, "edge")[-1] == ("entered", None)
    assert sent(cloud, "edge") == [("note", "email")]
