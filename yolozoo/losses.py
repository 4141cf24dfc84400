"""Detection loss: quality-aware BCE for classes, IoU-family loss for boxes.

Returns named *unweighted* terms; the weights live in config and are applied once by the
caller (``weighted_sum``), so both forms can be logged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .assigners.base import AssignResult
from .box_ops import aligned_iou


class DetectionLoss:
    """``loss(cls_logits [B, A, C], pred_boxes [B, A, 4] xyxy px, assign) -> {"cls", "box"}``.

    - ``cls``: BCE-with-logits against ``assign.scores`` (one-hot or IoU/alignment-weighted
      soft targets: the quality-aware target of VFL/QFL without the focal term), summed and
      divided by the total target score.
    - ``box``: ``1 - IoU`` of kind ``iou_type`` (``giou`` or ``ciou``) on foreground priors,
      weighted by each prior's target score, same normaliser.
    """

    def __init__(self, iou_type: str = "ciou"):
        if iou_type not in ("iou", "giou", "ciou"):
            raise ValueError(f"loss.iou_type must be iou, giou or ciou, got {iou_type!r}")
        self.iou_type = iou_type

    def __call__(self, cls_logits: torch.Tensor, pred_boxes: torch.Tensor, assign: AssignResult) -> dict:
        target_scores = assign.scores.to(cls_logits.dtype)
        norm = target_scores.sum().clamp(min=1.0)
        cls = F.binary_cross_entropy_with_logits(cls_logits.float(), target_scores.float(), reduction="sum") / norm
        # foreground priors as index tensors (one wait for the device; boolean masks wait at each use and in the
        # backward pass); with none, the sums are 0 and the graph stays connected
        b, a = assign.fg_mask.nonzero(as_tuple=True)
        weight = assign.scores[b, a].sum(-1)
        iou = aligned_iou(pred_boxes[b, a], assign.boxes[b, a], self.iou_type)
        box = ((1.0 - iou) * weight).sum() / norm
        return {"cls": cls, "box": box}


def weighted_sum(terms: dict, weights: dict) -> torch.Tensor:
    """``sum(weights[k] * terms[k])``; a term without a weight is an error."""
    missing = set(terms) - set(weights)
    if missing:
        raise KeyError(f"no loss weight for {sorted(missing)}; set loss.{sorted(missing)[0]}=...")
    return sum(weights[k] * v for k, v in terms.items())
