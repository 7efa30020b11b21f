"""The daily scoring job and a crashed cohort send step's ``failed`` records, on moto, under
the faults an app sees after the SDK's own retries (issue #20): throttling and a 5xx before
a call, a 5xx or a lost answer (read timeout) after it took effect.

Faults are injected on botocore's ``before-call``/``after-call`` hooks of the real adapters'
clients, the n-th call of an operation at a time, so each test names the calls it breaks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from kizuna.adapters.dynamodb import WRITE_ATTEMPTS, DynamoStore, _member_item
from kizuna.adapters.eventbridge import EventBridgePublisher
from kizuna.adapters.s3 import S3Objects
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.events import Cause, SegmentChanged, derived_event
from kizuna.ports import VersionConflict
from kizuna.programs.cohorts import cohort_id, run_name
from kizuna.programs.loader import load_program
from kizuna.programs.members import COHORT_PK, ROOT, Member
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.job import (
    BoundariesRequest,
    ScoreRequest,
    compute_boundaries,
    score_segment,
)
from kizuna.services.cohort import CohortService
from kizuna.services.contracts import GroupRequest
from kizuna_tools.fakes import MemoryPublisher, MemoryStarter
from tests.factories import T0, days, order, parsed
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
CFG = KizunaConfig()
SEGMENTS = 2


class Faults:
    """Faults for given calls of an operation: ``plan("Scan", {1: "throttle"})`` breaks the
    first Scan. Kinds: ``throttle`` and ``error`` refuse the call; ``after`` (a 500) and
    ``timeout`` (``ReadTimeoutError``) come after it took effect."""

    def __init__(self, client: Any, service: str) -> None:
        self.plans: dict[str, dict[int, str]] = {}
        self.calls: dict[str, int] = {}
        self.injected: list[tuple[str, int, str]] = []
        client.meta.events.register(f"before-call.{service}", self._before)
        client.meta.events.register(f"after-call.{service}", self._after)

    def plan(self, operation: str, faults: dict[int, str]) -> Faults:
        self.plans[operation] = faults
        return self

    def _kind(self, operation: str, when: set[str]) -> str | None:
        kind = self.plans.get(operation, {}).get(self.calls.get(operation, 0))
        return kind if kind in when else None

    def _before(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1
        kind = self._kind(model.name, {"throttle", "error"})
        if kind == "throttle":
            self._raise(model.name, kind, "ProvisionedThroughputExceededException", 400)
        if kind == "error":
            self._raise(model.name, kind, "InternalServerError", 500)

    def _after(self, model: Any, **_: Any) -> None:
        kind = self._kind(model.name, {"after", "timeout"})
        if kind == "after":
            self._raise(model.name, kind, "InternalServerError", 500)
        if kind == "timeout":
            self.injected.append((model.name, self.calls[model.name], kind))
            raise ReadTimeoutError(endpoint_url="https://injected")

    def _raise(self, operation: str, kind: str, code: str, status: int) -> None:
        self.injected.append((operation, self.calls[operation], kind))
        raise ClientError(
            {
                "Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            operation,
        )


def _customer(cid: str, *raws: dict[str, Any]) -> Customer:
    c = Customer(customer_id=cid)
    for raw in raws:
        c = apply_events(c, [parsed(raw)], CFG, T0).customer
    return c


PEOPLE = {
    "champ": [order("champ", f"c{i}", 30000, T0 - days(5 * i)) for i in range(6)],
    "lost": [order("lost", "l1", 1000, T0 - days(330))],
    "new": [order("new", "n1", 2000, T0 - days(1))],
    "gold": [order("gold", "g1", 250000, T0 - days(300))],
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_env(monkeypatch, REGION)
    monkeypatch.setattr("time.sleep", lambda _: None)  # the retries' backoff
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "customers", "customer_id")
        create_table(ddb, "activity", "pk", "sk")
        yield


@pytest.fixture
def store(aws: None) -> DynamoStore:
    s = DynamoStore(
        boto3.resource("dynamodb", region_name=REGION),
        "customers",
        "activity",
        sleep=lambda _: None,
    )
    for cid, raws in PEOPLE.items():
        s.save_customer(_customer(cid, *raws), 0)
    return s


def faults(store: DynamoStore) -> Faults:
    return Faults(store._dynamodb.meta.client, "dynamodb")


def score_run(store: DynamoStore, publisher: MemoryPublisher, now: Any) -> list[dict[str, Any]]:
    """One run as the state machine makes it: boundaries, then every segment."""
    first = compute_boundaries(
        BoundariesRequest(total_segments=SEGMENTS), store, CFG, FixedClock(now)
    )
    return [
        score_segment(
            ScoreRequest(
                segment=s, total_segments=SEGMENTS, boundaries=first.boundaries, as_of=first.as_of
            ),
            store,
            publisher,
            CFG,
        ).model_dump()
        for s in first.segments
    ]


def stored(store: DynamoStore) -> dict[str, Customer]:
    return {c.customer_id: c for c in store.scan_customers()}


# --- scoring -------------------------------------------------------------------------------
def test_a_customer_save_that_took_effect_before_a_5xx_is_a_version_conflict(
    store: DynamoStore,
) -> None:
    # Given a scored customer whose PutItem takes effect, then answers 500
    before = stored(store)["champ"]
    faults(store).plan("PutItem", {1: "after"})
    new = before.model_copy(update={"rfm_segment": "Champions"})
    # When it is saved, the retry in place finds its own write: a version conflict (which
    # its callers resolve by re-reading), never an error that fails the task
    with pytest.raises(VersionConflict):
        store.save_customer(new, before.version)
    # Then the write happened once, at the next version
    after = stored(store)["champ"]
    assert (after.version, after.rfm_segment) == (before.version + 1, "Champions")


@pytest.mark.parametrize("kind", ["throttle", "error", "after", "timeout"])
def test_a_scoring_run_survives_a_transient_fault_on_each_of_its_calls(
    store: DynamoStore, kind: str
) -> None:
    # Given the reference: the same customers scored without faults (in a table of their own)
    create_table(boto3.client("dynamodb", region_name=REGION), "customers-ref", "customer_id")
    reference = DynamoStore(
        boto3.resource("dynamodb", region_name=REGION), "customers-ref", "activity"
    )
    for c in stored(store).values():
        reference.save_customer(c.model_copy(update={"version": 0}), 0)
    expected_publisher = MemoryPublisher()
    score_run(reference, expected_publisher, T0)
    # When the run's first Scan (sampling), a later Scan (a segment's read), the first
    # save and a re-read each fail once with `kind`
    f = faults(store).plan("Scan", {1: kind, SEGMENTS + 1: kind}).plan("PutItem", {1: kind})
    f.plan("GetItem", {1: kind}).plan("BatchGetItem", {1: kind})
    publisher = MemoryPublisher()
    results = score_run(store, publisher, T0)
    # Then every customer ends as in the fault-free run, each event is published with the
    # reference's ids (copies share their id: consumers drop them)
    assert len(f.injected) >= 3
    got = {cid: (c.rfm_segment, c.rank) for cid, c in stored(store).items()}
    want = {cid: (c.rfm_segment, c.rank) for cid, c in stored(reference).items()}
    assert got == want
    assert {e.detail.event_id for e in publisher.events} == {
        e.detail.event_id for e in expected_publisher.events
    }
    assert sum(r["scanned"] for r in results) == len(PEOPLE)


def test_a_run_that_fails_is_caught_up_by_the_next_one(store: DynamoStore) -> None:
    # Given a run whose saves all fail, beyond the retries in place (DynamoDB down)
    down = faults(store).plan("PutItem", dict.fromkeys(range(1, 4 * WRITE_ATTEMPTS), "error"))
    with pytest.raises(ClientError):
        score_run(store, MemoryPublisher(), T0)
    down.plans.clear()
    assert {c.rfm_segment for c in stored(store).values()} == {None}
    # When the next day's run goes without faults
    publisher = MemoryPublisher()
    score_run(store, publisher, T0 + days(1))
    # Then it computes the changes against what is stored: every customer is scored and
    # gets its segment_changed (the failed run's work is not lost)
    scored = {cid: c.rfm_segment for cid, c in stored(store).items()}
    assert None not in scored.values()
    changed = {
        e.detail.customer_id
        for e in publisher.events
        if e.detail_type == "customer.segment_changed"
    }
    assert changed == set(PEOPLE)


def test_the_runs_work_files_and_events_survive_transient_faults(aws: None) -> None:
    # Given the analytics bucket and the bus, each call of which fails once
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="analytics", CreateBucketConfiguration={"LocationConstraint": REGION})
    events = boto3.client("events", region_name=REGION)
    Faults(s3, "s3").plan("PutObject", {1: "after"}).plan("GetObject", {1: "timeout", 2: "error"})
    Faults(events, "events").plan("PutEvents", {1: "timeout"})
    objects = S3Objects(s3, "analytics")
    # When a work file is written and read back, and events are put
    objects.put("work/part-0000.json", b"{}")
    body = objects.get("work/part-0000.json")
    missing = objects.get("work/part-0001.json")
    event = derived_event(
        SegmentChanged,
        "segment:Champions:2026-01-05",
        Cause("champ", T0, "scoring:2026-01-05"),
        from_segment=None,
        to_segment="Champions",
        recency=5,
        frequency=5,
        monetary=5,
    )
    failed = EventBridgePublisher(events, "default").publish([event])
    # Then each was retried in place; a missing file is still missing (not an error)
    assert (body, missing, failed) == (b"{}", None, [])


# --- a crashed cohort send step: every member gets `failed` ---------------------------------
PROGRAM = """
id: crashy
name: Crashy
trigger: {event: order.placed}
steps:
  - {id: hello, type: send, channels: [email], template: hello}
  - {id: done, type: exit}
"""


@pytest.mark.parametrize("kind", ["throttle", "after", "timeout"])
def test_a_crashed_send_steps_members_all_get_failed_under_faults(
    store: DynamoStore, tmp_path: Path, kind: str
) -> None:
    # Given a cohort of three members whose send step crashed after every retry
    (tmp_path / "crashy.yaml").write_text(PROGRAM)
    program = load_program(tmp_path / "crashy.yaml")
    night = T0.replace(hour=12, minute=0, second=0, microsecond=0)
    cohort = cohort_id(program.id, night)
    for cid in ("a1", "a2", "a3"):
        member = Member(cid, f"crashy-{cid}", night - timedelta(hours=1), {})
        store._activity.put_item(
            Item=_member_item(f"{COHORT_PK}{cohort}", member, int(night.timestamp()) + 86400)
        )
    service = CohortService([program], store, MemoryStarter(), CFG, FixedClock(night))
    # When recording `failed` meets a fault on the members' query and on the claims' write
    faults(store).plan("Query", {1: kind}).plan("TransactWriteItems", {1: kind})
    service.handle(
        GroupRequest(
            action="failed",
            program=program.id,
            cohort=cohort,
            group=ROOT,
            run=run_name(cohort, ROOT),
            step="hello",
        )
    )
    # Then every member has its `failed: step_failed` entry: none is silently dropped
    found = store.ledger_entries_of([(cid, f"crashy-{cid}") for cid in ("a1", "a2", "a3")], "hello")
    rows = {cid: (e.get("status"), e.get("reason")) for (cid, _), e in found.items()}
    assert rows == dict.fromkeys(("a1", "a2", "a3"), ("failed", "step_failed"))
