"""The migration report: every Pinpoint object, what it became, and what needs a person.

Written as ``MIGRATION-REPORT.json`` (every item, for tools) and ``MIGRATION-REPORT.md``
(the same, for people: decisions first, then each kind of object). An item's ``status``:

- ``migrated``: it became the files named in ``became``, meaning what it meant in Pinpoint;
- ``changed``: it became those files, with a difference the ``notes`` say (a locale
  normalised, channels in fallback order...): read them;
- ``needs_decision``: written as far as it can be (a draft, a narrower condition) or not at
  all; ``decisions`` says what a person has to decide before it runs;
- ``not_migrated``: nothing was written for it (an IMPORT segment, an in-app campaign...),
  and ``notes`` says why.

No personal data is written here: endpoints and customers are named by their ids, never by
an address, a name or an attribute's value.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    MIGRATED = "migrated"
    CHANGED = "changed"
    NEEDS_DECISION = "needs_decision"
    NOT_MIGRATED = "not_migrated"


# the order sections appear in the Markdown report
KINDS = (
    "configuration",
    "attribute",
    "event",
    "customers",
    "endpoint",
    "segment",
    "template",
    "campaign",
    "journey",
    "input",
)
_EXCERPT = 200  # endpoint items listed in the Markdown (all of them are in the JSON)


DECIDE_LEVELS = ("decision", "error")  # a translator's notes a person must act on


@dataclass
class Item:
    kind: str  # one of KINDS
    source: str  # what Pinpoint called it: a name, an id, a file
    status: Status
    became: list[str] = field(default_factory=list)  # files or names written
    notes: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    pinpoint_id: str | None = None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
        if self.status == Status.MIGRATED:
            self.status = Status.CHANGED

    def decide(self, text: str) -> None:
        if text not in self.decisions:
            self.decisions.append(text)
        if self.status in (Status.MIGRATED, Status.CHANGED):
            self.status = Status.NEEDS_DECISION

    def tell(self, level: str, text: str) -> None:
        """A translator's note (:class:`kizuna_tools.migrate.notes.Note`) by its level: a
        decision or an error is a decision to make; any other a note (its level said, but
        ``info``)."""
        if level in DECIDE_LEVELS:
            self.decide(text)
        else:
            self.note(text if level == "info" else f"{level}: {text}")

    def record(self, notes: Iterable[str] = (), decisions: Iterable[str] = ()) -> None:
        """What a translation said: its notes, then its decisions."""
        for text in notes:
            self.note(text)
        for text in decisions:
            self.decide(text)


@dataclass
class Report:
    """Items in the order they were met; ``counts`` for the summary (customers, endpoints)."""

    items: list[Item] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        kind: str,
        source: str,
        status: Status = Status.MIGRATED,
        *,
        became: list[str] | None = None,
        notes: list[str] | None = None,
        decisions: list[str] | None = None,
        pinpoint_id: str | None = None,
    ) -> Item:
        if kind not in KINDS:
            raise ValueError(f"unknown report kind {kind!r}")
        item = Item(kind, source, Status.MIGRATED, list(became or ()), pinpoint_id=pinpoint_id)
        if status != Status.MIGRATED:
            item.status = status
        for text in notes or ():
            item.note(text)
        for text in decisions or ():
            item.decide(text)
        self.items.append(item)
        return item

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    def find(self, kind: str, source: str) -> Item | None:
        return next((i for i in self.items if i.kind == kind and i.source == source), None)

    def decisions(self) -> list[tuple[Item, str]]:
        return [(item, text) for item in self.items for text in item.decisions]

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            statuses = Counter(str(i.status) for i in self.of(kind))
            if statuses:
                out[kind] = dict(sorted(statuses.items()))
        return out

    # -- writing ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "counts": dict(self.counts),
            "decisions": [
                {"kind": item.kind, "source": item.source, "decision": text}
                for item, text in self.decisions()
            ],
            "items": [
                {k: v for k, v in asdict(item).items() if v not in (None, [])}
                for item in self.items
            ],
        }

    def to_markdown(self) -> str:
        lines = ["# Migration report: Amazon Pinpoint -> Kizuna", ""]
        lines += [
            "Every Pinpoint object read, what it became, and what needs a person's decision "
            "before the project is deployed. The same as data: `MIGRATION-REPORT.json`.",
            "",
            "| what | " + " | ".join(s.value for s in Status) + " |",
            "| --- |" + " --- |" * len(Status),
        ]
        for kind, statuses in self.summary().items():
            row = " | ".join(str(statuses.get(s.value, 0)) for s in Status)
            lines.append(f"| {kind} | {row} |")
        if self.counts:
            lines += ["", *(f"- {k.replace('_', ' ')}: {v:,}" for k, v in self.counts.items())]
        decisions = self.decisions()
        lines += ["", f"## Needs a decision ({len(decisions)})", ""]
        if not decisions:
            lines.append("Nothing.")
        lines += [f"- [ ] **{item.kind} {_md(item.source)}**: {_md(t)}" for item, t in decisions]
        for kind in KINDS:
            items = self.of(kind)
            if not items:
                continue
            lines += ["", f"## {kind.capitalize()} ({len(items)})", ""]
            shown = items
            if kind == "endpoint":  # a thousand lines of "migrated" help nobody: the others
                shown = [i for i in items if i.status != Status.MIGRATED][:_EXCERPT]
            for item in shown:
                became = ", ".join(f"`{b}`" for b in item.became) or "nothing"
                lines.append(f"- **{_md(item.source)}** ({item.status.value}) -> {became}")
                lines += [f"  - {_md(n)}" for n in item.notes]
                lines += [f"  - decide: {_md(d)}" for d in item.decisions]
            if len(shown) < len(items):
                lines.append(
                    f"- ... and {len(items) - len(shown)} more (those migrated as they were) "
                    "in MIGRATION-REPORT.json"
                )
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> list[Path]:
        json_path = out / "MIGRATION-REPORT.json"
        md_path = out / "MIGRATION-REPORT.md"
        json_path.write_text(
            json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return [md_path, json_path]


# Markdown's punctuation: a Pinpoint name such as ``[Re-verify](https://evil.example)`` or
# ``<img onerror=...>`` is shown as written, never a link or HTML in the checklist
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def _md(text: str) -> str:
    """Text shown as written in a Markdown list item or table cell: no line breaks, every
    Markdown punctuation character escaped (names and ids come from the Pinpoint export)."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))
