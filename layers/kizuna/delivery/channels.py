"""Channel adapters: one rendered message to one customer over SES, SNS, push or LINE (and
push to many customers in one call: :meth:`PinpointPush.send_many`).

Every adapter has the same shape (:class:`Channel`): ``send(message) -> SendResult``, and
signals failure with one of four exceptions so the caller can decide without knowing the
provider:

- :class:`Throttled`, :class:`TemporaryFailure` — retryable (:func:`send_with_retry`);
- :class:`PermanentFailure` — record as failed, do not retry;
- :class:`InvalidAddress` — a permanent failure caused by the address (an expired push
  token): remove it, then maybe fall back to another channel.

A failure whose outcome is unknown (the request left but no answer came back) is raised with
``maybe_sent=True`` and is not retried by :func:`send_with_retry` unless the provider
deduplicates (LINE, with its retry key): a duplicate message is worse than a failed one.

boto3 clients are passed in; build them once per container, with botocore's own retries
limited (``Config(retries={"mode": "standard", "total_max_attempts": 1})``) so
:func:`send_with_retry` is the one retry policy.
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Literal,
    NamedTuple,
    Protocol,
    runtime_checkable,
)

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kizuna.delivery.content import (
    EmailContent,
    LineContent,
    PushContent,
    RenderedMessage,
    SmsContent,
)
from kizuna.delivery.ledger import OUTCOME_UNKNOWN_NOTE
from kizuna.delivery.line_messages import (
    MAX_MULTICAST_RECIPIENTS,
    MAX_TEXT,
    line_length,
    message_problems,
)
from kizuna.delivery.links import (
    TrackedLinks,
    bare_links,
    html_links,
    scheme_links,
    text_links,
    web_link,
)
from kizuna.delivery.policy import E164, PushTarget, address_for, push_targets
from kizuna.delivery.tags import (
    TAG_CUSTOMER,
    TAG_EXECUTION,
    TAG_MESSAGE,
    TAG_PROGRAM,
    TAG_STEP,
    encode_tag_value,
    message_ref,
    tag_name,
)
from kizuna.delivery.unsubscribe import UnsubscribeLinks
from kizuna.domain.customer import PostalAddress
from kizuna.events import Channel as ChannelName
from kizuna.events import DeviceUnregistered
from kizuna.runtime.observability import failure, logger

if TYPE_CHECKING:
    from kizuna.ports import Inbound

SmsType = Literal["Promotional", "Transactional"]


# --- errors ----------------------------------------------------------------------------------
class InvalidAddressInfo(BaseModel):
    """An address the provider says will never work: remove it from the customer."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="Which address: a device key, 'email', 'phone', 'line_user_id'")
    reason: str


class DeliveryError(Exception):
    """A send that did not go through. ``reason`` is short and holds no personal data;
    ``invalid`` lists addresses found dead on the way (push tokens), whatever the outcome."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        reason: str,
        *,
        maybe_sent: bool = False,
        invalid: tuple[InvalidAddressInfo, ...] = (),
    ) -> None:
        self.reason = reason
        self.maybe_sent = maybe_sent
        self.invalid = invalid
        super().__init__(reason)


class Throttled(DeliveryError):
    retryable = True

    def __init__(
        self,
        reason: str = "throttled",
        *,
        retry_after: float | None = None,
        invalid: tuple[InvalidAddressInfo, ...] = (),
    ) -> None:
        super().__init__(reason, invalid=invalid)
        self.retry_after = retry_after


class TemporaryFailure(DeliveryError):
    retryable = True


class PermanentFailure(DeliveryError):
    pass


class OutOfTime(DeliveryError):
    """Not attempted: the invocation's time for provider calls (its delivery budget, under
    the function's timeout) was spent on earlier messages. Surely not sent: a journey's or a
    campaign's message is recorded deferred (``out_of_time``) and sent later, a transactional
    one failed with this reason, where a timeout would have left it ``outcome_unknown``."""

    def __init__(self, reason: str = "not attempted: out of time") -> None:
        super().__init__(reason)


class InvalidAddress(PermanentFailure):
    """The address itself is dead (``address_key``: a device key, 'email', 'phone',
    'line_user_id'): remove it; another channel may still reach the customer."""

    def __init__(
        self, address_key: str, reason: str, *, invalid: tuple[InvalidAddressInfo, ...] = ()
    ) -> None:
        super().__init__(
            f"invalid address {address_key}: {reason}",
            invalid=invalid or (InvalidAddressInfo(key=address_key, reason=reason),),
        )
        self.address_key = address_key


THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "KMSThrottlingException",
    }
)
# 503s: the service did not take the request (AWS's "slow down, try again")
NOT_ACCEPTED_CODES = frozenset({"ServiceUnavailable", "ServiceUnavailableException"})
TEMPORARY_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "InternalServerError",
        "InternalServerErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def classify_client_error(err: ClientError) -> DeliveryError:
    """A botocore ClientError as one of the delivery errors, by code and HTTP status."""
    code = str(err.response.get("Error", {}).get("Code", "Unknown"))
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    operation = getattr(err, "operation_name", "call")
    reason = f"{operation}: {code}"
    if code in THROTTLING_CODES or status == 429:
        return Throttled(reason)
    if code in NOT_ACCEPTED_CODES or status == 503:
        return TemporaryFailure(reason)  # refused before it was taken: safe to send again
    if code in TEMPORARY_CODES or status >= 500:
        # an internal error answered after the request arrived: the provider may have taken
        # the message (none of these APIs takes an idempotency key), so it is not sent again
        return TemporaryFailure(f"{reason} {OUTCOME_UNKNOWN_NOTE}", maybe_sent=True)
    return PermanentFailure(reason)


def _aws_call(fn: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
    """Call a boto3 operation, turning its failures into delivery errors."""
    try:
        return fn(**params)
    except ClientError as err:
        raise classify_client_error(err) from err
    except (EndpointConnectionError, ConnectTimeoutError) as err:
        raise TemporaryFailure(f"connection: {type(err).__name__}") from err
    except (ReadTimeoutError, ConnectionClosedError) as err:
        raise TemporaryFailure(
            f"no answer: {type(err).__name__} {OUTCOME_UNKNOWN_NOTE}", maybe_sent=True
        ) from err


# --- the message -----------------------------------------------------------------------------
class OutboundMessage(BaseModel):
    """One rendered message on its way to one customer over one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(min_length=1)
    program: str = Field(min_length=1)
    step: str = Field(min_length=1)
    execution: str = Field(min_length=1, description="The journey execution: idempotency key")
    channel: ChannelName
    address: str | tuple[PushTarget, ...] | PostalAddress = Field(
        description="Email address, E.164 phone number, LINE user id, push devices, or a "
        "postal address (dm)"
    )
    content: RenderedMessage
    tags: dict[str, str] = Field(default_factory=dict)
    sms_type: SmsType = "Promotional"
    topic: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="The preference topic the message is about (its one-click unsubscribe "
        "opts out of it)",
    )
    batch: str | None = Field(
        default=None,
        description="What the messages of one push batch share (a cohort's run); None: "
        "the execution",
    )
    template: str | None = Field(
        default=None,
        description="The template rendered (a direct mail's print file is per template)",
    )
    transactional: bool = Field(
        default=False,
        description="Sent through the transactional API: consent is the absence of an "
        "opt-out (a direct mail's print-time check asks the same)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OutboundMessage:
        if self.content.channel != self.channel.value:
            raise ValueError(f"{self.content.channel} content on the {self.channel} channel")
        if self.channel is ChannelName.PUSH:
            if not isinstance(self.address, tuple) or not self.address:
                raise ValueError("push needs at least one device")
        elif self.channel is ChannelName.DM:
            if not isinstance(self.address, PostalAddress):
                raise ValueError("dm needs a postal address")
        elif not isinstance(self.address, str) or not self.address:
            raise ValueError(f"{self.channel} needs a single address")
        return self

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution}/{self.step}"

    @property
    def batch_key(self) -> str:
        """Messages batched in one push call share it (and APNs's collapse id): a campaign
        occurrence's or a cohort run's step. A device belongs to one customer, who is in
        a run's step once, so the collapse id never merges two messages."""
        return f"{self.batch}/{self.step}" if self.batch else self.idempotency_key

    def push_context(self) -> dict[str, str]:
        """A push's data payload (Pinpoint ``Context``): the Kizuna tags and the message
        reference the app echoes back when it reports an open (``push.opened``)."""
        return {**self.kizuna_tags(), TAG_MESSAGE: message_ref(self.execution, self.step)}

    def kizuna_tags(self) -> dict[str, str]:
        """Program, step, customer and execution, then the message's own tags."""
        return {
            **self.tags,
            TAG_PROGRAM: self.program,
            TAG_STEP: self.step,
            TAG_CUSTOMER: self.customer_id,
            TAG_EXECUTION: self.execution,
        }


class SendResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider_message_id: str
    invalid_addresses: tuple[InvalidAddressInfo, ...] = ()
    updated_addresses: dict[str, str] = Field(
        default_factory=dict, description="Device key -> the token the provider now uses"
    )
    attempts: int = 1
    links_untracked: bool = Field(
        default=False,
        description="The message has links and none of them went tracked, so no click of "
        "it can be seen. LINE: links to hosts not declared, a tel:, mailto: or line:// link, "
        "a phone number, email address or www. address written bare in a text, "
        "links in Flex, template or imagemap actions, or a text over LINE's 5,000 characters "
        "with them tracked; email: its HTML's links are mailto:, tel:, sms: or other links "
        "SES does not track, or web links written ses:no-track (the unsubscribe link "
        "aside). A message with no link at all is not (nothing to click: no click is a "
        "fact)",
    )
    links_over_limit: bool = Field(
        default=False,
        description="LINE: a text went with its links as written because, tracked, it would "
        "have been over LINE's 5,000 characters (shorten it to have its clicks)",
    )


class Channel(Protocol):
    def send(self, message: OutboundMessage) -> SendResult: ...


SendOutcome = SendResult | DeliveryError  # one message's outcome in a batch


@runtime_checkable
class DeadlineChannel(Protocol):
    """A channel that bounds one message's attempts and waits by itself (the webhook):
    given the instant (``time.monotonic``) its answer must be back by."""

    def send(self, message: OutboundMessage) -> SendResult: ...

    def send_before(self, message: OutboundMessage, deadline: float) -> SendResult: ...


@runtime_checkable
class BatchChannel(Protocol):
    """A channel that also sends many messages in one provider call (push)."""

    max_addresses: int

    def send(self, message: OutboundMessage) -> SendResult: ...

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendOutcome]: ...


def report_dead_devices(
    inbound: Inbound, message: OutboundMessage, invalid: Iterable[InvalidAddressInfo], now: datetime
) -> None:
    """Dead push tokens a send found leave the customer: ``device.unregistered`` through the
    inbound port (ingest is the only writer of the customer item). Other channels' invalid
    addresses are not devices: nothing to report.

    Called once the outcomes are recorded, and never raises: the provider has had the
    message by now, so a report the bus refuses must not fail the send (its retry could not
    send again, and, raised before the record, it left every outcome of the group unwritten:
    ``failed: outcome_unknown`` for messages delivered). The refusal is logged (without the
    token); the token stays on the customer, and the next send to it finds it dead again."""
    if not isinstance(message.address, tuple):
        return
    devices = {t.key: t for t in message.address}
    for info in invalid:
        device = devices.get(info.key)
        if device is None:
            continue
        try:
            inbound.put_inbound(
                DeviceUnregistered(
                    customer_id=message.customer_id, occurred_at=now, token=device.token
                )
            )
        except Exception as error:
            logger.error(
                "dead push token not reported",
                customer_id=message.customer_id,
                device=info.key,
                **failure(error),
            )


# --- retry -----------------------------------------------------------------------------------
def _past(deadline: float | None, monotonic: Callable[[], float], wait: float = 0.0) -> bool:
    """True if ``wait`` more seconds would reach ``deadline`` (None: no deadline)."""
    return deadline is not None and monotonic() + wait >= deadline


def send_with_retry(
    channel: Channel,
    message: OutboundMessage,
    attempts: int = 4,
    base_delay: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    *,
    max_delay: float = 5.0,
    jitter: Callable[[], float] = random.random,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> SendResult:
    """Send, retrying throttling and temporary failures with exponential backoff and jitter
    (``base_delay * 2**n``, capped, then scaled by 0.5-1.0). Raises the last error as a
    :class:`DeliveryError` (a raw ClientError is classified first, and chained). Permanent
    failures, invalid addresses and failures that may have been delivered are not retried.
    ``deadline`` (a ``monotonic`` instant): no attempt starts at or after it (the first:
    :class:`OutOfTime`), no wait runs into it (the last error is raised), and a
    :class:`DeadlineChannel` is told it.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if _past(deadline, monotonic):
        raise OutOfTime()
    for attempt in range(1, attempts + 1):
        try:
            if deadline is not None and isinstance(channel, DeadlineChannel):
                result = channel.send_before(message, deadline)
            else:
                result = channel.send(message)
        except ClientError as err:
            error: DeliveryError = classify_client_error(err)
            error.__cause__ = err
        except DeliveryError as err:
            error = err
        else:
            return result if attempt == 1 else result.model_copy(update={"attempts": attempt})
        if not _retry(error) or attempt == attempts:
            raise error
        delay = _backoff(attempt, [error], base_delay, max_delay, jitter)
        if _past(deadline, monotonic, delay):
            raise error
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retry(error: DeliveryError) -> bool:
    return error.retryable and not error.maybe_sent


def _backoff(
    attempt: int,
    errors: Iterable[DeliveryError],
    base_delay: float,
    max_delay: float,
    jitter: Callable[[], float],
) -> float:
    """``base_delay * 2**(attempt-1)``, capped, scaled by 0.5-1.0; at least the longest
    ``Retry-After`` a throttled answer asked for (capped too)."""
    delay: float = min(max_delay, base_delay * 2 ** (attempt - 1))
    delay *= 0.5 + 0.5 * jitter()
    after = max((e.retry_after or 0.0 for e in errors if isinstance(e, Throttled)), default=0.0)
    return max(delay, min(after, max_delay)) if after else delay


def unexpected_outcome(channel: str, error: Exception) -> SendOutcome:
    """The outcome of a call that raised what no channel expected: a delivery error as it
    is; anything else logged (its type, never its text) and failed, maybe sent (the call may
    have reached the provider), so that message is never sent twice and the others of its
    group are still sent and recorded."""
    if isinstance(error, DeliveryError):
        return error
    logger.error("unexpected send error", channel=channel, **failure(error))
    return TemporaryFailure(
        f"{channel}: unexpected {type(error).__name__} {OUTCOME_UNKNOWN_NOTE}", maybe_sent=True
    )


def send_many_with_retry(
    channel: BatchChannel,
    messages: Sequence[OutboundMessage],
    attempts: int = 4,
    base_delay: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    *,
    max_delay: float = 5.0,
    jitter: Callable[[], float] = random.random,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[SendOutcome]:
    """:func:`send_with_retry` for a batch: one call per attempt, and only the messages whose
    outcome is retryable (throttled or temporary, surely not delivered) go again, with the
    same backoff. Each message's outcome, in order (``attempts`` on a result: the attempt
    that delivered it). Past ``deadline`` nothing is started (:class:`OutOfTime`) and no
    wait runs into it (the last outcomes stand)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if _past(deadline, monotonic):
        return [OutOfTime() for _ in messages]
    outcomes: list[SendOutcome] = [TemporaryFailure("not sent")] * len(messages)
    pending = list(range(len(messages)))
    for attempt in range(1, attempts + 1):
        try:
            answers = channel.send_many([messages[i] for i in pending])
        except Exception as error:
            if attempt == 1:
                raise
            # what an earlier attempt delivered stands: only this call's messages fail
            failed = unexpected_outcome(str(messages[pending[0]].channel), error)
            for i in pending:
                outcomes[i] = failed
            break
        retry: list[int] = []
        errors: list[DeliveryError] = []
        for i, answer in zip(pending, answers, strict=True):
            if isinstance(answer, SendResult) and attempt > 1:
                answer = answer.model_copy(update={"attempts": attempt})
            outcomes[i] = answer
            if isinstance(answer, DeliveryError) and _retry(answer):
                retry.append(i)
                errors.append(answer)
        if not retry or attempt == attempts:
            break
        delay = _backoff(attempt, errors, base_delay, max_delay, jitter)
        if _past(deadline, monotonic, delay):
            break
        sleep(delay)
        pending = retry
    return outcomes


_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` answer: delta-seconds in ASCII digits; anything else (an
    HTTP date, ``²`` or another Latin-1 "digit" ``str.isdigit`` takes and ``float`` refuses)
    is no hint."""
    if value is None or not _DELTA_SECONDS.fullmatch(value.strip()):
        return None
    return float(value.strip())


def send_all(
    channels: Mapping[str, Channel],
    messages: Sequence[OutboundMessage],
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    *,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[SendOutcome]:
    """Each message's outcome, in order: on a channel that batches (push), the messages in
    calls of up to its ``max_addresses`` devices (:func:`push_batches`,
    :func:`send_many_with_retry`); on the others, one call (with retries) per message.

    ``deadline`` (a ``monotonic`` instant, the invocation's delivery budget): messages not
    started by then are not sent, each :class:`OutOfTime` (recorded deferred or failed, so
    none is left ``outcome_unknown`` by the function's timeout), and no retry waits past it."""
    outcomes: dict[int, SendOutcome] = {}
    by_channel: dict[str, list[int]] = {}
    for i, message in enumerate(messages):
        by_channel.setdefault(str(message.channel), []).append(i)
    for name, indexes in by_channel.items():
        channel = channels[name]
        if isinstance(channel, BatchChannel):
            mine = [messages[i] for i in indexes]
            for group in push_batches(mine, channel.max_addresses):
                answers: Sequence[SendOutcome]
                try:
                    answers = send_many_with_retry(
                        channel,
                        [mine[j] for j in group],
                        attempts=attempts,
                        sleep=sleep,
                        deadline=deadline,
                        monotonic=monotonic,
                    )
                except Exception as error:
                    # as for one message below: the call may have reached the provider, so
                    # each message of the call fails, maybe sent; the other groups and
                    # channels are still sent and every outcome recorded
                    answers = [unexpected_outcome(name, error)] * len(group)
                outcomes.update((indexes[j], a) for j, a in zip(group, answers, strict=True))
            continue
        for i in indexes:
            try:
                outcomes[i] = send_with_retry(
                    channel,
                    messages[i],
                    attempts=attempts,
                    sleep=sleep,
                    deadline=deadline,
                    monotonic=monotonic,
                )
            except Exception as error:
                # An error no channel expected: that message fails, maybe sent (it may have
                # reached the provider); the others of the group are still sent and every
                # outcome recorded (raised, it left the whole group's claims dispatched and
                # unrecorded: outcome_unknown, nothing sent to those after it)
                outcomes[i] = unexpected_outcome(name, error)
    return [outcomes[i] for i in range(len(messages))]


# --- email: SESv2 ----------------------------------------------------------------------------
ONE_CLICK = "List-Unsubscribe=One-Click"


class SesEmail:
    """SESv2 ``SendEmail`` through a configuration set (its event destination feeds
    :mod:`kizuna.delivery.feedback`), with program/step/customer/execution tags and RFC 8058
    one-click unsubscribe headers.

    By default the message is a ``Simple`` one with ``Headers`` (SES builds the MIME and
    encodes Japanese subjects); ``raw_mime=True`` builds the MIME here instead.
    """

    def __init__(
        self,
        client_sesv2: Any,
        from_address: str,
        configuration_set: str,
        unsubscribe: UnsubscribeLinks,
        *,
        reply_to: tuple[str, ...] = (),
        raw_mime: bool = False,
    ) -> None:
        if "@" not in parseaddr(from_address)[1]:
            raise ValueError("from_address must be an email address")
        self._client = client_sesv2
        self._from = from_address
        self._configuration_set = configuration_set
        self._unsubscribe = unsubscribe
        self._reply_to = reply_to
        self._raw = raw_mime

    def headers(self, message: OutboundMessage) -> list[dict[str, str]]:
        url = self._unsubscribe.url(message.customer_id, ChannelName.EMAIL, topic=message.topic)
        return [
            {"Name": "List-Unsubscribe", "Value": f"<{url}>"},
            {"Name": "List-Unsubscribe-Post", "Value": ONE_CLICK},
        ]

    @staticmethod
    def email_tags(message: OutboundMessage) -> list[dict[str, str]]:
        tags = []
        for name, value in message.kizuna_tags().items():
            try:
                tags.append({"Name": tag_name(name), "Value": encode_tag_value(value)})
            except ValueError:
                continue  # over 192 bytes: too long to carry even in base64, left off
        return tags

    def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, EmailContent) or not isinstance(message.address, str):
            raise PermanentFailure("SesEmail sends email content to one address")
        if "@" not in message.address or any(c in message.address for c in "\r\n<>,;"):
            raise InvalidAddress("email", "not an email address")
        headers = self.headers(message)
        params: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [message.address]},
            "ConfigurationSetName": self._configuration_set,
            "EmailTags": self.email_tags(message),
        }
        if self._reply_to:
            params["ReplyToAddresses"] = list(self._reply_to)
        if self._raw:
            params["Content"] = {"Raw": {"Data": self.mime(message.address, content, headers)}}
        else:
            params["Content"] = {
                "Simple": {
                    "Subject": {"Data": content.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": content.text, "Charset": "UTF-8"},
                        "Html": {"Data": content.html, "Charset": "UTF-8"},
                    },
                    "Headers": headers,
                }
            }
        response = _aws_call(self._client.send_email, **params)
        return SendResult(
            provider_message_id=str(response["MessageId"]),
            links_untracked=email_links_untracked(content.html, own=self._unsubscribe.is_own),
        )

    def mime(self, to: str, content: EmailContent, headers: list[dict[str, str]]) -> bytes:
        """The whole message as RFC 5322 bytes: multipart/alternative, text then HTML."""
        msg = EmailMessage(policy=email.policy.SMTP)
        name, addr = parseaddr(self._from)
        msg["From"] = Address(display_name=name, addr_spec=addr) if name else addr
        msg["To"] = to
        if self._reply_to:
            msg["Reply-To"] = ", ".join(self._reply_to)
        msg["Subject"] = content.subject
        for header in headers:
            msg[header["Name"]] = header["Value"]
        msg.set_content(content.text, subtype="plain", charset="utf-8", cte="base64")
        msg.add_alternative(content.html, subtype="html", charset="utf-8", cte="base64")
        return msg.as_bytes()


def email_links_untracked(html: str, *, own: Callable[[str], bool]) -> bool:
    """Whether an email's HTML part has links and none SES's click tracking rewrites, so no
    click of it can be seen (``links_untracked``). Its links are its ``<a>`` elements'
    (:func:`kizuna.delivery.links.html_links`), a link to Kizuna's own function aside
    (``own``: the footer's unsubscribe link, written ``ses:no-track``); SES tracks a web
    link (:func:`kizuna.delivery.links.web_link`) not written ``ses:no-track``, and no
    ``mailto:``, ``tel:``, ``sms:`` or other link. One tracked link is enough; an email with
    no link at all is not marked (nothing to click: no click is a fact). The text part is
    not read: SES tracks no link of it, and a mail app shows the HTML part."""
    found = [link for link in html_links(html) if not own(link.href)]
    return bool(found) and not any(web_link(link.href) and not link.no_track for link in found)


# --- SMS: SNS --------------------------------------------------------------------------------
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}\Z")


class SnsSms:
    """SNS ``Publish`` to an E.164 number; Promotional or Transactional per message."""

    def __init__(
        self,
        client_sns: Any,
        sender_id: str | None = None,
        *,
        origination_number: str | None = None,
    ) -> None:
        if sender_id is not None and not _SENDER_ID.match(sender_id):
            raise ValueError("sender_id is 1-11 letters and digits, at least one letter")
        if origination_number is not None and not E164.match(origination_number):
            raise ValueError("origination_number must be E.164")
        self._client = client_sns
        self._sender_id = sender_id
        self._origination_number = origination_number

    def attributes(self, message: OutboundMessage) -> dict[str, dict[str, str]]:
        attrs = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": message.sms_type}}
        if self._sender_id:
            attrs["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self._sender_id}
        if self._origination_number:
            attrs["AWS.MM.SMS.OriginationNumber"] = {
                "DataType": "String",
                "StringValue": self._origination_number,
            }
        return attrs

    def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, SmsContent) or not isinstance(message.address, str):
            raise PermanentFailure("SnsSms sends SMS content to one number")
        if not E164.match(message.address):
            raise InvalidAddress("phone", "not an E.164 number")
        response = _aws_call(
            self._client.publish,
            PhoneNumber=message.address,
            Message=content.text,
            MessageAttributes=self.attributes(message),
        )
        return SendResult(provider_message_id=str(response["MessageId"]))

    def opted_out_numbers(self) -> Iterator[str]:
        """Every number that replied STOP (``ListPhoneNumbersOptedOut``, all pages), for the
        periodic sweep that feeds :func:`kizuna.delivery.feedback.parse_sms_opt_out`."""
        token: str | None = None
        while True:
            params = {"nextToken": token} if token else {}
            page = _aws_call(self._client.list_phone_numbers_opted_out, **params)
            yield from page.get("phoneNumbers", [])
            token = page.get("nextToken")
            if not token:
                return


# --- push: End User Messaging Push (pinpoint SendMessages) -----------------------------------
_TOKEN_GONE = frozenset({400, 404, 410})
# A refusal of the sender, not of the device: the app's credentials (APNs 403
# InvalidProviderToken / ExpiredProviderToken, FCM 401 THIRD_PARTY_AUTH_ERROR, 403
# SENDER_ID_MISMATCH / PERMISSION_DENIED) or the payload (APNs 413). Answered for every
# device alike, so a PERMANENT_FAILURE with one of these fails the message and keeps the
# device: removing it would take every device of every customer off on one expired key.
_SENDER_REFUSED = frozenset({401, 403, 413})
# APNs answers these with HTTP 400 (a dead token's code) though they refuse the app's request
# (its topic, certificate environment, payload or headers), the same for every device: a
# PERMANENT_FAILURE naming one in its StatusMessage keeps the device as the codes above do.
# BadDeviceToken, Unregistered and DeviceTokenNotForTopic stay a dead token.
_APP_WIDE_REASONS = re.compile(
    r"\b(BadTopic|TopicDisallowed|MissingTopic|BadCertificate|BadCertificateEnvironment"
    r"|BadPayload|PayloadEmpty|PayloadTooLarge|BadPriority|BadExpirationDate|BadCollapseId"
    r"|BadMessageId|BadPushType|InvalidPushType|MissingProviderToken|InvalidProviderToken"
    r"|ExpiredProviderToken|BadPath|MethodNotAllowed)\b"
)
_RETRY_STATUS: dict[str, type[DeliveryError]] = {
    "THROTTLED": Throttled,
    "TEMPORARY_FAILURE": TemporaryFailure,
}


PUSH_ADDRESSES_PER_CALL = 100  # SendMessages: at most 100 addresses per request


class PinpointPush:
    """``pinpoint:SendMessages`` straight to device tokens (no Pinpoint endpoints): APNs
    tokens on the ``APNS`` channel, FCM tokens on ``GCM``.

    Per device: SUCCESSFUL counts; PERMANENT_FAILURE or an HTTP 400/404/410 from APNs/FCM
    marks the token invalid (returned in ``invalid_addresses`` for removal), except a
    PERMANENT_FAILURE with HTTP 401/403/413 or naming an APNs reason that refuses the app's
    request (``BadTopic``, ``BadCertificateEnvironment``, ...: the app's credentials, set-up
    or payload refused, not the device: the message fails, the device stays); THROTTLED and
    TEMPORARY_FAILURE make the send retryable *only when no device got it* (a retry would
    buzz the devices that did). All devices invalid -> :class:`InvalidAddress`.

    :meth:`send_many` sends many customers' messages (a campaign's) in one call, each
    device with its own message; each message's outcome is decided as :meth:`send` decides.
    """

    max_addresses = PUSH_ADDRESSES_PER_CALL

    def __init__(
        self, client_pinpoint: Any, application_id: str, *, apns_sandbox: bool = False
    ) -> None:
        self._client = client_pinpoint
        self._application_id = application_id
        self._apns = "APNS_SANDBOX" if apns_sandbox else "APNS"

    def _channel_type(self, target: PushTarget) -> str:
        return self._apns if target.platform == "APNS" else "GCM"

    def request(
        self, message: OutboundMessage, content: PushContent, targets: tuple[PushTarget, ...]
    ) -> dict[str, Any]:
        collapse = hashlib.sha256(message.batch_key.encode()).hexdigest()[:32]
        apns: dict[str, Any] = {"Body": content.body, "Action": "OPEN_APP", "CollapseId": collapse}
        gcm: dict[str, Any] = {"Body": content.body, "Action": "OPEN_APP"}
        if content.title:
            apns["Title"] = gcm["Title"] = content.title
        return {
            "Addresses": {t.token: {"ChannelType": self._channel_type(t)} for t in targets},
            "Context": message.push_context(),
            "MessageConfiguration": {"APNSMessage": apns, "GCMMessage": gcm},
            "TraceId": collapse,
        }

    def batch_request(self, messages: Sequence[OutboundMessage]) -> dict[str, Any]:
        """One request for many messages sharing their batch key (:attr:`OutboundMessage.
        batch_key`: a campaign occurrence's or a cohort run's step): each address
        carries its message's title and body (``TitleOverride``, ``BodyOverride``: the
        content is rendered per customer, so there are no ``Substitutions`` to merge) and
        its customer's tags (``Context``); the channel messages hold only what the messages
        share (the action, APNs's collapse id), so no body can leak from one customer to
        another."""
        keys = {m.batch_key for m in messages}
        if len(keys) != 1:
            raise ValueError("a push batch is one campaign occurrence or cohort run, and step")
        collapse = hashlib.sha256(keys.pop().encode()).hexdigest()[:32]
        addresses: dict[str, dict[str, Any]] = {}
        for message in messages:
            content, targets = _push_parts(message)
            for target in targets:
                if target.token in addresses:
                    raise ValueError("a device token appears twice in one push batch")
                config: dict[str, Any] = {
                    "ChannelType": self._channel_type(target),
                    "BodyOverride": content.body,
                    "Context": message.push_context(),
                }
                if content.title:
                    config["TitleOverride"] = content.title
                addresses[target.token] = config
        if len(addresses) > self.max_addresses:
            raise ValueError(f"a push batch holds at most {self.max_addresses} addresses")
        return {
            "Addresses": addresses,
            "MessageConfiguration": {
                "APNSMessage": {"Action": "OPEN_APP", "CollapseId": collapse},
                "GCMMessage": {"Action": "OPEN_APP"},
            },
            "TraceId": collapse,
        }

    def send(self, message: OutboundMessage) -> SendResult:
        content, targets = _push_parts(message)
        response = _aws_call(
            self._client.send_messages,
            ApplicationId=self._application_id,
            MessageRequest=self.request(message, content, targets),
        )
        return _push_outcome(targets, response.get("MessageResponse", {}))

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendOutcome]:
        """One ``SendMessages`` for ``messages`` (see :meth:`batch_request`; group them with
        :func:`push_batches`): each message's outcome, in order, as :meth:`send` would
        return or raise it; a call that fails is every message's failure."""
        if not messages:
            return []
        try:
            response = _aws_call(
                self._client.send_messages,
                ApplicationId=self._application_id,
                MessageRequest=self.batch_request(messages),
            )
        except DeliveryError as error:
            return [error] * len(messages)
        answer = response.get("MessageResponse", {})
        outcomes: list[SendOutcome] = []
        for message in messages:
            try:
                outcomes.append(_push_outcome(_push_parts(message)[1], answer))
            except DeliveryError as error:
                outcomes.append(error)
        return outcomes


def _push_parts(message: OutboundMessage) -> tuple[PushContent, tuple[PushTarget, ...]]:
    """A push message's content and devices (one per token)."""
    content, targets = message.content, message.address
    if not isinstance(content, PushContent) or not isinstance(targets, tuple):
        raise PermanentFailure("PinpointPush sends push content to devices")
    return content, tuple({t.token: t for t in targets}.values())


def _push_outcome(targets: tuple[PushTarget, ...], answer: Mapping[str, Any]) -> SendResult:
    """One message's outcome from the results of its devices' tokens (``answer``: the
    ``MessageResponse``, whose ``Result`` is keyed by address)."""
    results: Mapping[str, Any] = answer.get("Result", {})
    delivered: list[str] = []
    invalid: list[InvalidAddressInfo] = []
    updated: dict[str, str] = {}
    retry: type[DeliveryError] | None = None
    retry_reason = ""
    other: list[str] = []
    for target in targets:
        result = results.get(target.token)
        if result is None:
            other.append("no result")
            continue
        status = str(result.get("DeliveryStatus"))
        code = int(result.get("StatusCode") or 0)
        if result.get("UpdatedToken"):
            updated[target.key] = str(result["UpdatedToken"])
        if status == "SUCCESSFUL":
            delivered.append(str(result.get("MessageId") or ""))
        elif status == "PERMANENT_FAILURE" and code in _SENDER_REFUSED:
            other.append(f"{status} {code}")
        elif status == "PERMANENT_FAILURE" and (
            app_wide := _APP_WIDE_REASONS.search(str(result.get("StatusMessage") or ""))
        ):
            other.append(f"{status} {code} {app_wide.group(1)}")
        elif status == "PERMANENT_FAILURE" or code in _TOKEN_GONE:
            reason = f"{status} {code}".strip()
            invalid.append(InvalidAddressInfo(key=target.key, reason=reason))
        elif status in _RETRY_STATUS:
            if retry is None:
                retry, retry_reason = _RETRY_STATUS[status], f"push {status} {code}"
        else:  # OPT_OUT, DUPLICATE, UNKNOWN_FAILURE: not retried (may have been shown)
            other.append(status)
    if delivered:
        return SendResult(
            provider_message_id=next((m for m in delivered if m), "")
            or str(answer.get("RequestId", "")),
            invalid_addresses=tuple(invalid),
            updated_addresses=updated,
        )
    if retry is not None:
        raise retry(retry_reason, invalid=tuple(invalid))
    if invalid and not other:
        raise InvalidAddress(invalid[0].key, invalid[0].reason, invalid=tuple(invalid))
    raise PermanentFailure(
        f"push not delivered: {', '.join(sorted(set(other)))}", invalid=tuple(invalid)
    )


def push_batches(
    messages: Sequence[OutboundMessage], max_addresses: int = PUSH_ADDRESSES_PER_CALL
) -> list[list[int]]:
    """The messages (by index, in order) grouped for a batch call (:meth:`PinpointPush.
    send_many`, :meth:`LinePush.send_many`): at most ``max_addresses`` devices (or single
    addresses: LINE user ids) a group, an address only once in a group (one device shared by
    two customers gets two calls), one batch key a group."""
    groups: list[list[int]] = []
    tokens: set[str] = set()
    key = ""
    for i, message in enumerate(messages):
        address = message.address
        if isinstance(address, str):
            mine = {address}
        elif isinstance(address, tuple):
            mine = {t.token for t in address}
        else:  # a postal address (dm): no device
            mine = set()
        full = len(tokens) + len(mine) > max_addresses or bool(tokens & mine)
        if not groups or full or message.batch_key != key:
            groups.append([])
            tokens = set()
            key = message.batch_key
        groups[-1].append(i)
        tokens |= mine
    return groups


# --- LINE Messaging API ----------------------------------------------------------------------
LINE_PUSH_ENDPOINT = "https://api.line.me/v2/bot/message/push"
LINE_MULTICAST_ENDPOINT = "https://api.line.me/v2/bot/message/multicast"
_LINE_RETRY_NAMESPACE = uuid.UUID("6f1c1d8e-4b8a-5c1e-9d7a-6b697a756e61")


class HttpResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class HttpClient(Protocol):
    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HttpResponse: ...


MAX_ANSWER_BYTES = 64 * 1024  # what is read of an answer's body (LINE's errors are small)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is the answer, not followed: urllib would repeat a POST as a GET without
    its body, to any host (plain http, an internal one), with the signature headers, and
    the 200 there would record a message nobody received."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Watch:
    """A request's clock: when its time is up, the socket it opened is shut (a blocked
    connect, status line, header or body read then ends at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._expired = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self._expired:
                self._shut()

    def expire(self) -> None:
        with self._lock:
            self._expired = True
            if self._sock is not None:
                self._shut()

    def _shut(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)


def _watched(http_class: Any, watch: _Watch) -> Any:
    class Watched(http_class):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    return Watched


class _WatchedHttps(urllib.request.HTTPSHandler):
    """HTTPS whose connection hands its socket to the request's :class:`_Watch`."""

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        watch = getattr(req, "kizuna_watch", None)
        return super().do_open(_watched(http_class, watch) if watch else http_class, req, **kwargs)


class _WatchedHttp(urllib.request.HTTPHandler):
    """The same for plain HTTP (never posted to: tests on a local server use it)."""

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        watch = getattr(req, "kizuna_watch", None)
        return super().do_open(_watched(http_class, watch) if watch else http_class, req, **kwargs)


class UrllibHttp:
    """The standard library's HTTPS client (no dependency). Raises OSError subclasses on
    network failure and on an answer that is not HTTP (a bad status line, a broken chunked
    body before the status); HTTP error statuses come back as responses, and so does a
    redirect (3xx: not followed). ``timeout`` bounds the whole exchange, not each socket
    operation: when it is up the socket is shut, so a connection that trickles its status
    line, headers or body a byte every few seconds ends there. Once the status is in, it is
    the answer: what was read of the body by then (at most :data:`MAX_ANSWER_BYTES`) comes
    back."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(_NoRedirect, _WatchedHttps, _WatchedHttp)

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HttpResponse:
        if not url.startswith("https://"):
            raise ValueError("only https URLs")
        request = urllib.request.Request(  # noqa: S310 (https only, checked above)
            url, data=body, headers=dict(headers), method="POST"
        )
        return self.exchange(request, timeout)

    def exchange(self, request: urllib.request.Request, timeout: float) -> HttpResponse:
        """``request``'s answer within ``timeout`` seconds in all."""
        watch = _Watch()
        request.kizuna_watch = watch  # type: ignore[attr-defined]
        timer = threading.Timer(timeout, watch.expire)
        timer.daemon = True
        timer.start()
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return HttpResponse(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    _read(response),
                )
        except urllib.error.HTTPError as err:
            with err:
                return HttpResponse(
                    err.code,
                    {k.lower(): v for k, v in (err.headers or {}).items()},
                    _read(err),
                )
        except http.client.HTTPException as err:  # not an HTTP answer: as no answer
            raise ConnectionError(f"not an HTTP answer ({type(err).__name__})") from err
        finally:
            timer.cancel()


def _read(answer: Any) -> bytes:
    """What arrives of the body, at most :data:`MAX_ANSWER_BYTES`, until it ends, breaks or
    the request's time is up (the watch shuts the socket)."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_ANSWER_BYTES:
        try:
            chunk = answer.read1(MAX_ANSWER_BYTES - size)
        except (OSError, http.client.HTTPException):
            break  # the status is the answer; the body is cut
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def line_retry_key(execution: str, step: str, customer_id: str) -> str:
    """LINE's ``X-Line-Retry-Key``: a UUID fixed by the execution, step and customer, so a
    retried or re-invoked send is accepted by LINE at most once (LINE keeps keys for 24
    hours). The customer is part of it: one cohort execution or campaign occurrence sends the
    same step to many customers, and LINE answers 409 (accepted before) to a reused key."""
    return str(uuid.uuid5(_LINE_RETRY_NAMESPACE, f"{execution}\x00{step}\x00{customer_id}"))


def line_multicast_retry_key(messages: Sequence[OutboundMessage]) -> str:
    """One retry key per multicast call, fixed by the batch, the customers and the content:
    the same call made again (a retry, a re-invoked batch) is accepted by LINE at most
    once."""
    customers = "\x00".join(sorted(m.customer_id for m in messages))
    content = messages[0].content
    body = json.dumps(
        content.message_objects() if isinstance(content, LineContent) else "", sort_keys=True
    )
    digest = hashlib.sha256(f"{customers}\x01{body}".encode()).hexdigest()
    return str(
        uuid.uuid5(_LINE_RETRY_NAMESPACE, f"multicast\x00{messages[0].batch_key}\x00{digest}")
    )


class LinePush:
    """LINE Messaging API push, idempotent through the retry key; and, for a batch
    (:meth:`send_many`), one multicast per group of messages whose content is identical
    (up to :data:`MAX_MULTICAST_RECIPIENTS` user ids, one retry key a call) instead of one
    push per customer.

    The channel access token comes from ``token_provider`` on every send (cached by the
    provider) and is never logged or put in an error. With ``links``, every http(s) link of
    the text to a host the shop declared is rewritten to a signed tracked link (LINE reports
    no clicks: :mod:`kizuna.delivery.links`), which stamps ``click_at`` on the message's
    ledger entry; other links are sent as written. A text that tracked links would take
    over LINE's :data:`MAX_TEXT` (each is longer than the link it replaces) goes with its
    links as written, untracked, rather than not at all (the rendered text was checked: it
    fits); the result says so (``links_over_limit``).

    A message that has links and none of them went tracked (to hosts not declared, a
    ``tel:``, ``mailto:`` or ``line://`` link, a bare phone number, email address or
    ``www.`` address in a text, in actions whatever their scheme, over the limit tracked:
    :func:`line_links`) can show no click: the result says
    ``links_untracked``, which the senders keep on the ledger entry
    (:func:`kizuna.delivery.ledger.clicks_measurable`). A message with no link at all is
    not marked: nothing in it can be clicked, so no click is a fact, as for an email with no
    link (SES tracks the web links of an email's HTML; an email whose links none SES tracks
    is marked alike: :func:`email_links_untracked`).
    One tracked link is enough for its clicks to be measured (only clicks of tracked links
    are ever counted).
    """

    max_addresses = MAX_MULTICAST_RECIPIENTS

    def __init__(
        self,
        token_provider: Callable[[], str],
        http: HttpClient | None = None,
        endpoint: str = LINE_PUSH_ENDPOINT,
        *,
        timeout: float = 10.0,
        links: TrackedLinks | None = None,
        multicast_endpoint: str = LINE_MULTICAST_ENDPOINT,
    ) -> None:
        if not (endpoint.startswith("https://") and multicast_endpoint.startswith("https://")):
            raise ValueError("the LINE endpoint must be https")
        self._token = token_provider
        self._http: HttpClient = http if http is not None else UrllibHttp()
        self._endpoint = endpoint
        self._multicast = multicast_endpoint
        self._timeout = timeout
        self._links = links

    def text(self, message: OutboundMessage, text: str) -> tuple[str, bool]:
        """The text as sent, its links tracked when the adapter has ``links``; and whether
        they were left untracked: tracked, the text would be over LINE's :data:`MAX_TEXT`
        (then it is sent as written, which the rendered content's check keeps within it)."""
        if self._links is None:
            return text, False
        tracked = self._links.rewrite(text, message.customer_id, message.execution, message.step)
        if line_length(tracked) <= MAX_TEXT:
            return tracked, False
        return text, True

    def _tracks_links(self, content: LineContent) -> bool:
        """Whether the content's text gets per-customer tracked links (then it cannot be one
        multicast: each customer's links are signed for them)."""
        links = self._links
        return links is not None and any(
            o.get("type") == "text" and links.tracks(str(o.get("text", "")))
            for o in content.message_objects()
        )

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendOutcome]:
        """Each message's outcome, in order: messages with the same content (rendered alike:
        no per-customer placeholder) go in one multicast, the others one push each. A
        multicast is all or nothing: its outcome is each of its messages'."""
        groups: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            content = message.content
            key = (
                json.dumps(content.message_objects(), sort_keys=True, ensure_ascii=False)
                if isinstance(content, LineContent) and not self._tracks_links(content)
                else f"#{i}"
            )
            groups.setdefault(key, []).append(i)
        outcomes: dict[int, SendOutcome] = {}
        for indexes in groups.values():
            if len(indexes) == 1:
                try:
                    outcomes[indexes[0]] = self.send(messages[indexes[0]])
                except Exception as error:  # one push's outcome: the later pushes still go
                    outcomes[indexes[0]] = unexpected_outcome("line", error)
                continue
            for start in range(0, len(indexes), self.max_addresses):
                chunk = indexes[start : start + self.max_addresses]
                try:
                    result: SendOutcome = self.multicast([messages[i] for i in chunk])
                except Exception as error:
                    result = unexpected_outcome("line", error)
                outcomes.update((i, result) for i in chunk)
        return [outcomes[i] for i in range(len(messages))]

    def multicast(self, messages: Sequence[OutboundMessage]) -> SendResult:
        """One multicast of the messages' (identical) content to their user ids."""
        first = messages[0].content
        users = [m.address for m in messages]
        if (
            not isinstance(first, LineContent)
            or any(m.content != first for m in messages)
            or not all(isinstance(u, str) for u in users)
            or len(set(map(str, users))) != len(users)
            or len(users) > self.max_addresses
        ):
            raise PermanentFailure("a LINE multicast is one content to distinct users")
        objects = line_message_objects(first)
        body = json.dumps({"to": users, "messages": objects}, ensure_ascii=False).encode()
        result = self._post(self._multicast, body, line_multicast_retry_key(messages))
        # sent as written: a link in it is untracked (one content for every user)
        return self._measured(result, objects, tracked=False)

    def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, LineContent) or not isinstance(message.address, str):
            raise PermanentFailure("LinePush sends LINE content to one user")
        objects: list[dict[str, Any]] = []
        over_limit = tracked = False
        for o in line_message_objects(content):
            if o.get("type") == "text":
                written = str(o["text"])
                text, left = self.text(message, written)
                o, over_limit = {**o, "text": text}, over_limit or left
                tracked = tracked or text != written
            objects.append(o)
        body = json.dumps(
            {"to": message.address, "messages": objects},
            ensure_ascii=False,
        ).encode()
        retry_key = line_retry_key(message.execution, message.step, message.customer_id)
        result = self._post(self._endpoint, body, retry_key)
        return self._measured(result, objects, tracked=tracked, over_limit=over_limit)

    def _measured(
        self,
        result: SendResult,
        objects: Sequence[Mapping[str, Any]],
        *,
        tracked: bool,
        over_limit: bool = False,
    ) -> SendResult:
        """``result`` saying whether the message went with links none of which is tracked
        (``links_untracked``: no click of it can be seen) and whether a text's links were
        left as written for LINE's limit (``links_over_limit``)."""
        own = self._links.is_own if self._links is not None else (lambda _: False)
        untracked = not tracked and any(not own(link) for link in line_links(objects))
        if not (untracked or over_limit):
            return result
        return result.model_copy(
            update={"links_untracked": untracked, "links_over_limit": over_limit}
        )

    def _post(self, url: str, body: bytes, retry_key: str) -> SendResult:
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/json",
            "X-Line-Retry-Key": retry_key,
        }
        try:
            response = self._http.post(url, headers, body, self._timeout)
        except (OSError, TimeoutError) as err:
            # Safe to retry: LINE accepts a retry key once.
            raise TemporaryFailure(f"LINE unreachable: {type(err).__name__}") from None
        return self._result(response, retry_key)

    @staticmethod
    def _result(response: HttpResponse, retry_key: str) -> SendResult:
        status, headers = response.status, {k.lower(): v for k, v in response.headers.items()}
        if 200 <= status < 300:
            sent_id = ""
            try:
                sent = json.loads(response.body or b"{}").get("sentMessages") or []
                sent_id = str(sent[0].get("id", "")) if sent else ""
            except (ValueError, AttributeError):
                sent_id = ""
            return SendResult(
                provider_message_id=sent_id or headers.get("x-line-request-id", retry_key)
            )
        if status == 409 and headers.get("x-line-accepted-request-id"):
            # The same retry key was accepted before: the message went out once.
            return SendResult(provider_message_id=headers["x-line-accepted-request-id"])
        detail = _line_error(response.body)
        if status == 429:
            raise Throttled(
                f"LINE 429 {detail}".strip(),
                retry_after=retry_after_seconds(headers.get("retry-after")),
            )
        if status >= 500:
            raise TemporaryFailure(f"LINE {status} {detail}".strip())
        raise PermanentFailure(f"LINE {status} {detail}".strip())


# Where LINE message objects carry a link a recipient can follow: a URI action's ``uri``
# (Flex, template, quick reply), an imagemap action's and a video's ``externalLink``'s
# ``linkUri``, whatever its scheme (``tel:`` calls, ``line://`` opens LINE: a tap on either
# is as unseen as one on an untracked web link). (Image and icon URLs are shown, not
# followed.)
_LINK_KEYS: Final = frozenset({"uri", "linkUri"})


def line_links(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """The links a recipient can follow in LINE message objects: those of a text message's
    text (its http(s) links, :func:`kizuna.delivery.links.text_links`, its ``tel:``,
    ``mailto:`` and ``line://`` links, :func:`kizuna.delivery.links.scheme_links`, and the
    phone numbers, email addresses and ``www.`` addresses LINE's app makes tappable written
    bare, :func:`kizuna.delivery.links.bare_links`) and the targets of actions, every URI
    one opens whatever its scheme, anywhere in the objects.
    Only an http(s) link of a text can be tracked: whether one is, is
    :meth:`LinePush.send`'s to say."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in _LINK_KEYS and isinstance(item, str):
                    if item.strip():
                        found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for o in objects:
        if o.get("type") == "text":
            text = str(o.get("text", ""))
            found += text_links(text) + scheme_links(text) + bare_links(text)
        walk(o)
    return found


def line_message_objects(content: LineContent) -> list[dict[str, Any]]:
    """The ``messages`` of a LINE request, checked against LINE's rules once more right
    before the send (a message LINE would refuse is a permanent failure, not a 400)."""
    objects = content.message_objects()
    problems = message_problems(objects)
    if problems:
        raise PermanentFailure(f"LINE message invalid: {'; '.join(problems)}"[:300])
    return objects


def _line_error(body: bytes) -> str:
    """LINE's error message (it never echoes the token), cut short."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return ""
    return str(data.get("message", ""))[:120] if isinstance(data, dict) else ""


def line_token_from(
    secret_name: str | None = None,
    parameter_name: str | None = None,
    *,
    max_age: int = 300,
    field: str | None = None,
) -> Callable[[], str]:
    """A token provider reading the LINE channel access token from Secrets Manager
    (``secret_name``) or an SSM SecureString (``parameter_name``) through Powertools
    parameters, cached for ``max_age`` seconds. ``field`` picks a key out of a JSON secret.
    """
    if (secret_name is None) == (parameter_name is None):
        raise ValueError("give exactly one of secret_name and parameter_name")

    def provider() -> str:
        from aws_lambda_powertools.utilities import parameters

        value: Any
        if secret_name is not None:
            value = parameters.get_secret(secret_name, max_age=max_age)
        else:
            value = parameters.get_parameter(parameter_name or "", decrypt=True, max_age=max_age)
        if isinstance(value, bytes):
            value = value.decode()
        if field is not None:
            try:
                value = json.loads(value)[field]
            except (ValueError, KeyError, TypeError):
                raise PermanentFailure(f"LINE token secret has no field {field!r}") from None
        token = str(value).strip()
        if not token:
            raise PermanentFailure("LINE token is empty")
        return token

    return provider


__all__ = [
    "LINE_PUSH_ENDPOINT",
    "PUSH_ADDRESSES_PER_CALL",
    "BatchChannel",
    "Channel",
    "DeadlineChannel",
    "DeliveryError",
    "HttpClient",
    "HttpResponse",
    "InvalidAddress",
    "InvalidAddressInfo",
    "LinePush",
    "OutOfTime",
    "OutboundMessage",
    "PermanentFailure",
    "PinpointPush",
    "PushTarget",
    "SendOutcome",
    "SendResult",
    "SesEmail",
    "SnsSms",
    "TemporaryFailure",
    "Throttled",
    "UrllibHttp",
    "address_for",
    "classify_client_error",
    "email_links_untracked",
    "line_links",
    "line_retry_key",
    "line_token_from",
    "push_batches",
    "push_targets",
    "report_dead_devices",
    "send_all",
    "send_many_with_retry",
    "send_with_retry",
]
