"""The card channel without AWS: its content's bounds, its template parts, its consent rule,
card tokens, and the cards service over an in-memory store (one customer never sees or
marks another's cards; expired cards are gone; a mark is stamped once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from delivery_helpers import TEMPLATES
from pydantic import ValidationError

from kizuna.delivery.cards import CardChannel, CardTokens, InvalidCardToken, card_id
from kizuna.delivery.channels import OutboundMessage
from kizuna.delivery.content import CARD_EXPIRES_DEFAULT_HOURS, CardContent
from kizuna.delivery.policy import channel_block
from kizuna.delivery.templates import FilesRenderer, RenderError
from kizuna.delivery.unsubscribe import sign
from kizuna.domain.customer import ConsentState
from kizuna.services.cards import CardNotFound, CardService
from tests.factories import customer

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = b"k" * 32


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


# --- content ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("link_url", "http://shop.example.jp/"),
        ("link_url", "javascript:alert(1)"),
        ("link_url", "https:///no-host"),
        ("link_url", "https://user:pw@shop.example.jp/"),
        ("image_url", "https://shop.example.jp/a b.png"),
        ("image_url", 'https://shop.example.jp/"onload=x'),
        ("image_url", "https://shop.example.jp/" + "a" * 2100),
        ("title", "t" * 121),
        ("body", "b" * 1001),
        ("expires_after_hours", 0),
        ("expires_after_hours", 90 * 24 + 1),
        ("expires_after_hours", "72.0"),
        ("expires_after_hours", "-1"),
    ],
)
def test_card_content_refuses_what_is_out_of_bounds(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"title": "t", "body": "b", field: value}
    with pytest.raises(ValidationError) as err:
        CardContent.model_validate(fields)
    assert field in str(err.value)


def test_card_template_renders_per_locale_with_optional_parts_empty() -> None:
    # given: a card template with an https link, no image and no lifetime
    files = {
        "p/t/ja/card.title.j2": "{{ customer.display_name }}へのお知らせ",
        "p/t/ja/card.body.j2": "ポイントは{{ loyalty.points_balance }}です",
        "p/t/ja/card.image.j2": "",
        "p/t/ja/card.link.j2": "https://shop.example.jp/points",
        "p/t/ja/card.expires.j2": "",
    }
    renderer = FilesRenderer(files, TEMPLATES)
    context = {
        "customer": {"display_name": "山田 花子様"},
        "loyalty": {"points_balance": 120},
    }
    # when rendered
    card = renderer.render("p", "t", "card", "ja", context)
    # then: the optional parts are absent, the lifetime the default
    assert isinstance(card, CardContent)
    assert card.title == "山田 花子様へのお知らせ"
    assert card.link_url == "https://shop.example.jp/points"
    assert card.image_url is None
    assert card.expires_after_hours == CARD_EXPIRES_DEFAULT_HOURS


def test_a_card_whose_rendered_link_is_not_https_fails_to_render() -> None:
    files = {
        "p/t/ja/card.title.j2": "t",
        "p/t/ja/card.body.j2": "b",
        "p/t/ja/card.image.j2": "",
        "p/t/ja/card.link.j2": "{{ link }}",
        "p/t/ja/card.expires.j2": "9999",
    }
    with pytest.raises(RenderError) as err:
        FilesRenderer(files, TEMPLATES).render("p", "t", "card", "ja", {"link": "http://x.jp"})
    assert "link_url" in err.value.reason
    assert "expires_after_hours" in err.value.reason


# --- consent ---------------------------------------------------------------------------------
def test_cards_are_allowed_unless_the_customer_opted_out() -> None:
    someone = customer("c1")  # consent to email only
    assert channel_block(someone, "card", "c1") is None
    out = ConsentState(status="opted_out", at=T0, source="site", stamp="s")
    refused = customer("c1", consent={"card": out})
    assert channel_block(refused, "card", "c1") == "opted_out"
    assert channel_block(refused, "card", "c1", transactional=True) == "opted_out"


# --- tokens ----------------------------------------------------------------------------------
def test_a_card_token_names_its_customer_until_it_expires() -> None:
    clock = Clock()
    tokens = CardTokens([KEY], clock)
    token, expires = tokens.mint("cust-1", timedelta(minutes=30))
    assert expires == T0 + timedelta(minutes=30)
    assert tokens.verify(token) == "cust-1"
    clock.at = T0 + timedelta(minutes=30)
    with pytest.raises(InvalidCardToken) as err:
        tokens.verify(token)
    assert err.value.reason == "expired"


def test_forged_tampered_and_other_purpose_tokens_are_refused() -> None:
    tokens = CardTokens([KEY], Clock())
    token, _ = tokens.mint("cust-1")
    forged, _ = CardTokens([b"x" * 32], Clock()).mint("cust-1")
    unsubscribe = sign(KEY, "cust-1", "email", T0 + timedelta(days=1), issued_at=T0)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (forged, unsubscribe, tampered, token + "=", "", "a.b.c", "x" * 300):
        with pytest.raises(InvalidCardToken):
            tokens.verify(bad)
    # a rotated key still verifies the tokens of the previous one
    assert CardTokens([b"new" * 11, KEY], Clock()).verify(token) == "cust-1"
    with pytest.raises(ValueError, match="customer_id"):
        tokens.mint("a#b")
    with pytest.raises(ValueError, match="ttl"):
        tokens.mint("cust-1", timedelta(days=2))


# --- the service -----------------------------------------------------------------------------
class Store:
    """The activity table's card rows and ledger entries, as dicts."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def put_card(self, customer_id: str, sk: str, card: dict[str, Any], expires_at: int) -> bool:
        if (customer_id, sk) in self.rows:
            return False
        self.rows[(customer_id, sk)] = {"pk": customer_id, "sk": sk, **card}
        return True

    def cards_of(self, customer_id: str) -> list[dict[str, Any]]:
        rows = sorted(self.rows.items())
        return [dict(r) for (pk, sk), r in rows if pk == customer_id and sk.startswith("CARD#")]

    def _stamp(self, key: tuple[str, str], field: str, value: str) -> bool:
        row = self.rows.get(key)
        if row is None or (field in row and row[field] <= value):
            return False
        row[field] = value
        return True

    def stamp_card(self, customer_id: str, sk: str, field: str, value: str) -> bool:
        return self._stamp((customer_id, sk), field, value)

    def stamp_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        field: str,
        value: str,
        message_id: str | None = None,
        channel: str | None = None,
    ) -> bool:
        key = (customer_id, f"MSG#{execution}#{step}")
        self.rows.setdefault(key, {"channel": "card"})
        return self._stamp(key, field, value)


def send_card(store: Store, clock: Clock, cid: str, execution: str, hours: int = 24) -> str:
    content = CardContent(title="t", body="b", expires_after_hours=hours)
    message = OutboundMessage(
        customer_id=cid,
        program="p",
        step="s1",
        execution=execution,
        channel="card",
        address=cid,
        content=content,
    )
    return CardChannel(store, clock).send(message).provider_message_id


def test_a_card_is_listed_and_marked_only_for_its_customer() -> None:
    store, clock = Store(), Clock()
    service = CardService(store, CardTokens([KEY], clock), clock)
    mine = send_card(store, clock, "alice", "ex-a")
    theirs = send_card(store, clock, "bob", "ex-b")
    assert mine == card_id("ex-a", "s1")
    # alice sees her card, not bob's
    assert [c.id for c in service.cards("alice")] == [mine]
    # and cannot mark bob's: it is not found, and nothing is stamped
    with pytest.raises(CardNotFound):
        service.mark("alice", theirs, "seen")
    with pytest.raises(CardNotFound):
        service.mark("alice", "../" + theirs, "seen")
    assert all("open_at" not in r for r in store.rows.values())


def test_seen_and_clicked_are_stamped_once_on_the_ledger_entry() -> None:
    store, clock = Store(), Clock()
    service = CardService(store, CardTokens([KEY], clock), clock)
    card = send_card(store, clock, "alice", "ex-a")
    clock.at = T0 + timedelta(minutes=5)
    assert service.mark("alice", card, "seen") is True
    clock.at = T0 + timedelta(minutes=9)
    assert service.mark("alice", card, "seen") is False
    assert service.mark("alice", card, "clicked") is True
    entry = store.rows[("alice", "MSG#ex-a#s1")]
    assert entry["open_at"].startswith("2026-03-01T09:05")
    assert entry["click_at"].startswith("2026-03-01T09:09")
    [view] = service.cards("alice")
    assert view.seen_at == entry["open_at"] and view.clicked_at == entry["click_at"]


def test_an_expired_card_is_neither_listed_nor_marked() -> None:
    store, clock = Store(), Clock()
    service = CardService(store, CardTokens([KEY], clock), clock)
    short = send_card(store, clock, "alice", "ex-1", hours=1)
    long = send_card(store, clock, "alice", "ex-2", hours=48)
    clock.at = T0 + timedelta(hours=1)
    assert [c.id for c in service.cards("alice")] == [long]
    with pytest.raises(CardNotFound):
        service.mark("alice", short, "clicked")


def test_the_keys_are_read_when_a_token_is_first_used_not_when_the_api_starts() -> None:
    """The API function builds the cards service at every cold start: reading the signing
    secret there would slow (and, with Secrets Manager down, break) every route."""
    from kizuna.delivery.cards import CardTokens

    reads: list[int] = []

    def keys() -> list[bytes]:
        reads.append(1)
        return [b"k" * 32]

    tokens = CardTokens(keys, lambda: datetime(2026, 1, 5, tzinfo=UTC))
    assert reads == []
    token, _ = tokens.mint("c1")
    assert tokens.verify(token) == "c1" and reads
