"""The orchestration on small projects (no templates or journeys, so no translation): inputs
checked against Pinpoint's model, the configuration and its contact policy, the output
folder's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.migrate.inputs import load, shape_of
from kizuna_tools.migrate.project import MigrationError, migrate_pinpoint
from kizuna_tools.migrate.report import Status

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def write(folder: Path, rel: str, doc: Any) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def endpoint(eid: str, user: str, **fields: Any) -> dict[str, Any]:
    return {
        "Id": eid,
        "ChannelType": "EMAIL",
        "Address": f"{eid}@example.jp",
        "EndpointStatus": "ACTIVE",
        "OptOut": "NONE",
        "EffectiveDate": "2026-01-01T00:00:00Z",
        "User": {"UserId": user, "UserAttributes": {"Tier": ["Gold" if user < "u5" else "Silver"]}},
        **fields,
    }


def segment(sid: str, name: str, dims: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": sid,
        "Name": name,
        "SegmentType": "DIMENSIONAL",
        "Arn": f"arn:aws:mobiletargeting:us-east-1:111122223333:apps/a/segments/{sid}",
        "ApplicationId": "a",
        "CreationDate": "2026-01-01T00:00:00Z",
        "Dimensions": dims,
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    source = tmp_path / "pinpoint"
    (source / "endpoints").mkdir(parents=True)
    (source / "endpoints" / "part.json").write_text(
        "".join(json.dumps(endpoint(f"e{i}", f"u{i}")) + "\n" for i in range(8))
    )
    write(
        source,
        "segments.json",
        {
            "SegmentsResponse": {
                "Item": [
                    segment("s1", "Gold", {"UserAttributes": {"Tier": {"Values": ["Gold"]}}}),
                    segment(
                        "s2",
                        "Active",
                        {"Behavior": {"Recency": {"Duration": "DAY_14", "RecencyType": "ACTIVE"}}},
                    ),
                ]
            }
        },
    )
    write(
        source,
        "application-settings.json",
        {
            "ApplicationSettingsResource": {
                "ApplicationId": "a",
                "QuietTime": {"Start": "22:00", "End": "07:00"},
                "Limits": {"Daily": 3},
            }
        },
    )
    return source


def test_a_project_becomes_the_kizuna_files(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = migrate_pinpoint(project, out, now=NOW)
    cfg = KizunaConfig.model_validate_json((out / "kizuna-config.json").read_text())
    assert [a.name for a in cfg.custom.attributes] == ["tier"]
    assert [(t.detail_type, t.windows_days) for t in cfg.custom.tracked] == [("app.opened", (14,))]
    # the application settings are the project's contact policy
    assert (cfg.contact.quiet_start, cfg.contact.quiet_end, cfg.contact.max_per_day) == (
        "22:00",
        "07:00",
        3,
    )
    assert sorted(p.name for p in (out / "segments").iterdir()) == ["active.yaml", "gold.yaml"]
    assert len((out / "customers.jsonl").read_text().splitlines()) == 8
    assert result.report.find("segment", "Gold").status == Status.MIGRATED
    assert (out / "MIGRATION-REPORT.md").read_text().startswith("# Migration report")


def test_the_base_configuration_is_kept(project: Path, tmp_path: Path) -> None:
    base = KizunaConfig.model_validate(
        {"behaviour_ttl_days": 45, "contact": {"default_locale": "en"}}
    )
    migrate_pinpoint(project, tmp_path / "out", base=base, now=NOW)
    cfg = KizunaConfig.model_validate_json((tmp_path / "out" / "kizuna-config.json").read_text())
    assert (cfg.behaviour_ttl_days, cfg.contact.default_locale) == (45, "en")


def test_a_file_that_does_not_fit_pinpoints_model_is_reported_not_read(
    project: Path, tmp_path: Path
) -> None:
    doc = json.loads((project / "segments.json").read_text())
    doc["SegmentsResponse"]["Item"][0]["Dimension"] = {}
    write(project, "segments.json", doc)
    write(project, "campaign.json", {"CampaignsResponse": {"Item": []}})  # not a layout name
    result = migrate_pinpoint(project, tmp_path / "out", now=NOW)
    inputs = {i.source: i.notes[0] for i in result.report.of("input")}
    assert "SegmentResponse has no member 'Dimension'" in inputs["segments.json"]
    assert inputs["campaign.json"] == "not a file of the input layout: not read"
    assert not (tmp_path / "out" / "segments").exists()


def test_the_output_folder_must_be_empty_unless_forced(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    migrate_pinpoint(project, out, now=NOW)
    (out / "notes.txt").write_text("mine")
    (out / "segments" / "old.yaml").write_text("name: old\n")
    with pytest.raises(MigrationError, match="is not empty: give --force"):
        migrate_pinpoint(project, out, now=NOW)
    migrate_pinpoint(project, out, now=NOW, force=True)
    assert (out / "notes.txt").read_text() == "mine"  # not a migration's file: kept
    assert not (out / "segments" / "old.yaml").exists()  # the migration's folders are redone
    with pytest.raises(MigrationError, match="no such folder"):
        migrate_pinpoint(tmp_path / "missing", tmp_path / "x", now=NOW)


def test_list_journeys_is_read_as_journeys() -> None:
    assert (
        shape_of("journeys/all.json", {"JourneysResponse": {"Item": []}}) == "ListJourneysResponse"
    )
    assert (
        shape_of("journeys/one.json", {"JourneyResponse": {"Activities": {}}})
        == "GetJourneyResponse"
    )
    assert shape_of("templates/email/x.json") == "GetEmailTemplateResponse"
    assert shape_of("templates/voice/x.json") is None


def test_segments_and_campaigns_are_read_with_every_number_as_written(
    project: Path, tmp_path: Path
) -> None:
    # Given a segment whose metric is compared with a number a float cannot carry (17
    # decimals: json.loads read it as 1.0, a condition "> 1") and one with 5000.5
    big = segment("s3", "Big", {"Metrics": {"Spend": {"ComparisonOperator": "GREATER_THAN"}}})
    half = segment("s4", "Half", {"Metrics": {"Spend": {"ComparisonOperator": "GREATER_THAN"}}})
    text = json.dumps({"SegmentsResponse": {"Item": [big, half]}})
    text = text.replace(
        '"GREATER_THAN"}', '"GREATER_THAN", "Value": 1.00000000000000001}', 1
    ).replace('"GREATER_THAN"}', '"GREATER_THAN", "Value": 5000.5}', 1)
    (project / "segments.json").write_text(text)
    payload, problems = load(project / "segments.json", "segments.json")
    assert problems == []
    values = [i["Dimensions"]["Metrics"]["Spend"]["Value"] for i in payload["Item"]]
    assert values == [Decimal("1.00000000000000001"), Decimal("5000.5")]
    # When the project is migrated
    result = migrate_pinpoint(project, tmp_path / "out", now=NOW)
    # Then the first is a decision naming the number as written (no condition on the rounded
    # one), the second is exact
    item = result.report.find("segment", "Big")
    assert item is not None and item.status == Status.NEEDS_DECISION
    assert item.decisions == [
        "Metrics.Spend: 1.00000000000000001 is not a Kizuna number (within +-1e12, at most 6 decimals)"
    ]
    half_doc = (tmp_path / "out" / "segments" / "half.yaml").read_text()
    assert "5000.5" in half_doc
    # and a campaign's file is read the same way: its event filter's metric too
    fixture = json.loads((FIXTURES / "campaigns.json").read_text())
    (wishlist,) = [
        c for c in fixture["CampaignsResponse"]["Item"] if c["Name"] == "Wishlist reminder"
    ]
    text = json.dumps({"CampaignsResponse": {"Item": [{**wishlist, "SegmentId": "s4"}]}})
    assert text.count('"Value": 3000.0') == 1
    (project / "campaigns.json").write_text(text.replace("3000.0", "1.00000000000000001"))
    result = migrate_pinpoint(project, tmp_path / "out", now=NOW, force=True)
    item = result.report.find("campaign", "Wishlist reminder")
    assert item is not None  # (its template is not in this project: it is not written)
    why = "event metric price: 1.00000000000000001 is not a Kizuna number (within +-1e12, at most 6 decimals)"
    assert any(why in d for d in item.decisions), item.decisions


def test_pinpoint_names_show_as_written_in_the_markdown_report(tmp_path: Path) -> None:
    """A segment named like a link (or raw HTML) became a clickable link in the report's
    "Needs a decision" checklist the person migrating works through."""
    from markdown_it import MarkdownIt

    hostile = "<img src=x onerror=alert(1)> [Re-verify your AWS account](https://evil.example)"
    source = tmp_path / "pinpoint"
    (source / "endpoints").mkdir(parents=True)
    (source / "endpoints" / "part.json").write_text(json.dumps(endpoint("e1", "u1")) + "\n")
    imported = {**segment("s1", hostile, {}), "SegmentType": "IMPORT"}
    del imported["Dimensions"]
    write(source, "segments.json", {"SegmentsResponse": {"Item": [imported]}})
    migrate_pinpoint(source, tmp_path / "out")
    text = (tmp_path / "out" / "MIGRATION-REPORT.md").read_text(encoding="utf-8")
    html = MarkdownIt().render(text)  # CommonMark: raw HTML and links pass through
    assert "<img" not in html and "<a href" not in html
    # the name reads as written
    assert (
        "&lt;img src=x onerror=alert(1)&gt; [Re-verify your AWS account](https://evil.example)"
        in html
    )
