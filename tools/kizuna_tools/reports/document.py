"""The reports as tables (terminal and CSV) and as one HTML document with charts."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from kizuna.analytics.control import (
    ControlComparison,
    ControlWindow,
    MigrationGap,
    control_comparison,
)
from kizuna.analytics.document import (
    Headline,
    LiftRow,
    LiftSection,
    MigrationPanel,
    MigrationSection,
    Period,
    ReportDocument,
    SegmentTrendSection,
    Series,
    Shift,
    StructureShift,
    TableSection,
)
from kizuna.analytics.published import publish
from kizuna.analytics.stats import Lift, Migration
from kizuna.delivery.control import GLOBAL_CONTROL, in_global_control
from kizuna.delivery.direct_mail import safe_cell
from kizuna.ports import ReportObjects
from kizuna.runtime.config import KizunaConfig
from kizuna.scoring.rfm import segment_names, segment_order
from kizuna_tools.reports.build import (
    ProgramRow,
    SegmentRow,
    StructureChange,
    Trend,
    program_report,
    segment_analysis,
    structure_change,
    treated_and_holdout,
    trend,
)
from kizuna_tools.reports.campaigns import OccurrenceReport, campaign_reports
from kizuna_tools.reports.html import render_html
from kizuna_tools.reports.sources import ReportData
from kizuna_tools.reports.splits import SplitResult

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            # text cells hold customers' and producers' words (occupation, prefecture): a
            # spreadsheet must show them, never run them as formulas; numbers stay numbers
            writer.writerow([safe_cell(str(c)) for c in self.columns])
            writer.writerows(
                tuple(safe_cell(c) if isinstance(c, str) else c for c in row) for row in self.rows
            )


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def program_table(rows: Sequence[ProgramRow]) -> Table:
    columns = (
        "program",
        "group",
        "entries",
        "treated",
        "holdout",
        "sent",
        "opened or clicked",
        "by channel",
        "suppressed",
        "converted %",
        "holdout converted %",
        "lift pp",
        "95% CI low pp",
        "95% CI high pp",
        "p",
        "revenue / customer",
        "holdout revenue / customer",
        "revenue / recipient",
    )
    out: list[tuple[Cell, ...]] = []
    for r in rows:
        ci = r.lift.ci
        out.append(
            (
                r.program,
                r.label,
                r.entries,
                r.treated,
                r.holdout,
                r.sent,
                r.engaged,
                " ".join(f"{k}:{v}" for k, v in sorted(r.sent_by_channel.items())),
                " ".join(f"{k}:{v}" for k, v in sorted(r.suppressed.items())),
                _pct(r.lift.treated_rate),
                _pct(r.lift.holdout_rate),
                _pct(r.lift.absolute_lift),
                _pct(ci.low) if ci else None,
                _pct(ci.high) if ci else None,
                None if r.lift.p_value is None else round(r.lift.p_value, 4),
                r.revenue_per_customer,
                r.holdout_revenue_per_customer,
                r.revenue_per_recipient,
            )
        )
    return Table("Programs: conversions against holdouts", columns, out)


def migration_table(change: StructureChange, group: str, m: Migration) -> Table:
    columns = ("from \\ to", *m.states, "total")
    rows: list[tuple[Cell, ...]] = [
        (state, *m.counts[i], m.row_totals[i]) for i, state in enumerate(m.states)
    ]
    title = (
        f"{change.attribute} migration, {group}: {change.before} -> {change.after} "
        f"(up {m.up}, stayed {m.stayed}, down {m.down})"
    )
    return Table(title, columns, rows)


def trend_table(t: Trend) -> Table:
    columns = (
        "date",
        "customers",
        "second-purchase rate %",
        "repeat rate %",
        "dormancy rate %",
        *(f"rank {name}" for name in t.ranks),
    )
    rows: list[tuple[Cell, ...]] = [
        (
            d.isoformat(),
            t.customers[i],
            _pct(t.second_purchase[i].value),
            _pct(t.repeat[i].value),
            _pct(t.dormancy[i].value),
            *(series[i] for series in t.ranks.values()),
        )
        for i, d in enumerate(t.dates)
    ]
    return Table("Customer structure over time", columns, rows)


def segment_table(rows: Sequence[SegmentRow]) -> Table:
    columns = (
        "dimension",
        "value",
        "customers",
        "buyers",
        "revenue 12m",
        "revenue / customer",
        "messaged",
        "response measured",
        "response %",
        "conversion %",
        "second-purchase %",
    )
    return Table(
        "Segments: customers, revenue, response and second purchases",
        columns,
        [
            (
                r.dimension,
                r.value,
                r.customers,
                r.buyers,
                r.revenue_12m,
                r.revenue_per_customer,
                r.messaged,
                r.response_measured,
                _pct(r.response_rate),
                _pct(r.conversion_rate),
                _pct(r.second_purchase_rate),
            )
            for r in rows
        ],
    )


@dataclass(frozen=True)
class Reports:
    """Everything the CLI prints, exports and renders."""

    programs: list[ProgramRow]
    segment_changes: list[StructureChange]
    trend: Trend
    segments: list[SegmentRow]
    first: date | None
    last: date | None
    campaigns: list[OccurrenceReport] = field(default_factory=list)
    control: ControlComparison | None = None  # treated population vs global control
    splits: list[SplitResult] = field(default_factory=list)  # winner-rule splits

    def tables(self) -> dict[str, Table]:
        out: dict[str, Table] = {}
        if self.control is not None:
            out["global_control"] = control_table(self.control)
            moves = control_migration_table(self.control)
            if moves.rows:
                out["global_control_migration"] = moves
        out["programs"] = program_table(self.programs)
        if self.splits:
            out["split_winners"] = split_table(self.splits)
        out["trend"] = trend_table(self.trend)
        for occurrence in self.campaigns:
            key = f"campaign_{occurrence.campaign}_{occurrence.occurrence}"
            out[key] = campaign_table(occurrence)
        for change in self.segment_changes:
            scope = change.program or ("global_control" if change.against != "holdout" else "all")
            other = "control" if change.against != "holdout" else "holdout"
            for group, m in (("treated", change.treated), (other, change.holdout)):
                key = f"{change.attribute}_migration_{scope}_{group}"
                out[key] = migration_table(change, f"{scope}, {group}", m)
        out["segments"] = segment_table(self.segments)
        return out


def _lift_cells(lift: Lift) -> tuple[Cell, ...]:
    ci = lift.ci
    return (
        _pct(lift.absolute_lift),
        _pct(ci.low) if ci else None,
        _pct(ci.high) if ci else None,
    )


def _rate_cell(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else f"{k}/{n}"


def control_rows(w: ControlWindow) -> list[tuple[Cell, ...]]:
    """One window's rows: each rate (treated, control, difference with its interval), then
    revenue per customer."""
    small = "small group: read with care" if w.small else ""
    rows: list[tuple[Cell, ...]] = []
    for name, lift in (
        ("repeat rate", w.repeat),
        ("second-purchase rate (new buyers)", w.second_purchase),
        ("dormancy rate (lower is better)", w.dormancy),
    ):
        rows.append(
            (
                w.days,
                name,
                _rate_cell(lift.treated_conversions, lift.treated_n),
                _rate_cell(lift.holdout_conversions, lift.holdout_n),
                *_lift_cells(lift),
                small,
            )
        )
    gap = w.revenue_per_customer
    rows.append(
        (
            w.days,
            "revenue per customer",
            None
            if gap.treated_mean is None
            else f"{gap.treated_mean:.2f} (n={w.treated.customers})",
            None
            if gap.control_mean is None
            else f"{gap.control_mean:.2f} (n={w.control.customers})",
            None if gap.difference is None else round(gap.difference, 2),
            None if gap.ci is None else round(gap.ci.low, 2),
            None if gap.ci is None else round(gap.ci.high, 2),
            small,
        )
    )
    for m in (w.rank, w.rfm_segment):
        if m is not None:
            rows += _migration_rows(w.days, m, small)
    return rows


_ATTRIBUTE = {"rank": "member rank", "rfm_segment": "RFM segment"}


def _migration_rows(days: int, m: MigrationGap, small: str) -> list[tuple[Cell, ...]]:
    """Up / stayed / down shares of the customers in both snapshots, then the new ones."""
    what = f"{_ATTRIBUTE[m.attribute]} {m.before.isoformat()} -> {m.after.isoformat()}"
    rows: list[tuple[Cell, ...]] = [
        (
            days,
            f"{what}: {label}",
            _rate_cell(lift.treated_conversions, lift.treated_n),
            _rate_cell(lift.holdout_conversions, lift.holdout_n),
            *_lift_cells(lift),
            small,
        )
        for label, lift in (
            ("moved up", m.up),
            ("stayed", m.stayed),
            ("moved down (lower is better)", m.down),
        )
    ]
    rows.append(
        (
            days,
            f"{what}: new (not in the first snapshot; not movers)",
            m.treated.entered,
            m.control.entered,
            None,
            None,
            None,
            "",
        )
    )
    return rows


def control_migration_table(c: ControlComparison) -> Table:
    """Each window's from -> to matrices, treated and control, as non-empty cells."""
    rows: list[tuple[Cell, ...]] = []
    for w in c.windows:
        for m in (w.rank, w.rfm_segment):
            if m is None:
                continue
            for group, matrix in (("treated", m.treated), ("global control", m.control)):
                for i, before in enumerate(matrix.states):
                    for j, after in enumerate(matrix.states):
                        if matrix.counts[i][j]:
                            rows.append(
                                (
                                    w.days,
                                    _ATTRIBUTE[m.attribute],
                                    group,
                                    before,
                                    after,
                                    matrix.counts[i][j],
                                    _pct(matrix.row_shares[i][j]),
                                )
                            )
    columns = ("window (days)", "attribute", "group", "from", "to", "customers", "% of from")
    return Table("Treated vs global control: migration per window (non-empty cells)", columns, rows)


def control_table(c: ControlComparison) -> Table:
    """Treated population (everyone not in the global control group) vs the control group,
    per window: rates in % points, revenue in the order currency."""
    since = f" since {c.since.isoformat()}" if c.since else ""
    title = (
        f"Treated population vs global control ({c.percent:g}% of customers{since}), "
        f"windows ending {c.end.date().isoformat()}"
    )
    columns = (
        "window (days)",
        "figure",
        "treated",
        "global control",
        "difference",
        "95% CI low",
        "95% CI high",
        "note",
    )
    rows = [row for w in c.windows for row in control_rows(w)]
    if c.ltv is not None and c.ltv_as_of is not None:
        gap = c.ltv
        rows.append(
            (
                "to date",
                f"LTV per customer, realised to {c.ltv_as_of.isoformat()} (not a prediction)",
                None if gap.treated_mean is None else round(gap.treated_mean, 2),
                None if gap.control_mean is None else round(gap.control_mean, 2),
                None if gap.difference is None else round(gap.difference, 2),
                None if gap.ci is None else round(gap.ci.low, 2),
                None if gap.ci is None else round(gap.ci.high, 2),
                "",
            )
        )
    return Table(title, columns, rows)


def split_table(results: Sequence[SplitResult]) -> Table:
    """One row per arm of each program split with a winner rule: the counts (a decided
    split: those its decision saw) and the decision with its evidence, or ``undecided``."""
    columns = (
        "program",
        "split",
        "metric",
        "arm",
        "reached",
        "exposed",
        "converted",
        "converted %",
        "decision",
        "p-value",
        "winner − runner-up (pts)",
        "CI low",
        "CI high",
        "decided at",
    )
    rows: list[tuple[Cell, ...]] = []
    for r in results:
        decision = f"winner: {r.winner}" if r.winner else "undecided"
        low, high = r.interval if r.interval else (None, None)
        for arm, c in r.arms.items():
            rows.append(
                (
                    r.program,
                    r.step,
                    r.metric,
                    f"{arm} (winner)" if arm == r.winner else arm,
                    c.reached,
                    c.exposed,
                    c.converted,
                    _pct(c.converted / c.exposed if c.exposed else None),
                    decision,
                    None if r.p_value is None else round(r.p_value, 4),
                    _pct(r.difference),
                    _pct(low),
                    _pct(high),
                    r.decided_at,
                )
            )
    return Table(
        title=(
            "Program splits with a winner rule: per arm, reached / exposed / converted and "
            "the decision (always-valid sequential test; a decided split shows the counts "
            "its decision saw)"
        ),
        columns=columns,
        rows=rows,
    )


def campaign_table(r: OccurrenceReport) -> Table:
    """One campaign occurrence: the funnel, then one row per variant (and the holdout)."""
    reasons = [
        f"{what} {reason}: {n}"
        for what, counts in (
            ("suppressed", r.suppressed_by_reason),
            ("deferred", r.deferred_by_reason),
            ("failed", r.failed_by_reason),
        )
        for reason, n in counts.items()
    ]
    sent = ", ".join(f"{c} {n}" for c, n in r.sent_by_channel.items()) or "none"
    title = (
        f"Campaign {r.campaign}, occurrence {r.occurrence} ({r.status or 'running'}): "
        f"audience {r.audience}, holdout {r.holdout}, sent {r.sent} ({sent})"
        + (f"; {'; '.join(reasons)}" if reasons else "")
        + (f"; {r.winner_line}" if r.winner_line else "")
    )
    columns = (
        "variant",
        "recipients",
        "opens",
        "clicks",
        "conversions",
        "conversion %",
        "revenue",
        "assigned",
        "assigned conv.",
        "lift, all assigned (pts)",
        "95% CI low",
        "95% CI high",
    )
    rows: list[tuple[Cell, ...]] = []
    for v in r.variants:
        lift = v.lift
        rows.append(
            (
                v.arm,
                v.recipients,
                v.opens,
                v.clicks,
                v.conversions,
                _pct(v.conversions / v.recipients if v.recipients else None),
                round(v.revenue, 2),
                v.assigned,
                v.assigned_conversions,
                _pct(lift.absolute_lift if lift else None),
                _pct(lift.ci.low if lift and lift.ci else None),
                _pct(lift.ci.high if lift and lift.ci else None),
            )
        )
    return Table(title=title, columns=columns, rows=rows)


# Currencies without a minor unit (ISO 4217 exponent 0): their amounts have no decimals
WHOLE_CURRENCIES = frozenset(
    {"JPY", "KRW", "VND", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF", "XPF", "KMF", "GNF", "RWF",
     "VUV", "DJF", "BIF"}
)  # fmt: skip


def _in_currency(table: Table, currency: str) -> list[tuple[Cell, ...]]:
    """The table's rows, an amount (a column named for revenue or LTV) of a currency
    without a minor unit as a whole number: 99,760 yen, never 99,760.000."""
    if currency not in WHOLE_CURRENCIES:
        return list(table.rows)
    money = [("revenue" in c.lower() or "ltv" in c.lower()) for c in table.columns]
    return [
        tuple(
            round(v) if m and isinstance(v, float) else v for v, m in zip(row, money, strict=True)
        )
        for row in table.rows
    ]


def rank_order(cfg: KizunaConfig) -> list[str]:
    return [r.name for r in reversed(cfg.loyalty.ranks)]


def _largest_holdouts(data: ReportData, n: int) -> list[str]:
    held: dict[str, set[str]] = {}
    for e in data.ledger.entries:
        if e.holdout:
            held.setdefault(e.program, set()).add(e.customer_id)
    return sorted(held, key=lambda p: (-len(held[p]), p))[:n]


def build_reports(
    data: ReportData,
    cfg: KizunaConfig,
    before: date | None = None,
    after: date | None = None,
    per_program_structures: int = 2,
) -> Reports:
    """All reports; structure change between ``before`` and ``after`` (default: the first
    and last snapshot dates), for all programs (treated by any vs only ever held out) and
    for the ``per_program_structures`` programs with the largest holdouts (treated by the
    program vs its own holdout: each program's holdout is drawn independently)."""
    dates = data.dates
    first = before or (dates[0] if dates else None)
    last = after or (dates[-1] if dates else None)
    changes: list[StructureChange] = []
    latest: list[Any] = []
    if first is not None and last is not None and first != last:
        rows_before, rows_after = data.rows(first), data.rows(last)
        latest = rows_after
        if rows_before and rows_after:
            groups: dict[str | None, tuple[set[str], set[str]]] = {
                None: treated_and_holdout(data.ledger)
            }
            groups.update(
                (p, treated_and_holdout(data.ledger, p))
                for p in _largest_holdouts(data, per_program_structures)
            )
            control = cfg.measurement.global_control
            everyone = {r.customer_id for r in (*rows_before, *rows_after)}
            in_control = {c for c in everyone if in_global_control(control, c)}
            for attribute, order in (
                ("rfm_segment", segment_order(cfg.scoring)),
                ("rank", rank_order(cfg)),
            ):
                if control.enabled:
                    changes.append(
                        structure_change(
                            rows_before,
                            rows_after,
                            everyone - in_control,
                            in_control,
                            attribute,
                            order,
                            against=GLOBAL_CONTROL,
                        )
                    )
                for program, (treated, holdout) in groups.items():
                    changes.append(
                        structure_change(
                            rows_before, rows_after, treated, holdout, attribute, order, program
                        )
                    )
    elif last is not None:
        latest = data.rows(last)
    return Reports(
        control=_control(data, cfg, first, last, latest),
        programs=program_report(data.ledger, data.windows),
        segment_changes=changes,
        trend=trend(data.cells_by_date),
        segments=segment_analysis(latest, data.ledger),
        first=first,
        last=last,
        campaigns=campaign_reports(
            data.campaign_items,
            data.ledger.orders,
            data.occurrences,
            data.campaign_windows,
            data.campaign_goals,
        ),
        splits=data.splits,
    )


def _control(
    data: ReportData, cfg: KizunaConfig, first: date | None, last: date | None, rows: list[Any]
) -> ControlComparison | None:
    """Treated population vs global control, from the customers of the last snapshot
    (their first order) and the ledger's orders, over windows ending after the last
    snapshot date; None when the group is off or there is no snapshot export."""
    control = cfg.measurement.global_control
    if not control.enabled or last is None or first is None or not rows:
        return None
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    starts = [datetime.combine(first, time(), UTC)]
    starts += [min(o.at for o in data.ledger.orders)] if data.ledger.orders else []
    return control_comparison(
        {r.customer_id: r.first_order_at for r in rows},
        # the orders that count, as loyalty counts them: a cancelled or wholly refunded one
        # is no purchase in the rates (and no revenue)
        ((o.customer_id, o.at, o.revenue) for o in data.ledger.orders if o.counts),
        lambda cid: in_global_control(control, cid),
        end,
        percent=control.percent,
        since=control.since,
        data_start=min(starts),
        snapshot=data.rows,
        state_orders={"rank": rank_order(cfg), "rfm_segment": segment_order(cfg.scoring)},
    )


def _series(values: dict[str, list[int]], order: Sequence[str]) -> tuple[Series, ...]:
    names = [n for n in order if n in values] + sorted(set(values) - set(order))
    return tuple(Series(name=n, values=tuple(float(v) for v in values[n])) for n in names)


def report_document(
    reports: Reports,
    cfg: KizunaConfig,
    title: str = "Kizuna report",
    lang: str = "en",
    subtitle: str | None = None,
) -> ReportDocument:
    sections: list[Any] = []
    tables = reports.tables()
    if "global_control" in tables:
        # the front page: the programs and campaigns as a whole against the global control
        control = tables.pop("global_control")
        sections.append(
            TableSection(
                key="global_control",
                title=control.title,
                description=(
                    "Treated = every customer not in the global control group (a random share "
                    "drawn by hash, sent no marketing message). Rates: treated − control in % "
                    "points with Newcombe's 95% interval; revenue: Welch normal 95% interval. "
                    "Dormancy: earlier buyers without an order in the window (lower is better). "
                    "Rank and RFM segment: customers in the snapshots at the window's start and "
                    "end who moved up, stayed or moved down (ranks highest first; segments by "
                    "their mean R + FM score), as shares of those in both; new customers (not in "
                    "the first snapshot) are counted apart, not as movers. LTV: the last "
                    "snapshot's lifetime value (realised revenue since the first order, "
                    "non-buyers at 0), not a prediction. "
                    "An interval that contains 0 is no evidence either way."
                ),
                columns=control.columns,
                rows=control.rows,
                float_digits=2,
            )
        )
    for change in reports.segment_changes:
        what = "RFM segment" if change.attribute == "rfm_segment" else "Member rank"
        if change.against != "holdout":
            sections.append(
                MigrationSection(
                    key=f"{change.attribute}_migration_global_control",
                    title=f"{what} migration: treated population vs global control",
                    description=(
                        "Rows: the state on the first date; columns: on the last. Treated = "
                        "every customer not in the global control group; control = the group "
                        "(random, no marketing message). (none) = not yet a customer, or not "
                        "scored, on that date."
                    ),
                    panels=tuple(
                        MigrationPanel(
                            label=f"{group} (up {m.up}, stayed {m.stayed}, down {m.down})",
                            migration=m,
                            before_label=change.before.isoformat(),
                            after_label=change.after.isoformat(),
                        )
                        for group, m in (
                            ("Treated", change.treated),
                            ("Global control", change.holdout),
                        )
                    ),
                )
            )
            continue
        scope = f"program {change.program}" if change.program else "all programs"
        sections.append(
            MigrationSection(
                key=f"{change.attribute}_migration",
                title=f"{what} migration, {scope}: treated vs holdout",
                description=(
                    "Rows: the state on the first date; columns: on the last; colour: the row's "
                    "share. "
                    + (
                        "Treated = entered the program; holdout = held out of it."
                        if change.program
                        else "Treated = entered at least one program; holdout = only ever held out."
                    )
                    + " (none) = not yet a customer, or not scored, on that date."
                ),
                panels=tuple(
                    MigrationPanel(
                        label=f"{group} (up {m.up}, stayed {m.stayed}, down {m.down})",
                        migration=m,
                        before_label=change.before.isoformat(),
                        after_label=change.after.isoformat(),
                    )
                    for group, m in (("Treated", change.treated), ("Holdout", change.holdout))
                ),
            )
        )
    t = reports.trend
    if t.dates:
        sections.append(
            SegmentTrendSection(
                key="rfm_segment_trend",
                title="RFM segment sizes over time",
                dates=tuple(t.dates),
                series=_series(t.segments, segment_names(cfg.scoring)),
            )
        )
        sections.append(
            SegmentTrendSection(
                key="rank_trend",
                title="Member ranks over time",
                dates=tuple(t.dates),
                series=_series(t.ranks, rank_order(cfg)),
            )
        )
        sections.append(
            SegmentTrendSection(
                key="rates_trend",
                title="Second-purchase, repeat and dormancy rates over time",
                description=(
                    "Second purchase: customers whose first order is under 90 days old who "
                    "ordered again. Repeat: 2+ orders among buyers. Dormancy: dormant buyers."
                ),
                dates=tuple(t.dates),
                series=(
                    Series(
                        name="second-purchase %",
                        values=tuple(100 * (r.value or 0) for r in t.second_purchase),
                    ),
                    Series(name="repeat %", values=tuple(100 * (r.value or 0) for r in t.repeat)),
                    Series(
                        name="dormancy %", values=tuple(100 * (r.value or 0) for r in t.dormancy)
                    ),
                ),
                stacked=False,
                y_label="%",
            )
        )
    lift_rows = [r for r in reports.programs if r.channel is None and r.lift.ci is not None]
    sections.append(
        LiftSection(
            key="program_lift",
            title="Program lift: conversion, treated minus holdout (95% CI)",
            description="Newcombe's hybrid score interval; a bar that crosses 0 is no evidence.",
            rows=tuple(LiftRow(program=r.program, arm=r.arm, lift=r.lift) for r in lift_rows),
        )
    )
    campaign_lifts = [
        LiftRow(program=f"{r.campaign} {r.occurrence}", arm=v.arm, lift=v.lift)
        for r in reports.campaigns
        for v in r.variants
        if v.lift is not None and v.lift.ci is not None
    ]
    if campaign_lifts:
        sections.append(
            LiftSection(
                key="campaign_lift",
                title="Campaign lift: conversion, variant minus holdout (95% CI)",
                description="Per occurrence and variant, against the campaign's own holdout.",
                rows=tuple(campaign_lifts),
            )
        )
    for name, table in tables.items():
        sections.append(
            TableSection(
                key=name,
                title=table.title,
                columns=table.columns,
                rows=_in_currency(table, cfg.loyalty.currency),
                float_digits=2,  # what _pct and the revenue figures are rounded to
            )
        )
    period = (
        Period(start=reports.first, end=reports.last)
        if reports.first and reports.last and reports.first <= reports.last
        else None
    )
    return ReportDocument(
        title=title,
        subtitle=subtitle,
        generated_at=datetime.now(UTC),
        period=period,
        lang=lang,
        sections=tuple(sections),
        headline=headline(reports),
    )


def headline(reports: Reports) -> Headline | None:
    """The front page: the base on the last snapshot date (customers, buyers, repeat rate,
    12-month revenue), each structure change (treated against the holdout, or the treated
    population against the global control group) and, with the group on, the treated vs
    global control figures per window."""
    t = reports.trend
    if not t.dates:
        return None
    return Headline(
        as_of=t.dates[-1],
        customers=t.customers[-1],
        buyers=t.buyers[-1],
        repeat_rate=t.repeat[-1],
        revenue_12m=t.revenue_12m[-1],
        structure=tuple(
            StructureShift(
                attribute="rank" if c.attribute == "rank" else "rfm_segment",
                program=c.program,
                against="global_control" if c.against == GLOBAL_CONTROL else "holdout",
                before=c.before,
                after=c.after,
                treated=Shift.of(c.treated),
                holdout=Shift.of(c.holdout),
            )
            for c in reports.segment_changes
        ),
        control=reports.control,
    )


def write_report(
    reports: Reports,
    cfg: KizunaConfig,
    directory: Path,
    title: str,
    publish_to: ReportObjects | None = None,
    subtitle: str | None = None,
) -> Path:
    """``report.html`` and one CSV per table in ``directory``; returns the HTML's path.
    With ``publish_to`` (the analytics bucket), also publishes the document as JSON and the
    HTML under ``reports/`` (:mod:`kizuna.analytics.published`) for the API and console.
    ``subtitle``: a line under the title (the demo's: engagement is simulated behaviour)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in reports.tables().items():
        table.write_csv(directory / f"{name}.csv")
    path = directory / "report.html"
    doc = report_document(reports, cfg, title, subtitle=subtitle)
    html = render_html(doc)
    path.write_text(html, encoding="utf-8")
    (directory / "report.json").write_text(doc.model_dump_json(indent=1), encoding="utf-8")
    if publish_to is not None:
        publish(publish_to, doc, html)
    return path
