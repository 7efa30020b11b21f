"""Every public entry point, fed input that carries a marker address where a customer or a
producer could put one (a form's key and value, an SES tag and source, a LINE user id and
nonce, a link's token and its target's query, an event's fields and detail-type), never writes the marker
to a log line: refusals say why in Kizuna's words (docs/ARCHITECTURE.md, "Privacy")."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws
from pydantic import TypeAdapter

from bench.common import create_kizuna_tables
from kizuna.runtime.observability import private_errors
from tests.factories import T0, order
from tests.integration.api.harness import REGION, build_api, http_event
from tests.integration.api.harness import Context as HttpContext
from tests.integration.lambda_runtime import ROOT, LambdaContext, load_handler
from tests.log_capture import KizunaLogs, kizuna_logs  # noqa: F401 - the fixture
from tests.moto_setup import fake_aws_env
from tests.sqs_events import sqs_event, sqs_record
from tests.unit.delivery import test_tracked_links as links
from tests.unit.services import test_line_webhook as line
from tests.unit.test_evaluate_letters import service as evaluate
from tests.unit.test_feedback_unsubscribe import BOUNCE, feedback, ses_event
from tests.unit.test_ingest_service import service as ingest
from tests.unit.test_preference_page import call, page_form, token

pytestmark = pytest.mark.integration

MARKER = "leak-7f3a@example.com"


def preference_page(_: pytest.MonkeyPatch) -> None:
    for extra in ({MARKER: "opted_out"}, {"promotions.email": MARKER}, {"pause": MARKER}):
        call("POST", token(), page_form() | extra)
    call("POST", token(), f"t={quote(token())}&{quote(MARKER)}=1&{quote(MARKER)}=2")
    call("GET", MARKER)


def ses_feedback(_: pytest.MonkeyPatch) -> None:
    tagged = ses_event("Email Bounced", "Bounce", BOUNCE)
    tagged["detail"]["mail"]["tags"][MARKER] = "not a list"
    sourced = {**ses_event("Email Bounced", "Bounce", BOUNCE), "source": MARKER}
    clicked = ses_event("Email Clicked", "Click", {"click": {"link": f"https://x/?e={MARKER}"}})
    records = [sqs_record(e, f"m{i}") for i, e in enumerate((tagged, sourced, clicked))]
    feedback()[0].process_batch(sqs_event(*records, sqs_record(MARKER, "m9")))


def line_webhook(_: pytest.MonkeyPatch) -> None:
    service = line.world()[0]
    events = [
        line.webhook_event("follow", user=MARKER),
        line.webhook_event("accountLink", event_id="E2", link={"result": "ok", "nonce": MARKER}),
        {**line.webhook_event("message", event_id="E3"), "message": {"text": MARKER}},
    ]
    service.handle(line.request(events))
    service.handle(line.request(events, signature=MARKER))


def link_redirect(_: pytest.MonkeyPatch) -> None:
    store = links.MemoryStore()
    genuine = links.links().url(
        links.CID, links.EXECUTION, links.STEP, f"{links.TARGET}&e={MARKER}"
    )
    for path in ("/l/" + links.token_of(genuine), "/l/" + quote(MARKER), "/l/" + MARKER):
        links.service(store).handle(links.request(path))


def ingest_queue(_: pytest.MonkeyPatch) -> None:
    bad = order("c1", "o1", 1000, T0)
    bad["detail"] |= {"total": MARKER, MARKER: MARKER, "channel": MARKER}
    upsert = {**order("c2", "o2", 1000, T0), "detail-type": "customer.upserted"}
    upsert["detail"] = {"customer_id": "c2", "occurred_at": T0.isoformat(), "email": MARKER[:-4]}
    unknown = {**order("c3", "o3", 1000, T0), "detail-type": MARKER}
    records = [sqs_record(bad, "m1"), sqs_record(upsert, "m2"), sqs_record(MARKER, "m3")]
    ingest()[0].process_batch(sqs_event(*records, sqs_record(unknown, "m4")))


def evaluate_queue(_: pytest.MonkeyPatch) -> None:
    bad = order("c1", "o1", 1000, T0)
    bad["detail"] |= {"total": MARKER, MARKER: MARKER}
    unknown = {**order("c2", "o2", 1000, T0), "detail-type": MARKER}
    sourced = {**order("c3", "o3", 1000, T0), "detail-type": MARKER, "source": MARKER}
    kizuna = {**order("c4", "o4", 1000, T0), "detail-type": MARKER, "source": "kizuna"}
    records = [
        sqs_record(body, f"m{n}") for n, body in enumerate((bad, unknown, sourced, kizuna, MARKER))
    ]
    evaluate()[0].process_batch(sqs_event(*records))


def events_api(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        api = build_api()
        now = datetime.now(UTC).isoformat()
        batch: list[dict[str, Any]] = [
            {"detail-type": MARKER, "detail": {MARKER: MARKER}},
            {
                "detail-type": "customer.upserted",
                "detail": {"customer_id": MARKER, "occurred_at": now, "phone": MARKER},
            },
            {"detail-type": "order.placed", "detail": {"customer_id": "c1", "total": MARKER}},
        ]
        api.call("POST", "/machine/events", as_="machine", body={"events": batch})
        api.call("POST", "/machine/events", as_="machine", body=MARKER)


def api_route_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        api = build_api()

        def unreadable(customer_id: str) -> None:  # a stored value a model refuses, quoted
            TypeAdapter(int).validate_python(MARKER)

        monkeypatch.setattr(api.deps.store, "get_customer", unreadable)
        event = http_event("GET", "/api/customers/c1", token=api.pool.token("vera"))
        with pytest.raises(Exception) as raised:  # as the function's handler wraps the app
            private_errors(api.app.resolve)(event, HttpContext())
        assert MARKER not in str(raised.value)


# each entry point, and whether it logs a refusal (the events API answers the caller instead)
ENTRY_POINTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], bool]] = {
    "preference_page": (preference_page, True),
    "ses_feedback": (ses_feedback, True),
    "line_webhook": (line_webhook, True),
    "link_redirect": (link_redirect, True),
    "ingest_queue": (ingest_queue, True),
    "evaluate_queue": (evaluate_queue, True),
    "events_api": (events_api, False),
    "api_route_failure": (api_route_failure, True),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_marker_address_in_the_input_never_reaches_the_logs(
    entry: str,
    kizuna_logs: KizunaLogs,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)  # any library's records too (botocore's DEBUG echoes requests)
    handle, logs_refusals = ENTRY_POINTS[entry]
    # given input carrying the marker; when the entry point handles it
    handle(monkeypatch)
    # then the refusals were logged (the scan sees the lines), and never the marker
    captured = capfd.readouterr()
    assert bool(kizuna_logs.lines) == logs_refusals
    assert MARKER not in kizuna_logs.text
    assert MARKER not in captured.out + captured.err
    assert MARKER not in caplog.text


FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_keeps_an_uncaught_exceptions_text_out_of_aws(function: str) -> None:
    # Lambda logs an uncaught exception's message and traceback, Step Functions keeps them
    # in the execution's history (90 days, not erasable per customer)
    assert getattr(load_handler(function).handler, "private_errors", False), function


def test_a_step_input_that_fails_validation_leaves_no_input_in_the_error(
    kizuna_logs: KizunaLogs,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
) -> None:
    # given a journey step invoked with an input carrying the marker (pydantic quotes it)
    module = load_handler("journey")
    # when the handler refuses it
    with pytest.raises(Exception) as raised:
        module.handler({"program": MARKER, "cohort": [MARKER]}, LambdaContext("journey"))
    # then Lambda and Step Functions get the error's type and no input
    assert type(raised.value).__name__ == "ValidationError"
    text = "".join(traceback.format_exception(raised.value))
    assert MARKER not in text and "the message is in no log" in text
    # and the log line says where, never what
    (line,) = kizuna_logs.records("handler failed")
    assert line["error"] == "ValidationError" and line["where"]
    assert MARKER not in kizuna_logs.text + "".join(capfd.readouterr())


def test_kizunas_own_exceptions_and_aws_errors_keep_what_retries_and_operators_read() -> None:
    from botocore.exceptions import ClientError

    from kizuna.campaigns.engine import CampaignPaused
    from kizuna.runtime.observability import private_errors

    paused = CampaignPaused("month-end-sale is paused")

    @private_errors
    def pausing(event: Any, context: Any) -> None:
        raise paused

    @private_errors
    def throttled(event: Any, context: Any) -> None:
        error = {"Error": {"Code": "ThrottlingException", "Message": MARKER}}
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    # Kizuna's own words go on as they are (the campaign machine retries CampaignPaused)
    with pytest.raises(CampaignPaused) as kept:
        pausing({}, None)
    assert kept.value is paused
    # AWS's error keeps its class name, code and operation, not its message
    with pytest.raises(Exception) as aws:
        throttled({}, None)
    assert type(aws.value).__name__ == "ClientError"
    assert "ThrottlingException in PutItem" in str(aws.value) and MARKER not in str(aws.value)


def test_the_api_never_runs_in_powertools_debug_mode(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # given POWERTOOLS_DEV set on the API function (Powertools' debug mode prints each event,
    # and answers an uncaught exception with its traceback)
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_kizuna_tables(boto3.client("dynamodb", region_name=REGION))
        api = build_api()

        def unreadable(customer_id: str) -> None:
            TypeAdapter(int).validate_python(MARKER)

        monkeypatch.setattr(api.deps.store, "get_customer", unreadable)
        token = api.pool.token("vera")
        event = http_event("GET", "/api/customers/c1", token=token, headers={"x-note": MARKER})
        # when a route fails, then the failure leaves the app (no 500 quoting it)
        with pytest.raises(Exception) as raised:
            api.app.resolve(event, HttpContext())
        assert type(raised.value).__name__ == "ValidationError"
    # and neither the event nor its token was printed
    out = "".join(capfd.readouterr())
    assert MARKER not in out and token not in out
