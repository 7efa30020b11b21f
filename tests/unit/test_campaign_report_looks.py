"""``kizuna campaigns report`` on a moto campaigns table: an occurrence whose sequential
winner test looked twice lists both looks (counts, p-values) and the final decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.campaigns import CampaignStore
from kizuna_tools.cli.campaigns import report
from tests.moto_setup import create_table

AT = datetime(2026, 1, 5, 5, 0, tzinfo=UTC)


def look(
    number: int, a: tuple[int, int], b: tuple[int, int], p: float, winner: str | None
) -> dict[str, Any]:
    due = AT + timedelta(hours=24 * number)
    return {
        "number": number,
        "due": due.isoformat(),
        "at": due.isoformat(),
        "counts": {
            "a": {"exposed": a[0], "converted": a[1]},
            "b": {"exposed": b[0], "converted": b[1]},
        },
        "p_value": p,
        "winner": winner,
    }


def test_report_lists_each_look_and_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "campaigns", "campaign_id", "sk")
        store = CampaignStore(boto3.resource("dynamodb", region_name="us-east-1"), "campaigns")
        # given an occurrence whose test was undecided at look 1 and chose b at look 2
        assert store.start_occurrence("sale", "o1", AT, AT)
        first = look(1, (400, 20), (410, 29), 0.3412, None)
        assert store.record_look("sale", "o1", 1, first, AT + timedelta(hours=48))
        second = look(2, (800, 40), (810, 71), 0.0123, "b")
        assert store.record_look("sale", "o1", 2, second, None, "b", "b beats a", decided=True)
        target: Any = SimpleNamespace(
            stored=lambda _: SimpleNamespace(campaign=SimpleNamespace(goal=None)),
            customers=SimpleNamespace(scan_activity=lambda kinds: iter(())),
            store=store,
        )
        # when the report is printed
        report(SimpleNamespace(obj=target), "sale")  # type: ignore[arg-type]
    # then both looks with their counts and p-values, and the decision
    printed = capsys.readouterr().out
    assert (
        "look 1 (due 2026-01-06 05:00Z, taken 2026-01-06 05:00Z): a 20/400, b 29/410; "
        "p 0.3412 -> undecided" in printed
    )
    assert (
        "look 2 (due 2026-01-07 05:00Z, taken 2026-01-07 05:00Z): a 40/800, b 71/810; "
        "p 0.0123 -> b" in printed
    )
    assert "decision: b after 2 looks" in printed
    assert printed.index("look 1") < printed.index("look 2") < printed.index("decision:")
    assert "winner: b (b beats a)" in printed


def test_report_of_a_test_that_chose_no_winner_does_not_call_the_first_variant_its_winner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "campaigns", "campaign_id", "sk")
        store = CampaignStore(boto3.resource("dynamodb", region_name="us-east-1"), "campaigns")
        # given an occurrence whose test ended at its last look without a winner: the rest
        # of the audience got the first variant
        assert store.start_occurrence("sale", "o1", AT, AT)
        last = look(1, (400, 20), (410, 21), 0.8812, None)
        reason = "undecided after 1 look: no winner, the rest get the first variant"
        assert store.record_look("sale", "o1", 1, last, None, "a", reason, decided=False)
        target: Any = SimpleNamespace(
            stored=lambda _: SimpleNamespace(campaign=SimpleNamespace(goal=None)),
            customers=SimpleNamespace(scan_activity=lambda kinds: iter(())),
            store=store,
        )
        # when the report is printed
        report(SimpleNamespace(obj=target), "sale")  # type: ignore[arg-type]
    # then it says no winner was chosen, and never names the first variant the winner
    printed = capsys.readouterr().out
    assert f"no winner: first variant a ({reason})" in printed
    assert "winner: a" not in printed
