"""Customer ids follow one strict grammar (docs/EVENTS.md) and are never normalised; names
and other free text hold no control or bidi characters. Every path that accepts an id: the
bus (ingest and evaluate share the models), the importer, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.events.inbound import CUSTOMER_ID_PATTERN, is_customer_id
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import IngestService
from kizuna_tools.cli import app
from kizuna_tools.fakes import MemoryDeadLetters, MemoryPublisher, MemoryStore
from kizuna_tools.importer import import_file
from tests.factories import T0, order, upsert
from tests.sqs_events import sqs_event, sqs_record

HOSTILE_IDS = [
    "  victim\t",
    "victim ",
    " victim",
    "victim\n",
    "victim\r\nx",
    "vic\x00tim",
    "vic\x07tim",
    "vic\u202etim",
    "vic\u2066tim",
    "vic\u0085tim",
    "vic tim",
    "vic#tim",
    "vic$tim",
    "-victim",
    "ｖictim",  # a fullwidth letter
    "",
    "v" * 129,
]
HOSTILE_TEXT = [
    "Hana\x00ko",
    "Hana\x07ko",
    "Hana\u202eko",
    "Hana\u2067ko",
    "Hana\r\nko",
    "\tHanako",
]


@pytest.mark.parametrize("cid", HOSTILE_IDS)
def test_a_hostile_id_is_not_a_customer_id(cid: str) -> None:
    assert not is_customer_id(cid)
    with pytest.raises(EventRejected) as info:
        parse_inbound(upsert(cid, T0, "ev-1", email="attacker@example.jp"))
    assert info.value.error_type == "InvalidEvent" and "detail.customer_id" in info.value.reason


@pytest.mark.parametrize("cid", ["c1", "cust-0001", "shop:42", "a.b_c@d-e", "0", "v" * 128])
def test_ordinary_ids_are_customer_ids(cid: str) -> None:
    assert is_customer_id(cid)
    assert parse_inbound(upsert(cid, T0, "ev-1")).customer_id == cid


def test_a_padded_id_never_overwrites_the_customer_it_resembles() -> None:
    # given a customer "victim" with an email
    store = MemoryStore()
    dlq = MemoryDeadLetters()
    svc = IngestService(store, MemoryPublisher(), dlq, KizunaConfig(), FixedClock(T0), 3)
    svc.process_batch(
        sqs_event(sqs_record(upsert("victim", T0, "ev-1", email="victim@example.jp"), "m1"))
    )
    # when a producer sends "  victim\t" with another email
    attack = upsert("  victim\t", T0, "ev-2", email="attacker@example.jp")
    assert svc.process_batch(sqs_event(sqs_record(attack, "m2"))) == {"batchItemFailures": []}
    # then it is dead-lettered with the field named, and "victim" keeps their email
    [letter] = dlq.letters
    assert letter.message_id == "m2" and "detail.customer_id" in letter.reason
    assert store.customers["victim"].email == "victim@example.jp"
    assert set(store.customers) == {"victim"}


@pytest.mark.parametrize("name", HOSTILE_TEXT)
def test_names_with_control_or_bidi_characters_are_rejected(name: str) -> None:
    with pytest.raises(EventRejected) as info:
        parse_inbound(upsert("c1", T0, "ev-1", first_name=name))
    assert "detail.first_name" in info.value.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_name", "Yama\u202eda"),
        ("region", "Kan\x00to"),
        ("occupation", "eng\ninee"),
        ("prefecture", "Tokyo\u2069"),
    ],
)
def test_other_profile_text_rejects_them_too(field: str, value: str) -> None:
    with pytest.raises(EventRejected) as info:
        parse_inbound(upsert("c1", T0, "ev-1", **{field: value}))
    assert f"detail.{field}" in info.value.reason


def test_order_ids_and_categories_reject_control_characters() -> None:
    raw = order("c1", "o\u202e1", 100, T0)
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert "detail.order_id" in info.value.reason
    raw = order("c1", "o1", 100, T0, category="te\x00a")
    with pytest.raises(EventRejected) as info:
        parse_inbound(raw)
    assert "detail.lines.0.category" in info.value.reason


# invisible format characters (Unicode category Cf): zero-width space, word joiner, BOM,
# left-to-right and right-to-left marks, soft hyphen, Arabic letter mark
INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u200e", "\u200f", "\u00ad", "\u061c"]


@pytest.mark.parametrize("char", [*INVISIBLE, "\u200c", "\u200d", "\U000e0001"])
def test_an_order_id_with_an_invisible_character_is_not_another_order(char: str) -> None:
    with pytest.raises(EventRejected) as info:
        parse_inbound(order("c1", f"o{char}1", 100, T0))
    assert "detail.order_id" in info.value.reason


@pytest.mark.parametrize("char", INVISIBLE)
def test_text_refuses_invisible_characters(char: str) -> None:
    with pytest.raises(EventRejected) as info:
        parse_inbound(upsert("c1", T0, "ev-1", first_name=f"Hana{char}ko"))
    assert "detail.first_name" in info.value.reason


@pytest.mark.parametrize(
    "name",
    [
        "山田〜花子",  # a wave dash
        "ﾔﾏﾀﾞ　ＨＡＮＡＫＯ",  # half-width kana, an ideographic space, full-width letters
        "Hanako \U0001f468\u200d\U0001f469\u200d\U0001f467",  # an emoji family: ZWJ
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # a flag
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: ZWNJ
    ],
)
def test_japanese_text_and_emoji_sequences_are_accepted(name: str) -> None:
    ev = parse_inbound(upsert("c1", T0, "ev-1", first_name=name))
    assert ev.detail.first_name == name  # type: ignore[union-attr]


def test_names_are_kept_as_sent_not_trimmed() -> None:
    ev = parse_inbound(upsert("c1", T0, "ev-1", first_name="花子", last_name="O'Brien-Smith"))
    assert (ev.detail.first_name, ev.detail.last_name) == ("花子", "O'Brien-Smith")  # type: ignore[union-attr]


def test_the_published_schema_carries_the_grammar() -> None:
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "order.placed.v1.json").read_text()
    )
    assert schema["properties"]["customer_id"]["pattern"] == CUSTOMER_ID_PATTERN


def test_an_import_row_with_a_padded_id_is_rejected_not_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,email\nvictim,victim@example.jp\n  victim\t,attacker@example.jp\n")
    store = MemoryStore()
    report = import_file("customers", path, store, KizunaConfig(), T0, partial=True, as_of=T0)
    assert [(e.row, "customer_id" in e.error) for e in report.errors] == [(3, True)]
    assert store.customers["victim"].email == "victim@example.jp"


@pytest.mark.parametrize("command", ["export", "erase"])
def test_the_cli_refuses_an_id_outside_the_grammar(command: str) -> None:
    args = ["customers", command, " victim", "--customers-table", "c", "--activity-table", "a"]
    result = CliRunner().invoke(app, [*args, *(["--yes"] if command == "erase" else [])])
    assert result.exit_code == 2
    assert "not a customer id" in result.output


def test_the_cli_takes_an_id_stored_before_the_grammar_only_when_told() -> None:
    # an id the previous rules let in (no whitespace, no '#') can still be erased
    args = ["customers", "export", "山田", "--customers-table", "c", "--activity-table", "a"]
    assert "not a customer id" in CliRunner().invoke(app, args).output
    result = CliRunner().invoke(app, [*args[:3], "--legacy-id"])
    assert result.exit_code == 2 and "--stack" in result.output  # past the id, to the tables
    for hostile in (" victim", "vic#tim", "vic\ttim"):
        result = CliRunner().invoke(app, ["customers", "export", hostile, "--legacy-id"])
        assert "not a customer id" in result.output, hostile
