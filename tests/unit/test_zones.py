"""Time zones from hostile input: a name ``ZoneInfo`` raises more than
``ZoneInfoNotFoundError`` for ("Asia" is a folder of tzdata: IsADirectoryError; a long name:
OSError) is refused where it comes in and never fails another customer's message where a
stored one is read."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kizuna.api.console.pages_campaigns import definition_from_form
from kizuna.campaigns.model import RecurringSchedule
from kizuna.delivery.policy import quiet_until
from kizuna.delivery.templates import build_context
from kizuna.domain.customer import Customer
from kizuna.domain.zones import is_zone, zone_or
from kizuna.events.inbound import CustomerUpserted
from kizuna.runtime.config import KizunaConfig

HOSTILE = ["Asia", "America", "Etc", "x" * 300, "../../etc/passwd", "", "Asia/Tokyo\x00"]
NOW = datetime(2026, 1, 5, 13, 20, tzinfo=UTC)
CFG = KizunaConfig()
UPSERT = {"customer_id": "c1", "occurred_at": "2026-01-05T13:20:00Z"}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_is_no_zone_and_falls_back(name: str) -> None:
    assert not is_zone(name)
    assert zone_or(name, "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert zone_or(name, name) == ZoneInfo("UTC")


def test_known_zones() -> None:
    assert is_zone("Asia/Tokyo") and is_zone("UTC") and is_zone("Europe/London")
    assert zone_or("Europe/London", "Asia/Tokyo") == ZoneInfo("Europe/London")


@pytest.mark.parametrize("name", HOSTILE[:5])
def test_ingest_refuses_a_time_zone_that_is_not_one(name: str) -> None:
    with pytest.raises(ValidationError, match="time_zone"):
        CustomerUpserted.model_validate({**UPSERT, "time_zone": name})
    assert CustomerUpserted.model_validate({**UPSERT, "time_zone": "Asia/Tokyo"})


@pytest.mark.parametrize("name", ["Asia", "x" * 300])
def test_a_stored_hostile_zone_renders_and_is_checked_in_the_default_zone(name: str) -> None:
    # a customer stored before ingest refused such a name: their message is decided and
    # rendered in the configured default zone (22:20 in Tokyo: quiet hours), not a crash
    customer = Customer(customer_id="c1", time_zone=name)
    context = build_context(
        customer, program="p", step="s", loyalty_config=CFG.loyalty, default_time_zone="Asia/Tokyo"
    )
    assert context["customer"]
    assert quiet_until(NOW, name, CFG.contact) is not None


def test_the_campaign_form_names_the_bad_time_zone_and_takes_only_ascii_numbers() -> None:
    fields = {
        "id": "sale",
        "name": "Sale",
        "channel_1": "email",
        "template_a": "month-end-sale/sale",
        "locale_ja": "on",
        "schedule_type": "once",
        "date": "2026-12-24",
        "time": "10:00",
        "time_zone": "Asia",
        "holdout_percent": "４５",
        "coupon_discount": "10%",
        "coupon_days": " 1_4 ",
    }
    _, _, _, issues = definition_from_form(fields, "Asia/Tokyo")
    by_field = {i.field: i.message for i in issues}
    assert by_field["schedule.time_zone"] == "unknown time zone 'Asia'"
    assert "whole number" in by_field["holdout_percent"]
    assert "whole number" in by_field["coupon.valid_days"]
    _, _, _, issues = definition_from_form({**fields, "date": "２０２６-12-24"}, "Asia/Tokyo")
    assert {i.field for i in issues} >= {"schedule.date"}


def test_a_campaign_refuses_a_time_zone_that_is_not_one() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Asia'"):
        RecurringSchedule.model_validate(
            {"type": "recurring", "cron": "cron(0 10 ? * FRI *)", "time_zone": "Asia"}
        )
