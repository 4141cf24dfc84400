"""Paired comparison of two table rows: is "A beats B" more than seed noise?

Two rows (grid points) that ran the same seeds are paired seed by seed; the mean of the
per-seed differences gets a paired t 95% interval (:func:`yolozoo.stats.paired_t`). No
direction is read from fewer than three shared seeds (:data:`yolozoo.stats.MIN_SEEDS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..stats import LEVEL, METHOD, MIN_SEEDS, Interval, paired_t, reading
from .columns import MAP, MAP50


@dataclass(frozen=True)
class Comparison:
    """``row_a - row_b`` on ``metric`` over their shared completed seeds."""

    row_a: str
    row_b: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]  # per shared seed, A - B
    stats: Interval

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float:
        return self.stats.mean

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.stats.low is None else (self.stats.low, self.stats.high)

    @property
    def verdict(self) -> str:
        return reading(self.stats, self.row_a, self.row_b)


def _per_seed(df: pd.DataFrame, row: str, metric: str) -> pd.Series:
    if row not in set(df["row"]):
        raise ValueError(f"no row {row!r}; rows: {', '.join(dict.fromkeys(df['row']))}")
    done = df[(df["row"] == row) & (df["status"] == "completed")].dropna(subset=[metric])
    return pd.Series(done[metric].to_numpy(), index=done["seed"].astype(int).to_numpy())


def compare_rows(df: pd.DataFrame, row_a: str, row_b: str, metric: str = "mAP50", level: float = LEVEL) -> Comparison:
    """Pair rows ``row_a`` and ``row_b`` (``df["row"]`` labels of a prepared frame) seed by seed on ``metric``."""
    a, b = _per_seed(df, row_a, metric), _per_seed(df, row_b, metric)
    seeds = tuple(sorted(set(a.index) & set(b.index)))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    return Comparison(row_a, row_b, metric, seeds, tuple(float(d) for d in diffs), paired_t(diffs, level))


def known_findings(df: pd.DataFrame, spec) -> list[str]:
    """One sentence per direction the sweep file's ``known`` lists (a known study found A > B):
    whether it holds on these results, reverses, or cannot be told from seed noise, with its
    paired interval on mAP@0.5 (the reading) and mAP@0.5:0.95."""
    rows = ["/".join(p) for p in spec.points()]
    present = set(df["row"]) if "row" in df else set()
    out = []
    for a, b in spec.sweep.known:
        bad = [r for r in (a, b) if r not in rows]
        if bad:
            raise ValueError(f"{spec.sweep.path}: known names row {bad[0]!r}, not a row of the table; rows: "
                             f"{', '.join(rows)}")
        claim = f"{a} > {b}"
        if not {a, b} <= present:
            out.append(f"{claim}: not measured yet (no runs of {' and '.join(r for r in (a, b) if r not in present)}).")
            continue
        c50, c = compare_rows(df, a, b, MAP50.key), compare_rows(df, a, b, MAP.key)
        if c50.n < MIN_SEEDS:
            out.append(f"{claim}: not read yet ({c50.n} shared completed seeds; a reading needs {MIN_SEEDS}).")
            continue
        verdict = ("holds" if c50.stats.low > 0 else "reverses" if c50.stats.high < 0
                   else "not separable from seed noise")

        def text(cmp: Comparison) -> str:
            return f"{cmp.mean:+.3f} [{cmp.stats.low:+.3f}, {cmp.stats.high:+.3f}]"

        out.append(f"{claim}: {verdict}. {a} − {b}: mAP@0.5 {text(c50)}, mAP@0.5:0.95 {text(c)} "
                   f"({METHOD} {LEVEL:.0%} interval, n = {c50.n} seeds).")
    return out


def baseline_pairs(summary: pd.DataFrame, baseline_rows: list[str | None]) -> list[tuple[str, str]]:
    """(row, its baseline row) for every row that is not itself a baseline."""
    return [(row, base) for row, base in zip(summary["row_label"], baseline_rows) if base and base != row]


__all__ = ["Comparison", "baseline_pairs", "compare_rows", "known_findings"]
