"""Rendered message content, one model per channel, and SMS segment counting.

These models are what the renderer produces and what a channel adapter sends; they hold
no personal data beyond what the message itself says.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kizuna.delivery.line_messages import MAX_TEXT, line_length

SmsEncoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (one septet each). ESC (0x1B) is not a character of its own.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: ESC + char, two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units


def _pack(units: list[int], single: int, part: int) -> int:
    """Segments needed for characters of ``units`` width each, never splitting one."""
    total = sum(units)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for width in units:
        if used + width > part:
            segments += 1
            used = 0
        used += width
    return segments


def sms_segments(text: str) -> tuple[SmsEncoding, int]:
    """The encoding an SMS of ``text`` needs and how many segments it is sent in.

    GSM-7 when every character is in the GSM 03.38 basic or extension table (extension
    characters such as ``€`` take two septets): 160 septets in one message, 153 per part of
    a concatenated one. Otherwise UCS-2 (Japanese, emoji): 70 UTF-16 code units, 67 per
    part. An escape sequence or a surrogate pair is never split across parts.
    """
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        widths = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return "GSM-7", _pack(widths, GSM7_SINGLE, GSM7_PART)
    widths = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return "UCS-2", _pack(widths, UCS2_SINGLE, UCS2_PART)


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[str, Field(min_length=1)]


class EmailContent(_Content):
    channel: Literal["email"] = "email"
    subject: NonEmpty
    html: NonEmpty
    text: NonEmpty


# SNS sends at most 1,600 characters in one SMS Publish (it splits them into segments);
# a longer text is refused by SNS for every customer.
SMS_MAX_CHARS = 1600
# APNs and FCM take a payload of at most 4 KB, the push's data (Kizuna's tags, the message
# reference) and the JSON around it included: a title and body of at most 3,000 bytes
# (UTF-8) leave it room.
PUSH_MAX_TEXT_BYTES = 3000


class SmsContent(_Content):
    channel: Literal["sms"] = "sms"
    text: NonEmpty
    encoding: SmsEncoding
    segments: int = Field(ge=1)

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, text: str) -> str:
        if len(text) > SMS_MAX_CHARS:
            raise ValueError(
                f"an SMS holds at most {SMS_MAX_CHARS:,} characters (SNS's limit for one "
                f"message, sent in segments), this one {len(text):,}"
            )
        return text

    @classmethod
    def of(cls, text: str) -> SmsContent:
        encoding, segments = sms_segments(text)
        return cls(text=text, encoding=encoding, segments=segments)


class PushContent(_Content):
    channel: Literal["push"] = "push"
    title: str = Field(default="", description="May be empty: the app name shows instead")
    body: NonEmpty

    @model_validator(mode="after")
    def _within_payload(self) -> PushContent:
        size = len(self.title.encode()) + len(self.body.encode())
        if size > PUSH_MAX_TEXT_BYTES:
            raise ValueError(
                f"a push's title and body hold at most {PUSH_MAX_TEXT_BYTES:,} bytes (UTF-8; "
                f"APNs and FCM take 4 KB with the push's data), these {size:,}"
            )
        return self


class LineContent(_Content):
    """A LINE text (``text``) or up to five rendered LINE message objects (``messages``,
    from a ``line.json`` template, checked by :mod:`kizuna.delivery.line_messages`)."""

    channel: Literal["line"] = "line"
    text: str = Field(
        default="",
        description="LINE text messages hold 5,000 characters as LINE counts them (UTF-16 "
        "code units: an emoji counts 2)",
    )
    messages: tuple[dict[str, Any], ...] = Field(
        default=(), max_length=5, description="LINE message objects (Flex, image, ...)"
    )

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, text: str) -> str:
        if line_length(text) > MAX_TEXT:
            raise ValueError(
                f"a LINE text holds at most {MAX_TEXT:,} characters as LINE counts them "
                f"(UTF-16 code units: an emoji counts 2), this one {line_length(text):,}"
            )
        return text

    @model_validator(mode="after")
    def _one_form(self) -> LineContent:
        if bool(self.text.strip()) == bool(self.messages):
            raise ValueError("a LINE message is a text or message objects, exactly one")
        return self

    def message_objects(self) -> list[dict[str, Any]]:
        """What LINE's ``messages`` field carries."""
        if self.messages:
            return [dict(m) for m in self.messages]
        return [{"type": "text", "text": self.text}]


WEBHOOK_MAX_BODY_BYTES = 256 * 1024  # a webhook body, rendered (UTF-8 JSON)


class WebhookContent(_Content):
    channel: Literal["webhook"] = "webhook"
    body: NonEmpty = Field(description="The rendered JSON document, compact UTF-8 text")

    @field_validator("body")
    @classmethod
    def _json_within_limit(cls, body: str) -> str:
        if len(body.encode()) > WEBHOOK_MAX_BODY_BYTES:
            raise ValueError(f"a webhook body holds at most {WEBHOOK_MAX_BODY_BYTES} bytes")
        try:
            json.loads(body)
        except ValueError:
            raise ValueError("a webhook body is a JSON document") from None
        return body


# A card's bounds (docs/channels/CARDS.md): what a site's card widget can show, and how long
# a card may wait for the customer.
CARD_TITLE_MAX = 120
CARD_BODY_MAX = 1000
CARD_URL_MAX = 2048
CARD_EXPIRES_MIN_HOURS = 1
CARD_EXPIRES_MAX_HOURS = 90 * 24
CARD_EXPIRES_DEFAULT_HOURS = 7 * 24
# no whitespace, controls, quotes or angle brackets anywhere in a card's URL
_URL_CHARS = re.compile(r"^[!#$%&()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+\Z")


def https_url(value: str) -> str:
    """``value`` if it is an absolute https URL with a host, at most :data:`CARD_URL_MAX`
    characters of printable ASCII without quotes or brackets; else ValueError (never
    repaired)."""
    if len(value) > CARD_URL_MAX:
        raise ValueError(f"at most {CARD_URL_MAX} characters")
    if not _URL_CHARS.match(value):
        raise ValueError("only printable ASCII without spaces, quotes or angle brackets")
    try:
        parts = urlsplit(value)
    except ValueError as err:
        raise ValueError(f"not a URL: {err}") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValueError("an https:// URL with a host (and no user name)")
    return value


class CardContent(_Content):
    """A web / in-app card (kept by Kizuna for the shop's site or app to show)."""

    channel: Literal["card"] = "card"
    title: NonEmpty = Field(max_length=CARD_TITLE_MAX)
    body: NonEmpty = Field(max_length=CARD_BODY_MAX)
    image_url: str | None = Field(default=None, description="https only")
    link_url: str | None = Field(default=None, description="https only")
    expires_after_hours: int = Field(
        default=CARD_EXPIRES_DEFAULT_HOURS, ge=CARD_EXPIRES_MIN_HOURS, le=CARD_EXPIRES_MAX_HOURS
    )

    @field_validator("expires_after_hours", mode="before")
    @classmethod
    def _whole_hours(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,5}", value):
            raise ValueError("a whole number of hours")
        return value

    @field_validator("image_url", "link_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        return None if value is None else https_url(value)


MAX_DM_LINES = 8  # printed text lines of a direct mail (CSV columns line_1 .. line_8)
MAX_DM_LINE_CHARS = 200


class DmContent(_Content):
    """A direct mail's printed text: the non-blank lines of its ``dm.txt`` template."""

    channel: Literal["dm"] = "dm"
    lines: tuple[Annotated[str, Field(min_length=1, max_length=MAX_DM_LINE_CHARS)], ...] = Field(
        min_length=1, max_length=MAX_DM_LINES
    )


RenderedMessage = Annotated[
    EmailContent
    | SmsContent
    | PushContent
    | LineContent
    | WebhookContent
    | CardContent
    | DmContent,
    Field(discriminator="channel"),
]

__all__ = [
    "MAX_DM_LINES",
    "PUSH_MAX_TEXT_BYTES",
    "SMS_MAX_CHARS",
    "WEBHOOK_MAX_BODY_BYTES",
    "CardContent",
    "DmContent",
    "EmailContent",
    "LineContent",
    "PushContent",
    "RenderedMessage",
    "SmsContent",
    "SmsEncoding",
    "WebhookContent",
    "sms_segments",
]
