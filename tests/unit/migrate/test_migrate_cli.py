"""``kizuna migrate pinpoint`` end to end on the fixture project: the files it writes, the
customers import, the report (every object, no personal data), and the project passing
``kizuna programs validate`` and ``kizuna campaigns validate`` with its own configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna.runtime.config import KizunaConfig
from kizuna_tools.cli import app
from kizuna_tools.importer import import_file
from kizuna_tools.migrate.project import migrate_pinpoint

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
RUNNER = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("migrated") / "project"
    result = RUNNER.invoke(app, ["migrate", "pinpoint", str(FIXTURES), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_it_writes_the_kizuna_project(out: Path) -> None:
    for name in (
        "kizuna-config.json",
        "customers.jsonl",
        "MIGRATION-REPORT.md",
        "MIGRATION-REPORT.json",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.stem for p in (out / "segments").glob("*.yaml")) == [
        "gold-members",
        "high-spenders-or-newsletter-readers",
        "recent-android-sign-ups",
        "tea-lovers-on-the-app",
    ]
    assert {p.stem for p in (out / "campaigns").glob("*.yaml")} == {
        "winter-tea-sale",
        "weekly-tea-journal",
    }
    assert "wishlist-reminder" in {p.stem for p in (out / "programs").glob("*.yaml")}
    assert len(list((out / "programs").glob("*.yaml"))) == 4  # 3 journeys + the event campaign
    assert (
        out / "templates" / "winter-tea-sale" / "winter_sale" / "ja" / "email.subject.j2"
    ).is_file()
    assert (
        out / "templates" / "winter-tea-sale" / "winter_sale" / "en" / "email.subject.j2"
    ).is_file()


def test_the_configuration_declares_what_the_project_names(out: Path) -> None:
    cfg = KizunaConfig.model_validate_json((out / "kizuna-config.json").read_text())
    attributes = {a.name: a for a in cfg.custom.attributes}
    assert attributes["interests"].type.value == "string_list"
    assert attributes["birth_date"].personal
    assert [e.detail_type for e in cfg.custom.events] == ["wishlist.added"]
    assert [(t.detail_type, t.windows_days) for t in cfg.custom.tracked] == [("app.opened", (30,))]
    assert (cfg.contact.quiet_start, cfg.contact.quiet_end) == ("21:00", "08:00")


def test_every_customer_row_imports_with_the_migrated_configuration(out: Path) -> None:
    cfg = KizunaConfig.model_validate_json((out / "kizuna-config.json").read_text())
    rows = (out / "customers.jsonl").read_text().splitlines()
    report = import_file("customers", out / "customers.jsonl", None, cfg, _now())
    assert (report.rows, report.imported, report.errors) == (len(rows), len(rows), [])
    assert len(rows) == 604


def test_the_report_names_every_object_and_no_personal_data(out: Path) -> None:
    report = json.loads((out / "MIGRATION-REPORT.json").read_text())
    kinds: dict[str, int] = {}
    for item in report["items"]:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    assert kinds["endpoint"] == 1000
    assert (kinds["segment"], kinds["campaign"], kinds["journey"]) == (5, 3, 3)
    decisions = " ".join(d["decision"] for d in report["decisions"])
    assert "give campaigns that used it a customer_list" in decisions  # the IMPORT segment
    assert "Kizuna keeps no device platform" in decisions
    personal: set[str] = set()
    for line in (out / "customers.jsonl").read_text().splitlines():
        row: dict[str, Any] = json.loads(line)
        personal |= {
            str(row[k]) for k in ("email", "phone", "first_name", "last_name") if row.get(k)
        }
        personal |= {t["token"] for t in row.get("push_tokens", [])}
    text = (out / "MIGRATION-REPORT.json").read_text() + (out / "MIGRATION-REPORT.md").read_text()
    assert not [p for p in personal if p in text]


def test_an_output_folder_in_use_needs_force(out: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "mine.txt").write_text("kept")
    refused = RUNNER.invoke(app, ["migrate", "pinpoint", str(FIXTURES), "--out", str(copy)])
    assert refused.exit_code == 2
    assert "is not empty: give --force" in refused.output
    forced = RUNNER.invoke(
        app, ["migrate", "pinpoint", str(FIXTURES), "--out", str(copy), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert (copy / "mine.txt").read_text() == "kept"  # only the migration's own files go


def test_the_migrated_programs_validate(out: Path) -> None:
    result = RUNNER.invoke(
        app,
        [
            "programs",
            "validate",
            str(out / "programs"),
            "--templates",
            str(out / "templates"),
            "--segments",
            str(out / "segments"),
            "--config",
            str(out / "kizuna-config.json"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_the_migrated_campaigns_validate(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(out)  # campaigns validate reads ./segments, ./templates, ./programs
    config = str(out / "kizuna-config.json")
    result = RUNNER.invoke(
        app, ["campaigns", "validate", str(out / "campaigns"), "--config", config]
    )
    assert result.exit_code == 0, result.output


def test_the_python_entry_point_matches_the_command(tmp_path: Path) -> None:
    result = migrate_pinpoint(FIXTURES, tmp_path / "p", now=_now())
    assert (tmp_path / "p" / "kizuna-config.json") in result.files
    assert result.report.counts["customers"] == 604


def test_a_template_printing_the_city_holds_nothing_back(tmp_path: Path) -> None:
    # Given WinterSale prints {{Location.City}} (the city attribute declared from the
    # endpoints' location) / When the project is migrated before the sale
    result = migrate_pinpoint(FIXTURES, tmp_path / "p", now=_now())
    # Then the template has no TODO and the campaign sending it is scheduled, not a draft
    cfg = KizunaConfig.model_validate_json((tmp_path / "p" / "kizuna-config.json").read_text())
    assert {"city", "country"} <= {a.name for a in cfg.custom.attributes}
    html = tmp_path / "p" / "templates" / "winter-tea-sale" / "winter_sale" / "ja"
    assert "customer.attributes.city" in (html / "email.html.j2").read_text()
    assert "TODO" not in (html / "email.html.j2").read_text()
    campaign = (tmp_path / "p" / "campaigns" / "winter-tea-sale.yaml").read_text()
    assert "status: scheduled" in campaign
    item = result.report.find("campaign", "Winter tea sale")
    assert item is not None and item.decisions == []


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 30, tzinfo=UTC)
