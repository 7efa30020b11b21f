"""Where the reports' data comes from: the activity ledger (entries, conversions,
messages, orders, A/B arms), the snapshots table (cells per day) and the snapshot export in
the analytics bucket (one row per customer per day)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from kizuna.programs.model import Program
from kizuna.programs.winners import winner_splits
from kizuna.scoring.snapshot import SnapshotRow
from kizuna_tools.reports.build import ORDER_KINDS, Ledger
from kizuna_tools.reports.splits import SplitResult, split_results

LEDGER_KINDS = ("ENTRY", "CONV", "MSG", *ORDER_KINDS, "JOURNEY")
EXPORT_PREFIX = "snapshots/"


class ActivityScanner(Protocol):
    def scan_activity(self, kinds: Sequence[str]) -> Any: ...

    def program_ledger(self, program: str) -> Any: ...


class OccurrenceReader(Protocol):
    """The campaigns table (:class:`kizuna.adapters.campaigns.CampaignStore`)."""

    def list_definitions(self) -> Any: ...

    def list_occurrences(self, campaign_id: str) -> list[dict[str, Any]]: ...


class CellReader(Protocol):
    def dates(self) -> list[str]: ...

    def cells(self, day: str) -> dict[str, dict[str, Any]]: ...


class ExportReader(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get(self, key: str) -> bytes | None: ...


@dataclass
class ReportData:
    ledger: Ledger
    cells_by_date: dict[date, dict[str, dict[str, Any]]]
    export: ExportReader | None = None
    windows: dict[str, int] = field(default_factory=dict)
    # campaign ledger rows, the occurrences, and each campaign's attribution window
    campaign_items: list[dict[str, Any]] = field(default_factory=list)
    occurrences: list[dict[str, Any]] = field(default_factory=list)
    campaign_windows: dict[str, int] = field(default_factory=dict)
    # per campaign: what an order must match to count as a conversion (its goal's conditions)
    campaign_goals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the programs' splits with a winner rule: counts per arm and the decision
    splits: list[SplitResult] = field(default_factory=list)

    @property
    def dates(self) -> list[date]:
        return sorted(self.cells_by_date)

    def rows(self, day: date) -> list[SnapshotRow]:
        """The export's rows of one date (empty without an export or for a missing date)."""
        if self.export is None:
            return []
        out: list[SnapshotRow] = []
        for key in self.export.keys(f"{EXPORT_PREFIX}date={day.isoformat()}/"):
            body = self.export.get(key) or b""
            out += [SnapshotRow.model_validate_json(line) for line in body.splitlines() if line]
        return out


def load(
    activity: ActivityScanner,
    snapshots: CellReader,
    export: ExportReader | None,
    windows: Mapping[str, int],
    campaigns: OccurrenceReader | None = None,
    programs: Sequence[Program] = (),
) -> ReportData:
    """The reports' data; ``programs``: those whose winner-rule splits the report shows
    (one Query of each such program's ledger index)."""
    items = list(activity.scan_activity(LEDGER_KINDS))
    ledger = Ledger.from_items(i for i in items if not i.get("campaign"))
    cells = {date.fromisoformat(d): snapshots.cells(d) for d in snapshots.dates()}
    data = ReportData(ledger, cells, export, dict(windows))
    data.campaign_items = [dict(i) for i in items if i.get("campaign")]
    if campaigns is not None:
        for stored in campaigns.list_definitions():
            campaign = stored.campaign
            data.campaign_windows[campaign.id] = campaign.goal.within_days if campaign.goal else 7
            data.campaign_goals[campaign.id] = (
                dict(campaign.goal.conditions) if campaign.goal else {}
            )
            data.occurrences += [
                {**occ, "campaign_id": campaign.id}
                for occ in campaigns.list_occurrences(campaign.id)
            ]
    for program in programs:
        if winner_splits(program):
            data.splits += split_results(program, activity.program_ledger(program.id))
    return data
