"""Paired comparison of two table rows over their shared completed seeds: is "A beats B" more than seed noise?
The mean of the per-seed differences gets a paired t interval and its reading (:mod:`yolozoo.stats`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..stats import Interval, paired_t, reading


@dataclass(frozen=True)
class Comparison:
    """``row_a - row_b`` on ``metric`` over their shared completed seeds."""

    row_a: str
    row_b: str
    metric: str
    seeds: tuple[int, ...]
    stats: Interval

    @property
    def verdict(self) -> str:
        return reading(self.stats, self.row_a, self.row_b)


def _per_seed(df: pd.DataFrame, row: str, metric: str) -> dict[int, float]:
    if row not in set(df["row"]):
        raise ValueError(f"no row {row!r}; rows: {', '.join(dict.fromkeys(df['row']))}")
    done = df[(df["row"] == row) & (df["status"] == "completed")].dropna(subset=[metric])
    return dict(zip(done["seed"].astype(int), done[metric]))


def compare_rows(df: pd.DataFrame, row_a: str, row_b: str, metric: str = "mAP50") -> Comparison:
    """Pair rows ``row_a`` and ``row_b`` (``df["row"]`` labels of a prepared frame) seed by seed on ``metric``."""
    a, b = _per_seed(df, row_a, metric), _per_seed(df, row_b, metric)
    seeds = tuple(sorted(a.keys() & b.keys()))
    return Comparison(row_a, row_b, metric, seeds, paired_t([a[s] - b[s] for s in seeds]))
