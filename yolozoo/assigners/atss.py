"""ATSS: Adaptive Training Sample Selection.

Definition (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection
via Adaptive Training Sample Selection", CVPR 2020, Alg. 1), for each GT box ``g``:

1. on every pyramid level, take the ``topk`` priors whose centres are closest (L2) to the
   centre of ``g`` -> candidates ``C_g`` (``topk * levels`` of them, fewer on tiny levels);
2. compute the IoU of each candidate's prior box with ``g``; threshold
   ``t_g = mean + std`` of those IoUs (std with Bessel's correction, as the reference
   implementation's ``torch.std``);
3. positives: candidates with ``IoU >= t_g`` whose centre lies inside ``g`` (by more
   than 0.01 px on every side, as the reference implementation).

A prior selected by several GT goes to the one of highest IoU (exact ties to the lower GT
index). Score targets are one-hot. Equal centre distances at the top-k cut are broken by
``torch.topk``.
"""

from __future__ import annotations

import torch

from ..box_ops import aligned_iou, box_to_distance
from .base import AssignResult, Priors, assigner_call, register_assigner
from .grid import finish, resolve_candidates, split_levels

# cdist's matmul shortcut loses precision, which would make equal distances unequal.
_EXACT = "donot_use_mm_for_euclid_dist"


@register_assigner("atss")
class ATSSAssigner:
    """Top-k closest priors per level, IoU threshold mean + std, centre inside the GT."""

    def __init__(self, topk: int = 9):
        if topk < 1:
            raise ValueError(f"atss: topk must be >= 1, got {topk}")
        self.topk = topk

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        centers = priors.centers.float()
        gt_centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [B, M, 2]

        # 1. candidates: top-k closest prior centres per level -> indices [B, M, K_total]
        cand = []
        for lv in split_levels(priors):
            # [B, M, A_l]
            dist = torch.cdist(gt_centers, centers[None, lv.start : lv.end], compute_mode=_EXACT)
            k = min(self.topk, lv.end - lv.start)
            cand.append(dist.topk(k, dim=-1, largest=False).indices + lv.start)
        cand = torch.cat(cand, dim=-1)

        # 2. IoU of each candidate prior box with its GT, threshold mean + std per GT
        cand_boxes = priors.boxes().float()[cand]  # [B, M, K_total, 4]
        iou = aligned_iou(cand_boxes, gt_boxes[:, :, None])  # [B, M, K_total]
        n = iou.shape[-1]
        thres = iou.mean(-1, keepdim=True) + (iou.std(-1, keepdim=True) if n > 1 else 0.0)

        # 3. centre inside the GT
        inside = box_to_distance(centers[cand], gt_boxes[:, :, None]).amin(dim=-1) > 0.01
        keep = (iou >= thres) & inside & gt_mask[..., None]

        fg, gt_index = resolve_candidates(cand, keep, iou, len(priors))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
