"""SimOTA: YOLOX's simplified optimal-transport assignment.

Definition (Ge et al., "YOLOX: Exceeding YOLO Series in 2021", Sec. 2.2; OTA, Ge et al.,
CVPR 2021), per image:

1. geometry: ``in_box[g, a]`` = prior centre strictly inside GT ``g``; ``in_center[g, a]``
   = prior centre within ``center_radius * stride`` of the centre of ``g`` on both axes.
   The image's candidate priors are those in the region of some GT, the region being
   ``in_box | in_center`` (``candidate="box_or_center"``, YOLOX's published code) or
   ``in_box & in_center`` (``candidate="box_and_center"``). Other priors are never
   positive.
2. cost of pairing GT ``g`` with candidate ``a``::

       cls_weight * BCE(s, onehot(label_g)).sum(classes) + iou_weight * -log(IoU(pred_a, g) + 1e-8)
       + outside_cost * not (in_box[g, a] and in_center[g, a])

   with ``s = sqrt(p)`` when ``sqrt_scores`` (YOLOX, whose ``p`` is cls * obj; the sqrt
   keeps that geometric mean) or ``s = p`` (plain BCE). The BCE sum over classes is
   computed in closed form, never as a ``[B, M, A, C]`` tensor.
3. dynamic k: ``k_g = max(1, int(sum of the top-``topk_candidates`` IoUs of g over the
   candidates))``; ``g`` takes its ``k_g`` cheapest candidates.
4. a prior taken by several GT keeps the one of minimum cost (exact ties to the lower
   GT index).

Score targets are one-hot times the IoU of the assigned prediction with its GT.
"""

from __future__ import annotations

import torch

from ..box_ops import aligned_iou, points_in_boxes
from .base import AssignResult, Priors, register_assigner
from .grid import empty_result, finish, resolve_conflicts

CANDIDATES = ("box_or_center", "box_and_center")


@register_assigner("simota")
class SimOTAAssigner:
    """YOLOX SimOTA; ``self.candidate`` says which candidate region ran (see module docstring)."""

    def __init__(
        self,
        center_radius: float = 2.5,
        iou_weight: float = 3.0,
        cls_weight: float = 1.0,
        topk_candidates: int = 10,
        candidate: str = "box_or_center",
        sqrt_scores: bool = True,
        outside_cost: float = 1e5,
    ):
        if candidate not in CANDIDATES:
            raise ValueError(f"simota: unknown candidate {candidate!r}; valid: {', '.join(CANDIDATES)}")
        self.center_radius = center_radius
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.topk_candidates = topk_candidates
        self.candidate = candidate
        self.sqrt_scores = sqrt_scores
        self.outside_cost = outside_cost

    def _cls_cost(self, pred_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """sum_c BCE(s_ac, [c == label_g]) -> ``[B, M, A]``; pred_scores ``[B, A, C]``, labels ``[B, M]``.

        = sum_c -log(1 - s_ac)  +  log(1 - s_a,label) - log(s_a,label); logs clamped at
        -100 like ``torch.nn.functional.binary_cross_entropy``. Only the class sum touches
        all C classes.
        """
        s = pred_scores.float().clamp(0, 1)  # a new tensor: the in-place ops below are safe
        if self.sqrt_scores:
            s.sqrt_()
        s_gt = s.transpose(1, 2).gather(1, labels[..., None].expand(-1, -1, s.shape[1]))  # [B, M, A]
        neg_sum = s.neg_().log1p_().clamp_(min=-100).sum(-1)  # [B, A], sum_c log(1 - s_ac)
        return torch.log1p(-s_gt).clamp_(min=-100) - s_gt.log().clamp_(min=-100) - neg_sum[:, None]

    @torch.no_grad()
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C] probs, pred_boxes [B, A, 4] xyxy px, gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        if M == 0:
            return empty_result(pred_scores, gt_labels, gt_boxes)
        gt_boxes = gt_boxes.float()
        labels = gt_labels.long().masked_fill(~gt_mask, 0)
        centers = priors.centers.float()
        real = gt_mask[..., None]

        in_box = points_in_boxes(centers, gt_boxes)  # [B, M, A]
        reach = self.center_radius * priors.strides.float()  # [A]
        gt_centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        in_center = ((centers[:, 0] - gt_centers[..., 0, None]).abs() < reach) & (
            (centers[:, 1] - gt_centers[..., 1, None]).abs() < reach
        )
        core = in_box & in_center
        region = (in_box | in_center) if self.candidate == "box_or_center" else core
        candidate = (region & real).any(dim=1, keepdim=True)  # [B, 1, A]

        iou = aligned_iou(gt_boxes[:, :, None], pred_boxes[:, None])  # [B, M, A]
        cost = (
            self.cls_weight * self._cls_cost(pred_scores, labels)
            - self.iou_weight * torch.log(iou + 1e-8)
            + self.outside_cost * (~core).float()
        )
        cost = cost.masked_fill(~(candidate & real), float("inf"))

        k = min(self.topk_candidates, len(priors))
        dynamic_k = iou.masked_fill(~candidate, 0).topk(k, dim=-1).values.sum(-1).int().clamp(min=1)  # [B, M]
        cheapest = cost.topk(k, dim=-1, largest=False)
        rank = torch.arange(k, device=cost.device)
        take = (rank < dynamic_k[..., None]) & cheapest.values.isfinite()  # [B, M, k]
        pos = torch.zeros_like(in_box).scatter_(2, cheapest.indices, take)

        fg, gt_index = resolve_conflicts(pos, -cost)
        weight = iou.gather(1, gt_index[:, None]).squeeze(1)  # [B, A]
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1], score_weight=weight)
