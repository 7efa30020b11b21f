"""A key written twice in a YAML mapping is refused wherever Kizuna reads YAML: PyYAML's
``safe_load`` kept the last one, so a segment file targeted another group than it read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kizuna.api.routes.campaigns import parse_yaml_text
from kizuna.campaigns.loader import CampaignError
from kizuna.domain import strict_yaml
from kizuna.programs.loader import ProgramError, load_program
from kizuna.segments import SegmentError, load_segments

ROOT = Path(__file__).resolve().parents[2]


def test_a_repeated_key_is_refused_at_any_depth_and_merges_still_merge() -> None:
    with pytest.raises(yaml.YAMLError, match="the key 'rfm_segment' is given twice"):
        strict_yaml.load(
            "name: x\nconditions:\n  rfm_segment: [Champions]\n  rfm_segment: [Lost]\n"
        )
    with pytest.raises(yaml.YAMLError, match="given twice"):
        strict_yaml.load("- {a: 1, b: 2, a: 3}\n")
    assert strict_yaml.load("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n")["x"] == {
        "a": 3,
        "b": 2,
    }
    assert strict_yaml.load("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}  # apart: fine


def test_a_segment_file_giving_a_key_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vip.yaml").write_text(
        "name: vip\nconditions:\n  rfm_segment: [Champions]\n  rfm_segment: [Lost]\n"
    )
    with pytest.raises(SegmentError, match="given twice"):
        load_segments(tmp_path)


def test_segment_files_ending_yml_are_loaded_and_a_name_twice_refused(tmp_path: Path) -> None:
    (tmp_path / "vip-care.yml").write_text("name: vip-care\nconditions: {rank: [Gold]}\n")
    assert set(load_segments(tmp_path)) == {"vip-care"}  # it was left out without a word
    (tmp_path / "vip-care.yaml").write_text("name: vip-care\nconditions: {rank: [Silver]}\n")
    with pytest.raises(SegmentError, match="another file defines the segment 'vip-care'"):
        load_segments(tmp_path)


def test_a_program_file_giving_a_key_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "champions-care.yaml"
    shutil.copy(ROOT / "programs" / "champions-care.yaml", path)
    load_program(path)  # as shipped
    path.write_text(path.read_text(encoding="utf-8") + "name: something else\n")
    with pytest.raises(ProgramError, match="given twice"):
        load_program(path)


def test_a_campaign_sent_as_yaml_giving_a_key_twice_is_refused() -> None:
    with pytest.raises(CampaignError, match="given twice"):
        parse_yaml_text("id: sale\nholdout_percent: 10\nholdout_percent: 0\n")
