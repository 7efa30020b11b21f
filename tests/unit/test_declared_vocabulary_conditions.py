"""Programs, segments and campaigns may name the shop's declared vocabulary (issue 17): a
declared event as a trigger or a goal (its conditions on the event's own fields), declared
attributes and behaviour counters in audiences, branches, segments and campaign audiences.
Anything that would silently match nobody is refused with the declaration to add: a
misspelled attribute, a personal one, a window that is not counted, an undeclared event, a
value the attribute cannot hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna.campaigns.loader import check_campaign, parse_campaign
from kizuna.events import detail_fields
from kizuna.events.custom import BUILTIN, vocabulary
from kizuna.programs.loader import ProgramError, load_program, load_programs
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import VOCABULARY, SegmentDefinition, SegmentError, load_segments
from kizuna_tools.cli import app
from tests.factories import campaign_definition

CONFIG: dict[str, Any] = {
    "custom": {
        "attributes": [
            {"name": "tier", "type": "string", "enum": ["standard", "premium", "vip"]},
            {"name": "newsletter", "type": "boolean"},
            {"name": "favourite_store", "type": "string"},
            {"name": "shoe_size", "type": "number"},
            {"name": "nickname", "type": "string", "personal": True},
        ],
        "events": [
            {
                "detail_type": "wishlist.added",
                "fields": [
                    {"name": "product_id", "type": "string", "required": True},
                    {"name": "price", "type": "number"},
                ],
                "windows_days": [14, 30],
            },
            {
                "detail_type": "store.checked_in",
                "fields": [{"name": "store_id", "type": "string", "required": True}],
            },
        ],
        "tracked": [{"detail_type": "app.opened", "windows_days": [30]}],
    }
}
VOCAB = vocabulary(KizunaConfig.model_validate(CONFIG))

PROGRAM = """\
id: wishlist
name: Wishlist follow-up
trigger:
  event: wishlist.added
  conditions: {price: [{numeric: [">=", 3000]}]}
audience:
  attributes: {tier: [premium, vip], newsletter: [true]}
  behaviour: {wishlist.added: {count_14d: [{numeric: [">=", 2]}]}, app.opened: {count_30d: [0]}}
goal: {event: store.checked_in, conditions: {store_id: [{prefix: "tokyo-"}]}, within_days: 14}
steps:
  - {id: check, type: branch, condition: {attributes: {favourite_store: [{exists: true}]}}, then: hello, else: done}
  - {id: hello, type: send, channels: [email], template: hello}
  - {id: done, type: exit}
"""


def write(tmp_path: Path, text: str, name: str = "wishlist.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def issues(path: Path, vocab: Any = VOCAB) -> list[str]:
    with pytest.raises(ProgramError) as caught:
        load_program(path, vocab=vocab)
    return [str(i) for i in caught.value.issues]


# --- programs --------------------------------------------------------------------------------
def test_a_program_on_the_declared_vocabulary_loads(tmp_path: Path) -> None:
    # Given a program triggered by a declared event (filtered on its field), with a goal on
    # another, an audience on attributes and counters, a branch on an attribute
    path = write(tmp_path, PROGRAM)
    # When it is loaded with the configuration's vocabulary / Then it is accepted
    program = load_program(path, vocab=VOCAB)
    assert program.trigger.event == "wishlist.added"
    assert program.goal is not None and program.goal.event == "store.checked_in"
    # and without the declarations every use is refused, each naming what to declare
    found = issues(path, BUILTIN)
    assert any("trigger.event: unknown event type 'wishlist.added'" in i for i in found), found
    assert any("custom.events" in i for i in found)
    assert any("goal.event: unknown event type 'store.checked_in'" in i for i in found)
    assert any("audience.attributes.tier: no field 'tier' here" in i for i in found)
    assert any("[step check]: condition.attributes.favourite_store" in i for i in found)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # a misspelled attribute: did you mean, and where attributes are declared
            "tier: [premium, vip]",
            "tierr: [premium, vip]",
            "audience.attributes.tierr: no field 'tierr' here; did you mean 'tier'? "
            "(an attribute a condition names is declared in the configuration's "
            "custom.attributes, not personal)",
        ),
        (  # personal data is never in the view
            "tier: [premium, vip]",
            "nickname: [Hana]",
            "audience.attributes.nickname: no field 'nickname' here; attribute 'nickname' is "
            "declared personal: conditions never see personal data (templates may use it)",
        ),
        (  # a window that is not counted
            "count_14d:",
            "count_21d:",
            "audience.behaviour.wishlist.added.count_21d: no field 'count_21d' here; "
            "'wishlist.added' is counted over 14, 30 days; add 21 to its windows_days in "
            "custom.events",
        ),
        (  # a tracked built-in event: its windows are in custom.tracked
            "count_30d: [0]",
            "count_7d: [0]",
            "add 7 to its windows_days in custom.tracked",
        ),
        (  # an event nobody counts
            "app.opened: {count_30d: [0]}",
            "product.viewed: {count_30d: [0]}",
            "audience.behaviour.product.viewed: no field 'product.viewed' here; ",
        ),
        (  # not a counter
            "count_14d:",
            "count:",
            "('wishlist.added' is counted over 14, 30 days: count_<N>d, total, days_since_last)",
        ),
        (  # a value outside the enum
            "tier: [premium, vip]",
            "tier: [premium, vipp]",
            "audience.attributes.tier[1]: 'vipp' is not one of 'tier''s values "
            "(standard, premium, vip)",
        ),
        (  # a boolean compared with a string
            "newsletter: [true]",
            "newsletter: ['yes']",
            "audience.attributes.newsletter[0]: 'yes' is not a boolean value",
        ),
        (  # numeric on a string
            "tier: [premium, vip]",
            "favourite_store: [{numeric: ['>', 1]}]",
            "numeric compares numbers; 'favourite_store' is a string",
        ),
        (  # null never matches an unset attribute
            "newsletter: [true]",
            "newsletter: [null]",
            "null never matches: an unset 'newsletter' is absent from the view",
        ),
        (  # a trigger condition on a field the declared event does not have
            "conditions: {price:",
            "conditions: {prize:",
            "trigger.conditions.prize: no field 'prize' here; did you mean 'price'?",
        ),
        (  # a goal condition likewise
            "store_id: [{prefix",
            "store: [{prefix",
            "goal.conditions.store: no field 'store' here; did you mean 'store_id'?",
        ),
        (  # an event nobody declared
            "event: wishlist.added",
            "event: wishlist.add",
            "trigger.event: unknown event type 'wishlist.add'; did you mean 'wishlist.added'? "
            "(a shop's own event is declared in the configuration's custom.events)",
        ),
    ],
)
def test_what_would_match_nobody_is_refused_with_the_declaration_to_add(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in PROGRAM
    found = issues(write(tmp_path, PROGRAM.replace(old, new, 1)))
    assert any(expected in i for i in found), found


def test_counters_other_than_windows_and_numbers_are_accepted(tmp_path: Path) -> None:
    text = PROGRAM.replace(
        "app.opened: {count_30d: [0]}",
        "app.opened: {days_since_last: [{numeric: ['>=', 30]}]}, store.checked_in: {total: [0]}",
    ).replace("tier: [premium, vip]", "shoe_size: [{numeric: ['>=', 24.5]}], tier: [{prefix: p}]")
    assert load_program(write(tmp_path, text), vocab=VOCAB).audience["attributes"]["shoe_size"]


def test_a_declared_event_s_detail_fields_are_what_its_conditions_may_name() -> None:
    fields = detail_fields("wishlist.added", VOCAB)
    assert fields is not None
    assert set(fields) == {"schema_version", "customer_id", "occurred_at", "product_id", "price"}
    assert detail_fields("wishlist.added") is None  # built-in contract only
    assert detail_fields("order.placed", VOCAB) == detail_fields("order.placed")


def test_load_programs_passes_the_vocabulary_to_every_file(tmp_path: Path) -> None:
    write(tmp_path, PROGRAM)
    programs, problems = load_programs(tmp_path, vocab=VOCAB)
    assert [p.id for p in programs] == ["wishlist"] and problems == []
    programs, problems = load_programs(tmp_path)
    assert programs == [] and problems


# --- segments and campaigns ------------------------------------------------------------------
SEGMENT = (
    "name: vip-wishers\n"
    "conditions:\n"
    "  attributes: {tier: [vip]}\n"
    "  behaviour: {wishlist.added: {count_30d: [{numeric: ['>=', 1]}]}}\n"
)


def test_segments_name_attributes_and_counters_with_the_vocabulary(tmp_path: Path) -> None:
    # Given a segment on an attribute and a behavioural condition
    write(tmp_path, SEGMENT, "vip-wishers.yaml")
    # When loaded with the vocabulary / Then it is accepted
    assert set(load_segments(tmp_path, VOCAB)) == {"vip-wishers"}
    # and without it refused, naming the attribute and the counter
    with pytest.raises(SegmentError) as caught:
        load_segments(tmp_path)
    assert "conditions.attributes.tier: no field 'tier' here" in caught.value.problems[0]
    # The model takes the vocabulary as validation context
    raw = {"name": "x", "conditions": {"attributes": {"tierr": ["vip"]}}}
    with pytest.raises(ValueError, match="did you mean 'tier'"):
        SegmentDefinition.model_validate(raw, context={VOCABULARY: VOCAB})
    # and a segment still cannot name segments
    raw = {"name": "x", "conditions": {"segments": ["vip-wishers"]}}
    with pytest.raises(ValueError, match="no field 'segments'"):
        SegmentDefinition.model_validate(raw, context={VOCABULARY: VOCAB})


def test_a_campaign_audience_names_attributes_and_counters_with_the_vocabulary() -> None:
    campaign = parse_campaign(
        campaign_definition(
            audience={
                "conditions": {
                    "attributes": {"newsletter": [True]},
                    "behaviour": {"store.checked_in": {"count_7d": [0]}},
                }
            }
        )
    )
    assert check_campaign("sale.yaml", campaign, vocab=VOCAB) == []
    refused = [str(i) for i in check_campaign("sale.yaml", campaign)]
    assert any("conditions.attributes.newsletter: no field" in p for p in refused), refused
    wrong = parse_campaign(
        campaign_definition(audience={"conditions": {"attributes": {"newsletter": ["1"]}}})
    )
    found = [str(i) for i in check_campaign("sale.yaml", wrong, vocab=VOCAB)]
    assert any("'1' is not a boolean value" in p for p in found), found


# --- the CLI passes the project's configuration ----------------------------------------------
def project(tmp_path: Path) -> Path:
    (tmp_path / "programs").mkdir()
    write(tmp_path / "programs", PROGRAM)
    (tmp_path / "segments").mkdir()
    write(tmp_path / "segments", SEGMENT, "vip-wishers.yaml")
    for locale in ("ja", "en"):
        folder = tmp_path / "templates" / "wishlist" / "hello" / locale
        folder.mkdir(parents=True)
        (folder / "email.subject.j2").write_text("{{ customer.display_name }}")
        (folder / "email.txt.j2").write_text("Store: {{ customer.attributes.favourite_store }}")
        (folder / "email.html.j2").write_text("<p>{{ customer.attributes.nickname }}</p>")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    return tmp_path


def test_the_validate_commands_use_the_project_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    runner = CliRunner()
    # With the configuration that declares them, the program and the segment validate
    ok = runner.invoke(app, ["programs", "validate", "--config", "config.json"])
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["segments", "list", "--config", "config.json"])
    assert listed.exit_code == 0 and "vip-wishers" in listed.output, listed.output
    # With a configuration that declares none of them they are refused
    (root / "empty.json").write_text("{}")
    refused = runner.invoke(app, ["programs", "validate", "--config", "empty.json"])
    assert refused.exit_code == 1
    assert "unknown event type 'wishlist.added'" in refused.output
    assert "vip-wishers.yaml" in refused.output
    assert "conditions.attributes.tier: no field 'tier' here" in refused.output.replace("\n", "")


def test_a_date_attribute_takes_a_prefix_of_its_iso_text_and_nothing_else() -> None:
    from kizuna.programs.view_rules import view_condition_problems

    vocab = vocabulary(
        KizunaConfig.model_validate(
            {"custom": {"attributes": [{"name": "joined", "type": "date"}]}}
        )
    )
    # "2025-07" is every day of July 2025 (a date is its YYYY-MM-DD text in the view)
    good = {"attributes": {"joined": [{"prefix": "2025-07"}, {"prefix": "2026"}]}}
    assert view_condition_problems(good, "audience", vocab) == []
    bad = {"attributes": {"joined": [{"prefix": "July"}]}}
    assert any(
        "cannot begin a YYYY-MM-DD date" in p
        for p in view_condition_problems(bad, "audience", vocab)
    )
    other = {"attributes": {"joined": [{"suffix": "-01"}]}}
    assert any(
        "suffix compares strings" in p for p in view_condition_problems(other, "audience", vocab)
    )


def test_segments_list_prints_a_segments_values_as_written_not_as_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value that reads as Rich markup (``[/bold]``, a ``[link=...]``) failed the command
    (MarkupError) or printed a hidden terminal hyperlink."""
    root = project(tmp_path)
    write(
        root / "segments",
        "name: odd-tiers\n"
        "conditions:\n"
        "  attributes: {favourite_store: ['[/bold]', '[link=https://evil.example]click[/link]']}\n",
        "odd-tiers.yaml",
    )
    monkeypatch.chdir(root)
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    listed = CliRunner().invoke(app, ["segments", "list", "--config", "config.json"])
    assert listed.exit_code == 0, listed.output
    assert "[/bold]" in listed.output
    assert "[link=https://evil.example]click[/link]" in listed.output.replace("\n", "")
