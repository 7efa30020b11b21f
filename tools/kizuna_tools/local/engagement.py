"""Simulated recipients on the local runtime: SES event publishing for the emails it accepts,
and the shop's app reporting opens of the push messages it receives.

On AWS, the configuration set Kizuna's emails carry publishes their sending events
(``Email Delivered``, ``Email Opened``, ``Email Clicked``, ``Email Bounced``,
``Email Complaint Received``) to the default bus, where the feedback rule queues them for the
feedback function. Locally nobody reads the mail, so with an :class:`EngagementModel` the
runtime plays the recipients: for each email moto's SES accepted *with a configuration set*
(SES publishes nothing without one), it puts records shaped like SES's event publishing JSON on
the default bus at virtual times, and the template's own rule, queue and feedback function fold
them into the ledger and the suppressions.

What happens to one email (one random stream per message, seeded by the model's ``seed`` and
the message's Kizuna tags, so a replay draws the same outcomes):

- a permanent bounce with probability ``bounce`` (nothing else follows), otherwise a delivery,
  one second after the send;
- an open with probability ``open`` x the customer's ``rfm_segment`` factor x the send's local
  hour factor (capped at 1), after an exponential delay of mean ``open_delay_hours``;
- a click, given an open, with probability ``click`` x the segment factor, minutes later;
- a complaint, given a delivery, with probability ``complaint``, after the open delay.

What happens to one push message (to one customer: a message to several devices is opened
once): one second after the send it is delivered (the fake provider accepted it), and it is
opened with probability ``open`` x segment factor x hour factor, after the same exponential
delay; the open is a ``push.opened`` event (docs/EVENTS.md) with the push's ``message`` data
value, put on Kizuna's bus as the shop's app would (source :data:`APP_SOURCE`), which ingest
stamps on the ledger. A push has no link, bounce or complaint: only ``open`` is read.

What happens to one LINE message: LINE reports nothing, so Kizuna rewrites its links to
signed tracked links on its own function URL (:mod:`kizuna.delivery.links`). With ``line``
rates, the recipient clicks the message's first tracked link with probability ``click`` x the
send's local hour factor (capped at 1; no segment factor: the message names a LINE user, not
a customer), after an exponential delay of mean ``click_delay_minutes``: a ``GET`` of the link,
through ``open_url``, exactly as a browser hits the function URL (the function stamps the
ledger and answers 302). Only ``click`` is read for LINE (no opens, bounces or complaints).
"""

from __future__ import annotations

import base64
import heapq
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from kizuna.delivery.tags import (
    TAG_CUSTOMER,
    TAG_EXECUTION,
    TAG_MESSAGE,
    TAG_STEP,
    decode_tag_value,
)
from kizuna.events import PushOpened, PushPlatform, inbound_type

SesEvent = Literal["Delivery", "Open", "Click", "Bounce", "Complaint"]
PushEvent = Literal["PushDelivery", "PushOpen"]
LineEvent = Literal["LineClick"]
DETAIL_TYPES: dict[str, str] = {
    "Delivery": "Email Delivered",
    "Open": "Email Opened",
    "Click": "Email Clicked",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
}
CHANNELS_WITH_FEEDBACK = ("email", "push", "line")
TRACKED_PATH = "/l/"  # kizuna.delivery.links.PATH_PREFIX: a tracked link's path
APP_SOURCE = "com.example.shop.app"  # the simulated app's events (ingest takes any non-Kizuna)
DELIVERY_DELAY = timedelta(seconds=1)
USER_AGENT = "Mozilla/5.0 (kizuna-local simulated recipient)"
SIMULATED_IP = "192.0.2.10"  # TEST-NET-1: never a real client
_HREF = re.compile(rb"""href=["'](https?://[^"'\s>]+)["']""", re.IGNORECASE)
_TEXT_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class ChannelRates:
    """Per-message probabilities on one channel."""

    open: float = 0.35
    click: float = 0.2  # given an open
    bounce: float = 0.01
    complaint: float = 0.001  # given a delivery

    def __post_init__(self) -> None:
        for name in ("open", "click", "bounce", "complaint"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"engagement rate {name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class EngagementModel:
    """How simulated recipients respond (``kizuna local run`` turns it on; off by default).

    ``channels``: rates by channel (``email``; ``push``, whose ``open`` alone is read;
    ``line``, whose ``click`` alone is read, per message: LINE has no open).
    ``segment_factors``: ``rfm_segment`` -> multiplier on the open and click rates (a customer
    without a segment, or one not listed, gets 1). ``hour_factors``: the send's hour (0-23) in
    ``time_zone`` -> multiplier on the open rate.
    """

    channels: Mapping[str, ChannelRates] = field(default_factory=lambda: {"email": ChannelRates()})
    segment_factors: Mapping[str, float] = field(default_factory=dict)
    hour_factors: Mapping[int, float] = field(default_factory=dict)
    time_zone: str = "Asia/Tokyo"
    open_delay_hours: float = 3.0
    click_delay_minutes: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.channels) - set(CHANNELS_WITH_FEEDBACK))
        if unknown:
            raise ValueError(
                f"engagement channels {unknown}: the local runtime has a feedback path for "
                f"{', '.join(CHANNELS_WITH_FEEDBACK)} only"
            )
        for segment, factor in self.segment_factors.items():
            if factor < 0:
                raise ValueError(f"segment_factors[{segment!r}] must be >= 0, got {factor}")
        for hour, factor in self.hour_factors.items():
            if not (isinstance(hour, int) and 0 <= hour <= 23) or factor < 0:
                raise ValueError(f"hour_factors[{hour!r}] needs an hour 0-23 and a factor >= 0")
        if self.open_delay_hours <= 0 or self.click_delay_minutes <= 0:
            raise ValueError("open_delay_hours and click_delay_minutes must be > 0")
        ZoneInfo(self.time_zone)  # an unknown zone fails here, by name

    def open_rate(self, channel: str, segment: str | None, sent_at: datetime) -> float:
        rates = self.channels.get(channel)
        if rates is None:
            return 0.0
        hour = sent_at.astimezone(ZoneInfo(self.time_zone)).hour
        factor = self.segment_factors.get(segment or "", 1.0) * self.hour_factors.get(hour, 1.0)
        return min(1.0, rates.open * factor)

    def click_rate(self, channel: str, segment: str | None) -> float:
        rates = self.channels.get(channel)
        if rates is None:
            return 0.0
        return min(1.0, rates.click * self.segment_factors.get(segment or "", 1.0))


@dataclass
class _PushSent:
    customer_id: str
    message: str  # the push's message reference (its ``message`` data value)
    platform: PushPlatform | None
    sent_at: datetime


@dataclass
class _LineSent:
    link: str  # the message's first tracked link
    sent_at: datetime


@dataclass
class _Sent:
    message_id: str
    sent_at: datetime
    source: str
    destination: list[str]
    tags: dict[str, list[str]]
    link: str


def ses_timestamp(at: datetime) -> str:
    """SES's format: ``2026-01-05T02:59:00.000Z``."""
    return at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{at.microsecond // 1000:03d}Z"
    )


def _first_link(content: Mapping[str, Any]) -> str:
    """The first http(s) link of the email's HTML that is not an unsubscribe link."""
    html = ((content.get("Simple") or {}).get("Body") or {}).get("Html") or {}
    data: bytes
    if html.get("Data"):
        data = str(html["Data"]).encode()
    else:
        raw = (content.get("Raw") or {}).get("Data") or ""
        try:
            data = base64.b64decode(raw)
        except (ValueError, TypeError):
            data = b""
    for match in _HREF.finditer(data):
        url = match.group(1).decode(errors="replace")
        if "unsubscribe" not in url.lower():
            return url
    return "https://shop.example/"


class EngagementSimulator:
    """Plays the recipients of the emails SES accepted, as SES event publishing records.

    ``emit(detail_type, detail, at)`` puts one record on the default bus; ``emit_app`` (the
    same signature) puts an app's event on Kizuna's bus (needed for push rates);
    ``segment_of`` reads a customer's ``rfm_segment`` (only called when the model has
    segment factors); ``open_url(method, url)`` makes an HTTP request as a browser does and
    returns its status (needed for LINE rates: a click is a GET of the tracked link).
    """

    def __init__(
        self,
        model: EngagementModel,
        emit: Callable[[str, dict[str, Any], datetime], None],
        segment_of: Callable[[str], str | None],
        emit_app: Callable[[str, dict[str, Any], datetime], None] | None = None,
        open_url: Callable[[str, str], int] | None = None,
    ) -> None:
        if "push" in model.channels and emit_app is None:
            raise ValueError("push engagement needs emit_app: the app's bus")
        if "line" in model.channels and open_url is None:
            raise ValueError("LINE engagement needs open_url: the browser that follows links")
        self.model = model
        self._emit = emit
        self._emit_app = emit_app
        self._open_url = open_url
        self._segment_of = segment_of
        self._lock = threading.Lock()
        self._due: list[
            tuple[
                datetime,
                int,
                SesEvent | PushEvent | LineEvent,
                _Sent | _PushSent | _LineSent,
                random.Random,
            ]
        ] = []
        self._order = 0
        self._pushed: set[tuple[str, str]] = set()  # (customer, message): one open at most
        self.emitted: Counter[str] = Counter()

    def sent(self, message_id: str, request: Mapping[str, Any] | None, at: datetime) -> None:
        """An SESv2 SendEmail that SES accepted: schedule what its recipient does."""
        if not request or not request.get("ConfigurationSetName"):
            return  # SES publishes events only for a configuration set's sends
        tags = {
            str(t["Name"]): [str(t["Value"])]
            for t in request.get("EmailTags") or []
            if t.get("Name") and t.get("Value") is not None
        }
        tags["ses:configuration-set"] = [str(request["ConfigurationSetName"])]
        destination = request.get("Destination") or {}
        sent = _Sent(
            message_id=message_id,
            sent_at=at,
            source=str(request.get("FromEmailAddress") or ""),
            destination=[str(a) for a in destination.get("ToAddresses") or []],
            tags=tags,
            link=_first_link(request.get("Content") or {}),
        )
        key = "|".join(
            [str(self.model.seed)]
            + [(tags.get(t) or [""])[0] for t in (TAG_CUSTOMER, TAG_EXECUTION, TAG_STEP)]
        )
        seed = key if tags.get(TAG_CUSTOMER) else f"{self.model.seed}|{message_id}"
        rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self._push(at + DELIVERY_DELAY, "Delivery", sent, rng)

    def push_sent(self, context: Mapping[str, Any] | None, channel_type: str, at: datetime) -> None:
        """A push the provider accepted for one device (``context``: its data payload,
        ``channel_type``: APNS, APNS_SANDBOX or GCM): schedule whether the customer opens
        it. A message reaches a customer's devices once: its other devices, and a retried
        send, add nothing."""
        if "push" not in self.model.channels or not context:
            return
        customer, message = context.get(TAG_CUSTOMER), context.get(TAG_MESSAGE)
        if not isinstance(customer, str) or not isinstance(message, str):
            return  # not a Kizuna message: nothing to attribute an open to
        with self._lock:
            if (customer, message) in self._pushed:
                return
            self._pushed.add((customer, message))
        platform = PushPlatform.FCM if channel_type == "GCM" else PushPlatform.APNS
        sent = _PushSent(customer, message, platform, at)
        rng = random.Random(f"{self.model.seed}|push|{customer}|{message}")  # noqa: S311
        self._push(at + DELIVERY_DELAY, "PushDelivery", sent, rng)

    def line_sent(self, messages: Any, at: datetime) -> None:
        """A LINE push the API accepted (``messages``: its message objects): schedule whether
        the recipient clicks its first tracked link."""
        if "line" not in self.model.channels or not isinstance(messages, list):
            return
        link = next(
            (
                url
                for m in messages
                if isinstance(m, dict) and isinstance(m.get("text"), str)
                for url in _TEXT_LINK.findall(m["text"])
                if TRACKED_PATH in url
            ),
            None,
        )
        if link is None:
            return  # no tracked link: nothing to click
        rng = random.Random(f"{self.model.seed}|line|{link}")  # noqa: S311 - a simulation
        rates = self.model.channels["line"]
        hour = at.astimezone(ZoneInfo(self.model.time_zone)).hour
        chance = min(1.0, rates.click * self.model.hour_factors.get(hour, 1.0))
        if rng.random() < chance:
            minutes = rng.expovariate(1 / self.model.click_delay_minutes)
            self._push(at + timedelta(minutes=minutes), "LineClick", _LineSent(link, at), rng)

    def _push(
        self,
        at: datetime,
        kind: SesEvent | PushEvent | LineEvent,
        sent: _Sent | _PushSent | _LineSent,
        rng: random.Random,
    ) -> None:
        with self._lock:
            self._order += 1
            heapq.heappush(self._due, (at, self._order, kind, sent, rng))

    def next_due(self) -> datetime | None:
        with self._lock:
            return self._due[0][0] if self._due else None

    def fire(self, now: datetime) -> int:
        """Emit every event due by ``now`` (and schedule what follows them)."""
        fired = 0
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return fired
                at, _, kind, sent, rng = heapq.heappop(self._due)
            fired += 1
            self._happen(at, kind, sent, rng)

    def _happen(
        self,
        at: datetime,
        kind: SesEvent | PushEvent | LineEvent,
        sent: _Sent | _PushSent | _LineSent,
        rng: random.Random,
    ) -> None:
        if isinstance(sent, _LineSent):
            if self._open_url is not None:
                status = self._open_url("GET", sent.link)
                self.emitted["LineClick" if status == 302 else "LineClickRefused"] += 1
            return
        if isinstance(sent, _PushSent):
            self._happen_push(at, kind, sent, rng)
            return
        rates = self.model.channels.get("email")
        if rates is None:
            return
        if kind == "Delivery":
            if rng.random() < rates.bounce:
                self._record("Bounce", sent, at)
                return
            self._record("Delivery", sent, at)
            customer = sent.tags.get(TAG_CUSTOMER)
            segment = (
                self._segment_of(decode_tag_value(customer[0]))
                if customer and self.model.segment_factors
                else None
            )
            delay = timedelta(hours=rng.expovariate(1 / self.model.open_delay_hours))
            if rng.random() < self.model.open_rate("email", segment, sent.sent_at):
                self._push(at + delay, "Open", sent, rng)
                if rng.random() < self.model.click_rate("email", segment):
                    minutes = rng.expovariate(1 / self.model.click_delay_minutes)
                    self._push(at + delay + timedelta(minutes=minutes), "Click", sent, rng)
            if rng.random() < rates.complaint:
                self._push(at + delay, "Complaint", sent, rng)
            return
        if kind in DETAIL_TYPES:
            self._record(cast(SesEvent, kind), sent, at)

    def _happen_push(
        self,
        at: datetime,
        kind: SesEvent | PushEvent | LineEvent,
        sent: _PushSent,
        rng: random.Random,
    ) -> None:
        if kind == "PushDelivery":
            segment = self._segment_of(sent.customer_id) if self.model.segment_factors else None
            delay = timedelta(hours=rng.expovariate(1 / self.model.open_delay_hours))
            if rng.random() < self.model.open_rate("push", segment, sent.sent_at):
                self._push(at + delay, "PushOpen", sent, rng)
            return
        if self._emit_app is None:
            return
        detail = PushOpened(
            customer_id=sent.customer_id,
            occurred_at=at,
            message=sent.message,
            platform=sent.platform,
        )
        self._emit_app(inbound_type(detail), detail.model_dump(mode="json"), at)
        self.emitted[inbound_type(detail)] += 1

    def _record(self, kind: SesEvent, sent: _Sent, at: datetime) -> None:
        stamp = ses_timestamp(at)
        detail: dict[str, Any] = {
            "eventType": kind,
            "mail": {
                "timestamp": ses_timestamp(sent.sent_at),
                "source": sent.source,
                "sendingAccountId": "123456789012",
                "messageId": sent.message_id,
                "destination": sent.destination,
                "headersTruncated": False,
                "tags": sent.tags,
            },
        }
        feedback_id = f"{uuid.uuid4()}-000000"
        match kind:
            case "Delivery":
                detail["delivery"] = {
                    "timestamp": stamp,
                    "processingTimeMillis": 1000,
                    "recipients": sent.destination,
                    "smtpResponse": "250 2.6.0 Message received",
                    "reportingMTA": "a8-70.smtp-out.amazonses.com",
                }
            case "Open":
                detail["open"] = {
                    "timestamp": stamp,
                    "ipAddress": SIMULATED_IP,
                    "userAgent": USER_AGENT,
                }
            case "Click":
                detail["click"] = {
                    "timestamp": stamp,
                    "ipAddress": SIMULATED_IP,
                    "userAgent": USER_AGENT,
                    "link": sent.link,
                    "linkTags": {},
                }
            case "Bounce":
                detail["bounce"] = {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "bouncedRecipients": [
                        {
                            "emailAddress": a,
                            "action": "failed",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                        }
                        for a in sent.destination
                    ],
                    "timestamp": stamp,
                    "feedbackId": feedback_id,
                    "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
                }
            case "Complaint":
                detail["complaint"] = {
                    "complainedRecipients": [{"emailAddress": a} for a in sent.destination],
                    "timestamp": stamp,
                    "feedbackId": feedback_id,
                    "complaintSubType": None,
                    "userAgent": USER_AGENT,
                    "complaintFeedbackType": "abuse",
                    "arrivalDate": stamp,
                }
        self._emit(DETAIL_TYPES[kind], detail, at)
        self.emitted[kind] += 1
