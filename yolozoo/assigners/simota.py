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
   computed in closed form, never as a ``[B, M, A, C]`` tensor, and like every pairwise
   term only for the image's candidate priors (``[B, M, N]``, N = most candidates in an image).
3. dynamic k: ``k_g = max(1, int(sum of the top-``topk_candidates`` IoUs of g over the
   candidates))``; ``g`` takes its ``k_g`` cheapest candidates.
4. a prior taken by several GT keeps the one of minimum cost (exact ties to the lower
   GT index).

Score targets are one-hot times the IoU of the assigned prediction with its GT.
"""

from __future__ import annotations

import torch

from .base import (
    AssignResult,
    Priors,
    assigner_call,
    batched_box_iou,
    centres_in_boxes,
    empty_result,
    register_assigner,
)
from .grid import finish, resolve_claims

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

    def _cls_cost(self, pred_scores: torch.Tensor, labels: torch.Tensor, cand: torch.Tensor | None = None,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
        """sum_c BCE(s_ac, [c == label_g]) -> ``[B, M, N]``.

        pred_scores ``[B, A, C]``, labels ``[B, M]``; ``cand`` ``[B, N]`` prior indices (default:
        all A priors) of which ``valid`` ``[B, N]`` are real (padding costs 0).
        = sum_c -log(1 - s_ac)  +  log(1 - s_a,label) - log(s_a,label); logs clamped at
        -100 like ``torch.nn.functional.binary_cross_entropy``. Only the class sum touches
        all C classes, once per valid candidate prior.
        """
        B, A, C = pred_scores.shape
        if cand is None:
            cand = torch.arange(A, device=pred_scores.device).expand(B, A)
        if valid is None:
            valid = torch.ones_like(cand, dtype=torch.bool)
        rows = torch.arange(B, device=cand.device)[:, None] * A + cand  # [B, N] into [B * A]
        flat = pred_scores.reshape(B * A, C)

        def s_of(p: torch.Tensor) -> torch.Tensor:  # p is a fresh copy (index_select): in place is safe
            s = p.float().clamp_(0, 1)
            return s.sqrt_() if self.sqrt_scores else s

        index = (rows * C)[:, None, :] + labels[:, :, None]  # [B, M, N] into the flattened scores
        s_gt = s_of(flat.reshape(-1).index_select(0, index.flatten()).view(index.shape))
        s_all = s_of(flat.index_select(0, rows[valid]))  # [V, C]
        neg_sum = s_all.neg_().add_(1).log_().clamp_(min=-100).sum(-1)  # [V], sum_c log(1 - s_ac)
        neg = s_gt.new_zeros(cand.shape)
        neg[valid] = neg_sum
        log_s = s_gt.log().clamp_(min=-100)
        return s_gt.neg_().add_(1).log_().clamp_(min=-100).sub_(log_s).sub_(neg[:, None])

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C] probs, pred_boxes [B, A, 4] xyxy px, gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        labels = gt_labels.long().masked_fill(~gt_mask, 0)
        centers = priors.centers.float()
        real = gt_mask[..., None]

        in_box = centres_in_boxes(centers, gt_boxes)  # [B, M, A]
        reach = self.center_radius * priors.strides.float()[:, None]  # [A, 1]
        lo, hi = centers - reach, centers + reach  # [A, 2]: |prior - g| < reach <=> lo < g < hi
        gx, gy = ((gt_boxes[..., i, None] + gt_boxes[..., i + 2, None]) / 2 for i in range(2))  # [B, M, 1]
        in_center = (lo[:, 0] < gx) & (gx < hi[:, 0]) & (lo[:, 1] < gy) & (gy < hi[:, 1])
        core = in_box & in_center
        region = (in_box | in_center) if self.candidate == "box_or_center" else core
        candidate = (region & real).any(dim=1)  # [B, A]

        # Work on each image's candidate priors only: their indices, padded to the batch's most.  [B, N]
        counts = candidate.sum(1)
        N = int(counts.max())
        if N == 0:
            return empty_result(pred_scores, gt_labels, gt_boxes)
        cand = candidate.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :N]  # ascending index
        valid = torch.arange(N, device=cand.device) < counts[:, None]  # [B, N]
        core = core.gather(2, cand[:, None].expand(B, M, N))
        boxes_c = pred_boxes.float().gather(1, cand[..., None].expand(B, N, 4))

        iou = batched_box_iou(gt_boxes, boxes_c)  # [B, M, N]
        cost = (
            self.cls_weight * self._cls_cost(pred_scores, labels, cand, valid)
            - self.iou_weight * torch.log(iou + 1e-8)
            + self.outside_cost * (~core).float()
        )
        cost = cost.masked_fill(~(valid[:, None] & real), float("inf"))

        k = min(self.topk_candidates, N)
        dynamic_k = iou.masked_fill(~valid[:, None], 0).topk(k, dim=-1).values.sum(-1).int().clamp(min=1)  # [B, M]
        cheapest = cost.topk(k, dim=-1, largest=False)
        rank = torch.arange(k, device=cost.device)
        take = (rank < dynamic_k[..., None]) & cheapest.values.isfinite()  # [B, M, k]
        b, m, j = take.nonzero(as_tuple=True)
        n = cheapest.indices[b, m, j]
        a = cand[b, n]

        fg, gt_index = resolve_claims(b, m, a, -cost[b, m, n], (B, M, len(priors)))
        won = gt_index[b, a] == m
        weight = iou.new_zeros(B, len(priors))
        weight[b[won], a[won]] = iou[b[won], m[won], n[won]]
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1], score_weight=weight)
