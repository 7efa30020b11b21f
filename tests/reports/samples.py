"""A realistic report document shared by the HTML and browser tests."""

import random
from datetime import UTC, date, datetime, timedelta

from kizuna.analytics import document as report_html
from kizuna.analytics.stats import lift, migration

SEGMENTS = ("優良顧客", "安定顧客", "新規顧客", "休眠予備軍", "休眠顧客")
PROGRAMS = (
    ("welcome-series", "email", (412, 3120, 31, 350)),
    ("welcome-series", "line", (388, 2980, 29, 341)),
    ("winback-90d", None, (95, 2210, 18, 240)),
    ("birthday-coupon", None, (60, 500, 7, 60)),
    ("vip-preview", None, (12, 80, 0, 9)),
)


def _states(
    rng: random.Random, customers: int, drift: float
) -> tuple[dict[str, str], dict[str, str]]:
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for c in range(customers):
        key = f"c{c:05d}"
        if rng.random() < 0.9:
            before[key] = rng.choice(SEGMENTS)
        if rng.random() < 0.92:
            i = SEGMENTS.index(before[key]) if key in before else rng.randrange(len(SEGMENTS))
            step = rng.choices((-1, 0, 1), weights=(drift, 0.6, 0.4 - drift + 0.2))[0]
            after[key] = SEGMENTS[min(len(SEGMENTS) - 1, max(0, i + step))]
    return before, after


def sample_document() -> report_html.ReportDocument:
    rng = random.Random(20250601)
    treated = migration(*_states(rng, 1500, 0.35), order=SEGMENTS)
    holdout = migration(*_states(rng, 300, 0.2), order=SEGMENTS)
    start = date(2025, 1, 5)
    dates = tuple(start + timedelta(weeks=w) for w in range(12))
    sizes = {s: 400.0 + 120 * i for i, s in enumerate(SEGMENTS)}
    values: dict[str, list[float]] = {s: [] for s in SEGMENTS}
    for _ in dates:
        for s in SEGMENTS:
            sizes[s] = max(0.0, sizes[s] * rng.uniform(0.93, 1.09))
            values[s].append(round(sizes[s]))
    return report_html.ReportDocument(
        title="月次キャンペーンレポート (Monthly campaign report)",
        subtitle="RFM セグメントの推移とプログラム効果",
        generated_at=datetime(2025, 4, 1, 9, 30, tzinfo=UTC),
        period=report_html.Period(start=dates[0], end=dates[-1]),
        sections=(
            report_html.MigrationSection(
                title="セグメント移動 (segment migration)",
                description="Rows: segment on 2025-01-05; columns: segment on 2025-03-23.",
                panels=(
                    report_html.MigrationPanel(
                        label="Treated",
                        migration=treated,
                        before_label="2025-01-05",
                        after_label="2025-03-23",
                    ),
                    report_html.MigrationPanel(
                        label="Holdout",
                        migration=holdout,
                        before_label="2025-01-05",
                        after_label="2025-03-23",
                    ),
                ),
            ),
            report_html.SegmentTrendSection(
                title="セグメント規模の推移",
                dates=dates,
                series=tuple(report_html.Series(name=s, values=tuple(values[s])) for s in SEGMENTS),
            ),
            report_html.LiftSection(
                title="プログラム効果 (lift over holdout)",
                rows=tuple(
                    report_html.LiftRow(program=p, arm=arm, lift=lift(*counts))
                    for p, arm, counts in PROGRAMS
                ),
            ),
            report_html.TableSection(
                title="Segment analysis",
                columns=("segment", "customers", "avg. orders", "second-purchase rate"),
                rows=tuple(
                    (s, 1000 + 37 * i, 1.25 + i / 7, None if i == 4 else 0.31 - i / 50)
                    for i, s in enumerate(SEGMENTS)
                ),
            ),
        ),
    )
