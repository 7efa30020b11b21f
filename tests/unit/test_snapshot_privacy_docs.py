"""What docs/ARCHITECTURE.md says an erasure leaves in the snapshot export is what a
snapshot row holds: every column is named, and no page calls the rows free of personal
data (they are keyed by the customer id and kept 730 days)."""

from __future__ import annotations

import re
from pathlib import Path

from kizuna.scoring.snapshot import SnapshotRow

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_erasure_section_names_every_column_of_a_snapshot_row() -> None:
    text = (DOCS / "ARCHITECTURE.md").read_text()
    start = text.index("The daily snapshot export in the analytics bucket keeps")
    paragraph = text[start : text.index("\n\n", start)]
    named = set(re.findall(r"`([a-z_0-9]+)`", paragraph))
    assert set(SnapshotRow.model_fields) <= named


def test_no_page_says_the_snapshot_rows_hold_no_personal_data() -> None:
    for page in (DOCS / "ARCHITECTURE.md", DOCS / "REPORTS.md"):
        for line in page.read_text().splitlines():
            if "snapshot" in line.lower() or "per customer per day" in line:
                assert "no personal data" not in line.lower(), (page.name, line)
