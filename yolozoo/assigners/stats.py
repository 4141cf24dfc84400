"""Assignment statistics: how many positives each GT gets, and on which pyramid level."""

from __future__ import annotations

import torch

from .base import AssignResult, Priors


@torch.no_grad()
def assignment_stats(assign: AssignResult, gt_mask: torch.Tensor, priors: Priors, num_levels: int = 3) -> dict:
    """Summaries of one batch's assignment (floats, for logging).

    - ``pos_per_gt_mean`` / ``pos_per_gt_min``: positives per real GT;
    - ``gt_without_pos``: fraction of real GT with no positive prior;
    - ``pos_level{i}``: share of all positives on pyramid level i.
    """
    B, M = gt_mask.shape
    stats = {}
    if M and gt_mask.any():
        flat = (torch.arange(B, device=gt_mask.device)[:, None] * M + assign.gt_index)[assign.fg_mask]
        counts = torch.zeros(B * M, device=gt_mask.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float))
        counts = counts[gt_mask.flatten()]
        stats.update(pos_per_gt_mean=counts.mean().item(), pos_per_gt_min=counts.min().item(),
                     gt_without_pos=(counts == 0).float().mean().item())
    levels = priors.level.expand_as(assign.fg_mask)[assign.fg_mask]
    total = max(levels.numel(), 1)
    for i in range(num_levels):
        stats[f"pos_level{i}"] = (levels == i).sum().item() / total
    return stats
