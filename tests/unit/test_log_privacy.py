"""No personal data in the logs of a refused input: what a customer posted (a preference
form's keys and values) or what an event carried is never quoted in a log line; the line
says why with a fixed code and, where it is Kizuna's own, the field's name."""

from __future__ import annotations

from typing import Any

from tests.log_capture import KizunaLogs, kizuna_logs  # noqa: F401 - the fixture
from tests.sqs_events import sqs_event, sqs_record
from tests.unit.test_feedback_unsubscribe import BOUNCE, feedback, ses_event
from tests.unit.test_preference_page import call, page_form, token

MARKER = "leak-7f3a@example.com"


def test_a_refused_preference_form_logs_the_code_never_the_posted_text(
    kizuna_logs: KizunaLogs,  # noqa: F811
) -> None:
    # given saved forms with a made-up key, a bad value of a real choice, a bad pause
    forms = [{MARKER: "opted_out"}, {"promotions.email": MARKER}, {"pause": MARKER}]
    for extra in forms:
        # when each is posted
        resp, inbound = call("POST", token(), page_form() | extra)
        assert resp["statusCode"] == 400 and inbound.events == []
    # then the log says why and which of Kizuna's fields, and never quotes the form
    refused = kizuna_logs.records("preferences refused")
    assert [(r["reason"], r.get("field")) for r in refused] == [
        ("not_on_the_page", None),
        ("bad_value", "promotions.email"),
        ("bad_value", "pause"),
    ]
    assert MARKER not in kizuna_logs.text


def test_a_rejected_ses_event_logs_the_code_and_kizunas_field_names_only(
    kizuna_logs: KizunaLogs,  # noqa: F811
) -> None:
    # given SES events a hostile sender shaped: a tag named by an address, a source that is
    # one, and a body that is not JSON at all
    tagged = ses_event("Email Bounced", "Bounce", BOUNCE)
    tagged["detail"]["mail"]["tags"][MARKER] = "not a list"
    sourced: dict[str, Any] = {**ses_event("Email Bounced", "Bounce", BOUNCE), "source": MARKER}
    records = [sqs_record(tagged, "m1"), sqs_record(sourced, "m2"), sqs_record(MARKER, "m3")]
    # when feedback reads them
    svc, _, inbound, dlq = feedback()
    assert svc.process_batch(sqs_event(*records)) == {"batchItemFailures": []}
    # then the log says why, in Kizuna's words, and where (a tag's name reads <key>)
    rejected = kizuna_logs.records("feedback rejected")
    assert [(r["reason"], r.get("fields"), r.get("error")) for r in rejected] == [
        ("malformed", ["mail.tags.<key>"], None),
        ("not_ses", [], None),
        ("unreadable", None, "JSONDecodeError"),
    ]
    assert MARKER not in kizuna_logs.text
    # and the dead letters keep the whole reason beside the event as it arrived
    assert [d.error_type for d in dlq.letters] == ["FeedbackError"] * 2 + ["JSONDecodeError"]
    assert MARKER in dlq.letters[0].reason and MARKER in dlq.letters[1].reason
    assert inbound.events == []


def _raise(exc: Exception) -> None:
    raise exc


def test_a_failure_is_logged_by_its_type_and_place_never_its_message() -> None:
    # given a pydantic error that quotes the address it refused, and an AWS error
    from botocore.exceptions import ClientError
    from pydantic import BaseModel, ValidationError

    from kizuna.runtime.observability import failure

    class Form(BaseModel):
        n: int

    try:
        Form.model_validate({"n": MARKER})
    except ValidationError as exc:
        refused = exc
    assert MARKER in str(refused)  # what logger.exception would have printed
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": MARKER}}, "Put")
    try:
        _raise(throttled)
    except ClientError as exc:
        raised = exc
    # when each is described for a log line
    fields, aws = failure(refused), failure(raised)
    # then the type, AWS's code and where it was raised, never the message
    assert fields["error"] == "ValidationError" and "error_code" not in fields
    assert aws["error"] == "ClientError" and aws["error_code"] == "ThrottlingException"
    assert isinstance(aws["where"], list) and aws["where"][-1].endswith(" _raise")
    assert MARKER not in repr(fields) + repr(aws)


def test_evaluate_send_and_sweep_failures_never_log_the_exception_message(
    kizuna_logs: KizunaLogs,  # noqa: F811
) -> None:
    from datetime import UTC, datetime

    import pytest

    from kizuna.runtime.clock import FixedClock
    from kizuna.runtime.config import KizunaConfig
    from kizuna.services.send import record_delivered
    from kizuna.services.sweep import SweepFailed, SweepRequest, run_sweep
    from kizuna_tools.fakes import MemoryPublisher, MemoryStore
    from tests.factories import T0, order
    from tests.unit.test_evaluate_letters import service as evaluate

    boom = ValueError(f"input_value={MARKER!r}")  # as a pydantic or parsing error reads
    # given an evaluation that fails on the batch
    svc, _, _ = evaluate()
    svc.evaluator.evaluate = lambda _events: _raise(boom)  # type: ignore[method-assign,assignment]
    svc.process_batch(sqs_event(sqs_record(order("c1", "o1", 1000, T0), "m1")))
    # a ledger write after delivery that fails
    record_delivered(lambda: _raise(boom), "p", "s", [("c1", "ex-1", {"status": "sent"})])
    # and a daily sweep whose print files fail
    store = MemoryStore()
    request = SweepRequest(kinds=[], lookback_minutes=60, direct_mail=True)
    with pytest.raises(SweepFailed):
        run_sweep(
            request,
            store,
            store,
            MemoryPublisher(),
            KizunaConfig(),
            FixedClock(datetime(2026, 1, 5, tzinfo=UTC)),
            direct_mail=lambda _now: _raise(boom),  # type: ignore[arg-type,return-value]
        )
    # then each is logged by its type and where it was raised, never with its message
    for message in (
        "evaluation failed; the batch will be retried",
        "ledger write failed after delivery",
        "direct-mail print files failed",
    ):
        (line,) = kizuna_logs.records(message)
        assert line["error"] == "ValueError" and line["where"], message
    assert MARKER not in kizuna_logs.text
