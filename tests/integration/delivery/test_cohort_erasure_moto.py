"""Erasure of a customer who is a member of more than one cohort of a program (a re-entry:
rank-up-congratulations has ``reentry: always`` and a 7-day wait), on moto: every cohort
they are in is left, not only the one their journey item names."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import Customer
from kizuna.domain.privacy import erase, export
from kizuna.programs.cohorts import cohort_id, run_name
from kizuna.programs.evaluate import Evaluator
from kizuna.programs.journeys import JourneyState
from kizuna.programs.loader import load_program
from kizuna.programs.members import MEMBER_SK, ROOT, Join, Member
from kizuna.runtime.clock import FixedClock
from kizuna.services.cohort import CohortService
from kizuna.services.contracts import GroupRequest
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter
from tests.moto_setup import fake_aws_env
from tests.unit.test_cohorts import BRANCHY, CFG, SEEDS, rank_changed, tokyo, treated

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
DAY1 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        yield DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )


def members_of(store: DynamoStore, cohort: str, cid: str) -> list[dict]:
    from boto3.dynamodb.conditions import Key

    return store._activity.query(
        KeyConditionExpression=Key("pk").eq(f"COHORT#{cohort}")
        & Key("sk").begins_with(f"{MEMBER_SK}{cid}#"),
        ConsistentRead=True,
    )["Items"]


def test_erasure_removes_the_customer_from_every_cohort_they_are_in(store: DynamoStore) -> None:
    # Given a customer who ranked up twice, two days apart: two entries of
    # rank-up-congratulations (reentry: always), each in the cohort due after its 7-day wait
    program = SEEDS["rank-up-congratulations"]
    (cid,) = treated(program, "er", 1)
    store.save_customer(tokyo(cid, rank="Silver"), 0)
    starter = MemoryStarter()
    first = Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(DAY1))
    first.evaluate([rank_changed(cid, DAY1)])
    cohort_a = store.read_entries([], [(cid, program.id)])[1][(cid, program.id)].cohort
    later = DAY1 + timedelta(days=2)
    second = dataclasses.replace(rank_changed(cid, later), event_id=f"{cid}:rank2")
    Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(later)).evaluate(
        [second]
    )
    cohort_b = store.read_entries([], [(cid, program.id)])[1][(cid, program.id)].cohort
    assert cohort_a and cohort_b and cohort_a != cohort_b
    assert members_of(store, cohort_a, cid) and members_of(store, cohort_b, cid)
    # When the customer is erased (between the two cohorts' instants)
    erase(cid, store, store, later + timedelta(hours=1))
    # Then no cohort holds them any more: no later step of either cohort acts on them
    assert members_of(store, cohort_b, cid) == []
    assert members_of(store, cohort_a, cid) == [], "the first entry's cohort still holds them"


def test_the_sweep_removes_what_a_step_running_during_the_erasure_wrote_back(
    store: DynamoStore, tmp_path: Path
) -> None:
    # given: two members of a cohort at a branch (rank Gold: then; else: a child group)
    (tmp_path / "branchy.yaml").write_text(BRANCHY)
    program = load_program(tmp_path / "branchy.yaml")
    cohort = cohort_id(program.id, DAY1)
    joins = []
    for cid in ("x1", "x2"):
        store.save_customer(tokyo(cid, rank="Gold"), 0)
        entry = f"{program.id}-{cid}"
        state = JourneyState(
            customer_id=cid,
            program=program.id,
            entries=1,
            last_entry_at=DAY1,
            execution=entry,
            cohort=cohort,
        )
        joins.append(Join(state, None, cohort, Member(cid, entry, DAY1), 2_000_000_000))
    assert store.join_cohorts(joins) == set()

    swept: list[tuple[str, datetime]] = []

    class Sweeps:
        def schedule(self, customer_id: str, at: datetime) -> None:
            swept.append((customer_id, at))

    class ErasedMidStep:
        """x1's erasure runs to completion while the step decides (after it read its group,
        before it settled): the residual window docs/ARCHITECTURE.md names."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def branch_state(
            self, keys: Sequence[tuple[str, str]], step: str
        ) -> tuple[dict[str, Customer], dict[tuple[str, str], dict[str, Any]]]:
            erase("x1", store, store, DAY1, sweeps=Sweeps())
            return store.branch_state(keys, step)

    service = CohortService([program], ErasedMidStep(), MemoryStarter(), CFG, FixedClock(DAY1))
    request = GroupRequest(
        action="check",
        program=program.id,
        cohort=cohort,
        group=ROOT,
        run=run_name(cohort, ROOT),
        step="check",
    )
    service.handle(request)
    # the step wrote x1's decision (naming the cohort) and moved x1's member item back
    assert [i["sk"] for i in store.activity("x1")] == [f"STEP#{program.id}-x1#check"]
    assert members_of(store, cohort, "x1")
    # when: the erasure's sweep runs (scheduled after the longest a step runs: 60 s)
    [(who, at)] = swept
    assert who == "x1" and at >= DAY1 + timedelta(seconds=60)
    assert erase("x1", store, store, at, sweeps=Sweeps()).sweep_scheduled is None
    assert len(swept) == 1
    # then: nothing of x1 is left, and x2 is untouched
    assert store.activity("x1") == [] and members_of(store, cohort, "x1") == []
    assert members_of(store, cohort, "x2") and store.get_customers(["x2"])


def test_export_gives_the_customers_member_rows_and_no_one_elses(store: DynamoStore) -> None:
    # given two customers who ranked up together (one id the other's prefix): both members
    # of the same cohort, each with what their trigger said
    program = SEEDS["rank-up-congratulations"]
    (a,) = treated(program, "ex", 1)
    (b,) = treated(program, a, 1)
    assert b.startswith(a)
    for cid in (a, b):
        store.save_customer(tokyo(cid, rank="Silver"), 0)
    starter = MemoryStarter()
    Evaluator([program], store, starter, MemoryPublisher(), CFG, FixedClock(DAY1)).evaluate(
        [rank_changed(a, DAY1), rank_changed(b, DAY1)]
    )
    cohort = store.read_entries([], [(a, program.id)])[1][(a, program.id)].cohort
    assert cohort and members_of(store, cohort, a) and members_of(store, cohort, b)
    # when a asks for their data (through the store the erasure uses)
    data = export(a, store, store)
    # then the export holds a's member row, read as erasure reads it, and none of b's
    assert data is not None
    [member] = data["cohort_members"]
    assert member["pk"] == f"COHORT#{cohort}" and member["customer"] == a
    assert member["trigger"]["to_rank"] == "Silver" and member["entered_at"]
    assert all(m["customer"] == a for m in data["cohort_members"])
    assert b not in json.dumps(data["cohort_members"], default=str)
    # and what erasure then removes from the cohort is what the export showed
    assert erase(a, store, store, DAY1 + timedelta(minutes=1)).journeys_stopped == 1
    assert members_of(store, cohort, a) == [] and members_of(store, cohort, b)
    assert export(b, store, store)["cohort_members"][0]["customer"] == b  # type: ignore[index]
