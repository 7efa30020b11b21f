"""Builders shared by the delivery tests (unit and integration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kizuna.domain.customer import Customer, Device
from tests.factories import LINE_USER, PHONE, customer, opted_in

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
FIXTURES = HERE / "fixtures"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def make_customer(**fields: Any) -> Customer:
    """山田 花子, signed up on every channel, with a phone and two devices: Silver, 80 points
    short of Gold."""
    base: dict[str, Any] = {
        "customer_id": "cust-0001",
        "email": "hanako@example.jp",
        "phone": PHONE,
        "first_name": "花子",
        "last_name": "山田",
        "consent": opted_in("email", "sms", "push", "line", at=T0, source="signup"),
        "devices": {
            "ios-1": Device(token="a" * 64, platform="APNS", at=T0),
            "android-1": Device(token="fcm-token-1", platform="FCM", at=T0),
        },
        "line_user_id": LINE_USER,
        "rank": "Silver",
        "next_rank": "Gold",
        "points_to_next_rank": 80,
        "points_balance": 12345,
    }
    return customer(**{**base, **fields})
