"""Grid-cell assigners of the YOLO family: ``single_grid``, ``nearby_grid`` (and ``all_grid``).

Each ground truth (GT) is matched to prior boxes (anchors) by IoU. The variants differ in
*where* a GT may take priors from:

- ``single_grid``: the cell holding the GT centre on each level (YOLOv2/v3, Redmon &
  Farhadi 2017/2018; several anchors above an IoU threshold as in YOLOv4, Bochkovskiy
  et al. 2020).
- ``nearby_grid``: the 3x3 cells around the centre cell (the "nearby" cells of
  YOLOv4/Scaled-YOLOv4/YOLOv5, which regress the centre in (-0.5, 1.5) cells).
- ``all_grid`` (in ``all_grid.py``): any prior, with the prior box at its own centre
  (SSD/RetinaNet-style IoU matching, Liu et al. 2016, Lin et al. 2017).

Grid geometry is read from the priors, not assumed: they are concatenated level by level,
every prior of a level has the same stride, a prior's cell is ``floor(center / stride)``
(centres at ``(i + 0.5) * stride``) and every cell of a level holds the same number K of
priors. The cell -> priors table built here lets a GT look up the few priors of its cells
(``[B, M, cells, K]``) instead of testing all A priors; ``yolov5`` uses it too.

:func:`resolve_claims` (one prior claimed by several GT) is shared by all assigners.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import AssignResult, Priors, assigner_call, make_result, register_assigner


@dataclass
class LevelGrid:
    """One pyramid level: ``priors[start:end]``, its stride, grid size and cell table.

    table: long ``[height * width, K]``, the prior indices (into all priors) of each cell,
    cells numbered ``y * width + x``.
    """

    start: int
    end: int
    stride: float
    width: int
    height: int
    table: torch.Tensor


def split_levels(priors: Priors) -> list[LevelGrid]:
    """The pyramid levels of ``priors`` (concatenated level by level), in order."""
    level = priors.level
    if len(level) > 1 and bool((level[1:] < level[:-1]).any()):
        raise ValueError("priors must be concatenated level by level (priors.level non-decreasing)")
    levels, start = [], 0
    for lv, count in enumerate(torch.bincount(level).tolist()):
        if count == 0:
            continue
        end = start + count
        stride = float(priors.strides[start])
        if bool((priors.strides[start:end] != stride).any()):
            raise ValueError(f"priors of level {lv} have different strides")
        cells = (priors.centers[start:end].float() / stride).floor().long()  # [A_l, 2]
        width, height = (int(v) + 1 for v in cells.amax(dim=0))
        cell_id = cells[:, 1] * width + cells[:, 0]
        per_cell = torch.bincount(cell_id, minlength=width * height)
        if bool((per_cell != per_cell[0]).any()):
            raise ValueError(f"priors of level {lv} do not hold the same number of priors in every cell")
        table = (cell_id.argsort(stable=True) + start).view(width * height, -1)
        levels.append(LevelGrid(start, end, stride, width, height, table))
        start = end
    return levels


def gt_cells(gt_centers: torch.Tensor, lv: LevelGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """GT centres ``[B, M, 2]`` px -> (grid coords ``[B, M, 2]``, centre cell clamped to the grid).

    Clamping keeps a GT whose centre lies on (or past) the image border inside the grid.
    """
    g = gt_centers / lv.stride
    hi = g.new_tensor([lv.width - 1, lv.height - 1])
    return g, torch.minimum(g.floor().clamp(min=0), hi)


def cell_priors(lv: LevelGrid, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells ``[..., 2]`` (x, y; may lie off the grid) -> (prior indices ``[..., K]``, on-grid ``[...]``)."""
    on_grid = (cells >= 0).all(-1) & (cells[..., 0] < lv.width) & (cells[..., 1] < lv.height)
    cell_id = (cells[..., 1] * lv.width + cells[..., 0]).long().clamp(0, lv.width * lv.height - 1)
    return lv.table[cell_id], on_grid


def shape_iou(wh1: torch.Tensor, wh2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of boxes compared by shape only (both centred at one point).

    wh1, wh2: broadcastable ``[..., 2]`` (w, h) -> ``[...]``.
    """
    inter = torch.minimum(wh1, wh2).prod(-1)
    return inter / (wh1.prod(-1) + wh2.prod(-1) - inter + eps)


def resolve_claims(b, m, a, priority, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Give each prior claimed by several GT to its claim of highest ``priority``.

    Claims are 1-D: image ``b``, GT ``m``, prior ``a`` (long, at most one claim per
    (b, m, a)) and ``priority`` (float); padding GT must not claim. ``shape`` = (B, M, A).
    Returns fg_mask ``[B, A]`` bool and gt_index ``[B, A]`` long (0 on background). Exact
    ties go to the lowest GT index among the claimants.
    """
    B, M, A = shape
    key = b * A + a
    best = priority.new_full((B * A,), float("-inf")).scatter_reduce(0, key, priority, "amax")
    win = priority == best[key]
    first = torch.full((B * A,), M, dtype=torch.long, device=key.device)  # M: no claim (above every GT index)
    first = first.scatter_reduce(0, key, m.masked_fill(~win, M), "amin").view(B, A)  # no mask indexing: no wait
    fg = first < M
    return fg, first.masked_fill(~fg, 0)


def resolve_conflicts(pos: torch.Tensor, priority: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`resolve_claims` for dense claims: pos ``[B, M, A]`` bool, priority broadcastable to it."""
    b, m, a = pos.nonzero(as_tuple=True)
    return resolve_claims(b, m, a, priority.expand_as(pos)[b, m, a], tuple(pos.shape))


def finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, num_classes, score_weight=None) -> AssignResult:
    """``make_result`` with padding labels zeroed (so any padding label value is harmless)."""
    labels = gt_labels.long().masked_fill(~gt_mask, 0)
    return make_result(fg, gt_index, labels, gt_boxes, num_classes, score_weight)


def canonical_rank(gt_labels: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """Rank ``[B, M]`` of each GT in a content order (boxes, then label); padding ranks last.

    Anything keyed by this rank is independent of the order of the GT and of where the
    padding sits.
    """
    B, M = gt_labels.shape
    key = torch.cat([gt_boxes, gt_labels[..., None].float()], dim=-1)  # [B, M, 5]
    key = key.masked_fill(~gt_mask[..., None], float("inf"))
    order = torch.arange(M, device=key.device).expand(B, M)
    for col in reversed(range(5)):  # lexicographic: stable sorts from the last key to the first
        order = order.gather(1, key[..., col].gather(1, order).argsort(dim=1, stable=True))
    return torch.empty_like(order).scatter_(1, order, torch.arange(M, device=key.device).expand(B, M))


def _neighbourhood_claims(gt_boxes, gt_mask, priors, radius: int, thres: float, best_per_cell: bool):
    """Candidates of the ``(2 radius + 1)^2`` cells around each GT centre cell, on every level.

    Returns, each ``[B, M, N]`` (N = sum over levels of cells * K): prior index ``cand``,
    shape IoU ``iou``, ``claim`` (on the grid, IoU >= thres, real GT; with
    ``best_per_cell`` only the best-IoU prior of each cell, lowest index on ties) and
    ``forced`` (each GT's best-IoU prior of its centre cells over all levels).
    """
    centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    gt_wh = (gt_boxes[..., 2:] - gt_boxes[..., :2])[:, :, None, None]  # [B, M, 1, 1, 2]
    r = torch.arange(-radius, radius + 1, dtype=torch.float, device=gt_boxes.device)
    offsets = torch.cartesian_prod(r, r)  # [O, 2]; the centre cell (0, 0) is at O // 2
    cand, iou, claim, centre = [], [], [], []
    for lv in split_levels(priors):
        _, cell = gt_cells(centers, lv)
        idx, on_grid = cell_priors(lv, cell[:, :, None] + offsets)  # [B, M, O, K], [B, M, O]
        lv_iou = shape_iou(gt_wh, priors.sizes.float()[idx])  # [B, M, O, K]
        ok = on_grid[..., None] & (lv_iou >= thres)
        if best_per_cell:
            best = lv_iou.masked_fill(~ok, -1.0).argmax(dim=-1, keepdim=True)
            ok &= torch.zeros_like(ok).scatter_(-1, best, True)
        is_centre = torch.zeros_like(on_grid)
        is_centre[..., offsets.shape[0] // 2] = True
        cand.append(idx.flatten(2))
        iou.append(lv_iou.flatten(2))
        claim.append(ok.flatten(2))
        centre.append(is_centre[..., None].expand_as(ok).flatten(2))
    cand, iou, claim, centre = (torch.cat(t, dim=-1) for t in (cand, iou, claim, centre))
    best_iou, best = iou.masked_fill(~centre, -1.0).max(dim=-1, keepdim=True)
    forced = torch.zeros_like(claim).scatter_(-1, best, True) & (best_iou > 0)
    real = gt_mask[..., None]
    return cand, iou, claim & real, forced & real


def resolve_candidates(cand, claim, priority, A: int):
    """:func:`resolve_claims` for candidate lists: prior index ``cand`` (long), ``claim`` (bool)
    and ``priority`` (float), each ``[B, M, N]``; A = number of priors."""
    b, m, n = claim.nonzero(as_tuple=True)
    return resolve_claims(b, m, cand[b, m, n], priority[b, m, n], (*claim.shape[:2], A))


@register_assigner("single_grid")
class SingleGridAssigner:
    """GT-centre cell, anchors by shape IoU (YOLOv2/v3; multi-anchor threshold of YOLOv4).

    On every level, the priors of the cell holding the GT centre whose shape IoU with the
    GT (prior box centred on the GT, compared by w/h only) is >= ``match_iou_thres`` are
    positives; a GT with none gets its single best-IoU centre-cell prior over all levels.
    A prior claimed by several GT goes to the highest IoU, a best-prior fallback claim
    before any threshold claim (so a GT keeps its only positive where it can).
    Score targets are one-hot.
    """

    requires_anchors = True  # matches GT to prior boxes by shape: needs model.head=anchor

    def __init__(self, match_iou_thres: float = 0.5):
        self.match_iou_thres = match_iou_thres

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        thres = self.match_iou_thres
        cand, iou, claim, forced = _neighbourhood_claims(gt_boxes, gt_mask, priors, 0, thres, False)
        fg, gt_index = resolve_candidates(cand, claim | forced, iou + 2.0 * forced, len(priors))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])


@register_assigner("nearby_grid")
class NearbyGridAssigner:
    """As ``single_grid``, over the 3x3 cells around the GT-centre cell on every level.

    Priors there with shape IoU >= ``match_iou_thres`` are positives; a GT with none gets
    its single best-IoU prior of the centre cells. ``filter_by_max_iou`` keeps, per GT and
    cell, only the best-IoU prior. A prior claimed by several GT goes to the highest IoU
    when ``filter_by_max_iou``, otherwise to a random claimant: the draw comes from a
    generator seeded with ``seed`` at every call and is keyed by (GT content rank, prior),
    so it is reproducible and independent of GT order and padding. Fallback claims win
    over threshold claims. Score targets are one-hot.
    """

    requires_anchors = True  # matches GT to prior boxes by shape: needs model.head=anchor

    def __init__(self, match_iou_thres: float = 0.5, filter_by_max_iou: bool = False, seed: int = 0):
        self.match_iou_thres = match_iou_thres
        self.filter_by_max_iou = filter_by_max_iou
        self.seed = seed

    @assigner_call
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        B, M = gt_labels.shape
        cand, iou, claim, forced = _neighbourhood_claims(
            gt_boxes, gt_mask, priors, 1, self.match_iou_thres, self.filter_by_max_iou
        )
        if self.filter_by_max_iou:
            key = iou
        else:
            # Random priority per (GT, prior), drawn on the CPU so it is device-independent.
            gen = torch.Generator().manual_seed(self.seed)
            table = torch.rand(M, len(priors), generator=gen).to(iou.device)
            key = table[canonical_rank(gt_labels, gt_boxes, gt_mask)[..., None], cand]  # [B, M, N]
        fg, gt_index = resolve_candidates(cand, claim | forced, key + 2.0 * forced, len(priors))
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
