"""``kizuna programs validate`` and ``kizuna campaigns validate`` render every template with
the context a send gives it: what would fail a send is refused before a deploy, with the
program, step, channel and locale."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.delivery.content import SmsContent
from kizuna.delivery.samples import (
    sample_coupon,
    sample_ranks,
    sample_recipient,
    sample_trigger,
)
from kizuna.delivery.templates import Renderer
from kizuna.events import RankChanged, SegmentChanged
from kizuna.events.custom import vocabulary
from kizuna.events.derived import Cause, derived_event
from kizuna.programs.loader import load_program
from kizuna.programs.members import trigger_of
from kizuna.programs.model import SendStep
from kizuna.runtime.config import KizunaConfig
from kizuna.services.send import message_context
from kizuna_tools.cli import app
from kizuna_tools.templatecheck import program_template_problems

ROOT = Path(__file__).resolve().parents[2]
REMINDER = Path("templates/second-purchase-coupon/reminder/ja/line.txt.j2")  # first_purchase
CHAMPIONS = Path("templates/champions-care/champions/ja/line.txt.j2")  # segment_changed
SALE = Path("templates/month-end-sale/sale_urgent/en/email.subject.j2")
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for folder in ("programs", "segments", "templates", "campaigns"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    return tmp_path


def validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_campaigns_validate_reports_a_segment_that_does_not_load(project: Path) -> None:
    # given a segment file with a value its field never holds (a traceback before)
    (project / "segments" / "bad.yaml").write_text(
        "name: bad\nconditions: {lifecycle: [at-risk]}\n", encoding="utf-8"
    )
    code, output = validate("campaigns", "validate")
    assert code == 1
    assert "bad.yaml" in output and "at-risk" in output
    assert "Traceback" not in output


def test_a_shop_with_its_own_ranks_reads_their_benefits_by_the_customers_rank(
    tmp_path: Path,
) -> None:
    # given a shop whose ranks are its own (no Silver) and a template reading the benefits
    # of the customer's rank, as docs/PROGRAMS.md shows
    ranks = [
        {"name": "レギュラー", "min_points": 0, "benefits": ["誕生日クーポン"]},
        {"name": "シルバー", "min_points": 500, "benefits": ["送料無料"]},
        {"name": "ゴールド", "min_points": 2000, "benefits": ["先行セール"]},
    ]
    cfg = KizunaConfig.model_validate({"loyalty": {"ranks": ranks}})
    (tmp_path / "rk.yaml").write_text(
        "id: rk\nname: Rank benefits\ntrigger: {event: customer.rank_changed}\nsteps:\n"
        "  - {id: s, type: send, channels: [line], template: t}\n",
        encoding="utf-8",
    )
    folder = tmp_path / "templates" / "rk" / "t" / "ja"
    folder.mkdir(parents=True)
    (folder / "line.txt.j2").write_text(
        '{{ customer.rank }}: {{ loyalty.benefits[customer.rank]|join("、") }}', encoding="utf-8"
    )
    program = load_program(tmp_path / "rk.yaml", vocab=vocabulary(cfg))
    # when its templates are checked / then the sample customer holds one of the shop's ranks
    renderer = Renderer(tmp_path / "templates")
    assert program_template_problems([program], renderer, cfg, tmp_path, now=T) == []
    assert sample_ranks([r["name"] for r in ranks]) == ("シルバー", "ゴールド")
    assert sample_ranks(["Only"]) == ("Only", None)
    assert sample_ranks() == ("Silver", "Gold")


def test_the_shipped_programs_and_campaigns_render(project: Path) -> None:
    assert validate("programs", "validate")[0] == 0
    assert validate("campaigns", "validate")[0] == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "{{ custmer.display_name }}",
            "[step reminder]: template 'reminder' (line) ja/line.txt: undefined name 'custmer'",
        ),
        (
            "{% if false %}{{ customer.__class__.__mro__ }}{% endif %}",
            "[step reminder]: template 'reminder' (line) ja/line.txt: the sandbox refuses "
            "attribute '__class__' (line 1)",
        ),
        (
            "{{ customer.display_nmae }}",
            "[step reminder]: template 'reminder' (line) ja: undefined in line.txt: "
            "'dict object' has no attribute 'display_nmae'",
        ),
        (
            "{{ 'a' * 10**9 }}",
            "[step reminder]: template 'reminder' (line) ja: over a render bound in line.txt: "
            "'*' would make 1,000,000,000 characters",
        ),
        (
            "{{ coupon.code }}",  # the reminder step issues no coupon: coupon is None
            "[step reminder]: template 'reminder' (line) ja: undefined in line.txt",
        ),
    ],
)
def test_programs_validate_renders_each_template_as_a_send_would(
    project: Path, line: str, expected: str
) -> None:
    # Given a send step's template that a send would fail on
    path = project / REMINDER
    path.write_text(line + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    # When the programs are validated
    started = time.monotonic()
    code, output = validate("programs", "validate")
    # Then it fails quickly, naming the file, step, template, channel and locale
    assert code == 1
    assert f"programs/second-purchase-coupon.yaml {expected}" in output, output
    assert time.monotonic() - started < 20


def test_campaigns_validate_renders_each_variant(project: Path) -> None:
    # Given a variant's subject reading a name the campaign context lacks
    (project / SALE).write_text("{{ campaign.title }}", encoding="utf-8")
    code, output = validate("campaigns", "validate")
    assert code == 1
    assert (
        "campaigns/month-end-sale.yaml [template]: template 'sale_urgent' (email) en: "
        "undefined in email.subject: 'dict object' has no attribute 'title'"
    ) in output, output


def test_a_top_level_set_is_known_to_the_blocks_of_a_child_template(tmp_path: Path) -> None:
    # the rank-up templates name the rank of *their* change in a top-level {% set %}
    base = tmp_path / "_base"
    base.mkdir()
    (base / "email.txt.j2").write_text("[{% block content %}{% endblock %}]")
    folder = tmp_path / "p" / "t" / "en"
    folder.mkdir(parents=True)
    (folder / "email.txt.j2").write_text(
        '{% extends "_base/email.txt.j2" %}{% set rank = (trigger or {}).get("to_rank") %}'
        "{% block content %}{{ rank }}{{ nope }}{% endblock %}"
    )
    problems = Renderer(tmp_path)._source_problems("p/t/en/email.txt.j2", {"trigger"})
    assert problems == ["undefined name 'nope'"]


def test_templates_read_every_declared_attribute_and_a_misspelled_one_is_refused(
    project: Path,
) -> None:
    # Given a configuration declaring attributes, one of them personal data
    (project / "config.json").write_text(
        '{"custom": {"attributes": [{"name": "nickname", "type": "string", "personal": true},'
        ' {"name": "favourite_store", "type": "string"},'
        ' {"name": "newsletter", "type": "boolean"}]}}'
    )
    path = project / REMINDER
    original = path.read_text(encoding="utf-8")
    # When a template addresses the customer by a declared attribute, personal or not
    path.write_text(
        "{{ customer.attributes.nickname }} {{ customer.attributes.favourite_store }}"
        "{% if customer.attributes.newsletter %}!{% endif %}\n" + original,
        encoding="utf-8",
    )
    # Then it renders (the check gives every declared attribute a sample value)
    code, output = validate("programs", "validate", "--config", "config.json")
    assert code == 0, output
    # and a name the configuration does not declare is refused, like any undefined name
    path.write_text("{{ customer.attributes.favourite_stor }}\n" + original, encoding="utf-8")
    code, output = validate("programs", "validate", "--config", "config.json")
    assert code == 1
    assert "'dict object' has no attribute 'favourite_stor'" in output, output


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a program's send always has its member's trigger: read without a guard
        ("{{ trigger.order_id }} {{ trigger.total }} {{ trigger.currency }}", None),
        (
            "{% if trigger %}{{ trigger.ordr_id }}{% endif %}",  # every send would fail
            "ja: undefined in line.txt: 'kizuna_tools.templatecheck.TriggerSample object' "
            "has no attribute 'ordr_id'",
        ),
        (
            '{{ (trigger or {}).get("ordr_id") }}',  # every send would read "None"
            "trigger.get('ordr_id') is always None: a customer.first_purchase trigger holds "
            "type, schema_version, event_id, customer_id, occurred_at, caused_by, order_id, "
            "total, currency, channel",
        ),
        (
            "{{ trigger.product_ids | join(', ') }}",  # a list: no member keeps it
            "ja: undefined in line.txt: 'kizuna_tools.templatecheck.TriggerSample object' "
            "has no attribute 'product_ids'",
        ),
    ],
)
def test_program_templates_render_with_the_trigger_a_member_carries(
    project: Path, line: str, expected: str | None
) -> None:
    # Given the reminder (a program triggered by customer.first_purchase) reading its trigger
    path = project / REMINDER
    path.write_text(line + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    # When the programs are validated
    code, output = validate("programs", "validate")
    # Then a field of the event renders, and a field it does not have is refused
    if expected is None:
        assert code == 0, output
        return
    assert code == 1
    prefix = "programs/second-purchase-coupon.yaml [step reminder]: template 'reminder' (line)"
    assert f"{prefix} {expected}" in output, output


def test_a_field_the_trigger_may_lack_is_read_with_a_default(project: Path) -> None:
    # Given champions-care, triggered by customer.segment_changed, whose from_segment is
    # null for a customer's first segment (and then not in the member's trigger)
    path = project / CHAMPIONS
    original = path.read_text(encoding="utf-8")
    path.write_text("{{ trigger.from_segment }}\n" + original, encoding="utf-8")
    # When the programs are validated, reading it unguarded is refused
    code, output = validate("programs", "validate")
    assert code == 1
    assert (
        "[step thanks]: template 'champions' (line, a customer.segment_changed trigger "
        "without from_segment) ja: undefined in line.txt"
    ) in output, output
    # and read with a default it renders
    path.write_text(
        "{{ trigger.from_segment | default('') }} {{ trigger.to_segment }}\n" + original,
        encoding="utf-8",
    )
    code, output = validate("programs", "validate")
    assert code == 0, output


def test_the_sample_trigger_is_shaped_as_a_member_keeps_a_real_one() -> None:
    cfg = KizunaConfig()
    vocab = vocabulary(cfg)
    cause = Cause("c1", T, "ev-1")
    events = [
        derived_event(
            RankChanged,
            "rank:1",
            cause,
            from_rank="Silver",
            to_rank="Gold",
            direction="up",
            rank_points=600,
        ),
        derived_event(
            SegmentChanged,
            "seg:1",
            cause,
            from_segment=None,
            to_segment="Champions",
            recency=5,
            frequency=5,
            monetary=5,
        ),
    ]
    for event in events:
        # the detail as the bus delivers it to evaluate, and what the member keeps of it
        detail = event.detail.model_dump(mode="json")
        personal = vocab.personal_fields(event.detail_type)
        real = trigger_of(event.detail_type, detail, personal)
        sample = sample_trigger(event.detail_type, vocab, cfg, T, optional=False)
        assert {k: type(v) for k, v in sample.items()} == {k: type(v) for k, v in real.items()}
    whole = sample_trigger("customer.segment_changed", vocab, cfg, T)
    assert isinstance(whole["from_segment"], str)  # set when the customer had one
    # ranks are the configuration's, so loyalty.benefits[trigger.to_rank] finds one
    rank_up = sample_trigger("customer.rank_changed", vocab, cfg, T)
    assert rank_up["to_rank"] in {r.name for r in cfg.loyalty.ranks}


def test_a_declared_events_personal_fields_are_not_in_its_sample_trigger() -> None:
    cfg = KizunaConfig.model_validate(
        {
            "custom": {
                "events": [
                    {
                        "detail_type": "wishlist.added",
                        "fields": [
                            {"name": "product_id", "type": "string", "required": True},
                            {"name": "price", "type": "number"},
                            {"name": "note", "type": "string", "personal": True},
                            {"name": "tags", "type": "string_list"},
                            {"name": "seen_at", "type": "datetime"},
                        ],
                    }
                ]
            }
        }
    )
    vocab = vocabulary(cfg)
    whole = sample_trigger("wishlist.added", vocab, cfg, T)
    least = sample_trigger("wishlist.added", vocab, cfg, T, optional=False)
    assert whole["price"] == 1 and whole["seen_at"] == "2026-03-02T09:00:00Z"
    assert not {"note", "tags"} & set(whole)  # personal; a list
    assert set(whole) - set(least) == {"schema_version", "price", "seen_at"}


POINTS_EXPIRY = (
    "id: points-expiry\nname: Points expiry\ntrigger: {event: customer.points_expiring}\n"
    "steps:\n  - {id: warn, type: send, channels: [line], template: warn}\n"
)


@pytest.mark.parametrize(
    ("copy", "expected"),
    [
        # a time of the event (ISO text in the trigger), in the message's locale
        ("{{ trigger.points|number }}ポイントが{{ trigger.expires_at|date }}に失効します", None),
        ("{{ trigger.occurred_at|date(locale) }}", None),
        # a field that holds no time is refused, naming neither the value nor the field's
        (
            "{{ trigger.points|date }}",
            "ja: TypeError in line.txt: |date takes a date, a datetime or ISO 8601 text "
            "(YYYY-MM-DD, or a time with its UTC offset: YYYY-MM-DDTHH:MM:SSZ, +09:00), not int",
        ),
        (
            "{{ trigger.type|date }}",
            "ja: ValueError in line.txt: |date: text that is no ISO 8601 date or time",
        ),
    ],
)
def test_programs_validate_takes_date_on_a_triggers_time_and_refuses_it_on_another_field(
    project: Path, copy: str, expected: str | None
) -> None:
    # Given a program on customer.points_expiring whose message shows the expiry date
    (project / "programs" / "points-expiry.yaml").write_text(POINTS_EXPIRY, encoding="utf-8")
    folder = project / "templates" / "points-expiry" / "warn" / "ja"
    folder.mkdir(parents=True)
    (folder / "line.txt.j2").write_text(copy, encoding="utf-8")
    # When the programs are validated
    code, output = validate("programs", "validate")
    # Then a time of the trigger is formatted, and a field that is no time is refused
    if expected is None:
        assert code == 0, output
        return
    assert code == 1
    prefix = "programs/points-expiry.yaml [step warn]: template 'warn' (line)"
    assert f"{prefix} {expected}" in output, output


def test_the_sample_trigger_of_points_expiring_gives_its_times_as_iso_text() -> None:
    cfg = KizunaConfig()
    sample = sample_trigger("customer.points_expiring", vocabulary(cfg), cfg, T)
    assert sample["expires_at"] == sample["occurred_at"] == "2026-03-02T09:00:00Z"
    assert isinstance(sample["points"], int)


def test_every_shipped_marketing_sms_says_how_to_stop_them() -> None:
    """Japan's Act on Specified Electronic Mail covers SMS: an advertising message shows where
    the recipient refuses further ones, and Kizuna puts no link in an SMS
    (docs/channels/SMS.md). The shipped SMS templates said nothing of it."""
    # given every shipped program's send step template, rendered on SMS as a send would
    cfg = KizunaConfig()
    vocab = vocabulary(cfg)
    renderer = Renderer(ROOT / "templates")
    rendered = 0
    for path in sorted((ROOT / "programs").glob("*.yaml")):
        program = load_program(path, vocab=vocab)
        trigger = sample_trigger(program.trigger.event, vocab, cfg, T, program=program.id)
        for step in program.steps:
            if not isinstance(step, SendStep):
                continue
            for locale in renderer.locales(program.id, step.template):
                customer = sample_recipient(locale, T)
                coupon = sample_coupon(step.coupon, b"t", program.id, "c", "x", step.id, T)
                recommendations = [{"product_id": "p", "name": "Sencha", "url": "https://s/p"}]
                context = message_context(
                    program, step, customer, cfg, coupon=coupon,
                    recommendations=recommendations, unsubscribe_url=None, trigger=trigger,
                )  # fmt: skip
                msg = renderer.render(program.id, step.template, "sms", locale, context)
                # then each says where to stop them, in the message's language, in one part
                assert isinstance(msg, SmsContent)
                stop = "配信停止: " if locale == "ja" else "Opt out: "
                assert f"{stop}shop.example.com/stop" in msg.text, (path.name, step.id, locale)
                assert msg.segments == 1, (path.name, step.id, locale, msg.text)
                rendered += 1
    assert rendered >= 20
