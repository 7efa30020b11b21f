"""Campaigns -> campaigns/*.yaml (schedules, treatments, holdout, limits, status), event-triggered
campaigns -> programs with a trigger on the declared custom event, quiet times -> the contact
policy. The templates are translated by a small fake here (the real translation has its own
tests); what is checked is where the campaign's pieces go."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kizuna.campaigns.model import Campaign
from kizuna.programs.model import Program
from kizuna.services.campaign_admin import passed_time
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.campaigns import (
    CampaignContext,
    ContactPlan,
    Events,
    Ids,
    event_trigger,
    migrate_campaigns,
    quiet_union,
    schedule_of,
    utc_offset,
)
from kizuna_tools.migrate.library import Library
from kizuna_tools.migrate.names import snake
from kizuna_tools.migrate.report import Report, Status
from kizuna_tools.migrate.segments import Conditions, translate_segments
from kizuna_tools.migrate.templates import RESPONSE_KEYS, TEMPLATE_TYPES
from tests.factories import campaign_definition

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


@dataclass
class FakeResult:
    name: str
    kind: str
    template: str
    locale: str
    files: dict[str, str]
    notes: list[Any] = field(default_factory=list)
    todos: list[Any] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


def fake_translate(
    kind: str, name: str, response: dict[str, Any], *, default_locale: str, naming: Any
) -> FakeResult:
    body = response.get(RESPONSE_KEYS[kind], response)
    base, _, lang = name.rpartition("_")
    locale = lang if base and lang in ("en", "ja") else default_locale
    base = base if base and lang in ("en", "ja") else name
    parts = {
        "email": {
            "email.subject": body.get("Subject", ""),
            "email.html": body.get("HtmlPart", ""),
            "email.txt": body.get("TextPart", ""),
        },
        "sms": {"sms.txt": body.get("Body", "")},
        "push": {
            "push.title": (body.get("Default") or {}).get("Title", ""),
            "push.body": (body.get("Default") or {}).get("Body", ""),
        },
    }[kind]
    return FakeResult(
        name, kind, snake(base), locale, {f"{locale}/{p}.j2": t for p, t in parts.items()}
    )


def template(kind: str, name: str, **body: Any) -> dict[str, Any]:
    return {
        RESPONSE_KEYS[kind]: {"TemplateName": name, "TemplateType": TEMPLATE_TYPES[kind], **body}
    }


def context(report: Report, segments: list[dict[str, Any]] | None = None) -> CampaignContext:
    library = Library(fake_translate, "ja", snake, report)
    library.add("email", "WinterSale", template("email", "WinterSale", Subject="冬のセール"), "t")
    library.add(
        "email", "WinterSale_en", template("email", "WinterSale_en", Subject="Winter sale"), "t"
    )
    library.add(
        "email", "WinterSaleUrgent", template("email", "WinterSaleUrgent", Subject="急いで"), "t"
    )
    library.add(
        "push",
        "WishlistReminder",
        template("push", "WishlistReminder", Default={"Title": "t", "Body": "b"}),
        "t",
    )
    items = (
        segments
        if segments is not None
        else json.loads((FIXTURES / "segments.json").read_text())["SegmentsResponse"]["Item"]
    )
    amap = AttributeMap()
    result = translate_segments(items, Conditions(amap), report)
    return CampaignContext(result, library, Events(), ContactPlan(), Ids(), report, NOW)


def fixture_campaigns() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((FIXTURES / "campaigns.json").read_text())[
        "CampaignsResponse"
    ]["Item"]
    return items


def test_a_once_local_time_campaign_with_treatments_and_a_holdout() -> None:
    report = Report()
    ctx = context(report)
    result = migrate_campaigns([fixture_campaigns()[0]], ctx)
    doc = result.campaigns["winter-tea-sale"]
    Campaign.model_validate(doc)
    assert doc["schedule"] == {"type": "local_time", "date": "2027-01-15", "time": "10:00"}
    assert doc["audience"] == {"segments": ["gold-members"]}
    assert (doc["channels"], doc["template"], doc["holdout_percent"]) == (
        ["email"],
        "winter_sale",
        10,
    )
    # 45% and 45% of the 90% not held out
    assert doc["variants"] == [
        {"name": "standard", "weight": 50},
        {"name": "urgent", "weight": 50, "template": "winter_sale_urgent"},
    ]
    assert doc["rate_limit_per_minute"] == 50 * 60
    assert doc["status"] == "scheduled"
    # both locales of the template, and the variant's, in the campaign's own folder
    files = ctx.library.owners["winter-tea-sale"]
    assert {
        "winter-tea-sale/winter_sale/ja/email.subject.j2",
        "winter-tea-sale/winter_sale/en/email.subject.j2",
        "winter-tea-sale/winter_sale_urgent/ja/email.subject.j2",
    } <= set(files)
    assert files["winter-tea-sale/winter_sale/en/email.subject.j2"] == "Winter sale"
    assert ctx.contact.quiet[0].start == "21:00"


def test_a_weekly_campaign_with_an_inline_message() -> None:
    report = Report()
    ctx = context(report)
    result = migrate_campaigns([fixture_campaigns()[1]], ctx)
    doc = result.campaigns["weekly-tea-journal"]
    Campaign.model_validate(doc)
    assert doc["schedule"] == {
        "type": "recurring",
        "cron": "cron(0 9 ? * FRI *)",  # Fridays 09:00 at UTC+09
        "time_zone": "Etc/GMT-9",
        "start": "2026-10-02T09:00:00+09:00",
        "end": "2027-03-26T09:00:00+09:00",
    }
    files = ctx.library.owners["weekly-tea-journal"]
    assert files["weekly-tea-journal/weekly_tea_journal/ja/email.subject.j2"] == "今週のお茶だより"
    item = report.find("campaign", "Weekly tea journal")
    assert "its inline email message became a template (ja)" in item.notes


def test_an_event_triggered_campaign_becomes_a_program_on_its_custom_event() -> None:
    report = Report()
    ctx = context(report)
    result = migrate_campaigns([fixture_campaigns()[2]], ctx)
    assert result.campaigns == {}
    program = result.programs["wishlist-reminder"]
    Program.model_validate(program)
    assert program["trigger"] == {
        "event": "wishlist.added",
        "conditions": {"category": ["tea", "teaware"], "price": [{"numeric": [">=", 3000]}]},
    }
    assert program["audience"] == {"segments": ["tea-lovers-on-the-app"]}
    assert program["reentry"] == {"mode": "every", "days": 1}  # Limits.Daily 1
    assert program["holdout_percent"] == 5
    assert [s["type"] for s in program["steps"]] == ["send", "exit"]
    assert program["steps"][0]["channels"] == ["push"]
    # the event is declared with its fields typed by the filter
    event = ctx.events.declared["wishlist.added"]
    assert [(f.name, f.type.value) for f in event.fields] == [
        ("category", "string"),
        ("price", "number"),
    ]
    # Total 3 has no Kizuna equivalent: a decision, and the program waits for it
    item = report.find("campaign", "Wishlist reminder")
    assert program["enabled"] is False
    assert "Limits.Total 3: Kizuna has no lifetime cap per program" in item.decisions
    assert any("disable it then" in d for d in item.decisions)
    assert report.find("event", "WishlistAdded").became == ["custom.events wishlist.added"]


def test_treatments_of_an_event_campaign_are_a_split() -> None:
    raw = json.loads(json.dumps(fixture_campaigns()[2]))
    raw["Limits"] = {}
    raw["AdditionalTreatments"] = [
        {
            "Id": "1",
            "SizePercent": 30,
            "TreatmentName": "Other",
            "TemplateConfiguration": {"PushTemplate": {"Name": "WishlistReminder"}},
        }
    ]
    report = Report()
    result = migrate_campaigns([raw], context(report))
    program = result.programs["wishlist-reminder"]
    Program.model_validate(program)
    split = program["steps"][0]
    assert split["type"] == "split"
    # 65% (default) and 30% of the 95% not held out
    assert [(a["name"], a["weight"]) for a in split["arms"]] == [("a", 68), ("other", 32)]
    assert program["reentry"] == {"mode": "always"}


def test_a_campaign_on_an_import_segment_gets_an_empty_list_to_fill_and_waits() -> None:
    raw = json.loads(json.dumps(fixture_campaigns()[0]))
    raw["SegmentId"] = "5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a05"  # the IMPORT segment
    report = Report()
    result = migrate_campaigns([raw], context(report))
    doc = result.campaigns["winter-tea-sale"]
    assert doc["audience"] == {"customer_list": "winter-tea-sale-customers.csv"}
    assert doc["status"] == "draft"
    assert result.lists == {"winter-tea-sale-customers.csv": "customer_id\n"}
    assert any("IMPORT list" in d for d in report.find("campaign", "Winter tea sale").decisions)


def test_a_campaign_on_an_incomplete_segment_is_a_draft() -> None:
    raw = json.loads(json.dumps(fixture_campaigns()[0]))
    raw["SegmentId"] = "5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a04"  # Platform: INCOMPLETE
    report = Report()
    doc = migrate_campaigns([raw], context(report)).campaigns["winter-tea-sale"]
    assert doc["status"] == "draft"
    item = report.find("campaign", "Winter tea sale")
    assert item.status == Status.NEEDS_DECISION
    assert "status draft: held as a draft until the decisions below are made" in item.notes


def test_the_documented_immediate_completed_campaigns_are_done() -> None:
    items = json.loads((FIXTURES / "docs-examples" / "get-campaigns.json").read_text())[
        "CampaignsResponse"
    ]["Item"]
    segment = {
        "Id": "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6",
        "Name": "All",
        "SegmentType": "DIMENSIONAL",
        "Dimensions": {},
    }
    report = Report()
    result = migrate_campaigns(items, context(report, [segment]))
    first = result.campaigns["example-campaign1"]
    Campaign.model_validate(first)
    assert first["status"] == "done"
    assert first["schedule"] == {"type": "once", "at": "2025-10-08T18:40:22.905000+00:00"}
    assert first["audience"] == {"segments": ["all"]}


def test_campaigns_kizuna_cannot_send_are_reported() -> None:
    raw = json.loads(json.dumps(fixture_campaigns()[0]))
    in_app = {**raw, "Name": "In app", "Schedule": {**raw["Schedule"], "Frequency": "IN_APP_EVENT"}}
    custom = {
        **raw,
        "Name": "Custom",
        "CustomDeliveryConfiguration": {"DeliveryUri": "arn:aws:lambda:x"},
    }
    report = Report()
    result = migrate_campaigns([in_app, custom], context(report))
    assert result.campaigns == {} and result.programs == {}
    assert report.find("campaign", "In app").status == Status.NOT_MIGRATED
    assert "custom channel" in report.find("campaign", "Custom").notes[0]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            {"Frequency": "ONCE", "StartTime": "2027-02-01T01:00:00Z", "Timezone": "UTC"},
            {"type": "once", "at": "2027-02-01T01:00:00+00:00"},
        ),
        (
            {"Frequency": "DAILY", "StartTime": "2027-02-01T08:30:00Z", "Timezone": "UTC+09"},
            {
                "type": "recurring",
                "cron": "cron(30 17 * * ? *)",
                "time_zone": "Etc/GMT-9",
                "start": "2027-02-01T08:30:00+00:00",
            },
        ),
        (
            {"Frequency": "HOURLY", "StartTime": "2027-02-01T08:15:00Z", "Timezone": "UTC-05"},
            {
                "type": "recurring",
                "cron": "cron(15 * * * ? *)",
                "time_zone": "Etc/GMT+5",
                "start": "2027-02-01T08:15:00+00:00",
            },
        ),
        (
            {"Frequency": "MONTHLY", "StartTime": "2027-02-01T00:00:00Z", "Timezone": "UTC+05:30"},
            {
                "type": "recurring",
                "cron": "cron(0 0 1 * ? *)",
                "time_zone": "UTC",
                "start": "2027-02-01T00:00:00+00:00",
            },
        ),
    ],
)
def test_schedules(schedule: dict[str, Any], expected: dict[str, Any]) -> None:
    outcome = schedule_of(schedule, NOW, "SCHEDULED", "")
    assert outcome.schedule == expected
    assert not outcome.past


def test_a_past_once_campaign_is_past_and_local_recurring_is_a_decision() -> None:
    assert schedule_of(
        {"Frequency": "ONCE", "StartTime": "2026-01-01T00:00:00Z"}, NOW, "SCHEDULED", ""
    ).past
    outcome = schedule_of(
        {
            "Frequency": "WEEKLY",
            "StartTime": "2027-01-01T09:00:00+09:00",
            "Timezone": "UTC+09",
            "IsLocalTime": True,
        },
        NOW,
        "SCHEDULED",
        "",
    )
    assert "IsLocalTime" in outcome.decisions[0]
    assert (
        schedule_of({"Frequency": "ONCE", "StartTime": "soon"}, NOW, "SCHEDULED", "").schedule
        is None
    )


def test_a_local_time_send_is_past_when_apply_would_refuse_it() -> None:
    # The campaign rule: a local-time send starts (and may no longer be scheduled) at its
    # date and time in UTC+14; the migration decides "past" with the same function.
    def local(start: str) -> Any:
        raw = {"Frequency": "ONCE", "StartTime": start, "Timezone": "UTC+09", "IsLocalTime": True}
        return schedule_of(raw, NOW, "SCHEDULED", "")

    # 10:00 on 30 November began at 2026-11-29T20:00Z (UTC+14), before NOW: past, though
    # in UTC-12 it is still ahead; 14:00 began at NOW exactly (no grace): past
    for start in ("2026-11-30T10:00:00+09:00", "2026-11-30T14:00:00+09:00"):
        outcome = local(start)
        assert outcome.schedule is not None and outcome.schedule["type"] == "local_time"
        assert outcome.past, start
        campaign = Campaign.model_validate(
            {**campaign_definition(status="scheduled"), "schedule": outcome.schedule}
        )
        assert passed_time(campaign, NOW) is not None
    # 10:00 on 1 December begins at 2026-11-30T20:00Z: ahead, and apply takes it
    outcome = local("2026-12-01T10:00:00+09:00")
    assert not outcome.past
    campaign = Campaign.model_validate(
        {**campaign_definition(status="scheduled"), "schedule": outcome.schedule}
    )
    assert passed_time(campaign, NOW) is None
    # a one-off or an end at NOW exactly has passed too, as apply decides it
    assert schedule_of(
        {"Frequency": "ONCE", "StartTime": "2026-11-30T00:00:00Z"}, NOW, "SCHEDULED", ""
    ).past


def test_utc_offsets() -> None:
    assert utc_offset("utc") == UTC
    assert utc_offset("UTC+09") == timezone(timedelta(hours=9))
    assert utc_offset("UTC-03:30") == timezone(-timedelta(hours=3, minutes=30))
    assert utc_offset("Asia/Tokyo") is None


def test_quiet_times_are_joined_when_they_make_one_window() -> None:
    assert quiet_union([("21:00", "08:00"), ("22:00", "07:00")]) == ("21:00", "08:00")
    assert quiet_union([("21:00", "23:00"), ("22:30", "07:00")]) == ("21:00", "07:00")
    assert quiet_union([("01:00", "02:00"), ("13:00", "14:00")]) is None


def test_event_filters_as_triggers() -> None:
    report = Report()
    events = Events()

    def triggers(**dims: Any) -> tuple[list[Any], list[str], list[str]]:
        return event_trigger(
            {"FilterType": "ENDPOINT", "Dimensions": dims},
            events,
            report,
            "c",
            attributes=AttributeMap(),
        )

    session, decisions, _ = triggers(EventType={"Values": ["_session.start"]})
    assert (session, decisions) == ([("app.opened", {})], [])
    none, decisions, _ = triggers(EventType={"Values": ["_email.open"]})
    assert none == [] and "system event" in decisions[0]
    none, decisions, _ = triggers(EventType={"DimensionType": "EXCLUSIVE", "Values": ["A"]})
    assert none == [] and "EXCLUSIVE" in decisions[0]
    both, _, _ = triggers(
        EventType={"Values": ["StoreCheckin", "Checkin"]},
        Attributes={"Store": {"AttributeType": "EXCLUSIVE", "Values": ["Online"]}},
    )
    assert both == [
        ("store.checkin", {"store": [{"anything-but": ["Online"]}]}),
        ("app.checkin", {"store": [{"anything-but": ["Online"]}]}),
    ]
    assert set(events.declared) == {"store.checkin", "app.checkin"}


def test_event_filter_fields_without_latin_letters_get_the_attributes_generated_names() -> None:
    # Given a migration whose endpoints had 会員ランク (attr_1), and a campaign triggered by
    # an event filtered on 会員ランク, 店舗 and the metric 金額 (each was "a": the first kept,
    # the others dropped as "a second filter on a")
    names = AttributeMap()
    assert names.plan("Attributes", "会員ランク", [["Gold"]]).name == "attr_1"
    events, report = Events(), Report()
    dims = {
        "EventType": {"Values": ["StoreCheckin"]},
        "Attributes": {
            "店舗": {"AttributeType": "INCLUSIVE", "Values": ["渋谷"]},
            "会員ランク": {"AttributeType": "INCLUSIVE", "Values": ["Gold"]},
            "Store Type": {"AttributeType": "INCLUSIVE", "Values": ["flagship"]},
        },
        "Metrics": {"金額": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 3000}},
    }
    filter_ = {"FilterType": "ENDPOINT", "Dimensions": dims}

    # When it becomes a trigger
    triggers, decisions, notes = event_trigger(filter_, events, report, "c", attributes=names)

    # Then every filter is kept: 会員ランク is the attribute's attr_1, the others get their
    # own generated names, an ASCII name is named as before; the report maps each
    assert decisions == []
    assert triggers == [
        (
            "store.checkin",
            {
                "attr_1": ["Gold"],
                "attr_2": ["渋谷"],
                "store_type": ["flagship"],
                "attr_3": [{"numeric": [">=", 3000]}],
            },
        )
    ]
    assert "event attribute 店舗 -> field attr_2 (a generated name: 店舗 has no Latin letters)" in (
        notes
    )
    fields = {f.name: f.type.value for f in events.declared["store.checkin"].fields}
    assert fields == {
        "attr_1": "string",
        "attr_2": "string",
        "attr_3": "number",
        "store_type": "string",
    }
    # and another filter naming 店舗 names the same field; an attribute declared later
    # for 金額 takes the event field's name
    again, _, _ = event_trigger(filter_, events, report, "d", attributes=names)
    assert again == triggers
    assert names.ensure("Metrics", "金額").name == "attr_3"


@pytest.mark.parametrize("field", ["Items", "CustomerId", "occurred_at"])
def test_an_event_filter_on_a_field_kizuna_refuses_is_a_decision_not_a_crash(field: str) -> None:
    # Given a campaign triggered by an event filtered on an attribute whose name Kizuna
    # refuses for a field (a dict method's name, a common field's)
    events, report = Events(), Report()
    dims = {
        "EventType": {"Values": ["WishlistAdded"]},
        "Attributes": {field: {"AttributeType": "INCLUSIVE", "Values": ["x"]}},
    }

    # When it becomes a trigger
    triggers, decisions, _ = event_trigger(
        {"FilterType": "ENDPOINT", "Dimensions": dims},
        events,
        report,
        "c",
        attributes=AttributeMap(),
    )

    # Then no trigger and no declaration: a decision says why
    assert triggers == [] and events.declared == {}
    assert "WishlistAdded" in decisions[0]
