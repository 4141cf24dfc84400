"""A custom label assigner as a plug-in: each GT box takes the ``k`` priors nearest its centre.

Use it without editing yolozoo::

    python bench/run.py imports=[examples.nearest_k] assigner.name=nearest_k assigner.k=9
    YOLOZOO_IMPORTS=examples.nearest_k python bench/run.py sweep=my_sweep   # axes over assigner.name

(``examples`` is importable from the repository root; your own module only needs to be on
``PYTHONPATH``, or installed with an entry point in group ``yolozoo.assigners``.) A prior near
several GT centres goes to the nearest one. Like every assigner it is a pure no-grad function
of (predictions, priors, GT) whose constants are keyword arguments.
"""

from __future__ import annotations

import torch

from yolozoo.assigners import AssignResult, Priors, register_assigner
from yolozoo.assigners.base import assigner_call, make_result


@register_assigner("nearest_k")
class NearestKAssigner:
    """Positives: the ``k`` priors (over all levels) whose centres are nearest the GT box centre."""

    def __init__(self, k: int = 9):
        if k < 1:
            raise ValueError(f"nearest_k: k must be >= 1, got {k}")
        self.k = int(k)

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C] (only C is used), priors.centers [A, 2] px, gt_boxes [B, M, 4] xyxy px."""
        B, A, C = pred_scores.shape
        centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [B, M, 2]
        dist = torch.cdist(centres, priors.centers.float().expand(B, A, 2))  # [B, M, A]
        nearest = dist.topk(min(self.k, A), dim=-1, largest=False).indices  # [B, M, k]
        candidate = torch.zeros_like(dist, dtype=torch.bool).scatter_(-1, nearest, True) & gt_mask[..., None]
        best, gt_index = dist.masked_fill(~candidate, float("inf")).min(dim=1)  # [B, A]: the nearest claiming GT
        return make_result(best.isfinite(), gt_index, gt_labels, gt_boxes, C)
