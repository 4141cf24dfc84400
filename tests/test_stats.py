"""The paired t interval against hand-computed values, its reading, and the auto-seed stopping rule."""

from __future__ import annotations

import math

import pytest

from yolozoo.stats import MIN_SEEDS, paired_t, reading, seeds_to_add


def test_paired_t_matches_hand_computation():
    # diffs 0.02, 0.04, 0.03: mean 0.03, sd 0.01, t(0.975, 2 df) = 4.302653 -> half width 0.0248414
    iv = paired_t([0.02, 0.04, 0.03])
    assert iv.n == 3 and iv.mean == pytest.approx(0.03)
    assert iv.low == pytest.approx(0.03 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert iv.high == pytest.approx(0.03 + 0.0248414, abs=1e-6)
    assert iv.excludes_zero and not iv.open and iv.method == "paired t"


def test_paired_t_five_seeds_and_straddling():
    # diffs 0.01, -0.02, 0.03, 0.00, 0.01: mean 0.006, sd 0.0181659, t(0.975, 4) = 2.776445 -> half 0.0225560
    iv = paired_t([0.01, -0.02, 0.03, 0.00, 0.01])
    assert iv.mean == pytest.approx(0.006)
    assert (iv.low, iv.high) == (pytest.approx(0.006 - 0.0225560, abs=1e-6), pytest.approx(0.006 + 0.0225560, abs=1e-6))
    assert not iv.excludes_zero and iv.open


def test_paired_t_degenerate():
    assert paired_t([]).n == 0 and math.isnan(paired_t([]).mean) and paired_t([]).low is None
    one = paired_t([0.5])
    assert one.n == 1 and one.mean == 0.5 and one.low is None and one.open
    same = paired_t([0.1, 0.1, 0.1])  # no spread: the interval is the point
    assert same.low == pytest.approx(0.1) and same.high == pytest.approx(0.1) and same.excludes_zero


def test_reading_needs_three_seeds_for_a_direction():
    two = paired_t([0.10, 0.11])  # interval excludes 0, but two seeds only show a sign
    assert two.excludes_zero
    assert reading(two, "a", "b") == f"only 2 shared seeds: no reading (needs {MIN_SEEDS})"
    assert reading(paired_t([0.02, 0.04, 0.03]), "a", "b") == "a higher"
    assert reading(paired_t([-0.02, -0.04, -0.03]), "a", "b") == "b higher"
    assert reading(paired_t([0.02, -0.04, 0.03]), "a", "b") == "not separable from seed noise"
    assert reading(paired_t([0.02]), "a", "b") == "n too small for an interval"


SEEDS = [0, 1, 2, 3, 4]


def test_auto_seeds_go_only_to_open_rows():
    values = {"base": {0: 0.80, 1: 0.81, 2: 0.82},
              "clear": {0: 0.70, 1: 0.72, 2: 0.71},  # 0.10 below the baseline on every seed: settled
              "close": {0: 0.81, 1: 0.80, 2: 0.83}}  # +0.01, -0.01, +0.01: open
    baselines = {"base": "base", "clear": "base", "close": "base"}
    assert seeds_to_add(values, baselines, SEEDS, max_seeds=5) == {"close": [3], "base": [3]}


def test_auto_seeds_stop_at_the_cap_and_when_settled():
    values = {"base": {s: 0.8 for s in SEEDS}, "close": {0: 0.81, 1: 0.79, 2: 0.80, 3: 0.81, 4: 0.79}}
    baselines = {"base": None, "close": "base"}
    assert seeds_to_add(values, baselines, SEEDS, max_seeds=5) == {}  # at the cap: stop, still open
    assert seeds_to_add(values, baselines, SEEDS, max_seeds=3) == {}  # a lower cap already reached
    # a row that becomes separable with its 4th seed gets no 5th
    settled = {"base": {0: 0.80, 1: 0.80, 2: 0.80, 3: 0.80}, "r": {0: 0.83, 1: 0.82, 2: 0.84, 3: 0.83}}
    assert seeds_to_add(settled, {"r": "base"}, SEEDS, max_seeds=5) == {}


def test_auto_seeds_fill_the_pair_and_wait_for_the_minimum():
    # fewer than MIN_SEEDS shared seeds is open even if the sign agrees; the baseline gets the seed too
    values = {"base": {0: 0.8, 1: 0.8}, "r": {0: 0.9, 1: 0.9, 2: 0.9}}
    assert seeds_to_add(values, {"r": "base"}, SEEDS, max_seeds=5) == {"base": [2]}
    # two open rows needing the same baseline seed list it once
    values = {"base": {0: 0.8, 1: 0.81, 2: 0.8}, "a": {0: 0.81, 1: 0.80, 2: 0.81}, "b": {0: 0.79, 1: 0.81, 2: 0.80}}
    assert seeds_to_add(values, {"a": "base", "b": "base"}, SEEDS, max_seeds=4) == {"a": [3], "base": [3], "b": [3]}
