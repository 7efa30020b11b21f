"""The campaign store's record of a sequential winner's looks, on moto: each look once, the
next look's time or the final winner in the same write, nothing after the winner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from kizuna.adapters.campaigns import CampaignStore
from kizuna.domain.timestamps import parse_time
from tests.moto_setup import create_table

AT = datetime(2026, 1, 5, 5, 0, tzinfo=UTC)


def test_looks_are_recorded_once_each_and_stop_at_the_winner() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "campaigns", "campaign_id", "sk")
        store = CampaignStore(boto3.resource("dynamodb", region_name="us-east-1"), "campaigns")
        assert store.start_occurrence("sale", "o1", AT, AT)
        first = {"number": 1, "p_value": 0.4, "counts": {"a": {"exposed": 100, "converted": 3}}}
        nxt = AT + timedelta(hours=24)
        # the first look, undecided: recorded with the next look's time; a retry is refused
        assert store.record_look("sale", "o1", 1, first, nxt)
        assert not store.record_look("sale", "o1", 1, first, nxt)
        occ = store.get_occurrence("sale", "o1")
        assert occ is not None and parse_time(occ["next_look_at"]) == nxt
        assert occ["looks"] == [first] and "winner" not in occ
        # look 3 before look 2: refused; look 2 decides: the winner, no next look
        assert not store.record_look("sale", "o1", 3, {"number": 3}, None, "b", "why", decided=True)
        second = {"number": 2, "p_value": 1.5e-12, "winner": "b"}
        assert store.record_look("sale", "o1", 2, second, None, "b", "b wins", decided=True)
        occ = store.get_occurrence("sale", "o1")
        assert occ is not None and occ["winner"] == "b" and occ["winner_reason"] == "b wins"
        assert occ["winner_decided"] is True
        assert "next_look_at" not in occ and occ["looks"] == [first, second]
        # after the winner, no look is recorded
        assert not store.record_look(
            "sale", "o1", 3, {"number": 3}, None, "a", "late", decided=True
        )
        assert (store.get_occurrence("sale", "o1") or {})["winner"] == "b"


def test_first_occurrence_is_none_until_the_campaign_ran_and_ignores_the_definition() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "campaigns", "campaign_id", "sk")
        store = CampaignStore(boto3.resource("dynamodb", region_name="us-east-1"), "campaigns")
        store._table.put_item(Item={"campaign_id": "sale", "sk": "DEF", "status": "scheduled"})
        assert store.first_occurrence("sale") is None
        assert store.start_occurrence("sale", "20260105T0500Z", AT, AT)
        assert store.start_occurrence("sale", "20260112T0500Z", AT, AT)
        assert store.start_occurrence("other-sale", "20260101T0000Z", AT, AT)
        first = store.first_occurrence("sale")
        assert first is not None
        assert (first["occurrence"], first["status"]) == ("20260105T0500Z", "running")


def test_the_best_rules_winner_is_set_once() -> None:
    """Two looks racing (a retried Lambda beside the first): the first winner stands, the
    second is refused (it overwrote the first, after the rest may have been planned)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "campaigns", "campaign_id", "sk")
        store = CampaignStore(boto3.resource("dynamodb", region_name="us-east-1"), "campaigns")
        assert not store.set_winner("sale", "o1", "b", "no occurrence", decided=True)
        assert store.start_occurrence("sale", "o1", AT, AT)
        assert store.set_winner("sale", "o1", "b", "b: 12/20 opened", decided=True)
        assert not store.set_winner("sale", "o1", "a", "a: 13/20 opened", decided=True)
        occ = store.get_occurrence("sale", "o1")
        assert occ is not None and (occ["winner"], occ["winner_reason"]) == ("b", "b: 12/20 opened")
        assert occ["winner_decided"] is True
