"""A split winner on DynamoDB (moto): the split's STEP rows and its emails come back from the
program's ledger index, the daily look decides once (a conditional put on the index too), a
second look changes nothing, and the evaluate read finds the winner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.timestamps import iso
from kizuna.programs.model import Program
from kizuna.services.sweep import check_winners
from kizuna_tools.reports.splits import split_results
from tests.integration.api.shop import add_program_index
from tests.integration.lambda_runtime import REGION

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
PROGRAM = Program.model_validate(
    {
        "id": "ab-test",
        "name": "A/B",
        "trigger": {"event": "customer.first_purchase"},
        "steps": [
            {
                "id": "offer",
                "type": "split",
                "arms": [
                    {"name": "a", "weight": 50, "next": "send_a"},
                    {"name": "b", "weight": 50, "next": "send_b"},
                ],
                "winner": {"metric": "opened", "min_per_arm": 100},
            },
            {"id": "send_a", "type": "send", "channels": ["email"], "template": "t-a"},
            {"id": "send_b", "type": "send", "channels": ["email"], "template": "t-b"},
        ],
    }
)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_kizuna_tables(ddb)
        add_program_index(ddb)
        yield DynamoStore(boto3.resource("dynamodb", region_name=REGION), "customers", "activity")


def seed(store: DynamoStore, arm: str, n: int, opened: int) -> None:
    at = iso(NOW)
    steps, messages = [], []
    for i in range(n):
        cid, entry = f"{arm}{i}", f"ab-test-{arm}{i}"
        steps.append(
            (
                cid,
                entry,
                {
                    "program": "ab-test",
                    "step": "offer",
                    "execution": entry,
                    "decision": f"arm:{arm}",
                    "at": at,
                },
            )
        )
        data = {"program": "ab-test", "status": "sent", "channel": "email", "at": at}
        if i < opened:
            data["open_at"] = at
        messages.append((cid, entry, data))
    store.record_steps("offer", steps)
    store.record_entries(f"send_{arm}", messages)


def test_the_daily_look_decides_once_on_dynamodb(store: DynamoStore) -> None:
    seed(store, "a", 800, 80)
    seed(store, "b", 800, 160)
    # a branch's STEP row stays off the program's index
    store.record_steps(
        "other", [("a0", "ab-test-a0", {"program": "ab-test", "decision": "then", "at": iso(NOW)})]
    )
    kinds = [r["kind"] for r in store.program_ledger("ab-test")]
    assert kinds.count("STEP") == 1600 and kinds.count("MSG") == 1600
    assert check_winners([PROGRAM], store, NOW) == 1
    assert store.split_winners([("ab-test", "offer")]) == {("ab-test", "offer"): "b"}
    (row,) = [r for r in store.program_ledger("ab-test") if r["kind"] == "WINNER"]
    assert row["arms"]["b"] == {"reached": 800, "exposed": 800, "converted": 160}
    assert row["decided_at"] == iso(NOW) and row["p_value"] <= 0.05
    # the second look: nothing changes (and a late write would not replace the first)
    assert check_winners([PROGRAM], store, NOW + timedelta(days=1)) == 0
    again = [r for r in store.program_ledger("ab-test") if r["kind"] == "WINNER"]
    assert again == [row]
    # the report reads the same row back (one Query of the index): the decision's evidence
    (shown,) = split_results(PROGRAM, store.program_ledger("ab-test"))
    assert (shown.winner, shown.decided_at, shown.p_value) == ("b", iso(NOW), row["p_value"])
    assert shown.arms["b"].converted == 160 and shown.arms["a"].exposed == 800
