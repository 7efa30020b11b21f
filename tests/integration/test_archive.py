"""The bus archive on the local runtime (issue 20, item 8): the synthesized archive's pattern
keeps the events needed to replay orders and consent, never a profile with an email address
or a phone number (erasure cannot reach into an EventBridge archive)."""

from __future__ import annotations

import json

import pytest

from kizuna_tools.local import backends
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.test_journeys import order, signup

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
