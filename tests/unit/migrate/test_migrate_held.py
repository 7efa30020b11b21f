"""What the migration holds back: a campaign or a program with a decision to make is written
a draft or disabled (never a live program that behaves differently from Pinpoint), and every
campaign and program it writes as it is passes Kizuna's own validators."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kizuna_tools.cli import app
from kizuna_tools.migrate.project import migrate_pinpoint
from kizuna_tools.migrate.report import Status

NOW = datetime(2026, 11, 30, tzinfo=UTC)
APP = "3f2a9c0e5b7d4e1f8a6b2c4d9e0f1a2b"


def endpoint(eid: str, channel: str, address: str, user: str, **fields: Any) -> dict[str, Any]:
    return {
        "Id": eid,
        "ChannelType": channel,
        "Address": address,
        "EndpointStatus": "ACTIVE",
        "OptOut": "NONE",
        "ApplicationId": APP,
        "CreationDate": "2025-01-01T00:00:00Z",
        "EffectiveDate": "2025-01-01T00:00:00Z",
        "User": {"UserId": user},
        **fields,
    }


def email_template(name: str, subject: str, text: str) -> dict[str, Any]:
    return {
        "EmailTemplateResponse": {
            "TemplateName": name,
            "TemplateType": "EMAIL",
            "CreationDate": "2025-09-01T00:00:00Z",
            "LastModifiedDate": "2025-09-01T00:00:00Z",
            "Subject": subject,
            "HtmlPart": f"<p>{text}</p>",
            "TextPart": text,
        }
    }


def sms_template(name: str, body: str) -> dict[str, Any]:
    return {
        "SMSTemplateResponse": {
            "TemplateName": name,
            "TemplateType": "SMS",
            "CreationDate": "2025-09-01T00:00:00Z",
            "LastModifiedDate": "2025-09-01T00:00:00Z",
            "Body": body,
        }
    }


def campaign(cid: str, name: str, templates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "ApplicationId": APP,
        "Arn": f"arn:aws:mobiletargeting:us-east-1:111122223333:apps/{APP}/campaigns/{cid}",
        "CreationDate": "2026-08-20T02:00:00Z",
        "LastModifiedDate": "2026-09-15T02:00:00Z",
        "Id": cid,
        "Name": name,
        "SegmentId": "s1",
        "SegmentVersion": 1,
        "State": {"CampaignStatus": "SCHEDULED"},
        "Version": 1,
        "Schedule": {
            "Frequency": "ONCE",
            "StartTime": "2027-01-15T10:00:00+09:00",
            "Timezone": "UTC+09",
        },
        "MessageConfiguration": {},
        "TemplateConfiguration": templates,
        "HoldoutPercent": 0,
        **extra,
    }


def journey(jid: str, name: str, activities: dict[str, Any], start: str) -> dict[str, Any]:
    return {
        "JourneyResponse": {
            "ApplicationId": APP,
            "Id": jid,
            "Name": name,
            "CreationDate": "2025-10-01T00:00:00Z",
            "LastModifiedDate": "2025-10-20T00:00:00Z",
            "State": "ACTIVE",
            "StartActivity": start,
            "Activities": activities,
            "StartCondition": {
                "EventStartCondition": {
                    "EventFilter": {
                        "FilterType": "ENDPOINT",
                        "Dimensions": {
                            "EventType": {
                                "DimensionType": "INCLUSIVE",
                                "Values": ["_session.start"],
                            }
                        },
                    }
                }
            },
        }
    }


def export(
    folder: Path,
    *,
    templates: dict[str, dict[str, Any]],
    campaigns: list[dict[str, Any]] = (),  # type: ignore[assignment]
    journeys: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """A Pinpoint export: two users (email and SMS), one segment of everyone reachable by
    SMS or email, the templates (``email/Name`` -> response) and campaigns and journeys."""
    (folder / "endpoints").mkdir(parents=True)
    lines = [
        endpoint("e1", "EMAIL", "alice@example.com", "u1"),
        endpoint("e2", "SMS", "+819012345678", "u1"),
        endpoint("e3", "EMAIL", "bob@example.com", "u2"),
    ]
    (folder / "endpoints" / "part-00000.json").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    segment = {
        "ApplicationId": APP,
        "Arn": f"arn:aws:mobiletargeting:us-east-1:111122223333:apps/{APP}/segments/s1",
        "CreationDate": "2026-03-02T04:11:09Z",
        "Id": "s1",
        "Name": "Everyone",
        "SegmentType": "DIMENSIONAL",
        "Version": 1,
        "Dimensions": {
            "Demographic": {"Channel": {"DimensionType": "INCLUSIVE", "Values": ["EMAIL", "SMS"]}}
        },
    }
    (folder / "segments.json").write_text(json.dumps({"SegmentsResponse": {"Item": [segment]}}))
    if campaigns:
        (folder / "campaigns.json").write_text(
            json.dumps({"CampaignsResponse": {"Item": list(campaigns)}})
        )
    for rel, body in templates.items():
        path = folder / "templates" / f"{rel}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, ensure_ascii=False))
    for name, body in (journeys or {}).items():
        path = folder / "journeys" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body))
    if settings is not None:
        (folder / "application-settings.json").write_text(
            json.dumps({"ApplicationSettingsResource": {"ApplicationId": APP, **settings}})
        )
    return folder


def load(out: Path, rel: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((out / rel).read_text(encoding="utf-8"))
    return loaded


def test_an_active_journey_with_a_decision_is_written_disabled(tmp_path: Path) -> None:
    # Given an ACTIVE journey: an email, a wait until a date (no Kizuna counterpart), an email
    source = export(
        tmp_path / "in",
        templates={
            "email/A_ja": email_template("A_ja", "First", "1"),
            "email/B_ja": email_template("B_ja", "Second", "2"),
        },
        journeys={
            "two": journey(
                "j1",
                "Two mails",
                {
                    "Mail1": {"EMAIL": {"TemplateName": "A_ja", "NextActivity": "W"}},
                    "W": {
                        "Wait": {
                            "NextActivity": "Mail2",
                            "WaitTime": {"WaitUntil": "2026-12-01T00:00:00Z"},
                        }
                    },
                    "Mail2": {"EMAIL": {"TemplateName": "B_ja"}},
                },
                "Mail1",
            )
        },
    )
    # When it is migrated
    out = tmp_path / "out"
    result = migrate_pinpoint(source, out, now=NOW)
    # Then the wait is a decision and the program waits for it: disabled, not two emails
    # back to back
    item = result.report.find("journey", "Two mails")
    assert item is not None and item.status == Status.NEEDS_DECISION
    assert any("wait until an absolute date" in d for d in item.decisions)
    assert load(out, "programs/two-mails.yaml")["enabled"] is False
    assert "written disabled until the decisions below are made" in item.notes


def test_an_active_journey_without_a_decision_stays_enabled(tmp_path: Path) -> None:
    source = export(
        tmp_path / "in",
        templates={"email/A_ja": email_template("A_ja", "First", "1")},
        journeys={
            "one": journey(
                "j1", "One mail", {"Mail1": {"EMAIL": {"TemplateName": "A_ja"}}}, "Mail1"
            )
        },
    )
    out = tmp_path / "out"
    result = migrate_pinpoint(source, out, now=NOW)
    item = result.report.find("journey", "One mail")
    assert item is not None and item.decisions == []
    assert load(out, "programs/one-mail.yaml")["enabled"] is True


# -- Kizuna's own validators over what is written ---------------------------------------------
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
RUNNER = CliRunner()


def refused_by_validators(out: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """``kizuna campaigns validate`` and ``kizuna programs validate`` on the migrated project:
    the file (``campaigns/x.yaml``) -> its problem lines."""
    monkeypatch.chdir(out)  # the commands read ./segments, ./templates, ./programs
    lines: list[str] = []
    for args in (
        ["campaigns", "validate", "campaigns", "--config", "kizuna-config.json"],
        ["programs", "validate", "programs", "--config", "kizuna-config.json"],
    ):
        (out / args[2]).mkdir(exist_ok=True)
        result = RUNNER.invoke(app, args)
        lines += [line for line in result.output.splitlines() if line.startswith("✗")]
    found: dict[str, list[str]] = {}
    for line in lines:
        rel = next(
            f"{d}/{p.name}"
            for d in ("campaigns", "programs")
            for p in (out / d).glob("*.yaml")
            if f"{d}/{p.name}" in line
        )
        found.setdefault(rel, []).append(line)
    return found


def assert_nothing_live_is_refused(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[str]]:
    """Every campaign written scheduled or paused and every program written enabled passes
    Kizuna's validators; each refused one is held, with a decision saying why."""
    refused = refused_by_validators(out, monkeypatch)
    report = json.loads((out / "MIGRATION-REPORT.json").read_text())
    for rel in refused:
        doc = load(out, rel)
        assert doc.get("status", "draft") not in ("scheduled", "paused"), rel
        assert doc.get("enabled") is not True, rel
        item = next(i for i in report["items"] if rel in i.get("became", []))
        assert any(f"Kizuna's validation refuses {rel}" in d for d in item["decisions"]), rel
    return refused


def test_the_fixture_project_writes_nothing_live_that_kizuna_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate_pinpoint(FIXTURES, tmp_path / "out", now=NOW)
    assert assert_nothing_live_is_refused(tmp_path / "out", monkeypatch) == {}


def test_campaigns_kizuna_would_refuse_are_drafts_saying_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given (the project's default locale is ja):
    source = export(
        tmp_path / "in",
        templates={
            "email/Sale_ja": email_template("Sale_ja", "セール", "こんにちは"),
            "email/Sale_en": email_template("Sale_en", "Sale", "Hello"),
            "sms/Promo_en": sms_template("Promo_en", "Promo for you"),
            "sms/Other_ja": sms_template("Other_ja", "Other SMS body"),
            "sms/Vip_en": sms_template("Vip_en", "VIP offer"),
        },
        campaigns=[
            # an email template in ja and en, an SMS template in en only: no ja SMS part
            campaign(
                "c1",
                "Mixed channels",
                {"EmailTemplate": {"Name": "Sale_ja"}, "SMSTemplate": {"Name": "Promo_en"}},
            ),
            # an email campaign whose treatment B sends an SMS template only: no email part
            campaign(
                "c2",
                "AB channels",
                {"EmailTemplate": {"Name": "Sale_ja"}},
                TreatmentName="A",
                AdditionalTreatments=[
                    {
                        "Id": "1",
                        "SizePercent": 50,
                        "TreatmentName": "B",
                        "TemplateConfiguration": {"SMSTemplate": {"Name": "Other_ja"}},
                    }
                ],
            ),
            # the only template is in en: no default-locale (ja) template
            campaign("c3", "Vip", {"SMSTemplate": {"Name": "Vip_en"}}),
            # and one Kizuna accepts as it is
            campaign("c4", "Sale", {"EmailTemplate": {"Name": "Sale_ja"}}),
        ],
    )
    # When it is migrated
    out = tmp_path / "out"
    result = migrate_pinpoint(source, out, now=NOW)
    # Then the three Kizuna would refuse are drafts whose decision names what is missing
    refused = assert_nothing_live_is_refused(out, monkeypatch)
    assert sorted(refused) == [
        "campaigns/ab-channels.yaml",
        "campaigns/mixed-channels.yaml",
        "campaigns/vip.yaml",
    ]
    for label, missing in (
        ("Mixed channels", "template 'sale' has no ja/sms.txt.j2 for sms"),
        ("AB channels", "template 'other' has no ja/email.subject.j2 for email"),
        ("Vip", "template 'vip' needs the default locale 'ja' (has en)"),
    ):
        item = result.report.find("campaign", label)
        assert item is not None and item.status == Status.NEEDS_DECISION
        assert any(missing in d for d in item.decisions), (label, item.decisions)
    # and the valid one is scheduled, with nothing to decide
    assert load(out, "campaigns/sale.yaml")["status"] == "scheduled"
    sale = result.report.find("campaign", "Sale")
    assert sale is not None and sale.decisions == []


def test_a_journey_kizuna_would_refuse_is_disabled_saying_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an ACTIVE journey sending an email template and, after it, an SMS template in en
    # only (the default locale is ja: the program's template has no ja SMS part)
    source = export(
        tmp_path / "in",
        templates={
            "email/Hello_ja": email_template("Hello_ja", "こんにちは", "こんにちは"),
            "sms/Hello_en": sms_template("Hello_en", "Hello"),
        },
        journeys={
            "hello": journey(
                "j1",
                "Hello",
                {
                    "Mail": {"EMAIL": {"TemplateName": "Hello_ja", "NextActivity": "Text"}},
                    "Text": {"SMS": {"TemplateName": "Hello_en"}},
                },
                "Mail",
            )
        },
    )
    out = tmp_path / "out"
    result = migrate_pinpoint(source, out, now=NOW)
    refused = assert_nothing_live_is_refused(out, monkeypatch)
    assert list(refused) == ["programs/hello.yaml"]
    item = result.report.find("journey", "Hello")
    assert item is not None and load(out, "programs/hello.yaml")["enabled"] is False


def test_a_malformed_setting_holds_its_object_not_the_migration(tmp_path: Path) -> None:
    # Given a campaign with QuietTime "9pm", one starting 9999-12-31T23:00Z in UTC+09 (past
    # the calendar's end there), a good one, and the application's QuietTime "25:00"
    once = {"Frequency": "ONCE", "Timezone": "UTC+09"}
    source = export(
        tmp_path / "in",
        templates={"email/Sale_ja": email_template("Sale_ja", "セール", "こんにちは")},
        campaigns=[
            campaign(
                "c1",
                "Nine pm",
                {"EmailTemplate": {"Name": "Sale_ja"}},
                Schedule={
                    **once,
                    "StartTime": "2027-01-15T10:00:00+09:00",
                    "QuietTime": {"Start": "9pm", "End": "8am"},
                },
            ),
            campaign(
                "c2",
                "Year 9999",
                {"EmailTemplate": {"Name": "Sale_ja"}},
                Schedule={**once, "StartTime": "9999-12-31T23:00:00Z"},
            ),
            campaign("c3", "Sale", {"EmailTemplate": {"Name": "Sale_ja"}}),
        ],
        settings={"QuietTime": {"Start": "25:00", "End": "08:00"}},
    )
    # When it is migrated: it does not stop
    out = tmp_path / "out"
    result = migrate_pinpoint(source, out, now=NOW)
    # Then each bad setting is its object's decision, and the rest migrates
    nine = result.report.find("campaign", "Nine pm")
    assert nine is not None and nine.status == Status.NEEDS_DECISION
    assert any("QuietTime '9pm'-'8am' is not HH:MM" in d for d in nine.decisions)
    assert load(out, "campaigns/nine-pm.yaml")["status"] == "draft"
    year = result.report.find("campaign", "Year 9999")
    assert year is not None and year.status == Status.NOT_MIGRATED and year.became == []
    assert any("past the calendar's end in UTC+09" in d for d in year.decisions)
    policy = result.report.find("configuration", "contact policy")
    assert policy is not None
    assert any("QuietTime '25:00'-'08:00' is not HH:MM" in d for d in policy.decisions)
    config = json.loads((out / "kizuna-config.json").read_text())
    assert (config["contact"]["quiet_start"], config["contact"]["quiet_end"]) == ("21:00", "08:00")
    assert load(out, "campaigns/sale.yaml")["status"] == "scheduled"
