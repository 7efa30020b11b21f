"""No personal data in the logs of a refused input: what a customer posted (a preference
form's keys and values) or what an event carried is never quoted in a log line; the line
says why with a fixed code and, where it is Kizuna's own, the field's name."""

from __future__ import annotations

from tests.log_capture import KizunaLogs, kizuna_logs  # noqa: F401 - the fixture
from tests.unit.test_preference_page import call, token

MARKER = "leak-7f3a@example.com"


def test_a_refused_preference_form_logs_the_code_never_the_posted_text(
    kizuna_logs: KizunaLogs,  # noqa: F811
) -> None:
    # given saved forms with a made-up key, a bad value of a real choice, a bad pause
    forms = [{MARKER: "opted_out"}, {"promotions.email": MARKER}, {"pause": MARKER}]
    for extra in forms:
        # when each is posted
        resp, inbound = call("POST", token(), {"t": token(), "action": "save", **extra})
        assert resp["statusCode"] == 400 and inbound.events == []
    # then the log says why and which of Kizuna's fields, and never quotes the form
    refused = kizuna_logs.records("preferences refused")
    assert [(r["reason"], r.get("field")) for r in refused] == [
        ("not_on_the_page", None),
        ("bad_value", "promotions.email"),
        ("bad_value", "pause"),
    ]
    assert MARKER not in kizuna_logs.text
