"""The named segments a function reads are those of the content it was given (``SEGMENTS_DIR``,
as ``LocalCloud(content_dir=...)`` and ``kizuna local serve --content`` set it), never the
checkout's: the programs of a migrated project name the project's own segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.programs.loader import ProgramError
from kizuna.runtime.settings import (
    CampaignSettings,
    EvaluateSettings,
    JourneySettings,
    SendSettings,
)
from kizuna.runtime.wiring import programs

PROGRAM = """\
id: tea-welcome
name: Tea welcome
enabled: true
trigger: {event: app.opened}
audience: {segments: [tea-lovers]}
steps:
  - {id: hello, type: send, channels: [email], template: welcome, next: done}
  - {id: done, type: exit}
"""


def content(root: Path) -> Path:
    (root / "programs").mkdir()
    (root / "programs" / "tea-welcome.yaml").write_text(PROGRAM, encoding="utf-8")
    (root / "segments").mkdir()
    (root / "segments" / "tea-lovers.yaml").write_text(
        "name: tea-lovers\nconditions:\n  rank: [Gold]\n", encoding="utf-8"
    )
    return root


def test_programs_are_checked_against_the_segments_given(tmp_path: Path) -> None:
    # Given a content folder whose program names a segment only that folder has
    root = content(tmp_path)
    # When the deployed programs are read with its segments
    found = programs(str(root / "programs"), "{}", str(root / "segments"))
    # Then the program is there
    assert [p.id for p in found] == ["tea-welcome"]


def test_without_them_the_segment_is_unknown(tmp_path: Path) -> None:
    root = content(tmp_path)
    with pytest.raises(ProgramError, match="no segment 'tea-lovers'"):
        programs(str(root / "programs"), "{}")


@pytest.mark.parametrize(
    "settings", [EvaluateSettings, JourneySettings, SendSettings, CampaignSettings]
)
def test_every_function_reading_segments_takes_their_folder(
    settings: type, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    required = {
        "CUSTOMERS_TABLE", "ACTIVITY_TABLE", "EVENT_BUS_NAME", "DEAD_LETTER_QUEUE_URL",
        "JOURNEY_ARN_PREFIX", "JOURNEY_SCHEDULE_GROUP", "JOURNEY_SCHEDULER_ROLE_ARN",
        "SIGNING_SECRET_ARN", "EMAIL_FROM", "SES_CONFIGURATION_SET",
        "UNSUBSCRIBE_URL", "PRODUCTS_TABLE", "CAMPAIGNS_TABLE", "ANALYTICS_BUCKET",
    }  # fmt: skip
    for name in required:
        monkeypatch.setenv(name, "x" * 3)
    monkeypatch.setenv("SEGMENTS_DIR", str(tmp_path / "segments"))
    folder = settings().SEGMENTS_DIR
    assert folder == str(tmp_path / "segments")
