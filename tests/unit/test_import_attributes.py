"""``kizuna import customers``: declared custom attributes (JSON Lines object, CSV columns typed
by the declaration) and push devices, validated by the configuration's vocabulary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kizuna.events import DeviceRegistered
from kizuna.runtime.config import CustomAttribute, CustomConfig, KizunaConfig, ValueType
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import RowRejected, customer_events, import_file

NOW = datetime(2026, 11, 30, tzinfo=UTC)
CFG = KizunaConfig(
    custom=CustomConfig(
        attributes=(
            CustomAttribute(name="tier", type=ValueType.STRING, enum=("Gold", "Silver")),
            CustomAttribute(name="spend", type=ValueType.NUMBER),
            CustomAttribute(name="newsletter", type=ValueType.BOOLEAN),
            CustomAttribute(name="signup_date", type=ValueType.DATE),
            CustomAttribute(name="interests", type=ValueType.STRING_LIST),
            CustomAttribute(name="birth_date", type=ValueType.DATE, personal=True),
        )
    )
)
TOKEN = "a" * 64


def jsonl(tmp_path: Path, *rows: dict[str, Any]) -> Path:
    path = tmp_path / "customers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_declared_attributes_in_json_lines_are_validated_and_carried(tmp_path: Path) -> None:
    row = {
        "customer_id": "c1",
        "attributes": {
            "tier": "Gold",
            "spend": 1200.5,
            "newsletter": True,
            "signup_date": "2024-01-05",
            "interests": ["tea"],
            "birth_date": None,
        },
    }
    events = customer_events(row, NOW, CFG, as_of=NOW)
    detail = events[0].detail
    assert detail.attributes.tier == "Gold"
    assert str(detail.attributes.spend) == "1200.5"
    assert detail.attributes.interests == ("tea",)
    assert "birth_date" in detail.attributes.model_fields_set  # an explicit null clears it
    report = import_file("customers", jsonl(tmp_path, row), None, CFG, NOW, as_of=NOW)
    assert (report.imported, report.errors) == (1, [])


def test_an_undeclared_attribute_rejects_the_row_naming_it(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        {"customer_id": "c1", "attributes": {"teir": "Gold"}},
        {"customer_id": "c2", "attributes": {"tier": "Bronze"}},
        {"customer_id": "c3", "attributes": {"spend": "12"}},
        {"customer_id": "c4", "attributes": ["tier"]},
    )
    report = import_file("customers", path, None, CFG, NOW, as_of=NOW)
    errors = {e.row: e.error for e in report.errors}
    assert report.imported == 0
    assert errors[1].startswith("attributes.teir: Extra inputs are not permitted")
    assert errors[2].startswith("attributes.tier: Input should be 'Gold' or 'Silver'")
    assert errors[3].startswith("attributes.spend")  # "12" is text, never read as a number
    assert errors[4] == "attributes: an object of declared attributes"


def test_without_declarations_any_attribute_is_refused(tmp_path: Path) -> None:
    report = import_file(
        "customers",
        jsonl(tmp_path, {"customer_id": "c1", "attributes": {"tier": "Gold"}}),
        None,
        KizunaConfig(),
        NOW,
        as_of=NOW,
    )
    assert report.errors[0].error == "attributes: Extra inputs are not permitted"


def test_csv_attribute_columns_are_typed_by_their_declaration(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,attributes.tier,attributes.spend,attributes.newsletter,attributes.interests,attributes.signup_date\n"
        'c1,Gold,1200,true,"[""tea"", ""sweets""]",2024-01-05\n'
        "c2,Silver,,,,\n"
        "c3,Gold,12a,true,,\n"
        "c4,Gold,1,yes,,\n"
        'c5,Gold,1,true,"tea,sweets",\n'
    )
    report = import_file("customers", path, None, CFG, NOW, as_of=NOW)
    errors = {e.row: e.error for e in report.errors}
    assert report.imported == 2
    assert errors == {
        4: "attributes.spend: a number: ASCII digits, an optional leading '-' and '.' fraction "
        "(no space, '_', exponent or leading zero)",
        5: "attributes.newsletter: true or false",
        6: 'attributes.interests: a JSON array of strings (["a", "b"])',
    }
    first = customer_events(
        {"customer_id": "c1", "attributes.spend": "1200", "attributes.interests": '["tea"]'},
        NOW,
        CFG,
        as_of=NOW,
    )
    assert first[0].detail.attributes.spend == 1200
    assert first[0].detail.attributes.interests == ("tea",)


def test_an_undeclared_csv_attribute_column_rejects_the_row(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,attributes.tier,attributes.vip\nc1,Gold,yes\n")
    report = import_file("customers", path, None, CFG, NOW, as_of=NOW)
    assert report.errors[0].error.startswith(
        "attributes.vip: not a declared attribute (custom.attributes: "
    )


def test_push_tokens_register_devices(tmp_path: Path) -> None:
    # Given a customer with an iOS and an Android device, and their consent
    row = {
        "customer_id": "c1",
        "push_consent": "opted_in",
        "push_tokens": [
            {"token": TOKEN, "platform": "APNS"},
            {"token": "fcm:" + "b" * 40, "platform": "FCM"},
        ],
    }
    events = customer_events(row, NOW, CFG, as_of=NOW)
    devices = [e.detail for e in events if isinstance(e.detail, DeviceRegistered)]
    assert [(d.platform.value, d.token) for d in devices] == [
        ("APNS", TOKEN),
        ("FCM", "fcm:" + "b" * 40),
    ]
    # When imported into a store / Then the customer has both devices
    store = MemoryStore()
    report = import_file("customers", jsonl(tmp_path, row), store, CFG, NOW, as_of=NOW)
    assert report.errors == []
    assert sorted(d.platform for d in store.customers["c1"].devices.values()) == ["APNS", "FCM"]
    assert store.customers["c1"].consent["push"].status == "opted_in"


def test_bad_push_tokens_are_refused_naming_the_device(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        {"customer_id": "c1", "push_tokens": [{"token": TOKEN, "platform": "GCM"}]},
        {"customer_id": "c2", "push_tokens": [{"token": "short", "platform": "APNS"}]},
        {"customer_id": "c3", "push_tokens": [{"token": TOKEN, "platform": "APNS", "arn": "x"}]},
        {"customer_id": "c4", "push_tokens": "APNS" + TOKEN},
    )
    errors = {
        e.row: e.error for e in import_file("customers", path, None, CFG, NOW, as_of=NOW).errors
    }
    assert errors[1].startswith("push_tokens.0: platform: Input should be 'APNS' or 'FCM'")
    assert errors[2].startswith("push_tokens.0: token: String should have at least 8 characters")
    assert errors[3] == "push_tokens.0: unknown keys arn"
    assert errors[4] == "push_tokens: write each as APNS:<token> or FCM:<token>"


def test_csv_push_tokens(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(f"customer_id,push_tokens\nc1,APNS:{TOKEN} FCM:x:{TOKEN}\n")
    store = MemoryStore()
    report = import_file("customers", path, store, CFG, NOW, as_of=NOW)
    assert report.errors == []
    assert sorted(d.token for d in store.customers["c1"].devices.values()) == sorted(
        [TOKEN, f"x:{TOKEN}"]
    )


def test_a_nan_or_infinite_number_rejects_its_row_and_the_others_import(tmp_path: Path) -> None:
    # Given customers whose spend is NaN or Infinity (Python reads both, from a CSV cell as
    # from a JSON line), between good rows
    csv_path = tmp_path / "customers.csv"
    csv_path.write_text(
        "customer_id,email,attributes.spend\n"
        "c1,a@example.jp,1200\nc2,b@example.jp,NaN\nc3,c@example.jp,-Infinity\n"
    )
    lines = tmp_path / "customers.jsonl"
    lines.write_text(
        '{"customer_id": "c4", "attributes": {"spend": 5}}\n'
        '{"customer_id": "c5", "attributes": {"spend": NaN}}\n'
        '{"customer_id": "c6", "attributes": {"spend": Infinity}}\n'
    )
    cases = (
        (csv_path, "c1", [3, 4], "attributes.spend: "),
        (lines, "c4", [2, 3], "invalid JSON: "),  # (strict_json: they are not JSON)
    )
    for path, good, bad, why in cases:
        # When it is imported with partial
        store = MemoryStore()
        report = import_file("customers", path, store, CFG, NOW, partial=True, as_of=NOW)
        # Then the bad rows are reported saying why, and the good one is written
        assert [e.row for e in report.errors] == bad, path.name
        assert all(e.error.startswith(why) for e in report.errors), report.errors
        assert set(store.customers) == {good}


def test_the_import_command_reports_a_nan_row_instead_of_crashing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kizuna_tools.cli import app

    config = tmp_path / "config.json"
    config.write_text('{"custom": {"attributes": [{"name": "score", "type": "number"}]}}')
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,updated_at,attributes.score\n"
        "c1,2025-12-01T00:00:00+00:00,1200\nc2,2025-12-01T00:00:00+00:00,NaN\n"
    )
    args = ["import", "customers", str(path), "--config", str(config), "--partial", "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1200", 1200),
        ("-12.5", -12.5),
        ("0.25", 0.25),
        ("0", 0),
        # what JSON or Python would read as another number, or a spreadsheet's formatting
        ("1e3", None),
        ("1_200", None),
        ("１２００", None),  # full-width digits
        (" 1200", None),
        ("1200 ", None),
        ("+5", None),
        ("01", None),
        ("1,200", None),
        ("1.", None),
        (".5", None),
        ("-", None),
        ("NaN", None),
    ],
)
def test_a_csv_number_attribute_is_written_as_plain_digits(cell: str, value: float | None) -> None:
    row = {"customer_id": "c1", "attributes.spend": cell}
    if value is None:
        with pytest.raises(RowRejected, match=r"^attributes\.spend: a number: ASCII digits"):
            customer_events(row, NOW, CFG, as_of=NOW)
    else:
        assert customer_events(row, NOW, CFG, as_of=NOW)[0].detail.attributes.spend == value
