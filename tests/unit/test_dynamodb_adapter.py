"""The DynamoDB adapter without AWS: a fake boto3 resource that answers BatchGetItem a
key at a time (the rest come back as UnprocessedKeys) and records every write."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.adapters.dynamodb import DynamoStore
from kizuna.domain.privacy import ERASED_SK, erased_key
from kizuna.runtime.clock import FixedClock, get_clock, set_clock

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


class _ConditionFailed(Exception):
    pass


class FakeTable:
    def __init__(self, name: str) -> None:
        self.name = name
        self.puts: list[dict[str, Any]] = []
        exceptions = type("Exceptions", (), {"ConditionalCheckFailedException": _ConditionFailed})
        client = type("Client", (), {"exceptions": exceptions})
        self.meta = type("Meta", (), {"client": client})

    def put_item(self, Item: dict[str, Any], **_: Any) -> None:
        self.puts.append(Item)


class FakeDynamo:
    """One key answered per BatchGetItem call; the others come back unprocessed."""

    def __init__(self, items: dict[str, list[dict[str, Any]]]) -> None:
        self.items = items
        self.tables: dict[str, FakeTable] = {}
        self.requests: list[dict[str, Any]] = []

    def Table(self, name: str) -> FakeTable:
        return self.tables.setdefault(name, FakeTable(name))

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(RequestItems)
        responses: dict[str, list[dict[str, Any]]] = {}
        unprocessed: dict[str, Any] = {}
        for table, request in RequestItems.items():
            first, *rest = request["Keys"]
            responses[table] = [
                item
                for item in self.items.get(table, [])
                if all(item.get(k) == v for k, v in first.items())
            ]
            if rest:
                unprocessed[table] = {**request, "Keys": rest}
        return {"Responses": responses, "UnprocessedKeys": unprocessed}


def store(items: dict[str, list[dict[str, Any]]]) -> tuple[DynamoStore, FakeDynamo, list[float]]:
    dynamo, sleeps = FakeDynamo(items), []
    return DynamoStore(dynamo, "customers", "activity", sleep=sleeps.append), dynamo, sleeps


@pytest.fixture
def far_future_clock() -> Iterator[None]:
    """A global clock a year ahead: the adapter must not read it."""
    before = get_clock()
    set_clock(FixedClock(NOW + timedelta(days=365)))
    yield
    set_clock(before)


def test_customers_and_journeys_retry_unprocessed_keys_through_one_helper() -> None:
    # given a table that answers one key per call
    customers = [{"customer_id": f"c{i}"} for i in range(3)]
    journeys = [{"pk": "c1", "sk": "JOURNEY#p1", "customer_id": "c1", "program": "p1"}]
    s, dynamo, sleeps = store({"customers": customers, "activity": journeys})
    # when customers and journeys are read
    found = s.get_customers(["c0", "c1", "c2"])
    states = s.get_journeys([("c1", "p1"), ("c2", "p1")])
    # then every key is retried until processed, with the options kept, and backoff
    assert sorted(found) == ["c0", "c1", "c2"] and list(states) == [("c1", "p1")]
    assert all(
        request[table]["ConsistentRead"] is True for request in dynamo.requests for table in request
    )
    assert len(dynamo.requests) == 5 and sleeps == [0.1, 0.2, 0.1]


def test_erased_reads_markers_as_of_the_time_it_is_given(far_future_clock: None) -> None:
    # given a marker that expires a day after NOW (and a global clock a year later)
    marker = {"pk": erased_key("c1"), "sk": ERASED_SK, "expires_at": int(NOW.timestamp()) + 86400}
    s, dynamo, sleeps = store({"activity": [marker]})
    # when ingest asks, as of NOW, which of two ids were erased
    erased = s.erased(["c1", "c2"], NOW)
    # then c1 is (its marker is live at NOW, whatever the clock says), through the helper
    assert erased == {"c1"} and sleeps == [0.1]
    assert dynamo.requests[0]["activity"]["ProjectionExpression"] == "pk, expires_at"
    # and a day later it is not any more
    assert s.erased(["c1"], NOW + timedelta(days=2)) == set()


def test_the_adapter_builds_the_ledger_index_keys() -> None:
    # given a ledger entry as the send service hands it over (domain values only)
    s, dynamo, _ = store({})
    data = {"program": "p1", "step": "s1", "status": "sent", "at": "2026-01-05T03:00:00.000000Z"}
    # when it is claimed and then recorded
    assert s.claim_message("c1", "ex-1", "s1", data) is None
    s.record_message("c1", "ex-1", "s1", data)
    # then both items carry the keys of the table and of its program/time index
    for item in dynamo.tables["activity"].puts:
        assert (item["pk"], item["sk"], item["kind"]) == ("c1", "MSG#ex-1#s1", "MSG")
        assert item["gsi1pk"] == "PROGRAM#p1"
        assert item["gsi1sk"] == "2026-01-05T03:00:00.000000Z#c1"


def test_a_sending_claim_joins_the_ledger_index_only_when_recorded() -> None:
    from kizuna.delivery.ledger import SENDING_PK

    # given a claim of a message about to be sent
    s, dynamo, _ = store({})
    data = {"program": "p1", "step": "s1", "status": "sending", "at": "2026-01-05T03:00:00Z"}
    assert s.claim_message("c1", "ex-1", "s1", data) is None
    # when its outcome is recorded
    s.record_message("c1", "ex-1", "s1", {**data, "status": "sent"})
    claim, record = dynamo.tables["activity"].puts
    # then the claim is in the sparse sending index only, the record in gsi1 only
    assert SENDING_PK in claim and "gsi1pk" not in claim
    assert SENDING_PK not in record and record["gsi1pk"] == "PROGRAM#p1"


@pytest.mark.parametrize(
    ("kind", "decision", "indexed"),
    [
        ("ENTRY", "entered", True),
        ("ENTRY", "holdout", True),
        ("CONV", "converted", True),
        ("ENTRY", "skipped", False),
    ],
)
def test_program_decisions_that_count_join_the_ledger_index(
    kind: str, decision: str, indexed: bool
) -> None:
    from kizuna.adapters.dynamodb import activity_from_item, activity_to_item
    from kizuna.domain.activity import ActivityItem

    # given a program decision as evaluate records it
    at = datetime(2026, 1, 5, 3, tzinfo=UTC)
    data = {"program": "p1", "decision": decision}
    item = activity_to_item(
        ActivityItem(customer_id="c1", kind=kind, at=at, key="p1#e1", data=data)
    )
    # then entries, holdouts and conversions are on the program/time index, skips are not
    keys = {"gsi1pk": "PROGRAM#p1", "gsi1sk": "2026-01-05T03:00:00.000000Z#c1"}
    assert ({k: item.get(k) for k in keys} == keys) is indexed
    assert indexed or not {"gsi1pk", "gsi1sk"} & set(item)
    # and the index keys are not data when the item is read back
    assert activity_from_item(item).data == data


def test_the_adapter_loads_no_domain_logic_and_no_clock() -> None:
    # given a fresh interpreter (when the adapter is imported and its lookups run)
    script = (
        "import sys\n"
        "from datetime import datetime, UTC\n"
        "from kizuna.adapters.dynamodb import DynamoStore\n"
        "class Table:\n"
        "    name = 'activity'\n"
        "    def query(self, **kw): return {'Items': []}\n"
        "class Dynamo:\n"
        "    def Table(self, name): return Table()\n"
        "    def batch_get_item(self, RequestItems): return {'Responses': {}}\n"
        "s = DynamoStore(Dynamo(), 'customers', 'activity', sleep=lambda _: None)\n"
        "s.erased(['c1'], datetime(2026, 1, 5, tzinfo=UTC))\n"
        "s.customers_by_phone_hash('0' * 32)\n"
        "print(' '.join(m for m in sys.modules if m.startswith('kizuna.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    # then no loyalty, scoring, sweeps or clock came with it
    assert "kizuna.adapters.dynamodb" in loaded
    assert not loaded & {
        "kizuna.domain.loyalty",
        "kizuna.domain.ingest",
        "kizuna.programs.sweeps",
        "kizuna.runtime.clock",
        "kizuna.runtime.config",
    }


def test_the_phone_index_names_agree_with_the_sweeps() -> None:
    from kizuna.domain import customer
    from kizuna.programs import sweeps

    assert (customer.PHONE_INDEX, customer.PHONE_HASH_ATTRIBUTE) == (
        sweeps.PHONE_INDEX,
        sweeps.PHONE_HASH_ATTRIBUTE,
    )
