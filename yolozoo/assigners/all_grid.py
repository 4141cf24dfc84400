"""``all_grid``: SSD/RetinaNet-style IoU matching of GT boxes with every prior box.

Each prior box sits at its own centre; every prior whose box has IoU >= ``match_iou_thres``
with a GT is a positive for it (Liu et al. 2016, SSD; Lin et al. 2017, RetinaNet).

The IoU is the pairwise IoU of ``torchvision.ops.box_iou`` (same formula, bit for bit), but
computed level by level on the grid: on a level whose K prior boxes per cell are the same
shape in every cell, a prior's x-extent depends only on its column and anchor and its
y-extent only on its row and anchor, so the intersection with a GT is a product of a
``[W, K]`` and a ``[H, K]`` overlap (a few passes over ``[B, M, H, W, K]`` instead of
``box_iou``'s ``[B * M, A, 2]`` intermediates), and only for (GT, anchor) pairs whose shapes
can reach the threshold at all (IoU <= the IoU of the two shapes centred together), unless
``ensure_one`` needs every GT's best prior. A level that is not such a grid falls back to
``box_iou``.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

from .base import AssignResult, Priors, assigner_call, register_assigner
from .grid import LevelGrid, finish, resolve_claims, shape_iou, split_levels


def grid_extents(prior_boxes: torch.Tensor, lv: LevelGrid):
    """The level's prior boxes as a grid: (x-extents ``[W, K, 2]``, y-extents ``[H, K, 2]``, prior index
    ``[H, W, K]``), or None when a prior's x-extent is not a function of its column and anchor alone
    (likewise y of row), i.e. the level is no grid of same-shaped anchors."""
    H, W = lv.height, lv.width
    boxes = prior_boxes[lv.table].view(H, W, -1, 4)  # [H, W, K, 4]
    xs, ys = boxes[0, :, :, 0::2], boxes[:, 0, :, 1::2]
    if not (torch.equal(boxes[..., 0::2], xs.expand_as(boxes[..., 0::2]))
            and torch.equal(boxes[..., 1::2], ys[:, None].expand_as(boxes[..., 1::2]))):
        return None
    return xs, ys, lv.table.view(H, W, -1)


def triple_iou(gt_boxes: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """IoU of F GT boxes ``[F, 4]`` with every prior box of anchor ``k [F]`` on a grid -> ``[F, H, W]``.

    xs ``[W, K, 2]``, ys ``[H, K, 2]``: the grid's x- and y-extents. Same float operations as
    ``torchvision.ops.box_iou``: ``inter / (area_gt + area_prior - inter)``.
    """
    x, y = xs[:, k].transpose(0, 1), ys[:, k].transpose(0, 1)  # [F, W, 2], [F, H, 2]
    g = gt_boxes[:, None]  # [F, 1, 4]
    iw = (torch.minimum(g[..., 2], x[..., 1]) - torch.maximum(g[..., 0], x[..., 0])).clamp_(min=0)  # [F, W]
    ih = (torch.minimum(g[..., 3], y[..., 1]) - torch.maximum(g[..., 1], y[..., 0])).clamp_(min=0)  # [F, H]
    inter = ih[:, :, None] * iw[:, None, :]
    area_gt = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))[:, None, None]
    area_prior = (y[..., 1] - y[..., 0])[:, :, None] * (x[..., 1] - x[..., 0])[:, None, :]
    return inter.div_((area_gt + area_prior).sub_(inter))


@register_assigner("all_grid")
class AllGridAssigner:
    """Every prior whose box (at its own centre) has IoU >= ``match_iou_thres`` with the GT.

    Matching over all cells and levels; a prior claimed by several GT goes to the highest
    IoU (exact ties to the lower GT index). The method gives no positive to a GT that
    overlaps no prior well enough (e.g. one much smaller than the smallest prior);
    ``ensure_one=True`` adds each GT's best-IoU prior (lowest prior index on ties) as in
    Faster R-CNN's low-quality matches, winning over threshold claims. Scores are one-hot.
    """

    requires_anchors = True  # matches GT to prior boxes by shape: needs model.head=anchor

    def __init__(self, match_iou_thres: float = 0.5, ensure_one: bool = False):
        self.match_iou_thres = match_iou_thres
        self.ensure_one = ensure_one

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        A = len(priors)
        prior_boxes = priors.boxes().float()
        claims, bests = [], []  # per level: (b, m, a, iou) of claims; (GT key, best IoU, its prior)
        gt_wh = gt_boxes[..., 2:] - gt_boxes[..., :2]
        for lv in split_levels(priors):
            grid = grid_extents(prior_boxes, lv)
            if grid is None:  # no regular grid: every (real GT, prior) pair
                fb, fm = gt_mask.nonzero(as_tuple=True)
                iou = box_iou(gt_boxes[fb, fm], prior_boxes[lv.start:lv.end])[:, None]  # [F, 1, P]

                def prior_at(f, i, j, start=lv.start):
                    return start + j
            else:
                xs, ys, table = grid
                # The IoU of two boxes is at most that of their shapes centred together: skip (GT, anchor)
                # pairs that cannot reach the threshold (slack for rounding), unless every best prior is needed.
                anchor_wh = torch.stack([xs[0, :, 1] - xs[0, :, 0], ys[0, :, 1] - ys[0, :, 0]], -1)  # [K, 2]
                reach = shape_iou(gt_wh[:, :, None], anchor_wh) >= self.match_iou_thres - 1e-3  # [B, M, K]
                fb, fm, fk = (gt_mask[..., None] & (reach | self.ensure_one)).nonzero(as_tuple=True)
                iou = triple_iou(gt_boxes[fb, fm], xs, ys, fk)  # [F, H, W]

                def prior_at(f, i, j, table=table, fk=fk):
                    return table[i, j, fk[f]]
            f, i, j = (iou >= self.match_iou_thres).nonzero(as_tuple=True)
            claims.append((fb[f], fm[f], prior_at(f, i, j), iou[f, i, j]))
            if self.ensure_one:
                f_best = iou.flatten(1).amax(1)  # [F]
                f, i, j = (iou == f_best[:, None, None]).nonzero(as_tuple=True)
                f_arg = torch.full_like(fb, A).scatter_reduce(0, f, prior_at(f, i, j), "amin")
                bests.append((fb * M + fm, f_best, f_arg))
        b, m, a, priority = (torch.cat(t) for t in zip(*claims))
        if self.ensure_one:  # each GT's best prior over all levels, ties to the lowest prior index
            key, f_best, f_arg = (torch.cat(t) for t in zip(*bests))
            best_iou = gt_boxes.new_full((B * M,), -1.0).scatter_reduce(0, key, f_best, "amax")
            best = torch.full((B * M,), A, device=key.device).scatter_reduce(
                0, key, torch.where(f_best == best_iou[key], f_arg, A), "amin")
            best_iou, best = best_iou.view(B, M), best.view(B, M)
            forced = (best_iou > 0) & gt_mask  # [B, M]
            is_forced = forced[b, m] & (a == best[b, m])
            priority = priority + 2.0 * is_forced
            extra_b, extra_m = (forced & (best_iou < self.match_iou_thres)).nonzero(as_tuple=True)  # not claimed yet
            b, m = torch.cat([b, extra_b]), torch.cat([m, extra_m])
            a = torch.cat([a, best[extra_b, extra_m]])
            priority = torch.cat([priority, best_iou[extra_b, extra_m] + 2.0])
        fg, gt_index = resolve_claims(b, m, a, priority, (B, M, A))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
