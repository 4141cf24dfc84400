"""YOLOv1 assignment: the predictor of the GT-centre cell whose current box overlaps the GT most.

Definition (Redmon et al. 2016, Sec. 2.2): "If the center of an object falls into a grid
cell, that grid cell is responsible for detecting that object"; of the cell's B predictors,
the one "responsible" is the one "whose prediction has the highest current IOU with the
ground truth". So each GT gets exactly one positive, chosen by the *predicted* boxes.

With a pyramid, the centre cell of every level competes (the priors of a cell are its
predictors); with YOLOv1's single S x S level this is the paper's rule. A prior wanted by
several GT goes to the one it overlaps most (exact ties: the GT first in a content order, so
the result does not depend on GT order or padding); the others move on to their next-best
candidate. A GT is left without a positive only when all its candidates are taken.

Score targets are one-hot: YOLOv1's confidence target (the IoU) belongs to its loss, like
YOLOv5's IoU objectness (see :class:`~yolozoo.models.yolov1.YOLOv1Loss`).
"""

from __future__ import annotations

import torch

from ..box_ops import aligned_iou
from .base import AssignResult, Priors, assigner_call, register_assigner
from .grid import canonical_rank, cell_priors, finish, gt_cells, resolve_claims, split_levels


@register_assigner("yolov1")
class YOLOv1Assigner:
    """One positive per GT: the best-IoU predicted box among the priors of its centre cells."""

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C] (unused), pred_boxes [B, A, 4] xyxy px, gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        pred_boxes = pred_boxes.float()
        A = len(priors)
        centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        cand = torch.cat([cell_priors(lv, gt_cells(centers, lv)[1])[0] for lv in split_levels(priors)], -1)  # [B, M, N]
        b_idx = torch.arange(B, device=cand.device)[:, None, None]
        iou = aligned_iou(gt_boxes[:, :, None], pred_boxes[b_idx, cand])  # [B, M, N]
        rank = canonical_rank(gt_labels, gt_boxes, gt_mask)  # ties between GT go to the lower rank
        gt_of_rank = rank.argsort(1)  # [B, M]: rank -> GT index
        fg = torch.zeros(B, A, dtype=torch.bool, device=cand.device)
        gt_index = torch.zeros(B, A, dtype=torch.long, device=cand.device)
        active = gt_mask.clone()
        for _ in range(cand.shape[-1]):  # each round, every active GT claims its best free candidate
            free = active[..., None] & ~fg.gather(1, cand.flatten(1)).view_as(cand)
            if not free.any():
                break
            best = iou.masked_fill(~free, -1.0).argmax(-1)  # [B, M], first (lowest level, k) on ties
            b, m = free.any(-1).nonzero(as_tuple=True)
            a = cand[b, m, best[b, m]]
            won, won_rank = resolve_claims(b, rank[b, m], a, iou[b, m, best[b, m]], (B, M, A))
            fg |= won
            gt_index = torch.where(won, gt_of_rank.gather(1, won_rank), gt_index)
            active[b, m] &= ~(won[b, a] & (gt_index[b, a] == m))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
