"""Cohort items on DynamoDB (moto): entries join in shared transactions (a conflicting one is
left out, the others written), groups are read by a filtered strongly consistent query,
members move, child headers are found by the step that made them, erasure leaves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.customer import Customer
from kizuna.programs.journeys import JourneyState
from kizuna.programs.members import GONE, ROOT, Child, Join, Member
from kizuna_tools.metering import ApiCallCounter
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
T0 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
COHORT = "rank-up-congratulations-20260105T0400Z"


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


def join(cid: str, previous: JourneyState | None = None) -> Join:
    entry = f"rank-up-congratulations-{cid}"
    state = JourneyState(
        customer_id=cid,
        program="rank-up-congratulations",
        entries=1,
        last_entry_at=T0,
        execution=entry,
        cohort=COHORT,
    )
    return Join(state, previous, COHORT, Member(cid, entry, T0, {"pick": "a"}), 2_000_000_000)


def test_joins_share_a_transaction_and_a_conflict_leaves_only_itself_out(
    store: DynamoStore,
) -> None:
    # c1 entered already (another evaluate): its second join conflicts on the journey item
    assert store.join_cohorts([join("c1")]) == set()
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    assert store.join_cohorts([join("c0"), join("c1"), join("c2")]) == {1}
    # one transaction refused, the rest written in a second one
    assert dict(calls.calls) == {("dynamodb", "TransactWriteItems"): 2}
    members = store.cohort_members(COHORT, ROOT)
    assert sorted(m.customer_id for m in members) == ["c0", "c1", "c2"]
    assert members[0].arms == {"pick": "a"} and members[0].entered_at == T0
    _, journeys = store.read_entries([], [("c0", "rank-up-congratulations")])
    assert journeys[("c0", "rank-up-congratulations")].cohort == COHORT


def test_a_batch_writes_its_joins_and_ledger_rows_in_one_transaction(store: DynamoStore) -> None:
    from kizuna.domain.activity import ActivityItem

    def row(cid: str, decision: str) -> ActivityItem:
        return ActivityItem(
            customer_id=cid, kind="ENTRY", at=T0, key=f"p#{cid}", data={"decision": decision}
        )

    assert store.join_cohorts([join("c1")]) == set()  # c1 entered already
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    rows = [(0, row("c0", "entered")), (1, row("c1", "entered")), (None, row("s9", "skipped"))]
    assert store.join_cohorts([join("c0"), join("c1")], rows) == {1}
    # the conflicting join and its row left out, the rest (the untied row too) in the retry
    assert dict(calls.calls) == {("dynamodb", "TransactWriteItems"): 2}
    assert [r["decision"] for r in store.activity("c0", "ENTRY#")] == ["entered"]
    assert store.activity("c1", "ENTRY#") == []
    assert [r["decision"] for r in store.activity("s9", "ENTRY#")] == ["skipped"]
    # a holdout joins no cohort: its journey state and its row ride in the same transaction
    calls.calls.clear()
    held = join("h1")
    held = Join(held.state.model_copy(update={"holdout": True}), None, None, None, 0)
    assert store.join_cohorts([join("c3"), held], [(1, row("h1", "holdout"))]) == set()
    assert dict(calls.calls) == {("dynamodb", "TransactWriteItems"): 1}
    _, journeys = store.read_entries([], [("h1", "rank-up-congratulations")])
    assert journeys[("h1", "rank-up-congratulations")].holdout is True
    assert [r["decision"] for r in store.activity("h1", "ENTRY#")] == ["holdout"]
    assert [m.customer_id for m in store.cohort_members(COHORT, ROOT)] == ["c0", "c1", "c3"]
    # more rows than a transaction holds: the rest after it, in a batch write
    calls.calls.clear()
    many = [(None, row(f"x{i}", "skipped")) for i in range(120)]
    assert store.join_cohorts([join("c2")], many) == set()
    assert dict(calls.calls) == {
        ("dynamodb", "TransactWriteItems"): 1,
        ("dynamodb", "BatchWriteItem"): 1,
    }
    assert all(store.activity(f"x{i}", "ENTRY#") for i in range(120))


def test_moves_children_and_erasure(store: DynamoStore) -> None:
    store.join_cohorts([join(f"c{i}") for i in range(4)])
    members = store.cohort_members(COHORT, ROOT)
    child = Child("abc123", ROOT, "check", "other", "else:x", T0 + timedelta(hours=1))
    store.put_children(COHORT, [child], 2_000_000_000)
    store.move_members(COHORT, members[:2], child.group, 2_000_000_000)
    store.move_members(COHORT, members[2:3], GONE, 2_000_000_000)
    assert [m.customer_id for m in store.cohort_members(COHORT, ROOT)] == ["c3"]
    assert [m.customer_id for m in store.cohort_members(COHORT, "abc123")] == ["c0", "c1"]
    assert store.cohort_children(COHORT, ROOT, "check") == [child]
    assert store.cohort_children(COHORT, ROOT, "other") == []
    assert store.leave_cohort(COHORT, "c0") == 1
    assert [m.customer_id for m in store.cohort_members(COHORT, "abc123")] == ["c1"]


def test_a_step_reads_its_group_and_its_earlier_children_in_one_query(
    store: DynamoStore,
) -> None:
    store.join_cohorts([join(f"c{i}") for i in range(3)])
    child = Child("abc123", ROOT, "check", "other", "else:x", T0)
    elsewhere = Child("def456", ROOT, "remind", "remind", "until:y", T0)
    store.put_children(COHORT, [child, elsewhere], 2_000_000_000)
    store.move_members(COHORT, store.cohort_members(COHORT, ROOT)[:1], child.group, 2_000_000_000)
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    members, children = store.read_group(COHORT, ROOT, "check")
    assert dict(calls.calls) == {("dynamodb", "Query"): 1}
    assert [m.customer_id for m in members] == ["c1", "c2"] and children == [child]


def test_a_step_settles_in_two_writes_and_a_fused_pair_reads_both_steps_children_at_once(
    store: DynamoStore,
) -> None:
    store.join_cohorts([join(f"c{i}") for i in range(4)])
    members = store.cohort_members(COHORT, ROOT)
    other = Child("abc123", ROOT, "check", "other", "else:x", T0)
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    # a branch: two decisions, a child header, members to the child and out of the journey
    store.settle_step(
        COHORT,
        "check",
        [(m.customer_id, m.entry, {"decision": "else"}) for m in members[:2]],
        [other],
        [(other.group, members[:1]), (GONE, members[1:2])],
        2_000_000_000,
    )
    # decisions and headers in one call, every move in the next
    assert dict(calls.calls) == {("dynamodb", "BatchWriteItem"): 2}
    assert [m.customer_id for m in store.cohort_members(COHORT, "abc123")] == ["c0"]
    assert [m.customer_id for m in store.cohort_members(COHORT, GONE)] == ["c1"]
    (row,) = store.activity("c0", "STEP#")
    assert row["sk"] == f"STEP#{members[0].entry}#check" and row["decision"] == "else"
    # a fused pair (send, then the check) reads its group and both steps' headers in one query
    remind = Child("def456", ROOT, "remind", "remind", "until:y", T0)
    store.put_children(COHORT, [remind], 2_000_000_000)
    calls.calls.clear()
    found, children = store.read_group(COHORT, ROOT, ["remind", "check"])
    assert dict(calls.calls) == {("dynamodb", "Query"): 1}
    assert [m.customer_id for m in found] == ["c2", "c3"]
    assert sorted(c.group for c in children) == ["abc123", "def456"]


def test_an_engagement_branch_reads_entries_and_journeys_in_one_batch(store: DynamoStore) -> None:
    # given: two members' coupon entries (one opened twice: the later open arrived first),
    # c1's journey state, and c2 with no entry
    store.join_cohorts([join("c0"), join("c1")])
    for cid in ("c0", "c1"):
        store.record_entries(
            "coupon",
            [(cid, f"rank-up-congratulations-{cid}", {"status": "sent", "sent_at": "x"})],
        )
    entry = "rank-up-congratulations-c0"
    assert store.stamp_message("c0", entry, "coupon", "open_at", "2026-01-05T09:00:00.000000Z")
    assert store.stamp_message("c0", entry, "coupon", "open_at", "2026-01-05T04:00:00.000000Z")
    # a later open never moves it; a stamp on no entry is refused
    assert not store.stamp_message("c0", entry, "coupon", "open_at", "2026-01-06T00:00:00.000000Z")
    assert not store.stamp_message("c2", "nope", "coupon", "open_at", "2026-01-05T04:00:00Z")
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    # when
    keys = [(f"c{i}", f"rank-up-congratulations-c{i}") for i in range(3)]
    store.record_steps("opened", [("c1", keys[1][1], {"decision": "else", "engagement": "x"})])
    calls.calls.clear()
    entries, journeys, decided = store.engagement_state(
        keys, "coupon", "rank-up-congratulations", decided_at="opened"
    )
    # then: one BatchGetItem, each entry by (customer, entry), the journeys by customer, and
    # the decision the branch step recorded already (a retried step's)
    assert dict(calls.calls) == {("dynamodb", "BatchGetItem"): 1}
    assert set(entries) == set(keys[:2])
    assert {k: v["decision"] for k, v in decided.items()} == {keys[1]: "else"}
    assert entries[keys[0]]["open_at"] == "2026-01-05T04:00:00.000000Z"
    assert set(journeys) == {"c0", "c1"} and journeys["c1"].execution == keys[1][1]
    # without a program (opened, clicked): no journey read
    assert store.engagement_state(keys, "coupon")[1] == {}


def test_a_condition_branch_reads_customers_and_its_recorded_decisions_in_one_batch(
    store: DynamoStore,
) -> None:
    # given two customers, one of whom the branch step decided for already
    for cid in ("c0", "c1"):
        store.save_customer(Customer(customer_id=cid), 0)
    keys = [("c0", "e0"), ("c1", "e1"), ("c9", "e9")]
    store.record_steps("gold", [("c1", "e1", {"decision": "then", "run": "r"})])
    calls = ApiCallCounter().attach(store._dynamodb.meta.client.meta.events)
    # when
    customers, decided = store.branch_state(keys, "gold")
    # then: one BatchGetItem over both tables
    assert dict(calls.calls) == {("dynamodb", "BatchGetItem"): 1}
    assert set(customers) == {"c0", "c1"}
    assert {k: v["decision"] for k, v in decided.items()} == {("c1", "e1"): "then"}
