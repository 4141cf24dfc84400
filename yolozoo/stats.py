"""Seed statistics for ablation tables: the paired interval, its reading, and the auto-seed rule.

Two rows of a table (grid points) that ran the same seeds are paired seed by seed: the
seed changes the initial weights and the batch order, so a seed that is good for A tends
to be good for B, and the per-seed differences vary less than either row. The interval is
the paired t interval on the mean difference, ``mean ± t_{n-1, 1-(1-level)/2} · sd / √n``
(Student's t with n − 1 degrees of freedom). A percentile bootstrap over 2-3 seeds only
reports the range of the differences, which is why it is not used.

No direction is read from fewer than :data:`MIN_SEEDS` shared seeds, whatever the interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

METHOD = "paired t"
LEVEL = 0.95
MIN_SEEDS = 3  # below this a comparison gets no directional reading


@dataclass(frozen=True)
class Interval:
    """Paired ``a - b`` over ``n`` shared seeds: mean, and the t interval (None for n < 2)."""

    n: int
    mean: float
    low: float | None
    high: float | None
    level: float = LEVEL
    method: str = METHOD

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    @property
    def open(self) -> bool:
        """The question is still open: too few seeds, or the interval straddles 0."""
        return self.n < MIN_SEEDS or not self.excludes_zero


def paired_t(diffs, level: float = LEVEL) -> Interval:
    """The paired t interval of ``mean(diffs)``; ``diffs`` are per-seed A − B differences."""
    d = np.asarray(list(diffs), dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return Interval(0, math.nan, None, None, level)
    mean = float(d.mean())
    if n < 2:
        return Interval(n, mean, None, None, level)
    half = float(_scipy_stats.t.ppf(1 - (1 - level) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return Interval(n, mean, mean - half, mean + half, level)


def reading(iv: Interval, name_a: str, name_b: str) -> str:
    """How to read an interval in words; directional only with >= MIN_SEEDS seeds and 0 excluded."""
    if iv.n < 2:
        return "n too small for an interval"
    if iv.n < MIN_SEEDS:
        return f"only {iv.n} shared seeds: no reading (needs {MIN_SEEDS})"
    if iv.low > 0:
        return f"{name_a} higher"
    if iv.high < 0:
        return f"{name_b} higher"
    return "not separable from seed noise"


def seeds_to_add(values: Mapping[str, Mapping[int, float]], baselines: Mapping[str, str | None], seeds: list[int],
                 max_seeds: int, level: float = LEVEL) -> dict[str, list[int]]:
    """The auto-seed rule: which rows get which next seed.

    ``values``: row -> {seed: metric} of completed runs; ``baselines``: row -> its baseline row
    (None or itself for a baseline); ``seeds``: every seed the sweep may use, in order
    (``len(seeds) >= max_seeds``). A row whose paired interval against its baseline is still
    open (:attr:`Interval.open`) and that shares fewer than ``max_seeds`` seeds with it gets the
    first seed of ``seeds`` neither has run, and so does its baseline (the pair needs both).
    Rows that are settled, or at the cap, get nothing: compute goes where the question is open.
    """
    add: dict[str, list[int]] = {}
    for row, base in baselines.items():
        if not base or base == row:
            continue
        a, b = values.get(row, {}), values.get(base, {})
        shared = sorted(set(a) & set(b))
        if len(shared) >= max_seeds or not paired_t([a[s] - b[s] for s in shared], level).open:
            continue
        nxt = next((s for s in seeds[:max_seeds] if s not in a or s not in b), None)
        if nxt is None:
            continue
        for r, have in ((row, a), (base, b)):
            if nxt not in have and nxt not in add.get(r, []):
                add.setdefault(r, []).append(nxt)
    return add


__all__ = ["Interval", "LEVEL", "METHOD", "MIN_SEEDS", "paired_t", "reading", "seeds_to_add"]
