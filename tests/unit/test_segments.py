"""Named segments: the shipped YAML is valid, bad files are reported, members match."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from kizuna.domain.customer import ConsentState, Customer
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import SegmentError, load_segments, members
from tests.factories import T0

ROOT = Path(__file__).resolve().parents[2]
CFG = KizunaConfig()


def test_the_shipped_segments_are_valid() -> None:
    found = load_segments(ROOT / "segments")
    assert {"champions", "gold-at-risk", "kanto-30s-repeaters"} <= set(found)


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: b\nconditions: {rank: [Gold]}\n")
    (tmp_path / "c.yaml").write_text("name: c\nconditions: {rank: Gold}\n")
    (tmp_path / "d.yaml").write_text("name: d\nconditions: {}\n")
    with pytest.raises(SegmentError) as caught:
        load_segments(tmp_path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["a.yaml", "c.yaml", "d.yaml"]


def test_members_match_rfm_segment_rank_attributes_and_consent(tmp_path: Path) -> None:
    found = load_segments(ROOT / "segments")
    email = {"email": ConsentState(status="opted_in", at=T0, source="web", stamp="x")}
    people = [
        Customer(customer_id="a", rfm_segment="Champions", consent=email),
        Customer(customer_id="b", rfm_segment="Champions"),  # no consent
        Customer(customer_id="c", rfm_segment="Loyal", consent=email),
        Customer(customer_id="d", rank="Gold", rfm_segment="At risk"),
        Customer(customer_id="e", rank="Bronze", rfm_segment="At risk"),
        Customer(
            customer_id="f",
            region="Kanto",
            birth_date=date(1990, 3, 1),
            order_count=3,
            last_order_at=T0,
            line_user_id="U" + "a" * 32,
            consent={"line": ConsentState(status="opted_in", at=T0, source="web", stamp="x")},
        ),
    ]
    assert list(members(found["champions"], people, T0, CFG)) == ["a"]
    assert list(members(found["gold-at-risk"], people, T0, CFG)) == ["d"]
    assert list(members(found["kanto-30s-repeaters"], people, T0, CFG)) == ["f"]
