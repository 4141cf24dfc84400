"""Box utilities. Boxes are ``[..., 4]``; formats are ``xyxy`` (corners) or ``cxcywh``.

Pairwise IoU and format conversion come from ``torchvision.ops``. The element-wise IoU family that
assigners and losses need (:func:`aligned_iou`: broadcasting, fp32) is written here from its papers'
definitions: torchvision's GIoU and CIoU losses compute the intersection through a boolean-mask
assignment, which makes the host wait for the GPU three times a call (``reports/perf.md``).
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_convert, box_iou  # noqa: F401


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "cxcywh", "xyxy")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes ``[..., 4]`` -> ``[...]`` (0 for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def aligned_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = 1e-7) -> torch.Tensor:
    """Element-wise IoU-family overlap of broadcastable xyxy boxes ``[..., 4]`` -> ``[...]``.

    kind: ``iou``; ``giou`` (Rezatofighi et al. 2019): IoU minus the share of the smallest enclosing box
    that the union leaves empty; ``ciou`` (Zheng et al. 2020): IoU minus the squared centre distance over the
    enclosing box's squared diagonal, minus ``alpha v`` for the aspect ratios (``alpha`` without gradient, as
    in the paper). Computed in fp32 whatever the input dtype, so it is safe under autocast; no operation in it
    waits for the device (no boolean indexing). ``1 - aligned_iou`` equals torchvision's
    ``generalized_box_iou_loss`` and ``complete_box_iou_loss`` (``tests/test_box_ops.py``).
    """
    if kind not in ("iou", "giou", "ciou"):
        raise ValueError(f"unknown IoU kind {kind!r}; valid: iou, giou, ciou")
    b1, b2 = torch.broadcast_tensors(boxes1.float(), boxes2.float())
    side = torch.minimum(b1[..., 2:], b2[..., 2:]) - torch.maximum(b1[..., :2], b2[..., :2])  # of the intersection
    if kind == "iou":
        inter = side.clamp(min=0).prod(-1)
        return inter / (box_area(b1) + box_area(b2) - inter + eps)
    wh1, wh2 = b1[..., 2:] - b1[..., :2], b2[..., 2:] - b2[..., :2]
    inter = torch.where((side > 0).all(-1), side[..., 0] * side[..., 1], 0.0)
    union = wh1[..., 0] * wh1[..., 1] + wh2[..., 0] * wh2[..., 1] - inter
    iou = inter / (union + eps)
    enclosing = torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2])
    if kind == "giou":
        area_c = enclosing[..., 0] * enclosing[..., 1]
        return iou - (area_c - union) / (area_c + eps)
    diagonal2 = enclosing.square().sum(-1) + eps
    centre2 = ((b1[..., :2] + b1[..., 2:]) / 2 - (b2[..., :2] + b2[..., 2:]) / 2).square().sum(-1)
    v = (4 / math.pi**2) * (torch.atan(wh2[..., 0] / wh2[..., 1]) - torch.atan(wh1[..., 0] / wh1[..., 1])).square()
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - centre2 / diagonal2 - alpha * v


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Whether each point lies strictly inside each box.

    points [A, 2] (x, y); boxes [..., M, 4] xyxy -> bool [..., M, A].
    """
    lt = points[None] - boxes[..., :, None, :2]  # [..., M, A, 2]
    rb = boxes[..., :, None, 2:] - points[None]
    return torch.cat([lt, rb], dim=-1).amin(dim=-1) > eps


def distance_to_box(centers: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Decode (left, top, right, bottom) distances from points ``[..., 2]`` to xyxy boxes."""
    return torch.cat([centers - ltrb[..., :2], centers + ltrb[..., 2:]], dim=-1)


def box_to_distance(centers: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`distance_to_box`: xyxy boxes -> ltrb distances from the points."""
    return torch.cat([centers - boxes[..., :2], boxes[..., 2:] - centers], dim=-1)
