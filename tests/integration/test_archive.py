"""The bus archive on the local runtime (issue 20, item 8): the synthesized archive's pattern
keeps the events needed to replay orders and consent, never a profile with an email address
or a phone number (erasure cannot reach into an EventBridge archive)."""

from __future__ import annotations

import json

import pytest

from kizuna.domain.loyalty import address_hash
from kizuna_tools.local import backends
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import order, put, signup

pytestmark = pytest.mark.integration


def test_the_archive_keeps_orders_but_no_email_address_or_phone_number(
    cloud: LocalCloud,
) -> None:
    # Given a customer who signs up (email, phone, name, LINE id) and orders
    signup(cloud, "arch-1", channels=("email", "line"))
    order(cloud, "arch-1", "o-arch-1", 2000)
    # Then the bus's archive holds the order and the consent, and nothing that identifies
    [info] = cloud.find("AWS::Events::Archive")
    archived = backends.backend("events").archives[info.name].events
    kinds = {e["detail-type"] for e in archived}
    assert {"order.placed", "consent.changed"} <= kinds
    assert not kinds & {"customer.upserted", "line.linked"}
    text = json.dumps(archived, default=str)
    assert "arch-1@example.jp" not in text and "+819012345678" not in text
    assert "山田" not in text and "U" + "a" * 32 not in text


def test_the_archive_keeps_no_hash_of_a_suppressed_address(cloud: LocalCloud) -> None:
    # Given a customer whose phone number a carrier opt-out (STOP) suppresses: the
    # channel.suppressed event carries the number's hash, a SHA-256 without a key, which
    # trying every number reverses (a Japanese mobile number is one of ~3 * 10^8)
    signup(cloud, "arch-2", channels=("email",))
    number_hash = address_hash("+819012345678")
    put(
        cloud,
        "channel.suppressed",
        {
            "customer_id": "arch-2",
            "channel": "sms",
            "reason": "opt_out",
            "address_hash": number_hash,
        },
    )
    # Then ingest applied it, and the archive (which erasure cannot reach) does not keep it
    assert cloud.summary()["errors"] == []
    [info] = cloud.find("AWS::Events::Archive")
    archived = backends.backend("events").archives[info.name].events
    assert "channel.suppressed" not in {e["detail-type"] for e in archived}
    assert number_hash not in json.dumps(archived, default=str)
