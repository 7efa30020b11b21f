"""Conditions name fields that exist: a misspelled field (``rnak``, ``totl``) would silently
match nobody, so the loaders refuse it, and ``kizuna programs validate`` checks what
synthesis checks (segments included) and prints problems as written."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.campaigns.engine import CONVERSION_FIELDS, converted
from kizuna.campaigns.loader import CampaignError, check_campaign, parse_campaign
from kizuna.domain.customer import CartState, Device, OrderFact
from kizuna.events import detail_fields
from kizuna.programs.loader import ProgramError, load_program
from kizuna.programs.pattern_rules import unknown_fields
from kizuna.programs.view import VIEW_FIELDS, customer_view
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import SegmentError, load_segments
from kizuna_tools.cli import app
from tests.factories import LINE_USER, PHONE, T0, campaign_definition, customer, sample_program

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = sample_program(
    "{id: check, type: branch, condition: {rank: [Gold]}, then: bye, else: done}",
    "{id: bye, type: send, channel: push, template: bye, next: done}",
    "{id: done, type: exit}",
)


def program_issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    with pytest.raises(ProgramError) as info:
        load_program(path)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda t: t.replace("condition: {rank: [Gold]}", "condition: {rnak: [Gold]}"),
            "[step check]: condition.rnak: no field 'rnak' here; did you mean 'rank'?",
        ),
        (
            lambda t: t + "audience: {consent: {emial: [opted_in]}}\n",
            "audience.consent.emial: no field 'emial' here; did you mean 'email'?",
        ),
        (
            lambda t: t + "audience: {consent: [opted_in]}\n",
            "audience.consent: 'consent' is an object; name its fields",
        ),
        (
            lambda t: t + "audience: {$or: [{rank: [Gold]}, {lifecycle: {x: [1]}}]}\n",
            "audience.$or[1].lifecycle: 'lifecycle' is a value, not an object of fields",
        ),
        (
            lambda t: t.replace(
                "trigger: {event: customer.first_purchase}",
                "trigger: {event: customer.first_purchase, conditions: {totl: [{numeric: ['>', 1]}]}}",
            ),
            "trigger.conditions.totl: no field 'totl' here; did you mean 'total'?",
        ),
        (
            lambda t: t + "goal: {event: order.placed, conditions: {lines: {product: [p1]}}}\n",
            "goal.conditions.lines.product: no field 'product' here; did you mean 'product_id'?",
        ),
    ],
)
def test_a_condition_naming_a_field_the_data_never_has_is_refused(
    tmp_path: Path, mutate, expected: str
) -> None:  # type: ignore[no-untyped-def]
    # Given a program whose condition names a field that does not exist
    # When it is loaded / Then the problem names the step (if any), the path and the fix
    found = program_issues(tmp_path, mutate(PROGRAM))
    assert any(expected in issue for issue in found), found


def test_existing_fields_nested_ones_included_are_accepted(tmp_path: Path) -> None:
    text = PROGRAM.replace(
        "trigger: {event: customer.first_purchase}",
        "trigger: {event: order.placed, conditions: {lines: {category: [tea]}, total: "
        "[{numeric: ['>=', 1000]}]}}",
    ) + (
        "audience: {consent: {email: [opted_in]}, segments: [vip], age_band: [30s],"
        " reachable: [email]}\ngoal: {event: customer.rank_changed, conditions: {direction: [up]}}\n"
    )
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    assert load_program(path).trigger.event == "order.placed"


def test_the_view_fields_are_exactly_what_the_view_holds() -> None:
    # Given a customer with every field the view shows filled in
    full = customer(
        rank="Gold",
        next_rank="Platinum",
        points_to_next_rank=10,
        region="Kanto",
        prefecture="Tokyo",
        gender="female",
        occupation="engineer",
        birth_date=date(1990, 1, 1),
        last_order_at=T0,
        order_count=2,
        rfm_segment="Champions",
        phone=PHONE,
        line_user_id=LINE_USER,
        devices={"d": Device(token="t" * 16, platform="ios", at=T0)},
        cart=CartState(
            cart_id="k", item_count=1, value=Decimal(1), currency="JPY", at=T0, stamp="s"
        ),
    )
    view = customer_view(full, T0, KizunaConfig(), {"all": {"customer_id": [{"exists": True}]}})
    # Then the declared fields are the view's, and consent's channels are the channels
    assert set(view) == set(VIEW_FIELDS)
    assert set(VIEW_FIELDS["consent"] or {}) == {"email", "sms", "push", "line", "card", "dm"}


def test_event_fields_come_from_the_bus_contract() -> None:
    fields = detail_fields("order.placed")
    assert fields is not None and set(fields["lines"] or {}) == {
        "product_id",
        "category",
        "quantity",
        "unit_price",
    }
    assert detail_fields("customer.teleported") is None
    assert (
        unknown_fields(
            {"to_segment": ["Champions"]}, detail_fields("customer.segment_changed") or {}
        )
        == []
    )


def test_segments_and_campaigns_refuse_unknown_fields(tmp_path: Path) -> None:
    # A segment sees the view without `segments`; a misspelling is refused with its file
    (tmp_path / "a.yaml").write_text("name: a\nconditions: {rnak: [Gold]}\n")
    (tmp_path / "b.yaml").write_text("name: b\nconditions: {segments: [a]}\n")
    with pytest.raises(SegmentError) as caught:
        load_segments(tmp_path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["a.yaml", "b.yaml"]
    assert "did you mean 'rank'" in caught.value.problems[0]
    # A campaign's audience is over the view; its goal over the order it counts
    campaign = parse_campaign(
        campaign_definition(
            audience={"conditions": {"lifecylce": ["repeat"]}},
            goal={"event": "order.placed", "conditions": {"totl": [{"numeric": [">", 0]}]}},
        )
    )
    found = [str(i) for i in check_campaign("sale.yaml", campaign)]
    assert any("conditions.lifecylce: no field" in p for p in found), found
    assert any("conditions.totl: no field 'totl' here; did you mean 'total'?" in p for p in found)
    with pytest.raises(CampaignError):
        raise CampaignError(check_campaign("sale.yaml", campaign))


def test_conversion_fields_are_what_converted_matches() -> None:
    # Every declared conversion field can match an order (else a goal on it never converts)
    order = OrderFact(
        placed=True, at=T0, total=Decimal(100), currency="JPY", channel="web", products=("p1",)
    )
    buyer = customer(orders={"o1": order})
    values = {
        "order_id": ["o1"],
        "total": [100],
        "currency": ["JPY"],
        "channel": ["web"],
        "product_ids": ["p1"],
    }
    assert set(values) == set(CONVERSION_FIELDS)
    for field, value in values.items():
        assert converted(buyer, T0.replace(year=T0.year - 1), 400, {field: value}), field


# --- kizuna programs validate -------------------------------------------------------------
def project(tmp_path: Path) -> Path:
    for folder in ("programs", "segments", "templates"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_programs_validate_refuses_an_unknown_segment_as_synthesis_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the seed project with a program whose audience names a segment that does not exist
    root = project(tmp_path)
    path = root / "programs" / "champions-care.yaml"
    path.write_text(path.read_text() + "audience:\n  segments: [no-such-segment]\n")
    monkeypatch.chdir(root)
    # When it is validated / Then it fails, naming the segment
    result = CliRunner().invoke(app, ["programs", "validate"])
    assert result.exit_code == 1, result.output
    assert "segments: no segment 'no-such-segment'" in " ".join(result.output.split())


def test_programs_validate_prints_step_ids_and_patterns_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a program with a misspelled field in a branch and a step id the pattern refuses
    root = project(tmp_path)
    path = root / "programs" / "second-purchase-coupon.yaml"
    text = path.read_text()
    assert "order_count: [{numeric:" in text and "id: reminder" in text
    path.write_text(
        text.replace("order_count: [{numeric:", "order_cnt: [{numeric:").replace(
            "id: reminder", "id: Reminder"
        )
    )
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["programs", "validate"])
    assert result.exit_code == 1
    # Then rich markup interprets none of it: the step id and the regex's [a-z] are shown
    assert "[step Reminder]: id: String should match pattern '^[a-z][a-z0-9_]{0,39}$'" in (
        result.output
    ), result.output
    path.write_text(text.replace("order_count: [{numeric:", "order_cnt: [{numeric:"))
    result = CliRunner().invoke(app, ["programs", "validate"])
    assert (
        "[step still_one_order]: condition.order_cnt: no field 'order_cnt' here; did you mean"
        in (result.output)
    ), result.output
