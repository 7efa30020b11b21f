"""Delivery feedback -> actions: what a bounce, a complaint, an opt-out or a dead push token
means for the customer's channels and for the ledger.

Sources and shapes:

- **SES** email events from a configuration set's EventBridge destination (source
  ``aws.ses``, detail-type ``Email Bounced`` / ``Email Complaint Received`` /
  ``Email Delivered`` / ``Email Opened`` / ``Email Clicked`` / ``Email Rejected`` /
  ``Email Rendering Failed``). ``detail`` is the SES event record (``eventType``, ``mail``
  with ``messageId`` and ``tags``, and ``bounce`` / ``complaint`` / ``delivery`` / ``open`` /
  ``click`` / ``reject`` / ``failure``). The bare record (as SNS or Firehose carry it) is
  accepted too. The tags are the ones :class:`~kizuna.delivery.channels.SesEmail`
  wrote, escaped by :mod:`kizuna.delivery.tags`.
- **SMS opt-out**: ``{"phone_number": "+8190...", "customer_id": "...", "observed_at": ...}``,
  one per number found by the periodic ``ListPhoneNumbersOptedOut`` sweep.
- **Invalid push token**: ``{"customer_id", "device_key", "reason", "program"?, "step"?,
  "execution"?}``, or straight from a send's ``invalid_addresses``.

A permanent bounce or a complaint suppresses email -- the addresses SES names
(``bouncedRecipients`` / ``complainedRecipients``, else ``mail.destination``), hashed here as
the send-time suppression check hashes them, never in clear past this module; a transient or
undetermined bounce does not. SES passes every feedback report (RFC 5965's Feedback-Type in
``complaintFeedbackType``) as a Complaint; only the recipient's own report is one:
``abuse``, ``fraud``, ``other`` and a report without a type. ``not-spam`` (the message is
wanted) is no complaint: nothing is done about it. ``auth-failure`` (RFC 6591: the mailbox
provider found the message failing SPF, DKIM or DMARC) and ``virus`` (it found a virus in
it) are the provider's reports about the mail, not the recipient's wish: a
``provider_report`` action (:data:`PROVIDER_REPORTS`), which suppresses and stamps nothing
and is counted for the operator. Reasons never carry an address or an SMTP diagnostic (they
can quote the address).

A **reject** (SES took the API call, then refused the message: a virus) and a **rendering
failure** (SES could not render the message's template) mean the message was never delivered
(:data:`NOT_DELIVERED`); neither suppresses anything (the address is not at fault). A reject's
reason keeps SES's fixed phrase (``rejected: Bad content``) only when it is a few plain words;
a rendering failure's is always ``rendering failure``: SES's ``errorMessage`` can quote the
template data (a name, an address) and never leaves this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.utils import parseaddr
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from kizuna.delivery.channels import InvalidAddressInfo
from kizuna.delivery.tags import (
    TAG_CUSTOMER,
    TAG_EXECUTION,
    TAG_PROGRAM,
    TAG_STEP,
    decode_tag_value,
)
from kizuna.domain.loyalty import address_hash
from kizuna.events import ChannelSuppressed, ConsentChannel
from kizuna.events.envelope import safe_places
from kizuna.events.inbound import CUSTOMER_ID_PATTERN

Kind = Literal[
    "bounce",
    "complaint",
    "delivery",
    "open",
    "click",
    "reject",
    "rendering_failure",
    "opt_out",
    "invalid_token",
    "provider_report",
]

SES_SOURCE = "aws.ses"
# EventBridge detail-type -> SES eventType, for the events Kizuna acts on.
SES_DETAIL_TYPES = {
    "Email Bounced": "Bounce",
    "Email Complaint Received": "Complaint",
    "Email Delivered": "Delivery",
    "Email Opened": "Open",
    "Email Clicked": "Click",
    "Email Rejected": "Reject",
    "Email Rendering Failed": "Rendering Failure",
}
_KINDS: dict[str, Kind] = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
    "Reject": "reject",
    "Rendering Failure": "rendering_failure",
}
# Kinds of a message SES accepted at the API call and then never delivered.
NOT_DELIVERED: frozenset[Kind] = frozenset({"reject", "rendering_failure"})
RENDERING_FAILURE_REASON = "rendering failure"
# A feedback report's Feedback-Type (RFC 5965) saying the message is NOT spam: the recipient
# rescued it from the junk folder. SES passes it as a Complaint; it is none.
NOT_SPAM = "not-spam"
# Feedback-Types that are the mailbox provider's report about the mail, not the recipient's
# complaint: an SPF/DKIM/DMARC failure (RFC 6591) and a virus found in it. SES passes them as
# Complaints; they are a deliverability or content problem for the operator, never a reason
# to stop mailing the customer.
PROVIDER_REPORTS: frozenset[str] = frozenset({"auth-failure", "virus"})
# SES's reject reasons are fixed phrases ("Bad content"): kept when they look like one.
_SAFE_REJECT_REASON = re.compile(r"[A-Za-z][A-Za-z -]{0,47}")


class FeedbackError(ValueError):
    """An event that is not the shape it claims to be (send it to the DLQ, with the message).

    ``code`` (``not_an_object``, ``not_eventbridge``, ``not_ses``, ``malformed``,
    ``missing_detail``) and ``fields`` (where, in Kizuna's own field names: a free-form key
    reads ``<key>``) are what a log line may say; the message can quote what the event
    carried (a tag's name, a source), so it goes to the dead letter only, beside the body."""

    def __init__(self, message: str, code: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.fields = tuple(fields)


_Record = TypeVar("_Record", bound=BaseModel)


def _validate(model: type[_Record], record: Mapping[str, Any], what: str) -> _Record:
    """``record`` as ``model``, or a :class:`FeedbackError` naming the bad fields (never
    their values: they can hold an address)."""
    try:
        return model.model_validate(record)
    except ValidationError as err:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in err.errors())
        raise FeedbackError(
            f"malformed {what}: {fields}", "malformed", safe_places(err, model)
        ) from None


def suppression(
    customer_id: str,
    at: datetime,
    channel: ConsentChannel | str,
    reason: str,
    address: str | None,
    *,
    hashed: str | None = None,
) -> ChannelSuppressed:
    """The ``channel.suppressed`` event that stops ``channel`` for the customer's
    ``address`` (hashed, never in clear; ``hashed``: already hashed; neither: whatever the
    address)."""
    return ChannelSuppressed(
        customer_id=customer_id,
        occurred_at=at,
        channel=ConsentChannel(channel),
        reason=reason,
        address_hash=hashed or (address_hash(address) if address else None),
    )


class FeedbackAction(BaseModel):
    """What to do about one piece of feedback. ``suppress`` means: stop using this channel
    for this customer (consent/suppression); ``address_key`` (push) names a dead device to
    remove. ``customer_id`` is None when the message carried no Kizuna tags: resolve it
    from ``message_id`` in the ledger, or ignore the event."""

    model_config = ConfigDict(frozen=True)

    customer_id: str | None
    channel: ConsentChannel
    program: str | None = None
    step: str | None = None
    execution: str | None = None
    kind: Kind
    suppress: bool
    reason: str
    message_id: str | None = None
    occurred_at: datetime | None = None
    address_key: str | None = None
    address_hashes: tuple[str, ...] = Field(
        default=(), description="Email: the hashed addresses a bounce or complaint names"
    )
    event_id: str | None = Field(default=None, description="Source event id, for idempotency")


# --- SES -------------------------------------------------------------------------------------
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)


class _Mail(_Lenient):
    message_id: str = Field(min_length=1)
    timestamp: datetime | None = None
    destination: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)


class _Recipient(_Lenient):
    email_address: str | None = None
    status: str | None = None


class _Bounce(_Lenient):
    bounce_type: Literal["Permanent", "Transient", "Undetermined"]
    bounce_sub_type: str = ""
    bounced_recipients: list[_Recipient] = Field(default_factory=list)
    timestamp: datetime | None = None


class _Complaint(_Lenient):
    complained_recipients: list[_Recipient] = Field(default_factory=list)
    complaint_feedback_type: str | None = None
    complaint_sub_type: str | None = None
    timestamp: datetime | None = None


class _Stamped(_Lenient):
    timestamp: datetime | None = None


class _Reject(_Lenient):
    reason: str = Field(min_length=1)


class _Failure(_Lenient):
    """Read only to check the shape: ``errorMessage`` can quote template data, it is never
    kept."""

    template_name: str | None = None


class _Click(_Stamped):
    link: str = ""


class _SesRecord(_Lenient):
    event_type: str
    mail: _Mail
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None
    delivery: _Stamped | None = None
    open: _Stamped | None = None
    click: _Click | None = None
    reject: _Reject | None = None
    failure: _Failure | None = None


class _EventBridge(_Lenient):
    id: str | None = None
    source: str
    detail_type: str = Field(alias="detail-type")
    time: datetime | None = None
    detail: dict[str, Any]


_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)


def _tag(tags: Mapping[str, list[str]], name: str) -> str | None:
    values = tags.get(name) or []
    return decode_tag_value(values[0]) if values and values[0] else None


def _customer_tag(tags: Mapping[str, list[str]]) -> str | None:
    """The customer the message's tag names; a :class:`FeedbackError` when the tag is there
    but decodes to no customer id Kizuna could have written (never retried: it never will)."""
    customer_id = _tag(tags, TAG_CUSTOMER)
    if customer_id is not None and not _CUSTOMER_ID.fullmatch(customer_id):
        raise FeedbackError(
            "malformed SES event: mail.tags.customer", "malformed", ["mail.tags.customer"]
        )
    return customer_id


def _hashed(named: Iterable[_Recipient], destination: Iterable[str]) -> tuple[str, ...]:
    """The suppression hashes of the addresses a bounce or complaint names (its recipients,
    else the message's destination), as the send-time check hashes them."""
    given = [r.email_address for r in named if r.email_address] or list(destination)
    bare = (parseaddr(a)[1] for a in given)
    return tuple(dict.fromkeys(address_hash(a) for a in bare if "@" in a))


def _link(url: str) -> str:
    """Where a click went, without the query (it may carry ids or tokens)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"[:200] if parts.netloc else "link"


def parse_ses_event(event: Mapping[str, Any]) -> FeedbackAction | None:
    """The action for one SES event (EventBridge envelope or bare record); None for event
    types Kizuna does not act on (Send, DeliveryDelay, Subscription...) and for a
    ``not-spam`` complaint (a report that the message is wanted); a ``provider_report``
    (never suppressing) for an ``auth-failure`` or ``virus`` one. A
    :class:`FeedbackError` for anything else that is not an SES event (a JSON body that is
    not an object, say)."""
    if not isinstance(event, Mapping):
        raise FeedbackError(f"not an SES event: a JSON {type(event).__name__}", "not_an_object")
    event_id: str | None = None
    detail: Mapping[str, Any] = event
    if "detail" in event:
        try:
            envelope = _EventBridge.model_validate(event)
        except ValidationError as err:
            raise FeedbackError(
                f"not an EventBridge event: {err.error_count()} errors",
                "not_eventbridge",
                safe_places(err, _EventBridge),
            ) from None
        if envelope.source != SES_SOURCE:
            raise FeedbackError(f"not an SES event (source {envelope.source!r})", "not_ses")
        if envelope.detail_type not in SES_DETAIL_TYPES:
            return None
        event_id, detail = envelope.id, envelope.detail
    try:
        record = _SesRecord.model_validate(detail)
    except ValidationError as err:
        problems = "; ".join(".".join(map(str, e["loc"])) for e in err.errors())
        raise FeedbackError(
            f"malformed SES event: {problems}", "malformed", safe_places(err, _SesRecord)
        ) from None
    kind = _KINDS.get(record.event_type)
    if kind is None:
        return None
    suppress = False
    hashes: tuple[str, ...] = ()
    occurred_at = record.mail.timestamp
    match kind:
        case "bounce":
            if record.bounce is None:
                raise FeedbackError("Bounce event without bounce", "missing_detail", ["bounce"])
            b = record.bounce
            statuses = sorted({r.status for r in b.bounced_recipients if r.status})
            reason = f"{b.bounce_type.lower()} bounce: {b.bounce_sub_type or 'General'}"
            if statuses:
                reason += f" ({', '.join(statuses)})"
            suppress = b.bounce_type == "Permanent"
            hashes = _hashed(b.bounced_recipients, record.mail.destination) if suppress else ()
            occurred_at = b.timestamp or occurred_at
        case "complaint":
            if record.complaint is None:
                raise FeedbackError(
                    "Complaint event without complaint", "missing_detail", ["complaint"]
                )
            c = record.complaint
            feedback_type = (c.complaint_feedback_type or "").strip().lower()
            if feedback_type == NOT_SPAM:
                return None  # the report says the message is wanted: no complaint at all
            occurred_at = c.timestamp or occurred_at
            if feedback_type in PROVIDER_REPORTS:
                # the provider's finding about the mail, not the recipient's complaint
                kind, reason = "provider_report", feedback_type
            else:
                reason = (
                    f"complaint: {c.complaint_feedback_type or c.complaint_sub_type or 'abuse'}"
                )
                suppress = True
                hashes = _hashed(c.complained_recipients, record.mail.destination)
        case "reject":
            if record.reject is None:
                raise FeedbackError("Reject event without reject", "missing_detail", ["reject"])
            said = record.reject.reason.strip()
            safe = _SAFE_REJECT_REASON.fullmatch(said)
            reason = f"rejected: {said}" if safe else "rejected"
        case "rendering_failure":
            if record.failure is None:
                raise FeedbackError(
                    "Rendering Failure event without failure", "missing_detail", ["failure"]
                )
            reason = RENDERING_FAILURE_REASON
        case "click":
            click = record.click or _Click()
            reason = f"clicked {_link(click.link)}"
            occurred_at = click.timestamp or occurred_at
        case _:
            stamped = getattr(record, kind) or _Stamped()
            reason = {"delivery": "delivered", "open": "opened"}[kind]
            occurred_at = stamped.timestamp or occurred_at

    tags = record.mail.tags
    return FeedbackAction(
        customer_id=_customer_tag(tags),
        channel=ConsentChannel.EMAIL,
        program=_tag(tags, TAG_PROGRAM),
        step=_tag(tags, TAG_STEP),
        execution=_tag(tags, TAG_EXECUTION),
        kind=kind,
        suppress=suppress,
        reason=reason,
        message_id=record.mail.message_id,
        occurred_at=occurred_at,
        address_hashes=hashes,
        event_id=event_id,
    )


# --- SMS opt-out -----------------------------------------------------------------------------
class SmsOptOut(BaseModel):
    """A number found opted out (replied STOP) by the ``ListPhoneNumbersOptedOut`` sweep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    customer_id: str = Field(min_length=1)
    observed_at: AwareDatetime | None = None


def parse_sms_opt_out(record: Mapping[str, Any]) -> FeedbackAction:
    opt_out = _validate(SmsOptOut, record, "SMS opt-out")
    return FeedbackAction(
        customer_id=opt_out.customer_id,
        channel=ConsentChannel.SMS,
        kind="opt_out",
        suppress=True,
        reason="opted out by SMS reply (STOP)",
        occurred_at=opt_out.observed_at,
    )


def sms_opt_out_records(
    opted_out: Iterable[str], customers_by_phone: Mapping[str, str], observed_at: datetime
) -> list[dict[str, Any]]:
    """Sweep output -> opt-out records, for the numbers that belong to a known customer."""
    return [
        {"phone_number": n, "customer_id": customers_by_phone[n], "observed_at": observed_at}
        for n in opted_out
        if n in customers_by_phone
    ]


# --- invalid push tokens ---------------------------------------------------------------------
class InvalidPushToken(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(min_length=1)
    device_key: str = Field(min_length=1)
    reason: str = "invalid token"
    program: str | None = None
    step: str | None = None
    execution: str | None = None
    observed_at: AwareDatetime | None = None


def parse_invalid_token(record: Mapping[str, Any]) -> FeedbackAction:
    bad = _validate(InvalidPushToken, record, "invalid-token record")
    return FeedbackAction(
        customer_id=bad.customer_id,
        channel=ConsentChannel.PUSH,
        program=bad.program,
        step=bad.step,
        execution=bad.execution,
        kind="invalid_token",
        suppress=False,
        reason=bad.reason,
        occurred_at=bad.observed_at,
        address_key=bad.device_key,
    )


def invalid_token_actions(
    customer_id: str,
    invalid: Iterable[InvalidAddressInfo],
    *,
    program: str | None = None,
    step: str | None = None,
    execution: str | None = None,
) -> list[FeedbackAction]:
    """Actions for the dead tokens a push send reported (``SendResult.invalid_addresses``
    or ``DeliveryError.invalid``)."""
    return [
        parse_invalid_token(
            {
                "customer_id": customer_id,
                "device_key": info.key,
                "reason": info.reason,
                "program": program,
                "step": step,
                "execution": execution,
            }
        )
        for info in invalid
    ]
