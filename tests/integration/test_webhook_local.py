"""A webhook step on the local runtime (issue 18, part 3): a first purchase is posted to the
shop's CRM (``tests/fixtures/webhook_project``). The configured endpoint is answered
in-process by :class:`kizuna_tools.local.webhooks.WebhookReceiver`, which reads the key from
Secrets Manager, verifies the signature with the documented recipe and de-duplicates on the
idempotency key. The first request fails with 503: the send function retries it, and every
customer is accepted once, with one ``sent`` ledger row each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna_tools.demo import DEMO_CONFIG
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.local.testing import local_cloud_from_template
from tests.integration.conftest import START, project_environment, project_template
from tests.integration.shop_events import place_first_order, put

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webhook_project"
PROGRAM = "crm-sync"
CUSTOMERS = ["wh0", "wh1", "wh2"]
SECRET_NAME = "kizuna/webhooks/crm"
KEY = "local-webhook-key-0123456789"
CONFIG = {
    **DEMO_CONFIG,
    "contact": {"default_locale": "en"},  # the fixture's template is in English
    "webhooks": {
        "crm": {"url": "https://crm.shop.example/kizuna/hook", "secret": SECRET_NAME},
    },
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """The Kizuna stack with the fixture's program and a `crm` webhook, started once."""
    template = project_template(FIXTURE, CONFIG)
    with local_cloud_from_template(
        template, start=START, environment_overrides=project_environment(FIXTURE)
    ) as c:
        c.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=KEY)
        yield c


def first_order(cloud: LocalCloud, cid: str) -> None:
    put(cloud, "customer.upserted", {"customer_id": cid, "first_name": "Hana", "locale": "en"})
    cloud.drain()
    place_first_order(cloud, cid)


def test_a_webhook_step_is_retried_after_a_503_and_accepted_once_per_customer(
    cloud: LocalCloud,
) -> None:
    # given: the CRM answers its next request with 503
    cloud.webhooks.fail_next("crm", status=503)
    # when: three customers (no email, no consent to anything) place their first order
    for cid in CUSTOMERS:
        first_order(cloud, cid)
    cloud.advance(hours=1)
    # then: four signed attempts, the first refused with 503, every one verified
    attempts = cloud.webhooks.attempts
    assert [a["status"] for a in attempts] == [503, 200, 200, 200]
    assert all(a["verified"] for a in attempts)
    assert attempts[0]["headers"]["Idempotency-Key"] == attempts[1]["headers"]["Idempotency-Key"]
    # and the receiver accepted one request per customer, with the rendered body
    accepted = cloud.outbox("webhook")
    assert sorted(a["body"]["customer_id"] for a in accepted) == CUSTOMERS
    assert {(a["program"], a["step"]) for a in accepted} == {(PROGRAM, "notify_crm")}
    assert all(a["body"]["name"] == "Hana" and a["body"]["source"] == "kizuna" for a in accepted)
    # and the ledger holds one `sent` row per customer, the retried one with its attempts
    table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
    rows = [i for i in cloud.scan(table) if i.get("kind") == "MSG" and i.get("program") == PROGRAM]
    assert sorted(str(r["pk"]) for r in rows) == CUSTOMERS
    assert {(r["status"], r["channel"]) for r in rows} == {("sent", "webhook")}
    keys = {a["idempotency_key"] for a in accepted}
    assert {str(r["provider_message_id"]) for r in rows} == keys
    assert not any(cloud.dlq_messages().values())
