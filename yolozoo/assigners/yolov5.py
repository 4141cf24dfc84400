"""YOLOv5 assigner: centre cell plus the two nearest neighbour cells, anchors by w/h ratio.

Definition (Jocher et al., ultralytics/yolov5, ``build_targets``, 2020): with the GT
centre ``g`` in grid units on a level, the centre cell ``floor(g)`` is used, plus

- the left cell if ``frac(g_x) < 0.5`` and ``g_x > 1``; the right cell if
  ``frac(g_x) > 0.5`` and ``W - g_x > 1``;
- the upper cell if ``frac(g_y) < 0.5`` and ``g_y > 1``; the lower cell if
  ``frac(g_y) > 0.5`` and ``H - g_y > 1``,

i.e. at most three cells (the head decodes centres in (-0.5, 1.5) cells so neighbours can
reach the GT). In those cells, an anchor matches when ``max(r, 1 / r) < anchor_t`` for
both ``r = gt_w / anchor_w`` and ``r = gt_h / anchor_h``. A GT may thus match several
anchors and levels, or none (a shape more than ``anchor_t`` times off every anchor).

YOLOv5 lets several GT write one prior; here the prior goes to the GT of the smallest
ratio (best shape fit). Score targets are one-hot (YOLOv5's IoU objectness belongs to
the loss, not to this assignment).
"""

from __future__ import annotations

import torch

from .base import AssignResult, Priors, assigner_call, register_assigner
from .grid import cell_priors, finish, gt_cells, resolve_candidates, split_levels

# centre, left, right, up, down (x, y) cell offsets
_OFFSETS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


@register_assigner("yolov5")
class YOLOv5Assigner:
    """Centre + two nearest neighbour cells; anchors with w/h ratio below ``anchor_t``."""

    requires_anchors = True  # matches GT to anchor shapes: needs model.head=anchor

    def __init__(self, anchor_t: float = 4.0):
        self.anchor_t = anchor_t

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        gt_wh = (gt_boxes[..., 2:] - gt_boxes[..., :2])[:, :, None, None]  # [B, M, 1, 1, 2]
        offsets = gt_boxes.new_tensor(_OFFSETS)
        cand, worst, claim = [], [], []
        for lv in split_levels(priors):
            g, cell = gt_cells(centers, lv)
            frac = g - g.floor()
            before = (frac < 0.5) & (g > 1)  # [B, M, 2]: left / upper neighbour used
            after = (frac > 0.5) & (g.new_tensor([lv.width, lv.height]) - g > 1)  # right / lower
            use = torch.stack([torch.ones_like(before[..., 0]), before[..., 0], after[..., 0],
                               before[..., 1], after[..., 1]], dim=-1)  # [B, M, 5]
            idx, on_grid = cell_priors(lv, cell[:, :, None] + offsets)  # [B, M, 5, K], [B, M, 5]
            ratio = gt_wh / priors.sizes.float()[idx]  # [B, M, 5, K, 2]
            lv_worst = torch.maximum(ratio, 1 / ratio).amax(dim=-1)  # [B, M, 5, K]
            cand.append(idx.flatten(2))
            worst.append(lv_worst.flatten(2))
            claim.append(((use & on_grid)[..., None] & (lv_worst < self.anchor_t)).flatten(2))
        cand, worst, claim = (torch.cat(t, dim=-1) for t in (cand, worst, claim))
        fg, gt_index = resolve_candidates(cand, claim & gt_mask[..., None], -worst, len(priors))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
