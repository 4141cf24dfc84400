"""Task-aligned assignment (TOOD, Feng et al. 2021; as used by YOLOv8).

For every GT, the alignment of each prior is ``t = s^alpha * u^beta``, where ``s`` is the
predicted probability of the GT's class and ``u`` the overlap of the predicted box with
the GT (IoU as in TOOD, or CIoU clamped at 0 as in YOLOv8). The ``topk`` priors with the
largest ``t`` whose centres lie inside the GT are its positives; a prior claimed by several
GT keeps the one it overlaps most (among those claimants, as in TOOD; exact ties to the
lower GT index; the ultralytics reference picks among every GT containing the prior
centre). The classification target is the alignment normalised per GT so that its maximum
equals the GT's best overlap: ``t * max_u / (max_t + eps)`` over the GT's final positives.

``min_gt_side``: for the centre-inside test only, a GT side shorter than this is widened
to it about the GT centre (recent ultralytics releases do this with their second stride,
16 px, so that tiny GT get candidates); 0 (the default, as in TOOD) leaves GT as they are.

Work is dense only where it must be (the ``[B, M, A]`` candidate mask and the top-k);
overlaps and alignments are computed for candidate pairs only, and conflicts and the
normalisation are resolved on the at most ``B * M * topk`` positive pairs.
"""

from __future__ import annotations

import torch

from ..box_ops import aligned_iou
from .base import AssignResult, Priors, centres_in_boxes, make_result, register_assigner
from .grid import resolve_claims


@register_assigner("tal")
class TaskAlignedAssigner:
    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, iou_type: str = "ciou",
                 eps: float = 1e-9, min_gt_side: float = 0.0):
        if iou_type not in ("iou", "ciou"):
            raise ValueError(f"tal: iou_type must be 'iou' (TOOD) or 'ciou' (YOLOv8), got {iou_type!r}")
        if topk < 1:
            raise ValueError(f"tal: topk must be >= 1, got {topk}")
        self.topk, self.alpha, self.beta, self.iou_type, self.eps = topk, alpha, beta, iou_type, eps
        self.min_gt_side = min_gt_side

    def _candidate_boxes(self, gt_boxes: torch.Tensor) -> torch.Tensor:
        """GT boxes [B, M, 4] xyxy with sides below ``min_gt_side`` widened about their centre."""
        if self.min_gt_side <= 0:
            return gt_boxes
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        wh = gt_boxes[..., 2:] - gt_boxes[..., :2]
        half = torch.where(wh < self.min_gt_side, wh.new_tensor(self.min_gt_side), wh) / 2
        return torch.cat([centre - half, centre + half], dim=-1)

    @torch.no_grad()
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """See :mod:`yolozoo.assigners.base` for shapes. Computes in fp32."""
        pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
        B, A, C = pred_scores.shape
        M = gt_labels.shape[1]
        if M == 0:
            fg = torch.zeros(B, A, dtype=torch.bool, device=pred_scores.device)
            return make_result(fg, fg.long(), gt_labels, gt_boxes, C)
        labels = gt_labels.long().masked_fill(~gt_mask, 0)  # padding labels may be anything

        # Candidates: real GT whose box contains the prior centre.  [B, M, A]
        candidate = centres_in_boxes(priors.centers.float(), self._candidate_boxes(gt_boxes))
        candidate &= gt_mask[..., None]
        b, m, a = candidate.nonzero(as_tuple=True)
        overlap = aligned_iou(gt_boxes[b, m], pred_boxes[b, a], self.iou_type).clamp_(0)  # [N]
        align_c = pred_scores[b, a, labels[b, m]].pow(self.alpha) * overlap.pow(self.beta)
        align = pred_scores.new_zeros(B, M, A)
        align[b, m, a] = align_c

        # Top-k by alignment per GT (over all priors, as the reference), kept where a candidate.
        k = min(self.topk, A)
        top_align, top_a = align.topk(k, dim=-1)  # [B, M, k]
        keep = candidate.gather(-1, top_a)
        pb, pm, pk = keep.nonzero(as_tuple=True)  # index tensors, not masks: one wait for the device, not three
        pa, p_align = top_a[pb, pm, pk], top_align[pb, pm, pk]  # [P] positive (GT, prior) pairs
        p_overlap = aligned_iou(gt_boxes[pb, pm], pred_boxes[pb, pa], self.iou_type).clamp_(0)

        # A prior claimed by several GT keeps the claimant it overlaps most.
        fg_mask, gt_index = resolve_claims(pb, pm, pa, p_overlap, (B, M, A))
        won = gt_index[pb, pa] == pm  # [P], with fg_mask[pb, pa] True for every pair

        # Normalised alignment over each GT's final positives: max per GT = that GT's best overlap.
        (w,) = won.nonzero(as_tuple=True)
        pb, pm, pa, p_align, p_overlap = pb[w], pm[w], pa[w], p_align[w], p_overlap[w]
        key = pb * M + pm
        max_align = p_align.new_zeros(B * M).scatter_reduce_(0, key, p_align, "amax")
        max_overlap = p_overlap.new_zeros(B * M).scatter_reduce_(0, key, p_overlap, "amax")
        weight = pred_scores.new_zeros(B, A)
        weight[pb, pa] = p_align * max_overlap[key] / (max_align[key] + self.eps)
        return make_result(fg_mask, gt_index, labels, gt_boxes, C, score_weight=weight)
