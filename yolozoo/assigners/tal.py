"""Task-aligned assignment (TOOD, Feng et al. 2021; as used by YOLOv8).

For every GT, the alignment of each prior is ``t = s^alpha * u^beta``, where ``s`` is the
predicted probability of the GT's class and ``u`` the overlap of the predicted box with
the GT (IoU as in TOOD, or CIoU clamped at 0 as in YOLOv8). The ``topk`` priors with the
largest ``t`` whose centres lie inside the GT are its positives; a prior claimed by several
GT keeps the one it overlaps most. The classification target is the alignment normalised
per GT so that its maximum equals the GT's best overlap.
"""

from __future__ import annotations

import torch

from ..box_ops import aligned_iou, points_in_boxes
from .base import AssignResult, Priors, make_result, register_assigner


@register_assigner("tal")
class TaskAlignedAssigner:
    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, iou_type: str = "ciou",
                 eps: float = 1e-9):
        if iou_type not in ("iou", "ciou"):
            raise ValueError(f"tal: iou_type must be 'iou' (TOOD) or 'ciou' (YOLOv8), got {iou_type!r}")
        self.topk, self.alpha, self.beta, self.iou_type, self.eps = topk, alpha, beta, iou_type, eps

    @torch.no_grad()
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """See :mod:`yolozoo.assigners.base` for shapes. Computes in fp32."""
        pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
        B, A, C = pred_scores.shape
        M = gt_labels.shape[1]
        if M == 0:
            fg = torch.zeros(B, A, dtype=torch.bool, device=pred_scores.device)
            return make_result(fg, fg.long(), gt_labels, gt_boxes, C)

        # Candidates: real GT whose box contains the prior centre.  [B, M, A]
        candidate = points_in_boxes(priors.centers.float(), gt_boxes) & gt_mask[..., None]
        b_idx, m_idx, a_idx = candidate.nonzero(as_tuple=True)

        overlaps = pred_scores.new_zeros(B, M, A)
        kind = "ciou" if self.iou_type == "ciou" else "iou"
        overlaps[b_idx, m_idx, a_idx] = aligned_iou(gt_boxes[b_idx, m_idx], pred_boxes[b_idx, a_idx], kind).clamp_(0)
        cls_prob = pred_scores.new_zeros(B, M, A)
        cls_prob[b_idx, m_idx, a_idx] = pred_scores[b_idx, a_idx, gt_labels[b_idx, m_idx]]
        align = cls_prob.pow(self.alpha) * overlaps.pow(self.beta)  # [B, M, A]

        # Top-k by alignment per GT, restricted to candidates.
        k = min(self.topk, A)
        topk_idx = align.topk(k, dim=-1).indices  # [B, M, k]
        in_topk = torch.zeros_like(candidate).scatter_(-1, topk_idx, True)
        pos = in_topk & candidate  # [B, M, A]

        # A prior claimed by several GT keeps the one with the largest overlap (among its claimants).
        claimed = pos.sum(1)  # [B, A]
        if (claimed > 1).any():
            best = overlaps.masked_fill(~pos, -1.0).argmax(1)  # [B, A]
            is_best = torch.zeros_like(pos).scatter_(1, best[:, None], True)
            pos = torch.where((claimed > 1)[:, None], is_best & pos, pos)
        fg_mask = pos.any(1)
        gt_index = pos.to(torch.uint8).argmax(1)

        # Normalised alignment as the quality target: max per GT = that GT's best overlap.
        align = align * pos
        max_align = align.amax(-1, keepdim=True)
        max_overlap = (overlaps * pos).amax(-1, keepdim=True)
        weight = (align * max_overlap / (max_align + self.eps)).amax(1)  # [B, A]
        return make_result(fg_mask, gt_index, gt_labels, gt_boxes, C, score_weight=weight)
