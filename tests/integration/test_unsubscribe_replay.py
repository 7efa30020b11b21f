"""One-click unsubscribe links against the stored consent (issue 20, item 7), end to end on the
local runtime: the real email's List-Unsubscribe URL, the real function URL, ingest.

A link never outlives a later consent change (an old link replayed after the customer opted
back in opts nobody out), and a genuine link never creates a customer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from kizuna.delivery.unsubscribe import UnsubscribeLinks
from kizuna.services.send import derive_key
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import emails_to, order, put, settle, signup, treated

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


def test_an_old_link_does_not_opt_out_a_customer_who_opted_back_in(cloud: LocalCloud) -> None:
    # Given a customer who got an email and unsubscribed with its link
    cid = treated("rank-up-congratulations", "r")
    signup(cloud, cid, locale="en")
    order(cloud, cid, "o-r1", 12000)
    settle(cloud)
    url = unsubscribe_url(cloud, cid)
    assert one_click(url) == 200
    cloud.drain()
    assert email_consent(cloud, cid) == "opted_out"
    # and who opted back in a day later
    cloud.advance(days=1)
    put(cloud, "consent.changed", {"customer_id": cid, "channel": "email", "status": "opted_in"})
    assert email_consent(cloud, cid) == "opted_in"
    # When the old link is used again a day after that (a replay, a forwarded mail)
    cloud.advance(days=1)
    status = one_click(url)
    cloud.drain()
    # Then it is refused and the customer stays subscribed
    assert status == 409
    assert email_consent(cloud, cid) == "opted_in"


def test_a_genuine_link_for_an_unknown_customer_creates_nobody(cloud: LocalCloud) -> None:
    # Given a link signed with Kizuna's own key, as the send function signs them, for an id
    # Kizuna does not hold (an erased customer's old mail, a test address)
    send = next(f for f in cloud.functions.values() if "SendFunction" in f.logical_id)
    secret = cloud.client("secretsmanager").get_secret_value(
        SecretId=send.environment["SIGNING_SECRET_ARN"]
    )["SecretString"]
    try:
        current = json.loads(secret)["current"]
    except (ValueError, KeyError, TypeError):
        current = secret
    base = send.environment["UNSUBSCRIBE_URL"]
    links = UnsubscribeLinks(
        base if urlsplit(base).scheme else f"https://{base}",
        derive_key(str(current).encode(), "unsubscribe"),
        now=cloud.clock.now,
    )
    url = links.url("nobody-0001", "email")
    # When it is clicked
    status = one_click(url)
    cloud.drain()
    # Then nothing is written: no customer item appears
    assert status == 404
    assert "nobody-0001" not in customers(cloud)
