"""RFM scoring throughput: the numpy core (``kizuna.scoring.rfm``) against a
straightforward pandas implementation of the same RFM, on the same synthetic customers,
and the writes a daily run makes (only customers whose scores or segment changed)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.common import print_table
from kizuna.runtime.config import ScoringConfig
from kizuna.scoring.rfm import RfmInputs, RfmScores, boundaries, score, segment_names

SAMPLE = 20_000


def synthetic(n: int, seed: int = 7) -> RfmInputs:
    rng = np.random.default_rng(seed)
    frequency = rng.geometric(0.35, n).astype(np.float64) - 1  # 0 orders in window is common
    monetary = np.round(frequency * rng.lognormal(8.5, 0.6, n))
    recency = np.floor(rng.exponential(90, n))
    return RfmInputs(recency, frequency, monetary)


def pandas_rfm(data: RfmInputs, bounds: Any, cfg: ScoringConfig) -> Any:
    """The same RFM as pandas users write it: ``pd.cut`` per measure (right-closed bins, so
    a value equal to a boundary falls below it), then a merge with the R x FM grid."""
    import pandas as pd  # type: ignore[import-untyped]

    df = pd.DataFrame(
        {"recency": data.recency_days, "frequency": data.frequency, "monetary": data.monetary}
    )

    def cut(column: str, cuts: tuple[float, ...], labels: list[int]) -> Any:
        edges = np.unique([-np.inf, *cuts, np.inf])
        codes = pd.cut(df[column], bins=edges, right=True, labels=False).to_numpy()
        # repeated boundaries collapse bins: a bin's label counts the boundaries below it
        label_of_bin = np.array(
            [
                labels[int(np.searchsorted(cuts, edges[i + 1], side="left"))]
                for i in range(len(edges) - 1)
            ]
        )
        return label_of_bin[codes]

    df["R"] = cut("recency", bounds.recency_days, [5, 4, 3, 2, 1])
    df["F"] = cut("frequency", bounds.frequency, [1, 2, 3, 4, 5])
    df["M"] = cut("monetary", bounds.monetary, [1, 2, 3, 4, 5])
    no_order = df["frequency"] == 0  # no order in the window: F=1 and M=1 (kizuna.scoring.rfm)
    df.loc[no_order, ["F", "M"]] = 1
    df["FM"] = (df["F"] + df["M"] + 1) // 2
    grid = pd.DataFrame(
        [
            {"R": r, "FM": fm, "segment": rule.segment}
            for rule in reversed(cfg.segments)
            for r in range(rule.recency[0], rule.recency[1] + 1)
            for fm in range(rule.fm[0], rule.fm[1] + 1)
        ]
    ).drop_duplicates(["R", "FM"], keep="last")
    return df.merge(grid, on=["R", "FM"], how="left")


def _changed(today: RfmScores, yesterday: RfmScores) -> int:
    return int(
        (
            (today.recency != yesterday.recency)
            | (today.frequency != yesterday.frequency)
            | (today.monetary != yesterday.monetary)
            | (today.segment != yesterday.segment)
        ).sum()
    )


def run(n: int) -> dict[str, Any]:
    cfg = ScoringConfig()
    data = synthetic(n)
    started = time.perf_counter()
    sample_index = np.random.default_rng(1).choice(n, size=min(SAMPLE, n), replace=False)
    sample = RfmInputs(
        data.recency_days[sample_index], data.frequency[sample_index], data.monetary[sample_index]
    )
    bounds = boundaries(sample, cfg)
    boundaries_s = time.perf_counter() - started

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        scores = score(data, bounds, cfg)
        best = min(best, time.perf_counter() - started)
    numpy_rate = n / best

    out: dict[str, Any] = {
        "customers": n,
        "boundaries_ms": boundaries_s * 1000,
        "numpy_s": best,
        "numpy_per_s": numpy_rate,
    }
    try:
        started = time.perf_counter()
        frame = pandas_rfm(data, bounds, cfg)
        pandas_s = time.perf_counter() - started
        names = segment_names(cfg)
        same = bool(
            (frame["R"].to_numpy() == scores.recency).all()
            and (frame["F"].to_numpy() == scores.frequency).all()
            and (frame["M"].to_numpy() == scores.monetary).all()
            and (frame["segment"].to_numpy() == np.array(names)[scores.segment]).all()
        )
        out.update(pandas_s=pandas_s, pandas_per_s=n / pandas_s, pandas_agrees=same)
    except ImportError:  # pandas is a dev extra
        out.update(pandas_s=None, pandas_per_s=None, pandas_agrees=None)

    # A daily run: one day later, every recency grows by a day; nothing else happens.
    later = RfmInputs(data.recency_days + 1, data.frequency, data.monetary)
    writes = _changed(score(later, bounds, cfg), scores)
    out.update(writes_per_run=writes, write_fraction=writes / n)

    pandas_rate = out["pandas_per_s"]
    print_table(
        f"RFM scoring of {n:,} customers (one core)",
        ["implementation", "seconds", "customers/s"],
        [
            ["numpy (kizuna.scoring.rfm)", f"{best:.3f}", f"{numpy_rate:,.0f}"],
            [
                "pandas (pd.cut + merge)",
                "-" if pandas_rate is None else f"{out['pandas_s']:.3f}",
                "-" if pandas_rate is None else f"{pandas_rate:,.0f}",
            ],
        ],
    )
    print(
        f"boundaries from a {min(SAMPLE, n):,} sample: {out['boundaries_ms']:.1f} ms; "
        f"pandas agrees: {out['pandas_agrees']}; writes after one day: {writes:,} "
        f"({writes / n:.1%} of the base)"
    )
    return out


if __name__ == "__main__":
    run(1_000_000)
