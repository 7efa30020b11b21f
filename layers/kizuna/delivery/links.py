"""Signed tracked links for channels without provider click tracking (LINE), stateless and
URL-safe.

A LINE text message's http(s) links to the hosts the shop declared
(``tracked_links.hosts``, :class:`kizuna.runtime.config.TrackedLinksConfig`) are rewritten,
at send, to ``<base>/l/<token>``: the signed-link function (the unsubscribe function's URL)
stamps ``click_at`` on the message's ledger entry and answers 302 to the target
(:mod:`kizuna.services.links`). A link to any other host is sent as written.

Token = base64url without padding of::

    version (1 byte, =1) | expires_at (uint32, Unix seconds) |
    4 x (length uint16 | UTF-8): customer_id, execution, step, target URL |
    HMAC-SHA256(secret, domain | all of the above)[:16]

The target is inside the signed bytes, so no token can redirect anywhere Kizuna did not
sign. The text is the rendered one, customer data included (a first name that is a URL): so
only links to a declared host are signed, and the function follows a token only to a
declared host (no open redirect); only absolute http(s) targets are signed or followed. The
key is the unsubscribe tokens' (derived ``"unsubscribe"``) with its own domain string, so a
token of one kind never verifies as the other. Only the canonical base64url spelling is
accepted. ``verify`` accepts several secrets (current first) so the
secret can be rotated without breaking links in flight.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Literal, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from kizuna.delivery import signing
from kizuna.runtime.config import TrackedLinksConfig

VERSION = 1
LINK_TTL = timedelta(days=90)
PATH_PREFIX = "/l/"
_HEADER = struct.Struct(">BI")  # version, expires_at
_LENGTH = struct.Struct(">H")
MAX_TARGET_CHARS = 1000
_MAX_TOKEN_CHARS = 2048
# An http(s) link in plain text (the scheme in any case): up to whitespace, a control
# character, ``<>"'``, or the first character outside ASCII. A URI has only ASCII unescaped
# (RFC 3986), so a kanji, kana or full-width character ends the link: "詳細は
# https://shop.example/sale本日まで" links .../sale. (The class is case-sensitive on purpose:
# ignoring case, "k" and "s" would match their non-ASCII case variants, and end the link.)
LINK_PATTERN = re.compile(r"""(?ai:https?)://[^\x00-\x20<>"'\x7f-\U0010ffff]+""")
# A link in plain text written with a scheme other than http(s) that LINE's app makes
# tappable, the scheme in any case and not inside a word ("hotel:" is no ``tel:``): a phone
# number (``tel:`` then a digit, ``+`` or ``(``), an email address (``mailto:`` then an
# address with its ``@``) or LINE's own scheme (``line://``); it runs as an http(s) link
# does. Another app's scheme (``myapp://``) is not read as a link; a phone number, an
# address or a web address written without a scheme is read by the patterns below.
SCHEME_LINK_PATTERN = re.compile(
    r"""(?<![A-Za-z0-9+.\-])"""
    r"""(?:(?ai:tel):[+(0-9]|(?ai:mailto):[^\x00-\x20<>"'@\x7f-\U0010ffff]+@|(?ai:line)://)"""
    r"""[^\x00-\x20<>"'\x7f-\U0010ffff]*"""
)
# A phone number, an email address or a web address written bare in a text (no scheme),
# which LINE's app makes tappable on its own guess (LINE documents no rule): only shapes
# hardly anything else takes, so that a price (1,000円), a date (2026-12-07), a time, a
# postal code or an order number is not read as one. Not inside a word or a number (not
# after an ASCII letter or digit, '+', '-', '_', '#', '/', nor a digit's '.' or ','), and
# not running into one (not before an ASCII letter or digit, '_', '-', nor a '.' or ','
# then a digit); full-width digits and hyphens are not read.
#
# A phone number, in one of two shapes (ASCII digits):
# - Japanese, three groups joined by '-', starting with 0: ten digits ending in a group of
#   four (03-1234-5678, 011-123-4567, 0123-45-6789, 0120-12-3456), 0120- or 0570- then
#   3-3 (0120-123-456), or eleven digits as 0X0-XXXX-XXXX with X 5, 7, 8 or 9 (090-1234-5678,
#   050-1234-5678) or 0800-XXX-XXXX. (A run of digits, 0312345678, is not read: an order
#   number as often.)
# - international: '+', a country code (1 to 3 digits, not 0), then digits, each after one
#   '-', one space or nothing, 10 to 15 digits in all (E.164): +81 90 1234 5678,
#   +81-3-1234-5678, +819012345678 (:func:`bare_links` counts them).
_BEFORE = r"""(?<![0-9A-Za-z+\-_#/])(?<![0-9][.,])"""
_AFTER = r"""(?![0-9A-Za-z_\-]|[.,][0-9])"""
BARE_PHONE_PATTERN = re.compile(
    _BEFORE + r"""(?:"""
    r"""(?=[0-9\-]{12}(?![0-9\-]))0[0-9]{1,4}-[0-9]{1,4}-[0-9]{4}"""
    r"""|0(?:120|570)-[0-9]{3}-[0-9]{3}"""
    r"""|0[5789]0-[0-9]{4}-[0-9]{4}|0800-[0-9]{3}-[0-9]{4}"""
    r"""|\+[1-9][0-9]{0,2}(?:[ \-]?[0-9]){7,14}"""
    r""")""" + _AFTER
)
# An email address: an ASCII local part, '@', then a host name whose last label is letters
# (info@shop.example; @shop alone, a LINE or social account name, is none).
BARE_EMAIL_PATTERN = re.compile(
    r"""(?<![A-Za-z0-9._%+\-/:@])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"""
    r"""\.[A-Za-z]{2,}(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"""
)
# A web address without its scheme, starting with 'www.' (www.shop.example/sale); it runs
# as an http(s) link does. (A host without 'www.', shop.example, is not read.)
BARE_WEB_PATTERN = re.compile(
    r"""(?<![A-Za-z0-9.\-/@:])(?i:www)\.[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"""
    r"""(?![A-Za-z0-9\-])(?:[/?#][^\x00-\x20<>"'\x7f-\U0010ffff]*)?"""
)
_E164_DIGITS = range(10, 16)
# A link's authority as tracking reads it: a host name and an optional port, nothing else.
# Credentials, a backslash, percent-escapes or an IP literal are left untracked: a browser
# may read another host there than :func:`urllib.parse.urlsplit` does.
_AUTHORITY = re.compile(r"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::[0-9]{1,5})?")
# Punctuation that ends a sentence rather than the link.
_TRAILING = ".,;:!?)]}"

Reason = Literal["malformed", "forged", "expired"]


class InvalidLink(Exception):
    def __init__(self, reason: Reason) -> None:
        self.reason: Reason = reason
        super().__init__(reason)


class LinkClaims(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    execution: str
    step: str
    target: str
    expires_at: datetime


def valid_target(url: str) -> bool:
    """An absolute http(s) URL with a host, of a sane length, without control characters."""
    if not isinstance(url, str) or not 0 < len(url) <= MAX_TARGET_CHARS:
        return False
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def link_host(url: str) -> str | None:
    """The lower-case host of a link whose authority is a plain host name (and port); None
    for anything else (no authority, credentials, a backslash, an IP literal...)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    authority = _AUTHORITY.fullmatch(netloc)
    return authority.group(1).lower() if authority else None


def declared_target(url: str, hosts: TrackedLinksConfig) -> bool:
    """Whether ``url`` is a valid target on a host the shop declared (any port)."""
    host = link_host(url) if valid_target(url) else None
    return host is not None and hosts.declares(host)


def text_links(text: str) -> list[str]:
    """The http(s) links of a plain text as tracking reads them (:data:`LINK_PATTERN`,
    without a sentence's trailing punctuation), tracked or not."""
    return [m.group(0).rstrip(_TRAILING) for m in LINK_PATTERN.finditer(text)]


def web_link(url: str) -> bool:
    """Whether a link is a web link (``http://`` or ``https://``, in any case): the only
    kind a click tracker (SES's for email, :class:`TrackedLinks` for LINE) can rewrite."""
    return LINK_PATTERN.match(url) is not None


def on_origin(url: str, origin: str) -> bool:
    """Whether ``url`` is ``origin`` (``scheme://host[:port]``, no slash) or under it: its
    path, query or fragment."""
    return url == origin or url.startswith((f"{origin}/", f"{origin}?", f"{origin}#"))


class HtmlLink(NamedTuple):
    """A link of an HTML part (:func:`html_links`)."""

    href: str
    # the element says ``ses:no-track``: SES's click tracking leaves the link as written
    no_track: bool


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[HtmlLink] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        names = {name for name, _ in attrs}
        href = next((value for name, value in attrs if name == "href"), None)
        href = (href or "").strip()
        if href and not href.startswith("#"):
            self.found.append(HtmlLink(href, "ses:no-track" in names))


def html_links(html: str) -> list[HtmlLink]:
    """The links a reader can follow in an HTML part: the ``href`` of every ``<a>``
    element (its first, entities decoded, without surrounding whitespace) whatever its
    scheme (``mailto:``, ``tel:``, ``sms:``... open an app: a tap on one is seen by no click
    tracker), but not an empty one or an in-page ``#fragment``, which opens nothing. Only
    ``<a>`` elements: an image's ``src`` is shown, not followed. Read with the standard
    library's lenient parser: a malformed part is read as far as it goes, never refused
    (it was rendered and validated already)."""
    parser = _Anchors()
    parser.feed(html)
    parser.close()
    return parser.found


def scheme_links(text: str) -> list[str]:
    """The links of a plain text written with a scheme other than http(s) that a phone
    opens (:data:`SCHEME_LINK_PATTERN`: ``tel:``, ``mailto:``, ``line://``), without a
    sentence's trailing punctuation. Never tracked: no click of one can be seen."""
    return [m.group(0).rstrip(_TRAILING) for m in SCHEME_LINK_PATTERN.finditer(text)]


def bare_links(text: str) -> list[str]:
    """The phone numbers, email addresses and ``www.`` web addresses a plain text has
    written bare, without a scheme (:data:`BARE_PHONE_PATTERN`, :data:`BARE_EMAIL_PATTERN`,
    :data:`BARE_WEB_PATTERN`), outside its links written with one (:func:`text_links`,
    :func:`scheme_links`), without a sentence's trailing punctuation. LINE's app makes them
    tappable; never tracked: no tap of one can be seen."""
    rest = SCHEME_LINK_PATTERN.sub(" ", LINK_PATTERN.sub(" ", text))
    found = [
        m
        for m in BARE_PHONE_PATTERN.finditer(rest)
        if m.group(0).startswith("0") or sum(c.isdigit() for c in m.group(0)) in _E164_DIGITS
    ]
    found += BARE_EMAIL_PATTERN.finditer(rest)
    found += BARE_WEB_PATTERN.finditer(rest)
    return [m.group(0).rstrip(_TRAILING) for m in sorted(found, key=lambda m: m.start())]


_mac = signing.domain_mac(b"kizuna/link\x00")


def _well_formed(payload: bytes) -> bool:
    """This version, with more than its header (read before the signature is checked)."""
    return len(payload) > _HEADER.size and payload[0] == VERSION


def sign(
    secret: bytes,
    customer_id: str,
    execution: str,
    step: str,
    target: str,
    expires_at: datetime,
) -> str:
    """A token that records a click of ``customer_id`` on the message of ``execution`` /
    ``step`` and leads to ``target``, until ``expires_at``."""
    if not secret:
        raise ValueError("a link secret is required")
    for name, value in (("customer_id", customer_id), ("execution", execution), ("step", step)):
        if not value:
            raise ValueError(f"{name} is required")
    if not valid_target(target):
        raise ValueError("target must be an absolute http(s) URL")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    seconds = int(expires_at.timestamp())
    if not 0 < seconds < 2**32:
        raise ValueError("expires_at is out of range")
    payload = _HEADER.pack(VERSION, seconds)
    for value in (customer_id, execution, step, target):
        raw = value.encode()
        if len(raw) >= 2**16:
            raise ValueError("a link field is too long")
        payload += _LENGTH.pack(len(raw)) + raw
    return signing.encode(payload, secret, _mac)


def _fields(body: bytes) -> list[str]:
    fields: list[str] = []
    at = 0
    while at < len(body):
        if at + _LENGTH.size > len(body):
            raise InvalidLink("malformed")
        (size,) = _LENGTH.unpack_from(body, at)
        at += _LENGTH.size
        if size == 0 or at + size > len(body):
            raise InvalidLink("malformed")
        try:
            fields.append(body[at : at + size].decode())
        except UnicodeDecodeError:
            raise InvalidLink("malformed") from None
        at += size
    if len(fields) != 4:
        raise InvalidLink("malformed")
    return fields


def verify(secret: bytes | Sequence[bytes], token: str, now: datetime) -> LinkClaims:
    """The claims of a genuine, unexpired token; :class:`InvalidLink` otherwise, with
    ``reason`` ``malformed`` (not a token), ``forged`` (wrong signature) or ``expired``."""
    secrets = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a link secret is required")
    try:
        payload = signing.decode(
            token, secrets, _mac, max_chars=_MAX_TOKEN_CHARS, well_formed=_well_formed
        )
    except signing.SignedTokenError as err:
        raise InvalidLink(err.reason) from None
    _, seconds = _HEADER.unpack_from(payload)
    customer_id, execution, step, target = _fields(payload[_HEADER.size :])
    if not valid_target(target):
        raise InvalidLink("malformed")
    expires_at = datetime.fromtimestamp(seconds, UTC)
    if now >= expires_at:
        raise InvalidLink("expired")
    return LinkClaims(
        customer_id=customer_id,
        execution=execution,
        step=step,
        target=target,
        expires_at=expires_at,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TrackedLinks:
    """Rewrites the http(s) links of a plain-text message to ``<base>/l/<token>``, those to
    a host ``hosts`` declares only.

    ``base_url`` is the signed-link function's URL (the unsubscribe function URL, or a
    custom domain in front of it); its path and query are dropped. Links live ``ttl``.
    """

    def __init__(
        self,
        base_url: str,
        secret: bytes,
        *,
        hosts: TrackedLinksConfig,
        ttl: timedelta = LINK_TTL,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("the tracked link base URL must be an absolute https URL")
        if not secret:
            raise ValueError("a link secret is required")
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._secret = secret
        self._hosts = hosts
        self._ttl = ttl
        self._now = now

    def url(self, customer_id: str, execution: str, step: str, target: str) -> str:
        token = sign(self._secret, customer_id, execution, step, target, self._now() + self._ttl)
        return f"{self._origin}{PATH_PREFIX}{token}"

    def is_own(self, url: str) -> bool:
        """A link to the signed-link function itself (a tracked or an unsubscribe link)."""
        return on_origin(url, self._origin)

    def _tracked(self, found: str) -> str | None:
        """The link to track in a :data:`LINK_PATTERN` match (without the sentence's
        trailing punctuation), or None: a link to an undeclared host, to the function
        itself (already tracked, or an unsubscribe link), or not a valid target (too long,
        say)."""
        link = found.rstrip(_TRAILING)
        if self.is_own(link) or not declared_target(link, self._hosts):
            return None
        return link

    def tracks(self, text: str) -> bool:
        """Whether :meth:`rewrite` changes ``text`` (then it is signed per customer)."""
        return any(self._tracked(m.group(0)) for m in LINK_PATTERN.finditer(text))

    def rewrite(self, text: str, customer_id: str, execution: str, step: str) -> str:
        """``text`` with every http(s) link to a declared host replaced by its tracked link;
        everything else, trailing sentence punctuation and other links included, exactly as
        written."""

        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            link = self._tracked(found)
            if link is None:
                return found
            return self.url(customer_id, execution, step, link) + found[len(link) :]

        return LINK_PATTERN.sub(replace, text)
