"""FCOS assigner: prior points inside the GT, one scale range per pyramid level.

Definition (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV
2019; centre sampling from the journal version, TPAMI 2020): a prior point at ``(x, y)``
is a positive for a GT box when

1. it lies inside the box, or, with ``center_sampling``, inside the box *and* within
   ``radius * stride`` of the box centre along both axes (the centre sub-box clipped to
   the GT box);
2. ``lo <= max(l, t, r, b) <= hi`` with ``(l, t, r, b)`` the distances from the point to
   the box sides and ``(lo, hi)`` the regression range of the point's level.

A point that qualifies for several GT takes the one of smallest area (exact area ties go
to the lower GT index). A GT with no prior point inside it gets no positive. Score
targets are one-hot (centre-ness is a separate branch of the loss).
"""

from __future__ import annotations

import math

import torch

from ..box_ops import box_area
from .base import AssignResult, Priors, empty_result, register_assigner
from .grid import finish, resolve_conflicts

DEFAULT_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, math.inf))


@register_assigner("fcos")
class FCOSAssigner:
    """Points inside the GT (optionally its centre region) whose max(ltrb) fits the level's range.

    regress_ranges: one ``(lo, hi)`` px pair per pyramid level, in level order; the
    default suits 3 levels (strides 8/16/32), FCOS's 5-level default is
    ``((-1, 64), (64, 128), (128, 256), (256, 512), (512, inf))``.
    """

    def __init__(
        self,
        regress_ranges: tuple[tuple[float, float], ...] = DEFAULT_RANGES,
        center_sampling: bool = False,
        radius: float = 1.5,
    ):
        self.regress_ranges = tuple(tuple(float(v) for v in r) for r in regress_ranges)
        if any(len(r) != 2 or r[0] > r[1] for r in self.regress_ranges):
            raise ValueError(f"fcos: regress_ranges must be (lo, hi) pairs, lo <= hi; got {regress_ranges}")
        self.center_sampling = center_sampling
        self.radius = radius

    @torch.no_grad()
    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        """pred_scores [B, A, C], pred_boxes [B, A, 4] (unused), gt_* [B, M] / [B, M, 4] xyxy px."""
        num_levels = int(priors.level.max()) + 1 if len(priors) else 0
        if num_levels != len(self.regress_ranges):
            raise ValueError(
                f"fcos: priors have {num_levels} levels but regress_ranges has {len(self.regress_ranges)} "
                f"entries {self.regress_ranges}; pass one (lo, hi) pair per level"
            )
        if gt_labels.shape[1] == 0:
            return empty_result(pred_scores, gt_labels, gt_boxes)
        gt_boxes = gt_boxes.float()
        px, py = priors.centers[:, 0].float(), priors.centers[:, 1].float()  # [A]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))  # [B, M, 1]
        left, top, right, bottom = px - x1, py - y1, x2 - px, y2 - py  # [B, M, A]
        inside = torch.minimum(torch.minimum(left, top), torch.minimum(right, bottom)) > 0
        if self.center_sampling:
            reach = self.radius * priors.strides.float()  # [A]
            inside &= ((px - (x1 + x2) / 2).abs() < reach) & ((py - (y1 + y2) / 2).abs() < reach)
        reach_max = torch.maximum(torch.maximum(left, top), torch.maximum(right, bottom))
        ranges = priors.centers.new_tensor(self.regress_ranges, dtype=torch.float32)[priors.level]  # [A, 2]
        in_range = (reach_max >= ranges[:, 0]) & (reach_max <= ranges[:, 1])
        pos = inside & in_range & gt_mask[..., None]
        fg, gt_index = resolve_conflicts(pos, -box_area(gt_boxes)[..., None])
        return finish(fg, gt_index, gt_labels, gt_boxes, gt_mask, pred_scores.shape[-1])
