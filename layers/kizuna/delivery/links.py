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
# does. Deliberately no more (LINE documents no rule for what its app makes tappable in a
# text): a bare number or address (the app may make some tappable: which digits are a
# phone number is its guess, an order number or a price as often) and another app's scheme
# are not read as links.
SCHEME_LINK_PATTERN = re.compile(
    r"""(?<![A-Za-z0-9+.\-])"""
    r"""(?:(?ai:tel):[+(0-9]|(?ai:mailto):[^\x00-\x20<>"'@\x7f-\U0010ffff]+@|(?ai:line)://)"""
    r"""[^\x00-\x20<>"'\x7f-\U0010ffff]*"""
)
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
