"""Message tags that survive the trip through a provider and back in its feedback.

SES tag names and values may hold only ``[A-Za-z0-9_-]`` (256 characters at most). Kizuna
reads the customer, program, step and execution back from the tags of a bounce or a
complaint, so values are *escaped*, not mangled: letters, digits and ``-`` pass as they
are, ``_`` becomes ``__`` and any other byte of the UTF-8 form becomes ``_XX`` (hex).
``cust-42`` stays ``cust-42``; ``a.b@x`` becomes ``a_2Eb_40x``.

A value whose escaped form is over 256 characters (a 128-character customer id made of
``.:@``, up to 384) is written ``_b`` + its UTF-8 bytes in unpadded base64url instead (the
same alphabet; 4 characters per 3 bytes, so any value up to 192 bytes fits, and every
customer id, execution, program and step name Kizuna accepts does). The escaped form never
starts with ``_b`` (an ``_`` is always followed by ``_`` or an upper-case hex digit), so the
two forms are told apart exactly.
"""

from __future__ import annotations

import base64
import binascii
import re

# Tag names Kizuna writes on every message (SES EmailTags, push Context).
TAG_PROGRAM = "program"
TAG_STEP = "step"
TAG_CUSTOMER = "customer"
TAG_EXECUTION = "execution"
KIZUNA_TAGS = (TAG_PROGRAM, TAG_STEP, TAG_CUSTOMER, TAG_EXECUTION)
# What a push's data payload (Context) adds: the message reference the app echoes back in
# ``push.opened`` (docs/EVENTS.md). ``<execution>/<step>``: the ledger entry's own key, opaque
# to the app and not personal (an execution is a program's hash, ``campaign:<id>:<time>``
# or ``tx:<hash>``; a step is a step id, ``send`` or a transactional template's name).
TAG_MESSAGE = "message"
MESSAGE_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$"

MAX_TAG_CHARS = 256
_PLAIN = re.compile(r"[A-Za-z0-9-]")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_ESCAPE = re.compile(r"_(_|[0-9A-F]{2})")
# What starts a value too long to escape: never the start of an escaped form.
BASE64_PREFIX = "_b"


def encode_tag_value(value: str) -> str:
    """``value`` in the SES tag alphabet, reversibly (see :func:`decode_tag_value`).
    Raises ValueError when the escaped form is longer than SES accepts."""
    out: list[str] = []
    for char in value:
        if _PLAIN.match(char):
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.extend(f"_{byte:02X}" for byte in char.encode())
    encoded = "".join(out)
    if not encoded:
        raise ValueError("a tag value cannot be empty")
    if len(encoded) <= MAX_TAG_CHARS:
        return encoded
    packed = BASE64_PREFIX + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    if len(packed) > MAX_TAG_CHARS:
        raise ValueError(
            f"tag value is {len(encoded)} characters escaped, {len(packed)} in base64"
            f" (max {MAX_TAG_CHARS})"
        )
    return packed


def decode_tag_value(encoded: str) -> str:
    """The original value of :func:`encode_tag_value`'s output (lenient on stray input)."""
    if encoded.startswith(BASE64_PREFIX):
        body = encoded.removeprefix(BASE64_PREFIX)
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
            value = raw.decode()
        except (binascii.Error, ValueError):
            return encoded  # stray input: as it came (no customer id starts with "_")
        # only what encode_tag_value writes: one value, one form (base64 accepts several
        # spellings of the same bytes, and a short value is never written so)
        try:
            same = encode_tag_value(value) == encoded
        except ValueError:
            same = False
        return value if same else encoded
    data = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(encoded):
        data += encoded[pos : match.start()].encode()
        group = match.group(1)
        data += b"_" if group == "_" else bytes([int(group, 16)])
        pos = match.end()
    data += encoded[pos:].encode()
    return data.decode(errors="replace")


def tag_name(name: str) -> str:
    """A tag *name* in the SES alphabet (lossy: names are chosen by us, not data)."""
    cleaned = _NAME_BAD.sub("_", name)[:MAX_TAG_CHARS]
    if not cleaned:
        raise ValueError("a tag name cannot be empty")
    return cleaned


def message_ref(execution: str, step: str) -> str:
    """The reference of the message ``step`` of ``execution`` sent (``<execution>/<step>``)."""
    return f"{execution}/{step}"


def parse_message_ref(ref: str) -> tuple[str, str]:
    """``(execution, step)`` of a reference :func:`message_ref` wrote (validated first by
    :data:`MESSAGE_REF_PATTERN`: an execution has no ``/``)."""
    execution, _, step = ref.rpartition("/")
    return execution, step
