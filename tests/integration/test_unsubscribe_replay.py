"""One-click unsubscribe links against the stored consent (issue 20, item 7), end to end on the
local runtime: the real email's List-Unsubscribe URL, the real function URL, ingest.

A link never outlives a later consent change (an old link replayed after the customer opted
back in opts nobody out), and a genuine link never creates a customer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from kizuna.delivery.unsubscribe import UnsubscribeLinks, verify
from kizuna.domain.timestamps import parse_time
from kizuna.services.send import derive_key
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import (
    emails_to,
    ledger,
    order,
    put,
    settle,
    signup,
    treated,
)
from tests.unit.test_preference_page import save_form

pytestmark = pytest.mark.integration


def customers(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    return {str(i["customer_id"]): i for i in cloud.scan(table)}


def email_consent(cloud: LocalCloud, cid: str) -> str:
    return str(customers(cloud)[cid]["consent"]["email"]["status"])


def unsubscribe_url(cloud: LocalCloud, cid: str) -> str:
    mail = emails_to(cloud, cid)[-1]
    headers = {h["Name"]: h["Value"] for h in mail["request"]["Content"]["Simple"]["Headers"]}
    return str(headers["List-Unsubscribe"]).strip("<>")


def one_click(url: str) -> int:
    """The mail client's RFC 8058 POST; the status it gets."""
    req = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def topic_status(cloud: LocalCloud, cid: str, topic: str, channel: str = "email") -> str | None:
    state = customers(cloud)[cid].get("topics", {}).get(topic, {}).get(channel)
    return None if state is None else str(state["status"])


def link_key(cloud: LocalCloud) -> tuple[str, bytes]:
    """The unsubscribe base URL and token key, as the send function has them."""
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    secret = cloud.client("secretsmanager").get_secret_value(
        SecretId=send.environment["SIGNING_SECRET_ARN"]
    )["SecretString"]
    try:
        current = json.loads(secret)["current"]
    except (ValueError, KeyError, TypeError):
        current = secret
    base = send.environment["UNSUBSCRIBE_URL"]
    return (
        base if urlsplit(base).scheme else f"https://{base}",
        derive_key(str(current).encode(), "unsubscribe"),
    )


def test_an_old_link_does_not_opt_out_a_customer_who_opted_back_in(cloud: LocalCloud) -> None:
    # Given a customer who got an email and unsubscribed with its link: the one-click header
    # carries the message's topic (the seed program's: loyalty), and opts out of that topic
    # on email, not of email
    cid = treated("rank-up-congratulations", "r")
    signup(cloud, cid, locale="en")
    order(cloud, cid, "o-r1", 12000)
    settle(cloud)
    url = unsubscribe_url(cloud, cid)
    _, key = link_key(cloud)
    claims = verify(key, parse_qs(urlsplit(url).query)["t"][0], cloud.clock.now())
    assert (claims.channel, claims.topic) == ("email", "loyalty")
    assert one_click(url) == 200
    cloud.drain()
    assert topic_status(cloud, cid, "loyalty") == "opted_out"
    assert email_consent(cloud, cid) == "opted_in"  # the channel itself stays on
    # and who opted back in a day later
    cloud.advance(days=1)
    put(
        cloud,
        "preferences.changed",
        {"customer_id": cid, "topics": {"loyalty": {"email": "opted_in"}}, "source": "app"},
    )
    assert topic_status(cloud, cid, "loyalty") == "opted_in"
    # When the old link is used again a day after that (a replay, a forwarded mail)
    cloud.advance(days=1)
    status = one_click(url)
    cloud.drain()
    # Then it is refused and the customer stays subscribed
    assert status == 409
    assert topic_status(cloud, cid, "loyalty") == "opted_in"


def test_a_topic_opt_out_stops_that_topic_and_a_pause_stops_marketing(cloud: LocalCloud) -> None:
    # Given a customer who opted out of loyalty messages on email through the preference page
    cid = treated("rank-up-congratulations", "p")
    signup(cloud, cid, locale="en")
    base, key = link_key(cloud)
    links = UnsubscribeLinks(base, key, now=cloud.clock.now)
    t = links.token(cid, "email", topic="loyalty")
    page = urllib.request.urlopen(f"{base}?t={t}").read().decode()  # GET: changes nothing
    assert 'name="loyalty.email"' in page and "Pause" in page
    cloud.drain()
    assert topic_status(cloud, cid, "loyalty") is None
    assert save(base, page, loyalty__email="opted_out")[0] == 200
    cloud.drain()
    assert topic_status(cloud, cid, "loyalty") == "opted_out"
    # When the program (about loyalty) would send to them
    order(cloud, cid, "o-p1", 12000)
    settle(cloud)
    # Then no email went, and the ledger says the topic stopped it
    assert emails_to(cloud, cid) == []
    rows = [r for r in ledger(cloud, cid, "MSG") if r["program"] == "rank-up-congratulations"]
    assert rows and all(r["reason"] == "topic_opted_out" for r in rows)
    assert all(r["topic"] == "loyalty" and r["status"] == "suppressed" for r in rows)
    # and nothing else: no message about another topic was stopped for it
    others = [r for r in ledger(cloud, cid, "MSG") if r.get("topic") != "loyalty"]
    assert all(r.get("reason") != "topic_opted_out" for r in others)


def save(base: str, page: str, **choices: str) -> tuple[int, str]:
    """The page's save form posted as a browser does, ``choices`` made: status and page."""
    form = urlencode(save_form({"body": page}, **choices)).encode()
    with urllib.request.urlopen(urllib.request.Request(base, data=form, method="POST")) as r:
        return int(r.status), r.read().decode()


def test_a_second_save_before_ingest_applied_the_first_is_the_one_that_stands(
    cloud: LocalCloud,
) -> None:
    # Given a customer on the preference page (the function URL, as the link opens it)
    cid = treated("rank-up-congratulations", "s")
    signup(cloud, cid, locale="en")
    base, key = link_key(cloud)
    t = UnsubscribeLinks(base, key, now=cloud.clock.now).token(cid, "email", topic="loyalty")
    page = urllib.request.urlopen(f"{base}?t={t}").read().decode()
    # When they stop loyalty by email and save, then choose it again and save, before ingest
    # has applied the first save (its event is still on the bus)
    status, saved = save(base, page, loyalty__email="opted_out")
    assert status == 200
    cloud.clock.set(cloud.clock.now() + timedelta(seconds=2))  # advance() would drain
    assert save(base, saved, loyalty__email="opted_in")[0] == 200
    cloud.drain()
    # Then their last choice stands
    assert topic_status(cloud, cid, "loyalty") == "opted_in"


def test_a_genuine_link_for_an_unknown_customer_creates_nobody(cloud: LocalCloud) -> None:
    # Given a link signed with Kizuna's own key, as the send function signs them, for an id
    # Kizuna does not hold (an erased customer's old mail, a test address)
    base, key = link_key(cloud)
    links = UnsubscribeLinks(base, key, now=cloud.clock.now)
    url = links.url("nobody-0001", "email")
    # When it is clicked
    status = one_click(url)
    cloud.drain()
    # Then nothing is written: no customer item appears
    assert status == 404
    assert "nobody-0001" not in customers(cloud)


def test_a_pause_stops_marketing_until_it_ends_and_transactional_still_goes(
    cloud: LocalCloud,
) -> None:
    # Given a customer who paused everything for 30 days (from their app's settings)
    cid = treated("rank-up-congratulations", "z")
    signup(cloud, cid, locale="en")
    put(cloud, "preferences.changed", {"customer_id": cid, "pause_days": 30, "source": "app"})
    assert customers(cloud)[cid]["pause"]["source"] == "app"
    # When they rank up (a loyalty message) during the pause
    order(cloud, cid, "o-z1", 12000)
    settle(cloud)
    # Then it is not sent, and the ledger says the pause stopped it, until when
    (row,) = [r for r in ledger(cloud, cid, "MSG") if r["program"] == "rank-up-congratulations"]
    assert (row["status"], row["reason"]) == ("suppressed", "paused")
    assert parse_time(row["paused_until"]) > cloud.clock.now() + timedelta(days=29)
    assert emails_to(cloud, cid) == []
    # but a transactional message (the service topic) still goes
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    tx = cloud.invoke(
        send.logical_id,
        {
            "action": "transactional",
            "execution": "tx:" + "a" * 32,
            "request_hash": "b" * 64,
            "caller": "iam:arn:aws:iam::123456789012:role/shop-backend",
            "customer_id": cid,
            "template": "order_confirmation",
            "channels": ["email"],
            "data": {"order_id": "A-1", "total": 5400, "currency": "JPY"},
        },
    )
    assert tx.ok and tx.result["status"] == "sent", (tx.error, tx.result)
    # and after the pause ends, the next rank up is sent again
    cloud.advance(days=31)
    order(cloud, cid, "o-z2", 30000)
    settle(cloud)
    rows = [r for r in ledger(cloud, cid, "MSG") if r["program"] == "rank-up-congratulations"]
    assert [r["status"] for r in rows] == ["suppressed", "sent"]
