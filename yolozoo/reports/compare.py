"""Paired comparison of two table rows: is "A beats B" more than seed noise?

Two rows (grid points) that ran the same seeds are paired seed by seed; the mean of the
per-seed differences gets a percentile-bootstrap 95% interval (resampling seeds with a fixed
RNG seed, so the interval is reproducible). Fewer than two shared seeds give no interval:
the verdict says "n too small" rather than inventing one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tables import MAP, MAP50

N_BOOT = 10_000
RNG_SEED = 0
FEW_SEEDS = 5  # below this the verdict carries a caveat


@dataclass(frozen=True)
class Comparison:
    """``row_a - row_b`` on ``metric`` over their shared completed seeds."""

    row_a: str
    row_b: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]  # per shared seed, A - B
    mean: float  # nan when no seed is shared
    interval: tuple[float, float] | None  # None when n < 2
    level: float = 0.95

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        if self.interval is None:
            return "n too small"
        low, high = self.interval
        # a bootstrap over a handful of seeds only says whether the seeds agree in sign
        caveat = f"; only {self.n} seeds, coarse" if self.n < FEW_SEEDS else ""
        if low > 0:
            return f"{self.row_a} higher (CI excludes 0{caveat})"
        if high < 0:
            return f"{self.row_b} higher (CI excludes 0{caveat})"
        return f"not distinguishable from seed noise (CI contains 0{caveat})"


def bootstrap_interval(diffs: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT,
                       seed: int = RNG_SEED) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``diffs.mean()`` (resampling entries); None for n < 2."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.size < 2:
        return None
    idx = np.random.default_rng(seed).integers(0, diffs.size, size=(n_boot, diffs.size))
    means = diffs[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _per_seed(df: pd.DataFrame, row: str, metric: str) -> pd.Series:
    if row not in set(df["row"]):
        raise ValueError(f"no row {row!r}; rows: {', '.join(dict.fromkeys(df['row']))}")
    done = df[(df["row"] == row) & (df["status"] == "completed")].dropna(subset=[metric])
    return pd.Series(done[metric].to_numpy(), index=done["seed"].astype(int).to_numpy())


def compare_rows(df: pd.DataFrame, row_a: str, row_b: str, metric: str = "mAP50", level: float = 0.95) -> Comparison:
    """Pair rows ``row_a`` and ``row_b`` (``df["row"]`` labels of a prepared frame) seed by seed on ``metric``."""
    a, b = _per_seed(df, row_a, metric), _per_seed(df, row_b, metric)
    seeds = tuple(sorted(set(a.index) & set(b.index)))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    return Comparison(row_a, row_b, metric, seeds, tuple(float(d) for d in diffs),
                      float(diffs.mean()) if diffs.size else float("nan"), bootstrap_interval(diffs, level), level)


def baseline_pairs(summary: pd.DataFrame, baseline_rows: list[str | None]) -> list[tuple[str, str]]:
    """(row, its baseline row) for every row that is not itself a baseline."""
    return [(row, base) for row, base in zip(summary["row_label"], baseline_rows) if base and base != row]


def to_markdown(comparisons: list[Comparison], title: str) -> str:
    """The comparisons as a Markdown table, with the method stated."""
    headers = {MAP50.key: MAP50.header, MAP.key: MAP.header}
    out = [f"## {title}", "", f"Paired over shared completed seeds: mean of per-seed differences (A − B) and a "
           f"percentile-bootstrap 95% CI over seeds ({N_BOOT} resamples, RNG seed {RNG_SEED}); with few seeds the "
           "interval is coarse. Fewer than 2 shared seeds: no interval.", "",
           "| A | B | metric | n | seeds | mean A − B | 95% CI | reading |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        ci = "–" if c.interval is None else f"[{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]"
        mean = "–" if c.n == 0 else f"{c.mean:+.4f}"
        out.append(f"| {c.row_a} | {c.row_b} | {headers.get(c.metric, c.metric)} | {c.n} | "
                   f"{', '.join(map(str, c.seeds)) or '–'} | {mean} | {ci} | {c.verdict} |")
    return "\n".join(out) + "\n"


__all__ = ["Comparison", "baseline_pairs", "bootstrap_interval", "compare_rows", "to_markdown"]
