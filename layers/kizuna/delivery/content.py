"""Rendered message content, one model per channel, and SMS segment counting.

These models are what the renderer produces and what a channel adapter sends; they hold
no personal data beyond what the message itself says.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class SmsContent(_Content):
    channel: Literal["sms"] = "sms"
    text: NonEmpty
    encoding: SmsEncoding
    segments: int = Field(ge=1)

    @classmethod
    def of(cls, text: str) -> SmsContent:
        encoding, segments = sms_segments(text)
        return cls(text=text, encoding=encoding, segments=segments)


class PushContent(_Content):
    channel: Literal["push"] = "push"
    title: str = Field(default="", description="May be empty: the app name shows instead")
    body: NonEmpty


class LineContent(_Content):
    channel: Literal["line"] = "line"
    text: NonEmpty = Field(max_length=5000, description="LINE text messages hold 5,000 chars")


MAX_DM_LINES = 8  # printed text lines of a direct mail (CSV columns line_1 .. line_8)
MAX_DM_LINE_CHARS = 200


class DmContent(_Content):
    """A direct mail's printed text: the non-blank lines of its ``dm.txt`` template."""

    channel: Literal["dm"] = "dm"
    lines: tuple[Annotated[str, Field(min_length=1, max_length=MAX_DM_LINE_CHARS)], ...] = Field(
        min_length=1, max_length=MAX_DM_LINES
    )


RenderedMessage = Annotated[
    EmailContent | SmsContent | PushContent | LineContent | DmContent,
    Field(discriminator="channel"),
]

__all__ = [
    "MAX_DM_LINES",
    "DmContent",
    "EmailContent",
    "LineContent",
    "PushContent",
    "RenderedMessage",
    "SmsContent",
    "SmsEncoding",
    "sms_segments",
]
