"""assignment_stats: the same figures as a per-GT loop, without reading values back per batch."""

import pytest
import torch

from yolozoo.assigners.base import AssignResult, Priors
from yolozoo.assigners.stats import assignment_stats


def _result(fg: torch.Tensor, gt_index: torch.Tensor) -> AssignResult:
    B, A = fg.shape
    return AssignResult(fg_mask=fg, gt_index=gt_index, labels=torch.zeros(B, A, dtype=torch.long),
                        boxes=torch.zeros(B, A, 4), scores=torch.zeros(B, A, 1))


def _priors(levels: list[int]) -> Priors:
    level = torch.tensor(levels)
    return Priors(centers=torch.zeros(len(levels), 2), strides=torch.ones(len(levels)),
                  sizes=torch.ones(len(levels), 2), level=level)


def _reference(fg, gt_index, gt_mask, level, num_levels):
    counts = [int(((gt_index[b] == m) & fg[b]).sum()) for b in range(fg.shape[0]) for m in range(gt_mask.shape[1])
              if gt_mask[b, m]]
    ref = {}
    if counts:
        ref.update(pos_per_gt_mean=sum(counts) / len(counts), pos_per_gt_min=min(counts),
                   gt_without_pos=sum(c == 0 for c in counts) / len(counts))
    pos = level.expand_as(fg)[fg].tolist()
    for i in range(num_levels):
        ref[f"pos_level{i}"] = pos.count(i) / max(len(pos), 1)
    return ref


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_per_gt_loop(seed):
    g = torch.Generator().manual_seed(seed)
    B, A, M = 3, 40, 5
    levels = [0] * 24 + [1] * 12 + [2] * 4
    fg = torch.rand(B, A, generator=g) < 0.3
    gt_index = torch.randint(0, M, (B, A), generator=g)
    gt_mask = torch.rand(B, M, generator=g) < 0.6
    gt_mask[0, 0] = True
    stats = assignment_stats(_result(fg, gt_index), gt_mask, _priors(levels))
    ref = _reference(fg, gt_index, gt_mask, torch.tensor(levels), 3)
    assert stats.keys() == ref.keys()
    for k, v in ref.items():
        assert isinstance(stats[k], torch.Tensor) and stats[k].ndim == 0
        assert float(stats[k]) == pytest.approx(v, abs=1e-6), k


def test_no_positives_and_no_gt():
    fg = torch.zeros(2, 6, dtype=torch.bool)
    gt_index = torch.zeros(2, 6, dtype=torch.long)
    stats = assignment_stats(_result(fg, gt_index), torch.zeros(2, 3, dtype=torch.bool), _priors([0, 0, 0, 1, 1, 2]))
    assert {k: float(v) for k, v in stats.items()} == {
        "pos_per_gt_mean": 0.0, "pos_per_gt_min": 0.0, "gt_without_pos": 0.0,
        "pos_level0": 0.0, "pos_level1": 0.0, "pos_level2": 0.0}
    assert assignment_stats(_result(fg, gt_index), torch.zeros(2, 0, dtype=torch.bool),
                            _priors([0, 0, 0, 1, 1, 2])).keys() == {"pos_level0", "pos_level1", "pos_level2"}
