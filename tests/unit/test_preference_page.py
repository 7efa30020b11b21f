"""The preference centre behind the signed link: one-click opts out of the message's topic,
the page shows and changes topics per channel or pauses everything, and a forged, expired
or replayed token changes nothing. Every change is an event (never a direct write)."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest

from kizuna.delivery.unsubscribe import sign, verify
from kizuna.domain.customer import ConsentState, Customer, PauseState
from kizuna.events import ConsentChanged, PreferencesChanged
from kizuna.runtime.clock import FixedClock
from kizuna.services import links
from kizuna.services.unsubscribe import PAGES, UnsubscribeService, page
from kizuna_tools.fakes import MemoryInbound, MemoryStore

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
KEY = b"u" * 32
SINCE = NOW - timedelta(days=100)
LATER = NOW + timedelta(days=30)


def state(status: str, at: datetime = SINCE) -> ConsentState:
    return ConsentState(status=status, at=at, source="shop", stamp=f"{at}|{status}")


def customer(**extra: Any) -> Customer:
    """c1 on email and SMS, opted in to both channels, no topic choices yet."""
    base: dict[str, Any] = {
        "customer_id": "c1",
        "email": "c1@example.com",
        "phone": "+819012345678",
        "consent": {"email": state("opted_in"), "sms": state("opted_in")},
    }
    return Customer(**{**base, **extra})


def call(
    method: str,
    token: str,
    body: dict[str, str] | str | None = None,
    stored: Customer | None = None,
    base64_encoded: bool = False,
    content_type: str | None = None,
) -> tuple[dict[str, Any], MemoryInbound]:
    inbound, store = MemoryInbound(), MemoryStore()
    c = stored if stored is not None else customer()
    store.customers = {c.customer_id: c}
    svc = UnsubscribeService([KEY], inbound, FixedClock(NOW), store)
    event: dict[str, Any] = {
        "requestContext": {"http": {"method": method}},
        "queryStringParameters": {"t": token},
    }
    if content_type is not None:
        event["headers"] = {"content-type": content_type}
    if body is not None:
        event["body"] = body if isinstance(body, str) else urlencode(body)
        event["isBase64Encoded"] = base64_encoded
    return svc.handle(event), inbound


def token(topic: str | None = "newsletter", channel: str = "email", **kw: Any) -> str:
    return sign(KEY, "c1", channel, LATER, issued_at=kw.get("issued_at", NOW), topic=topic)


class _PageForm(HTMLParser):
    """The save form of a shown page as a browser posts it: its hidden fields and each
    selector's selected option (the first when none is)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._form = 0
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form += 1
        elif self._form != 1:
            return
        elif tag == "input":
            self.fields[a["name"]] = a["value"]
        elif tag == "select":
            self._select = a["name"]
        elif (
            tag == "option"
            and self._select is not None
            and ("selected" in a or self._select not in self.fields)
        ):
            self.fields[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def save_form(page: dict[str, Any], **choices: str) -> dict[str, str]:
    """The page's save form with ``choices`` (``topic.channel`` or ``pause``) made."""
    parser = _PageForm()
    parser.feed(page["body"])
    assert parser.fields["action"] == "save"
    return parser.fields | {k.replace("__", "."): v for k, v in choices.items()}


def page_form(stored: Customer | None = None, **choices: str) -> dict[str, str]:
    """The save form of the page ``stored`` is shown (GET of :func:`token`), ``choices``
    made: what a browser posts, the state the page showed included."""
    page, _ = call("GET", token(), stored=stored)
    return save_form(page, **choices)


# -- one-click -------------------------------------------------------------------------------
def test_one_click_opts_out_of_the_messages_topic_on_that_channel_only() -> None:
    resp, inbound = call("POST", token("newsletter"), "List-Unsubscribe=One-Click")
    assert resp["statusCode"] == 200
    ((kind, detail),) = inbound.events
    assert kind == "preferences.changed" and isinstance(detail, PreferencesChanged)
    assert detail.topics == {"newsletter": {"email": "opted_out"}}
    assert detail.source == "unsubscribe_link" and detail.pause_days is None


def test_one_click_of_the_transactional_topic_or_no_topic_stops_the_channel() -> None:
    for t in (token("service"), token(None)):
        resp, inbound = call("POST", t, "List-Unsubscribe=One-Click")
        assert resp["statusCode"] == 200
        ((kind, detail),) = inbound.events
        assert kind == "consent.changed" and isinstance(detail, ConsentChanged)
        assert (detail.channel, detail.status) == ("email", "opted_out")


def test_one_click_when_already_opted_out_of_the_topic_puts_nothing() -> None:
    stored = customer(topics={"newsletter": {"email": state("opted_out")}})
    resp, inbound = call("POST", token("newsletter"), "List-Unsubscribe=One-Click", stored)
    assert resp["statusCode"] == 200 and inbound.events == []


def chose(*changes: tuple[timedelta, str]) -> Customer:
    """c1 after these newsletter-on-email choices (days before NOW, status), folded by
    ingest in the order given (as the preference page or the shop sends them)."""
    from kizuna.domain.ingest import apply_events
    from kizuna.runtime.config import KizunaConfig
    from tests.factories import envelope, parsed

    c = customer()
    for i, (ago, status) in enumerate(changes):
        detail = {"customer_id": "c1", "occurred_at": (NOW - ago).isoformat()}
        detail |= {"topics": {"newsletter": {"email": status}}, "source": "preference_page"}
        raw = envelope("preferences.changed", detail, f"p{i}", "kizuna.unsubscribe")
        c = apply_events(c, [parsed(raw)], KizunaConfig(), NOW).customer
    return c


def test_a_replayed_one_click_after_a_later_opt_in_changes_nothing() -> None:
    # the link was issued before the customer opted out of the topic and back in
    old = token("newsletter", issued_at=NOW - timedelta(days=3))
    for order in ((2, 1), (1, 2)):  # whatever order ingest saw them in
        changes = {2: (timedelta(days=2), "opted_out"), 1: (timedelta(days=1), "opted_in")}
        stored = chose(*(changes[k] for k in order))
        resp, inbound = call("POST", old, "List-Unsubscribe=One-Click", stored)
        assert resp["statusCode"] == 409 and inbound.events == []


def test_a_preference_page_saved_unchanged_after_the_link_does_not_make_it_stale() -> None:
    # the newsletter was chosen long ago and the page saved again (opted_in) yesterday
    old = token("newsletter", issued_at=NOW - timedelta(days=3))
    stored = chose((timedelta(days=50), "opted_in"), (timedelta(days=1), "opted_in"))
    resp, inbound = call("POST", old, "List-Unsubscribe=One-Click", stored)
    assert resp["statusCode"] == 200
    ((kind, detail),) = inbound.events
    assert kind == "preferences.changed" and detail.topics == {"newsletter": {"email": "opted_out"}}


# -- the page ----------------------------------------------------------------------------------
def test_get_shows_every_topic_per_channel_with_its_state_and_changes_nothing() -> None:
    stored = customer(topics={"promotions": {"sms": state("opted_out")}})
    resp, inbound = call("GET", token(), stored=stored)
    assert resp["statusCode"] == 200 and inbound.events == []
    body = resp["body"]
    for label in ("キャンペーン・セール", "Newsletter", "Orders and account"):
        assert label in body
    assert '<select name="promotions.email"><option value="opted_in" selected>' in body
    assert '<select name="promotions.sms"><option value="opted_in">' in body
    assert 'value="opted_out" selected' in body
    assert "service.email" not in body  # transactional: shown as always sent, not a choice
    assert 'name="pause"' in body and "30" in body and "90" in body
    assert resp["headers"]["Cache-Control"] == "no-store"


def test_save_puts_one_event_with_the_changes_and_the_pause() -> None:
    # every selector is posted, at its value or the one chosen (promotions.sms unchanged)
    form = page_form(promotions__email="opted_out", loyalty__sms="opted_out", pause="90")
    assert form["promotions.sms"] == "opted_in"
    resp, inbound = call("POST", token(), form)
    assert resp["statusCode"] == 200
    ((kind, detail),) = inbound.events
    assert kind == "preferences.changed" and isinstance(detail, PreferencesChanged)
    assert detail.topics == {
        "loyalty": {"sms": "opted_out"},
        "promotions": {"email": "opted_out"},
    }
    assert (detail.pause_days, detail.source) == (90, "preference_page")
    # the page comes back with a fresh token: the change is not "after" it
    fresh = resp["body"].split('name="t" value="')[1].split('"')[0]
    assert verify(KEY, fresh, NOW).issued_at == NOW


def test_resume_ends_a_running_pause() -> None:
    paused = PauseState(until=NOW + timedelta(days=10), at=SINCE, source="page", stamp="x")
    form = page_form(customer(pause=paused), pause="resume")
    _, inbound = call("POST", token(), form, customer(pause=paused))
    ((_, detail),) = inbound.events
    assert isinstance(detail, PreferencesChanged) and detail.resume


def test_while_paused_the_choice_that_changes_nothing_says_it_keeps_the_pause() -> None:
    # "No pause" beside "Paused until ..." read as ending the pause, which it does not (that
    # is "Resume now"): while a pause runs, the empty choice says it keeps it
    paused = PauseState(until=NOW + timedelta(days=10), at=SINCE, source="page", stamp="x")
    page, _ = call("GET", token(), stored=customer(pause=paused))
    assert '<option value="">一時停止を続ける / Keep the pause</option>' in page["body"]
    assert "No pause" not in page["body"]
    assert '<option value="resume">' in page["body"]
    # and a save that keeps it puts no pause change
    _, inbound = call("POST", token(), page_form(customer(pause=paused)), customer(pause=paused))
    assert inbound.events == []
    # without a pause running, the same choice reads "No pause"
    page, _ = call("GET", token())
    assert '<option value="">一時停止しない / No pause</option>' in page["body"]


def page_token(page: dict[str, Any]) -> str:
    """The token the shown page's forms carry."""
    return str(page["body"].split('name="t" value="')[1].split('"')[0])


def test_a_paused_customer_resumes_from_the_page_of_a_link_older_than_the_pause() -> None:
    # every marketing message they hold was sent before they paused everything
    paused = PauseState(
        until=NOW + timedelta(days=25), at=NOW - timedelta(days=5), source="page", stamp="x"
    )
    stored = customer(pause=paused)
    link = token(issued_at=NOW - timedelta(days=6))
    page, _ = call("GET", link, stored=stored)
    assert "Resume now" in page["body"]
    # the page's forms carry the link issued again as the page is shown (same expiry)
    shown = verify(KEY, page_token(page), NOW)
    assert (shown.issued_at, shown.expires_at, shown.topic) == (NOW, LATER, "newsletter")
    form = save_form(page, pause="resume")
    resp, inbound = call("POST", link, form, stored)
    assert resp["statusCode"] == 200
    ((_, detail),) = inbound.events
    assert isinstance(detail, PreferencesChanged) and detail.resume


def test_a_page_save_after_a_change_since_the_page_was_shown_changes_nothing() -> None:
    page, _ = call("GET", token(issued_at=NOW - timedelta(days=6)))
    # the customer changed something elsewhere (another tab) after the page was shown
    later = customer(topics={"loyalty": {"sms": state("opted_out", NOW + timedelta(seconds=5))}})
    form = save_form(page, promotions__email="opted_out")
    resp, inbound = call("POST", token(), form, later)
    assert resp["statusCode"] == 409 and inbound.events == []
    assert "after this page was shown" in resp["body"]


@pytest.mark.parametrize(
    "extra",
    [
        {"service.email": "opted_out"},  # transactional: not offered
        {"coupons.email": "opted_out"},  # not a topic
        {"promotions.fax": "opted_out"},  # not a channel
        {"promotions.line": "opted_out"},  # not one of the customer's channels
        {"promotions.email": "maybe"},
        {"pause": "7"},
        {"customer_id": "c2"},
    ],
)
def test_a_form_with_anything_the_page_does_not_offer_changes_nothing(
    extra: dict[str, str],
) -> None:
    resp, inbound = call("POST", token(), page_form() | extra)
    assert resp["statusCode"] == 400 and inbound.events == []


def test_a_stopped_channel_has_no_choice_on_the_page_and_the_form_may_not_name_one() -> None:
    stored = customer(consent={"email": state("opted_in"), "sms": state("opted_out")})
    page, _ = call("GET", token(), stored=stored)
    assert 'name="promotions.sms"' not in page["body"] and "Channel off" in page["body"]
    for value in ("opted_out", "opted_in"):
        form = page_form(stored, promotions__sms=value)
        resp, inbound = call("POST", token(), form, stored)
        assert resp["statusCode"] == 400 and inbound.events == []
    # the email choice beside it is still saved
    form = page_form(stored, promotions__email="opted_out")
    resp, inbound = call("POST", token(), form, stored)
    assert resp["statusCode"] == 200 and len(inbound.events) == 1


@pytest.mark.parametrize(
    "body",
    [
        "",  # no form at all
        "foo=bar",
        "List-Unsubscribe=Nope",
        "List-Unsubscribe=One-Click&List-Unsubscribe=One-Click",
        "List-Unsubscribe=One-Click&foo=bar",
        "List-Unsubscribe",  # not a pair
        "action=",
        "action=stop",
        "action=unsubscribe",  # the page's button carries its token
        "List-Unsubscribe=One-Click&action=unsubscribe",
    ],
)
def test_a_post_that_is_no_offered_form_changes_nothing(body: str) -> None:
    resp, inbound = call("POST", token(), body)
    assert resp["statusCode"] == 400 and inbound.events == []


def test_an_unreadable_body_changes_nothing() -> None:
    # not base64, base64 without its padding, and "List-Unsubscribe=" with a 0xff byte
    for body in ("%%%", "TGlzdC1VbnN1YnNjcmliZT1PbmUtQ2xpY2s", "TGlzdC1VbnN1YnNjcmliZT3/"):
        resp, inbound = call("POST", token(), body, base64_encoded=True)
        assert resp["statusCode"] == 400 and inbound.events == [], body


def test_the_offered_one_click_forms_are_accepted() -> None:
    """RFC 8058's body (token in the URL), the confirmation page's button (the token in the
    body), and the same base64-encoded as a function URL may pass it."""
    import base64

    for body in (
        "List-Unsubscribe=One-Click",
        f"t={token()}",
        f"List-Unsubscribe=One-Click&t={token()}",
    ):
        resp, inbound = call("POST", token(), body)
        assert resp["statusCode"] == 200 and len(inbound.events) == 1, body
    encoded = base64.b64encode(b"List-Unsubscribe=One-Click").decode()
    resp, inbound = call("POST", token(), encoded, base64_encoded=True)
    assert resp["statusCode"] == 200 and len(inbound.events) == 1


BOUNDARY = "----kizuna0"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*fields: tuple[str, str], part_headers: str = "", close: bool = True) -> str:
    """A multipart/form-data body of ``fields`` (name, value), as a mail client posts it."""
    parts = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n{part_headers}'
        f"\r\n{value}\r\n"
        for name, value in fields
    )
    return parts + (f"--{BOUNDARY}--\r\n" if close else "")


def test_a_multipart_one_click_is_accepted() -> None:
    """RFC 8058: the POST content SHOULD be multipart/form-data (MAY be URL-encoded)."""
    import base64

    body = multipart(("List-Unsubscribe", "One-Click"))
    resp, inbound = call("POST", token(), body, content_type=MULTIPART)
    assert resp["statusCode"] == 200
    ((kind, detail),) = inbound.events
    assert kind == "preferences.changed" and isinstance(detail, PreferencesChanged)
    assert detail.topics == {"newsletter": {"email": "opted_out"}}
    # as a function URL passes a body it does not take for text: base64, any header case
    encoded = base64.b64encode(body.encode()).decode()
    resp, inbound = call(
        "POST", token(), encoded, None, True, f"Multipart/Form-Data; boundary={BOUNDARY}"
    )
    assert resp["statusCode"] == 200 and len(inbound.events) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (multipart(("List-Unsubscribe", "One-Click")), "multipart/form-data"),  # no boundary
        ("List-Unsubscribe=One-Click", MULTIPART),  # not multipart at all
        (multipart(("List-Unsubscribe", "One-Click"), close=False), MULTIPART),
        (multipart(("List-Unsubscribe", "Nope")), MULTIPART),
        (
            multipart(("List-Unsubscribe", "One-Click"), ("List-Unsubscribe", "One-Click")),
            MULTIPART,
        ),
        (multipart(("List-Unsubscribe", "One-Click"), ("foo", "bar")), MULTIPART),
        (
            multipart(("List-Unsubscribe", "One-Click"), part_headers="Content-Type: a/b\r\n"),
            MULTIPART,
        ),
        (
            multipart(
                ("List-Unsubscribe", "T25lLUNsaWNr"),
                part_headers="Content-Transfer-Encoding: base64\r\n",
            ),
            MULTIPART,
        ),
        (
            multipart(("List-Unsubscribe", "One-Click")).replace('"\r\n', '"; filename="a"\r\n'),
            MULTIPART,
        ),
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--", MULTIPART),
        (multipart(*((f"k{i}", "v") for i in range(201))), MULTIPART),
        (multipart(("List-Unsubscribe", "One-Click")), MULTIPART + "\r\nX-Evil: 1"),
    ],
)
def test_a_multipart_post_that_is_no_offered_form_changes_nothing(
    body: str, content_type: str
) -> None:
    resp, inbound = call("POST", token(), body, content_type=content_type)
    assert resp["statusCode"] == 400 and inbound.events == []


def test_a_multipart_body_is_read_only_up_to_its_bound() -> None:
    from kizuna.services.unsubscribe import MAX_MULTIPART_BYTES, BadForm, multipart_form

    def body(size: int) -> bytes:
        padded = multipart(("List-Unsubscribe", "One-Click"), ("pad", ""))
        return padded.replace('"pad"\r\n\r\n', '"pad"\r\n\r\n' + "x" * size).encode()

    fits = MAX_MULTIPART_BYTES - len(body(0))
    assert multipart_form(body(fits), MULTIPART)["List-Unsubscribe"] == ["One-Click"]
    with pytest.raises(BadForm):
        multipart_form(body(fits + 1), MULTIPART)


def test_a_multipart_value_that_is_not_utf8_changes_nothing() -> None:
    import base64

    body = multipart(("List-Unsubscribe", "One-Click")).encode().replace(b"One-", b"\xffne-")
    encoded = base64.b64encode(body).decode()
    resp, inbound = call("POST", token(), encoded, None, True, MULTIPART)
    assert resp["statusCode"] == 400 and inbound.events == []


def test_forged_expired_and_replayed_page_posts_change_nothing() -> None:
    form = {"action": "save", "promotions.email": "opted_out", "pause": "30"}
    forged = sign(b"x" * 32, "c1", "email", LATER, issued_at=NOW, topic="newsletter")
    expired = sign(KEY, "c1", "email", NOW - timedelta(seconds=1), topic="newsletter")
    # a token issued before the customer's latest change (on any topic or channel)
    stored = customer(topics={"loyalty": {"sms": state("opted_in", NOW)}})
    replayed = token(issued_at=NOW - timedelta(days=1))
    for t, who, status in (
        (forged, None, 403),
        (expired, None, 410),
        (replayed, stored, 409),
    ):
        resp, inbound = call("POST", t, {"t": t, **form}, who)
        assert resp["statusCode"] == status and inbound.events == []


def test_the_channel_button_stops_the_whole_channel() -> None:
    resp, inbound = call("POST", token(), {"t": token(), "action": "unsubscribe"})
    assert resp["statusCode"] == 200
    ((kind, detail),) = inbound.events
    assert kind == "consent.changed" and isinstance(detail, ConsentChanged)
    assert detail.status == "opted_out"


def test_every_consent_channel_has_a_column_on_the_page() -> None:
    from kizuna.events import ConsentChannel
    from kizuna.services.unsubscribe import CHANNEL_WORDS

    assert {c.value for c in ConsentChannel} <= set(CHANNEL_WORDS)


@pytest.mark.parametrize(
    ("channel", "button"),
    [
        ("email", "メールをすべて停止 / Stop all email"),
        ("sms", "SMSをすべて停止 / Stop all SMS"),
    ],
)
def test_the_stop_button_says_the_channel_once_in_each_language(channel: str, button: str) -> None:
    """It read "メール / Emailをすべて停止 / Stop all メール / Email"."""
    from kizuna.events import ConsentChannel
    from kizuna.services.unsubscribe import CHANNEL_NAMES

    answer, _ = call("GET", token(channel=channel))
    assert f'<button type="submit">{button}</button>' in answer["body"], answer["body"]
    assert {c.value for c in ConsentChannel} <= set(CHANNEL_NAMES)


# -- saves racing ingest ------------------------------------------------------------------------
class Racing:
    """The page on one customer item: the requests answered on the item as stored, the
    events they put held back until :meth:`ingest` applies them, in the order given."""

    def __init__(self, stored: Customer) -> None:
        self.inbound, self.store = MemoryInbound(), MemoryStore()
        self.store.customers = {stored.customer_id: stored}
        self.clock = FixedClock(NOW)
        self.svc = UnsubscribeService([KEY], self.inbound, self.clock, self.store)

    def request(
        self, method: str, form: dict[str, str] | None = None, after: timedelta = timedelta(0)
    ) -> dict[str, Any]:
        self.clock.set(self.clock.now() + after)
        event: dict[str, Any] = {
            "requestContext": {"http": {"method": method}},
            "queryStringParameters": {"t": token(issued_at=NOW - timedelta(days=2))},
        }
        if form is not None:
            event["body"] = urlencode(form)
        return self.svc.handle(event)

    def ingest(self, *, reverse: bool = False) -> Customer:
        from kizuna.domain.ingest import apply_events
        from kizuna.runtime.config import KizunaConfig
        from tests.factories import envelope, parsed

        c = self.store.customers["c1"]
        held = list(enumerate(self.inbound.events))
        for i, (kind, detail) in reversed(held) if reverse else held:
            raw = envelope(kind, detail.model_dump(mode="json"), f"e{i}", "kizuna.unsubscribe")
            c = apply_events(c, [parsed(raw)], KizunaConfig(), self.clock.now()).customer
        self.store.customers["c1"] = c
        return c


@pytest.mark.parametrize("reverse", [False, True])
def test_a_save_undoing_one_not_yet_applied_wins_whatever_order_ingest_sees_them_in(
    reverse: bool,
) -> None:
    race = Racing(customer())
    shown = race.request("GET")
    # the customer stops the newsletter by email and saves, then, before ingest has applied
    # that (seconds), chooses it again on the page the save showed and saves again
    first = race.request(
        "POST", save_form(shown, newsletter__email="opted_out"), timedelta(seconds=3)
    )
    assert first["statusCode"] == 200
    again = save_form(first, newsletter__email="opted_in")
    second = race.request("POST", again, timedelta(seconds=2))
    assert second["statusCode"] == 200
    assert '<select name="newsletter.email"><option value="opted_in" selected>' in second["body"]
    # the last save is the customer's choice, whichever of the two ingest applies first
    final = race.ingest(reverse=reverse)
    assert final.topics["newsletter"]["email"].status == "opted_in"


@pytest.mark.parametrize("reverse", [False, True])
def test_a_resume_of_a_pause_saved_seconds_before_wins_whatever_order_ingest_sees_them_in(
    reverse: bool,
) -> None:
    race = Racing(customer())
    first = race.request("POST", save_form(race.request("GET"), pause="30"), timedelta(seconds=3))
    # the page the save showed has the pause ingest has not applied yet, and its resume
    assert "Paused until 2026-02-04" in first["body"] and "Resume now" in first["body"]
    second = race.request("POST", save_form(first, pause="resume"), timedelta(seconds=2))
    assert second["statusCode"] == 200 and "Paused until" not in second["body"]
    final = race.ingest(reverse=reverse)
    assert final.pause is not None and final.pause.until is None  # resumed


@pytest.mark.parametrize("reverse", [False, True])
def test_a_save_overwrites_no_change_from_elsewhere_on_a_choice_it_did_not_make(
    reverse: bool,
) -> None:
    race = Racing(customer())
    shown = race.request("GET")
    # a CRM sync stops loyalty by SMS after the page was shown; ingest has not applied it
    crm = {"loyalty": {"sms": "opted_out"}}
    race.inbound.put_inbound(
        PreferencesChanged(
            customer_id="c1", occurred_at=NOW + timedelta(seconds=2), topics=crm, source="crm"
        )
    )
    # the customer saves a change of promotions by email (loyalty by SMS shown as received)
    form = save_form(shown, promotions__email="opted_out")
    assert form["loyalty.sms"] == "opted_in"
    assert race.request("POST", form, timedelta(seconds=5))["statusCode"] == 200
    final = race.ingest(reverse=reverse)
    assert final.topics["loyalty"]["sms"].status == "opted_out"  # the CRM's, not overwritten
    assert final.topics["promotions"]["email"].status == "opted_out"


def test_a_save_from_the_saved_page_after_a_change_from_elsewhere_changes_nothing() -> None:
    race = Racing(customer())
    first = race.request("POST", save_form(race.request("GET"), promotions__email="opted_out"))
    race.ingest()
    # a change from elsewhere applied after the saved page was shown: that page is stale
    crm = {"loyalty": {"sms": state("opted_out", NOW + timedelta(seconds=2))}}
    race.store.customers["c1"] = race.store.customers["c1"].model_copy(
        update={"topics": race.store.customers["c1"].topics | crm}
    )
    form = save_form(first, promotions__email="opted_in")
    resp = race.request("POST", form, timedelta(seconds=5))
    assert resp["statusCode"] == 409 and len(race.inbound.events) == 1


def test_a_save_without_the_state_its_page_showed_changes_nothing() -> None:
    from kizuna.delivery.unsubscribe import sign_page_state

    form = page_form(promotions__email="opted_out")
    other = token(issued_at=NOW - timedelta(days=1))  # another page's token
    state_json = b'{"cells":{"promotions.email":"opted_in"},"paused_until":null}'
    for shown in (
        None,  # a page from before the form carried it
        "",
        form["shown"][:-2] + ("AA" if form["shown"][-2:] != "AA" else "BB"),  # altered
        sign_page_state(b"x" * 32, form["t"], state_json),  # not Kizuna's key
        sign_page_state(KEY, other, state_json),  # another page's
        sign_page_state(KEY, form["t"], b'{"cells":{"promotions.email":"maybe"}}'),
    ):
        posted = {k: v for k, v in form.items() if k != "shown"}
        if shown is not None:
            posted["shown"] = shown
        resp, inbound = call("POST", token(), posted)
        assert resp["statusCode"] == 400 and inbound.events == [], shown
    resp, inbound = call("POST", token(), form)
    assert resp["statusCode"] == 200 and len(inbound.events) == 1


# -- framing ------------------------------------------------------------------------------------
def test_no_answer_of_the_function_url_may_be_framed() -> None:
    """The page, and every answer a one-click or a save gets, refuses to be framed
    (clickjacking: a page of another site showing ours under its own buttons); so does the
    tracked link's refusal, on the same function URL."""
    from tests.unit.delivery import test_tracked_links as links

    expired = sign(KEY, "c1", "email", NOW - timedelta(seconds=1), topic="newsletter")
    answers = [
        call("GET", token())[0],  # the page
        call("POST", token(), page_form(promotions__email="opted_out"))[0],  # saved
        call("POST", token(), "List-Unsubscribe=One-Click")[0],  # done
        call("POST", token(), "foo=bar")[0],  # bad_form
        call("GET", "x" * 40)[0],  # malformed
        call("GET", expired)[0],  # expired
        call("GET", sign(KEY, "c2", "email", LATER, issued_at=NOW))[0],  # unknown
        links.service(links.MemoryStore()).handle(links.request("/l/nope")),
    ]
    for answer in answers:
        headers = answer["headers"]
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'", answer
        assert headers["X-Frame-Options"] == "DENY"
    assert {a["statusCode"] for a in answers} == {200, 400, 404, 410}


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_every_page_says_its_language(kind: str) -> None:
    # without `lang` a screen reader reads the page in the reader's own language and a
    # browser offers to translate it from a guess (WCAG 3.1.1): the pages are Japanese first
    for body in (page(kind, "tok"), links.INVALID_LINK_PAGE):
        assert body.startswith('<!DOCTYPE html><html lang="ja">'), body[:60]
