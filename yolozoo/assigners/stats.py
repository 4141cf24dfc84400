"""Assignment statistics: how many positives each GT gets, and on which pyramid level."""

from __future__ import annotations

import torch

from .base import AssignResult, Priors


@torch.no_grad()
def assignment_stats(assign: AssignResult, gt_mask: torch.Tensor, priors: Priors, num_levels: int = 3) -> dict:
    """Summaries of one batch's assignment, as 0-d float tensors on the batch's device.

    - ``pos_per_gt_mean`` / ``pos_per_gt_min``: positives per real GT;
    - ``gt_without_pos``: fraction of real GT with no positive prior;
    - ``pos_level{i}``: share of all positives on pyramid level i.

    Tensors, not floats: reading a value back (``.item()``, a boolean mask) would make the CPU wait for
    the GPU at every training step. A batch without any real GT reports 0 for the per-GT figures.
    """
    B, M = gt_mask.shape
    fg = assign.fg_mask  # [B, N] bool
    stats = {}
    if M:
        # positives per (image, GT slot): [B, M]
        counts = torch.zeros(B, M, device=gt_mask.device).scatter_add_(1, assign.gt_index * fg, fg.float())
        real = gt_mask.float()
        n = real.sum().clamp(min=1)
        stats.update(pos_per_gt_mean=(counts * real).sum() / n,
                     pos_per_gt_min=torch.where(gt_mask, counts, torch.inf).amin().nan_to_num(0.0, posinf=0.0),
                     gt_without_pos=((counts == 0) & gt_mask).sum() / n)
    level = priors.level.expand_as(fg)
    total = fg.sum().clamp(min=1)
    for i in range(num_levels):
        stats[f"pos_level{i}"] = (fg & (level == i)).sum() / total
    return stats
