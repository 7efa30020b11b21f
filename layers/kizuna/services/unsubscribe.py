"""The preference centre and one-click unsubscribe (RFC 8058) behind a Lambda function URL.

Every link carries a signed token (kizuna.delivery.unsubscribe): the customer, the channel
the message came by, and the message's preference topic (docs/PREFERENCES.md).

- ``POST`` of RFC 8058's ``List-Unsubscribe=One-Click`` (what a mail client's one-click
  sends, URL-encoded or ``multipart/form-data``; the token in the URL) or of the token
  alone (the confirmation page's button) opts the customer out of **the message's topic**
  on that channel: a ``preferences.changed`` event goes on the bus and ingest applies it.
  A token without a topic (made before topics), or of the transactional topic, opts out
  of the channel (``consent.changed``), as one-click always did.
- ``GET`` never changes anything (mail scanners follow links): it shows the preference
  page, the customer's topics per channel with their current state, a pause of everything
  for 30 or 90 days, and a button to stop the channel altogether.
- ``POST`` with ``action=save`` (the page's form) puts the choices that differ from what
  the page showed as one ``preferences.changed`` event (source ``preference_page``, the
  proof of consent), and shows the page again as saved, with a fresh token;
  ``action=unsubscribe`` stops the channel. The save form carries what the page showed
  (:class:`PageState`, signed and bound to the form's token): the stored state lags a save
  by ingest's latency, so a second save that undoes the first (untick, save, tick, save)
  is a change against the page (the first save's result), not "nothing" against the store,
  and its event, later by ``occurred_at``, wins in ingest whichever arrives first.
- A forged, expired or malformed token changes nothing and the page says why; a form that
  names an unknown topic, channel or value, or a topic on a channel the customer stopped,
  changes nothing either (400), nor does any other POST body (:func:`one_click_form`).
- The page's forms carry the link's token issued again when the page is shown (same
  customer, channel, topic and expiry): a save changes nothing when the customer's consent
  or preferences changed after the page was shown (another tab, a change from elsewhere),
  and the page asks to open the link again. A message's link opens the page for as long as
  it lives, whatever changed since the message (a customer who paused everything has no
  newer message to resume from).
- A one-click POST never outlives a later change: if the customer opted out of that
  channel, or of that topic on it, and back in after the token was issued, the old link
  changes nothing and the page asks for a recent message's link. A repeated opt-in (a CRM
  sync re-sending ``opted_in``, a preference page saved unchanged) is no change for
  one-click. A change stamped within the token's second counts as before it. Times are the
  producers' ``occurred_at``: a producer clock running ahead can make a fresh link look
  old.
- A token never creates a customer: for an id Kizuna does not hold (erased, say) nothing is
  put on the bus. An already opted-out customer is told so, and nothing is put either.

The customer is read once (a strongly consistent GetItem) and the decision is taken on it;
consent and preferences change only through ingest (events), so ordering, the ledger's
proof rows and erasure hold. A change from elsewhere still in flight when the page is saved
is not seen: a save puts only the choices the customer changed on the page, so it wins
(the later ``occurred_at``) on those, and the change in flight stands on every other.
"""

from __future__ import annotations

import base64
import email.policy
import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.parser import BytesParser
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from kizuna.delivery.policy import address_for, paused_until
from kizuna.delivery.unsubscribe import (
    Claims,
    InvalidToken,
    sign,
    sign_page_state,
    verify,
    verify_page_state,
)
from kizuna.domain.customer import Customer
from kizuna.domain.ingest import last_opt_out
from kizuna.events import (
    ConsentChanged,
    ConsentChannel,
    ConsentStatus,
    InboundDetail,
    PreferencesChanged,
)
from kizuna.ports import CustomerReader, Inbound
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import PreferencesConfig
from kizuna.runtime.headers import NO_FRAMING
from kizuna.runtime.observability import logger

PAGES = {
    "confirm": (
        "配信停止の確認 / Unsubscribe",
        "このチャネルでのお知らせの配信を停止しますか？<br>"
        "Stop receiving messages on this channel?",
    ),
    "preferences": (
        "配信設定 / Your preferences",
        "受け取るお知らせをトピックとチャネルごとに選べます。<br>"
        "Choose what you receive, per topic and channel.",
    ),
    "saved": (
        "配信設定を保存しました / Preferences saved",
        "配信設定を保存しました。反映まで数分かかることがあります。<br>"
        "Your preferences are saved. They may take a few minutes to apply.",
    ),
    "done": (
        "配信を停止しました / Unsubscribed",
        "配信を停止しました。ご利用ありがとうございました。<br>"
        "You are unsubscribed. You will not receive these messages any more.",
    ),
    "malformed": (
        "リンクが正しくありません / Invalid link",
        "このリンクは正しくありません。<br>This link is not valid.",
    ),
    "forged": (
        "リンクが正しくありません / Invalid link",
        "このリンクは正しくありません。<br>This link is not valid.",
    ),
    "bad_form": (
        "入力が正しくありません / Invalid request",
        "送信された内容が正しくありません。何も変更していません。<br>"
        "The request was not valid. Nothing was changed.",
    ),
    "expired": (
        "リンクの有効期限が切れています / Link expired",
        "このリンクは有効期限切れです。最新のメールのリンクをお使いください。<br>"
        "This link has expired. Please use the link in a recent message.",
    ),
    "stale": (
        "リンクが古くなっています / Link out of date",
        "配信設定がこのリンクの発行後に変更されています。最新のメールのリンクをお使いください。<br>"
        "Your preferences changed after this link was sent. "
        "Please use the link in a recent message.",
    ),
    "page_stale": (
        "配信設定が変更されています / Preferences changed",
        "このページの表示後に配信設定が変更されました。何も変更していません。"
        "もう一度リンクを開いてください。<br>"
        "Your preferences changed after this page was shown. Nothing was changed. "
        "Please open the link again.",
    ),
    "unknown": (
        "登録が見つかりません / Not found",
        "このリンクの登録は見つかりませんでした。配信は行われません。<br>"
        "We hold no subscription for this link. You will not receive messages.",
    ),
}
STATUS = {
    "confirm": 200,
    "preferences": 200,
    "saved": 200,
    "done": 200,
    "malformed": 400,
    "bad_form": 400,
    "forged": 403,
    "unknown": 404,
    "stale": 409,
    "page_stale": 409,
    "expired": 410,
}
# The token's issue time has whole seconds: a change within that second is not "after" it.
_TOKEN_RESOLUTION = timedelta(seconds=1)
SOURCE_LINK = "unsubscribe_link"
SOURCE_PAGE = "preference_page"
CHANNEL_WORDS = {
    "email": "メール / Email",
    "sms": "SMS",
    "push": "プッシュ / Push",
    "line": "LINE",
    "card": "サイト・アプリ内 / On the site and app",
    "dm": "ダイレクトメール / Direct mail",
}
# each channel in a sentence: (Japanese, English), the stop button's words
CHANNEL_NAMES = {
    "email": ("メール", "email"),
    "sms": ("SMS", "SMS"),
    "push": ("プッシュ通知", "push notifications"),
    "line": ("LINE", "LINE"),
    "card": ("サイト・アプリ内のお知らせ", "site and app notices"),
    "dm": ("ダイレクトメール", "direct mail"),
}
IN, OUT = ConsentStatus.OPTED_IN.value, ConsentStatus.OPTED_OUT.value
PAUSES = ("30", "90", "resume")
_FORM_KEYS = frozenset({"t", "action", "pause", "shown", "List-Unsubscribe"})
MAX_FORM_FIELDS = 200  # the page's form: topics x channels, and a few more
# a multipart body's size: a one-click is a few hundred bytes, the page's form is URL-encoded
# (and reading a large multipart body costs far more time than a URL-encoded one)
MAX_MULTIPART_BYTES = 16 * 1024
# the headers a part of a multipart/form-data body may have (RFC 7578: no transfer encoding)
_PART_HEADERS = frozenset({"content-disposition", "content-type"})


class BadForm(ValueError):
    """A POST body that cannot be read as a form."""


def one_click_topic(claims: Claims, preferences: PreferencesConfig) -> str | None:
    """The topic a one-click opts out of: the token's, unless it has none, or names the
    transactional topic or one no longer declared (then: the channel)."""
    topic = claims.topic
    if topic is None or preferences.topic(topic) is None:
        return None
    return None if preferences.is_transactional(topic) else topic


def _after(at: datetime | None, claims: Claims) -> bool:
    return at is not None and at >= claims.issued_at + _TOKEN_RESOLUTION


def decide(
    claims: Claims, customer: Customer | None, preferences: PreferencesConfig | None = None
) -> str:
    """What a valid one-click token may do for the customer as stored: ``unsubscribe`` (the
    channel), ``topic`` (the token's topic on the channel), or the page that says why not
    (``unknown``, ``done`` when already opted out, ``stale``)."""
    if customer is None:
        return "unknown"
    consent = customer.consent.get(claims.channel)
    if consent is not None and consent.status == ConsentStatus.OPTED_OUT:
        return "done"
    # stale: opted out and back in since the link (a repeated opt-in, a CRM sync re-sending
    # opted_in, moves ``consent.at`` too: the link still works then)
    if (
        consent is not None
        and _after(consent.at, claims)
        and _after(last_opt_out(customer, claims.channel), claims)
    ):
        return "stale"
    topic = one_click_topic(claims, preferences or PreferencesConfig())
    if topic is None:
        return "unsubscribe"
    state = customer.topics.get(topic, {}).get(claims.channel)
    if state is not None and state.status == ConsentStatus.OPTED_OUT:
        return "done"
    if (
        state is not None
        and _after(state.at, claims)
        and _after(last_opt_out(customer, claims.channel, topic), claims)
    ):
        return "stale"  # opted out of the topic and back in since the link
    return "topic"


def changed_since(claims: Claims, customer: Customer) -> bool:
    """Whether any of the customer's consent or preferences changed after the token."""
    times = [c.at for c in customer.consent.values()]
    times += [c.at for per in customer.topics.values() for c in per.values()]
    times += [customer.pause.at] if customer.pause is not None else []
    return any(_after(at, claims) for at in times)


def channels_of(customer: Customer, claims: Claims) -> list[str]:
    """The channels the page shows: the link's, and every one the customer can be reached
    on or has a consent for."""
    return [
        c.value
        for c in ConsentChannel
        if c.value == claims.channel
        or c.value in customer.consent
        or address_for(customer, c.value) is not None
    ]


def topic_state(customer: Customer, topic: str, channel: str) -> str:
    """opted_in unless the customer opted out of ``topic`` on ``channel``."""
    state = customer.topics.get(topic, {}).get(channel)
    return OUT if state is not None and state.status == OUT else IN


class PageState(BaseModel):
    """What a preference page showed: the value of each ``topic.channel`` selector and the
    end of the pause it showed (None: no pause). A GET shows the stored state; the page a
    save shows is that state with the save's choices made, before ingest has applied them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cells: dict[str, Literal["opted_in", "opted_out"]]
    paused_until: AwareDatetime | None = None

    def after(self, change: PreferencesChanged | None) -> PageState:
        """The state once ``change`` (a save of this page) applies."""
        if change is None:
            return self
        cells = dict(self.cells)
        for topic, per in change.topics.items():
            cells |= {f"{topic}.{c}": ConsentStatus(v).value for c, v in per.items()}
        until = self.paused_until
        if change.pause_days is not None:
            until = change.occurred_at + timedelta(days=change.pause_days)
        elif change.resume:
            until = None
        return PageState(cells=cells, paused_until=until)


def page_state(
    customer: Customer,
    claims: Claims,
    preferences: PreferencesConfig,
    now: datetime,
    shown: PageState | None = None,
) -> PageState:
    """The state a page shows now: the stored one, with ``shown`` over it (what the page
    being saved showed, its own saves included: ingest may not have applied them yet)."""
    cells = {
        key: topic_state(customer, *key.split("."))
        for key in sorted(offered_cells(customer, claims, preferences))
    }
    if shown is None:
        return PageState(cells=cells, paused_until=paused_until(customer, now))
    cells |= {k: v for k, v in shown.cells.items() if k in cells}
    until = shown.paused_until
    return PageState(cells=cells, paused_until=until if until and until > now else None)


def read_page_state(secrets: Sequence[bytes], token: str, signed: str) -> PageState:
    """The state a page showed (the save form's ``shown``, signed for its token ``token``);
    :class:`InvalidToken` for one not signed so, ValueError for one that is no state."""
    try:
        return PageState.model_validate_json(verify_page_state(secrets, token, signed))
    except ValidationError:
        raise ValueError("not a page state") from None


class FormRefused(ValueError):
    """A saved form the page did not offer. ``reason`` is a fixed code (``repeated_field``,
    ``not_on_the_page``, ``bad_value``) and ``field`` the form key only when it is one
    Kizuna names (a ``topic.channel`` of the configuration, ``pause``): both are logged.
    Never the value, nor a key the customer made up: the form is the customer's text."""

    def __init__(self, reason: str, field: str | None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field or '<field>'}: {reason}")


def _named(key: str, preferences: PreferencesConfig) -> str | None:
    """``key`` if it is one of Kizuna's own form keys, else None (not to be logged)."""
    own = {f"{t.name}.{c.value}" for t in preferences.topics for c in ConsentChannel}
    return key if key in _FORM_KEYS or key in own else None


def parse_form(
    form: Mapping[str, list[str]],
    customer: Customer,
    claims: Claims,
    preferences: PreferencesConfig,
    now: datetime,
    shown: PageState,
) -> PreferencesChanged | None:
    """The page's form as one event: the pairs that differ from what the page showed
    (``shown``: never the stored state, which lags the page's own earlier saves), and the
    pause. :class:`FormRefused` for anything the page does not offer, now and when it was
    shown (nothing is changed then); None when nothing changes."""
    offered = offered_cells(customer, claims, preferences) & set(shown.cells)
    for key, values in form.items():
        if len(values) != 1:
            raise FormRefused("repeated_field", _named(key, preferences))
        if key not in offered and key not in _FORM_KEYS:
            raise FormRefused("not_on_the_page", _named(key, preferences))
    topics: dict[str, dict[ConsentChannel, ConsentStatus]] = {}
    for key in sorted(offered & set(form)):
        value = form[key][0]
        if value not in (IN, OUT):
            raise FormRefused("bad_value", key)  # not opted_in or opted_out
        topic, channel = key.split(".")
        if value != shown.cells[key]:
            topics.setdefault(topic, {})[ConsentChannel(channel)] = ConsentStatus(value)
    pause = (form.get("pause") or [""])[0]
    if pause not in ("", *PAUSES):
        raise FormRefused("bad_value", "pause")  # not 30, 90 or resume
    if pause == "resume" and (shown.paused_until is None or shown.paused_until <= now):
        pause = ""  # the page showed no pause running: nothing to resume
    if not topics and not pause:
        return None
    return PreferencesChanged(
        customer_id=customer.customer_id,
        occurred_at=now,
        topics=topics,
        pause_days=int(pause) if pause in ("30", "90") else None,
        resume=pause == "resume",
        source=SOURCE_PAGE,
    )


def channel_off(customer: Customer, channel: str) -> bool:
    """The customer stopped the channel altogether: the page offers no topic choice on it."""
    master = customer.consent.get(channel)
    return master is not None and master.status == OUT


def offered_cells(customer: Customer, claims: Claims, preferences: PreferencesConfig) -> set[str]:
    """The ``topic.channel`` choices the page shows a selector for (and the only ones a
    saved form may name): optional topics on the channels shown that are not stopped."""
    channels = [c for c in channels_of(customer, claims) if not channel_off(customer, c)]
    return {f"{t.name}.{c}" for t in preferences.topics if not t.transactional for c in channels}


def is_multipart(content_type: str) -> bool:
    """Whether a request's ``Content-Type`` says ``multipart/form-data``."""
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def multipart_form(raw: bytes, content_type: str) -> dict[str, list[str]]:
    """A ``multipart/form-data`` body (RFC 7578) as the form ``parse_qs`` would give, read
    strictly: :class:`BadForm` unless it is well formed (a boundary, every part opened and
    the last closed), of at most :data:`MAX_MULTIPART_BYTES` and :data:`MAX_FORM_FIELDS`
    parts, each a named ``form-data`` field (no file, no nested multipart, no
    ``Content-Transfer-Encoding``, plain text in UTF-8) whose value is UTF-8."""
    if "\r" in content_type or "\n" in content_type or len(raw) > MAX_MULTIPART_BYTES:
        raise BadForm("unreadable form")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii", "strict") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart() or message.defects:
        raise BadForm("unreadable form")
    form: dict[str, list[str]] = {}
    parts = list(message.iter_parts())
    if len(parts) > MAX_FORM_FIELDS:
        raise BadForm("unreadable form")
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        charset = str(part.get_param("charset") or "utf-8").lower()
        if (
            part.is_multipart()
            or part.defects
            or part.get_content_disposition() != "form-data"
            or not isinstance(name, str)
            or not name
            or part.get_filename() is not None
            or not set(map(str.lower, part.keys())) <= _PART_HEADERS
            or part.get_content_type() != "text/plain"
            or charset not in ("utf-8", "us-ascii")
        ):
            raise BadForm("unreadable form")
        value = part.get_payload(decode=True)
        if not isinstance(value, bytes):
            raise BadForm("unreadable form")
        form.setdefault(name, []).append(value.decode("utf-8"))
    return form


def one_click_form(form: Mapping[str, list[str]], action: str) -> bool:
    """Whether a POST that is not the page's save is one this function offers: RFC 8058's
    ``List-Unsubscribe=One-Click`` (the token in the URL or beside it), the confirmation
    page's button (the token alone), or the page's "stop the channel" button
    (``action=unsubscribe`` with the token). Anything else is refused, never guessed at."""
    keys = set(form)
    if action == "unsubscribe":
        return keys == {"t", "action"}
    if action or "action" in keys or not keys or not keys <= {"t", "List-Unsubscribe"}:
        return False
    return "List-Unsubscribe" not in keys or form["List-Unsubscribe"] == ["One-Click"]


def _select(name: str, current: str) -> str:
    options = ((IN, "受け取る / Receive"), (OUT, "停止 / Stop"))
    return (
        f'<select name="{html.escape(name)}">'
        + "".join(
            f'<option value="{v}"{" selected" if v == current else ""}>{w}</option>'
            for v, w in options
        )
        + "</select>"
    )


def preference_form(
    customer: Customer,
    claims: Claims,
    preferences: PreferencesConfig,
    token: str,
    now: datetime,
    shown: PageState,
    signed_state: str,
) -> str:
    """The preference page's form: a row per topic, a column per channel, each selector at
    its value in ``shown``; the save form carries ``signed_state`` (``shown``, signed)."""
    channels = channels_of(customer, claims)
    head = "".join(f"<th>{CHANNEL_WORDS[c]}</th>" for c in channels)
    rows = []
    for t in preferences.topics:
        label = f"{html.escape(t.labels.ja)} / {html.escape(t.labels.en)}"
        cells = []
        for c in channels:
            if channel_off(customer, c):
                cells.append("<td>チャネル停止中 / Channel off</td>")
            elif t.transactional:
                cells.append("<td>必須 / Always sent</td>")
            else:
                current = shown.cells.get(f"{t.name}.{c}", topic_state(customer, t.name, c))
                cells.append(f"<td>{_select(f'{t.name}.{c}', current)}</td>")
        rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
    until = shown.paused_until if shown.paused_until and shown.paused_until > now else None
    paused = (
        f"<p>{until:%Y-%m-%d} まで一時停止中 / Paused until {until:%Y-%m-%d}</p>" if until else ""
    )
    # the empty choice changes nothing: while a pause runs, it keeps it ("No pause" read as
    # ending it, which is "Resume now")
    keep = "一時停止を続ける / Keep the pause" if until else "一時停止しない / No pause"
    pause_options = [("", keep), ("30", "30 日 / 30 days")]
    pause_options += [("90", "90 日 / 90 days")]
    if until:
        pause_options.append(("resume", "再開する / Resume now"))
    pause = (
        '<select name="pause">'
        + "".join(f'<option value="{v}">{w}</option>' for v, w in pause_options)
        + "</select>"
    )
    hidden = f'<input type="hidden" name="t" value="{html.escape(token)}">'
    state = f'<input type="hidden" name="shown" value="{html.escape(signed_state)}">'
    ja, en = CHANNEL_NAMES[claims.channel]
    return (
        f'<form method="post">{hidden}<input type="hidden" name="action" value="save">{state}'
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>{paused}"
        f"<p>すべて一時停止 / Pause everything: {pause}</p>"
        '<button type="submit">保存 / Save</button></form>'
        f'<form method="post">{hidden}<input type="hidden" name="action" value="unsubscribe">'
        f'<button type="submit">{ja}をすべて停止 / Stop all {en}</button></form>'
    )


def page(kind: str, token: str | None = None, form: str = "") -> str:
    title, text = PAGES[kind]
    if kind == "confirm" and token and not form:
        form = (
            f'<form method="post"><input type="hidden" name="t" value="{html.escape(token)}">'
            '<button type="submit">配信を停止する / Unsubscribe</button></form>'
        )
    return (
        f'<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width"><title>{title}</title></head>'
        f'<body style="font-family:sans-serif;max-width:640px;margin:48px auto;">'
        f"<h1>{title}</h1><p>{text}</p>{form}</body></html>"
    )


def _response(kind: str, token: str | None = None, form: str = "") -> dict[str, Any]:
    return {
        "statusCode": STATUS[kind],
        "headers": {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the URL
            **NO_FRAMING,  # another site may not show the page's buttons under its own
        },
        "body": page(kind, token, form),
    }


class UnsubscribeService:
    def __init__(
        self,
        secrets: Sequence[bytes],
        inbound: Inbound,
        clock: Clock,
        customers: CustomerReader,
        preferences: PreferencesConfig | None = None,
    ) -> None:
        self.secrets = list(secrets)
        self.inbound = inbound
        self.clock = clock
        self.customers = customers
        self.preferences = preferences if preferences is not None else PreferencesConfig()

    @staticmethod
    def form_of(event: dict[str, Any]) -> dict[str, list[str]]:
        """The POSTed form, read strictly: :class:`BadForm` for a body that is not base64
        when it says so, not UTF-8, or not ``key=value`` pairs (nothing is guessed). A
        ``multipart/form-data`` body (what RFC 8058 says a mail client SHOULD send) is read
        as such (:func:`multipart_form`); any other is read as URL-encoded."""
        body = event.get("body") or ""
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        content_type = headers.get("content-type")
        try:
            if event.get("isBase64Encoded") and body:
                raw = base64.b64decode(body, validate=True)
            else:
                raw = body.encode() if isinstance(body, str) else bytes(body)
            if isinstance(content_type, str) and is_multipart(content_type):
                return multipart_form(raw, content_type)
            return parse_qs(
                raw.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (ValueError, TypeError):  # binascii.Error, UnicodeDecodeError: ValueErrors
            raise BadForm("unreadable form") from None

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        method = (event.get("requestContext", {}).get("http", {}).get("method") or "GET").upper()
        try:
            form = self.form_of(event) if method == "POST" else {}
        except BadForm:
            logger.warning("unsubscribe refused", reason="body")
            return _response("bad_form")
        if any(len(values) != 1 for values in form.values()):
            logger.warning("unsubscribe refused", reason="repeated_field")
            return _response("bad_form")
        query = event.get("queryStringParameters") or {}
        token = form["t"][0] if "t" in form else query.get("t")
        now = self.clock.now()
        try:
            claims = verify(self.secrets, token or "", now)
        except InvalidToken as exc:
            logger.warning("unsubscribe refused", reason=exc.reason)
            return _response(exc.reason)
        assert token is not None
        found = self.customers.get_customers([claims.customer_id]).get(claims.customer_id)
        if found is None:
            logger.info("unsubscribe not applied", reason="unknown", channel=claims.channel)
            return _response("unknown")
        if method != "POST":
            # the page's forms carry a token issued now: a save is stale when something
            # changed after the page was shown, not after the message was sent (a customer
            # who paused everything has no message newer than the pause to resume from)
            shown = page_state(found, claims, self.preferences, now)
            return self._page("preferences", claims, found, now, shown)
        action = (form.get("action") or [""])[0]
        if action == "save":
            return self._save(claims, token, found, form, now)
        if not one_click_form(form, action):
            logger.warning("unsubscribe refused", reason="form")
            return _response("bad_form")
        return self._one_click(claims, found, now, channel_only=action == "unsubscribe")

    def _one_click(
        self, claims: Claims, customer: Customer, now: datetime, *, channel_only: bool
    ) -> dict[str, Any]:
        plain = claims.model_copy(update={"topic": None}) if channel_only else claims
        outcome = decide(plain, customer, self.preferences)
        if outcome not in ("unsubscribe", "topic"):
            logger.info("unsubscribe not applied", reason=outcome, channel=claims.channel)
            return _response(outcome)
        detail: InboundDetail
        if outcome == "topic":
            assert plain.topic is not None
            detail = PreferencesChanged(
                customer_id=claims.customer_id,
                occurred_at=now,
                topics={plain.topic: {ConsentChannel(claims.channel): ConsentStatus.OPTED_OUT}},
                source=SOURCE_LINK,
            )
        else:
            detail = ConsentChanged(
                customer_id=claims.customer_id,
                occurred_at=now,
                channel=ConsentChannel(claims.channel),
                status=ConsentStatus.OPTED_OUT,
                source=SOURCE_LINK,
            )
        self.inbound.put_inbound(detail)
        logger.info(
            "unsubscribed",
            channel=claims.channel,
            topic=plain.topic,
            customer_id=claims.customer_id,
        )
        return _response("done")

    def _reissued(self, claims: Claims, now: datetime) -> str:
        """The link's token issued again at ``now`` (same customer, channel, topic and
        expiry: a page never makes a link live longer), for the forms of a page shown now."""
        return sign(
            self.secrets[0],
            claims.customer_id,
            claims.channel,
            claims.expires_at,
            issued_at=now,
            topic=claims.topic,
        )

    def _page(
        self, kind: str, claims: Claims, customer: Customer, now: datetime, shown: PageState
    ) -> dict[str, Any]:
        """The page showing ``shown``, its forms carrying the link's token issued ``now`` and
        the save form ``shown`` signed for that token."""
        fresh = self._reissued(claims, now)
        signed = sign_page_state(self.secrets[0], fresh, shown.model_dump_json().encode())
        form = preference_form(customer, claims, self.preferences, fresh, now, shown, signed)
        return _response(kind, fresh, form)

    def _save(
        self,
        claims: Claims,
        token: str,
        customer: Customer,
        form: Mapping[str, list[str]],
        now: datetime,
    ) -> dict[str, Any]:
        if changed_since(claims, customer):  # since the page was shown (its token's time)
            logger.info("preferences not applied", reason="stale", channel=claims.channel)
            return _response("page_stale")
        try:
            # what the page showed, signed for its token: the save is diffed against that
            shown = read_page_state(self.secrets, token, (form.get("shown") or [""])[0])
        except (InvalidToken, ValueError):
            logger.warning("preferences refused", reason="page_state")
            return _response("bad_form")
        try:
            change = parse_form(form, customer, claims, self.preferences, now, shown)
        except FormRefused as exc:
            # the code and Kizuna's own key, never the posted text (docs/ARCHITECTURE.md)
            logger.warning("preferences refused", reason=exc.reason, field=exc.field)
            return _response("bad_form")
        if change is not None:
            self.inbound.put_inbound(change)
            logger.info("preferences changed", customer_id=claims.customer_id)
        # the page again, as saved (before ingest has applied it), with a token issued now
        # (the change is not "after" it)
        saved = page_state(customer, claims, self.preferences, now, shown.after(change))
        return self._page("saved", claims, customer, now, saved)
