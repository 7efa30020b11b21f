"""Frequency caps under concurrent sends (moto, the real adapter): two senders that read a
customer's CONTACT item before either claims. Each claim notes its send on condition that
the item is still as read (its version ``v``); the loser is decided again on a fresh read.
Also: a duplicate is still a duplicate, a retried claim of its own owner still succeeds,
and a send whose CONTACT item keeps changing is deferred with its reason, never dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.common import create_kizuna_tables
from kizuna.adapters.dynamodb import DynamoStore
from kizuna.campaigns.loader import parse_campaign
from kizuna.domain.timestamps import iso
from kizuna.ports import Claim, Claimed
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.campaign import CampaignService
from kizuna.services.contracts import CampaignRequest, SendRequest
from kizuna.services.send import SendService
from kizuna_tools.fakes import MemoryCampaignEvents, MemoryCampaigns, MemoryManifest
from tests.factories import Email, campaign_definition, customer, journey_send, send_service
from tests.moto_setup import fake_aws_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
ONE_A_DAY = KizunaConfig().model_copy(
    update={"contact": KizunaConfig().contact.model_copy(update={"max_per_day": 1})}
)
NO_CAP = KizunaConfig().model_copy(
    update={
        "contact": KizunaConfig().contact.model_copy(
            update={"max_per_day": 100, "max_per_week": 100}
        )
    }
)
TEMPLATES = {
    "news/ja/email.subject.j2": "セールのお知らせ",
    "news/ja/email.html.j2": "<p>セール</p>",
    "news/ja/email.txt.j2": "セール",
}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        s = DynamoStore(
            boto3.resource("dynamodb", region_name=REGION),
            "customers",
            "activity",
            sleep=lambda _: None,
        )
        s.save_customer(customer(first_name="Hanako", email="hanako@example.jp"), 0)
        yield s


def another_function(store: DynamoStore, meanwhile: Callable[[], object]) -> DynamoStore:
    """A second DynamoStore on the same tables (another Lambda function's) whose first read
    of send state returns what it read, after ``meanwhile`` ran: another sender that reads
    and claims between this one's read and its claim."""
    other = DynamoStore(store._dynamodb, "customers", "activity", sleep=lambda _: None)
    read, pending = other.read_send_state, [meanwhile]

    def read_then_let_the_other_run(ids: Any, program: str | None) -> Any:
        state = read(ids, program)
        while pending:
            pending.pop()()
        return state

    other.read_send_state = read_then_let_the_other_run  # type: ignore[method-assign]
    return other


def journeys(store: DynamoStore, email: Email, cfg: KizunaConfig = ONE_A_DAY) -> SendService:
    svc = send_service(store, {"email": email}, FixedClock(NOON))
    svc.cfg = cfg
    return svc


def champions(customer_id: str, execution: str) -> SendRequest:
    """The thank-you step of another program (champions-care, email)."""
    return SendRequest(
        program="champions-care",
        step="thanks",
        customer_id=customer_id,
        execution=execution,
        entered_at=NOON - timedelta(days=1),
    )


def entry(store: DynamoStore, execution: str, step: str) -> dict[str, Any]:
    return store.ledger_entries(["c1"], execution, step).get("c1", {})


def sent_keys(store: DynamoStore) -> list[str]:
    contact = store.read_send_state(["c1"], None)[1].get("c1")
    return sorted(contact.sent) if contact else []


def test_two_journeys_that_read_before_either_claims_send_one_message(
    store: DynamoStore,
) -> None:
    # given: a cap of one message a day, c1 sent nothing yet; the champions-care send
    # reads and claims while the second-purchase send is between its read and its claim
    email = Email()
    other = journeys(store, email)
    answers: list[Any] = []
    first = journeys(
        another_function(store, lambda: answers.append(other.send(champions("c1", "ex-2")))),
        email,
    )
    # when: both send to c1
    answer = first.send(journey_send("c1", "ex-1"))
    # then: one message goes out; the other is decided again on what was sent: capped
    assert answers[0].status == "sent" and len(email.sent) == 1
    assert (answer.status, answer.reason) == ("suppressed", "frequency_cap_day")
    capped = entry(store, "ex-1", "coupon")
    assert (capped["status"], capped["reason"]) == ("suppressed", "frequency_cap_day")
    assert capped["cap"] == {"limit": 1, "days": 1, "count": 1, "priority": 70}
    assert sent_keys(store) == ["ex-2#thanks"]


def test_a_campaign_batch_and_a_journey_at_the_same_moment_send_one_message(
    store: DynamoStore,
) -> None:
    # given: a cap of one message a day; a journey send reads and claims while the
    # campaign's batch is between its read of c1's CONTACT item and its claim
    email = Email()
    journey: list[Any] = []
    send = journeys(store, email)
    recipients = another_function(
        store, lambda: journey.append(send.send(journey_send("c1", "ex-1")))
    )
    campaigns = MemoryCampaigns()
    campaigns.put(parse_campaign(campaign_definition()), TEMPLATES)
    service = CampaignService(
        campaigns,
        recipients,
        MemoryManifest(),
        {"email": email},
        MemoryCampaignEvents(),
        ONE_A_DAY,
        FixedClock(NOON),
        templates_root=ROOT / "templates",
        scan_segments=1,
        sleep=lambda _: None,
    )

    def call(**request: Any) -> dict[str, Any]:
        return service.handle(CampaignRequest.model_validate(request))

    prepared = call(action="prepare", campaign_id="sale", scheduled_time=NOON)
    occurrence = {"campaign_id": "sale", "occurrence": prepared["occurrence"]}
    call(action="freeze", segment=0, total_segments=1, **occurrence)
    (chunk,) = call(action="plan", **occurrence)["chunks"]
    # when: the batch sends
    counts = call(action="send_batch", chunk=chunk, **occurrence)
    # then: the journey's message went out; the campaign's was decided again and capped
    assert journey[0].status == "sent" and len(email.sent) == 1
    assert (counts.get("sent", 0), counts["suppressed"]) == (0, 1)
    execution = f"campaign:sale:{prepared['occurrence']}"
    capped = entry(store, execution, "send")
    assert (capped["status"], capped["reason"]) == ("suppressed", "frequency_cap_day")
    assert sent_keys(store) == ["ex-1#coupon"]


def claim(sent_at: datetime, version: int, owner: str) -> Claim:
    data = {"program": "p", "status": "sending", "at": iso(sent_at)}
    return Claim(
        "c1",
        data,
        sent_at=iso(sent_at),
        contact_exists=version > 0,
        contact_version=version,
        contact_key="ex-1#s",
        owner=owner,
    )


def test_a_duplicate_is_a_duplicate_and_a_retried_claim_of_its_owner_succeeds(
    store: DynamoStore,
) -> None:
    # given: run-a claimed c1's message (no CONTACT item before: version 1 after)
    assert store.claim_messages("ex-1", "s", [claim(NOON, 0, "run-a")]) == Claimed()
    # when: another owner claims it on the same (now stale) read
    other = store.claim_messages("ex-1", "s", [claim(NOON, 0, "run-b")])
    # then: a duplicate (the entry is someone else's), not a conflict
    assert (other.duplicates, other.conflicts) == ({("c1", "ex-1")}, set())
    # when: run-a's write is retried (it took effect, the answer was lost)
    again = store.claim_messages("ex-1", "s", [claim(NOON, 0, "run-a")])
    # then: its own claim, its own note in CONTACT: accepted, noted once
    assert (again.duplicates, again.conflicts) == (set(), set())
    assert sent_keys(store) == ["ex-1#s"]
    assert entry(store, "ex-1", "s")["status"] == "sending"


def test_a_send_whose_contact_item_keeps_changing_is_deferred_with_its_reason(
    store: DynamoStore,
) -> None:
    # given: no cap in reach, and before each claim of c1's send another send is noted
    email = Email()
    svc = journeys(store, email, NO_CAP)
    store._activity.put_item(Item={"pk": "c1", "sk": "CONTACT", "kind": "CONTACT", "sent": {}})
    noted = 0
    claim_messages = store.claim_messages

    def someone_else_first(execution: str, step: str, claims: Any) -> Any:
        nonlocal noted
        noted += 1
        store._activity.update_item(
            Key={"pk": "c1", "sk": "CONTACT"},
            UpdateExpression="SET #sent.#k = :at ADD #v :one",
            ExpressionAttributeNames={"#sent": "sent", "#k": f"other-{noted}", "#v": "v"},
            ExpressionAttributeValues={":at": iso(NOON), ":one": 1},
        )
        return claim_messages(execution, step, claims)

    store.claim_messages = someone_else_first  # type: ignore[method-assign]
    # when: the step sends
    answer = svc.send(journey_send("c1", "ex-1"))
    # then: three decisions on fresh reads, then a deferral a minute on, with its reason
    # (its claim notes no send: nothing to conflict)
    assert (answer.status, answer.reason) == ("deferred", "contact_contended") and noted == 4
    assert answer.until == iso(NOON + timedelta(minutes=1))
    deferred = entry(store, "ex-1", "coupon")
    assert (deferred["status"], deferred["reason"]) == ("deferred", "contact_contended")
    assert email.sent == [] and "ex-1#coupon" not in sent_keys(store)


@pytest.mark.parametrize("broken", ["2026-01-05T03:00:00Z", ["ex-0#s"], 7])
def test_a_contact_item_without_a_map_of_sends_is_reset_not_deferred_for_ever(
    store: DynamoStore, broken: Any
) -> None:
    """A CONTACT item whose ``sent`` is not a map (no version of Kizuna writes one): the note ``SET sent.<key>`` can never be written to it, so every send to the
    customer conflicted, three times, and was deferred, a minute later the same, for ever.
    The read resets it to an empty map (its version raised): the message goes out once."""
    store._activity.put_item(
        Item={"pk": "c1", "sk": "CONTACT", "kind": "CONTACT", "v": 3, "sent": broken}
    )
    email = Email()
    answer = journeys(store, email, NO_CAP).send(journey_send("c1", "ex-1"))
    assert answer.status == "sent" and len(email.sent) == 1
    assert sent_keys(store) == ["ex-1#coupon"]
    stored = store._activity.get_item(Key={"pk": "c1", "sk": "CONTACT"})["Item"]
    assert stored["sent"] == {"ex-1#coupon": iso(NOON)} and int(stored["v"]) == 5
