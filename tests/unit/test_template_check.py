"""``kizuna programs validate`` and ``kizuna campaigns validate`` render every template with
the context a send gives it: what would fail a send is refused before a deploy, with the
program, step, channel and locale."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.delivery.templates import Renderer
from kizuna_tools.cli import app

ROOT = Path(__file__).resolve().parents[2]
REMINDER = Path("templates/second-purchase-coupon/reminder/ja/line.txt.j2")
SALE = Path("templates/month-end-sale/sale_urgent/en/email.subject.j2")


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
